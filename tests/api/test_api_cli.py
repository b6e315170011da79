"""The README's session, for real: ``rumguard local`` and ``chalice local`` as processes, then the ``rumguard``
operator commands and plain HTTP (what curl sends) against the served API; and the CLI's signing, checked on
a loopback server that records what it receives.

The two processes are shared by the module (each test uses its own sample identities) and stopped by the
last test, which checks that ``rumguard local`` ends cleanly on SIGTERM.
"""

from __future__ import annotations

import http.server
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from tests.api.support import CHALICE_DIR

from rumguard.cli import main
from rumguard.local.stack import UNSET

STARTUP_SECONDS = 30.0
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def read_exports(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of an env file."""
    exported: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            exported[name] = shlex.split(value)[0] if value else ""
    return exported


@dataclass
class Served:
    """``rumguard local`` and ``chalice local``, running."""

    api_url: str
    exported: dict[str, str]
    env_file: Path
    stack: subprocess.Popen[str]
    chalice: subprocess.Popen[bytes]
    guests: list[str]

    def guest(self) -> str:
        """A sample guest identity no other test used."""
        return self.guests.pop()


def wait_for(check: Any, what: str, process: subprocess.Popen[Any]) -> None:
    """Poll ``check`` until it holds; fail early if the process died."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}")
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"{what}: not ready after {STARTUP_SECONDS} s")


def answers(url: str) -> bool:
    """Whether the API answers /health."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The README's two terminals: ``rumguard local --env-file``, then ``chalice local`` with that environment."""
    workdir = tmp_path_factory.mktemp("local")
    env_file = workdir / "local.env"
    api_url = f"http://127.0.0.1:{free_port()}"
    shell = {k: v for k, v in os.environ.items() if k not in {*UNSET, "AWS_ENDPOINT_URL"}} | FAKE_AWS
    stack = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rumguard.cli",
            "local",
            *("--port", "0", "--guests", "8"),
            *("--env-file", str(env_file)),
            *("--api-url", api_url),
        ],
        env=shell,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    chalice: subprocess.Popen[bytes] | None = None
    try:
        wait_for(env_file.exists, "rumguard local", stack)
        exported = read_exports(env_file)
        port = api_url.rsplit(":", 1)[1]
        with (workdir / "chalice.log").open("wb") as log:
            chalice = subprocess.Popen(
                [str(Path(sys.executable).parent / "chalice"), "local", "--no-autoreload", "--port", port],
                cwd=CHALICE_DIR,
                env=shell | exported,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: answers(api_url), "chalice local", chalice)
        guests = exported["RUMGUARD_SAMPLE_GUESTS"].split()
        yield Served(api_url, exported, env_file, stack, chalice, guests)
    finally:
        for process in (chalice, stack):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def rumguard(served: Served, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run a ``rumguard`` command against the served API: exit status, stdout, stderr."""
    status = main([*args, "--api-url", served.api_url])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def rumguard_json(served: Served, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    """A command's ``--json`` answer (it must succeed)."""
    status, out, err = rumguard(served, capsys, *args, "--json")
    assert status == 0, err
    return json.loads(out)


def test_blocks_through_the_cli(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    bot = served.guest()
    status, out, _ = rumguard(served, capsys, "blocks", "add", bot, "--reason", "scraping", "--duration", "30m")
    assert status == 0 and f"{bot}: blocked until" in out
    status, out, _ = rumguard(served, capsys, "blocks", "add", bot, "--reason", "scraping")
    assert status == 0 and "already blocked (unchanged)" in out

    status, out, _ = rumguard(served, capsys, "blocks", "list")
    assert status == 0 and bot in out, "a narrow terminal still shows whole identity ids"
    listed = rumguard_json(served, capsys, "blocks", "list")
    assert bot in [b["identityId"] for b in listed["blocks"]]
    shown = rumguard_json(served, capsys, "blocks", "show", bot)
    assert shown["blocked"] is True and [h["action"] for h in shown["history"]] == ["block"]
    status, out, _ = rumguard(served, capsys, "blocks", "show", bot)
    assert status == 0 and "Decisions" in out and "scraping" in out

    status, out, _ = rumguard(served, capsys, "blocks", "remove", bot, "--reason", "false positive")
    assert status == 0 and "unblocked; automatic rules leave it alone until" in out
    status, _, err = rumguard(served, capsys, "blocks", "remove", bot, "--reason", "again")
    assert status == 1 and "not-blocked" in err and "HTTP 404" in err


def test_listing_follows_every_page(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = served.guest(), served.guest()
    for bot in (first, second):
        assert rumguard(served, capsys, "blocks", "add", bot, "-r", "bot")[0] == 0
    one = rumguard_json(served, capsys, "blocks", "list", "--status", "all", "--limit", "1")
    assert len(one["blocks"]) == 1 and one["nextToken"]
    every = rumguard_json(served, capsys, "blocks", "list", "--status", "all", "--limit", "1", "--all")
    assert {first, second} <= {b["identityId"] for b in every["blocks"]}
    assert every["nextToken"] is None


def test_cli_errors_are_one_line_with_the_api_code(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = rumguard(served, capsys, "blocks", "add", served.exported["RUMGUARD_SAMPLE_SIGNED_IN"], "-r", "x")
    assert status == 1 and "signed-in-identity" in err and "HTTP 409" in err
    status, _, err = rumguard(served, capsys, "blocks", "add", "not-an-id", "-r", "x")
    assert status == 1 and "invalid-identity" in err and "HTTP 400" in err
    stranger = "us-east-1:0b6a1f6e-3c2d-4e5f-8a9b-7c6d5e4f3a2b"
    status, _, err = rumguard(served, capsys, "blocks", "show", stranger)
    assert status == 1 and "not-found" in err


def test_allowlist_and_lockdown_through_the_cli(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    guest = served.guest()
    status, out, _ = rumguard(served, capsys, "allow", "add", guest, "-r", "QA robot", "--expires-in", "7d")
    assert status == 0 and f"{guest}: allowlisted until" in out
    assert rumguard_json(served, capsys, "allow", "show", guest)["reason"] == "QA robot"
    assert rumguard(served, capsys, "allow", "remove", guest, "-r", "QA done")[0] == 0
    status, _, err = rumguard(served, capsys, "allow", "show", guest)
    assert status == 1 and "not-allowlisted" in err

    status, out, _ = rumguard(served, capsys, "lockdown", "on", "-r", "bot wave")
    assert status == 0 and "guest lockdown: on since" in out
    assert rumguard_json(served, capsys, "lockdown", "status")["enabled"] is True
    status, out, _ = rumguard(served, capsys, "lockdown", "off", "-r", "wave is over")
    assert status == 0 and "guest lockdown: off" in out


def test_plain_http_as_curl_sends_it(served: Served) -> None:
    bot = served.guest()
    request = urllib.request.Request(
        f"{served.api_url}/blocks/{bot}",
        data=b'{"reason": "scraping the catalogue", "durationSeconds": 1800}',
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read())["identityId"] == bot
    with urllib.request.urlopen(f"{served.api_url}/monitors", timeout=10) as response:
        assert json.loads(response.read())["mode"] == "enforce"


def test_unreachable_or_unconfigured_api(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUMGUARD_API_URL", raising=False)
    assert main(["lockdown", "status"]) == 1
    assert "no API URL" in capsys.readouterr().err
    assert main(["lockdown", "status", "--api-url", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach the API" in capsys.readouterr().err


def test_rumguard_local_stops_cleanly_on_sigterm(served: Served) -> None:
    served.chalice.terminate()
    served.chalice.wait(timeout=10)
    served.stack.send_signal(signal.SIGTERM)
    output, _ = served.stack.communicate(timeout=10)
    assert served.stack.returncode == 0, output
    assert "stopping" in output
    assert not served.env_file.exists(), "the env file of a stopped stack is removed"


# --- signing ----------------------------------------------------------------------------------------------------
class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every request with a JSON lockdown state and keeps what it received."""

    received: list[tuple[str, str, dict[str, str], bytes]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append((self.command, self.path, dict(self.headers.items()), body))
        payload = b'{"enabled": true, "since": "2026-01-01T00:00:00Z", "actor": "a", "reason": "r", "changed": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[str, str, dict[str, str], bytes]]]]:
    """A loopback HTTP server that records requests."""
    _Recorder.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Recorder.received
    server.shutdown()
    thread.join()
    server.server_close()


def signature_as_received(url: str, method: str, path: str, headers: dict[str, str], body: bytes, region: str) -> str:
    """The SigV4 signature of a request as the server received it (what API Gateway recomputes)."""
    signed = authorization_fields(headers["Authorization"])["SignedHeaders"].split(";")
    request = AWSRequest(
        method=method, url=url + path, data=body, headers={k: v for k, v in headers.items() if k.lower() in signed}
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    auth = SigV4Auth(Credentials("testing", "testing", "testing"), "execute-api", region)
    return str(auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request))


def authorization_fields(value: str) -> dict[str, str]:
    """``Credential``, ``SignedHeaders`` and ``Signature`` of an Authorization header."""
    fields = value.removeprefix("AWS4-HMAC-SHA256 ").split(", ")
    return dict(field.split("=", 1) for field in fields)


def test_requests_are_signed_with_sigv4_for_execute_api(
    recorder: tuple[str, list[tuple[str, str, dict[str, str], bytes]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, received = recorder
    assert main(["lockdown", "on", "-r", "bot wave", "--api-url", url, "--region", "eu-west-1"]) == 0
    assert main(["blocks", "show", "us-east-1:0b6a1f6e-3c2d-4e5f-8a9b-7c6d5e4f3a2b", "--api-url", url, "--json"]) == 0
    capsys.readouterr()
    (method, path, headers, body), (_, show_path, show_headers, _) = received
    assert (method, path, json.loads(body)) == ("PUT", "/lockdown", {"enabled": True, "reason": "bot wave"})
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token," in authorization
    assert headers["X-Amz-Security-Token"] == "testing"
    assert authorization.endswith(f"Signature={signature_as_received(url, method, path, headers, body, 'eu-west-1')}")
    # The identity id is percent-encoded in the path (SigV4 signs the path as sent); the region comes from
    # the shell when the URL is not an execute-api host.
    assert show_path == "/blocks/us-east-1%3A0b6a1f6e-3c2d-4e5f-8a9b-7c6d5e4f3a2b"
    assert "/us-east-1/execute-api/aws4_request" in show_headers["Authorization"]


def test_no_sign_sends_no_signature(
    recorder: tuple[str, list[tuple[str, str, dict[str, str], bytes]]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, received = recorder
    assert main(["lockdown", "status", "--api-url", url, "--no-sign"]) == 0
    assert "Authorization" not in received[0][2]
    assert "guest lockdown: on" in capsys.readouterr().out
