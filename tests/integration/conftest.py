"""Fixtures of the integration tests: the embedded AWS (moto), the real ingest handler, simulated traffic.

Each test gets a fresh moto account with the table from template.yaml and the two RUM log groups, and the
ingest handler module imported fresh under that account's environment (the handler reads its settings and
builds its DynamoDB client at import, as at a Lambda cold start).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.context import LocalFunction
from rumguard.local.traffic import TrafficSimulator

HOUR_MS = 60 * 60 * 1000


@pytest.fixture
def aws() -> Iterator[EmbeddedAws]:
    """moto, started, with the RUM Guard table and the guest and signed-in monitors' log groups."""
    with EmbeddedAws(guest_monitors=(GUEST_MONITOR,), signed_in_monitors=(SIGNED_IN_MONITOR,)) as embedded:
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
