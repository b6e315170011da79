"""Fixtures and Hypothesis settings of the unit tests (the pure domain: no network, no AWS, no clock).

Hypothesis profiles: ``default`` for development, ``ci`` (chosen when the ``CI`` environment variable is set)
is derandomized so a CI failure reproduces, ``thorough`` runs many more examples for a deliberate deep run
(``HYPOTHESIS_PROFILE=thorough``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from rumguard.ingest import BatchReport, ingest_batch
from rumguard.monitors import LOG_GROUP_PREFIX, MonitorDirectory

settings.register_profile(
    "default",
    max_examples=25,
    deadline=None,
    # Schema-generated objects are slow to build; the example count is what bounds the runtime here.
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True, database=None)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))

GUEST = "RetailDemoStore_Unauthenticated"
SIGNED_IN = "RetailDemoStore_Authenticated"
IDENTITY_ATTRIBUTE = "cognitoIdentityId"
#: When RUM received the example events (2026-01-01T00:00:00Z); their own timestamps sit near it.
RECEIVED_MS = 1_767_225_600_000

_PAGE_VIEW: dict[str, Any] = {
    "event_timestamp": RECEIVED_MS - 2_000,
    "event_type": "com.amazon.rum.page_view_event",
    "event_id": "6f0c6a1e-1d3c-4a44-9d7e-2c1c1d7a9b11",
    "event_version": "1.0.0",
    "log_stream": "2026-01-01T00",
    "application_id": "a1b2c3d4-0000-4000-8000-00000000abcd",
    "application_version": "1.0.0",
    "metadata": {
        "version": "1.0.0",
        "browserLanguage": "en",
        "browserName": "Chrome",
        "osName": "Mac OS",
        "deviceType": "desktop",
        "platformType": "web",
        "domain": "shop.example.com",
        "title": "Home",
        "pageId": "/",
        IDENTITY_ATTRIBUTE: "us-east-1:0f9a8b7c-6d5e-4f30-a2b1-c0d9e8f7a6b5",
    },
    "user_details": {"sessionId": "1a2b3c4d-0000-4000-8000-000000000001", "userId": "9f8e7d6c-0000-4000-8000-0"},
    "event_details": {"version": "1.0.0", "pageId": "/", "interaction": 1},
}


@pytest.fixture
def page_view() -> dict[str, Any]:
    """A valid page view as RUM writes it to CloudWatch Logs (the README's example), fresh for each test.

    Its ``event_timestamp`` is 2 s before ``RECEIVED_MS`` and it claims the identity in
    ``metadata["cognitoIdentityId"]``.
    """
    return copy.deepcopy(_PAGE_VIEW)


@pytest.fixture(scope="session")
def new_page_view() -> Callable[[], dict[str, Any]]:
    """Fresh copies of the ``page_view`` example, for Hypothesis tests (their examples share fixtures)."""
    return lambda: copy.deepcopy(_PAGE_VIEW)


@pytest.fixture(scope="session")
def monitors() -> MonitorDirectory:
    """One guest and one signed-in monitor, named as in the Retail Demo Store walkthrough."""
    return MonitorDirectory(guest=[GUEST], signed_in=[SIGNED_IN])


@pytest.fixture(scope="session")
def guest_log_group() -> str:
    """The log group RUM writes the guest monitor's events to."""
    return f"{LOG_GROUP_PREFIX}{GUEST}0a1b2c3d"


@pytest.fixture(scope="session")
def received_ms() -> int:
    """When RUM received the example events: the log events' ``timestamp``."""
    return RECEIVED_MS


@pytest.fixture(scope="session")
def ingest(monitors: MonitorDirectory, guest_log_group: str) -> Callable[[list[dict[str, Any]]], BatchReport]:
    """Ingest log events as one batch of the guest monitor's log group, reading ``cognitoIdentityId``."""

    def run(log_events: list[dict[str, Any]]) -> BatchReport:
        return ingest_batch(guest_log_group, log_events, monitors, IDENTITY_ATTRIBUTE)

    return run
