"""``rumguard demo``: RUM Guard's ingest path end to end on the embedded AWS, with simulated shop traffic.

The demo starts moto, creates the two app monitors' RUM log groups of the Retail Demo Store walkthrough
(``RetailDemoStore_Unauthenticated`` for guests and ``RetailDemoStore_Authenticated`` for signed-in users),
writes simulated RUM events into them with ``PutLogEvents``, reads them back as CloudWatch Logs
subscription deliveries and hands each one to the real ingest handler, as Lambda would. It reads the
metrics the handler printed (embedded metric format) and shows them per monitor, redelivers one batch to
show it is not counted twice, and then checks every count against what the simulation generated: any
difference, handler error, warning or malformed metric makes it exit non-zero.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rumguard.events import EventKind
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, AppMonitor, EmbeddedAws
from rumguard.local.context import Invocation, LocalFunction
from rumguard.local.emf import EmfError, EmfOutput
from rumguard.local.subscription import control_message_event
from rumguard.local.traffic import LogRecord, Tally, TrafficSimulator, identity_id
from rumguard.telemetry import NAMESPACE, TIMINGS

HANDLER_MODULE: Final = "handlers.ingest"
#: Deliveries of this size are what a steadily written log group produces (a full 1 MB batch is rare).
DEFAULT_BATCH_KB: Final = 64
#: How far back the simulated traffic starts: CloudWatch Logs takes events up to 14 days old, and EMF
#: timestamps are what the handler prints, so the demo simply replays the last hour and a half.
HISTORY_MS: Final = 90 * 60 * 1000
#: Count metrics, and what each one must equal in the simulation's tally.
COUNT_CHECKS: Final = (
    ("PageViews", EventKind.PAGE_VIEW),
    ("SessionStarts", EventKind.SESSION_START),
    ("JsErrors", EventKind.JS_ERROR),
)
#: The warning Powertools gives when an invocation adds no metric: expected when a batch is redelivered.
NO_METRICS_WARNING: Final = "No application metrics to publish"


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _kilobytes(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1024 (CloudWatch Logs' 1 MB), not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options."""
    parser.add_argument("--seed", type=int, default=7, help="random seed of the simulation (default: 7)")
    parser.add_argument("--journeys", type=_count, default=20, help="signed-in shopping journeys (default: 20)")
    parser.add_argument("--guests", type=_count, default=80, help="browsing guest sessions (default: 80)")
    parser.add_argument(
        "--batch-kb",
        type=_kilobytes,
        default=DEFAULT_BATCH_KB,
        help=f"largest subscription delivery in KB, up to 1024 (default: {DEFAULT_BATCH_KB})",
    )


@dataclass(slots=True)
class _Run:
    """What the demo observed, for the report and the checks."""

    output: EmfOutput = field(default_factory=EmfOutput)
    failures: list[str] = field(default_factory=list)
    deliveries: int = 0
    delivered_events: int = 0


def simulate(sim: TrafficSimulator, journeys: int, guests: int, start_ms: int) -> list[LogRecord]:
    """Signed-in journeys and browsing guests, spread over an hour from ``start_ms``."""
    rng = sim.rng
    records: list[LogRecord] = []
    hour = 60 * 60 * 1000
    for n in range(journeys):
        at = start_ms + n * hour // max(1, journeys)
        records += sim.signed_in_journey(identity_id(rng), identity_id(rng), at_ms=at)
    for n in range(guests):
        at = start_ms + n * hour // max(1, guests) + rng.randint(0, 20_000)
        records += sim.guest_browse(identity_id(rng), pages=rng.randint(2, 6), at_ms=at)
    return records


def _percentiles(values: Sequence[float], scale: str) -> str:
    """``p50 / p90`` by nearest rank, formatted for the table."""
    if not values:
        return "-"
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    if scale == "ms":
        return f"{rank(0.5):,.0f} / {rank(0.9):,.0f} ms"
    return f"{rank(0.5):.3f} / {rank(0.9):.3f}"


def _invoke(function: LocalFunction, event: dict[str, Any], what: str, run: _Run) -> Invocation | None:
    """One invocation; any error, warning log line or malformed EMF is recorded as a failure."""
    try:
        invocation = function.invoke(event)
    except EmfError as error:
        run.failures.append(f"{what}: the handler printed malformed EMF: {error}")
        return None
    if invocation.error is not None:
        failure = invocation.error
        run.failures.append(f"{what}: the handler raised {type(failure).__name__}: {failure}")
    for record in invocation.output.logs:
        if record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            run.failures.append(f"{what}: the handler logged {record.get('level')}: {record}")
    for line in invocation.output.text:
        run.failures.append(f"{what}: the handler printed an unexpected line: {line[:200]}")
    run.output.extend(invocation.output)
    return invocation


def check_counts(app_monitors: Iterable[AppMonitor], tally: Tally, output: EmfOutput) -> list[str]:
    """Every count the handler published against what the simulation generated; the differences."""
    configured = {app_monitor.name: app_monitor for app_monitor in app_monitors}
    problems: list[str] = []

    def expect(what: str, got: float, want: float) -> None:
        if got != want:
            problems.append(f"{what}: the metrics say {got:g}, the simulation generated {want:g}")

    for name, app_monitor in configured.items():
        dims = {"AppMonitor": name, "Audience": app_monitor.monitor.audience.value}
        expect(f"{name} Events", output.total("Events", **dims), tally.events(name))
        for metric, kind in COUNT_CHECKS:
            expect(f"{name} {metric}", output.total(metric, **dims), tally.count(name, kind))
        expect(f"{name} HttpErrors", output.total("HttpErrors", **dims), tally.http_errors[name])
        expect(f"{name} RejectedEvents", output.total("RejectedEvents", **dims), 0)
        for kind, (metric, _unit) in TIMINGS.items():
            expect(f"{name} {metric} values", len(output.values(metric, **dims)), tally.count(name, kind))
    strays = {
        dict(dimensions).get("AppMonitor", "?")
        for dimensions in output.series("Events")
        if dict(dimensions).get("AppMonitor") not in configured
    }
    if strays:
        problems.append(f"metrics for monitors the simulation never wrote to: {sorted(strays)}")
    if output.series("RejectedEvents") and any(
        value for values in output.series("RejectedEvents").values() for value in values
    ):
        problems.append(f"rejected events: {output.series('RejectedEvents')}")
    wrong_namespace = {datum.namespace for datum in output.data()} - {NAMESPACE}
    if wrong_namespace:
        problems.append(f"metrics outside the {NAMESPACE} namespace: {sorted(wrong_namespace)}")
    return problems


def _metrics_table(aws: EmbeddedAws, output: EmfOutput) -> Table:
    monitors = list(aws.app_monitors.values())
    table = Table(title=f"Metrics from the ingest handler's EMF output (namespace {NAMESPACE})", title_justify="left")
    table.add_column("metric", style="bold", no_wrap=True, min_width=19)
    for app_monitor in monitors:
        table.add_column(app_monitor.name, justify="right", no_wrap=True)

    def dims(app_monitor: AppMonitor) -> dict[str, str]:
        return {"AppMonitor": app_monitor.name, "Audience": app_monitor.monitor.audience.value}

    table.add_row("audience", *(m.monitor.audience.value for m in monitors))
    for label, metric in (
        ("events", "Events"),
        ("page views", "PageViews"),
        ("session starts", "SessionStarts"),
        ("JS errors", "JsErrors"),
        ("HTTP errors", "HttpErrors"),
        ("rejected", "RejectedEvents"),
    ):
        table.add_row(label, *(f"{output.total(metric, **dims(m)):,.0f}" for m in monitors))
    for label, metric, scale in (
        ("page load p50 / p90", "PageLoadTime", "ms"),
        ("LCP p50 / p90", "LargestContentfulPaint", "ms"),
        ("CLS p50 / p90", "CumulativeLayoutShift", "score"),
        ("INP p50 / p90", "InteractionToNextPaint", "ms"),
    ):
        table.add_row(label, *(_percentiles(output.values(metric, **dims(m)), scale) for m in monitors))
    return table


def _kinds_table(aws: EmbeddedAws, tally: Tally, output: EmfOutput) -> Table:
    monitors = list(aws.app_monitors.values())
    checked: dict[EventKind, str] = {kind: metric for metric, kind in COUNT_CHECKS}
    checked.update({kind: f"{metric} (n)" for kind, (metric, _unit) in TIMINGS.items()})
    table = Table(
        title="Events generated, by kind",
        title_justify="left",
        caption="(n): the number of values in the timing's arrays",
        caption_justify="left",
    )
    table.add_column("event kind", style="bold", no_wrap=True)
    for app_monitor in monitors:
        table.add_column(app_monitor.monitor.audience.value, justify="right", no_wrap=True)
    table.add_column("checked against", no_wrap=True)
    for kind in EventKind:
        counts = [tally.count(m.name, kind) for m in monitors]
        if not any(counts):
            continue
        table.add_row(kind.value, *(f"{n:,}" for n in counts), checked.get(kind, "Events"))
    table.add_row("all", *(f"{tally.events(m.name):,}" for m in monitors), "Events", style="italic")
    return table


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when every metric equals what was simulated."""
    started = time.perf_counter()
    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        console = Console(file=sys.stdout, highlight=False, width=max(console.width, 120))
    max_bytes = int(args.batch_kb) * 1024

    with EmbeddedAws(guest_monitors=(GUEST_MONITOR,), signed_in_monitors=(SIGNED_IN_MONITOR,)) as aws:
        console.print(
            f"[bold]RUM Guard demo[/] on the embedded AWS (moto, region {aws.region}, account {aws.account_id})"
        )
        console.print(f"  table [cyan]{aws.table_name}[/] created from template.yaml's RumGuardTable")
        for app_monitor in aws.app_monitors.values():
            console.print(
                f"  app monitor [cyan]{app_monitor.name}[/] ({app_monitor.monitor.audience.value}), "
                f"log group {app_monitor.log_group}",
                soft_wrap=True,
            )

        guest, signed_in = aws.monitor(GUEST_MONITOR).monitor, aws.monitor(SIGNED_IN_MONITOR).monitor
        start_ms = int(time.time() * 1000) - HISTORY_MS
        sim = TrafficSimulator(guest, signed_in, seed=args.seed, start_ms=start_ms)
        records = simulate(sim, args.journeys, args.guests, start_ms)
        written = aws.put_records(records)
        streams = sum(len(aws.log_streams(m.log_group)) for m in aws.app_monitors.values())
        console.print(
            f"Simulated {args.journeys} signed-in journeys and {args.guests} browsing guests: "
            f"{written:,} RUM events written with PutLogEvents into {streams} hourly log streams",
            soft_wrap=True,
        )

        environ = {**aws.ingest_environment(), "POWERTOOLS_LOG_LEVEL": "WARNING"}
        function = LocalFunction(HANDLER_MODULE, environ, function_name="rumguard-ingest", log_level="WARNING")
        run_state = _Run()
        # CloudWatch Logs checks a new subscription with a control message, which the handler must skip.
        for app_monitor in aws.app_monitors.values():
            control = _invoke(function, control_message_event(app_monitor.log_group), "control message", run_state)
            if control is not None and control.value != {"skipped": "CONTROL_MESSAGE"}:
                run_state.failures.append(f"the control message was not skipped: {control.value!r}")

        deliveries = list(aws.all_deliveries(max_bytes=max_bytes))
        first: tuple[dict[str, Any], Any] | None = None
        delivery_started = time.perf_counter()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("Delivering subscription batches to handlers.ingest", total=len(deliveries))
            for number, (app_monitor, event) in enumerate(deliveries, start=1):
                invocation = _invoke(function, event, f"batch {number} of {app_monitor.name}", run_state)
                if invocation is not None and invocation.error is None:
                    run_state.delivered_events += int(invocation.value.get("logEvents", 0))
                    unexpected = [w for w in invocation.warnings if not w.startswith(NO_METRICS_WARNING)]
                    run_state.failures += [f"batch {number}: warning: {w}" for w in unexpected]
                    if first is None:
                        first = (event, invocation.value)
                run_state.deliveries += 1
                progress.advance(task)
        elapsed = time.perf_counter() - delivery_started
        rate = run_state.delivered_events / elapsed if elapsed else 0.0
        console.print(
            f"Delivered {run_state.deliveries} batches ({run_state.delivered_events:,} log events) "
            f"in {elapsed:.1f} s, {rate:,.0f} events/s through the handler"
        )

        # CloudWatch Logs retries a delivery it thinks failed: the same batch must not count twice.
        if first is None:
            run_state.failures.append("no batch was delivered successfully, so redelivery could not be shown")
        else:
            event, value = first
            again = _invoke(function, event, "redelivered batch", run_state)
            if again is not None and again.error is None:
                flushed = again.output.flushes("Events")
                if flushed or again.value != value:
                    run_state.failures.append(
                        f"the redelivered batch was counted again ({flushed} Events flushes, result {again.value!r})"
                    )
                else:
                    console.print(
                        f"Redelivered batch 1 ({value['logEvents']} events of {value['appMonitor']}): "
                        "no metrics emitted, same result returned: [green]not counted twice[/] (idempotency)",
                        soft_wrap=True,
                    )

        console.print()
        console.print(_metrics_table(aws, run_state.output))
        console.print(_kinds_table(aws, sim.tally, run_state.output))
        problems = run_state.failures + check_counts(aws.app_monitors.values(), sim.tally, run_state.output)

    total = time.perf_counter() - started
    if problems:
        console.print(f"[bold red]FAILED[/]: {len(problems)} problem(s) after {total:.1f} s")
        for problem in problems:
            console.print(f"  [red]-[/] {problem}", soft_wrap=True)
        return 1
    console.print(
        f"[bold green]OK[/]: every metric of both monitors equals what the simulation generated ({total:.1f} s)"
    )
    return 0
