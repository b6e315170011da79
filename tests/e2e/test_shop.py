"""The real RUM web client end to end: aws-rum-web in headless Chromium, the embedded AWS, RUM Guard.

Shoppers go through the test shop in Chromium; the client takes credentials from the embedded Cognito
pool and sends its batches to the local RUM data plane, which writes them to the two app monitors' log
groups and hands them to the real ingest handler. Nothing here is simulated but the AWS services.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from rumguard import policy
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.browser import Browser, Journey, guest_journey, signed_in_journey, start_bot
from rumguard.local.dataplane import CognitoError, CognitoHttpClient, LocalRum, Receipt
from rumguard.local.emf import EmfOutput

pytestmark = pytest.mark.e2e

RUM = "com.amazon.rum."
DIMS = {
    "guest": {"AppMonitor": GUEST_MONITOR, "Audience": "guest"},
    "signed-in": {"AppMonitor": SIGNED_IN_MONITOR, "Audience": "signed-in"},
}
MONITOR = {"guest": GUEST_MONITOR, "signed-in": SIGNED_IN_MONITOR}
#: Event types every run of the two journeys sends (LCP and FID come too, but only when the browser decides).
ALWAYS_SENT = {
    "session_start_event",
    "page_view_event",
    "performance_navigation_event",
    "performance_resource_event",
    "time_to_first_byte_event",
    "first_contentful_paint_event",
    "cumulative_layout_shift_event",
    "interaction_to_next_paint_event",
    "dom_event",
    "http_event",
    "js_error_event",
    "rrweb_event",
}
#: Timing metrics and the event type each value comes from.
TIMINGS = {
    "PageLoadTime": "performance_navigation_event",
    "LargestContentfulPaint": "largest_contentful_paint_event",
    "CumulativeLayoutShift": "cumulative_layout_shift_event",
    "InteractionToNextPaint": "interaction_to_next_paint_event",
}


def written(rum: LocalRum, audience: str) -> list[dict[str, Any]]:
    """Every RUM event the data plane wrote to an audience's monitor, parsed."""
    return [json.loads(event.message) for event in rum.dataplane.log_events(MONITOR[audience])]


def total(journeys: list[Journey], table: str, audience: str) -> int:
    """A journey counter summed over the journeys."""
    return sum(getattr(journey, table).get(audience, 0) for journey in journeys)


def assert_nothing_rejected(rum: LocalRum, output: EmfOutput) -> None:
    """Every event parsed: no rejection in any dimension set, no ingest error or warning."""
    assert rum.errors() == []
    assert output.series("RejectedEvents"), "ingest published no RejectedEvents series at all"
    for dimensions, values in output.series("RejectedEvents").items():
        assert sum(values) == 0, dimensions
    warnings = [record for i in rum.invocations for record in i.output.log_records(level="WARNING")]
    assert warnings == []


def first_refusal(rum: LocalRum, identity: str) -> Receipt:
    """The first 403 the data plane gave an identity."""
    return rum.receipts(identity_id=identity, error="AccessDeniedException")[0]


def test_signed_in_and_guest_journeys_produce_the_metrics_of_both_monitors(
    rum: LocalRum, browser: Browser, shop: str
) -> None:
    journeys = [signed_in_journey(browser, shop, "alice", "alice"), guest_journey(browser, shop, "guest")]
    assert rum.wait_quiet()

    output = rum.emf()
    assert_nothing_rejected(rum, output)
    assert rum.receipts() and all(receipt.accepted for receipt in rum.receipts())
    # The client sends on its timer with a signed, gzipped fetch, and on page hide with a presigned beacon.
    assert {receipt.presigned for receipt in rum.receipts()} == {True, False}
    sent = {event["event_type"].removeprefix(RUM) for audience in DIMS for event in written(rum, audience)}
    assert sent >= ALWAYS_SENT
    for audience, dims in DIMS.items():
        events = written(rum, audience)
        types = Counter(event["event_type"].removeprefix(RUM) for event in events)
        sessions = sum(1 for journey in journeys if audience in journey.identities)
        assert output.total("Events", **dims) == len(events) > 0, audience
        assert output.total("PageViews", **dims) == types["page_view_event"] == total(journeys, "page_loads", audience)
        assert output.total("SessionStarts", **dims) == types["session_start_event"] == sessions
        assert output.total("JsErrors", **dims) == types["js_error_event"] == total(journeys, "js_errors", audience)
        assert output.total("HttpErrors", **dims) == types["http_event"] == total(journeys, "http_errors", audience)
        assert types["dom_event"] == total(journeys, "clicks", audience)
        for metric, event_type in TIMINGS.items():
            assert len(output.values(metric, **dims)) == types[event_type], (audience, metric)
        assert types["performance_navigation_event"] == total(journeys, "page_loads", audience)
        assert types["interaction_to_next_paint_event"] >= 1  # the slow "add to cart" handler
        # Every event carries the identity the page took from the pool, in the monitor of its audience.
        identities = {event["metadata"]["cognitoIdentityId"] for event in events}
        assert identities == {journey.identities[audience] for journey in journeys if audience in journey.identities}
        assert {event["application_id"] for event in events} == {rum.aws.monitor(MONITOR[audience]).id}
    assert rum.receipts(signed_in=True) == rum.receipts(app_monitor=SIGNED_IN_MONITOR)


def test_the_bot_is_blocked_while_honest_shoppers_keep_sending(
    aws: EmbeddedAws, rum: LocalRum, browser: Browser, shop: str
) -> None:
    bot = start_bot(browser, shop)
    bot_identity = bot.identity_id
    early = guest_journey(browser, shop, "early-guest")  # while the bot floods
    assert rum.wait_until(lambda: bool(rum.receipts(identity_id=bot_identity, error="AccessDeniedException")))
    blocked_at = first_refusal(rum, bot_identity).at
    late = [signed_in_journey(browser, shop, "alice", "alice"), guest_journey(browser, shop, "late-guest")]
    # The bot keeps trying (it re-enables the client whenever the client gives up after refusals).
    assert rum.wait_until(lambda: len(rum.receipts(identity_id=bot_identity, error="AccessDeniedException")) >= 3)
    bot_pages = int(bot.evaluate("window.botPages"))
    bot.close()
    assert rum.wait_quiet()

    # The bot: accepted until RUM Guard blocked it, refused ever after, by the block statement.
    bot_receipts = rum.receipts(identity_id=bot_identity)
    accepted = [r for r in bot_receipts if r.accepted]
    refused = [r for r in bot_receipts if not r.accepted]
    assert accepted and all(r.at < blocked_at for r in accepted)
    assert all(r.error == "AccessDeniedException" for r in refused)
    assert {r.detail for r in refused} == {f"{policy.BLOCKS_POLICY}/RumGuardBlockedIdentities"}
    assert sum(r.events for r in accepted) < bot_pages
    deny = aws.guest_role_policies()[policy.BLOCKS_POLICY]["Statement"][0]
    assert deny["Condition"]["StringEquals"][policy.SUB_KEY] == [bot_identity]
    assert not aws.identity_exists(bot_identity)
    (blocked,) = [e for e in aws.published_events() if e["detail-type"] == "Identity Blocked"]
    assert (blocked["detail"]["identityId"], blocked["detail"]["appMonitor"]) == (bot_identity, GUEST_MONITOR)
    assert blocked["detail"]["rule"] == "page-velocity"

    # Honest shoppers, before and after the block: every batch accepted, every event written and ingested.
    journeys = [early, *late]
    honest = {identity for journey in journeys for identity in journey.identities.values()}
    honest_receipts = [r for r in rum.receipts() if r.identity_id in honest]
    assert honest_receipts and all(r.accepted for r in honest_receipts)
    for journey in late:
        for identity in journey.identities.values():
            assert any(r.at > blocked_at for r in honest_receipts if r.identity_id == identity)
    for audience in DIMS:
        senders = {e["metadata"]["cognitoIdentityId"] for e in written(rum, audience)}
        assert {j.identities[audience] for j in journeys if audience in j.identities} <= senders
    output = rum.emf()
    assert_nothing_rejected(rum, output)
    assert output.total("IdentitiesBlocked", **DIMS["guest"]) == 1
    assert output.total("PageViews", **DIMS["signed-in"]) == total(journeys, "page_loads", "signed-in")
    written_guest_events = len(written(rum, "guest"))
    assert output.total("Events", **DIMS["guest"]) == written_guest_events


def test_an_operator_unblock_lets_the_identitys_credentials_through_again(
    aws: EmbeddedAws, rum: LocalRum, browser: Browser, shop: str, unblock: Callable[[str], None]
) -> None:
    bot = start_bot(browser, shop)
    bot_identity = bot.identity_id
    assert rum.wait_until(lambda: bool(rum.receipts(identity_id=bot_identity, error="AccessDeniedException")))

    unblock(bot_identity)
    unblocked_at = datetime.now(UTC)

    # The deny is lifted at once: the credentials the page already holds are accepted again...
    assert rum.wait_until(
        lambda: any(r.accepted and r.at > unblocked_at for r in rum.receipts(identity_id=bot_identity))
    )
    assert policy.BLOCKS_POLICY not in aws.guest_role_policies()
    # ...and the grace period keeps the automatic rules off it while it goes on flooding.
    time.sleep(3)
    bot.close()
    assert rum.wait_quiet()
    after = [r for r in rum.receipts(identity_id=bot_identity) if r.at > unblocked_at]
    assert len(after) >= 2 and all(r.accepted for r in after)
    kinds = [e["detail-type"] for e in aws.published_events()]
    assert kinds == ["Identity Blocked", "Identity Unblocked"]
    # The identity itself does not come back: the block deleted it from the pool, and Cognito cannot
    # undelete. When those credentials expire (within the hour) the page must mint a new identity.
    assert not aws.identity_exists(bot_identity)
    with pytest.raises(CognitoError) as gone:
        CognitoHttpClient(rum.cognito_endpoint).credentials(bot_identity)
    assert gone.value.code == "ResourceNotFoundException"
    assert rum.errors() == []
