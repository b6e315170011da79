"""Fixtures of the integration tests: the embedded AWS (moto), the real handlers, simulated traffic.

Each test gets a fresh moto account with the table from template.yaml and the two RUM log groups, and the
ingest handler module imported fresh under that account's environment (the handler reads its settings and
builds its DynamoDB client at import, as at a Lambda cold start). The decision tests add hand-made abusive
guest traffic (``GuestTraffic``), the sweeper handler, the decision store and the guest role's deny list.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pytest

from rumguard.adapters.dynamodb import BLOCK_PK, DynamoDecisionStore, epoch, iso
from rumguard.decisions import Block
from rumguard.guard import Guard
from rumguard.local.aws import (
    FILTER_NAME,
    GUEST_MONITOR,
    SIGNED_IN_MONITOR,
    EmbeddedAws,
    app_monitor_id,
    log_stream_name,
)
from rumguard.local.context import Invocation, LocalFunction
from rumguard.local.subscription import batches, subscription_event
from rumguard.local.traffic import TrafficSimulator
from rumguard.policy import POLICY_PREFIX, SUB_KEY
from rumguard.runtime import aws_guard
from rumguard.settings import IngestSettings

HOUR_MS = 60 * 60 * 1000


@pytest.fixture
def rumguard_mode() -> str:
    """``RUMGUARD_MODE`` of the embedded AWS's functions; a test parametrizes it to ``"dry-run"``."""
    return "enforce"


@pytest.fixture
def aws(rumguard_mode: str) -> Iterator[EmbeddedAws]:
    """moto, started, with the RUM Guard table and the guest and signed-in monitors' log groups."""
    with EmbeddedAws(
        guest_monitors=(GUEST_MONITOR,), signed_in_monitors=(SIGNED_IN_MONITOR,), mode=rumguard_mode
    ) as embedded:
        yield embedded


@pytest.fixture
def ingest(aws: EmbeddedAws) -> LocalFunction:
    """``handlers.ingest`` imported fresh in this test's account, logging at INFO into its capture."""
    return LocalFunction("handlers.ingest", aws.ingest_environment(), function_name="rumguard-ingest", log_level="INFO")


@pytest.fixture
def start_ms() -> int:
    """Five minutes into the hour before last: recent enough for CloudWatch Logs, and a test's few
    sessions stay inside one hourly log stream (so inside one delivery)."""
    now = int(time.time() * 1000)
    return (now - 2 * HOUR_MS) // HOUR_MS * HOUR_MS + 5 * 60 * 1000


@pytest.fixture
def simulator(aws: EmbeddedAws, start_ms: int) -> TrafficSimulator:
    """Simulated shop traffic into the two monitors, with a fixed seed."""
    guest, signed_in = aws.monitor(GUEST_MONITOR).monitor, aws.monitor(SIGNED_IN_MONITOR).monitor
    return TrafficSimulator(guest, signed_in, seed=11, start_ms=start_ms)


# --- hand-made guest traffic, the sweeper, the decision store --------------------------------------------
#: A scheduled EventBridge event, as the sweeper's schedule delivers it (its content is not used).
SCHEDULED_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "5e1c1d33-0000-4000-8000-000000000001",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-01-01T00:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/rumguard-sweeper"],
    "detail": {},
}
#: An event more than 24 hours off its receipt is junk (DESIGN.md, detection defaults).
SKEW_MS = 3 * 24 * HOUR_MS


class GuestTraffic:
    """Hand-made RUM events for chosen identities: the abusive shapes honest simulated sessions never take.

    Every event is valid against aws-rum-web's schemas unless asked to be junk (``invalid``: a page view
    whose ``interaction`` is a string; ``skewed``: a page view three days off its receipt). A delivery writes
    its events to a log stream of its own in moto's CloudWatch Logs and reads them back as the one
    subscription event CloudWatch Logs would make of that stream, so each delivery carries only its events,
    with the log event ids moto gave them.
    """

    def __init__(self, aws: EmbeddedAws, start_ms: int) -> None:
        self.aws = aws
        self.start_ms = start_ms
        self._streams = 0

    def message(
        self,
        identity: str | None,
        event_type: str,
        details: dict[str, Any],
        at_ms: int,
        *,
        session_id: str,
        event_ms: int | None = None,
    ) -> str:
        """One RUM log message as RUM writes it (``event_ms``: the client's timestamp, if not ``at_ms``)."""
        metadata = {
            "version": "1.0.0",
            "domain": "shop.example.com",
            "platformType": "web",
            "pageId": "/",
            "aws:client": "arw-module",
            "aws:clientVersion": "1.22.0",
        }
        if identity is not None:
            metadata[self.aws.identity_attribute] = identity
        body = {
            "event_timestamp": (at_ms - 40) if event_ms is None else event_ms,
            "event_type": f"com.amazon.rum.{event_type}",
            "event_id": str(uuid.uuid4()),
            "event_version": "1.0.0",
            "log_stream": log_stream_name(at_ms),
            "application_id": app_monitor_id(GUEST_MONITOR),
            "application_version": "1.0.0",
            "metadata": metadata,
            "user_details": {"sessionId": session_id, "userId": "00000000-0000-0000-0000-000000000000"},
            "event_details": details,
        }
        return orjson.dumps(body).decode()

    def events(
        self,
        identity: str | None,
        *,
        clicks: int = 0,
        session_starts: int = 0,
        page_views: int = 0,
        js_errors: int = 0,
        invalid: int = 0,
        skewed: int = 0,
        at_ms: int | None = None,
        span_ms: int = 50_000,
    ) -> list[tuple[int, str]]:
        """``(receipt ms, message)`` pairs of one identity, spread over ``span_ms`` from ``at_ms``.

        ``clicks`` are DOM events (they count only as events); each session start opens a new session.
        """
        start = self.start_ms if at_ms is None else at_ms
        kinds = (
            ["click"] * clicks
            + ["session"] * session_starts
            + ["view"] * page_views
            + ["error"] * js_errors
            + ["invalid"] * invalid
            + ["skewed"] * skewed
        )
        step = max(1, span_ms // max(1, len(kinds)))
        session = str(uuid.uuid4())
        out: list[tuple[int, str]] = []
        for n, kind in enumerate(kinds):
            at = start + n * step
            view = {"version": "1.0.0", "pageId": "/", "pageInteractionId": f"/-{n}", "interaction": n + 1}
            if kind == "click":
                message = self.message(
                    identity, "dom_event", {"version": "1.1.0", "event": "click", "element": "BUTTON"}, at,
                    session_id=session,
                )  # fmt: skip
            elif kind == "session":
                session = str(uuid.uuid4())
                message = self.message(identity, "session_start_event", {"version": "1.0.0"}, at, session_id=session)
            elif kind == "view":
                message = self.message(identity, "page_view_event", view, at, session_id=session)
            elif kind == "error":
                details = {"version": "1.0.0", "type": "TypeError", "message": "Cannot read properties of null"}
                message = self.message(identity, "js_error_event", details, at, session_id=session)
            elif kind == "invalid":
                message = self.message(
                    identity, "page_view_event", view | {"interaction": "three"}, at, session_id=session
                )
            else:
                message = self.message(identity, "page_view_event", view, at, session_id=session, event_ms=at - SKEW_MS)
            out.append((at, message))
        return out

    def delivery(self, messages: Sequence[tuple[int, str]], monitor: str = GUEST_MONITOR) -> dict[str, Any]:
        """The one subscription event CloudWatch Logs delivers for these messages (a stream of their own)."""
        group = self.aws.monitor(monitor).log_group
        self._streams += 1
        stream = f"{log_stream_name(min(at for at, _ in messages))}-{self._streams}"
        self.aws.put_log_events(group, stream, messages)
        (batch,) = list(batches(self.aws.log_events(group, stream)))
        return subscription_event(group, batch, log_stream=stream, owner=self.aws.account_id, filter_name=FILTER_NAME)

    def deliver(
        self, function: LocalFunction, messages: Sequence[tuple[int, str]], monitor: str = GUEST_MONITOR
    ) -> Invocation:
        """Deliver the messages to the ingest function; the invocation must succeed."""
        invocation = function.invoke(self.delivery(messages, monitor))
        assert invocation.error is None, repr(invocation.error)
        return invocation


@pytest.fixture
def traffic(aws: EmbeddedAws, start_ms: int) -> GuestTraffic:
    """Hand-made guest traffic into this test's embedded AWS."""
    return GuestTraffic(aws, start_ms)


@pytest.fixture
def make_ingest(aws: EmbeddedAws) -> Callable[..., LocalFunction]:
    """``handlers.ingest`` imported fresh with the environment's settings changed (``EVENT_FLOOD_LIMIT="50"``...)."""

    def make(**settings: str) -> LocalFunction:
        environ = aws.ingest_environment() | settings
        return LocalFunction("handlers.ingest", environ, function_name="rumguard-ingest", log_level="INFO")

    return make


@pytest.fixture
def sweeper(aws: EmbeddedAws) -> LocalFunction:
    """``handlers.sweeper`` imported fresh in this test's account."""
    return LocalFunction(
        "handlers.sweeper", aws.sweeper_environment(), function_name="rumguard-sweeper", log_level="INFO"
    )


@pytest.fixture
def store(aws: EmbeddedAws) -> DynamoDecisionStore:
    """The decision records in this test's table, read as RUM Guard reads them."""
    return DynamoDecisionStore(aws.dynamodb, aws.table_name)


@pytest.fixture
def denied(aws: EmbeddedAws) -> Callable[[], set[str]]:
    """Every identity id the guest role's ``rumguard-deny*`` policies deny now (by ``...:sub``)."""

    def read() -> set[str]:
        found: set[str] = set()
        for name, document in aws.guest_role_policies().items():
            if not name.startswith(POLICY_PREFIX):
                continue
            for statement in document["Statement"]:
                listed = statement.get("Condition", {}).get("StringEquals", {}).get(SUB_KEY, [])
                found.update([listed] if isinstance(listed, str) else listed)
        return found

    return read


@pytest.fixture
def guard_for() -> Callable[[Mapping[str, str]], Guard]:
    """The decision service as the functions and the API build it (``aws_guard``), on a function's settings."""

    def build(environ: Mapping[str, str]) -> Guard:
        settings = IngestSettings.from_environ(environ)
        return aws_guard(settings, settings.guard_config(settings.detection()))

    return build


@pytest.fixture
def expire_block(aws: EmbeddedAws, store: DynamoDecisionStore) -> Callable[[str], Block]:
    """Move an identity's active block back by its own duration and a second: made that long ago, it has
    just expired. The guard reads the real clock and moto has none to advance, so time moves in the table."""

    def expire(identity: str) -> Block:
        block = store.get_block(identity)
        assert block is not None and block.expires_at is not None, f"{identity} has no block with an expiry"
        shift = block.expires_at - block.created_at + timedelta(seconds=1)
        created, expires = block.created_at - shift, block.expires_at - shift
        aws.dynamodb.update_item(
            TableName=aws.table_name,
            Key={"pk": {"S": BLOCK_PK}, "sk": {"S": identity}},
            UpdateExpression="SET createdAt = :c, createdEpoch = :ce, expiresAt = :e, expiresEpoch = :ee",
            ExpressionAttributeValues={
                ":c": {"S": iso(created)},
                ":ce": {"N": str(epoch(created))},
                ":e": {"S": iso(expires)},
                ":ee": {"N": str(epoch(expires))},
            },
        )
        return replace(block, created_at=created, expires_at=expires)

    return expire
