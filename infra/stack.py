"""StepnetStack: storage, the Lambda functions and the state machines, wired together."""

from pathlib import Path
from typing import Any

from aws_cdk import Stack
from constructs import Construct

from infra.functions import DEFAULT_LOG_LEVEL, Functions, sized_specs
from infra.outputs import add_outputs
from infra.paths import STATEMACHINE_DIR
from infra.storage import Storage
from infra.workflow import Workflow
from trainer.contract import names

# Context keys (cdk.json or `-c key=value`).
MEMORY_CONTEXT = "memory"  # {"Forward": 2048}: MB per function
TIMEOUT_CONTEXT = "timeout"  # {"Forward": 300}: seconds per function
LOG_LEVEL_CONTEXT = "log_level"
SCRATCH_TTL_HOURS_CONTEXT = "scratch_ttl_hours"
DEFAULT_SCRATCH_TTL_HOURS = names.SCRATCH_TTL_HOURS  # as long as S3 keeps scratch


class StepnetStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definitions_dir: Path = STATEMACHINE_DIR,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        context = self.node.try_get_context
        storage = Storage(self, "Storage")
        functions = Functions(
            self,
            "Functions",
            prefix=self.stack_name,
            specs=sized_specs(memory=context(MEMORY_CONTEXT), timeout=context(TIMEOUT_CONTEXT)),
            storage=storage,
            scratch_ttl_hours=int(context(SCRATCH_TTL_HOURS_CONTEXT) or DEFAULT_SCRATCH_TTL_HOURS),
            log_level=context(LOG_LEVEL_CONTEXT) or DEFAULT_LOG_LEVEL,
        )
        workflow = Workflow(
            self,
            "Workflow",
            prefix=self.stack_name,
            functions=functions.by_logical,
            definitions_dir=definitions_dir,
        )
        add_outputs(self, training=workflow.state_machines["Training"], storage=storage)
