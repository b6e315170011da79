"""Metrics and log lines of a batch: the public metric contract, written through Powertools.

Metrics go out in CloudWatch embedded metric format, namespace ``RumGuard``, with the dimensions
``AppMonitor`` and ``Audience`` on every metric; ``RejectedEvents`` also goes out once per reason with a
``Reason`` dimension. Counts are added once per batch (not once per event), and timings as value arrays so
that CloudWatch can compute percentiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from rumguard.events import EventKind, RejectReason
from rumguard.ingest import BatchReport

NAMESPACE: Final = "RumGuard"
#: The ``AppMonitor`` value of events whose log group matches no configured monitor.
UNMATCHED: Final = "unmatched"
NO_AUDIENCE: Final = "none"

#: Count metrics and the event kind each one counts.
KIND_COUNTS: Final = {
    "PageViews": EventKind.PAGE_VIEW,
    "SessionStarts": EventKind.SESSION_START,
    "JsErrors": EventKind.JS_ERROR,
}
#: Timing metrics (value arrays) and the event kind each comes from.
TIMINGS: Final = {
    EventKind.NAVIGATION: ("PageLoadTime", MetricUnit.Milliseconds),
    EventKind.LCP: ("LargestContentfulPaint", MetricUnit.Milliseconds),
    EventKind.FCP: ("FirstContentfulPaint", MetricUnit.Milliseconds),
    EventKind.FID: ("FirstInputDelay", MetricUnit.Milliseconds),
    EventKind.TTFB: ("TimeToFirstByte", MetricUnit.Milliseconds),
    EventKind.INP: ("InteractionToNextPaint", MetricUnit.Milliseconds),
    EventKind.CLS: ("CumulativeLayoutShift", MetricUnit.NoUnit),
}


def dimensions_of(report: BatchReport) -> dict[str, str]:
    """The dimension set of a batch's metrics."""
    if report.monitor is None:
        return {"AppMonitor": UNMATCHED, "Audience": NO_AUDIENCE}
    return {"AppMonitor": report.monitor.name, "Audience": report.monitor.audience.value}


def publish_batch(metrics: Metrics, report: BatchReport) -> None:
    """Add one batch's metrics to ``metrics``; the handler's ``log_metrics`` flushes them once."""
    dimensions = dimensions_of(report)
    for name, value in dimensions.items():
        metrics.add_dimension(name=name, value=value)
    count = MetricUnit.Count
    metrics.add_metric(name="Events", unit=count, value=report.accepted)
    for name, kind in KIND_COUNTS.items():
        metrics.add_metric(name=name, unit=count, value=report.count(kind))
    metrics.add_metric(name="HttpErrors", unit=count, value=report.http_errors)
    metrics.add_metric(name="UnattributedEvents", unit=count, value=report.without_identity)
    for kind, values in report.timings.items():
        name, unit = TIMINGS[kind]
        for value in values:
            metrics.add_metric(name=name, unit=unit, value=value)
    publish_rejections(metrics, dimensions, report.rejected)


def publish_rejections(metrics: Metrics, dimensions: Mapping[str, str], rejected: Mapping[RejectReason, int]) -> None:
    """``RejectedEvents`` in the batch's dimension set, and once per reason with ``Reason`` added."""
    metrics.add_metric(name="RejectedEvents", unit=MetricUnit.Count, value=sum(rejected.values()))
    for reason, count in rejected.items():
        with single_metric(
            name="RejectedEvents",
            unit=MetricUnit.Count,
            value=count,
            namespace=NAMESPACE,
            default_dimensions=dict(dimensions),
        ) as metric:
            metric.add_dimension(name="Reason", value=reason.value)


def log_rejections(logger: Logger, report: BatchReport) -> None:
    """One structured warning per batch that had rejections, with one sample per reason."""
    if not report.rejected:
        return
    samples: dict[str, Any] = {
        reason.value: {"logEventId": s.log_event_id, "detail": s.detail, "message": s.excerpt}
        for reason, s in report.samples.items()
    }
    logger.warning(
        "rejected RUM log events",
        extra={
            "logGroup": report.log_group,
            "appMonitor": dimensions_of(report)["AppMonitor"],
            "rejected": {reason.value: count for reason, count in report.rejected.items()},
            "logEvents": report.log_events,
            "samples": samples,
        },
    )
