"""The local CloudWatch RUM data plane: the web client's ``PutRumEvents``, authorized as IAM would, into Logs.

moto has no RUM and ignores IAM conditions, so the deny statements RUM Guard writes would change nothing
locally. This module is where they are honoured. ``RumDataPlane`` is a WSGI app that takes what the real
``aws-rum-web`` client sends (``POST /appmonitors/{id}``: a fetch signed with SigV4 in headers, or a beacon
presigned in the query string, JSON or gzip) and, like the service:

1. authenticates it: the access key must be one the embedded Cognito issued (``GetCredentialsForIdentity``,
   recorded by ``rumguard.local.cognito``), with its session token, unexpired, and the SigV4 signature
   must verify with the issued secret: otherwise 403;
2. parses the batch (400 ``ValidationException`` for a malformed body; 404 for an unknown app monitor);
3. authorizes ``rum:PutRumEvents`` on the app monitor for the credentials' role by evaluating the role's
   policies the way IAM does (``evaluate``): an explicit Deny wins, then an Allow, else an implicit deny.
   The request context has what a Cognito session carries: ``cognito-identity.amazonaws.com:sub``,
   ``:aud``, ``:amr``, and ``aws:TokenIssueTime``; so both RUM Guard's block statement (StringEquals on
   ``sub``) and its lockdown statement (DateLessThan on ``aws:TokenIssueTime``) take effect here at once
   (IAM takes seconds to propagate). A denied caller gets 403 ``AccessDeniedException``;
4. writes each event to the app monitor's log group in the exact format RUM uses (see the schemas README):
   ``event_timestamp`` (ms), ``event_type``, ``event_id``, ``event_version``, ``log_stream`` (the hour),
   ``application_id``, ``application_version``, ``metadata`` (the batch's ``SessionMetadata``, which
   aws-rum-web 3 sends once per batch, merged under the event's own metadata), ``user_details`` and
   ``event_details`` (parsed from the client's JSON string), one log stream per hour;
5. hands the new log events to the subscription (``deliver``), as CloudWatch Logs deliveries, right away or
   when ``deliver_pending()`` is called.

Every answer is kept as a ``Receipt`` (status, error code, monitor, identity, count), which is what the
tests and the demo read to say what the browsers saw.

``LocalRum`` runs the browser-facing side of the embedded AWS on loopback: moto (for Cognito's ``GetId``
and ``GetCredentialsForIdentity``) and the data plane, both with CORS for pages of another origin, and the
ingest function fed by the data plane. moto's backends are process-wide and have no locks, so every moto
call made by these servers, and by callers that hold ``LocalRum.lock``, is serialized.

``CognitoHttpClient`` and ``RumHttpClient`` do from Python what a page does (botocore signs the batches),
and ``rum_batch`` shapes a batch as aws-rum-web 3 does: the tests use them, and so can traffic without a
browser.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import parse_qsl, quote

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from rumguard.local import cognito
from rumguard.local.aws import FILTER_NAME, AppMonitor, EmbeddedAws, log_stream_name
from rumguard.local.cognito import IssuedCredentials
from rumguard.local.emf import EmfOutput
from rumguard.local.subscription import LogEvent, batches, subscription_event
from rumguard.monitors import Audience

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from rumguard.local.context import Invocation, LocalFunction

ACTION: Final = "rum:PutRumEvents"
SIGNING_SERVICE: Final = "rum"
ALGORITHM: Final = "AWS4-HMAC-SHA256"
#: AWS refuses a signature dated more than 5 minutes from its own clock.
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
#: Largest request body taken, compressed or not, and largest decompressed body.
MAX_BODY_BYTES: Final = 5 * 1024 * 1024
MAX_INFLATED_BYTES: Final = 20 * 1024 * 1024
EVENT_VERSION: Final = "1.0.0"
#: The signed-in role the local stack gives the identity pool (the guest role is ``EmbeddedAws``'s).
SIGNED_IN_ROLE: Final = "RetailDemoStore-SignedInRole"
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
_UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"


# --- errors: one exception per answer the service gives ------------------------------------------------
class RumError(Exception):
    """An error answer of the data plane: HTTP status, error code (``x-amzn-ErrorType``) and message."""

    status: int = 400
    code: str = "ValidationException"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(RumError):
    """The request is malformed."""


class MissingAuthenticationError(RumError):
    """The request is not signed."""

    status = 403
    code = "MissingAuthenticationTokenException"


class UnrecognizedClientError(RumError):
    """The access key or its session token is not one the embedded AWS issued."""

    status = 403
    code = "UnrecognizedClientException"


class InvalidSignatureError(RumError):
    """The signature does not verify with the issued secret, or is dated too far from now."""

    status = 403
    code = "InvalidSignatureException"


class ExpiredTokenError(RumError):
    """The temporary credentials have expired."""

    status = 403
    code = "ExpiredTokenException"


class AccessDeniedError(RumError):
    """IAM denies the caller's role ``rum:PutRumEvents`` on the app monitor."""

    status = 403
    code = "AccessDeniedException"


class ResourceNotFoundError(RumError):
    """No app monitor has this id."""

    status = 404
    code = "ResourceNotFoundException"


class PayloadTooLargeError(RumError):
    """The body is over the data plane's limit."""

    status = 413
    code = "PayloadTooLargeException"


class PolicyError(ValueError):
    """A policy uses something this evaluator does not implement; never guessed, so never silently allowed."""


# --- SigV4 ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Signature:
    """The SigV4 parts of a request, from its Authorization header or, presigned, from its query string."""

    access_key_id: str
    date: str  # the scope's yyyymmdd
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # yyyymmddThhmmssZ
    security_token: str | None
    presigned: bool
    expires_seconds: int | None = None

    @property
    def scope(self) -> str:
        """``date/region/service/aws4_request``."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def _uri_encode(value: str) -> str:
    """SigV4's URI encoding: everything but unreserved characters, upper-case hex."""
    return quote(value, safe="-_.~")


def parse_signature(headers: Mapping[str, str], query: Sequence[tuple[str, str]]) -> Signature:
    """Read the SigV4 parts of a request (header-signed or presigned); raises ``RumError`` if unsigned."""
    authorization = headers.get("authorization")
    if authorization:
        algorithm, _, rest = authorization.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise InvalidSignatureError(f"unsupported signature algorithm {algorithm!r}")
        parts: dict[str, str] = {}
        for item in rest.split(","):
            key, _, value = item.strip().partition("=")
            parts[key] = value
        credential = parts.get("Credential", "")
        signed = parts.get("SignedHeaders", "")
        signature = parts.get("Signature", "")
        amz_date = headers.get("x-amz-date", "")
        token = headers.get("x-amz-security-token")
        presigned, expires = False, None
    else:
        params = dict(query)
        if params.get("X-Amz-Algorithm") is None:
            raise MissingAuthenticationError("Missing Authentication Token")
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise InvalidSignatureError(f"unsupported signature algorithm {params['X-Amz-Algorithm']!r}")
        credential = params.get("X-Amz-Credential", "")
        signed = params.get("X-Amz-SignedHeaders", "")
        signature = params.get("X-Amz-Signature", "")
        amz_date = params.get("X-Amz-Date", "")
        token = params.get("X-Amz-Security-Token")
        presigned = True
        try:
            expires = int(params.get("X-Amz-Expires", ""))
        except ValueError:
            raise InvalidSignatureError("X-Amz-Expires must be a number of seconds") from None
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not scope[0]:
        raise InvalidSignatureError(f"malformed credential scope {credential!r}")
    if not signed or not signature or not amz_date:
        raise InvalidSignatureError("the signature lacks SignedHeaders, Signature or X-Amz-Date")
    return Signature(
        access_key_id=scope[0],
        date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=tuple(signed.split(";")),
        signature=signature,
        amz_date=amz_date,
        security_token=token,
        presigned=presigned,
        expires_seconds=expires,
    )


def canonical_request(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """SigV4's canonical request (the path is normalized and encoded once, as for every service but S3)."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
        else:
            segments.append(segment)
    normalized = "/" + "/".join(segments) + ("/" if segments and path.endswith("/") else "")
    canonical_path = quote(normalized, safe="/-_.~")
    canonical_query = "&".join(
        f"{key}={value}"
        for key, value in sorted(
            (_uri_encode(key), _uri_encode(value)) for key, value in query if key != "X-Amz-Signature"
        )
    )
    lines = []
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            raise InvalidSignatureError(f"signed header {name!r} is missing from the request")
        lines.append(f"{name}:{' '.join(value.split())}")
    return "\n".join([method, canonical_path, canonical_query, *lines, "", ";".join(signed_headers), payload_hash])


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def expected_signature(signature: Signature, canonical: str, secret: str) -> str:
    """The signature a holder of ``secret`` computes for this canonical request."""
    string_to_sign = "\n".join(
        [ALGORITHM, signature.amz_date, signature.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _signing_key(secret, signature.date, signature.region, signature.service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def payload_hash(headers: Mapping[str, str], query: Sequence[tuple[str, str]], body: bytes, *, presigned: bool) -> str:
    """The payload hash that was signed. The client's ``x-amz-content-sha256`` if it sent one (a header, or
    hoisted into a presigned query as aws-rum-web's beacon does), which must then match the body; else the
    body's hash for a header signature, and ``UNSIGNED-PAYLOAD`` for a presigned one."""
    declared = headers.get("x-amz-content-sha256") or dict(query).get("X-Amz-Content-Sha256")
    actual = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
    if declared is None:
        return _UNSIGNED_PAYLOAD if presigned else actual
    if declared != _UNSIGNED_PAYLOAD and declared.lower() != actual:
        raise InvalidSignatureError("The provided 'x-amz-content-sha256' header does not match what was computed.")
    return declared


# --- IAM policy evaluation -----------------------------------------------------------------------------
#: A request context: lower-cased condition key -> its value(s).
Context = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True, slots=True)
class Decision:
    """IAM's answer for one request: allowed or not, and which statement decided it."""

    allowed: bool
    #: ``"explicit-deny"``, ``"allow"`` or ``"implicit-deny"``.
    kind: str
    #: ``policy name / Sid`` of the deciding statement (empty for an implicit deny).
    statement: str = ""


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's ``*`` and ``?`` matching (nothing else is special)."""
    translated = fnmatch.translate(pattern.replace("[", "[[]"))
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.fullmatch(translated, value, flags | re.DOTALL) is not None


def parse_date(value: str) -> datetime:
    """An IAM date value: ISO 8601 (``2026-01-01T00:00:00Z``, fractions and offsets allowed, or a date)
    or epoch seconds."""
    text = str(value).strip()
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PolicyError(f"{value!r} is not a date IAM understands") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise PolicyError(f"{value!r} is not a number") from None


_COMPARE: Final[dict[str, Callable[[str, str], bool]]] = {
    "StringEquals": lambda have, want: have == want,
    "StringNotEquals": lambda have, want: have == want,
    "StringEqualsIgnoreCase": lambda have, want: have.lower() == want.lower(),
    "StringNotEqualsIgnoreCase": lambda have, want: have.lower() == want.lower(),
    "StringLike": lambda have, want: _wildcard(want, have),
    "StringNotLike": lambda have, want: _wildcard(want, have),
    "ArnEquals": lambda have, want: _wildcard(want, have),
    "ArnLike": lambda have, want: _wildcard(want, have),
    "ArnNotEquals": lambda have, want: _wildcard(want, have),
    "ArnNotLike": lambda have, want: _wildcard(want, have),
    "NumericEquals": lambda have, want: _number(have) == _number(want),
    "NumericNotEquals": lambda have, want: _number(have) == _number(want),
    "NumericLessThan": lambda have, want: _number(have) < _number(want),
    "NumericLessThanEquals": lambda have, want: _number(have) <= _number(want),
    "NumericGreaterThan": lambda have, want: _number(have) > _number(want),
    "NumericGreaterThanEquals": lambda have, want: _number(have) >= _number(want),
    "DateEquals": lambda have, want: parse_date(have) == parse_date(want),
    "DateNotEquals": lambda have, want: parse_date(have) == parse_date(want),
    "DateLessThan": lambda have, want: parse_date(have) < parse_date(want),
    "DateLessThanEquals": lambda have, want: parse_date(have) <= parse_date(want),
    "DateGreaterThan": lambda have, want: parse_date(have) > parse_date(want),
    "DateGreaterThanEquals": lambda have, want: parse_date(have) >= parse_date(want),
    "Bool": lambda have, want: have.lower() == str(want).lower(),
}
#: Negated operators: true when no value of the key matches any value listed (and when the key is absent).
_NEGATED: Final = frozenset(
    {
        "StringNotEquals",
        "StringNotEqualsIgnoreCase",
        "StringNotLike",
        "ArnNotEquals",
        "ArnNotLike",
        "NumericNotEquals",
        "DateNotEquals",
    }
)


def _condition(operator: str, key: str, wanted: Any, context: Context) -> bool:
    """One operator on one key, as IAM evaluates it (``...IfExists``, ``ForAnyValue:``/``ForAllValues:``)."""
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    present = context.get(key.lower())
    if base == "Null":
        return (present is None) == (str(wanted).lower() == "true")
    compare = _COMPARE.get(base)
    if compare is None or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise PolicyError(f"condition operator {operator!r} is not implemented by the local IAM evaluator")
    wanted_values = [str(value) for value in _as_list(wanted)]
    if present is None:
        if qualifier == "ForAllValues" or if_exists:
            return True
        return qualifier != "ForAnyValue" and base in _NEGATED
    have_values = [present] if isinstance(present, str) else list(present)
    negated = base in _NEGATED

    def matches(have: str) -> bool:
        hit = any(compare(have, want) for want in wanted_values)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(matches(have) for have in have_values)
    return any(matches(have) for have in have_values)


def _statement_applies(statement: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    if "NotPrincipal" in statement or "Principal" in statement:
        raise PolicyError("Principal and NotPrincipal belong in resource policies, not in a role's policies")
    if "Action" in statement:
        action_hit = any(_wildcard(str(a), action, case_sensitive=False) for a in _as_list(statement["Action"]))
    elif "NotAction" in statement:
        action_hit = not any(_wildcard(str(a), action, case_sensitive=False) for a in _as_list(statement["NotAction"]))
    else:
        raise PolicyError("a statement needs Action or NotAction")
    if not action_hit:
        return False
    if "Resource" in statement:
        resource_hit = any(_wildcard(str(r), resource) for r in _as_list(statement["Resource"]))
    elif "NotResource" in statement:
        resource_hit = not any(_wildcard(str(r), resource) for r in _as_list(statement["NotResource"]))
    else:
        raise PolicyError("a statement needs Resource or NotResource")
    if not resource_hit:
        return False
    conditions = statement.get("Condition", {})
    if not isinstance(conditions, Mapping):
        raise PolicyError("Condition must be an object")
    for operator, keys in conditions.items():
        if not isinstance(keys, Mapping):
            raise PolicyError(f"condition {operator!r} must map keys to values")
        for key, wanted in keys.items():
            if not _condition(str(operator), str(key), wanted, context):
                return False
    return True


def evaluate(policies: Mapping[str, Mapping[str, Any]], action: str, resource: str, context: Context) -> Decision:
    """IAM's identity-policy logic for one request: any matching Deny denies; else any matching Allow
    allows; else the request is implicitly denied. ``policies`` maps a policy name to its document."""
    allow: str | None = None
    for name, document in policies.items():
        for index, statement in enumerate(_as_list(document.get("Statement", []))):
            if not isinstance(statement, Mapping):
                raise PolicyError(f"policy {name}: a statement must be an object")
            effect = statement.get("Effect")
            if effect not in ("Allow", "Deny"):
                raise PolicyError(f"policy {name}: Effect must be Allow or Deny, not {effect!r}")
            if not _statement_applies(statement, action, resource, context):
                continue
            label = f"{name}/{statement.get('Sid', index)}"
            if effect == "Deny":
                return Decision(False, "explicit-deny", label)
            allow = allow or label
    if allow is not None:
        return Decision(True, "allow", allow)
    return Decision(False, "implicit-deny")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_context(
    credentials: IssuedCredentials, *, account_id: str, region: str, now: datetime, source_ip: str = ""
) -> dict[str, str | list[str]]:
    """The request context of a call made with Cognito-issued credentials (keys lower-cased)."""
    amr = ["authenticated", *credentials.logins] if credentials.signed_in else ["unauthenticated"]
    context: dict[str, str | list[str]] = {
        "aws:tokenissuetime": _iso(credentials.issued_at),
        "aws:currenttime": _iso(now),
        "aws:epochtime": str(int(now.timestamp())),
        "aws:requestedregion": region,
        "aws:securetransport": "false",
        "cognito-identity.amazonaws.com:sub": credentials.identity_id,
        "cognito-identity.amazonaws.com:aud": credentials.pool_id,
        "cognito-identity.amazonaws.com:amr": amr,
    }
    if credentials.role_arn:
        context["aws:principalarn"] = credentials.role_arn
    if source_ip:
        context["aws:sourceip"] = source_ip
    return context


# --- PutRumEvents --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RumEvent:
    """One event of a batch, as the client sent it (``metadata`` and ``details`` parsed)."""

    id: str
    timestamp_ms: int
    type: str
    metadata: dict[str, Any]
    details: Any


@dataclass(frozen=True, slots=True)
class PutRumEvents:
    """A parsed ``PutRumEvents`` request body."""

    batch_id: str
    app_monitor_id: str
    application_version: str
    user_details: dict[str, Any]
    session_metadata: dict[str, Any]
    events: tuple[RumEvent, ...]
    alias: str | None = None


def _require(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValidationError(f"{where} must be a {kind.__name__}")
    return value


def _json_object(text: Any, where: str) -> dict[str, Any]:
    _require(text, str, where)
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ValidationError(f"{where} is not JSON") from None
    if not isinstance(parsed, dict):
        raise ValidationError(f"{where} must be a JSON object")
    return parsed


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """The request body, inflated if the client gzipped it (aws-rum-web does when it pays off)."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ValidationError(f"unsupported Content-Encoding {content_encoding!r}")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, MAX_INFLATED_BYTES)
    except zlib.error:
        raise ValidationError("the body is not valid gzip") from None
    if inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"the inflated body is over {MAX_INFLATED_BYTES} bytes")
    return inflated


def parse_put_rum_events(body: bytes) -> PutRumEvents:
    """Validate and parse a ``PutRumEvents`` JSON body; ``ValidationError`` says what is wrong."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("the body is not JSON") from None
    if not isinstance(document, dict):
        raise ValidationError("the body must be a JSON object")
    batch_id = _require(document.get("BatchId"), str, "BatchId")
    details = _require(document.get("AppMonitorDetails"), dict, "AppMonitorDetails")
    monitor_id = _require(details.get("id"), str, "AppMonitorDetails.id")
    version = details.get("version", "")
    _require(version, str, "AppMonitorDetails.version")
    user = _require(document.get("UserDetails", {}), dict, "UserDetails")
    for key in ("userId", "sessionId"):
        if key in user:
            _require(user[key], str, f"UserDetails.{key}")
    session = _json_object(document["SessionMetadata"], "SessionMetadata") if "SessionMetadata" in document else {}
    raw_events = _require(document.get("RumEvents"), list, "RumEvents")
    events = []
    for index, raw in enumerate(raw_events):
        where = f"RumEvents[{index}]"
        _require(raw, dict, where)
        timestamp = raw.get("timestamp")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise ValidationError(f"{where}.timestamp must be epoch seconds")
        details_text = _require(raw.get("details"), str, f"{where}.details")
        try:
            event_details = json.loads(details_text)
        except ValueError:
            raise ValidationError(f"{where}.details is not JSON") from None
        metadata = _json_object(raw["metadata"], f"{where}.metadata") if raw.get("metadata") is not None else {}
        events.append(
            RumEvent(
                id=_require(raw.get("id"), str, f"{where}.id"),
                timestamp_ms=round(timestamp * 1000),
                type=_require(raw.get("type"), str, f"{where}.type"),
                metadata=metadata,
                details=event_details,
            )
        )
    alias = document.get("Alias")
    if alias is not None:
        _require(alias, str, "Alias")
    return PutRumEvents(batch_id, monitor_id, version, dict(user), session, tuple(events), alias)


def log_message(request: PutRumEvents, event: RumEvent) -> str:
    """The CloudWatch Logs message RUM writes for one event (keys in RUM's order)."""
    return json.dumps(
        {
            "event_timestamp": event.timestamp_ms,
            "event_type": event.type,
            "event_id": event.id,
            "event_version": EVENT_VERSION,
            "log_stream": log_stream_name(event.timestamp_ms),
            "application_id": request.app_monitor_id,
            "application_version": request.application_version,
            "metadata": {**request.session_metadata, **event.metadata},
            "user_details": request.user_details,
            "event_details": event.details,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


# --- the data plane ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Receipt:
    """One request the data plane answered."""

    at: datetime
    status: int
    error: str | None
    app_monitor: str | None
    identity_id: str | None
    signed_in: bool | None
    events: int
    event_types: tuple[str, ...] = ()
    presigned: bool = False
    #: The body came gzipped (aws-rum-web compresses a fetch when that pays off).
    gzip: bool = False
    detail: str = ""

    @property
    def accepted(self) -> bool:
        """Whether the events were taken (HTTP 200)."""
        return self.status == 200


#: Where the data plane hands new log events: the app monitor and the subscription's Lambda event.
Deliver = Callable[[AppMonitor, dict[str, Any]], None]


@dataclass(slots=True)
class _Answer:
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]] = field(default_factory=list)


def _error_answer(error: RumError) -> _Answer:
    """A REST-JSON error: the code in ``x-amzn-ErrorType`` and in the body, with the message."""
    return _Answer(error.status, {"__type": error.code, "message": error.message}, [("x-amzn-ErrorType", error.code)])


class RumDataPlane:
    """The local ``PutRumEvents`` endpoint, a WSGI app over an ``EmbeddedAws`` (see the module docstring)."""

    def __init__(
        self,
        aws: EmbeddedAws,
        *,
        deliver: Deliver | None = None,
        deliver_immediately: bool = True,
        lock: threading.RLock | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.aws = aws
        self.deliver = deliver
        self.deliver_immediately = deliver_immediately
        self.lock = lock or threading.RLock()
        self.clock = clock
        self.by_id: dict[str, AppMonitor] = {m.id: m for m in aws.app_monitors.values()}
        self.receipts: list[Receipt] = []
        self._pending: dict[str, set[str]] = defaultdict(set)  # log group -> streams written since delivery
        self._delivered: dict[str, set[str]] = defaultdict(set)  # log group -> delivered log event ids

    # --- WSGI ------------------------------------------------------------------------------------------
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one HTTP request."""
        method = environ.get("REQUEST_METHOD", "GET")
        headers = _headers(environ)
        if method == "OPTIONS":
            return _respond(start_response, 204, b"", _cors_headers(headers, preflight=True))
        answer = self.handle(method, environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""), headers, environ)
        body = json.dumps(answer.body).encode()
        extra = [("Content-Type", "application/json"), ("x-amzn-RequestId", str(uuid.uuid4())), *answer.headers]
        return _respond(start_response, answer.status, body, extra + _cors_headers(headers))

    def handle(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Mapping[str, str],
        environ: Mapping[str, Any] | None = None,
    ) -> _Answer:
        """Answer one request (the WSGI wrapper adds CORS and the request id)."""
        body = b""
        if environ is not None:
            body = _read_body(environ)
        with self.lock:
            try:
                return self._put(method, path, query_string, headers, body, (environ or {}).get("REMOTE_ADDR", ""))
            except RumError as error:
                self._receipt(error.status, error.code, detail=error.message)
                return _error_answer(error)

    def _put(
        self, method: str, path: str, query_string: str, headers: Mapping[str, str], body: bytes, source_ip: str
    ) -> _Answer:
        parts = path.strip("/").split("/")
        if method != "POST" or len(parts) != 2 or parts[0] != "appmonitors":
            raise ResourceNotFoundError(f"no such operation: {method} {path}")
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"the body is over {MAX_BODY_BYTES} bytes")
        query = parse_qsl(query_string, keep_blank_values=True)
        now = self.clock()
        credentials, signature = self._authenticate(method, path, query, headers, body, now)
        request = parse_put_rum_events(decode_body(body, headers.get("content-encoding")))
        if request.app_monitor_id != parts[1]:
            raise ValidationError("AppMonitorDetails.id must be the app monitor id of the request path")
        app_monitor = self.by_id.get(parts[1])
        if app_monitor is None:
            raise ResourceNotFoundError(f"App monitor {parts[1]} does not exist.")
        base = {
            "app_monitor": app_monitor.name,
            "identity_id": credentials.identity_id,
            "signed_in": credentials.signed_in,
            "presigned": signature.presigned,
            "gzip": (headers.get("content-encoding") or "").lower() == "gzip",
        }
        decision = self.authorize(credentials, app_monitor, now, source_ip)
        if not decision.allowed:
            error = AccessDeniedError(
                f"User: {credentials.role_arn or 'an unknown role'} is not authorized to perform: {ACTION} on "
                f"resource: {self.resource_arn(app_monitor)} with an {decision.kind.replace('-', ' ')}"
            )
            self._receipt(error.status, error.code, detail=decision.statement, **base)
            return _error_answer(error)
        self._write(app_monitor, request)
        self._receipt(200, None, events=len(request.events), event_types=tuple(e.type for e in request.events), **base)
        if self.deliver_immediately:
            self.deliver_pending()
        return _Answer(200, {})

    def _receipt(self, status: int, error: str | None, **fields: Any) -> None:
        self.receipts.append(
            Receipt(
                at=self.clock(),
                status=status,
                error=error,
                app_monitor=fields.get("app_monitor"),
                identity_id=fields.get("identity_id"),
                signed_in=fields.get("signed_in"),
                events=fields.get("events", 0),
                event_types=fields.get("event_types", ()),
                presigned=fields.get("presigned", False),
                gzip=fields.get("gzip", False),
                detail=fields.get("detail", ""),
            )
        )

    # --- authentication and authorization --------------------------------------------------------------
    def _authenticate(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> tuple[IssuedCredentials, Signature]:
        signature = parse_signature(headers, query)
        if signature.service != SIGNING_SERVICE:
            raise InvalidSignatureError(f"Credential should be scoped to correct service: '{SIGNING_SERVICE}'.")
        if signature.region != self.aws.region:
            raise InvalidSignatureError(f"Credential should be scoped to a valid region, not '{signature.region}'.")
        credentials = cognito.issued_credentials(
            signature.access_key_id, region=self.aws.region, account_id=self.aws.account_id
        )
        if credentials is None or signature.security_token != credentials.session_token:
            raise UnrecognizedClientError("The security token included in the request is invalid.")
        if now >= credentials.expires_at:
            raise ExpiredTokenError("The security token included in the request is expired")
        try:
            signed_at = datetime.strptime(signature.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise InvalidSignatureError(f"malformed X-Amz-Date {signature.amz_date!r}") from None
        if signature.date != signature.amz_date[:8]:
            raise InvalidSignatureError("the credential scope's date is not the signature's date")
        if signature.presigned:
            if signature.expires_seconds is None or not 1 <= signature.expires_seconds <= 7 * 24 * 3600:
                raise InvalidSignatureError("X-Amz-Expires must be between 1 second and 7 days")
            if now > signed_at + timedelta(seconds=signature.expires_seconds) or signed_at - now > MAX_CLOCK_SKEW:
                raise InvalidSignatureError("Signature expired")
        elif abs(now - signed_at) > MAX_CLOCK_SKEW:
            raise InvalidSignatureError("Signature expired: the request is dated more than 5 minutes from now")
        canonical = canonical_request(
            method,
            path,
            query,
            headers,
            signature.signed_headers,
            payload_hash(headers, query, body, presigned=signature.presigned),
        )
        wanted = expected_signature(signature, canonical, credentials.secret_access_key)
        if not hmac.compare_digest(wanted, signature.signature):
            raise InvalidSignatureError(
                "The request signature we calculated does not match the signature you provided."
            )
        return credentials, signature

    def resource_arn(self, app_monitor: AppMonitor) -> str:
        """The app monitor's ARN, the resource of ``rum:PutRumEvents``."""
        return f"arn:aws:rum:{self.aws.region}:{self.aws.account_id}:appmonitor/{app_monitor.name}"

    def role_policies(self, role_arn: str) -> dict[str, dict[str, Any]]:
        """Every policy of a role, inline and attached: name -> document."""
        role = role_arn.rsplit("/", 1)[-1]
        iam = self.aws.iam
        policies: dict[str, dict[str, Any]] = {}
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            policies[name] = json.loads(document) if isinstance(document, str) else dict(document)
        for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            arn = attached["PolicyArn"]
            version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
            policies[arn] = json.loads(document) if isinstance(document, str) else dict(document)
        return policies

    def authorize(
        self, credentials: IssuedCredentials, app_monitor: AppMonitor, now: datetime, source_ip: str = ""
    ) -> Decision:
        """IAM's decision on ``rum:PutRumEvents`` for these credentials, read from the role as it is now."""
        if not credentials.role_arn:
            return Decision(False, "implicit-deny", "the identity pool has no role for this identity")
        context = session_context(
            credentials, account_id=self.aws.account_id, region=self.aws.region, now=now, source_ip=source_ip
        )
        return evaluate(self.role_policies(credentials.role_arn), ACTION, self.resource_arn(app_monitor), context)

    # --- CloudWatch Logs and the subscription -----------------------------------------------------------
    def _write(self, app_monitor: AppMonitor, request: PutRumEvents) -> None:
        messages = [(event.timestamp_ms, log_message(request, event)) for event in request.events]
        if not messages:
            return
        self.aws.put_messages(app_monitor.log_group, messages)
        self._pending[app_monitor.log_group].update(log_stream_name(ts) for ts, _ in messages)

    def deliver_pending(self) -> int:
        """Hand every log event written since the last delivery to ``deliver``, as CloudWatch Logs
        subscription deliveries (one per stream and size-limited batch); returns how many log events."""
        with self.lock:
            delivered = 0
            monitors = {m.log_group: m for m in self.by_id.values()}
            pending, self._pending = self._pending, defaultdict(set)
            for log_group, streams in pending.items():
                seen = self._delivered[log_group]
                for stream in sorted(streams):
                    new = [e for e in self.aws.log_events(log_group, stream) if e.id not in seen]
                    for batch in batches(new):
                        event = subscription_event(
                            log_group, batch, log_stream=stream, owner=self.aws.account_id, filter_name=FILTER_NAME
                        )
                        seen.update(e.id for e in batch)
                        delivered += len(batch)
                        if self.deliver is not None:
                            self.deliver(monitors[log_group], event)
            return delivered

    def log_events(self, app_monitor: str) -> list[LogEvent]:
        """Every log event written so far to an app monitor's log group."""
        with self.lock:
            group = self.aws.monitor(app_monitor).log_group
            return [event for stream in self.aws.log_streams(group) for event in self.aws.log_events(group, stream)]


# --- WSGI helpers --------------------------------------------------------------------------------------
_REASONS: Final = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


def _respond(start_response: StartResponse, status: int, body: bytes, headers: list[tuple[str, str]]) -> list[bytes]:
    start_response(f"{status} {_REASONS.get(status, '')}".strip(), [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers, lower-cased names (``content-type`` and ``content-length`` included)."""
    headers = {
        key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


def _read_body(environ: Mapping[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    stream = environ["wsgi.input"]
    data: bytes = stream.read(min(length, MAX_BODY_BYTES + 1))
    return data


_EXPOSED: Final = "x-amzn-RequestId, x-amzn-ErrorType, x-amzn-ErrorMessage, x-amz-request-id, Date"


def _cors_headers(headers: Mapping[str, str], *, preflight: bool = False) -> list[tuple[str, str]]:
    """CORS for pages served from another origin (the shop): any origin, the methods and headers asked."""
    origin = headers.get("origin")
    out = [("Access-Control-Allow-Origin", origin or "*"), ("Vary", "Origin")]
    if origin:
        out.append(("Access-Control-Allow-Credentials", "true"))
    if preflight:
        out += [
            ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS"),
            ("Access-Control-Allow-Headers", headers.get("access-control-request-headers", "*")),
            ("Access-Control-Max-Age", "600"),
        ]
    else:
        out.append(("Access-Control-Expose-Headers", _EXPOSED))
    return out


def with_cors(app: WSGIApplication, lock: threading.RLock) -> WSGIApplication:
    """Wrap a WSGI app (moto's) so browsers may call it from another origin, one request at a time."""

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        headers = _headers(environ)
        if environ.get("REQUEST_METHOD") == "OPTIONS" and "access-control-request-method" in headers:
            return _respond(start_response, 204, b"", _cors_headers(headers, preflight=True))

        def start(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(k, v) for k, v in response_headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept + _cors_headers(headers), exc_info)

        with lock:
            return list(app(environ, start))

    return wrapped


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence."""


class _QuietMotoHandler(MotoRequestHandler):
    """moto's request handler (it keeps underscored header names), without the access log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence."""


class LoopbackServer:
    """A WSGI app served on 127.0.0.1 (a free port) from a background thread."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        name: str,
        handler: type[WSGIRequestHandler] = _QuietHandler,
        threaded: bool = True,
    ) -> None:
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=threaded, request_handler=handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Self:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


# --- the browser-facing local AWS ------------------------------------------------------------------------
def ensure_pool_roles(aws: EmbeddedAws, signed_in_role: str = SIGNED_IN_ROLE) -> dict[str, str]:
    """Give the identity pool its two roles, as the walkthrough's stack does: guests get ``EmbeddedAws``'s
    guest role, signed-in users a role of their own (created here, allowed ``rum:PutRumEvents``)."""
    account = aws.account_id
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {"cognito-identity.amazonaws.com:aud": aws.identity_pool_id},
                    "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "authenticated"},
                },
            }
        ],
    }
    with contextlib.suppress(aws.iam.exceptions.EntityAlreadyExistsException):
        aws.iam.create_role(RoleName=signed_in_role, AssumeRolePolicyDocument=json.dumps(trust))
        aws.iam.put_role_policy(
            RoleName=signed_in_role,
            PolicyName="rum-put-events",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": ACTION, "Resource": "*"}],
                }
            ),
        )
    roles = {
        "unauthenticated": f"arn:aws:iam::{account}:role/{aws.guest_role_name}",
        "authenticated": f"arn:aws:iam::{account}:role/{signed_in_role}",
    }
    aws.cognito.set_identity_pool_roles(IdentityPoolId=aws.identity_pool_id, Roles=roles)
    return roles


class LocalRum:
    """Cognito (moto over HTTP) and the RUM data plane on loopback, with CORS, around a started
    ``EmbeddedAws``, delivering what the browsers send to the ingest function. A context manager."""

    def __init__(
        self,
        aws: EmbeddedAws,
        ingest: LocalFunction | None = None,
        *,
        deliver_immediately: bool = True,
    ) -> None:
        self.aws = aws
        self.ingest = ingest
        self.lock = threading.RLock()
        self.invocations: list[Invocation] = []
        self.dataplane = RumDataPlane(
            aws, deliver=self._deliver, deliver_immediately=deliver_immediately, lock=self.lock
        )
        self.roles: dict[str, str] = {}
        self._moto: LoopbackServer | None = None
        self._rum: LoopbackServer | None = None

    def start(self) -> Self:
        """Set the pool's roles and start both servers."""
        cognito.install()
        with self.lock:
            self.roles = ensure_pool_roles(self.aws)
        moto_app: WSGIApplication = DomainDispatcherApplication(create_backend_app)
        self._moto = LoopbackServer(
            with_cors(moto_app, self.lock), name="local-cognito", handler=_QuietMotoHandler
        ).start()
        self._rum = LoopbackServer(self.dataplane, name="local-rum-dataplane").start()
        return self

    def stop(self) -> None:
        """Stop both servers (moto's state belongs to the ``EmbeddedAws``)."""
        for server in (self._rum, self._moto):
            if server is not None:
                server.stop()
        self._rum = self._moto = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # --- what the pages need ---------------------------------------------------------------------------
    @property
    def cognito_endpoint(self) -> str:
        """Where the pages send Cognito identity requests."""
        assert self._moto is not None, "LocalRum is not started"
        return self._moto.url

    @property
    def dataplane_endpoint(self) -> str:
        """The aws-rum-web ``endpoint``."""
        assert self._rum is not None, "LocalRum is not started"
        return self._rum.url

    def shop_config(self) -> dict[str, Any]:
        """The configuration the test shop reads: endpoints, pool, and the two app monitors' ids."""
        guest = self.aws.monitors(Audience.GUEST)[0]
        signed_in = self.aws.monitors(Audience.SIGNED_IN)[0]
        return {
            "region": self.aws.region,
            "identityPoolId": self.aws.identity_pool_id,
            "cognitoEndpoint": self.cognito_endpoint,
            "dataPlaneEndpoint": self.dataplane_endpoint,
            "guestMonitorId": guest.id,
            "signedInMonitorId": signed_in.id,
            "loginProvider": "cognito-idp.example",
        }

    # --- delivery to ingest, and what came of it ---------------------------------------------------------
    def _deliver(self, app_monitor: AppMonitor, event: dict[str, Any]) -> None:
        if self.ingest is not None:
            self.invocations.append(self.ingest.invoke(event))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock around direct moto calls (for example the operator API) while the servers run."""
        with self.lock:
            yield

    def emf(self) -> EmfOutput:
        """Everything the ingest function printed, across every delivery so far."""
        output = EmfOutput()
        with self.lock:
            for invocation in self.invocations:
                output.extend(invocation.output)
        return output

    def errors(self) -> list[Exception]:
        """Errors of the ingest invocations so far (a healthy run has none)."""
        with self.lock:
            return [i.error for i in self.invocations if i.error is not None]

    def receipts(self, **match: Any) -> list[Receipt]:
        """The data plane's receipts so far, optionally only those whose fields equal ``match``."""
        with self.lock:
            found = list(self.dataplane.receipts)
        return [r for r in found if all(getattr(r, key) == value for key, value in match.items())]

    def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 20.0, interval: float = 0.1) -> bool:
        """Poll ``predicate`` until it holds or ``timeout`` seconds pass; returns whether it held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    def wait_quiet(self, *, quiet: float = 1.5, timeout: float = 20.0) -> bool:
        """Wait until the data plane has taken no request for ``quiet`` seconds (the clients have sent
        what they had); returns whether that happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            count = len(self.dataplane.receipts)
            time.sleep(quiet)
            if len(self.dataplane.receipts) == count:
                return True
        return False


# --- clients: what a browser does, from Python (tests, and traffic without a browser) ---------------------
@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """An HTTP answer: status, the decoded JSON body (``{}`` if none) and the headers (lower-case names)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def error(self) -> str | None:
        """The AWS error code, if the answer is an error."""
        code = self.headers.get("x-amzn-errortype") or self.body.get("__type")
        return str(code).split("#")[-1].split(":")[0] if code else None


def http_post(url: str, body: bytes, headers: Mapping[str, str]) -> HttpAnswer:
    """POST to a loopback server and return the answer, errors included."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own loopback servers
            status, raw, answer_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, answer_headers = error.code, error.read(), error.headers
    try:
        decoded = json.loads(raw) if raw else {}
    except ValueError:
        decoded = {"raw": raw.decode(errors="replace")}
    lowered = {key.lower(): value for key, value in answer_headers.items()}
    return HttpAnswer(status, decoded if isinstance(decoded, dict) else {"value": decoded}, lowered)


class CognitoError(RuntimeError):
    """The Cognito identity service refused a request."""

    def __init__(self, answer: HttpAnswer) -> None:
        super().__init__(f"{answer.error}: {answer.body.get('message', '')}")
        self.answer = answer
        self.code = answer.error or str(answer.status)


@dataclass(frozen=True, slots=True)
class SessionCredentials:
    """Temporary credentials as a browser holds them after ``GetCredentialsForIdentity``."""

    identity_id: str
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime


class CognitoHttpClient:
    """The unsigned Cognito identity calls a web page makes (``GetId``, ``GetCredentialsForIdentity``)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/") + "/"

    def call(self, action: str, body: Mapping[str, Any]) -> HttpAnswer:
        """One call, as ``fetch`` makes it; the answer is returned whatever its status."""
        headers = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"AWSCognitoIdentityService.{action}",
        }
        return http_post(self.endpoint, json.dumps(dict(body)).encode(), headers)

    def _ok(self, answer: HttpAnswer) -> dict[str, Any]:
        if answer.status != 200:
            raise CognitoError(answer)
        return answer.body

    def get_id(self, pool_id: str, logins: Mapping[str, str] | None = None) -> str:
        """A new guest identity, or the identity of a login."""
        body: dict[str, Any] = {"IdentityPoolId": pool_id}
        if logins:
            body["Logins"] = dict(logins)
        return str(self._ok(self.call("GetId", body))["IdentityId"])

    def credentials(self, identity_id: str, logins: Mapping[str, str] | None = None) -> SessionCredentials:
        """Temporary credentials for an identity (with its login when signed in)."""
        body: dict[str, Any] = {"IdentityId": identity_id}
        if logins:
            body["Logins"] = dict(logins)
        issued = self._ok(self.call("GetCredentialsForIdentity", body))["Credentials"]
        return SessionCredentials(
            identity_id=identity_id,
            access_key_id=issued["AccessKeyId"],
            secret_access_key=issued["SecretKey"],
            session_token=issued["SessionToken"],
            expiration=datetime.fromtimestamp(float(issued["Expiration"]), tz=UTC),
        )


class RumHttpClient:
    """``PutRumEvents`` signed with SigV4 as aws-rum-web signs it: a fetch signed in headers (optionally
    gzipped, with ``X-Amz-Content-Sha256``), or a beacon presigned in the query string."""

    def __init__(self, endpoint: str, credentials: SessionCredentials, region: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.credentials = credentials
        self.region = region

    def put_rum_events(
        self,
        batch: Mapping[str, Any] | bytes,
        *,
        app_monitor_id: str | None = None,
        gzipped: bool = False,
        presign: bool = False,
        extra_headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """Send one batch (a ``PutRumEvents`` document, or raw bytes with ``app_monitor_id``)."""
        if isinstance(batch, bytes):
            body = batch
            assert app_monitor_id is not None, "raw bodies need the app monitor id"
        else:
            body = json.dumps(dict(batch)).encode()
            app_monitor_id = app_monitor_id or str(batch["AppMonitorDetails"]["id"])
        url = f"{self.endpoint}/appmonitors/{app_monitor_id}"
        keys = BotocoreCredentials(
            self.credentials.access_key_id, self.credentials.secret_access_key, self.credentials.session_token
        )
        headers = {"Content-Type": "text/plain;charset=UTF-8" if presign else "application/json"}
        if gzipped:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        if gzipped or presign:
            headers["X-Amz-Content-Sha256"] = hashlib.sha256(body).hexdigest()
        headers.update(extra_headers or {})
        if presign:
            # botocore's presigner moves a body into the query string (for query-protocol services): sign
            # without it, the body's hash standing in the signed X-Amz-Content-Sha256 header.
            request = AWSRequest(method="POST", url=url, data=b"", headers=headers)
            SigV4QueryAuth(keys, SIGNING_SERVICE, self.region, expires=60).add_auth(request)
        else:
            request = AWSRequest(method="POST", url=url, data=body, headers=headers)
            SigV4Auth(keys, SIGNING_SERVICE, self.region).add_auth(request)
        prepared = request.prepare()
        sent = {
            key: value
            for key, value in prepared.headers.items()
            if isinstance(value, str) and key.lower() != "content-length"  # urllib sets the body's own
        }
        return http_post(prepared.url, body, sent)


def rum_batch(
    app_monitor_id: str,
    events: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    identity_id: str | None = None,
    session_id: str | None = None,
    user_id: str | None = None,
    page_id: str = "/",
    at: datetime | None = None,
) -> dict[str, Any]:
    """A ``PutRumEvents`` document shaped as aws-rum-web 3 sends one: session metadata (with the
    ``cognitoIdentityId`` attribute) once per batch, page metadata per event, details as JSON strings."""
    moment = (at or datetime.now(UTC)).timestamp()
    session: dict[str, Any] = {
        "version": "1.0.0",
        "browserLanguage": "en-US",
        "browserName": "Chromium",
        "browserVersion": "156",
        "osName": "Linux",
        "deviceType": "desktop",
        "platformType": "web",
        "domain": "127.0.0.1",
        "aws:client": "arw-module",
        "aws:clientVersion": "3.2.1",
    }
    if identity_id is not None:
        session["cognitoIdentityId"] = identity_id
    return {
        "BatchId": str(uuid.uuid4()),
        "AppMonitorDetails": {"id": app_monitor_id, "version": "1.0.0"},
        "UserDetails": {"userId": user_id or str(uuid.uuid4()), "sessionId": session_id or str(uuid.uuid4())},
        "SessionMetadata": json.dumps(session),
        "RumEvents": [
            {
                "id": str(uuid.uuid4()),
                "timestamp": round(moment),
                "type": event_type,
                "metadata": json.dumps({"title": "Shop", "pageId": page_id, "interaction": 0}),
                "details": json.dumps(dict(details)),
            }
            for event_type, details in events
        ],
    }
