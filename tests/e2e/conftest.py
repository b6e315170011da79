"""Fixtures of the end-to-end tests: the embedded AWS served on loopback, and the real RUM web client.

``rum`` is a fresh embedded AWS (moto with the RUM Guard table, the two app monitors' log groups, the
identity pool with its guest and signed-in roles) with Cognito and the local RUM data plane on loopback,
delivering every accepted batch to the real ingest handler at once, as a subscription would.

The browser tests (marked ``e2e``) add headless Chromium (Debian's, which ``make test`` installs when it
can) driven through ``tests/e2e/driver.mjs``, and the test shop bundled with aws-rum-web from npm. They
are skipped, saying why, only when no Chromium is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.browser import Browser, ShopServer, bundle_shop, chromium_path
from rumguard.local.context import LocalFunction
from rumguard.local.dataplane import LocalRum
from rumguard.runtime import aws_guard
from rumguard.settings import IngestSettings

NO_CHROMIUM = (
    "Chromium is not installed, so the real RUM web client cannot run: `make test` installs Debian's "
    "chromium with apt-get when it runs as root (CI does); otherwise run `sudo apt-get install -y chromium`, "
    "or point RUMGUARD_CHROMIUM at a Chromium or Chrome binary."
)


@pytest.fixture
def aws() -> Iterator[EmbeddedAws]:
    """moto, started, with the RUM Guard table, the two monitors' log groups, the pool and the guest role."""
    with EmbeddedAws(guest_monitors=(GUEST_MONITOR,), signed_in_monitors=(SIGNED_IN_MONITOR,)) as embedded:
        yield embedded


@pytest.fixture
def ingest(aws: EmbeddedAws) -> LocalFunction:
    """``handlers.ingest`` imported fresh in this test's account, as at a cold start."""
    return LocalFunction("handlers.ingest", aws.ingest_environment(), function_name="rumguard-ingest", log_level="INFO")


@pytest.fixture
def rum(aws: EmbeddedAws, ingest: LocalFunction) -> Iterator[LocalRum]:
    """Cognito and the RUM data plane on loopback, delivering to the ingest handler at once."""
    with LocalRum(aws, ingest) as local:
        yield local


@pytest.fixture
def unblock(aws: EmbeddedAws, rum: LocalRum) -> Callable[[str], None]:
    """An operator's unblock: ``Guard.unblock`` of the decision service the API runs, on this test's
    embedded AWS (with moto's lock held, since the servers are running)."""
    settings = IngestSettings.from_environ(aws.ingest_environment())

    def run(identity_id: str) -> None:
        with rum.locked():
            guard = aws_guard(settings, settings.guard_config(settings.detection()))
            guard.unblock(identity_id, reason="false positive", actor="arn:aws:iam::123456789012:user/operator")

    return run


# --- the browser ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's executable, or the e2e tests are skipped with the reason."""
    found = chromium_path()
    if found is None:
        pytest.skip(NO_CHROMIUM)
    return found


@pytest.fixture(scope="session")
def shop_dir(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test shop, built once per session with aws-rum-web from tests/e2e/node_modules."""
    return bundle_shop(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Browser]:
    """One headless Chromium for the session; each shopper gets a browser context of their own."""
    with Browser(chromium) as running:
        yield running


@pytest.fixture
def shop(shop_dir: Path, rum: LocalRum) -> Iterator[str]:
    """The shop served on loopback, configured for this test's endpoints; its base URL."""
    with ShopServer(shop_dir, rum.shop_config()) as server:
        yield server.url
