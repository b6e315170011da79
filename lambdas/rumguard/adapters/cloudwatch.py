"""CloudWatch alarms: the ``AlarmStore`` of ``rumguard.alarms.AlarmReconciler``.

``DescribeAlarms`` by name prefix (paginated), ``ListTagsForResource`` per alarm (``DescribeAlarms`` carries no
tags, and ownership is decided by tags), ``PutMetricAlarm`` (with ``Tags`` only on create: CloudWatch ignores
them on update), ``TagResource`` and ``DeleteAlarms`` (at most 100 names per call).

No alarm actions are ever sent (see ``rumguard.alarms``); the sweeper's IAM policy can require that with the
``cloudwatch:AlarmActions`` condition key. An anomaly detection alarm needs no ``PutAnomalyDetector``: CloudWatch
creates the model with the alarm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from rumguard.alarms import ActualAlarm, AlarmSpec

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

#: ``DeleteAlarms`` takes at most 100 names.
MAX_DELETE: Final = 100


class AlarmError(RuntimeError):
    """CloudWatch refused an alarm change; ``code`` is CloudWatch's error code."""

    def __init__(self, action: str, name: str, code: str, message: str) -> None:
        self.action = action
        self.name = name
        self.code = code
        super().__init__(f"{action} {name!r}: {code}: {message}")


class AlarmQuotaError(AlarmError):
    """The account's alarm quota is reached (``LimitExceeded``)."""


def _error(action: str, name: str, error: ClientError) -> AlarmError:
    details = error.response.get("Error", {})
    code, message = details.get("Code", ""), details.get("Message", str(error))
    kind = AlarmQuotaError if code in {"LimitExceeded", "LimitExceededFault"} else AlarmError
    return kind(action, name, code, message)


class CloudWatchAlarms:
    """The metric alarms of one account and region."""

    def __init__(self, client: CloudWatchClient) -> None:
        self.client = client
        #: Write calls made (tests and logs: a second reconciliation makes none).
        self.writes = 0

    def alarms(self, name_prefix: str) -> list[ActualAlarm]:
        """Every metric alarm whose name starts with ``name_prefix``, with its tags."""
        found: list[ActualAlarm] = []
        paginator = self.client.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmNamePrefix=name_prefix, AlarmTypes=["MetricAlarm"]):
            for alarm in page.get("MetricAlarms", []):
                arn = alarm["AlarmArn"]
                config: dict[str, Any] = dict(alarm)
                found.append(ActualAlarm(alarm["AlarmName"], arn, config, self._tags(arn)))
        return found

    def _tags(self, arn: str) -> dict[str, str]:
        try:
            tags = self.client.list_tags_for_resource(ResourceARN=arn).get("Tags", [])
        except ClientError as error:
            # Deleted between the describe and now: no tags, so never treated as RUM Guard's.
            if error.response.get("Error", {}).get("Code") == "ResourceNotFound":
                return {}
            raise
        return {tag["Key"]: tag["Value"] for tag in tags}

    def put(self, spec: AlarmSpec, *, create: bool) -> None:
        """Create (with tags) or overwrite an alarm; an update leaves its state as it is."""
        arguments: dict[str, Any] = dict(spec.request)
        if create:
            arguments["Tags"] = [{"Key": key, "Value": value} for key, value in spec.tags.items()]
        self.writes += 1
        try:
            self.client.put_metric_alarm(**arguments)
        except ClientError as error:
            raise _error("PutMetricAlarm", spec.name, error) from error

    def tag(self, alarm: ActualAlarm, tags: Mapping[str, str]) -> None:
        """Add or change tags of an existing alarm."""
        self.writes += 1
        try:
            self.client.tag_resource(
                ResourceARN=alarm.arn, Tags=[{"Key": key, "Value": value} for key, value in tags.items()]
            )
        except ClientError as error:
            raise _error("TagResource", alarm.name, error) from error

    def delete(self, names: Sequence[str]) -> None:
        """Delete alarms by name, 100 per call."""
        for start in range(0, len(names), MAX_DELETE):
            chunk = list(names[start : start + MAX_DELETE])
            self.writes += 1
            try:
                self.client.delete_alarms(AlarmNames=chunk)
            except ClientError as error:
                raise _error("DeleteAlarms", ", ".join(chunk), error) from error
