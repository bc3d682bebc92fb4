"""StepnetStack: storage, the Lambda functions and the state machines, wired together; then the
API (runs and predictions) and the bucket's trigger for batch predictions."""

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.api import Api
from infra.functions import Functions, sized_specs
from infra.outputs import add_api_outputs, add_outputs
from infra.settings import (
    MEMORY_CONTEXT,
    TIMEOUT_CONTEXT,
    check_stack_name,
    read_settings,
)
from infra.storage import Storage
from infra.triggers import add_triggers
from infra.workflow import Workflow


class StepnetStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        check_stack_name(self.stack_name)
        # context keys (cdk.json or `-c key=value`, infra.settings); unset, each takes the
        # contract's default (trainer.contract.functions for sizes, .environment for the rest)
        context = self.node.try_get_context
        settings = read_settings(context)
        scratch_ttl = settings.scratch_ttl_hours
        storage = Storage(self, "Storage", scratch_ttl_hours=scratch_ttl)
        functions = Functions(
            self,
            "Functions",
            prefix=self.stack_name,
            specs=sized_specs(memory=context(MEMORY_CONTEXT), timeout=context(TIMEOUT_CONTEXT)),
            storage=storage,
            scratch_ttl_hours=scratch_ttl,
            log_level=settings.log_level,
        )
        workflow = Workflow(
            self, "Workflow", prefix=self.stack_name, functions=functions.by_logical
        )
        functions.add_run_starters(workflow.state_machines)
        api = Api(self, "Api", prefix=self.stack_name, functions=functions.by_logical)
        add_triggers(storage, functions.by_logical)
        add_outputs(self, training=workflow.state_machines["Training"], storage=storage)
        add_api_outputs(self, api.url)
