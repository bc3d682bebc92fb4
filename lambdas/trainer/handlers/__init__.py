"""Thin Lambda handlers: parse the event, load tensors, call the math, store, return keys."""

from aws_lambda_powertools import Logger

from trainer.contract.names import SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
