"""Tests of ``ingest_batch``: good and bad log events mixed in one batch are each counted exactly once.

Every good event is counted under its kind (with its timing, HTTP error and identity), every bad one under
its reason with the first of each reason kept as the sample, junk is charged to the identity it claims, and
nothing in a batch makes the function raise.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rumguard.events import MAX_CLOCK_SKEW_MS, EventKind, RejectReason
from rumguard.ingest import SAMPLE_CHARS, TIMED_KINDS, BatchReport, ingest_batch
from rumguard.monitors import LOG_GROUP_PREFIX, Audience, MonitorDirectory

Ingest = Callable[[list[dict[str, Any]]], BatchReport]
IDENTITY = "cognitoIdentityId"
#: DESIGN.md's junk rule: events that fail the schema or carry timestamps more than 24 hours off.
JUNK = frozenset({RejectReason.INVALID, RejectReason.TOO_LONG, RejectReason.CLOCK_SKEW})
ALICE = "us-east-1:0f9a8b7c-6d5e-4f30-a2b1-c0d9e8f7a6b5"
BOB = "us-east-1:7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918"


def _message(event_type: str, details: Any, identity: str | None, event_timestamp: float, **meta: Any) -> str:
    """A RUM log message that claims ``identity`` (unless it is ``None``)."""
    metadata = {"version": "1.0.0", "domain": "shop.example.com", "pageId": "/", **meta}
    if identity is not None:
        metadata[IDENTITY] = identity
    return json.dumps(
        {
            "event_timestamp": event_timestamp,
            "event_type": event_type,
            "metadata": metadata,
            "user_details": {"sessionId": "s-1", "userId": "u-1"},
            "event_details": details,
        }
    )


@dataclass(frozen=True)
class Case:
    """One kind of log event, and what ``ingest_batch`` must make of it."""

    name: str
    outcome: EventKind | RejectReason
    event_type: str = ""
    details: Any = None
    message: Any = None  # a fixed message instead of an event built from the fields above
    offset_ms: float = -2_000
    meta: tuple[tuple[str, Any], ...] = ()
    has_message: bool = True
    timestamp: Any = "receipt"
    timing: float | None = None
    http_error: bool = False

    def log_event(self, event_id: str, identity: str | None, received_ms: int) -> dict[str, Any]:
        """The log event as CloudWatch Logs delivers it."""
        log_event: dict[str, Any] = {"id": event_id}
        if self.has_message:
            event_timestamp = received_ms + self.offset_ms
            log_event["message"] = self.message or _message(
                self.event_type, self.details, identity, event_timestamp, **dict(self.meta)
            )
        if self.timestamp == "receipt":
            log_event["timestamp"] = received_ms
        elif self.timestamp is not None:
            log_event["timestamp"] = self.timestamp
        return log_event

    def claims(self, identity: str | None) -> str | None:
        """The identity this log event's message claims, if it carries one."""
        return identity if self.message is None and self.has_message else None


R = "com.amazon.rum."
GOOD = [
    Case("page view", EventKind.PAGE_VIEW, R + "page_view_event", {"version": "1.0.0", "pageId": "/"}),
    Case("session start", EventKind.SESSION_START, R + "session_start_event", {"version": "1.0.0"}),
    Case("js error", EventKind.JS_ERROR, R + "js_error_event", {"version": "1.0.0", "type": "TypeError"}),
    Case(
        "http 200",
        EventKind.HTTP,
        R + "http_event",
        {"version": "1.0.0", "request": {"method": "GET"}, "response": {"status": 200}},
    ),
    Case(
        "http 399",
        EventKind.HTTP,
        R + "http_event",
        {"version": "1.0.0", "request": {"method": "GET"}, "response": {"status": 399}},
    ),
    Case(
        "http 400",
        EventKind.HTTP,
        R + "http_event",
        {"version": "1.0.0", "request": {"method": "GET"}, "response": {"status": 400}},
        http_error=True,
    ),
    Case(
        "http 503",
        EventKind.HTTP,
        R + "http_event",
        {"version": "1.0.0", "request": {"method": "GET"}, "response": {"status": 503}},
        http_error=True,
    ),
    Case(
        "http network error",
        EventKind.HTTP,
        R + "http_event",
        {"version": "1.0.0", "request": {"method": "POST"}, "error": {"type": "TypeError", "message": "Failed"}},
        http_error=True,
    ),
    Case(
        "navigation",
        EventKind.NAVIGATION,
        R + "performance_navigation_event",
        {"version": "1.0.0", "initiatorType": "navigation", "startTime": 0, "duration": 812.5},
        timing=812.5,
    ),
    Case(
        "lcp", EventKind.LCP, R + "largest_contentful_paint_event", {"version": "1.0.0", "value": 1234.5}, timing=1234.5
    ),
    Case("cls", EventKind.CLS, R + "cumulative_layout_shift_event", {"version": "1.0.0", "value": 0.12}, timing=0.12),
    Case("inp", EventKind.INP, R + "interaction_to_next_paint_event", {"version": "1.0.0", "value": 72}, timing=72.0),
    Case(
        "x-ray (schema $id)",
        EventKind.XRAY_TRACE,
        "com.amazon.xray_trace_event",
        {"name": "shop", "id": "1a2b", "trace_id": "1-5f-ab", "start_time": 1767225598.5},
    ),
    Case("custom event", EventKind.OTHER, "com.example.shop.promo_click", {"campaign": "winter-sale"}),
    Case(
        "within 24 h",
        EventKind.PAGE_VIEW,
        R + "page_view_event",
        {"version": "1.0.0", "pageId": "/"},
        offset_ms=-MAX_CLOCK_SKEW_MS,
    ),
]
BAD = [
    Case("not json", RejectReason.NOT_JSON, message='{"event_type": "com.amazon.rum.page_view_event", "metadat'),
    Case("json array", RejectReason.NOT_RUM, message="[1, 2, 3]"),
    Case("no event_type", RejectReason.NOT_RUM, message=json.dumps({"metadata": {IDENTITY: BOB}, "hello": 1})),
    Case(
        "details mistyped",
        RejectReason.INVALID,
        R + "page_view_event",
        {"version": "1.0.0", "pageId": "/", "interaction": "first"},
    ),
    Case("details incomplete", RejectReason.INVALID, R + "page_close_event", {"version": "1.0.0", "pageId": "/"}),
    Case("bad event type", RejectReason.INVALID, "com example custom", {"campaign": "winter-sale"}),
    Case(
        "metadata value too long",
        RejectReason.TOO_LONG,
        R + "page_view_event",
        {"version": "1.0.0", "pageId": "/"},
        meta=(("title", "t" * 257),),
    ),
    Case(
        "metadata key too long",
        RejectReason.TOO_LONG,
        R + "session_start_event",
        {"version": "1.0.0"},
        meta=(("k" * 129, "v"),),
    ),
    Case(
        "25 h ahead",
        RejectReason.CLOCK_SKEW,
        R + "page_view_event",
        {"version": "1.0.0", "pageId": "/"},
        offset_ms=MAX_CLOCK_SKEW_MS + 3_600_000,
    ),
    Case(
        "1 ms too old",
        RejectReason.CLOCK_SKEW,
        R + "session_start_event",
        {"version": "1.0.0"},
        offset_ms=-MAX_CLOCK_SKEW_MS - 1,
    ),
    Case("no message", RejectReason.NOT_RUM, has_message=False),
    Case(
        "no timestamp",
        RejectReason.NOT_RUM,
        R + "session_start_event",
        {"version": "1.0.0"},
        timestamp=None,
    ),
    Case(
        "timestamp not a number",
        RejectReason.NOT_RUM,
        R + "session_start_event",
        {"version": "1.0.0"},
        timestamp="1767225600000",
    ),
    Case("message not a string", RejectReason.NOT_RUM, message={"event_type": R + "session_start_event"}),
]


@dataclass
class Expected:
    """What a batch must produce, computed case by case from the rules (the test's oracle)."""

    by_kind: Counter[EventKind]
    rejected: Counter[RejectReason]
    samples: dict[RejectReason, str]
    timings: dict[EventKind, list[float]]
    http_errors: int
    without_identity: int
    identities: dict[str, list[float]]  # events, session starts, page views, JS errors, junk, first, last


def _expect(batch: list[tuple[Case, str | None]], received: list[int]) -> Expected:
    expected = Expected(Counter(), Counter(), {}, {}, 0, 0, {})
    for index, ((case, identity), received_ms) in enumerate(zip(batch, received, strict=True)):
        claimed = case.claims(identity)
        if isinstance(case.outcome, EventKind):
            expected.by_kind[case.outcome] += 1
            if case.timing is not None:
                expected.timings.setdefault(case.outcome, []).append(case.timing)
            expected.http_errors += case.http_error
            if claimed is None:
                expected.without_identity += 1
                continue
            counts = [1, case.outcome is EventKind.SESSION_START, case.outcome is EventKind.PAGE_VIEW]
            counts += [case.outcome is EventKind.JS_ERROR, 0]
        else:
            expected.rejected[case.outcome] += 1
            expected.samples.setdefault(case.outcome, f"event-{index}")
            if claimed is None or case.outcome not in JUNK:
                continue
            counts = [0, 0, 0, 0, 1]
        activity = expected.identities.setdefault(claimed, [0, 0, 0, 0, 0, float("inf"), float("-inf")])
        for position, count in enumerate(counts):
            activity[position] += count
        activity[5], activity[6] = min(activity[5], received_ms), max(activity[6], received_ms)
    return expected


def _check(report: BatchReport, expected: Expected, size: int) -> None:
    assert report.log_events == size
    assert report.by_kind == dict(expected.by_kind)
    assert report.rejected == dict(expected.rejected)
    assert report.accepted + report.rejected_total == size, "an event was lost or counted twice"
    assert {reason: sample.log_event_id for reason, sample in report.samples.items()} == expected.samples
    assert report.timings == expected.timings
    assert report.http_errors == expected.http_errors
    assert report.without_identity == expected.without_identity
    assert {
        identity: [a.events, a.session_starts, a.page_views, a.js_errors, a.junk, a.first_ms, a.last_ms]
        for identity, a in report.identities.items()
    } == expected.identities


def test_every_kind_of_good_and_bad_event_in_one_batch_is_counted(ingest: Ingest, received_ms: int) -> None:
    batch = [(case, (ALICE, BOB, None)[index % 3]) for index, case in enumerate(GOOD + BAD + GOOD)]
    received = [received_ms + 1_000 * index for index in range(len(batch))]
    log_events = [case.log_event(f"event-{i}", identity, received[i]) for i, (case, identity) in enumerate(batch)]

    report = ingest(log_events)

    _check(report, _expect(batch, received), len(batch))
    assert report.accepted == 2 * len(GOOD)
    assert set(report.rejected) == {case.outcome for case in BAD}
    assert report.identities[ALICE].junk + report.identities[BOB].junk > 0


@given(
    batch=st.lists(
        st.tuples(st.sampled_from(GOOD + BAD), st.sampled_from([ALICE, BOB, None])),
        max_size=40,
    ),
    gaps=st.lists(st.integers(0, 60_000), min_size=40, max_size=40),
)
def test_any_mix_of_good_and_bad_events_is_counted_exactly(
    batch: list[tuple[Case, str | None]], gaps: list[int], ingest: Ingest, received_ms: int
) -> None:
    received = [received_ms + sum(gaps[: index + 1]) for index in range(len(batch))]
    log_events = [case.log_event(f"event-{i}", identity, received[i]) for i, (case, identity) in enumerate(batch)]

    report = ingest(log_events)

    _check(report, _expect(batch, received), len(batch))


def test_the_timings_that_design_names_are_collected() -> None:
    # PageLoadTime (navigation duration) and the web vitals DESIGN.md lists are metrics as value arrays.
    assert {EventKind.NAVIGATION, EventKind.LCP, EventKind.CLS, EventKind.INP} <= TIMED_KINDS


def test_the_sample_quotes_the_start_of_the_first_bad_message(ingest: Ingest, received_ms: int) -> None:
    long_junk = "x" * (SAMPLE_CHARS + 100)
    report = ingest(
        [
            {"id": "a", "timestamp": received_ms, "message": long_junk},
            {"id": "b", "timestamp": received_ms, "message": "also junk"},
            {"id": "c", "timestamp": received_ms, "message": {"not": "a string"}},
        ]
    )

    assert report.rejected == {RejectReason.NOT_JSON: 2, RejectReason.NOT_RUM: 1}
    assert report.samples[RejectReason.NOT_JSON].log_event_id == "a"
    assert report.samples[RejectReason.NOT_JSON].excerpt == long_junk[:SAMPLE_CHARS]
    assert report.samples[RejectReason.NOT_RUM].excerpt == repr({"not": "a string"})


@pytest.mark.parametrize(
    "log_event",
    [
        {},
        {"id": "only-an-id"},
        {"timestamp": 1_767_225_600_000},
        {"message": '{"event_type": "com.amazon.rum.session_start_event"}'},
        {"message": None, "timestamp": None},
        {"message": b"{}", "timestamp": 1_767_225_600_000},
        {"message": "{}", "timestamp": "now"},
    ],
)
def test_a_log_event_without_a_string_message_and_a_numeric_timestamp_is_not_rum(
    log_event: dict[str, Any], ingest: Ingest
) -> None:
    report = ingest([log_event])

    assert (report.by_kind, report.rejected) == ({}, {RejectReason.NOT_RUM: 1})


@pytest.mark.parametrize(
    "log_group",
    [
        f"{LOG_GROUP_PREFIX}SomeOtherMonitor0a1b2c3d",
        f"{LOG_GROUP_PREFIX}RetailDemoStore_Unauthenticated",
        f"{LOG_GROUP_PREFIX}RetailDemoStore_Unauthenticated0A1B2C3D",
        "/aws/lambda/RetailDemoStore_Unauthenticated0a1b2c3d",
        "",
    ],
)
def test_every_event_of_a_log_group_that_matches_no_monitor_is_rejected(
    log_group: str, monitors: MonitorDirectory, received_ms: int
) -> None:
    log_events = [case.log_event(f"event-{i}", ALICE, received_ms) for i, case in enumerate(GOOD + BAD)]

    report = ingest_batch(log_group, log_events, monitors, IDENTITY)

    assert report.monitor is None
    assert (report.log_events, report.by_kind) == (len(log_events), {})
    assert report.rejected == {RejectReason.UNKNOWN_MONITOR: len(log_events)}
    assert report.samples[RejectReason.UNKNOWN_MONITOR].log_event_id == "event-0"
    assert log_group in report.samples[RejectReason.UNKNOWN_MONITOR].detail
    assert report.identities == {}


def test_an_empty_batch_of_an_unknown_log_group_rejects_nothing(monitors: MonitorDirectory) -> None:
    report = ingest_batch(f"{LOG_GROUP_PREFIX}Unknown0a1b2c3d", [], monitors, IDENTITY)

    assert (report.log_events, report.rejected, report.samples) == (0, {}, {})


def test_a_batch_belongs_to_the_monitor_and_audience_of_its_log_group(
    monitors: MonitorDirectory, received_ms: int
) -> None:
    log_events = [GOOD[0].log_event("event-0", ALICE, received_ms)]

    guest = ingest_batch(f"{LOG_GROUP_PREFIX}RetailDemoStore_Unauthenticated0a1b2c3d", log_events, monitors, IDENTITY)
    signed_in = ingest_batch(f"{LOG_GROUP_PREFIX}RetailDemoStore_Authenticated9f8e7d6c", log_events, monitors, IDENTITY)

    assert guest.monitor is not None and signed_in.monitor is not None
    assert (guest.monitor.name, guest.monitor.audience) == ("RetailDemoStore_Unauthenticated", Audience.GUEST)
    assert (signed_in.monitor.name, signed_in.monitor.audience) == ("RetailDemoStore_Authenticated", Audience.SIGNED_IN)
    assert guest.by_kind == signed_in.by_kind == {EventKind.PAGE_VIEW: 1}


def test_log_events_may_come_as_any_iterable(
    monitors: MonitorDirectory, guest_log_group: str, received_ms: int
) -> None:
    log_events = [case.log_event(f"event-{i}", BOB, received_ms) for i, case in enumerate(GOOD + BAD)]

    from_list = ingest_batch(guest_log_group, log_events, monitors, IDENTITY)
    from_generator = ingest_batch(guest_log_group, (event for event in log_events), monitors, IDENTITY)

    assert (from_generator.by_kind, from_generator.rejected) == (from_list.by_kind, from_list.rejected)
    assert from_generator.log_events == len(log_events)


def test_the_identity_attribute_is_configurable(
    monitors: MonitorDirectory, guest_log_group: str, received_ms: int
) -> None:
    message = _message(R + "session_start_event", {"version": "1.0.0"}, ALICE, received_ms, userRef="user-42")
    log_event = {"id": "e", "timestamp": received_ms, "message": message}

    report = ingest_batch(guest_log_group, [log_event], monitors, "userRef")

    assert list(report.identities) == ["user-42"]
    assert report.identities["user-42"].session_starts == 1
