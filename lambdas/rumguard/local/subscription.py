"""CloudWatch Logs subscription payloads, built the way CloudWatch Logs builds them for Lambda.

CloudWatch Logs hands a subscribed function ``{"awslogs": {"data": base64(gzip(json(batch)))}}`` where
the batch is ``{"messageType", "owner", "logGroup", "logStream", "subscriptionFilters", "logEvents"}`` and
each log event is ``{"id", "timestamp", "message"}``. The demo, the benchmark and the tests use this module
so that they all feed the ingest handler the same shape a deployed stack receives.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

#: CloudWatch Logs caps a subscription delivery at about 1 MB of log events before compression.
MAX_BATCH_BYTES: Final = 1_048_576
#: ...and at 10,000 log events.
MAX_BATCH_EVENTS: Final = 10_000
#: Each log event costs its message size plus 26 bytes in the service's accounting.
EVENT_OVERHEAD_BYTES: Final = 26


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One log event of a delivery."""

    id: str
    timestamp: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape inside ``logEvents``."""
        return {"id": self.id, "timestamp": self.timestamp, "message": self.message}


def batches(events: Iterable[LogEvent], max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[LogEvent]]:
    """Split log events into deliveries no larger than CloudWatch Logs makes them."""
    batch: list[LogEvent] = []
    size = 0
    for event in events:
        cost = len(event.message.encode()) + EVENT_OVERHEAD_BYTES
        if batch and (size + cost > max_bytes or len(batch) >= MAX_BATCH_EVENTS):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += cost
    if batch:
        yield batch


def batch_document(
    log_group: str,
    events: Sequence[LogEvent],
    *,
    log_stream: str = "rum",
    owner: str = "123456789012",
    filter_name: str = "rumguard-ingest",
) -> dict[str, Any]:
    """The decoded batch, as the ingest handler sees it after base64 and gzip."""
    return {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": [filter_name],
        "logEvents": [event.as_dict() for event in events],
    }


def encode(document: dict[str, Any]) -> dict[str, Any]:
    """The Lambda event of a decoded batch: ``{"awslogs": {"data": base64(gzip(json))}}``."""
    data = base64.b64encode(gzip.compress(orjson.dumps(document))).decode("ascii")
    return {"awslogs": {"data": data}}


def subscription_event(log_group: str, events: Sequence[LogEvent], **kwargs: Any) -> dict[str, Any]:
    """The Lambda event CloudWatch Logs would deliver for these log events of ``log_group``."""
    return encode(batch_document(log_group, events, **kwargs))


def control_message_event(log_group: str) -> dict[str, Any]:
    """The control message CloudWatch Logs sends when a subscription is created (to test reachability)."""
    return encode(
        {
            "messageType": "CONTROL_MESSAGE",
            "owner": "CloudwatchLogs",
            "logGroup": "",
            "logStream": "",
            "subscriptionFilters": [],
            "logEvents": [
                {
                    "id": "",
                    "timestamp": 0,
                    "message": f"CWL CONTROL MESSAGE: Checking health of destination {log_group}",
                }
            ],
        }
    )
