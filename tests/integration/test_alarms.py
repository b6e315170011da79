"""The per-monitor alarms on moto's CloudWatch: the reconciler and the real sweeper handler create exactly the
expected alarms (names, metrics, dimensions, thresholds, no actions, tags), update them when the settings
change, repair hand edits, delete those of a removed monitor and nothing else, and a second run writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from rumguard.adapters.cloudwatch import AlarmQuotaError, CloudWatchAlarms
from rumguard.adapters.dynamodb import DynamoDecisionStore
from rumguard.alarms import AlarmReconciler, AlarmThresholds, desired_alarms
from rumguard.guard import GuardConfig
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.context import LocalFunction
from rumguard.monitors import Audience, Monitor
from rumguard.runtime import SweeperApp, aws_guard
from rumguard.settings import SettingsError, SweeperSettings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

PREFIX = "rumguard"
GUEST_KINDS = ["traffic-surge", "js-error-rate", "http-error-rate", "rejected-events", "blocks", "safety-valve"]
HEALTH_KINDS = ["js-error-rate", "http-error-rate", "rejected-events"]
EXPECTED = sorted(
    [f"{PREFIX}/{GUEST_MONITOR}/{kind}" for kind in GUEST_KINDS]
    + [f"{PREFIX}/{SIGNED_IN_MONITOR}/{kind}" for kind in HEALTH_KINDS]
    + [f"{PREFIX}/policy-capacity", f"{PREFIX}/unenforced-blocks", f"{PREFIX}/unmatched-events"]
)
MONITORS = (Monitor(GUEST_MONITOR, Audience.GUEST), Monitor(SIGNED_IN_MONITOR, Audience.SIGNED_IN))
SCHEDULED: dict[str, Any] = {
    "version": "0",
    "id": "5e1c1d33-0000-4000-8000-0000000000a1",
    "detail-type": "Scheduled Event",
    "source": "aws.scheduler",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}


@pytest.fixture
def cloudwatch(aws: EmbeddedAws) -> CloudWatchClient:
    client: CloudWatchClient = aws.session.client("cloudwatch")
    return client


@pytest.fixture
def store(cloudwatch: CloudWatchClient) -> CloudWatchAlarms:
    return CloudWatchAlarms(cloudwatch)


def reconciler(store: CloudWatchAlarms, monitors: tuple[Monitor, ...] = MONITORS, **thresholds: Any) -> AlarmReconciler:
    return AlarmReconciler(store, PREFIX, monitors, AlarmThresholds(**thresholds))


def alarms(cloudwatch: CloudWatchClient) -> dict[str, dict[str, Any]]:
    """Every metric alarm in the account, by name, as DescribeAlarms gives it."""
    found: dict[str, dict[str, Any]] = {}
    for page in cloudwatch.get_paginator("describe_alarms").paginate():
        for alarm in page.get("MetricAlarms", []):
            found[alarm["AlarmName"]] = dict(alarm)
    return found


def tags(cloudwatch: CloudWatchClient, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in cloudwatch.list_tags_for_resource(ResourceARN=arn)["Tags"]}


def dims(dimensions: Any) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in dimensions}


def test_the_reconciler_creates_exactly_the_expected_alarms(
    store: CloudWatchAlarms, cloudwatch: CloudWatchClient
) -> None:
    report = reconciler(store).reconcile()
    found = alarms(cloudwatch)
    assert sorted(found) == EXPECTED == sorted(report.created)
    for name, alarm in found.items():
        assert (alarm["AlarmActions"], alarm["OKActions"], alarm["InsufficientDataActions"]) == ([], [], [])
        assert alarm["TreatMissingData"] == "notBreaching"
        kind = name.rsplit("/", 1)[1]
        monitor = name.split("/")[1] if name.count("/") == 2 else {"unmatched-events": "unmatched"}.get(kind, "all")
        assert tags(cloudwatch, alarm["AlarmArn"]) == {
            "rumguard:managed": "true",
            "rumguard:owner": PREFIX,
            "rumguard:monitor": monitor,
            "rumguard:kind": kind,
        }
    surge = found[f"{PREFIX}/{GUEST_MONITOR}/traffic-surge"]
    assert surge["ComparisonOperator"] == "GreaterThanUpperThreshold" and surge["ThresholdMetricId"] == "expected"
    events, band = surge["Metrics"]
    assert events["MetricStat"]["Metric"]["MetricName"] == "Events"
    assert dims(events["MetricStat"]["Metric"]["Dimensions"]) == {"AppMonitor": GUEST_MONITOR, "Audience": "guest"}
    assert band["Expression"] == "ANOMALY_DETECTION_BAND(events, 3)"
    js = found[f"{PREFIX}/{SIGNED_IN_MONITOR}/js-error-rate"]
    assert [q.get("Expression") for q in js["Metrics"]] == [None, None, "IF(volume >= 20, 100 * problems / volume, 0)"]
    assert dims(js["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"]) == {
        "AppMonitor": SIGNED_IN_MONITOR,
        "Audience": "signed-in",
    }
    assert (js["Threshold"], js["EvaluationPeriods"], js["DatapointsToAlarm"]) == (5.0, 3, 2)
    blocks = found[f"{PREFIX}/{GUEST_MONITOR}/blocks"]
    assert (blocks["MetricName"], blocks["Statistic"], blocks["Period"], blocks["Threshold"]) == (
        "IdentitiesBlocked",
        "Sum",
        300,
        10.0,
    )
    capacity = found[f"{PREFIX}/policy-capacity"]
    assert dims(capacity["Dimensions"]) == {"AppMonitor": "all", "Audience": "guest"}
    assert (capacity["MetricName"], capacity["Statistic"], capacity["Threshold"]) == (
        "PolicyCapacityUsed",
        "Maximum",
        80.0,
    )
    assert not any(name.startswith(f"{PREFIX}/{SIGNED_IN_MONITOR}/") for name in found if "blocks" in name)


def test_a_second_run_changes_nothing(store: CloudWatchAlarms, cloudwatch: CloudWatchClient) -> None:
    reconciler(store).reconcile()
    before, writes = alarms(cloudwatch), store.writes
    report = reconciler(store).reconcile()
    assert store.writes == writes
    assert (report.created, report.updated, report.retagged, report.deleted) == ([], {}, [], [])
    assert report.unchanged == len(EXPECTED)
    assert alarms(cloudwatch) == before


def test_changed_thresholds_update_the_alarms_they_concern(
    store: CloudWatchAlarms, cloudwatch: CloudWatchClient
) -> None:
    reconciler(store).reconcile()
    writes = store.writes
    report = reconciler(store, js_error_rate=2.5, policy_capacity=90).reconcile()
    assert sorted(report.updated) == [
        f"{PREFIX}/{SIGNED_IN_MONITOR}/js-error-rate",
        f"{PREFIX}/{GUEST_MONITOR}/js-error-rate",
        f"{PREFIX}/policy-capacity",
    ]
    assert store.writes == writes + 3
    found = alarms(cloudwatch)
    assert found[f"{PREFIX}/{GUEST_MONITOR}/js-error-rate"]["Threshold"] == 2.5
    assert found[f"{PREFIX}/policy-capacity"]["Threshold"] == 90.0
    # Tags survive an update (PutMetricAlarm ignores tags on update; none are sent).
    assert tags(cloudwatch, found[f"{PREFIX}/policy-capacity"]["AlarmArn"])["rumguard:managed"] == "true"


def test_hand_edits_and_added_actions_are_undone(store: CloudWatchAlarms, cloudwatch: CloudWatchClient) -> None:
    reconciler(store).reconcile()
    name = f"{PREFIX}/{GUEST_MONITOR}/blocks"
    spec = {s.name: s for s in reconciler(store).desired()}[name]
    edited = dict(spec.request) | {
        "Threshold": 1000.0,
        "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:pager"],
    }
    cloudwatch.put_metric_alarm(**edited)
    report = reconciler(store).reconcile()
    assert report.updated == {name: ["AlarmActions", "Threshold"]}
    alarm = alarms(cloudwatch)[name]
    assert (alarm["Threshold"], alarm["AlarmActions"]) == (10.0, [])


def test_a_removed_monitor_loses_its_alarms_and_no_other_alarm_is_touched(
    store: CloudWatchAlarms, cloudwatch: CloudWatchClient
) -> None:
    reconciler(store).reconcile()
    # Under the prefix but not RUM Guard's own: a template pipeline alarm; another stack's managed alarm.
    pipeline: dict[str, Any] = {
        "AlarmName": f"{PREFIX}/ingest-errors",
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": "rumguard-ingest"}],
        "Statistic": "Sum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    cloudwatch.put_metric_alarm(**pipeline)
    other = pipeline | {"AlarmName": f"{PREFIX}/Gone/js-error-rate"}
    cloudwatch.put_metric_alarm(
        **other,
        Tags=[{"Key": "rumguard:managed", "Value": "true"}, {"Key": "rumguard:owner", "Value": "rumguard-prod"}],
    )
    report = reconciler(store, monitors=(MONITORS[0],)).reconcile()
    assert sorted(report.deleted) == sorted(f"{PREFIX}/{SIGNED_IN_MONITOR}/{kind}" for kind in HEALTH_KINDS)
    found = alarms(cloudwatch)
    assert f"{PREFIX}/ingest-errors" in found and f"{PREFIX}/Gone/js-error-rate" in found
    assert not any(SIGNED_IN_MONITOR in name for name in found)
    assert report.created == [] and report.updated == {}


# --- through the sweeper handler --------------------------------------------------------------------------
@pytest.fixture
def sweeper_with_alarms(aws: EmbeddedAws) -> Iterator[Any]:
    """``handlers.sweeper`` imported fresh with ``ALARM_PREFIX`` and the given settings."""

    def make(**settings: str) -> LocalFunction:
        environ = aws.sweeper_environment() | {"ALARM_PREFIX": PREFIX} | settings
        return LocalFunction("handlers.sweeper", environ, function_name="rumguard-sweeper", log_level="INFO")

    yield make


def test_the_sweeper_publishes_the_alarms_and_keeps_them_in_line(
    sweeper_with_alarms: Any, cloudwatch: CloudWatchClient
) -> None:
    sweeper = sweeper_with_alarms()
    first = sweeper.invoke(SCHEDULED).unwrap()
    assert sorted(first["alarms"]["created"]) == EXPECTED
    assert sorted(alarms(cloudwatch)) == EXPECTED
    assert "expired" in first and "converged" in first  # the sweep itself still reports as before
    second = sweeper.invoke(SCHEDULED).unwrap()
    assert second["alarms"] == {"created": [], "updated": {}, "retagged": [], "deleted": [], "unchanged": len(EXPECTED)}

    changed = sweeper_with_alarms(BLOCKS_ALARM_LIMIT="25", SIGNED_IN_MONITORS="").invoke(SCHEDULED).unwrap()
    assert list(changed["alarms"]["updated"]) == [f"{PREFIX}/{GUEST_MONITOR}/blocks"]
    assert sorted(changed["alarms"]["deleted"]) == sorted(f"{PREFIX}/{SIGNED_IN_MONITOR}/{k}" for k in HEALTH_KINDS)
    assert alarms(cloudwatch)[f"{PREFIX}/{GUEST_MONITOR}/blocks"]["Threshold"] == 25.0
    guest_only = (Monitor(GUEST_MONITOR, Audience.GUEST),)
    assert sorted(alarms(cloudwatch)) == sorted(s.name for s in desired_alarms(PREFIX, guest_only, AlarmThresholds()))


def test_without_an_alarm_prefix_the_sweeper_publishes_no_alarms_or_refuses_to_start(
    aws: EmbeddedAws, cloudwatch: CloudWatchClient
) -> None:
    environ = {k: v for k, v in aws.sweeper_environment().items() if k != "ALARM_PREFIX"}
    if SweeperSettings.model_fields["alarm_prefix"].is_required():
        with pytest.raises(SettingsError, match="ALARM_PREFIX"):
            SweeperSettings.from_environ(environ)
        return
    result = LocalFunction("handlers.sweeper", environ, function_name="rumguard-sweeper").invoke(SCHEDULED).unwrap()
    assert "alarms" not in result
    assert alarms(cloudwatch) == {}


def test_a_cloudwatch_failure_fails_the_sweep_only_after_its_own_work(aws: EmbeddedAws) -> None:
    client: CloudWatchClient = aws.session.client("cloudwatch")
    stubber = Stubber(client)
    stubber.add_client_error("describe_alarms", service_error_code="AccessDenied", http_status_code=403)
    settings = SweeperSettings.from_environ(aws.sweeper_environment() | {"ALARM_PREFIX": PREFIX})
    guard = aws_guard(settings, GuardConfig(mode=settings.mode))
    metrics = Metrics(namespace="RumGuard")
    app = SweeperApp(guard, metrics, Logger(service="test-sweeper"), reconciler(CloudWatchAlarms(client)))
    try:
        with stubber, pytest.raises(ClientError, match="AccessDenied"):
            app.handle(SCHEDULED, None)
        # The sweep ran first: the deny policy was reconciled and recorded as applied.
        assert DynamoDecisionStore(aws.dynamodb, aws.table_name).policy_versions() == (0, 0)
        assert "PolicyCapacityUsed" in metrics.metric_set
    finally:
        metrics.clear_metrics()


def test_cloudwatch_errors_name_the_alarm(cloudwatch: CloudWatchClient) -> None:
    spec = reconciler(CloudWatchAlarms(cloudwatch)).desired()[0]
    stubber = Stubber(cloudwatch)
    stubber.add_client_error("put_metric_alarm", service_error_code="LimitExceeded", http_status_code=400)
    with stubber, pytest.raises(AlarmQuotaError, match=spec.name) as caught:
        CloudWatchAlarms(cloudwatch).put(spec, create=True)
    assert caught.value.code == "LimitExceeded"
