"""``rumguard demo``: RUM Guard end to end on the embedded AWS, with simulated shop traffic and bots.

The demo starts moto with RUM Guard's resources: the table, the two app monitors' RUM log groups of the
Retail Demo Store walkthrough (``RetailDemoStore_Unauthenticated`` for guests, ``RetailDemoStore_Authenticated``
for signed-in users), the Cognito identity pool that allows guests, the guest role and the EventBridge bus
(with an SQS queue behind it). Every shopper gets a real identity of the pool: guests with ``GetId``, signed-in
users with a login. Then come the bots (``rumguard.local.bots``): an event flooder, a session churner, an
error spammer, a page-velocity bot and a junk sender, each on a guest identity of its own, and an identity
forger that claims one of the signed-in shoppers' identity id.

Everything is written into the log groups with ``PutLogEvents``, read back as CloudWatch Logs subscription
deliveries and handed to the real ingest handler in enforce mode, as Lambda would. The demo then shows, and
checks, what RUM Guard did: which identities were blocked, by which rule, with what counts; that the
forger was refused and the user it impersonated left alone; that no honest guest and no signed-in user was
blocked; the deny policy on the guest role; the events on the bus (read from the queue); and every metric
the handler printed (embedded metric format) against what was simulated. A bot that escaped, an honest
user blocked, a metric that differs, a handler error or an unexpected warning make it exit non-zero.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rumguard.adapters.dynamodb import DynamoDecisionStore
from rumguard.decisions import AUTO, AuditAction, AuditRecord, Block
from rumguard.detection import Detection, Rule
from rumguard.events import EventKind
from rumguard.guard import IDENTITY_BLOCKED
from rumguard.ingest import JUNK_REASONS
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, AppMonitor, EmbeddedAws
from rumguard.local.bots import Bot, BotTraffic, bot_army
from rumguard.local.context import Invocation, LocalFunction
from rumguard.local.emf import EmfError, EmfOutput
from rumguard.local.subscription import control_message_event
from rumguard.local.traffic import LogRecord, Tally
from rumguard.monitors import Audience
from rumguard.policy import POLICY_PREFIX, ROLE_INLINE_LIMIT, SUB_KEY, policy_size
from rumguard.settings import IngestSettings
from rumguard.telemetry import NAMESPACE, TIMINGS

HANDLER_MODULE: Final = "handlers.ingest"
#: Deliveries of this size are what a steadily written log group produces (a full 1 MB batch is rare).
DEFAULT_BATCH_KB: Final = 64
#: How far back the simulated traffic starts: CloudWatch Logs takes events up to 14 days old, and EMF
#: timestamps are what the handler prints, so the demo simply replays the last hour and a half.
HISTORY_MS: Final = 90 * 60 * 1000
#: The honest traffic spans an hour; the bots start this far into it, one after another.
BOTS_FROM_MS: Final = 8 * 60 * 1000
BOT_SPACING_MS: Final = 7 * 60 * 1000
#: Count metrics, and what each one must equal in the simulation's tally.
COUNT_CHECKS: Final = (
    ("PageViews", EventKind.PAGE_VIEW),
    ("SessionStarts", EventKind.SESSION_START),
    ("JsErrors", EventKind.JS_ERROR),
)
#: The warning Powertools gives when an invocation adds no metric: expected when a batch is redelivered.
NO_METRICS_WARNING: Final = "No application metrics to publish"
#: The handler's warning about rejected events: expected for the junk sender's batches, and only for them.
REJECTED_WARNING: Final = "rejected RUM log events"
_JUNK_REASON_VALUES: Final = frozenset(reason.value for reason in JUNK_REASONS)
_RULES: Final = frozenset(rule.value for rule in Rule)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _kilobytes(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1024 (CloudWatch Logs' 1 MB), not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options."""
    parser.add_argument("--seed", type=int, default=7, help="random seed of the simulation (default: 7)")
    parser.add_argument("--journeys", type=_count, default=20, help="signed-in shopping journeys (default: 20)")
    parser.add_argument("--guests", type=_count, default=80, help="browsing guest sessions (default: 80)")
    parser.add_argument(
        "--batch-kb",
        type=_kilobytes,
        default=DEFAULT_BATCH_KB,
        help=f"largest subscription delivery in KB, up to 1024 (default: {DEFAULT_BATCH_KB})",
    )


# --- who takes part -----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Cast:
    """Everyone whose traffic the demo writes: honest shoppers (real pool identities) and the bots."""

    guests: list[str] = field(default_factory=list)
    signed_in: list[str] = field(default_factory=list)
    bots: list[Bot] = field(default_factory=list)

    def blockable_bots(self) -> list[Bot]:
        """The bots RUM Guard must block (all but the forger)."""
        return [bot for bot in self.bots if bot.rule is not None]

    def forgers(self) -> list[Bot]:
        """The bots that claim someone else's identity."""
        return [bot for bot in self.bots if bot.rule is None]

    def junk(self) -> int:
        """Events the bots sent that fail the schema (all in the guest monitor)."""
        return sum(bot.junk for bot in self.bots)

    def bot_of(self, identity: str) -> Bot | None:
        """The bot whose events carry ``identity``."""
        return next((bot for bot in self.bots if bot.identity == identity), None)

    def identities(self) -> list[str]:
        """Every identity id that occurs in the traffic."""
        return list(dict.fromkeys([*self.guests, *self.signed_in, *(bot.identity for bot in self.bots)]))


def simulate(
    aws: EmbeddedAws,
    sim: BotTraffic,
    journeys: int,
    guests: int,
    start_ms: int,
    detection: Detection | None = None,
) -> tuple[Cast, list[LogRecord]]:
    """Signed-in journeys and browsing guests spread over an hour from ``start_ms``, then the bots (sized
    against ``detection``'s thresholds).

    Every shopper is a real identity of the pool (so RUM Guard could block any of them); the forger
    impersonates the first signed-in shopper.
    """
    rng = sim.rng
    cast = Cast()
    records: list[LogRecord] = []
    hour = 60 * 60 * 1000
    for n in range(journeys):
        at = start_ms + n * hour // max(1, journeys)
        guest, user = aws.new_guest(), aws.new_signed_in(f"shopper-{n}")
        cast.guests.append(guest)
        cast.signed_in.append(user)
        records += sim.signed_in_journey(guest, user, at_ms=at)
    for n in range(guests):
        at = start_ms + n * hour // max(1, guests) + rng.randint(0, 20_000)
        guest = aws.new_guest()
        cast.guests.append(guest)
        records += sim.guest_browse(guest, pages=rng.randint(2, 6), at_ms=at)
    victim = cast.signed_in[0] if cast.signed_in else aws.new_signed_in("shopper-without-traffic")
    if not cast.signed_in:
        cast.signed_in.append(victim)
    cast.bots = bot_army(
        sim, aws.new_guest, victim, start_ms + BOTS_FROM_MS, spacing_ms=BOT_SPACING_MS, detection=detection
    )
    for bot in cast.bots:
        records += bot.records
    return cast, records


# --- what the handler did ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Sighting:
    """The invocation that blocked (or first refused) an identity."""

    batch: int
    milliseconds: float
    events: int


@dataclass(slots=True)
class Observed:
    """What the demo observed while delivering, for the report and the checks."""

    output: EmfOutput = field(default_factory=EmfOutput)
    failures: list[str] = field(default_factory=list)
    deliveries: int = 0
    delivered_events: int = 0
    blocked: dict[str, Sighting] = field(default_factory=dict)
    forged: Counter[str] = field(default_factory=Counter)
    first_refusal: dict[str, Sighting] = field(default_factory=dict)
    rejected_logged: Counter[str] = field(default_factory=Counter)


def _percentiles(values: Sequence[float], scale: str) -> str:
    """``p50 / p90`` by nearest rank, formatted for the table."""
    if not values:
        return "-"
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    if scale == "ms":
        return f"{rank(0.5):,.0f} / {rank(0.9):,.0f} ms"
    return f"{rank(0.5):.3f} / {rank(0.9):.3f}"


def _invoke(function: LocalFunction, event: dict[str, Any], what: str, observed: Observed) -> Invocation | None:
    """One invocation; any error, unexpected warning log line or malformed EMF is recorded as a failure."""
    try:
        invocation = function.invoke(event)
    except EmfError as error:
        observed.failures.append(f"{what}: the handler printed malformed EMF: {error}")
        return None
    if invocation.error is not None:
        failure = invocation.error
        observed.failures.append(f"{what}: the handler raised {type(failure).__name__}: {failure}")
    for record in invocation.output.logs:
        if record.get("level") not in ("WARNING", "ERROR", "CRITICAL"):
            continue
        if _expected_rejection(record):
            observed.rejected_logged[str(record.get("appMonitor"))] += sum(record["rejected"].values())
            continue
        observed.failures.append(f"{what}: the handler logged {record.get('level')}: {record}")
    for line in invocation.output.text:
        observed.failures.append(f"{what}: the handler printed an unexpected line: {line[:200]}")
    observed.output.extend(invocation.output)
    return invocation


def _expected_rejection(record: Mapping[str, Any]) -> bool:
    """The handler's warning about junk events (the junk sender's): checked against what was sent later."""
    rejected = record.get("rejected")
    return (
        record.get("level") == "WARNING"
        and record.get("message") == REJECTED_WARNING
        and isinstance(rejected, dict)
        and set(rejected) <= _JUNK_REASON_VALUES
    )


# --- checks --------------------------------------------------------------------------------------------------
def check_counts(
    app_monitors: Iterable[AppMonitor],
    tally: Tally,
    output: EmfOutput,
    *,
    rejected: Mapping[str, int] | None = None,
) -> list[str]:
    """Every count the handler published against what the simulation generated; the differences.

    ``rejected``: the events per monitor that were sent invalid on purpose (none unless given).
    """
    configured = {app_monitor.name: app_monitor for app_monitor in app_monitors}
    rejected = rejected or {}
    problems: list[str] = []

    def expect(what: str, got: float, want: float) -> None:
        if got != want:
            problems.append(f"{what}: the metrics say {got:g}, the simulation generated {want:g}")

    for name, app_monitor in configured.items():
        dims = {"AppMonitor": name, "Audience": app_monitor.monitor.audience.value}
        expect(f"{name} Events", output.total("Events", **dims), tally.events(name))
        for metric, kind in COUNT_CHECKS:
            expect(f"{name} {metric}", output.total(metric, **dims), tally.count(name, kind))
        expect(f"{name} HttpErrors", output.total("HttpErrors", **dims), tally.http_errors[name])
        expect(f"{name} RejectedEvents", output.total("RejectedEvents", **dims), rejected.get(name, 0))
        for kind, (metric, _unit) in TIMINGS.items():
            expect(f"{name} {metric} values", len(output.values(metric, **dims)), tally.count(name, kind))
    strays = {
        dict(dimensions).get("AppMonitor", "?")
        for dimensions in output.series("Events")
        if dict(dimensions).get("AppMonitor") not in configured
    }
    if strays:
        problems.append(f"metrics for monitors the simulation never wrote to: {sorted(strays)}")
    by_reason: Counter[str] = Counter()
    for dimensions, values in output.series("RejectedEvents").items():
        named = dict(dimensions)
        if "Reason" not in named:
            continue
        by_reason[named.get("AppMonitor", "?")] += int(sum(values))
        if sum(values) and named["Reason"] not in _JUNK_REASON_VALUES:
            problems.append(f"events rejected for a reason no bot caused: {named}: {sum(values):g}")
    for name in set(by_reason) | set(rejected):
        if by_reason[name] != rejected.get(name, 0):
            problems.append(
                f"{name} RejectedEvents by reason: the metrics say {by_reason[name]}, "
                f"{rejected.get(name, 0)} junk events were sent"
            )
    wrong_namespace = {datum.namespace for datum in output.data()} - {NAMESPACE}
    if wrong_namespace:
        problems.append(f"metrics outside the {NAMESPACE} namespace: {sorted(wrong_namespace)}")
    return problems


@dataclass(slots=True)
class Enforcement:
    """What the embedded AWS holds after the run: the table, the guest role, the pool and the bus."""

    #: Every block record (current or last), by identity.
    blocks: dict[str, Block]
    #: ``refuse-forged`` audit records, by identity.
    refusals: dict[str, list[AuditRecord]]
    #: The guest role's ``rumguard-deny*`` policies: name -> document.
    policies: dict[str, dict[str, Any]]
    #: Characters (as IAM counts them) of the role's other inline policies.
    others_chars: int
    #: Whether each identity of the cast is still in the identity pool.
    in_pool: dict[str, bool]
    #: Every event published on the bus (EventBridge envelopes, as the queue received them).
    bus: list[dict[str, Any]]

    @property
    def denied(self) -> set[str]:
        """The identity ids the deny policies list."""
        return {identity for document in self.policies.values() for identity in _denied_ids(document)}

    @property
    def capacity_used(self) -> float:
        """Percent of the role's inline policy budget in use (RUM Guard's policies and the others)."""
        used = sum(policy_size(document) for document in self.policies.values())
        return 100.0 * (used + self.others_chars) / ROLE_INLINE_LIMIT

    def blocked_events(self) -> dict[str, dict[str, Any]]:
        """The details of the ``Identity Blocked`` events, by identity."""
        return {
            str(e["detail"].get("identityId")): e["detail"]
            for e in self.bus
            if e.get("detail-type") == IDENTITY_BLOCKED
        }


def _denied_ids(document: Mapping[str, Any]) -> list[str]:
    """The identity ids in a deny policy's ``cognito-identity.amazonaws.com:sub`` conditions."""
    found: list[str] = []
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Deny":
            continue
        for values in statement.get("Condition", {}).values():
            ids = values.get(SUB_KEY, [])
            found += [ids] if isinstance(ids, str) else list(ids)
    return found


def enforcement_state(aws: EmbeddedAws, cast: Cast) -> Enforcement:
    """Read back what RUM Guard wrote: the table (with the real adapter), the role, the pool, the queue."""
    store = DynamoDecisionStore(aws.dynamodb, aws.table_name)
    role_policies = aws.guest_role_policies()
    ours = {name: document for name, document in role_policies.items() if name.startswith(POLICY_PREFIX)}
    others = sum(policy_size(document) for name, document in role_policies.items() if name not in ours)
    refusals = {
        identity: [r for r in store.history(identity) if r.action is AuditAction.REFUSE_FORGED]
        for identity in {bot.identity for bot in cast.forgers()}
    }
    return Enforcement(
        blocks={block.identity_id: block for block in store.blocks()},
        refusals=refusals,
        policies=ours,
        others_chars=others,
        in_pool={identity: aws.identity_exists(identity) for identity in cast.identities()},
        bus=aws.published_events(),
    )


def check_enforcement(cast: Cast, state: Enforcement, observed: Observed, now: datetime) -> list[str]:
    """Every bot blocked by its rule and enforced everywhere; the forger refused; nobody honest touched."""
    problems: list[str] = []
    denied, events = state.denied, state.blocked_events()
    for bot in cast.blockable_bots():
        what = f"the {bot.kind.value} ({bot.identity})"
        block = state.blocks.get(bot.identity)
        if block is None:
            problems.append(f"{what} escaped: it was never blocked")
            continue
        assert bot.rule is not None
        if block.rule != bot.rule.value:
            problems.append(f"{what} was blocked by {block.rule}, not by {bot.rule.value}")
        if block.actor != AUTO or block.dry_run or not block.is_active(now):
            problems.append(f"{what}: the block is not an active automatic enforced one: {block}")
        if bot.identity not in denied:
            problems.append(f"{what} is blocked in the table but not in the guest role's deny policy")
        if state.in_pool.get(bot.identity, True):
            problems.append(f"{what} is blocked but still in the identity pool (not deleted)")
        event = events.get(bot.identity)
        if event is None:
            problems.append(f"{what}: no {IDENTITY_BLOCKED} event reached the queue")
        elif event.get("rule") != bot.rule.value or event.get("actor") != AUTO or event.get("dryRun") is not False:
            problems.append(f"{what}: the {IDENTITY_BLOCKED} event says {event}")
        if bot.identity not in observed.blocked:
            problems.append(f"{what}: no invocation reported blocking it")
    for bot in cast.forgers():
        victim = bot.impersonates or bot.identity
        what = f"the {bot.kind.value} (claiming signed-in user {victim})"
        if victim in state.blocks:
            problems.append(f"{what} got the signed-in user blocked: {state.blocks[victim]}")
        if victim in denied:
            problems.append(f"{what} got the signed-in user into the deny policy")
        if not state.in_pool.get(victim, False):
            problems.append(f"{what} got the signed-in user deleted from the identity pool")
        if not state.refusals.get(bot.identity):
            problems.append(f"{what} was not refused: no refuse-forged audit record")
        if not observed.forged[bot.identity]:
            problems.append(f"{what}: no invocation reported refusing a forged identity")
    honest = [(identity, "guest") for identity in cast.guests] + [
        (identity, "signed-in user") for identity in cast.signed_in
    ]
    for identity, who in honest:
        if identity in state.blocks:
            problems.append(f"an honest {who} was blocked: {state.blocks[identity]}")
        if identity in denied:
            problems.append(f"an honest {who} is in the deny policy: {identity}")
        if not state.in_pool.get(identity, False):
            problems.append(f"an honest {who} was deleted from the identity pool: {identity}")
    must_block = {bot.identity for bot in cast.blockable_bots()}
    if set(state.blocks) != must_block:
        problems.append(f"blocked identities {sorted(state.blocks)} are not exactly the bots {sorted(must_block)}")
    if denied != must_block:
        problems.append(f"the deny policy lists {sorted(denied)}, not exactly the bots {sorted(must_block)}")
    if set(events) != must_block or len(events) != len(state.bus):
        kinds = Counter(str(e.get("detail-type")) for e in state.bus)
        problems.append(f"the bus carried {dict(kinds)} about {sorted(events)}, not one block event per bot")
    return problems


def check_decision_metrics(aws: EmbeddedAws, cast: Cast, state: Enforcement, observed: Observed) -> list[str]:
    """``IdentitiesBlocked``, ``ForgedIdentities``, ``PolicyCapacityUsed`` against what happened."""
    problems: list[str] = []
    guest = aws.monitor(GUEST_MONITOR)
    for app_monitor in aws.app_monitors.values():
        dims = {"AppMonitor": app_monitor.name, "Audience": app_monitor.monitor.audience.value}
        is_guest = app_monitor.name == guest.name
        blocked = observed.output.total("IdentitiesBlocked", **dims)
        want = len(cast.blockable_bots()) if is_guest else 0
        if blocked != want:
            problems.append(f"{app_monitor.name} IdentitiesBlocked: the metrics say {blocked:g}, {want} bots were")
        forged = observed.output.total("ForgedIdentities", **dims)
        want_forged = sum(observed.forged.values()) if is_guest else 0
        if forged != want_forged:
            problems.append(
                f"{app_monitor.name} ForgedIdentities: the metrics say {forged:g}, invocations refused {want_forged}"
            )
    capacity = observed.output.values("PolicyCapacityUsed", AppMonitor=guest.name, Audience=Audience.GUEST.value)
    if cast.blockable_bots() and (not capacity or abs(capacity[-1] - state.capacity_used) > 0.01):
        problems.append(
            f"PolicyCapacityUsed: the last metric is {capacity[-1] if capacity else None}, "
            f"the role holds {state.capacity_used:.2f} %"
        )
    if observed.rejected_logged[guest.name] != cast.junk():
        problems.append(
            f"the handler logged {observed.rejected_logged[guest.name]} rejected events, {cast.junk()} were junk"
        )
    return problems


# --- tables --------------------------------------------------------------------------------------------------
def _short(identity: str) -> str:
    region, _, rest = identity.partition(":")
    return f"{region}:{rest[:8]}…"


def _metrics_table(aws: EmbeddedAws, output: EmfOutput) -> Table:
    monitors = list(aws.app_monitors.values())
    table = Table(title=f"Metrics from the ingest handler's EMF output (namespace {NAMESPACE})", title_justify="left")
    table.add_column("metric", style="bold", no_wrap=True, min_width=19)
    for app_monitor in monitors:
        table.add_column(app_monitor.name, justify="right", no_wrap=True)

    def dims(app_monitor: AppMonitor) -> dict[str, str]:
        return {"AppMonitor": app_monitor.name, "Audience": app_monitor.monitor.audience.value}

    table.add_row("audience", *(m.monitor.audience.value for m in monitors))
    for label, metric in (
        ("events", "Events"),
        ("page views", "PageViews"),
        ("session starts", "SessionStarts"),
        ("JS errors", "JsErrors"),
        ("HTTP errors", "HttpErrors"),
        ("rejected", "RejectedEvents"),
        ("identities blocked", "IdentitiesBlocked"),
        ("forged ids refused", "ForgedIdentities"),
    ):
        table.add_row(label, *(f"{output.total(metric, **dims(m)):,.0f}" for m in monitors))
    for label, metric, scale in (
        ("page load p50 / p90", "PageLoadTime", "ms"),
        ("LCP p50 / p90", "LargestContentfulPaint", "ms"),
        ("CLS p50 / p90", "CumulativeLayoutShift", "score"),
        ("INP p50 / p90", "InteractionToNextPaint", "ms"),
    ):
        table.add_row(label, *(_percentiles(output.values(metric, **dims(m)), scale) for m in monitors))
    return table


def _kinds_table(aws: EmbeddedAws, tally: Tally, junk: int) -> Table:
    monitors = list(aws.app_monitors.values())
    checked: dict[EventKind, str] = {kind: metric for metric, kind in COUNT_CHECKS}
    checked.update({kind: f"{metric} (n)" for kind, (metric, _unit) in TIMINGS.items()})
    table = Table(
        title="Events generated (honest and bots), by kind",
        title_justify="left",
        caption="(n): the number of values in the timing's arrays",
        caption_justify="left",
    )
    table.add_column("event kind", style="bold", no_wrap=True)
    for app_monitor in monitors:
        table.add_column(app_monitor.monitor.audience.value, justify="right", no_wrap=True)
    table.add_column("checked against", no_wrap=True)
    for kind in EventKind:
        counts = [tally.count(m.name, kind) for m in monitors]
        if not any(counts):
            continue
        table.add_row(kind.value, *(f"{n:,}" for n in counts), checked.get(kind, "Events"))
    table.add_row("all", *(f"{tally.events(m.name):,}" for m in monitors), "Events", style="italic")
    if junk:
        cells = [f"{junk:,}" if m.monitor.audience is Audience.GUEST else "0" for m in monitors]
        table.add_row("junk (fails the schema)", *cells, "RejectedEvents", style="italic")
    return table


def _bots_table(cast: Cast, state: Enforcement, observed: Observed, detection: Detection) -> Table:
    table = Table(
        title="The bots, and what RUM Guard did about them",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="identity: the id's first digits (after the region); counted: what the rule summed over its window "
        "when the decision was made; caught: the batch that crossed the threshold, and how long its whole "
        "invocation took; enforced: listed in the deny policy, deleted from the pool, Identity Blocked event "
        "on the bus",
        caption_justify="left",
    )
    for column in ("bot", "identity", "events", "outcome", "counted / limit", "caught", "enforced"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("events", "counted / limit") else "left")
    denied, events = state.denied, state.blocked_events()

    def marks(facts: tuple[bool, ...], wanted: tuple[bool, ...]) -> str:
        if not any(facts) and not any(wanted):
            return "[green]none[/]"
        return " ".join(
            f"[{'green' if fact == want else 'bold red'}]{'✓' if fact else '✗'}[/]"
            for fact, want in zip(facts, wanted, strict=True)
        )

    for bot in cast.bots:
        sent = f"{bot.events:,}"
        facts = (bot.identity in denied, not state.in_pool.get(bot.identity, True), bot.identity in events)
        if bot.rule is None:
            refusals = state.refusals.get(bot.identity, [])
            seen = observed.first_refusal.get(bot.identity)
            counted = "-"
            if refusals and refusals[0].rule:
                rule = Rule(refusals[0].rule)
                counted = f"{(refusals[0].counts or {}).get(rule.value, 0):,} / {detection.thresholds[rule].limit:,}"
            outcome = "[green]refused[/] (forged)" if refusals else "[bold red]NOT REFUSED[/]"
            wanted = (False, False, False)
        else:
            block = state.blocks.get(bot.identity)
            seen = observed.blocked.get(bot.identity)
            if block is None:
                outcome, counted = "[bold red]ESCAPED[/]", "-"
            else:
                threshold = detection.thresholds.get(Rule(block.rule)) if block.rule in _RULES else None
                limit = f"{threshold.limit:,}" if threshold else "?"
                counted = f"{block.counts.get(block.rule, 0):,} / {limit}"
                colour = "green" if block.rule == bot.rule.value else "bold red"
                outcome = f"[{colour}]blocked[/]: {block.rule}"
            wanted = (True, True, True)
        table.add_row(
            bot.kind.value,
            bot.identity.partition(":")[2][:8],
            sent,
            outcome,
            counted,
            f"batch {seen.batch}, {seen.milliseconds:,.0f} ms" if seen else "-",
            marks(facts, wanted),
        )
    return table


def _forger_notes(cast: Cast, state: Enforcement, observed: Observed) -> list[str]:
    notes = []
    for bot in cast.forgers():
        refusals = state.refusals.get(bot.identity, [])
        why = refusals[0].reason if refusals else "never refused"
        victim = bot.impersonates or bot.identity
        untouched = victim not in state.blocks and victim not in state.denied and state.in_pool.get(victim, False)
        notes.append(
            f"The {bot.kind.value} claimed signed-in user {_short(victim)}'s identity id on the guest monitor: "
            f"refused in {observed.forged[bot.identity]} batches ({why}), {len(refusals)} refuse-forged audit records; "
            + (
                "the user was [green]not blocked, not in the deny policy, still in the pool[/]."
                if untouched
                else "[bold red]the user was touched[/]."
            )
        )
    return notes


def _honest_table(cast: Cast, state: Enforcement) -> Table:
    table = Table(title="Honest shoppers (every one a real identity of the pool)", title_justify="left")
    for column in ("who", "identities", "blocked", "in the deny policy", "still in the pool"):
        table.add_column(column, justify="left" if column == "who" else "right")
    denied = state.denied
    victims = {bot.impersonates for bot in cast.forgers() if bot.impersonates}
    rows = [
        ("guests (browsing, and signing in)", cast.guests),
        ("signed-in users", cast.signed_in),
        ("  of whom impersonated by the forger", [i for i in cast.signed_in if i in victims]),
    ]
    for label, identities in rows:
        blocked = sum(1 for i in identities if i in state.blocks)
        listed = sum(1 for i in identities if i in denied)
        kept = sum(1 for i in identities if state.in_pool.get(i, False))
        ok = blocked == 0 and listed == 0 and kept == len(identities)
        style = "green" if ok else "bold red"
        table.add_row(label, f"{len(identities):,}", f"[{style}]{blocked}[/]", f"[{style}]{listed}[/]", f"{kept:,}")
    return table


def _policy_table(aws: EmbeddedAws, state: Enforcement) -> Table:
    table = Table(
        title=f"RUM Guard's deny policies on the guest role {aws.guest_role_name}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        caption=f"capacity used: {state.capacity_used:.1f} % of IAM's {ROLE_INLINE_LIMIT:,} characters for all "
        f"of the role's inline policies ({state.others_chars:,} taken by its other policies)",
        caption_justify="left",
        min_width=100,
    )
    for column in ("inline policy", "statement", "condition key", "identities denied", "characters"):
        table.add_column(column, justify="right" if column in ("identities denied", "characters") else "left")
    for name, document in sorted(state.policies.items()):
        statements = ", ".join(f"{s.get('Effect')} {s.get('Action')}" for s in document.get("Statement", []))
        keys = sorted(
            {key for s in document.get("Statement", []) for c in s.get("Condition", {}).values() for key in c}
        )
        table.add_row(
            name, statements, ", ".join(keys), f"{len(_denied_ids(document)):,}", f"{policy_size(document):,}"
        )
    if not state.policies:
        table.add_row("(none)", "-", "-", "0", "0")
    return table


def _bus_table(aws: EmbeddedAws, cast: Cast, state: Enforcement) -> Table:
    table = Table(
        title=f"Events on the {aws.event_bus_name} bus, read from its SQS queue target",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("detail-type", "identityId", "who", "rule", "actor", "expiresAt", "dryRun"):
        table.add_column(column, no_wrap=True)
    for envelope in state.bus:
        detail = envelope.get("detail", {})
        identity = str(detail.get("identityId"))
        bot = cast.bot_of(identity)
        expires = str(detail.get("expiresAt"))
        table.add_row(
            str(envelope.get("detail-type")),
            _short(identity) if ":" in identity else identity,
            bot.kind.value if bot else "[bold red]not a bot[/]",
            str(detail.get("rule")),
            str(detail.get("actor")),
            expires[:19] + "Z" if len(expires) > 20 else expires,
            str(detail.get("dryRun")).lower(),
        )
    if not state.bus:
        table.add_row("(none)", "-", "-", "-", "-", "-", "-")
    return table


# --- the run -------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class DemoReport:
    """What one demo run did and found."""

    cast: Cast
    state: Enforcement
    observed: Observed
    problems: list[str]
    seconds: float


def play(args: argparse.Namespace, console: Console) -> DemoReport:
    """Run the demo, printing as it goes; the report says what was blocked and what went wrong."""
    started = time.perf_counter()
    max_bytes = int(args.batch_kb) * 1024

    with EmbeddedAws(guest_monitors=(GUEST_MONITOR,), signed_in_monitors=(SIGNED_IN_MONITOR,)) as aws:
        console.print(
            f"[bold]RUM Guard demo[/] on the embedded AWS (moto, region {aws.region}, account {aws.account_id}), "
            f"mode [cyan]{aws.mode}[/]",
            soft_wrap=True,
        )
        console.print(f"  table [cyan]{aws.table_name}[/] created from template.yaml's RumGuardTable")
        for app_monitor in aws.app_monitors.values():
            console.print(
                f"  app monitor [cyan]{app_monitor.name}[/] ({app_monitor.monitor.audience.value}), "
                f"log group {app_monitor.log_group}",
                soft_wrap=True,
            )
        console.print(
            f"  identity pool [cyan]{aws.identity_pool_id}[/] (guests allowed), guest role "
            f"[cyan]{aws.guest_role_name}[/], bus [cyan]{aws.event_bus_name}[/] with an SQS queue target",
            soft_wrap=True,
        )

        environ = {**aws.ingest_environment(), "POWERTOOLS_LOG_LEVEL": "WARNING"}
        detection = IngestSettings.from_environ(environ).detection()  # the thresholds the handler runs with
        guest, signed_in = aws.monitor(GUEST_MONITOR).monitor, aws.monitor(SIGNED_IN_MONITOR).monitor
        start_ms = int(time.time() * 1000) - HISTORY_MS
        sim = BotTraffic(guest, signed_in, seed=args.seed, start_ms=start_ms)
        with console.status("Creating identities in the pool and simulating traffic..."):
            cast, records = simulate(aws, sim, args.journeys, args.guests, start_ms, detection)
        console.print(
            f"Simulated {args.journeys} signed-in journeys and {args.guests} browsing guests "
            f"({len(cast.guests)} guest and {len(cast.signed_in)} signed-in identities created in the pool), "
            f"and {len(cast.bots)} bots:",
            soft_wrap=True,
        )
        for bot in cast.bots:
            target = (
                f"claims signed-in user {_short(bot.identity)}" if bot.rule is None else f"guest {_short(bot.identity)}"
            )
            span = (bot.last_ms - bot.first_ms) / 1000
            console.print(
                f"  [yellow]{bot.kind.value}[/]: {bot.events:,} events in {span:,.0f} s, {target}",
                soft_wrap=True,
            )
        with console.status("Writing the RUM events to the log groups with PutLogEvents..."):
            written = aws.put_records(records)
        streams = sum(len(aws.log_streams(m.log_group)) for m in aws.app_monitors.values())
        console.print(f"{written:,} RUM events written with PutLogEvents into {streams} hourly log streams")

        function = LocalFunction(HANDLER_MODULE, environ, function_name="rumguard-ingest", log_level="WARNING")
        observed = Observed()
        # CloudWatch Logs checks a new subscription with a control message, which the handler must skip.
        for app_monitor in aws.app_monitors.values():
            control = _invoke(function, control_message_event(app_monitor.log_group), "control message", observed)
            if control is not None and control.value != {"skipped": "CONTROL_MESSAGE"}:
                observed.failures.append(f"the control message was not skipped: {control.value!r}")

        deliveries = list(aws.all_deliveries(max_bytes=max_bytes))
        first: tuple[dict[str, Any], Any] | None = None
        delivery_started = time.perf_counter()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("Delivering subscription batches to handlers.ingest", total=len(deliveries))
            for number, (app_monitor, event) in enumerate(deliveries, start=1):
                began = time.perf_counter()
                invocation = _invoke(function, event, f"batch {number} of {app_monitor.name}", observed)
                took = 1000 * (time.perf_counter() - began)
                if invocation is not None and invocation.error is None:
                    value = invocation.value
                    observed.delivered_events += int(value.get("logEvents", 0))
                    unexpected = [w for w in invocation.warnings if not w.startswith(NO_METRICS_WARNING)]
                    observed.failures += [f"batch {number}: warning: {w}" for w in unexpected]
                    if first is None:
                        first = (event, value)
                    _note_decisions(progress.console, cast, observed, value, Sighting(number, took, value["logEvents"]))
                observed.deliveries += 1
                progress.advance(task)
        elapsed = time.perf_counter() - delivery_started
        rate = observed.delivered_events / elapsed if elapsed else 0.0
        console.print(
            f"Delivered {observed.deliveries} batches ({observed.delivered_events:,} log events) "
            f"in {elapsed:.1f} s, {rate:,.0f} events/s through the handler (detection and enforcement included)"
        )

        # CloudWatch Logs retries a delivery it thinks failed: the same batch must not count twice.
        if first is None:
            observed.failures.append("no batch was delivered successfully, so redelivery could not be shown")
        else:
            event, value = first
            again = _invoke(function, event, "redelivered batch", observed)
            if again is not None and again.error is None:
                flushed = again.output.flushes("Events")
                if flushed or again.value != value:
                    observed.failures.append(
                        f"the redelivered batch was counted again ({flushed} Events flushes, result {again.value!r})"
                    )
                else:
                    console.print(
                        f"Redelivered batch 1 ({value['logEvents']} events of {value['appMonitor']}): "
                        "no metrics emitted, same result returned: [green]not counted twice[/] (idempotency)",
                        soft_wrap=True,
                    )

        state = enforcement_state(aws, cast)
        console.print()
        console.print(_bots_table(cast, state, observed, detection))
        for note in _forger_notes(cast, state, observed):
            console.print(note, soft_wrap=True)
        console.print(_honest_table(cast, state))
        console.print(_policy_table(aws, state))
        console.print(_bus_table(aws, cast, state))
        console.print(_metrics_table(aws, observed.output))
        console.print(_kinds_table(aws, sim.tally, cast.junk()))
        problems = (
            observed.failures
            + check_enforcement(cast, state, observed, datetime.now(UTC))
            + check_decision_metrics(aws, cast, state, observed)
            + check_counts(aws.app_monitors.values(), sim.tally, observed.output, rejected={guest.name: cast.junk()})
        )
    return DemoReport(cast, state, observed, problems, time.perf_counter() - started)


def _note_decisions(console: Console, cast: Cast, observed: Observed, value: Mapping[str, Any], seen: Sighting) -> None:
    """Record and print the blocks and refusals an invocation reported."""
    for identity in value.get("blocked", []):
        observed.blocked.setdefault(identity, seen)
        bot = cast.bot_of(identity)
        who = bot.kind.value if bot else "[bold red]not a bot[/]"
        console.print(
            f"  batch {seen.batch} ({seen.events} events): [bold]blocked[/] {_short(identity)} ({who}) "
            f"within the invocation, {seen.milliseconds:,.0f} ms",
            soft_wrap=True,
        )
    for identity in value.get("forged", []):
        observed.forged[identity] += 1
        if identity not in observed.first_refusal:
            observed.first_refusal[identity] = seen
            console.print(
                f"  batch {seen.batch} ({seen.events} events): [bold]refused[/] {_short(identity)}: it crossed a "
                "threshold, but it is not a guest identity (a forged claim), so it is never blocked",
                soft_wrap=True,
            )


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run the demo; 0 when every bot was dealt with, nobody honest was touched and every metric adds up."""
    if console is None:
        console = Console(file=sys.stdout, highlight=False)
        if not console.is_terminal:
            console = Console(file=sys.stdout, highlight=False, width=max(console.width, 120))
    report = play(args, console)
    if report.problems:
        console.print(f"[bold red]FAILED[/]: {len(report.problems)} problem(s) after {report.seconds:.1f} s")
        for problem in report.problems:
            console.print(f"  [red]-[/] {problem}", soft_wrap=True)
        return 1
    rules = ", ".join(f"{bot.kind.value}: {bot.rule.value}" for bot in report.cast.bots if bot.rule is not None)
    console.print(
        f"[bold green]OK[/]: {len(report.cast.blockable_bots())} bots blocked, each within the invocation that "
        f"crossed its threshold ({rules}); the forger refused and the user it impersonated untouched; "
        "no honest guest or signed-in user blocked; every metric of both monitors equals what the simulation generated "
        f"({report.seconds:.1f} s)",
        soft_wrap=True,
    )
    return 0
