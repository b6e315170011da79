"""The decision service over the in-memory ports: detect, decide, enforce, expire, and the operator's calls.

Every test builds a fresh world of fakes (``rumguard.local.fakes``) and a ``Guard`` on it, feeds it batch
reports (built directly, or with ``ingest_batch`` from simulated RUM traffic) and checks the table, the guest
role's policies, the identity pool and the bus, as the integration tests do against moto.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rumguard.decisions import AUTO, MANUAL_RULE, AuditAction, AuditRecord, Block, BlockStatus, Mode
from rumguard.detection import Counter, Counts, Detection, Rule
from rumguard.guard import (
    BLOCK_STORM,
    IDENTITY_BLOCKED,
    IDENTITY_UNBLOCKED,
    LOCKDOWN_CHANGED,
    Guard,
    GuardConfig,
    GuardOutcome,
    InvalidIdentityError,
    NotBlockedError,
    SignedInIdentityError,
    UnknownIdentityError,
)
from rumguard.ingest import BatchReport, IdentityActivity, ingest_batch
from rumguard.local.fakes import (
    FakeClock,
    InMemoryCounterStore,
    InMemoryDecisionStore,
    InMemoryGuestRole,
    InMemoryIdentityDirectory,
    PolicyLimitExceededError,
    RecordingBus,
)
from rumguard.local.traffic import LogRecord, TrafficSimulator, identity_id
from rumguard.monitors import Audience, Monitor, MonitorDirectory
from rumguard.policy import BLOCKS_POLICY, LOCKDOWN_POLICY, POLICY_PREFIX, SUB_KEY, policy_size
from rumguard.ports import GuestRole

POOL = "us-east-1:5e4d3c2b-1a09-4f8e-9d7c-6b5a49382716"
GUEST = Monitor("Shop_Guests", Audience.GUEST)
SIGNED_IN = Monitor("Shop_Users", Audience.SIGNED_IN)
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OPERATOR = "arn:aws:iam::123456789012:user/ops"
ENFORCE = GuardConfig(mode=Mode.ENFORCE)
DRY_RUN = GuardConfig(mode=Mode.DRY_RUN)
EVENT_FIELDS = ("identityId", "appMonitor", "rule", "reason", "actor", "expiresAt", "dryRun")
_keys = itertools.count()


# --- the world ---------------------------------------------------------------------------------------------
@dataclass
class World:
    """A guard over fresh fakes, and helpers to feed it."""

    config: GuardConfig
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))
    store: InMemoryDecisionStore = field(default_factory=InMemoryDecisionStore)
    counters: InMemoryCounterStore = field(default_factory=InMemoryCounterStore)
    identities: InMemoryIdentityDirectory = field(default_factory=lambda: InMemoryIdentityDirectory(POOL))
    role: InMemoryGuestRole = field(default_factory=InMemoryGuestRole)
    bus: RecordingBus = field(default_factory=RecordingBus)
    guard: Guard = field(init=False)

    def __post_init__(self) -> None:
        self.guard = self.new_guard()

    def new_guard(self, role: GuestRole | None = None, seed: int = 0) -> Guard:
        """Another guard (another Lambda instance) over the same stores."""
        return Guard(
            self.config,
            store=self.store,
            counters=self.counters,
            identities=self.identities,
            role=role or self.role,
            bus=self.bus,
            clock=self.clock,
            rng=random.Random(seed),
        )

    def batch(
        self,
        activity: Mapping[str, Counts],
        *,
        monitor: Monitor | None = GUEST,
        key: str | None = None,
        guard: Guard | None = None,
    ) -> GuardOutcome:
        """One batch of the monitor at the clock's time, with these counts per identity."""
        return (guard or self.guard).on_batch(report(activity, self.clock.now(), monitor), key or new_key())

    def denied(self) -> set[str]:
        """The identities the guest role's blocks policy denies."""
        document = self.role.inline_policies().get(BLOCKS_POLICY)
        return set(denied(document)) if document else set()

    def table_active(self) -> set[str]:
        """The identities the table holds enforced (not dry-run) active blocks for."""
        return {b.identity_id for b in self.store.active_blocks(self.clock.now()) if not b.dry_run}

    def actions(self, identity: str) -> list[AuditAction]:
        return [r.action for r in self.store.history(identity)]


def new_key() -> str:
    return f"batch-{next(_keys)}"


def report(activity: Mapping[str, Counts], at: datetime, monitor: Monitor | None = GUEST) -> BatchReport:
    """A batch report of ``monitor`` with one identity activity per entry, received at ``at``."""
    ms = at.timestamp() * 1000
    identities = {
        identity: IdentityActivity(c.events, c.session_starts, c.page_views, c.js_errors, c.junk, ms - 1000, ms)
        for identity, c in activity.items()
    }
    log_group = monitor.log_group_name("0123abcd-0000") if monitor else "/aws/vendedlogs/RUMService_Other0123abcd"
    return BatchReport(log_group=log_group, monitor=monitor, identities=identities)


def denied(document: str) -> list[str]:
    """The identity ids of a rendered blocks policy."""
    values: list[str] = json.loads(document)["Statement"][0]["Condition"]["StringEquals"][SUB_KEY]
    return values


def crossing(rule: Rule, detection: Detection | None = None) -> Counts:
    """Counts that cross ``rule`` by one and no other rule."""
    threshold = (detection or Detection()).thresholds[rule]
    n = threshold.limit + 1
    counts = Counts.from_map({threshold.counter: n})
    return counts if threshold.counter is Counter.EVENTS else counts + Counts(events=n)


def under_every_limit(detection: Detection | None = None) -> Counts:
    """Exactly at every limit at once (the rules say "more than")."""
    return Counts.from_map({t.counter: t.limit for t in (detection or Detection()).thresholds.values()})


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def assert_blocked(world: World, identity: str, rule: str, *, actor: str = AUTO, offence: int = 1) -> None:
    """Everything a block must leave behind, in enforce mode."""
    block = world.store.get_block(identity)
    assert block is not None
    assert block.is_active(world.clock.now())
    assert (block.rule, block.actor, block.offence, block.dry_run) == (rule, actor, offence, False)
    assert identity in world.denied()
    assert not world.identities.exists(identity)
    details = [d for d in world.bus.of(IDENTITY_BLOCKED) if d["identityId"] == identity]
    assert details, "no Identity Blocked event"
    detail = details[-1]
    assert set(EVENT_FIELDS) <= set(detail)
    assert detail["rule"] == rule
    assert detail["actor"] == actor
    assert detail["dryRun"] is False
    assert block.expires_at is not None
    assert detail["expiresAt"] == iso(block.expires_at)
    assert datetime.fromisoformat(detail["expiresAt"]) == block.expires_at
    assert detail["reason"] == block.reason
    records = [r for r in world.store.history(identity) if r.action is AuditAction.BLOCK]
    assert records[-1].actor == actor
    assert records[-1].rule == rule
    assert records[-1].at == block.created_at


# --- each rule, end to end ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", list(Rule))
def test_crossing_each_rule_blocks(rule: Rule) -> None:
    world = World(ENFORCE)
    bot = world.identities.new_guest()
    outcome = world.batch({bot: crossing(rule)})
    assert [b.identity_id for b in outcome.blocked] == [bot]
    assert_blocked(world, bot, rule.value)
    block = outcome.blocked[0]
    assert block.expires_at == world.clock.now() + timedelta(hours=1)  # DESIGN.md: 1 hour the first time
    assert block.counts[rule.value] == Detection().thresholds[rule].limit + 1
    detail = world.bus.of(IDENTITY_BLOCKED)[0]
    assert detail["appMonitor"] == GUEST.name
    assert rule.value in detail["reason"]
    assert world.identities.deleted == [bot]
    audit = world.store.history(bot)[-1]
    assert audit.counts == block.counts
    assert audit.app_monitor == GUEST.name
    desired, applied = world.store.policy_versions()
    assert desired == applied > 0
    assert outcome.policy is not None and outcome.policy.enforced == (bot,)
    assert outcome.policy_converged


def test_just_under_every_threshold_is_not_blocked() -> None:
    world = World(ENFORCE)
    honest = world.identities.new_guest()
    outcome = world.batch({honest: under_every_limit()})
    assert outcome.blocked == [] and outcome.hits == {}
    assert world.store.get_block(honest) is None
    assert world.role.calls == []
    assert world.identities.exists(honest)
    assert world.bus.events == []
    assert world.store.history(honest) == []


@pytest.mark.parametrize("rule", list(Rule))
def test_caught_by_the_batch_that_crosses_the_window_sum(rule: Rule) -> None:
    """Counts add up across batches in the rule's window; the crossing batch blocks."""
    world = World(ENFORCE)
    threshold = Detection().thresholds[rule]
    bot = world.identities.new_guest()
    half = threshold.limit // 2
    first = world.batch({bot: Counts.from_map({threshold.counter: half})})
    world.clock.advance(seconds=30 * (threshold.window_minutes - 1))
    second = world.batch({bot: Counts.from_map({threshold.counter: threshold.limit - half})})
    assert first.blocked == second.blocked == []
    third = world.batch({bot: Counts.from_map({threshold.counter: 1})})
    assert [b.identity_id for b in third.blocked] == [bot]
    assert_blocked(world, bot, rule.value)


def test_counts_leave_the_window() -> None:
    world = World(ENFORCE)
    bot = world.identities.new_guest()
    limit = Detection().thresholds[Rule.SESSION_CHURN].limit
    world.batch({bot: Counts(events=limit, session_starts=limit)})
    world.clock.advance(minutes=Detection().thresholds[Rule.SESSION_CHURN].window_minutes)
    assert world.batch({bot: Counts(events=1, session_starts=1)}).blocked == []


def test_redelivered_batch_never_double_counts() -> None:
    world = World(ENFORCE)
    bot = world.identities.new_guest()
    limit = Detection().thresholds[Rule.EVENT_FLOOD].limit
    half = Counts(events=limit // 2 + 1)
    world.batch({bot: half}, key="delivery-1")
    assert world.batch({bot: half}, key="delivery-1").blocked == []  # CloudWatch Logs retried it
    assert world.counters.buckets(bot)
    assert sum(c.events for c in world.counters.buckets(bot).values()) == half.events
    assert [b.identity_id for b in world.batch({bot: half}, key="delivery-2").blocked] == [bot]


def test_one_counter_write_per_identity_per_batch() -> None:
    world = World(ENFORCE)
    crowd = [world.identities.new_guest() for _ in range(7)]
    outcome = world.batch({i: Counts(events=3, page_views=1) for i in crowd})
    assert outcome.counter_writes == world.counters.writes == len(crowd)


# --- audiences and forged identities -----------------------------------------------------------------------
def test_signed_in_monitor_never_counts_or_blocks() -> None:
    world = World(ENFORCE)
    user = world.identities.new_guest()
    flood = crossing(Rule.EVENT_FLOOD)
    outcome = world.batch({user: flood + flood}, monitor=SIGNED_IN)
    assert outcome.blocked == [] and outcome.hits == {} and outcome.counter_writes == 0
    assert world.counters.writes == 0
    # Nothing was counted: the same identity right at the limits on the guest monitor stays unblocked.
    assert world.batch({user: under_every_limit()}).blocked == []
    assert world.batch({user: flood}, monitor=None).blocked == []
    assert world.store.blocks() == [] and world.bus.events == [] and world.role.calls == []


def test_forged_identities_are_refused_and_audited() -> None:
    world = World(ENFORCE)
    other_pool = InMemoryIdentityDirectory("us-east-1:99999999-8888-4777-8666-555555555555", seed=9)
    forged = {
        "admin": "malformed",
        "us-east-1:not-a-uuid": "malformed",
        "eu-west-1:0f8fad5b-d9cb-469f-a165-70867728950e": "another region",
        "us-east-1:0f8fad5b-d9cb-469f-a165-70867728950e": "unknown to the pool",
        other_pool.new_guest(): "a guest of another pool",
        world.identities.new_signed_in(): "a signed-in user",
    }
    flood = crossing(Rule.EVENT_FLOOD)
    outcome = world.batch(dict.fromkeys(forged, flood))
    assert outcome.blocked == []
    assert set(outcome.forged) == set(forged)
    for identity, what in forged.items():
        assert world.store.get_block(identity) is None, what
        refusals = [r for r in world.store.history(identity) if r.action is AuditAction.REFUSE_FORGED]
        assert len(refusals) == 1, f"no audit record for {what}"
        assert refusals[0].rule == Rule.EVENT_FLOOD.value
        assert refusals[0].counts
    assert world.role.calls == []
    assert [c for c in world.identities.calls if c[0] != "describe"] == []
    assert world.bus.of(IDENTITY_BLOCKED) == []


def test_forger_does_not_shield_the_honest_bots_in_its_batch() -> None:
    world = World(ENFORCE)
    user = world.identities.new_signed_in()
    bot = world.identities.new_guest()
    flood = crossing(Rule.EVENT_FLOOD)
    outcome = world.batch({user: flood, bot: flood})
    assert list(outcome.forged) == [user]
    assert [b.identity_id for b in outcome.blocked] == [bot]
    assert world.identities.exists(user)
    assert user not in world.denied()


# --- escalation, expiry and the sweeper ---------------------------------------------------------------------
def test_repeat_offences_escalate() -> None:
    world = World(ENFORCE)
    bot = world.identities.new_guest()
    world.identities.undeletable.add(bot)  # Cognito refused the delete: the identity keeps sending
    flood = crossing(Rule.EVENT_FLOOD)
    durations = []
    for offence in range(1, 5):
        outcome = world.batch({bot: flood})
        assert [b.offence for b in outcome.blocked] == [offence]
        assert outcome.undeleted == [bot]
        block = outcome.blocked[0]
        assert block.expires_at is not None
        durations.append(block.expires_at - block.created_at)
        world.clock.set(block.expires_at)
        assert [b.identity_id for b in world.guard.sweep().unblocked] == [bot]
    hour = timedelta(hours=1)
    assert durations[0] == hour
    for n, duration in enumerate(durations[1:], start=2):
        nominal = hour * 2 ** (n - 1)
        assert nominal * 0.9 <= duration <= nominal * 1.1
    assert durations == sorted(durations)


def test_escalation_capped_at_seven_days() -> None:
    world = World(ENFORCE)
    bot = world.identities.new_guest()
    world.identities.undeletable.add(bot)
    flood = crossing(Rule.EVENT_FLOOD)
    for _ in range(12):
        block = world.batch({bot: flood}).blocked[0]
        assert block.expires_at is not None
        assert block.expires_at - block.created_at <= timedelta(days=7)
        world.clock.set(block.expires_at)
        world.guard.sweep()
    assert block.expires_at is not None
    assert block.expires_at - block.created_at == timedelta(days=7)


@pytest.mark.parametrize("sweeper_late", [False, True])
def test_offences_are_forgotten_after_a_month(sweeper_late: bool) -> None:
    """Counted from the block's expiry, even when the sweeper marks it expired much later."""
    world = World(DRY_RUN)  # dry-run leaves the identity in the pool
    bot = world.identities.new_guest()
    flood = crossing(Rule.EVENT_FLOOD)
    first = world.batch({bot: flood}).blocked[0]
    assert first.expires_at is not None
    world.clock.set(first.expires_at + (timedelta(days=30) if sweeper_late else timedelta(minutes=1)))
    world.guard.sweep()
    world.clock.set(first.expires_at + timedelta(days=30, minutes=1))
    assert [b.offence for b in world.batch({bot: flood}).blocked] == [1]


def test_sweep_expires_blocks_and_updates_the_policy() -> None:
    world = World(ENFORCE)
    early, late = world.identities.new_guest(), world.identities.new_guest()
    world.batch({early: crossing(Rule.JUNK)})
    world.clock.advance(minutes=20)
    world.batch({late: crossing(Rule.ERROR_SPAM)})
    assert world.denied() == {early, late}
    world.clock.advance(minutes=39)
    assert world.guard.sweep().unblocked == []
    assert world.denied() == {early, late}
    world.clock.advance(minutes=1)
    outcome = world.guard.sweep()
    assert [b.identity_id for b in outcome.unblocked] == [early]
    assert world.denied() == {late}
    expired = world.store.get_block(early)
    assert expired is not None and expired.status is BlockStatus.EXPIRED
    detail = world.bus.of(IDENTITY_UNBLOCKED)[-1]
    assert set(EVENT_FIELDS) <= set(detail)
    assert (detail["identityId"], detail["actor"], detail["rule"]) == (early, AUTO, Rule.JUNK.value)
    assert world.actions(early) == [AuditAction.BLOCK, AuditAction.EXPIRE]
    world.clock.advance(minutes=20)
    world.guard.sweep()
    assert world.denied() == set()
    assert not any(name.startswith(POLICY_PREFIX) for name in world.role.inline_policies())


def test_sweep_repairs_drift_both_ways() -> None:
    world = World(ENFORCE)
    world.role.put_policy("shop-assets", json.dumps({"Version": "2012-10-17", "Statement": []}))
    bots = [world.identities.new_guest() for _ in range(3)]
    world.batch(dict.fromkeys(bots, crossing(Rule.PAGE_VELOCITY)))
    world.role.delete_policy(BLOCKS_POLICY)  # someone deleted it by hand
    world.role.put_policy(f"{POLICY_PREFIX}-stale", json.dumps({"Version": "2012-10-17", "Statement": []}))
    world.guard.sweep()
    assert world.denied() == set(bots)
    assert set(world.role.inline_policies()) == {"shop-assets", BLOCKS_POLICY}
    edited = json.dumps({"Version": "2012-10-17", "Statement": [{"Condition": {"StringEquals": {SUB_KEY: []}}}]})
    world.role.put_policy(BLOCKS_POLICY, edited)
    world.guard.sweep()
    assert world.denied() == set(bots)


# --- allowlist and grace -----------------------------------------------------------------------------------
def test_allowlisted_identity_is_left_alone() -> None:
    world = World(ENFORCE)
    tester = world.identities.new_guest()
    world.guard.allow(tester, reason="load test", actor=OPERATOR)
    outcome = world.batch({tester: crossing(Rule.EVENT_FLOOD)})
    assert outcome.blocked == [] and outcome.skipped == {tester: "allowlisted"}
    assert world.role.calls == [] and world.identities.exists(tester)
    assert world.actions(tester) == [AuditAction.ALLOW]
    assert world.guard.disallow(tester, reason="done", actor=OPERATOR)
    assert not world.guard.disallow(tester, reason="again", actor=OPERATOR)
    assert [b.identity_id for b in world.batch({tester: crossing(Rule.EVENT_FLOOD)}).blocked] == [tester]


def test_allowlist_entry_expires() -> None:
    world = World(ENFORCE)
    tester = world.identities.new_guest()
    world.guard.allow(tester, reason="QA", actor=OPERATOR, expires_at=world.clock.now() + timedelta(minutes=30))
    world.clock.advance(minutes=29)
    assert world.batch({tester: crossing(Rule.SESSION_CHURN)}).blocked == []
    world.clock.advance(minutes=1)
    assert [b.identity_id for b in world.batch({tester: crossing(Rule.SESSION_CHURN)}).blocked] == [tester]


def test_allowing_a_blocked_identity_unblocks_it() -> None:
    world = World(ENFORCE)
    bot = world.identities.new_guest()
    world.batch({bot: crossing(Rule.EVENT_FLOOD)})
    world.guard.allow(bot, reason="partner crawler", actor=OPERATOR)
    block = world.store.get_block(bot)
    assert block is not None and block.status is BlockStatus.UNBLOCKED
    assert block.grace_until is None
    assert bot not in world.denied()
    assert world.bus.of(IDENTITY_UNBLOCKED)[-1]["identityId"] == bot


def test_grace_period_after_a_manual_unblock() -> None:
    world = World(ENFORCE)
    bot = world.identities.new_guest()
    world.identities.undeletable.add(bot)
    flood = crossing(Rule.EVENT_FLOOD)
    world.batch({bot: flood})
    world.clock.advance(minutes=10)
    ended = world.guard.unblock(bot, reason="false positive", actor=OPERATOR)
    assert ended.grace_until == world.clock.now() + timedelta(hours=1)
    assert bot not in world.denied()
    unblocked = world.bus.of(IDENTITY_UNBLOCKED)[-1]
    assert (unblocked["identityId"], unblocked["actor"], unblocked["reason"]) == (bot, OPERATOR, "false positive")
    world.clock.advance(minutes=59)
    outcome = world.batch({bot: flood})
    assert outcome.blocked == [] and "grace" in outcome.skipped[bot]
    world.clock.advance(minutes=1)
    again = world.batch({bot: flood})
    assert [(b.identity_id, b.offence) for b in again.blocked] == [(bot, 2)]
    assert world.actions(bot) == [AuditAction.BLOCK, AuditAction.UNBLOCK, AuditAction.BLOCK]


# --- dry-run -----------------------------------------------------------------------------------------------
def test_dry_run_records_and_reports_but_changes_nothing() -> None:
    world = World(replace(DRY_RUN, lockdown_on_storm=True, valve_limit=2))
    bots = [world.identities.new_guest() for _ in range(3)]
    outcome = world.batch(dict.fromkeys(bots, crossing(Rule.EVENT_FLOOD)))
    assert [b.identity_id for b in outcome.blocked] == bots[:2]
    assert all(b.dry_run for b in outcome.blocked)
    assert outcome.storm
    world.clock.advance(hours=2)
    world.guard.sweep()
    world.guard.block(bots[2], reason="by hand", actor=OPERATOR)
    world.guard.unblock(bots[2], reason="by hand", actor=OPERATOR)
    # IAM and Cognito untouched.
    assert world.role.calls == [] and world.role.inline_policies() == {}
    assert [c for c in world.identities.calls if c[0] != "describe"] == []
    assert world.identities.guest_access
    assert all(world.identities.exists(b) for b in bots)
    # Recorded and reported all the same, marked dry-run.
    for bot in bots[:2]:
        assert world.store.history(bot)[0].dry_run
    events = world.bus.of(IDENTITY_BLOCKED)
    assert [d["identityId"] for d in events] == [*bots[:2], bots[2]]
    assert all(d["dryRun"] is True for d in events)
    assert world.bus.of(BLOCK_STORM) and world.bus.of(BLOCK_STORM)[0]["dryRun"] is True
    assert all(d["dryRun"] is True for d in world.bus.of(LOCKDOWN_CHANGED))
    assert {d["identityId"] for d in world.bus.of(IDENTITY_UNBLOCKED)} == set(bots)


# --- the safety valve --------------------------------------------------------------------------------------
def test_safety_valve_stops_after_the_limit_without_lockdown() -> None:
    world = World(replace(ENFORCE, valve_limit=3))
    bots = [world.identities.new_guest() for _ in range(5)]
    outcome = world.batch(dict.fromkeys(bots, crossing(Rule.EVENT_FLOOD)))
    assert [b.identity_id for b in outcome.blocked] == bots[:3]
    assert outcome.storm
    assert all("safety valve" in outcome.skipped[b] for b in bots[3:])
    assert world.denied() == set(bots[:3])
    storm = world.bus.of(BLOCK_STORM)
    assert len(storm) == 1
    assert set(EVENT_FIELDS) <= set(storm[0])
    assert storm[0]["skippedIdentities"] == sorted(bots[3:])
    assert AuditAction.BLOCK_STORM in world.actions("*")
    # No lockdown unless configured.
    assert world.identities.guest_access
    assert world.store.get_lockdown() is None
    assert LOCKDOWN_POLICY not in world.role.inline_policies()
    assert world.bus.of(LOCKDOWN_CHANGED) == []
    # Still closed a little later; open again once the window has passed.
    world.clock.advance(minutes=4, seconds=59)
    late = world.identities.new_guest()
    assert world.batch({late: crossing(Rule.EVENT_FLOOD)}).blocked == []
    world.clock.advance(seconds=2)
    assert [b.identity_id for b in world.batch({late: crossing(Rule.EVENT_FLOOD)}).blocked] == [late]


def test_safety_valve_counts_across_batches_and_not_manual_blocks() -> None:
    world = World(replace(ENFORCE, valve_limit=2))
    manual = world.identities.new_guest()
    world.guard.block(manual, reason="abuse report", actor=OPERATOR)
    bots = [world.identities.new_guest() for _ in range(3)]
    for bot in bots[:2]:
        assert [b.identity_id for b in world.batch({bot: crossing(Rule.JUNK)}).blocked] == [bot]
        world.clock.advance(minutes=1)
    outcome = world.batch({bots[2]: crossing(Rule.JUNK)})
    assert outcome.blocked == [] and outcome.storm


def test_safety_valve_enters_lockdown_when_configured() -> None:
    world = World(replace(ENFORCE, valve_limit=2, lockdown_on_storm=True))
    bots = [world.identities.new_guest() for _ in range(4)]
    outcome = world.batch(dict.fromkeys(bots, crossing(Rule.SESSION_CHURN)))
    assert len(outcome.blocked) == 2 and outcome.storm
    assert not world.identities.guest_access
    lockdown = world.store.get_lockdown()
    assert lockdown is not None and lockdown.actor == AUTO and lockdown.since == world.clock.now()
    document = json.loads(world.role.inline_policies()[LOCKDOWN_POLICY])
    condition = document["Statement"][0]["Condition"]
    assert document["Statement"][0]["Effect"] == "Deny"
    assert condition == {"DateLessThan": {"aws:TokenIssueTime": world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")}}
    changed = world.bus.of(LOCKDOWN_CHANGED)
    assert len(changed) == 1 and changed[0]["enabled"] is True and changed[0]["actor"] == AUTO
    assert AuditAction.LOCKDOWN_ON in world.actions("*")
    assert world.denied() == {b.identity_id for b in outcome.blocked}
    # A second storm does not enter lockdown again.
    world.batch({world.identities.new_guest(): crossing(Rule.SESSION_CHURN)})
    assert len(world.bus.of(LOCKDOWN_CHANGED)) == 1
    # People leave it.
    world.guard.set_lockdown(False, reason="storm over", actor=OPERATOR)
    assert world.identities.guest_access
    assert LOCKDOWN_POLICY not in world.role.inline_policies()
    assert world.bus.of(LOCKDOWN_CHANGED)[-1]["enabled"] is False


# --- policy capacity ---------------------------------------------------------------------------------------
def block_one_by_one(world: World, n: int) -> list[str]:
    """Block ``n`` new guests, one batch each, a second apart (newest last)."""
    bots = []
    for _ in range(n):
        bot = world.identities.new_guest()
        assert world.batch({bot: crossing(Rule.EVENT_FLOOD)}).blocked
        world.clock.advance(seconds=1)
        bots.append(bot)
    return bots


def test_policy_at_capacity_keeps_the_newest_and_reports_the_rest() -> None:
    world = World(replace(ENFORCE, valve_limit=10_000))
    shop = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "rum:*", "Sid": "x" * 2000}]}
    )
    world.role.put_policy("shop-rum", shop)
    bots = block_one_by_one(world, 200)
    outcome = world.guard.sweep()
    assert outcome.policy is not None
    enforced, unenforced = outcome.policy.enforced, outcome.policy.unenforced
    assert unenforced, "200 ids and 2,000 characters of other policy cannot all fit"
    assert set(enforced) | set(unenforced) == set(bots)  # never a silent drop
    assert set(bots[-len(enforced) :]) == set(enforced)  # the newest are kept
    assert world.denied() == set(enforced)
    assert world.role.size() <= world.role.limit
    assert outcome.policy.capacity_used <= 100.0
    assert world.table_active() == set(bots)  # unenforced blocks stay active in the table
    assert world.role.inline_policies()["shop-rum"] == shop


def test_lockdown_at_capacity_makes_room_without_exceeding_the_limit() -> None:
    """The lockdown policy takes room from the blocks; IAM must never see the role over its limit."""
    world = World(replace(ENFORCE, valve_limit=10_000))
    bots = block_one_by_one(world, 230)
    before = world.guard.sweep()
    assert before.policy is not None and before.policy.unenforced
    world.guard.set_lockdown(True, reason="bot wave", actor=OPERATOR)
    policies = world.role.inline_policies()
    assert LOCKDOWN_POLICY in policies
    assert world.role.size() <= world.role.limit
    after = world.guard.sweep()
    assert after.policy is not None
    assert len(after.policy.enforced) < len(before.policy.enforced)
    assert world.denied() == set(after.policy.enforced) <= set(bots)


def test_fake_role_enforces_iams_limit() -> None:
    role = InMemoryGuestRole(limit=100)
    role.put_policy("a", json.dumps({"k": "v" * 60}))
    with pytest.raises(PolicyLimitExceededError):
        role.put_policy("b", json.dumps({"k": "v" * 40}))
    assert set(role.inline_policies()) == {"a"}
    role.put_policy("a", json.dumps({"k": "v" * 80}))  # replacing counts the new size only
    assert role.size() == policy_size(json.dumps({"k": "v" * 80}))


# --- convergence under concurrency -------------------------------------------------------------------------
class LateRole:
    """A guest role whose first write is held back until ``meanwhile`` has run: this writer's policy lands
    after another writer's newer one, as a slow Lambda invocation's would."""

    def __init__(self, inner: InMemoryGuestRole, meanwhile: Callable[[], object]) -> None:
        self.inner = inner
        self.meanwhile: Callable[[], object] | None = meanwhile
        self.after_late_write: set[str] | None = None

    def inline_policies(self) -> dict[str, str]:
        return self.inner.inline_policies()

    def put_policy(self, name: str, document: str) -> None:
        hold, self.meanwhile = self.meanwhile, None
        if hold is not None:
            hold()
        self.inner.put_policy(name, document)
        if hold is not None:
            self.after_late_write = set(denied(self.inner.inline_policies()[BLOCKS_POLICY]))

    def delete_policy(self, name: str) -> None:
        self.inner.delete_policy(name)


def test_a_late_policy_write_is_rewritten() -> None:
    world = World(ENFORCE)
    a, b = world.identities.new_guest(), world.identities.new_guest()
    fast = world.guard
    late_role = LateRole(world.role, lambda: world.batch({b: crossing(Rule.JUNK)}, guard=fast))
    slow = world.new_guard(role=late_role, seed=1)
    outcome = world.batch({a: crossing(Rule.EVENT_FLOOD)}, guard=slow)
    # The race happened: the slow writer's stale policy (without b) landed after the fast one's.
    assert late_role.after_late_write == {a}
    # ...and was repaired by the slow writer itself, in the same invocation.
    assert outcome.policy_converged
    assert world.denied() == world.table_active() == {a, b}
    desired, applied = world.store.policy_versions()
    assert desired == applied


def test_a_late_unblock_write_is_rewritten() -> None:
    """The same race on the way out: a stale policy must not bring back an unblocked identity."""
    world = World(ENFORCE)
    a, b = world.identities.new_guest(), world.identities.new_guest()
    world.batch({a: crossing(Rule.EVENT_FLOOD)})
    fast = world.guard
    late_role = LateRole(world.role, lambda: fast.unblock(a, reason="oops", actor=OPERATOR))
    slow = world.new_guard(role=late_role, seed=1)
    outcome = world.batch({b: crossing(Rule.EVENT_FLOOD)}, guard=slow)
    assert late_role.after_late_write == {a, b}
    assert outcome.policy_converged
    assert world.denied() == world.table_active() == {b}


def pause(rng: random.Random, lock: threading.Lock) -> None:
    """Hand the interpreter to another thread a few times, so that invocations interleave."""
    with lock:
        spins = rng.randint(0, 2)
    for _ in range(spins):
        time.sleep(0)


class YieldingRole:
    """A guest role shared by threads that yields to another thread around every call."""

    def __init__(self, inner: InMemoryGuestRole, seed: int) -> None:
        self.inner = inner
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def inline_policies(self) -> dict[str, str]:
        pause(self.rng, self.lock)
        return self.inner.inline_policies()

    def put_policy(self, name: str, document: str) -> None:
        pause(self.rng, self.lock)
        self.inner.put_policy(name, document)
        pause(self.rng, self.lock)

    def delete_policy(self, name: str) -> None:
        pause(self.rng, self.lock)
        self.inner.delete_policy(name)


class YieldingStore(InMemoryDecisionStore):
    """The in-memory table, yielding to another thread before every read and conditional write."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.pause_lock = threading.Lock()
        self.lost_creates = 0
        self.failed_marks = 0

    def get_block(self, identity_id: str) -> Block | None:
        pause(self.rng, self.pause_lock)
        return super().get_block(identity_id)

    def create_block(self, block: Block, previous: Block | None, audit: AuditRecord) -> bool:
        pause(self.rng, self.pause_lock)
        created = super().create_block(block, previous, audit)
        self.lost_creates += not created
        return created

    def policy_versions(self) -> tuple[int, int]:
        pause(self.rng, self.pause_lock)
        return super().policy_versions()

    def active_blocks(self, now: datetime) -> list[Block]:
        pause(self.rng, self.pause_lock)
        return super().active_blocks(now)

    def mark_policy_applied(self, version: int) -> bool:
        pause(self.rng, self.pause_lock)
        marked = super().mark_policy_applied(version)
        self.failed_marks += not marked
        return marked


def test_concurrent_invocations_one_decision_per_identity_and_policy_equals_table() -> None:
    store = YieldingStore(seed=7)
    world = World(replace(ENFORCE, valve_limit=10_000), store=store)
    bots = [world.identities.new_guest() for _ in range(24)]
    honest = [world.identities.new_guest() for _ in range(8)]
    limit = Detection().thresholds[Rule.EVENT_FLOOD].limit
    share = Counts(events=limit // 4 + 1)  # four shares of one bot cross the limit
    rng = random.Random(5)
    invocations = 8
    plans = []
    for n in range(invocations):
        batches = []
        for m in range(3):
            mine = rng.sample(bots, 12)
            batches.append((f"inv-{n}-{m}", {**dict.fromkeys(mine, share), **dict.fromkeys(honest, Counts(events=5))}))
        plans.append(batches)
    role = YieldingRole(world.role, seed=6)
    guards = [world.new_guard(role=role, seed=n) for n in range(invocations)]
    start = threading.Barrier(invocations)

    def run(n: int) -> list[GuardOutcome]:
        start.wait()
        return [world.batch(activity, key=key, guard=guards[n]) for key, activity in plans[n]]

    with ThreadPoolExecutor(max_workers=invocations) as pool:
        futures = [pool.submit(run, n) for n in range(invocations)]
        outcomes = [future.result() for future in futures]  # re-raises what an invocation raised
    every = [o for mine in outcomes for o in mine]
    blocked = [b.identity_id for o in every for b in o.blocked]
    counted = {b: sum(1 for _, plan in itertools.chain(*plans) if b in plan) for b in bots}
    expected = {b for b, n in counted.items() if n * share.events > limit}
    assert sorted(blocked) == sorted(expected)  # exactly one decision per identity that crossed
    for bot in bots:
        assert world.actions(bot).count(AuditAction.BLOCK) == (1 if bot in expected else 0)
    assert len(world.bus.of(IDENTITY_BLOCKED)) == len(expected)
    assert not any(world.store.get_block(h) for h in honest)
    if all(o.policy_converged for o in every):
        assert world.denied() == world.table_active() == expected
    world.guard.sweep()
    assert world.denied() == world.table_active() == expected


# --- the operator's calls ----------------------------------------------------------------------------------
def test_manual_block_is_idempotent() -> None:
    world = World(ENFORCE)
    target = world.identities.new_guest()
    block, created = world.guard.block(target, reason="abuse report #12", actor=OPERATOR)
    assert created
    assert block.expires_at == world.clock.now() + ENFORCE.manual_duration
    assert_blocked(world, target, MANUAL_RULE, actor=OPERATOR)
    world.clock.advance(minutes=5)
    again, created_again = world.guard.block(target, reason="again", actor=OPERATOR)
    assert not created_again and again == block
    assert len(world.bus.of(IDENTITY_BLOCKED)) == 1
    assert world.actions(target) == [AuditAction.BLOCK]


def test_manual_block_with_a_duration() -> None:
    world = World(ENFORCE)
    target = world.identities.new_guest()
    block, _ = world.guard.block(target, reason="r", actor=OPERATOR, duration=timedelta(days=2), app_monitor="M")
    assert block.expires_at == world.clock.now() + timedelta(days=2)
    assert world.bus.of(IDENTITY_BLOCKED)[0]["appMonitor"] == "M"


def test_manual_block_of_a_signed_in_identity_needs_force() -> None:
    world = World(ENFORCE)
    user = world.identities.new_signed_in()
    with pytest.raises(SignedInIdentityError):
        world.guard.block(user, reason="r", actor=OPERATOR)
    assert world.store.get_block(user) is None and world.role.calls == []
    _, created = world.guard.block(user, reason="account takeover", actor=OPERATOR, force=True)
    assert created
    assert_blocked(world, user, MANUAL_RULE, actor=OPERATOR)


def test_manual_block_refuses_unknown_and_malformed_identities() -> None:
    world = World(ENFORCE)
    with pytest.raises(UnknownIdentityError):
        world.guard.block("us-east-1:0f8fad5b-d9cb-469f-a165-70867728950e", reason="r", actor=OPERATOR)
    for bad in ("nobody", "eu-west-1:0f8fad5b-d9cb-469f-a165-70867728950e"):
        with pytest.raises(InvalidIdentityError):
            world.guard.block(bad, reason="r", actor=OPERATOR)
        with pytest.raises(InvalidIdentityError):
            world.guard.allow(bad, reason="r", actor=OPERATOR)
    with pytest.raises(NotBlockedError):
        world.guard.unblock(world.identities.new_guest(), reason="r", actor=OPERATOR)
    assert world.store.blocks() == [] and world.role.calls == [] and world.bus.events == []


def test_unblock_twice_is_refused() -> None:
    world = World(ENFORCE)
    target = world.identities.new_guest()
    world.guard.block(target, reason="r", actor=OPERATOR)
    world.guard.unblock(target, reason="done", actor=OPERATOR)
    with pytest.raises(NotBlockedError):
        world.guard.unblock(target, reason="done", actor=OPERATOR)
    assert world.actions(target) == [AuditAction.BLOCK, AuditAction.UNBLOCK]


# --- real traffic through ingest ---------------------------------------------------------------------------
def log_events(records: Iterable[LogRecord]) -> list[dict[str, Any]]:
    return [{"id": str(n), "timestamp": r.timestamp_ms, "message": r.message} for n, r in enumerate(records)]


def test_simulated_traffic_honest_guests_pass_and_a_session_churner_is_blocked() -> None:
    sim = TrafficSimulator(GUEST, SIGNED_IN, seed=3, start_ms=int(T0.timestamp() * 1000))
    monitors = MonitorDirectory([GUEST.name], [SIGNED_IN.name])
    world = World(ENFORCE)
    guests = [world.identities.add(identity_id(sim.rng)) for _ in range(6)]
    users = [world.identities.add(identity_id(sim.rng), ("cognito-idp",)) for _ in range(2)]
    churner = world.identities.add(identity_id(sim.rng))
    groups = {m.name: m.log_group_name(sim.app_ids[m.name]) for m in (GUEST, SIGNED_IN)}
    churn_limit = Detection().thresholds[Rule.SESSION_CHURN].limit
    blocked: list[str] = []
    for n in range(churn_limit + 1):
        at = sim.start_ms + n * 60_000
        records = sim.guest_browse(churner, pages=2, at_ms=at)
        records += sim.guest_browse(guests[n % len(guests)], pages=4, at_ms=at)
        records += sim.signed_in_journey(guests[(n + 1) % len(guests)], users[n % len(users)], at_ms=at)
        for monitor in (GUEST, SIGNED_IN):
            mine = [r for r in records if r.monitor == monitor]
            world.clock.set(datetime.fromtimestamp(max(r.timestamp_ms for r in mine) / 1000, UTC))
            rep = ingest_batch(groups[monitor.name], log_events(mine), monitors, "cognitoIdentityId")
            assert rep.monitor == monitor and rep.rejected_total == 0
            blocked += [b.identity_id for b in world.guard.on_batch(rep, new_key()).blocked]
    assert blocked == [churner]
    assert_blocked(world, churner, Rule.SESSION_CHURN.value)
    assert all(world.identities.exists(i) for i in guests + users)


# --- the fakes keep the adapters' semantics ----------------------------------------------------------------
def test_counter_store_is_atomic_under_threads_and_once_per_batch_key() -> None:
    counters = InMemoryCounterStore()
    minute = int(T0.timestamp()) // 60
    one = Counts(events=1, page_views=1)

    def run(n: int) -> None:
        for m in range(200):
            counters.record(f"k-{n}-{m}", {"x": (minute, one), "y": (minute + 1, one)}, 10)
            counters.record(f"k-{n}-{m}", {"x": (minute, one)}, 10)  # a redelivery

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters.buckets("x") == {minute: Counts(events=1600, page_views=1600)}
    assert counters.buckets("y") == {minute + 1: Counts(events=1600, page_views=1600)}
    assert counters.writes == 8 * 200 * 3
    assert counters.duplicates == 8 * 200


def test_counter_store_prunes_buckets_outside_the_window() -> None:
    counters = InMemoryCounterStore(margin_minutes=2)
    minute = int(T0.timestamp()) // 60
    for k in range(30):
        counters.record(f"k{k}", {"x": (minute + k, Counts(events=1))}, 10)
    kept = counters.buckets("x")
    assert max(kept) == minute + 29
    assert all(m > minute + 29 - 10 - 2 for m in kept)


@pytest.mark.parametrize(
    ("desired", "applied", "version", "ok"),
    [(3, 2, 3, True), (3, 3, 3, True), (3, 2, 2, False), (4, 2, 3, False)],
)
def test_decision_store_policy_version_condition(desired: int, applied: int, version: int, ok: bool) -> None:
    store = InMemoryDecisionStore()
    for _ in range(applied):
        store.bump_policy_version()
    assert store.mark_policy_applied(applied)
    for _ in range(desired - applied):
        store.bump_policy_version()
    assert store.policy_versions() == (desired, applied)
    assert store.mark_policy_applied(version) is ok
    assert store.policy_versions() == (desired, version if ok else applied)


def test_decision_store_one_active_block_per_identity() -> None:
    world = World(ENFORCE)
    bot = world.identities.new_guest()
    block, _ = world.guard.block(bot, reason="r", actor=OPERATOR)
    audit = AuditRecord(AuditAction.BLOCK, bot, AUTO, T0, "again")
    assert not world.store.create_block(replace(block, reason="again"), None, audit)
    assert world.store.get_block(bot) == block
    ended = block.ended(BlockStatus.UNBLOCKED, T0, OPERATOR, "r", None)
    assert world.store.end_block(ended, audit)
    assert not world.store.end_block(ended, audit)
    assert world.store.create_block(replace(block, created_at=T0 + timedelta(seconds=1)), ended, audit)


def test_identity_directory_for_replays_assumes_guests() -> None:
    directory = InMemoryIdentityDirectory(POOL, assume_guests=True)
    guest = "us-east-1:0f8fad5b-d9cb-469f-a165-70867728950e"
    assert directory.describe(guest) is not None
    assert directory.describe("eu-west-1:0f8fad5b-d9cb-469f-a165-70867728950e") is None
    assert directory.describe("admin") is None
    user = directory.new_signed_in()
    info = directory.describe(user)
    assert info is not None and info.logins
    assert directory.delete([user, guest]) == []
    assert not directory.exists(user)
    directory.undeletable.add(guest)
    assert directory.delete([guest]) == [guest]


def test_fake_clock() -> None:
    clock = FakeClock(T0)
    assert clock.now() == T0
    assert clock.advance(minutes=5) == T0 + timedelta(minutes=5)
    assert clock.advance(timedelta(seconds=1), seconds=1) == T0 + timedelta(minutes=5, seconds=2)
    clock.set(T0)
    assert clock.epoch_ms() == int(T0.timestamp() * 1000)
    with pytest.raises(ValueError):
        clock.set(datetime(2026, 1, 1))
