"""Wiring of the ingest function: settings, adapters and Powertools around the pure ingest core.

The handler module builds one ``IngestApp`` at cold start and hands it each event; tests, the demo and
the benchmark build their own with a moto-backed or in-memory idempotency store.
"""

from __future__ import annotations

import binascii
import zlib
from collections.abc import Mapping
from typing import Any, Final

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

from rumguard.events import RejectReason
from rumguard.ingest import BatchReport, ingest_batch
from rumguard.settings import IngestSettings
from rumguard.telemetry import NO_AUDIENCE, UNMATCHED, log_rejections, publish_batch, publish_rejections

#: CloudWatch Logs retries a failed delivery for up to 24 hours; remember batches a little longer.
IDEMPOTENCY_TTL_SECONDS: Final = 25 * 60 * 60
#: A redelivered batch has the same log group and the same log event ids, in the same order.
BATCH_KEY: Final = "[logGroup, logEvents[*].id]"


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
    ) -> None:
        self.settings = settings
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
        return cls(settings, dynamodb_idempotency_store(settings.table_name), metrics, logger)

    def handle(self, event: CloudWatchLogsEvent, context: LambdaContext | None) -> dict[str, Any]:
        """Process one subscription delivery; returns a summary of what was counted."""
        if context is not None:
            self.idempotency.register_lambda_context(context)
        batch = self._decode(event)
        if batch.get("messageType") == "CONTROL_MESSAGE":
            self.logger.debug("skipped a CloudWatch Logs control message")
            return {"skipped": "CONTROL_MESSAGE"}
        summary: dict[str, Any] = self._ingest_once(batch=batch)
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

    def _ingest(self, batch: dict[str, Any]) -> dict[str, Any]:
        report = ingest_batch(batch["logGroup"], batch["logEvents"], self.monitors, self.settings.identity_attribute)
        publish_batch(self.metrics, report)
        log_rejections(self.logger, report)
        return summarize(report)


def summarize(report: BatchReport) -> dict[str, Any]:
    """The small JSON summary a batch returns (and the idempotency record keeps)."""
    return {
        "logGroup": report.log_group,
        "appMonitor": report.monitor.name if report.monitor else None,
        "logEvents": report.log_events,
        "accepted": report.accepted,
        "rejected": {reason.value: count for reason, count in report.rejected.items()},
        "identities": len(report.identities),
    }


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
