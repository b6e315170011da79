"""The RUM Guard CloudWatch dashboard, as data: template.yaml's ``DashboardBody`` is this body.

``dashboard_body`` builds the body for given monitors and resource names. With ``TEMPLATE_VALUES`` (CloudFormation
``${...}`` placeholders for the stack's parameters and resources) it is exactly the JSON that template.yaml
embeds with ``!Sub``; a contract test holds the two equal, and ``rumguard dashboard`` prints it to paste.

Per app monitor: traffic, errors (counts and the rates the alarms watch), page-load and web-vital percentiles,
blocks and rejected events, and the state of the monitor's alarms. Then the pool-wide deny policy, and the
pipeline's health: the functions' errors, throttles, durations and event age, the dead-letter queues, the
template's pipeline alarms, and the operator API's answers.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rumguard.alarms import (
    ABUSE_KINDS,
    ALL_MONITORS,
    HEALTH_KINDS,
    NAMESPACE,
    NO_AUDIENCE,
    POOL_KINDS,
    UNMATCHED,
    AlarmKind,
    AlarmThresholds,
    alarm_name,
)
from rumguard.monitors import Audience

WIDTH: Final = 24
HEIGHT: Final = 6
PERIOD: Final = 300
#: The template's pipeline alarms, ``<prefix>/<label>`` (template.yaml names them so; a contract test checks).
PIPELINE_ALARMS: Final = (
    "ingest-errors",
    "ingest-throttles",
    "ingest-event-age",
    "ingest-dead-letters",
    "sweeper-errors",
    "sweeper-not-running",
    "notify-throttles",
    "api-errors",
    "api-throttles",
)
#: The template's alarms about the notify function itself, ``<prefix>-<label>``: outside ``<prefix>/`` so that
#: they never depend on the function they watch (they publish to the topic directly).
NOTIFY_SELF_ALARMS: Final = ("notify-errors", "notify-dead-letters")


@dataclass(frozen=True, slots=True)
class DashboardValues:
    """What the body is built for: monitors, and the names of the stack's resources."""

    guest: Sequence[str]
    signed_in: Sequence[str]
    region: str
    account_id: str
    partition: str
    alarm_prefix: str
    #: label -> Lambda function name.
    functions: Mapping[str, str]
    #: Functions invoked asynchronously (their event age and dropped events are shown).
    async_functions: Sequence[str]
    #: label -> SQS queue name.
    queues: Mapping[str, str]
    #: The operator API's API Gateway name and stage (its requests, errors and latency), if there is one.
    api: tuple[str, str] | None = None


#: The placeholders template.yaml's ``!Sub`` fills in.
TEMPLATE_VALUES: Final = DashboardValues(
    guest=("${GuestMonitorName}",),
    signed_in=("${SignedInMonitorName}",),
    region="${AWS::Region}",
    account_id="${AWS::AccountId}",
    partition="${AWS::Partition}",
    alarm_prefix="${AWS::StackName}",
    functions={
        "ingest": "${IngestFunction}",
        "sweeper": "${SweeperFunction}",
        "notify": "${NotifyFunction}",
        "api": "${ApiFunction}",
    },
    async_functions=("ingest", "notify"),
    queues={
        "ingest dead letters": "${IngestDeadLetterQueue.QueueName}",
        "notify dead letters": "${NotifyDeadLetterQueue.QueueName}",
    },
    api=("${AWS::StackName}-api", "api"),
)


class _Layout:
    """Places widgets left to right in rows of 24 columns."""

    def __init__(self) -> None:
        self.widgets: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.row_height = 0

    def add(self, widget: dict[str, Any], width: int, height: int = HEIGHT) -> None:
        if self.x + width > WIDTH:
            self.newline()
        self.widgets.append({**widget, "x": self.x, "y": self.y, "width": width, "height": height})
        self.x += width
        self.row_height = max(self.row_height, height)

    def newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x, self.row_height = 0, 0


def _metric(name: str, monitor: str, audience: str, **options: Any) -> list[Any]:
    return [NAMESPACE, name, "AppMonitor", monitor, "Audience", audience, options]


def _graph(values: DashboardValues, title: str, metrics: list[list[Any]], **properties: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "properties": {
            "title": title,
            "view": "timeSeries",
            "stacked": False,
            "region": values.region,
            "period": PERIOD,
            "stat": "Sum",
            "metrics": metrics,
            **properties,
        },
    }


def _text(markdown: str) -> dict[str, Any]:
    return {"type": "text", "properties": {"markdown": markdown}}


def _alarms(values: DashboardValues, title: str, names: Sequence[str]) -> dict[str, Any]:
    arns = [f"arn:{values.partition}:cloudwatch:{values.region}:{values.account_id}:alarm:{n}" for n in names]
    return {"type": "alarm", "properties": {"title": title, "alarms": arns, "sortBy": "stateUpdatedTimestamp"}}


def _monitor_section(layout: _Layout, values: DashboardValues, monitor: str, audience: Audience) -> None:
    t = AlarmThresholds()
    a = audience.value
    layout.newline()
    layout.add(_text(f"## App monitor {monitor} ({a})"), WIDTH, 1)
    layout.add(
        _graph(
            values,
            f"{monitor}: traffic",
            [
                _metric("Events", monitor, a, label="events"),
                _metric("PageViews", monitor, a, label="page views"),
                _metric("SessionStarts", monitor, a, label="session starts"),
            ],
        ),
        8,
    )
    layout.add(
        _graph(
            values,
            f"{monitor}: errors",
            [
                _metric("JsErrors", monitor, a, id="js", label="JS errors"),
                _metric("HttpErrors", monitor, a, id="http", label="HTTP errors"),
                _metric("PageViews", monitor, a, id="views", visible=False),
                _metric("Events", monitor, a, id="events", visible=False),
                [
                    {
                        "expression": f"IF(views >= {t.min_volume}, 100 * js / views, 0)",
                        "id": "jsrate",
                        "label": "JS errors per 100 page views",
                        "yAxis": "right",
                    }
                ],
                [
                    {
                        "expression": f"IF(events >= {t.min_volume}, 100 * http / events, 0)",
                        "id": "httprate",
                        "label": "HTTP errors per 100 events",
                        "yAxis": "right",
                    }
                ],
            ],
        ),
        8,
    )
    layout.add(
        _graph(
            values,
            f"{monitor}: page load and web vitals (ms; CLS right)",
            [
                _metric("PageLoadTime", monitor, a, stat="p50", label="page load p50"),
                _metric("PageLoadTime", monitor, a, stat="p90", label="page load p90"),
                _metric("LargestContentfulPaint", monitor, a, stat="p75", label="LCP p75"),
                _metric("InteractionToNextPaint", monitor, a, stat="p75", label="INP p75"),
                _metric("CumulativeLayoutShift", monitor, a, stat="p75", label="CLS p75", yAxis="right"),
            ],
        ),
        8,
    )
    guarded = [
        _metric("IdentitiesBlocked", monitor, a, label="identities blocked"),
        _metric("ForgedIdentities", monitor, a, label="forged identities refused"),
        _metric("BlockStorm", monitor, a, label="safety valve trips"),
    ]
    rejected = [
        _metric("RejectedEvents", monitor, a, label="rejected events"),
        _metric("UnattributedEvents", monitor, a, label="events without an identity"),
    ]
    guest = audience is Audience.GUEST
    title = f"{monitor}: blocks and rejected events" if guest else f"{monitor}: rejected events"
    layout.add(_graph(values, title, (guarded if guest else []) + rejected), 12)
    kinds = (*ABUSE_KINDS, *HEALTH_KINDS) if guest else HEALTH_KINDS
    names = [alarm_name(values.alarm_prefix, kind, monitor) for kind in kinds]
    layout.add(_alarms(values, f"{monitor}: alarms", names), 12)


def _pool_section(layout: _Layout, values: DashboardValues) -> None:
    t = AlarmThresholds()
    guest = Audience.GUEST.value
    layout.newline()
    layout.add(_text("## Deny policy and unattributed events (all monitors)"), WIDTH, 1)
    layout.add(
        _graph(
            values,
            "Deny policy: share of the guest role's inline policy space used (%)",
            [_metric("PolicyCapacityUsed", ALL_MONITORS, guest, stat="Maximum", label="capacity used")],
            yAxis={"left": {"min": 0, "max": 100}},
            annotations={"horizontal": [{"label": "alarm", "value": t.policy_capacity}]},
        ),
        8,
    )
    layout.add(
        _graph(
            values,
            "Blocks ending, unenforced, not deleted",
            [
                _metric("IdentitiesUnblocked", ALL_MONITORS, guest, label="unblocked (expired)"),
                _metric("UnenforcedBlocks", ALL_MONITORS, guest, stat="Maximum", label="unenforced blocks"),
                _metric("IdentitiesNotDeleted", ALL_MONITORS, guest, label="identities not deleted"),
                _metric("RejectedEvents", UNMATCHED, NO_AUDIENCE, label="events of unknown log groups"),
            ],
        ),
        8,
    )
    names = [alarm_name(values.alarm_prefix, kind) for kind in (*POOL_KINDS, AlarmKind.UNMATCHED_EVENTS)]
    layout.add(_alarms(values, "Pool-wide alarms", names), 8)


def _lambda(name: str, function: str, **options: Any) -> list[Any]:
    return ["AWS/Lambda", name, "FunctionName", function, options]


def _pipeline_section(layout: _Layout, values: DashboardValues) -> None:
    layout.newline()
    layout.add(_text("## Pipeline"), WIDTH, 1)
    functions = values.functions.items()
    layout.add(
        _graph(
            values,
            "Functions: errors and throttles",
            [_lambda("Errors", f, label=f"{label} errors") for label, f in functions]
            + [_lambda("Throttles", f, label=f"{label} throttles") for label, f in functions],
        ),
        8,
    )
    layout.add(
        _graph(
            values,
            "Functions: duration p99 (ms)",
            [_lambda("Duration", f, stat="p99", label=label) for label, f in functions],
        ),
        8,
    )
    layout.add(
        _graph(
            values,
            "Asynchronous events: oldest age (ms) and dropped",
            [
                _lambda("AsyncEventAge", values.functions[label], stat="Maximum", label=f"{label} event age")
                for label in values.async_functions
            ]
            + [
                _lambda("AsyncEventsDropped", values.functions[label], label=f"{label} dropped", yAxis="right")
                for label in values.async_functions
            ],
        ),
        8,
    )
    queues = values.queues.items()
    layout.add(
        _graph(
            values,
            "Dead-letter queues: messages, and age of the oldest (s, right)",
            [
                ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q, {"stat": "Maximum", "label": label}]
                for label, q in queues
            ]
            + [
                [
                    "AWS/SQS",
                    "ApproximateAgeOfOldestMessage",
                    "QueueName",
                    q,
                    {"stat": "Maximum", "label": f"{label}: oldest", "yAxis": "right"},
                ]
                for label, q in queues
            ],
        ),
        12,
    )
    names = [f"{values.alarm_prefix}/{label}" for label in PIPELINE_ALARMS]
    names += [f"{values.alarm_prefix}-{label}" for label in NOTIFY_SELF_ALARMS]
    layout.add(_alarms(values, "Pipeline alarms", names), 12)
    if values.api is not None:
        name, stage = values.api

        def gateway(metric: str, **options: Any) -> list[Any]:
            return ["AWS/ApiGateway", metric, "ApiName", name, "Stage", stage, options]

        layout.add(
            _graph(
                values,
                "Operator API: requests, 4xx and 5xx answers; latency p99 (ms, right)",
                [
                    gateway("Count", label="requests"),
                    gateway("4XXError", label="4xx answers"),
                    gateway("5XXError", label="5xx answers"),
                    gateway("Latency", stat="p99", label="latency p99", yAxis="right"),
                ],
            ),
            12,
        )


def dashboard_body(values: DashboardValues = TEMPLATE_VALUES) -> dict[str, Any]:
    """The dashboard body (``PutDashboard``'s ``DashboardBody``, as a dictionary)."""
    layout = _Layout()
    monitors = [(m, Audience.GUEST) for m in values.guest] + [(m, Audience.SIGNED_IN) for m in values.signed_in]
    layout.add(
        _text(
            f"# RUM Guard: {values.alarm_prefix}\n"
            "Per app monitor: traffic, errors, web vitals, blocks and alarms; then the deny policy and the "
            "pipeline. Alarms notify through the notify function (one message per transition)."
        ),
        WIDTH,
        2,
    )
    layout.add(
        _graph(
            values,
            "Traffic by audience (events)",
            [_metric("Events", m, a.value, label=f"{a.value}: {m}") for m, a in monitors],
        ),
        12,
    )
    layout.add(
        _graph(
            values,
            "Page views by audience",
            [_metric("PageViews", m, a.value, label=f"{a.value}: {m}") for m, a in monitors],
        ),
        12,
    )
    for monitor, audience in monitors:
        _monitor_section(layout, values, monitor, audience)
    _pool_section(layout, values)
    _pipeline_section(layout, values)
    return {"start": "-PT6H", "periodOverride": "inherit", "widgets": layout.widgets}


def render(body: Mapping[str, Any], *, width: int | None = 110) -> str:
    """The body as JSON text: each value on one line if it fits in ``width`` columns (``None``: all on one)."""
    if width is None:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return _pretty(body, 0, width)


def _leaf(value: Any) -> bool:
    """A list of scalars and flat objects (a metric line): one line whatever its length."""
    flat = (str, int, float, bool, type(None))
    return isinstance(value, list) and all(
        isinstance(v, flat) or (isinstance(v, dict) and all(isinstance(x, flat) for x in v.values())) for v in value
    )


def _pretty(value: Any, indent: int, width: int) -> str:
    flat = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if indent + len(flat) <= width or not isinstance(value, dict | list) or not value or _leaf(value):
        return flat
    inner = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_pretty(v, indent + 2, width).lstrip()}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    rows = [f"{inner}{_pretty(v, indent + 2, width).lstrip()}" for v in value]
    return "[\n" + ",\n".join(rows) + "\n" + " " * indent + "]"


# --- rumguard dashboard ---------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``rumguard dashboard``: print the body template.yaml embeds."""
    parser.add_argument("--compact", action="store_true", help="one line instead of indented JSON")


def run(args: argparse.Namespace) -> int:
    """Print the dashboard body with template.yaml's ``${...}`` placeholders (for ``!Sub``)."""
    print(render(dashboard_body(), width=None if args.compact else 110))
    return 0
