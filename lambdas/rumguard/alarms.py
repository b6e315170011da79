"""The CloudWatch alarms RUM Guard publishes for each app monitor, as data, and how to reconcile them.

The sweeper owns these alarms: every run it computes the desired set from the configured monitors and the
thresholds, reads what exists under the alarm name prefix, and writes only the differences (create, update,
delete, tag). Running it twice changes nothing; an alarm edited by hand is put back on the next run.

Names are ``<prefix>/<monitor>/<kind>`` per monitor and ``<prefix>/<kind>`` for the pool-wide ones. The prefix
is the stack name: CloudFormation stack names cannot contain ``/`` and RUM monitor names cannot either, so a
name splits unambiguously, and ``<prefix>/`` never matches another stack's alarms (the EventBridge rule of the
notify function filters on it too). Every alarm is tagged ``rumguard:managed=true``, ``rumguard:owner=<prefix>``,
``rumguard:monitor`` and ``rumguard:kind``; only alarms carrying the first two are ever deleted, so alarms under
the prefix made by someone else (the template's pipeline alarms, for one) are left alone.

Alarms have no actions. A person hears of a transition through the EventBridge rule on "CloudWatch Alarm State
Change" that invokes the notify function; an SNS alarm action as well would send every transition twice.

Per monitor (every metric is keyed by ``AppMonitor`` and ``Audience``; periods of 5 minutes):

``traffic-surge`` (guest)
    ``Events`` above the anomaly detection band (``TRAFFIC_SURGE_BAND`` standard deviations) in 2 of 3 periods.
    CloudWatch trains the model when the alarm is created (no separate ``PutAnomalyDetector``).
``js-error-rate``
    ``100 * JsErrors / PageViews`` above ``JS_ERROR_RATE_PERCENT`` in 2 of 3 periods; a period with fewer than
    ``ERROR_RATE_MIN_VOLUME`` page views counts as 0, so three page views and one error do not page anyone.
``http-error-rate``
    ``100 * HttpErrors / Events`` above ``HTTP_ERROR_RATE_PERCENT``, same rules (volume counted in events).
``rejected-events``
    ``RejectedEvents`` more than ``REJECTED_EVENTS_LIMIT`` in one period.
``blocks`` (guest)
    ``IdentitiesBlocked`` more than ``BLOCKS_ALARM_LIMIT`` in one period: an abuse wave.
``safety-valve`` (guest)
    Any ``BlockStorm``: automatic blocking is paused and waits for people.

Pool-wide (``AppMonitor=all``, ``Audience=guest``; only when a guest monitor is configured):
``policy-capacity`` (``PolicyCapacityUsed`` above ``POLICY_CAPACITY_PERCENT``) and ``unenforced-blocks`` (any
block that did not fit in the deny policy). Always: ``unmatched-events`` (any event of a log group that matches
no configured monitor, or an undecodable delivery: ``AppMonitor=unmatched``).

Missing data is not breaching: no traffic is not a problem these alarms report (a sweeper that stops running is
a pipeline alarm of the template).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from rumguard.monitors import Audience, Monitor

#: The metric namespace (``rumguard.telemetry.NAMESPACE``; repeated here because telemetry needs Powertools).
NAMESPACE: Final = "RumGuard"
#: ``AppMonitor`` of pool-wide figures and of events no configured monitor claims (as ``rumguard.telemetry``).
ALL_MONITORS: Final = "all"
UNMATCHED: Final = "unmatched"
NO_AUDIENCE: Final = "none"
PERIOD_SECONDS: Final = 300
SEPARATOR: Final = "/"
#: CloudWatch's limit on alarm names.
MAX_NAME: Final = 255
MANAGED_TAG: Final = "rumguard:managed"
OWNER_TAG: Final = "rumguard:owner"
MONITOR_TAG: Final = "rumguard:monitor"
KIND_TAG: Final = "rumguard:kind"
#: Written into every description, so someone editing an alarm in the console knows it will not last.
MANAGED_NOTE: Final = "Managed by the RUM Guard sweeper: edits are overwritten on its next run."


class AlarmKind(enum.StrEnum):
    """What an alarm watches; the last part of its name."""

    TRAFFIC_SURGE = "traffic-surge"
    JS_ERROR_RATE = "js-error-rate"
    HTTP_ERROR_RATE = "http-error-rate"
    REJECTED_EVENTS = "rejected-events"
    BLOCKS = "blocks"
    SAFETY_VALVE = "safety-valve"
    POLICY_CAPACITY = "policy-capacity"
    UNENFORCED_BLOCKS = "unenforced-blocks"
    UNMATCHED_EVENTS = "unmatched-events"


#: Every monitor gets these; guest monitors get the abuse alarms as well.
HEALTH_KINDS: Final = (AlarmKind.JS_ERROR_RATE, AlarmKind.HTTP_ERROR_RATE, AlarmKind.REJECTED_EVENTS)
ABUSE_KINDS: Final = (AlarmKind.TRAFFIC_SURGE, AlarmKind.BLOCKS, AlarmKind.SAFETY_VALVE)
POOL_KINDS: Final = (AlarmKind.POLICY_CAPACITY, AlarmKind.UNENFORCED_BLOCKS)


@dataclass(frozen=True, slots=True)
class KindInfo:
    """How people read an alarm of one kind: a title and the unit of its value."""

    title: str
    unit: str
    #: What a person can look at or do first.
    advice: str
    #: ``True`` for anomaly detection (a band, not a threshold).
    band: bool = False


KINDS: Final[Mapping[AlarmKind, KindInfo]] = {
    AlarmKind.TRAFFIC_SURGE: KindInfo(
        "Guest traffic surge",
        "guest events in 5 min",
        "Compare traffic and blocks on the dashboard; bots that escape the rules call for lower detection limits "
        "or guest lockdown (PUT /lockdown).",
        band=True,
    ),
    AlarmKind.JS_ERROR_RATE: KindInfo(
        "JS error rate",
        "JS errors per 100 page views",
        "A release or a third-party script may be failing in browsers: see the app monitor's errors in the RUM "
        "console.",
    ),
    AlarmKind.HTTP_ERROR_RATE: KindInfo(
        "HTTP error rate",
        "failed HTTP requests per 100 events",
        "Backends (or CORS) are failing browsers' requests: see the app monitor's HTTP requests in the RUM console.",
    ),
    AlarmKind.REJECTED_EVENTS: KindInfo(
        "Rejected events",
        "rejected events in 5 min",
        "Junk or a client schema change: the ingest function logs a sample of each rejection reason.",
    ),
    AlarmKind.BLOCKS: KindInfo(
        "Abuse wave",
        "identities blocked in 5 min",
        "Review the blocks (GET /blocks); if it goes on, consider guest lockdown (PUT /lockdown).",
    ),
    AlarmKind.SAFETY_VALVE: KindInfo(
        "Safety valve",
        "safety valve trips in 5 min",
        "Automatic blocking is paused: decide on guest lockdown (PUT /lockdown) or block by hand.",
    ),
    AlarmKind.POLICY_CAPACITY: KindInfo(
        "Deny policy capacity",
        "% of the guest role's inline policy space",
        "Blocks will soon stop fitting in IAM: guest lockdown is the brake that does not need the space.",
    ),
    AlarmKind.UNENFORCED_BLOCKS: KindInfo(
        "Unenforced blocks",
        "active blocks not in the deny policy",
        "Some blocks are recorded but not enforced in IAM: see GET /blocks, consider guest lockdown.",
    ),
    AlarmKind.UNMATCHED_EVENTS: KindInfo(
        "Events of unknown log groups",
        "unattributable events in 5 min",
        "A subscribed log group matches no configured monitor, or deliveries are corrupt: check the monitor names.",
    ),
}


@dataclass(frozen=True, slots=True)
class AlarmThresholds:
    """The thresholds in force (``rumguard.settings.AlarmSettings`` reads them; these are the defaults)."""

    traffic_band: float = 3.0
    js_error_rate: float = 5.0
    http_error_rate: float = 10.0
    min_volume: int = 20
    blocks: int = 10
    rejected_events: int = 100
    policy_capacity: float = 80.0


# --- names -----------------------------------------------------------------------------------------------
def alarm_name(prefix: str, kind: AlarmKind, monitor: str | None = None) -> str:
    """``<prefix>/<monitor>/<kind>``, or ``<prefix>/<kind>`` for a pool-wide alarm.

    A monitor name too long for CloudWatch's 255 characters is cut and given a digest of the whole name, so two
    long names never share an alarm (the full name is in the alarm's tags and description).
    """
    if monitor is None:
        return f"{prefix}{SEPARATOR}{kind.value}"
    room = MAX_NAME - len(prefix) - len(kind.value) - 2 * len(SEPARATOR)
    if len(monitor) > room:
        digest = hashlib.blake2b(monitor.encode(), digest_size=4).hexdigest()
        monitor = f"{monitor[: room - len(digest) - 1]}~{digest}"
    return f"{prefix}{SEPARATOR}{monitor}{SEPARATOR}{kind.value}"


@dataclass(frozen=True, slots=True)
class ParsedName:
    """What an alarm's name says: its kind (if RUM Guard's) and its monitor (``None``: pool-wide)."""

    kind: AlarmKind | None
    monitor: str | None
    #: The last part of the name, a kind or (for the template's alarms) a free-form name.
    label: str


def parse_alarm_name(prefix: str, name: str) -> ParsedName | None:
    """Split a name made by ``alarm_name`` (or a template alarm named ``<prefix>/<label>``); ``None`` if the
    alarm is not under ``<prefix>/``."""
    head = f"{prefix}{SEPARATOR}"
    if not name.startswith(head):
        return None
    parts = name[len(head) :].split(SEPARATOR)
    label = parts[-1]
    kind = AlarmKind(label) if label in AlarmKind.__members__.values() else None
    if len(parts) == 2:
        return ParsedName(kind, parts[0], label)
    if len(parts) == 1:
        return ParsedName(kind, None, label)
    return ParsedName(None, None, SEPARATOR.join(parts))


# --- the desired set -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """One alarm as RUM Guard wants it: the ``PutMetricAlarm`` arguments (without ``Tags``) and its tags."""

    name: str
    kind: AlarmKind
    #: The ``AppMonitor`` value the alarm watches (``all`` or ``unmatched`` for pool-wide alarms).
    monitor: str
    request: Mapping[str, Any]
    tags: Mapping[str, str]


def _dimensions(monitor: str, audience: str) -> list[dict[str, str]]:
    return [{"Name": "AppMonitor", "Value": monitor}, {"Name": "Audience", "Value": audience}]


def _stat(query_id: str, metric: str, dimensions: list[dict[str, str]], stat: str = "Sum") -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
            "Period": PERIOD_SECONDS,
            "Stat": stat,
        },
        "ReturnData": False,
    }


def _single(metric: str, dimensions: list[dict[str, str]], threshold: float, stat: str = "Sum") -> dict[str, Any]:
    """A plain one-metric alarm: more than ``threshold`` in one period."""
    return {
        "Namespace": NAMESPACE,
        "MetricName": metric,
        "Dimensions": dimensions,
        "Statistic": stat,
        "Period": PERIOD_SECONDS,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
    }


def _rate(
    numerator: str, denominator: str, dimensions: list[dict[str, str]], threshold: float, minimum: int, label: str
) -> dict[str, Any]:
    """Metric math: ``100 * numerator / denominator`` where the denominator reaches ``minimum``, else 0."""
    expression = f"IF(volume >= {minimum}, 100 * problems / volume, 0)"
    return {
        "Metrics": [
            _stat("problems", numerator, dimensions),
            _stat("volume", denominator, dimensions),
            {"Id": "rate", "Expression": expression, "Label": label, "ReturnData": True},
        ],
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
    }


def _surge(dimensions: list[dict[str, str]], band: float) -> dict[str, Any]:
    events = _stat("events", "Events", dimensions)
    events["ReturnData"] = True
    return {
        "Metrics": [
            events,
            {
                "Id": "expected",
                "Expression": f"ANOMALY_DETECTION_BAND(events, {_number(band)})",
                "Label": "Events (expected)",
                "ReturnData": True,
            },
        ],
        "ThresholdMetricId": "expected",
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "ComparisonOperator": "GreaterThanUpperThreshold",
    }


def _number(value: float) -> str:
    """``3`` for 3.0, ``2.5`` for 2.5: how thresholds read in expressions and descriptions."""
    return f"{value:g}"


def _spec(
    prefix: str, kind: AlarmKind, monitor: str, name_monitor: str | None, description: str, body: dict[str, Any]
) -> AlarmSpec:
    name = alarm_name(prefix, kind, name_monitor)
    request: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": f"RUM Guard: {description} {MANAGED_NOTE}",
        "ActionsEnabled": True,
        "TreatMissingData": "notBreaching",
        **body,
    }
    tags = {MANAGED_TAG: "true", OWNER_TAG: prefix, MONITOR_TAG: monitor, KIND_TAG: kind.value}
    return AlarmSpec(name, kind, monitor, request, tags)


def monitor_alarms(prefix: str, monitor: Monitor, t: AlarmThresholds) -> list[AlarmSpec]:
    """The alarms of one app monitor: the health alarms, and the abuse alarms for a guest monitor."""
    name, audience = monitor.name, monitor.audience
    dims = _dimensions(name, audience.value)
    of = f"app monitor {name} ({audience.value})"
    specs = []
    if audience is Audience.GUEST:
        specs.append(
            _spec(
                prefix,
                AlarmKind.TRAFFIC_SURGE,
                name,
                name,
                f"guest events of {of} above the expected band ({_number(t.traffic_band)} standard deviations) "
                "in 2 of 3 five-minute periods.",
                _surge(dims, t.traffic_band),
            )
        )
    specs += [
        _spec(
            prefix,
            AlarmKind.JS_ERROR_RATE,
            name,
            name,
            f"JS errors per 100 page views of {of} above {_number(t.js_error_rate)} in 2 of 3 five-minute "
            f"periods (a period with fewer than {t.min_volume} page views counts as 0).",
            _rate("JsErrors", "PageViews", dims, t.js_error_rate, t.min_volume, "JS errors per 100 page views"),
        ),
        _spec(
            prefix,
            AlarmKind.HTTP_ERROR_RATE,
            name,
            name,
            f"failed HTTP requests per 100 events of {of} above {_number(t.http_error_rate)} in 2 of 3 "
            f"five-minute periods (a period with fewer than {t.min_volume} events counts as 0).",
            _rate("HttpErrors", "Events", dims, t.http_error_rate, t.min_volume, "HTTP errors per 100 events"),
        ),
        _spec(
            prefix,
            AlarmKind.REJECTED_EVENTS,
            name,
            name,
            f"more than {t.rejected_events} RUM events of {of} rejected in 5 minutes (junk, bad schema, "
            "timestamps far off).",
            _single("RejectedEvents", dims, t.rejected_events),
        ),
    ]
    if audience is Audience.GUEST:
        specs += [
            _spec(
                prefix,
                AlarmKind.BLOCKS,
                name,
                name,
                f"more than {t.blocks} guest identities of {of} blocked in 5 minutes: an abuse wave.",
                _single("IdentitiesBlocked", dims, t.blocks),
            ),
            _spec(
                prefix,
                AlarmKind.SAFETY_VALVE,
                name,
                name,
                f"the safety valve tripped on {of}: too many automatic blocks in 5 minutes, so automatic "
                "blocking is paused until people decide (or guest lockdown, if configured).",
                _single("BlockStorm", dims, 0),
            ),
        ]
    return specs


def pool_alarms(prefix: str, t: AlarmThresholds, *, guests: bool) -> list[AlarmSpec]:
    """The pool-wide alarms: the deny policy's capacity (with guest monitors) and unattributable events."""
    pool = _dimensions(ALL_MONITORS, Audience.GUEST.value)
    specs = []
    if guests:
        specs += [
            _spec(
                prefix,
                AlarmKind.POLICY_CAPACITY,
                ALL_MONITORS,
                None,
                f"the guest role's deny policies use more than {_number(t.policy_capacity)} % of IAM's inline "
                "policy space; when full, new blocks are recorded but not enforced.",
                _single("PolicyCapacityUsed", pool, t.policy_capacity, stat="Maximum"),
            ),
            _spec(
                prefix,
                AlarmKind.UNENFORCED_BLOCKS,
                ALL_MONITORS,
                None,
                "active blocks that do not fit in the guest role's deny policy (recorded, not enforced in IAM).",
                _single("UnenforcedBlocks", pool, 0, stat="Maximum"),
            ),
        ]
    specs.append(
        _spec(
            prefix,
            AlarmKind.UNMATCHED_EVENTS,
            UNMATCHED,
            None,
            "RUM events of a log group that matches no configured app monitor, or an undecodable "
            "subscription delivery: check GUEST_MONITORS, SIGNED_IN_MONITORS and the subscription filters.",
            _single("RejectedEvents", _dimensions(UNMATCHED, NO_AUDIENCE), 0),
        )
    )
    return specs


def desired_alarms(prefix: str, monitors: Sequence[Monitor], thresholds: AlarmThresholds) -> list[AlarmSpec]:
    """Every alarm RUM Guard should publish for these monitors, in a stable order, names unique."""
    specs = [spec for monitor in monitors for spec in monitor_alarms(prefix, monitor, thresholds)]
    specs += pool_alarms(prefix, thresholds, guests=any(m.audience is Audience.GUEST for m in monitors))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"alarm names collide: {sorted(n for n in names if names.count(n) > 1)}")
    return specs


# --- comparing desired and actual -----------------------------------------------------------------------
def _dims(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(d["Name"]), str(d["Value"])) for d in value or ()))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _query(query: Mapping[str, Any]) -> tuple[Any, ...]:
    stat = query.get("MetricStat")
    metric = None
    if stat:
        m = stat.get("Metric", {})
        metric = (
            m.get("Namespace"),
            m.get("MetricName"),
            _dims(m.get("Dimensions")),
            _int(stat.get("Period")),
            stat.get("Stat"),
            stat.get("Unit"),
        )
    return (
        query.get("Id"),
        query.get("Expression"),
        query.get("Label"),
        bool(query.get("ReturnData", True)),
        metric,
        _int(query.get("Period")),
    )


def comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an alarm RUM Guard sets, normalised so that a ``PutMetricAlarm`` request and the
    ``DescribeAlarms`` answer for the same alarm compare equal (absent and default values, number types,
    the order of dimensions, metrics and actions)."""
    evaluation_periods = _int(config.get("EvaluationPeriods"))
    return {
        "AlarmDescription": config.get("AlarmDescription") or "",
        "ActionsEnabled": bool(config.get("ActionsEnabled", True)),
        "AlarmActions": tuple(sorted(config.get("AlarmActions") or ())),
        "OKActions": tuple(sorted(config.get("OKActions") or ())),
        "InsufficientDataActions": tuple(sorted(config.get("InsufficientDataActions") or ())),
        "Namespace": config.get("Namespace") or None,
        "MetricName": config.get("MetricName") or None,
        "Dimensions": _dims(config.get("Dimensions")),
        "Statistic": config.get("Statistic") or None,
        "ExtendedStatistic": config.get("ExtendedStatistic") or None,
        "Period": _int(config.get("Period")),
        "Unit": config.get("Unit") or None,
        "EvaluationPeriods": evaluation_periods,
        "DatapointsToAlarm": _int(config.get("DatapointsToAlarm")) or evaluation_periods,
        "Threshold": _float(config.get("Threshold")),
        "ThresholdMetricId": config.get("ThresholdMetricId") or None,
        "ComparisonOperator": config.get("ComparisonOperator"),
        "TreatMissingData": config.get("TreatMissingData") or "missing",
        "EvaluateLowSampleCountPercentile": config.get("EvaluateLowSampleCountPercentile") or None,
        "Metrics": tuple(sorted((_query(q) for q in config.get("Metrics") or ()), key=lambda q: str(q[0]))),
    }


def differences(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """The settings in which an existing alarm differs from the desired one (empty: nothing to do)."""
    want, have = comparable(desired), comparable(actual)
    return [key for key in want if want[key] != have[key]]


@dataclass(frozen=True, slots=True)
class ActualAlarm:
    """An alarm as CloudWatch holds it: its ``DescribeAlarms`` entry and its tags."""

    name: str
    arn: str
    config: Mapping[str, Any]
    tags: Mapping[str, str]

    def owned_by(self, prefix: str) -> bool:
        """Whether RUM Guard (the stack of this prefix) manages it, so may delete it."""
        return self.tags.get(MANAGED_TAG) == "true" and self.tags.get(OWNER_TAG) == prefix


@dataclass(frozen=True, slots=True)
class AlarmPlan:
    """The writes that turn the actual alarms into the desired ones."""

    create: list[AlarmSpec] = field(default_factory=list)
    #: Existing alarms whose configuration differs, with the names of the settings that differ.
    update: list[tuple[AlarmSpec, list[str]]] = field(default_factory=list)
    #: Existing alarms whose tags lack some of the desired ones (``PutMetricAlarm`` ignores tags on update).
    retag: list[tuple[ActualAlarm, dict[str, str]]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Nothing to write."""
        return not (self.create or self.update or self.retag or self.delete)


def plan(prefix: str, desired: Sequence[AlarmSpec], actual: Sequence[ActualAlarm]) -> AlarmPlan:
    """Compare desired and actual. Alarms RUM Guard does not own are never deleted; a desired name that
    exists untagged (made by hand, say) is adopted: configured and tagged as desired."""
    result = AlarmPlan()
    existing = {alarm.name: alarm for alarm in actual}
    wanted = {spec.name for spec in desired}
    for spec in desired:
        alarm = existing.get(spec.name)
        if alarm is None:
            result.create.append(spec)
            continue
        changed = differences(spec.request, alarm.config)
        missing_tags = {key: value for key, value in spec.tags.items() if alarm.tags.get(key) != value}
        if changed:
            result.update.append((spec, changed))
        if missing_tags:
            result.retag.append((alarm, missing_tags))
        if not changed and not missing_tags:
            result.unchanged.append(spec.name)
    result.delete.extend(sorted(alarm.name for alarm in actual if alarm.name not in wanted and alarm.owned_by(prefix)))
    return result


# --- reconciling ----------------------------------------------------------------------------------------
class AlarmStore(Protocol):
    """Where alarms live (``rumguard.adapters.cloudwatch.CloudWatchAlarms`` on AWS)."""

    def alarms(self, name_prefix: str) -> list[ActualAlarm]:
        """Every metric alarm whose name starts with ``name_prefix``, with its tags."""
        ...

    def put(self, spec: AlarmSpec, *, create: bool) -> None:
        """Create (with its tags) or overwrite an alarm."""
        ...

    def tag(self, alarm: ActualAlarm, tags: Mapping[str, str]) -> None:
        """Add or change tags of an existing alarm."""
        ...

    def delete(self, names: Sequence[str]) -> None:
        """Delete alarms by name."""
        ...


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one reconciliation changed, by alarm name."""

    created: list[str]
    updated: dict[str, list[str]]
    retagged: list[str]
    deleted: list[str]
    unchanged: int

    def summary(self) -> dict[str, Any]:
        """A small JSON summary for logs and the sweeper's return value."""
        return {
            "created": self.created,
            "updated": self.updated,
            "retagged": self.retagged,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
        }


class AlarmReconciler:
    """Makes the alarms under ``<prefix>/`` equal the desired set, writing only the differences."""

    def __init__(
        self, store: AlarmStore, prefix: str, monitors: Sequence[Monitor], thresholds: AlarmThresholds
    ) -> None:
        if not prefix or SEPARATOR in prefix:
            raise ValueError(f"alarm prefix {prefix!r} must be non-empty and free of {SEPARATOR!r}")
        self.store = store
        self.prefix = prefix
        self.monitors = tuple(monitors)
        self.thresholds = thresholds

    def desired(self) -> list[AlarmSpec]:
        """The alarms that should exist."""
        return desired_alarms(self.prefix, self.monitors, self.thresholds)

    def plan(self) -> AlarmPlan:
        """What a reconciliation would write now."""
        return plan(self.prefix, self.desired(), self.store.alarms(f"{self.prefix}{SEPARATOR}"))

    def reconcile(self) -> ReconcileReport:
        """Create, update, retag, then delete; returns what changed."""
        todo = self.plan()
        for spec in todo.create:
            self.store.put(spec, create=True)
        for spec, _ in todo.update:
            self.store.put(spec, create=False)
        for alarm, tags in todo.retag:
            self.store.tag(alarm, tags)
        if todo.delete:
            self.store.delete(todo.delete)
        return ReconcileReport(
            created=[spec.name for spec in todo.create],
            updated={spec.name: changed for spec, changed in todo.update},
            retagged=[alarm.name for alarm, _ in todo.retag],
            deleted=list(todo.delete),
            unchanged=len(todo.unchanged),
        )
