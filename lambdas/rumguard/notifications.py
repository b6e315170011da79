"""Messages to people: one readable notification per alarm transition or RUM Guard event, and the per-minute
digest of identity events.

The notify function gets two kinds of EventBridge events:

* ``CloudWatch Alarm State Change`` (source ``aws.cloudwatch``) for alarms named ``<ALARM_PREFIX>/...``: one
  message each, at once, saying what happened, on which monitor, the value against the threshold (or the
  anomaly detection band), since when, and links to the alarm and the dashboard. The one transition that
  tells nobody anything is skipped: a new alarm's first evaluation (``INSUFFICIENT_DATA`` after "Unchecked:
  Initial alarm creation", to ``OK``), which every deploy and every new monitor would otherwise mail out.
* RUM Guard's own events (source ``rumguard``): ``Guest Lockdown Changed`` is sent at once; ``Identity
  Blocked``, ``Identity Unblocked`` and ``Block Storm`` go into a digest, at most one message per window
  (a minute) per app monitor, listing the identities.

EventBridge invokes the function once per event and cannot batch, so the digest is kept in the table, one
small item per (monitor, window) (``DigestStore``):

1. Every event is appended to the item of the window of its own ``time`` (a conditional update: refused
   once the window is being sent, and a no-op for an event already appended, so redeliveries and Lambda's
   retries, which carry the same event, never list it twice). The event whose append created the item is
   the window's *opener*.
2. The opener sleeps until the window is over (plus a few seconds for appends already in flight), then
   flushes. An append refused because the window is being sent goes into the next window instead: nothing is
   appended to a window after it was read for sending, and nothing is lost.
3. Flushing claims each finished, unsent window of the monitor with a lease (a conditional write: exactly one
   claimant wins), publishes it, and marks it sent. Every invocation flushes, so a window whose opener died
   (a timeout, a crash before or after its claim) is sent by Lambda's retry of the opener's event (which
   finds its entry already there and flushes) or by the next event of that monitor; a publish that fails
   leaves the lease to expire and the window to be claimed again. Delivery is at least once: only a claimant
   that publishes and then dies before marking the window sent can cause a repeat.

The opener of a window holds its invocation open for at most a window and a few seconds; if the function has
less time left than that, it raises instead, and Lambda's retry (a minute or two later) sends the window.
"""

from __future__ import annotations

import enum
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import quote

from rumguard.alarms import ALL_MONITORS, KINDS, MANAGED_NOTE, UNMATCHED, AlarmKind, parse_alarm_name
from rumguard.guard import BLOCK_STORM, IDENTITY_BLOCKED, IDENTITY_UNBLOCKED, LOCKDOWN_CHANGED

BRAND: Final = "RUM Guard"
#: SNS takes subjects of fewer than 100 characters, without line breaks or control characters.
MAX_SUBJECT: Final = 99
#: SNS takes messages up to 256 KB; digests stay far below it (``MAX_ENTRIES``), this is the last guard.
MAX_MESSAGE_BYTES: Final = 256 * 1024 - 1024
ALARM_STATE_CHANGE: Final = "CloudWatch Alarm State Change"
CLOUDWATCH_SOURCE: Final = "aws.cloudwatch"
RUMGUARD_SOURCE: Final = "rumguard"
#: The detail-types that go into the per-minute digest.
DIGEST_TYPES: Final = frozenset({IDENTITY_BLOCKED, IDENTITY_UNBLOCKED, BLOCK_STORM})
#: A window lists at most this many events in full; the rest are counted.
MAX_ENTRIES: Final = 100
#: Longest reason kept in a digest entry, and most skipped identities of a storm listed.
MAX_REASON: Final = 300
MAX_LISTED: Final = 50
INITIAL_REASON: Final = "Unchecked: Initial alarm creation"
STATE_WORDS: Final = {"ALARM": "ALARM", "OK": "OK", "INSUFFICIENT_DATA": "INSUFFICIENT DATA"}
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_RELATION: Final = re.compile(
    r"(?:was|were) (?:not )?(greater than or equal to|greater than|less than or equal to|less than)"
)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to the topic: a subject line, a plain-text body, and attributes for subscription filters."""

    subject: str
    message: str
    attributes: Mapping[str, str] = field(default_factory=dict)


class Publisher(Protocol):
    """Where notifications go (``rumguard.adapters.sns.SnsTopic``)."""

    def publish(self, notification: Notification) -> str:
        """Publish one message; its id."""
        ...


def subject_line(text: str) -> str:
    """A subject SNS accepts: one line, no control characters, fewer than 100 characters."""
    line = " ".join(_CONTROL.sub(" ", text).split())
    if len(line) > MAX_SUBJECT:
        line = line[: MAX_SUBJECT - 3].rstrip() + "..."
    return line or BRAND


def _message(lines: Sequence[str]) -> str:
    text = "\n".join(lines).strip() + "\n"
    encoded = text.encode()
    if len(encoded) > MAX_MESSAGE_BYTES:
        text = encoded[:MAX_MESSAGE_BYTES].decode(errors="ignore") + "\n[message cut at SNS's size limit]\n"
    return text


# --- links ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConsoleLinks:
    """Links into the CloudWatch console of a region: an alarm, the dashboard."""

    region: str
    dashboard_name: str

    @property
    def base(self) -> str:
        """The console's address for the region's partition."""
        if self.region.startswith("cn-"):
            return f"https://{self.region}.console.amazonaws.cn"
        if self.region.startswith("us-gov-"):
            return "https://console.amazonaws-us-gov.com"
        return f"https://{self.region}.console.aws.amazon.com"

    def _cloudwatch(self, fragment: str) -> str:
        return f"{self.base}/cloudwatch/home?region={self.region}#{fragment}"

    def alarm(self, name: str) -> str:
        """The alarm's page."""
        return self._cloudwatch(f"alarmsV2:alarm/{quote(name, safe='')}")

    def dashboard(self) -> str:
        """The RUM Guard dashboard."""
        return self._cloudwatch(f"dashboards/dashboard/{quote(self.dashboard_name, safe='')}")


# --- formatting ------------------------------------------------------------------------------------------
def number(value: float) -> str:
    """A value as people read it: ``45,628``, ``99.5``, ``0.0667``."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}"


def parse_time(value: Any) -> datetime | None:
    """A CloudWatch (``2019-10-02T17:04:40.989+0000``) or ISO 8601 time, in UTC; ``None`` if absent or odd."""
    if not isinstance(value, str) or not value:
        return None
    for form in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value, form).astimezone(UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def when(value: datetime | None) -> str:
    """``2026-01-02 17:04:40 UTC``, or ``unknown``."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "unknown"


# --- alarm state changes ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlarmState:
    """One side of a state change: ``ALARM``, ``OK`` or ``INSUFFICIENT_DATA``, why, since when, with what data."""

    value: str
    reason: str
    timestamp: datetime | None
    data: Mapping[str, Any]

    @classmethod
    def of(cls, raw: Any) -> AlarmState:
        """From the event's ``state`` or ``previousState`` (``reasonData`` is a JSON string, maybe absent)."""
        raw = raw if isinstance(raw, Mapping) else {}
        data: Any = {}
        if isinstance(raw.get("reasonData"), str):
            try:
                data = json.loads(raw["reasonData"])
            except ValueError:
                data = {}
        return cls(
            value=str(raw.get("value", "")),
            reason=str(raw.get("reason", "")),
            timestamp=parse_time(raw.get("timestamp")),
            data=data if isinstance(data, Mapping) else {},
        )

    def latest(self, key: str) -> float | None:
        """The most recent number of a ``reasonData`` series (``recentDatapoints``, ``recent...Thresholds``,
        oldest first); for the data points, the newest of ``evaluatedDatapoints`` when CloudWatch gives them."""
        evaluated = self.data.get("evaluatedDatapoints")
        if key == "recentDatapoints" and isinstance(evaluated, list):
            timed = [
                (str(p.get("timestamp", "")), float(p["value"]))
                for p in evaluated
                if isinstance(p, Mapping) and isinstance(p.get("value"), int | float)
            ]
            if timed:
                return max(timed)[1]
        values = self.data.get(key)
        if isinstance(values, list) and values and isinstance(values[-1], int | float):
            return float(values[-1])
        return None


def is_alarm_event(event: Mapping[str, Any]) -> bool:
    """A CloudWatch alarm state change event."""
    return event.get("source") == CLOUDWATCH_SOURCE and event.get("detail-type") == ALARM_STATE_CHANGE


def _relation(reason: str) -> str | None:
    """ "more than" or "less than" (and "or equal to"), read from CloudWatch's reason sentence."""
    found = _RELATION.search(reason)
    if found is None:
        return None
    return found.group(1).replace("greater than", "more than")


def _value_line(state: AlarmState, unit: str, band: bool, reason: str, relation: str | None = None) -> str:
    value = state.latest("recentDatapoints")
    if value is None:
        return "Value:     no data points in the evaluated periods"
    shown = f"{number(value)} {unit}".strip()
    upper, lower = state.latest("recentUpperThresholds"), state.latest("recentLowerThresholds")
    if band or upper is not None:
        if upper is None:
            return f"Value:     {shown} (no expected band yet: the model is still learning)"
        low = f"{number(lower)} to " if lower is not None else "up to "
        inside = "outside" if state.value == "ALARM" else "inside"
        return f"Value:     {shown}, {inside} the expected band of {low}{number(upper)}"
    threshold = state.data.get("threshold")
    if not isinstance(threshold, int | float):
        return f"Value:     {shown}"
    relation = _relation(reason) or relation
    limit = f"{relation} {number(threshold)}" if relation else number(threshold)
    return f"Value:     {shown} (alarm when {limit})"


def _where(kind: AlarmKind | None, monitor: str | None) -> str:
    if monitor is not None:
        return f"app monitor {monitor}"
    if kind in (AlarmKind.POLICY_CAPACITY, AlarmKind.UNENFORCED_BLOCKS):
        return f"all guest monitors (AppMonitor={ALL_MONITORS})"
    if kind is AlarmKind.UNMATCHED_EVENTS:
        return f"no configured monitor (AppMonitor={UNMATCHED})"
    return "the RUM Guard pipeline"


def is_quiet(state: AlarmState, previous: AlarmState) -> bool:
    """A new alarm's first evaluation finding nothing wrong: no one needs to hear about it."""
    return state.value == "OK" and previous.value == "INSUFFICIENT_DATA" and previous.reason.startswith(INITIAL_REASON)


def alarm_notification(event: Mapping[str, Any], prefix: str, links: ConsoleLinks) -> Notification | None:
    """The message of one alarm state change; ``None`` for an alarm that is not RUM Guard's, or a quiet one."""
    detail = event.get("detail")
    if not isinstance(detail, Mapping) or not isinstance(detail.get("alarmName"), str):
        return None
    name: str = detail["alarmName"]
    parsed = parse_alarm_name(prefix, name)
    if parsed is None:
        return None
    state, previous = AlarmState.of(detail.get("state")), AlarmState.of(detail.get("previousState"))
    if is_quiet(state, previous):
        return None
    info = KINDS.get(parsed.kind) if parsed.kind else None
    title = info.title if info else parsed.label
    where = _where(parsed.kind, parsed.monitor)
    word = STATE_WORDS.get(state.value, state.value or "CHANGED")
    was = STATE_WORDS.get(previous.value, previous.value) if previous.value else "unknown"
    configuration = detail.get("configuration")
    description = str(configuration.get("description") or "") if isinstance(configuration, Mapping) else ""
    description = description.replace(MANAGED_NOTE, "").removeprefix(f"{BRAND}: ").strip()
    if state.value == "ALARM":
        headline = f"{title} on {where} is in ALARM (was {was})."
    elif state.value == "OK":
        headline = f"{title} on {where} is OK again (was {was})."
    else:
        headline = f"{title} on {where}: CloudWatch has too little data to evaluate it (was {was})."
    reason = state.reason or previous.reason
    lines = [
        headline,
        "",
        f"Monitor:   {parsed.monitor if parsed.monitor is not None else where}",
        # RUM Guard's own threshold alarms all compare with GreaterThanThreshold.
        _value_line(
            state, info.unit if info else "", bool(info and info.band), state.reason, "more than" if info else None
        ),
        f"Since:     {when(state.timestamp)}",
        f"Before:    {was} since {when(previous.timestamp)}",
    ]
    start = parse_time(state.data.get("startDate"))
    period = state.data.get("period")
    points = state.data.get("recentDatapoints")
    if start and isinstance(period, int) and isinstance(points, list) and points:
        values = ", ".join(number(float(v)) for v in points if isinstance(v, int | float))
        lines.append(f"Evaluated: {values} ({period // 60}-minute periods from {when(start)})")
    if reason:
        lines.append(f"CloudWatch: {reason}")
    if description:
        lines += ["", f"About this alarm: {description}"]
    if info and state.value == "ALARM":
        lines += ["", f"What to do: {info.advice}"]
    lines += [
        "",
        f"Alarm:     {links.alarm(name)}",
        f"Dashboard: {links.dashboard()}",
        "",
        f"-- {BRAND}, for alarm {name}",
    ]
    attributes = {"rumguard.kind": "alarm", "rumguard.state": state.value or "UNKNOWN"}
    if parsed.monitor is not None:
        attributes["rumguard.monitor"] = parsed.monitor
    return Notification(subject_line(f"[{BRAND}] {word}: {title} - {where}"), _message(lines), attributes)


# --- RUM Guard's own events -------------------------------------------------------------------------------
def lockdown_notification(event: Mapping[str, Any], links: ConsoleLinks) -> Notification:
    """The message of a ``Guest Lockdown Changed`` event (sent at once: rare, and important)."""
    detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else {}
    assert isinstance(detail, Mapping)
    on = bool(detail.get("enabled"))
    dry = " (dry run)" if detail.get("dryRun") else ""
    since = parse_time(detail.get("since")) or parse_time(event.get("time"))
    actor = str(detail.get("actor") or "unknown")
    if on:
        headline = (
            f"Guest lockdown is ON{dry} since {when(since)}: the identity pool refuses guests, and the guest role "
            "denies sessions issued before then."
        )
        todo = 'Lift it with the operator API when the attack is over: PUT /lockdown {"enabled": false, ...}.'
    else:
        headline = f"Guest lockdown is OFF{dry} since {when(since)}: guests get credentials again."
        todo = "Watch the dashboard: the bots may come back."
    lines = [
        headline,
        "",
        f"Reason:    {detail.get('reason') or '-'}",
        f"By:        {'RUM Guard (safety valve)' if actor == 'auto' else actor}",
    ]
    if detail.get("appMonitor"):
        lines.append(f"Monitor:   app monitor {detail['appMonitor']}")
    if dry:
        lines.append("Dry run:   recorded only; the identity pool and the guest role were not changed.")
    lines += ["", todo, "", f"Dashboard: {links.dashboard()}", "", f"-- {BRAND}"]
    attributes = {"rumguard.kind": "lockdown", "rumguard.state": "ON" if on else "OFF"}
    return Notification(
        subject_line(f"[{BRAND}] Guest lockdown {'ON' if on else 'OFF'}{dry}"), _message(lines), attributes
    )


def digest_entry(event: Mapping[str, Any]) -> dict[str, Any]:
    """What a digest keeps of one identity event: its type and the detail, trimmed to a small size."""
    detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else {}
    assert isinstance(detail, Mapping)
    entry: dict[str, Any] = {"type": str(event.get("detail-type", ""))}
    for key in ("identityId", "rule", "actor", "expiresAt", "dryRun", "offence", "status", "createdAt"):
        if detail.get(key) is not None:
            entry[key] = detail[key]
    reason = detail.get("reason")
    if reason:
        entry["reason"] = str(reason)[:MAX_REASON]
    skipped = detail.get("skippedIdentities")
    if isinstance(skipped, list):
        entry["skippedIdentities"] = [str(i) for i in skipped[:MAX_LISTED]]
        entry["skippedCount"] = len(skipped)
    return entry


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _blocked_line(entry: Mapping[str, Any]) -> str:
    expires = parse_time(entry.get("expiresAt"))
    until = f"until {when(expires)}" if expires else "no expiry"
    offence = f", offence {entry['offence']}" if entry.get("offence") else ""
    dry = " [dry run: not enforced]" if entry.get("dryRun") else ""
    return (
        f"  - {entry.get('identityId', '?')}: {entry.get('reason') or entry.get('rule', '?')} "
        f"(rule {entry.get('rule', '?')}, by {entry.get('actor', '?')}); {until}{offence}{dry}"
    )


def _unblocked_line(entry: Mapping[str, Any]) -> str:
    dry = " [dry run]" if entry.get("dryRun") else ""
    return (
        f"  - {entry.get('identityId', '?')}: {entry.get('reason') or entry.get('status', 'ended')} "
        f"(rule {entry.get('rule', '?')}, by {entry.get('actor', '?')}){dry}"
    )


def _storm_line(storms: Sequence[Mapping[str, Any]]) -> str:
    """One line for every trip of the window: the ingest function raises one per batch while the valve is shut."""
    skipped: list[str] = []
    total = 0
    for entry in storms:
        raw = list(entry.get("skippedIdentities") or [])
        fresh = [i for i in dict.fromkeys(raw) if i not in skipped]
        skipped += fresh
        # Identities listed by an earlier trip are not counted twice (those past the list cannot be told apart).
        total += int(entry.get("skippedCount", len(raw))) - (len(raw) - len(fresh))
    shown = skipped[:MAX_LISTED]
    left = f" Left alone: {', '.join(shown)}" if shown else ""
    more = f" and {total - len(shown)} more" if total > len(shown) else ""
    trips = f" ({len(storms)} batches)" if len(storms) > 1 else ""
    return f"  - {storms[-1].get('reason', 'too many automatic blocks')}{trips}.{left}{more}"


@dataclass(frozen=True, slots=True)
class Digest:
    """One window of one monitor's identity events, as read back for sending."""

    monitor: str
    start: datetime
    seconds: int
    entries: Sequence[Mapping[str, Any]]
    #: Events past ``MAX_ENTRIES`` in the window: counted, not listed.
    overflow: int = 0


def digest_notification(digest: Digest, links: ConsoleLinks) -> Notification:
    """The one message of a window: who was blocked, unblocked, and whether the safety valve tripped."""
    by_type: dict[str, list[Mapping[str, Any]]] = {IDENTITY_BLOCKED: [], IDENTITY_UNBLOCKED: [], BLOCK_STORM: []}
    for entry in digest.entries:
        by_type.setdefault(str(entry.get("type")), []).append(entry)
    blocked, unblocked, storms = by_type[IDENTITY_BLOCKED], by_type[IDENTITY_UNBLOCKED], by_type[BLOCK_STORM]
    monitor = digest.monitor or "(no app monitor)"
    parts = []
    if storms:
        parts.append("safety valve tripped")
    if blocked:
        parts.append(_plural(len(blocked), "identity blocked", "identities blocked"))
    if unblocked:
        parts.append(_plural(len(unblocked), "identity unblocked", "identities unblocked"))
    if digest.overflow:
        parts.append(f"{digest.overflow} more events")
    summary = ", ".join(parts) or "no events"
    # The subject puts the counts first: a long monitor name is what gets cut, not the news.
    short = [
        *(["safety valve tripped"] if storms else []),
        *([f"{len(blocked)} blocked"] if blocked else []),
        *([f"{len(unblocked)} unblocked"] if unblocked else []),
        *([f"{digest.overflow} more"] if digest.overflow else []),
    ]
    headline = summary if len(parts) == 1 else ", ".join(short)
    everything = [e for e in digest.entries if e.get("type") in (IDENTITY_BLOCKED, IDENTITY_UNBLOCKED)]
    dry = " (dry run)" if everything and all(e.get("dryRun") for e in everything) else ""
    end = datetime.fromtimestamp(digest.start.timestamp() + digest.seconds, tz=UTC)
    lines = [
        f"{BRAND} on app monitor {monitor}, {when(digest.start)} to {end.strftime('%H:%M:%S UTC')}: {summary}{dry}.",
        "",
    ]
    if storms:
        lines.append("Safety valve: automatic blocking is paused; people decide now (guest lockdown: PUT /lockdown).")
        lines.append(_storm_line(storms))
        lines.append("")
    if blocked:
        lines.append(f"Blocked ({len(blocked)}):")
        lines += [_blocked_line(e) for e in blocked]
        lines.append("")
    if unblocked:
        lines.append(f"Unblocked ({len(unblocked)}):")
        lines += [_unblocked_line(e) for e in unblocked]
        lines.append("")
    if digest.overflow:
        lines += [f"... and {digest.overflow} more events in this window, not listed: see GET /blocks.", ""]
    lines += [
        "Review or undo with the operator API: GET /blocks, DELETE /blocks/{identity_id},"
        " PUT /allowlist/{identity_id}.",
        f"Dashboard: {links.dashboard()}",
        "",
        f"-- {BRAND}, one message per minute and app monitor",
    ]
    attributes = {"rumguard.kind": "digest", "rumguard.state": "STORM" if storms else "BLOCKS"}
    if digest.monitor:
        attributes["rumguard.monitor"] = digest.monitor
    return Notification(subject_line(f"[{BRAND}] {headline}{dry} on {monitor}"), _message(lines), attributes)


# --- the digest -----------------------------------------------------------------------------------------
class AddStatus(enum.Enum):
    """What became of an append to a window."""

    ADDED = "added"
    #: This event was already in the window (a redelivery or a retry).
    DUPLICATE = "duplicate"
    #: The window is being sent or was sent: append to a later one.
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class AddResult:
    """The outcome of an append, and the id of the event that opened the window (``None`` if closed)."""

    status: AddStatus
    opener: str | None


@dataclass(frozen=True, slots=True)
class Window:
    """A stored window: its entries (JSON), the count past ``MAX_ENTRIES``, its send lease."""

    monitor: str
    index: int
    entries: Sequence[str]
    overflow: int = 0
    lease_until: float | None = None


class DigestStore(Protocol):
    """The digest windows (``rumguard.adapters.digests.DynamoDigestStore`` on AWS)."""

    def add(self, monitor: str, seconds: int, index: int, entry_id: str, entry: str, *, now: float) -> AddResult:
        """Append an entry to window ``index`` unless it is closed or already holds ``entry_id``."""
        ...

    def unsent(self, monitor: str, seconds: int, first: int, last: int) -> list[Window]:
        """The windows ``first..last`` of the monitor not yet marked sent."""
        ...

    def claim(self, monitor: str, seconds: int, index: int, *, now: float, lease: float) -> Window | None:
        """Close the window and take the right to send it until ``now + lease``; ``None`` if someone holds it
        or it was sent."""
        ...

    def mark_sent(self, monitor: str, seconds: int, index: int, *, now: float) -> None:
        """Record that the window was published."""
        ...


class DigestPendingError(RuntimeError):
    """The opener of a window has too little time left to wait for its end: raised so that Lambda's retry of
    this event (a minute or two later) finds the window over and sends it."""


@dataclass(frozen=True, slots=True)
class DigestOutcome:
    """What one submitted event did: where it went, and which windows this invocation sent."""

    status: AddStatus
    index: int
    opener: bool
    sent: list[int]


class Digester:
    """Collects identity events per (monitor, window) and sends each window once (see the module docstring)."""

    def __init__(
        self,
        store: DigestStore,
        publisher: Publisher,
        links: ConsoleLinks,
        *,
        seconds: int = 60,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        lookback: int = 15,
    ) -> None:
        if seconds < 1:
            raise ValueError("a digest window lasts at least a second")
        self.store = store
        self.publisher = publisher
        self.links = links
        self.seconds = seconds
        self.clock = clock
        self.sleep = sleep
        #: How many past windows a flush looks at (Lambda retries a failed event within a few minutes).
        self.lookback = max(lookback, math.ceil(15 * 60 / seconds))
        #: Appends may still be in flight when a window ends; it is sent this long after.
        self.settle = min(5.0, seconds / 12)
        #: How long a claimant has to publish before another may claim the window again.
        self.lease = max(60.0, 2.0 * seconds)

    def window_of(self, at: float) -> int:
        """The window a time falls in."""
        return int(at // self.seconds)

    def due_until(self, now: float) -> int:
        """The last window that is over (and settled) at ``now``."""
        return int((now - self.settle) // self.seconds) - 1

    def submit(
        self,
        monitor: str,
        entry_id: str,
        entry: Mapping[str, Any],
        *,
        at: float | None = None,
        time_left: Callable[[], float] | None = None,
    ) -> DigestOutcome:
        """Append one event to the window of its time ``at`` (the event's own ``time``, the same on every
        redelivery, so a retry finds its first attempt) or the next open one; the window's opener waits for
        its end and sends it; every invocation sends whatever finished windows of the monitor are unsent."""
        payload = json.dumps(entry, separators=(",", ":"), sort_keys=True)
        now = self.clock()
        # Older than the lookback: too late to be told apart from a redelivery anyway.
        index = max(self.window_of(now if at is None else min(at, now)), self.window_of(now) - self.lookback)
        for _ in range(self.lookback + 3):
            result = self.store.add(monitor, self.seconds, index, entry_id, payload, now=self.clock())
            if result.status is not AddStatus.CLOSED:
                break
            # Closed for sending: the next window (walked one by one, to find this event if a retry put it there).
            index += 1
        else:
            raise RuntimeError(f"digest windows of {monitor!r} kept closing under event {entry_id}")
        opener = result.opener == entry_id
        if opener:
            wait = (index + 1) * self.seconds + self.settle - self.clock()
            if wait > 0:
                if time_left is not None and time_left() < wait + 5.0:
                    raise DigestPendingError(
                        f"window {index} of {monitor!r} ends in {wait:.0f} s, too late for this invocation"
                    )
                self.sleep(wait)
        return DigestOutcome(result.status, index, opener, self.flush(monitor))

    def flush(self, monitor: str) -> list[int]:
        """Claim, publish and mark sent every finished, unsent window of the monitor; the windows sent."""
        now = self.clock()
        last = self.due_until(now)
        sent = []
        for window in self.store.unsent(monitor, self.seconds, last - self.lookback + 1, last):
            if window.lease_until is not None and window.lease_until > now:
                continue
            claimed = self.store.claim(monitor, self.seconds, window.index, now=now, lease=self.lease)
            if claimed is None:
                continue
            self.publisher.publish(digest_notification(self.digest(claimed), self.links))
            self.store.mark_sent(monitor, self.seconds, claimed.index, now=self.clock())
            sent.append(claimed.index)
        return sent

    def digest(self, window: Window) -> Digest:
        """A stored window as a digest to render."""
        entries = []
        for raw in window.entries:
            try:
                value = json.loads(raw)
            except ValueError:
                continue
            if isinstance(value, dict):
                entries.append(value)
        start = datetime.fromtimestamp(window.index * self.seconds, tz=UTC)
        return Digest(window.monitor, start, self.seconds, entries, window.overflow)


# --- routing ----------------------------------------------------------------------------------------------
class Route(enum.Enum):
    """What the notify function does with an event."""

    ALARM = "alarm"
    LOCKDOWN = "lockdown"
    DIGEST = "digest"
    IGNORE = "ignore"


def route(event: Mapping[str, Any]) -> Route:
    """Alarm state changes, lockdown changes, identity events; anything else is ignored."""
    if is_alarm_event(event):
        return Route.ALARM
    if event.get("source") == RUMGUARD_SOURCE:
        detail_type = event.get("detail-type")
        if detail_type == LOCKDOWN_CHANGED:
            return Route.LOCKDOWN
        if detail_type in DIGEST_TYPES:
            return Route.DIGEST
    return Route.IGNORE
