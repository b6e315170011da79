"""The messages people read: alarm state changes (single metric, metric math, anomaly detection; ALARM, OK,
INSUFFICIENT_DATA), lockdown changes, the per-minute digest of identity events, and the digest's protocol of
windows, openers and claims (on an in-memory store and a fake clock; tests/integration runs it on DynamoDB)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from rumguard.alarms import AlarmKind, AlarmThresholds, alarm_name, desired_alarms
from rumguard.guard import BLOCK_STORM, IDENTITY_BLOCKED, IDENTITY_UNBLOCKED, LOCKDOWN_CHANGED
from rumguard.monitors import MonitorDirectory
from rumguard.notifications import (
    MAX_SUBJECT,
    AddResult,
    AddStatus,
    ConsoleLinks,
    Digest,
    Digester,
    DigestOutcome,
    DigestPendingError,
    Notification,
    Route,
    Window,
    alarm_notification,
    digest_entry,
    digest_notification,
    lockdown_notification,
    number,
    parse_time,
    route,
    subject_line,
)

GUEST = "RetailDemoStore_Unauthenticated"
SIGNED_IN = "RetailDemoStore_Authenticated"
PREFIX = "rumguard"
LINKS = ConsoleLinks("us-east-1", "rumguard")
SPECS = {
    s.name: s for s in desired_alarms(PREFIX, MonitorDirectory.from_csv(GUEST, SIGNED_IN).monitors, AlarmThresholds())
}
IDENTITY = "us-east-1:0f9a8b7c-6d5e-4f30-a2b1-c0d9e8f7a6b5"


# --- real-shaped alarm state change events (as in CloudWatch's "Alarm events and EventBridge") ------------
def state_change(
    name: str,
    state: str,
    *,
    previous: str = "OK",
    reason: str = "",
    data: Mapping[str, Any] | None = None,
    previous_reason: str = "Threshold Crossed: no datapoints were received for 1 period.",
) -> dict[str, Any]:
    """A ``CloudWatch Alarm State Change`` event for one of the desired alarms (its configuration as sent)."""
    request = SPECS[name].request if name in SPECS else {}
    metrics: list[dict[str, Any]] = []
    for query in request.get("Metrics", []):
        item: dict[str, Any] = {"id": query["Id"], "returnData": query["ReturnData"]}
        if "Expression" in query:
            item |= {"expression": query["Expression"], "label": query["Label"]}
        else:
            stat, metric = query["MetricStat"], query["MetricStat"]["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            item["metricStat"] = {
                "metric": {"dimensions": dims, "name": metric["MetricName"], "namespace": metric["Namespace"]},
                "period": stat["Period"],
                "stat": stat["Stat"],
            }
        metrics.append(item)
    if "MetricName" in request:
        dims = {d["Name"]: d["Value"] for d in request["Dimensions"]}
        metrics.append(
            {
                "id": "30b6c6b2-a864-43a2-4877-c09a1afc3b87",
                "metricStat": {
                    "metric": {"dimensions": dims, "name": request["MetricName"], "namespace": request["Namespace"]},
                    "period": request["Period"],
                    "stat": request["Statistic"],
                },
                "returnData": True,
            }
        )
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": "123456789012",
        "time": "2026-01-02T17:04:40Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "configuration": {"description": request.get("AlarmDescription", "a pipeline alarm"), "metrics": metrics},
            "previousState": {
                "reason": previous_reason,
                "reasonData": '{"version":"1.0","queryDate":"2026-01-02T16:04:40.985+0000"}',
                "timestamp": "2026-01-02T16:04:40.987+0000",
                "value": previous,
            },
            "state": {
                "reason": reason,
                "reasonData": json.dumps(data or {}),
                "timestamp": "2026-01-02T17:04:40.989+0000",
                "value": state,
            },
        },
    }


def threshold_data(points: list[float], threshold: float, statistic: str | None = "Sum") -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": "1.0",
        "queryDate": "2026-01-02T17:04:40.985+0000",
        "startDate": "2026-01-02T16:49:00.000+0000",
        "period": 300,
        "recentDatapoints": points,
        "threshold": threshold,
    }
    if statistic:
        data["statistic"] = statistic
    return data


def test_a_single_metric_alarm_says_what_where_how_much_since_when_and_links_to_it() -> None:
    name = f"rumguard/{GUEST}/rejected-events"
    event = state_change(
        name,
        "ALARM",
        reason="Threshold Crossed: 1 out of the last 1 datapoints [143.0 (02/01/26 16:59:00)] was greater than "
        "the threshold (100.0) (minimum 1 datapoint for OK -> ALARM transition).",
        data=threshold_data([143.0], 100.0),
    )
    n = alarm_notification(event, PREFIX, LINKS)
    assert n is not None
    assert n.subject == f"[RUM Guard] ALARM: Rejected events - app monitor {GUEST}"
    assert f"Rejected events on app monitor {GUEST} is in ALARM (was OK)." in n.message
    assert "Value:     143 rejected events in 5 min (alarm when more than 100)" in n.message
    assert "Since:     2026-01-02 17:04:40 UTC" in n.message
    assert "Before:    OK since 2026-01-02 16:04:40 UTC" in n.message
    assert (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:alarm/"
        f"rumguard%2F{GUEST}%2Frejected-events"
    ) in n.message
    assert "#dashboards/dashboard/rumguard" in n.message
    assert "What to do:" in n.message
    assert "Managed by the RUM Guard sweeper" not in n.message
    assert n.attributes == {"rumguard.kind": "alarm", "rumguard.state": "ALARM", "rumguard.monitor": GUEST}


def test_a_metric_math_alarm_gives_the_rate_against_its_threshold() -> None:
    name = f"rumguard/{SIGNED_IN}/js-error-rate"
    event = state_change(
        name,
        "ALARM",
        reason="Threshold Crossed: 2 out of the last 3 datapoints [12.5 (02/01/26 16:59:00), 9.0 (02/01/26 "
        "16:54:00)] was greater than the threshold (5.0) (minimum 2 datapoints for OK -> ALARM transition).",
        data=threshold_data([3.1, 9.0, 12.5], 5.0, statistic=None),
    )
    n = alarm_notification(event, PREFIX, LINKS)
    assert n is not None
    assert n.subject == f"[RUM Guard] ALARM: JS error rate - app monitor {SIGNED_IN}"
    assert "Value:     12.5 JS errors per 100 page views (alarm when more than 5)" in n.message
    assert "Evaluated: 3.1, 9, 12.5 (5-minute periods from 2026-01-02 16:49:00 UTC)" in n.message


def test_an_anomaly_detection_alarm_gives_the_value_against_the_band_and_its_return() -> None:
    name = f"rumguard/{GUEST}/traffic-surge"
    band = {
        "version": "1.0",
        "queryDate": "2026-01-02T17:04:40.650+0000",
        "startDate": "2026-01-02T16:59:00.000+0000",
        "period": 300,
        "recentDatapoints": [5400.0],
        "recentLowerThresholds": [1210.5],
        "recentUpperThresholds": [3300.25],
    }
    alarm = alarm_notification(
        state_change(
            name,
            "ALARM",
            reason="Thresholds Crossed: 1 out of the last 1 datapoints [5400.0 (02/01/26 16:59:00)] was greater "
            "than the upper thresholds [3300.25] (minimum 1 datapoint for OK -> ALARM transition).",
            data=band,
        ),
        PREFIX,
        LINKS,
    )
    assert alarm is not None
    assert alarm.subject == f"[RUM Guard] ALARM: Guest traffic surge - app monitor {GUEST}"
    assert "Value:     5,400 guest events in 5 min, outside the expected band of 1,210 to 3,300" in alarm.message
    ok = alarm_notification(
        state_change(
            name, "OK", previous="ALARM", data=band | {"recentDatapoints": [2100.0]}, reason="Thresholds Crossed: ..."
        ),
        PREFIX,
        LINKS,
    )
    assert ok is not None
    assert ok.subject == f"[RUM Guard] OK: Guest traffic surge - app monitor {GUEST}"
    assert "is OK again (was ALARM)" in ok.message
    assert "Value:     2,100 guest events in 5 min, inside the expected band of 1,210 to 3,300" in ok.message
    assert "What to do:" not in ok.message


def test_insufficient_data_says_so() -> None:
    name = "rumguard/policy-capacity"
    event = state_change(
        name,
        "INSUFFICIENT_DATA",
        reason="Insufficient Data: 1 datapoint was unknown.",
        data={"version": "1.0", "queryDate": "2026-01-02T17:04:40.985+0000", "statistic": "Maximum", "period": 300,
              "recentDatapoints": [], "threshold": 80.0},
    )  # fmt: skip
    n = alarm_notification(event, PREFIX, LINKS)
    assert n is not None
    assert n.subject == "[RUM Guard] INSUFFICIENT DATA: Deny policy capacity - all guest monitors (AppMonitor=all)"
    assert "too little data to evaluate it (was OK)" in n.message
    assert "Value:     no data points in the evaluated periods" in n.message
    assert n.attributes["rumguard.state"] == "INSUFFICIENT_DATA" and "rumguard.monitor" not in n.attributes


def test_a_template_pipeline_alarm_under_the_prefix_is_notified_generically() -> None:
    event = state_change(
        "rumguard/ingest-errors",
        "ALARM",
        reason="Threshold Crossed: 1 out of the last 1 datapoints [3.0 (02/01/26 16:59:00)] was greater than or "
        "equal to the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition).",
        data=threshold_data([3.0], 1.0),
    )
    n = alarm_notification(event, PREFIX, LINKS)
    assert n is not None
    assert n.subject == "[RUM Guard] ALARM: ingest-errors - the RUM Guard pipeline"
    assert "Value:     3 (alarm when more than or equal to 1)" in n.message


def test_alarms_of_other_stacks_and_a_new_alarms_first_evaluation_are_not_notified() -> None:
    other = state_change(f"rumguard/{GUEST}/blocks", "ALARM")
    other["detail"]["alarmName"] = f"rumguard-prod/{GUEST}/blocks"
    assert alarm_notification(other, PREFIX, LINKS) is None
    first = state_change(
        f"rumguard/{GUEST}/blocks",
        "OK",
        previous="INSUFFICIENT_DATA",
        previous_reason="Unchecked: Initial alarm creation",
    )
    assert alarm_notification(first, PREFIX, LINKS) is None
    # Any other way back to OK is news.
    resumed = state_change(f"rumguard/{GUEST}/blocks", "OK", previous="INSUFFICIENT_DATA")
    assert alarm_notification(resumed, PREFIX, LINKS) is not None


def test_subjects_fit_sns_whatever_the_monitor_name() -> None:
    monitor = "A" * 240
    name = alarm_name(PREFIX, AlarmKind.HTTP_ERROR_RATE, monitor)
    event = state_change(f"rumguard/{GUEST}/http-error-rate", "ALARM")
    event["detail"]["alarmName"] = name
    n = alarm_notification(event, PREFIX, LINKS)
    assert n is not None
    assert len(n.subject) <= MAX_SUBJECT < 100 and n.subject.endswith("...")
    assert subject_line("a\nb\tc\x07d") == "a b c d"
    assert subject_line("") == "RUM Guard"


@pytest.mark.parametrize(
    ("region", "base"),
    [
        ("eu-west-1", "https://eu-west-1.console.aws.amazon.com"),
        ("cn-north-1", "https://cn-north-1.console.amazonaws.cn"),
        ("us-gov-west-1", "https://console.amazonaws-us-gov.com"),
    ],
)
def test_console_links_follow_the_partition(region: str, base: str) -> None:
    links = ConsoleLinks(region, "rumguard-dash")
    assert links.alarm("a/b c") == f"{base}/cloudwatch/home?region={region}#alarmsV2:alarm/a%2Fb%20c"
    assert links.dashboard() == f"{base}/cloudwatch/home?region={region}#dashboards/dashboard/rumguard-dash"


def test_numbers_and_times_read_well() -> None:
    assert [number(v) for v in (45628.0, 99.50160229693434, 0.0666851903306472, 5.0)] == [
        "45,628",
        "99.5",
        "0.0667",
        "5",
    ]
    assert parse_time("2019-10-02T17:04:40.989+0000") == datetime(2019, 10, 2, 17, 4, 40, 989000, tzinfo=UTC)
    assert parse_time("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_time("yesterday") is None and parse_time(None) is None


# --- RUM Guard's own events -------------------------------------------------------------------------------
def rumguard_event(detail_type: str, detail: Mapping[str, Any], event_id: str = "e-1") -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": "rumguard",
        "account": "123456789012",
        "time": "2026-01-02T17:04:40Z",
        "region": "us-east-1",
        "resources": [],
        "detail": dict(detail),
    }


def blocked_detail(identity: str = IDENTITY, **extra: Any) -> dict[str, Any]:
    return {
        "identityId": identity,
        "appMonitor": GUEST,
        "rule": "event-flood",
        "reason": "1532 events in 5 min (limit 1000): event-flood",
        "actor": "auto",
        "expiresAt": "2026-01-02T18:04:40Z",
        "dryRun": False,
        "offence": 1,
        "counts": {"event-flood": 1532},
        "createdAt": "2026-01-02T17:04:40Z",
        "status": "active",
    } | extra


def test_events_are_routed_by_source_and_detail_type() -> None:
    assert route(state_change(f"rumguard/{GUEST}/blocks", "ALARM")) is Route.ALARM
    assert route(rumguard_event(LOCKDOWN_CHANGED, {})) is Route.LOCKDOWN
    for detail_type in (IDENTITY_BLOCKED, IDENTITY_UNBLOCKED, BLOCK_STORM):
        assert route(rumguard_event(detail_type, {})) is Route.DIGEST
    assert route(rumguard_event("Something Else", {})) is Route.IGNORE
    assert route({"source": "aws.events", "detail-type": "Scheduled Event"}) is Route.IGNORE


def test_a_lockdown_change_is_one_message_saying_what_it_means() -> None:
    on = rumguard_event(
        LOCKDOWN_CHANGED,
        {"identityId": None, "appMonitor": GUEST, "rule": "safety-valve", "reason": "more than 50 automatic blocks",
         "actor": "auto", "expiresAt": None, "dryRun": False, "enabled": True, "since": "2026-01-02T17:04:40Z"},
    )  # fmt: skip
    n = lockdown_notification(on, LINKS)
    assert n.subject == "[RUM Guard] Guest lockdown ON"
    assert "Guest lockdown is ON since 2026-01-02 17:04:40 UTC" in n.message
    assert "By:        RUM Guard (safety valve)" in n.message
    assert "PUT /lockdown" in n.message
    off = rumguard_event(
        LOCKDOWN_CHANGED,
        {"reason": "attack over", "actor": "arn:aws:iam::123456789012:user/ops", "dryRun": True, "enabled": False},
    )
    n = lockdown_notification(off, LINKS)
    assert n.subject == "[RUM Guard] Guest lockdown OFF (dry run)"
    assert "By:        arn:aws:iam::123456789012:user/ops" in n.message
    assert n.attributes == {"rumguard.kind": "lockdown", "rumguard.state": "OFF"}


def test_a_digest_lists_blocks_unblocks_and_the_safety_valve() -> None:
    other = "us-east-1:11111111-2222-4333-8444-555555555555"
    entries = [
        digest_entry(rumguard_event(IDENTITY_BLOCKED, blocked_detail())),
        digest_entry(rumguard_event(IDENTITY_BLOCKED, blocked_detail(other, dryRun=True))),
        digest_entry(
            rumguard_event(
                IDENTITY_UNBLOCKED,
                blocked_detail(
                    "us-east-1:99999999-2222-4333-8444-555555555555", reason="block expired", status="expired"
                ),
            )
        ),
        digest_entry(
            rumguard_event(
                BLOCK_STORM,
                {"identityId": None, "appMonitor": GUEST, "rule": "safety-valve", "actor": "auto",
                 "reason": "more than 50 automatic blocks in 5 min: automatic blocking paused",
                 "skippedIdentities": [f"us-east-1:{n:08d}-2222-4333-8444-555555555555" for n in range(60)]},
            )
        ),
    ]  # fmt: skip
    start = datetime(2026, 1, 2, 17, 4, tzinfo=UTC)
    n = digest_notification(Digest(GUEST, start, 60, entries, overflow=3), LINKS)
    assert n.subject == f"[RUM Guard] safety valve tripped, 2 blocked, 1 unblocked, 3 more on {GUEST}"
    assert "2 identities blocked, 1 identity unblocked, 3 more events." in n.message
    assert f"RUM Guard on app monitor {GUEST}, 2026-01-02 17:04:00 UTC to 17:05:00 UTC" in n.message
    assert "Blocked (2):" in n.message and "Unblocked (1):" in n.message
    assert f"  - {IDENTITY}: 1532 events in 5 min (limit 1000): event-flood (rule event-flood, by auto); until " in (
        n.message
    )
    assert "[dry run: not enforced]" in n.message
    assert "Left alone: us-east-1:00000000" in n.message and "and 10 more" in n.message
    assert "... and 3 more events in this window" in n.message
    assert n.attributes == {"rumguard.kind": "digest", "rumguard.state": "STORM", "rumguard.monitor": GUEST}


def test_a_digest_of_dry_run_blocks_only_says_so_in_the_subject() -> None:
    entries = [digest_entry(rumguard_event(IDENTITY_BLOCKED, blocked_detail(dryRun=True)))]
    n = digest_notification(Digest(GUEST, datetime(2026, 1, 2, tzinfo=UTC), 60, entries), LINKS)
    assert n.subject == f"[RUM Guard] 1 identity blocked (dry run) on {GUEST}"


def test_digest_entries_are_kept_small() -> None:
    detail = blocked_detail(reason="x" * 5000, counts={str(n): n for n in range(500)})
    entry = digest_entry(rumguard_event(IDENTITY_BLOCKED, detail))
    assert len(entry["reason"]) == 300 and "counts" not in entry and entry["type"] == IDENTITY_BLOCKED


# --- the digest protocol, on an in-memory store -----------------------------------------------------------
@dataclass
class Item:
    entries: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    opener: str | None = None
    overflow: int = 0
    lease_until: float | None = None
    sent_at: float | None = None


class MemoryDigests:
    """The ``DigestStore`` semantics of the DynamoDB adapter, in memory."""

    def __init__(self, max_entries: int = 100) -> None:
        self.items: dict[tuple[str, int, int], Item] = {}
        self.max_entries = max_entries

    def add(self, monitor: str, seconds: int, index: int, entry_id: str, entry: str, *, now: float) -> AddResult:
        item = self.items.setdefault((monitor, seconds, index), Item())
        if entry_id in item.ids:
            return AddResult(AddStatus.DUPLICATE, item.opener)
        if item.lease_until is not None or item.sent_at is not None:
            return AddResult(AddStatus.CLOSED, None)
        item.ids.add(entry_id)
        item.opener = item.opener or entry_id
        if len(item.entries) < self.max_entries:
            item.entries.append(entry)
        else:
            item.overflow += 1
        return AddResult(AddStatus.ADDED, item.opener)

    def unsent(self, monitor: str, seconds: int, first: int, last: int) -> list[Window]:
        return [
            self._window(key, item)
            for key, item in sorted(self.items.items())
            if key[0] == monitor and key[1] == seconds and first <= key[2] <= last and item.sent_at is None
        ]

    def claim(self, monitor: str, seconds: int, index: int, *, now: float, lease: float) -> Window | None:
        item = self.items.get((monitor, seconds, index))
        if item is None or item.sent_at is not None or (item.lease_until is not None and item.lease_until >= now):
            return None
        item.lease_until = now + lease
        return self._window((monitor, seconds, index), item)

    def mark_sent(self, monitor: str, seconds: int, index: int, *, now: float) -> None:
        self.items[(monitor, seconds, index)].sent_at = now

    @staticmethod
    def _window(key: tuple[str, int, int], item: Item) -> Window:
        return Window(key[0], key[2], list(item.entries), item.overflow, item.lease_until)


class Clock:
    """A clock that a sleep advances; ``during_sleep`` runs what other invocations do meanwhile."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.during_sleep: list[Callable[[], None]] = []
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        while self.during_sleep:
            self.during_sleep.pop(0)()
        self.now += seconds


class Outbox:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[Notification] = []
        self.fail = fail

    def publish(self, notification: Notification) -> str:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("SNS is down")
        self.sent.append(notification)
        return f"m-{len(self.sent)}"


T0 = 1_767_373_440.0  # 2026-01-02T17:04:00Z, the start of a minute


def entry(identity: str = IDENTITY) -> dict[str, Any]:
    return digest_entry(rumguard_event(IDENTITY_BLOCKED, blocked_detail(identity)))


def ids(n: int) -> list[str]:
    return [f"us-east-1:{i:08d}-0000-4000-8000-000000000000" for i in range(n)]


def submitter(digester: Digester, clock: Clock, identity: str, outcomes: list[DigestOutcome]) -> Callable[[], None]:
    """Another invocation, submitting the block of ``identity`` now."""

    def submit() -> None:
        outcomes.append(digester.submit(GUEST, f"e-{identity}", entry(identity), at=clock.now))

    return submit


def test_a_burst_in_one_minute_is_one_message_sent_by_the_opener_when_the_minute_is_over() -> None:
    clock, store, outbox = Clock(T0 + 10), MemoryDigests(), Outbox()
    digester = Digester(store, outbox, LINKS, clock=clock, sleep=clock.sleep)
    others = ids(4)[1:]
    # While the opener waits, three more events arrive (other invocations) and return at once.
    outcomes: list[DigestOutcome] = []
    clock.during_sleep = [submitter(digester, clock, identity, outcomes) for identity in others]
    first = digester.submit(GUEST, "e-first", entry(ids(1)[0]), at=clock.now)
    assert first.opener and first.sent == [first.index]
    assert clock.slept == [pytest.approx(55.0)]  # to the end of the minute, plus 5 s for appends in flight
    assert [o.opener for o in outcomes] == [False, False, False] and all(o.sent == [] for o in outcomes)
    (message,) = outbox.sent
    assert message.subject == f"[RUM Guard] 4 identities blocked on {GUEST}"
    for identity in ids(4):
        assert identity in message.message


def test_a_redelivered_event_is_listed_once() -> None:
    clock, store, outbox = Clock(T0 + 10), MemoryDigests(), Outbox()
    digester = Digester(store, outbox, LINKS, clock=clock, sleep=clock.sleep)
    outcomes: list[DigestOutcome] = []
    clock.during_sleep = [lambda: outcomes.append(digester.submit(GUEST, "e-2", entry(ids(2)[1]), at=T0 + 11))] * 2
    digester.submit(GUEST, "e-1", entry(ids(1)[0]), at=T0 + 10)
    assert [o.status for o in outcomes] == [AddStatus.ADDED, AddStatus.DUPLICATE]
    assert outbox.sent[0].message.count(ids(2)[1]) == 1
    # A redelivery after the window was sent is recognised too: nothing new goes out.
    again = digester.submit(GUEST, "e-2", entry(ids(2)[1]), at=T0 + 11)
    assert again.status is AddStatus.DUPLICATE and len(outbox.sent) == 1


def test_an_event_after_the_window_closed_goes_to_the_next_and_monitors_are_separate() -> None:
    clock, store, outbox = Clock(T0 + 10), MemoryDigests(), Outbox()
    digester = Digester(store, outbox, LINKS, clock=clock, sleep=clock.sleep)
    digester.submit(GUEST, "e-1", entry(ids(1)[0]), at=T0 + 10)
    # Put on the bus within the first minute, processed after it was sent: it opens the next window.
    late = digester.submit(GUEST, "e-2", entry(ids(2)[1]), at=T0 + 59)
    assert late.index == first_window(T0) + 1 and late.opener
    other = digester.submit(SIGNED_IN, "e-3", entry(ids(3)[2]), at=clock.now)
    assert other.opener
    assert [n.subject for n in outbox.sent] == [
        f"[RUM Guard] 1 identity blocked on {GUEST}",
        f"[RUM Guard] 1 identity blocked on {GUEST}",
        f"[RUM Guard] 1 identity blocked on {SIGNED_IN}",
    ]
    assert ids(2)[1] in outbox.sent[1].message


def first_window(at: float) -> int:
    return int(at // 60)


def test_a_window_whose_opener_died_is_sent_by_the_next_event_of_the_monitor() -> None:
    clock, store, outbox = Clock(T0 + 10), MemoryDigests(), Outbox()
    digester = Digester(store, outbox, LINKS, clock=clock, sleep=clock.sleep)
    # The opener appends, then its invocation dies (a timeout) before the window ends.
    store.add(GUEST, 60, first_window(T0), "e-1", json.dumps(entry(ids(1)[0])), now=clock.now)
    clock.now = T0 + 200
    later = digester.submit(GUEST, "e-2", entry(ids(2)[1]), at=clock.now)
    assert first_window(T0) in later.sent
    assert ids(1)[0] in outbox.sent[0].message


def test_a_failed_publish_leaves_the_window_to_be_sent_again_after_its_lease() -> None:
    clock, store, outbox = Clock(T0 + 10), MemoryDigests(), Outbox(fail=1)
    digester = Digester(store, outbox, LINKS, clock=clock, sleep=clock.sleep)
    with pytest.raises(RuntimeError, match="SNS is down"):
        digester.submit(GUEST, "e-1", entry(), at=clock.now)
    # Lambda retries the event a minute later: the lease still holds, so nothing is sent twice.
    clock.now += 30
    assert digester.submit(GUEST, "e-1", entry(), at=T0 + 10).sent == []
    # Once the lease has run out, the next retry sends it.
    clock.now += digester.lease
    retry = digester.submit(GUEST, "e-1", entry(), at=T0 + 10)
    assert retry.status is AddStatus.DUPLICATE and retry.sent == [first_window(T0)]
    assert len(outbox.sent) == 1


def test_an_opener_without_the_time_to_wait_raises_and_its_retry_sends() -> None:
    clock, store, outbox = Clock(T0 + 10), MemoryDigests(), Outbox()
    digester = Digester(store, outbox, LINKS, clock=clock, sleep=clock.sleep)
    with pytest.raises(DigestPendingError):
        digester.submit(GUEST, "e-1", entry(), at=clock.now, time_left=lambda: 20.0)
    assert outbox.sent == [] and clock.slept == []
    clock.now = T0 + 70  # Lambda's retry, a minute later
    retry = digester.submit(GUEST, "e-1", entry(), at=T0 + 10, time_left=lambda: 20.0)
    assert retry.opener and retry.sent == [first_window(T0)] and len(outbox.sent) == 1


def test_past_the_cap_events_are_counted_not_listed() -> None:
    clock, store, outbox = Clock(T0 + 10), MemoryDigests(max_entries=2), Outbox()
    digester = Digester(store, outbox, LINKS, clock=clock, sleep=clock.sleep)
    clock.during_sleep = [submitter(digester, clock, identity, []) for identity in ids(5)[1:]]
    digester.submit(GUEST, "e-0", entry(ids(1)[0]), at=clock.now)
    assert outbox.sent[0].subject == f"[RUM Guard] 2 blocked, 3 more on {GUEST}"


def test_a_short_window_settles_for_a_shorter_time() -> None:
    digester = Digester(MemoryDigests(), Outbox(), LINKS, seconds=2)
    assert digester.settle == pytest.approx(2 / 12)
    assert digester.due_until(100.0) == 48  # window 49 ends at 100 and is not settled yet
    with pytest.raises(ValueError, match="at least a second"):
        Digester(MemoryDigests(), Outbox(), LINKS, seconds=0)


def test_the_storms_of_a_window_are_one_line() -> None:
    storms = [
        digest_entry(
            rumguard_event(
                BLOCK_STORM,
                {"appMonitor": GUEST, "reason": f"storm {n}", "skippedIdentities": [f"id-{n}", "id-shared"]},
            )
        )
        for n in range(3)
    ]
    n = digest_notification(Digest(GUEST, datetime(2026, 1, 2, tzinfo=UTC), 60, storms), LINKS)
    assert n.subject == f"[RUM Guard] safety valve tripped on {GUEST}"
    assert "  - storm 2 (3 batches). Left alone: id-0, id-shared, id-1, id-2\n" in n.message


def test_the_comparison_is_read_from_cloudwatchs_reason_or_known_for_rumguards_alarms() -> None:
    ok = state_change(
        f"rumguard/{SIGNED_IN}/js-error-rate",
        "OK",
        previous="ALARM",
        reason="Threshold Crossed: 3 out of the last 3 datapoints [1.2 (02/01/26 16:59:00)] were not greater than "
        "the threshold (5.0) (minimum 1 datapoint for ALARM -> OK transition).",
        data=threshold_data([4.0, 2.1, 1.2], 5.0, statistic=None),
    )
    n = alarm_notification(ok, PREFIX, LINKS)
    assert n is not None and "Value:     1.2 JS errors per 100 page views (alarm when more than 5)" in n.message
    ok["detail"]["state"]["reason"] = "Threshold Crossed: no reason CloudWatch would give"
    n = alarm_notification(ok, PREFIX, LINKS)
    assert n is not None and "(alarm when more than 5)" in n.message
    pipeline = state_change("rumguard/sweeper-not-running", "ALARM", reason="odd", data=threshold_data([0.0], 1.0))
    n = alarm_notification(pipeline, PREFIX, LINKS)
    assert n is not None and "Value:     0 (alarm when 1)" in n.message
