"""The traffic simulator's events parse with no rejection, and ``ingest_batch`` counts exactly its tally.

The demo and the benchmark prove their numbers against the simulator's ``Tally``; this is the proof that the
two agree at the unit level. That every simulated event is valid against its JSON Schema is checked in
``test_event_schemas.py``, beside the schemas.
"""

from __future__ import annotations

from collections import Counter

import pytest

from rumguard.events import EventKind, RumEvent, parse_event
from rumguard.ingest import ingest_batch
from rumguard.local.traffic import LogRecord, TrafficSimulator, mixed_traffic
from rumguard.monitors import MonitorDirectory

IDENTITY = "cognitoIdentityId"


def _simulate(monitors: MonitorDirectory, seed: int, received_ms: int) -> tuple[TrafficSimulator, list[LogRecord]]:
    guest, signed_in = monitors.monitors
    simulator = TrafficSimulator(guest, signed_in, seed=seed, start_ms=received_ms)
    return simulator, list(mixed_traffic(simulator, sessions=40, identities=8))


@pytest.mark.parametrize("seed", [1, 7, 2026])
def test_every_simulated_event_parses_as_the_kind_it_was_made_as(
    seed: int, monitors: MonitorDirectory, received_ms: int
) -> None:
    _, records = _simulate(monitors, seed, received_ms)

    for record in records:
        result = parse_event(record.message, record.timestamp_ms)
        assert isinstance(result, RumEvent), (result, record.message[:300])
        assert result.kind is record.kind
        assert result.attribute(IDENTITY) == record.identity
    assert {record.kind for record in records} == set(EventKind), "the simulation should cover every kind"


@pytest.mark.parametrize("seed", [1, 7, 2026])
def test_ingest_counts_equal_the_simulators_tally(seed: int, monitors: MonitorDirectory, received_ms: int) -> None:
    simulator, records = _simulate(monitors, seed, received_ms)

    for monitor in monitors.monitors:
        log_events = [
            {"id": f"{index}", "timestamp": record.timestamp_ms, "message": record.message}
            for index, record in enumerate(records)
            if record.monitor == monitor
        ]
        log_group = monitor.log_group_name(simulator.app_ids[monitor.name])

        report = ingest_batch(log_group, log_events, monitors, IDENTITY)

        tally = simulator.tally
        assert report.monitor == monitor
        assert (report.rejected, report.without_identity) == ({}, 0)
        assert report.by_kind == {kind: n for (name, kind), n in tally.by_kind.items() if name == monitor.name}
        assert report.accepted == tally.events(monitor.name) == len(log_events) > 0
        assert report.http_errors == tally.http_errors[monitor.name]
        assert set(report.identities) == tally.identities[monitor.name]
        assert sum(activity.events for activity in report.identities.values()) == len(log_events)
        assert Counter({identity: a.session_starts for identity, a in report.identities.items()}) == Counter(
            record.identity
            for record in records
            if record.monitor == monitor and record.kind is EventKind.SESSION_START
        )
