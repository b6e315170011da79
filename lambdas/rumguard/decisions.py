"""Decisions: blocks, allowlist entries and the audit trail, and how long a block lasts.

These are the records the table keeps as the source of truth; IAM and Cognito follow them. Escalation
follows fail2ban's ``bantime.increment``: the first block lasts the base time, each repeat doubles it with
some jitter (so a bot cannot learn the exact moment it is let back in), up to a cap.
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

#: ``<region>:<uuid>``, as Cognito identity ids are written.
IDENTITY_ID: Final = re.compile(
    r"[a-z]{2}(-gov)?-[a-z]+-\d:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
AUTO: Final = "auto"
MANUAL_RULE: Final = "manual"


def is_identity_id(value: str) -> bool:
    """Whether ``value`` is shaped like a Cognito identity id."""
    return IDENTITY_ID.fullmatch(value) is not None


class Mode(enum.StrEnum):
    """``enforce`` changes IAM and Cognito; ``dry-run`` records and reports, and changes nothing there."""

    ENFORCE = "enforce"
    DRY_RUN = "dry-run"


class BlockStatus(enum.StrEnum):
    """Where a block is in its life."""

    ACTIVE = "active"
    EXPIRED = "expired"
    UNBLOCKED = "unblocked"


@dataclass(frozen=True, slots=True)
class Block:
    """One block of one identity: the current or the last one (the history is in the audit trail)."""

    identity_id: str
    app_monitor: str
    rule: str
    reason: str
    actor: str
    created_at: datetime
    expires_at: datetime | None
    offence: int
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)
    status: BlockStatus = BlockStatus.ACTIVE
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    grace_until: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        """Active and not past its expiry (the sweeper may not have marked it yet)."""
        return self.status is BlockStatus.ACTIVE and (self.expires_at is None or self.expires_at > now)

    def in_grace(self, now: datetime) -> bool:
        """Manually unblocked recently: automatic rules leave the identity alone until ``grace_until``."""
        return self.grace_until is not None and self.grace_until > now

    def ended(self, status: BlockStatus, at: datetime, by: str, reason: str, grace: timedelta | None) -> Block:
        """This block, ended (expired or unblocked), with a grace period if one is given."""
        return replace(
            self,
            status=status,
            ended_at=at,
            ended_by=by,
            end_reason=reason,
            grace_until=at + grace if grace else None,
        )

    def event_detail(self) -> dict[str, Any]:
        """The detail of the bus event about this block (DESIGN.md's public contract)."""
        return {
            "identityId": self.identity_id,
            "appMonitor": self.app_monitor,
            "rule": self.rule,
            "reason": self.end_reason if self.status is not BlockStatus.ACTIVE else self.reason,
            "actor": self.ended_by if self.status is not BlockStatus.ACTIVE else self.actor,
            "expiresAt": _iso(self.expires_at),
            "dryRun": self.dry_run,
            "offence": self.offence,
            "counts": dict(self.counts),
            "createdAt": _iso(self.created_at),
            "status": self.status.value,
        }


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """An identity automatic rules must leave alone, until ``expires_at`` if set."""

    identity_id: str
    reason: str
    actor: str
    created_at: datetime
    expires_at: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        """Not expired."""
        return self.expires_at is None or self.expires_at > now


class AuditAction(enum.StrEnum):
    """What an audit record records."""

    BLOCK = "block"
    UNBLOCK = "unblock"
    EXPIRE = "expire"
    ALLOW = "allow"
    DISALLOW = "disallow"
    REFUSE_FORGED = "refuse-forged"
    LOCKDOWN_ON = "lockdown-on"
    LOCKDOWN_OFF = "lockdown-off"
    BLOCK_STORM = "block-storm"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Who did what to which identity, when, why, under which rule and with what counts."""

    action: AuditAction
    identity_id: str
    actor: str
    at: datetime
    reason: str
    rule: str | None = None
    app_monitor: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Escalation:
    """Block durations: ``base`` the first time, doubling per repeat offence up to ``cap``."""

    base: timedelta = timedelta(hours=1)
    cap: timedelta = timedelta(days=7)
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError("the base duration must be positive and at most the cap")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    def duration(self, offence: int, rng: random.Random) -> timedelta:
        """How long the ``offence``-th block lasts (1 is the first)."""
        if offence <= 1:
            return self.base
        doubled = self.base * (2 ** min(offence - 1, 32))
        if doubled >= self.cap:
            return self.cap
        jittered: timedelta = doubled * (1 + rng.uniform(-self.jitter, self.jitter))
        return min(jittered, self.cap)


#: A previous block older than this no longer makes a repeat offence (fail2ban's dbpurgeage, longer).
OFFENCE_MEMORY: Final = timedelta(days=30)


def next_offence(previous: Block | None, now: datetime) -> int:
    """The offence number of a new block, given the identity's last one."""
    if previous is None:
        return 1
    # The block stopped applying when it was unblocked or when it expired, whichever came first: the
    # sweeper may mark an expired block long after its expiry.
    ends = [at for at in (previous.ended_at, previous.expires_at) if at is not None]
    last = min(ends) if ends else previous.created_at
    return previous.offence + 1 if now - last <= OFFENCE_MEMORY else 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
