"""The decision service's brakes and exceptions, through the real ingest handler on moto.

Escalation, allowlist, grace period, dry-run, the safety valve (and guest lockdown), forged identities and
the packing of the deny policy at IAM's size limit. Thresholds are small here (``EVENT_FLOOD_LIMIT=50``, a
flood is 51 clicks) to keep the tests fast; ``test_detection_rules`` covers every rule at its default.

Two facts of enforce mode shape these tests. A block deletes the identity from the pool, and an automatic
block needs ``DescribeIdentity`` to find it, so in enforce mode a blocked identity can never offend again:
its later traffic is refused as forged. Escalation and the grace period therefore show in dry-run mode,
where identities stay in the pool (in enforce mode they matter only for an identity whose deletion failed,
which moto cannot be made to do without patching RUM Guard's own adapter); a test below shows the
enforce-mode side. And the operator's calls (allow, unblock) use ``aws_guard``, as the API does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from rumguard.adapters.dynamodb import DynamoCounterStore, DynamoDecisionStore
from rumguard.adapters.iam import IamGuestRole, PolicyLimitExceededError
from rumguard.decisions import AUTO, AuditAction, Block, BlockStatus
from rumguard.guard import BLOCK_STORM, IDENTITY_BLOCKED, IDENTITY_UNBLOCKED, LOCKDOWN_CHANGED, Guard
from rumguard.local.aws import GUEST_MONITOR, GUEST_ROLE_POLICY, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.context import Invocation, LocalFunction
from rumguard.local.iam import ROLE_INLINE_LIMIT
from rumguard.policy import BLOCKS_POLICY, LOCKDOWN_POLICY, POLICY_PREFIX, blocks_document, policy_size, render

if TYPE_CHECKING:
    from tests.integration.conftest import GuestTraffic

SMALL = {"EVENT_FLOOD_LIMIT": "50"}
FLOOD = 51
GUEST_DIMENSIONS = {"AppMonitor": GUEST_MONITOR, "Audience": "guest"}
OPERATOR = "arn:aws:iam::123456789012:user/operator"
DRY_RUN = pytest.mark.parametrize("rumguard_mode", ["dry-run"])


def by_type(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    """The details of the events of one detail-type."""
    return [e["detail"] for e in events if e["detail-type"] == detail_type and e["source"] == "rumguard"]


def decisions_line(invocation: Invocation) -> dict[str, Any]:
    """The invocation's ``rumguard decisions`` log line (its ``decisions`` summary)."""
    (line,) = invocation.output.log_records(message="rumguard decisions")
    summary: dict[str, Any] = line["decisions"]
    return summary


def role_total(aws: EmbeddedAws) -> int:
    """The guest role's inline policies together, as IAM counts them (whitespace not counted)."""
    names = aws.iam.list_role_policies(RoleName=aws.guest_role_name)["PolicyNames"]
    return sum(
        policy_size(
            json.dumps(aws.iam.get_role_policy(RoleName=aws.guest_role_name, PolicyName=name)["PolicyDocument"])
        )
        for name in names
    )


def floods(traffic: GuestTraffic, identities: list[str], at_ms: int | None = None) -> list[tuple[int, str]]:
    """One flood (51 clicks, over the small limit) per identity, interleaved in time."""
    start = traffic.start_ms if at_ms is None else at_ms
    out: list[tuple[int, str]] = []
    for n, identity in enumerate(identities):
        out += traffic.events(identity, clicks=FLOOD, at_ms=start + n * 7, span_ms=30_000)
    return out


# --- escalation -------------------------------------------------------------------------------------------
@DRY_RUN
def test_a_repeat_offender_is_blocked_twice_as_long_each_time(
    aws: EmbeddedAws,
    make_ingest: Callable[..., LocalFunction],
    sweeper: LocalFunction,
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    expire_block: Callable[[str], Block],
) -> None:
    ingest = make_ingest(**SMALL, BLOCK_BASE_SECONDS="600", BLOCK_JITTER="0.1")
    guest = aws.new_guest()
    base = timedelta(seconds=600)
    durations: list[timedelta] = []
    for offence in (1, 2, 3):
        invocation = traffic.deliver(ingest, floods(traffic, [guest], traffic.start_ms + offence * 60_000))
        assert invocation.value["blocked"] == [guest], offence
        block = store.get_block(guest)
        assert block is not None and block.expires_at is not None
        assert (block.offence, block.status, block.dry_run) == (offence, BlockStatus.ACTIVE, True)
        (event,) = by_type(aws.published_events(), IDENTITY_BLOCKED)
        assert event["offence"] == offence
        assert datetime.fromisoformat(event["expiresAt"]) == block.expires_at
        durations.append(block.expires_at - block.created_at)
        # Let it run out, and the sweeper end it, before the next offence.
        expire_block(guest)
        assert sweeper.invoke({}).unwrap()["expired"] == [guest]

    assert durations[0] == base
    assert base * 2 * 0.9 <= durations[1] <= base * 2 * 1.1
    assert base * 4 * 0.9 <= durations[2] <= base * 4 * 1.1
    assert [r.action for r in store.history(guest)] == [AuditAction.BLOCK, AuditAction.EXPIRE] * 3


def test_in_enforce_mode_a_blocked_identity_cannot_offend_again(
    aws: EmbeddedAws,
    make_ingest: Callable[..., LocalFunction],
    sweeper: LocalFunction,
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    expire_block: Callable[[str], Block],
) -> None:
    """Why escalation shows in dry-run: the first block deleted the identity, so its id is now forged."""
    ingest = make_ingest(**SMALL)
    guest = aws.new_guest()
    assert traffic.deliver(ingest, floods(traffic, [guest])).value["blocked"] == [guest]
    expire_block(guest)
    sweeper.invoke({}).unwrap()

    again = traffic.deliver(ingest, floods(traffic, [guest], traffic.start_ms + 120_000))

    assert again.value["blocked"] == []
    assert again.value["forged"] == [guest]
    block = store.get_block(guest)
    assert block is not None and (block.offence, block.status) == (1, BlockStatus.EXPIRED)


# --- allowlist and grace ----------------------------------------------------------------------------------
def test_an_allowlisted_identity_is_left_alone_until_its_entry_expires(
    aws: EmbeddedAws,
    make_ingest: Callable[..., LocalFunction],
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    denied: Callable[[], set[str]],
    guard_for: Callable[[Mapping[str, str]], Guard],
) -> None:
    ingest = make_ingest(**SMALL)
    guard = guard_for(ingest.environ)
    allowed, lapsed, other = aws.new_guest(), aws.new_guest(), aws.new_guest()
    guard.allow(allowed, reason="the QA team's load test", actor=OPERATOR)
    lapse = datetime.now(UTC) + timedelta(milliseconds=300)
    guard.allow(lapsed, reason="yesterday's load test", actor=OPERATOR, expires_at=lapse)
    time.sleep(max(0.0, (lapse - datetime.now(UTC)).total_seconds()) + 0.05)

    invocation = traffic.deliver(ingest, floods(traffic, [allowed, lapsed, other]))

    assert sorted(invocation.value["blocked"]) == sorted([lapsed, other])
    assert decisions_line(invocation)["skipped"] == {allowed: "allowlisted"}
    assert denied() == {lapsed, other}
    assert aws.identity_exists(allowed)
    assert not aws.identity_exists(lapsed)
    assert store.get_block(allowed) is None
    assert [r.action for r in store.history(allowed)] == [AuditAction.ALLOW]
    assert {e["identityId"] for e in by_type(aws.published_events(), IDENTITY_BLOCKED)} == {lapsed, other}


@DRY_RUN
def test_a_manual_unblock_grants_a_grace_period(
    aws: EmbeddedAws,
    make_ingest: Callable[..., LocalFunction],
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    guard_for: Callable[[Mapping[str, str]], Guard],
) -> None:
    ingest = make_ingest(**SMALL)
    guard = guard_for(ingest.environ)
    forgiven, ungraced = aws.new_guest(), aws.new_guest()
    assert sorted(traffic.deliver(ingest, floods(traffic, [forgiven, ungraced])).value["blocked"]) == sorted(
        [forgiven, ungraced]
    )
    ended = guard.unblock(forgiven, reason="a customer on a slow network", actor=OPERATOR)
    guard.unblock(ungraced, reason="testing without grace", actor=OPERATOR, grace=False)
    assert ended.grace_until is not None and ended.ended_at is not None
    assert ended.grace_until - ended.ended_at == timedelta(hours=1)  # GRACE_SECONDS' default
    unblocked = by_type(aws.published_events(), IDENTITY_UNBLOCKED)
    assert {(e["identityId"], e["actor"]) for e in unblocked} == {(forgiven, OPERATOR), (ungraced, OPERATOR)}

    # Both keep flooding, a minute later: only the one without grace is blocked again.
    again = traffic.deliver(ingest, floods(traffic, [forgiven, ungraced], traffic.start_ms + 60_000))

    assert again.value["blocked"] == [ungraced]
    assert decisions_line(again)["skipped"] == {forgiven: "in grace period after a manual unblock"}
    block = store.get_block(forgiven)
    assert block is not None and block.status is BlockStatus.UNBLOCKED
    repeat = store.get_block(ungraced)
    assert repeat is not None and (repeat.status, repeat.offence) == (BlockStatus.ACTIVE, 2)


# --- dry-run ----------------------------------------------------------------------------------------------
@DRY_RUN
def test_dry_run_records_and_reports_but_leaves_iam_and_cognito_alone(
    aws: EmbeddedAws, make_ingest: Callable[..., LocalFunction], traffic: GuestTraffic, store: DynamoDecisionStore
) -> None:
    ingest = make_ingest(**SMALL)
    guest = aws.new_guest()
    policies_before = aws.guest_role_policies()

    invocation = traffic.deliver(ingest, floods(traffic, [guest]))

    assert invocation.value["blocked"] == [guest]
    assert invocation.output.total("IdentitiesBlocked", **GUEST_DIMENSIONS) == 1
    block = store.get_block(guest)
    assert block is not None and block.dry_run and block.status is BlockStatus.ACTIVE
    (audit,) = store.history(guest)
    assert audit.action is AuditAction.BLOCK and audit.dry_run
    (event,) = by_type(aws.published_events(), IDENTITY_BLOCKED)
    assert event["identityId"] == guest and event["dryRun"] is True and event["actor"] == AUTO
    # Nothing changed in IAM or Cognito.
    assert aws.guest_role_policies() == policies_before == {"rum-put-events": json.loads(GUEST_ROLE_POLICY)}
    assert aws.identity_exists(guest)
    pool = aws.cognito.describe_identity_pool(IdentityPoolId=aws.identity_pool_id)
    assert pool["AllowUnauthenticatedIdentities"] is True


# --- the safety valve -------------------------------------------------------------------------------------
def test_the_safety_valve_stops_automatic_blocking_past_its_limit(
    aws: EmbeddedAws,
    make_ingest: Callable[..., LocalFunction],
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    denied: Callable[[], set[str]],
) -> None:
    ingest = make_ingest(**SMALL, SAFETY_VALVE_LIMIT="2")
    bots = [aws.new_guest() for _ in range(3)]

    invocation = traffic.deliver(ingest, floods(traffic, bots))

    blocked = invocation.value["blocked"]
    (spared,) = set(bots) - set(blocked)
    assert len(blocked) == 2
    assert denied() == set(blocked)
    assert aws.identity_exists(spared)
    assert store.get_block(spared) is None
    events = aws.published_events()
    assert {e["identityId"] for e in by_type(events, IDENTITY_BLOCKED)} == set(blocked)
    (storm,) = by_type(events, BLOCK_STORM)
    assert storm["skippedIdentities"] == [spared]
    assert (storm["rule"], storm["actor"], storm["appMonitor"], storm["dryRun"]) == (
        "safety-valve",
        AUTO,
        GUEST_MONITOR,
        False,
    )
    assert by_type(events, LOCKDOWN_CHANGED) == []  # lockdown only if configured
    assert invocation.output.total("BlockStorm", **GUEST_DIMENSIONS) == 1
    (error,) = invocation.output.log_records(level="ERROR", message="safety valve: automatic blocking paused")
    assert error["decisions"]["skipped"] == {spared: "safety valve: too many blocks in the last window"}
    assert [r.action for r in store.history("*")] == [AuditAction.BLOCK_STORM]
    pool = aws.cognito.describe_identity_pool(IdentityPoolId=aws.identity_pool_id)
    assert pool["AllowUnauthenticatedIdentities"] is True


def test_a_storm_enters_guest_lockdown_when_configured(
    aws: EmbeddedAws, make_ingest: Callable[..., LocalFunction], traffic: GuestTraffic, denied: Callable[[], set[str]]
) -> None:
    ingest = make_ingest(**SMALL, SAFETY_VALVE_LIMIT="2", LOCKDOWN_ON_STORM="true")
    bots = [aws.new_guest() for _ in range(3)]
    before = datetime.now(UTC).replace(microsecond=0)

    invocation = traffic.deliver(ingest, floods(traffic, bots))

    assert len(invocation.value["blocked"]) == 2
    assert invocation.output.total("BlockStorm", **GUEST_DIMENSIONS) == 1
    pool = aws.cognito.describe_identity_pool(IdentityPoolId=aws.identity_pool_id)
    assert pool["AllowUnauthenticatedIdentities"] is False
    with pytest.raises(ClientError, match="NotAuthorizedException"):
        aws.new_guest()
    policies = aws.guest_role_policies()
    (statement,) = policies[LOCKDOWN_POLICY]["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Deny", "*")
    since = datetime.fromisoformat(statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"])
    assert before <= since <= datetime.now(UTC)
    assert denied() == set(invocation.value["blocked"])  # the blocks stay enforced beside the lockdown
    events = aws.published_events()
    (lockdown,) = by_type(events, LOCKDOWN_CHANGED)
    assert lockdown["enabled"] is True and lockdown["actor"] == AUTO
    assert len(by_type(events, BLOCK_STORM)) == 1


# --- forged identities ------------------------------------------------------------------------------------
def test_forged_identities_are_refused_counted_and_logged(
    aws: EmbeddedAws,
    make_ingest: Callable[..., LocalFunction],
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
) -> None:
    ingest = make_ingest(**SMALL)
    signed_in = aws.new_signed_in("alice")
    forged = {
        "malformed": "not-a-cognito-identity",
        "other region": f"eu-west-1:{uuid.uuid4()}",
        "unknown to the pool": f"{aws.region}:{uuid.uuid4()}",
        "signed in": signed_in,
    }
    guest = aws.new_guest()  # an honest-looking flood beside them, to show the batch still blocks real guests

    invocation = traffic.deliver(ingest, floods(traffic, [*forged.values(), guest]))

    assert invocation.value["blocked"] == [guest]
    assert invocation.value["forged"] == sorted(forged.values())
    assert invocation.output.total("ForgedIdentities", **GUEST_DIMENSIONS) == len(forged)
    assert sorted(decisions_line(invocation)["forged"]) == sorted(forged.values())
    for what, identity in forged.items():
        assert store.get_block(identity) is None, what
        (audit,) = store.history(identity)
        assert audit.action is AuditAction.REFUSE_FORGED, what
        assert audit.rule == "event-flood" and audit.counts["event-flood"] == FLOOD, what
    assert store.history(signed_in)[0].reason == "a signed-in identity (has logins)"
    assert aws.identity_exists(signed_in)
    (event,) = by_type(aws.published_events(), IDENTITY_BLOCKED)
    assert event["identityId"] == guest


def test_identities_seen_only_in_the_signed_in_monitor_are_never_judged(
    aws: EmbeddedAws, make_ingest: Callable[..., LocalFunction], traffic: GuestTraffic, store: DynamoDecisionStore
) -> None:
    """Not refused as forged either: the signed-in monitor's traffic is never counted per identity."""
    ingest = make_ingest(**SMALL)
    guest, user = aws.new_guest(), aws.new_signed_in("bob")

    invocation = traffic.deliver(ingest, floods(traffic, [guest, user]), monitor=SIGNED_IN_MONITOR)

    assert invocation.value["accepted"] == 2 * FLOOD
    assert (invocation.value["blocked"], invocation.value["forged"]) == ([], [])
    assert invocation.output.total("Events", AppMonitor=SIGNED_IN_MONITOR, Audience="signed-in") == 2 * FLOOD
    assert "ForgedIdentities" not in invocation.output.metric_names()
    for identity in (guest, user):
        assert aws.identity_exists(identity)
        assert store.get_block(identity) is None
        assert store.history(identity) == []
        assert DynamoCounterStore(aws.dynamodb, aws.table_name).buckets(identity) == {}
    assert aws.published_events() == []
    assert list(aws.guest_role_policies()) == ["rum-put-events"]


# --- the deny policy at IAM's size limit ------------------------------------------------------------------
def test_the_embedded_iam_refuses_what_iam_refuses(aws: EmbeddedAws) -> None:
    """``rumguard.local.iam``: without it moto stores any size and the packing tests could not fail."""
    own = policy_size(GUEST_ROLE_POLICY)
    exactly = padding_policy(ROLE_INLINE_LIMIT - own)
    aws.iam.put_role_policy(RoleName=aws.guest_role_name, PolicyName="ops", PolicyDocument=exactly)
    assert role_total(aws) == ROLE_INLINE_LIMIT
    # Whitespace is not counted; a replacement counts instead of the policy it replaces.
    spaced = json.dumps(json.loads(exactly), indent=4)
    aws.iam.put_role_policy(RoleName=aws.guest_role_name, PolicyName="ops", PolicyDocument=spaced)
    over = padding_policy(ROLE_INLINE_LIMIT - own + 1)
    with pytest.raises(ClientError) as refused:
        aws.iam.put_role_policy(RoleName=aws.guest_role_name, PolicyName="ops", PolicyDocument=over)
    assert refused.value.response["Error"]["Code"] == "LimitExceeded"
    with pytest.raises(PolicyLimitExceededError):
        IamGuestRole(aws.iam, aws.guest_role_name).put_policy("rumguard-deny-blocks", padding_policy(200))
    assert role_total(aws) == ROLE_INLINE_LIMIT


def padding_policy(size: int) -> str:
    """Someone else's inline policy on the guest role, of exactly ``size`` characters."""
    document: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Ops", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::ops/"}],
    }
    short = size - policy_size(render(document))
    assert short >= 0, f"a policy cannot be as small as {size}"
    document["Statement"][0]["Resource"] += "p" * short
    text = render(document)
    assert policy_size(text) == size
    return text


def blocks_size(count: int, id_length: int) -> int:
    """The size of a blocks policy listing ``count`` identity ids of ``id_length`` characters."""
    return policy_size(render(blocks_document([f"{n:0{id_length}d}" for n in range(count)])))


def test_a_full_deny_policy_keeps_the_newest_blocks_and_reports_the_rest(
    aws: EmbeddedAws,
    make_ingest: Callable[..., LocalFunction],
    sweeper: LocalFunction,
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    denied: Callable[[], set[str]],
    guard_for: Callable[[Mapping[str, str]], Guard],
) -> None:
    """The role carries someone else's big inline policy: room is left for exactly ``FITS`` identity ids.

    (Filling the whole 10,240 characters takes about 200 blocks; moto copies every table for each
    transaction, which makes that take half a minute. The packing is the same with less room.)
    """
    fits = 6
    ingest = make_ingest(EVENT_FLOOD_LIMIT="5")
    guard = guard_for(ingest.environ)
    guests = [aws.new_guest() for _ in range(fits + 3)]
    id_length = len(guests[0])
    others = ROLE_INLINE_LIMIT - blocks_size(fits, id_length)
    own = policy_size(GUEST_ROLE_POLICY)
    aws.iam.put_role_policy(RoleName=aws.guest_role_name, PolicyName="ops", PolicyDocument=padding_policy(others - own))
    ops_before = aws.guest_role_policies()["ops"]

    for n, guest in enumerate(guests, start=1):
        flood = traffic.events(guest, clicks=6, at_ms=traffic.start_ms + n * 1_000, span_ms=500)
        invocation = traffic.deliver(ingest, flood)
        assert invocation.value["blocked"] == [guest]
        assert role_total(aws) <= ROLE_INLINE_LIMIT
        newest = [b.identity_id for b in store.active_blocks(datetime.now(UTC))]
        assert newest[0] == guest
        assert denied() == set(newest[:fits])
        unenforced = newest[fits:]
        assert invocation.output.total("UnenforcedBlocks", **GUEST_DIMENSIONS) == len(unenforced)
        errors = invocation.output.log_records(message="deny policy full: some active blocks are not enforced in IAM")
        if unenforced:
            (error,) = errors
            assert sorted(error["unenforced"]) == sorted(unenforced)
        else:
            assert errors == []
        assert not aws.identity_exists(guest)  # deleted from the pool, enforced in IAM or not

    # Never silently dropped: every block is active in the table, the oldest three reported as unenforced.
    assert role_total(aws) == ROLE_INLINE_LIMIT
    assert {b.identity_id for b in store.active_blocks(datetime.now(UTC))} == set(guests)
    assert denied() == set(guests[-fits:])
    sweep = sweeper.invoke({})
    assert sorted(sweep.unwrap()["unenforced"]) == sorted(guests[:3])
    assert sweep.output.total("UnenforcedBlocks", AppMonitor="all", Audience="guest") == 3
    assert sweep.output.total("PolicyCapacityUsed", AppMonitor="all", Audience="guest") == 100.0
    assert aws.guest_role_policies()["ops"] == ops_before

    # Room made by unblocking the two newest goes to the next newest.
    for guest in guests[-2:]:
        guard.unblock(guest, reason="false positive", actor=OPERATOR)
    assert denied() == set(guests[1:-2])
    assert role_total(aws) <= ROLE_INLINE_LIMIT

    # The lockdown policy takes its room first, beside a full blocks policy, never over the limit.
    guard.set_lockdown(True, reason="bot wave", actor=OPERATOR)
    assert LOCKDOWN_POLICY in aws.guest_role_policies()
    assert role_total(aws) <= ROLE_INLINE_LIMIT
    enforced = denied()
    assert 0 < len(enforced) < fits and enforced == set(guests[1:-2][-len(enforced) :])
    assert {name for name in aws.guest_role_policies() if name.startswith(POLICY_PREFIX)} == {
        BLOCKS_POLICY,
        LOCKDOWN_POLICY,
    }
