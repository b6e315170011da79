"""The ingest path of the template: every CloudWatch Logs subscription reads a RUM log group given as a
parameter, and a function invoked by them keeps what it fails on in an SQS dead-letter queue."""

from __future__ import annotations

import re
from typing import Any

from rumguard.monitors import LOG_GROUP_PREFIX

RUM_LOG_GROUP = f"{LOG_GROUP_PREFIX}RetailDemoStore_Unauthenticated1a2b3c4d"
NOT_RUM_LOG_GROUPS = [
    "/aws/lambda/rumguard-IngestFunction",
    f"{LOG_GROUP_PREFIX}RetailDemoStore_Unauthenticated",  # no monitor id
    f"{LOG_GROUP_PREFIX}.hidden1a2b3c4d",  # a monitor name cannot start with '.'
]


def log_events(properties: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The function's CloudWatchLogs events, by name."""
    events: dict[str, dict[str, Any]] = properties.get("Events", {})
    return {name: event.get("Properties", {}) for name, event in events.items() if event["Type"] == "CloudWatchLogs"}


def test_the_template_subscribes_to_rum_log_groups(functions: dict[str, dict[str, Any]]) -> None:
    subscribed = [event for properties in functions.values() for event in log_events(properties).values()]
    assert len(subscribed) >= 2, "expected a subscription per app monitor (guest and signed-in)"
    assert len({str(event["LogGroupName"]) for event in subscribed}) == len(subscribed), "a log group twice"


def test_log_groups_are_rum_log_group_parameters(
    function_id: str, functions: dict[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    parameters = template.get("Parameters", {})
    for name, event in log_events(functions[function_id]).items():
        reference = event["LogGroupName"]
        assert isinstance(reference, dict) and list(reference) == ["Ref"], f"{name}: LogGroupName is not a Ref"
        assert reference["Ref"] in parameters, f"{name}: LogGroupName must refer to a parameter"
        pattern = parameters[reference["Ref"]]["AllowedPattern"]
        assert re.fullmatch(pattern, RUM_LOG_GROUP), f"{name}: the parameter rejects a RUM log group"
        for other in NOT_RUM_LOG_GROUPS:
            assert not re.fullmatch(pattern, other), f"{name}: the parameter accepts {other}"
        assert event.get("FilterPattern") == "", f"{name}: every RUM event is needed, rejected ones included"


def test_log_subscribers_keep_failures_in_a_queue(
    functions: dict[str, dict[str, Any]], template: dict[str, Any]
) -> None:
    """CloudWatch Logs invokes asynchronously: what fails after the retries must land somewhere kept."""
    subscribers = [function_id for function_id, properties in functions.items() if log_events(properties)]
    assert subscribers
    for function_id in subscribers:
        config = functions[function_id].get("EventInvokeConfig", {})
        on_failure = config.get("DestinationConfig", {}).get("OnFailure", {})

        assert on_failure.get("Type") == "SQS", f"{function_id}: no SQS on-failure destination"
        queue, attribute = on_failure["Destination"]["Fn::GetAtt"]
        assert attribute == "Arn"
        assert template["Resources"][queue]["Type"] == "AWS::SQS::Queue", f"{function_id}: {queue} is no queue"
        assert config.get("MaximumRetryAttempts") == 2, f"{function_id}: MaximumRetryAttempts"
