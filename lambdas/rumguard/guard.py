"""The decision service: one implementation of blocking for the automatic rules, the sweeper and the API.

Order of every change (DESIGN.md, enforcement invariants): the table first (the source of truth), then the
guest role's deny policy rendered whole from the table, then Cognito, then the event on the bus. Dry-run
records and reports everything and changes nothing in IAM or Cognito.

The policy write converges under concurrency with a versioned read-modify-write: every change to the
active set bumps a desired version in the same table write; a writer renders the policy from the table at
version V, writes it, then records "V applied" only if V is still the desired version and nobody recorded a
newer one. A writer that fails that check may have written a stale policy, so it renders and writes again.
Whoever writes last therefore writes the newest set.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from rumguard.decisions import (
    AUTO,
    MANUAL_RULE,
    AllowEntry,
    AuditAction,
    AuditRecord,
    Block,
    BlockStatus,
    Escalation,
    Mode,
    is_identity_id,
    next_offence,
)
from rumguard.detection import Counts, Detection, RuleHit, minute_of
from rumguard.ingest import BatchReport
from rumguard.monitors import Audience
from rumguard.policy import POLICY_PREFIX, PolicyPlan, plan, policy_size
from rumguard.ports import Clock, CounterStore, DecisionStore, EventBus, GuestRole, IdentityDirectory, Lockdown

IDENTITY_BLOCKED: Final = "Identity Blocked"
IDENTITY_UNBLOCKED: Final = "Identity Unblocked"
LOCKDOWN_CHANGED: Final = "Guest Lockdown Changed"
BLOCK_STORM: Final = "Block Storm"
SAFETY_VALVE_RULE: Final = "safety-valve"
#: How often a policy writer re-renders after losing a race before leaving the rest to the sweeper.
MAX_POLICY_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Settings of the decision service (see ``rumguard.settings`` for the environment names)."""

    mode: Mode = Mode.DRY_RUN
    detection: Detection = field(default_factory=Detection)
    escalation: Escalation = field(default_factory=Escalation)
    grace: timedelta = timedelta(hours=1)
    manual_duration: timedelta = timedelta(hours=1)
    valve_limit: int = 50
    valve_window: timedelta = timedelta(minutes=5)
    lockdown_on_storm: bool = False

    @property
    def dry_run(self) -> bool:
        """Whether IAM and Cognito are left alone."""
        return self.mode is Mode.DRY_RUN


@dataclass(slots=True)
class GuardOutcome:
    """What one batch (or one sweep, or one API call) decided and did."""

    blocked: list[Block] = field(default_factory=list)
    unblocked: list[Block] = field(default_factory=list)
    forged: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    hits: dict[str, list[RuleHit]] = field(default_factory=dict)
    storm: bool = False
    policy: PolicyPlan | None = None
    policy_converged: bool = True
    undeleted: list[str] = field(default_factory=list)
    counter_writes: int = 0


class GuardError(Exception):
    """A request the decision service refuses; ``code`` is stable for the API's error mapping."""

    code = "invalid-request"


class InvalidIdentityError(GuardError):
    """Not shaped like a Cognito identity id of the configured pool's region."""

    code = "invalid-identity"


class UnknownIdentityError(GuardError):
    """Cognito does not know the identity."""

    code = "unknown-identity"


class SignedInIdentityError(GuardError):
    """The identity is signed in; blocking it needs ``force``."""

    code = "signed-in-identity"


class NotBlockedError(GuardError):
    """The identity has no active block."""

    code = "not-blocked"


class Guard:
    """Detects, decides, enforces, expires. Pure orchestration over the ports."""

    def __init__(
        self,
        config: GuardConfig,
        *,
        store: DecisionStore,
        counters: CounterStore,
        identities: IdentityDirectory,
        role: GuestRole,
        bus: EventBus,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.counters = counters
        self.identities = identities
        self.role = role
        self.bus = bus
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter of block durations, not a secret
        self.region = identities.pool_id.split(":", 1)[0]

    # --- the automatic path ---------------------------------------------------------------------------
    def on_batch(self, report: BatchReport, batch_key: str) -> GuardOutcome:
        """Count a guest monitor's batch per identity, evaluate the rules, block who crossed a line."""
        outcome = GuardOutcome()
        monitor = report.monitor
        if monitor is None or monitor.audience is not Audience.GUEST or not report.identities:
            return outcome
        activity = {
            identity: (
                minute_of(a.last_ms),
                Counts(a.events, a.session_starts, a.page_views, a.js_errors, a.junk),
            )
            for identity, a in report.identities.items()
        }
        detection = self.config.detection
        buckets = self.counters.record(batch_key, activity, detection.window_minutes)
        outcome.counter_writes = len(activity)
        for identity, (minute, _) in activity.items():
            hits = detection.evaluate(buckets.get(identity, {}), minute)
            if hits:
                outcome.hits[identity] = hits
        for identity, hits in outcome.hits.items():
            self._consider(identity, hits, monitor.name, outcome)
        if outcome.storm:
            self._storm(monitor.name, outcome)
        self._enforce(outcome)
        return outcome

    def _consider(self, identity: str, hits: list[RuleHit], monitor: str, outcome: GuardOutcome) -> None:
        now = self.clock.now()
        if not self._well_formed(identity):
            # Refused and audited like every other forged id (DESIGN.md: every decision leaves a record).
            self._refuse(identity, "not a Cognito identity id of the pool's region", hits, monitor, outcome)
            return
        allow = self.store.get_allow(identity)
        if allow is not None and allow.is_active(now):
            outcome.skipped[identity] = "allowlisted"
            return
        previous = self.store.get_block(identity)
        if previous is not None and previous.is_active(now):
            outcome.skipped[identity] = "already blocked"
            return
        if previous is not None and previous.in_grace(now):
            outcome.skipped[identity] = "in grace period after a manual unblock"
            return
        info = self.identities.describe(identity)
        if info is None:
            # A concurrent invocation may have just blocked it, and deleted it from the pool.
            current = self.store.get_block(identity)
            if current is not None and current.is_active(self.clock.now()):
                outcome.skipped[identity] = "blocked concurrently by another invocation"
                return
            self._refuse(identity, "unknown to the identity pool", hits, monitor, outcome)
            return
        if info.logins:
            self._refuse(identity, "a signed-in identity (has logins)", hits, monitor, outcome)
            return
        if outcome.storm or self.store.auto_blocks_since(now - self.config.valve_window) >= self.config.valve_limit:
            outcome.storm = True
            outcome.skipped[identity] = "safety valve: too many blocks in the last window"
            return
        top = hits[0]
        block = self._new_block(identity, monitor, top.rule.value, top.reason(), AUTO, _counts(hits), previous, None)
        if self._create(block, previous):
            outcome.blocked.append(block)
        else:
            outcome.skipped[identity] = "blocked concurrently by another invocation"

    def _refuse(self, identity: str, why: str, hits: list[RuleHit], monitor: str, outcome: GuardOutcome) -> None:
        """A forged identity: never blocked, counted in the outcome and audited."""
        outcome.forged[identity] = why
        self.store.audit(
            AuditRecord(
                AuditAction.REFUSE_FORGED,
                identity,
                AUTO,
                self.clock.now(),
                why,
                rule=hits[0].rule.value,
                app_monitor=monitor,
                counts=_counts(hits),
                dry_run=self.config.dry_run,
            )
        )

    def _well_formed(self, identity: str) -> bool:
        return is_identity_id(identity) and identity.split(":", 1)[0] == self.region

    def _new_block(
        self,
        identity: str,
        monitor: str,
        rule: str,
        reason: str,
        actor: str,
        counts: dict[str, int],
        previous: Block | None,
        duration: timedelta | None,
    ) -> Block:
        now = self.clock.now()
        offence = next_offence(previous, now)
        length = duration if duration is not None else self.config.escalation.duration(offence, self.rng)
        return Block(
            identity_id=identity,
            app_monitor=monitor,
            rule=rule,
            reason=reason,
            actor=actor,
            created_at=now,
            expires_at=now + length,
            offence=offence,
            dry_run=self.config.dry_run,
            counts=counts,
        )

    def _create(self, block: Block, previous: Block | None) -> bool:
        audit = AuditRecord(
            AuditAction.BLOCK,
            block.identity_id,
            block.actor,
            block.created_at,
            block.reason,
            rule=block.rule,
            app_monitor=block.app_monitor,
            counts=block.counts,
            dry_run=block.dry_run,
            expires_at=block.expires_at,
        )
        return self.store.create_block(block, previous, audit)

    def _storm(self, monitor: str, outcome: GuardOutcome) -> None:
        now = self.clock.now()
        reason = (
            f"more than {self.config.valve_limit} automatic blocks in "
            f"{int(self.config.valve_window.total_seconds() // 60)} min: automatic blocking paused"
        )
        self.store.audit(AuditRecord(AuditAction.BLOCK_STORM, "*", AUTO, now, reason, app_monitor=monitor))
        self.bus.publish(
            BLOCK_STORM,
            [
                {
                    "identityId": None,
                    "appMonitor": monitor,
                    "rule": SAFETY_VALVE_RULE,
                    "reason": reason,
                    "actor": AUTO,
                    "expiresAt": None,
                    "dryRun": self.config.dry_run,
                    "skippedIdentities": sorted(i for i, why in outcome.skipped.items() if why.startswith("safety")),
                }
            ],
        )
        if self.config.lockdown_on_storm and self.store.get_lockdown() is None:
            self.set_lockdown(True, reason=reason, actor=AUTO, app_monitor=monitor)

    def _enforce(self, outcome: GuardOutcome) -> None:
        """After the table: the policy, then Cognito, then the events."""
        live = [b.identity_id for b in outcome.blocked if not b.dry_run]
        if live:
            outcome.policy, outcome.policy_converged = self.sync_policy()
            outcome.undeleted = self.identities.delete(live)
        if outcome.blocked:
            self.bus.publish(IDENTITY_BLOCKED, [b.event_detail() for b in outcome.blocked])

    # --- enforcement ----------------------------------------------------------------------------------
    def sync_policy(self) -> tuple[PolicyPlan, bool]:
        """Make the guest role's ``rumguard-deny*`` policies equal the table; ``(plan, converged)``.

        Repairs drift both ways: a missing or edited policy is rewritten, a stale one deleted.
        """
        result: PolicyPlan | None = None
        for _ in range(MAX_POLICY_ATTEMPTS):
            desired, _applied = self.store.policy_versions()
            now = self.clock.now()
            active = [b.identity_id for b in self.store.active_blocks(now) if not b.dry_run]
            lockdown = self.store.get_lockdown()
            current = self.role.inline_policies()
            others = sum(policy_size(doc) for name, doc in current.items() if not name.startswith(POLICY_PREFIX))
            result = plan(active, others_chars=others, lockdown_since=lockdown.since if lockdown else None)
            if not self.config.dry_run:
                self._write_policies(current, result.policies)
            if self.store.mark_policy_applied(desired):
                return result, True
        assert result is not None
        return result, False

    def _write_policies(self, current: dict[str, str], wanted: dict[str, str]) -> None:
        """Turn the role's ``rumguard-deny*`` policies from ``current`` into ``wanted``.

        IAM checks its size limit on every single write, so the role must stay within it at each step, not
        only at the end: deletes first, then the writes that shrink a policy, then those that grow one (for
        example the lockdown policy arriving beside a full blocks policy that is about to shrink).
        """
        for name in current:
            if name.startswith(POLICY_PREFIX) and name not in wanted:
                self.role.delete_policy(name)
        changed = [name for name, document in wanted.items() if current.get(name) != document]
        growth = {name: policy_size(wanted[name]) - policy_size(current.get(name, "")) for name in changed}
        for name in sorted(changed, key=lambda n: growth[n]):
            self.role.put_policy(name, wanted[name])

    # --- the sweeper ----------------------------------------------------------------------------------
    def sweep(self) -> GuardOutcome:
        """Expire blocks past their time, reconcile the policy with the table, announce the unblocks."""
        outcome = GuardOutcome()
        now = self.clock.now()
        for block in self.store.expired_blocks(now):
            ended = block.ended(BlockStatus.EXPIRED, now, AUTO, "block expired", None)
            audit = AuditRecord(
                AuditAction.EXPIRE,
                block.identity_id,
                AUTO,
                now,
                "block expired",
                rule=block.rule,
                app_monitor=block.app_monitor,
                dry_run=block.dry_run,
            )
            if self.store.end_block(ended, audit):
                outcome.unblocked.append(ended)
        outcome.policy, outcome.policy_converged = self.sync_policy()
        if outcome.unblocked:
            self.bus.publish(IDENTITY_UNBLOCKED, [b.event_detail() for b in outcome.unblocked])
        return outcome

    # --- the operator path ----------------------------------------------------------------------------
    def block(
        self,
        identity: str,
        *,
        reason: str,
        actor: str,
        duration: timedelta | None = None,
        force: bool = False,
        app_monitor: str = "",
    ) -> tuple[Block, bool]:
        """Block by hand; ``(block, created)``. Repeating it returns the active block unchanged."""
        if not self._well_formed(identity):
            raise InvalidIdentityError(f"{identity!r} is not an identity id of region {self.region}")
        now = self.clock.now()
        previous = self.store.get_block(identity)
        if previous is not None and previous.is_active(now):
            return previous, False
        info = self.identities.describe(identity)
        if info is None:
            raise UnknownIdentityError(f"identity {identity} is not in the identity pool")
        if info.logins and not force:
            raise SignedInIdentityError(f"identity {identity} is signed in; set force to block it anyway")
        block = self._new_block(
            identity,
            app_monitor,
            MANUAL_RULE,
            reason,
            actor,
            {},
            previous,
            duration or self.config.manual_duration,
        )
        if not self._create(block, previous):
            current = self.store.get_block(identity)
            assert current is not None
            return current, False
        self._enforce(GuardOutcome(blocked=[block]))
        return block, True

    def unblock(self, identity: str, *, reason: str, actor: str, grace: bool = True) -> Block:
        """End an active block; automatic rules then leave the identity alone for the grace period."""
        now = self.clock.now()
        block = self.store.get_block(identity)
        if block is None or not block.is_active(now):
            raise NotBlockedError(f"identity {identity} has no active block")
        ended = block.ended(BlockStatus.UNBLOCKED, now, actor, reason, self.config.grace if grace else None)
        audit = AuditRecord(
            AuditAction.UNBLOCK,
            identity,
            actor,
            now,
            reason,
            rule=block.rule,
            app_monitor=block.app_monitor,
            dry_run=block.dry_run,
        )
        if not self.store.end_block(ended, audit):
            raise NotBlockedError(f"identity {identity} was unblocked concurrently")
        if not block.dry_run:
            self.sync_policy()
        self.bus.publish(IDENTITY_UNBLOCKED, [ended.event_detail()])
        return ended

    def allow(self, identity: str, *, reason: str, actor: str, expires_at: datetime | None = None) -> AllowEntry:
        """Allowlist an identity (unblocking it if it is blocked)."""
        if not self._well_formed(identity):
            raise InvalidIdentityError(f"{identity!r} is not an identity id of region {self.region}")
        now = self.clock.now()
        entry = AllowEntry(identity, reason, actor, now, expires_at)
        self.store.put_allow(entry, AuditRecord(AuditAction.ALLOW, identity, actor, now, reason, expires_at=expires_at))
        block = self.store.get_block(identity)
        if block is not None and block.is_active(now):
            self.unblock(identity, reason=f"allowlisted: {reason}", actor=actor, grace=False)
        return entry

    def disallow(self, identity: str, *, reason: str, actor: str) -> bool:
        """Remove an identity from the allowlist."""
        now = self.clock.now()
        return self.store.delete_allow(identity, AuditRecord(AuditAction.DISALLOW, identity, actor, now, reason))

    def set_lockdown(self, on: bool, *, reason: str, actor: str, app_monitor: str | None = None) -> Lockdown | None:
        """Enter or leave guest lockdown: pool guest access off/on and the token-age deny on the role."""
        now = self.clock.now()
        lockdown = Lockdown(since=now, actor=actor, reason=reason) if on else None
        action = AuditAction.LOCKDOWN_ON if on else AuditAction.LOCKDOWN_OFF
        self.store.set_lockdown(lockdown, AuditRecord(action, "*", actor, now, reason, dry_run=self.config.dry_run))
        if not self.config.dry_run:
            self.identities.set_guest_access(not on)
        self.store.bump_policy_version()
        self.sync_policy()
        self.bus.publish(
            LOCKDOWN_CHANGED,
            [
                {
                    "identityId": None,
                    "appMonitor": app_monitor,
                    "rule": SAFETY_VALVE_RULE if actor == AUTO else MANUAL_RULE,
                    "reason": reason,
                    "actor": actor,
                    "expiresAt": None,
                    "dryRun": self.config.dry_run,
                    "enabled": on,
                    "since": now.isoformat().replace("+00:00", "Z") if on else None,
                }
            ],
        )
        return lockdown


def _counts(hits: Sequence[RuleHit]) -> dict[str, int]:
    return {hit.rule.value: hit.count for hit in hits}


def describe_outcome(outcome: GuardOutcome) -> dict[str, Any]:
    """A small JSON summary of an outcome, for logs and the function's return value."""
    return {
        "blocked": [b.identity_id for b in outcome.blocked],
        "unblocked": [b.identity_id for b in outcome.unblocked],
        "forged": sorted(outcome.forged),
        "skipped": dict(sorted(outcome.skipped.items())),
        "storm": outcome.storm,
        "unenforced": list(outcome.policy.unenforced) if outcome.policy else [],
        "undeleted": outcome.undeleted,
    }
