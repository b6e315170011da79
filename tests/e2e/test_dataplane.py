"""The local RUM data plane on its own: SigV4-signed ``PutRumEvents`` from botocore, no browser.

It must authenticate callers by the credentials the embedded Cognito issued, honour the deny statements
RUM Guard writes on the guest role as IAM would (the block on ``cognito-identity.amazonaws.com:sub`` and the
lockdown on ``aws:TokenIssueTime``), refuse malformed batches, and write accepted events to the app
monitor's log group in RUM's exact format, from where the subscription delivers them to ingest.
"""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rumguard import policy
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws, log_stream_name
from rumguard.local.dataplane import (
    CognitoError,
    CognitoHttpClient,
    HttpAnswer,
    LocalRum,
    PolicyError,
    RumDataPlane,
    RumHttpClient,
    SessionCredentials,
    evaluate,
    http_post,
    rum_batch,
)

PAGE_VIEW = ("com.amazon.rum.page_view_event", {"version": "1.0.0", "pageId": "/", "interaction": 0})
SESSION_START = ("com.amazon.rum.session_start_event", {"version": "1.0.0"})
JS_ERROR = ("com.amazon.rum.js_error_event", {"version": "1.0.0", "type": "Error", "message": "boom"})
LOGIN = {"cognito-idp.example": "token-of-alice"}
GUEST_DIMS = {"AppMonitor": GUEST_MONITOR, "Audience": "guest"}
SIGNED_IN_DIMS = {"AppMonitor": SIGNED_IN_MONITOR, "Audience": "signed-in"}


class Visitor:
    """A browser's part, from Python: an identity, its credentials, and signed batches to one monitor."""

    def __init__(self, rum: LocalRum, logins: dict[str, str] | None = None) -> None:
        self.rum = rum
        self.logins = logins
        cognito = CognitoHttpClient(rum.cognito_endpoint)
        self.identity_id = cognito.get_id(rum.aws.identity_pool_id, logins)
        self.credentials = cognito.credentials(self.identity_id, logins)
        self.client = RumHttpClient(rum.dataplane_endpoint, self.credentials, rum.aws.region)
        monitor = SIGNED_IN_MONITOR if logins else GUEST_MONITOR
        self.monitor_id = rum.aws.monitor(monitor).id

    def batch(self, *events: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        """A batch of these events (a page view if none), carrying this visitor's identity."""
        return rum_batch(self.monitor_id, events or (PAGE_VIEW,), identity_id=self.identity_id)

    def send(self, *events: tuple[str, dict[str, Any]], **options: Any) -> HttpAnswer:
        """Send one batch; ``options`` go to ``RumHttpClient.put_rum_events``."""
        return self.client.put_rum_events(self.batch(*events), **options)


def put_policy(aws: EmbeddedAws, name: str, document: dict[str, Any]) -> None:
    """Write a deny policy on the guest role exactly as RUM Guard renders it."""
    aws.iam.put_role_policy(RoleName=aws.guest_role_name, PolicyName=name, PolicyDocument=policy.render(document))


def messages(rum: LocalRum, monitor: str) -> list[dict[str, Any]]:
    """The log messages written to a monitor's log group so far, parsed."""
    return [json.loads(event.message) for event in rum.dataplane.log_events(monitor)]


# --- what is written, and delivered ---------------------------------------------------------------------
def test_a_batch_is_written_in_rums_log_format_and_delivered_to_ingest(rum: LocalRum) -> None:
    guest = Visitor(rum)
    batch = guest.batch(SESSION_START, PAGE_VIEW)
    answer = guest.client.put_rum_events(batch)

    assert (answer.status, answer.body) == (200, {})
    assert answer.headers["access-control-allow-origin"] == "*"
    written = messages(rum, GUEST_MONITOR)
    assert [m["event_id"] for m in written] == [e["id"] for e in batch["RumEvents"]]
    first, sent = written[0], batch["RumEvents"][0]
    session_metadata = json.loads(batch["SessionMetadata"])
    assert list(first) == [
        "event_timestamp",
        "event_type",
        "event_id",
        "event_version",
        "log_stream",
        "application_id",
        "application_version",
        "metadata",
        "user_details",
        "event_details",
    ]
    assert first["event_timestamp"] == sent["timestamp"] * 1000
    assert first["event_type"] == sent["type"]
    assert first["event_version"] == "1.0.0"
    assert first["log_stream"] == log_stream_name(first["event_timestamp"])
    assert first["application_id"] == rum.aws.monitor(GUEST_MONITOR).id
    assert first["application_version"] == "1.0.0"
    # aws-rum-web 3 sends session attributes once per batch: they are merged under the event's own.
    assert first["metadata"] == {**session_metadata, **json.loads(sent["metadata"])}
    assert first["metadata"]["cognitoIdentityId"] == guest.identity_id
    assert first["user_details"] == batch["UserDetails"]
    assert first["event_details"] == json.loads(sent["details"])
    stream = log_stream_name(first["event_timestamp"])
    assert rum.aws.log_streams(rum.aws.monitor(GUEST_MONITOR).log_group) == [stream]

    assert rum.errors() == []
    output = rum.emf()
    assert output.total("Events", **GUEST_DIMS) == 2
    assert output.total("SessionStarts", **GUEST_DIMS) == 1
    assert output.total("PageViews", **GUEST_DIMS) == 1
    assert output.total("RejectedEvents", **GUEST_DIMS) == 0
    (receipt,) = rum.receipts()
    assert (receipt.status, receipt.app_monitor, receipt.identity_id, receipt.events) == (
        200,
        GUEST_MONITOR,
        guest.identity_id,
        2,
    )
    assert receipt.signed_in is False


def test_signed_in_traffic_goes_to_its_monitor_with_the_signed_in_role(rum: LocalRum) -> None:
    alice = Visitor(rum, LOGIN)
    assert alice.send(SESSION_START, JS_ERROR).status == 200
    assert [m["event_type"] for m in messages(rum, SIGNED_IN_MONITOR)] == [SESSION_START[0], JS_ERROR[0]]
    assert messages(rum, GUEST_MONITOR) == []
    assert rum.emf().total("JsErrors", **SIGNED_IN_DIMS) == 1
    assert rum.receipts()[0].signed_in is True
    # The signed-in identity needs its login for credentials, as in Cognito.
    with pytest.raises(CognitoError) as refused:
        CognitoHttpClient(rum.cognito_endpoint).credentials(alice.identity_id)
    assert refused.value.code == "NotAuthorizedException"


def test_gzipped_fetches_and_presigned_beacons_are_accepted(rum: LocalRum) -> None:
    guest = Visitor(rum)
    assert guest.send(PAGE_VIEW, gzipped=True).status == 200
    assert guest.send(PAGE_VIEW, presign=True).status == 200
    # A beacon that carries the body's hash in its query string, as aws-rum-web's presigned beacon does.
    hoisted = guest.send(PAGE_VIEW, presign=True, extra_headers={"X-Amz-Content-Sha256": "0" * 64})
    assert (hoisted.status, hoisted.error) == (403, "InvalidSignatureException")
    assert [(r.gzip, r.presigned) for r in rum.receipts(status=200)] == [(True, False), (False, True)]
    assert len(messages(rum, GUEST_MONITOR)) == 2


def test_delivery_can_wait_until_asked(aws: EmbeddedAws) -> None:
    delivered: list[str] = []
    with LocalRum(aws, deliver_immediately=False) as rum:
        rum.dataplane.deliver = lambda monitor, event: delivered.append(monitor.name)
        guest = Visitor(rum)
        assert guest.send().status == 200
        assert guest.send(PAGE_VIEW, PAGE_VIEW).status == 200
        assert delivered == []
        assert rum.dataplane.deliver_pending() == 3
        assert delivered == [GUEST_MONITOR]  # one stream, one delivery
        assert rum.dataplane.deliver_pending() == 0


# --- who may send ---------------------------------------------------------------------------------------
def test_a_block_denies_exactly_the_blocked_identity(rum: LocalRum) -> None:
    guests = [Visitor(rum) for _ in range(4)]
    alice = Visitor(rum, LOGIN)
    blocked = guests[1]
    put_policy(rum.aws, policy.BLOCKS_POLICY, policy.blocks_document([blocked.identity_id]))

    answers = {visitor.identity_id: visitor.send() for visitor in [*guests, alice]}

    denied = {identity for identity, answer in answers.items() if answer.status != 200}
    assert denied == {blocked.identity_id}
    refusal = answers[blocked.identity_id]
    assert (refusal.status, refusal.error) == (403, "AccessDeniedException")
    assert "rum:PutRumEvents" in refusal.body["message"]
    (receipt,) = rum.receipts(status=403)
    assert receipt.identity_id == blocked.identity_id
    assert receipt.detail == f"{policy.BLOCKS_POLICY}/RumGuardBlockedIdentities"
    written = {m["metadata"]["cognitoIdentityId"] for m in messages(rum, GUEST_MONITOR)}
    assert written == {g.identity_id for g in guests} - {blocked.identity_id}


def test_lifting_a_block_lets_the_same_credentials_through_again(rum: LocalRum) -> None:
    guest = Visitor(rum)
    put_policy(rum.aws, policy.BLOCKS_POLICY, policy.blocks_document([guest.identity_id]))
    assert guest.send().status == 403
    rum.aws.iam.delete_role_policy(RoleName=rum.aws.guest_role_name, PolicyName=policy.BLOCKS_POLICY)
    assert guest.send().status == 200  # IAM is evaluated per request, with the role's policies as they are now


def test_lockdown_denies_guest_sessions_issued_before_it_only(rum: LocalRum) -> None:
    before = Visitor(rum)
    alice = Visitor(rum, LOGIN)
    time.sleep(1.05)  # aws:TokenIssueTime has whole seconds
    since = datetime.now(UTC)
    put_policy(rum.aws, policy.LOCKDOWN_POLICY, policy.lockdown_document(since))
    after = Visitor(rum)  # a guest session issued after the lockdown began (whole second)

    assert before.credentials.expiration > since
    assert (before.send().status, before.send().error) == (403, "AccessDeniedException")
    assert after.send().status == 200
    assert alice.send().status == 200  # the signed-in role carries no lockdown


def test_the_deny_holds_for_credentials_issued_before_the_identity_was_deleted(rum: LocalRum) -> None:
    guest = Visitor(rum)
    with rum.locked():
        rum.aws.cognito.delete_identities(IdentityIdsToDelete=[guest.identity_id])
    # Deleting the identity revokes nothing: its credentials still work until they expire...
    assert guest.send().status == 200
    # ...so the deny is what stops them, and no new credentials can be had.
    put_policy(rum.aws, policy.BLOCKS_POLICY, policy.blocks_document([guest.identity_id]))
    assert guest.send().status == 403
    with pytest.raises(CognitoError) as gone:
        CognitoHttpClient(rum.cognito_endpoint).credentials(guest.identity_id)
    assert gone.value.code == "ResourceNotFoundException"


def test_unknown_keys_bad_signatures_and_expired_credentials_are_refused(rum: LocalRum) -> None:
    guest = Visitor(rum)
    forged = SessionCredentials(
        guest.identity_id, "ASIAFORGEDFORGED0000", "secret", "token", datetime.now(UTC) + timedelta(hours=1)
    )
    stranger = RumHttpClient(rum.dataplane_endpoint, forged, rum.aws.region)
    assert stranger.put_rum_events(guest.batch()).error == "UnrecognizedClientException"

    wrong_secret = SessionCredentials(
        guest.identity_id,
        guest.credentials.access_key_id,
        "not-the-secret",
        guest.credentials.session_token,
        guest.credentials.expiration,
    )
    answer = RumHttpClient(rum.dataplane_endpoint, wrong_secret, rum.aws.region).put_rum_events(guest.batch())
    assert (answer.status, answer.error) == (403, "InvalidSignatureException")

    wrong_token = SessionCredentials(
        guest.identity_id,
        guest.credentials.access_key_id,
        guest.credentials.secret_access_key,
        "another-token",
        guest.credentials.expiration,
    )
    answer = RumHttpClient(rum.dataplane_endpoint, wrong_token, rum.aws.region).put_rum_events(guest.batch())
    assert (answer.status, answer.error) == (403, "UnrecognizedClientException")

    wrong_region = RumHttpClient(rum.dataplane_endpoint, guest.credentials, "eu-west-1").put_rum_events(guest.batch())
    assert (wrong_region.status, wrong_region.error) == (403, "InvalidSignatureException")

    url = f"{rum.dataplane_endpoint}/appmonitors/{guest.monitor_id}"
    unsigned = http_post(url, json.dumps(guest.batch()).encode(), {"Content-Type": "application/json"})
    assert (unsigned.status, unsigned.error) == (403, "MissingAuthenticationTokenException")

    # A body changed after signing no longer matches the signature.
    tampered = guest.client.put_rum_events(guest.batch(), extra_headers={"X-Amz-Content-Sha256": "0" * 64})
    assert (tampered.status, tampered.error) == (403, "InvalidSignatureException")

    rum.dataplane.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    expired = guest.send()
    assert (expired.status, expired.error) == (403, "ExpiredTokenException")
    rum.dataplane.clock = lambda: datetime.now(UTC)
    assert guest.send().status == 200
    assert messages(rum, GUEST_MONITOR) and len(rum.receipts(status=200)) == 1


def _events(batch: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**batch, "RumEvents": [{**batch["RumEvents"][0], **changes}]}


MALFORMED: dict[str, Any] = {
    "not JSON": lambda batch: b"{not json",
    "not an object": lambda batch: json.dumps([batch]).encode(),
    "events not a list": lambda batch: json.dumps({**batch, "RumEvents": "none"}).encode(),
    "no batch id": lambda batch: json.dumps({k: v for k, v in batch.items() if k != "BatchId"}).encode(),
    "details not JSON": lambda batch: json.dumps(_events(batch, details="{oops")).encode(),
    "timestamp not a number": lambda batch: json.dumps(_events(batch, timestamp="now")).encode(),
    "event metadata not an object": lambda batch: json.dumps(_events(batch, metadata="[1]")).encode(),
    "session metadata not an object": lambda batch: json.dumps({**batch, "SessionMetadata": "[1]"}).encode(),
    "another monitor's id": lambda batch: json.dumps({**batch, "AppMonitorDetails": {"id": "x"}}).encode(),
}


def test_malformed_batches_get_400(rum: LocalRum) -> None:
    guest = Visitor(rum)
    for case, mangle in MALFORMED.items():
        answer = guest.client.put_rum_events(mangle(guest.batch()), app_monitor_id=guest.monitor_id)
        assert (answer.status, answer.error) == (400, "ValidationException"), case
    assert len(rum.receipts(status=400)) == len(MALFORMED)
    assert messages(rum, GUEST_MONITOR) == []
    assert guest.send().status == 200  # the same caller, well-formed


def test_bad_gzip_and_unknown_monitors_are_refused(rum: LocalRum) -> None:
    guest = Visitor(rum)
    not_gzip = guest.client.put_rum_events(
        b"plain", app_monitor_id=guest.monitor_id, extra_headers={"Content-Encoding": "gzip"}
    )
    assert (not_gzip.status, not_gzip.error) == (400, "ValidationException")
    unknown = "00000000-0000-4000-8000-000000000000"
    body = json.dumps(rum_batch(unknown, [PAGE_VIEW], identity_id=guest.identity_id)).encode()
    missing = guest.client.put_rum_events(body, app_monitor_id=unknown)
    assert (missing.status, missing.error) == (404, "ResourceNotFoundException")


def test_browsers_may_call_both_endpoints_from_another_origin(rum: LocalRum) -> None:
    for url in (f"{rum.dataplane_endpoint}/appmonitors/x", f"{rum.cognito_endpoint}/"):
        request = urllib.request.Request(
            url,
            method="OPTIONS",
            headers={
                "Origin": "http://127.0.0.1:9",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-amz-date,authorization",
            },
        )
        with urllib.request.urlopen(request) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:9"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            assert response.headers["Access-Control-Allow-Headers"] == "content-type,x-amz-date,authorization"
    answer = CognitoHttpClient(rum.cognito_endpoint).call("GetId", {"IdentityPoolId": rum.aws.identity_pool_id})
    assert answer.status == 200 and answer.headers["access-control-allow-origin"] == "*"


# --- IAM's logic ----------------------------------------------------------------------------------------
ALLOW = {"Statement": [{"Effect": "Allow", "Action": "rum:PutRumEvents", "Resource": "*"}]}
RESOURCE = "arn:aws:rum:us-east-1:123456789012:appmonitor/Shop"
SUB = "cognito-identity.amazonaws.com:sub"


def test_an_explicit_deny_wins_and_no_allow_is_an_implicit_deny() -> None:
    context = {SUB: "us-east-1:a", "aws:tokenissuetime": "2026-01-01T00:00:00Z"}
    deny = {"Statement": [{"Sid": "X", "Effect": "Deny", "Action": "*", "Resource": "*"}]}
    assert evaluate({"allow": ALLOW}, "rum:PutRumEvents", RESOURCE, context).kind == "allow"
    assert evaluate({"allow": ALLOW, "deny": deny}, "rum:PutRumEvents", RESOURCE, context).statement == "deny/X"
    assert evaluate({}, "rum:PutRumEvents", RESOURCE, context).kind == "implicit-deny"
    assert evaluate({"allow": ALLOW}, "rum:GetAppMonitor", RESOURCE, context).kind == "implicit-deny"
    other = {"Statement": [{"Effect": "Allow", "Action": "rum:Put*", "Resource": "arn:aws:rum:*:*:appmonitor/Other"}]}
    assert evaluate({"o": other}, "RUM:PutRumEvents", RESOURCE, context).kind == "implicit-deny"


def test_conditions_as_iam_evaluates_them() -> None:
    context = {
        SUB: "us-east-1:a",
        "aws:tokenissuetime": "2026-01-01T00:00:00Z",
        "cognito-identity.amazonaws.com:amr": ["unauthenticated"],
    }

    def denied(condition: dict[str, Any]) -> bool:
        deny = {"Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition}]}
        return not evaluate({"a": ALLOW, "d": deny}, "rum:PutRumEvents", RESOURCE, context).allowed

    assert denied({"StringEquals": {SUB: ["us-east-1:b", "us-east-1:a"]}})
    assert not denied({"StringEquals": {SUB: ["us-east-1:b"]}})
    assert denied({"DateLessThan": {"aws:TokenIssueTime": "2026-01-01T00:00:01Z"}})
    assert not denied({"DateLessThan": {"aws:TokenIssueTime": "2026-01-01T00:00:00Z"}})
    assert denied({"StringNotEquals": {"aws:SourceVpc": "vpc-1"}})  # a negated operator on an absent key
    assert not denied({"StringEquals": {"aws:SourceVpc": "vpc-1"}})
    assert denied({"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}})
    assert denied({"ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "unauth*"}})
    assert denied({"Null": {"aws:SourceVpc": "true"}})
    # Operators and keys combine with AND; a statement's keys are case-insensitive.
    assert not denied({"StringEquals": {"COGNITO-IDENTITY.amazonaws.com:SUB": "us-east-1:a"}, "Bool": {"x": "true"}})
    with pytest.raises(PolicyError):
        denied({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})


def test_the_data_plane_is_a_wsgi_app_over_the_embedded_aws(aws: EmbeddedAws) -> None:
    plane = RumDataPlane(aws)
    assert set(plane.by_id) == {m.id for m in aws.monitors()}
    assert plane.resource_arn(aws.monitor(GUEST_MONITOR)) == (
        f"arn:aws:rum:{aws.region}:{aws.account_id}:appmonitor/{GUEST_MONITOR}"
    )
