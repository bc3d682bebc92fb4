#!/usr/bin/env python3
"""The CDK app: one StepnetStack, checked by cdk-nag's AwsSolutions pack on every synth.

`trainer` (the contract the stack is built from) is importable because the project is installed
(`make setup` runs `pip install -e .`).
"""

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.settings import STACK_NAME_CONTEXT
from infra.stack import StepnetStack
from trainer.contract import names

app = cdk.App()
StepnetStack(app, app.node.try_get_context(STACK_NAME_CONTEXT) or names.DEFAULT_STACK_NAME)
# cdk-nag v3 is a policy-validation plugin: any unacknowledged finding fails the synth.
cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
app.synth()
