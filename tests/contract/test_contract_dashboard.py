"""template.yaml's dashboard is ``rumguard.dashboard``'s body, and the alarms it shows are the ones that exist:
the sweeper's (``rumguard.alarms``) and the template's pipeline alarms."""

from __future__ import annotations

import json
from typing import Any

from rumguard.dashboard import NOTIFY_SELF_ALARMS, PIPELINE_ALARMS, TEMPLATE_VALUES, dashboard_body


def test_the_dashboard_body_is_rumguard_dashboards(template: dict[str, Any]) -> None:
    body = template["Resources"]["RumGuardDashboard"]["Properties"]["DashboardBody"]
    assert list(body) == ["Fn::Sub"], "DashboardBody is !Sub of `rumguard dashboard`'s output"
    assert json.loads(body["Fn::Sub"]) == dashboard_body(TEMPLATE_VALUES), "paste `rumguard dashboard` again"


def test_the_pipeline_alarms_it_shows_are_the_templates(template: dict[str, Any]) -> None:
    names = {
        r["Properties"]["AlarmName"]["Fn::Sub"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    shown = {f"${{AWS::StackName}}/{label}" for label in PIPELINE_ALARMS}
    shown |= {f"${{AWS::StackName}}-{label}" for label in NOTIFY_SELF_ALARMS}
    assert names == shown


def test_only_the_notify_functions_own_alarms_have_actions(template: dict[str, Any]) -> None:
    """One transition, one notification: alarms under <stack>/ reach people through the notify rule only."""
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        actions = [properties.get(k) for k in ("AlarmActions", "OKActions", "InsufficientDataActions")]
        if properties["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}/"):
            assert not any(actions), f"{logical_id}: an alarm action would notify a second time"
        else:
            assert properties["AlarmActions"] == [{"Ref": "NotifyTopic"}], logical_id


def test_the_operator_api_it_shows_is_the_templates(template: dict[str, Any]) -> None:
    """The API's metrics are found by its name and stage: the dashboard and the api-errors alarm use both."""
    assert TEMPLATE_VALUES.api is not None
    name, stage = TEMPLATE_VALUES.api
    api = template["Resources"]["OperatorApi"]["Properties"]
    assert api["Name"] == {"Fn::Sub": name} and api["StageName"] == stage
    gateway_alarms = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"]["Namespace"] == "AWS/ApiGateway"
    ]
    assert gateway_alarms
    for alarm in gateway_alarms:
        assert alarm["Dimensions"] == [
            {"Name": "ApiName", "Value": {"Fn::Sub": name}},
            {"Name": "Stage", "Value": stage},
        ]


def test_every_function_has_error_and_throttle_alarms(template: dict[str, Any]) -> None:
    """Issue 5: errors and throttles of every function. The API's errors are its gateway's 5xx answers (the
    function answers its own failures with a JSON 500); the sweeper, one at a time by design, is throttled
    whenever a sweep overruns, which does no harm: its alarm is on sweeps that stop happening at all."""
    resources = template["Resources"]
    watched: dict[str, set[str]] = {}
    for resource in resources.values():
        properties = resource["Properties"]
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        if properties["Namespace"] == "AWS/Lambda":
            [dimension] = properties["Dimensions"]
            watched.setdefault(dimension["Value"]["Ref"], set()).add(properties["MetricName"])
        elif properties["Namespace"] == "AWS/ApiGateway":
            watched.setdefault("ApiFunction", set()).add(f"gateway {properties['MetricName']}")
    functions = {n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(watched) == functions
    instead = {("ApiFunction", "Errors"): "gateway 5XXError", ("SweeperFunction", "Throttles"): "Invocations"}
    for function in functions:
        for metric in ("Errors", "Throttles"):
            assert instead.get((function, metric), metric) in watched[function], f"{function}: no {metric} alarm"
    assert set(TEMPLATE_VALUES.functions.values()) == {f"${{{f}}}" for f in functions}, "graph every function"
