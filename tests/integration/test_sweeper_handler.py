"""The sweeper handler on moto: blocks expire and are announced, and the deny policy is reconciled with the
table in both directions, leaving every policy that is not RUM Guard's alone.

Blocks are made by the real ingest handler (``EVENT_FLOOD_LIMIT=50``, a flood is 51 clicks). The guard reads
the real clock and moto has none to advance, so a block "expires" by being moved back in the table by its
own duration (the ``expire_block`` fixture); the sweeper then finds it past its expiry, as it would an hour
later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from rumguard.adapters.dynamodb import DynamoDecisionStore
from rumguard.decisions import AUTO, AuditAction, Block, BlockStatus
from rumguard.guard import IDENTITY_BLOCKED, IDENTITY_UNBLOCKED, Guard
from rumguard.local.aws import GUEST_MONITOR, GUEST_ROLE_POLICY, EmbeddedAws
from rumguard.local.context import LocalFunction
from rumguard.policy import BLOCKS_POLICY, LOCKDOWN_POLICY, POLICY_PREFIX, SUB_KEY, blocks_document, render

if TYPE_CHECKING:
    from tests.integration.conftest import GuestTraffic

SMALL = {"EVENT_FLOOD_LIMIT": "50"}
SWEEP_DIMENSIONS = {"AppMonitor": "all", "Audience": "guest"}
OPS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "OpsReadOnly", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::ops/*"}
    ],
}


def block_guests(aws: EmbeddedAws, ingest: LocalFunction, traffic: GuestTraffic, count: int) -> list[str]:
    """``count`` new guests, each flooding the guest monitor in one delivery, all blocked by it."""
    guests = [aws.new_guest() for _ in range(count)]
    messages: list[tuple[int, str]] = []
    for n, guest in enumerate(guests):
        messages += traffic.events(guest, clicks=51, at_ms=traffic.start_ms + n * 3, span_ms=30_000)
    assert sorted(traffic.deliver(ingest, messages).value["blocked"]) == sorted(guests)
    assert len(by_type(aws.published_events(), IDENTITY_BLOCKED)) == count
    return guests


def by_type(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    """The details of the RUM Guard events of one detail-type."""
    return [e["detail"] for e in events if e["detail-type"] == detail_type and e["source"] == "rumguard"]


def rumguard_policies(aws: EmbeddedAws) -> dict[str, dict[str, Any]]:
    """The guest role's ``rumguard-deny*`` policies."""
    return {name: doc for name, doc in aws.guest_role_policies().items() if name.startswith(POLICY_PREFIX)}


def active_ids(store: DynamoDecisionStore) -> set[str]:
    """The identities the table says are blocked (and enforced, not dry-run) now."""
    return {b.identity_id for b in store.active_blocks(datetime.now(UTC)) if not b.dry_run}


@pytest.fixture
def ingest(make_ingest: Callable[..., LocalFunction]) -> LocalFunction:
    """The ingest handler with a small event flood limit."""
    return make_ingest(**SMALL)


# --- expiry -----------------------------------------------------------------------------------------------
def test_an_expired_block_is_lifted_and_announced(
    aws: EmbeddedAws,
    ingest: LocalFunction,
    sweeper: LocalFunction,
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    denied: Callable[[], set[str]],
    expire_block: Callable[[str], Block],
) -> None:
    expiring, staying = block_guests(aws, ingest, traffic, 2)
    aged = expire_block(expiring)

    sweep = sweeper.invoke({"id": "sweep-1"})

    summary = sweep.unwrap()
    assert (summary["expired"], summary["unenforced"], summary["converged"]) == ([expiring], [], True)
    assert 0 < summary["policyCapacityUsed"] < 10
    assert denied() == {staying}
    (event,) = by_type(aws.published_events(), IDENTITY_UNBLOCKED)
    assert event["identityId"] == expiring
    assert (event["appMonitor"], event["rule"], event["actor"], event["dryRun"]) == (
        GUEST_MONITOR,
        "event-flood",
        AUTO,
        False,
    )
    assert event["reason"] == "block expired" and event["status"] == "expired"
    assert aged.expires_at is not None and datetime.fromisoformat(event["expiresAt"]) == aged.expires_at
    block = store.get_block(expiring)
    assert block is not None and (block.status, block.ended_by) == (BlockStatus.EXPIRED, AUTO)
    assert [r.action for r in store.history(expiring)] == [AuditAction.BLOCK, AuditAction.EXPIRE]
    assert sweep.output.total("IdentitiesUnblocked", **SWEEP_DIMENSIONS) == 1
    (line,) = sweep.output.log_records(message="rumguard decisions")
    assert line["decisions"]["trigger"] == "sweep-1"

    # A second sweep finds nothing more to do; the last block's expiry removes the policy altogether.
    again = sweeper.invoke({})
    assert again.unwrap()["expired"] == []
    assert aws.published_events() == []
    expire_block(staying)
    assert sweeper.invoke({}).unwrap()["expired"] == [staying]
    assert rumguard_policies(aws) == {}
    assert aws.guest_role_policies() == {"rum-put-events": json.loads(GUEST_ROLE_POLICY)}
    assert active_ids(store) == set()


@pytest.mark.parametrize("rumguard_mode", ["dry-run"])
def test_in_dry_run_expiry_is_announced_and_iam_left_alone(
    aws: EmbeddedAws,
    ingest: LocalFunction,
    sweeper: LocalFunction,
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    expire_block: Callable[[str], Block],
) -> None:
    (guest,) = block_guests(aws, ingest, traffic, 1)
    expire_block(guest)

    assert sweeper.invoke({}).unwrap()["expired"] == [guest]

    (event,) = by_type(aws.published_events(), IDENTITY_UNBLOCKED)
    assert event["identityId"] == guest and event["dryRun"] is True
    assert aws.guest_role_policies() == {"rum-put-events": json.loads(GUEST_ROLE_POLICY)}
    assert aws.identity_exists(guest)
    block = store.get_block(guest)
    assert block is not None and block.status is BlockStatus.EXPIRED


# --- reconciliation ---------------------------------------------------------------------------------------
def test_a_missing_deny_policy_is_rewritten(
    aws: EmbeddedAws,
    ingest: LocalFunction,
    sweeper: LocalFunction,
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    denied: Callable[[], set[str]],
) -> None:
    guests = block_guests(aws, ingest, traffic, 2)
    written = rumguard_policies(aws)
    aws.iam.delete_role_policy(RoleName=aws.guest_role_name, PolicyName=BLOCKS_POLICY)
    assert denied() == set()

    sweep = sweeper.invoke({})

    assert sweep.unwrap()["converged"] is True
    assert rumguard_policies(aws) == written
    assert denied() == set(guests) == active_ids(store)
    assert aws.published_events() == []  # a repair is not a decision


def test_drift_is_repaired_both_ways_and_other_policies_are_left_alone(
    aws: EmbeddedAws,
    ingest: LocalFunction,
    sweeper: LocalFunction,
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    denied: Callable[[], set[str]],
) -> None:
    kept, dropped = block_guests(aws, ingest, traffic, 2)
    stale = aws.new_guest()
    # By hand: the policy loses a blocked id and gains one nobody blocked; a stray RUM Guard policy and
    # someone else's policy appear beside it.
    edited = render(blocks_document([kept, stale]))
    aws.iam.put_role_policy(RoleName=aws.guest_role_name, PolicyName=BLOCKS_POLICY, PolicyDocument=edited)
    stray = render(blocks_document([stale]))
    aws.iam.put_role_policy(RoleName=aws.guest_role_name, PolicyName=f"{POLICY_PREFIX}-old", PolicyDocument=stray)
    ops = json.dumps(OPS_POLICY, indent=2)
    aws.iam.put_role_policy(RoleName=aws.guest_role_name, PolicyName="ops-read-only", PolicyDocument=ops)
    assert denied() == {kept, stale}

    sweep = sweeper.invoke({})

    assert sweep.unwrap()["converged"] is True
    assert denied() == {kept, dropped} == active_ids(store)
    assert set(rumguard_policies(aws)) == {BLOCKS_POLICY}
    listed = rumguard_policies(aws)[BLOCKS_POLICY]["Statement"][0]["Condition"]["StringEquals"][SUB_KEY]
    assert sorted(listed) == sorted([kept, dropped])
    policies = aws.guest_role_policies()
    assert policies["ops-read-only"] == OPS_POLICY
    raw = aws.iam.get_role_policy(RoleName=aws.guest_role_name, PolicyName="ops-read-only")["PolicyDocument"]
    assert (json.loads(raw) if isinstance(raw, str) else raw) == OPS_POLICY
    assert policies["rum-put-events"] == json.loads(GUEST_ROLE_POLICY)
    assert aws.published_events() == []
    assert aws.identity_exists(stale)  # a hand-made deny is not a block: nothing done to the identity


def test_a_deny_policy_without_any_active_block_is_removed(
    aws: EmbeddedAws, sweeper: LocalFunction, denied: Callable[[], set[str]]
) -> None:
    stranger = aws.new_guest()
    aws.iam.put_role_policy(
        RoleName=aws.guest_role_name, PolicyName=BLOCKS_POLICY, PolicyDocument=render(blocks_document([stranger]))
    )

    sweep = sweeper.invoke({})

    summary = sweep.unwrap()
    assert (summary["expired"], summary["unenforced"], summary["converged"]) == ([], [], True)
    assert denied() == set()
    assert aws.guest_role_policies() == {"rum-put-events": json.loads(GUEST_ROLE_POLICY)}


def test_a_missing_lockdown_policy_is_rewritten(
    aws: EmbeddedAws,
    ingest: LocalFunction,
    sweeper: LocalFunction,
    traffic: GuestTraffic,
    guard_for: Callable[[Mapping[str, str]], Guard],
) -> None:
    block_guests(aws, ingest, traffic, 1)
    guard_for(ingest.environ).set_lockdown(True, reason="bot wave", actor="arn:aws:iam::123456789012:user/ops")
    written = rumguard_policies(aws)
    assert set(written) == {BLOCKS_POLICY, LOCKDOWN_POLICY}
    aws.iam.delete_role_policy(RoleName=aws.guest_role_name, PolicyName=LOCKDOWN_POLICY)

    sweeper.invoke({}).unwrap()

    assert rumguard_policies(aws) == written
