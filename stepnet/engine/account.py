"""An emulated AWS account shaped exactly like the deployed stack.

Built from the contract the stack is built from (``trainer.contract``): the same function names,
handlers, sizes, runtime and environment (``functions``, ``environment``), the same table keys,
TTL and bucket lifecycle rules (``storage``), the same ASL files, created in the same order with
the same substitutions (``statemachines``). Code that talks to "an account" through boto3 — the
CLI, the tests — cannot tell which one it has. ``tests/engine/test_engine_matches_stack.py``
compares this account with the synthesized stack.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
import zipfile
from contextlib import ExitStack
from typing import Any, Final

import boto3
from moto import mock_aws

from inference import handlers as inference_handlers
from stepnet.client import StackResources
from stepnet.engine import patches
from stepnet.engine.provision import create_tables_and_bucket, notification_configuration
from stepnet.engine.runtime import LambdaRuntime
from trainer import settings
from trainer.contract import names, wiring
from trainer.contract.environment import FunctionEnvironment
from trainer.contract.functions import FUNCTIONS, LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, FunctionSpec
from trainer.contract.statemachines import (
    STATE_MACHINES,
    creation_order,
    definition_text,
    read_references,
    render,
    substitutions,
)
from trainer.contract.storage import DATA_BUCKET, RUNS_TABLE, TENSORS_TABLE

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
# The one setting the engine chooses differently from the stack's default (INFO): its handlers
# run in the caller's process (the CLI, a test), whose output their INFO lines would flood.
LOG_LEVEL: Final = "WARNING"


def environment_of(
    logical: str, resources: dict[str, str], training_arn: str | None = None
) -> dict[str, str]:
    """Function ``logical``'s environment, as in the stack (``trainer.contract.wiring``)."""
    common = FunctionEnvironment(**resources, log_level=LOG_LEVEL)
    return wiring.function_environment(logical, common, training_state_machine_arn=training_arn)


class LocalAccount:
    """Context manager: an emulated account with the whole stack deployed into it.

    In-process by default (moto intercepts boto3 in this process). With ``port``, moto runs as a
    server on 127.0.0.1:PORT so that other processes — the AWS CLI, ``stepnet --endpoint-url`` —
    talk to it; the handlers still run in this process.
    """

    def __init__(self, stack_name: str = names.DEFAULT_STACK_NAME, port: int | None = None):
        self.stack_name = stack_name
        self.port = port
        self.runtime = LambdaRuntime()
        self._exit = ExitStack()
        self.resources: StackResources | None = None

    @property
    def endpoint_url(self) -> str | None:
        return None if self.port is None else f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalAccount:
        patches.apply()
        # the interpreter logs every caught state error at ERROR; the histories keep them
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "MOTO_ACCOUNT_ID": ACCOUNT_ID,
        }
        if self.port is not None:
            env |= {"AWS_ENDPOINT_URL": self.endpoint_url or "", "MOTO_PORT": str(self.port)}
        self._saved_env = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        if self.port is None:
            self._exit.enter_context(
                mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
            )
        else:
            self._start_server(self.port)
        self.resources = self._deploy()
        patches.set_runtime(self.runtime)
        return self

    def _start_server(self, port: int) -> None:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        default_user_config["stepfunctions"]["execute_state_machine"] = True
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self._exit.callback(server.stop)

    def __exit__(self, *exc: object) -> None:
        patches.set_runtime(None)
        self._exit.close()
        _reset_handler_caches()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """An execution's events as ``get_execution_history`` returns them, read from the
        emulator directly: moto's response serializer takes ~0.6 ms per event, which for a whole
        run's histories costs more than the training itself."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[ACCOUNT_ID][REGION]
        events: list[Any] = backend.get_execution_history(execution_arn)["events"]
        return [dict(event) for event in events]

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint_url)

    def _deploy(self) -> StackResources:
        physical = {
            "runs_table": RUNS_TABLE.physical_name(self.stack_name),
            "tensors_table": TENSORS_TABLE.physical_name(self.stack_name),
            "bucket": DATA_BUCKET.physical_name(self.stack_name, ACCOUNT_ID),
        }
        create_tables_and_bucket(self.client("dynamodb"), self.client("s3"), **physical)
        role = self._role()
        # Functions that start runs need the Training machine's ARN: created after the machines.
        function_arns = {
            logical: self._function(logical, spec, role, environment_of(logical, physical))
            for logical, spec in FUNCTIONS.items()
            if not spec.grants.machines
        }
        machine_arns: dict[str, str] = {}
        for logical in creation_order():  # children first: a parent is given their ARNs
            values = substitutions(read_references(logical), function_arns, machine_arns)
            machine_arns[logical] = self.client("stepfunctions").create_state_machine(
                name=names.state_machine_name(self.stack_name, logical),
                definition=render(definition_text(logical), values),
                roleArn=role,
                type=STATE_MACHINES[logical].type,
            )["stateMachineArn"]
        for logical, spec in FUNCTIONS.items():
            if spec.grants.machines:
                environment = environment_of(logical, physical, machine_arns["Training"])
                function_arns[logical] = self._function(logical, spec, role, environment)
        self.client("s3").put_bucket_notification_configuration(
            Bucket=physical["bucket"],
            NotificationConfiguration=notification_configuration(function_arns),
        )
        resources = StackResources(
            stack_name=self.stack_name,
            region=REGION,
            training_arn=machine_arns["Training"],
            **physical,
        )
        self._stack_outputs(resources)
        return resources

    def _stack_outputs(self, resources: StackResources) -> None:
        """A CloudFormation stack with the deployed stack's outputs, so clients find the
        resources exactly as they do on AWS (``describe_stacks``)."""
        values = {
            "training_arn": resources.training_arn,
            "bucket": resources.bucket,
            "runs_table": resources.runs_table,
            "tensors_table": resources.tensors_table,
        }
        template = {
            "Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {
                names.STACK_OUTPUTS[field]: {"Value": value} for field, value in values.items()
            },
        }
        with warnings.catch_warnings():  # moto does not model the placeholder resource
            warnings.simplefilter("ignore", UserWarning)
            self.client("cloudformation").create_stack(
                StackName=self.stack_name, TemplateBody=json.dumps(template)
            )

    def _role(self) -> str:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        return str(
            self.client("iam").create_role(
                RoleName=f"{self.stack_name}-local", AssumeRolePolicyDocument=json.dumps(trust)
            )["Role"]["Arn"]
        )

    def _function(
        self, logical: str, spec: FunctionSpec, role: str, environment: dict[str, str]
    ) -> str:
        name = names.function_name(self.stack_name, logical)
        self.runtime.register(name, spec.handler)
        # In-process handlers read the functions' environment from this process's: the union of
        # every function's (they agree on every variable they share).
        os.environ.update(environment)
        _reset_handler_caches()
        response = self.client("lambda").create_function(
            FunctionName=name,
            Runtime=LAMBDA_RUNTIME,
            Architectures=[LAMBDA_ARCHITECTURE],
            Role=role,
            Handler=spec.handler,
            Code={"ZipFile": _placeholder_zip()},
            Environment={"Variables": environment},
            MemorySize=spec.memory_mb,
            Timeout=spec.timeout_s,
        )
        return str(response["FunctionArn"])


def _placeholder_zip() -> bytes:
    """moto stores a code package; the code itself runs in-process from the installed tree."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "stepnet handlers run in-process in the local engine\n")
    return buffer.getvalue()


def _reset_handler_caches() -> None:
    settings.install(None)
    inference_handlers.reset()
