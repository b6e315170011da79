"""Detection rules: thresholds ("more than N"), window sums over minute buckets, and the defaults of DESIGN.md."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rumguard.detection import (
    MINUTE_MS,
    Counter,
    Counts,
    Detection,
    Rule,
    Threshold,
    default_thresholds,
    minute_of,
    stale_minutes,
    window_sum,
)

MINUTE = 29_459_520  # 2026-01-05T00:00Z in minutes since the epoch


def counts_of(counter: Counter, n: int) -> Counts:
    """Counts with ``n`` of one counter and nothing else."""
    return Counts.from_map({counter: n})


def test_defaults_are_designs_numbers() -> None:
    """DESIGN.md: flood >1000/5 min, churn >5/10 min, velocity >60/1 min, errors >100/5 min, junk >20/5 min."""
    assert default_thresholds() == {
        Rule.EVENT_FLOOD: Threshold(Counter.EVENTS, 1000, 5),
        Rule.SESSION_CHURN: Threshold(Counter.SESSION_STARTS, 5, 10),
        Rule.PAGE_VELOCITY: Threshold(Counter.PAGE_VIEWS, 60, 1),
        Rule.ERROR_SPAM: Threshold(Counter.JS_ERRORS, 100, 5),
        Rule.JUNK: Threshold(Counter.JUNK, 20, 5),
    }
    assert Detection().window_minutes == 10


@pytest.mark.parametrize("rule", list(Rule))
def test_each_rule_fires_only_above_its_limit(rule: Rule) -> None:
    detection = Detection()
    threshold = detection.thresholds[rule]
    at_limit = {MINUTE: counts_of(threshold.counter, threshold.limit)}
    assert [h.rule for h in detection.evaluate(at_limit, MINUTE)] == []
    over = {MINUTE: counts_of(threshold.counter, threshold.limit + 1)}
    hits = detection.evaluate(over, MINUTE)
    assert [h.rule for h in hits] == [rule]
    assert hits[0].count == threshold.limit + 1
    assert hits[0].threshold == threshold


@pytest.mark.parametrize("rule", list(Rule))
def test_each_rule_sums_its_whole_window(rule: Rule) -> None:
    """The limit spread over the window's minutes plus one more in the oldest minute of the window fires."""
    detection = Detection()
    threshold = detection.thresholds[rule]
    window = threshold.window_minutes
    per_minute, rest = divmod(threshold.limit, window)
    buckets = {MINUTE - k: counts_of(threshold.counter, per_minute) for k in range(window)}
    buckets[MINUTE] = counts_of(threshold.counter, per_minute + rest)
    assert rule not in {h.rule for h in detection.evaluate(buckets, MINUTE)}
    oldest = MINUTE - window + 1
    buckets[oldest] = buckets[oldest] + counts_of(threshold.counter, 1)
    assert rule in {h.rule for h in detection.evaluate(buckets, MINUTE)}


@pytest.mark.parametrize("rule", list(Rule))
def test_each_rule_ignores_buckets_outside_its_window(rule: Rule) -> None:
    detection = Detection()
    threshold = detection.thresholds[rule]
    big = counts_of(threshold.counter, threshold.limit + 1)
    # Just before the window, and after the batch's minute: neither counts.
    before = {MINUTE - threshold.window_minutes: big}
    after = {MINUTE + 1: big}
    assert rule not in {h.rule for h in detection.evaluate(before, MINUTE)}
    assert rule not in {h.rule for h in detection.evaluate(after, MINUTE)}
    # The window ends at the batch's minute: evaluated one minute later, the later bucket counts.
    assert rule in {h.rule for h in detection.evaluate(after, MINUTE + 1)}


def test_page_velocity_is_per_minute_not_per_two() -> None:
    detection = Detection()
    limit = detection.thresholds[Rule.PAGE_VELOCITY].limit
    buckets = {MINUTE - 1: counts_of(Counter.PAGE_VIEWS, limit), MINUTE: counts_of(Counter.PAGE_VIEWS, limit)}
    assert detection.evaluate(buckets, MINUTE) == []


def test_session_churn_counts_ten_minutes() -> None:
    detection = Detection()
    one = counts_of(Counter.SESSION_STARTS, 1)
    buckets = {MINUTE - 2 * k: one for k in range(6)}  # 6 starts over minutes 0, 2, ..., 10 back
    assert detection.evaluate(buckets, MINUTE) == []  # the one 10 minutes back is outside the window
    buckets[MINUTE - 9] = one
    assert [h.rule for h in detection.evaluate(buckets, MINUTE)] == [Rule.SESSION_CHURN]


def test_all_counters_just_under_every_limit_fire_nothing() -> None:
    detection = Detection()
    under = Counts.from_map({t.counter: t.limit for t in detection.thresholds.values()})
    assert detection.evaluate({MINUTE: under}, MINUTE) == []


def test_most_exceeded_rule_comes_first() -> None:
    detection = Detection()
    # Junk 2x over its limit, events just over theirs.
    counts = Counts(events=1001, junk=41)
    hits = detection.evaluate({MINUTE: counts}, MINUTE)
    assert [h.rule for h in hits] == [Rule.JUNK, Rule.EVENT_FLOOD]


def test_reason_names_count_window_and_limit() -> None:
    hit = Detection().evaluate({MINUTE: Counts(session_starts=9)}, MINUTE)[0]
    reason = hit.reason()
    assert "9 session starts" in reason
    assert "10 min" in reason
    assert "limit 5" in reason
    assert Rule.SESSION_CHURN.value in reason


def test_custom_thresholds_and_zero_limit() -> None:
    detection = Detection({Rule.ERROR_SPAM: Threshold(Counter.JS_ERRORS, 0, 2)})
    assert detection.window_minutes == 2
    assert detection.evaluate({MINUTE: Counts(events=500)}, MINUTE) == []
    assert [h.rule for h in detection.evaluate({MINUTE - 1: Counts(js_errors=1)}, MINUTE)] == [Rule.ERROR_SPAM]


@pytest.mark.parametrize(("limit", "window"), [(-1, 5), (1, 0), (1, 61)])
def test_threshold_validation(limit: int, window: int) -> None:
    with pytest.raises(ValueError):
        Threshold(Counter.EVENTS, limit, window)


def test_minute_of() -> None:
    start = MINUTE * MINUTE_MS
    assert minute_of(start) == MINUTE
    assert minute_of(start + MINUTE_MS - 1) == MINUTE
    assert minute_of(start + MINUTE_MS) == MINUTE + 1
    assert minute_of(float(start) + 0.5) == MINUTE


def test_stale_minutes_are_outside_the_window() -> None:
    window = 10
    stale = list(stale_minutes(MINUTE, window, margin=3))
    assert stale == list(range(MINUTE - window - 3, MINUTE - window + 1))
    inside = range(MINUTE - window + 1, MINUTE + 1)
    assert not set(stale) & set(inside)


def test_counts_arithmetic_and_maps() -> None:
    a = Counts(1, 2, 3, 4, 5)
    b = Counts(10, 20, 30, 40, 50)
    assert a + b == Counts(11, 22, 33, 44, 55)
    assert Counts.from_map(a.as_map()) == a
    assert Counts(events=3).as_map() == {Counter.EVENTS: 3}
    assert a.get(Counter.JUNK) == 5
    assert a.get(Counter.SESSION_STARTS) == 2


counts_strategy = st.builds(
    Counts,
    st.integers(0, 2000),
    st.integers(0, 20),
    st.integers(0, 200),
    st.integers(0, 300),
    st.integers(0, 50),
)


@given(
    st.dictionaries(st.integers(MINUTE - 20, MINUTE + 5), counts_strategy, max_size=25),
    st.integers(1, 15),
)
def test_window_sum_equals_brute_force(buckets: dict[int, Counts], window: int) -> None:
    expected = Counts()
    for minute, counts in buckets.items():
        if MINUTE - window < minute <= MINUTE:
            expected = expected + counts
    assert window_sum(buckets, MINUTE, window) == expected


@given(st.dictionaries(st.integers(MINUTE - 20, MINUTE + 5), counts_strategy, max_size=25))
def test_evaluate_agrees_with_each_threshold(buckets: dict[int, Counts]) -> None:
    detection = Detection()
    fired = {h.rule: h.count for h in detection.evaluate(buckets, MINUTE)}
    for rule, threshold in detection.thresholds.items():
        total = sum(
            c.get(threshold.counter) for m, c in buckets.items() if MINUTE - threshold.window_minutes < m <= MINUTE
        )
        if total > threshold.limit:
            assert fired[rule] == total
        else:
            assert rule not in fired
