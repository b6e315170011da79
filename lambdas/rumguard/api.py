"""The operator API's logic: request and response models, validation, the operations, and the one place where
errors become HTTP statuses.

Framework-free on purpose: ``chalice_app/app.py`` turns each API Gateway request into an ``ApiRequest`` and
each ``ApiResponse`` back into a Chalice response, and does nothing else. ``OperatorApi.handle`` finds the
operation of a request in ``OPERATIONS`` (which a test holds equal to the Chalice app's routes), validates
the path, query and body with the pydantic models below, calls the decision service (``rumguard.guard``:
the same code as the automatic path) or reads its store, and never raises: every failure goes through
``error_response``, whose ``ERRORS`` table is the only mapping of errors to HTTP statuses and error codes.

``openapi_document`` renders the OpenAPI description from the same operations and models, so the checked-in
``docs/openapi.json`` can be regenerated and compared.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import unquote

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import models_json_schema

from rumguard.decisions import IDENTITY_ID, AllowEntry, AuditRecord, Block, BlockStatus, is_identity_id
from rumguard.guard import (
    Guard,
    GuardError,
    InvalidIdentityError,
    NotBlockedError,
    SignedInIdentityError,
    UnknownIdentityError,
)
from rumguard.monitors import MonitorDirectory
from rumguard.ports import Lockdown
from rumguard.settings import SettingsError

#: The version of the API's contract (``info.version`` of the OpenAPI document).
API_VERSION: Final = "1.0.0"
#: ``actor`` of changes whose request carries no caller ARN (only outside API Gateway's IAM authorization).
UNKNOWN_ACTOR: Final = "unknown"
JSON_CONTENT_TYPE: Final = "application/json"
#: Bounds of a manual block's ``durationSeconds``: a minute to the escalation cap (seven days).
MIN_BLOCK_SECONDS: Final = 60
MAX_BLOCK_SECONDS: Final = 7 * 24 * 3600
#: Bounds of an allowlist entry's ``durationSeconds``: a minute to a year.
MAX_ALLOW_SECONDS: Final = 366 * 24 * 3600
#: Page size of ``GET /blocks``.
DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 100
MAX_REASON: Final = 1000


# --- errors: the one mapping to HTTP -----------------------------------------------------------------------
class ApiError(Exception):
    """A request the API refuses before or around the decision service; ``code`` goes into the body."""

    code = "invalid-request"


class InvalidRequestError(ApiError):
    """The path, query or body breaks the API's models."""

    code = "invalid-request"


class InvalidJsonError(ApiError):
    """The body is not JSON."""

    code = "invalid-json"


class UnsupportedMediaTypeError(ApiError):
    """The body is not declared as ``application/json``."""

    code = "unsupported-media-type"


class InvalidTokenError(ApiError):
    """A ``nextToken`` that this listing did not hand out."""

    code = "invalid-token"


class UnknownMonitorError(ApiError):
    """An app monitor name that is not configured."""

    code = "unknown-monitor"


class RouteNotFoundError(ApiError):
    """No route has this path."""

    code = "not-found"


class MethodNotAllowedError(ApiError):
    """The path exists, the method does not; ``allowed`` goes into the ``Allow`` header."""

    code = "method-not-allowed"

    def __init__(self, message: str, allowed: Sequence[str]) -> None:
        super().__init__(message)
        self.allowed = tuple(allowed)


class NotAllowlistedError(ApiError):
    """The identity has no allowlist entry."""

    code = "not-allowlisted"


class NoRecordError(ApiError):
    """RUM Guard has no block and no audit record of the identity."""

    code = "not-found"


#: Every error the API answers with, most specific first: its HTTP status and the body's ``error`` code
#: (``None``: the exception's own ``code``). Anything else is a 500 ``internal-error``.
ERRORS: Final[Mapping[type[Exception], tuple[int, str | None]]] = {
    InvalidRequestError: (400, None),
    InvalidJsonError: (400, None),
    InvalidTokenError: (400, None),
    UnknownMonitorError: (400, None),
    InvalidIdentityError: (400, None),
    UnknownIdentityError: (404, None),
    NotBlockedError: (404, None),
    NotAllowlistedError: (404, None),
    NoRecordError: (404, None),
    RouteNotFoundError: (404, None),
    MethodNotAllowedError: (405, None),
    SignedInIdentityError: (409, None),
    UnsupportedMediaTypeError: (415, None),
    GuardError: (400, None),
    ApiError: (400, None),
    SettingsError: (500, "configuration-error"),
}
INTERNAL_ERROR: Final = "internal-error"


# --- requests and responses --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One request as API Gateway's REST proxy event describes it, framework-free.

    ``resource`` is the route's path template (``/blocks/{identity_id}``), ``headers`` have lower-case names,
    ``query`` keeps every value of a repeated parameter, ``context`` is the event's ``requestContext``.
    """

    method: str
    resource: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        """The caller's ARN as API Gateway's IAM authorization established it, or ``"unknown"``."""
        identity = self.context.get("identity")
        arn = identity.get("userArn") if isinstance(identity, Mapping) else None
        return arn if isinstance(arn, str) and arn else UNKNOWN_ACTOR

    @property
    def request_id(self) -> str:
        """API Gateway's request id (``""`` if the event has none)."""
        value = self.context.get("requestId")
        return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A status, a JSON body and extra headers (``Content-Type`` is always ``application/json``)."""

    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The exception behind a 5xx, for the caller's log; never sent.
    error: BaseException | None = None


class _Body(BaseModel):
    """Request bodies: camelCase names only, unknown fields refused, strings stripped."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
    )


class _View(BaseModel):
    """Response bodies, written with camelCase names."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, frozen=True)

    def json_body(self) -> str:
        """The body as JSON text."""
        return self.model_dump_json(by_alias=True)


Reason = Annotated[
    str,
    Field(min_length=1, max_length=MAX_REASON, description="Why: kept in the audit trail and the bus event."),
]


class BlockRequest(_Body):
    """``PUT /blocks/{identity_id}``: block an identity by hand."""

    reason: Reason
    duration_seconds: StrictInt | None = Field(
        default=None,
        ge=MIN_BLOCK_SECONDS,
        le=MAX_BLOCK_SECONDS,
        description="How long the block lasts; the deployment's MANUAL_BLOCK_SECONDS when left out.",
    )
    force: StrictBool = Field(
        default=False, description="Block a signed-in identity anyway (refused with 409 signed-in-identity without)."
    )
    app_monitor: str | None = Field(
        default=None, min_length=1, description="The configured app monitor the block is about, if any."
    )


class UnblockRequest(_Body):
    """``DELETE /blocks/{identity_id}``: end an active block; automatic rules then leave the identity alone
    for the grace period."""

    reason: Reason


class AllowRequest(_Body):
    """``PUT /allowlist/{identity_id}``: automatic rules leave the identity alone (a blocked one is unblocked)."""

    reason: Reason
    expires_at: AwareDatetime | None = Field(default=None, description="When the entry ends (ISO 8601 with offset).")
    duration_seconds: StrictInt | None = Field(
        default=None, ge=MIN_BLOCK_SECONDS, le=MAX_ALLOW_SECONDS, description="Or: how long the entry lasts."
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> AllowRequest:
        if self.expires_at is not None and self.duration_seconds is not None:
            raise ValueError("give expiresAt or durationSeconds, not both")
        return self


class DisallowRequest(_Body):
    """``DELETE /allowlist/{identity_id}``: remove the allowlist entry."""

    reason: Reason


class LockdownRequest(_Body):
    """``PUT /lockdown``: guest lockdown on (guests refused, earlier guest sessions denied) or off."""

    enabled: StrictBool
    reason: Reason


class BlockFilter(enum.StrEnum):
    """Which blocks ``GET /blocks`` lists, by their effective status."""

    ACTIVE = "active"
    EXPIRED = "expired"
    UNBLOCKED = "unblocked"
    ALL = "all"


class BlocksQuery(BaseModel):
    """``GET /blocks``' query string."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_alias=True, validate_by_name=False, extra="forbid", frozen=True
    )

    status: BlockFilter = Field(
        default=BlockFilter.ACTIVE,
        description="active (the default), expired (past their expiry), unblocked (ended by hand), or all.",
    )
    monitor: str | None = Field(default=None, min_length=1, description="Only blocks about this app monitor.")
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="Blocks per page.")
    next_token: str | None = Field(default=None, min_length=1, description="The previous page's nextToken.")


BlockState = Literal["active", "expired", "unblocked"]


class BlockView(_View):
    """A block: the identity's current or last one. ``status`` is effective: an active block past its expiry
    is ``expired`` even before the sweeper marks it."""

    identity_id: str
    status: BlockState
    app_monitor: str | None
    rule: str
    reason: str
    actor: str
    created_at: datetime
    expires_at: datetime | None
    offence: int
    dry_run: bool
    counts: dict[str, int]
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    grace_until: datetime | None

    @classmethod
    def of(cls, block: Block, now: datetime) -> BlockView:
        """The view of a stored block at ``now``."""
        return cls(
            identity_id=block.identity_id,
            status=effective_status(block, now),
            app_monitor=block.app_monitor or None,
            rule=block.rule,
            reason=block.reason,
            actor=block.actor,
            created_at=block.created_at,
            expires_at=block.expires_at,
            offence=block.offence,
            dry_run=block.dry_run,
            counts=dict(block.counts),
            ended_at=block.ended_at,
            ended_by=block.ended_by,
            end_reason=block.end_reason,
            grace_until=block.grace_until,
        )


class AuditView(_View):
    """One audit record: who did what, when, why, under which rule, with what counts."""

    action: str
    actor: str
    at: datetime
    reason: str
    rule: str | None
    app_monitor: str | None
    counts: dict[str, int]
    dry_run: bool
    expires_at: datetime | None

    @classmethod
    def of(cls, record: AuditRecord) -> AuditView:
        """The view of a stored audit record."""
        return cls(
            action=record.action.value,
            actor=record.actor,
            at=record.at,
            reason=record.reason,
            rule=record.rule,
            app_monitor=record.app_monitor or None,
            counts=dict(record.counts),
            dry_run=record.dry_run,
            expires_at=record.expires_at,
        )


class BlockDetail(_View):
    """``GET /blocks/{identity_id}``: whether the identity is blocked, its block and its decision history."""

    identity_id: str
    blocked: bool
    block: BlockView | None
    history: list[AuditView]


class BlockPage(_View):
    """``GET /blocks``: newest first; ``nextToken`` is set while there are more."""

    blocks: list[BlockView]
    next_token: str | None


class AllowView(_View):
    """An allowlist entry; ``active`` is false once it expired."""

    identity_id: str
    reason: str
    actor: str
    created_at: datetime
    expires_at: datetime | None
    active: bool

    @classmethod
    def of(cls, entry: AllowEntry, now: datetime) -> AllowView:
        """The view of a stored entry at ``now``."""
        return cls(
            identity_id=entry.identity_id,
            reason=entry.reason,
            actor=entry.actor,
            created_at=entry.created_at,
            expires_at=entry.expires_at,
            active=entry.is_active(now),
        )


class AllowChange(_View):
    """``PUT /allowlist/{identity_id}``: the entry, and the block it ended if the identity was blocked."""

    allow: AllowView
    unblocked: BlockView | None


class LockdownView(_View):
    """The guest lockdown: on since when, by whom and why; or off."""

    enabled: bool
    since: datetime | None
    actor: str | None
    reason: str | None

    @classmethod
    def of(cls, lockdown: Lockdown | None) -> LockdownView:
        """The view of the stored lockdown state."""
        if lockdown is None:
            return cls(enabled=False, since=None, actor=None, reason=None)
        return cls(enabled=True, since=lockdown.since, actor=lockdown.actor, reason=lockdown.reason)


class LockdownChange(LockdownView):
    """``PUT /lockdown``: the state afterwards; ``changed`` is false when it already was as asked."""

    changed: bool


class MonitorView(_View):
    """A configured app monitor, its audience and its active blocks."""

    name: str
    audience: str
    active_blocks: int


class MonitorList(_View):
    """``GET /monitors``: the configured monitors, blocks about no monitor, the mode and the lockdown."""

    monitors: list[MonitorView]
    unattributed_active_blocks: int
    mode: str
    lockdown: bool


class Health(_View):
    """``GET /health``: the function starts and answers."""

    status: Literal["ok"]


class ErrorBody(_View):
    """Every error: a stable code and a readable message."""

    error: str
    message: str


def effective_status(block: Block, now: datetime) -> BlockState:
    """``active`` only while in force: a block past its expiry is ``expired`` before the sweeper marks it."""
    if block.status is BlockStatus.ACTIVE:
        return "active" if block.is_active(now) else "expired"
    return "unblocked" if block.status is BlockStatus.UNBLOCKED else "expired"


# --- the operations ----------------------------------------------------------------------------------------
Model = TypeVar("Model", bound=BaseModel)


class OperatorService:
    """The operations, over the decision service and its store."""

    def __init__(self, guard: Guard, monitors: MonitorDirectory) -> None:
        self.guard = guard
        self.store = guard.store
        self.monitors = monitors

    def now(self) -> datetime:
        """The decision service's clock."""
        return self.guard.clock.now()

    def identity(self, request: ApiRequest) -> str:
        """The path's identity id, which must be a Cognito identity id of the identity pool's region."""
        raw = unquote(request.path_params.get("identity_id", ""))
        if not is_identity_id(raw) or raw.split(":", 1)[0] != self.guard.region:
            raise InvalidIdentityError(
                f"{raw!r} is not a Cognito identity id of region {self.guard.region} (<region>:<uuid>)"
            )
        return raw

    def monitor(self, name: str | None) -> str | None:
        """A configured app monitor's name (``None`` stays ``None``)."""
        if name is not None and self.monitors.get(name) is None:
            known = ", ".join(m.name for m in self.monitors.monitors)
            raise UnknownMonitorError(f"{name!r} is not a configured app monitor (configured: {known})")
        return name

    # --- blocks -------------------------------------------------------------------------------------------
    def list_blocks(self, request: ApiRequest) -> ApiResponse:
        """``GET /blocks``."""
        query = parse_query(request, BlocksQuery)
        self.monitor(query.monitor)
        now = self.now()
        wanted = [
            block
            for block in self.store.blocks()
            if (query.status is BlockFilter.ALL or effective_status(block, now) == query.status.value)
            and (query.monitor is None or block.app_monitor == query.monitor)
        ]
        wanted.sort(key=lambda b: (b.created_at, b.identity_id), reverse=True)
        if query.next_token is not None:
            after = decode_token(query.next_token, query)
            wanted = [b for b in wanted if (b.created_at, b.identity_id) < after]
        page = wanted[: query.limit]
        token = encode_token(page[-1], query) if len(wanted) > query.limit else None
        return ok(BlockPage(blocks=[BlockView.of(b, now) for b in page], next_token=token))

    def get_block(self, request: ApiRequest) -> ApiResponse:
        """``GET /blocks/{identity_id}``."""
        identity = self.identity(request)
        block = self.store.get_block(identity)
        history = self.store.history(identity)
        if block is None and not history:
            raise NoRecordError(f"RUM Guard has no block and no decision about {identity}")
        now = self.now()
        return ok(
            BlockDetail(
                identity_id=identity,
                blocked=block is not None and block.is_active(now),
                block=BlockView.of(block, now) if block is not None else None,
                history=[AuditView.of(record) for record in history],
            )
        )

    def put_block(self, request: ApiRequest) -> ApiResponse:
        """``PUT /blocks/{identity_id}``: 201 with the new block, or 200 with the active one."""
        identity = self.identity(request)
        body = parse_body(request, BlockRequest)
        block, created = self.guard.block(
            identity,
            reason=body.reason,
            actor=request.actor,
            duration=timedelta(seconds=body.duration_seconds) if body.duration_seconds is not None else None,
            force=body.force,
            app_monitor=self.monitor(body.app_monitor) or "",
        )
        return ok(BlockView.of(block, self.now()), 201 if created else 200)

    def delete_block(self, request: ApiRequest) -> ApiResponse:
        """``DELETE /blocks/{identity_id}``: the ended block (404 ``not-blocked`` if none is active)."""
        identity = self.identity(request)
        body = parse_body(request, UnblockRequest)
        ended = self.guard.unblock(identity, reason=body.reason, actor=request.actor)
        return ok(BlockView.of(ended, self.now()))

    # --- allowlist ----------------------------------------------------------------------------------------
    def get_allow(self, request: ApiRequest) -> ApiResponse:
        """``GET /allowlist/{identity_id}``."""
        identity = self.identity(request)
        entry = self.store.get_allow(identity)
        if entry is None:
            raise NotAllowlistedError(f"identity {identity} is not on the allowlist")
        return ok(AllowView.of(entry, self.now()))

    def put_allow(self, request: ApiRequest) -> ApiResponse:
        """``PUT /allowlist/{identity_id}``: 201 for a new entry, 200 when an active one is replaced."""
        identity = self.identity(request)
        body = parse_body(request, AllowRequest)
        now = self.now()
        expires_at = body.expires_at
        if body.duration_seconds is not None:
            expires_at = now + timedelta(seconds=body.duration_seconds)
        if expires_at is not None and expires_at <= now:
            raise InvalidRequestError(f"expiresAt: {expires_at.isoformat()} is not in the future")
        before = self.store.get_allow(identity)
        block = self.store.get_block(identity)
        was_blocked = block is not None and block.is_active(now)
        entry = self.guard.allow(identity, reason=body.reason, actor=request.actor, expires_at=expires_at)
        ended = self.store.get_block(identity) if was_blocked else None
        now = self.now()
        change = AllowChange(
            allow=AllowView.of(entry, now), unblocked=BlockView.of(ended, now) if ended is not None else None
        )
        return ok(change, 200 if before is not None and before.is_active(now) else 201)

    def delete_allow(self, request: ApiRequest) -> ApiResponse:
        """``DELETE /allowlist/{identity_id}``: the removed entry."""
        identity = self.identity(request)
        body = parse_body(request, DisallowRequest)
        entry = self.store.get_allow(identity)
        if entry is None or not self.guard.disallow(identity, reason=body.reason, actor=request.actor):
            raise NotAllowlistedError(f"identity {identity} is not on the allowlist")
        return ok(AllowView.of(entry, self.now()))

    # --- lockdown and monitors ----------------------------------------------------------------------------
    def get_lockdown(self, request: ApiRequest) -> ApiResponse:
        """``GET /lockdown``."""
        return ok(LockdownView.of(self.store.get_lockdown()))

    def put_lockdown(self, request: ApiRequest) -> ApiResponse:
        """``PUT /lockdown``: a request for the state already in force changes nothing."""
        body = parse_body(request, LockdownRequest)
        current = self.store.get_lockdown()
        if (current is not None) == body.enabled:
            view = LockdownView.of(current)
            return ok(LockdownChange(**view.model_dump(), changed=False))
        self.guard.set_lockdown(body.enabled, reason=body.reason, actor=request.actor)
        view = LockdownView.of(self.store.get_lockdown())
        return ok(LockdownChange(**view.model_dump(), changed=True))

    def list_monitors(self, request: ApiRequest) -> ApiResponse:
        """``GET /monitors``."""
        counts: dict[str, int] = {}
        for block in self.store.active_blocks(self.now()):
            counts[block.app_monitor] = counts.get(block.app_monitor, 0) + 1
        configured = {m.name for m in self.monitors.monitors}
        return ok(
            MonitorList(
                monitors=[
                    MonitorView(name=m.name, audience=m.audience.value, active_blocks=counts.get(m.name, 0))
                    for m in self.monitors.monitors
                ],
                unattributed_active_blocks=sum(n for name, n in counts.items() if name not in configured),
                mode=self.guard.config.mode.value,
                lockdown=self.store.get_lockdown() is not None,
            )
        )


def health(request: ApiRequest) -> ApiResponse:
    """``GET /health``: no settings and no AWS call, so it answers even when the configuration is broken."""
    return ok(Health(status="ok"))


def ok(view: _View, status: int = 200) -> ApiResponse:
    """A successful response."""
    return ApiResponse(status, view.json_body())


# --- parsing -----------------------------------------------------------------------------------------------
def _problems(error: ValidationError) -> str:
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def is_json_content_type(value: str) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    return value.split(";", 1)[0].strip().lower() == JSON_CONTENT_TYPE


def parse_body(request: ApiRequest, model: type[Model]) -> Model:
    """The body as ``model``: 400 without a body, 415 unless JSON, 400 for bad JSON or a bad field."""
    if not request.body.strip():
        required = [info.alias or name for name, info in model.model_fields.items() if info.is_required()]
        raise InvalidRequestError(f"a JSON body is required (fields: {', '.join(required)})")
    content_type = request.headers.get("content-type", "")
    if not is_json_content_type(content_type):
        raise UnsupportedMediaTypeError(f"the body must be {JSON_CONTENT_TYPE}, not {content_type or 'undeclared'}")
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidJsonError(f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(f"the body must be a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidRequestError(_problems(error)) from None


def parse_query(request: ApiRequest, model: type[Model]) -> Model:
    """The query string as ``model``; a parameter given twice or unknown is a 400."""
    values: dict[str, str] = {}
    for name, given in request.query.items():
        if len(given) != 1:
            raise InvalidRequestError(f"{name}: give the query parameter once")
        values[name] = given[0]
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise InvalidRequestError(_problems(error).replace("unknown field", "unknown query parameter")) from None


# --- pagination: an opaque keyset cursor, bound to the listing's filters ----------------------------------
def _filters(query: BlocksQuery) -> list[str | None]:
    return [query.status.value, query.monitor]


def encode_token(last: Block, query: BlocksQuery) -> str:
    """The token of the page after ``last``: its position in the order, and the filters it belongs to."""
    cursor = {"v": 1, "at": last.created_at.isoformat(), "id": last.identity_id, "f": _filters(query)}
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str, query: BlocksQuery) -> tuple[datetime, str]:
    """``(created_at, identity_id)`` of the last block of the previous page."""
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position = (datetime.fromisoformat(cursor["at"]), str(cursor["id"]))
        filters = cursor["f"]
        version = cursor["v"]
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        raise InvalidTokenError("nextToken is not a token this API handed out") from None
    if version != 1 or position[0].tzinfo is None:
        raise InvalidTokenError("nextToken is not a token this API handed out")
    if filters != _filters(query):
        raise InvalidTokenError("nextToken belongs to a listing with other status or monitor filters")
    return position


# --- routing and the error mapping -------------------------------------------------------------------------
Handler = Callable[[OperatorService, ApiRequest], ApiResponse]


@dataclass(frozen=True, slots=True)
class Operation:
    """One route: how it is served and how the OpenAPI document describes it."""

    method: str
    path: str
    operation_id: str
    summary: str
    run: Handler | None = None
    #: Operations that need no decision service (``/health``) run this instead.
    run_alone: Callable[[ApiRequest], ApiResponse] | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: Mapping[int, type[_View]] = field(default_factory=dict)
    errors: Mapping[int, str] = field(default_factory=dict)
    #: Signed with SigV4 and authorized by IAM (API Gateway ``AWS_IAM``); only ``/health`` is open.
    authenticated: bool = True


_IDENTITY_ERRORS: Final = {400: "Malformed identity id, or an invalid body."}
_BODY_ERRORS: Final = {**_IDENTITY_ERRORS, 415: "The body is not application/json."}

#: Every route of the API. A test holds these equal to the Chalice app's routes.
OPERATIONS: Final[tuple[Operation, ...]] = (
    Operation(
        "GET", "/health", "getHealth", "Liveness", run_alone=health, responses={200: Health}, authenticated=False
    ),
    Operation(
        "GET",
        "/blocks",
        "listBlocks",
        "List blocks, newest first",
        OperatorService.list_blocks,
        query=BlocksQuery,
        responses={200: BlockPage},
        errors={400: "Unknown or bad query parameter, unknown monitor, or a foreign nextToken."},
    ),
    Operation(
        "GET",
        "/blocks/{identity_id}",
        "getBlock",
        "An identity's block and its decision history",
        OperatorService.get_block,
        responses={200: BlockDetail},
        errors={**_IDENTITY_ERRORS, 404: "RUM Guard has no record of the identity."},
    ),
    Operation(
        "PUT",
        "/blocks/{identity_id}",
        "putBlock",
        "Block an identity (idempotent: an active block is returned unchanged)",
        OperatorService.put_block,
        body=BlockRequest,
        responses={201: BlockView, 200: BlockView},
        errors={
            **_BODY_ERRORS,
            404: "The identity pool does not know the identity.",
            409: "The identity is signed in: set force to block it anyway.",
        },
    ),
    Operation(
        "DELETE",
        "/blocks/{identity_id}",
        "deleteBlock",
        "Unblock an identity; automatic rules then leave it alone for the grace period",
        OperatorService.delete_block,
        body=UnblockRequest,
        responses={200: BlockView},
        errors={**_BODY_ERRORS, 404: "The identity has no active block."},
    ),
    Operation(
        "GET",
        "/allowlist/{identity_id}",
        "getAllowlistEntry",
        "An identity's allowlist entry",
        OperatorService.get_allow,
        responses={200: AllowView},
        errors={**_IDENTITY_ERRORS, 404: "The identity is not on the allowlist."},
    ),
    Operation(
        "PUT",
        "/allowlist/{identity_id}",
        "putAllowlistEntry",
        "Allowlist an identity (unblocking it if it is blocked)",
        OperatorService.put_allow,
        body=AllowRequest,
        responses={201: AllowChange, 200: AllowChange},
        errors=_BODY_ERRORS,
    ),
    Operation(
        "DELETE",
        "/allowlist/{identity_id}",
        "deleteAllowlistEntry",
        "Remove an identity from the allowlist",
        OperatorService.delete_allow,
        body=DisallowRequest,
        responses={200: AllowView},
        errors={**_BODY_ERRORS, 404: "The identity is not on the allowlist."},
    ),
    Operation(
        "GET",
        "/lockdown",
        "getLockdown",
        "The guest lockdown",
        OperatorService.get_lockdown,
        responses={200: LockdownView},
    ),
    Operation(
        "PUT",
        "/lockdown",
        "putLockdown",
        "Turn the guest lockdown on or off",
        OperatorService.put_lockdown,
        body=LockdownRequest,
        responses={200: LockdownChange},
        errors={400: "Invalid body.", 415: "The body is not application/json."},
    ),
    Operation(
        "GET",
        "/monitors",
        "listMonitors",
        "The configured app monitors and their active blocks",
        OperatorService.list_monitors,
        responses={200: MonitorList},
    ),
)


def find_operation(method: str, path: str) -> Operation:
    """The operation of a route; 404 for an unknown path, 405 for an unknown method of a known one."""
    methods = [op for op in OPERATIONS if op.path == path]
    if not methods:
        raise RouteNotFoundError(f"no route {method} {path or '(none)'}")
    for operation in methods:
        if operation.method == method:
            return operation
    allowed = [op.method for op in methods]
    raise MethodNotAllowedError(f"{path} allows {', '.join(allowed)}, not {method}", allowed)


def error_response(error: BaseException, request_id: str = "") -> ApiResponse:
    """The one mapping of errors to HTTP: ``ERRORS`` by the exception's class hierarchy, else a 500."""
    for kind in type(error).__mro__:
        if kind in ERRORS:
            status, code = ERRORS[kind]
            code = code or str(getattr(error, "code", "")) or ApiError.code
            headers = {"Allow": ", ".join(error.allowed)} if isinstance(error, MethodNotAllowedError) else {}
            return ApiResponse(
                status,
                ErrorBody(error=code, message=str(error)).json_body(),
                headers,
                error if status >= 500 else None,
            )
    reference = f" (request id {request_id})" if request_id else ""
    body = ErrorBody(error=INTERNAL_ERROR, message=f"an internal error occurred{reference}; see the API's log")
    return ApiResponse(500, body.json_body(), {}, error)


class OperatorApi:
    """The API's entry point: route, build the decision service once (lazily), run, map errors.

    ``factory`` builds the service on first use, so importing the app and ``/health`` need no settings, and
    tests set the environment (and moto) before the first request. ``reset`` forgets the built service.
    """

    def __init__(self, factory: Callable[[], OperatorService]) -> None:
        self._factory = factory
        self._service: OperatorService | None = None

    def service(self) -> OperatorService:
        """The decision service of this process (built on first use)."""
        if self._service is None:
            self._service = self._factory()
        return self._service

    def reset(self) -> None:
        """Build the service again on the next request (after the environment changed)."""
        self._service = None

    def handle(self, request: ApiRequest) -> ApiResponse:
        """Answer one request; never raises."""
        try:
            operation = find_operation(request.method, request.resource)
            if operation.run_alone is not None:
                return operation.run_alone(request)
            assert operation.run is not None
            return operation.run(self.service(), request)
        except Exception as error:  # noqa: BLE001 - every failure becomes a JSON error, mapped in one place
            return error_response(error, request.request_id)


# --- OpenAPI -----------------------------------------------------------------------------------------------
_ERROR_DESCRIPTIONS: Final = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    415: "Unsupported media type",
    500: "Internal error",
}


def _models() -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {}
    for operation in OPERATIONS:
        for model in (operation.body, *operation.responses.values()):
            if model is not None:
                seen.setdefault(model.__name__, model)
    seen.setdefault(ErrorBody.__name__, ErrorBody)
    return list(seen.values())


def _schemas() -> dict[str, Any]:
    models = _models()
    inputs = {op.body for op in OPERATIONS if op.body is not None}
    _, definitions = models_json_schema(
        [(model, "validation" if model in inputs else "serialization") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = definitions.get("$defs", {})
    return dict(sorted(schemas.items()))


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.get("$defs", {})
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        ref = prop.pop("$ref", None)
        if ref is not None:  # an enum: inline it, a query parameter is a plain value
            prop = {**definitions[ref.rsplit("/", 1)[-1]], **prop}
        description = prop.pop("description", "")
        prop.pop("title", None)
        variants = [v for v in prop.pop("anyOf", []) if v.get("type") != "null"]
        if len(variants) == 1:  # optional: a query parameter is absent rather than null
            prop = {**variants[0], **prop}
        if prop.get("default", 0) is None:
            del prop["default"]
        parameters.append({"name": name, "in": "query", "required": False, "description": description, "schema": prop})
    return parameters


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def openapi_document(routes: Mapping[str, Iterable[str]]) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the routes (the Chalice app's ``routes``), from ``OPERATIONS`` and the
    pydantic models. A route without an operation, or an operation without a route, is an error."""
    wanted = {(method, path) for path, methods in routes.items() for method in methods}
    known = {(op.method, op.path) for op in OPERATIONS}
    if wanted != known:
        raise ValueError(
            f"routes and OPERATIONS differ: only routes {wanted - known}, only OPERATIONS {known - wanted}"
        )
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        item = paths.setdefault(operation.path, {})
        if "{identity_id}" in operation.path and "parameters" not in item:
            item["parameters"] = [
                {
                    "name": "identity_id",
                    "in": "path",
                    "required": True,
                    "description": "A Cognito identity id of the identity pool's region (<region>:<uuid>).",
                    "schema": {"type": "string", "pattern": f"^{IDENTITY_ID.pattern}$"},
                }
            ]
        spec: dict[str, Any] = {"operationId": operation.operation_id, "summary": operation.summary}
        if operation.query is not None:
            spec["parameters"] = _query_parameters(operation.query)
        if operation.body is not None:
            spec["requestBody"] = {
                "required": True,
                "content": {JSON_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{operation.body.__name__}"}}},
            }
        responses: dict[str, Any] = {}
        for status, model in sorted(operation.responses.items()):
            responses[str(status)] = {
                "description": (model.__doc__ or "").strip().splitlines()[0],
                "content": {JSON_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        errors = dict(operation.errors)
        if operation.authenticated:
            errors.setdefault(500, "Internal error, or the API's configuration is invalid.")
        for status, description in sorted(errors.items()):
            responses[str(status)] = _error_response(description or _ERROR_DESCRIPTIONS[status])
        spec["responses"] = responses
        spec["security"] = [{"sigv4": []}] if operation.authenticated else []
        item[operation.method.lower()] = spec
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "RUM Guard operator API",
            "version": API_VERSION,
            "description": (
                "Block, unblock, list and allowlist Cognito guest identities, and switch the guest lockdown. "
                'Requests are signed with SigV4 (service execute-api); errors are {"error": CODE, "message": TEXT}.'
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS Signature Version 4 (IAM authorization by API Gateway).",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                }
            },
        },
    }


def openapi_json(routes: Mapping[str, Iterable[str]]) -> str:
    """``openapi_document`` as the text of ``docs/openapi.json``."""
    return json.dumps(openapi_document(routes), indent=2, ensure_ascii=False) + "\n"
