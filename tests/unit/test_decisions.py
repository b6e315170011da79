"""Decisions: block durations (1 h, doubling with jitter, up to 7 days), offence memory, block and allow records."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rumguard.decisions import (
    AUTO,
    OFFENCE_MEMORY,
    AllowEntry,
    Block,
    BlockStatus,
    Escalation,
    is_identity_id,
    next_offence,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
WEEK = timedelta(days=7)
IDENTITY = "us-east-1:0f8fad5b-d9cb-469f-a165-70867728950e"


def block(
    *, created: datetime = T0, length: timedelta = HOUR, offence: int = 1, status: BlockStatus = BlockStatus.ACTIVE
) -> Block:
    return Block(
        identity_id=IDENTITY,
        app_monitor="Shop_Guests",
        rule="event-flood",
        reason="1001 events in 5 min (limit 1000): event-flood",
        actor=AUTO,
        created_at=created,
        expires_at=created + length,
        offence=offence,
        dry_run=False,
        counts={"event-flood": 1001},
        status=status,
    )


# --- escalation ---------------------------------------------------------------------------------------
def test_default_escalation_is_designs() -> None:
    escalation = Escalation()
    assert escalation.base == HOUR
    assert escalation.cap == WEEK


def test_first_block_lasts_the_base_time_exactly() -> None:
    escalation = Escalation()
    for seed in range(20):
        assert escalation.duration(1, random.Random(seed)) == HOUR


@pytest.mark.parametrize("offence", range(2, 9))
def test_repeat_offences_double_within_the_jitter(offence: int) -> None:
    escalation = Escalation()
    nominal = HOUR * 2 ** (offence - 1)
    durations = {escalation.duration(offence, random.Random(seed)) for seed in range(50)}
    for duration in durations:
        assert nominal * (1 - escalation.jitter) <= duration <= min(nominal * (1 + escalation.jitter), WEEK)
    # Jitter: a bot cannot learn the exact moment it is let back in.
    assert len(durations) > 1


def test_durations_grow_with_each_offence() -> None:
    escalation = Escalation()
    rng = random.Random(3)
    durations = [escalation.duration(n, rng) for n in range(1, 12)]
    assert durations == sorted(durations)
    assert durations[0] == HOUR
    assert durations[-1] == WEEK


@given(st.integers(-5, 100_000), st.integers(0, 2**32))
def test_never_more_than_the_cap_nor_less_than_the_base(offence: int, seed: int) -> None:
    escalation = Escalation()
    duration = escalation.duration(offence, random.Random(seed))
    assert HOUR <= duration <= WEEK


def test_cap_reached_and_held() -> None:
    escalation = Escalation()
    rng = random.Random(0)
    assert escalation.duration(9, rng) == WEEK  # 256 h nominal > 168 h
    assert escalation.duration(1_000, rng) == WEEK


def test_configurable_escalation() -> None:
    escalation = Escalation(base=timedelta(minutes=10), cap=timedelta(minutes=30), jitter=0.0)
    rng = random.Random(0)
    assert [escalation.duration(n, rng) for n in (1, 2, 3)] == [
        timedelta(minutes=10),
        timedelta(minutes=20),
        timedelta(minutes=30),
    ]


@pytest.mark.parametrize(
    ("base", "cap", "jitter"),
    [(timedelta(0), WEEK, 0.1), (HOUR, timedelta(minutes=59), 0.1), (HOUR, WEEK, 1.0), (HOUR, WEEK, -0.1)],
)
def test_escalation_validation(base: timedelta, cap: timedelta, jitter: float) -> None:
    with pytest.raises(ValueError):
        Escalation(base=base, cap=cap, jitter=jitter)


# --- offence memory -----------------------------------------------------------------------------------
def test_first_offence_without_history() -> None:
    assert next_offence(None, T0) == 1


def test_repeat_offence_within_memory() -> None:
    previous = block(offence=3)
    ended_at = previous.expires_at
    assert ended_at is not None
    assert next_offence(previous, ended_at + timedelta(minutes=5)) == 4
    assert next_offence(previous, ended_at + OFFENCE_MEMORY) == 4


def test_offence_forgotten_after_memory() -> None:
    previous = block(offence=3)
    assert previous.expires_at is not None
    assert next_offence(previous, previous.expires_at + OFFENCE_MEMORY + timedelta(seconds=1)) == 1


def test_memory_counts_from_the_end_of_the_block() -> None:
    """A long block that ended recently is remembered even if it was created long ago."""
    previous = block(length=WEEK, offence=8)
    ended = previous.ended(BlockStatus.UNBLOCKED, T0 + timedelta(days=6), "arn:aws:iam::1:user/ops", "ok", None)
    assert next_offence(ended, T0 + timedelta(days=6) + OFFENCE_MEMORY) == 9
    assert next_offence(ended, T0 + timedelta(days=6) + OFFENCE_MEMORY + timedelta(hours=1)) == 1


# --- block and allow records --------------------------------------------------------------------------
def test_block_is_active_until_it_expires_or_ends() -> None:
    active = block()
    assert active.is_active(T0)
    assert active.is_active(T0 + HOUR - timedelta(microseconds=1))
    assert not active.is_active(T0 + HOUR)
    ended = active.ended(BlockStatus.EXPIRED, T0 + timedelta(minutes=1), AUTO, "block expired", None)
    assert not ended.is_active(T0 + timedelta(minutes=2))
    assert ended.grace_until is None
    assert not ended.in_grace(T0 + timedelta(minutes=2))


def test_manual_unblock_grace() -> None:
    at = T0 + timedelta(minutes=10)
    ended = block().ended(BlockStatus.UNBLOCKED, at, "arn:aws:iam::1:user/ops", "false positive", HOUR)
    assert ended.status is BlockStatus.UNBLOCKED
    assert ended.ended_at == at
    assert ended.in_grace(at + HOUR - timedelta(seconds=1))
    assert not ended.in_grace(at + HOUR)


def test_event_detail_of_an_active_and_an_ended_block() -> None:
    active = block()
    detail = active.event_detail()
    for key in ("identityId", "appMonitor", "rule", "reason", "actor", "expiresAt", "dryRun"):
        assert key in detail
    assert detail["identityId"] == IDENTITY
    assert detail["actor"] == AUTO
    assert detail["reason"] == active.reason
    assert detail["expiresAt"] == "2026-01-01T01:00:00Z"
    assert detail["dryRun"] is False
    ended = active.ended(BlockStatus.UNBLOCKED, T0, "arn:aws:iam::1:user/ops", "false positive", HOUR)
    ended_detail = ended.event_detail()
    assert ended_detail["actor"] == "arn:aws:iam::1:user/ops"
    assert ended_detail["reason"] == "false positive"
    assert ended_detail["status"] == "unblocked"
    never = Block(IDENTITY, "m", "manual", "r", "a", T0, None, 1, True)
    assert never.event_detail()["expiresAt"] is None
    assert never.is_active(T0 + WEEK * 100)


def test_allow_entry_expiry() -> None:
    forever = AllowEntry(IDENTITY, "QA", "ops", T0)
    assert forever.is_active(T0 + WEEK * 100)
    until = AllowEntry(IDENTITY, "QA", "ops", T0, T0 + HOUR)
    assert until.is_active(T0 + HOUR - timedelta(seconds=1))
    assert not until.is_active(T0 + HOUR)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (IDENTITY, True),
        ("us-gov-west-1:0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("eu-central-1:0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", False),
        ("us-east-1:0F8FAD5B-D9CB-469F-A165-70867728950E", False),
        ("us-east-1:0f8fad5b-d9cb-469f-a165-70867728950e ", False),
        ("us-east-1:0f8fad5b", False),
        ("admin", False),
        ("", False),
    ],
)
def test_identity_id_shape(value: str, ok: bool) -> None:
    assert is_identity_id(value) is ok
