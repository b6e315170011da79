"""The app's wiring: the decision service built lazily once per process from the environment, the Powertools
Logger middleware with the request ids, and server errors answered in the API's shape and logged."""

from __future__ import annotations

import io

import pytest
from chalice_app.app import api
from tests.api.support import OPERATOR_ARN, EventTransport, log_lines, store

from rumguard.local.aws import EmbeddedAws


def test_health_needs_no_settings_and_a_broken_configuration_is_a_json_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUMGUARD_TABLE", raising=False)
    monkeypatch.setenv("RUMGUARD_MODE", "sometimes")
    api.reset()
    try:
        event = EventTransport()
        assert event("GET", "/health").body == {"status": "ok"}
        reply = event("GET", "/blocks")
        assert (reply.status, reply.body["error"]) == (500, "configuration-error")
        assert "RUMGUARD_TABLE" in reply.body["message"] and "RUMGUARD_MODE" in reply.body["message"]
    finally:
        api.reset()


def test_the_service_is_built_once_per_process(event: EventTransport, wired: EmbeddedAws) -> None:
    event("GET", "/lockdown")
    built = api.service()
    event("GET", "/monitors")
    assert api.service() is built


def test_every_request_is_logged_with_its_ids(event: EventTransport, wired: EmbeddedAws, api_log: io.StringIO) -> None:
    event("GET", "/monitors")
    [line] = [entry for entry in log_lines(api_log) if entry["message"] == "request"]
    assert line["correlation_id"] == event.last_event["requestContext"]["requestId"]
    assert line["function_request_id"] == event.last_context.aws_request_id
    assert (line["http_method"], line["resource"], line["status"]) == ("GET", "/monitors", 200)
    assert line["caller"] == OPERATOR_ARN
    assert line["service"] == "rumguard-api"

    event("GET", "/nowhere")
    unrouted = log_lines(api_log)[-1]
    assert (unrouted["resource"], unrouted["status"]) == ("/nowhere", 404)


def test_an_aws_failure_is_a_logged_500_and_the_table_keeps_the_decision(
    event: EventTransport, wired: EmbeddedAws, api_log: io.StringIO
) -> None:
    bot = wired.new_guest()
    wired.events.delete_event_bus(Name=wired.event_bus_name)  # the announcement will fail, after the table write

    failed = event("PUT", f"/blocks/{bot}", {"reason": "a bot"})
    assert (failed.status, failed.body["error"]) == (500, "internal-error")
    assert event.last_event["requestContext"]["requestId"] in failed.body["message"]
    [logged] = [entry for entry in log_lines(api_log) if entry["message"] == "request failed"]
    assert "EventBusNotFoundError" in logged["exception_name"]
    assert logged["correlation_id"] == event.last_event["requestContext"]["requestId"]

    # The table is the source of truth: the block exists, and a retry answers it (idempotently).
    block = store(wired).get_block(bot)
    assert block is not None and block.actor == OPERATOR_ARN
    retry = event("PUT", f"/blocks/{bot}", {"reason": "a bot"})
    assert (retry.status, retry.body["identityId"]) == (200, bot)
