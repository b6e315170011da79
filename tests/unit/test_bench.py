"""The benchmark's machinery on a tiny input (the ingest figures and the detection figures beside them), and
the in-memory idempotency store it runs on. Timings are checked for shape, never for speed."""

from __future__ import annotations

import argparse
import base64
import io
import json
import time
import warnings
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from rich.console import Console

from rumguard import bench
from rumguard.detection import Detection, Rule
from rumguard.events import EventKind
from rumguard.local.bots import BotTraffic
from rumguard.local.fakes import InMemoryGuestRole
from rumguard.local.memory import InMemoryPersistenceLayer
from rumguard.local.subscription import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from rumguard.local.traffic import identity_id
from rumguard.policy import BLOCKS_POLICY, blocks_document, render
from rumguard.runtime import cloudwatch_logs_event

NOW = 1_767_225_600.0


def run_bench(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    out = io.StringIO()
    code = bench.run(parser.parse_args(list(argv)), console=Console(file=out, width=120))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def workload() -> bench.Workload:
    return bench.generate_workload(2_000, 50, seed=3)


def decoded(payload: bench.Payload) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(zlib.decompress(base64.b64decode(payload.event["awslogs"]["data"]), 31))
    return document


# --- the command ---------------------------------------------------------------------------------------------
def test_bench_writes_sane_figures_and_counts_every_generated_event(tmp_path: Path) -> None:
    output = tmp_path / "nested" / "ingest.json"
    code, printed = run_bench(
        "--events", "2000", "--identities", "50", "--repeat", "2", "--output", str(output),
        "--trials", "1", "--moto-events", "500",
    )  # fmt: skip

    assert code == 0
    report = json.loads(output.read_text())
    work, ingest, ceiling = report["workload"], report["ingest"], report["decode_ceiling"]
    assert work["events"] == 2000
    assert sum(work["by_monitor"].values()) == 2000
    assert sum(work["by_kind"].values()) == 2000
    assert 0 < work["identities"] <= 50 + 50 // 4  # guests from the pool, signed-in users beside them
    assert work["payloads"] >= 2  # one log group per monitor at least
    # The ingest path processed exactly what was generated: nothing lost, nothing rejected.
    assert ingest["log_events"] == ingest["accepted"] == 2000
    assert ingest["rejected"] == {}
    assert ingest["payloads"] == work["payloads"]
    for figures in (ceiling, ingest):
        assert figures["events_per_second"] > 0
        assert len(figures["runs_seconds"]) == 2
        assert figures["spread_percent"] >= 0
    assert report["ratio"] == pytest.approx(ingest["events_per_second"] / ceiling["events_per_second"], rel=1e-3)
    memory = report["memory"]
    assert memory["batch_events"] > 0
    assert memory["ingest_peak_bytes"] > memory["batch_bytes"] // 2  # the decoded batch is in the peak
    assert memory["process"]["peak_rss_bytes"] > memory["process"]["rss_before_bytes"] > 0
    assert memory["process"]["accepted"] == memory["batch_events"]
    assert report["machine"]["cpu_count"] >= 1
    assert report["machine"]["python"].count(".") == 2
    assert set(report["goals"]) == {"ratio", "memory"}
    assert all(isinstance(goal["met"], bool) for goal in report["goals"].values())
    assert "ingest/ceiling ratio" in printed
    assert "memory per 1 MB batch" in printed
    assert f"figures written to {output}" in printed

    # The detection figures sit beside the ones above, which they leave alone.
    detection = report["detection"]
    in_memory, moto, blocking = detection["in_memory"], detection["moto"], detection["time_to_block"]
    assert in_memory["log_events"] == 2000 and in_memory["payloads"] == work["payloads"]
    assert len(in_memory["runs_seconds"]) == 2 and in_memory["events_per_second"] > 0
    writes = in_memory["writes"]
    assert writes["idempotency"] == 2 * work["payloads"]  # a put and an update per delivery
    assert writes["counters"] == in_memory["guest_identity_batches"] > 0  # one per identity per guest batch
    assert writes["total"] == writes["counters"] + writes["idempotency"] + writes["decisions"]
    assert detection["writes_per_1000_events"] == in_memory["writes_per_1000_events"]
    assert in_memory["writes_per_1000_events"] == pytest.approx(1000 * writes["total"] / 2000, abs=0.01)
    assert in_memory["counter_writes_per_1000_events"] < in_memory["writes_per_1000_events"]
    assert 0 < moto["log_events"] < 2000 and moto["payloads"] >= 2  # a slice of both monitors
    assert moto["matches_in_memory"] is True
    assert moto["dynamodb_writes"]["total"] == moto["in_memory_writes_same_deliveries"]
    assert moto["dynamodb_writes"]["PutItem"] == moto["payloads"]  # the idempotency records
    assert moto["writes_per_1000_events"] > 0
    for where in ("moto", "in_memory"):
        timing = blocking[where]
        assert timing["trials"] == len(timing["runs"]) == 1
        (run,) = timing["runs"]
        assert run["time_to_block_ms"] == timing["median_ms"] <= run["invocation_ms"]
        assert 1 <= run["batch"] <= run["batches"]
        assert run["batch_events"] > 0 and run["batch_identities"] >= 1
    moto_run = blocking["moto"]["runs"][0]
    assert moto_run["calls_to_policy"]["iam"] >= 1  # the PutRolePolicy itself
    assert moto_run["calls_to_policy"]["cognito-identity"] == 1  # DescribeIdentity before the block
    assert moto_run["in_aws_calls_ms"] + moto_run["in_rumguard_code_ms"] == pytest.approx(
        moto_run["time_to_block_ms"], abs=0.02
    )
    assert blocking["in_memory"]["runs"][0]["calls_to_policy"] == {}
    assert blocking["flood"]["bot_events_at_least"] > blocking["flood"]["limit"] == 1000
    assert detection["time_to_block_ms"] == blocking["moto"]["median_ms"]
    assert detection["waf_mitigation_seconds"] == [30, 50]
    assert set(detection["rules"]) == {rule.value for rule in Rule}
    goals = detection["goals"]
    assert goals["one_counter_write_per_identity_per_batch"]["met"] is True
    assert isinstance(goals["time_to_block"]["met"], bool)
    assert goals["time_to_block"]["target_ms"] == 1000
    assert set(detection["measured_seconds"]) == {"in_memory", "moto_writes", "time_to_block"}
    assert "time to block" in printed and "DynamoDB writes / 1,000 events" in printed


def test_bench_without_detection_writes_the_ingest_figures_only(tmp_path: Path) -> None:
    output = tmp_path / "ingest.json"
    code, printed = run_bench(
        "--events", "500", "--identities", "20", "--repeat", "1", "--no-process-probe", "--no-detection",
        "--output", str(output),
    )  # fmt: skip

    assert code == 0
    report = json.loads(output.read_text())
    assert "detection" not in report
    assert set(report["goals"]) == {"ratio", "memory"}
    assert "time to block" not in printed


def test_bench_options_reject_nonsense() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--events", "0"])
    args = parser.parse_args([])
    assert (args.events, args.identities, args.output) == (300_000, 1000, Path(".bench/ingest.json"))
    assert (args.trials, args.moto_events, args.no_detection) == (3, 4000, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--trials", "0"])


# --- the workload ----------------------------------------------------------------------------------------------
def test_workload_is_real_subscription_deliveries_split_like_cloudwatch_logs(workload: bench.Workload) -> None:
    log_groups = {bench.log_group_of(bench.GUEST), bench.log_group_of(bench.SIGNED_IN)}
    ids: set[str] = set()
    total = 0
    for payload in workload.payloads:
        batch = cloudwatch_logs_event(payload.event).parse_logs_data()
        assert batch.message_type == "DATA_MESSAGE"
        assert batch.log_group == payload.log_group and payload.log_group in log_groups
        events = batch.log_events
        assert len(events) == payload.events <= MAX_BATCH_EVENTS
        assert sum(len(e.message.encode()) + 26 for e in events) <= MAX_BATCH_BYTES
        assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
        assert all(len(e.get_id) == 56 and e.get_id.isdigit() for e in events)
        ids.update(e.get_id for e in events)
        total += len(events)
    assert total == len(ids) == workload.events


def test_large_workload_mixes_every_event_kind_over_the_identity_pool() -> None:
    workload = bench.generate_workload(20_000, 200)
    assert set(workload.by_kind) == {kind.value for kind in EventKind}
    assert workload.identities > 200  # the whole guest pool, plus signed-in users
    assert max(p.batch_bytes for p in workload.payloads) > MAX_BATCH_BYTES  # full ~1 MB deliveries (JSON-escaped)


def test_generation_reports_progress() -> None:
    seen: dict[str, int] = {}

    def progress(stage: str, advance: int, total: int | None) -> None:
        seen[stage] = seen.get(stage, 0) + advance

    workload = bench.generate_workload(12_000, 20, progress=progress)
    assert seen == {"generate": 12_000, "encode": len(workload.payloads)}


def test_decode_ceiling_decodes_every_message(workload: bench.Workload) -> None:
    assert bench.decode_ceiling(workload.lambda_events()) == workload.events


# --- the in-memory idempotency store -------------------------------------------------------------------------
def test_redelivered_batch_returns_the_cached_summary_and_is_not_ingested_again(
    workload: bench.Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bench.IngestPath.fresh()
    payload = workload.payloads[0]

    first = path.handle(payload.event)
    emf = capsys.readouterr().out
    assert first["accepted"] == payload.events
    assert '"Events"' in emf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No application metrics to publish": nothing was counted twice
        again = path.handle(payload.event)
    assert again == first
    assert capsys.readouterr().out == ""
    assert path.store.calls == {"get": 0, "put": 2, "update": 1, "delete": 0}
    assert len(path.store) == 1
    (item,) = path.store.items().values()
    assert item.status == "COMPLETED"
    assert json.loads(item.response_data or "null") == first


def test_another_batch_of_the_same_log_group_is_ingested(workload: bench.Workload) -> None:
    path = bench.IngestPath.fresh()
    same_group = [p for p in workload.payloads if p.log_group == workload.payloads[0].log_group][:2]
    assert len(same_group) == 2
    with bench.emf_to_devnull():
        summaries = [path.handle(p.event) for p in same_group]
    assert [s["accepted"] for s in summaries] == [p.events for p in same_group]
    assert len(path.store) == 2


def in_progress(key: str, *, expiry: float, in_progress_expiry_ms: float | None = None) -> DataRecord:
    return DataRecord(
        idempotency_key=key,
        status="INPROGRESS",
        expiry_timestamp=int(expiry),
        in_progress_expiry_timestamp=None if in_progress_expiry_ms is None else int(in_progress_expiry_ms),
    )


def test_put_fails_while_a_live_record_holds_the_key() -> None:
    store = InMemoryPersistenceLayer(clock=lambda: NOW)
    store._put_record(in_progress("k", expiry=NOW + 60, in_progress_expiry_ms=(NOW + 30) * 1000))
    with pytest.raises(IdempotencyItemAlreadyExistsError) as raised:
        store._put_record(in_progress("k", expiry=NOW + 120))
    assert raised.value.old_data_record is not None
    assert raised.value.old_data_record.expiry_timestamp == int(NOW + 60)


def test_put_replaces_an_expired_record() -> None:
    store = InMemoryPersistenceLayer(clock=lambda: NOW)
    store._put_record(in_progress("k", expiry=NOW - 1))
    store._put_record(in_progress("k", expiry=NOW + 60))
    assert store._get_record("k").expiry_timestamp == int(NOW + 60)


def test_put_replaces_an_in_progress_record_whose_lambda_ran_out_of_time() -> None:
    store = InMemoryPersistenceLayer(clock=lambda: NOW)
    store._put_record(in_progress("k", expiry=NOW + 3600, in_progress_expiry_ms=NOW * 1000 - 1))
    store._put_record(in_progress("k", expiry=NOW + 7200))
    assert store._get_record("k").expiry_timestamp == int(NOW + 7200)


def test_put_keeps_a_completed_record_even_past_its_in_progress_expiry() -> None:
    store = InMemoryPersistenceLayer(clock=lambda: NOW)
    store._put_record(in_progress("k", expiry=NOW + 3600, in_progress_expiry_ms=NOW * 1000 - 1))
    store._update_record(DataRecord("k", status="COMPLETED", expiry_timestamp=int(NOW + 3600), response_data="{}"))
    with pytest.raises(IdempotencyItemAlreadyExistsError):
        store._put_record(in_progress("k", expiry=NOW + 7200))


def test_get_update_and_delete_follow_dynamodb() -> None:
    store = InMemoryPersistenceLayer(clock=lambda: NOW)
    with pytest.raises(IdempotencyItemNotFoundError):
        store._get_record("missing")
    store._delete_record(DataRecord("missing"))  # DeleteItem of a missing key is no error
    # UpdateItem is an upsert that keeps the attributes it does not set.
    store._update_record(DataRecord("new", status="COMPLETED", expiry_timestamp=int(NOW + 5), response_data='{"a":1}'))
    assert store._get_record("new").response_json_as_dict() == {"a": 1}
    store._put_record(in_progress("p", expiry=NOW + 60, in_progress_expiry_ms=NOW * 1000 + 9))
    store._update_record(DataRecord("p", status="COMPLETED", expiry_timestamp=int(NOW + 90), response_data="{}"))
    assert store.items()["p"].in_progress_expiry_timestamp == int(NOW * 1000 + 9)
    # A get returns an expired record too (as before TTL deletion); Powertools reports it as expired.
    store._update_record(DataRecord("old", status="COMPLETED", expiry_timestamp=1, response_data="{}"))
    assert store._get_record("old").status == "EXPIRED"
    store._delete_record(DataRecord("old"))
    assert "old" not in store.items()


def test_a_failed_call_leaves_no_record_so_the_retry_runs() -> None:
    store = InMemoryPersistenceLayer()
    calls: list[int] = []

    def work(order: dict[str, Any]) -> dict[str, Any]:
        calls.append(order["id"])
        if len(calls) == 1:
            raise RuntimeError("throttled")
        return {"done": order["id"]}

    once = idempotent_function(
        work, data_keyword_argument="order", persistence_store=store, config=IdempotencyConfig(event_key_jmespath="id")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no Lambda context: in-progress records get no expiry
        with pytest.raises(RuntimeError):
            once(order={"id": 7})
        assert len(store) == 0
        assert once(order={"id": 7}) == {"done": 7}
        assert once(order={"id": 7}) == {"done": 7}
    assert calls == [7, 7]


def test_a_call_in_progress_elsewhere_is_refused() -> None:
    store = InMemoryPersistenceLayer()
    config = IdempotencyConfig(event_key_jmespath="id")
    once = idempotent_function(
        lambda order: {"done": True},
        data_keyword_argument="order",
        persistence_store=store,
        config=config,
        key_prefix="orders",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store.configure(config, key_prefix="orders")  # another invocation, still running
        store.save_inprogress({"id": 1}, remaining_time_in_millis=60_000)
        with pytest.raises(IdempotencyAlreadyInProgressError):
            once(order={"id": 1})


def test_payload_validation_rejects_a_different_payload_under_the_same_key() -> None:
    store = InMemoryPersistenceLayer()
    config = IdempotencyConfig(event_key_jmespath="id", payload_validation_jmespath="amount")
    once = idempotent_function(
        lambda order: {"charged": order["amount"]},
        data_keyword_argument="order",
        persistence_store=store,
        config=config,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert once(order={"id": 1, "amount": 5}) == {"charged": 5}
        assert once(order={"id": 1, "amount": 5}) == {"charged": 5}
        with pytest.raises(IdempotencyValidationError):
            once(order={"id": 1, "amount": 6})


# --- the detection figures' machinery ------------------------------------------------------------------------
def test_in_memory_detection_writes_once_per_identity_and_batch(workload: bench.Workload) -> None:
    timing, counts = bench.measure_detection_in_memory(workload, 1)

    assert len(timing.seconds) == 1
    assert counts.log_events == workload.events
    guest_group = bench.log_group_of(bench.GUEST)
    guest_identities = 0
    for payload in workload.payloads:
        if payload.log_group == guest_group:
            messages = [json.loads(e["message"]) for e in decoded(payload)["logEvents"]]
            guest_identities += len({m["metadata"]["cognitoIdentityId"] for m in messages})
    assert counts.counter_writes == counts.identity_batches == guest_identities
    assert counts.idempotency_writes == 2 * len(workload.payloads)
    assert counts.writes == counts.counter_writes + counts.idempotency_writes + counts.decision_writes


def test_moto_slice_takes_both_monitors_in_proportion(workload: bench.Workload) -> None:
    chosen = bench.moto_slice(workload, 800)
    groups = {payload.log_group for payload in chosen}
    assert groups == {bench.log_group_of(bench.GUEST), bench.log_group_of(bench.SIGNED_IN)}
    assert [p for p in workload.payloads if p in chosen] == chosen  # in delivery order, each once
    assert sum(p.events for p in chosen) < workload.events


def test_timed_guest_role_notes_when_a_policy_denying_an_identity_was_written() -> None:
    ticks = iter([10.0, 20.0, 30.0])
    role = bench.TimedGuestRole(InMemoryGuestRole(), clock=lambda: next(ticks))
    first, second = "us-east-1:00000000-0000-4000-8000-000000000001", "us-east-1:00000000-0000-4000-8000-000000000002"

    role.put_policy("other", render(blocks_document([second])))  # not RUM Guard's: its ids do not count
    role.put_policy(BLOCKS_POLICY, render(blocks_document([first])))
    role.put_policy(BLOCKS_POLICY, render(blocks_document([first, second])))

    assert role.denied_at(first, 0.0) == 20.0
    assert role.denied_at(first, 25.0) == 30.0
    assert role.denied_at(second, 0.0) == 30.0
    assert role.denied_at("us-east-1:00000000-0000-4000-8000-000000000003", 0.0) is None
    assert set(role.inline_policies()) == {"other", BLOCKS_POLICY}
    role.delete_policy("other")
    assert set(role.inline_policies()) == {BLOCKS_POLICY}


def test_call_log_counts_calls_and_the_time_any_was_in_flight() -> None:
    log = bench.CallLog()
    log.calls += [(1.0, 3.0, "dynamodb", "UpdateItem"), (2.0, 5.0, "dynamodb", "UpdateItem"), (7.0, 8.0, "iam", "X")]

    assert log.waiting(0.0, 10.0) == pytest.approx(5.0)  # 1-5 and 7-8, the overlap once
    assert log.waiting(4.0, 7.5) == pytest.approx(1.5)  # clipped to the interval
    assert log.count(0.0, 6.0) == {("dynamodb", "UpdateItem"): 2}
    assert log.count() == {("dynamodb", "UpdateItem"): 2, ("iam", "X"): 1}


def test_counting_decision_store_counts_every_write() -> None:
    store = bench.CountingDecisionStore()
    store.bump_policy_version()
    store.mark_policy_applied(1)
    assert store.writes == 2
    assert store.policy_versions() == (1, 1)


def test_flood_deliveries_cross_the_threshold_in_one_short_delivery() -> None:
    traffic = BotTraffic(bench.GUEST, bench.SIGNED_IN, seed=2)
    flooder = identity_id(traffic.rng)
    at_ms = (int(time.time()) // 60 - 20) * 60_000
    events = bench.flood_deliveries(traffic, flooder, at_ms, bench.LOG_EVENT_ID_BASE)

    limit = Detection().thresholds[Rule.EVENT_FLOOD].limit
    seen, crossing = 0, None
    for number, event in enumerate(events):
        log_events = cloudwatch_logs_event(event).parse_logs_data().log_events
        seen += sum(1 for e in log_events if flooder in e.message)
        if crossing is None and seen > limit:
            crossing = number
            stamps = [e.timestamp for e in log_events]
            assert max(stamps) // bench.DELIVERY_INTERVAL_MS == min(stamps) // bench.DELIVERY_INTERVAL_MS
    assert crossing is not None and 1 <= crossing < len(events) - 1


def test_time_to_block_on_the_in_memory_ports_finds_the_crossing_delivery() -> None:
    traffic = BotTraffic(bench.GUEST, bench.SIGNED_IN, seed=5)
    world = bench.MemoryWorld.fresh(assume_guests=False)
    flooder = world.identities.new_guest()
    events = bench.flood_deliveries(traffic, flooder, (int(time.time()) // 60 - 20) * 60_000, bench.LOG_EVENT_ID_BASE)
    path = bench.IngestPath.fresh(world.guard)

    with bench.emf_to_devnull():
        timing = bench.time_one_block(path.handle, world.role, events, flooder)

    assert [block.identity_id for block in world.decisions.blocks()] == [flooder]
    assert not world.identities.exists(flooder)
    assert world.bus.of("Identity Blocked")[0]["identityId"] == flooder
    assert timing.batches == len(events) and 1 <= timing.batch < timing.batches
    assert timing.calls_to_policy == {} and timing.in_aws_calls_ms == 0.0
