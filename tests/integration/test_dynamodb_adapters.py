"""The DynamoDB counter and decision stores against moto, on a table built from template.yaml.

Most tests use moto in process (``mock_aws``). The concurrency tests cannot: moto's in-process DynamoDB
has no locking, so a conditional write is a check and a write with a thread switch possible in between,
an ``ADD`` is a read-modify-write, and ``TransactWriteItems`` snapshots whole tables and restores the
snapshot when it cancels, wiping out what other threads wrote meanwhile. Those tests run against moto's
own server handling one request at a time instead: every request is then atomic, as each DynamoDB request
is, while the adapters' threads really race each other over HTTP.

Answers moto never gives (``TransactionConflict``) are driven through botocore's ``Stubber``.
"""

from __future__ import annotations

import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from rumguard.adapters.dynamodb import (
    PRUNE_MARGIN_MINUTES,
    DynamoCounterStore,
    DynamoDecisionStore,
    TransactionError,
    batch_digest,
    epoch,
    iso,
)
from rumguard.decisions import AUTO, OFFENCE_MEMORY, AllowEntry, AuditAction, AuditRecord, Block, BlockStatus
from rumguard.detection import Counts, window_sum
from rumguard.local.template import table_definition
from rumguard.ports import CounterStore, DecisionStore, Lockdown

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REGION = "us-east-1"
TABLE = "rumguard-test"
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
MINUTE = int(T0.timestamp() // 60)
T = TypeVar("T")
OPERATOR = "arn:aws:sts::123456789012:assumed-role/Operators/alice"


def new_identity() -> str:
    return f"{REGION}:{uuid.uuid4()}"


def create_table(client: DynamoDBClient) -> None:
    client.create_table(**table_definition(TABLE))
    client.get_waiter("table_exists").wait(TableName=TABLE)


@pytest.fixture
def client() -> Iterator[DynamoDBClient]:
    """A fresh moto account (in process) with the RUM Guard table from template.yaml."""
    with mock_aws():
        dynamodb: DynamoDBClient = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb)
        yield dynamodb


class _QuietHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@pytest.fixture
def serial_client() -> Iterator[DynamoDBClient]:
    """moto's server with no request threads: requests are served one at a time, each atomic."""
    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=False,
        request_handler=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    try:
        dynamodb: DynamoDBClient = boto3.client(
            "dynamodb", region_name=REGION, endpoint_url=endpoint, config=Config(max_pool_connections=64)
        )
        create_table(dynamodb)
        yield dynamodb
    finally:
        # moto's state is process-wide: leave none behind for the next test.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def counters(client: DynamoDBClient) -> DynamoCounterStore:
    return DynamoCounterStore(client, TABLE, clock=lambda: T0.timestamp())


@pytest.fixture
def store(client: DynamoDBClient) -> DynamoDecisionStore:
    return DynamoDecisionStore(client, TABLE)


def raw_item(client: DynamoDBClient, pk: str, sk: str) -> dict[str, Any]:
    item = client.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
    return dict(item.get("Item", {}))


def make_block(
    identity: str,
    at: datetime = T0,
    *,
    duration: timedelta | None = timedelta(hours=1),
    actor: str = AUTO,
    dry_run: bool = False,
    offence: int = 1,
) -> Block:
    return Block(
        identity_id=identity,
        app_monitor="RetailDemoStore_Unauthenticated",
        rule="event-flood" if actor == AUTO else "manual",
        reason="1500 events in 5 min (limit 1000): event-flood",
        actor=actor,
        created_at=at,
        expires_at=at + duration if duration is not None else None,
        offence=offence,
        dry_run=dry_run,
        counts={"event-flood": 1500, "junk": 30} if actor == AUTO else {},
    )


def block_audit(block: Block) -> AuditRecord:
    return AuditRecord(
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


def end_audit(ended: Block) -> AuditRecord:
    action = AuditAction.EXPIRE if ended.status is BlockStatus.EXPIRED else AuditAction.UNBLOCK
    assert ended.ended_at is not None and ended.ended_by is not None
    return AuditRecord(action, ended.identity_id, ended.ended_by, ended.ended_at, ended.end_reason or "")


def test_the_adapters_implement_the_ports(client: DynamoDBClient) -> None:
    counter_port: CounterStore = DynamoCounterStore(client, TABLE)
    decision_port: DecisionStore = DynamoDecisionStore(client, TABLE)
    assert counter_port is not None and decision_port is not None


# --- counters ---------------------------------------------------------------------------------------------
def test_counts_add_up_in_minute_buckets_with_one_write_per_identity(
    client: DynamoDBClient, counters: DynamoCounterStore
) -> None:
    x, y = new_identity(), new_identity()

    first = counters.record("batch-1", {x: (MINUTE, Counts(3, 1, 2, 0, 0))}, 10)
    assert first == {x: {MINUTE: Counts(3, 1, 2, 0, 0)}}

    second = counters.record("batch-2", {x: (MINUTE, Counts(2, 0, 1, 1, 4)), y: (MINUTE + 1, Counts(1))}, 10)
    assert second == {x: {MINUTE: Counts(5, 1, 3, 1, 4)}, y: {MINUTE + 1: Counts(1)}}

    # Another invocation (its own store) adds to the same item: ADD on the server, no read-modify-write here.
    other = DynamoCounterStore(client, TABLE)
    third = other.record("batch-3", {x: (MINUTE + 1, Counts(7, 0, 0, 0, 0))}, 10)
    assert third == {x: {MINUTE: Counts(5, 1, 3, 1, 4), MINUTE + 1: Counts(7)}}
    assert counters.buckets(x) == third[x]

    assert (counters.writes, counters.duplicates, counters.reads) == (3, 0, 0)
    item = raw_item(client, f"counter#{x}", "window")
    assert item[f"b_{MINUTE}"]["SS"] and sorted(item[f"b_{MINUTE}"]["SS"]) == sorted(
        [batch_digest("batch-1"), batch_digest("batch-2")]
    )
    # Zero counters are never written; the TTL follows the last write.
    assert f"s_{MINUTE + 1}" not in item and f"e_{MINUTE + 1}" in item
    assert int(item["ttl"]["N"]) > T0.timestamp() + 10 * 60


def test_a_redelivered_batch_never_counts_twice_even_after_a_partial_failure(counters: DynamoCounterStore) -> None:
    x, y, z = new_identity(), new_identity(), new_identity()
    counters.record("batch-0", {x: (MINUTE, Counts(1, 1, 1, 0, 0))}, 10)
    # Batch A's first attempt got through x and y, then the invocation died before z.
    first = counters.record("batch-A", {x: (MINUTE, Counts(10, 0, 5, 0, 0)), y: (MINUTE, Counts(4))}, 10)
    assert first == {x: {MINUTE: Counts(11, 1, 6, 0, 0)}, y: {MINUTE: Counts(4)}}

    # The redelivery holds every identity of the batch.
    again = counters.record(
        "batch-A",
        {x: (MINUTE, Counts(10, 0, 5, 0, 0)), y: (MINUTE, Counts(4)), z: (MINUTE, Counts(2, 1, 0, 0, 0))},
        10,
    )
    assert again == {x: {MINUTE: Counts(11, 1, 6, 0, 0)}, y: {MINUTE: Counts(4)}, z: {MINUTE: Counts(2, 1, 0, 0, 0)}}
    assert (counters.writes, counters.duplicates, counters.reads) == (6, 2, 2)

    # The same batch key still counts for an identity it had not counted yet, and a new batch counts again.
    assert counters.record("batch-B", {x: (MINUTE, Counts(1))}, 10)[x][MINUTE] == Counts(12, 1, 6, 0, 0)


def test_stale_minutes_are_pruned_and_leftovers_stay_outside_every_window(
    client: DynamoDBClient, counters: DynamoCounterStore
) -> None:
    x = new_identity()
    keep = 5
    for offset in range(keep):
        counters.record(f"batch-{offset}", {x: (MINUTE + offset, Counts(offset + 1))}, keep)
    assert sorted(counters.buckets(x)) == [MINUTE + n for n in range(keep)]

    # Minute MINUTE + 5 pushes MINUTE out of the 5-minute window: it goes, with its batch set.
    buckets = counters.record("batch-5", {x: (MINUTE + keep, Counts(100))}, keep)
    assert sorted(buckets[x]) == [MINUTE + n for n in range(1, keep + 1)]
    item = raw_item(client, f"counter#{x}", "window")
    assert f"e_{MINUTE}" not in item and f"b_{MINUTE}" not in item and f"b_{MINUTE + 1}" in item

    # After a silence longer than the margin, old buckets are left behind (TTL takes them) but never summed.
    later = MINUTE + keep + PRUNE_MARGIN_MINUTES + 30
    buckets = counters.record("batch-late", {x: (later, Counts(3))}, keep)
    assert MINUTE + 1 in buckets[x]
    assert window_sum(buckets[x], later, keep) == Counts(3)


def test_hundreds_of_identities_in_one_batch(client: DynamoDBClient) -> None:
    store = DynamoCounterStore(client, TABLE, max_workers=16)
    activity = {new_identity(): (MINUTE + n % 3, Counts(n + 1, n % 2, 1, 0, 0)) for n in range(200)}

    buckets = store.record("big-batch", activity, 10)

    assert store.writes == 200
    assert buckets == {identity: {minute: counts} for identity, (minute, counts) in activity.items()}
    again = store.record("big-batch", activity, 10)
    assert again == buckets and store.duplicates == 200


def test_counter_arguments_are_checked(counters: DynamoCounterStore) -> None:
    with pytest.raises(ValueError, match="keep_minutes"):
        counters.record("k", {new_identity(): (MINUTE, Counts(1))}, 0)
    with pytest.raises(ValueError, match="batch key"):
        counters.record("", {new_identity(): (MINUTE, Counts(1))}, 5)
    with pytest.raises(ValueError, match="epoch"):
        counters.record("k", {new_identity(): (MINUTE, Counts(1)), new_identity(): (-1, Counts(1))}, 5)
    assert counters.writes == 0
    assert counters.record("k", {}, 5) == {}


# --- blocks -----------------------------------------------------------------------------------------------
def test_a_block_round_trips_every_field(store: DynamoDecisionStore) -> None:
    identity = new_identity()
    block = replace(make_block(identity, offence=3), app_monitor="")

    assert store.create_block(block, None, block_audit(block))

    assert store.get_block(identity) == block
    assert store.get_block(new_identity()) is None


def test_one_active_block_per_identity(client: DynamoDBClient, store: DynamoDecisionStore) -> None:
    identity = new_identity()
    first = make_block(identity)
    second = make_block(identity, T0 + timedelta(minutes=10), offence=2)

    assert store.create_block(first, None, block_audit(first)) is True
    assert store.create_block(second, first, block_audit(second)) is False

    # The refused transaction wrote nothing: no audit record, no version bump, no valve count.
    assert store.get_block(identity) == first
    assert [r.action for r in store.history(identity)] == [AuditAction.BLOCK]
    assert store.policy_versions() == (1, 0)
    assert store.auto_blocks_since(T0 - timedelta(hours=1)) == 1
    assert int(raw_item(client, "block", identity)["ttl"]["N"]) == int(
        (first.created_at + timedelta(hours=1) + OFFENCE_MEMORY).timestamp()
    )


def test_a_new_block_once_the_last_one_expired(store: DynamoDecisionStore) -> None:
    identity = new_identity()
    first = make_block(identity)
    assert store.create_block(first, None, block_audit(first))

    # Still marked active (the sweeper has not run), but past its expiry.
    at_expiry = make_block(identity, T0 + timedelta(hours=1), offence=2)
    assert store.create_block(at_expiry, first, block_audit(at_expiry))

    assert store.get_block(identity) == at_expiry
    assert store.policy_versions() == (2, 0)
    assert [r.action for r in store.history(identity)] == [AuditAction.BLOCK, AuditAction.BLOCK]


def test_a_block_without_expiry_holds_until_ended(client: DynamoDBClient, store: DynamoDecisionStore) -> None:
    identity = new_identity()
    forever = make_block(identity, duration=None, actor=OPERATOR)
    assert store.create_block(forever, None, block_audit(forever))
    later = make_block(identity, T0 + timedelta(days=365), actor=OPERATOR)
    assert not store.create_block(later, forever, block_audit(later))
    assert "ttl" not in raw_item(client, "block", identity)


def test_end_block(client: DynamoDBClient, store: DynamoDecisionStore) -> None:
    identity = new_identity()
    block = make_block(identity)
    assert store.create_block(block, None, block_audit(block))
    now = T0 + timedelta(minutes=20)
    ended = block.ended(BlockStatus.UNBLOCKED, now, OPERATOR, "false positive", timedelta(hours=1))

    assert store.end_block(ended, end_audit(ended)) is True
    assert store.get_block(identity) == ended
    assert store.policy_versions() == (2, 0)
    assert int(raw_item(client, "block", identity)["ttl"]["N"]) == int(
        (now + timedelta(hours=1) + OFFENCE_MEMORY).timestamp()
    )
    # Ending it again, or expiring it afterwards, finds it no longer active.
    assert store.end_block(ended, end_audit(ended)) is False
    expired = block.ended(BlockStatus.EXPIRED, T0 + timedelta(hours=1), AUTO, "block expired", None)
    assert store.end_block(expired, end_audit(expired)) is False
    assert store.get_block(identity) == ended
    assert [r.action for r in store.history(identity)] == [AuditAction.BLOCK, AuditAction.UNBLOCK]
    assert store.policy_versions() == (2, 0)


def test_end_block_only_ends_the_same_block(store: DynamoDecisionStore) -> None:
    identity = new_identity()
    old = make_block(identity)
    assert store.create_block(old, None, block_audit(old))
    new = make_block(identity, T0 + timedelta(hours=2), offence=2)
    assert store.create_block(new, old, block_audit(new))

    # A sweeper that read the old block late must not end the new one.
    stale = old.ended(BlockStatus.EXPIRED, T0 + timedelta(hours=2, seconds=1), AUTO, "block expired", None)
    assert store.end_block(stale, end_audit(stale)) is False
    assert store.get_block(identity) == new


def test_a_dry_run_block_changes_no_policy_version_but_counts_for_the_valve(store: DynamoDecisionStore) -> None:
    identity = new_identity()
    block = make_block(identity, dry_run=True)
    assert store.create_block(block, None, block_audit(block))
    assert store.policy_versions() == (0, 0)
    assert store.auto_blocks_since(T0) == 1
    ended = block.ended(BlockStatus.EXPIRED, T0 + timedelta(hours=1), AUTO, "block expired", None)
    assert store.end_block(ended, end_audit(ended))
    assert store.policy_versions() == (0, 0)
    assert store.history(identity)[0].dry_run


def test_block_listings_newest_first(store: DynamoDecisionStore) -> None:
    now = T0 + timedelta(hours=2)
    ids = {name: new_identity() for name in ("old_active", "new_active", "expired", "unblocked", "forever", "dry")}
    blocks = {
        "old_active": make_block(ids["old_active"], T0 + timedelta(minutes=70)),
        "new_active": make_block(ids["new_active"], T0 + timedelta(minutes=110)),
        "expired": make_block(ids["expired"], T0),
        "unblocked": make_block(ids["unblocked"], T0 + timedelta(minutes=90)),
        "forever": make_block(ids["forever"], T0 + timedelta(minutes=5), duration=None, actor=OPERATOR),
        "dry": make_block(ids["dry"], T0 + timedelta(minutes=100), dry_run=True),
    }
    for block in blocks.values():
        assert store.create_block(block, None, block_audit(block))
    unblocked = blocks["unblocked"].ended(BlockStatus.UNBLOCKED, now, OPERATOR, "sorry", None)
    assert store.end_block(unblocked, end_audit(unblocked))
    blocks["unblocked"] = unblocked

    assert store.active_blocks(now) == [blocks[n] for n in ("new_active", "dry", "old_active", "forever")]
    assert store.expired_blocks(now) == [blocks["expired"]]
    assert store.blocks(BlockStatus.UNBLOCKED) == [unblocked]
    assert store.blocks("active") == [blocks[n] for n in ("new_active", "dry", "old_active", "forever", "expired")]
    assert store.blocks() == sorted(blocks.values(), key=lambda b: b.created_at, reverse=True)
    # Exactly at the expiry a block is expired, not active.
    edge = blocks["old_active"].expires_at
    assert edge is not None
    assert blocks["old_active"] in store.expired_blocks(edge) and blocks["old_active"] not in store.active_blocks(edge)


def test_the_block_partition_is_read_past_one_page(client: DynamoDBClient, store: DynamoDecisionStore) -> None:
    # Query pages end at 1 MB: big reasons make a few dozen blocks span several pages.
    for n in range(40):
        block = replace(make_block(new_identity(), T0 + timedelta(seconds=n)), reason="x" * 60_000)
        assert store.create_block(block, None, block_audit(block))
    first_page = client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "block"}},
    )
    assert "LastEvaluatedKey" in first_page
    assert len(store.blocks()) == 40


def test_the_safety_valve_counts_automatic_blocks_by_time(store: DynamoDecisionStore) -> None:
    for offset, actor in ((0, AUTO), (1, AUTO), (2, OPERATOR), (3, AUTO)):
        block = make_block(new_identity(), T0 + timedelta(minutes=offset), actor=actor)
        assert store.create_block(block, None, block_audit(block))

    assert store.auto_blocks_since(T0 - timedelta(minutes=5)) == 3
    assert store.auto_blocks_since(T0) == 3
    assert store.auto_blocks_since(T0 + timedelta(microseconds=1)) == 2
    assert store.auto_blocks_since(T0 + timedelta(minutes=1)) == 2
    assert store.auto_blocks_since(T0 + timedelta(minutes=2)) == 1
    assert store.auto_blocks_since(T0 + timedelta(minutes=3, microseconds=1)) == 0


# --- allowlist, audit -------------------------------------------------------------------------------------
def test_allowlist_entries_with_and_without_expiry(client: DynamoDBClient, store: DynamoDecisionStore) -> None:
    identity = new_identity()
    expires = T0 + timedelta(days=7)
    entry = AllowEntry(identity, "QA load test", OPERATOR, T0, expires)

    store.put_allow(entry, AuditRecord(AuditAction.ALLOW, identity, OPERATOR, T0, "QA load test", expires_at=expires))
    assert store.get_allow(identity) == entry
    assert int(raw_item(client, "allow", identity)["ttl"]["N"]) == int((expires + timedelta(days=1)).timestamp())

    forever = AllowEntry(identity, "our own monitoring", OPERATOR, T0 + timedelta(hours=1))
    store.put_allow(forever, AuditRecord(AuditAction.ALLOW, identity, OPERATOR, forever.created_at, forever.reason))
    assert store.get_allow(identity) == forever
    assert "ttl" not in raw_item(client, "allow", identity)
    assert store.allowlist() == [forever]

    removed = AuditRecord(AuditAction.DISALLOW, identity, OPERATOR, T0 + timedelta(hours=2), "done")
    assert store.delete_allow(identity, removed) is True
    assert store.get_allow(identity) is None
    assert store.delete_allow(identity, removed) is False
    assert [r.action for r in store.history(identity)] == [AuditAction.ALLOW, AuditAction.ALLOW, AuditAction.DISALLOW]


def test_history_is_oldest_first_and_keeps_every_field(client: DynamoDBClient, store: DynamoDecisionStore) -> None:
    identity = new_identity()
    records = [
        AuditRecord(
            AuditAction.REFUSE_FORGED,
            identity,
            AUTO,
            T0 + timedelta(minutes=5),
            "unknown to the identity pool",
            rule="junk",
            app_monitor="RetailDemoStore_Unauthenticated",
            counts={"junk": 40},
            dry_run=True,
        ),
        AuditRecord(AuditAction.ALLOW, identity, OPERATOR, T0, "first", expires_at=T0 + timedelta(days=1)),
        # Same instant as the next one: they stay in the order they were written.
        AuditRecord(AuditAction.ALLOW, identity, OPERATOR, T0 + timedelta(minutes=9), "then allowed"),
        AuditRecord(AuditAction.UNBLOCK, identity, OPERATOR, T0 + timedelta(minutes=9), "allowlisted: then allowed"),
    ]
    for record in records:
        store.audit(record)
    store.audit(AuditRecord(AuditAction.BLOCK, new_identity(), AUTO, T0, "someone else"))

    assert store.history(identity) == [records[1], records[0], records[2], records[3]]
    assert store.history(new_identity()) == []
    stored = client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"audit#{identity}"}},
    )["Items"][0]
    assert stored["sk"]["S"].startswith(iso(T0) + "#")
    assert int(stored["ttl"]["N"]) == int((T0 + timedelta(days=400)).timestamp())


def test_audit_records_can_be_kept_forever(client: DynamoDBClient) -> None:
    store = DynamoDecisionStore(client, TABLE, audit_retention=None)
    identity = new_identity()
    store.audit(AuditRecord(AuditAction.BLOCK, identity, AUTO, T0, "kept"))
    items = client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"audit#{identity}"}},
    )["Items"]
    assert len(items) == 1 and "ttl" not in items[0]


# --- policy version and lockdown --------------------------------------------------------------------------
def test_policy_versions(store: DynamoDecisionStore) -> None:
    assert store.policy_versions() == (0, 0)
    assert store.mark_policy_applied(0) is True  # nothing asked yet: version 0 is current
    assert store.policy_versions() == (0, 0)

    assert store.bump_policy_version() == 1
    assert store.bump_policy_version() == 2
    assert store.mark_policy_applied(1) is False  # stale: version 2 is wanted
    assert store.mark_policy_applied(3) is False  # newer than anything asked for
    assert store.policy_versions() == (2, 0)

    assert store.mark_policy_applied(2) is True
    assert store.mark_policy_applied(2) is True  # a second writer of the same version
    assert store.policy_versions() == (2, 2)

    block = make_block(new_identity())
    assert store.create_block(block, None, block_audit(block))
    assert store.policy_versions() == (3, 2)
    assert store.mark_policy_applied(2) is False
    assert store.mark_policy_applied(3) is True
    assert store.policy_versions() == (3, 3)


def test_lockdown_set_and_clear(store: DynamoDecisionStore) -> None:
    assert store.get_lockdown() is None
    lockdown = Lockdown(since=T0, actor=AUTO, reason="block storm")

    store.set_lockdown(lockdown, AuditRecord(AuditAction.LOCKDOWN_ON, "*", AUTO, T0, "block storm"))
    assert store.get_lockdown() == lockdown

    later = T0 + timedelta(hours=1)
    store.set_lockdown(None, AuditRecord(AuditAction.LOCKDOWN_OFF, "*", OPERATOR, later, "storm over"))
    assert store.get_lockdown() is None
    store.set_lockdown(None, AuditRecord(AuditAction.LOCKDOWN_OFF, "*", OPERATOR, later, "again"))
    assert [r.action for r in store.history("*")] == [
        AuditAction.LOCKDOWN_ON,
        AuditAction.LOCKDOWN_OFF,
        AuditAction.LOCKDOWN_OFF,
    ]


def test_naive_datetimes_are_refused(store: DynamoDecisionStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.active_blocks(datetime(2026, 1, 1))


# --- transaction conflicts (answers moto never gives) -----------------------------------------------------
def _conflict(stubber: Stubber, reasons: list[str]) -> None:
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message="Transaction cancelled",
        http_status_code=400,
        modeled_fields={"CancellationReasons": [{"Code": code} for code in reasons]},
    )


def test_a_conflicting_transaction_is_retried() -> None:
    client: DynamoDBClient = boto3.client("dynamodb", region_name=REGION)
    sleeps: list[float] = []
    store = DynamoDecisionStore(client, TABLE, transaction_attempts=3, sleep=sleeps.append)
    block = make_block(new_identity())
    with Stubber(client) as stubber:
        _conflict(stubber, ["None", "None", "TransactionConflict", "None"])
        stubber.add_response("transact_write_items", {})
        assert store.create_block(block, None, block_audit(block)) is True
        stubber.assert_no_pending_responses()
    assert len(sleeps) == 1

    with Stubber(client) as stubber:
        for _ in range(3):
            _conflict(stubber, ["None", "None", "TransactionConflict", "None"])
        with pytest.raises(TransactionError, match="3 attempts"):
            store.create_block(block, None, block_audit(block))
    with Stubber(client) as stubber:
        _conflict(stubber, ["ConditionalCheckFailed", "None", "None", "None"])
        assert store.create_block(block, None, block_audit(block)) is False
    with Stubber(client) as stubber:
        _conflict(stubber, ["None", "ValidationError", "None", "None"])
        with pytest.raises(TransactionError, match="ValidationError"):
            store.create_block(block, None, block_audit(block))


# --- concurrency (moto's server, one request at a time) ---------------------------------------------------
def race(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls on their own threads, released together; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_eight_concurrent_creators_make_exactly_one_block(serial_client: DynamoDBClient) -> None:
    store = DynamoDecisionStore(serial_client, TABLE)
    for round_ in range(5):
        identity = new_identity()
        candidates = [make_block(identity, T0 + timedelta(microseconds=n)) for n in range(8)]

        def create(block: Block) -> bool:
            return store.create_block(block, None, block_audit(block))

        results = race([partial(create, block) for block in candidates])

        assert results.count(True) == 1, f"round {round_}: {results}"
        winner = candidates[results.index(True)]
        assert store.get_block(identity) == winner
        assert store.history(identity) == [block_audit(winner)]
        assert store.policy_versions()[0] == round_ + 1
    assert store.auto_blocks_since(T0) == 5


def test_concurrent_counter_writers_lose_no_increment(serial_client: DynamoDBClient) -> None:
    identities = [new_identity() for _ in range(5)]
    writers = 8
    batches = 4

    def invocation(writer: int) -> None:
        store = DynamoCounterStore(serial_client, TABLE, max_workers=4)
        for batch in range(batches):
            key = f"w{writer}-b{batch}"
            activity = {identity: (MINUTE, Counts(1, 0, 1, 0, 0)) for identity in identities}
            store.record(key, activity, 10)
            # Every batch is also redelivered once, possibly racing its first delivery.
            store.record(key, activity, 10)

    race([partial(invocation, writer) for writer in range(writers)])

    reader = DynamoCounterStore(serial_client, TABLE)
    for identity in identities:
        assert reader.buckets(identity) == {MINUTE: Counts(writers * batches, 0, writers * batches, 0, 0)}


def test_epoch_numbers_are_exact() -> None:
    assert epoch(T0) == Decimal(int(T0.timestamp())) + Decimal("0.123456")
    assert epoch(datetime(1970, 1, 1, tzinfo=UTC)) == 0
