"""Helpers of the operator API tests: the two transports to the app, API Gateway's proxy event, the check of
every answer against docs/openapi.json, and views of what the API changed in the embedded AWS."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol

import boto3
import jsonschema
from chalice.test import Client
from chalice_app.app import app

from rumguard.adapters.cognito import CognitoIdentityDirectory
from rumguard.adapters.dynamodb import DynamoCounterStore, DynamoDecisionStore
from rumguard.adapters.eventbridge import EventBridgeBus
from rumguard.adapters.iam import IamGuestRole
from rumguard.api import OPERATIONS
from rumguard.decisions import Mode
from rumguard.guard import Guard, GuardConfig
from rumguard.local.aws import EmbeddedAws
from rumguard.local.context import lambda_context
from rumguard.local.fakes import FakeClock
from rumguard.local.template import repo_root

CHALICE_DIR = repo_root() / "chalice_app"
OPENAPI = json.loads((repo_root() / "docs" / "openapi.json").read_text(encoding="utf-8"))
OPERATOR_ARN = "arn:aws:iam::123456789012:user/alice"
JSON_BODY = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Reply:
    """One answer of the API."""

    status: int
    headers: dict[str, str]
    body: Any


class Transport(Protocol):
    """A way to send a request to the app."""

    name: str

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        """Send a request; ``body`` is sent as JSON, ``raw`` as is."""
        ...


def resource_of(path: str) -> str | None:
    """The route template a concrete path belongs to (``/blocks/x`` -> ``/blocks/{identity_id}``)."""
    bare = path.split("?", 1)[0]
    for operation in OPERATIONS:
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", operation.path), bare):
            return operation.path
    return None


def assert_documented(method: str, resource: str, reply: Reply) -> None:
    """The status is one docs/openapi.json lists for the route, and the body fits its schema."""
    operation = OPENAPI["paths"][resource][method.lower()]
    documented = operation["responses"].get(str(reply.status))
    assert documented is not None, f"{method} {resource} answered {reply.status}, which the OpenAPI does not list"
    schema = documented["content"]["application/json"]["schema"]
    document = {"components": OPENAPI["components"], **schema}
    jsonschema.Draft202012Validator(document).validate(reply.body)


def checked(method: str, path: str, status: int, headers: Mapping[str, str], body: bytes) -> Reply:
    """An answer, checked: JSON with its Content-Type, documented when the route exists."""
    lower = {name.lower(): value for name, value in headers.items()}
    assert lower.get("content-type", "").startswith("application/json"), f"{method} {path}: {headers}"
    reply = Reply(status, dict(headers), json.loads(body))
    resource = resource_of(path)
    if resource is not None and any(op.method == method and op.path == resource for op in OPERATIONS):
        assert_documented(method, resource, reply)
    return reply


def _encode(body: Any, raw: bytes | None) -> bytes:
    if raw is not None:
        return raw
    return b"" if body is None else json.dumps(body).encode()


class ClientTransport:
    """Through ``chalice.test.Client``: Chalice's local API Gateway (no IAM caller, so actor ``unknown``)."""

    name = "client"

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = dict(JSON_BODY if headers is None and (body is not None or raw is not None) else headers or {})
        response = self.client.http.request(method, path, headers=sent, body=_encode(body, raw))
        return checked(method, path, response.status_code, response.headers, response.body)


def proxy_event(
    method: str,
    resource: str,
    path: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, list[str]] | None = None,
    path_parameters: Mapping[str, str] | None = None,
    user_arn: str | None = OPERATOR_ARN,
) -> dict[str, Any]:
    """An API Gateway REST proxy event (IAM authorization: the caller in ``requestContext.identity``)."""
    identity: dict[str, Any] = {"sourceIp": "192.0.2.10", "userAgent": "rumguard-tests"}
    if user_arn is not None:
        identity |= {"userArn": user_arn, "user": "AIDAEXAMPLE", "accountId": "123456789012", "caller": "AIDAEXAMPLE"}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers or {}),
        "multiValueHeaders": {name: [value] for name, value in (headers or {}).items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": dict(query) if query else None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/api{path}",
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "identity": identity,
        },
        "body": body.decode() if body else None,
        "isBase64Encoded": False,
    }


class EventTransport:
    """Through ``app(event, context)`` with API Gateway's REST proxy event, as Lambda invokes it."""

    name = "event"

    def __init__(self, user_arn: str | None = OPERATOR_ARN) -> None:
        self.user_arn = user_arn
        self.last_event: dict[str, Any] = {}
        self.last_context: Any = None

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        bare, _, query_string = path.partition("?")
        query: dict[str, list[str]] = {}
        for pair in filter(None, query_string.split("&")):
            name, _, value = pair.partition("=")
            query.setdefault(name, []).append(value)
        resource = resource_of(bare) or bare
        parameters = None
        if "{identity_id}" in resource:
            parameters = {"identity_id": bare.rsplit("/", 1)[-1]}
        data = _encode(body, raw)
        sent = dict(JSON_BODY if headers is None and data else headers or {})
        self.last_event = proxy_event(
            method,
            resource,
            bare,
            body=data,
            headers=sent,
            query=query,
            path_parameters=parameters,
            user_arn=self.user_arn,
        )
        self.last_context = lambda_context("rumguard-api")
        response = app(self.last_event, self.last_context)
        headers_out = {**response["headers"], **{k: ", ".join(v) for k, v in response["multiValueHeaders"].items()}}
        return checked(method, bare, response["statusCode"], headers_out, response["body"].encode())


@cache
def shared_session() -> boto3.session.Session:
    """One boto3 session for every test of the process (made after moto is imported, so moto serves it)."""
    return boto3.session.Session()


def api_environment(aws: EmbeddedAws) -> dict[str, str]:
    """What the API function reads (``ApiSettings``), plus the region Lambda sets."""
    return aws.sweeper_environment()


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log lines written so far."""
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


# --- the automatic path on the same resources, at another time ------------------------------------------------
def guard_at(aws: EmbeddedAws, clock: FakeClock, mode: Mode) -> Guard:
    """The decision service on the embedded AWS's resources, with a clock the test moves."""
    return Guard(
        GuardConfig(mode=mode),
        store=DynamoDecisionStore(aws.dynamodb, aws.table_name),
        counters=DynamoCounterStore(aws.dynamodb, aws.table_name, max_workers=1),
        identities=CognitoIdentityDirectory(aws.cognito, aws.identity_pool_id),
        role=IamGuestRole(aws.iam, aws.guest_role_name),
        bus=EventBridgeBus(aws.events, aws.event_bus_name),
        clock=clock,
    )


def store(aws: EmbeddedAws) -> DynamoDecisionStore:
    """The decision store, to look at what the API wrote."""
    return DynamoDecisionStore(aws.dynamodb, aws.table_name)


def denied(aws: EmbeddedAws) -> set[str]:
    """Identity ids the guest role's rumguard-deny policies deny."""
    found: set[str] = set()
    for name, document in aws.guest_role_policies().items():
        if not name.startswith("rumguard-deny"):
            continue
        for statement in document["Statement"]:
            for values in statement.get("Condition", {}).values():
                ids = values.get("cognito-identity.amazonaws.com:sub", [])
                found.update([ids] if isinstance(ids, str) else ids)
    return found


def events_of(aws: EmbeddedAws, detail_type: str | None = None) -> list[dict[str, Any]]:
    """Drained bus events (EventBridge envelopes), optionally of one detail-type."""
    return [e for e in aws.published_events() if detail_type is None or e["detail-type"] == detail_type]


def near(value: str, expected: datetime, slack: timedelta = timedelta(seconds=30)) -> bool:
    """An ISO 8601 time within ``slack`` of ``expected``."""
    return abs(datetime.fromisoformat(value) - expected) <= slack
