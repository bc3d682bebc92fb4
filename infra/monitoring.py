"""The stack's monitoring, from the contract (`trainer.contract.monitoring`): a CloudWatch
dashboard (learning curves per pipeline, executions, Lambda errors / throttles / durations,
inference latency and rows), the alarms, and the SNS topic they notify.

The topic is encrypted with a key of the stack (rotated), which CloudWatch may use to publish;
it refuses non-TLS publishers. An email subscription is a deploy-time setting:
`npx cdk deploy -c alarm_email=ops@example.com` (checked by
`trainer.contract.monitoring.alarm_email`); the address must confirm it once. Without it the
topic is there for any other subscriber (chat, a pager) to be added.

The learning curves are SEARCH expressions over the `[service, pipeline]` series: pipelines are
created at run time, so the dashboard finds them rather than listing them. Alarms cannot use
SEARCH; they watch the stack-wide `[service]` series and the AWS metrics of the stack's own
machines and functions.
"""

from collections.abc import Mapping
from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from trainer.contract import monitoring, names
from trainer.contract.monitoring import AlarmSpec, WidgetSpec

STATES_NAMESPACE: Final = "AWS/States"
LAMBDA_NAMESPACE: Final = "AWS/Lambda"
COMPARISONS: Final = {
    "GreaterThanOrEqualToThreshold": cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    "GreaterThanThreshold": cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
}
GRAPH_PERIOD: Final = Duration.minutes(5)
WIDGET_WIDTH: Final = 24  # the dashboard's grid width, shared by each row's graphs


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        functions: Mapping[str, lambda_.IFunction],
        machines: Mapping[str, sfn.IStateMachine],
        alarm_email: object = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._functions = functions
        self._machines = machines
        self.namespace = monitoring.metrics_namespace(prefix)
        email = monitoring.alarm_email(alarm_email)
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"{prefix}: encrypts the alarm topic's messages",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{prefix} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: dict[str, cw.Alarm] = {}
        for spec in monitoring.alarms(machines):
            alarm = cw.Alarm(
                self,
                spec.id,
                alarm_name=f"{prefix}-{spec.id}",
                alarm_description=spec.description,
                metric=self._alarm_metric(spec),
                threshold=spec.threshold,
                comparison_operator=COMPARISONS[spec.comparison],
                evaluation_periods=spec.evaluation_periods,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            self.alarms[spec.id] = alarm
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=prefix)
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=WIDGET_WIDTH, height=3
            )
        )
        for row in monitoring.DASHBOARD:
            width = WIDGET_WIDTH // len(row)
            self.dashboard.add_widgets(*(self._graph(widget, width) for widget in row))

    # --- metrics -------------------------------------------------------------------------------

    def _alarm_metric(self, spec: AlarmSpec) -> cw.IMetric:
        period = Duration.seconds(spec.period_s)
        if spec.source == "states":
            assert spec.subject is not None
            return self._machine_metric(spec.subject, spec.metric, spec.statistic, period, False)
        if spec.source == "lambda":
            assert spec.subject is not None
            return self._function_metric(spec.subject, spec.metric, spec.statistic, period, False)
        return self._custom(spec.metric, spec.statistic, period, dict(spec.dimensions or {}))

    def _machine_metric(
        self,
        machine: str,
        metric: str,
        statistic: str,
        period: Duration = GRAPH_PERIOD,
        labelled: bool = True,  # a label turns an alarm's metric into a metric-math query
    ) -> cw.Metric:
        return cw.Metric(
            namespace=STATES_NAMESPACE,
            metric_name=metric,
            dimensions_map={"StateMachineArn": self._machines[machine].state_machine_arn},
            statistic=statistic,
            period=period,
            label=f"{machine} {metric.removeprefix('Executions')}" if labelled else None,
        )

    def _function_metric(
        self,
        function: str,
        metric: str,
        statistic: str,
        period: Duration = GRAPH_PERIOD,
        labelled: bool = True,
    ) -> cw.Metric:
        return cw.Metric(
            namespace=LAMBDA_NAMESPACE,
            metric_name=metric,
            dimensions_map={"FunctionName": self._functions[function].function_name},
            statistic=statistic,
            period=period,
            label=function if labelled else None,
        )

    def _custom(
        self, metric: str, statistic: str, period: Duration, dimensions: dict[str, str]
    ) -> cw.Metric:
        return cw.Metric(
            namespace=self.namespace,
            metric_name=metric,
            dimensions_map={monitoring.SERVICE: names.SERVICE_NAME, **dimensions},
            statistic=statistic,
            period=period,
        )

    def per_pipeline_search(self, metric: str, statistic: str) -> str:
        """One line per pipeline: a SEARCH over the `[service, pipeline]` series of ``metric``."""
        schema = ",".join((self.namespace, monitoring.SERVICE, monitoring.PIPELINE))
        return (
            f"SEARCH('{{{schema}}} MetricName=\"{metric}\"', '{statistic}', "
            f"{int(GRAPH_PERIOD.to_seconds())})"
        )

    # --- the dashboard -------------------------------------------------------------------------

    def _graph(self, widget: WidgetSpec, width: int) -> cw.GraphWidget:
        lines: list[cw.IMetric]
        if widget.graph == "per_pipeline":
            lines = [
                cw.MathExpression(
                    expression=self.per_pipeline_search(metric, widget.statistic),
                    using_metrics={},
                    label="",
                    period=GRAPH_PERIOD,
                )
                for metric in widget.metrics
            ]
        elif widget.graph == "executions":
            lines = [
                self._machine_metric(machine, metric, widget.statistic)
                for machine in self._machines
                for metric in widget.metrics
            ]
        elif widget.graph == "lambda":
            lines = [
                self._function_metric(function, metric, widget.statistic)
                for function in self._functions
                for metric in widget.metrics
            ]
        else:  # inference: per entry; the latency at p50 and p99
            statistics = ("p50", "p99") if widget.statistic == "p99" else (widget.statistic,)
            lines = [
                self._custom(metric, statistic, GRAPH_PERIOD, {monitoring.ENTRY: entry}).with_(
                    label=f"{entry} {statistic}"
                )
                for metric in widget.metrics
                for entry in ("online", "batch")
                for statistic in statistics
            ]
        return cw.GraphWidget(title=widget.title, left=lines, width=width, height=6)
