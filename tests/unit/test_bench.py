"""The benchmark's machinery on a tiny input, and the in-memory idempotency store it runs on."""

from __future__ import annotations

import argparse
import base64
import io
import json
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
from rumguard.events import EventKind
from rumguard.local.memory import InMemoryPersistenceLayer
from rumguard.local.subscription import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
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
    code, printed = run_bench("--events", "2000", "--identities", "50", "--repeat", "2", "--output", str(output))

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


def test_bench_options_reject_nonsense() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--events", "0"])
    args = parser.parse_args([])
    assert (args.events, args.identities, args.output) == (300_000, 1000, Path(".bench/ingest.json"))


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
