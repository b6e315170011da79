"""Abusive guest traffic: the bots of the demo and the benchmark, written as RUM writes events to its log group.

``BotTraffic`` is a ``TrafficSimulator`` (the same sessions, the same event builders, the same tally) that
also plays the guest identities the detection rules are for (DESIGN.md, detection defaults):

- the event flooder: more events in the flood window than the limit (a script replaying clicks and API
  calls as fast as it can);
- the session churner: a new session on every page load, more session starts than the churn limit;
- the page-velocity bot: a crawler, more page views in the velocity window than its limit;
- the error spammer: JavaScript errors by the hundred, to drown the error metrics;
- the junk sender: events that fail the aws-rum-web schemas (or carry a clock days off);
- the identity forger: a flooder on the guest monitor that claims a signed-in user's identity id, hoping
  to get that user blocked. RUM Guard must refuse it (``DescribeIdentity`` shows logins), never block it.

Each bot sends a fifth more than its rule's limit, well inside the rule's window, so it is caught by the
batch that crosses the line, and only that rule fires first. Valid bot events are made by the simulator's
own builders, so they pass the schemas and the tally counts them like any other event of the guest
monitor; junk events are deliberately invalid, are not in the tally, and are counted in ``Bot.junk``.

A burst's receipt times (the log event timestamps RUM sets, which the rules count by) are packed into the
burst's span, and each event's ``event_timestamp`` (the sender's own claim, as with any client) is set a
moment before its receipt.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from rumguard.detection import MINUTE_MS, Detection, Rule, Threshold
from rumguard.events import EventKind
from rumguard.local.traffic import LogRecord, Tally, TrafficSimulator

#: How far past its limit a bot goes: a fifth more, and at least this many.
OVERSHOOT: Final = 0.2
MIN_OVERSHOOT: Final = 1
#: Bursts start this long after a minute boundary, so a one-minute window holds a whole burst.
ALIGN_OFFSET_MS: Final = 2_000


class BotKind(enum.StrEnum):
    """The bots, by what they do. The value is how the demo names them."""

    FLOODER = "event flooder"
    CHURNER = "session churner"
    ERROR_SPAMMER = "error spammer"
    PAGE_VELOCITY = "page-velocity bot"
    JUNK_SENDER = "junk sender"
    FORGER = "identity forger"


@dataclass(frozen=True, slots=True)
class Bot:
    """One bot: who its events claim to be, what it sent, and what RUM Guard must do about it."""

    kind: BotKind
    #: The identity id in every event's metadata: the bot's own guest identity, or (the forger) a victim's.
    identity: str
    #: The rule that must block it; ``None`` for the forger, which must be refused and never blocked.
    rule: Rule | None
    records: tuple[LogRecord, ...]
    #: Events that fail the schema (in ``records``, not in the tally).
    junk: int = 0
    #: The forger: the signed-in user whose identity id it claims.
    impersonates: str | None = None

    @property
    def events(self) -> int:
        """Log events it sent, junk included."""
        return len(self.records)

    @property
    def first_ms(self) -> int:
        """Receipt time of its first event."""
        return min(r.timestamp_ms for r in self.records)

    @property
    def last_ms(self) -> int:
        """Receipt time of its last event."""
        return max(r.timestamp_ms for r in self.records)


def aligned(at_ms: int) -> int:
    """The first minute boundary at or after ``at_ms``, plus a little (see ``ALIGN_OFFSET_MS``)."""
    return -(-at_ms // MINUTE_MS) * MINUTE_MS + ALIGN_OFFSET_MS


def beyond(threshold: Threshold) -> int:
    """How many a bot sends against ``threshold``: past the limit by ``OVERSHOOT``."""
    return threshold.limit + max(MIN_OVERSHOOT, round(threshold.limit * OVERSHOOT))


def burst_span_ms(threshold: Threshold) -> int:
    """How long a burst against ``threshold`` lasts: two thirds of its window, 40 s for a one-minute one.

    With ``aligned`` starts, every event of the burst is inside one window of the rule.
    """
    if threshold.window_minutes == 1:
        return 40_000
    return threshold.window_minutes * MINUTE_MS * 2 // 3


class BotTraffic(TrafficSimulator):
    """Honest shop traffic (everything ``TrafficSimulator`` makes) and the bots, into one tally."""

    # --- the bots -----------------------------------------------------------------------------------------
    def event_flood(
        self, identity: str, at_ms: int, detection: Detection | None = None, *, kind: BotKind = BotKind.FLOODER
    ) -> Bot:
        """One session replaying clicks and API calls (no page views) past the flood limit."""
        threshold = _threshold(detection, Rule.EVENT_FLOOD)
        start = aligned(at_ms)
        session = self._session(self.guest, identity, start)
        out = self._landing(session, "/", "Welcome")
        target = beyond(threshold)
        while len(out) < target:
            product = self.rng.randint(1, 40)
            out += self._route(
                session,
                f"/product/{product}",
                "Product",
                clicks=3,
                calls=[("GET", f"/api/products/{product}", 200)],
                view=False,
            )
        rule = Rule.EVENT_FLOOD if kind is BotKind.FLOODER else None
        return Bot(kind, identity, rule, self._burst(out, start, threshold))

    def forged_flood(self, victim: str, at_ms: int, detection: Detection | None = None) -> Bot:
        """A flooder on the guest monitor whose events claim ``victim``'s identity id (a signed-in user)."""
        flood = self.event_flood(victim, at_ms, detection, kind=BotKind.FORGER)
        return replace(flood, impersonates=victim)

    def session_churn(self, identity: str, at_ms: int, detection: Detection | None = None) -> Bot:
        """A new one-page session again and again, past the churn limit within its window."""
        threshold = _threshold(detection, Rule.SESSION_CHURN)
        start = aligned(at_ms)
        sessions = beyond(threshold)
        every = burst_span_ms(threshold) // sessions
        out: list[LogRecord] = []
        for n in range(sessions):
            # Honest-looking sessions at their natural pace: only their number gives the bot away.
            out += self.guest_browse(identity, pages=1, at_ms=start + n * every)
        return Bot(BotKind.CHURNER, identity, Rule.SESSION_CHURN, tuple(out))

    def page_velocity(self, identity: str, at_ms: int, detection: Detection | None = None) -> Bot:
        """A crawler: route changes with no clicks, past the page-view limit within its window."""
        threshold = _threshold(detection, Rule.PAGE_VELOCITY)
        start = aligned(at_ms)
        session = self._session(self.guest, identity, start)
        out = self._landing(session, "/", "Welcome")
        for n in range(1, beyond(threshold)):
            path = f"/category/{n % 12}" if n % 3 else f"/product/{n}"
            out += self._route(session, path, path.split("/")[1].title(), clicks=0, calls=[])
        return Bot(BotKind.PAGE_VELOCITY, identity, Rule.PAGE_VELOCITY, self._burst(out, start, threshold))

    def error_spam(self, identity: str, at_ms: int, detection: Detection | None = None) -> Bot:
        """One page, then JS errors past the error limit within its window."""
        threshold = _threshold(detection, Rule.ERROR_SPAM)
        start = aligned(at_ms)
        session = self._session(self.guest, identity, start)
        out = self._landing(session, "/", "Welcome")
        for _ in range(beyond(threshold)):
            out.append(self._emit(session, EventKind.JS_ERROR, self._js_error()))
        return Bot(BotKind.ERROR_SPAMMER, identity, Rule.ERROR_SPAM, self._burst(out, start, threshold))

    def junk(self, identity: str, at_ms: int, detection: Detection | None = None) -> Bot:
        """Events that fail validation (a wrong type, a bad metadata version, a clock days off) past the
        junk limit, every one still claiming ``identity``."""
        threshold = _threshold(detection, Rule.JUNK)
        start = aligned(at_ms)
        session = self._session(self.guest, identity, start)
        # Built as valid events and then broken: the tally must not count them, so it is set aside.
        tally, self.tally = self.tally, Tally()
        try:
            out = [self._emit(session, EventKind.PAGE_VIEW, self._page_view(session)) for _ in range(beyond(threshold))]
        finally:
            self.tally = tally
        broken = tuple(
            replace(record, message=_break(record.message, n))
            for n, record in enumerate(self._burst(out, start, threshold))
        )
        return Bot(BotKind.JUNK_SENDER, identity, Rule.JUNK, broken, junk=len(broken))

    # --- pieces ---------------------------------------------------------------------------------------------
    def _js_error(self) -> dict[str, Any]:
        rng = self.rng
        kind, message = rng.choice(
            (
                ("TypeError", "Cannot read properties of null (reading 'click')"),
                ("ReferenceError", "grecaptcha is not defined"),
                ("Error", f"spam {rng.getrandbits(32):08x}"),
            )
        )
        return {
            "version": "1.0.0",
            "type": kind,
            "message": message,
            "filename": "https://shop.example.com/static/js/main.js",
            "lineno": rng.randint(1, 900),
            "colno": rng.randint(1, 80),
            "stack": f"{kind}: {message}\n    at x (main.js:1:1)",
        }

    def _burst(self, records: Sequence[LogRecord], start_ms: int, threshold: Threshold) -> tuple[LogRecord, ...]:
        """The records received evenly over the burst's span from ``start_ms``, each event claiming a time a
        moment before its receipt."""
        span = burst_span_ms(threshold)
        step = span / max(1, len(records) - 1)
        out = []
        for n, record in enumerate(records):
            received = start_ms + int(n * step)
            body = orjson.loads(record.message)
            body["event_timestamp"] = received - self.rng.randint(100, 2_000)
            body["log_stream"] = _hour(body["event_timestamp"])
            out.append(replace(record, timestamp_ms=received, message=orjson.dumps(body).decode()))
        return tuple(out)


def _threshold(detection: Detection | None, rule: Rule) -> Threshold:
    return (detection or Detection()).thresholds[rule]


def _hour(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H")


#: The ways ``_break`` makes an event invalid, in turn.
JUNK_VARIANTS: Final = ("wrong type", "bad metadata version", "clock days off")


def _break(message: str, n: int) -> str:
    """A valid page view event made invalid in one of ``JUNK_VARIANTS`` ways, its identity left as it was."""
    body = orjson.loads(message)
    variant = JUNK_VARIANTS[n % len(JUNK_VARIANTS)]
    if variant == "wrong type":
        body["event_details"]["interaction"] = "many"
    elif variant == "bad metadata version":
        body["metadata"]["version"] = "9.9.9"
    else:
        body["event_timestamp"] -= int(timedelta(days=3).total_seconds() * 1000)
    return orjson.dumps(body).decode()


def bot_army(
    traffic: BotTraffic,
    new_guest: Callable[[], str],
    victim: str,
    start_ms: int,
    *,
    spacing_ms: int = 6 * MINUTE_MS,
    detection: Detection | None = None,
    page_velocity: bool = True,
    junk: bool = True,
) -> list[Bot]:
    """Every bot, one after another from ``start_ms``: each on a new guest identity of the pool
    (``new_guest``), except the forger, which claims ``victim``, a signed-in user's identity id. The
    issue's four (flooder, churner, error spammer, forger) always; the page-velocity bot and the junk
    sender unless turned off."""
    makers: list[Callable[[int], Bot]] = [
        lambda at: traffic.event_flood(new_guest(), at, detection),
        lambda at: traffic.session_churn(new_guest(), at, detection),
        lambda at: traffic.error_spam(new_guest(), at, detection),
    ]
    if page_velocity:
        makers.append(lambda at: traffic.page_velocity(new_guest(), at, detection))
    if junk:
        makers.append(lambda at: traffic.junk(new_guest(), at, detection))
    makers.append(lambda at: traffic.forged_flood(victim, at, detection))
    return [make(start_ms + n * spacing_ms) for n, make in enumerate(makers)]
