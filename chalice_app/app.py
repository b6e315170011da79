"""The operator API (AWS Chalice): routes only; validation, the operations and the error mapping live in
``rumguard.api``, the decisions in ``rumguard.guard`` (the same code as the automatic path).

Every route hands its request to ``OperatorApi.handle``; so do requests for a path or method no route has
(API Gateway never sends those, a direct invocation or ``chalice local`` may), which get its JSON 404 and
405. The decision service is built lazily, once per process, from the environment (``ApiSettings``):
importing this module needs neither settings nor AWS, and ``/health`` answers even when the settings are
broken. A Powertools Logger runs as middleware: the request ids on every log line, one line per request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from aws_lambda_powertools import Logger
from chalice.app import Chalice, Request, Response

from rumguard.api import JSON_CONTENT_TYPE, ApiRequest, ApiResponse, OperatorApi, OperatorService
from rumguard.runtime import aws_guard
from rumguard.settings import ApiSettings

#: rumguard.api checks Content-Type itself (415 in the API's error format), so Chalice lets every type in.
ANY_CONTENT: Final = ["*/*"]

app = Chalice(app_name="rumguard")
logger = Logger(service="rumguard-api")


def build_service() -> OperatorService:
    """The decision service on AWS, from this process's environment."""
    settings = ApiSettings.from_environ(os.environ)
    return OperatorService(aws_guard(settings, settings.guard_config()), settings.monitor_directory())


api = OperatorApi(build_service)


@app.route("/health", methods=["GET"], content_types=ANY_CONTENT)
def health() -> Response:
    """Liveness."""
    return answer(app.current_request)


@app.route("/blocks", methods=["GET"], content_types=ANY_CONTENT)
def blocks() -> Response:
    """The blocks, newest first."""
    return answer(app.current_request)


@app.route("/blocks/{identity_id}", methods=["GET", "PUT", "DELETE"], content_types=ANY_CONTENT)
def block(identity_id: str) -> Response:
    """One identity's block: read, block, unblock."""
    return answer(app.current_request)


@app.route("/allowlist/{identity_id}", methods=["GET", "PUT", "DELETE"], content_types=ANY_CONTENT)
def allowlist(identity_id: str) -> Response:
    """One identity's allowlist entry: read, add, remove."""
    return answer(app.current_request)


@app.route("/lockdown", methods=["GET", "PUT"], content_types=ANY_CONTENT)
def lockdown() -> Response:
    """The guest lockdown: read, switch."""
    return answer(app.current_request)


@app.route("/monitors", methods=["GET"], content_types=ANY_CONTENT)
def monitors() -> Response:
    """The configured app monitors and their active blocks."""
    return answer(app.current_request)


def api_request(request: Request | None) -> ApiRequest:
    """The framework-free request (an empty one when the event was no API Gateway request)."""
    if request is None:
        return ApiRequest(method="", resource="")
    query = request.query_params
    body = request.raw_body
    return ApiRequest(
        method=request.method,
        resource=request.path,
        path_params=dict(request.uri_params or {}),
        query={name: query.getlist(name) for name in query} if query is not None else {},
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body.encode() if isinstance(body, str) else body,
        context=request.context,
    )


def chalice_response(response: ApiResponse) -> Response:
    """A Chalice response: the JSON body, always with its Content-Type."""
    return Response(
        body=response.body,
        headers={"Content-Type": JSON_CONTENT_TYPE, **response.headers},
        status_code=response.status,
    )


def answer(request: Request | None) -> Response:
    """The API's answer to a request, logged with its error when it is a server error."""
    response = api.handle(api_request(request))
    if response.error is not None:
        logger.error("request failed", exc_info=response.error)
    return chalice_response(response)


def routed(request: Request | None) -> bool:
    """Whether a Chalice route serves the request's path and method."""
    return request is not None and request.method in app.routes.get(request.path, {})


def log_requests(request: Request | None, get_response: Callable[[Request | None], Response]) -> Response:
    """Powertools Logger around every request: API Gateway's and Lambda's request ids, the route and the caller
    on each log line, and one line with the status and duration. Unrouted requests get the API's 404/405."""
    context: Mapping[str, Any] = request.context if request is not None else {}
    identity = context.get("identity") or {}
    logger.set_correlation_id(context.get("requestId"))
    started = time.perf_counter()
    with logger.append_context_keys(
        function_request_id=getattr(app.lambda_context, "aws_request_id", None),
        http_method=request.method if request is not None else None,
        resource=request.path if request is not None else None,
        caller=identity.get("userArn") if isinstance(identity, Mapping) else None,
    ):
        response = get_response(request) if routed(request) else answer(request)
        logger.info(
            "request",
            extra={"status": response.status_code, "duration_ms": round((time.perf_counter() - started) * 1000, 1)},
        )
    return response


app.register_middleware(log_requests, "http")
