"""Notify function: alarm state changes and RUM Guard's events (EventBridge) as readable messages on SNS."""

import os
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from rumguard.runtime import NotifyApp

logger = Logger(service="rumguard-notify")
tracer = Tracer(service="rumguard-notify")
app = NotifyApp.from_environ(os.environ, logger)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One EventBridge event: a CloudWatch alarm state change or a RUM Guard event."""
    return app.handle(event, context)
