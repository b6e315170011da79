"""Shared fixtures: every test runs with fake AWS credentials and a fixed region, never a real account."""

from __future__ import annotations

import pytest

#: Fake credentials and the region; a real profile or key in the shell must never reach a test.
AWS_TEST_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_TRACE_DISABLED": "1",
}
#: Settings a developer's shell may carry that would change what the code under test does or emits.
UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_METRICS_DISABLED",
    "POWERTOOLS_IDEMPOTENCY_DISABLED",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_DEV",
)


@pytest.fixture(autouse=True)
def aws_test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials, ``us-east-1``, X-Ray tracing off; restored after each test."""
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
