"""The guest role's deny policies: rendering, IAM's size counting, and packing within the role's budget."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rumguard.policy import (
    BLOCKS_POLICY,
    LOCKDOWN_POLICY,
    POLICY_PREFIX,
    ROLE_INLINE_LIMIT,
    SUB_KEY,
    blocks_document,
    lockdown_document,
    plan,
    policy_size,
    render,
)

SINCE = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)


def ids(n: int, seed: int = 1, region: str = "us-east-1") -> list[str]:
    """``n`` distinct identity ids, newest first by convention."""
    rng = random.Random(seed)
    return [f"{region}:{uuid.UUID(int=rng.getrandbits(128), version=4)}" for _ in range(n)]


def denied(document: str) -> list[str]:
    """The identity ids a rendered blocks policy denies."""
    statement = json.loads(document)["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "*"
    assert statement["Resource"] == "*"
    values: list[str] = statement["Condition"]["StringEquals"][SUB_KEY]
    return values


def total_size(policies: dict[str, str]) -> int:
    """IAM's size of a set of policies."""
    return sum(policy_size(doc) for doc in policies.values())


def test_policy_size_does_not_count_whitespace() -> None:
    document = blocks_document(ids(3))
    compact = render(document)
    pretty = json.dumps(document, indent=4, sort_keys=True)
    assert len(pretty) > len(compact)
    assert policy_size(pretty) == policy_size(compact) == len(compact)
    assert policy_size(document) == len(compact)
    assert policy_size(" \n\t{ }\r\n") == 2


def test_render_is_compact_and_stable() -> None:
    document = {"b": [1, 2], "a": {"y": 1, "x": 2}}
    assert render(document) == '{"a":{"x":2,"y":1},"b":[1,2]}'


def test_blocks_document_denies_sorted_ids_on_the_sub_key() -> None:
    some = ids(5)
    document = render(blocks_document(some))
    assert denied(document) == sorted(some)
    statement = json.loads(document)["Statement"][0]
    assert list(statement["Condition"]) == ["StringEquals"]
    assert json.loads(document)["Version"] == "2012-10-17"


def test_lockdown_document_denies_sessions_issued_before() -> None:
    statement = lockdown_document(SINCE)["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "*"
    assert statement["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": "2026-01-02T03:04:05Z"}}


def test_empty_plan_has_no_policies() -> None:
    result = plan([], others_chars=0)
    assert result.policies == {}
    assert result.enforced == ()
    assert result.unenforced == ()
    assert result.used_chars == 0
    assert result.capacity_used == 0.0


def test_lockdown_only() -> None:
    result = plan([], others_chars=100, lockdown_since=SINCE)
    assert list(result.policies) == [LOCKDOWN_POLICY]
    assert result.used_chars == policy_size(result.policies[LOCKDOWN_POLICY])
    assert json.loads(result.policies[LOCKDOWN_POLICY]) == lockdown_document(SINCE)


def test_few_blocks_all_enforced() -> None:
    some = ids(4)
    result = plan(some, others_chars=500)
    assert list(result.policies) == [BLOCKS_POLICY]
    assert all(name.startswith(POLICY_PREFIX) for name in result.policies)
    assert result.enforced == tuple(some)
    assert result.unenforced == ()
    assert sorted(denied(result.policies[BLOCKS_POLICY])) == sorted(some)
    assert result.used_chars == total_size(result.policies)
    assert result.capacity_used == pytest.approx(100 * (result.used_chars + 500) / ROLE_INLINE_LIMIT)


def test_duplicates_are_listed_once() -> None:
    a, b = ids(2)
    result = plan([a, b, a], others_chars=0)
    assert result.enforced == (a, b)
    assert denied(result.policies[BLOCKS_POLICY]) == sorted([a, b])


def _check_packing(newest_first: list[str], others: int, since: datetime | None, limit: int) -> None:
    result = plan(newest_first, others_chars=others, lockdown_since=since, limit=limit)
    unique = list(dict.fromkeys(newest_first))
    # Never a silent drop: every block is either enforced or reported.
    assert result.enforced + result.unenforced == tuple(unique)
    # The newest are kept.
    assert result.enforced == tuple(unique[: len(result.enforced)])
    assert result.used_chars == total_size(result.policies)
    lockdown_size = policy_size(render(lockdown_document(since))) if since else 0
    if since is not None:
        assert LOCKDOWN_POLICY in result.policies
    if result.enforced:
        assert sorted(denied(result.policies[BLOCKS_POLICY])) == sorted(result.enforced)
        # Never over the limit, counting the other policies and the lockdown.
        assert result.used_chars + others <= limit
    else:
        assert BLOCKS_POLICY not in result.policies
    # Tight: one more identity would not have fitted.
    if result.unenforced:
        bigger = render(blocks_document([*result.enforced, result.unenforced[0]]))
        assert policy_size(bigger) + lockdown_size + others > limit


def test_packing_at_capacity_keeps_the_newest_and_reports_the_rest() -> None:
    many = ids(400)
    result = plan(many, others_chars=0)
    assert 100 < len(result.enforced) < 400
    assert result.unenforced
    _check_packing(many, 0, None, ROLE_INLINE_LIMIT)
    assert result.capacity_used <= 100.0


def test_packing_counts_other_policies_and_the_lockdown() -> None:
    many = ids(300)
    alone = plan(many, others_chars=0)
    with_others = plan(many, others_chars=2_000)
    with_lockdown = plan(many, others_chars=2_000, lockdown_since=SINCE)
    assert len(alone.enforced) > len(with_others.enforced) > len(with_lockdown.enforced)
    for others, since in ((0, None), (2_000, None), (2_000, SINCE)):
        _check_packing(many, others, since, ROLE_INLINE_LIMIT)


def test_nothing_fits_when_others_fill_the_role() -> None:
    some = ids(3)
    result = plan(some, others_chars=ROLE_INLINE_LIMIT - 50)
    assert result.policies == {}
    assert result.enforced == ()
    assert result.unenforced == tuple(some)


def test_lockdown_that_does_not_fit_is_reported_not_written_over_the_limit() -> None:
    some = ids(2)
    others = ROLE_INLINE_LIMIT - 50
    result = plan(some, others_chars=others, lockdown_since=SINCE)
    assert result.used_chars + others <= ROLE_INLINE_LIMIT
    assert LOCKDOWN_POLICY not in result.policies
    assert result.lockdown_unenforced
    assert result.unenforced == tuple(some)
    fits = plan(some, others_chars=0, lockdown_since=SINCE)
    assert not fits.lockdown_unenforced


def test_exact_fit_at_the_limit() -> None:
    some = ids(5)
    size = policy_size(render(blocks_document(some)))
    assert plan(some, others_chars=0, limit=size).enforced == tuple(some)
    short = plan(some, others_chars=0, limit=size - 1)
    assert short.enforced == tuple(some[:4])
    assert short.unenforced == (some[4],)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 260),
    others=st.integers(0, ROLE_INLINE_LIMIT),
    lockdown=st.booleans(),
    dupes=st.integers(0, 5),
    seed=st.integers(0, 1000),
    region=st.sampled_from(["us-east-1", "ap-southeast-2", "us-gov-west-1"]),
)
def test_packing_invariants(n: int, others: int, lockdown: bool, dupes: int, seed: int, region: str) -> None:
    many = ids(n, seed, region)
    rng = random.Random(seed)
    newest_first = many + [rng.choice(many) for _ in range(dupes if many else 0)]
    since = SINCE if lockdown else None
    lockdown_size = policy_size(render(lockdown_document(SINCE))) if lockdown else 0
    assume(others + lockdown_size <= ROLE_INLINE_LIMIT)  # see test_lockdown_that_does_not_fit_is_reported
    _check_packing(newest_first, others, since, ROLE_INLINE_LIMIT)
