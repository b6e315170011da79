"""The RUM Guard table on DynamoDB: the ``CounterStore`` and ``DecisionStore`` ports.

One table (template.yaml's ``RumGuardTable``: string keys ``pk``/``sk``, TTL attribute ``ttl``) holds
everything; the Powertools idempotency records of the ingest function live there too, under
``pk = "idempotency#ingest"``. Items, by partition:

``counter#<identity>`` / ``window``
    One item per guest identity. For each minute bucket ``M`` (minutes since the epoch) the numbers
    ``e_M s_M p_M j_M x_M`` (the ``detection.Counter`` keys) and the string set ``b_M`` of the batches
    already counted in that minute (short digests of the batch keys, to keep the item and so the write
    cost small). ``record`` writes it with exactly one ``UpdateItem`` per identity: ``ADD`` the counts and
    the batch digest, ``SET ttl``, ``REMOVE`` the stale buckets, on condition that the batch is not yet in
    ``b_M``. A redelivered batch (after a partial failure) therefore never counts twice, even when the
    first attempt died halfway through its identities; the condition failure is answered with a
    consistent read.

    The stale buckets are the one that just left the window and ``PRUNE_MARGIN_MINUTES`` more before it
    (``detection.stale_minutes``). The trade-off: every minute of margin adds 6 paths to the ``REMOVE``
    list (DynamoDB does not mind, within its 4 KB expression limit, but moto's expression validator is
    quadratic in paths: about 30 ms per update at 3, 100 ms at 10), while a narrower margin leaves more
    leftovers: the buckets of an identity that comes back after more than window + margin minutes of
    silence. Leftovers are harmless to detection (the rules only sum the buckets inside their windows),
    and TTL removes the whole item an hour after the identity's last write; meanwhile they only make the
    item, and so its writes, a little bigger.

    A batch digest goes with its bucket, so the dedup horizon is the window plus the margin. Lambda
    retries a failed asynchronous invocation within minutes (and a batch that completed is caught
    earlier, by the ingest idempotency record); a redelivery later than that cannot double count either,
    as the bucket it counted into is gone with the digest.
``block`` / ``<identity>``
    The identity's current or last block, every ``Block`` field, plus ``createdEpoch``/``expiresEpoch``
    (epoch seconds, for conditions). TTL: 30 days (``OFFENCE_MEMORY``) past the expiry or the end, so a
    repeat offender is remembered; a block without expiry has no TTL while active.
``valve`` / ``<created>#<identity>``
    One small item per automatic block (TTL one day), counted with a ``COUNT`` query for the safety valve.
    One item per block, not a per-minute counter: the count is exact ("at or after ``since``"), and
    concurrent transactions never contend on one hot counter item.
``allow`` / ``<identity>``
    Allowlist entries; TTL one day past the expiry, if any.
``audit#<identity>`` / ``<at>#<write time>#<random>``
    The audit trail (``audit#*`` for records about no single identity, like the lockdown). TTL
    ``AUDIT_RETENTION`` (400 days) after the record, so a year of decisions can always be reviewed;
    ``None`` keeps them forever.
``policy`` / ``version``
    ``desired`` (bumped in the same transaction as every change to the enforced set) and ``applied``.
``lockdown`` / ``state``
    The guest lockdown in force, if any.

Every change and its audit record go in one ``TransactWriteItems``. Transactions that touch the policy
version item can conflict under concurrency (``TransactionConflict``): they are retried with jittered
backoff, the conditions making the retry safe. Times are stored as fixed-width ISO 8601 strings (which
sort as times) and, where a condition needs them, as epoch seconds.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from rumguard.decisions import AUTO, OFFENCE_MEMORY, AllowEntry, AuditAction, AuditRecord, Block, BlockStatus
from rumguard.detection import Counter, Counts, stale_minutes
from rumguard.ports import Lockdown

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

#: Buckets pruned past the window by each counter write (see the module docstring for the trade-off).
PRUNE_MARGIN_MINUTES: Final = 3
#: How long a counter item outlives its identity's last write.
COUNTER_TTL_SLACK: Final = timedelta(hours=1)
#: Concurrent counter updates per ``record`` call (boto3 clients are thread-safe).
DEFAULT_MAX_WORKERS: Final = 16
#: How long audit records are kept (``None``: forever).
AUDIT_RETENTION: Final = timedelta(days=400)
#: Allowlist entries outlive their expiry by this much (the record of why someone was allowed).
ALLOW_TTL_SLACK: Final = timedelta(days=1)
#: Safety valve items are only counted over minutes; a day is plenty.
VALVE_TTL: Final = timedelta(days=1)
#: Attempts of a transaction that keeps meeting ``TransactionConflict``.
TRANSACTION_ATTEMPTS: Final = 6

COUNTER_SK: Final = "window"
BLOCK_PK: Final = "block"
VALVE_PK: Final = "valve"
ALLOW_PK: Final = "allow"
POLICY_KEY: Final = ("policy", "version")
LOCKDOWN_KEY: Final = ("lockdown", "state")

_COUNTER_KEYS: Final = frozenset(c.value for c in Counter)
_BATCH_SET: Final = "b"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()

Item = dict[str, "AttributeValueTypeDef"]


# --- values -----------------------------------------------------------------------------------------------
def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: RUM Guard keeps timezone-aware UTC times")
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    """A fixed-width ISO 8601 UTC time (microseconds, ``Z``): strings that sort as the times do."""
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _from_iso(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def epoch(value: datetime) -> Decimal:
    """Seconds since the epoch, exact to the microsecond (a DynamoDB number)."""
    micros = (_utc(value) - _EPOCH) // timedelta(microseconds=1)
    return Decimal(micros) / Decimal(1_000_000)


def _ttl(value: datetime) -> int:
    return int((_utc(value) - _EPOCH).total_seconds())


def batch_digest(batch_key: str) -> str:
    """The short form of a batch key kept in a counter item (72 bits: collisions are out of reach)."""
    if not batch_key:
        raise ValueError("a batch key cannot be empty")
    digest = hashlib.blake2b(batch_key.encode(), digest_size=9).digest()
    return base64.urlsafe_b64encode(digest).decode()


def _av(value: Any) -> AttributeValueTypeDef:
    return _SERIALIZER.serialize(value)


def _serialize(values: Mapping[str, Any]) -> Item:
    """Attributes from Python values; ``None`` means absent."""
    return {name: _av(value) for name, value in values.items() if value is not None}


def _deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def _key(pk: str, sk: str) -> Item:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _optional_time(data: Mapping[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    return _from_iso(value) if value else None


class _Table:
    """What both stores share: the client, the table name, reads and queries."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table_name, Key=_key(pk, sk), ConsistentRead=True)
        item = response.get("Item")
        return _deserialize(item) if item else None

    def _query(
        self,
        pk: str,
        *,
        sk_from: str | None = None,
        filter_expression: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        ascending: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a partition (strongly consistent), optionally from a sort key on and filtered."""
        condition = "pk = :pk"
        attribute_values: Item = {":pk": {"S": pk}}
        attribute_values.update(_serialize(values or {}))
        if sk_from is not None:
            condition += " AND sk >= :sk_from"
            attribute_values[":sk_from"] = {"S": sk_from}
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": attribute_values,
            "ConsistentRead": True,
            "ScanIndexForward": ascending,
        }
        if filter_expression:
            arguments["FilterExpression"] = filter_expression
        if names:
            arguments["ExpressionAttributeNames"] = dict(names)
        while True:
            page = self.client.query(**arguments)
            for item in page.get("Items", []):
                yield _deserialize(item)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            arguments["ExclusiveStartKey"] = last


# --- counters ---------------------------------------------------------------------------------------------
class DynamoCounterStore(_Table):
    """Per-identity counters in one-minute buckets: one conditional ``UpdateItem`` per identity and batch.

    ``writes`` counts the ``UpdateItem`` calls (the benchmark's DynamoDB writes per 1,000 events),
    ``duplicates`` those refused because the batch was already counted, ``reads`` the reads that followed.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        prune_margin: int = PRUNE_MARGIN_MINUTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(client, table_name)
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        if prune_margin < 0:
            raise ValueError("prune_margin cannot be negative")
        self.max_workers = max_workers
        self.prune_margin = prune_margin
        self._clock = clock
        self._lock = threading.Lock()
        self.writes = 0
        self.duplicates = 0
        self.reads = 0

    def record(
        self, batch_key: str, activity: Mapping[str, tuple[int, Counts]], keep_minutes: int
    ) -> dict[str, dict[int, Counts]]:
        """Add each identity's counts to its minute bucket, once per ``batch_key``; every identity's buckets.

        The identities are written concurrently. If any write fails, the others still finish before the
        first error is raised, so a retry of the batch finds each identity either counted or not.
        """
        if keep_minutes < 1:
            raise ValueError("keep_minutes must be at least 1")
        if any(minute < 0 for minute, _ in activity.values()):
            raise ValueError("a minute bucket cannot be before the epoch")
        digest = batch_digest(batch_key)
        ttl = int(self._clock()) + keep_minutes * 60 + int(COUNTER_TTL_SLACK.total_seconds())
        items = list(activity.items())
        if len(items) <= 1 or self.max_workers == 1:
            return {identity: self._record_one(identity, m, c, digest, keep_minutes, ttl) for identity, (m, c) in items}
        workers = min(self.max_workers, len(items))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rumguard-counters") as pool:
            futures = [
                (identity, pool.submit(self._record_one, identity, m, c, digest, keep_minutes, ttl))
                for identity, (m, c) in items
            ]
        # The pool has finished every write here; result() raises the first failure, if any.
        return {identity: future.result() for identity, future in futures}

    def buckets(self, identity: str) -> dict[int, Counts]:
        """The identity's buckets as stored (a consistent read)."""
        item = self.client.get_item(
            TableName=self.table_name, Key=_key(f"counter#{identity}", COUNTER_SK), ConsistentRead=True
        ).get("Item")
        return _buckets(item or {})

    def _record_one(
        self, identity: str, minute: int, counts: Counts, digest: str, keep_minutes: int, ttl: int
    ) -> dict[int, Counts]:
        values: Item = {":batch_set": {"SS": [digest]}, ":batch": {"S": digest}, ":ttl": {"N": str(ttl)}}
        adds = [f"{_BATCH_SET}_{minute} :batch_set"]
        for counter, n in counts.as_map().items():
            adds.append(f"{counter.value}_{minute} :{counter.value}")
            values[f":{counter.value}"] = {"N": str(n)}
        removes = [
            f"{key}_{stale}"
            for stale in stale_minutes(minute, keep_minutes, self.prune_margin)
            if stale >= 0
            for key in (*sorted(_COUNTER_KEYS), _BATCH_SET)
        ]
        expression = f"ADD {', '.join(adds)} SET #ttl = :ttl"
        if removes:
            expression += f" REMOVE {', '.join(removes)}"
        batch_set = f"{_BATCH_SET}_{minute}"
        key = _key(f"counter#{identity}", COUNTER_SK)
        with self._lock:
            self.writes += 1
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=f"attribute_not_exists({batch_set}) OR NOT contains({batch_set}, :batch)",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            # Already counted (a redelivery): the buckets as they are, without counting again.
            with self._lock:
                self.duplicates += 1
                self.reads += 1
            item = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
            return _buckets(item or {})
        return _buckets(response.get("Attributes", {}))


def _buckets(item: Mapping[str, Any]) -> dict[int, Counts]:
    """The minute buckets of a counter item (its raw attributes)."""
    raw: dict[int, dict[Counter, int]] = {}
    for name, value in item.items():
        prefix, separator, minute = name.partition("_")
        if separator and prefix in _COUNTER_KEYS and minute.isdigit():
            raw.setdefault(int(minute), {})[Counter(prefix)] = int(Decimal(value["N"]))
    return {minute: Counts.from_map(counts) for minute, counts in sorted(raw.items())}


# --- decisions --------------------------------------------------------------------------------------------
class TransactionError(RuntimeError):
    """A transaction kept conflicting with concurrent ones, or was cancelled for another reason."""


class DynamoDecisionStore(_Table):
    """Blocks, allowlist, audit trail, policy version, safety valve and lockdown: the source of truth."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        audit_retention: timedelta | None = AUDIT_RETENTION,
        transaction_attempts: int = TRANSACTION_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(client, table_name)
        if transaction_attempts < 1:
            raise ValueError("transaction_attempts must be at least 1")
        self.audit_retention = audit_retention
        self.transaction_attempts = transaction_attempts
        self._sleep = sleep
        self._rng = random.Random()  # noqa: S311 - backoff jitter, not a secret

    # --- blocks ---------------------------------------------------------------------------------------
    def get_block(self, identity_id: str) -> Block | None:
        """The identity's current or last block."""
        data = self._get(BLOCK_PK, identity_id)
        return _block(data) if data else None

    def create_block(self, block: Block, previous: Block | None, audit: AuditRecord) -> bool:
        """Store ``block`` unless the identity has an active, unexpired one (then ``False``).

        One transaction: the block (conditional), its audit record, the policy version bump (unless
        dry-run) and, for an automatic block, the safety valve's item. ``previous`` is not needed: the
        condition reads the stored block itself.
        """
        if block.status is not BlockStatus.ACTIVE:
            raise ValueError("create_block needs an active block")
        items: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": _serialize(_block_attributes(block)),
                    "ConditionExpression": "attribute_not_exists(pk) OR #status <> :active OR expiresEpoch <= :now",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {
                        ":active": {"S": BlockStatus.ACTIVE.value},
                        ":now": _av(epoch(block.created_at)),
                    },
                }
            },
            self._put_audit(audit),
        ]
        if not block.dry_run:
            items.append(self._bump_desired())
        if block.actor == AUTO:
            valve = {
                "pk": VALVE_PK,
                "sk": f"{iso(block.created_at)}#{block.identity_id}",
                "identityId": block.identity_id,
                "createdAt": iso(block.created_at),
                "ttl": _ttl(block.created_at + VALVE_TTL),
            }
            items.append({"Put": {"TableName": self.table_name, "Item": _serialize(valve)}})
        return self._transact(items)

    def end_block(self, ended: Block, audit: AuditRecord) -> bool:
        """Mark the identity's active block (the same one, by creation time) as ``ended`` says.

        ``False`` if that block is not active any more (ended concurrently, or replaced).
        """
        if ended.status is BlockStatus.ACTIVE:
            raise ValueError("end_block needs an ended block (expired or unblocked)")
        changes = {
            "#status": ended.status.value,
            "endedAt": iso(ended.ended_at) if ended.ended_at else None,
            "endedBy": ended.ended_by,
            "endReason": ended.end_reason,
            "graceUntil": iso(ended.grace_until) if ended.grace_until else None,
            "#ttl": _block_ttl(ended),
        }
        names = {"#status": "status", "#ttl": "ttl"}
        sets: list[str] = []
        removes: list[str] = []
        values: Item = {":active": {"S": BlockStatus.ACTIVE.value}, ":created": _av(epoch(ended.created_at))}
        for n, (name, value) in enumerate(changes.items()):
            if value is None:
                removes.append(name)
            else:
                sets.append(f"{name} = :v{n}")
                values[f":v{n}"] = _av(value)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        items: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": _key(BLOCK_PK, ended.identity_id),
                    "UpdateExpression": expression,
                    "ConditionExpression": "#status = :active AND createdEpoch = :created",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
            self._put_audit(audit),
        ]
        if not ended.dry_run:
            items.append(self._bump_desired())
        return self._transact(items)

    def active_blocks(self, now: datetime) -> list[Block]:
        """Every active, unexpired block, newest first."""
        return self._blocks(
            "#status = :active AND (attribute_not_exists(expiresEpoch) OR expiresEpoch > :now)",
            {":active": BlockStatus.ACTIVE.value, ":now": epoch(now)},
        )

    def expired_blocks(self, now: datetime) -> list[Block]:
        """Blocks still marked active whose expiry has passed, newest first."""
        return self._blocks(
            "#status = :active AND expiresEpoch <= :now", {":active": BlockStatus.ACTIVE.value, ":now": epoch(now)}
        )

    def blocks(self, status: str | None = None) -> list[Block]:
        """Every block record, optionally of one status, newest first."""
        if status is None:
            return self._blocks(None, {})
        return self._blocks("#status = :status", {":status": str(status)})

    def _blocks(self, filter_expression: str | None, values: Mapping[str, Any]) -> list[Block]:
        # The block partition is read whole (with a filter): it holds one item per identity blocked in
        # the last 30 days, which the sweeper reads once a minute anyway.
        items = self._query(
            BLOCK_PK,
            filter_expression=filter_expression,
            names={"#status": "status"} if filter_expression else None,
            values=values,
        )
        return sorted((_block(item) for item in items), key=lambda b: b.created_at, reverse=True)

    def auto_blocks_since(self, since: datetime) -> int:
        """How many automatic blocks were created at or after ``since``."""
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk >= :since",
            "ExpressionAttributeValues": {":pk": {"S": VALVE_PK}, ":since": {"S": iso(since)}},
            "ConsistentRead": True,
            "Select": "COUNT",
        }
        total = 0
        while True:
            page = self.client.query(**arguments)
            total += page.get("Count", 0)
            last = page.get("LastEvaluatedKey")
            if not last:
                return total
            arguments["ExclusiveStartKey"] = last

    # --- allowlist and audit --------------------------------------------------------------------------
    def get_allow(self, identity_id: str) -> AllowEntry | None:
        """The identity's allowlist entry (expired or not: ``AllowEntry.is_active`` decides)."""
        data = self._get(ALLOW_PK, identity_id)
        return _allow(data) if data else None

    def allowlist(self) -> list[AllowEntry]:
        """Every allowlist entry, newest first."""
        return sorted((_allow(item) for item in self._query(ALLOW_PK)), key=lambda e: e.created_at, reverse=True)

    def put_allow(self, entry: AllowEntry, audit: AuditRecord) -> None:
        """Add or replace an allowlist entry, with its audit record."""
        attributes = {
            "pk": ALLOW_PK,
            "sk": entry.identity_id,
            "identityId": entry.identity_id,
            "reason": entry.reason,
            "actor": entry.actor,
            "createdAt": iso(entry.created_at),
            "expiresAt": iso(entry.expires_at) if entry.expires_at else None,
            "ttl": _ttl(entry.expires_at + ALLOW_TTL_SLACK) if entry.expires_at else None,
        }
        put: TransactWriteItemTypeDef = {"Put": {"TableName": self.table_name, "Item": _serialize(attributes)}}
        self._transact([put, self._put_audit(audit)])

    def delete_allow(self, identity_id: str, audit: AuditRecord) -> bool:
        """Remove an allowlist entry, with its audit record (``False`` if there was none; nothing audited)."""
        delete: TransactWriteItemTypeDef = {
            "Delete": {
                "TableName": self.table_name,
                "Key": _key(ALLOW_PK, identity_id),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        return self._transact([delete, self._put_audit(audit)])

    def audit(self, record: AuditRecord) -> None:
        """Append a record to the identity's audit trail."""
        self.client.put_item(TableName=self.table_name, Item=_serialize(self._audit_attributes(record)))

    def history(self, identity_id: str) -> list[AuditRecord]:
        """The identity's audit trail, oldest first (``"*"``: the records about no single identity)."""
        return [_audit(item) for item in self._query(f"audit#{identity_id}")]

    # --- policy version and lockdown ------------------------------------------------------------------
    def policy_versions(self) -> tuple[int, int]:
        """``(desired, applied)``, ``(0, 0)`` before the first change."""
        data = self._get(*POLICY_KEY) or {}
        return int(data.get("desired", 0)), int(data.get("applied", 0))

    def mark_policy_applied(self, version: int) -> bool:
        """Record ``version`` as applied if it is still the desired one and nobody recorded a newer one."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=_key(*POLICY_KEY),
                UpdateExpression="SET applied = :v, desired = if_not_exists(desired, :zero)",
                ConditionExpression=(
                    "(attribute_not_exists(desired) OR desired = :v) "
                    "AND (attribute_not_exists(applied) OR applied <= :v)"
                ),
                ExpressionAttributeValues={":v": {"N": str(version)}, ":zero": {"N": "0"}},
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def bump_policy_version(self) -> int:
        """Ask for the policy to be rewritten; the new desired version."""
        response = self.client.update_item(
            TableName=self.table_name,
            Key=_key(*POLICY_KEY),
            UpdateExpression="ADD desired :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(Decimal(response["Attributes"]["desired"]["N"]))

    def get_lockdown(self) -> Lockdown | None:
        """The guest lockdown in force."""
        data = self._get(*LOCKDOWN_KEY)
        if data is None:
            return None
        return Lockdown(since=_from_iso(data["since"]), actor=data["actor"], reason=data["reason"])

    def set_lockdown(self, lockdown: Lockdown | None, audit: AuditRecord) -> None:
        """Enter (a ``Lockdown``) or leave (``None``) guest lockdown, with the audit record."""
        change: TransactWriteItemTypeDef
        if lockdown is None:
            change = {"Delete": {"TableName": self.table_name, "Key": _key(*LOCKDOWN_KEY)}}
        else:
            attributes = {
                "pk": LOCKDOWN_KEY[0],
                "sk": LOCKDOWN_KEY[1],
                "since": iso(lockdown.since),
                "sinceEpoch": epoch(lockdown.since),
                "actor": lockdown.actor,
                "reason": lockdown.reason,
            }
            change = {"Put": {"TableName": self.table_name, "Item": _serialize(attributes)}}
        self._transact([change, self._put_audit(audit)])

    # --- writing --------------------------------------------------------------------------------------
    def _audit_attributes(self, record: AuditRecord) -> dict[str, Any]:
        return {
            "pk": f"audit#{record.identity_id}",
            # The write time orders records of the same instant as they were written; the random part
            # keeps concurrent writers apart.
            "sk": f"{iso(record.at)}#{time.time_ns():020d}#{uuid.uuid4().hex[:8]}",
            "action": record.action.value,
            "identityId": record.identity_id,
            "actor": record.actor,
            "at": iso(record.at),
            "reason": record.reason,
            "rule": record.rule,
            "appMonitor": record.app_monitor,
            "counts": dict(record.counts),
            "dryRun": record.dry_run,
            "expiresAt": iso(record.expires_at) if record.expires_at else None,
            "ttl": _ttl(record.at + self.audit_retention) if self.audit_retention else None,
        }

    def _put_audit(self, record: AuditRecord) -> TransactWriteItemTypeDef:
        return {"Put": {"TableName": self.table_name, "Item": _serialize(self._audit_attributes(record))}}

    def _bump_desired(self) -> TransactWriteItemTypeDef:
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _key(*POLICY_KEY),
                "UpdateExpression": "ADD desired :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }

    def _transact(self, items: Sequence[TransactWriteItemTypeDef]) -> bool:
        """Write ``items`` atomically: ``True``, or ``False`` if a condition failed (nothing written).

        A cancellation for ``TransactionConflict`` (a concurrent transaction on one of the items, typically
        the policy version) is retried with jittered backoff; any other error is raised.
        """
        for attempt in range(self.transaction_attempts):
            try:
                # The token makes botocore's own retries (after a timeout, say) idempotent: a retry of a
                # transaction that did commit succeeds instead of failing its own condition.
                self.client.transact_write_items(TransactItems=list(items), ClientRequestToken=uuid.uuid4().hex)
            except ClientError as error:
                if _code(error) != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code", "None") for r in error.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    return False
                if "TransactionConflict" not in reasons:
                    raise TransactionError(f"transaction cancelled: {reasons}") from error
                if attempt + 1 == self.transaction_attempts:
                    raise TransactionError(
                        f"transaction still conflicting after {self.transaction_attempts} attempts"
                    ) from error
                self._sleep(self._rng.uniform(0, 0.025 * 2**attempt))
            else:
                return True
        raise AssertionError("unreachable")  # pragma: no cover


# --- reading records --------------------------------------------------------------------------------------
def _block_ttl(block: Block) -> int | None:
    """30 days past the block's end (or expiry, while active), so a repeat offence is recognised.

    An active block without expiry has none: it must never vanish while in force.
    """
    if block.status is BlockStatus.ACTIVE:
        return _ttl(block.expires_at + OFFENCE_MEMORY) if block.expires_at else None
    ends = [t for t in (block.ended_at, block.grace_until, block.created_at) if t is not None]
    return _ttl(max(ends) + OFFENCE_MEMORY)


def _block_attributes(block: Block) -> dict[str, Any]:
    return {
        "pk": BLOCK_PK,
        "sk": block.identity_id,
        "identityId": block.identity_id,
        "appMonitor": block.app_monitor,
        "rule": block.rule,
        "reason": block.reason,
        "actor": block.actor,
        "createdAt": iso(block.created_at),
        "createdEpoch": epoch(block.created_at),
        "expiresAt": iso(block.expires_at) if block.expires_at else None,
        "expiresEpoch": epoch(block.expires_at) if block.expires_at else None,
        "offence": block.offence,
        "dryRun": block.dry_run,
        "counts": dict(block.counts),
        "status": block.status.value,
        "endedAt": iso(block.ended_at) if block.ended_at else None,
        "endedBy": block.ended_by,
        "endReason": block.end_reason,
        "graceUntil": iso(block.grace_until) if block.grace_until else None,
        "ttl": _block_ttl(block),
    }


def _block(data: Mapping[str, Any]) -> Block:
    return Block(
        identity_id=data["identityId"],
        app_monitor=data.get("appMonitor", ""),
        rule=data["rule"],
        reason=data.get("reason", ""),
        actor=data["actor"],
        created_at=_from_iso(data["createdAt"]),
        expires_at=_optional_time(data, "expiresAt"),
        offence=int(data["offence"]),
        dry_run=bool(data.get("dryRun", False)),
        counts={name: int(n) for name, n in data.get("counts", {}).items()},
        status=BlockStatus(data["status"]),
        ended_at=_optional_time(data, "endedAt"),
        ended_by=data.get("endedBy"),
        end_reason=data.get("endReason"),
        grace_until=_optional_time(data, "graceUntil"),
    )


def _allow(data: Mapping[str, Any]) -> AllowEntry:
    return AllowEntry(
        identity_id=data["identityId"],
        reason=data.get("reason", ""),
        actor=data["actor"],
        created_at=_from_iso(data["createdAt"]),
        expires_at=_optional_time(data, "expiresAt"),
    )


def _audit(data: Mapping[str, Any]) -> AuditRecord:
    return AuditRecord(
        action=AuditAction(data["action"]),
        identity_id=data["identityId"],
        actor=data["actor"],
        at=_from_iso(data["at"]),
        reason=data.get("reason", ""),
        rule=data.get("rule"),
        app_monitor=data.get("appMonitor"),
        counts={name: int(n) for name, n in data.get("counts", {}).items()},
        dry_run=bool(data.get("dryRun", False)),
        expires_at=_optional_time(data, "expiresAt"),
    )
