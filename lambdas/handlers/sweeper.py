"""Sweeper function: on a schedule, expire blocks and reconcile the guest role's deny policy."""

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from rumguard.runtime import SweeperApp
from rumguard.telemetry import NAMESPACE

logger = Logger(service="rumguard-sweeper")
metrics = Metrics(namespace=NAMESPACE)  # no service dimension: every metric is keyed by AppMonitor
tracer = Tracer(service="rumguard-sweeper")
app = SweeperApp.from_environ(os.environ, metrics, logger)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One scheduled sweep (an EventBridge Scheduler or rule event; its content is not used)."""
    return app.handle(event, context)
