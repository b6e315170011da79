"""A manual unblock through the API starts a grace period that the automatic path respects: the same decision
service, on the same table, running the detection rules (``Guard.on_batch``) at a later time.

The automatic path runs in dry-run here: in enforce mode a block also deletes the identity from the pool, so
after an unblock the automatic path refuses the id as unknown to the pool whatever the grace period says (the
last test shows that); dry-run keeps the identity in the pool and so exercises the grace period itself.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from tests.api.support import OPERATOR_ARN, EventTransport, events_of, guard_at, store

from rumguard.decisions import AUTO, AuditAction, Mode
from rumguard.detection import Rule
from rumguard.ingest import BatchReport, IdentityActivity
from rumguard.local.aws import GUEST_MONITOR, EmbeddedAws
from rumguard.local.fakes import FakeClock
from rumguard.monitors import Audience, Monitor


def session_churn(identity: str, at: datetime) -> BatchReport:
    """A guest monitor's batch in which ``identity`` starts six sessions (the rule allows five in ten minutes)."""
    ms = at.timestamp() * 1000
    monitor = Monitor(GUEST_MONITOR, Audience.GUEST)
    activity = IdentityActivity(events=12, session_starts=6, page_views=6, first_ms=ms - 1000, last_ms=ms)
    return BatchReport(log_group=monitor.log_group_name("0123abcd"), monitor=monitor, identities={identity: activity})


@pytest.fixture
def dry_run(wired: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> EmbeddedAws:
    """The API in dry-run mode (read at its first request)."""
    monkeypatch.setenv("RUMGUARD_MODE", "dry-run")
    return wired


def test_no_automatic_block_inside_the_grace_period_and_one_after_it(dry_run: EmbeddedAws) -> None:
    event = EventTransport()
    bot = dry_run.new_guest()
    event("PUT", f"/blocks/{bot}", {"reason": "looked like a bot"})
    unblocked = event("DELETE", f"/blocks/{bot}", {"reason": "a customer on a flaky network"}).body
    grace_until = datetime.fromisoformat(unblocked["graceUntil"])
    events_of(dry_run)

    clock = FakeClock(grace_until - timedelta(minutes=30))
    automatic = guard_at(dry_run, clock, Mode.DRY_RUN)
    inside = automatic.on_batch(session_churn(bot, clock.now()), "batch-inside-grace")
    assert inside.hits[bot][0].rule is Rule.SESSION_CHURN, "the rule fired"
    assert inside.blocked == [] and "grace" in inside.skipped[bot]
    assert event("GET", f"/blocks/{bot}").body["blocked"] is False
    assert events_of(dry_run) == []

    clock.set(grace_until + timedelta(minutes=1))
    after = automatic.on_batch(session_churn(bot, clock.now()), "batch-after-grace")
    assert [b.identity_id for b in after.blocked] == [bot]
    detail = event("GET", f"/blocks/{bot}").body
    assert detail["blocked"] is True
    assert (detail["block"]["rule"], detail["block"]["actor"], detail["block"]["offence"]) == ("session-churn", AUTO, 2)
    assert [(h["action"], h["actor"]) for h in detail["history"]] == [
        ("block", OPERATOR_ARN),
        ("unblock", OPERATOR_ARN),
        ("block", AUTO),
    ]
    [announced] = events_of(dry_run, "Identity Blocked")
    assert (announced["detail"]["identityId"], announced["detail"]["actor"]) == (bot, AUTO)


def test_in_enforce_mode_the_deleted_identity_is_refused_after_the_grace_period(wired: EmbeddedAws) -> None:
    event = EventTransport()
    bot = wired.new_guest()
    event("PUT", f"/blocks/{bot}", {"reason": "a bot"})
    unblocked = event("DELETE", f"/blocks/{bot}", {"reason": "released"}).body
    clock = FakeClock(datetime.fromisoformat(unblocked["graceUntil"]) + timedelta(minutes=1))

    outcome = guard_at(wired, clock, Mode.ENFORCE).on_batch(session_churn(bot, clock.now()), "batch-after-grace")

    assert outcome.blocked == []
    assert outcome.forged == {bot: "unknown to the identity pool"}
    assert [r.action for r in store(wired).history(bot)][-1] is AuditAction.REFUSE_FORGED
