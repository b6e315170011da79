"""In-memory implementations of the decision service's ports, for ``rumguard replay``, the benchmark and tests.

Each class follows the semantics of the AWS adapter it stands in for, so code that runs on them behaves as
on AWS:

- ``InMemoryCounterStore`` is the DynamoDB counters: one update per identity per batch into the identity's
  minute bucket, applied at most once per ``(batch_key, identity)`` (a redelivered batch is a no-op that
  still costs the write attempt), atomic under concurrent callers, returning the identity's buckets.
- ``InMemoryDecisionStore`` is the DynamoDB decision records: one active block per identity (a conditional
  put), the policy version bumped in the same write as every change to the enforced set, the versioned
  ``mark_policy_applied`` condition ``desired = v AND applied <= v``, the safety valve's count of automatic
  blocks, and the audit trail.
- ``InMemoryIdentityDirectory`` is the Cognito identity pool (DescribeIdentity, DeleteIdentities,
  UpdateIdentityPool's ``AllowUnauthenticatedIdentities``).
- ``InMemoryGuestRole`` is the IAM guest role's inline policies, with IAM's aggregate size limit: a write
  that would take the role over it fails like IAM's ``LimitExceeded``.
- ``RecordingBus`` keeps what was published on the EventBridge bus.
- ``FakeClock`` is a settable clock.

Every class is safe to share between threads, and records the calls made to it for assertions.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from rumguard.decisions import AUTO, AllowEntry, AuditRecord, Block, BlockStatus, is_identity_id
from rumguard.detection import Counts, stale_minutes
from rumguard.policy import ROLE_INLINE_LIMIT, policy_size
from rumguard.ports import IdentityInfo, Lockdown

#: 2026-01-01T00:00:00Z, the default start of a ``FakeClock``.
DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=UTC)
#: Buckets kept past the longest window before they are pruned (as the DynamoDB update removes them).
BUCKET_MARGIN_MINUTES: Final = 5
#: How long a batch key is remembered per identity: CloudWatch Logs redelivers for up to 24 hours.
DEDUP_MINUTES: Final = 25 * 60


class FakeClock:
    """A clock that only moves when told to (UTC, timezone-aware)."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._now = _aware(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current fake time."""
        with self._lock:
            return self._now

    def set(self, at: datetime) -> None:
        """Jump to ``at``."""
        with self._lock:
            self._now = _aware(at)

    def advance(self, delta: timedelta = timedelta(0), **kwargs: float) -> datetime:
        """Move forward by ``delta`` plus any ``timedelta`` keyword arguments (``minutes=5``); the new time."""
        step = delta + timedelta(**kwargs)
        with self._lock:
            self._now += step
            return self._now

    def epoch_ms(self) -> int:
        """The current fake time in milliseconds since the epoch (a log event's timestamp)."""
        return int(self.now().timestamp() * 1000)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("the clock keeps timezone-aware (UTC) times")
    return value.astimezone(UTC)


class InMemoryCounterStore:
    """Per-identity counters in one-minute buckets, with the DynamoDB counter item's semantics.

    ``writes`` counts update attempts (one per identity per ``record`` call, as one ``UpdateItem`` each),
    ``duplicates`` those a batch key already applied (the condition check that fails on a redelivery).
    """

    def __init__(self, *, dedup_minutes: int = DEDUP_MINUTES, margin_minutes: int = BUCKET_MARGIN_MINUTES) -> None:
        self._buckets: dict[str, dict[int, Counts]] = {}
        self._applied: dict[str, dict[str, int]] = {}  # identity -> batch key -> minute it wrote
        self._dedup_minutes = dedup_minutes
        self._margin = margin_minutes
        self._lock = threading.Lock()
        self.writes = 0
        self.duplicates = 0

    def record(
        self, batch_key: str, activity: Mapping[str, tuple[int, Counts]], keep_minutes: int
    ) -> dict[str, dict[int, Counts]]:
        """Add each identity's counts to its minute bucket, once per ``batch_key``; every identity's buckets."""
        out: dict[str, dict[int, Counts]] = {}
        with self._lock:
            for identity, (minute, counts) in activity.items():
                self.writes += 1
                buckets = self._buckets.setdefault(identity, {})
                applied = self._applied.setdefault(identity, {})
                if batch_key in applied:
                    self.duplicates += 1
                else:
                    applied[batch_key] = minute
                    buckets[minute] = buckets.get(minute, Counts()) + counts
                    for stale in stale_minutes(minute, keep_minutes, self._margin):
                        buckets.pop(stale, None)
                    newest = max(applied.values())
                    for key in [k for k, m in applied.items() if m <= newest - self._dedup_minutes]:
                        del applied[key]
                out[identity] = dict(buckets)
        return out

    def buckets(self, identity: str) -> dict[int, Counts]:
        """A snapshot of one identity's buckets."""
        with self._lock:
            return dict(self._buckets.get(identity, {}))


class InMemoryDecisionStore:
    """Blocks, allowlist, audit trail, policy version, valve count and lockdown, with the table's conditions.

    Like the table, it keeps one block record per identity (the current or the last one); the history of
    earlier blocks is in the audit trail.
    """

    def __init__(self) -> None:
        self._blocks: dict[str, Block] = {}
        self._allow: dict[str, AllowEntry] = {}
        self._audit: dict[str, list[AuditRecord]] = {}
        self._auto_block_times: list[datetime] = []
        self._desired = 0
        self._applied = 0
        self._lockdown: Lockdown | None = None
        self._lock = threading.RLock()

    # --- blocks ---------------------------------------------------------------------------------------
    def get_block(self, identity_id: str) -> Block | None:
        """The identity's current or last block."""
        with self._lock:
            return self._blocks.get(identity_id)

    def create_block(self, block: Block, previous: Block | None, audit: AuditRecord) -> bool:
        """Store ``block`` unless the identity has an active one; with its audit, version bump and valve count."""
        with self._lock:
            current = self._blocks.get(block.identity_id)
            if current is not None and current.is_active(block.created_at):
                return False
            self._blocks[block.identity_id] = block
            self._append(audit)
            if not block.dry_run:
                self._desired += 1
            if block.actor == AUTO:
                self._auto_block_times.append(block.created_at)
            return True

    def end_block(self, ended: Block, audit: AuditRecord) -> bool:
        """Replace the identity's active block (the same one, by creation time) with ``ended``."""
        with self._lock:
            current = self._blocks.get(ended.identity_id)
            if current is None or current.status is not BlockStatus.ACTIVE or current.created_at != ended.created_at:
                return False
            self._blocks[ended.identity_id] = ended
            self._append(audit)
            if not current.dry_run:
                self._desired += 1
            return True

    def active_blocks(self, now: datetime) -> list[Block]:
        """Every active, unexpired block, newest first."""
        with self._lock:
            return _newest_first(b for b in self._blocks.values() if b.is_active(now))

    def blocks(self, status: str | None = None) -> list[Block]:
        """Every block record, optionally of one status, newest first."""
        with self._lock:
            return _newest_first(b for b in self._blocks.values() if status is None or b.status == status)

    def expired_blocks(self, now: datetime) -> list[Block]:
        """Blocks still marked active whose expiry has passed."""
        with self._lock:
            return _newest_first(
                b
                for b in self._blocks.values()
                if b.status is BlockStatus.ACTIVE and b.expires_at is not None and b.expires_at <= now
            )

    def auto_blocks_since(self, since: datetime) -> int:
        """How many automatic blocks were created at or after ``since``."""
        with self._lock:
            return sum(1 for at in self._auto_block_times if at >= since)

    # --- allowlist and audit --------------------------------------------------------------------------
    def get_allow(self, identity_id: str) -> AllowEntry | None:
        """The identity's allowlist entry."""
        with self._lock:
            return self._allow.get(identity_id)

    def put_allow(self, entry: AllowEntry, audit: AuditRecord) -> None:
        """Add or replace an allowlist entry."""
        with self._lock:
            self._allow[entry.identity_id] = entry
            self._append(audit)

    def delete_allow(self, identity_id: str, audit: AuditRecord) -> bool:
        """Remove an allowlist entry (``False`` if there was none; then nothing is audited)."""
        with self._lock:
            if self._allow.pop(identity_id, None) is None:
                return False
            self._append(audit)
            return True

    def allowlist(self) -> list[AllowEntry]:
        """Every allowlist entry, newest first."""
        with self._lock:
            return sorted(self._allow.values(), key=lambda e: e.created_at, reverse=True)

    def audit(self, record: AuditRecord) -> None:
        """Append a record to the identity's audit trail."""
        with self._lock:
            self._append(record)

    def history(self, identity_id: str) -> list[AuditRecord]:
        """The identity's audit trail, oldest first (``"*"`` holds the records about no one identity)."""
        with self._lock:
            return list(self._audit.get(identity_id, []))

    def _append(self, record: AuditRecord) -> None:
        self._audit.setdefault(record.identity_id, []).append(record)

    # --- policy version and lockdown ------------------------------------------------------------------
    def policy_versions(self) -> tuple[int, int]:
        """``(desired, applied)``."""
        with self._lock:
            return self._desired, self._applied

    def mark_policy_applied(self, version: int) -> bool:
        """Record ``version`` as applied if it is still the desired one and nobody recorded a newer one."""
        with self._lock:
            if self._desired != version or self._applied > version:
                return False
            self._applied = version
            return True

    def bump_policy_version(self) -> int:
        """Ask for the policy to be rewritten; the new desired version."""
        with self._lock:
            self._desired += 1
            return self._desired

    def get_lockdown(self) -> Lockdown | None:
        """The guest lockdown in force."""
        with self._lock:
            return self._lockdown

    def set_lockdown(self, lockdown: Lockdown | None, audit: AuditRecord) -> None:
        """Enter or leave guest lockdown."""
        with self._lock:
            self._lockdown = lockdown
            self._append(audit)


def _newest_first(blocks: Iterable[Block]) -> list[Block]:
    return sorted(blocks, key=lambda b: b.created_at, reverse=True)


class InMemoryIdentityDirectory:
    """A Cognito identity pool: its identities (id -> login providers) and whether it lets guests in.

    ``assume_guests`` makes every well-formed id of the pool's region a guest, for replays of logs from a
    pool nobody can ask. ``undeletable`` ids come back from ``delete`` as unprocessed, as Cognito reports
    ``UnprocessedIdentityIds``; deleting an id the pool does not know succeeds (it is gone either way).
    """

    def __init__(
        self,
        pool_id: str = "us-east-1:00000000-0000-4000-8000-000000000000",
        identities: Mapping[str, Sequence[str]] | None = None,
        *,
        assume_guests: bool = False,
        undeletable: Iterable[str] = (),
        seed: int = 0,
    ) -> None:
        self._pool_id = pool_id
        self.region = pool_id.split(":", 1)[0]
        self._identities: dict[str, tuple[str, ...]] = {i: tuple(logins) for i, logins in (identities or {}).items()}
        self.assume_guests = assume_guests
        self.undeletable = set(undeletable)
        self.guest_access = True
        self.deleted: list[str] = []
        #: Every call: ``(operation, arguments)``.
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def pool_id(self) -> str:
        """The identity pool id (``<region>:<uuid>``)."""
        return self._pool_id

    def add(self, identity_id: str, logins: Sequence[str] = ()) -> str:
        """Register an identity (a guest unless it has logins); the id."""
        with self._lock:
            self._identities[identity_id] = tuple(logins)
        return identity_id

    def new_guest(self) -> str:
        """A new guest identity of this pool (as ``GetId`` without logins)."""
        return self.add(self._new_id())

    def new_signed_in(self, provider: str = "cognito-idp.us-east-1.amazonaws.com/us-east-1_Example") -> str:
        """A new signed-in identity of this pool (as ``GetId`` with a login)."""
        return self.add(self._new_id(), (provider,))

    def _new_id(self) -> str:
        with self._lock:
            return f"{self.region}:{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"

    def exists(self, identity_id: str) -> bool:
        """Whether the pool holds the identity (without recording a call)."""
        with self._lock:
            return identity_id in self._identities

    def describe(self, identity_id: str) -> IdentityInfo | None:
        """The identity, or ``None`` if the pool does not know it."""
        with self._lock:
            self.calls.append(("describe", (identity_id,)))
            logins = self._identities.get(identity_id)
            if logins is None:
                guess = self.assume_guests and is_identity_id(identity_id) and identity_id.startswith(f"{self.region}:")
                return IdentityInfo(identity_id, ()) if guess else None
            return IdentityInfo(identity_id, logins)

    def delete(self, identity_ids: Sequence[str]) -> list[str]:
        """Delete identities; the ids that could not be deleted."""
        with self._lock:
            self.calls.append(("delete", tuple(identity_ids)))
            failed = [i for i in identity_ids if i in self.undeletable]
            for identity in identity_ids:
                if identity not in self.undeletable and self._identities.pop(identity, None) is not None:
                    self.deleted.append(identity)
            return failed

    def set_guest_access(self, allowed: bool) -> None:
        """Allow or refuse unauthenticated identities."""
        with self._lock:
            self.calls.append(("set_guest_access", (allowed,)))
            self.guest_access = allowed


class PolicyLimitExceededError(Exception):
    """IAM's ``LimitExceeded``: the role's inline policies would total more than the limit."""

    code = "LimitExceeded"


class MalformedPolicyDocumentError(Exception):
    """IAM's ``MalformedPolicyDocument``: the document is not a JSON object."""

    code = "MalformedPolicyDocument"


class InMemoryGuestRole:
    """The guest role's inline policies, with IAM's aggregate size limit (whitespace not counted).

    ``calls`` records every write: ``("put", name)`` and ``("delete", name)``.
    """

    def __init__(
        self,
        name: str = "rumguard-guest",
        policies: Mapping[str, str] | None = None,
        *,
        limit: int = ROLE_INLINE_LIMIT,
    ) -> None:
        self.name = name
        self.limit = limit
        self._policies: dict[str, str] = dict(policies or {})
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def inline_policies(self) -> dict[str, str]:
        """Every inline policy: name -> document JSON."""
        with self._lock:
            return dict(self._policies)

    def put_policy(self, name: str, document: str) -> None:
        """Create or replace an inline policy, unless the role would then exceed the size limit."""
        try:
            parsed = json.loads(document)
        except ValueError as error:
            raise MalformedPolicyDocumentError(f"policy {name!r} is not JSON: {error}") from error
        if not isinstance(parsed, dict):
            raise MalformedPolicyDocumentError(f"policy {name!r} is not a JSON object")
        with self._lock:
            total = sum(policy_size(doc) for other, doc in self._policies.items() if other != name)
            total += policy_size(document)
            if total > self.limit:
                raise PolicyLimitExceededError(
                    f"LimitExceeded: Maximum policy size of {self.limit} bytes exceeded for role {self.name} "
                    f"(would be {total})"
                )
            self._policies[name] = document
            self.calls.append(("put", name))

    def delete_policy(self, name: str) -> None:
        """Delete an inline policy (no error if it is gone)."""
        with self._lock:
            self._policies.pop(name, None)
            self.calls.append(("delete", name))

    def size(self) -> int:
        """The size IAM counts of all inline policies together."""
        with self._lock:
            return sum(policy_size(doc) for doc in self._policies.values())


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """One event put on the bus."""

    detail_type: str
    detail: dict[str, Any]
    source: str = "rumguard"


class RecordingBus:
    """An event bus that keeps every event published to it."""

    def __init__(self) -> None:
        self.events: list[PublishedEvent] = []
        self._lock = threading.Lock()

    def publish(self, detail_type: str, details: Sequence[Mapping[str, Any]]) -> None:
        """Keep one event per detail."""
        with self._lock:
            self.events.extend(PublishedEvent(detail_type, dict(detail)) for detail in details)

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        """The details of every event of one detail-type, in publishing order."""
        with self._lock:
            return [e.detail for e in self.events if e.detail_type == detail_type]
