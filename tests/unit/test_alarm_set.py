"""The desired alarm set, its comparison with what CloudWatch holds, the reconciliation plan, the alarm settings,
and the dashboard body that shows the same alarms (pure: an in-memory alarm store, no AWS)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from rumguard import cli
from rumguard.alarms import (
    MANAGED_TAG,
    MAX_NAME,
    NAMESPACE,
    OWNER_TAG,
    ActualAlarm,
    AlarmKind,
    AlarmReconciler,
    AlarmSpec,
    AlarmThresholds,
    alarm_name,
    comparable,
    desired_alarms,
    differences,
    parse_alarm_name,
    plan,
)
from rumguard.dashboard import (
    NOTIFY_SELF_ALARMS,
    PIPELINE_ALARMS,
    TEMPLATE_VALUES,
    DashboardValues,
    dashboard_body,
    render,
)
from rumguard.monitors import Audience, Monitor, MonitorDirectory
from rumguard.settings import SettingsError, SweeperSettings
from rumguard.telemetry import NAMESPACE as TELEMETRY_NAMESPACE

GUEST = "RetailDemoStore_Unauthenticated"
SIGNED_IN = "RetailDemoStore_Authenticated"
PREFIX = "rumguard"
MONITORS = MonitorDirectory.from_csv(GUEST, SIGNED_IN).monitors
GUEST_KINDS = [
    AlarmKind.TRAFFIC_SURGE,
    AlarmKind.JS_ERROR_RATE,
    AlarmKind.HTTP_ERROR_RATE,
    AlarmKind.REJECTED_EVENTS,
    AlarmKind.BLOCKS,
    AlarmKind.SAFETY_VALVE,
]
HEALTH = [AlarmKind.JS_ERROR_RATE, AlarmKind.HTTP_ERROR_RATE, AlarmKind.REJECTED_EVENTS]


def by_name(specs: Sequence[AlarmSpec]) -> dict[str, AlarmSpec]:
    return {spec.name: spec for spec in specs}


# --- the desired set -------------------------------------------------------------------------------------
def test_guest_monitors_get_abuse_and_health_alarms_signed_in_only_health_and_the_pool_its_own() -> None:
    names = [spec.name for spec in desired_alarms(PREFIX, MONITORS, AlarmThresholds())]
    assert names == [
        *(f"rumguard/{GUEST}/{kind}" for kind in GUEST_KINDS),
        *(f"rumguard/{SIGNED_IN}/{kind}" for kind in HEALTH),
        "rumguard/policy-capacity",
        "rumguard/unenforced-blocks",
        "rumguard/unmatched-events",
    ]


def test_without_guest_monitors_there_is_no_deny_policy_to_watch() -> None:
    names = [s.name for s in desired_alarms(PREFIX, [Monitor(SIGNED_IN, Audience.SIGNED_IN)], AlarmThresholds())]
    assert names == [f"rumguard/{SIGNED_IN}/{kind}" for kind in HEALTH] + ["rumguard/unmatched-events"]


def test_every_alarm_watches_the_monitors_metrics_in_the_rumguard_namespace_with_no_actions() -> None:
    assert NAMESPACE == TELEMETRY_NAMESPACE
    for spec in desired_alarms(PREFIX, MONITORS, AlarmThresholds()):
        request = spec.request
        assert request["AlarmName"] == spec.name
        assert "AlarmActions" not in request and "OKActions" not in request
        assert "InsufficientDataActions" not in request
        assert request["TreatMissingData"] == "notBreaching"
        stats = [q["MetricStat"]["Metric"] for q in request.get("Metrics", []) if "MetricStat" in q]
        metrics = stats or [{"Namespace": request["Namespace"], "Dimensions": request["Dimensions"]}]
        for metric in metrics:
            assert metric["Namespace"] == "RumGuard"
            assert {d["Name"]: d["Value"] for d in metric["Dimensions"]}["AppMonitor"] == spec.monitor
        assert spec.tags == {
            "rumguard:managed": "true",
            "rumguard:owner": PREFIX,
            "rumguard:monitor": spec.monitor,
            "rumguard:kind": spec.kind.value,
        }


def test_the_traffic_surge_is_an_anomaly_detection_band_on_guest_events() -> None:
    spec = by_name(desired_alarms(PREFIX, MONITORS, AlarmThresholds(traffic_band=2.5)))[
        f"rumguard/{GUEST}/traffic-surge"
    ]
    request = spec.request
    assert request["ThresholdMetricId"] == "expected"
    assert request["ComparisonOperator"] == "GreaterThanUpperThreshold"
    assert "Threshold" not in request
    events, band = request["Metrics"]
    assert events["MetricStat"] == {
        "Metric": {
            "Namespace": "RumGuard",
            "MetricName": "Events",
            "Dimensions": [{"Name": "AppMonitor", "Value": GUEST}, {"Name": "Audience", "Value": "guest"}],
        },
        "Period": 300,
        "Stat": "Sum",
    }
    assert band["Expression"] == "ANOMALY_DETECTION_BAND(events, 2.5)"
    assert (request["EvaluationPeriods"], request["DatapointsToAlarm"]) == (3, 2)


def test_error_rates_are_metric_math_with_a_minimum_volume() -> None:
    specs = by_name(desired_alarms(PREFIX, MONITORS, AlarmThresholds(js_error_rate=7, min_volume=50)))
    js = specs[f"rumguard/{SIGNED_IN}/js-error-rate"].request
    problems, volume, rate = js["Metrics"]
    assert problems["MetricStat"]["Metric"]["MetricName"] == "JsErrors"
    assert volume["MetricStat"]["Metric"]["MetricName"] == "PageViews"
    assert volume["MetricStat"]["Metric"]["Dimensions"][1] == {"Name": "Audience", "Value": "signed-in"}
    assert rate == {
        "Id": "rate",
        "Expression": "IF(volume >= 50, 100 * problems / volume, 0)",
        "Label": "JS errors per 100 page views",
        "ReturnData": True,
    }
    assert not problems["ReturnData"] and not volume["ReturnData"]
    assert (js["Threshold"], js["ComparisonOperator"]) == (7.0, "GreaterThanThreshold")
    http = specs[f"rumguard/{GUEST}/http-error-rate"].request
    assert [q["MetricStat"]["Metric"]["MetricName"] for q in http["Metrics"][:2]] == ["HttpErrors", "Events"]
    assert http["Threshold"] == 10.0


@pytest.mark.parametrize(
    ("name", "metric", "stat", "threshold", "dimensions"),
    [
        (f"{GUEST}/blocks", "IdentitiesBlocked", "Sum", 12.0, (GUEST, "guest")),
        (f"{GUEST}/safety-valve", "BlockStorm", "Sum", 0.0, (GUEST, "guest")),
        (f"{GUEST}/rejected-events", "RejectedEvents", "Sum", 300.0, (GUEST, "guest")),
        (f"{SIGNED_IN}/rejected-events", "RejectedEvents", "Sum", 300.0, (SIGNED_IN, "signed-in")),
        ("policy-capacity", "PolicyCapacityUsed", "Maximum", 75.0, ("all", "guest")),
        ("unenforced-blocks", "UnenforcedBlocks", "Maximum", 0.0, ("all", "guest")),
        ("unmatched-events", "RejectedEvents", "Sum", 0.0, ("unmatched", "none")),
    ],
)
def test_single_metric_alarms(name: str, metric: str, stat: str, threshold: float, dimensions: tuple[str, str]) -> None:
    thresholds = AlarmThresholds(blocks=12, rejected_events=300, policy_capacity=75)
    request = by_name(desired_alarms(PREFIX, MONITORS, thresholds))[f"rumguard/{name}"].request
    assert request["MetricName"] == metric
    assert request["Statistic"] == stat
    assert request["Threshold"] == threshold
    assert request["ComparisonOperator"] == "GreaterThanThreshold"
    assert request["Dimensions"] == [
        {"Name": "AppMonitor", "Value": dimensions[0]},
        {"Name": "Audience", "Value": dimensions[1]},
    ]
    assert (request["Period"], request["EvaluationPeriods"]) == (300, 1)


def test_long_monitor_names_are_cut_to_cloudwatchs_limit_and_stay_apart() -> None:
    long_a, long_b = "A" * 250 + "x", "A" * 250 + "y"
    a = alarm_name(PREFIX, AlarmKind.HTTP_ERROR_RATE, long_a)
    b = alarm_name(PREFIX, AlarmKind.HTTP_ERROR_RATE, long_b)
    assert len(a) <= MAX_NAME and len(b) <= MAX_NAME and a != b
    assert a.endswith("/http-error-rate")


def test_names_parse_back_and_another_stacks_prefix_never_matches() -> None:
    parsed = parse_alarm_name(PREFIX, f"rumguard/{GUEST}/js-error-rate")
    assert parsed is not None and (parsed.kind, parsed.monitor) == (AlarmKind.JS_ERROR_RATE, GUEST)
    pool = parse_alarm_name(PREFIX, "rumguard/policy-capacity")
    assert pool is not None and (pool.kind, pool.monitor) == (AlarmKind.POLICY_CAPACITY, None)
    pipeline = parse_alarm_name(PREFIX, "rumguard/ingest-errors")
    assert pipeline is not None and (pipeline.kind, pipeline.monitor, pipeline.label) == (None, None, "ingest-errors")
    assert parse_alarm_name(PREFIX, f"rumguard-prod/{GUEST}/js-error-rate") is None
    assert parse_alarm_name(PREFIX, "rumguard") is None


def test_a_prefix_with_the_separator_is_refused() -> None:
    with pytest.raises(ValueError, match="free of"):
        AlarmReconciler(MemoryAlarms(), "rum/guard", MONITORS, AlarmThresholds())


# --- comparing -------------------------------------------------------------------------------------------
def described(spec: AlarmSpec) -> dict[str, Any]:
    """The spec as DescribeAlarms gives it back: defaults filled in, numbers as floats, lists reordered."""
    config: dict[str, Any] = copy.deepcopy(dict(spec.request))
    config.update(
        {
            "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{spec.name}",
            "StateValue": "OK",
            "AlarmActions": [],
            "OKActions": [],
            "InsufficientDataActions": [],
        }
    )
    config.setdefault("Dimensions", [])
    config.setdefault("Metrics", [])
    config["Dimensions"] = list(reversed(config["Dimensions"]))
    config["Metrics"] = list(reversed(config["Metrics"]))
    for query in config["Metrics"]:
        if "MetricStat" in query:
            query["MetricStat"]["Metric"]["Dimensions"].reverse()
    if "Threshold" in config:
        config["Threshold"] = float(config["Threshold"])
    return config


def test_a_described_alarm_compares_equal_to_its_request() -> None:
    for spec in desired_alarms(PREFIX, MONITORS, AlarmThresholds()):
        assert differences(spec.request, described(spec)) == []


def test_defaults_that_cloudwatch_leaves_out_compare_equal() -> None:
    request = {"EvaluationPeriods": 3, "DatapointsToAlarm": 3, "TreatMissingData": "missing", "ActionsEnabled": True}
    assert comparable(request) == comparable({"EvaluationPeriods": 3})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Threshold", 6.0),
        ("AlarmActions", ["arn:aws:sns:us-east-1:123456789012:pager"]),
        ("TreatMissingData", "breaching"),
        ("EvaluationPeriods", 5),
        ("AlarmDescription", "edited by hand"),
    ],
)
def test_any_setting_changed_by_hand_is_a_difference(field: str, value: Any) -> None:
    spec = by_name(desired_alarms(PREFIX, MONITORS, AlarmThresholds()))[f"rumguard/{GUEST}/js-error-rate"]
    actual = described(spec) | {field: value}
    assert field in differences(spec.request, actual)


def test_a_changed_metric_query_is_a_difference() -> None:
    spec = by_name(desired_alarms(PREFIX, MONITORS, AlarmThresholds()))[f"rumguard/{GUEST}/js-error-rate"]
    actual = described(spec)
    actual["Metrics"][0]["Expression"] = "IF(volume >= 1, 100 * problems / volume, 0)"
    assert differences(spec.request, actual) == ["Metrics"]


# --- planning and reconciling ----------------------------------------------------------------------------
class MemoryAlarms:
    """An in-memory ``AlarmStore`` that answers like CloudWatch (tags only on create, described shapes)."""

    def __init__(self) -> None:
        self.alarms_by_name: dict[str, ActualAlarm] = {}
        self.calls: list[tuple[str, str]] = []

    def alarms(self, name_prefix: str) -> list[ActualAlarm]:
        return [a for name, a in sorted(self.alarms_by_name.items()) if name.startswith(name_prefix)]

    def put(self, spec: AlarmSpec, *, create: bool) -> None:
        self.calls.append(("put", spec.name))
        existing = self.alarms_by_name.get(spec.name)
        tags = dict(spec.tags) if create else dict(existing.tags if existing else {})
        self.alarms_by_name[spec.name] = ActualAlarm(spec.name, f"arn:{spec.name}", described(spec), tags)

    def tag(self, alarm: ActualAlarm, tags: Mapping[str, str]) -> None:
        self.calls.append(("tag", alarm.name))
        current = self.alarms_by_name[alarm.name]
        self.alarms_by_name[alarm.name] = ActualAlarm(alarm.name, alarm.arn, current.config, {**current.tags, **tags})

    def delete(self, names: Sequence[str]) -> None:
        self.calls.extend(("delete", name) for name in names)
        for name in names:
            self.alarms_by_name.pop(name, None)

    def add_foreign(self, name: str, tags: Mapping[str, str]) -> None:
        config = {"AlarmName": name, "MetricName": "Errors", "Namespace": "AWS/Lambda", "Threshold": 0.0}
        self.alarms_by_name[name] = ActualAlarm(name, f"arn:{name}", config, dict(tags))


def test_the_first_run_creates_everything_and_the_second_changes_nothing() -> None:
    store = MemoryAlarms()
    reconciler = AlarmReconciler(store, PREFIX, MONITORS, AlarmThresholds())
    first = reconciler.reconcile()
    assert first.created == [spec.name for spec in reconciler.desired()]
    store.calls.clear()
    second = reconciler.reconcile()
    assert store.calls == []
    assert (second.created, second.updated, second.retagged, second.deleted) == ([], {}, [], [])
    assert second.unchanged == len(first.created)


def test_a_threshold_change_updates_only_the_alarms_it_concerns() -> None:
    store = MemoryAlarms()
    AlarmReconciler(store, PREFIX, MONITORS, AlarmThresholds()).reconcile()
    report = AlarmReconciler(store, PREFIX, MONITORS, AlarmThresholds(js_error_rate=2.5, blocks=20)).reconcile()
    assert report.updated == {
        f"rumguard/{GUEST}/js-error-rate": ["AlarmDescription", "Threshold"],
        f"rumguard/{GUEST}/blocks": ["AlarmDescription", "Threshold"],
        f"rumguard/{SIGNED_IN}/js-error-rate": ["AlarmDescription", "Threshold"],
    }
    assert report.created == [] and report.deleted == []


def test_a_removed_monitor_loses_its_alarms_and_nothing_else_is_touched() -> None:
    store = MemoryAlarms()
    AlarmReconciler(store, PREFIX, MONITORS, AlarmThresholds()).reconcile()
    store.add_foreign("rumguard/ingest-errors", {})  # a template alarm under the prefix: not RUM Guard's to delete
    store.add_foreign("rumguard/Old/js-error-rate", {MANAGED_TAG: "true", OWNER_TAG: "rumguard-prod"})
    report = AlarmReconciler(store, PREFIX, [Monitor(GUEST, Audience.GUEST)], AlarmThresholds()).reconcile()
    assert report.deleted == [f"rumguard/{SIGNED_IN}/{kind}" for kind in sorted(HEALTH)]
    assert "rumguard/ingest-errors" in store.alarms_by_name
    assert "rumguard/Old/js-error-rate" in store.alarms_by_name


def test_removing_the_last_guest_monitor_removes_the_pool_alarms() -> None:
    store = MemoryAlarms()
    AlarmReconciler(store, PREFIX, MONITORS, AlarmThresholds()).reconcile()
    report = AlarmReconciler(store, PREFIX, [Monitor(SIGNED_IN, Audience.SIGNED_IN)], AlarmThresholds()).reconcile()
    assert set(report.deleted) == {f"rumguard/{GUEST}/{kind}" for kind in GUEST_KINDS} | {
        "rumguard/policy-capacity",
        "rumguard/unenforced-blocks",
    }


def test_an_untagged_alarm_of_a_desired_name_is_adopted() -> None:
    store = MemoryAlarms()
    reconciler = AlarmReconciler(store, PREFIX, MONITORS, AlarmThresholds())
    spec = reconciler.desired()[0]
    store.alarms_by_name[spec.name] = ActualAlarm(spec.name, "arn:x", described(spec), {"team": "web"})
    todo = plan(PREFIX, reconciler.desired(), store.alarms(f"{PREFIX}/"))
    assert [alarm.name for alarm, _ in todo.retag] == [spec.name]
    assert spec.name not in [s.name for s in todo.create] and spec.name not in [s.name for s, _ in todo.update]
    reconciler.reconcile()
    assert store.alarms_by_name[spec.name].tags == {"team": "web", **spec.tags}


# --- settings ---------------------------------------------------------------------------------------------
SWEEPER_ENVIRON = {
    "GUEST_MONITORS": GUEST,
    "SIGNED_IN_MONITORS": SIGNED_IN,
    "RUMGUARD_TABLE": "rumguard-table",
    "IDENTITY_POOL_ID": "us-east-1:2f6a1c1e-3d4b-4c5d-8e9f-0a1b2c3d4e5f",
    "GUEST_ROLE_NAME": "RetailDemoStore-GuestRole",
    "EVENT_BUS_NAME": "rumguard",
    "RUMGUARD_MODE": "dry-run",
    "ALARM_PREFIX": "rumguard",
}


def test_alarm_settings_default_to_the_documented_thresholds() -> None:
    settings = SweeperSettings.from_environ(SWEEPER_ENVIRON)
    assert settings.alarm_prefix == "rumguard"
    assert settings.alarm_thresholds() == AlarmThresholds()
    assert AlarmThresholds() == AlarmThresholds(
        traffic_band=3, js_error_rate=5, http_error_rate=10, min_volume=20, blocks=10, rejected_events=100,
        policy_capacity=80,
    )  # fmt: skip


def test_alarm_settings_are_read_from_their_environment_names() -> None:
    environ = SWEEPER_ENVIRON | {
        "ALARM_PREFIX": "rumguard-prod",
        "TRAFFIC_SURGE_BAND": "2",
        "JS_ERROR_RATE_PERCENT": "4.5",
        "HTTP_ERROR_RATE_PERCENT": "15",
        "ERROR_RATE_MIN_VOLUME": "100",
        "BLOCKS_ALARM_LIMIT": "25",
        "REJECTED_EVENTS_LIMIT": "500",
        "POLICY_CAPACITY_PERCENT": "90",
    }
    settings = SweeperSettings.from_environ(environ)
    assert settings.alarm_prefix == "rumguard-prod"
    assert settings.alarm_thresholds() == AlarmThresholds(2, 4.5, 15, 100, 25, 500, 90)
    assert set(environ) == SweeperSettings.env_names()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ALARM_PREFIX", "rum/guard"),
        ("POLICY_CAPACITY_PERCENT", "120"),
        ("ERROR_RATE_MIN_VOLUME", "0"),
        ("TRAFFIC_SURGE_BAND", "0.1"),
    ],
)
def test_bad_alarm_settings_fail_the_cold_start_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        SweeperSettings.from_environ(SWEEPER_ENVIRON | {name: value})


# --- the dashboard ----------------------------------------------------------------------------------------
def test_the_dashboard_lays_out_widgets_in_24_columns_without_overlap() -> None:
    widgets = dashboard_body()["widgets"]
    cells: set[tuple[int, int]] = set()
    for widget in widgets:
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24
        mine = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not cells & mine, widget
        cells |= mine


def test_the_dashboard_shows_every_alarm_rumguard_and_the_template_publish() -> None:
    values = DashboardValues(
        guest=(GUEST,),
        signed_in=(SIGNED_IN,),
        region="eu-west-1",
        account_id="123456789012",
        partition="aws",
        alarm_prefix=PREFIX,
        functions={"ingest": "f-ingest", "sweeper": "f-sweeper", "notify": "f-notify"},
        async_functions=("ingest", "notify"),
        queues={"dead letters": "q"},
    )
    shown = {
        arn.split(":alarm:", 1)[1]
        for widget in dashboard_body(values)["widgets"]
        if widget["type"] == "alarm"
        for arn in widget["properties"]["alarms"]
    }
    desired = {spec.name for spec in desired_alarms(PREFIX, MONITORS, AlarmThresholds())}
    pipeline = {f"{PREFIX}/{label}" for label in PIPELINE_ALARMS} | {f"{PREFIX}-{n}" for n in NOTIFY_SELF_ALARMS}
    assert shown == desired | pipeline


def test_the_dashboard_graphs_each_monitors_traffic_errors_vitals_and_blocks() -> None:
    text = json.dumps(dashboard_body())
    for monitor, audience in (("${GuestMonitorName}", "guest"), ("${SignedInMonitorName}", "signed-in")):
        for metric in ("Events", "PageViews", "JsErrors", "HttpErrors", "PageLoadTime", "LargestContentfulPaint"):
            assert json.dumps(["RumGuard", metric, "AppMonitor", monitor, "Audience", audience])[:-1] in text
    assert '"IdentitiesBlocked", "AppMonitor", "${GuestMonitorName}"' in text
    assert '"IdentitiesBlocked", "AppMonitor", "${SignedInMonitorName}"' not in text
    assert '"p75"' in text and "CumulativeLayoutShift" in text and "InteractionToNextPaint" in text
    assert "AsyncEventAge" in text and "ApproximateAgeOfOldestMessage" in text


def test_rumguard_dashboard_prints_the_template_body(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dashboard"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == dashboard_body(TEMPLATE_VALUES)
    assert json.loads(render(dashboard_body(), width=None)) == json.loads(printed)
