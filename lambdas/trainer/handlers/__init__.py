"""Thin Lambda handlers: parse the event, load tensors, call the math, store, return keys."""

from aws_lambda_powertools import Logger

from trainer.constants import SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
