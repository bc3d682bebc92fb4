"""Where tensors and run records live: two DynamoDB tables and one S3 bucket (plus a bucket for
its access logs).

Keys, TTL, billing mode and lifecycle rules come from `trainer.contract.storage`, which the local
engine provisions from too; what is added here (point-in-time recovery, encryption, access
logging, removal policies) is the deployed stack's own.

Removal policy: the tables and the bucket are a trainer's working storage (run records, tensor
bundles, scratch), rebuilt by re-running a training, so `cdk destroy` deletes them (DESTROY). The
bucket is only deleted once emptied: CloudFormation refuses a non-empty bucket, which keeps a
deliberate step between a teardown and the loss of uploaded datasets and trained models.
"""

from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from trainer.contract.storage import (
    DATA_BUCKET,
    KEY_ATTRIBUTE_TYPE,
    TABLES,
    LifecycleRule,
    TableName,
    TableSpec,
    data_bucket,
)

# Access logs are delivered through a bucket policy, not ACLs (ACLs stay disabled). Set here as
# well as in cdk.json: without it the access-log bucket cannot be built with ACLs disabled.
SERVER_ACCESS_LOGS_USE_BUCKET_POLICY: Final = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"
ACCESS_LOGS_PREFIX: Final = "bucket/"
ACCESS_LOGS_EXPIRY_DAYS: Final = 90
# DynamoDB attribute types as the contract spells them ("S") -> CDK.
ATTRIBUTE_TYPES: Final = {"S": dynamodb.AttributeType.STRING}


class Storage(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, scratch_ttl_hours: int | None = None
    ) -> None:
        """``scratch_ttl_hours``: the deployment's scratch TTL (the contract's default if None),
        which the scratch objects' lifecycle rule follows (in days, rounded up) as the
        functions' DynamoDB TTL does."""
        super().__init__(scope, construct_id)
        bucket_spec = DATA_BUCKET if scratch_ttl_hours is None else data_bucket(scratch_ttl_hours)
        self.node.set_context(SERVER_ACCESS_LOGS_USE_BUCKET_POLICY, True)
        self.tables: dict[TableName, dynamodb.Table] = {
            table: self._table(f"{table.capitalize()}Table", spec) for table, spec in TABLES.items()
        }
        self.runs_table = self.tables["runs"]
        self.tensors_table = self.tables["tensors"]
        self.access_logs_bucket = self._access_logs_bucket()
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix=ACCESS_LOGS_PREFIX,
            lifecycle_rules=[_lifecycle_rule(rule) for rule in bucket_spec.lifecycle_rules],
            event_bridge_enabled=bucket_spec.event_bridge,
            removal_policy=RemovalPolicy.DESTROY,
        )

    def _table(self, construct_id: str, spec: TableSpec) -> dynamodb.Table:
        string = ATTRIBUTE_TYPES[KEY_ATTRIBUTE_TYPE]
        return dynamodb.Table(
            self,
            construct_id,
            partition_key=dynamodb.Attribute(name=spec.partition_key, type=string),
            sort_key=dynamodb.Attribute(name=spec.sort_key, type=string) if spec.sort_key else None,
            time_to_live_attribute=spec.ttl_attribute,
            billing_mode=dynamodb.BillingMode[spec.billing_mode],
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )

    def _access_logs_bucket(self) -> s3.Bucket:
        # Retained: S3 delivers access logs hours late, so a bucket emptied just before
        # `cdk destroy` may not be empty any more when CloudFormation deletes it. Logs expire.
        # It logs nothing itself (that would log each delivery); cdk-nag's AwsSolutions-S1
        # accepts a bucket that is the access-log target of another bucket in the stack.
        return s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption log delivery supports
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(ACCESS_LOGS_EXPIRY_DAYS),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )


def _lifecycle_rule(rule: LifecycleRule) -> s3.LifecycleRule:
    return s3.LifecycleRule(
        id=rule.id,
        prefix=rule.prefix or None,
        expiration=Duration.days(rule.expiration_days) if rule.expiration_days else None,
        abort_incomplete_multipart_upload_after=(
            Duration.days(rule.abort_multipart_days) if rule.abort_multipart_days else None
        ),
    )
