"""``rumguard replay FILE...``: what RUM Guard would have blocked in a RUM log export, and why.

Runs the same parser, the same counters and the same rules as the ingest function, in dry-run against
in-memory adapters: nothing is written anywhere. Operators use it to tune thresholds before enforcing, the
way fail2ban-regex is used before enabling a jail.

Accepted input, one or more files (``.gz`` too), each optionally prefixed ``MONITOR=`` to name its app
monitor (otherwise ``--monitor``):
- JSON lines of log events as ``aws logs filter-log-events`` writes them (objects with ``timestamp`` and
  ``message``; for example ``aws logs filter-log-events ... | jq -c '.events[]'``), or that command's whole
  JSON document (``{"events": [...]}``);
- a CloudWatch Logs export to S3: lines of ``<ISO timestamp> <message>``;
- raw RUM events, one JSON object per line (the event's own ``event_timestamp`` stands in for receipt).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from rumguard.decisions import Mode
from rumguard.events import RejectReason
from rumguard.guard import Guard, GuardOutcome
from rumguard.ingest import ingest_batch
from rumguard.local.fakes import (
    FakeClock,
    InMemoryCounterStore,
    InMemoryDecisionStore,
    InMemoryGuestRole,
    InMemoryIdentityDirectory,
    RecordingBus,
)
from rumguard.monitors import LOG_GROUP_PREFIX, MonitorDirectory
from rumguard.settings import DecisionSettings, DetectionSettings, SettingsError

REPLAY_POOL = "us-east-1:00000000-0000-4000-8000-000000000000"
#: A replayed batch spans at most this long, like a subscription delivery (which arrive every few seconds).
BATCH_SPAN_MS = 5_000
BATCH_EVENTS = 10_000


class ReplayError(Exception):
    """A replay input that cannot be read; the message says which file and line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``rumguard replay``'s options."""
    parser.add_argument("files", nargs="+", metavar="[MONITOR=]FILE", help="RUM log exports (.gz accepted)")
    parser.add_argument("--monitor", default="replay", help="app monitor name for files without MONITOR= ")
    parser.add_argument(
        "--signed-in",
        action="append",
        default=[],
        metavar="MONITOR",
        help="treat this monitor as signed-in (never blocked); repeatable",
    )
    parser.add_argument("--identity-attribute", default="cognitoIdentityId")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        dest="overrides",
        help="a threshold or decision setting, e.g. EVENT_FLOOD_LIMIT=500; repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")


@dataclass(slots=True)
class MonitorReplay:
    """What one monitor's data would have caused."""

    name: str
    guest: bool
    events: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    forged: dict[str, str] = field(default_factory=dict)
    storms: int = 0


def settings_from(overrides: Sequence[str], environ: dict[str, str]) -> tuple[DetectionSettings, DecisionSettings]:
    """Thresholds and decision settings: the environment, then ``--set NAME=VALUE`` on top."""
    values = dict(environ)
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"--set wants NAME=VALUE, got {item!r}")
        known = DetectionSettings.env_names() | DecisionSettings.env_names()
        if name not in known:
            raise SettingsError(f"--set {name}: not a threshold or decision setting ({', '.join(sorted(known))})")
        values[name] = value
    values.update(
        RUMGUARD_TABLE="replay",
        IDENTITY_POOL_ID=REPLAY_POOL,
        GUEST_ROLE_NAME="replay",
        EVENT_BUS_NAME="replay",
        RUMGUARD_MODE=Mode.DRY_RUN.value,
    )
    return DetectionSettings.from_environ(values), DecisionSettings.from_environ(values)


def read_log_events(handle: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """``(timestamp_ms, message)`` of every record in one export, in file order."""
    head = handle.read(1)
    rest = handle.read() if head == b"{" else b""
    if head == b"{":
        # One JSON document (filter-log-events output) or JSON lines: tell them apart by trying the whole.
        try:
            document = orjson.loads(head + rest)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("events"), list):
            for event in document["events"]:
                yield _log_event(event, name, 0)
            return
        if isinstance(document, dict):
            yield _log_event(document, name, 1)
            return
        lines: Iterator[bytes] = iter((head + rest).splitlines())
    else:
        lines = _prepend(head, handle)
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(b"{"):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield 0, line.decode("utf-8", "replace")  # counted as not_json, like RUM would
                continue
            yield _log_event(record, name, number)
        else:
            stamp, _, message = line.decode("utf-8", "replace").partition(" ")
            try:
                when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                raise ReplayError(f"{name}:{number}: neither JSON nor '<ISO timestamp> <message>'") from None
            yield int(when.timestamp() * 1000), message


def _prepend(head: bytes, handle: IO[bytes]) -> Iterator[bytes]:
    first = head + handle.readline()
    yield first
    yield from handle


def _log_event(record: Any, name: str, number: int) -> tuple[int, str]:
    if isinstance(record, dict) and isinstance(record.get("message"), str):
        timestamp = record.get("timestamp")
        if not isinstance(timestamp, int | float):
            raise ReplayError(f"{name}:{number}: log event without a numeric timestamp")
        return int(timestamp), record["message"]
    if isinstance(record, dict) and "event_type" in record:
        stamp = record.get("event_timestamp")
        return (int(stamp) if isinstance(stamp, int | float) else 0), orjson.dumps(record).decode()
    raise ReplayError(f"{name}:{number}: a JSON object that is neither a log event nor a RUM event")


def _open(path: Path) -> IO[bytes]:
    raw: IO[bytes] = path.open("rb")
    if path.suffix == ".gz":
        return gzip.open(raw, "rb")  # type: ignore[return-value]
    return raw


def replay(
    inputs: Sequence[tuple[str, Path]],
    *,
    signed_in: Sequence[str],
    identity_attribute: str,
    detection: DetectionSettings,
    decisions: DecisionSettings,
    progress: Any | None = None,
) -> list[MonitorReplay]:
    """Replay every input through ingest and the rules; the result per monitor."""
    guests = sorted({name for name, _ in inputs if name not in signed_in})
    monitors = MonitorDirectory(guests, sorted(set(signed_in)))
    clock = FakeClock(datetime.fromtimestamp(0, UTC))
    store = InMemoryDecisionStore()
    guard = Guard(
        decisions.guard_config(detection.detection()),
        store=store,
        counters=InMemoryCounterStore(),
        # No Cognito to ask: every well-formed id of the pool's region counts as an existing guest.
        identities=InMemoryIdentityDirectory(REPLAY_POOL, assume_guests=True),
        role=InMemoryGuestRole(),
        bus=RecordingBus(),
        clock=clock,
    )
    results: dict[str, MonitorReplay] = {}
    for name, path in inputs:
        monitor = monitors.get(name)
        assert monitor is not None
        result = results.setdefault(name, MonitorReplay(name, guest=name not in signed_in))
        log_group = f"{LOG_GROUP_PREFIX}{name}00000000"
        with _open(path) as handle:
            size = os.fstat(handle.fileno()).st_size if hasattr(handle, "fileno") else 0
            task = progress.add_task(f"replaying {path.name}", total=size or None) if progress else None
            for batch in _batches(read_log_events(handle, str(path))):
                now_ms = max(ts for ts, _ in batch)
                clock.set(datetime.fromtimestamp(now_ms / 1000, UTC))
                events = [{"id": str(i), "timestamp": ts, "message": m} for i, (ts, m) in enumerate(batch)]
                report = ingest_batch(log_group, events, monitors, identity_attribute)
                key = hashlib.sha256(f"{path}:{now_ms}:{len(batch)}".encode()).hexdigest()[:32]
                outcome = guard.on_batch(report, key)
                _tally(result, report.log_events, report.accepted, report.rejected, outcome)
                if progress is not None and task is not None:
                    progress.update(task, completed=_position(handle))
    return list(results.values())


def _position(handle: IO[bytes]) -> int:
    try:
        raw = getattr(handle, "fileobj", handle)
        return int(raw.tell())
    except (OSError, ValueError):
        return 0


def _batches(records: Iterator[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
    batch: list[tuple[int, str]] = []
    for record in records:
        if batch and (record[0] - batch[0][0] > BATCH_SPAN_MS or len(batch) >= BATCH_EVENTS):
            yield batch
            batch = []
        batch.append(record)
    if batch:
        yield batch


def _tally(
    result: MonitorReplay, events: int, accepted: int, rejected: dict[RejectReason, int], outcome: GuardOutcome
) -> None:
    result.events += events
    result.accepted += accepted
    for reason, count in rejected.items():
        result.rejected[reason.value] = result.rejected.get(reason.value, 0) + count
    for block in outcome.blocked:
        result.blocks.append(block.event_detail())
    result.forged.update(outcome.forged)
    result.storms += int(outcome.storm)


def run(args: argparse.Namespace) -> int:
    """``rumguard replay``."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    console = Console(stderr=False)
    error = Console(stderr=True)
    inputs: list[tuple[str, Path]] = []
    for item in args.files:
        name, sep, file = item.partition("=")
        path = Path(file if sep else item)
        if not path.is_file():
            error.print(f"[red]replay: {path}: no such file[/red]")
            return 2
        inputs.append((name if sep else args.monitor, path))
    try:
        detection, decisions = settings_from(args.overrides, dict(os.environ))
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=error,
            transient=True,
        ) as progress:
            results = replay(
                inputs,
                signed_in=args.signed_in,
                identity_attribute=args.identity_attribute,
                detection=detection,
                decisions=decisions,
                progress=progress,
            )
    except (SettingsError, ReplayError) as problem:
        error.print(f"[red]replay: {problem}[/red]")
        return 2
    if args.json:
        console.print_json(orjson.dumps([_as_json(r) for r in results]).decode())
        return 0
    for result in results:
        audience = "guest" if result.guest else "signed-in (never blocked automatically)"
        rejected = ", ".join(f"{k} {v:,}" for k, v in sorted(result.rejected.items())) or "none"
        console.print(
            f"\n[bold]{result.name}[/bold] ({audience}): {result.events:,} log events, "
            f"{result.accepted:,} valid, rejected: {rejected}"
        )
        if result.blocks:
            table = Table(title="would have been blocked (dry-run)", title_justify="left")
            table.add_column("identity", no_wrap=True)
            table.add_column("rule", no_wrap=True)
            table.add_column("at (UTC)", no_wrap=True)
            for block in result.blocks:
                table.add_row(block["identityId"], block["rule"], block["createdAt"][11:19])
            console.print(table)
            console.print("  " + "\n  ".join(sorted({b["reason"] for b in result.blocks})), style="dim")
        else:
            console.print("  nobody would have been blocked")
        for identity, why in sorted(result.forged.items()):
            console.print(f"  refused (forged): {identity}: {why}")
        if result.storms:
            console.print(f"  [yellow]the safety valve would have paused automatic blocking {result.storms}x[/yellow]")
    return 0


def _as_json(result: MonitorReplay) -> dict[str, Any]:
    return {
        "monitor": result.name,
        "guest": result.guest,
        "events": result.events,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "blocks": result.blocks,
        "forged": result.forged,
        "storms": result.storms,
    }
