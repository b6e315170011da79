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
function has to stay under. Results go to ``.bench/ingest.json``.
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
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Final, TextIO, cast

import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from rumguard.local.memory import InMemoryPersistenceLayer
from rumguard.local.subscription import LogEvent, batch_document, batches, encode
from rumguard.local.traffic import TrafficSimulator, mixed_traffic
from rumguard.monitors import Audience, Monitor
from rumguard.runtime import IngestApp, cloudwatch_logs_event
from rumguard.settings import IngestSettings
from rumguard.telemetry import NAMESPACE

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


@dataclass(slots=True)
class IngestPath:
    """One ingest function instance: a fresh in-memory idempotency store, real Powertools Metrics."""

    app: IngestApp
    store: InMemoryPersistenceLayer
    metrics: Metrics
    context: LambdaContext = field(default_factory=BenchContext)

    @classmethod
    def fresh(cls) -> IngestPath:
        """A new function instance; each timed run needs one, or every batch would be a redelivery."""
        store = InMemoryPersistenceLayer()
        metrics = Metrics(namespace=NAMESPACE)
        metrics.clear_metrics()  # Powertools shares metric state between instances: start empty
        logger = Logger(service="rumguard-ingest-bench", stream=cast(IO[str], _LOG_SINK))
        return cls(IngestApp(bench_settings(), store, metrics, logger), store, metrics)

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
) -> dict[str, Any]:
    """Every figure of a run, as written to the JSON file."""
    ratio = ingest.rate / ceiling.rate
    process = memory.get("process") or {}
    memory_figures = [memory["ingest_peak_bytes"]]
    if "peak_rss_bytes" in process:
        memory_figures.append(process["peak_rss_bytes"])
    return {
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

    report = build_report(workload, ceiling, ingest, counts, memory, args.repeat)
    print_report(console, report)
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
