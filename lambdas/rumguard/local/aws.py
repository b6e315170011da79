"""The embedded AWS: moto with RUM Guard's resources, for the demo, ``chalice local`` and the tests.

``EmbeddedAws`` starts moto, creates the RUM Guard table from template.yaml's own definition, and plays
the part of CloudWatch RUM and CloudWatch Logs around the ingest function: it creates each app monitor's
log group under the name RUM gives it, writes RUM events into it with ``PutLogEvents`` (within that API's
limits, one log stream per hour as RUM does), and reads them back with ``FilterLogEvents`` into the
subscription deliveries CloudWatch Logs would make, log event ids and all.

It also holds what the decision service acts on: a Cognito identity pool that allows guests (with
``DescribeIdentity`` and ``DeleteIdentities``, which moto lacks, added by ``rumguard.local.cognito``), the
guest role guests assume, and RUM Guard's EventBridge bus with a rule that copies every RUM Guard event to
an SQS queue, so tests and the demo can read what was published.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import boto3
from moto import mock_aws

from rumguard.local import cognito, iam
from rumguard.local.context import ACCOUNT_ID
from rumguard.local.subscription import (
    EVENT_OVERHEAD_BYTES,
    MAX_BATCH_BYTES,
    LogEvent,
    batches,
    subscription_event,
)
from rumguard.local.template import table_definition, ttl_attribute
from rumguard.local.traffic import LogRecord
from rumguard.monitors import Audience, Monitor

if TYPE_CHECKING:
    from mypy_boto3_cognito_identity import CognitoIdentityClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

#: The two app monitors of the Retail Demo Store walkthrough.
GUEST_MONITOR: Final = "RetailDemoStore_Unauthenticated"
SIGNED_IN_MONITOR: Final = "RetailDemoStore_Authenticated"
DEFAULT_REGION: Final = "us-east-1"
#: The subscription filter name the deliveries carry (template.yaml's CloudWatchLogs events make one each).
FILTER_NAME: Final = "rumguard-ingest"
GUEST_ROLE: Final = "RetailDemoStore-GuestRole"
EVENT_BUS: Final = "rumguard"
#: The guest role's own permission: what the RUM web client needs.
GUEST_ROLE_POLICY: Final = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rum:PutRumEvents","Resource":"*"}]}'
)

#: PutLogEvents: at most 10,000 events and 1,048,576 bytes (messages plus 26 bytes each) per call, and the
#: events of one call within 24 hours of each other, in chronological order.
PUT_MAX_EVENTS: Final = 10_000
PUT_MAX_BYTES: Final = 1_048_576
PUT_MAX_SPAN_MS: Final = 24 * 60 * 60 * 1000
#: The largest single log event.
MAX_EVENT_BYTES: Final = PUT_MAX_BYTES - EVENT_OVERHEAD_BYTES

_FAKE_ENV: Final = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True, slots=True)
class Inbox:
    """An SNS topic and the SQS queue subscribed to it (``EmbeddedAws.create_inbox``)."""

    topic_arn: str
    queue_url: str


class LogsWriteError(RuntimeError):
    """CloudWatch Logs refused some log events: a simulation must never lose events silently."""


@dataclass(frozen=True, slots=True)
class AppMonitor:
    """An app monitor as RUM holds it: name, audience, id, and the log group its data goes to."""

    monitor: Monitor
    id: str

    @property
    def name(self) -> str:
        """The app monitor's name."""
        return self.monitor.name

    @property
    def log_group(self) -> str:
        """``/aws/vendedlogs/RUMService_<name><first 8 characters of the id>``."""
        return self.monitor.log_group_name(self.id)


def app_monitor_id(name: str) -> str:
    """A stable app monitor id (a UUID, as RUM makes them) for a monitor name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"rumguard:app-monitor:{name}"))


def log_stream_name(timestamp_ms: int) -> str:
    """RUM writes one log stream per hour, named after it: ``2026-01-01T00``."""
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H")


class EmbeddedAws:
    """moto, started, with RUM Guard's table and the app monitors' log groups. Use as a context manager."""

    def __init__(
        self,
        *,
        guest_monitors: Sequence[str] = (GUEST_MONITOR,),
        signed_in_monitors: Sequence[str] = (SIGNED_IN_MONITOR,),
        table_name: str = "rumguard-local",
        region: str | None = None,
        identity_attribute: str = "cognitoIdentityId",
        template: dict[str, Any] | None = None,
        mode: str = "enforce",
    ) -> None:
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self.table_name = table_name
        self.identity_attribute = identity_attribute
        self.template = template
        self.account_id = ACCOUNT_ID
        self.mode = mode
        self.guest_role_name = GUEST_ROLE
        self.event_bus_name = EVENT_BUS
        self.identity_pool_id = ""
        self.events_queue_url = ""
        self.app_monitors: dict[str, AppMonitor] = {}
        for audience, names in ((Audience.GUEST, guest_monitors), (Audience.SIGNED_IN, signed_in_monitors)):
            for name in names:
                self.app_monitors[name] = AppMonitor(Monitor(name, audience), app_monitor_id(name))
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._streams: set[tuple[str, str]] = set()

    # --- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start moto and create the resources. Region and fake credentials are set if the shell has none."""
        defaults = {"AWS_DEFAULT_REGION": self.region, **_FAKE_ENV}
        self._saved_env = {name: os.environ.get(name) for name in defaults}
        for name, value in defaults.items():
            os.environ.setdefault(name, value)
        self._mock = mock_aws()
        self._mock.start()
        iam.install()  # moto stores any size of inline policy; IAM refuses past 10,240 characters
        try:
            self.session = _session(self.region)
            self.logs: CloudWatchLogsClient = self.session.client("logs")
            self.dynamodb: DynamoDBClient = self.session.client("dynamodb")
            self._create_table()
            for app_monitor in self.app_monitors.values():
                self.create_log_group(app_monitor.log_group)
            self._create_identity_resources()
            self._create_event_bus()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop moto (its state is gone) and restore the environment."""
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        self._streams.clear()

    def _create_table(self) -> None:
        self.dynamodb.create_table(**table_definition(self.table_name, self.template))
        self.dynamodb.get_waiter("table_exists").wait(TableName=self.table_name)
        self.dynamodb.update_time_to_live(
            TableName=self.table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute(self.template)},
        )

    def _create_identity_resources(self) -> None:
        """The identity pool (guests allowed) and the guest role whose trust policy names it."""
        cognito.install()
        self.cognito: CognitoIdentityClient = self.session.client("cognito-identity")
        self.iam: IAMClient = self.session.client("iam")
        pool = self.cognito.create_identity_pool(
            IdentityPoolName="RetailDemoStore", AllowUnauthenticatedIdentities=True
        )
        self.identity_pool_id = pool["IdentityPoolId"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": "cognito-identity.amazonaws.com"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {"cognito-identity.amazonaws.com:aud": self.identity_pool_id},
                        "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": "unauthenticated"},
                    },
                }
            ],
        }
        self.iam.create_role(RoleName=self.guest_role_name, AssumeRolePolicyDocument=json.dumps(trust))
        self.iam.put_role_policy(
            RoleName=self.guest_role_name, PolicyName="rum-put-events", PolicyDocument=GUEST_ROLE_POLICY
        )

    def _create_event_bus(self) -> None:
        """RUM Guard's bus, and a rule copying every RUM Guard event to an SQS queue (what tests read)."""
        self.events: EventBridgeClient = self.session.client("events")
        self.sqs: SQSClient = self.session.client("sqs")
        self.events.create_event_bus(Name=self.event_bus_name)
        self.events_queue_url = self.sqs.create_queue(QueueName="rumguard-events")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.events_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.events.put_rule(
            Name="rumguard-all", EventBusName=self.event_bus_name, EventPattern='{"source":["rumguard"]}'
        )
        self.events.put_targets(
            Rule="rumguard-all", EventBusName=self.event_bus_name, Targets=[{"Id": "queue", "Arn": queue_arn}]
        )

    def new_guest(self) -> str:
        """A new guest identity in the pool (what the web client gets with GetId)."""
        return cognito.new_identity(self.cognito, self.identity_pool_id)

    def new_signed_in(self, login: str) -> str:
        """A new signed-in identity (with a login) in the pool."""
        return cognito.new_identity(self.cognito, self.identity_pool_id, logins={"cognito-idp.example": login})

    def published_events(self) -> list[dict[str, Any]]:
        """Every RUM Guard event published so far (drains the queue): EventBridge envelopes, detail parsed."""
        found: list[dict[str, Any]] = []
        while True:
            response = self.sqs.receive_message(QueueUrl=self.events_queue_url, MaxNumberOfMessages=10)
            messages = response.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append(envelope)
                self.sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"])

    def create_inbox(self, topic_name: str = "rumguard-notifications", queue_name: str = "rumguard-inbox") -> Inbox:
        """An SNS topic with an SQS queue subscribed to it: the queue stands in for a person's mailbox."""
        sns: SNSClient = self.session.client("sns")
        topic_arn = sns.create_topic(Name=topic_name)["TopicArn"]
        queue_url = self.sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        return Inbox(topic_arn, queue_url)

    def received(self, inbox: Inbox) -> list[dict[str, Any]]:
        """Every notification the inbox received so far (drains it), as the queue returns them: ``subject``,
        ``message`` and ``attributes`` (the SNS message attributes, name -> value)."""
        found: list[dict[str, Any]] = []
        while True:
            response = self.sqs.receive_message(QueueUrl=inbox.queue_url, MaxNumberOfMessages=10)
            messages = response.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                found.append(
                    {"subject": envelope.get("Subject", ""), "message": envelope["Message"], "attributes": attributes}
                )
                self.sqs.delete_message(QueueUrl=inbox.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def guest_role_policies(self) -> dict[str, dict[str, Any]]:
        """The guest role's inline policies, name -> document."""
        names = self.iam.list_role_policies(RoleName=self.guest_role_name)["PolicyNames"]
        policies: dict[str, dict[str, Any]] = {}
        for name in names:
            document = self.iam.get_role_policy(RoleName=self.guest_role_name, PolicyName=name)["PolicyDocument"]
            policies[name] = json.loads(document) if isinstance(document, str) else dict(document)
        return policies

    def identity_exists(self, identity_id: str) -> bool:
        """Whether the pool still has this identity."""
        try:
            self.cognito.describe_identity(IdentityId=identity_id)
        except self.cognito.exceptions.ResourceNotFoundException:
            return False
        return True

    # --- configuration --------------------------------------------------------------------------------
    def monitor(self, name: str) -> AppMonitor:
        """One configured app monitor by name."""
        return self.app_monitors[name]

    def monitors(self, audience: Audience | None = None) -> list[AppMonitor]:
        """The configured app monitors (guests first), optionally of one audience."""
        return [m for m in self.app_monitors.values() if audience is None or m.monitor.audience is audience]

    def ingest_environment(self) -> dict[str, str]:
        """The ingest function's environment (its settings, plus the region Lambda sets)."""
        return {
            "RUMGUARD_TABLE": self.table_name,
            "GUEST_MONITORS": ",".join(m.name for m in self.monitors(Audience.GUEST)),
            "SIGNED_IN_MONITORS": ",".join(m.name for m in self.monitors(Audience.SIGNED_IN)),
            "IDENTITY_ATTRIBUTE": self.identity_attribute,
            **self.enforcement_environment(),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "POWERTOOLS_TRACE_DISABLED": "1",
        }

    def enforcement_environment(self) -> dict[str, str]:
        """What every function that acts on identities reads (``EnforcementSettings``)."""
        return {
            "RUMGUARD_TABLE": self.table_name,
            "IDENTITY_POOL_ID": self.identity_pool_id,
            "GUEST_ROLE_NAME": self.guest_role_name,
            "EVENT_BUS_NAME": self.event_bus_name,
            "RUMGUARD_MODE": self.mode,
        }

    def sweeper_environment(self) -> dict[str, str]:
        """The sweeper function's environment."""
        return {
            "GUEST_MONITORS": ",".join(m.name for m in self.monitors(Audience.GUEST)),
            "SIGNED_IN_MONITORS": ",".join(m.name for m in self.monitors(Audience.SIGNED_IN)),
            "ALARM_PREFIX": "rumguard",
            **self.enforcement_environment(),
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "POWERTOOLS_TRACE_DISABLED": "1",
        }

    # --- CloudWatch Logs: writing ---------------------------------------------------------------------
    def create_log_group(self, log_group: str) -> None:
        """Create a log group (RUM does this when data storage is turned on)."""
        self.logs.create_log_group(logGroupName=log_group)

    def _ensure_stream(self, log_group: str, stream: str) -> None:
        if (log_group, stream) in self._streams:
            return
        with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
            self.logs.create_log_stream(logGroupName=log_group, logStreamName=stream)
        self._streams.add((log_group, stream))

    def put_records(self, records: Iterable[LogRecord]) -> int:
        """Write simulated RUM events to their monitors' log groups, one stream per hour; returns the count."""
        by_stream: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        for record in records:
            log_group = self.monitor(record.monitor.name).log_group
            by_stream[(log_group, log_stream_name(record.timestamp_ms))].append((record.timestamp_ms, record.message))
        return sum(self.put_log_events(group, stream, events) for (group, stream), events in by_stream.items())

    def put_messages(self, log_group: str, messages: Iterable[tuple[int, str]]) -> int:
        """Write raw ``(timestamp_ms, message)`` log events to a log group, one stream per hour."""
        by_stream: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for timestamp, message in messages:
            by_stream[log_stream_name(timestamp)].append((timestamp, message))
        return sum(self.put_log_events(log_group, stream, events) for stream, events in by_stream.items())

    def put_log_events(self, log_group: str, stream: str, events: Iterable[tuple[int, str]]) -> int:
        """``PutLogEvents`` in as many calls as its limits need; raises if any event is refused."""
        self._ensure_stream(log_group, stream)
        ordered = sorted(events, key=lambda event: event[0])  # chronological within a call; sort is stable
        written = 0
        for chunk in _put_chunks(ordered):
            response = self.logs.put_log_events(
                logGroupName=log_group,
                logStreamName=stream,
                logEvents=[{"timestamp": timestamp, "message": message} for timestamp, message in chunk],
            )
            refused = response.get("rejectedLogEventsInfo")
            if refused:
                raise LogsWriteError(
                    f"CloudWatch Logs refused log events of {log_group}/{stream}: {refused} (it takes events "
                    "from the last 14 days up to 2 hours ahead; simulate traffic with a recent start time)"
                )
            written += len(chunk)
        return written

    # --- CloudWatch Logs: reading, and delivering to a subscription ----------------------------------
    def log_streams(self, log_group: str) -> list[str]:
        """The log group's stream names, in name order (for RUM's hourly streams, time order)."""
        names: list[str] = []
        for page in self.logs.get_paginator("describe_log_streams").paginate(logGroupName=log_group):
            names.extend(stream["logStreamName"] for stream in page.get("logStreams", []))
        return sorted(names)

    def log_events(self, log_group: str, stream: str) -> Iterator[LogEvent]:
        """Every log event of one stream as CloudWatch Logs stored it (its id included), page by page."""
        paginator = self.logs.get_paginator("filter_log_events")
        for page in paginator.paginate(logGroupName=log_group, logStreamNames=[stream]):
            for event in page.get("events", []):
                yield LogEvent(id=event["eventId"], timestamp=event["timestamp"], message=event["message"])

    def deliveries(self, log_group: str, *, max_bytes: int = MAX_BATCH_BYTES) -> Iterator[dict[str, Any]]:
        """The Lambda events a subscription filter on ``log_group`` receives: one stream per delivery, each
        delivery within CloudWatch Logs' size limits (``max_bytes`` makes them smaller, as when events
        trickle in)."""
        for stream in self.log_streams(log_group):
            for batch in batches(self.log_events(log_group, stream), max_bytes):
                yield subscription_event(
                    log_group, batch, log_stream=stream, owner=self.account_id, filter_name=FILTER_NAME
                )

    def all_deliveries(self, *, max_bytes: int = MAX_BATCH_BYTES) -> Iterator[tuple[AppMonitor, dict[str, Any]]]:
        """Deliveries of every configured monitor's log group, monitor by monitor."""
        for app_monitor in self.app_monitors.values():
            for event in self.deliveries(app_monitor.log_group, max_bytes=max_bytes):
                yield app_monitor, event


@cache
def _session(region: str) -> boto3.session.Session:
    """One boto3 session per region for the whole process: loading the service models is most of the cost
    of a client, and a session keeps them. Clients made from it work across moto starts."""
    return boto3.session.Session(region_name=region)


def _put_chunks(events: Sequence[tuple[int, str]]) -> Iterator[Sequence[tuple[int, str]]]:
    """Split time-ordered events into PutLogEvents calls: count, size and 24-hour span limits."""
    start, size = 0, 0
    for index, (timestamp, message) in enumerate(events):
        cost = len(message.encode()) + EVENT_OVERHEAD_BYTES
        if cost > PUT_MAX_BYTES:
            raise LogsWriteError(f"a log event of {cost - EVENT_OVERHEAD_BYTES} bytes exceeds {MAX_EVENT_BYTES}")
        full = index - start >= PUT_MAX_EVENTS or size + cost > PUT_MAX_BYTES
        if index > start and (full or timestamp - events[start][0] > PUT_MAX_SPAN_MS):
            yield events[start:index]
            start, size = index, 0
        size += cost
    if start < len(events):
        yield events[start:]
