"""The block routes on moto: blocking and unblocking by hand go through the decision service, so the table,
the audit trail, the guest role's deny policy, Cognito and the bus all change as for an automatic block.

Tests that take ``http`` run through both Chalice's test client and a Lambda proxy event; the longer ones
take ``event`` only (the two transports meet at the same ``OperatorApi.handle``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.support import OPERATOR_ARN, EventTransport, Transport, denied, events_of, guard_at, near, store

from rumguard.decisions import AuditAction, Mode
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.fakes import FakeClock

REASON = {"reason": "scraping the catalogue"}


def test_block_is_enforced_audited_and_announced(http: Transport, wired: EmbeddedAws) -> None:
    bot = wired.new_guest()
    reply = http("PUT", f"/blocks/{bot}", {**REASON, "durationSeconds": 1800, "appMonitor": GUEST_MONITOR})

    assert reply.status == 201
    block = reply.body
    assert (block["identityId"], block["status"], block["rule"], block["appMonitor"]) == (
        bot,
        "active",
        "manual",
        GUEST_MONITOR,
    )
    created = datetime.fromisoformat(block["createdAt"])
    assert near(block["createdAt"], datetime.now(UTC))
    assert datetime.fromisoformat(block["expiresAt"]) - created == timedelta(seconds=1800)
    assert bot in denied(wired)
    assert not wired.identity_exists(bot), "a block deletes the identity so it gets no new credentials"
    [announced] = events_of(wired, "Identity Blocked")
    assert announced["source"] == "rumguard"
    assert announced["detail"]["identityId"] == bot
    assert announced["detail"]["reason"] == REASON["reason"]
    assert announced["detail"]["dryRun"] is False
    [record] = store(wired).history(bot)
    assert (record.action, record.reason, record.rule) == (AuditAction.BLOCK, REASON["reason"], "manual")


def test_block_without_duration_lasts_the_configured_manual_time(event: EventTransport, wired: EmbeddedAws) -> None:
    block = event("PUT", f"/blocks/{wired.new_guest()}", REASON).body
    length = datetime.fromisoformat(block["expiresAt"]) - datetime.fromisoformat(block["createdAt"])
    assert length == timedelta(hours=1)


def test_the_actor_is_the_callers_arn(event: EventTransport, wired: EmbeddedAws) -> None:
    bot = wired.new_guest()
    assert event("PUT", f"/blocks/{bot}", REASON).body["actor"] == OPERATOR_ARN
    event("DELETE", f"/blocks/{bot}", {"reason": "false positive"})

    assert [(r.action, r.actor) for r in store(wired).history(bot)] == [
        (AuditAction.BLOCK, OPERATOR_ARN),
        (AuditAction.UNBLOCK, OPERATOR_ARN),
    ]
    published = events_of(wired)
    assert [(e["detail-type"], e["detail"]["actor"]) for e in published] == [
        ("Identity Blocked", OPERATOR_ARN),
        ("Identity Unblocked", OPERATOR_ARN),
    ]


def test_without_a_caller_arn_the_actor_is_unknown(wired: EmbeddedAws) -> None:
    bot = wired.new_guest()
    reply = EventTransport(user_arn=None)("PUT", f"/blocks/{bot}", REASON)
    assert reply.body["actor"] == "unknown"


def test_repeating_a_block_returns_the_same_block(http: Transport, wired: EmbeddedAws) -> None:
    bot = wired.new_guest()
    first = http("PUT", f"/blocks/{bot}", REASON)
    again = http("PUT", f"/blocks/{bot}", {"reason": "another reason", "durationSeconds": 7200})

    assert (first.status, again.status) == (201, 200)
    assert again.body == first.body
    assert len(events_of(wired, "Identity Blocked")) == 1
    assert [r.action for r in store(wired).history(bot)] == [AuditAction.BLOCK]


def test_a_signed_in_identity_needs_force(event: EventTransport, wired: EmbeddedAws) -> None:
    member = wired.new_signed_in("alice")
    refused = event("PUT", f"/blocks/{member}", REASON)

    assert refused.status == 409
    assert refused.body["error"] == "signed-in-identity"
    assert store(wired).get_block(member) is None
    assert events_of(wired) == [] and member not in denied(wired)

    forced = event("PUT", f"/blocks/{member}", {**REASON, "force": True})
    assert forced.status == 201
    assert member in denied(wired)


def test_unknown_identity(http: Transport, wired: EmbeddedAws) -> None:
    stranger = "us-east-1:0b6a1f6e-3c2d-4e5f-8a9b-7c6d5e4f3a2b"
    reply = http("PUT", f"/blocks/{stranger}", REASON)
    assert (reply.status, reply.body["error"]) == (404, "unknown-identity")
    assert http("GET", f"/blocks/{stranger}").status == 404


def test_unblock_lifts_the_deny_and_starts_the_grace_period(event: EventTransport, wired: EmbeddedAws) -> None:
    bot, other = wired.new_guest(), wired.new_guest()
    event("PUT", f"/blocks/{bot}", REASON)
    event("PUT", f"/blocks/{other}", REASON)
    events_of(wired)
    reply = event("DELETE", f"/blocks/{bot}", {"reason": "false positive"})

    assert reply.status == 200
    ended = reply.body
    assert (ended["status"], ended["endReason"]) == ("unblocked", "false positive")
    assert near(ended["graceUntil"], datetime.now(UTC) + timedelta(hours=1))
    assert denied(wired) == {other}
    # Cognito cannot bring a deleted identity back: the browser gets a new one, which starts clean.
    assert not wired.identity_exists(bot)
    [announced] = events_of(wired)
    assert (announced["detail-type"], announced["detail"]["identityId"]) == ("Identity Unblocked", bot)
    assert announced["detail"]["reason"] == "false positive"
    assert [r.action for r in store(wired).history(bot)] == [AuditAction.BLOCK, AuditAction.UNBLOCK]


def test_unblocking_what_is_not_blocked_is_404(http: Transport, wired: EmbeddedAws) -> None:
    bot = wired.new_guest()
    reply = http("DELETE", f"/blocks/{bot}", {"reason": "x"})
    assert (reply.status, reply.body["error"]) == (404, "not-blocked")
    http("PUT", f"/blocks/{bot}", REASON)
    assert http("DELETE", f"/blocks/{bot}", {"reason": "x"}).status == 200
    assert http("DELETE", f"/blocks/{bot}", {"reason": "x"}).body["error"] == "not-blocked"


def test_show_a_block_with_its_decision_history(event: EventTransport, wired: EmbeddedAws) -> None:
    bot = wired.new_guest()
    event("PUT", f"/blocks/{bot}", REASON)
    event("DELETE", f"/blocks/{bot}", {"reason": "false positive"})
    detail = event("GET", f"/blocks/{bot}").body

    assert detail["identityId"] == bot and detail["blocked"] is False
    assert detail["block"]["status"] == "unblocked"
    assert [(h["action"], h["reason"]) for h in detail["history"]] == [
        ("block", REASON["reason"]),
        ("unblock", "false positive"),
    ]


def test_an_identity_without_any_record_is_404(http: Transport, wired: EmbeddedAws) -> None:
    reply = http("GET", f"/blocks/{wired.new_guest()}")
    assert (reply.status, reply.body["error"]) == (404, "not-found")


def test_list_active_blocks_newest_first(event: EventTransport, wired: EmbeddedAws) -> None:
    first, second, ended = wired.new_guest(), wired.new_guest(), wired.new_guest()
    for bot in (first, second, ended):
        event("PUT", f"/blocks/{bot}", REASON)
    event("DELETE", f"/blocks/{ended}", {"reason": "false positive"})

    listing = event("GET", "/blocks").body
    assert [b["identityId"] for b in listing["blocks"]] == [second, first]
    assert listing["nextToken"] is None
    assert [b["identityId"] for b in event("GET", "/blocks?status=unblocked").body["blocks"]] == [ended]
    assert {b["identityId"] for b in event("GET", "/blocks?status=all").body["blocks"]} == {first, second, ended}


def test_list_expired_blocks(event: EventTransport, wired: EmbeddedAws) -> None:
    # A block made two hours ago by the same decision service: past its expiry, not yet swept.
    old = wired.new_guest()
    past = guard_at(wired, FakeClock(datetime.now(UTC) - timedelta(hours=2)), Mode.ENFORCE)
    past.block(old, reason="last week's bot", actor=OPERATOR_ARN)
    current = wired.new_guest()
    event("PUT", f"/blocks/{current}", REASON)

    assert [b["identityId"] for b in event("GET", "/blocks").body["blocks"]] == [current]
    expired = event("GET", "/blocks?status=expired").body["blocks"]
    assert [(b["identityId"], b["status"]) for b in expired] == [(old, "expired")]
    assert event("GET", f"/blocks/{old}").body["blocked"] is False


def test_list_by_monitor(event: EventTransport, wired: EmbeddedAws) -> None:
    guest_bot, member, unattributed = wired.new_guest(), wired.new_signed_in("bob"), wired.new_guest()
    event("PUT", f"/blocks/{guest_bot}", {**REASON, "appMonitor": GUEST_MONITOR})
    event("PUT", f"/blocks/{member}", {**REASON, "appMonitor": SIGNED_IN_MONITOR, "force": True})
    event("PUT", f"/blocks/{unattributed}", REASON)

    listing = event("GET", f"/blocks?monitor={GUEST_MONITOR}").body["blocks"]
    assert [b["identityId"] for b in listing] == [guest_bot]
    unknown = event("GET", "/blocks?monitor=SomeoneElses")
    assert (unknown.status, unknown.body["error"]) == (400, "unknown-monitor")
    refused = event("PUT", f"/blocks/{wired.new_guest()}", {**REASON, "appMonitor": "SomeoneElses"})
    assert (refused.status, refused.body["error"]) == (400, "unknown-monitor")


def test_pages_follow_next_token(event: EventTransport, wired: EmbeddedAws) -> None:
    bots = [wired.new_guest() for _ in range(5)]
    for bot in bots:
        event("PUT", f"/blocks/{bot}", REASON)

    seen: list[str] = []
    sizes: list[int] = []
    path = "/blocks?limit=2"
    while True:
        page = event("GET", path).body
        seen += [b["identityId"] for b in page["blocks"]]
        sizes.append(len(page["blocks"]))
        if page["nextToken"] is None:
            break
        path = f"/blocks?limit=2&nextToken={page['nextToken']}"
    assert sizes == [2, 2, 1]
    assert seen == list(reversed(bots))


def test_a_token_only_fits_its_own_listing(event: EventTransport, wired: EmbeddedAws) -> None:
    for _ in range(2):
        event("PUT", f"/blocks/{wired.new_guest()}", REASON)
    token = event("GET", "/blocks?limit=1").body["nextToken"]
    assert token

    foreign = event("GET", f"/blocks?limit=1&status=all&nextToken={token}")
    assert (foreign.status, foreign.body["error"]) == (400, "invalid-token")
    forged = event("GET", "/blocks?nextToken=bm90LWEtdG9rZW4")
    assert (forged.status, forged.body["error"]) == (400, "invalid-token")


def test_monitors_count_active_blocks(event: EventTransport, wired: EmbeddedAws) -> None:
    event("PUT", f"/blocks/{wired.new_guest()}", {**REASON, "appMonitor": GUEST_MONITOR})
    event("PUT", f"/blocks/{wired.new_guest()}", {**REASON, "appMonitor": GUEST_MONITOR})
    event("PUT", f"/blocks/{wired.new_guest()}", REASON)
    listing = event("GET", "/monitors").body

    assert listing["monitors"] == [
        {"name": GUEST_MONITOR, "audience": "guest", "activeBlocks": 2},
        {"name": SIGNED_IN_MONITOR, "audience": "signed-in", "activeBlocks": 0},
    ]
    assert (listing["unattributedActiveBlocks"], listing["mode"], listing["lockdown"]) == (1, "enforce", False)
