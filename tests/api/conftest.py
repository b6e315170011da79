"""Fixtures of the operator API tests: the embedded AWS (moto), the real Chalice app wired to it through the
environment, and one way to call the app per transport.

Each test gets a fresh moto account and the app's decision service rebuilt from that account's environment
(``api.reset()``: the app builds it lazily, once per process, as in Lambda). ``http`` runs a test twice:
through ``chalice.test.Client`` (Chalice's local API Gateway) and through ``app(event, context)`` with the
REST proxy event API Gateway sends, signed by an IAM user whose ARN becomes the ``actor``. Every answer is
checked on the way (``tests.api.support.checked``): JSON with a JSON Content-Type, and, for a route of the
API, a status and a body that docs/openapi.json documents.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import boto3
import pytest
from chalice.test import Client
from chalice_app.app import api, app, logger
from tests.api.support import CHALICE_DIR, ClientTransport, EventTransport, Transport, api_environment, shared_session

from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws


# --- the embedded AWS and the app wired to it ------------------------------------------------------------------
@pytest.fixture
def aws() -> Iterator[EmbeddedAws]:
    """moto, started, with RUM Guard's table, identity pool, guest role and bus (enforce mode)."""
    with EmbeddedAws(guest_monitors=(GUEST_MONITOR,), signed_in_monitors=(SIGNED_IN_MONITOR,)) as embedded:
        yield embedded


@pytest.fixture
def wired(aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedAws]:
    """The app's environment set to the embedded AWS, and its decision service rebuilt on first use."""
    for name, value in api_environment(aws).items():
        monkeypatch.setenv(name, value)
    # moto gives each mock a fresh boto3 default session, whose first clients load every service model
    # again (a third of a second per test); one shared session keeps them, as a Lambda process would.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", shared_session())
    api.reset()
    yield aws
    api.reset()


@pytest.fixture
def client() -> Client:
    """Chalice's test client over the app, with the project's .chalice/config.json."""
    return Client(app, project_dir=str(CHALICE_DIR))


@pytest.fixture(params=["client", "event"])
def http(request: pytest.FixtureRequest, wired: EmbeddedAws, client: Client) -> Transport:
    """Each test twice: through Chalice's test client and through a Lambda proxy event."""
    if request.param == "client":
        return ClientTransport(client)
    return EventTransport()


@pytest.fixture
def event(wired: EmbeddedAws) -> EventTransport:
    """Only the Lambda proxy event path (where the IAM caller is known)."""
    return EventTransport()


@pytest.fixture
def api_log() -> Iterator[io.StringIO]:
    """What the app's Powertools Logger writes, for the duration of a test."""
    buffer = io.StringIO()
    handler = logger.logger_handler
    assert hasattr(handler, "setStream")
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
