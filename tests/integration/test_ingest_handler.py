"""The ingest handler against moto: RUM events go into a CloudWatch Logs group, come back out as the
subscription payload CloudWatch Logs would deliver (with the log event ids moto assigned), go through the
real ``handlers.ingest.handler``, and the metrics it prints in embedded metric format are checked.
"""

from __future__ import annotations

import base64
import gzip
from typing import Any

import orjson
import pytest

from rumguard.events import EventKind
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.context import Invocation, LocalFunction
from rumguard.local.emf import EmfOutput
from rumguard.local.subscription import control_message_event
from rumguard.local.traffic import LogRecord, TrafficSimulator, identity_id
from rumguard.runtime import UndecodablePayloadError

COUNTS = {
    "PageViews": EventKind.PAGE_VIEW,
    "SessionStarts": EventKind.SESSION_START,
    "JsErrors": EventKind.JS_ERROR,
}
TIMINGS = {
    "PageLoadTime": EventKind.NAVIGATION,
    "LargestContentfulPaint": EventKind.LCP,
    "CumulativeLayoutShift": EventKind.CLS,
    "InteractionToNextPaint": EventKind.INP,
}
UNMATCHED = {"AppMonitor": "unmatched", "Audience": "none"}


def dims(aws: EmbeddedAws, name: str) -> dict[str, str]:
    """The dimension set of a configured monitor's metrics."""
    return {"AppMonitor": name, "Audience": aws.monitor(name).monitor.audience.value}


def decode(event: dict[str, Any]) -> dict[str, Any]:
    """The batch inside a subscription event."""
    batch: dict[str, Any] = orjson.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    return batch


def deliver_all(aws: EmbeddedAws, ingest: LocalFunction) -> tuple[list[Invocation], EmfOutput]:
    """Every delivery of every configured monitor through the handler; each must succeed."""
    invocations = [ingest.invoke(event) for _, event in aws.all_deliveries()]
    output = EmfOutput()
    for invocation in invocations:
        assert invocation.error is None, invocation.error
        output.extend(invocation.output)
    return invocations, output


def shop_traffic(simulator: TrafficSimulator, journeys: int, guests: int) -> list[LogRecord]:
    """Signed-in journeys and browsing guests, a few seconds apart."""
    rng, start = simulator.rng, simulator.start_ms
    records: list[LogRecord] = []
    for n in range(journeys):
        records += simulator.signed_in_journey(identity_id(rng), identity_id(rng), at_ms=start + n * 30_000)
    for n in range(guests):
        records += simulator.guest_browse(identity_id(rng), pages=5, at_ms=start + n * 20_000)
    return records


def variant(record: LogRecord, **changes: Any) -> str:
    """A record's message with top-level fields changed (``event_details`` merged)."""
    body = orjson.loads(record.message)
    details = changes.pop("event_details", None)
    body.update(changes)
    if details is not None:
        body["event_details"].update(details)
    return orjson.dumps(body).decode()


def test_the_payload_is_what_moto_stored(aws: EmbeddedAws, simulator: TrafficSimulator) -> None:
    records = simulator.guest_browse(identity_id(simulator.rng), pages=3)
    aws.put_records(records)
    group = aws.monitor(GUEST_MONITOR).log_group
    (event,) = list(aws.deliveries(group))
    batch = decode(event)

    stored = aws.logs.filter_log_events(logGroupName=group)["events"]
    assert batch["messageType"] == "DATA_MESSAGE"
    assert batch["logGroup"] == group
    assert batch["logStream"] == stored[0]["logStreamName"]
    assert batch["owner"] == aws.account_id
    assert [e["id"] for e in batch["logEvents"]] == [e["eventId"] for e in stored]
    assert sorted(e["message"] for e in batch["logEvents"]) == sorted(r.message for r in records)
    assert [e["timestamp"] for e in batch["logEvents"]] == sorted(r.timestamp_ms for r in records)


def test_metrics_per_monitor_equal_the_simulation(
    aws: EmbeddedAws, ingest: LocalFunction, simulator: TrafficSimulator
) -> None:
    aws.put_records(shop_traffic(simulator, journeys=2, guests=3))
    invocations, output = deliver_all(aws, ingest)
    tally = simulator.tally

    assert len(invocations) == 2  # one delivery per monitor: one hourly stream each, well under 1 MB
    for name in (GUEST_MONITOR, SIGNED_IN_MONITOR):
        where = dims(aws, name)
        assert tally.events(name) > 0
        assert output.total("Events", **where) == tally.events(name)
        for metric, kind in COUNTS.items():
            assert output.total(metric, **where) == tally.count(name, kind), metric
        assert output.total("HttpErrors", **where) == tally.http_errors[name]
        assert output.total("RejectedEvents", **where) == 0
        for metric, kind in TIMINGS.items():
            values = output.values(metric, **where)
            assert len(values) == tally.count(name, kind), metric
            assert all(value >= 0 for value in values)
    assert tally.count(GUEST_MONITOR, EventKind.HTTP) > 0
    assert output.metric_names() >= {"Events", "PageViews", "SessionStarts", "JsErrors", "HttpErrors"}
    assert output.metric_names() >= set(TIMINGS) | {"RejectedEvents"}
    assert {datum.namespace for datum in output.data()} == {"RumGuard"}
    assert all("AppMonitor" in names for names in output.dimension_sets())
    assert output.dimension_sets() == {frozenset({"AppMonitor", "Audience"})}
    assert not output.log_records(level="WARNING")


def test_counts_are_flushed_once_per_invocation(
    aws: EmbeddedAws, ingest: LocalFunction, simulator: TrafficSimulator
) -> None:
    # One delivery with more than 100 navigations: the timing arrays need several EMF blobs (100 values
    # each at most), but each count is still added once for the whole batch.
    aws.put_records(shop_traffic(simulator, journeys=0, guests=30))
    (event,) = list(aws.deliveries(aws.monitor(GUEST_MONITOR).log_group))
    invocation = ingest.invoke(event)

    assert invocation.error is None
    where = dims(aws, GUEST_MONITOR)
    navigations = simulator.tally.count(GUEST_MONITOR, EventKind.NAVIGATION)
    assert navigations > 100
    assert len(invocation.output.values("PageLoadTime", **where)) == navigations
    for metric in ("Events", "PageViews", "SessionStarts", "JsErrors", "HttpErrors"):
        assert invocation.output.flushes(metric) == 1, metric
        assert len(invocation.output.values(metric, **where)) == 1, metric
    assert invocation.output.total("Events", **where) == len(decode(event)["logEvents"])


def test_a_redelivered_batch_is_not_counted_twice(
    aws: EmbeddedAws, ingest: LocalFunction, simulator: TrafficSimulator
) -> None:
    aws.put_records(simulator.guest_browse(identity_id(simulator.rng), pages=4))
    (event,) = list(aws.deliveries(aws.monitor(GUEST_MONITOR).log_group))

    first = ingest.invoke(event)
    again = ingest.invoke(event)

    assert first.error is None and again.error is None
    assert first.output.total("Events", **dims(aws, GUEST_MONITOR)) == simulator.tally.events(GUEST_MONITOR)
    assert again.value == first.value
    assert "Events" not in again.output.metric_names()
    assert again.output.blobs == []
    assert first.request_id != again.request_id
    # The idempotency record is in the RUM Guard table, keyed on the batch.
    items = aws.dynamodb.scan(TableName=aws.table_name)["Items"]
    records = [item for item in items if item["pk"]["S"].startswith("idempotency#ingest")]
    assert len(records) == 1
    assert records[0]["status"]["S"] == "COMPLETED"
    # The guest's counters were written once, and the redelivery found its batch already counted.
    counters = [item for item in items if item["pk"]["S"].startswith("counter#")]
    assert len(counters) == 1


def test_a_new_batch_after_a_redelivery_still_counts(
    aws: EmbeddedAws, ingest: LocalFunction, simulator: TrafficSimulator
) -> None:
    group = aws.monitor(GUEST_MONITOR).log_group
    aws.put_records(simulator.guest_browse(identity_id(simulator.rng), pages=2))
    (first,) = list(aws.deliveries(group))
    ingest.invoke(first).unwrap()
    ingest.invoke(first).unwrap()
    before = simulator.tally.events(GUEST_MONITOR)
    aws.put_records(simulator.guest_browse(identity_id(simulator.rng), pages=2, at_ms=simulator.start_ms + 60_000))
    (both,) = list(aws.deliveries(group))  # the stream read again: the first session and a second one
    invocation = ingest.invoke(both)
    assert invocation.error is None
    # A different batch (other event ids) is a new idempotency key, counted in full.
    assert invocation.output.total("Events", **dims(aws, GUEST_MONITOR)) == simulator.tally.events(GUEST_MONITOR)
    assert simulator.tally.events(GUEST_MONITOR) > before


def test_a_control_message_is_skipped(aws: EmbeddedAws, ingest: LocalFunction) -> None:
    invocation = ingest.invoke(control_message_event(aws.monitor(GUEST_MONITOR).log_group))

    assert invocation.error is None
    assert invocation.value == {"skipped": "CONTROL_MESSAGE"}
    assert invocation.output.blobs == []
    assert aws.dynamodb.scan(TableName=aws.table_name)["Items"] == []


def _gzip_b64(data: bytes) -> str:
    return base64.b64encode(gzip.compress(data)).decode()


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"awslogs": {"data": "this is not base64!"}}, id="not-base64"),
        pytest.param({"awslogs": {"data": base64.b64encode(b"plain, not gzip").decode()}}, id="not-gzip"),
        pytest.param({"awslogs": {"data": _gzip_b64(b"{not json")}}, id="not-json"),
        pytest.param({"awslogs": {"data": _gzip_b64(b'{"hello": "world"}')}}, id="not-a-batch"),
        pytest.param({"Records": []}, id="not-a-subscription-event"),
    ],
)
def test_an_undecodable_payload_is_counted_logged_and_raised(
    aws: EmbeddedAws, ingest: LocalFunction, event: dict[str, Any]
) -> None:
    invocation = ingest.invoke(event)

    assert isinstance(invocation.error, UndecodablePayloadError)
    output = invocation.output
    assert output.total("RejectedEvents", **UNMATCHED, Reason="undecodable") == 1
    assert output.total("RejectedEvents", **UNMATCHED) == 1
    assert "Events" not in output.metric_names()
    (error_line,) = output.log_records(level="ERROR")
    assert error_line["message"] == "undecodable CloudWatch Logs subscription payload"
    assert error_line["error"]
    assert aws.dynamodb.scan(TableName=aws.table_name)["Items"] == []


@pytest.mark.parametrize(
    "log_group",
    [
        "/aws/vendedlogs/RUMService_SomeoneElsesShop1a2b3c4d",
        f"/aws/vendedlogs/RUMService_{GUEST_MONITOR}",  # a configured name, but no app monitor id
        "/aws/lambda/rumguard-ingest",
    ],
)
def test_a_log_group_of_no_configured_monitor_is_rejected(
    aws: EmbeddedAws, ingest: LocalFunction, simulator: TrafficSimulator, log_group: str
) -> None:
    records = simulator.guest_browse(identity_id(simulator.rng), pages=2)
    aws.create_log_group(log_group)
    aws.put_messages(log_group, ((r.timestamp_ms, r.message) for r in records))
    (event,) = list(aws.deliveries(log_group))

    invocation = ingest.invoke(event)

    assert invocation.error is None
    output = invocation.output
    assert output.total("RejectedEvents", **UNMATCHED, Reason="unknown_monitor") == len(records)
    assert output.total("RejectedEvents", **UNMATCHED) == len(records)
    assert output.total("Events", **UNMATCHED) == 0
    for name in (GUEST_MONITOR, SIGNED_IN_MONITOR):
        assert output.values("Events", **dims(aws, name)) == []
    (warning,) = output.log_records(level="WARNING", message="rejected RUM log events")
    assert warning["logGroup"] == log_group
    assert warning["rejected"] == {"unknown_monitor": len(records)}


def test_bad_messages_are_counted_and_logged_once_and_the_good_ones_still_count(
    aws: EmbeddedAws, ingest: LocalFunction, simulator: TrafficSimulator
) -> None:
    good = simulator.guest_browse(identity_id(simulator.rng), pages=3)
    sample = next(r for r in good if r.kind is EventKind.PAGE_VIEW)
    at = sample.timestamp_ms
    three_days = 3 * 24 * 60 * 60 * 1000
    bad = {
        "not_json": "GET /favicon.ico HTTP/1.1 404",
        "not_rum": '{"level": "info", "msg": "some other application log"}',
        "invalid": variant(sample, event_details={"interaction": "three"}),
        "clock_skew": variant(sample, event_timestamp=at - three_days),
    }
    group = aws.monitor(GUEST_MONITOR).log_group
    aws.put_messages(group, [(r.timestamp_ms, r.message) for r in good] + [(at, m) for m in bad.values()])
    (event,) = list(aws.deliveries(group))
    ids = {e["message"]: e["id"] for e in decode(event)["logEvents"]}

    invocation = ingest.invoke(event)

    assert invocation.error is None
    output, where = invocation.output, dims(aws, GUEST_MONITOR)
    assert output.total("Events", **where) == len(good)
    assert output.total("PageViews", **where) == simulator.tally.count(GUEST_MONITOR, EventKind.PAGE_VIEW)
    assert output.total("RejectedEvents", **where) == len(bad)
    for reason in bad:
        assert output.total("RejectedEvents", **where, Reason=reason) == 1, reason
    (warning,) = output.log_records(level="WARNING")
    assert warning["message"] == "rejected RUM log events"
    assert warning["appMonitor"] == GUEST_MONITOR
    assert warning["logEvents"] == len(good) + len(bad)
    assert warning["rejected"] == dict.fromkeys(bad, 1)
    assert set(warning["samples"]) == set(bad)
    for reason, message in bad.items():
        sample_line = warning["samples"][reason]
        assert sample_line["logEventId"] == ids[message], reason
        assert message.startswith(sample_line["message"]), reason
        assert sample_line["detail"], reason
    assert invocation.value["accepted"] == len(good)
    assert invocation.value["rejected"] == dict.fromkeys(bad, 1)


def test_events_without_an_identity_still_count(
    aws: EmbeddedAws, ingest: LocalFunction, simulator: TrafficSimulator
) -> None:
    records = simulator.guest_browse(identity_id(simulator.rng), pages=2)
    anonymous = []
    for record in records:
        body = orjson.loads(record.message)
        del body["metadata"]["cognitoIdentityId"]
        anonymous.append((record.timestamp_ms, orjson.dumps(body).decode()))
    group = aws.monitor(GUEST_MONITOR).log_group
    aws.put_messages(group, anonymous)
    (event,) = list(aws.deliveries(group))

    invocation = ingest.invoke(event)

    assert invocation.error is None
    assert invocation.output.total("Events", **dims(aws, GUEST_MONITOR)) == len(records)
    assert invocation.value["identities"] == 0
