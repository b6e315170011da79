"""``rumguard bench``: ingest throughput against the decode ceiling, and memory per 1 MB batch.

The benchmark generates realistic subscription deliveries once (simulated shop traffic over about a
thousand identities, every RUM event type, split per monitor log group into ~1 MB batches the way
CloudWatch Logs splits them, encoded as real Lambda events) and then times, on the same deliveries:

- the decode ceiling: base64, gzip and orjson of the batch and of every message, nothing else. No ingest
  path can beat it, so it is the yardstick;
- the ingest path: ``IngestApp.handle`` exactly as the Lambda handler calls it (Powertools' data class
  decode, parse and validate, aggregate, build the EMF metrics with a real Powertools ``Metrics`` flushed
  once per delivery), with the in-memory idempotency store in place of DynamoDB.

Each measurement is repeated and the best run counts (the spread is reported too). Memory is measured on
the largest delivery with tracemalloc (Python allocations while handling it, decoded payload included) and,
in a fresh child process that imports what the function imports, as peak RSS, the number a 128 MB Lambda
function has to stay under.

Then the detection path (issue 3), in separate figures that leave the ones above alone:

- DynamoDB writes per 1,000 events: the same deliveries through ``IngestApp`` with the decision service
  on in-memory ports (``rumguard.local.fakes``; the counter store counts its writes as DynamoDB would get
  them, the idempotency store its puts and updates), timed like the ingest path; and a slice of them on the
  embedded AWS (moto) with the real adapters, where every DynamoDB write request is counted as it is sent;
- time to block: a flooder's deliveries (``rumguard.local.bots``, among honest guests, one delivery per
  five seconds of traffic) on moto with the real adapters, and on the in-memory ports: for the delivery
  that crosses the flood threshold, the time from the start of its invocation to the moment the deny
  policy listing the flooder was written (``TimedGuestRole`` notes it), against the 30 to 50 seconds AWS
  WAF's rate-based rules take to mitigate.

Results go to ``.bench/ingest.json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import datetime as dt
import gc
import io
import itertools
import json
import math
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, TextIO, cast

import boto3
import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from rumguard.decisions import AuditRecord, Block
from rumguard.detection import Detection, Rule
from rumguard.guard import Guard
from rumguard.local.bots import BotTraffic, beyond
from rumguard.local.fakes import (
    InMemoryCounterStore,
    InMemoryDecisionStore,
    InMemoryGuestRole,
    InMemoryIdentityDirectory,
    RecordingBus,
)
from rumguard.local.memory import InMemoryPersistenceLayer
from rumguard.local.subscription import LogEvent, batch_document, batches, encode
from rumguard.local.traffic import LogRecord, TrafficSimulator, identity_id, mixed_traffic
from rumguard.monitors import Audience, Monitor
from rumguard.policy import POLICY_PREFIX, SUB_KEY
from rumguard.ports import GuestRole
from rumguard.runtime import IngestApp, SystemClock, aws_guard, cloudwatch_logs_event, dynamodb_idempotency_store
from rumguard.settings import IngestSettings
from rumguard.telemetry import NAMESPACE

if TYPE_CHECKING:
    # moto, imported only when the detection figures run: the memory probe's process imports this module,
    # and must hold what the function holds, not moto.
    from rumguard.local.aws import EmbeddedAws

#: The two app monitors of the Retail Demo Store walkthrough, and made-up ids for their log group names.
GUEST: Final = Monitor("RetailDemoStore_Unauthenticated", Audience.GUEST)
SIGNED_IN: Final = Monitor("RetailDemoStore_Authenticated", Audience.SIGNED_IN)
APP_MONITOR_IDS: Final = {
    GUEST.name: "5e1f0c2a-7d3b-4c8e-9f10-2a3b4c5d6e7f",
    SIGNED_IN.name: "b7c8d9e0-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
}
BENCH_TABLE: Final = "rumguard-bench"
#: CloudWatch Logs event ids are 56-digit decimal strings.
LOG_EVENT_ID_BASE: Final = 3 * 10**55

#: The issue's goals: the ingest path at half the decode ceiling or better, a 1 MB batch in 128 MB.
RATIO_GOAL: Final = 0.5
MEMORY_GOAL_BYTES: Final = 128 * 1024 * 1024
MIB: Final = 1024 * 1024

DEFAULT_OUTPUT: Final = Path(".bench/ingest.json")
#: ``zlib`` window bits for a gzip stream.
GZIP_WBITS: Final = zlib.MAX_WBITS | 16


# --- the workload -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Payload:
    """One subscription delivery: the Lambda event and what is in it."""

    event: dict[str, Any]
    log_group: str
    events: int
    batch_bytes: int  # the decoded batch JSON
    data_bytes: int  # the base64 text of the gzip stream, as it arrives


@dataclass(slots=True)
class Workload:
    """The deliveries every measurement runs on, and what was generated into them."""

    payloads: list[Payload]
    events: int
    identities: int
    by_monitor: dict[str, int]
    by_kind: dict[str, int]
    seconds: float

    def lambda_events(self) -> list[dict[str, Any]]:
        """The Lambda events, in delivery order."""
        return [payload.event for payload in self.payloads]

    def largest(self) -> Payload:
        """The delivery with the largest decoded batch (the one closest to 1 MB)."""
        return max(self.payloads, key=lambda payload: payload.batch_bytes)

    def summary(self) -> dict[str, Any]:
        """The workload's figures for the report."""
        sizes = [payload.batch_bytes for payload in self.payloads]
        return {
            "events": self.events,
            "payloads": len(self.payloads),
            "identities": self.identities,
            "by_monitor": self.by_monitor,
            "by_kind": dict(sorted(self.by_kind.items())),
            "batch_bytes": {"max": max(sizes), "mean": round(statistics.fmean(sizes))},
            "events_per_payload": round(self.events / len(self.payloads), 1),
            "compressed_bytes": sum(payload.data_bytes for payload in self.payloads),
            "decoded_bytes": sum(sizes),
            "generation_seconds": round(self.seconds, 2),
        }


def log_group_of(monitor: Monitor) -> str:
    """The monitor's RUM log group, as RUM names it."""
    return monitor.log_group_name(APP_MONITOR_IDS[monitor.name])


#: A complete function environment; the settings model takes the names it reads and ignores the rest.
BENCH_ENVIRONMENT: Final = {
    "GUEST_MONITORS": GUEST.name,
    "SIGNED_IN_MONITORS": SIGNED_IN.name,
    "RUMGUARD_TABLE": BENCH_TABLE,
    "IDENTITY_POOL_ID": "us-east-1:00000000-0000-4000-8000-000000000000",
    "GUEST_ROLE_NAME": "rumguard-bench-guest",
    "EVENT_BUS_NAME": "rumguard-bench",
    "RUMGUARD_MODE": "dry-run",
    "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:rumguard-bench",
}


def bench_settings() -> IngestSettings:
    """The ingest settings of the benchmark's two monitors (no AWS resource is ever called)."""
    return IngestSettings.from_environ(BENCH_ENVIRONMENT)


ProgressHook = Callable[[str, int, int | None], None]


def generate_workload(events: int, identities: int, *, seed: int = 7, progress: ProgressHook | None = None) -> Workload:
    """Simulate ``events`` RUM events over ``identities`` identities and encode them as deliveries.

    ``progress(stage, advance, total)`` is told about generated events, then encoded deliveries.
    """
    if events < 1 or identities < 1:
        raise ValueError("the benchmark needs at least one event and one identity")
    report: ProgressHook = progress or (lambda stage, advance, total: None)
    started = time.perf_counter()
    sim = TrafficSimulator(GUEST, SIGNED_IN, seed=seed)
    per_monitor: dict[str, list[tuple[int, str]]] = {GUEST.name: [], SIGNED_IN.name: []}
    by_kind: Counter[str] = Counter()
    seen: set[str] = set()
    # Every session yields at least one event, so ``events`` sessions is an upper bound.
    for n, record in enumerate(itertools.islice(mixed_traffic(sim, sessions=events, identities=identities), events)):
        per_monitor[record.monitor.name].append((record.timestamp_ms, record.message))
        by_kind[record.kind.value] += 1
        if record.identity is not None:
            seen.add(record.identity)
        if n % 5000 == 4999:
            report("generate", 5000, events)
    report("generate", events % 5000, events)

    plans: list[tuple[str, list[LogEvent]]] = []
    sequence = itertools.count(LOG_EVENT_ID_BASE)
    for monitor in (GUEST, SIGNED_IN):
        records = per_monitor.pop(monitor.name)
        records.sort(key=lambda record: record[0])  # CloudWatch Logs delivers a stream in time order
        log_events = [LogEvent(str(next(sequence)), ts, message) for ts, message in records]
        del records
        plans.extend((log_group_of(monitor), batch) for batch in batches(log_events))
    payloads: list[Payload] = []
    for log_group, batch in plans:
        document = batch_document(log_group, batch)
        event = encode(document)
        payloads.append(
            Payload(
                event=event,
                log_group=log_group,
                events=len(batch),
                batch_bytes=len(orjson.dumps(document)),
                data_bytes=len(event["awslogs"]["data"]),
            )
        )
        report("encode", 1, len(plans))
    by_monitor = {GUEST.name: 0, SIGNED_IN.name: 0}
    for log_group, batch in plans:
        by_monitor[GUEST.name if log_group == log_group_of(GUEST) else SIGNED_IN.name] += len(batch)
    return Workload(payloads, events, len(seen), by_monitor, dict(by_kind), time.perf_counter() - started)


# --- what is timed ----------------------------------------------------------------------------------------
def decode_ceiling(events: Sequence[dict[str, Any]]) -> int:
    """Base64, gzip and orjson of every delivery and of every message in it; returns the messages decoded."""
    b64decode, decompress, loads = base64.b64decode, zlib.decompress, orjson.loads
    decoded = 0
    for event in events:
        log_events = loads(decompress(b64decode(event["awslogs"]["data"]), GZIP_WBITS))["logEvents"]
        for log_event in log_events:
            loads(log_event["message"])
        decoded += len(log_events)
    return decoded


class BenchContext(LambdaContext):
    """A Lambda context with time to spare, so in-progress idempotency records get their expiry."""

    def __init__(self) -> None:
        self._function_name = "rumguard-ingest-bench"
        self._function_version = "$LATEST"
        self._invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:rumguard-ingest-bench"
        self._memory_limit_in_mb = 128
        self._aws_request_id = "00000000-0000-4000-8000-000000000000"
        self._log_group_name = "/aws/lambda/rumguard-ingest-bench"
        self._log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        """Always a minute left."""
        return 60_000


class _Discard(io.TextIOBase):
    """A text stream that drops what it is given (the logger's sink; stdout goes to ``os.devnull``)."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


_LOG_SINK: Final = _Discard()


def _bench_logger() -> Logger:
    return Logger(service="rumguard-ingest-bench", stream=cast(IO[str], _LOG_SINK))


@dataclass(slots=True)
class IngestPath:
    """One ingest function instance: a fresh in-memory idempotency store, real Powertools Metrics."""

    app: IngestApp
    store: InMemoryPersistenceLayer
    metrics: Metrics
    context: LambdaContext = field(default_factory=BenchContext)

    @classmethod
    def fresh(cls, guard: Guard | None = None) -> IngestPath:
        """A new function instance; each timed run needs one, or every batch would be a redelivery.

        Without ``guard``, the ingest path alone (issue 2's figures); with one, the detection path too.
        """
        store = InMemoryPersistenceLayer()
        metrics = Metrics(namespace=NAMESPACE)
        metrics.clear_metrics()  # Powertools shares metric state between instances: start empty
        return cls(IngestApp(bench_settings(), store, metrics, _bench_logger(), guard), store, metrics)

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """What the deployed handler does per invocation: decode, ingest once, flush the metrics."""
        summary = self.app.handle(cloudwatch_logs_event(event), self.context)
        self.metrics.flush_metrics()  # as @metrics.log_metrics does after every invocation
        return summary

    def run(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Handle every delivery in order; returns the summaries."""
        handle = self.handle
        return [handle(event) for event in events]


@contextlib.contextmanager
def emf_to_devnull() -> Iterator[None]:
    """Send stdout (where Powertools prints EMF) to ``os.devnull`` for the duration."""
    with Path(os.devnull).open("w") as sink, contextlib.redirect_stdout(sink):
        yield


@dataclass(slots=True)
class Timing:
    """Repeated runs of one measurement over the same events."""

    events: int
    seconds: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        """The fastest run, in seconds."""
        return min(self.seconds)

    @property
    def rate(self) -> float:
        """Events per second of the fastest run."""
        return self.events / self.best

    def summary(self) -> dict[str, Any]:
        """The figures for the report: best rate, and the spread of the runs."""
        rates = [self.events / s for s in self.seconds]
        return {
            "events_per_second": round(self.rate),
            "best_seconds": round(self.best, 4),
            "median_events_per_second": round(statistics.median(rates)),
            "worst_events_per_second": round(min(rates)),
            "spread_percent": round(100 * (max(self.seconds) - self.best) / self.best, 1),
            "runs_seconds": [round(s, 4) for s in self.seconds],
            "microseconds_per_event": round(1e6 * self.best / self.events, 3),
        }


@dataclass(slots=True)
class IngestCounts:
    """What the ingest path reported over one run."""

    payloads: int = 0
    log_events: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, summaries: Sequence[dict[str, Any]]) -> IngestCounts:
        """Add up the per-delivery summaries."""
        counts = cls(payloads=len(summaries))
        for summary in summaries:
            counts.log_events += summary["logEvents"]
            counts.accepted += summary["accepted"]
            for reason, n in summary["rejected"].items():
                counts.rejected[reason] = counts.rejected.get(reason, 0) + n
        return counts


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def measure_throughput(workload: Workload, repeat: int) -> tuple[Timing, Timing, IngestCounts]:
    """Time the ceiling and the ingest path ``repeat`` times each, interleaved so drift hits both alike."""
    events = workload.lambda_events()
    ceiling, ingest = Timing(workload.events), Timing(workload.events)
    counts = IngestCounts()
    with emf_to_devnull():
        for _ in range(repeat):
            seconds, decoded = _timed(decode_ceiling, events)
            if decoded != workload.events:
                raise RuntimeError(f"the decode ceiling saw {decoded} events, {workload.events} were generated")
            ceiling.seconds.append(seconds)
            path = IngestPath.fresh()
            seconds, summaries = _timed(path.run, events)
            ingest.seconds.append(seconds)
            counts = IngestCounts.of(summaries)
            del path, summaries
    return ceiling, ingest, counts


# --- memory -----------------------------------------------------------------------------------------------
def traced_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes Python allocated while ``fn`` ran, over what was allocated when it started."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


def measure_batch_memory(workload: Workload) -> dict[str, Any]:
    """tracemalloc peaks while handling (and, for reference, only decoding) the largest delivery."""
    target = workload.largest()
    path = IngestPath.fresh()
    with emf_to_devnull():
        # Warm the instance on another delivery first: one-time set-up is not per-batch memory.
        warm = next((p for p in workload.payloads if p is not target), None)
        if warm is not None:
            path.handle(warm.event)
        ingest_peak = traced_peak(lambda: path.handle(target.event))
    decode_peak = traced_peak(lambda: decode_ceiling([target.event]))
    return {
        "batch_events": target.events,
        "batch_bytes": target.batch_bytes,
        "payload_bytes": target.data_bytes,
        "ingest_peak_bytes": ingest_peak,
        "decode_only_peak_bytes": decode_peak,
    }


def _proc_status_bytes(field_name: str) -> int | None:
    """A ``kB`` figure of ``/proc/self/status`` (Linux), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _memory_now() -> tuple[int, int]:
    """(RSS now, peak RSS so far) of this process.

    ``VmHWM`` is the peak of this process image only; ``ru_maxrss`` (the fallback off Linux) would also
    carry the parent's peak over ``fork`` and ``exec``, which for the benchmark's parent is the workload.
    """
    rss, peak = _proc_status_bytes("VmRSS"), _proc_status_bytes("VmHWM")
    if rss is not None and peak is not None:
        return rss, peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    maxrss = maxrss if sys.platform == "darwin" else maxrss * 1024  # Linux reports KiB
    return maxrss, maxrss


def process_probe(event_file: Path) -> dict[str, Any]:
    """Child-process side of the RSS probe: import as the function does, handle one delivery, report RSS."""
    import boto3  # the deployed function builds a DynamoDB client at cold start; hold its memory too
    from aws_lambda_powertools import Tracer

    Tracer(service="rumguard-ingest-bench", disabled=True)
    boto3.client("dynamodb", region_name="us-east-1")
    event = orjson.loads(event_file.read_bytes())
    path = IngestPath.fresh()
    gc.collect()
    before, peak_before = _memory_now()
    with emf_to_devnull():
        summary = path.handle(event)
    _, peak = _memory_now()
    return {
        "rss_before_bytes": before,
        "peak_rss_before_bytes": peak_before,
        "peak_rss_bytes": peak,
        "growth_bytes": max(0, peak - before),
        "accepted": summary["accepted"],
    }


def measure_process_memory(payload: Payload, timeout: float = 120.0) -> dict[str, Any]:
    """Peak RSS of a fresh process that imports the ingest function's dependencies and handles ``payload``."""
    with tempfile.TemporaryDirectory(prefix="rumguard-bench-") as tmp:
        event_file = Path(tmp) / "event.json"
        event_file.write_bytes(orjson.dumps(payload.event))
        env = {**os.environ, "POWERTOOLS_TRACE_DISABLED": "1", "AWS_DEFAULT_REGION": "us-east-1"}
        try:
            done = subprocess.run(  # noqa: S603 - our own interpreter running our own module
                [sys.executable, "-m", "rumguard.bench", "--process-probe", str(event_file)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return {"error": str(error)}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]}
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"unreadable probe output: {done.stdout[-200:]!r}"}
    return result


# --- detection: DynamoDB writes per 1,000 events ------------------------------------------------------------
#: DynamoDB's write requests.
DYNAMODB_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
#: Enforce mode, so the figures include what blocking writes (the bench's own settings are dry-run).
ENFORCE_ENVIRONMENT: Final = {**BENCH_ENVIRONMENT, "RUMGUARD_MODE": "enforce"}
#: What AWS WAF's rate-based rules take to mitigate, the anchor of the time-to-block goal.
WAF_MITIGATION_SECONDS: Final = (30, 50)
#: The time-to-block goal: the block lands within the invocation, well under a second of processing.
TIME_TO_BLOCK_GOAL_MS: Final = 1000.0
#: A subscription delivers a busy log group's events every few seconds; the flood trial cuts its traffic
#: into one delivery per this much receipt time.
DELIVERY_INTERVAL_MS: Final = 5_000
#: Honest guests browsing while the flooder floods, in every time-to-block trial.
BACKGROUND_GUESTS: Final = 30
#: Runs of the in-memory detection path (each is a whole pass over the workload).
DETECTION_REPEAT_MAX: Final = 2


def enforce_settings(environ: dict[str, str] | None = None) -> IngestSettings:
    """Ingest settings in enforce mode (the benchmark's own monitors unless ``environ`` is given)."""
    return IngestSettings.from_environ(environ or ENFORCE_ENVIRONMENT)


class CountingDecisionStore(InMemoryDecisionStore):
    """The in-memory decision store, counting its write requests as the DynamoDB store would send them
    (each of these methods is one ``PutItem``, ``UpdateItem`` or ``TransactWriteItems``)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def create_block(self, block: Block, previous: Block | None, audit: AuditRecord) -> bool:
        """Count, then store."""
        self.writes += 1
        return super().create_block(block, previous, audit)

    def end_block(self, ended: Block, audit: AuditRecord) -> bool:
        """Count, then end."""
        self.writes += 1
        return super().end_block(ended, audit)

    def audit(self, record: AuditRecord) -> None:
        """Count, then append."""
        self.writes += 1
        super().audit(record)

    def mark_policy_applied(self, version: int) -> bool:
        """Count, then mark."""
        self.writes += 1
        return super().mark_policy_applied(version)

    def bump_policy_version(self) -> int:
        """Count, then bump."""
        self.writes += 1
        return super().bump_policy_version()


def denied_identities(document: str) -> frozenset[str]:
    """The identity ids a deny policy document lists under ``cognito-identity.amazonaws.com:sub``."""
    found: set[str] = set()
    for statement in json.loads(document).get("Statement", []):
        for condition in statement.get("Condition", {}).values():
            ids = condition.get(SUB_KEY, [])
            found.update([ids] if isinstance(ids, str) else ids)
    return frozenset(found)


class TimedGuestRole:
    """A ``GuestRole`` around another one that notes when each policy write returned, and whom it denies.

    ``writes`` holds ``(time.perf_counter() after the write, identities the policy denies)``.
    """

    def __init__(self, inner: GuestRole, clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self.clock = clock
        self.writes: list[tuple[float, frozenset[str]]] = []

    def inline_policies(self) -> dict[str, str]:
        """The inner role's policies."""
        return self.inner.inline_policies()

    def put_policy(self, name: str, document: str) -> None:
        """Write through, then note the time."""
        self.inner.put_policy(name, document)
        self.writes.append(
            (self.clock(), denied_identities(document) if name.startswith(POLICY_PREFIX) else frozenset())
        )

    def delete_policy(self, name: str) -> None:
        """Delete through."""
        self.inner.delete_policy(name)

    def denied_at(self, identity: str, since: float) -> float | None:
        """When a policy listing ``identity`` was first written at or after ``since``."""
        return next((at for at, ids in self.writes if at >= since and identity in ids), None)


@dataclass(slots=True)
class MemoryWorld:
    """The decision service on in-memory ports, keeping the ports for the figures."""

    guard: Guard
    counters: InMemoryCounterStore
    decisions: CountingDecisionStore
    identities: InMemoryIdentityDirectory
    role: TimedGuestRole
    bus: RecordingBus

    @classmethod
    def fresh(cls, *, assume_guests: bool) -> MemoryWorld:
        """A new world; ``assume_guests`` takes every well-formed id of the region for a guest of the pool
        (the workload's identities were never registered anywhere)."""
        settings = enforce_settings()
        counters, decisions, bus = InMemoryCounterStore(), CountingDecisionStore(), RecordingBus()
        identities = InMemoryIdentityDirectory(settings.identity_pool_id, assume_guests=assume_guests)
        role = TimedGuestRole(InMemoryGuestRole(settings.guest_role_name))
        guard = Guard(
            settings.guard_config(settings.detection()),
            store=decisions,
            counters=counters,
            identities=identities,
            role=role,
            bus=bus,
            clock=SystemClock(),
        )
        return cls(guard, counters, decisions, identities, role, bus)


@dataclass(slots=True)
class DetectionCounts:
    """What the detection path did and wrote over one run of deliveries."""

    payloads: int = 0
    log_events: int = 0
    identity_batches: int = 0  # identities per guest delivery, summed: the most counter writes allowed
    blocked: int = 0
    forged: int = 0
    counter_writes: int = 0
    idempotency_writes: int = 0
    decision_writes: int = 0

    @property
    def writes(self) -> int:
        """Every DynamoDB write request."""
        return self.counter_writes + self.idempotency_writes + self.decision_writes

    def per_1000(self, n: int) -> float:
        """``n`` per 1,000 log events."""
        return round(1000 * n / self.log_events, 2) if self.log_events else 0.0

    def summary(self) -> dict[str, Any]:
        """The figures for the report."""
        return {
            "payloads": self.payloads,
            "log_events": self.log_events,
            "guest_identity_batches": self.identity_batches,
            "blocked": self.blocked,
            "forged": self.forged,
            "writes": {
                "counters": self.counter_writes,
                "idempotency": self.idempotency_writes,
                "decisions": self.decision_writes,
                "total": self.writes,
            },
            "writes_per_1000_events": self.per_1000(self.writes),
            "counter_writes_per_1000_events": self.per_1000(self.counter_writes),
        }


def _detection_counts(summaries: Sequence[dict[str, Any]], payloads: Sequence[Payload]) -> DetectionCounts:
    counts = DetectionCounts(payloads=len(summaries))
    for summary, payload in zip(summaries, payloads, strict=True):
        counts.log_events += summary["logEvents"]
        counts.blocked += len(summary.get("blocked", []))
        counts.forged += len(summary.get("forged", []))
        if payload.log_group == log_group_of(GUEST):
            counts.identity_batches += summary["identities"]
    return counts


def run_in_memory_detection(
    payloads: Sequence[Payload], *, assume_guests: bool = True
) -> tuple[float, DetectionCounts]:
    """Every delivery through ingest and the decision service on in-memory ports: (seconds, counts).

    ``assume_guests``: every identity is a guest of the pool (as if each shopper had been registered);
    otherwise none is, as on the embedded AWS where the workload's identities were never created.
    """
    world = MemoryWorld.fresh(assume_guests=assume_guests)
    path = IngestPath.fresh(world.guard)
    seconds, summaries = _timed(path.run, [payload.event for payload in payloads])
    counts = _detection_counts(summaries, payloads)
    counts.counter_writes = world.counters.writes
    counts.idempotency_writes = path.store.calls["put"] + path.store.calls["update"] + path.store.calls["delete"]
    counts.decision_writes = world.decisions.writes
    return seconds, counts


def measure_detection_in_memory(workload: Workload, repeat: int) -> tuple[Timing, DetectionCounts]:
    """The whole workload through the detection path on in-memory ports, ``repeat`` times (best counts)."""
    timing = Timing(workload.events)
    counts = DetectionCounts()
    with emf_to_devnull():
        for _ in range(repeat):
            seconds, counts = run_in_memory_detection(workload.payloads)
            timing.seconds.append(seconds)
    return timing, counts


class CallLog:
    """Every AWS API call of the clients attached to it: ``(start, end, service, operation)``, in
    ``time.perf_counter()`` seconds.

    Attached with botocore's own ``before-call`` and ``after-call`` events, so it sees each request as the
    adapters send it (the counter store sends from several threads at once).
    """

    _STARTED: Final = "rumguard_bench_started"

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, str, str]] = []
        self._lock = threading.Lock()

    def attach(self, client: Any) -> Any:
        """Log the calls of ``client``; returns it."""
        client.meta.events.register("before-call", self._before)
        client.meta.events.register("after-call", self._after)
        return client

    def _before(self, context: dict[str, Any] | None = None, **_: Any) -> None:
        if context is not None:
            context[self._STARTED] = time.perf_counter()

    def _after(self, model: Any = None, context: dict[str, Any] | None = None, **_: Any) -> None:
        ended = time.perf_counter()
        if model is not None and context is not None and self._STARTED in context:
            with self._lock:
                self.calls.append((context[self._STARTED], ended, model.service_model.service_name, model.name))

    def count(self, since: float = 0.0, until: float = math.inf) -> Counter[tuple[str, str]]:
        """Calls per ``(service, operation)`` started between two times."""
        with self._lock:
            return Counter((service, op) for start, _, service, op in self.calls if since <= start <= until)

    def waiting(self, since: float, until: float) -> float:
        """Seconds between two times during which at least one call was in flight (overlaps counted once)."""
        with self._lock:
            spans = sorted((max(start, since), min(end, until)) for start, end, _, _ in self.calls)
        total, reach = 0.0, since
        for start, end in spans:
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total


@dataclass(slots=True)
class MotoWorld:
    """The ingest function on the embedded AWS with the real adapters, as ``IngestApp.from_environ`` wires
    it, over clients whose calls are logged, and the guest role timed."""

    aws: EmbeddedAws
    app: IngestApp
    metrics: Metrics
    role: TimedGuestRole
    calls: CallLog
    context: LambdaContext = field(default_factory=BenchContext)

    @classmethod
    def start(cls, aws: EmbeddedAws) -> MotoWorld:
        """Wire the function to ``aws`` (started)."""
        settings = enforce_settings(aws.ingest_environment())
        calls = CallLog()
        session = boto3.session.Session(region_name=aws.region)
        timed: list[TimedGuestRole] = []

        def wrap_role(role: GuestRole) -> GuestRole:
            timed.append(TimedGuestRole(role))
            return timed[0]

        guard = aws_guard(
            settings,
            settings.guard_config(settings.detection()),
            client=lambda name: calls.attach(cast(Any, session.client)(name)),
            wrap_role=wrap_role,
        )
        role = timed[0]
        store = dynamodb_idempotency_store(settings.table_name)
        calls.attach(store.client)
        metrics = Metrics(namespace=NAMESPACE)
        metrics.clear_metrics()
        return cls(aws, IngestApp(settings, store, metrics, _bench_logger(), guard), metrics, role, calls)

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """One invocation, metrics flushed as the handler's decorator does."""
        summary = self.app.handle(cloudwatch_logs_event(event), self.context)
        self.metrics.flush_metrics()
        return summary


def moto_slice(workload: Workload, max_events: int) -> list[Payload]:
    """The first deliveries of each monitor, in the workload's proportions, up to about ``max_events``."""
    chosen: list[Payload] = []
    for monitor in (GUEST, SIGNED_IN):
        share = max_events * workload.by_monitor[monitor.name] / workload.events
        taken = 0
        for payload in workload.payloads:
            if payload.log_group == log_group_of(monitor) and (taken < share or not taken):
                chosen.append(payload)
                taken += payload.events
    return chosen


def measure_detection_moto(workload: Workload, max_events: int) -> dict[str, Any]:
    """A slice of the workload on moto with the real adapters: every DynamoDB write request counted, and
    the same slice on the in-memory ports for comparison."""
    from rumguard.local.aws import EmbeddedAws  # moto, here only: see the TYPE_CHECKING import

    payloads = moto_slice(workload, max_events)
    with EmbeddedAws(guest_monitors=(GUEST.name,), signed_in_monitors=(SIGNED_IN.name,)) as aws, emf_to_devnull():
        world = MotoWorld.start(aws)
        started = time.perf_counter()
        summaries = [world.handle(payload.event) for payload in payloads]
        seconds = time.perf_counter() - started
        by_operation = {
            op: n
            for (service, op), n in sorted(world.calls.count().items())
            if service == "dynamodb" and op in DYNAMODB_WRITES
        }
    counts = _detection_counts(summaries, payloads)
    total = sum(by_operation.values())
    with emf_to_devnull():
        _, in_memory = run_in_memory_detection(payloads, assume_guests=False)
    return {
        "payloads": len(payloads),
        "log_events": counts.log_events,
        "guest_identity_batches": counts.identity_batches,
        "blocked": counts.blocked,
        "seconds": round(seconds, 2),
        "dynamodb_writes": {**by_operation, "total": total},
        "writes_per_1000_events": counts.per_1000(total),
        "in_memory_writes_same_deliveries": in_memory.writes,
        "matches_in_memory": total == in_memory.writes,
    }


# --- detection: time to block -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BlockTiming:
    """The delivery that crossed the flood threshold, and when the deny policy listing the flooder landed."""

    time_to_block_ms: float
    invocation_ms: float
    batch: int
    batches: int
    batch_events: int
    batch_identities: int
    calls_to_policy: dict[str, int]
    #: Of ``time_to_block_ms``, the time with an AWS call in flight (moto, in this process).
    in_aws_calls_ms: float

    def summary(self) -> dict[str, Any]:
        """The figures for the report."""
        return {
            "time_to_block_ms": round(self.time_to_block_ms, 2),
            "in_aws_calls_ms": round(self.in_aws_calls_ms, 2),
            "in_rumguard_code_ms": round(self.time_to_block_ms - self.in_aws_calls_ms, 2),
            "invocation_ms": round(self.invocation_ms, 2),
            "batch": self.batch,
            "batches": self.batches,
            "batch_events": self.batch_events,
            "batch_identities": self.batch_identities,
            "calls_to_policy": self.calls_to_policy,
        }


def flood_deliveries(traffic: BotTraffic, flooder: str, at_ms: int, id_base: int) -> list[dict[str, Any]]:
    """A flooder among honest guests, as the guest monitor's deliveries.

    From the delivery that crosses the flood threshold on, one delivery per ``DELIVERY_INTERVAL_MS`` of
    receipt time, as a busy log group's subscription delivers. The traffic before it only has to build
    up the counters, so it goes in as few deliveries as CloudWatch Logs' size limit allows (on moto each
    counter write costs tens of milliseconds; the counts, and so the crossing, come out the same).
    """
    bot = traffic.event_flood(flooder, at_ms)
    records = list(bot.records)
    rng = traffic.rng
    span = bot.last_ms - bot.first_ms
    for _ in range(BACKGROUND_GUESTS):
        start = bot.first_ms + rng.randint(0, max(1, span))
        records += traffic.guest_browse(identity_id(rng), pages=rng.randint(2, 6), at_ms=start)
    records.sort(key=lambda record: record.timestamp_ms)
    windows = [list(w) for _, w in itertools.groupby(records, key=lambda r: r.timestamp_ms // DELIVERY_INTERVAL_MS)]
    limit, seen, crossing = Detection().thresholds[Rule.EVENT_FLOOD].limit, 0, len(windows)
    for number, window in enumerate(windows):
        seen += sum(1 for record in window if record.identity == flooder)
        if seen > limit:
            crossing = number
            break
    sequence = itertools.count(id_base)
    log_group = log_group_of(GUEST)

    def deliveries(part: Sequence[LogRecord]) -> list[dict[str, Any]]:
        log_events = [LogEvent(str(next(sequence)), r.timestamp_ms, r.message) for r in part]
        return [encode(batch_document(log_group, batch)) for batch in batches(log_events)]

    events = deliveries([record for window in windows[:crossing] for record in window])
    for window in windows[crossing:]:
        events += deliveries(window)
    return events


def time_one_block(
    handle: Callable[[dict[str, Any]], dict[str, Any]],
    role: TimedGuestRole,
    deliveries: Sequence[dict[str, Any]],
    flooder: str,
    calls: CallLog | None = None,
) -> BlockTiming:
    """Hand the deliveries over one by one until one blocks ``flooder``; time that invocation."""
    for number, event in enumerate(deliveries, start=1):
        started = time.perf_counter()
        summary = handle(event)
        ended = time.perf_counter()
        if flooder not in summary.get("blocked", []):
            continue
        written = role.denied_at(flooder, started)
        if written is None:
            raise RuntimeError(f"the invocation blocked {flooder} but wrote no deny policy listing it")
        made = calls.count(started, written) if calls else Counter()
        by_service: Counter[str] = Counter()
        for (service, _op), n in made.items():
            by_service[service] += n
        return BlockTiming(
            time_to_block_ms=1000 * (written - started),
            invocation_ms=1000 * (ended - started),
            batch=number,
            batches=len(deliveries),
            batch_events=summary["logEvents"],
            batch_identities=summary["identities"],
            calls_to_policy=dict(sorted(by_service.items())),
            in_aws_calls_ms=1000 * calls.waiting(started, written) if calls else 0.0,
        )
    raise RuntimeError(f"no delivery blocked the flooder {flooder} ({len(deliveries)} deliveries)")


def _timings_summary(timings: Sequence[BlockTiming]) -> dict[str, Any]:
    values = [t.time_to_block_ms for t in timings]
    return {
        "trials": len(timings),
        "median_ms": round(statistics.median(values), 2),
        "min_ms": round(min(values), 2),
        "max_ms": round(max(values), 2),
        "invocation_median_ms": round(statistics.median(t.invocation_ms for t in timings), 2),
        "in_aws_calls_median_ms": round(statistics.median(t.in_aws_calls_ms for t in timings), 2),
        "in_rumguard_code_median_ms": round(
            statistics.median(t.time_to_block_ms - t.in_aws_calls_ms for t in timings), 2
        ),
        "runs": [t.summary() for t in timings],
    }


def measure_time_to_block(trials: int, seed: int) -> dict[str, Any]:
    """``trials`` flooders on moto (real adapters) and on the in-memory ports; each a new guest of the pool."""
    from rumguard.local.aws import EmbeddedAws  # moto, here only: see the TYPE_CHECKING import

    traffic = BotTraffic(GUEST, SIGNED_IN, seed=seed)
    at_ms = (int(time.time()) // 60 - 20) * 60_000
    moto: list[BlockTiming] = []
    memory: list[BlockTiming] = []
    with EmbeddedAws(guest_monitors=(GUEST.name,), signed_in_monitors=(SIGNED_IN.name,)) as aws, emf_to_devnull():
        world = MotoWorld.start(aws)
        for trial in range(trials):
            flooder = aws.new_guest()
            deliveries = flood_deliveries(traffic, flooder, at_ms, LOG_EVENT_ID_BASE + trial * 10**9)
            moto.append(time_one_block(world.handle, world.role, deliveries, flooder, world.calls))
    with emf_to_devnull():
        for trial in range(trials):
            local = MemoryWorld.fresh(assume_guests=False)
            flooder = local.identities.new_guest()
            path = IngestPath.fresh(local.guard)
            deliveries = flood_deliveries(traffic, flooder, at_ms, LOG_EVENT_ID_BASE + trial * 10**9)
            memory.append(time_one_block(path.handle, local.role, deliveries, flooder))
    return {
        "flood": {
            "bot_events_at_least": beyond(Detection().thresholds[Rule.EVENT_FLOOD]),
            "limit": Detection().thresholds[Rule.EVENT_FLOOD].limit,
            "window_minutes": Detection().thresholds[Rule.EVENT_FLOOD].window_minutes,
            "background_guests": BACKGROUND_GUESTS,
            "delivery_interval_seconds": DELIVERY_INTERVAL_MS / 1000,
        },
        "moto": _timings_summary(moto),
        "in_memory": _timings_summary(memory),
    }


def measure_detection(
    workload: Workload,
    *,
    repeat: int,
    moto_events: int,
    trials: int,
    seed: int,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Every detection figure of the report; ``progress`` hears what each part took."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    timing, counts = measure_detection_in_memory(workload, repeat)
    seconds["in_memory"] = round(time.perf_counter() - started, 1)
    progress(f"in-memory ports, {repeat} runs over {workload.events:,} events: {seconds['in_memory']} s")
    started = time.perf_counter()
    moto = measure_detection_moto(workload, moto_events)
    seconds["moto_writes"] = round(time.perf_counter() - started, 1)
    progress(f"DynamoDB writes on moto, {moto['log_events']:,} events: {seconds['moto_writes']} s")
    started = time.perf_counter()
    blocking = measure_time_to_block(trials, seed)
    seconds["time_to_block"] = round(time.perf_counter() - started, 1)
    progress(f"time to block, {trials} flooders on moto and in memory: {seconds['time_to_block']} s")
    time_to_block = blocking["moto"]["median_ms"]
    thresholds = Detection().thresholds
    return {
        "rules": {rule.value: {"limit": t.limit, "window_minutes": t.window_minutes} for rule, t in thresholds.items()},
        "in_memory": {**timing.summary(), **counts.summary()},
        "moto": moto,
        "writes_per_1000_events": counts.per_1000(counts.writes),
        "time_to_block": blocking,
        "time_to_block_ms": time_to_block,
        "waf_mitigation_seconds": list(WAF_MITIGATION_SECONDS),
        "measured_seconds": seconds,
        "goals": {
            "one_counter_write_per_identity_per_batch": {
                "counter_writes": counts.counter_writes,
                "guest_identity_batches": counts.identity_batches,
                "met": counts.counter_writes == counts.identity_batches,
            },
            "time_to_block": {
                "target_ms": TIME_TO_BLOCK_GOAL_MS,
                "value_ms": time_to_block,
                "max_ms": blocking["moto"]["max_ms"],
                # Every block landed within its crossing invocation (``time_one_block`` checks it).
                "met": time_to_block < TIME_TO_BLOCK_GOAL_MS,
            },
        },
    }


# --- profiling --------------------------------------------------------------------------------------------
def profile_ingest(workload: Workload, top: int) -> str:
    """cProfile of one ingest run: the ``top`` functions by own time, as text."""
    events = workload.lambda_events()
    path = IngestPath.fresh()
    profiler = cProfile.Profile()
    with emf_to_devnull():
        profiler.runcall(path.run, events)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --- the report ---------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """Where the figures were taken."""
    versions: dict[str, str | None] = {}
    for dist in ("orjson", "msgspec", "aws-lambda-powertools"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "packages": versions,
        # Other work on the machine skews timings: the 1, 5 and 15 minute load averages when the run ended.
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


def build_report(
    workload: Workload,
    ceiling: Timing,
    ingest: Timing,
    counts: IngestCounts,
    memory: dict[str, Any],
    repeat: int,
    detection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every figure of a run, as written to the JSON file (``detection`` when it was measured)."""
    ratio = ingest.rate / ceiling.rate
    process = memory.get("process") or {}
    memory_figures = [memory["ingest_peak_bytes"]]
    if "peak_rss_bytes" in process:
        memory_figures.append(process["peak_rss_bytes"])
    report: dict[str, Any] = {
        "benchmark": "rumguard ingest",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "repeat": repeat,
        "machine": machine_info(),
        "workload": workload.summary(),
        "decode_ceiling": ceiling.summary(),
        "ingest": {
            **ingest.summary(),
            "payloads": counts.payloads,
            "log_events": counts.log_events,
            "accepted": counts.accepted,
            "rejected": counts.rejected,
        },
        "ratio": round(ratio, 4),
        "memory": memory,
        "goals": {
            "ratio": {"target": RATIO_GOAL, "value": round(ratio, 4), "met": ratio >= RATIO_GOAL},
            "memory": {
                "target_bytes": MEMORY_GOAL_BYTES,
                "tracemalloc_peak_bytes": memory["ingest_peak_bytes"],
                "process_peak_rss_bytes": process.get("peak_rss_bytes"),
                "met": max(memory_figures) < MEMORY_GOAL_BYTES,
            },
        },
    }
    if detection is not None:
        report["detection"] = detection
    return report


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / MIB:,.1f} MiB"


def print_report(console: Any, report: dict[str, Any]) -> None:
    """The figures as rich tables."""
    from rich.table import Table

    work, ceiling, ingest, memory = report["workload"], report["decode_ceiling"], report["ingest"], report["memory"]
    machine = report["machine"]
    console.print(
        f"[bold]workload[/]: {work['events']:,} events in {work['payloads']:,} deliveries "
        f"({work['events_per_payload']:,} events, max {_mib(work['batch_bytes']['max'])} decoded each), "
        f"{work['identities']:,} identities, {len(work['by_kind'])} event kinds; "
        f"Python {machine['python']} on {machine['cpu_count']} CPUs ({machine['platform']})"
    )
    table = Table(title=f"throughput (best of {report['repeat']})")
    for column in ("path", "events/s", "us/event", "median events/s", "spread"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, figures in (("decode ceiling", ceiling), ("ingest (IngestApp.handle)", ingest)):
        table.add_row(
            name,
            f"{figures['events_per_second']:,}",
            f"{figures['microseconds_per_event']:.2f}",
            f"{figures['median_events_per_second']:,}",
            f"{figures['spread_percent']:.1f} %",
        )
    console.print(table)

    mem = Table(title=f"memory per delivery ({memory['batch_events']:,} events, {_mib(memory['batch_bytes'])} decoded)")
    mem.add_column("measure")
    mem.add_column("bytes", justify="right")
    mem.add_row("tracemalloc peak while handling (decoded payload included)", _mib(memory["ingest_peak_bytes"]))
    mem.add_row("tracemalloc peak of the decode ceiling alone", _mib(memory["decode_only_peak_bytes"]))
    process = memory.get("process") or {}
    if "peak_rss_bytes" in process:
        mem.add_row("fresh process: RSS after imports and cold start", _mib(process["rss_before_bytes"]))
        mem.add_row("fresh process: peak RSS after handling it", _mib(process["peak_rss_bytes"]))
        mem.add_row("fresh process: RSS growth while handling it", _mib(process["growth_bytes"]))
    elif "error" in process:
        mem.add_row("fresh process probe", f"unavailable: {process['error']}")
    console.print(mem)

    rejected = sum(ingest["rejected"].values())
    console.print(
        f"ingest counted {ingest['accepted']:,} of {work['events']:,} generated events, {rejected:,} rejected"
    )
    goals = report["goals"]
    ratio_goal, memory_goal = goals["ratio"], goals["memory"]
    console.print(
        _verdict(ratio_goal["met"])
        + f" ingest/ceiling ratio {ratio_goal['value']:.3f} (goal >= {ratio_goal['target']})"
    )
    console.print(
        _verdict(memory_goal["met"])
        + f" memory per 1 MB batch: tracemalloc peak {_mib(memory_goal['tracemalloc_peak_bytes'])}, "
        f"process peak RSS {_mib(memory_goal['process_peak_rss_bytes'])} (goal < {_mib(MEMORY_GOAL_BYTES)})"
    )


def print_detection(console: Any, detection: dict[str, Any]) -> None:
    """The detection figures as a rich table, and their goals."""
    from rich.table import Table

    memory, moto, blocking = detection["in_memory"], detection["moto"], detection["time_to_block"]
    table = Table(title="detection path (counters, rules, decisions, enforcement)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(
        f"ingest + detection, in-memory ports (best of {len(memory['runs_seconds'])})",
        f"{memory['events_per_second']:,} events/s, {memory['microseconds_per_event']:.2f} us/event",
    )
    writes = memory["writes"]
    table.add_row(
        f"DynamoDB writes / 1,000 events, in-memory ports ({memory['log_events']:,} events)",
        f"{memory['writes_per_1000_events']:.2f} (counters {writes['counters']:,}, idempotency "
        f"{writes['idempotency']:,}, decisions {writes['decisions']:,})",
    )
    operations = ", ".join(f"{op} {n:,}" for op, n in moto["dynamodb_writes"].items() if op != "total")
    table.add_row(
        f"DynamoDB writes / 1,000 events, moto, real adapters ({moto['log_events']:,} events)",
        f"{moto['writes_per_1000_events']:.2f} ({operations}; "
        f"{'equal to' if moto['matches_in_memory'] else 'NOT equal to'} the in-memory count)",
    )
    memory_block, moto_block = blocking["in_memory"], blocking["moto"]
    calls = moto_block["runs"][0]["calls_to_policy"] if moto_block["runs"] else {}
    table.add_row(
        f"time to block, moto, real adapters (median / max of {moto_block['trials']})",
        f"{moto_block['median_ms']:,.1f} / {moto_block['max_ms']:,.1f} ms "
        f"(whole invocation {moto_block['invocation_median_ms']:,.1f} ms)",
    )
    table.add_row(
        "  of which AWS calls in flight (moto) / the rest (our code, botocore)",
        f"{moto_block['in_aws_calls_median_ms']:,.1f} / {moto_block['in_rumguard_code_median_ms']:,.1f} ms",
    )
    table.add_row(
        "  AWS calls until the policy was written",
        ", ".join(f"{service} {n}" for service, n in calls.items()) or "-",
    )
    table.add_row(
        f"time to block, in-memory ports (median / max of {memory_block['trials']})",
        f"{memory_block['median_ms']:,.2f} / {memory_block['max_ms']:,.2f} ms",
    )
    waf_low, waf_high = detection["waf_mitigation_seconds"]
    table.add_row("AWS WAF rate-based rule, time to mitigate", f"{waf_low} to {waf_high} s")
    if memory["blocked"]:
        table.add_row(
            "identities of the simulated mix blocked (a small --identities pool reuses identities)",
            f"{memory['blocked']:,}",
        )
    console.print(table)
    goals = detection["goals"]
    one_write, block_goal = goals["one_counter_write_per_identity_per_batch"], goals["time_to_block"]
    console.print(
        _verdict(one_write["met"])
        + f" counter writes {one_write['counter_writes']:,} for {one_write['guest_identity_batches']:,} "
        "(identity, guest delivery) pairs: at most one write per identity per batch"
    )
    console.print(
        _verdict(block_goal["met"])
        + f" time to block {block_goal['value_ms']:,.1f} ms median ({block_goal['max_ms']:,.1f} ms at most), within "
        f"the crossing batch's invocation (goal < {block_goal['target_ms']:,.0f} ms; WAF: {waf_low} to {waf_high} s)"
    )


def _verdict(met: bool) -> str:
    return "[bold green]GOAL MET[/]   " if met else "[bold red]GOAL MISSED[/]"


# --- the command --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rumguard bench``."""
    parser.add_argument("--events", type=_positive, default=300_000, help="RUM events to generate (default 300000)")
    parser.add_argument("--identities", type=_positive, default=1000, help="identities in the pool (default 1000)")
    parser.add_argument("--repeat", type=_positive, default=5, help="runs of each measurement; the best counts")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"where to write the figures (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument(
        "--no-process-probe", action="store_true", help="skip the peak RSS measurement in a fresh process"
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also print the top N functions of a cProfile run"
    )
    parser.add_argument(
        "--no-detection",
        action="store_true",
        help="skip the detection figures (writes per 1,000 events, time to block)",
    )
    parser.add_argument(
        "--moto-events", type=_positive, default=4000, help="events of the writes count on moto (default 4000)"
    )
    parser.add_argument("--trials", type=_positive, default=3, help="flooders timed to their block (default 3)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace, console: Any = None) -> int:
    """Generate, measure, print and write the figures. Exit 0 whatever the figures; 1 if counts are wrong."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(file=sys.stdout)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, advance: int, total: int | None) -> None:
            if stage not in tasks:
                label = "generating RUM events" if stage == "generate" else "encoding deliveries"
                tasks[stage] = progress.add_task(label, total=total)
            progress.update(tasks[stage], advance=advance, total=total)

        workload = generate_workload(args.events, args.identities, seed=args.seed, progress=on_progress)

    console.print(f"timing the decode ceiling and the ingest path, {args.repeat} runs each...")
    ceiling, ingest, counts = measure_throughput(workload, args.repeat)
    console.print("measuring memory on the largest delivery...")
    memory = measure_batch_memory(workload)
    if not args.no_process_probe:
        memory["process"] = measure_process_memory(workload.largest())

    detection = None
    if not args.no_detection:
        console.print(
            f"measuring the detection path: in-memory ports ({min(args.repeat, DETECTION_REPEAT_MAX)} runs), "
            f"DynamoDB writes on moto (~{args.moto_events:,} events), time to block ({args.trials} flooders)..."
        )
        detection = measure_detection(
            workload,
            repeat=min(args.repeat, DETECTION_REPEAT_MAX),
            moto_events=args.moto_events,
            trials=args.trials,
            seed=args.seed,
            progress=lambda message: console.print(f"  {message}"),
        )

    report = build_report(workload, ceiling, ingest, counts, memory, args.repeat, detection)
    print_report(console, report)
    if detection is not None:
        print_detection(console, detection)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    console.print(f"figures written to {args.output}")

    if args.profile:
        console.print(f"[bold]cProfile of one ingest run[/] (top {args.profile} by own time)")
        console.print(profile_ingest(workload, args.profile), markup=False, highlight=False, soft_wrap=True)

    if counts.accepted != workload.events or counts.rejected or counts.log_events != workload.events:
        console.print(
            f"[bold red]INVALID RUN[/]: the ingest path accepted {counts.accepted:,} and rejected "
            f"{counts.rejected} of {workload.events:,} generated events"
        )
        return 1
    if detection is not None:
        found = detection["in_memory"]
        if found["log_events"] != workload.events or not detection["moto"]["matches_in_memory"]:
            console.print(
                f"[bold red]INVALID RUN[/]: the detection path saw {found['log_events']:,} of {workload.events:,} "
                "events, or moto got another number of DynamoDB writes than the in-memory ports counted"
            )
            return 1
    return 0


def _main(argv: Sequence[str], out: TextIO) -> int:
    """``python -m rumguard.bench --process-probe FILE``: the child side of the RSS probe."""
    if len(argv) != 2 or argv[0] != "--process-probe":
        print("usage: python -m rumguard.bench --process-probe EVENT_FILE (use `rumguard bench`)", file=sys.stderr)
        return 2
    result = process_probe(Path(argv[1]))
    out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:], sys.stdout))
