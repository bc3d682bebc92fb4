"""StepnetStack: storage, the Lambda functions and the state machines, wired together; then the
API (runs and predictions), the bucket's trigger for batch predictions, the retraining rules,
and the monitoring (dashboard, alarms, their topic)."""

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.api import Api
from infra.functions import Functions, sized_specs
from infra.monitoring import Monitoring
from infra.outputs import add_api_outputs, add_outputs
from infra.storage import Storage
from infra.triggers import add_retrain_rules, add_triggers
from infra.workflow import Workflow
from trainer.contract import monitoring, retrain

# Context keys (cdk.json or `-c key=value`). Unset, each takes the contract's default
# (trainer.contract.functions for sizes, trainer.contract.environment for the rest).
MEMORY_CONTEXT = "memory"  # {"Forward": 2048}: MB per function
TIMEOUT_CONTEXT = "timeout"  # {"Forward": 300}: seconds per function
LOG_LEVEL_CONTEXT = "log_level"  # the functions' POWERTOOLS_LOG_LEVEL
SCRATCH_TTL_HOURS_CONTEXT = "scratch_ttl_hours"  # lifetime of scratch: DynamoDB TTL and S3 rule
# {"digits": "rate(7 days)"}: retrain pipelines on a schedule (trainer.contract.retrain)
RETRAIN_SCHEDULES_CONTEXT = retrain.RETRAIN_SCHEDULES_CONTEXT
ALARM_EMAIL_CONTEXT = monitoring.ALARM_EMAIL_CONTEXT  # who the alarm topic mails (optional)


class StepnetStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        context = self.node.try_get_context
        scratch_ttl_hours = context(SCRATCH_TTL_HOURS_CONTEXT)
        scratch_ttl = None if scratch_ttl_hours is None else int(scratch_ttl_hours)
        storage = Storage(self, "Storage", scratch_ttl_hours=scratch_ttl)
        functions = Functions(
            self,
            "Functions",
            prefix=self.stack_name,
            specs=sized_specs(memory=context(MEMORY_CONTEXT), timeout=context(TIMEOUT_CONTEXT)),
            storage=storage,
            scratch_ttl_hours=scratch_ttl,
            log_level=context(LOG_LEVEL_CONTEXT),
        )
        workflow = Workflow(
            self, "Workflow", prefix=self.stack_name, functions=functions.by_logical
        )
        functions.add_run_starters(workflow.state_machines)
        api = Api(self, "Api", prefix=self.stack_name, functions=functions.by_logical)
        add_triggers(storage, functions.by_logical)
        add_retrain_rules(
            self, storage, workflow.state_machines, context(RETRAIN_SCHEDULES_CONTEXT)
        )
        Monitoring(
            self,
            "Monitoring",
            prefix=self.stack_name,
            functions=functions.by_logical,
            machines=workflow.state_machines,
            alarm_email=context(ALARM_EMAIL_CONTEXT),
        )
        add_outputs(self, training=workflow.state_machines["Training"], storage=storage)
        add_api_outputs(self, api.url)
