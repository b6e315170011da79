"""The notification topic on SNS: the ``Publisher`` of ``rumguard.notifications``.

One ``Publish`` per notification, the subject and plain-text body as built there, and the notification's
attributes as SNS message attributes (``rumguard.kind``, ``rumguard.state``, ``rumguard.monitor``) so a
subscription can filter, for example a pager that only wants ``ALARM``. Throttling and internal errors are
retried by botocore; a missing topic or a refused publish raises, so the invocation fails and Lambda retries
the event (and, in the end, keeps it in the notify function's dead-letter queue).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from rumguard.notifications import Notification

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef


class PublishError(RuntimeError):
    """SNS refused a notification; ``code`` is SNS's error code."""

    def __init__(self, topic_arn: str, code: str, message: str) -> None:
        self.topic_arn = topic_arn
        self.code = code
        super().__init__(f"could not publish to {topic_arn}: {code}: {message}")


class TopicNotFoundError(PublishError):
    """The configured topic does not exist (wrong ``NOTIFY_TOPIC_ARN``, region or account)."""


class SnsTopic:
    """RUM Guard's notification topic."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def publish(self, notification: Notification) -> str:
        """Publish one notification; the SNS message id."""
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            name: {"DataType": "String", "StringValue": value}
            for name, value in notification.attributes.items()
            if value
        }
        try:
            response = self.client.publish(
                TopicArn=self.topic_arn,
                Subject=notification.subject,
                Message=notification.message,
                MessageAttributes=attributes,
            )
        except ClientError as error:
            details = error.response.get("Error", {})
            code, message = details.get("Code", ""), details.get("Message", str(error))
            kind = TopicNotFoundError if code in {"NotFound", "NotFoundException"} else PublishError
            raise kind(self.topic_arn, code, message) from error
        return response["MessageId"]
