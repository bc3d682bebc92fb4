"""Names shared by the Lambda code, the CDK stack and the local engine.

One module so that the emulated account cannot drift from the deployed one: every key
attribute, object prefix, limit and resource name pattern is spelled here once. What is built
from them lives beside it: the functions (``functions.py``), their environment
(``environment.py``), the tables and the bucket (``storage.py``) and the state machines
(``statemachines.py``).
"""

from typing import Final

SERVICE_NAME: Final = "stepnet"  # Powertools' service name (logs, metrics)
# The environment variables themselves: trainer.contract.environment.

# --- DynamoDB: runs table ---------------------------------------------------------------------
# One partition per run; the sort key names the record ("config", "status", "epoch#0003").
RUNS_PK: Final = "run_id"
RUNS_SK: Final = "record"

# --- DynamoDB: tensors table -----------------------------------------------------------------
# One item per tensor bundle; the partition key is the bundle's full key, e.g.
# "digits-demo/weights/v000012". Scratch items carry a TTL attribute.
TENSORS_PK: Final = "tensor_key"
TENSORS_TTL_ATTRIBUTE: Final = "expires_at"

# --- S3 layout (prefixes under the one bucket) -------------------------------------------------
S3_DATASETS_PREFIX: Final = "datasets/"  # datasets/<pipeline>/<file>: starts retraining
S3_UPLOADS_PREFIX: Final = "uploads/"  # the CLI's uploads (a file, a folder's or a cut file's
# shards): never under datasets/, where each object would start a Retrain execution
S3_RUNS_PREFIX: Final = "runs/"  # runs/<run_id>/model/: the exported model, from Finalize
S3_TENSORS_PREFIX: Final = "tensors/"  # spilled tensor bundles, same key as in DynamoDB
S3_SCRATCH_PREFIX: Final = "tensors/scratch/"  # expired by a lifecycle rule
# Scratch expires this long after it is written: the default of the one setting (the functions'
# STEPNET_SCRATCH_TTL_HOURS, the stack's `scratch_ttl_hours` context) that sets both the
# DynamoDB TTL of scratch items and the bucket's lifecycle rule for scratch objects, in whole
# days rounded up (storage.data_bucket).
SCRATCH_TTL_HOURS: Final = 24
SCRATCH_EXPIRY_DAYS: Final = -(-SCRATCH_TTL_HOURS // 24)  # the default's lifecycle days

# --- Tensor bundles: inline in DynamoDB, or spilled to S3 ---------------------------------------
# Encoded bundles above this many bytes are spilled to S3, with a pointer item in DynamoDB. The
# threshold is where S3 becomes cheaper (us-east-1, on-demand): an inline write costs 1 WRU per KB
# ($0.625/M), a spilled one an S3 PUT ($0.005/1k, the price of 8 WRU) plus a 1-WRU pointer, so
# from ~9 KB on S3 wins; reads shift it a little (4 KB per RRU inline, a GET plus a pointer read
# spilled). A deployment may raise it (up to MAX_INLINE_LIMIT_BYTES, under DynamoDB's 400 KB
# item limit) to trade dollars for the latency of S3 requests.
INLINE_LIMIT_BYTES: Final = 10 * 1024
MAX_INLINE_LIMIT_BYTES: Final = 390_000


# Names the stack and the local engine give things, from a prefix (the stack name).
def function_name(prefix: str, logical: str) -> str:
    """The deployed Lambda function name for a logical handler name, e.g. stepnet-Forward."""
    return f"{prefix}-{logical}"


def state_machine_name(prefix: str, logical: str) -> str:
    """The deployed state machine name, e.g. stepnet-Training."""
    return f"{prefix}-{logical}"


DEFAULT_STACK_NAME: Final = "stepnet"

# --- Lambda -------------------------------------------------------------------------------------
FULL_VCPU_MEMORY_MB: Final = 1769  # Lambda gives a function one full vCPU at this memory size

# --- Step Functions limits we plan against ------------------------------------------------------
HISTORY_EVENT_LIMIT: Final = 25_000
HISTORY_EVENT_BUDGET: Final = 20_000  # what one chunk of steps may use, with headroom
EXPRESS_MAX_SECONDS: Final = 300  # an Express execution ends with States.Timeout after 5 min
# What one Express chunk of steps may take by the assumed step duration
# (trainer.training.schedule.step_seconds_bound): 2.5× below Express's limit.
EXPRESS_CHUNK_SECONDS: Final = 120
MAX_EPOCHS: Final = 999  # epoch execution names carry three digits: <run>-epoch-NNN

# --- CloudFormation outputs the client reads (field -> output key) ------------------------------
STACK_OUTPUTS: Final = {
    "training_arn": "TrainingStateMachineArn",
    "bucket": "BucketName",
    "runs_table": "RunsTableName",
    "tensors_table": "TensorsTableName",
}
