"""``rumguard demo``: it runs on the embedded AWS, prints both monitors and checks its own counts."""

from __future__ import annotations

import pytest

from rumguard.cli import main
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.context import LocalFunction
from rumguard.local.demo import check_counts
from rumguard.local.emf import EmfOutput
from rumguard.local.traffic import TrafficSimulator, identity_id


def test_the_demo_prints_both_monitors_and_passes_its_own_check(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["demo", "--journeys", "3", "--guests", "6", "--seed", "5"])

    printed = capsys.readouterr().out
    assert status == 0, printed
    assert GUEST_MONITOR in printed
    assert SIGNED_IN_MONITOR in printed
    assert "not counted twice" in printed
    assert "OK: every metric of both monitors equals what the simulation generated" in printed
    assert "FAILED" not in printed


def test_the_check_reports_a_count_that_differs(
    aws: EmbeddedAws, ingest: LocalFunction, simulator: TrafficSimulator
) -> None:
    aws.put_records(simulator.signed_in_journey(identity_id(simulator.rng), identity_id(simulator.rng)))
    output = EmfOutput()
    for _, event in aws.all_deliveries():
        output.extend(ingest.invoke(event).output)
    assert check_counts(aws.app_monitors.values(), simulator.tally, output) == []

    # Generated but never written to the log group: the metrics fall one session short.
    simulator.guest_browse(identity_id(simulator.rng), pages=1)
    problems = check_counts(aws.app_monitors.values(), simulator.tally, output)

    assert any(p.startswith(f"{GUEST_MONITOR} Events: the metrics say") for p in problems), problems
    assert any(p.startswith(f"{GUEST_MONITOR} SessionStarts") for p in problems), problems
    assert not any(p.startswith(SIGNED_IN_MONITOR) for p in problems), problems
