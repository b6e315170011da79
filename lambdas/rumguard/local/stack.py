"""``rumguard local``: the embedded AWS served on localhost, so ``chalice local`` runs the real operator API
(and the ``rumguard`` CLI talks to it) with no AWS account.

``LocalStack`` starts a ``SerialMotoServer`` and builds RUM Guard's resources with ``EmbeddedAws``: the
table from template.yaml, the app monitors' log groups, the identity pool (with what moto's Cognito lacks),
the guest role and the bus. EmbeddedAws runs moto in this process, and moto's backends are process-wide:
the server serves the very resources EmbeddedAws created, so nothing of its setup is repeated here. A few
sample identities are added (the pool is otherwise empty, and the API refuses identities it does not know).

The command prints the environment as shell lines (``AWS_ENDPOINT_URL`` pointing boto3 at the server, fake
credentials, the functions' settings), optionally writes them to ``--env-file``, and serves until Ctrl-C
or SIGTERM. moto keeps everything in memory: stopping the command forgets it all.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Final, Self

from rumguard.local.aws import DEFAULT_REGION, GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.server import SerialMotoServer
from rumguard.monitors import Audience

DEFAULT_PORT: Final = 5055
#: Where ``chalice local`` listens by default (its own default port).
DEFAULT_API_URL: Final = "http://127.0.0.1:8000"
FAKE_CREDENTIALS: Final = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
#: Real credentials of the shell must never reach the local stack's clients, nor a profile override them.
UNSET: Final = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class LocalStack:
    """moto served over HTTP with RUM Guard's resources and a few identities. Use as a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        region: str = DEFAULT_REGION,
        mode: str = "enforce",
        api_url: str = DEFAULT_API_URL,
        guests: int = 3,
    ) -> None:
        if guests < 1:
            raise ValueError("at least one sample guest identity")
        self.server = SerialMotoServer(host, port)
        self.aws = EmbeddedAws(
            guest_monitors=(GUEST_MONITOR,), signed_in_monitors=(SIGNED_IN_MONITOR,), region=region, mode=mode
        )
        self.api_url = api_url
        self.sample_guests: list[str] = []
        self.sample_signed_in = ""
        self._guests = guests
        self._started = False

    @property
    def endpoint_url(self) -> str:
        """The moto server's URL."""
        return self.server.endpoint_url

    def start(self) -> Self:
        """Serve, create the resources and the sample identities."""
        self.server.start()
        try:
            with _fake_aws_environment(self.aws.region):
                self.aws.start()
                self.sample_guests = [self.aws.new_guest() for _ in range(self._guests)]
                self.sample_signed_in = self.aws.new_signed_in("local-operator")
        except BaseException:
            self.server.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        """Stop serving; moto forgets every resource."""
        if self._started:
            self._started = False
            try:
                self.aws.stop()
            finally:
                self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """What a shell needs to run ``chalice local`` (and the CLI) against this stack."""
        aws = self.aws
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": aws.region,
            "AWS_REGION": aws.region,
            **FAKE_CREDENTIALS,
            "RUMGUARD_TABLE": aws.table_name,
            "IDENTITY_POOL_ID": aws.identity_pool_id,
            "GUEST_ROLE_NAME": aws.guest_role_name,
            "EVENT_BUS_NAME": aws.event_bus_name,
            "RUMGUARD_MODE": aws.mode,
            "GUEST_MONITORS": ",".join(m.name for m in aws.monitors(Audience.GUEST)),
            "SIGNED_IN_MONITORS": ",".join(m.name for m in aws.monitors(Audience.SIGNED_IN)),
            "RUMGUARD_API_URL": self.api_url,
            "RUMGUARD_SAMPLE_GUEST": self.sample_guests[0],
            "RUMGUARD_SAMPLE_GUESTS": " ".join(self.sample_guests),
            "RUMGUARD_SAMPLE_SIGNED_IN": self.sample_signed_in,
        }

    def exports(self) -> str:
        """The environment as shell lines (``source``-able)."""
        lines = [f"unset {' '.join(UNSET)}"]
        lines += [f"export {name}={shlex.quote(value)}" for name, value in self.environment().items()]
        return "\n".join(lines) + "\n"


@contextmanager
def _fake_aws_environment(region: str) -> Iterator[None]:
    """Fake credentials and the region for the setup's own clients, whatever the shell holds."""
    saved = {name: os.environ.get(name) for name in (*UNSET, *FAKE_CREDENTIALS, "AWS_ENDPOINT_URL")}
    for name in (*UNSET, "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_env_file(path: Path, text: str) -> None:
    """Write atomically, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
    Path(handle.name).replace(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``rumguard local`` options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument("--region", default=DEFAULT_REGION, help=f"region of the resources (default {DEFAULT_REGION})")
    parser.add_argument("--mode", choices=["enforce", "dry-run"], default="enforce", help="RUMGUARD_MODE to export")
    parser.add_argument("--api-url", default=DEFAULT_API_URL, help="the chalice local URL to export for the CLI")
    parser.add_argument("--guests", type=int, default=3, help="sample guest identities to create (default 3)")
    parser.add_argument("--env-file", type=Path, help="also write the export lines here (to `source` elsewhere)")


def run(args: argparse.Namespace) -> int:
    """Start the stack, print its environment, serve until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    stack = LocalStack(
        host=args.host, port=args.port, region=args.region, mode=args.mode, api_url=args.api_url, guests=args.guests
    )
    try:
        with stack:
            exports = stack.exports()
            if args.env_file is not None:
                write_env_file(args.env_file, exports)
            print(f"# RUM Guard local stack: moto on {stack.endpoint_url}, {args.mode} mode. Ctrl-C stops it.")
            print("# In another shell, load this environment, then: cd chalice_app && chalice local")
            if args.env_file is not None:
                print(f"#   source {shlex.quote(str(args.env_file))}")
            print(exports, end="", flush=True)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            print("# stopping: the local stack's state is gone", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if args.env_file is not None:
            args.env_file.unlink(missing_ok=True)
    return 0
