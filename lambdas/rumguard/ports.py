"""The ports of the decision service: what it needs from the world, as protocols.

Adapters in ``rumguard.adapters`` implement them on AWS (one class per resource); ``rumguard.local.fakes``
implements them in memory for replay and the benchmark. The domain depends only on these protocols.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rumguard.decisions import AllowEntry, AuditRecord, Block
from rumguard.detection import Counts


class CounterStore(Protocol):
    """Per-identity counters in one-minute buckets."""

    def record(
        self, batch_key: str, activity: Mapping[str, tuple[int, Counts]], keep_minutes: int
    ) -> dict[str, dict[int, Counts]]:
        """Add each identity's counts to its minute bucket, at most once per ``batch_key`` and identity.

        One write per identity; increments are atomic so concurrent batches never lose one. Returns every
        identity's buckets after the update, at least the ``keep_minutes`` up to its minute.
        """
        ...


@dataclass(frozen=True, slots=True)
class Lockdown:
    """Guest lockdown: unauthenticated identities off, sessions issued before ``since`` denied."""

    since: datetime
    actor: str
    reason: str


class DecisionStore(Protocol):
    """Blocks, allowlist, audit trail, the policy version and the lockdown: the source of truth."""

    def get_block(self, identity_id: str) -> Block | None:
        """The identity's current or last block."""
        ...

    def create_block(self, block: Block, previous: Block | None, audit: AuditRecord) -> bool:
        """Store a new active block unless the identity has an active one (then ``False``).

        In one atomic write: the block, its audit record, the policy version bump (unless dry-run) and the
        safety valve's count.
        """
        ...

    def end_block(self, ended: Block, audit: AuditRecord) -> bool:
        """Mark an active block expired or unblocked (``False`` if it was not active any more)."""
        ...

    def active_blocks(self, now: datetime) -> list[Block]:
        """Every active, unexpired block, newest first."""
        ...

    def blocks(self, status: str | None = None) -> list[Block]:
        """Every block record, optionally of one status, newest first."""
        ...

    def expired_blocks(self, now: datetime) -> list[Block]:
        """Blocks still marked active whose expiry has passed."""
        ...

    def auto_blocks_since(self, since: datetime) -> int:
        """How many automatic blocks were created at or after ``since`` (the safety valve's count)."""
        ...

    def get_allow(self, identity_id: str) -> AllowEntry | None:
        """The identity's allowlist entry."""
        ...

    def put_allow(self, entry: AllowEntry, audit: AuditRecord) -> None:
        """Add or replace an allowlist entry."""
        ...

    def delete_allow(self, identity_id: str, audit: AuditRecord) -> bool:
        """Remove an allowlist entry (``False`` if there was none)."""
        ...

    def audit(self, record: AuditRecord) -> None:
        """Append a record to the identity's audit trail."""
        ...

    def history(self, identity_id: str) -> list[AuditRecord]:
        """The identity's audit trail, oldest first."""
        ...

    def policy_versions(self) -> tuple[int, int]:
        """``(desired, applied)``: bumped with every change to the active set, and the last one applied."""
        ...

    def mark_policy_applied(self, version: int) -> bool:
        """Record that the policy of ``version`` was written, if ``version`` is still the desired one and
        nobody recorded a newer one."""
        ...

    def bump_policy_version(self) -> int:
        """Ask for the policy to be rewritten (for example after a lockdown change)."""
        ...

    def get_lockdown(self) -> Lockdown | None:
        """The guest lockdown in force."""
        ...

    def set_lockdown(self, lockdown: Lockdown | None, audit: AuditRecord) -> None:
        """Enter (a ``Lockdown``) or leave (``None``) guest lockdown."""
        ...


@dataclass(frozen=True, slots=True)
class IdentityInfo:
    """What Cognito says about an identity."""

    identity_id: str
    logins: tuple[str, ...]


class IdentityDirectory(Protocol):
    """The Cognito identity pool."""

    @property
    def pool_id(self) -> str:
        """The configured identity pool id (``<region>:<uuid>``)."""
        ...

    def describe(self, identity_id: str) -> IdentityInfo | None:
        """The identity, or ``None`` if Cognito does not know it."""
        ...

    def delete(self, identity_ids: Sequence[str]) -> list[str]:
        """Delete identities so they cannot get new credentials; returns those that could not be deleted."""
        ...

    def set_guest_access(self, allowed: bool) -> None:
        """Allow or refuse unauthenticated identities in the pool."""
        ...


class GuestRole(Protocol):
    """The IAM role guests assume."""

    def inline_policies(self) -> dict[str, str]:
        """Every inline policy of the role: name -> document JSON."""
        ...

    def put_policy(self, name: str, document: str) -> None:
        """Create or replace an inline policy."""
        ...

    def delete_policy(self, name: str) -> None:
        """Delete an inline policy (no error if it is gone)."""
        ...


class EventBus(Protocol):
    """RUM Guard's EventBridge bus."""

    def publish(self, detail_type: str, details: Sequence[Mapping[str, Any]]) -> None:
        """Put one event per detail (source ``rumguard``)."""
        ...


class Clock(Protocol):
    """Where time comes from (UTC, timezone-aware)."""

    def now(self) -> datetime:
        """The current time."""
        ...
