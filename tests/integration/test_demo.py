"""``rumguard demo`` and its bots: every bot dealt with, nobody honest touched, the alarms and notifications
people would get, and the demo's own checks.

The demo runs on the embedded AWS with a few honest shoppers and the full set of bots, without the browser
(``--browser off``: fast); its report is read directly (``play``) and its command line is run for the exit
status (once with Chromium out of reach, so ``auto`` says why it goes without). One test (marked ``e2e``)
runs it with the real web client in Chromium, and is skipped when Chromium is not installed. The bots'
traffic is checked on its own (each bot crosses its rule inside one window, its events parse or are junk as
meant, the tally counts exactly its valid events), and the demo's checks are shown to catch what they are for.
"""

from __future__ import annotations

import argparse
import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from rumguard.alarms import AlarmKind, AlarmThresholds, alarm_name, desired_alarms, monitor_alarms
from rumguard.cli import main
from rumguard.decisions import AUTO, AuditAction, AuditRecord, Block
from rumguard.detection import Counts, Detection, Rule, minute_of, window_sum
from rumguard.events import EventKind, Rejection, RumEvent, claimed_attribute, parse_event
from rumguard.ingest import JUNK_REASONS
from rumguard.local import demo
from rumguard.local.aws import GUEST_MONITOR, SIGNED_IN_MONITOR, EmbeddedAws
from rumguard.local.bots import Bot, BotKind, BotTraffic, bot_army
from rumguard.local.browser import chromium_path
from rumguard.local.context import LocalFunction
from rumguard.local.emf import EmfOutput
from rumguard.local.traffic import TrafficSimulator, identity_id
from rumguard.monitors import Audience, Monitor
from rumguard.runtime import aws_guard
from rumguard.settings import IngestSettings

IDENTITY = "cognitoIdentityId"
OFF = ["--browser", "off"]
SMALL = ["--journeys", "3", "--guests", "6", "--seed", "5", *OFF]
GUEST = Monitor("Shop_Guests", Audience.GUEST)
SIGNED_IN = Monitor("Shop_Users", Audience.SIGNED_IN)


def demo_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(argv)


# --- the demo, end to end ----------------------------------------------------------------------------------
def test_the_demo_blocks_every_bot_by_its_rule_and_touches_nobody_honest() -> None:
    out = io.StringIO()
    report = demo.play(demo_args(SMALL), Console(file=out, width=160))
    printed = out.getvalue()

    assert report.problems == [], "\n".join(report.problems)
    cast, state, observed = report.cast, report.state, report.observed
    expected = {
        BotKind.FLOODER: Rule.EVENT_FLOOD,
        BotKind.CHURNER: Rule.SESSION_CHURN,
        BotKind.ERROR_SPAMMER: Rule.ERROR_SPAM,
        BotKind.PAGE_VELOCITY: Rule.PAGE_VELOCITY,
        BotKind.JUNK_SENDER: Rule.JUNK,
    }
    assert {bot.kind: bot.rule for bot in cast.blockable_bots()} == expected
    for bot in cast.blockable_bots():
        assert bot.rule is not None
        block = state.blocks[bot.identity]
        assert (block.rule, block.actor, block.dry_run) == (bot.rule.value, AUTO, False)
        assert block.counts[bot.rule.value] > Detection().thresholds[bot.rule].limit
        assert bot.identity in state.denied
        assert state.in_pool[bot.identity] is False  # deleted from the pool
        assert state.blocked_events()[bot.identity]["rule"] == bot.rule.value
        assert bot.identity in observed.blocked
    # Only the bots: not the forger's victim, no honest guest, no signed-in user.
    assert set(state.blocks) == state.denied == {bot.identity for bot in cast.blockable_bots()}
    (forger,) = cast.forgers()
    assert forger.kind is BotKind.FORGER and forger.impersonates == forger.identity
    assert forger.identity in cast.signed_in
    assert state.in_pool[forger.identity] is True
    assert state.refusals[forger.identity]
    assert all(r.reason == "a signed-in identity (has logins)" for r in state.refusals[forger.identity])
    assert observed.forged[forger.identity] >= 1
    honest = set(cast.guests) | set(cast.signed_in)
    assert len(cast.guests) == 3 + 6 and len(cast.signed_in) == 3
    assert all(state.in_pool[identity] for identity in honest)
    assert not honest & set(state.blocks)
    # Every bot identity but the forger's is a guest the pool made; the bus carried one block event per bot.
    assert not {bot.identity for bot in cast.blockable_bots()} & honest
    assert Counter(e["detail-type"] for e in state.bus) == {"Identity Blocked": len(expected)}
    assert 0 < state.capacity_used < 100
    # What the demo printed about it.
    for bot in cast.blockable_bots():
        assert bot.rule is not None
        assert f"blocked: {bot.rule.value}" in printed
    assert "refused (forged)" in printed
    assert "not blocked, not in the deny policy, still in the pool" in printed
    assert "rumguard-deny-blocks" in printed
    assert "not counted twice" in printed


def test_the_demo_command_exits_zero_and_says_what_it_checked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMGUARD_CHROMIUM", "/nonexistent/chromium")  # auto, on a machine without a browser
    status = main(["demo", "--journeys", "1", "--guests", "2", "--seed", "3"])

    printed = capsys.readouterr().out
    assert status == 0, printed
    assert GUEST_MONITOR in printed
    assert SIGNED_IN_MONITOR in printed
    assert "Simulated traffic only, no browser because Chromium is not installed" in printed
    assert "OK: 5 bots blocked" in printed
    assert "the forger refused and the user it impersonated untouched" in printed
    assert "no honest guest or signed-in user blocked" in printed
    assert "12 alarms published, blocks in ALARM; 1 digest listing every blocked bot" in printed or (
        "2 digests listing every blocked bot" in printed  # the blocks straddled a minute
    )
    assert "FAILED" not in printed


def test_browser_on_fails_clearly_without_chromium(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUMGUARD_CHROMIUM", "/nonexistent/chromium")
    status = main(["demo", "--browser", "on"])

    printed = capsys.readouterr().out
    assert status == 2
    assert "--browser on" in printed and "Chromium is not installed" in printed
    assert "RUMGUARD_CHROMIUM" in printed
    assert "RUM Guard demo on the embedded AWS" not in printed  # nothing was started


# --- alarms and notifications --------------------------------------------------------------------------------
def test_the_demo_ends_with_the_alarms_published_and_what_people_were_told() -> None:
    out = io.StringIO()
    report = demo.play(demo_args(SMALL), Console(file=out, width=160))
    printed = out.getvalue()

    assert report.problems == [], "\n".join(report.problems)
    # The sweeper published every alarm of both monitors and the pool, with the demo's abuse-wave threshold.
    monitors = [Monitor(GUEST_MONITOR, Audience.GUEST), Monitor(SIGNED_IN_MONITOR, Audience.SIGNED_IN)]
    expected = desired_alarms(demo.ALARM_PREFIX, monitors, AlarmThresholds(blocks=demo.DEMO_BLOCKS_ALARM_LIMIT))
    verdicts = {verdict.name: verdict for verdict in report.alarms}
    assert sorted(verdicts) == sorted(spec.name for spec in expected) and len(verdicts) == 12
    wave = verdicts[alarm_name(demo.ALARM_PREFIX, AlarmKind.BLOCKS, GUEST_MONITOR)]
    assert wave.alarm["Threshold"] == demo.DEMO_BLOCKS_ALARM_LIMIT
    # Five blocks in seconds: in one five-minute period, or two, and then at least three in one.
    assert wave.state == "ALARM" and wave.value is not None and demo.DEMO_BLOCKS_ALARM_LIMIT < wave.value <= 5
    assert [v.name for v in report.alarms if v.state == "ALARM"] == [wave.name]
    # Rate and anomaly alarms are CloudWatch's to evaluate; every single-metric one is, here.
    unevaluated = {v.parsed.kind for v in report.alarms if v.state is None and v.parsed}
    assert unevaluated == {AlarmKind.TRAFFIC_SURGE, AlarmKind.JS_ERROR_RATE, AlarmKind.HTTP_ERROR_RATE}
    rejected = verdicts[alarm_name(demo.ALARM_PREFIX, AlarmKind.REJECTED_EVENTS, GUEST_MONITOR)]
    assert rejected.state == "OK" and rejected.value is not None and 0 < rejected.value <= report.cast.junk()

    notified = report.notified
    assert notified is not None and notified.bus_events == 5 and notified.alarm_events == 1
    digests, alarms = notified.of_kind("digest"), notified.of_kind("alarm")
    assert len(digests) == notified.windows in (1, 2)
    assert len(notified.messages) == len(digests) + 1
    bots = {bot.identity: bot for bot in report.cast.blockable_bots()}
    for identity, bot in bots.items():
        (listing,) = [m for m in digests if identity in m["message"]]
        assert bot.rule is not None and f"(rule {bot.rule.value}, by auto)" in listing["message"]
    if len(digests) == 1:
        assert digests[0]["subject"] == f"[RUM Guard] 5 identities blocked on {GUEST_MONITOR}"
    (alarm,) = alarms
    assert alarm["subject"] == f"[RUM Guard] ALARM: Abuse wave - app monitor {GUEST_MONITOR}"
    assert f"identities blocked in 5 min (alarm when more than {demo.DEMO_BLOCKS_ALARM_LIMIT})" in alarm["message"]
    assert f"-- RUM Guard, for alarm {wave.name}" in alarm["message"]
    honest = {*report.cast.guests, *report.cast.signed_in}
    for message in notified.messages:
        assert not any(i in message["message"] or i in message["subject"] for i in honest), message["subject"]
    # What the newcomer reads.
    assert "4. Alarms" in printed and "5. Notifications" in printed
    assert "moto never evaluates alarms" in printed
    assert "ALARM: " in printed and "CloudWatch only (math)" in printed
    assert f"✉ [RUM Guard] ALARM: Abuse wave - app monitor {GUEST_MONITOR}" in printed
    assert "What to do: Review the blocks (GET /blocks)" in printed
    assert "Simulated traffic only, no browser (--browser off)" in printed


def _blob(at_ms: int, metric: str, value: float, monitor: str = GUEST_MONITOR) -> str:
    return json.dumps(
        {
            "_aws": {
                "Timestamp": at_ms,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "RumGuard",
                        "Dimensions": [["AppMonitor", "Audience"]],
                        "Metrics": [{"Name": metric, "Unit": "Count"}],
                    }
                ],
            },
            "AppMonitor": monitor,
            "Audience": "guest",
            metric: value,
        }
    )


def test_the_alarm_evaluation_takes_each_five_minute_period_as_cloudwatch_would() -> None:
    period = 300_000
    start = 1_767_225_600_000  # a period boundary
    output = EmfOutput.parse(
        [
            _blob(start + 10_000, "IdentitiesBlocked", 1),
            _blob(start + 200_000, "IdentitiesBlocked", 1),
            _blob(start + period + 1_000, "IdentitiesBlocked", 2),
            _blob(start + period + 9_000, "IdentitiesBlocked", 1),
            _blob(start + period + 9_000, "IdentitiesBlocked", 7, monitor="Another"),
        ]
    )
    assert demo.period_values(
        output, "IdentitiesBlocked", {"AppMonitor": GUEST_MONITOR, "Audience": "guest"}, "Sum"
    ) == {
        start: (2.0, 2),
        start + period: (3.0, 2),
    }
    specs = {spec.kind: dict(spec.request) for spec in monitor_alarms("rumguard", GUEST, AlarmThresholds(blocks=2))}
    blocks = specs[AlarmKind.BLOCKS] | {
        "Dimensions": [{"Name": "AppMonitor", "Value": GUEST_MONITOR}, {"Name": "Audience", "Value": "guest"}]
    }
    verdict = demo.evaluate_alarm(blocks, output)
    assert (verdict.state, verdict.value, verdict.period_start_ms, verdict.samples) == ("ALARM", 3.0, start + period, 2)
    assert (verdict.metric, verdict.condition) == ("IdentitiesBlocked, sum", "> 2 in 5 min")
    calm = demo.evaluate_alarm(blocks | {"Threshold": 3.0}, output)
    assert (calm.state, calm.value) == ("OK", 3.0)  # not more than the threshold: no alarm
    assert demo.evaluate_alarm(blocks, EmfOutput()).state == "OK"  # missing data is not breaching
    rate = demo.evaluate_alarm(specs[AlarmKind.JS_ERROR_RATE], output)
    assert rate.state is None and rate.metric == "JS errors per 100 page views" and "2 of 3 periods" in rate.condition
    surge = demo.evaluate_alarm(specs[AlarmKind.TRAFFIC_SURGE], output)
    assert surge.state is None and surge.metric == "Events, anomaly band"


def test_the_notification_check_catches_a_missing_a_repeated_or_an_honest_identity(
    army: tuple[BotTraffic, list[Bot]],
) -> None:
    _, bots = army
    cast = demo.Cast(guests=["us-east-1:00000000-0000-4000-8000-0000000000b1"], signed_in=[], bots=bots)
    listed = "\n".join(f"  - {identity}: blocked" for identity in cast.must_block())

    def notified(*messages: tuple[str, str, str]) -> demo.Notified:
        found = [{"subject": s, "message": m, "attributes": {"rumguard.kind": k}} for s, m, k in messages]
        return demo.Notified(found, [], windows=1, window_seconds=60, bus_events=5, alarm_events=0)

    digest = ("[RUM Guard] 5 identities blocked on shop", listed, "digest")
    assert demo.check_notifications(cast, [], notified(digest)) == []
    assert any("one per window" in p for p in demo.check_notifications(cast, [], notified(digest, digest)))
    assert any("listed 0 times" in p for p in demo.check_notifications(cast, [], notified()))
    honest = (digest[0], listed + f"\n  - {cast.guests[0]}: blocked", "digest")
    assert any("names honest identities" in p for p in demo.check_notifications(cast, [], notified(honest)))
    long = ("x" * 100, listed, "digest")
    assert any("subject SNS would refuse" in p for p in demo.check_notifications(cast, [], notified(long)))


# --- the bots ------------------------------------------------------------------------------------------------
@pytest.fixture
def army() -> tuple[BotTraffic, list[Bot]]:
    traffic = BotTraffic(GUEST, SIGNED_IN, seed=4, start_ms=1_767_225_600_000)
    victim = identity_id(traffic.rng)
    return traffic, bot_army(traffic, lambda: identity_id(traffic.rng), victim, traffic.start_ms)


def test_each_bot_crosses_its_rule_within_one_window_and_no_other_rule_first(
    army: tuple[BotTraffic, list[Bot]],
) -> None:
    _, bots = army
    detection = Detection()
    assert [bot.kind for bot in bots] == list(BotKind)
    for bot in bots:
        buckets: dict[int, Counts] = {}
        for record in bot.records:
            minute = minute_of(record.timestamp_ms)
            result = parse_event(record.message, record.timestamp_ms)
            if isinstance(result, Rejection):
                counts = Counts(junk=1)
            else:
                kind = result.kind
                counts = Counts(
                    events=1,
                    session_starts=int(kind is EventKind.SESSION_START),
                    page_views=int(kind is EventKind.PAGE_VIEW),
                    js_errors=int(kind is EventKind.JS_ERROR),
                )
            buckets[minute] = buckets.get(minute, Counts()) + counts
        last = minute_of(bot.last_ms)
        hits = detection.evaluate(buckets, last)
        rule = bot.rule or Rule.EVENT_FLOOD  # the forger floods
        assert [hit.rule for hit in hits] == [rule], (bot.kind, hits)
        threshold = detection.thresholds[rule]
        total = window_sum(buckets, last, threshold.window_minutes).get(threshold.counter)
        assert sum(c.get(threshold.counter) for c in buckets.values()) == total  # all inside one window
        assert threshold.limit < total <= threshold.limit * 2


def test_bot_events_parse_or_are_junk_as_meant_and_claim_their_identity(
    army: tuple[BotTraffic, list[Bot]],
) -> None:
    traffic, bots = army
    valid: Counter[tuple[str, EventKind]] = Counter()
    for bot in bots:
        reasons: Counter[str] = Counter()
        for record in bot.records:
            assert record.monitor == GUEST
            result = parse_event(record.message, record.timestamp_ms)
            if isinstance(result, RumEvent):
                assert result.kind is record.kind
                assert result.attribute(IDENTITY) == bot.identity
                assert abs(result.timestamp_ms - record.timestamp_ms) <= 5_000
                valid[(GUEST.name, record.kind)] += 1
            else:
                assert result.reason in JUNK_REASONS
                assert claimed_attribute(record.message, IDENTITY) == bot.identity
                reasons[result.reason.value] += 1
        assert sum(reasons.values()) == bot.junk
        if bot.kind is BotKind.JUNK_SENDER:
            assert set(reasons) == {"invalid", "clock_skew"}
            assert bot.junk == bot.events
    # The tally holds every valid bot event and no junk: the demo's metric checks rest on it.
    assert +traffic.tally.by_kind == valid


def test_the_forger_claims_its_victim_and_the_others_their_own_guest_ids() -> None:
    traffic = BotTraffic(GUEST, SIGNED_IN, seed=9, start_ms=1_767_225_600_000)
    made: list[str] = []

    def new_guest() -> str:
        made.append(identity_id(traffic.rng))
        return made[-1]

    bots = bot_army(traffic, new_guest, "us-east-1:00000000-0000-4000-8000-0000000000aa", traffic.start_ms)
    assert [bot.identity for bot in bots if bot.rule is not None] == made
    (forger,) = [bot for bot in bots if bot.rule is None]
    assert forger.identity == forger.impersonates == "us-east-1:00000000-0000-4000-8000-0000000000aa"
    # One after another: each bot's burst starts on a minute boundary, after the one before.
    starts = [bot.first_ms for bot in bots]
    assert starts == sorted(starts)
    optional = bot_army(traffic, new_guest, forger.identity, traffic.start_ms, page_velocity=False, junk=False)
    assert [bot.kind for bot in optional] == [
        BotKind.FLOODER,
        BotKind.CHURNER,
        BotKind.ERROR_SPAMMER,
        BotKind.FORGER,
    ]


# --- the demo's checks catch what they are for ---------------------------------------------------------------
def _block(bot: Bot, rule: str | None = None) -> Block:
    now = datetime.now(UTC)
    return Block(
        identity_id=bot.identity,
        app_monitor=GUEST.name,
        rule=rule or (bot.rule.value if bot.rule else "event-flood"),
        reason="test",
        actor=AUTO,
        created_at=now,
        expires_at=now + timedelta(hours=1),
        offence=1,
        dry_run=False,
    )


def _deny(*identities: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEquals": {"cognito-identity.amazonaws.com:sub": sorted(identities)}},
            }
        ],
    }


def _healthy(cast: demo.Cast) -> tuple[demo.Enforcement, demo.Observed]:
    bots = cast.blockable_bots()
    (forger,) = cast.forgers()
    sighting = demo.Sighting(1, 10.0, 50)
    observed = demo.Observed(blocked={bot.identity: sighting for bot in bots})
    observed.forged[forger.identity] = 2
    refusal = AuditRecord(AuditAction.REFUSE_FORGED, forger.identity, AUTO, datetime.now(UTC), "signed in")
    state = demo.Enforcement(
        blocks={bot.identity: _block(bot) for bot in bots},
        refusals={forger.identity: [refusal]},
        policies={"rumguard-deny-blocks": _deny(*(bot.identity for bot in bots))},
        others_chars=100,
        in_pool={**{i: True for i in cast.identities()}, **{bot.identity: False for bot in bots}},
        bus=[
            {
                "detail-type": "Identity Blocked",
                "detail": {"identityId": bot.identity, "rule": _block(bot).rule, "actor": AUTO, "dryRun": False},
            }
            for bot in bots
        ],
    )
    return state, observed


def test_the_enforcement_check_passes_a_clean_run_and_catches_each_failure(
    army: tuple[BotTraffic, list[Bot]],
) -> None:
    _, bots = army
    (forger,) = [bot for bot in bots if bot.rule is None]
    cast = demo.Cast(guests=["us-east-1:00000000-0000-4000-8000-0000000000b1"], signed_in=[forger.identity], bots=bots)
    now = datetime.now(UTC)
    state, observed = _healthy(cast)
    assert demo.check_enforcement(cast, state, observed, now) == []

    flooder = cast.blockable_bots()[0]
    escaped, _ = _healthy(cast)
    del escaped.blocks[flooder.identity]
    assert any("escaped" in p for p in demo.check_enforcement(cast, escaped, observed, now))

    wrong_rule, _ = _healthy(cast)
    wrong_rule.blocks[flooder.identity] = _block(flooder, "junk")
    assert any("not by event-flood" in p for p in demo.check_enforcement(cast, wrong_rule, observed, now))

    not_deleted, _ = _healthy(cast)
    not_deleted.in_pool[flooder.identity] = True
    assert any("not deleted" in p for p in demo.check_enforcement(cast, not_deleted, observed, now))

    victim_blocked, _ = _healthy(cast)
    victim_blocked.blocks[forger.identity] = _block(forger)
    problems = demo.check_enforcement(cast, victim_blocked, observed, now)
    assert any("got the signed-in user blocked" in p for p in problems)
    assert any("an honest signed-in user was blocked" in p for p in problems)

    honest_guest, _ = _healthy(cast)
    honest_guest.in_pool[cast.guests[0]] = False
    assert any("honest guest was deleted" in p for p in demo.check_enforcement(cast, honest_guest, observed, now))

    never_refused, _ = _healthy(cast)
    never_refused.refusals.clear()
    assert any("was not refused" in p for p in demo.check_enforcement(cast, never_refused, observed, now))


def test_notify_sends_one_digest_per_minute_however_the_blocks_fall(aws: EmbeddedAws) -> None:
    settings = IngestSettings.from_environ(aws.ingest_environment())
    guard = aws_guard(settings, settings.guard_config(settings.detection()))
    blocked = [aws.new_guest() for _ in range(4)]
    for identity in blocked:
        guard.block(identity, reason="a bot", actor=AUTO, app_monitor=GUEST_MONITOR)
    events = aws.published_events()
    assert [e["detail-type"] for e in events] == ["Identity Blocked"] * 4
    a_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [event | {"time": a_minute_ago} for event in events[:2]] + events[2:]

    notified = demo.notify(aws, events, [])

    assert notified.failures == [] and notified.windows == 2
    digests = notified.of_kind("digest")
    assert [m["subject"] for m in digests] == [f"[RUM Guard] 2 identities blocked on {GUEST_MONITOR}"] * 2
    assert [sum(i in m["message"] for m in digests) for i in blocked] == [1, 1, 1, 1]
    assert [i in digests[0]["message"] for i in blocked] == [True, True, False, False]


# --- the real web client --------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_with_chromium_the_bot_in_the_browser_is_refused_and_the_honest_shoppers_are_not() -> None:
    if chromium_path() is None:
        pytest.skip("Chromium is not installed: `make test` installs Debian's chromium when it can")
    out = io.StringIO()
    args = demo_args(["--journeys", "2", "--guests", "4", "--seed", "11", "--browser", "on"])
    report = demo.play(args, Console(file=out, width=160))
    printed = out.getvalue()

    assert report.problems == [], "\n".join(report.problems)
    shop = report.cast.shop
    assert shop is not None and shop.bot is not None and report.browser_skipped == ""
    # The bot page: blocked by its rule, then every batch refused by the deny statement RUM Guard wrote.
    block = report.state.blocks[shop.bot]
    assert block.rule == demo.BROWSER_BOT_RULE.value and shop.bot in report.state.denied
    first = shop.first_refusal()
    assert first is not None and first.error == "AccessDeniedException"
    assert all(r.accepted for r in shop.bot_receipts() if r.at < first.at)
    assert all(not r.accepted for r in shop.bot_receipts() if r.at >= first.at)
    # The shoppers: every batch accepted, some after the block, none of them blocked.
    honest = shop.honest_receipts()
    assert honest and all(r.accepted for r in honest) and any(r.at > first.at for r in honest)
    assert not set(shop.honest()) & set(report.state.blocks)
    assert {"guest", "signed-in"} <= set(shop.honest().values())
    # Six blocks in all (the five simulated bots and the browser's), one Identity Blocked event each, and the
    # browser's bot among the identities the digests list.
    assert set(report.state.blocks) == set(report.cast.must_block()) and len(report.state.blocks) == 6
    assert report.notified is not None
    assert any(shop.bot in m["message"] for m in report.notified.of_kind("digest"))
    assert "Live, in Chromium" in printed and "Chromium bot page" in printed
    assert "403 AccessDeniedException" in printed
    assert f"{len(honest)} of {len(honest)} accepted" in printed


def test_the_count_check_reports_a_count_that_differs(
    aws: EmbeddedAws, ingest: LocalFunction, simulator: TrafficSimulator
) -> None:
    aws.put_records(simulator.signed_in_journey(identity_id(simulator.rng), identity_id(simulator.rng)))
    output = EmfOutput()
    for _, event in aws.all_deliveries():
        output.extend(ingest.invoke(event).output)
    assert demo.check_counts(aws.app_monitors.values(), simulator.tally, output) == []
    # Junk that was expected but never sent is a difference too.
    assert demo.check_counts(aws.app_monitors.values(), simulator.tally, output, rejected={GUEST_MONITOR: 3})

    # Generated but never written to the log group: the metrics fall one session short.
    simulator.guest_browse(identity_id(simulator.rng), pages=1)
    problems = demo.check_counts(aws.app_monitors.values(), simulator.tally, output)

    assert any(p.startswith(f"{GUEST_MONITOR} Events: the metrics say") for p in problems), problems
    assert any(p.startswith(f"{GUEST_MONITOR} SessionStarts") for p in problems), problems
    assert not any(p.startswith(SIGNED_IN_MONITOR) for p in problems), problems
