"""``rumguard demo``: RUM Guard end to end on the embedded AWS, told as a newcomer's story in one screen.

The demo starts moto with RUM Guard's resources: the table, the two app monitors' RUM log groups of the
Retail Demo Store walkthrough (``RetailDemoStore_Unauthenticated`` for guests, ``RetailDemoStore_Authenticated``
for signed-in users), the Cognito identity pool that allows guests, the guest role and the EventBridge bus
(with an SQS queue behind it). Then the traffic:

1. **Live, in a browser** (``--browser auto``, the default, when Chromium, Node.js and the shop's npm packages
   are there; ``on`` insists, ``off`` skips): the real ``aws-rum-web`` client in headless Chromium, in the test
   shop of ``tests/e2e``, sends to the local RUM data plane (``rumguard.local.dataplane.LocalRum``), which
   honours the guest role's deny statements and hands every batch to the ingest handler as the subscription
   would. A signed-in shopper and guests shop while a bot page floods page views from one guest identity.
2. **Replayed, simulated**: an hour and a half of shop history: signed-in journeys and browsing guests, every
   one a real identity of the pool, and the bots of ``rumguard.local.bots`` (an event flooder, a session
   churner, an error spammer, a page-velocity bot, a junk sender, each on a guest identity of its own, and an
   identity forger that claims one of the signed-in shoppers' identity id). It is written into the log groups
   with ``PutLogEvents``, read back as CloudWatch Logs subscription deliveries and handed to the real ingest
   handler in enforce mode, as Lambda would. The browser runs first, so the replay's deliveries leave out the
   log events the data plane already delivered (a subscription delivers each log event once).

The browser proves the stack against the real client (the bot's later batches get 403 from the data plane);
the simulation brings volume, every detection rule and the forger, which a 15-second browser run cannot.

Then the sweeper runs once and publishes the per-monitor CloudWatch alarms. moto stores alarms but never
evaluates them, so the demo evaluates the single-metric ones itself on the metrics the functions printed
(five-minute periods of the embedded metric format's timestamps, as CloudWatch would), sets the state of the
breaching ones with ``SetAlarmState``, and builds the "CloudWatch Alarm State Change" event CloudWatch would
send to EventBridge from ``DescribeAlarms``. The rate alarms (metric math over three periods) and the traffic
surge alarm (an anomaly model CloudWatch trains over days) are listed, not evaluated. The replay squeezes 90
minutes into seconds, so the five simulated blocks land in one or two five-minute periods: the demo sets
``BLOCKS_ALARM_LIMIT`` to 2 (default 10) so that they make an abuse wave. The notify function
(``NotifyApp``, with its production one-minute digest windows) gets those events and every event on the bus;
what a person would receive is read back from an SQS queue subscribed to the SNS topic.

The demo shows, and checks, what RUM Guard did: which identities were blocked, by which rule, with what
counts; that the forger was refused and the user it impersonated left alone; that no honest guest, signed-in
user or browser shopper was blocked or refused; the deny policy on the guest role; the events on the bus;
every metric the handler printed against what was simulated (and, for the browser, against what the data
plane wrote); the alarms the sweeper published; and the notifications: one digest per minute listing every
blocked bot and no honest identity, one message per alarm that went to ALARM. A bot that escaped, an honest
user blocked, a metric that differs, a handler error or an unexpected warning make it exit non-zero.
``--verbose`` adds the detailed tables (bots, honest shoppers, deny policy, bus, metrics, event kinds) and the
notifications in full.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools import Logger
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from rumguard.adapters.digests import DynamoDigestStore
from rumguard.adapters.dynamodb import DynamoDecisionStore
from rumguard.adapters.sns import SnsTopic
from rumguard.alarms import (
    PERIOD_SECONDS,
    SEPARATOR,
    AlarmKind,
    ParsedName,
    alarm_name,
    desired_alarms,
    parse_alarm_name,
)
from rumguard.decisions import AUTO, AuditAction, AuditRecord, Block
from rumguard.detection import Detection, Rule
from rumguard.events import EventKind
from rumguard.guard import IDENTITY_BLOCKED
from rumguard.ingest import JUNK_REASONS
from rumguard.local.aws import FILTER_NAME, GUEST_MONITOR, SIGNED_IN_MONITOR, AppMonitor, EmbeddedAws
from rumguard.local.bots import Bot, BotTraffic, bot_army
from rumguard.local.browser import E2E_DIR, BrowserError, ShopRun, chromium_path, ensure_node_modules, run_shop
from rumguard.local.context import Invocation, LocalFunction
from rumguard.local.dataplane import LocalRum, Receipt
from rumguard.local.emf import CapturedOutput, EmfError, EmfOutput
from rumguard.local.subscription import batches, control_message_event, subscription_event
from rumguard.local.traffic import LogRecord, Tally
from rumguard.monitors import Audience
from rumguard.notifications import ALARM_STATE_CHANGE, CLOUDWATCH_SOURCE, parse_time
from rumguard.policy import POLICY_PREFIX, ROLE_INLINE_LIMIT, SUB_KEY, policy_size
from rumguard.runtime import NotifyApp
from rumguard.settings import IngestSettings, NotifySettings, SweeperSettings
from rumguard.telemetry import NAMESPACE, TIMINGS

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

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
#: The browser part: how many shoppers ``run_shop`` sends through the shop alongside its bot (one more guest
#: shops once the bot is refused), and the rule the bot page (page views as fast as it can) must be caught by.
BROWSER_GUESTS: Final = 2
BROWSER_SIGNED_IN: Final = 1
BROWSER_BOT_RULE: Final = Rule.PAGE_VELOCITY
BROWSER_MODES: Final = ("auto", "on", "off")
#: The alarms: the prefix (the stack name in template.yaml; also the dashboard's name) and the abuse-wave
#: threshold the demo runs with. The replay squeezes its five blocks into one or two five-minute periods, so
#: at least three share one: more than two makes the wave the demo can show (the default, 10, is for a shop).
ALARM_PREFIX: Final = "rumguard"
DEMO_BLOCKS_ALARM_LIMIT: Final = 2
SWEEPER_MODULE: Final = "handlers.sweeper"
SCHEDULED_EVENT: Final[Mapping[str, Any]] = {
    "version": "0",
    "id": "5e1c1d33-0000-4000-8000-00000000de30",
    "detail-type": "Scheduled Event",
    "source": "aws.scheduler",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}
PERIOD_MS: Final = PERIOD_SECONDS * 1000
#: Lines of each notification's body the default output shows (``--verbose``: all of them), leaving out
#: links, the alarm's background and the sign-off.
NOTIFICATION_LINES: Final = 8
ABRIDGED: Final = (
    "Alarm:",
    "Dashboard:",
    "Before:",
    "Evaluated:",
    "CloudWatch:",
    "About this alarm:",
    "Review or undo",
    "-- ",
)


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
    parser.add_argument(
        "--browser",
        choices=BROWSER_MODES,
        default="auto",
        help="run the real aws-rum-web shop in headless Chromium as well as the simulated traffic: auto (when "
        "Chromium, Node.js and the shop's npm packages are there), on (fail if they are not), off "
        "(default: auto)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="add the detailed tables (bots, honest shoppers, deny policy, bus, metrics, event kinds), every "
        "batch that blocked or refused someone, and the notifications in full",
    )


# --- who takes part -----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Cast:
    """Everyone whose traffic the demo writes: honest shoppers (real pool identities) and the bots."""

    guests: list[str] = field(default_factory=list)
    signed_in: list[str] = field(default_factory=list)
    bots: list[Bot] = field(default_factory=list)
    #: The real shop in Chromium, when it ran: its shoppers and its bot page.
    shop: BrowserPart | None = None

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

    def shop_honest(self) -> dict[str, str]:
        """The browser's honest shoppers: identity id -> audience (``guest`` or ``signed-in``)."""
        return self.shop.honest() if self.shop is not None else {}

    def shop_bot(self) -> str | None:
        """The identity of the bot page in Chromium, if it ran."""
        return self.shop.bot if self.shop is not None else None

    def must_block(self) -> dict[str, Rule]:
        """Every identity RUM Guard must block, and the rule that must do it."""
        wanted = {bot.identity: bot.rule for bot in self.blockable_bots() if bot.rule is not None}
        shop_bot = self.shop_bot()
        if shop_bot is not None:
            wanted[shop_bot] = BROWSER_BOT_RULE
        return wanted

    def identities(self) -> list[str]:
        """Every identity id that occurs in the traffic."""
        shop = [*self.shop_honest(), *([self.shop_bot()] if self.shop_bot() else [])]
        return list(
            dict.fromkeys([*self.guests, *self.signed_in, *(bot.identity for bot in self.bots), *filter(None, shop)])
        )


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


# --- the real web client, in a browser ----------------------------------------------------------------------
class BrowserUnavailableError(RuntimeError):
    """``--browser on``, and the browser part cannot run on this machine (the message says why)."""


def browser_executable(mode: str) -> tuple[str | None, str]:
    """Chromium's executable for the browser part, or ``None`` and why it does not run.

    ``auto`` runs it when Chromium, Node.js and the shop's npm packages are there (``npm ci`` installs the
    packages when the lock file says so); ``on`` raises ``BrowserUnavailableError`` instead of going without.
    """
    if mode == "off":
        return None, "--browser off"
    executable = chromium_path()
    if not (E2E_DIR / "package-lock.json").is_file():
        reason = f"the test shop is not here ({E2E_DIR}): the browser part runs from a clone of the repository"
    elif executable is None:
        reason = (
            "Chromium is not installed (sudo apt-get install -y chromium, or point RUMGUARD_CHROMIUM at a "
            "Chromium or Chrome binary)"
        )
    elif shutil.which("node") is None:
        reason = "Node.js is not installed: the shop's bundler and the browser driver run on it"
    else:
        try:
            ensure_node_modules()
        except (BrowserError, OSError) as error:
            reason = f"the test shop's npm packages are missing and npm could not install them: {error}"
        else:
            return executable, ""
    if mode == "on":
        raise BrowserUnavailableError(reason)
    return None, reason


@dataclass(slots=True)
class BrowserPart:
    """What the real shop in Chromium did, and what the data plane and the ingest function made of it."""

    run: ShopRun
    seconds: float
    #: Every request the data plane answered, in order.
    receipts: list[Receipt]
    #: What the ingest function printed for the browser's deliveries.
    output: EmfOutput
    #: Log events the data plane wrote, per app monitor, and their ids (all delivered already).
    written: dict[str, int]
    delivered: set[str]
    deliveries: int
    #: Identities the ingest invocations reported blocking.
    blocked: list[str] = field(default_factory=list)
    #: Handler errors, warnings and stray output of those invocations.
    failures: list[str] = field(default_factory=list)

    @property
    def bot(self) -> str | None:
        """The bot page's guest identity."""
        return self.run.bot_identity

    def honest(self) -> dict[str, str]:
        """The shoppers' identities: identity id -> audience (``guest`` or ``signed-in``)."""
        return {
            identity: audience for journey in self.run.journeys for audience, identity in journey.identities.items()
        }

    def bot_receipts(self) -> list[Receipt]:
        """The data plane's answers to the bot page."""
        return [r for r in self.receipts if self.bot is not None and r.identity_id == self.bot]

    def honest_receipts(self) -> list[Receipt]:
        """The data plane's answers to the honest shoppers."""
        honest = self.honest()
        return [r for r in self.receipts if r.identity_id in honest]

    def first_refusal(self) -> Receipt | None:
        """The first 403 the bot got (``AccessDeniedException``: the deny statement RUM Guard wrote)."""
        return next((r for r in self.bot_receipts() if r.error == "AccessDeniedException"), None)

    def shoppers(self, audience: str) -> int:
        """How many shoppers sent data to the monitor of ``audience``."""
        return sum(1 for journey in self.run.journeys if audience in journey.identities)


def run_browser(aws: EmbeddedAws, function: LocalFunction, executable: str) -> BrowserPart:
    """The test shop in Chromium against the local RUM data plane, which delivers every batch it accepts to
    ``function`` at once (as a subscription would): a bot page floods page views while a signed-in shopper
    and guests shop, and one more guest shops once the bot is refused (``run_shop``)."""
    began = time.perf_counter()
    with LocalRum(aws, function) as rum, tempfile.TemporaryDirectory(prefix="rumguard-shop-") as folder:
        run = run_shop(
            rum, Path(folder), executable=executable, guests=BROWSER_GUESTS, signed_in=BROWSER_SIGNED_IN, bot=True
        )
        seconds = time.perf_counter() - began
        rum.dataplane.deliver_pending()  # a no-op: the data plane delivers as it writes
        written = {name: rum.dataplane.log_events(name) for name in aws.app_monitors}
        with rum.locked():
            invocations = list(rum.invocations)
        part = BrowserPart(
            run=run,
            seconds=seconds,
            receipts=rum.receipts(),
            output=rum.emf(),
            written={name: len(events) for name, events in written.items()},
            delivered={event.id for events in written.values() for event in events},
            deliveries=len(invocations),
        )
    for number, invocation in enumerate(invocations, start=1):
        what = f"browser delivery {number}"
        if invocation.error is not None:
            part.failures.append(f"{what}: the handler raised {type(invocation.error).__name__}: {invocation.error}")
        elif isinstance(invocation.value, dict):
            part.blocked += [str(identity) for identity in invocation.value.get("blocked", [])]
        for record in invocation.output.logs:
            if record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
                part.failures.append(f"{what}: the handler logged {record.get('level')}: {record}")
        part.failures += [
            f"{what}: the handler printed an unexpected line: {line[:200]}" for line in invocation.output.text
        ]
        part.failures += [f"{what}: warning: {w}" for w in invocation.warnings if not w.startswith(NO_METRICS_WARNING)]
    return part


def check_browser(aws: EmbeddedAws, part: BrowserPart) -> list[str]:
    """The bot page refused from its block on, every honest shopper's batch accepted (before and after it), and
    every event the real client sent counted, none rejected."""
    problems = list(part.failures)
    honest = part.honest_receipts()
    if not part.honest() or not honest:
        problems.append("no honest shopper got data through the shop in Chromium")
    refused = [r for r in honest if not r.accepted]
    if refused:
        answers = sorted({f"{r.status} {r.error}" for r in refused})
        problems.append(f"honest shoppers in Chromium had {len(refused)} batches refused: {answers}")
    strays = [r for r in part.receipts if not r.accepted and r.identity_id not in {*part.honest(), part.bot}]
    if strays:
        problems.append(f"the data plane refused {len(strays)} requests of no shopper: {strays[:3]}")
    first = part.first_refusal()
    if part.bot is None:
        problems.append("the bot page in Chromium never reported its identity")
    elif first is None:
        problems.append("the bot page in Chromium was never refused: the data plane took every batch it sent")
    else:
        bot = part.bot_receipts()
        if not any(r.accepted for r in bot):
            problems.append("the bot page in Chromium was refused before RUM Guard saw any of its traffic")
        late = [r for r in bot if r.at > first.at and (r.accepted or r.error != "AccessDeniedException")]
        if late:
            problems.append(f"after its first 403 the bot page in Chromium got other answers: {late[:3]}")
        if not any(r.at > first.at for r in honest):
            problems.append("no honest shopper in Chromium sent anything after the bot was blocked")
    for app_monitor in aws.app_monitors.values():
        name = app_monitor.name
        dims = {"AppMonitor": name, "Audience": app_monitor.monitor.audience.value}
        counted = part.output.total("Events", **dims)
        if counted != part.written[name]:
            problems.append(
                f"{name} Events from the browser: the metrics say {counted:g}, "
                f"the data plane wrote {part.written[name]}"
            )
        blocked = part.output.total("IdentitiesBlocked", **dims)
        want = 1 if app_monitor.monitor.audience is Audience.GUEST and part.bot is not None else 0
        if blocked != want:
            problems.append(f"{name} IdentitiesBlocked from the browser: the metrics say {blocked:g}, not {want}")
    for dimensions, values in part.output.series("RejectedEvents").items():
        if sum(values):
            problems.append(f"the real client's events were rejected: {dict(dimensions)}: {sum(values):g}")
    return problems


def replay_deliveries(
    aws: EmbeddedAws, *, max_bytes: int, delivered: Collection[str] = frozenset()
) -> list[tuple[AppMonitor, dict[str, Any]]]:
    """The subscription deliveries of every monitor's log events not ``delivered`` yet (``all_deliveries``
    less the browser's events, which the data plane delivered as they came: CloudWatch Logs delivers each
    log event once)."""
    found: list[tuple[AppMonitor, dict[str, Any]]] = []
    for app_monitor in aws.app_monitors.values():
        group = app_monitor.log_group
        for stream in aws.log_streams(group):
            fresh = [event for event in aws.log_events(group, stream) if event.id not in delivered]
            for batch in batches(fresh, max_bytes):
                event = subscription_event(
                    group, batch, log_stream=stream, owner=aws.account_id, filter_name=FILTER_NAME
                )
                found.append((app_monitor, event))
    return found


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


def _check_blocked(
    what: str, identity: str, rule: Rule, state: Enforcement, now: datetime, problems: list[str]
) -> bool:
    """One identity that must be blocked by ``rule`` and enforced everywhere; ``False`` if it escaped."""
    block = state.blocks.get(identity)
    if block is None:
        problems.append(f"{what} escaped: it was never blocked")
        return False
    if block.rule != rule.value:
        problems.append(f"{what} was blocked by {block.rule}, not by {rule.value}")
    if block.actor != AUTO or block.dry_run or not block.is_active(now):
        problems.append(f"{what}: the block is not an active automatic enforced one: {block}")
    if identity not in state.denied:
        problems.append(f"{what} is blocked in the table but not in the guest role's deny policy")
    if state.in_pool.get(identity, True):
        problems.append(f"{what} is blocked but still in the identity pool (not deleted)")
    event = state.blocked_events().get(identity)
    if event is None:
        problems.append(f"{what}: no {IDENTITY_BLOCKED} event reached the queue")
    elif event.get("rule") != rule.value or event.get("actor") != AUTO or event.get("dryRun") is not False:
        problems.append(f"{what}: the {IDENTITY_BLOCKED} event says {event}")
    return True


def check_enforcement(cast: Cast, state: Enforcement, observed: Observed, now: datetime) -> list[str]:
    """Every bot blocked by its rule and enforced everywhere; the forger refused; nobody honest touched."""
    problems: list[str] = []
    denied, events = state.denied, state.blocked_events()
    for bot in cast.blockable_bots():
        assert bot.rule is not None
        what = f"the {bot.kind.value} ({bot.identity})"
        if not _check_blocked(what, bot.identity, bot.rule, state, now, problems):
            continue
        if bot.identity not in observed.blocked:
            problems.append(f"{what}: no invocation reported blocking it")
    shop_bot = cast.shop_bot()
    if cast.shop is not None and shop_bot is not None:
        what = f"the bot page in Chromium ({shop_bot})"
        if _check_blocked(what, shop_bot, BROWSER_BOT_RULE, state, now, problems) and shop_bot not in cast.shop.blocked:
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
    honest += [
        (identity, "guest in Chromium" if audience == Audience.GUEST.value else "signed-in user in Chromium")
        for identity, audience in cast.shop_honest().items()
    ]
    for identity, who in honest:
        if identity in state.blocks:
            problems.append(f"an honest {who} was blocked: {state.blocks[identity]}")
        if identity in denied:
            problems.append(f"an honest {who} is in the deny policy: {identity}")
        if not state.in_pool.get(identity, False):
            problems.append(f"an honest {who} was deleted from the identity pool: {identity}")
    must_block = set(cast.must_block())
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


# --- alarms --------------------------------------------------------------------------------------------------
def sweeper_environment(aws: EmbeddedAws) -> dict[str, str]:
    """The sweeper's environment in the demo: the embedded AWS's, with the demo's alarm settings."""
    return {
        **aws.sweeper_environment(),
        "ALARM_PREFIX": ALARM_PREFIX,
        "BLOCKS_ALARM_LIMIT": str(DEMO_BLOCKS_ALARM_LIMIT),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


@dataclass(frozen=True, slots=True)
class Sweep:
    """The one sweep the demo runs: what the sweeper returned and printed, and what it should have published."""

    value: dict[str, Any]
    output: EmfOutput
    failures: list[str]
    #: The alarm names the sweeper should publish for the configured monitors and the demo's thresholds.
    expected: list[str]


def sweep(aws: EmbeddedAws) -> Sweep:
    """Invoke ``handlers.sweeper`` once, as its schedule would: blocks, deny policy, alarms."""
    environ = sweeper_environment(aws)
    settings = SweeperSettings.from_environ(environ)
    monitors = [app_monitor.monitor for app_monitor in aws.app_monitors.values()]
    expected = [spec.name for spec in desired_alarms(ALARM_PREFIX, monitors, settings.alarm_thresholds())]
    function = LocalFunction(SWEEPER_MODULE, environ, function_name="rumguard-sweeper", log_level="WARNING")
    invocation = function.invoke(dict(SCHEDULED_EVENT))
    failures = []
    if invocation.error is not None:
        failures.append(f"the sweeper raised {type(invocation.error).__name__}: {invocation.error}")
    for record in invocation.output.logs:
        if record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            failures.append(f"the sweeper logged {record.get('level')}: {record}")
    failures += [f"the sweeper printed an unexpected line: {line[:200]}" for line in invocation.output.text]
    failures += [f"the sweeper warned: {w}" for w in invocation.warnings if not w.startswith(NO_METRICS_WARNING)]
    value = invocation.value if isinstance(invocation.value, dict) else {}
    return Sweep(value, invocation.output, failures, expected)


def described_alarms(aws: EmbeddedAws) -> list[dict[str, Any]]:
    """RUM Guard's metric alarms as ``DescribeAlarms`` returns them, by name."""
    cloudwatch: CloudWatchClient = aws.session.client("cloudwatch")
    found: list[dict[str, Any]] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=f"{ALARM_PREFIX}{SEPARATOR}", AlarmTypes=["MetricAlarm"]
    ):
        found += [dict(alarm) for alarm in page.get("MetricAlarms", [])]
    return sorted(found, key=lambda alarm: str(alarm["AlarmName"]))


def period_values(
    output: EmfOutput, metric: str, dimensions: Mapping[str, str], statistic: str
) -> dict[int, tuple[float, int]]:
    """A metric's statistic per five-minute period, by the timestamps of the EMF blobs that carry it, as
    CloudWatch aggregates them: period start (epoch ms) -> (value, sample count)."""
    key = tuple(sorted(dimensions.items()))
    samples: dict[int, list[float]] = {}
    for blob in output.blobs:
        start = int(blob.document["_aws"]["Timestamp"]) // PERIOD_MS * PERIOD_MS
        for datum in blob.data:
            if datum.namespace == NAMESPACE and datum.name == metric and datum.dimensions == key:
                samples.setdefault(start, []).extend(datum.values)
    aggregate: Callable[[list[float]], float] = math.fsum if statistic == "Sum" else max
    return {start: (aggregate(values), len(values)) for start, values in sorted(samples.items())}


@dataclass(frozen=True, slots=True)
class AlarmVerdict:
    """One published alarm, and the state CloudWatch would give it on this run's metrics (if the demo can tell)."""

    alarm: Mapping[str, Any]
    parsed: ParsedName | None
    #: What it watches and when it fires, as people read it.
    metric: str
    condition: str
    #: ``ALARM`` or ``OK``; ``None`` when only CloudWatch can tell (metric math over periods, anomaly bands).
    state: str | None
    #: The value of the period that breached (``ALARM``) or the highest one (``OK``); ``None``: no data.
    value: float | None = None
    period_start_ms: int | None = None
    samples: int = 0
    note: str = ""

    @property
    def name(self) -> str:
        """The alarm's name."""
        return str(self.alarm["AlarmName"])


def _is_single_metric(alarm: Mapping[str, Any]) -> bool:
    """One metric, Sum or Maximum over five minutes, more than a threshold once: what the demo evaluates."""
    return (
        bool(alarm.get("MetricName"))
        and alarm.get("Namespace") == NAMESPACE
        and alarm.get("Statistic") in ("Sum", "Maximum")
        and int(alarm.get("Period") or 0) == PERIOD_SECONDS
        and int(alarm.get("EvaluationPeriods") or 0) == 1
        and int(alarm.get("DatapointsToAlarm") or 1) == 1
        and alarm.get("ComparisonOperator") == "GreaterThanThreshold"
    )


def describe_condition(alarm: Mapping[str, Any]) -> tuple[str, str]:
    """What an alarm watches and when it fires, read from its ``DescribeAlarms`` entry."""
    threshold = float(alarm.get("Threshold") or 0.0)
    if alarm.get("MetricName"):
        unit = " %" if alarm["MetricName"] == "PolicyCapacityUsed" else ""
        per = " in 5 min" if alarm.get("Statistic") == "Sum" else ""
        statistic = {"Sum": "sum", "Maximum": "max"}.get(str(alarm.get("Statistic")), str(alarm.get("Statistic")))
        return f"{alarm['MetricName']}, {statistic}", f"> {threshold:g}{unit}{per}"
    queries = list(alarm.get("Metrics") or [])
    names = {q["Id"]: q["MetricStat"]["Metric"]["MetricName"] for q in queries if "MetricStat" in q}
    evaluated = alarm.get("EvaluationPeriods")
    periods = f"{alarm.get('DatapointsToAlarm') or evaluated} of {evaluated} periods"
    for query in queries:
        expression = str(query.get("Expression", ""))
        if expression.startswith("ANOMALY_DETECTION_BAND"):
            band = expression.rsplit(",", 1)[-1].strip(" )")
            return f"{', '.join(names.values())}, anomaly band", f"above {band} std dev in {periods}"
    for query in queries:
        expression = str(query.get("Expression", ""))
        if expression and query.get("ReturnData", True):
            for query_id, metric in names.items():
                expression = re.sub(rf"\b{re.escape(query_id)}\b", metric, expression)
            return str(query.get("Label") or expression), f"> {threshold:g} in {periods}"
    return "?", f"> {threshold:g}"


def evaluate_alarm(alarm: Mapping[str, Any], output: EmfOutput) -> AlarmVerdict:
    """The state CloudWatch would give a single-metric alarm on ``output`` (every period of it): ``ALARM`` if a
    period breaches, else ``OK`` (missing data is not breaching). Other alarms are described, not evaluated."""
    parsed = parse_alarm_name(ALARM_PREFIX, str(alarm["AlarmName"]))
    metric, condition = describe_condition(alarm)
    if not _is_single_metric(alarm):
        anomaly = any("ANOMALY_DETECTION_BAND" in str(q.get("Expression", "")) for q in alarm.get("Metrics") or [])
        note = "CloudWatch only (model)" if anomaly else "CloudWatch only (math)"
        return AlarmVerdict(alarm, parsed, metric, condition, None, note=note)
    dimensions = {str(d["Name"]): str(d["Value"]) for d in alarm.get("Dimensions") or []}
    values = period_values(output, str(alarm["MetricName"]), dimensions, str(alarm["Statistic"]))
    threshold = float(alarm["Threshold"])
    for start, (value, samples) in values.items():
        if value > threshold:
            return AlarmVerdict(alarm, parsed, metric, condition, "ALARM", value, start, samples)
    if not values:
        return AlarmVerdict(alarm, parsed, metric, condition, "OK", note="no data")
    start, (value, samples) = max(values.items(), key=lambda item: item[1][0])
    return AlarmVerdict(alarm, parsed, metric, condition, "OK", value, start, samples)


def _cloudwatch_time(value: datetime) -> str:
    """``2026-01-02T17:04:40.989+0000``: how CloudWatch writes times in alarm events."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _event_metrics(alarm: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``configuration.metrics`` of an alarm state change event, from the alarm's definition."""

    def stat(metric: Mapping[str, Any], period: Any, statistic: Any) -> dict[str, Any]:
        return {
            "metric": {
                "dimensions": {d["Name"]: d["Value"] for d in metric.get("Dimensions") or []},
                "name": metric["MetricName"],
                "namespace": metric["Namespace"],
            },
            "period": period,
            "stat": statistic,
        }

    if alarm.get("MetricName"):
        digest = hashlib.blake2b(str(alarm["AlarmName"]).encode(), digest_size=16).hexdigest()
        return [{"id": digest, "metricStat": stat(alarm, alarm["Period"], alarm["Statistic"]), "returnData": True}]
    metrics = []
    for query in alarm.get("Metrics") or []:
        item: dict[str, Any] = {"id": query["Id"], "returnData": query.get("ReturnData", True)}
        if "Expression" in query:
            item["expression"] = query["Expression"]
            if "Label" in query:
                item["label"] = query["Label"]
        else:
            metric_stat = query["MetricStat"]
            item["metricStat"] = stat(metric_stat["Metric"], metric_stat["Period"], metric_stat["Stat"])
        metrics.append(item)
    return metrics


def _event_state(entry: Mapping[str, Any]) -> dict[str, Any]:
    updated = entry.get("StateUpdatedTimestamp")
    return {
        "reason": str(entry.get("StateReason") or ""),
        "reasonData": str(entry.get("StateReasonData") or "{}"),
        "timestamp": _cloudwatch_time(updated) if isinstance(updated, datetime) else "",
        "value": str(entry.get("StateValue") or ""),
    }


def alarm_state_change(
    alarm: Mapping[str, Any], previous: Mapping[str, Any], *, account: str, region: str
) -> dict[str, Any]:
    """The "CloudWatch Alarm State Change" event CloudWatch sends to EventBridge when ``previous`` (a
    ``DescribeAlarms`` entry) became ``alarm`` (the entry now)."""
    updated = alarm.get("StateUpdatedTimestamp")
    at = updated if isinstance(updated, datetime) else datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": ALARM_STATE_CHANGE,
        "source": CLOUDWATCH_SOURCE,
        "account": account,
        "time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [alarm["AlarmArn"]],
        "detail": {
            "alarmName": alarm["AlarmName"],
            "state": _event_state(alarm),
            "previousState": _event_state(previous),
            "configuration": {"description": alarm.get("AlarmDescription", ""), "metrics": _event_metrics(alarm)},
        },
    }


def raise_alarm(aws: EmbeddedAws, verdict: AlarmVerdict) -> dict[str, Any]:
    """Put a breaching alarm in ALARM with the reason CloudWatch would give (``SetAlarmState``: moto never
    evaluates alarms), and return the state change event CloudWatch would send for it."""
    assert verdict.state == "ALARM" and verdict.value is not None and verdict.period_start_ms is not None
    cloudwatch: CloudWatchClient = aws.session.client("cloudwatch")
    name = verdict.name

    def described() -> dict[str, Any]:
        return dict(cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0])

    before = described()
    start = datetime.fromtimestamp(verdict.period_start_ms / 1000, tz=UTC)
    threshold, value = float(verdict.alarm["Threshold"]), float(verdict.value)
    reason = (
        f"Threshold Crossed: 1 out of the last 1 datapoints [{value!r} ({start:%d/%m/%y %H:%M:%S})] was greater "
        f"than the threshold ({threshold!r}) (minimum 1 datapoint for {before.get('StateValue')} -> ALARM transition)."
    )
    data = {
        "version": "1.0",
        "queryDate": _cloudwatch_time(datetime.now(UTC)),
        "startDate": _cloudwatch_time(start),
        "statistic": verdict.alarm.get("Statistic"),
        "period": PERIOD_SECONDS,
        "recentDatapoints": [value],
        "threshold": threshold,
        "evaluatedDatapoints": [
            {"timestamp": _cloudwatch_time(start), "sampleCount": float(verdict.samples), "value": value}
        ],
    }
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=reason, StateReasonData=json.dumps(data))
    return alarm_state_change(described(), before, account=aws.account_id, region=aws.region)


def check_alarms(result: Sweep, verdicts: Sequence[AlarmVerdict]) -> list[str]:
    """The sweeper published exactly the expected alarms, left the deny policy as it found it, and the abuse
    wave's alarm would have gone to ALARM."""
    problems = list(result.failures)
    published = sorted(verdict.name for verdict in verdicts)
    if published != sorted(result.expected):
        problems.append(f"the published alarms {published} are not the expected {sorted(result.expected)}")
    created = sorted(result.value.get("alarms", {}).get("created", []))
    if created != sorted(result.expected):
        problems.append(f"the sweeper created {created}, not the expected {sorted(result.expected)}")
    if result.value.get("converged") is not True or result.value.get("expired") or result.value.get("unenforced"):
        problems.append(f"the sweeper found the deny policy out of line with the table: {result.value}")
    blocks = alarm_name(ALARM_PREFIX, AlarmKind.BLOCKS, GUEST_MONITOR)
    wave = next((verdict for verdict in verdicts if verdict.name == blocks), None)
    if wave is None or wave.state != "ALARM":
        problems.append(f"the abuse-wave alarm {blocks} would not have gone to ALARM: {wave}")
    return problems


# --- notifications -------------------------------------------------------------------------------------------
class EventBridgeClock:
    """Time for the notify function as EventBridge runs it: each event invokes it at the event's own time, and
    invocations overlap.

    The demo hands the events over after the fact, so time is simulated: each invocation starts at its event's
    ``time``. The opener of a digest window waits for the window's end; the events that arrive meanwhile are
    handled during that wait, and the clock then moves on instead of sleeping. So the messages are the ones the
    production windows make, and the demo does not wait a minute for them.
    """

    def __init__(self) -> None:
        self.time = 0.0
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def now(self) -> float:
        """The simulated time."""
        return self.time

    def _next(self) -> None:
        at, call = self.pending.pop(0)
        self.time = max(self.time, at)
        call()

    def sleep(self, seconds: float) -> None:
        """Handle the events that arrive before the wait is over, then move the clock to its end."""
        wake = self.time + max(0.0, seconds)
        while self.pending and self.pending[0][0] <= wake:
            self._next()
        self.time = max(self.time, wake)

    def run(self, calls: Iterable[tuple[float, Callable[[], None]]]) -> None:
        """Invoke each call at its time (epoch seconds), in time order."""
        self.pending = sorted(calls, key=lambda timed: timed[0])
        while self.pending:
            self._next()


@dataclass(slots=True)
class Notified:
    """What the notify function sent: the messages the inbox received, and what went wrong on the way."""

    messages: list[dict[str, Any]]
    failures: list[str]
    #: One-minute windows the block events fall in (one digest each) and the window length.
    windows: int
    window_seconds: int
    #: Events handed to the notify function: from the bus, and alarm state changes.
    bus_events: int
    alarm_events: int

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The messages of one kind (``digest``, ``alarm``, ``lockdown``)."""
        return [m for m in self.messages if m["attributes"].get("rumguard.kind") == kind]


def notify(aws: EmbeddedAws, bus: Sequence[Mapping[str, Any]], alarm_events: Sequence[Mapping[str, Any]]) -> Notified:
    """Hand the bus events, then the alarm state changes, to the notify function (``NotifyApp`` wired as
    ``handlers.notify`` is, with production settings, on an ``EventBridgeClock``), and read what a person
    subscribed to the topic would receive."""
    inbox = aws.create_inbox()
    environ = {
        "RUMGUARD_TABLE": aws.table_name,
        "NOTIFY_TOPIC_ARN": inbox.topic_arn,
        "ALARM_PREFIX": ALARM_PREFIX,
        "DASHBOARD_NAME": ALARM_PREFIX,
    }
    settings = NotifySettings.from_environ(environ)
    log = CapturedOutput()
    logger = Logger(service="rumguard-notify-demo", level="WARNING")
    if isinstance(logger.logger_handler, logging.StreamHandler):
        logger.logger_handler.setStream(log)  # bound once per process: point it at this run's capture
    clock = EventBridgeClock()
    app = NotifyApp(
        settings,
        SnsTopic(aws.session.client("sns"), settings.topic_arn),
        DynamoDigestStore(aws.dynamodb, aws.table_name),
        logger,
        region=aws.region,
        clock=clock.now,
        sleep=clock.sleep,
    )
    failures: list[str] = []

    def handle(event: Mapping[str, Any]) -> tuple[float, Callable[[], None]]:
        def call() -> None:
            try:
                app.handle(event, None)
            except Exception as error:  # noqa: BLE001 - Lambda would report it as the invocation's error
                failures.append(
                    f"the notify function raised {type(error).__name__} on {event.get('detail-type')}: {error}"
                )

        at = parse_time(event.get("time"))
        return (at.timestamp() if at else time.time()), call

    clock.run(handle(event) for event in bus)
    # The alarms come after the digests: CloudWatch evaluates a period once its data points are in.
    clock.run(handle(event) for event in alarm_events)
    output = log.take()
    failures += [
        f"the notify function logged {r.get('level')}: {r}"
        for r in output.logs
        if r.get("level") in ("WARNING", "ERROR", "CRITICAL")
    ]
    failures += [f"the notify function printed: {line[:200]}" for line in output.text]
    windows = set()
    for event in bus:
        at = parse_time(event.get("time"))
        if event.get("detail-type") == IDENTITY_BLOCKED and at is not None:
            windows.add(int(at.timestamp()) // settings.digest_seconds)
    return Notified(aws.received(inbox), failures, len(windows), settings.digest_seconds, len(bus), len(alarm_events))


def check_notifications(cast: Cast, verdicts: Sequence[AlarmVerdict], notified: Notified) -> list[str]:
    """One digest per minute listing every blocked bot once; one message per alarm that went to ALARM; no
    message that names an honest identity; every subject within SNS's limit."""
    problems = list(notified.failures)
    digests = notified.of_kind("digest")
    if len(digests) != notified.windows:
        problems.append(
            f"{len(digests)} digest messages for block events in {notified.windows} windows of "
            f"{notified.window_seconds} s: one per window expected"
        )
    for identity in cast.must_block():
        listed = sum(message["message"].count(identity) for message in digests)
        if listed != 1:
            problems.append(f"the blocked bot {identity} is listed {listed} times in the digests, not once")
    alarms = notified.of_kind("alarm")
    raised = [verdict.name for verdict in verdicts if verdict.state == "ALARM"]
    for name in raised:
        about = [m for m in alarms if f"for alarm {name}" in m["message"]]
        if len(about) != 1:
            problems.append(f"{len(about)} notifications about the alarm {name}, not one")
    if len(alarms) != len(raised):
        problems.append(f"{len(alarms)} alarm notifications for {len(raised)} alarms in ALARM")
    others = [
        m["subject"] for m in notified.messages if m["attributes"].get("rumguard.kind") not in ("digest", "alarm")
    ]
    if others:
        problems.append(f"unexpected notifications: {others}")
    honest = {*cast.guests, *cast.signed_in, *cast.shop_honest()}
    for message in notified.messages:
        named = sorted(i for i in honest if i in message["subject"] or i in message["message"])
        if named:
            problems.append(f"the notification {message['subject']!r} names honest identities: {named}")
        if not 0 < len(message["subject"]) < 100:
            problems.append(
                f"a subject SNS would refuse ({len(message['subject'])} characters): {message['subject']!r}"
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


def _bots_table(
    cast: Cast, state: Enforcement, observed: Observed, detection: Detection, *, verbose: bool = True
) -> Table:
    caption = (
        "identity: the id's first digits (after the region); counted: what the rule summed over its window "
        "when the decision was made; caught: the batch that crossed the threshold, and how long its whole "
        "invocation took; enforced: listed in the deny policy, deleted from the pool, Identity Blocked event "
        "on the bus"
        if verbose
        else "counted: what the rule summed over its window when it decided; caught: the replayed batch that "
        "crossed the line (its whole invocation's time), or when the browser's bot started getting 403; enforced: in "
        "the deny policy, deleted from the pool, event on the bus"
    )
    table = Table(
        title="The bots, and what RUM Guard did about them",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption=caption,
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
    shop_bot = cast.shop_bot()
    if cast.shop is not None and shop_bot is not None:
        block = state.blocks.get(shop_bot)
        if block is None:
            outcome, counted = "[bold red]ESCAPED[/]", "-"
        else:
            colour = "green" if block.rule == BROWSER_BOT_RULE.value else "bold red"
            outcome = f"[{colour}]blocked[/]: {block.rule}"
            threshold = detection.thresholds.get(Rule(block.rule)) if block.rule in _RULES else None
            counted = f"{block.counts.get(block.rule, 0):,} / {threshold.limit:,}" if threshold else "?"
        first = cast.shop.first_refusal()
        after = cast.shop.run.bot_blocked_after
        caught = f"403 from {after:.1f} s on" if first is not None and after is not None else "-"
        facts = (shop_bot in denied, not state.in_pool.get(shop_bot, True), shop_bot in events)
        table.add_row(
            "Chromium bot page",
            shop_bot.partition(":")[2][:8],
            f"{sum(r.events for r in cast.shop.bot_receipts()):,}",
            outcome,
            counted,
            caught,
            marks(facts, (True, True, True)),
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
    if cast.shop is not None:
        rows.append(("shoppers in Chromium (guest and signed-in ids)", list(cast.shop_honest())))
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


# --- the story -----------------------------------------------------------------------------------------------
def _traffic_table(aws: EmbeddedAws, output: EmfOutput, browser: EmfOutput | None) -> Table:
    """Per app monitor, what RUM Guard counted (the browser's share, when it ran)."""
    table = Table(
        title=f"Traffic per app monitor, as RUM Guard counted it (metrics in namespace {NAMESPACE})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # ten columns: the box's own divider is space enough
    )
    table.add_column("app monitor", no_wrap=True)
    table.add_column("audience", no_wrap=True)
    columns = [("events", "Events")]
    if browser is not None:
        columns.append(("of which\nChromium", ""))
    columns += [
        ("page\nviews", "PageViews"),
        ("sessions", "SessionStarts"),
        ("JS\nerrors", "JsErrors"),
        ("HTTP\nerrors", "HttpErrors"),
        ("rejected", "RejectedEvents"),
        ("blocked", "IdentitiesBlocked"),
    ]
    for label, _ in columns:
        table.add_column(label, justify="right", no_wrap=True)
    for app_monitor in aws.app_monitors.values():
        dims = {"AppMonitor": app_monitor.name, "Audience": app_monitor.monitor.audience.value}
        cells = []
        for _, metric in columns:
            source, name = (browser, "Events") if not metric and browser is not None else (output, metric)
            cells.append(f"{source.total(name, **dims):,.0f}")
        table.add_row(app_monitor.name, app_monitor.monitor.audience.value, *cells)
    return table


def _honest_lines(cast: Cast, state: Enforcement) -> list[str]:
    """What the honest users saw, in two sentences: nothing."""
    denied = state.denied
    people = {*cast.guests, *cast.signed_in, *cast.shop_honest()}
    blocked = sum(1 for i in people if i in state.blocks)
    listed = sum(1 for i in people if i in denied)
    gone = sum(1 for i in people if not state.in_pool.get(i, False))
    victims = sum(1 for bot in cast.forgers() if bot.impersonates in cast.signed_in)
    who = f"{len(cast.guests):,} simulated guests and {len(cast.signed_in):,} signed-in users"
    if victims:
        who += f" ({victims} of them impersonated by the forger)"
    if cast.shop is not None:
        who += f", and {len(cast.shop.run.journeys)} shoppers in Chromium"
    if blocked or listed or gone:
        verdict = f"[bold red]{blocked} blocked, {listed} in the deny policy, {gone} deleted from the pool[/]"
    else:
        verdict = "[green]none blocked, none in the deny policy, all still in the identity pool[/]"
    heading = (
        "[bold]3. What the honest users saw: nothing[/]"
        if not (blocked or listed or gone)
        else ("[bold red]3. What the honest users saw: trouble[/]")
    )
    lines = [heading, f"{who}: {verdict}."]
    shop = cast.shop
    if shop is not None:
        honest = shop.honest_receipts()
        refused = sum(1 for r in honest if not r.accepted)
        first = shop.first_refusal()
        later = sum(1 for r in honest if first is not None and r.at > first.at)
        colour = "green" if not refused else "bold red"
        bot = shop.bot_receipts()
        line = (
            f"In Chromium, the honest shoppers' batches: [{colour}]{len(honest) - refused} of {len(honest)} "
            f"accepted[/] (HTTP 200), {later} of them after the bot was blocked."
        )
        if first is not None:
            line += (
                f" The bot's first {sum(1 for r in bot if r.accepted and r.at < first.at)} batches were accepted, its "
                f"next {sum(1 for r in bot if not r.accepted)} refused by the local RUM data plane (403 "
                f"{first.error}: the deny statement RUM Guard wrote)."
            )
        lines.append(line)
    return lines


def _enforcement_line(aws: EmbeddedAws, state: Enforcement) -> str:
    names = ", ".join(sorted(state.policies)) or "(none)"
    size = sum(policy_size(document) for document in state.policies.values())
    deleted = sum(1 for identity in state.blocks if not state.in_pool.get(identity, True))
    return (
        f"Enforced: {len(state.denied)} identities denied in the guest role's inline policy {names} ({size:,} "
        f"characters; {state.capacity_used:.1f} % of IAM's budget for the role), {deleted} deleted from the identity "
        f"pool, {len(state.blocked_events())} {IDENTITY_BLOCKED} events on the {aws.event_bus_name} bus."
    )


def _alarms_table(aws: EmbeddedAws, verdicts: Sequence[AlarmVerdict], expected: Sequence[str]) -> Table:
    table = Table(
        title=f"Alarms RUM Guard published (the sweeper's: {ALARM_PREFIX}{SEPARATOR}<app monitor>{SEPARATOR}<alarm>, "
        "no actions: EventBridge brings their state changes to the notify function)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="here: the state CloudWatch would give the alarm on this run's metrics (moto never evaluates alarms: "
        "the demo does, for the single-metric ones, by five-minute period). BLOCKS_ALARM_LIMIT is "
        f"{DEMO_BLOCKS_ALARM_LIMIT} here, not 10: the replay squeezes 90 minutes of blocks into seconds.",
        caption_justify="left",
    )
    for column in ("alarm", "metric", "alarm when", "here"):
        table.add_column(column, no_wrap=True)
    order = {name: index for index, name in enumerate(expected)}
    audiences = {name: m.monitor.audience.value for name, m in aws.app_monitors.items()}
    group: str | None = "-"
    for verdict in sorted(verdicts, key=lambda v: order.get(v.name, len(order))):
        monitor = verdict.parsed.monitor if verdict.parsed else None
        heading = f"{audiences[monitor]} monitor" if monitor in audiences else "pool-wide"
        if heading != group:
            table.add_row(f"[bold]{heading}[/]", f"[bold]{monitor or ''}[/]", "", "")
            group = heading
        kind = verdict.parsed.label if verdict.parsed else verdict.name
        if verdict.state == "ALARM":
            here = f"[bold red]ALARM[/]: {verdict.value:g}"
        elif verdict.state == "OK":
            here = f"[green]OK[/]: {'no data' if verdict.value is None else f'at most {verdict.value:.3g}'}"
        else:
            here = f"[dim]{verdict.note}[/]"
        table.add_row(f"  {kind}", verdict.metric, verdict.condition, here)
    return table


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _print_notification(console: Console, message: Mapping[str, Any], verbose: bool) -> None:
    """A message as a mail client lists it: the subject, then the body (abridged: no blank lines, links or
    background, each line cut at the console's width; ``verbose``: all of it)."""
    console.print(f"  [bold]✉ {escape(message['subject'])}[/]", soft_wrap=True)
    body = str(message["message"]).splitlines()
    lines = body if verbose else [line for line in body if line.strip() and not line.startswith(ABRIDGED)]
    shown = lines if verbose else lines[:NOTIFICATION_LINES]
    for line in shown:
        if verbose:
            console.print(Text(f"    {line}".rstrip()), soft_wrap=True)
        else:
            console.print(Text(f"    {line}"), no_wrap=True, overflow="ellipsis")
    left = len([line for line in body if line.strip()]) - len(shown)
    if not verbose and left > 0:
        console.print(f"    [dim]({_plural(left, 'more line', 'more lines')}: --verbose shows the messages in full)[/]")


# --- the run -------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class DemoReport:
    """What one demo run did and found."""

    cast: Cast
    state: Enforcement
    observed: Observed
    problems: list[str]
    seconds: float
    #: Why the browser part did not run (empty when it did).
    browser_skipped: str = ""
    alarms: list[AlarmVerdict] = field(default_factory=list)
    notified: Notified | None = None


def play(args: argparse.Namespace, console: Console) -> DemoReport:
    """Run the demo, printing as it goes; the report says what was blocked and what went wrong.

    Raises ``BrowserUnavailableError`` with ``--browser on`` when the browser cannot run here.
    """
    started = time.perf_counter()
    max_bytes = int(args.batch_kb) * 1024
    verbose = bool(getattr(args, "verbose", False))
    executable, skipped = browser_executable(str(getattr(args, "browser", "off")))

    with EmbeddedAws(guest_monitors=(GUEST_MONITOR,), signed_in_monitors=(SIGNED_IN_MONITOR,)) as aws:
        monitors = " and ".join(f"[cyan]{m.name}[/] ({m.monitor.audience.value})" for m in aws.app_monitors.values())
        console.print(
            f"[bold]RUM Guard demo[/] on the embedded AWS (moto, {aws.region}), mode [cyan]{aws.mode}[/]: app monitors "
            f"{monitors}, an identity pool that allows guests, the guest role [cyan]{aws.guest_role_name}[/], the bus "
            f"[cyan]{aws.event_bus_name}[/] and the table (from template.yaml)",
            soft_wrap=True,
        )
        if verbose:
            console.print(
                f"  account {aws.account_id}, identity pool {aws.identity_pool_id}, table {aws.table_name}",
                soft_wrap=True,
            )
            for app_monitor in aws.app_monitors.values():
                console.print(f"  log group of {app_monitor.name}: {app_monitor.log_group}", soft_wrap=True)

        environ = {**aws.ingest_environment(), "POWERTOOLS_LOG_LEVEL": "WARNING"}
        detection = IngestSettings.from_environ(environ).detection()  # the thresholds the handler runs with
        guest, signed_in = aws.monitor(GUEST_MONITOR).monitor, aws.monitor(SIGNED_IN_MONITOR).monitor
        function = LocalFunction(HANDLER_MODULE, environ, function_name="rumguard-ingest", log_level="WARNING")
        observed = Observed()
        # CloudWatch Logs checks a new subscription with a control message, which the handler must skip.
        for app_monitor in aws.app_monitors.values():
            control = _invoke(function, control_message_event(app_monitor.log_group), "control message", observed)
            if control is not None and control.value != {"skipped": "CONTROL_MESSAGE"}:
                observed.failures.append(f"the control message was not skipped: {control.value!r}")

        console.print()
        console.print("[bold]1. Traffic[/]")
        shop: BrowserPart | None = None
        if executable is None:
            why = f"({skipped})" if skipped.startswith("--") else f"because {skipped} (--browser on insists)"
            console.print(f"Simulated traffic only, no browser {why}.", soft_wrap=True)
        else:
            with console.status("The real aws-rum-web shop in headless Chromium: a bot page floods page views..."):
                try:
                    shop = run_browser(aws, function, executable)
                except BrowserError as error:
                    observed.failures.append(f"the browser part failed: {error} (--browser off skips it)")
            if shop is not None:
                run, signed = shop.run, shop.shoppers(Audience.SIGNED_IN.value)
                console.print(
                    f"Live, in Chromium {run.chromium}: the real aws-rum-web client in the test shop, with guest "
                    "credentials from the embedded Cognito pool, sending to the local RUM data plane (which "
                    f"evaluates the guest role's policies): "
                    f"{_plural(signed, 'signed-in shopper', 'signed-in shoppers')}, "
                    f"{_plural(len(run.journeys) - signed, 'guest', 'guests')} and a bot page; "
                    f"{len(shop.receipts)} batches answered, {shop.deliveries} delivered to handlers.ingest as they "
                    f"arrived ({shop.seconds:.1f} s).",
                    soft_wrap=True,
                )

        start_ms = int(time.time() * 1000) - HISTORY_MS
        sim = BotTraffic(guest, signed_in, seed=args.seed, start_ms=start_ms)
        with console.status("Creating identities in the pool and simulating traffic..."):
            cast, records = simulate(aws, sim, args.journeys, args.guests, start_ms, detection)
        cast.shop = shop
        with console.status("Writing the RUM events to the log groups with PutLogEvents..."):
            written = aws.put_records(records)
        streams = sum(len(aws.log_streams(m.log_group)) for m in aws.app_monitors.values())
        bots = ", ".join(bot.kind.value for bot in cast.bots)
        console.print(
            f"Replayed, simulated: {HISTORY_MS // 60_000} minutes of shop history, {args.journeys} signed-in journeys, "
            f"{args.guests} browsing guests ({len(cast.guests)} guest and {len(cast.signed_in)} signed-in identities "
            f"created in the pool) and {len(cast.bots)} bots ({bots}): {written:,} RUM events written with "
            f"PutLogEvents into {streams} hourly log streams.",
            soft_wrap=True,
        )
        if verbose:
            for bot in cast.bots:
                target = (
                    f"claims signed-in user {_short(bot.identity)}"
                    if bot.rule is None
                    else f"guest {_short(bot.identity)}"
                )
                span = (bot.last_ms - bot.first_ms) / 1000
                console.print(
                    f"  [yellow]{bot.kind.value}[/]: {bot.events:,} events in {span:,.0f} s, {target}", soft_wrap=True
                )

        deliveries = replay_deliveries(aws, max_bytes=max_bytes, delivered=shop.delivered if shop else frozenset())
        first: tuple[dict[str, Any], Any] | None = None
        delivery_started = time.perf_counter()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=not verbose,
            disable=not console.is_terminal,
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
                    seen = Sighting(number, took, value["logEvents"])
                    _note_decisions(progress.console if verbose else None, cast, observed, value, seen)
                observed.deliveries += 1
                progress.advance(task)
        elapsed = time.perf_counter() - delivery_started
        rate = observed.delivered_events / elapsed if elapsed else 0.0
        console.print(
            f"Delivered {observed.deliveries} batches ({observed.delivered_events:,} log events) to handlers.ingest "
            f"in {elapsed:.1f} s, {rate:,.0f} events/s (detection and enforcement included).",
            soft_wrap=True,
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
                        "no metrics emitted, same result returned: [green]not counted twice[/] (idempotency).",
                        soft_wrap=True,
                    )

        state = enforcement_state(aws, cast)
        counted = EmfOutput()
        if shop is not None:
            counted.extend(shop.output)
        counted.extend(observed.output)
        console.print(_traffic_table(aws, counted, shop.output if shop is not None else None))

        console.print()
        console.print("[bold]2. Bots caught, and why[/]")
        console.print(_bots_table(cast, state, observed, detection, verbose=verbose))
        for note in _forger_notes(cast, state, observed):
            console.print(note, soft_wrap=True)
        console.print(_enforcement_line(aws, state), soft_wrap=True)

        console.print()
        for line in _honest_lines(cast, state):
            console.print(line, soft_wrap=True)
        if verbose:
            console.print(_honest_table(cast, state))
            console.print(_policy_table(aws, state))
            console.print(_bus_table(aws, cast, state))
            console.print(_metrics_table(aws, counted))
            console.print(_kinds_table(aws, sim.tally, cast.junk()))

        console.print()
        console.print("[bold]4. Alarms[/]")
        with console.status("The sweeper: expiring blocks, reconciling the deny policy and the alarms..."):
            swept = sweep(aws)
        metrics = EmfOutput()
        metrics.extend(counted)
        metrics.extend(swept.output)
        verdicts = [evaluate_alarm(alarm, metrics) for alarm in described_alarms(aws)]
        alarm_events = [raise_alarm(aws, verdict) for verdict in verdicts if verdict.state == "ALARM"]
        console.print(_alarms_table(aws, verdicts, swept.expected))

        console.print()
        console.print("[bold]5. Notifications[/]")
        notified = notify(aws, state.bus, alarm_events)
        console.print(
            f"The notify function got the {notified.bus_events} events on the bus and "
            f"{_plural(notified.alarm_events, 'alarm state change', 'alarm state changes')} (built from DescribeAlarms "
            "as CloudWatch sends them to EventBridge); it sums blocks up once per "
            f"{notified.window_seconds} s and app monitor. What a person subscribed to the SNS topic received "
            f"({_plural(len(notified.messages), 'message', 'messages')}):",
            soft_wrap=True,
        )
        for message in notified.messages:
            _print_notification(console, message, verbose)

        problems = (
            observed.failures
            + check_enforcement(cast, state, observed, datetime.now(UTC))
            + check_decision_metrics(aws, cast, state, observed)
            + check_counts(aws.app_monitors.values(), sim.tally, observed.output, rejected={guest.name: cast.junk()})
            + (check_browser(aws, shop) if shop is not None else [])
            + check_alarms(swept, verdicts)
            + check_notifications(cast, verdicts, notified)
        )
    return DemoReport(
        cast,
        state,
        observed,
        problems,
        time.perf_counter() - started,
        browser_skipped=skipped,
        alarms=verdicts,
        notified=notified,
    )


def _note_decisions(
    console: Console | None, cast: Cast, observed: Observed, value: Mapping[str, Any], seen: Sighting
) -> None:
    """Record the blocks and refusals an invocation reported, and print them (with a console)."""
    for identity in value.get("blocked", []):
        observed.blocked.setdefault(identity, seen)
        bot = cast.bot_of(identity)
        who = bot.kind.value if bot else "[bold red]not a bot[/]"
        if console is not None:
            console.print(
                f"  batch {seen.batch} ({seen.events} events): [bold]blocked[/] {_short(identity)} ({who}) "
                f"within the invocation, {seen.milliseconds:,.0f} ms",
                soft_wrap=True,
            )
    for identity in value.get("forged", []):
        observed.forged[identity] += 1
        if identity not in observed.first_refusal:
            observed.first_refusal[identity] = seen
            if console is not None:
                console.print(
                    f"  batch {seen.batch} ({seen.events} events): [bold]refused[/] {_short(identity)}: it crossed a "
                    "threshold, but it is not a guest identity (a forged claim), so it is never blocked",
                    soft_wrap=True,
                )


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """Run the demo; 0 when every bot was dealt with, nobody honest was touched, every metric adds up and the
    alarms and notifications are what they should be; 2 when ``--browser on`` cannot run the browser."""
    if console is None:
        console = Console(file=sys.stdout, highlight=False)
        if not console.is_terminal:
            console = Console(file=sys.stdout, highlight=False, width=max(console.width, 120))
    try:
        report = play(args, console)
    except BrowserUnavailableError as error:
        console.print(f"[bold red]rumguard demo --browser on[/]: the browser cannot run here: {error}", soft_wrap=True)
        return 2
    if report.problems:
        console.print(f"[bold red]FAILED[/]: {len(report.problems)} problem(s) after {report.seconds:.1f} s")
        for problem in report.problems:
            console.print(f"  [red]-[/] {problem}", soft_wrap=True)
        return 1
    cast = report.cast
    rules = ", ".join(f"{bot.kind.value}: {bot.rule.value}" for bot in cast.bots if bot.rule is not None)
    browser = (
        f"; in Chromium the bot page was blocked ({BROWSER_BOT_RULE.value}) and refused with 403 from then on, "
        "while every honest shopper's batch was accepted"
        if cast.shop is not None
        else f"; no browser ({report.browser_skipped})"
    )
    raised = [
        verdict.parsed.label if verdict.parsed else verdict.name
        for verdict in report.alarms
        if verdict.state == "ALARM"
    ]
    notified = report.notified
    digests = len(notified.of_kind("digest")) if notified else 0
    console.print(
        f"[bold green]OK[/]: {len(cast.blockable_bots())} bots blocked, each within the invocation that "
        f"crossed its threshold ({rules}); the forger refused and the user it impersonated untouched; "
        "no honest guest or signed-in user blocked; every metric of both monitors equals what the simulation generated"
        f"{browser}; {len(report.alarms)} alarms published, {', '.join(raised) or 'none'} in ALARM; "
        f"{_plural(digests, 'digest', 'digests')} listing every blocked bot and no honest identity, one message per "
        "alarm "
        f"({report.seconds:.1f} s)",
        soft_wrap=True,
    )
    return 0
