"""The allowlist and guest lockdown routes on moto: audited with the caller, announced on the bus, enforced on
the identity pool and the guest role."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.api.support import OPERATOR_ARN, EventTransport, Transport, denied, events_of, near, store

from rumguard.decisions import AuditAction
from rumguard.local.aws import EmbeddedAws


def test_allowlist_add_show_replace_remove(http: Transport, wired: EmbeddedAws) -> None:
    guest = wired.new_guest()
    path = f"/allowlist/{guest}"
    assert http("GET", path).body["error"] == "not-allowlisted"

    added = http("PUT", path, {"reason": "QA robot", "durationSeconds": 86400})
    assert added.status == 201
    assert added.body["unblocked"] is None
    entry = added.body["allow"]
    assert (entry["identityId"], entry["reason"], entry["active"]) == (guest, "QA robot", True)
    assert near(entry["expiresAt"], datetime.now(UTC) + timedelta(days=1))
    assert http("GET", path).body == entry

    replaced = http("PUT", path, {"reason": "QA robot, forever"})
    assert replaced.status == 200
    assert replaced.body["allow"]["expiresAt"] is None

    removed = http("DELETE", path, {"reason": "QA is done"})
    assert (removed.status, removed.body["reason"]) == (200, "QA robot, forever")
    assert http("DELETE", path, {"reason": "again"}).body["error"] == "not-allowlisted"
    assert http("GET", path).status == 404


def test_allowlisting_a_blocked_identity_unblocks_it(event: EventTransport, wired: EmbeddedAws) -> None:
    bot, other = wired.new_guest(), wired.new_guest()
    event("PUT", f"/blocks/{bot}", {"reason": "looked like a bot"})
    event("PUT", f"/blocks/{other}", {"reason": "is a bot"})
    events_of(wired)

    reply = event("PUT", f"/allowlist/{bot}", {"reason": "our uptime checker", "expiresAt": "2099-01-01T00:00:00Z"})
    assert reply.status == 201
    unblocked = reply.body["unblocked"]
    assert (unblocked["identityId"], unblocked["status"], unblocked["endedBy"]) == (bot, "unblocked", OPERATOR_ARN)
    assert unblocked["graceUntil"] is None, "an allowlisted identity needs no grace period"
    assert reply.body["allow"]["expiresAt"] == "2099-01-01T00:00:00Z"
    assert denied(wired) == {other}
    assert [(e["detail-type"], e["detail"]["identityId"]) for e in events_of(wired)] == [("Identity Unblocked", bot)]
    assert [(r.action, r.actor) for r in store(wired).history(bot)] == [
        (AuditAction.BLOCK, OPERATOR_ARN),
        (AuditAction.ALLOW, OPERATOR_ARN),
        (AuditAction.UNBLOCK, OPERATOR_ARN),
    ]
    assert event("GET", f"/blocks/{bot}").body["blocked"] is False


def test_allowlist_changes_are_audited(event: EventTransport, wired: EmbeddedAws) -> None:
    guest = wired.new_guest()
    event("PUT", f"/allowlist/{guest}", {"reason": "partner"})
    event("DELETE", f"/allowlist/{guest}", {"reason": "contract ended"})
    assert [(r.action, r.actor, r.reason) for r in store(wired).history(guest)] == [
        (AuditAction.ALLOW, OPERATOR_ARN, "partner"),
        (AuditAction.DISALLOW, OPERATOR_ARN, "contract ended"),
    ]


def guests_allowed(aws: EmbeddedAws) -> bool:
    """The identity pool's AllowUnauthenticatedIdentities."""
    return bool(
        aws.cognito.describe_identity_pool(IdentityPoolId=aws.identity_pool_id)["AllowUnauthenticatedIdentities"]
    )


def test_lockdown_on_and_off(http: Transport, wired: EmbeddedAws) -> None:
    assert http("GET", "/lockdown").body == {"enabled": False, "since": None, "actor": None, "reason": None}

    on = http("PUT", "/lockdown", {"enabled": True, "reason": "bot wave"})
    assert on.status == 200
    assert (on.body["enabled"], on.body["changed"], on.body["reason"]) == (True, True, "bot wave")
    assert near(on.body["since"], datetime.now(UTC))
    assert not guests_allowed(wired)
    lockdown_policy = wired.guest_role_policies()["rumguard-deny-lockdown"]
    assert "aws:TokenIssueTime" in json.dumps(lockdown_policy)
    assert http("GET", "/monitors").body["lockdown"] is True

    again = http("PUT", "/lockdown", {"enabled": True, "reason": "still a bot wave"})
    assert (again.body["changed"], again.body["since"], again.body["reason"]) == (False, on.body["since"], "bot wave")

    off = http("PUT", "/lockdown", {"enabled": False, "reason": "wave is over"})
    assert (off.body["enabled"], off.body["changed"]) == (False, True)
    assert guests_allowed(wired)
    assert "rumguard-deny-lockdown" not in wired.guest_role_policies()
    changes = events_of(wired, "Guest Lockdown Changed")
    assert [(e["detail"]["enabled"], e["detail"]["reason"]) for e in changes] == [
        (True, "bot wave"),
        (False, "wave is over"),
    ]


def test_lockdown_is_audited_with_the_caller(event: EventTransport, wired: EmbeddedAws) -> None:
    event("PUT", "/lockdown", {"enabled": True, "reason": "bot wave"})
    assert event("GET", "/lockdown").body["actor"] == OPERATOR_ARN
    [record] = store(wired).history("*")
    assert (record.action, record.actor, record.reason) == (AuditAction.LOCKDOWN_ON, OPERATOR_ARN, "bot wave")
    [change] = events_of(wired, "Guest Lockdown Changed")
    assert change["detail"]["actor"] == OPERATOR_ARN
