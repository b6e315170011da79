"""Turn one batch of a RUM log group into per-monitor statistics and per-identity activity.

Pure domain code: a batch (the log group and its log events, as CloudWatch Logs delivers them) goes in,
a ``BatchReport`` comes out. Nothing here talks to AWS; the runtime decides what to do with the report.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from msgspec import UNSET

from rumguard.events import EventKind, HttpDetails, Rejection, RejectReason, claimed_attribute, parse_event
from rumguard.monitors import Monitor, MonitorDirectory

#: Event kinds whose ``value`` (or, for navigation, ``duration``) is a timing worth a percentile.
TIMED_KINDS: Final = frozenset(
    {
        EventKind.NAVIGATION,
        EventKind.LCP,
        EventKind.FCP,
        EventKind.FID,
        EventKind.CLS,
        EventKind.INP,
        EventKind.TTFB,
    }
)
#: Rejections that still count against the identity the message claims (the junk rule).
JUNK_REASONS: Final = frozenset({RejectReason.INVALID, RejectReason.TOO_LONG, RejectReason.CLOCK_SKEW})
#: How much of a bad message a log line may quote.
SAMPLE_CHARS: Final = 300


@dataclass(slots=True)
class IdentityActivity:
    """What one identity did in one batch: the counts the detection rules look at."""

    events: int = 0
    session_starts: int = 0
    page_views: int = 0
    js_errors: int = 0
    junk: int = 0
    first_ms: float = math.inf
    last_ms: float = -math.inf

    def seen_at(self, received_ms: float) -> None:
        """Widen the time span of this identity's activity to include ``received_ms``."""
        self.first_ms = min(self.first_ms, received_ms)
        self.last_ms = max(self.last_ms, received_ms)


@dataclass(frozen=True, slots=True)
class RejectSample:
    """The first rejected message of a reason in a batch, for the log."""

    log_event_id: str
    detail: str
    excerpt: str


@dataclass(slots=True)
class BatchReport:
    """Everything one batch contributed: counts per event kind, timings, rejections and identities."""

    log_group: str
    monitor: Monitor | None
    log_events: int = 0
    by_kind: dict[EventKind, int] = field(default_factory=dict)
    http_errors: int = 0
    timings: dict[EventKind, list[float]] = field(default_factory=dict)
    rejected: dict[RejectReason, int] = field(default_factory=dict)
    samples: dict[RejectReason, RejectSample] = field(default_factory=dict)
    identities: dict[str, IdentityActivity] = field(default_factory=dict)
    without_identity: int = 0

    @property
    def accepted(self) -> int:
        """Events that parsed and count in the monitor's metrics."""
        return sum(self.by_kind.values())

    @property
    def rejected_total(self) -> int:
        """Log events that were not usable RUM events."""
        return sum(self.rejected.values())

    def count(self, kind: EventKind) -> int:
        """Accepted events of one kind."""
        return self.by_kind.get(kind, 0)

    def reject(self, reason: RejectReason, detail: str, log_event: Mapping[str, Any], count: int = 1) -> None:
        """Count ``count`` rejections of ``reason``; the first of each reason is kept as the sample."""
        self.rejected[reason] = self.rejected.get(reason, 0) + count
        if reason not in self.samples:
            message = log_event.get("message")
            excerpt = message[:SAMPLE_CHARS] if isinstance(message, str) else repr(message)[:SAMPLE_CHARS]
            self.samples[reason] = RejectSample(str(log_event.get("id", "")), detail, excerpt)


def batch_key(log_group: str, log_event_ids: Sequence[str]) -> str:
    """A stable name of one delivery: a redelivered batch has the same log group and log event ids."""
    digest = hashlib.sha256(log_group.encode())
    for log_event_id in log_event_ids:
        digest.update(b"\0" + log_event_id.encode())
    return digest.hexdigest()[:32]


def _timing(kind: EventKind, details: Any) -> float:
    return details.duration if kind is EventKind.NAVIGATION else details.value  # type: ignore[no-any-return]


def _is_http_error(details: HttpDetails) -> bool:
    """A failed request: the client recorded an error (network, CORS, abort), or the status is 4xx/5xx."""
    if details.error is not UNSET:
        return True
    return details.response is not UNSET and details.response.status >= 400


def ingest_batch(
    log_group: str,
    log_events: Iterable[Mapping[str, Any]],
    monitors: MonitorDirectory,
    identity_attribute: str,
) -> BatchReport:
    """Parse and count every log event of one subscription batch.

    Nothing in a batch can make this raise: every log event is either counted under its kind or counted
    as a rejection with a reason, and a bad event never stops the ones after it.
    """
    monitor = monitors.for_log_group(log_group)
    report = BatchReport(log_group=log_group, monitor=monitor)
    events = log_events if isinstance(log_events, list) else list(log_events)
    report.log_events = len(events)
    if monitor is None:
        if events:
            detail = f"log group {log_group!r} matches no configured app monitor"
            report.reject(RejectReason.UNKNOWN_MONITOR, detail, events[0], len(events))
        return report

    by_kind, timings, identities = report.by_kind, report.timings, report.identities
    for log_event in events:
        if type(log_event) is not dict:
            report.reject(RejectReason.NOT_RUM, "log event is not a JSON object", {"message": log_event})
            continue
        message, received_ms = log_event.get("message"), log_event.get("timestamp")
        if type(message) is not str or not isinstance(received_ms, int | float) or isinstance(received_ms, bool):
            report.reject(RejectReason.NOT_RUM, "log event lacks a string message or a numeric timestamp", log_event)
            continue
        result = parse_event(message, received_ms)
        if type(result) is Rejection:
            report.reject(result.reason, result.detail, log_event)
            if result.reason in JUNK_REASONS:
                claimed = claimed_attribute(message, identity_attribute)
                if claimed is not None:
                    junk = identities.get(claimed)
                    if junk is None:
                        junk = identities[claimed] = IdentityActivity()
                    junk.junk += 1
                    junk.seen_at(received_ms)
            continue
        kind = result.kind  # type: ignore[union-attr]
        by_kind[kind] = by_kind.get(kind, 0) + 1
        if kind in TIMED_KINDS:
            timings.setdefault(kind, []).append(_timing(kind, result.details))  # type: ignore[union-attr]
        elif kind is EventKind.HTTP and _is_http_error(result.details):  # type: ignore[union-attr]
            report.http_errors += 1
        identity = result.attribute(identity_attribute)  # type: ignore[union-attr]
        if identity is None:
            report.without_identity += 1
            continue
        activity = identities.get(identity)
        if activity is None:
            activity = identities[identity] = IdentityActivity()
        activity.events += 1
        if kind is EventKind.SESSION_START:
            activity.session_starts += 1
        elif kind is EventKind.PAGE_VIEW:
            activity.page_views += 1
        elif kind is EventKind.JS_ERROR:
            activity.js_errors += 1
        # seen_at(), inlined: this line runs once per event and two comparisons beat min() and max().
        if received_ms > activity.last_ms:
            activity.last_ms = received_ms
        if received_ms < activity.first_ms:
            activity.first_ms = received_ms
    return report
