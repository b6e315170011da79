"""Every 4xx of the API, through Chalice's test client and through a Lambda proxy event: malformed identity ids,
bodies that break the models, bad JSON, wrong content types, bad query strings, unknown routes and methods.
Each answer is JSON ``{"error": CODE, "message": TEXT}`` with its Content-Type, and a status the OpenAPI
document lists (``tests.api.support.checked``).

Refused requests change nothing, so the module shares one embedded AWS and one built decision service.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client
from chalice_app.app import api, app
from tests.api.support import CHALICE_DIR, ClientTransport, EventTransport, Transport, api_environment

from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.context import lambda_context

UUID = "0b6a1f6e-3c2d-4e5f-8a9b-7c6d5e4f3a2b"
GOOD_ID = f"us-east-1:{UUID}"
MALFORMED_IDS = [
    "not-an-identity",
    f"eu-west-1:{UUID}",  # well-formed, but not the identity pool's region
    f"us-east-1:{UUID.upper()}",
    "us-east-1:1234",
    f"us-east-1:{UUID}:extra",
]
TEST_ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@pytest.fixture(scope="module")
def shared() -> Iterator[EmbeddedAws]:
    """One embedded AWS and the app's service built on it, for the whole module."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in TEST_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with EmbeddedAws(guest_monitors=(GUEST_MONITOR,), signed_in_monitors=(SIGNED_IN_MONITOR,)) as aws:
            for name, value in api_environment(aws).items():
                patch.setenv(name, value)
            api.reset()
            api.service()  # built now, on this account: later environment changes do not matter
            yield aws
    api.reset()


@pytest.fixture(params=["client", "event"])
def call(request: pytest.FixtureRequest, shared: EmbeddedAws) -> Transport:
    """Each test through both transports."""
    if request.param == "client":
        return ClientTransport(Client(app, project_dir=str(CHALICE_DIR)))
    return EventTransport()


def assert_error(reply: Any, status: int, code: str, *words: str) -> None:
    """The error's status and code, and words its message must contain."""
    assert (reply.status, reply.body["error"]) == (status, code), reply.body
    assert set(reply.body) == {"error", "message"}
    for word in words:
        assert word in reply.body["message"], reply.body["message"]


# --- identity ids ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("identity", MALFORMED_IDS)
@pytest.mark.parametrize(
    ("method", "prefix", "body"),
    [
        ("GET", "/blocks", None),
        ("PUT", "/blocks", {"reason": "x"}),
        ("DELETE", "/blocks", {"reason": "x"}),
        ("GET", "/allowlist", None),
        ("PUT", "/allowlist", {"reason": "x"}),
        ("DELETE", "/allowlist", {"reason": "x"}),
    ],
)
def test_malformed_identity_ids(call: Transport, method: str, prefix: str, body: Any, identity: str) -> None:
    assert_error(call(method, f"{prefix}/{identity}", body), 400, "invalid-identity", "us-east-1")


def test_a_percent_encoded_identity_id_is_accepted(call: Transport) -> None:
    # The CLI encodes the ':' (SigV4 signs the encoded path); API Gateway and chalice local pass it on.
    reply = call("GET", f"/blocks/{GOOD_ID.replace(':', '%3A')}")
    assert_error(reply, 404, "not-found", GOOD_ID)


# --- bodies ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, ["reason", "required"]),
        ({"reason": "   "}, ["reason"]),
        ({"reason": "x" * 1001}, ["reason"]),
        ({"reason": "x", "durationSeconds": 59}, ["durationSeconds", "60"]),
        ({"reason": "x", "durationSeconds": 7 * 24 * 3600 + 1}, ["durationSeconds", "604800"]),
        ({"reason": "x", "durationSeconds": "3600"}, ["durationSeconds"]),
        ({"reason": "x", "durationSeconds": 3600.5}, ["durationSeconds"]),
        ({"reason": "x", "force": "yes"}, ["force"]),
        ({"reason": "x", "duration": 3600}, ["duration: unknown field"]),
        ({"reason": "x", "duration_seconds": 3600}, ["duration_seconds: unknown field"]),
    ],
    ids=[
        "missing-reason",
        "blank-reason",
        "long-reason",
        "short-duration",
        "long-duration",
        "string-duration",
        "fractional-duration",
        "string-force",
        "unknown-field",
        "snake-case-field",
    ],
)
def test_block_bodies_are_validated(call: Transport, body: dict[str, Any], words: list[str]) -> None:
    assert_error(call("PUT", f"/blocks/{GOOD_ID}", body), 400, "invalid-request", *words)


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", f"/blocks/{GOOD_ID}"), ("DELETE", f"/blocks/{GOOD_ID}"), ("DELETE", f"/allowlist/{GOOD_ID}")],
)
def test_a_reason_is_required(call: Transport, method: str, path: str) -> None:
    assert_error(call(method, path, {"force": False} if method == "PUT" else {}), 400, "invalid-request", "reason")
    assert_error(call(method, path, headers={}), 400, "invalid-request", "JSON body is required", "reason")


def test_bad_json(call: Transport) -> None:
    assert_error(call("PUT", f"/blocks/{GOOD_ID}", raw=b'{"reason": '), 400, "invalid-json")
    assert_error(call("PUT", "/lockdown", raw=b"{'enabled': true}"), 400, "invalid-json")
    assert_error(call("PUT", f"/blocks/{GOOD_ID}", raw=b'["reason"]'), 400, "invalid-request", "JSON object")


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}, {}],
    ids=["text", "form", "undeclared"],
)
def test_wrong_content_type(call: Transport, headers: dict[str, str]) -> None:
    reply = call("PUT", f"/blocks/{GOOD_ID}", raw=json.dumps({"reason": "x"}).encode(), headers=headers)
    assert_error(reply, 415, "unsupported-media-type", "application/json")


def test_json_with_a_charset_is_json(call: Transport) -> None:
    reply = call(
        "PUT", "/lockdown", raw=b'{"enabled": true}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert_error(reply, 400, "invalid-request", "reason")


def test_allowlist_expiry_is_validated(call: Transport) -> None:
    path = f"/allowlist/{GOOD_ID}"
    both = {"reason": "x", "expiresAt": "2099-01-01T00:00:00Z", "durationSeconds": 3600}
    assert_error(call("PUT", path, both), 400, "invalid-request", "not both")
    naive = {"reason": "x", "expiresAt": "2099-01-01T00:00:00"}
    assert_error(call("PUT", path, naive), 400, "invalid-request", "expiresAt", "timezone")
    past = {"reason": "x", "expiresAt": "2001-01-01T00:00:00Z"}
    assert_error(call("PUT", path, past), 400, "invalid-request", "expiresAt", "not in the future")


def test_lockdown_body_is_validated(call: Transport) -> None:
    assert_error(call("PUT", "/lockdown", {"reason": "x"}), 400, "invalid-request", "enabled")
    assert_error(call("PUT", "/lockdown", {"reason": "x", "enabled": "true"}), 400, "invalid-request", "enabled")


# --- query strings --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("status=bogus", ["status"]),
        ("limit=0", ["limit"]),
        ("limit=101", ["limit"]),
        ("limit=many", ["limit"]),
        ("colour=red", ["colour: unknown query parameter"]),
        ("status=all&status=active", ["status", "once"]),
    ],
)
def test_list_query_is_validated(call: Transport, query: str, words: list[str]) -> None:
    assert_error(call("GET", f"/blocks?{query}"), 400, "invalid-request", *words)


# --- routes and methods ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/blocks", "GET"),
        ("POST", f"/blocks/{GOOD_ID}", "GET, PUT, DELETE"),
        ("DELETE", "/lockdown", "GET, PUT"),
        ("POST", "/health", "GET"),
    ],
)
def test_unknown_methods(call: Transport, method: str, path: str, allowed: str) -> None:
    reply = call(method, path)
    assert_error(reply, 405, "method-not-allowed", method)
    assert reply.headers["Allow"] == allowed


def test_unknown_routes_in_the_lambda_get_a_json_404(shared: EmbeddedAws) -> None:
    reply = EventTransport()("GET", "/blockz")
    assert_error(reply, 404, "not-found", "/blockz")


def test_unknown_routes_behind_the_gateway_get_its_json_403(shared: EmbeddedAws) -> None:
    # API Gateway answers a path no route has before the function runs (template.yaml's GatewayResponses
    # give that answer the API's error shape); Chalice's local gateway answers as API Gateway does by default.
    response = Client(app, project_dir=str(CHALICE_DIR)).http.get("/blockz")
    assert response.status_code == 403
    assert json.loads(response.body) == {"message": "Missing Authentication Token"}


def test_an_event_that_is_no_api_request_gets_a_json_404(shared: EmbeddedAws) -> None:
    response = app({"source": "aws.events", "detail": {}}, lambda_context("rumguard-api"))
    assert response["statusCode"] == 404
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"])["error"] == "not-found"
