"""Each automatic rule, at DESIGN.md's default thresholds, through the real ingest handler on moto.

For every rule a guest identity of the pool (``new_guest()``) first sends exactly the rule's limit in one
delivery and is left alone, then crosses the limit by one event in the next delivery and is blocked by that
invocation: the guest role's ``rumguard-deny*`` policy denies it by ``cognito-identity.amazonaws.com:sub``,
the pool no longer has it (``DeleteIdentities``), an ``Identity Blocked`` event reached the SQS queue behind
the bus, and the table holds the decision and its audit record. An identity just under every threshold at
once, over two deliveries, is not blocked at all.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from rumguard.adapters.dynamodb import DynamoCounterStore, DynamoDecisionStore
from rumguard.decisions import AUTO, AuditAction, BlockStatus
from rumguard.detection import Rule, default_thresholds, minute_of, window_sum
from rumguard.guard import IDENTITY_BLOCKED
from rumguard.local.aws import GUEST_MONITOR, GUEST_ROLE_POLICY, EmbeddedAws
from rumguard.local.context import Invocation, LocalFunction
from rumguard.policy import BLOCKS_POLICY

if TYPE_CHECKING:
    from tests.integration.conftest import GuestTraffic

GUEST_DIMENSIONS = {"AppMonitor": GUEST_MONITOR, "Audience": "guest"}
EVENT_FIELDS = ("identityId", "appMonitor", "rule", "reason", "actor", "expiresAt", "dryRun")


@dataclass(frozen=True)
class Crossing:
    """A rule and the kind of event it counts: the test sends exactly its limit, then one more."""

    rule: Rule
    kind: str

    def messages(self, traffic: GuestTraffic, identity: str, count: int, at_ms: int) -> list[tuple[int, str]]:
        """``count`` events of the rule's kind (junk alternates invalid and skewed events)."""
        if self.kind == "junk":
            skewed = count // 2
            return traffic.events(identity, invalid=count - skewed, skewed=skewed, at_ms=at_ms, span_ms=40_000)
        return traffic.events(identity, **{self.kind: count}, at_ms=at_ms, span_ms=40_000)


CROSSINGS = [
    Crossing(Rule.EVENT_FLOOD, "clicks"),
    Crossing(Rule.SESSION_CHURN, "session_starts"),
    Crossing(Rule.PAGE_VELOCITY, "page_views"),
    Crossing(Rule.ERROR_SPAM, "js_errors"),
    Crossing(Rule.JUNK, "junk"),
]


def blocked_events(aws: EmbeddedAws) -> list[dict[str, Any]]:
    """The ``Identity Blocked`` events delivered to the queue so far (drains it)."""
    return [e for e in aws.published_events() if e["detail-type"] == IDENTITY_BLOCKED]


def assert_blocked_by(
    aws: EmbeddedAws,
    store: DynamoDecisionStore,
    denied: Callable[[], set[str]],
    invocation: Invocation,
    identity: str,
    rule: Rule,
) -> None:
    """Everything a block consists of, for a block the invocation just made."""
    limit = default_thresholds()[rule].limit
    assert invocation.value["blocked"] == [identity]
    assert invocation.output.total("IdentitiesBlocked", **GUEST_DIMENSIONS) == 1
    # IAM: the deny policy lists the identity by its Cognito subject, beside the role's own policy.
    policies = aws.guest_role_policies()
    assert identity in denied()
    statement = policies[BLOCKS_POLICY]["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "*"
    assert identity in statement["Condition"]["StringEquals"]["cognito-identity.amazonaws.com:sub"]
    assert "rum-put-events" in policies
    # Cognito: the identity is gone, so it cannot get new credentials.
    assert not aws.identity_exists(identity)
    # EventBridge: one event, delivered by the bus's rule to the queue.
    (event,) = blocked_events(aws)
    assert event["source"] == "rumguard"
    detail = event["detail"]
    assert set(EVENT_FIELDS) <= set(detail)
    assert detail["identityId"] == identity
    assert detail["appMonitor"] == GUEST_MONITOR
    assert detail["rule"] == rule.value
    assert rule.value in detail["reason"] and f"limit {limit}" in detail["reason"]
    assert detail["actor"] == AUTO
    assert detail["dryRun"] is False
    created = datetime.fromisoformat(detail["createdAt"])
    assert datetime.fromisoformat(detail["expiresAt"]) - created == timedelta(hours=1)  # a first offence
    # The table: the decision and its audit record.
    block = store.get_block(identity)
    assert block is not None
    assert block.status is BlockStatus.ACTIVE
    assert (block.rule, block.actor, block.offence, block.dry_run) == (rule.value, AUTO, 1, False)
    assert block.app_monitor == GUEST_MONITOR
    assert block.counts[rule.value] == limit + 1
    assert block.expires_at is not None and block.expires_at - block.created_at == timedelta(hours=1)
    (audit,) = [r for r in store.history(identity) if r.action is AuditAction.BLOCK]
    assert (audit.actor, audit.rule, audit.app_monitor, audit.dry_run) == (AUTO, rule.value, GUEST_MONITOR, False)
    assert audit.counts[rule.value] == limit + 1
    assert audit.reason == block.reason
    assert audit.expires_at == block.expires_at


def assert_not_blocked(aws: EmbeddedAws, store: DynamoDecisionStore, invocation: Invocation, identity: str) -> None:
    """No trace of a block: no decision, no deny, the identity still in the pool, nothing on the bus."""
    assert invocation.value["blocked"] == []
    assert invocation.value["forged"] == []
    assert store.get_block(identity) is None
    assert store.history(identity) == []
    assert aws.guest_role_policies() == {"rum-put-events": json.loads(GUEST_ROLE_POLICY)}
    assert aws.identity_exists(identity)
    assert aws.published_events() == []
    assert invocation.output.total("IdentitiesBlocked", **GUEST_DIMENSIONS) == 0


def window_totals(aws: EmbeddedAws, identity: str, minute: int) -> dict[Rule, int]:
    """What each rule sees for the identity in the table's counters, over the window ending at ``minute``."""
    buckets = DynamoCounterStore(aws.dynamodb, aws.table_name).buckets(identity)
    return {
        rule: window_sum(buckets, minute, threshold.window_minutes).get(threshold.counter)
        for rule, threshold in default_thresholds().items()
    }


@pytest.mark.parametrize("crossing", CROSSINGS, ids=[c.rule.value for c in CROSSINGS])
def test_crossing_a_default_threshold_blocks_in_that_invocation(
    aws: EmbeddedAws,
    ingest: LocalFunction,
    traffic: GuestTraffic,
    store: DynamoDecisionStore,
    denied: Callable[[], set[str]],
    crossing: Crossing,
) -> None:
    limit = default_thresholds()[crossing.rule].limit
    guest = aws.new_guest()
    start = traffic.start_ms

    at_limit = traffic.deliver(ingest, crossing.messages(traffic, guest, limit, start))
    assert_not_blocked(aws, store, at_limit, guest)
    assert window_totals(aws, guest, minute_of(start))[crossing.rule] == limit  # at the limit, not under it

    # Within the same minute (page velocity's window is one minute): one more event crosses the line.
    crossed = traffic.deliver(ingest, crossing.messages(traffic, guest, 1, start + 50_000))
    assert_blocked_by(aws, store, denied, crossed, guest, crossing.rule)


def test_an_identity_just_under_every_threshold_at_once_is_not_blocked(
    aws: EmbeddedAws, ingest: LocalFunction, traffic: GuestTraffic, store: DynamoDecisionStore
) -> None:
    limits = {rule: threshold.limit for rule, threshold in default_thresholds().items()}
    guest = aws.new_guest()
    start = traffic.start_ms
    # Exactly every limit, inside every window (all in one minute), split over two deliveries.
    session_starts, page_views, js_errors = (
        limits[Rule.SESSION_CHURN],
        limits[Rule.PAGE_VELOCITY],
        limits[Rule.ERROR_SPAM],
    )
    clicks = limits[Rule.EVENT_FLOOD] - session_starts - page_views - js_errors
    junk = limits[Rule.JUNK]
    first = traffic.events(
        guest,
        clicks=clicks // 2,
        session_starts=3,
        page_views=30,
        js_errors=50,
        invalid=10,
        at_ms=start,
        span_ms=25_000,
    )
    second = traffic.events(
        guest,
        clicks=clicks - clicks // 2,
        session_starts=session_starts - 3,
        page_views=page_views - 30,
        js_errors=js_errors - 50,
        skewed=junk - 10,
        at_ms=start + 26_000,
        span_ms=25_000,
    )

    one = traffic.deliver(ingest, first)
    two = traffic.deliver(ingest, second)

    for invocation in (one, two):
        assert_not_blocked(aws, store, invocation, guest)
    assert window_totals(aws, guest, minute_of(start + 51_000)) == limits
    # Everything was counted: the limits were reached, not missed.
    counted = sum(i.output.total("Events", **GUEST_DIMENSIONS) for i in (one, two))
    assert counted == limits[Rule.EVENT_FLOOD]
    rejected = sum(i.output.total("RejectedEvents", **GUEST_DIMENSIONS) for i in (one, two))
    assert rejected == junk
