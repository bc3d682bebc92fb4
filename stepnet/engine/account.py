"""An emulated AWS account shaped exactly like the deployed stack.

Built from the contract the stack is built from (``trainer.contract``): the same function names,
handlers, sizes, runtime and environment (``functions``, ``environment``), the same table keys,
TTL and bucket lifecycle rules (``storage``), the same ASL files, created in the same order with
the same substitutions (``statemachines``). Code that talks to "an account" through boto3 — the
CLI, the tests — cannot tell which one it has. ``tests/engine/test_engine_matches_stack.py``
compares this account with the synthesized stack.

Like a deployment, an account may size its functions differently (``memory_mb``, ``timeout_s``:
the stack's ``memory`` and ``timeout`` context, by the same rule) and tune the functions' limits
(``limits``: history budget, inline limit, scratch TTL). The functions run in worker processes
held to those sizes (``isolation="processes"``, the default) or in this process
(``"threads"``): :mod:`stepnet.engine.runtime`.

Its tables and bucket are moto's, in this process's memory (the *emulated* store); or, with a
``home`` folder, the functions' store is the home (:mod:`stepnet.home`: SQLite and files, kept
after the process ends), which the sandboxes open themselves and this process's clients use
(:meth:`LocalAccount.stepnet_client`). The emulated tables and bucket still exist, empty; what
needs moto's DynamoDB and S3 — AWS clients of ``stepnet serve``, S3 events, the billing meter —
uses the emulated store.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import boto3
from moto import mock_aws

from inference import handlers as inference_handlers
from stepnet.client import StackResources, StepnetClient
from stepnet.engine import patches
from stepnet.engine.provision import (
    create_tables_and_bucket,
    notification_configuration,
    upload_rule,
)
from stepnet.engine.runtime import Isolation, LambdaRuntime
from stepnet.engine.sandbox import HOME_VARIABLE
from stepnet.engine.service import AccountService
from stepnet.home import Home, open_home
from trainer import settings
from trainer.contract import names, wiring
from trainer.contract.environment import FunctionEnvironment
from trainer.contract.functions import (
    LAMBDA_ARCHITECTURE,
    LAMBDA_RUNTIME,
    FunctionSpec,
    size_overrides,
    sized_functions,
)
from trainer.contract.monitoring import metrics_namespace
from trainer.contract.retrain import TARGET_MACHINE, UPLOAD_RULE, rule_name
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
CREDENTIALS: Final = {  # any will do; moto checks none
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# The one setting the engine chooses differently from the stack's default (INFO): its handlers'
# output goes to the caller's terminal (the CLI, a test), which their INFO lines would flood.
LOG_LEVEL: Final = "WARNING"
METRICS_DISABLED: Final = "POWERTOOLS_METRICS_DISABLED"  # Powertools' switch (engine_environment)


def environment_of(
    logical: str,
    resources: dict[str, str],
    training_arn: str | None = None,
    *,
    stack_name: str = names.DEFAULT_STACK_NAME,
    **limits: int,
) -> dict[str, str]:
    """Function ``logical``'s environment, as in the stack (``trainer.contract.wiring``;
    ``limits``: any field of :class:`~trainer.contract.environment.Limits` a deployment tunes)."""
    common = FunctionEnvironment(
        **resources, log_level=LOG_LEVEL, metrics_namespace=metrics_namespace(stack_name), **limits
    )
    return wiring.function_environment(logical, common, training_state_machine_arn=training_arn)


class LocalAccount:
    """Context manager: an emulated account with the whole stack deployed into it.

    moto intercepts boto3 in this process; with a ``port`` it runs as a server on 127.0.0.1:PORT
    instead, so that other processes — the AWS CLI, ``stepnet --endpoint-url`` — talk to the
    account too. ``isolation="processes"`` (the default): every function runs in warm worker
    processes held to its memory and timeout (``memory_mb``, ``timeout_s``: overrides per
    logical function name, checked like the stack's context), whose AWS API calls come back to
    this process's moto over their channels. ``isolation="threads"``: the handlers run in this
    process, unmeasured and unlimited (for in-process instruments such as the meter).
    """

    def __init__(
        self,
        stack_name: str = names.DEFAULT_STACK_NAME,
        port: int | None = None,
        *,
        isolation: Isolation = "processes",
        memory_mb: Mapping[str, int] | None = None,
        timeout_s: Mapping[str, int] | None = None,
        limits: Mapping[str, int] | None = None,
        home: Path | None = None,
    ):
        self.stack_name = stack_name
        self.home = None if home is None else Path(home).resolve()
        self.home_store: Home | None = None  # the home's store, once entered
        self.port = port
        self.isolation = isolation
        self.functions = sized_functions(
            memory_mb=size_overrides("memory", memory_mb, source="memory_mb"),
            timeout_s=size_overrides("timeout", timeout_s, source="timeout_s"),
        )
        self.limits = dict(limits or {})
        self.runtime = LambdaRuntime(isolation)
        self._exit = ExitStack()
        self.resources: StackResources | None = None
        self._physical: dict[str, str] = {}
        self._training_arn: str | None = None
        self.machine_arns: dict[str, str] = {}  # logical -> ARN, once deployed

    @property
    def endpoint_url(self) -> str | None:
        return None if self.port is None else f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalAccount:
        try:
            return self._enter()
        except BaseException:
            self.__exit__()
            raise

    def _enter(self) -> LocalAccount:
        patches.apply()
        # the interpreter logs every caught state error at ERROR; the histories keep them
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        self._saved_env: dict[str, str | None] = {}
        self._set_env(CREDENTIALS | {"AWS_DEFAULT_REGION": REGION, "MOTO_ACCOUNT_ID": ACCOUNT_ID})
        if self.port is None:
            self._exit.enter_context(
                mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
            )
        else:
            self.port = self._start_server(self.port)
            self._set_env(
                {"AWS_ENDPOINT_URL": self.endpoint_url or "", "MOTO_PORT": str(self.port)}
            )
        # the sandboxes' AWS API calls come to this process's moto over their channels
        self.runtime.transport = AccountService(
            tables=frozenset({TENSORS_TABLE.physical_name(self.stack_name)}),
            object_prefixes=(names.S3_TENSORS_PREFIX, names.S3_RUNS_PREFIX),
        )
        self.runtime.services = ("dynamodb", "s3")  # the store's (trainer.store)
        self.runtime.engine_environment = CREDENTIALS | {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # the functions' EMF metrics are CloudWatch Logs' to read; here their stdout is
            # the caller's terminal (as LOG_LEVEL below)
            METRICS_DISABLED: "true",
        }
        if self.home is not None:
            # the sandboxes open the home at their init (stepnet.engine.sandbox)
            self.runtime.engine_environment[HOME_VARIABLE] = str(self.home)
            self.runtime.services = ()
            self.runtime.preload = ("stepnet.home",)
        self._exit.callback(self.runtime.close)  # before moto stops (callbacks run last first)
        self.resources = self._deploy()
        patches.set_runtime(self.runtime)
        return self

    def _set_env(self, values: Mapping[str, str]) -> None:
        for key in values:
            self._saved_env.setdefault(key, os.environ.get(key))
        os.environ.update(values)

    def _start_server(self, port: int) -> int:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        default_user_config["stepfunctions"]["execute_state_machine"] = True
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self._exit.callback(server.stop)
        return server.get_host_and_port()[1]

    def _open_home(self, physical: Mapping[str, str]) -> None:
        """The home's store in this process, with the functions' settings (scratch TTL)."""
        if self.home is None:
            return
        env = FunctionEnvironment(**physical, **self.limits)
        self.home_store = open_home(
            self.home, bucket=physical["bucket"], scratch_ttl_seconds=env.scratch_ttl_hours * 3600
        )

    def stepnet_client(self) -> StepnetClient:
        """A client of this account, as on AWS; its store is the home, if the account has one."""
        if self.resources is None:
            raise RuntimeError("enter the account (with LocalAccount()) before making a client")
        return StepnetClient(self.resources, endpoint_url=self.endpoint_url, store=self.home_store)

    def _reset_handler_caches(self) -> None:
        """Forget the in-process handlers' store; with a home, install it again (threads)."""
        _reset_handler_caches()
        if self.home_store is not None and self.isolation == "threads":
            settings.install(self.home_store)

    def __exit__(self, *exc: object) -> None:
        patches.set_runtime(None)
        self._exit.close()
        _reset_handler_caches()
        for key, value in getattr(self, "_saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    @contextmanager
    def tuned(self, **limits: int) -> Iterator[None]:
        """Change the functions' limits (fields of :class:`~trainer.contract.environment.Limits`,
        e.g. ``history_event_budget``) while the block runs, the way a deployment does: a new
        environment in every function's configuration, so new sandboxes."""
        previous = dict(self.limits)
        self._configure(previous | limits)
        try:
            yield
        finally:
            self._configure(previous)

    def _configure(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)
        for logical, spec in self.functions.items():
            name = names.function_name(self.stack_name, logical)
            environment = self._environment(logical)
            self.runtime.register(name, spec.handler, environment=environment)
            self.client("lambda").update_function_configuration(
                FunctionName=name, Environment={"Variables": environment}
            )
            if self.isolation == "threads":
                self._set_env(environment)
        if self.isolation == "threads":
            self._reset_handler_caches()

    def _environment(self, logical: str) -> dict[str, str]:
        """A function's environment; those that start runs get the Training machine's ARN."""
        machines = self.functions[logical].grants.machines
        return environment_of(
            logical,
            self._physical,
            self._training_arn if machines else None,
            stack_name=self.stack_name,
            **self.limits,
        )

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """An execution's events as ``get_execution_history`` returns them, read from the
        emulator directly: moto's response serializer takes ~0.6 ms per event, which for a whole
        run's histories costs more than the training itself."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[ACCOUNT_ID][REGION]
        events: list[Any] = backend.get_execution_history(execution_arn)["events"]
        return [dict(event) for event in events]

    def express_executions(self) -> list[tuple[str, str]]:
        """(name, arn) of every execution of the account's Express machines, read from the
        emulator (for the meter and the bench: on AWS, ``GetExecutionHistory`` and
        ``DescribeExecution`` refuse Express executions, which are seen through CloudWatch
        Logs, so no client reads them)."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[ACCOUNT_ID][REGION]
        express = {
            names.state_machine_name(self.stack_name, logical)
            for logical, spec in STATE_MACHINES.items()
            if spec.type == "EXPRESS"
        }
        return sorted(
            (execution.name, execution.exec_arn)
            for execution in backend._get_executions()
            if execution.exec_arn.split(":")[6] in express  # …:execution|express:<machine>:…
        )

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint_url)

    def _deploy(self) -> StackResources:
        physical = {
            "runs_table": RUNS_TABLE.physical_name(self.stack_name),
            "tensors_table": TENSORS_TABLE.physical_name(self.stack_name),
            "bucket": DATA_BUCKET.physical_name(self.stack_name, ACCOUNT_ID),
        }
        create_tables_and_bucket(self.client("dynamodb"), self.client("s3"), **physical)
        self._physical = physical
        self._open_home(physical)
        role = self._role()
        # Functions that start runs need the Training machine's ARN: created after the machines.
        function_arns = {
            logical: self._function(logical, spec, role, self._environment(logical))
            for logical, spec in self.functions.items()
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
        self._training_arn = machine_arns["Training"]
        for logical, spec in self.functions.items():
            if spec.grants.machines:
                environment = self._environment(logical)
                function_arns[logical] = self._function(logical, spec, role, environment)
        self.client("s3").put_bucket_notification_configuration(
            Bucket=physical["bucket"],
            NotificationConfiguration=notification_configuration(function_arns),
        )
        upload_rule(
            self.client("events"),
            name=rule_name(self.stack_name, UPLOAD_RULE),
            bucket=physical["bucket"],
            target_arn=machine_arns[TARGET_MACHINE],
            role_arn=role,
        )
        self.machine_arns = dict(machine_arns)
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
                    "Principal": {
                        "Service": [
                            "lambda.amazonaws.com",
                            "states.amazonaws.com",
                            "events.amazonaws.com",
                        ]
                    },
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
        self.runtime.register(
            name,
            spec.handler,
            memory_mb=spec.memory_mb,
            timeout_s=spec.timeout_s,
            environment=environment,
            label=logical,
        )
        if self.isolation == "threads":
            # In-process handlers read the functions' environment from this process's: the
            # union of every function's (they agree on every variable they share).
            self._set_env(environment)
            self._reset_handler_caches()
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
    """moto stores a code package; the engine runs the installed tree's handlers."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "the local engine runs the installed stepnet handlers\n")
    return buffer.getvalue()


def _reset_handler_caches() -> None:
    settings.install(None)
    inference_handlers.reset()
