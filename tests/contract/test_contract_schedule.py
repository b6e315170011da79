"""The sweeper runs every minute (DESIGN.md: the deny policy is repaired within one schedule period), one sweep
at a time, and each sweep ends before the next is due. Nothing else runs on a schedule."""

from __future__ import annotations

from typing import Any

SWEEPER = "SweeperFunction"
SCHEDULE_EVENTS = {"Schedule", "ScheduleV2"}
EVERY_MINUTE = "rate(1 minute)"
PERIOD_SECONDS = 60


def schedules(properties: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The function's schedule events (EventBridge rules or EventBridge Scheduler), by name."""
    events: dict[str, dict[str, Any]] = properties.get("Events", {})
    return {name: event.get("Properties", {}) for name, event in events.items() if event["Type"] in SCHEDULE_EVENTS}


def test_the_sweeper_alone_runs_every_minute(functions: dict[str, dict[str, Any]]) -> None:
    scheduled = {function_id: schedules(p) for function_id, p in functions.items() if schedules(p)}
    assert list(scheduled) == [SWEEPER], f"scheduled functions: {sorted(scheduled)}"
    (schedule,) = scheduled[SWEEPER].values()
    assert schedule["ScheduleExpression"] == EVERY_MINUTE
    assert schedule.get("State", "ENABLED") == "ENABLED" and schedule.get("Enabled", True) is True
    assert schedule.get("FlexibleTimeWindow", {"Mode": "OFF"}) == {"Mode": "OFF"}, "a sweep may not drift"


def test_one_sweep_at_a_time_within_its_period(functions: dict[str, dict[str, Any]]) -> None:
    sweeper = functions[SWEEPER]
    assert sweeper.get("ReservedConcurrentExecutions") == 1
    assert sweeper["Timeout"] <= PERIOD_SECONDS, "a sweep must end before the next is due"


def test_the_deployed_schedule_invokes_the_sweeper(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    rules = {
        n: r["Properties"]
        for n, r in resources.items()
        if r["Type"] in {"AWS::Events::Rule", "AWS::Scheduler::Schedule"} and "ScheduleExpression" in r["Properties"]
    }
    (schedule,) = rules.values()
    targets = schedule["Targets"] if "Targets" in schedule else [schedule["Target"]]
    assert [target["Arn"] for target in targets] == [{"Fn::GetAtt": [SWEEPER, "Arn"]}]
    assert schedule["ScheduleExpression"] == EVERY_MINUTE
    assert "Name" not in schedule, "a fixed schedule name keeps a second stack out of the account and region"
