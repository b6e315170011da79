"""Ingest function: CloudWatch Logs subscription events from the RUM app monitors' log groups."""

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from rumguard.runtime import IngestApp, cloudwatch_logs_event
from rumguard.telemetry import NAMESPACE

logger = Logger(service="rumguard-ingest")
metrics = Metrics(namespace=NAMESPACE)  # no service dimension: every metric is keyed by AppMonitor
tracer = Tracer(service="rumguard-ingest")
app = IngestApp.from_environ(os.environ, metrics, logger)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Decode the subscription event and ingest its batch once."""
    return app.handle(cloudwatch_logs_event(event), context)
