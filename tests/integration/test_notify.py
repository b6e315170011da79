"""The notify function on moto: real-shaped alarm state change events for the alarms the reconciler created
(single metric, metric math, anomaly detection; ALARM, OK, INSUFFICIENT_DATA) and RUM Guard's own events as its
bus delivered them go through ``handlers.notify``; what people would receive is read back from an SQS queue
subscribed to the SNS topic. The per-minute digest runs on the real table, with a fake clock whose sleep lets
other invocations run meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from aws_lambda_powertools import Logger

from rumguard.adapters.cloudwatch import CloudWatchAlarms
from rumguard.adapters.digests import DynamoDigestStore
from rumguard.adapters.sns import SnsTopic, TopicNotFoundError
from rumguard.alarms import AlarmReconciler, AlarmThresholds
from rumguard.guard import IDENTITY_BLOCKED, IDENTITY_UNBLOCKED, LOCKDOWN_CHANGED, Guard
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.context import LocalFunction
from rumguard.monitors import Audience, Monitor
from rumguard.notifications import DigestPendingError, Notification, parse_time
from rumguard.runtime import NotifyApp, aws_guard
from rumguard.settings import IngestSettings, NotifySettings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

PREFIX = "rumguard"
OPERATOR = "arn:aws:iam::123456789012:user/ops"


@dataclass(frozen=True)
class Inbox:
    """The topic, and the queue subscribed to it (what a person's e-mail would show)."""

    topic_arn: str
    queue_url: str
    aws: EmbeddedAws

    def messages(self) -> list[dict[str, Any]]:
        """Every notification published so far (drains the queue): subject, message, attributes."""
        found: list[dict[str, Any]] = []
        while True:
            response = self.aws.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            batch = response.get("Messages", [])
            if not batch:
                return found
            for message in batch:
                envelope = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                found.append({"subject": envelope["Subject"], "message": envelope["Message"], "attributes": attributes})
                self.aws.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def inbox(aws: EmbeddedAws) -> Inbox:
    sns = aws.session.client("sns")
    topic_arn = sns.create_topic(Name="rumguard-notifications")["TopicArn"]
    queue_url = aws.sqs.create_queue(QueueName="rumguard-inbox")["QueueUrl"]
    queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return Inbox(topic_arn, queue_url, aws)


def notify_environment(aws: EmbeddedAws, inbox: Inbox, **settings: str) -> dict[str, str]:
    return {
        "RUMGUARD_TABLE": aws.table_name,
        "NOTIFY_TOPIC_ARN": inbox.topic_arn,
        "ALARM_PREFIX": PREFIX,
        "DASHBOARD_NAME": "rumguard",
        "AWS_REGION": aws.region,
        "AWS_DEFAULT_REGION": aws.region,
        "POWERTOOLS_TRACE_DISABLED": "1",
        **settings,
    }


@pytest.fixture
def notify(aws: EmbeddedAws, inbox: Inbox) -> LocalFunction:
    """``handlers.notify`` with one-second digest windows (so an opener waits about a second, not a minute)."""
    environ = notify_environment(aws, inbox, DIGEST_WINDOW_SECONDS="1")
    return LocalFunction("handlers.notify", environ, function_name="rumguard-notify", log_level="INFO")


@pytest.fixture
def described(aws: EmbeddedAws) -> dict[str, dict[str, Any]]:
    """The alarms the reconciler published for the two monitors, as DescribeAlarms returns them."""
    cloudwatch: CloudWatchClient = aws.session.client("cloudwatch")
    monitors = (Monitor(GUEST_MONITOR, Audience.GUEST), Monitor(SIGNED_IN_MONITOR, Audience.SIGNED_IN))
    AlarmReconciler(CloudWatchAlarms(cloudwatch), PREFIX, monitors, AlarmThresholds()).reconcile()
    return {a["AlarmName"]: dict(a) for a in cloudwatch.describe_alarms(AlarmNamePrefix=f"{PREFIX}/")["MetricAlarms"]}


@pytest.fixture
def guard(aws: EmbeddedAws) -> Guard:
    settings = IngestSettings.from_environ(aws.ingest_environment())
    return aws_guard(settings, settings.guard_config(settings.detection()))


# --- alarm state changes ----------------------------------------------------------------------------------
def event_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """``configuration.metrics`` as CloudWatch writes it into the event, from the alarm's definition."""

    def stat(metric: dict[str, Any], period: int, statistic: str) -> dict[str, Any]:
        return {
            "metric": {
                "dimensions": {d["Name"]: d["Value"] for d in metric["Dimensions"]},
                "name": metric["MetricName"],
                "namespace": metric["Namespace"],
            },
            "period": period,
            "stat": statistic,
        }

    if alarm.get("MetricName"):
        return [
            {
                "id": "30b6c6b2-a864-43a2-4877-c09a1afc3b87",
                "metricStat": stat(alarm, alarm["Period"], alarm["Statistic"]),
                "returnData": True,
            }
        ]
    out = []
    for query in alarm["Metrics"]:
        item: dict[str, Any] = {"id": query["Id"], "returnData": query.get("ReturnData", True)}
        if "Expression" in query:
            item["expression"] = query["Expression"]
            if "Label" in query:
                item["label"] = query["Label"]
        else:
            item["metricStat"] = stat(
                query["MetricStat"]["Metric"], query["MetricStat"]["Period"], query["MetricStat"]["Stat"]
            )
        out.append(item)
    return out


def state_change(
    alarm: dict[str, Any],
    value: str,
    reason: str,
    data: dict[str, Any],
    *,
    previous: str = "OK",
    previous_reason: str = "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (02/01/26 16:44:00)] was not "
    "greater than the threshold (10.0) (minimum 1 datapoint for ALARM -> OK transition).",
) -> dict[str, Any]:
    """A ``CloudWatch Alarm State Change`` event as CloudWatch sends it to EventBridge for this alarm."""
    return {
        "version": "0",
        "id": "2dde0eb1-528b-d2d5-9ca6-6d590caf2329",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-01-02T17:04:40Z",
        "region": "us-east-1",
        "resources": [alarm["AlarmArn"]],
        "detail": {
            "alarmName": alarm["AlarmName"],
            "configuration": {"description": alarm["AlarmDescription"], "metrics": event_metrics(alarm)},
            "previousState": {
                "reason": previous_reason,
                "reasonData": json.dumps({"version": "1.0", "queryDate": "2026-01-02T16:49:40.985+0000"}),
                "timestamp": "2026-01-02T16:49:40.987+0000",
                "value": previous,
            },
            "state": {
                "reason": reason,
                "reasonData": json.dumps(data),
                "timestamp": "2026-01-02T17:04:40.989+0000",
                "value": value,
            },
        },
    }


REASON_DATA = {
    "version": "1.0",
    "queryDate": "2026-01-02T17:04:40.985+0000",
    "startDate": "2026-01-02T16:59:00.000+0000",
}
CASES: list[tuple[str, str, str, str, dict[str, Any], str, list[str]]] = [
    (
        "single metric, ALARM",
        f"{GUEST_MONITOR}/blocks",
        "ALARM",
        "Threshold Crossed: 1 out of the last 1 datapoints [23.0 (02/01/26 16:59:00)] was greater than the threshold "
        "(10.0) (minimum 1 datapoint for OK -> ALARM transition).",
        REASON_DATA | {"statistic": "Sum", "period": 300, "recentDatapoints": [23.0], "threshold": 10.0},
        f"[RUM Guard] ALARM: Abuse wave - app monitor {GUEST_MONITOR}",
        ["Value:     23 identities blocked in 5 min (alarm when more than 10)", "GET /blocks"],
    ),
    (
        "metric math, ALARM",
        f"{SIGNED_IN_MONITOR}/http-error-rate",
        "ALARM",
        "Threshold Crossed: 2 out of the last 3 datapoints [31.2 (02/01/26 16:59:00), 14.0 (02/01/26 16:54:00)] was "
        "greater than the threshold (10.0) (minimum 2 datapoints for OK -> ALARM transition).",
        REASON_DATA | {"period": 300, "recentDatapoints": [2.0, 14.0, 31.2], "threshold": 10.0},
        f"[RUM Guard] ALARM: HTTP error rate - app monitor {SIGNED_IN_MONITOR}",
        ["Value:     31.2 failed HTTP requests per 100 events (alarm when more than 10)"],
    ),
    (
        "anomaly detection, ALARM",
        f"{GUEST_MONITOR}/traffic-surge",
        "ALARM",
        "Thresholds Crossed: 2 out of the last 3 datapoints [18211.0 (02/01/26 16:59:00), 9100.0 (02/01/26 "
        "16:54:00)] was greater than the upper thresholds [4101.5] (minimum 2 datapoints for OK -> ALARM transition).",
        REASON_DATA
        | {
            "period": 300,
            "recentDatapoints": [3900.0, 9100.0, 18211.0],
            "recentLowerThresholds": [1500.0, 1510.0, 1522.0],
            "recentUpperThresholds": [4000.0, 4050.0, 4101.5],
        },
        f"[RUM Guard] ALARM: Guest traffic surge - app monitor {GUEST_MONITOR}",
        ["Value:     18,211 guest events in 5 min, outside the expected band of 1,522 to 4,102"],
    ),
    (
        "single metric, OK",
        "policy-capacity",
        "OK",
        "Threshold Crossed: 1 out of the last 1 datapoints [41.0 (02/01/26 16:59:00)] was not greater than the "
        "threshold (80.0) (minimum 1 datapoint for ALARM -> OK transition).",
        REASON_DATA | {"statistic": "Maximum", "period": 300, "recentDatapoints": [41.0], "threshold": 80.0},
        "[RUM Guard] OK: Deny policy capacity - all guest monitors (AppMonitor=all)",
        [
            "is OK again (was ALARM)",
            "Value:     41 % of the guest role's inline policy space (alarm when more than 80)",
        ],
    ),
    (
        "metric math, INSUFFICIENT_DATA",
        f"{GUEST_MONITOR}/js-error-rate",
        "INSUFFICIENT_DATA",
        "Insufficient Data: 3 datapoints were unknown.",
        REASON_DATA | {"period": 300, "recentDatapoints": [], "threshold": 5.0},
        f"[RUM Guard] INSUFFICIENT DATA: JS error rate - app monitor {GUEST_MONITOR}",
        ["too little data to evaluate it (was OK)", "Value:     no data points in the evaluated periods"],
    ),
]


@pytest.mark.parametrize(
    ("name", "value", "reason", "data", "subject", "lines"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_alarm_transition_is_one_readable_message(
    notify: LocalFunction,
    inbox: Inbox,
    described: dict[str, dict[str, Any]],
    name: str,
    value: str,
    reason: str,
    data: dict[str, Any],
    subject: str,
    lines: list[str],
) -> None:
    alarm = described[f"{PREFIX}/{name}"]
    previous = "ALARM" if value == "OK" else "OK"
    result = notify.invoke(state_change(alarm, value, reason, data, previous=previous)).unwrap()
    assert result["published"] and result["subject"] == subject
    (message,) = inbox.messages()
    assert message["subject"] == subject and len(subject) < 100
    text = message["message"]
    for line in lines:
        assert line in text
    assert "Since:     2026-01-02 17:04:40 UTC" in text
    assert f"alarmsV2:alarm/{PREFIX}%2F" in text and "#dashboards/dashboard/rumguard" in text
    assert message["attributes"]["rumguard.kind"] == "alarm" and message["attributes"]["rumguard.state"] == value


def test_a_new_alarms_first_evaluation_and_other_stacks_alarms_send_nothing(
    notify: LocalFunction, inbox: Inbox, described: dict[str, dict[str, Any]]
) -> None:
    alarm = described[f"{PREFIX}/{GUEST_MONITOR}/blocks"]
    ok = REASON_DATA | {"statistic": "Sum", "period": 300, "recentDatapoints": [0.0], "threshold": 10.0}
    first = state_change(
        alarm,
        "OK",
        "Threshold Crossed: ...",
        ok,
        previous="INSUFFICIENT_DATA",
        previous_reason="Unchecked: Initial alarm creation",
    )
    assert notify.invoke(first).unwrap()["published"] is None
    foreign = state_change(alarm | {"AlarmName": "rumguard-prod/x/blocks"}, "ALARM", "Threshold Crossed: ...", ok)
    assert notify.invoke(foreign).unwrap()["published"] is None
    assert notify.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}).unwrap() == {
        "route": "ignore"
    }
    assert inbox.messages() == []


# --- RUM Guard's own events, as its bus delivers them -----------------------------------------------------
def test_blocks_unblocks_and_lockdown_reach_people(
    aws: EmbeddedAws, guard: Guard, notify: LocalFunction, inbox: Inbox
) -> None:
    identity = aws.new_guest()
    guard.block(identity, reason="scraping the catalogue", actor=OPERATOR, app_monitor=GUEST_MONITOR)
    (blocked,) = aws.published_events()
    assert blocked["detail-type"] == IDENTITY_BLOCKED
    result = notify.invoke(blocked).unwrap()
    assert result["opener"] and result["sent"] == [result["window"]]
    (message,) = inbox.messages()
    assert message["subject"] == f"[RUM Guard] 1 identity blocked on {GUEST_MONITOR}"
    assert f"  - {identity}: scraping the catalogue (rule manual, by {OPERATOR}); until " in message["message"]
    assert message["attributes"] == {
        "rumguard.kind": "digest",
        "rumguard.state": "BLOCKS",
        "rumguard.monitor": GUEST_MONITOR,
    }

    # EventBridge delivers at least once: the same event again sends nothing more.
    again = notify.invoke(blocked).unwrap()
    assert again["status"] == "duplicate" and again["sent"] == []
    assert inbox.messages() == []

    guard.unblock(identity, reason="a false alarm", actor=OPERATOR)
    (unblocked,) = aws.published_events()
    assert unblocked["detail-type"] == IDENTITY_UNBLOCKED
    notify.invoke(unblocked).unwrap()
    (message,) = inbox.messages()
    assert message["subject"] == f"[RUM Guard] 1 identity unblocked on {GUEST_MONITOR}"
    assert f"  - {identity}: a false alarm (rule manual, by {OPERATOR})" in message["message"]

    guard.set_lockdown(True, reason="bot wave", actor=OPERATOR, app_monitor=GUEST_MONITOR)
    (lockdown,) = aws.published_events()
    assert lockdown["detail-type"] == LOCKDOWN_CHANGED
    assert notify.invoke(lockdown).unwrap()["route"] == "lockdown"
    (message,) = inbox.messages()
    assert message["subject"] == "[RUM Guard] Guest lockdown ON"
    assert "Reason:    bot wave" in message["message"] and f"By:        {OPERATOR}" in message["message"]


# --- the digest on the real table, invocations interleaved by a fake clock -------------------------------
class Clock:
    """A clock a sleep advances; ``during_sleep`` is what other invocations do meanwhile."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.during_sleep: list[Callable[[], None]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        while self.during_sleep:
            self.during_sleep.pop(0)()
        self.now += seconds


@pytest.fixture
def app_on(aws: EmbeddedAws, inbox: Inbox) -> Iterator[Callable[[Clock], NotifyApp]]:
    """A ``NotifyApp`` on the real topic and table, on a given clock (one-minute windows)."""
    settings = NotifySettings.from_environ(notify_environment(aws, inbox))
    sns = aws.session.client("sns")

    def build(clock: Clock) -> NotifyApp:
        return NotifyApp(
            settings,
            SnsTopic(sns, settings.topic_arn),
            DynamoDigestStore(aws.dynamodb, aws.table_name),
            Logger(service="test-notify"),
            region=aws.region,
            clock=clock,
            sleep=clock.sleep,
        )

    yield build


def block_events(aws: EmbeddedAws, guard: Guard, count: int) -> list[dict[str, Any]]:
    for _ in range(count):
        guard.block(aws.new_guest(), reason="bot", actor=OPERATOR, app_monitor=GUEST_MONITOR)
    events = aws.published_events()
    assert [e["detail-type"] for e in events] == [IDENTITY_BLOCKED] * count
    return events


def test_a_burst_of_blocks_is_one_message_per_minute_listing_every_identity(
    aws: EmbeddedAws, guard: Guard, inbox: Inbox, app_on: Callable[[Clock], NotifyApp]
) -> None:
    events = block_events(aws, guard, 4)
    clock = Clock(now=_time(events[0]) + 1)
    app = app_on(clock)
    results: list[dict[str, Any]] = []
    clock.during_sleep = [handling(app, event, results) for event in events[1:]]
    first = app.handle(events[0], None)
    assert first["opener"] and first["sent"] == [first["window"]]
    assert [r["opener"] for r in results] == [False] * 3 and all(r["sent"] == [] for r in results)
    (message,) = inbox.messages()
    assert message["subject"] == f"[RUM Guard] 4 identities blocked on {GUEST_MONITOR}"
    for event in events:
        assert event["detail"]["identityId"] in message["message"]
    item = aws.dynamodb.get_item(
        TableName=aws.table_name,
        Key={"pk": {"S": f"notify#digest#{GUEST_MONITOR}"}, "sk": {"S": f"0060#{first['window']:012d}"}},
    )["Item"]
    assert "sentAt" in item and "entries" not in item and len(item["entryIds"]["SS"]) == 4 and "ttl" in item


def handling(app: NotifyApp, event: dict[str, Any], results: list[dict[str, Any]]) -> Callable[[], None]:
    """Another invocation, handling ``event`` now."""
    return lambda: results.append(app.handle(event, None))


def _time(event: dict[str, Any]) -> float:
    parsed = parse_time(event["time"])
    assert parsed is not None
    return parsed.timestamp()


def test_a_window_left_by_its_opener_is_sent_by_the_retry_or_the_next_event(
    aws: EmbeddedAws, guard: Guard, inbox: Inbox, app_on: Callable[[Clock], NotifyApp]
) -> None:
    first, second = block_events(aws, guard, 2)
    clock = Clock(now=_time(first) + 1)
    app = app_on(clock)

    class ShortContext:
        def get_remaining_time_in_millis(self) -> int:
            return 3_000

    with pytest.raises(DigestPendingError):
        app.handle(first, ShortContext())  # type: ignore[arg-type]
    assert inbox.messages() == []
    clock.now += 120  # Lambda retries the event a couple of minutes later; meanwhile another block came in
    later = app.handle(second | {"time": _iso(clock.now)}, None)
    assert later["opener"] and len(later["sent"]) == 2
    subjects = [m["subject"] for m in inbox.messages()]
    assert subjects == [f"[RUM Guard] 1 identity blocked on {GUEST_MONITOR}"] * 2
    retry = app.handle(first, None)
    assert retry["status"] == "duplicate" and retry["sent"] == []
    assert inbox.messages() == []


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_missing_topic_fails_the_invocation(aws: EmbeddedAws) -> None:
    topic = SnsTopic(aws.session.client("sns"), "arn:aws:sns:us-east-1:123456789012:nope")
    with pytest.raises(TopicNotFoundError, match="nope"):
        topic.publish(Notification("subject", "message"))
