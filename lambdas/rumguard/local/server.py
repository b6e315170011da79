"""moto as a local HTTP server that serves one request at a time.

moto's in-process backends have no locks: under threads a conditional write is not atomic and ``ADD``
can lose increments (measured: 2 winners of a conditional put in 1 of 200 trials), and moto's own
threaded server inherits that. Real DynamoDB serializes writes to an item, so concurrency tests and the
local stack (``rumguard local``, the browser tests) run moto behind a werkzeug server with
``threaded=False``: requests from many client threads still race each other over HTTP, and each request
is applied whole, as AWS would.
"""

from __future__ import annotations

import threading
import urllib.request
from types import TracebackType
from typing import Self

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server


class _QuietHandler(MotoRequestHandler):
    """No access log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence."""


class SerialMotoServer:
    """A moto server on 127.0.0.1 (port 0 picks a free one) that applies one request at a time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(
            host,
            port,
            DomainDispatcherApplication(create_backend_app),
            threaded=False,
            request_handler=_QuietHandler,
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)

    @property
    def endpoint_url(self) -> str:
        """Where AWS clients should send their requests."""
        return f"http://{self._server.host}:{self._server.server_port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def reset(self) -> None:
        """Forget every resource (moto's state is process-wide)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(request).close()  # noqa: S310 - our own loopback server

    def stop(self) -> None:
        """Reset moto, stop serving and close the socket."""
        try:
            self.reset()
        finally:
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
