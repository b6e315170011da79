"""Detection rules: per-identity counts in one-minute buckets, and the thresholds that mark abuse.

The defaults come from the RUM web client's own limits (DESIGN.md): by default a session records at most
200 events, dispatches every 5 seconds and lasts 30 minutes, so honest traffic stays far below them.

Counts live in one-minute buckets keyed by the minute of receipt (the log event timestamp that RUM sets,
not the client's clock, which the sender controls). A rule looks at the sum of its window's buckets,
ending at the minute the batch just updated, so an identity is caught by the batch that crosses the line.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

MINUTE_MS: Final = 60_000


class Counter(enum.StrEnum):
    """What is counted per identity. The value is the short key stored per bucket."""

    EVENTS = "e"
    SESSION_STARTS = "s"
    PAGE_VIEWS = "p"
    JS_ERRORS = "j"
    JUNK = "x"


@dataclass(frozen=True, slots=True)
class Counts:
    """Counts of one identity in one bucket (or summed over a window)."""

    events: int = 0
    session_starts: int = 0
    page_views: int = 0
    js_errors: int = 0
    junk: int = 0

    def get(self, counter: Counter) -> int:
        """The count of one counter."""
        return getattr(self, _FIELD[counter])  # type: ignore[no-any-return]

    def as_map(self) -> dict[Counter, int]:
        """The non-zero counters, keyed by ``Counter``."""
        return {c: n for c in Counter if (n := self.get(c))}

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.events + other.events,
            self.session_starts + other.session_starts,
            self.page_views + other.page_views,
            self.js_errors + other.js_errors,
            self.junk + other.junk,
        )

    @classmethod
    def from_map(cls, values: Mapping[Counter, int]) -> Counts:
        """Build from ``Counter`` keys; missing counters are zero."""
        return cls(**{_FIELD[c]: int(n) for c, n in values.items()})


_FIELD: Final = {
    Counter.EVENTS: "events",
    Counter.SESSION_STARTS: "session_starts",
    Counter.PAGE_VIEWS: "page_views",
    Counter.JS_ERRORS: "js_errors",
    Counter.JUNK: "junk",
}


class Rule(enum.StrEnum):
    """The automatic detection rules. The value is the name in decisions, events and metrics."""

    EVENT_FLOOD = "event-flood"
    SESSION_CHURN = "session-churn"
    PAGE_VELOCITY = "page-velocity"
    ERROR_SPAM = "error-spam"
    JUNK = "junk"


@dataclass(frozen=True, slots=True)
class Threshold:
    """A rule fires when ``counter`` summed over the last ``window_minutes`` is more than ``limit``."""

    counter: Counter
    limit: int
    window_minutes: int

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError("a limit cannot be negative")
        if not 1 <= self.window_minutes <= 60:
            raise ValueError("a window is 1 to 60 minutes")


def default_thresholds() -> dict[Rule, Threshold]:
    """DESIGN.md's defaults."""
    return {
        Rule.EVENT_FLOOD: Threshold(Counter.EVENTS, 1000, 5),
        Rule.SESSION_CHURN: Threshold(Counter.SESSION_STARTS, 5, 10),
        Rule.PAGE_VELOCITY: Threshold(Counter.PAGE_VIEWS, 60, 1),
        Rule.ERROR_SPAM: Threshold(Counter.JS_ERRORS, 100, 5),
        Rule.JUNK: Threshold(Counter.JUNK, 20, 5),
    }


@dataclass(frozen=True, slots=True)
class Detection:
    """The thresholds in force. ``window_minutes`` is how much history the counters must keep."""

    thresholds: Mapping[Rule, Threshold] = field(default_factory=default_thresholds)

    @property
    def window_minutes(self) -> int:
        """The longest window of any rule."""
        return max(t.window_minutes for t in self.thresholds.values())

    def evaluate(self, buckets: Mapping[int, Counts], minute: int) -> list[RuleHit]:
        """The rules crossed by the buckets' sums over each rule's window ending at ``minute``."""
        hits = []
        for rule, threshold in self.thresholds.items():
            total = window_sum(buckets, minute, threshold.window_minutes).get(threshold.counter)
            if total > threshold.limit:
                hits.append(RuleHit(rule, total, threshold))
        # The most exceeded rule first: it becomes the reason of the decision.
        hits.sort(key=lambda hit: hit.count / max(hit.threshold.limit, 1), reverse=True)
        return hits


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that fired, with the count that crossed its limit."""

    rule: Rule
    count: int
    threshold: Threshold

    def reason(self) -> str:
        """A sentence for people: what was counted against what limit."""
        counter = _FIELD[self.threshold.counter].replace("_", " ")
        return (
            f"{self.count} {counter} in {self.threshold.window_minutes} min "
            f"(limit {self.threshold.limit}): {self.rule.value}"
        )


def minute_of(timestamp_ms: float) -> int:
    """The bucket (minutes since the epoch) of a timestamp in milliseconds."""
    return int(timestamp_ms // MINUTE_MS)


def window_sum(buckets: Mapping[int, Counts], minute: int, window_minutes: int) -> Counts:
    """Sum of the buckets in ``(minute - window_minutes, minute]``."""
    total = Counts()
    for bucket in range(minute - window_minutes + 1, minute + 1):
        counts = buckets.get(bucket)
        if counts is not None:
            total = total + counts
    return total


def stale_minutes(minute: int, window_minutes: int, margin: int) -> Iterable[int]:
    """Buckets that have left every window, to prune while writing the current one."""
    return range(minute - window_minutes - margin, minute - window_minutes + 1)
