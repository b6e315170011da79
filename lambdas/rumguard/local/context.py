"""The Lambda runtime around a handler, locally: a Lambda context, the environment and stdout.

``lambda_context()`` makes the context object Lambda passes a handler (Powertools Logger reads its names,
Idempotency its remaining time), with a fresh request id per invocation. ``LocalFunction`` imports a
handler module fresh under the function's environment, as a cold start does, and invokes it the way the
Lambda runtime does: each call gets a new context, runs with the function's environment, and what it
prints (EMF metrics and log lines) is captured and parsed. A handler error is recorded in the invocation,
not swallowed: callers check ``Invocation.error`` or call ``Invocation.unwrap()``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from rumguard.local.emf import CapturedOutput, EmfOutput

#: moto's account, and so the embedded AWS's.
ACCOUNT_ID: Final = "123456789012"
#: ``lambdas/``: the directory that holds the ``handlers`` package (and ``rumguard``).
LAMBDAS_DIR: Final = Path(__file__).resolve().parents[2]


class FakeLambdaContext(LambdaContext):
    """A Lambda context: the function's names and limits, a request id, and a deadline."""

    def __init__(
        self,
        function_name: str,
        *,
        memory_limit_in_mb: int = 512,
        timeout_seconds: float = 60.0,
        region: str = "us-east-1",
        account_id: str = ACCOUNT_ID,
        request_id: str | None = None,
    ) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self._memory_limit_in_mb = memory_limit_in_mb
        self._aws_request_id = request_id or str(uuid.uuid4())
        self._log_group_name = f"/aws/lambda/{function_name}"
        self._log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]  # an instance method in Lambda
        """Milliseconds left before the invocation's timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_context(function_name: str, **kwargs: Any) -> FakeLambdaContext:
    """A new context for one invocation (a new request id each call)."""
    return FakeLambdaContext(function_name, **kwargs)


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore the previous ones."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True, slots=True)
class Invocation:
    """The outcome of one invocation: the return value or the error, and what it printed."""

    request_id: str
    value: Any
    error: Exception | None
    output: EmfOutput
    #: Python warnings the handler raised (Lambda writes them to stderr, so to the function's log).
    warnings: tuple[str, ...] = ()

    def unwrap(self) -> Any:
        """The return value; re-raises the handler's error if it failed."""
        if self.error is not None:
            raise self.error
        return self.value


class LocalFunction:
    """One Lambda function run in this process: its handler module imported fresh, invoked like Lambda.

    The module is (re)imported under the function's environment, because handlers read their settings and
    create their AWS clients at import (the cold start). Powertools loggers found in the module are pointed
    at the capture, so log lines and EMF blobs land in the same place, in the order printed.
    """

    def __init__(
        self,
        module_name: str,
        environ: Mapping[str, str],
        *,
        function_name: str | None = None,
        handler_name: str = "handler",
        log_level: str | None = None,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.environ = dict(environ)
        self.function_name = function_name or module_name.rsplit(".", 1)[-1]
        self.timeout_seconds = timeout_seconds
        self.region = self.environ.get("AWS_REGION") or self.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.capture = CapturedOutput()
        if str(LAMBDAS_DIR) not in sys.path and importlib.util.find_spec(module_name.split(".")[0]) is None:
            sys.path.insert(0, str(LAMBDAS_DIR))  # the handlers package ships beside rumguard, not in it
        with environment(self.environ), contextlib.redirect_stdout(self.capture):
            if module_name in sys.modules:
                self.module: ModuleType = importlib.reload(sys.modules[module_name])
            else:
                self.module = importlib.import_module(module_name)
        self.cold_start_output = self.capture.take()
        self.handler: Callable[[Any, LambdaContext], Any] = getattr(self.module, handler_name)
        for value in vars(self.module).values():
            if isinstance(value, Logger):
                # Powertools binds a logger's stream once per process; point it at this function's capture.
                handler = value.logger_handler
                if isinstance(handler, logging.StreamHandler):
                    handler.setStream(self.capture)
                if log_level is not None:
                    value.setLevel(log_level)

    def invoke(self, event: Any) -> Invocation:
        """Run the handler once with a fresh context; the handler's error is returned, not raised."""
        context = lambda_context(self.function_name, timeout_seconds=self.timeout_seconds, region=self.region)
        value: Any = None
        error: Exception | None = None
        with (
            environment(self.environ),
            contextlib.redirect_stdout(self.capture),
            warnings.catch_warnings(record=True) as caught_warnings,
        ):
            warnings.simplefilter("always")
            try:
                value = self.handler(event, context)
            except Exception as caught:  # noqa: BLE001 - Lambda reports any handler error as the invocation's
                error = caught
        raised = tuple(str(warning.message) for warning in caught_warnings)
        return Invocation(context.aws_request_id, value, error, self.capture.take(), raised)
