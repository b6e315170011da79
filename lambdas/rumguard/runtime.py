"""Wiring of the functions: settings, adapters and Powertools around the pure core.

Each handler module builds its app once at cold start and hands it each event; tests, the demo and the
benchmark build their own with moto-backed or in-memory adapters.
"""

from __future__ import annotations

import binascii
import hashlib
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, cast

import boto3
import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext

from rumguard.adapters.cloudwatch import CloudWatchAlarms
from rumguard.adapters.cognito import CognitoIdentityDirectory
from rumguard.adapters.digests import DynamoDigestStore
from rumguard.adapters.dynamodb import DynamoCounterStore, DynamoDecisionStore
from rumguard.adapters.eventbridge import EventBridgeBus
from rumguard.adapters.iam import IamGuestRole
from rumguard.adapters.sns import SnsTopic
from rumguard.alarms import AlarmReconciler
from rumguard.events import RejectReason
from rumguard.guard import Guard, GuardConfig, GuardOutcome
from rumguard.ingest import BatchReport, batch_key, ingest_batch
from rumguard.notifications import (
    ConsoleLinks,
    Digester,
    DigestStore,
    Publisher,
    Route,
    alarm_notification,
    digest_entry,
    lockdown_notification,
    parse_time,
    route,
)
from rumguard.ports import GuestRole
from rumguard.settings import EnforcementSettings, IngestSettings, NotifySettings, SweeperSettings
from rumguard.telemetry import (
    ALL_MONITORS,
    NO_AUDIENCE,
    UNMATCHED,
    log_outcome,
    log_rejections,
    publish_batch,
    publish_outcome,
    publish_rejections,
)

#: CloudWatch Logs retries a failed delivery for up to 24 hours; remember batches a little longer.
IDEMPOTENCY_TTL_SECONDS: Final = 25 * 60 * 60
#: A redelivered batch has the same log group and the same log event ids, in the same order; ``batchKey`` is
#: their digest (``rumguard.ingest.batch_key``). Only this small key goes through Powertools idempotency:
#: it deep-copies its argument and evaluates the JMESPath twice, which on a whole 1 MB batch cost 3.4 us
#: per event (measured with ``make bench``).
BATCH_KEY: Final = "[logGroup, batchKey]"


class UndecodablePayloadError(ValueError):
    """The subscription payload is not base64 gzip JSON of a log batch. Raised so Lambda's
    asynchronous retries end in the dead-letter queue, where the payload is kept for people to read."""


class IngestApp:
    """The ingest function: decode a subscription payload, ingest its batch once, publish metrics."""

    def __init__(
        self,
        settings: IngestSettings,
        idempotency_store: BasePersistenceLayer,
        metrics: Metrics,
        logger: Logger,
        guard: Guard | None = None,
    ) -> None:
        self.settings = settings
        self.guard = guard
        self.monitors = settings.monitor_directory()
        self.metrics = metrics
        self.logger = logger
        self.idempotency = IdempotencyConfig(
            event_key_jmespath=BATCH_KEY,
            raise_on_no_idempotency_key=True,
            expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
        )
        self._ingest_once = idempotent_function(
            self._ingest,
            data_keyword_argument="batch",
            persistence_store=idempotency_store,
            config=self.idempotency,
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], metrics: Metrics, logger: Logger) -> IngestApp:
        """The deployed wiring: settings from the environment, idempotency records in the table."""
        settings = IngestSettings.from_environ(environ)
        guard = aws_guard(settings, settings.guard_config(settings.detection()))
        return cls(settings, dynamodb_idempotency_store(settings.table_name), metrics, logger, guard)

    def handle(self, event: CloudWatchLogsEvent, context: LambdaContext | None) -> dict[str, Any]:
        """Process one subscription delivery; returns a summary of what was counted."""
        if context is not None:
            self.idempotency.register_lambda_context(context)
        batch = self._decode(event)
        if batch.get("messageType") == "CONTROL_MESSAGE":
            self.logger.debug("skipped a CloudWatch Logs control message")
            return {"skipped": "CONTROL_MESSAGE"}
        log_group, log_events = batch["logGroup"], batch["logEvents"]
        ids = [str(e.get("id", "")) if isinstance(e, dict) else "" for e in log_events]
        key = {"logGroup": log_group, "batchKey": batch_key(log_group, ids)}
        summary: dict[str, Any] = self._ingest_once(batch=key, log_events=log_events)
        return summary

    def _decode(self, event: CloudWatchLogsEvent) -> dict[str, Any]:
        try:
            batch = event.parse_logs_data().raw_event
            if not isinstance(batch.get("logGroup"), str) or not isinstance(batch.get("logEvents"), list):
                raise ValueError("the payload is JSON but not a CloudWatch Logs batch (logGroup, logEvents)")
        except (KeyError, TypeError, ValueError, binascii.Error, zlib.error, UnicodeDecodeError) as error:
            # orjson.JSONDecodeError is a ValueError; a missing "awslogs" key is a KeyError.
            self.logger.error("undecodable CloudWatch Logs subscription payload", extra={"error": str(error)})
            dimensions = {"AppMonitor": UNMATCHED, "Audience": NO_AUDIENCE}
            for name, value in dimensions.items():
                self.metrics.add_dimension(name=name, value=value)
            publish_rejections(self.metrics, dimensions, {RejectReason.UNDECODABLE: 1})
            raise UndecodablePayloadError(str(error)) from error
        return batch

    def _ingest(self, batch: dict[str, Any], log_events: list[Any]) -> dict[str, Any]:
        log_group = batch["logGroup"]
        report = ingest_batch(log_group, log_events, self.monitors, self.settings.identity_attribute)
        # Decide before publishing: if the decision path fails, the invocation fails and is retried
        # whole, and nothing of this attempt has been counted in the metrics yet.
        outcome = None
        if self.guard is not None:
            outcome = self.guard.on_batch(report, batch["batchKey"])
        publish_batch(self.metrics, report)
        log_rejections(self.logger, report)
        if outcome is not None:
            publish_outcome(self.metrics, outcome)
            log_outcome(self.logger, outcome, logGroup=log_group)
        return summarize(report, outcome)


def summarize(report: BatchReport, outcome: GuardOutcome | None = None) -> dict[str, Any]:
    """The small JSON summary a batch returns (and the idempotency record keeps)."""
    summary: dict[str, Any] = {
        "logGroup": report.log_group,
        "appMonitor": report.monitor.name if report.monitor else None,
        "logEvents": report.log_events,
        "accepted": report.accepted,
        "rejected": {reason.value: count for reason, count in report.rejected.items()},
        "identities": len(report.identities),
    }
    if outcome is not None:
        summary["blocked"] = [b.identity_id for b in outcome.blocked]
        summary["forged"] = sorted(outcome.forged)
    return summary


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        """Now."""
        return datetime.now(UTC)


def aws_guard(
    settings: EnforcementSettings,
    config: GuardConfig,
    *,
    client: Callable[[str], Any] | None = None,
    wrap_role: Callable[[GuestRole], GuestRole] | None = None,
) -> Guard:
    """The decision service on AWS: the table, the identity pool, the guest role and the bus.

    ``client`` makes the boto3 clients (the benchmark passes one that logs calls) and ``wrap_role`` may
    decorate the guest role port (the benchmark times its policy writes); the wiring itself stays here.
    """
    # boto3's client() is overloaded per service name; the names below are literal, the factory's are not.
    client = client or cast(Callable[[str], Any], boto3.client)
    dynamodb = client("dynamodb")
    role: GuestRole = IamGuestRole(client("iam"), settings.guest_role_name)
    return Guard(
        config,
        store=DynamoDecisionStore(dynamodb, settings.table_name),
        counters=DynamoCounterStore(dynamodb, settings.table_name),
        identities=CognitoIdentityDirectory(client("cognito-identity"), settings.identity_pool_id),
        role=wrap_role(role) if wrap_role is not None else role,
        bus=EventBridgeBus(client("events"), settings.event_bus_name),
        clock=SystemClock(),
    )


class SweeperApp:
    """The sweeper function: expire blocks, reconcile the deny policy with the table, and (with ``alarms``) the
    per-monitor CloudWatch alarms with the configuration."""

    def __init__(self, guard: Guard, metrics: Metrics, logger: Logger, alarms: AlarmReconciler | None = None) -> None:
        self.guard = guard
        self.metrics = metrics
        self.logger = logger
        self.alarms = alarms

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], metrics: Metrics, logger: Logger) -> SweeperApp:
        """The deployed wiring."""
        settings = SweeperSettings.from_environ(environ)
        monitors = settings.monitor_directory()  # fail the cold start on a bad monitor list, not the first sweep
        alarms = AlarmReconciler(
            CloudWatchAlarms(boto3.client("cloudwatch")),
            settings.alarm_prefix,
            monitors.monitors,
            settings.alarm_thresholds(),
        )
        return cls(aws_guard(settings, GuardConfig(mode=settings.mode)), metrics, logger, alarms)

    def handle(self, event: Mapping[str, Any], context: LambdaContext | None) -> dict[str, Any]:
        """One scheduled sweep."""
        outcome = self.guard.sweep()
        # Pool-wide figures: the deny policy serves every guest monitor at once.
        self.metrics.add_dimension(name="AppMonitor", value=ALL_MONITORS)
        self.metrics.add_dimension(name="Audience", value="guest")
        publish_outcome(self.metrics, outcome)
        log_outcome(self.logger, outcome, trigger=event.get("id"))
        summary: dict[str, Any] = {
            "expired": [b.identity_id for b in outcome.unblocked],
            "policyCapacityUsed": outcome.policy.capacity_used if outcome.policy else None,
            "unenforced": list(outcome.policy.unenforced) if outcome.policy else [],
            "converged": outcome.policy_converged,
        }
        if self.alarms is not None:
            # After the blocks and the policy, which matter more: a CloudWatch failure must not hold them up.
            # It still fails the invocation (so the sweeper's error alarm tells someone); the next sweep retries.
            try:
                report = self.alarms.reconcile()
            except Exception:
                self.logger.exception("could not reconcile the RUM Guard alarms; the next sweep tries again")
                raise
            summary["alarms"] = report.summary()
            if report.created or report.updated or report.retagged or report.deleted:
                self.logger.info("RUM Guard alarms reconciled", extra={"alarms": report.summary()})
        return summary


def dynamodb_idempotency_store(table_name: str) -> DynamoDBPersistenceLayer:
    """Powertools idempotency records in the single RUM Guard table (``pk``/``sk``, TTL on ``ttl``)."""
    return DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value="idempotency#ingest",
        expiry_attr="ttl",
        boto3_client=boto3.client("dynamodb"),
    )


def cloudwatch_logs_event(event: dict[str, Any]) -> CloudWatchLogsEvent:
    """Powertools' data class over a raw subscription event, decoding JSON with orjson."""
    return CloudWatchLogsEvent(event, json_deserializer=orjson.loads)


class NotifyApp:
    """The notify function: one readable message per alarm transition or lockdown change, and a digest of the
    identity events per minute and app monitor (``rumguard.notifications``)."""

    def __init__(
        self,
        settings: NotifySettings,
        publisher: Publisher,
        digests: DigestStore,
        logger: Logger,
        *,
        region: str,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.logger = logger
        self.links = ConsoleLinks(region, settings.dashboard_name)
        self.digester = Digester(
            digests, publisher, self.links, seconds=settings.digest_seconds, clock=clock, sleep=sleep
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], logger: Logger) -> NotifyApp:
        """The deployed wiring: the topic, and the digest windows in the table."""
        settings = NotifySettings.from_environ(environ)
        sns = boto3.client("sns")
        digests = DynamoDigestStore(boto3.client("dynamodb"), settings.table_name)
        return cls(settings, SnsTopic(sns, settings.topic_arn), digests, logger, region=sns.meta.region_name)

    def handle(self, event: Mapping[str, Any], context: LambdaContext | None) -> dict[str, Any]:
        """One EventBridge event; returns what was sent."""
        kind = route(event)
        detail = event.get("detail") if isinstance(event.get("detail"), Mapping) else {}
        assert isinstance(detail, Mapping)
        if kind is Route.ALARM:
            name = detail.get("alarmName")
            notification = alarm_notification(event, self.settings.alarm_prefix, self.links)
            if notification is None:
                self.logger.info("alarm state change not notified", extra={"alarm": name})
                return {"route": kind.value, "alarm": name, "published": None}
            message_id = self.publisher.publish(notification)
            self.logger.info("alarm notified", extra={"alarm": name, "subject": notification.subject})
            return {"route": kind.value, "alarm": name, "published": message_id, "subject": notification.subject}
        if kind is Route.LOCKDOWN:
            notification = lockdown_notification(event, self.links)
            message_id = self.publisher.publish(notification)
            self.logger.info("lockdown notified", extra={"subject": notification.subject})
            return {"route": kind.value, "published": message_id, "subject": notification.subject}
        if kind is Route.DIGEST:
            monitor = str(detail.get("appMonitor") or "")
            at = parse_time(event.get("time"))
            outcome = self.digester.submit(
                monitor,
                event_id(event),
                digest_entry(event),
                at=at.timestamp() if at else None,
                time_left=(lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None,
            )
            summary = {
                "route": kind.value,
                "appMonitor": monitor,
                "window": outcome.index,
                "status": outcome.status.value,
                "opener": outcome.opener,
                "sent": outcome.sent,
            }
            if outcome.sent:
                self.logger.info("digest sent", extra={"digest": summary})
            return summary
        self.logger.warning(
            "event not for the notify function",
            extra={"source": event.get("source"), "detailType": event.get("detail-type")},
        )
        return {"route": kind.value}


def event_id(event: Mapping[str, Any]) -> str:
    """The EventBridge event id (the same on every redelivery); a digest of the event if it has none."""
    value = event.get("id")
    if isinstance(value, str) and value:
        return value
    return hashlib.blake2b(orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
