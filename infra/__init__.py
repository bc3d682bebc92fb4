"""The CDK side of stepnet: small constructs composed by one stack (see infra/stack.py)."""
