"""The real RUM web client in headless Chromium: the test shop, bundled and served, and shoppers driving it.

The shop (``tests/e2e/shop``: welcome, sign in, product, cart, checkout, and a bot page) loads
``aws-rum-web`` from npm, bundled here with esbuild (nothing comes from a CDN), and sends its RUM data to a
``LocalRum`` (``rumguard.local.dataplane``) with credentials from the embedded Cognito pool. Chromium is
Debian's (``/usr/bin/chromium``); it is driven with playwright-core through ``tests/e2e/driver.mjs``, a
small remote control that speaks JSON lines on stdin and stdout, so Python needs no browser package.

- ``chromium_path()`` finds Chromium (``RUMGUARD_CHROMIUM`` overrides); ``ensure_node_modules()`` runs
  ``npm ci`` in ``tests/e2e`` when the lock file changed; ``bundle_shop()`` builds the shop into a folder.
- ``ShopServer`` serves that folder on loopback with a ``/config.js`` naming the local endpoints.
- ``Browser`` is one Chromium; ``Shopper`` is one user in it (a browser context of its own).
- ``guest_journey``, ``signed_in_journey`` and ``start_bot`` are the journeys the tests and the demo run,
  and ``run_shop`` runs them all against a ``LocalRum`` for the demo and reports what happened.
"""

from __future__ import annotations

import json
import mimetypes
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from rumguard.local.dataplane import LoopbackServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from rumguard.local.dataplane import LocalRum

#: The repository's end-to-end folder: package.json, the driver and the shop's sources.
E2E_DIR: Final = Path(__file__).resolve().parents[3] / "tests" / "e2e"
SHOP_SOURCES: Final = E2E_DIR / "shop"
DRIVER: Final = E2E_DIR / "driver.mjs"
#: How Debian's Chromium runs here: as root (no sandbox), no GPU, and no background connections, which
#: this machine's closed network would refuse many at a time.
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
#: How long a shopper stays on the blank page after leaving, for the last beacon to go out. The browser sends
#: it on its own time; 0.3 s lost a page's events once in a loaded CI run, so leave generous room.
LEAVE_SECONDS: Final = 2.0


class BrowserError(RuntimeError):
    """The browser, the driver or the tooling around them failed."""


def chromium_path() -> str | None:
    """Chromium's executable: ``RUMGUARD_CHROMIUM``, else the first of Debian's names on PATH."""
    configured = os.environ.get("RUMGUARD_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(command: list[str], cwd: Path, what: str) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BrowserError(f"{what} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")


def ensure_node_modules(e2e_dir: Path = E2E_DIR) -> Path:
    """``npm ci`` in the end-to-end folder unless its node_modules matches package-lock.json already."""
    modules = e2e_dir / "node_modules"
    installed = modules / ".package-lock.json"
    lock = e2e_dir / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise BrowserError("npm is not installed: the end-to-end shop needs Node.js and npm")
    _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], e2e_dir, "npm ci")
    return modules


def bundle_shop(out_dir: Path, e2e_dir: Path = E2E_DIR) -> Path:
    """Build the shop into ``out_dir``: its pages, and ``shop.js`` (the shop code with aws-rum-web)."""
    modules = ensure_node_modules(e2e_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = e2e_dir / "shop"
    for source in sources.iterdir():
        if source.is_file():
            shutil.copy2(source, out_dir / source.name)
    esbuild = modules / ".bin" / "esbuild"
    _run(
        [
            str(esbuild),
            str(sources / "src" / "shop.js"),
            "--bundle",
            "--format=iife",
            "--global-name=Shop",
            "--target=es2020",
            "--log-level=warning",
            f"--outfile={out_dir / 'shop.js'}",
        ],
        e2e_dir,
        "esbuild",
    )
    return out_dir


class ShopServer:
    """The built shop on 127.0.0.1, with ``/config.js`` setting ``window.SHOP_CONFIG``."""

    def __init__(self, root: Path, config: Mapping[str, Any]) -> None:
        self.root = root.resolve()
        self.config_js = f"window.SHOP_CONFIG = {json.dumps(dict(config))};\n".encode()
        self._server = LoopbackServer(self._app, name="shop")

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/").lstrip("/") or "index.html"
        if path == "config.js":
            body, kind = self.config_js, "text/javascript"
        else:
            target = (self.root / path).resolve()
            if self.root not in target.parents or not target.is_file():
                start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
                return [b"not found"]
            body = target.read_bytes()
            kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    @property
    def url(self) -> str:
        """The shop's base URL (ends with ``/``)."""
        return f"{self._server.url}/"

    def start(self) -> Self:
        """Serve in the background."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


class Browser:
    """One headless Chromium, driven through ``driver.mjs``. A context manager."""

    def __init__(self, executable: str, *, e2e_dir: Path = E2E_DIR, timeout: float = 30.0) -> None:
        self.executable = executable
        self.e2e_dir = e2e_dir
        self.timeout = timeout
        self.version = ""
        self._process: subprocess.Popen[str] | None = None
        self._answers: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._next = 0
        self._reader: threading.Thread | None = None
        self._stderr: list[str] = []

    def start(self) -> Self:
        """Start the driver and launch Chromium."""
        node = shutil.which("node")
        if node is None:
            raise BrowserError("node is not installed: the browser driver runs on Node.js")
        ensure_node_modules(self.e2e_dir)
        self._process = subprocess.Popen(  # noqa: S603 - our own driver script
            [node, str(self.e2e_dir / "driver.mjs")],
            cwd=self.e2e_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name="browser-driver", daemon=True)
        self._reader.start()
        threading.Thread(target=self._drain_stderr, name="browser-driver-stderr", daemon=True).start()
        self.version = str(self.call("launch", executablePath=self.executable, args=list(CHROMIUM_ARGS)))
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                waiting = self._answers.get(message.get("id"))
            if waiting is not None:
                waiting.put(message)

    def _drain_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr.append(line.rstrip())

    def call(self, op: str, *, timeout: float | None = None, **args: Any) -> Any:
        """Run one driver command and return its value; raises ``BrowserError`` with the driver's error."""
        process = self._process
        if process is None or process.stdin is None or process.poll() is not None:
            raise BrowserError(f"the browser driver is not running: {' | '.join(self._stderr[-5:])}")
        answer: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        with self._lock:
            self._next += 1
            ident = self._next
            self._answers[ident] = answer
            process.stdin.write(json.dumps({"id": ident, "op": op, **args}) + "\n")
            process.stdin.flush()
        try:
            message = answer.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise BrowserError(f"the browser driver did not answer {op} in time") from None
        finally:
            with self._lock:
                self._answers.pop(ident, None)
        if not message.get("ok"):
            raise BrowserError(f"{op} failed: {message.get('error')}")
        return message.get("value")

    def shopper(self, name: str, shop_url: str) -> Shopper:
        """A new user in their own browser context."""
        self.call("newContext", name=name)
        return Shopper(self, name, shop_url)

    def stop(self) -> None:
        """Close Chromium and the driver."""
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None and process.stdin is not None:
                process.stdin.write(json.dumps({"id": 0, "op": "close"}) + "\n")
                process.stdin.flush()
                process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


class Shopper:
    """One user of the shop: a browser context with one page."""

    def __init__(self, browser: Browser, name: str, shop_url: str) -> None:
        self.browser = browser
        self.name = name
        self.shop_url = shop_url

    def visit(self, page: str) -> None:
        """Open a shop page and wait until its RUM client started."""
        self.browser.call("goto", ctx=self.name, url=f"{self.shop_url}{page}.html")
        self.wait("document.documentElement.dataset.rum === 'ready'")

    def click(self, selector: str) -> None:
        """Click an element."""
        self.browser.call("click", ctx=self.name, selector=selector)

    def click_to(self, selector: str) -> None:
        """Click an element that leads to another page, and wait until that page's RUM client started."""
        self.browser.call("clickAndWait", ctx=self.name, selector=selector)
        self.wait("document.documentElement.dataset.rum === 'ready'")

    def fill(self, selector: str, value: str) -> None:
        """Type into a field."""
        self.browser.call("fill", ctx=self.name, selector=selector, value=value)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        return self.browser.call("evaluate", ctx=self.name, expression=expression)

    def wait(self, expression: str, timeout: float = 15.0) -> None:
        """Wait until a JavaScript expression is truthy in the page."""
        self.browser.call(
            "waitFor", ctx=self.name, expression=expression, timeoutMs=int(timeout * 1000), timeout=timeout + 5
        )

    @property
    def identity_id(self) -> str:
        """The Cognito identity id the page's RUM client reports."""
        return str(self.evaluate("window.shopState.identityId"))

    def logs(self) -> list[str]:
        """The page's console messages and uncaught errors so far."""
        return list(self.browser.call("logs", ctx=self.name))

    def leave(self) -> None:
        """Leave the shop for a blank page: the client flushes what it holds on page hide, with a beacon
        that the browser sends on its own time, so give it a moment before the context may close."""
        self.browser.call("goto", ctx=self.name, url="about:blank")
        time.sleep(LEAVE_SECONDS)

    def close(self) -> None:
        """Close the browser context."""
        self.browser.call("closeContext", ctx=self.name)


# --- journeys ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Journey:
    """What one shopper did: the identities used, and the page loads, clicks and faults per audience."""

    shopper: str
    #: audience ("guest" or "signed-in") -> the Cognito identity id used for it.
    identities: dict[str, str] = field(default_factory=dict)
    #: audience -> page loads (each one a page view of that audience's monitor).
    page_loads: dict[str, int] = field(default_factory=dict)
    #: audience -> button clicks recorded as DOM events.
    clicks: dict[str, int] = field(default_factory=dict)
    #: audience -> failed fetches (HTTP errors) and uncaught errors the pages caused.
    http_errors: dict[str, int] = field(default_factory=dict)
    js_errors: dict[str, int] = field(default_factory=dict)

    def _count(self, table: dict[str, int], audience: str, n: int = 1) -> None:
        table[audience] = table.get(audience, 0) + n


def _visit(shopper: Shopper, journey: Journey, audience: str, page: str, *, via: str | None = None) -> None:
    if via is None:
        shopper.visit(page)
    else:
        shopper.click_to(via)
    journey._count(journey.page_loads, audience)
    journey.identities.setdefault(audience, shopper.identity_id)


#: How long the guest reads the product page: past a dispatch interval, so that page's events go out with a
#: signed fetch on the client's timer (the others' go out with a presigned beacon as the page is left).
LINGER_SECONDS: Final = 1.5


def _add_two(shopper: Shopper, journey: Journey, audience: str) -> None:
    """Two teapots into the cart. The handler is slow, so the page reports interaction to next paint
    (headless Chromium's web-vitals reported it from the second interaction on, never after one)."""
    for _ in range(2):
        shopper.click("#add")
        journey._count(journey.clicks, audience)
    shopper.wait("document.getElementById('added').textContent === 'Added.'")


def guest_journey(browser: Browser, shop_url: str, name: str) -> Journey:
    """A guest browses: welcome, product (reads it a while, adds to cart), cart (the stock check fails),
    then leaves."""
    shopper = browser.shopper(name, shop_url)
    journey = Journey(name)
    _visit(shopper, journey, "guest", "index")
    _visit(shopper, journey, "guest", "product", via="#browse")
    journey._count(journey.clicks, "guest")
    _add_two(shopper, journey, "guest")
    time.sleep(LINGER_SECONDS)
    _visit(shopper, journey, "guest", "cart")
    shopper.wait("document.getElementById('stock').textContent === 'stock: 404'")
    journey._count(journey.http_errors, "guest")
    shopper.leave()
    shopper.close()
    return journey


def signed_in_journey(browser: Browser, shop_url: str, name: str, user: str) -> Journey:
    """A guest signs in, then shops signed in: welcome, product, cart, checkout, pays (and the payment
    widget throws), then leaves."""
    shopper = browser.shopper(name, shop_url)
    journey = Journey(name)
    _visit(shopper, journey, "guest", "signin")
    shopper.fill("#user", user)
    journey._count(journey.clicks, "guest")
    _visit(shopper, journey, "signed-in", "index", via="#submit")
    _visit(shopper, journey, "signed-in", "product", via="#browse")
    journey._count(journey.clicks, "signed-in")
    _add_two(shopper, journey, "signed-in")
    _visit(shopper, journey, "signed-in", "cart")
    shopper.wait("document.getElementById('stock').textContent === 'stock: 404'")
    journey._count(journey.http_errors, "signed-in")
    _visit(shopper, journey, "signed-in", "checkout", via="#checkout")
    journey._count(journey.clicks, "signed-in")
    shopper.click("#pay")
    journey._count(journey.clicks, "signed-in")
    shopper.wait("document.getElementById('paid').textContent === 'Thank you!'")
    journey._count(journey.js_errors, "signed-in")
    time.sleep(0.2)  # let the uncaught error reach the client's handler before the page goes
    shopper.leave()
    shopper.close()
    return journey


def start_bot(browser: Browser, shop_url: str, name: str = "bot") -> Shopper:
    """Open the bot page: one guest identity flooding page views until the context is closed."""
    shopper = browser.shopper(name, shop_url)
    shopper.visit("bot")
    return shopper


# --- the demo's run ------------------------------------------------------------------------------------
@dataclass(slots=True)
class ShopRun:
    """What a browser run of the shop did and saw, for the demo's report."""

    journeys: list[Journey]
    chromium: str = ""
    bot_identity: str | None = None
    #: Page views the bot recorded in its page, and how the data plane answered its batches.
    bot_pages: int = 0
    bot_accepted: int = 0
    bot_refused: int = 0
    #: Seconds from the bot's first page to its first refusal (``None`` if it was never refused).
    bot_blocked_after: float | None = None
    #: Batches of honest shoppers accepted and refused (a healthy run refuses none).
    honest_accepted: int = 0
    honest_refused: int = 0


def run_shop(
    rum: LocalRum,
    out_dir: Path,
    *,
    executable: str,
    guests: int = 2,
    signed_in: int = 1,
    bot: bool = True,
    block_timeout: float = 20.0,
) -> ShopRun:
    """Run the shop in Chromium against a started ``rum``: a bot floods from one guest identity while
    signed-in shoppers and guests go through their journeys; once the bot is refused, one more guest
    shops. Returns what each side did and saw (the metrics are in ``rum.emf()``)."""
    shop_dir = bundle_shop(out_dir)
    journeys: list[Journey] = []
    run = ShopRun(journeys)
    with ShopServer(shop_dir, rum.shop_config()) as shop, Browser(executable) as browser:
        run.chromium = browser.version
        started = datetime.now(UTC)
        bot_shopper = start_bot(browser, shop.url) if bot else None
        if bot_shopper is not None:
            run.bot_identity = bot_shopper.identity_id
        for n in range(signed_in):
            journeys.append(signed_in_journey(browser, shop.url, f"shopper-{n + 1}", f"user{n + 1}"))
        for n in range(guests):
            journeys.append(guest_journey(browser, shop.url, f"guest-{n + 1}"))
        if bot_shopper is not None:
            refused = rum.wait_until(
                lambda: bool(rum.receipts(identity_id=run.bot_identity, error="AccessDeniedException")),
                timeout=block_timeout,
            )
            if refused:
                first = rum.receipts(identity_id=run.bot_identity, error="AccessDeniedException")[0]
                run.bot_blocked_after = (first.at - started).total_seconds()
            journeys.append(guest_journey(browser, shop.url, f"guest-{guests + 1}"))
            run.bot_pages = int(bot_shopper.evaluate("window.botPages"))
            bot_shopper.close()
        rum.wait_quiet()
    honest = {identity for journey in journeys for identity in journey.identities.values()}
    for receipt in rum.receipts():
        if run.bot_identity is not None and receipt.identity_id == run.bot_identity:
            run.bot_accepted += receipt.accepted
            run.bot_refused += not receipt.accepted
        elif receipt.identity_id in honest:
            run.honest_accepted += receipt.accepted
            run.honest_refused += not receipt.accepted
    return run
