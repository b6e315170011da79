"""The notify function's digest windows in the RUM Guard table: the ``DigestStore`` of ``rumguard.notifications``.

One item per app monitor and window: ``pk = "notify#digest#<monitor>"``, ``sk = "<seconds>#<index>"`` (the window
length and its index since the epoch, zero-padded so they sort as times). Attributes:

``entries``
    The events of the window (compact JSON strings), at most ``MAX_ENTRIES``; removed once it is sent.
``entryIds``
    The EventBridge ids of the events appended (a string set), kept after sending so that a redelivery of an
    event already sent is recognised.
``opener``
    The id of the event whose append created the item: that invocation waits for the window's end.
``overflow``
    How many events came past ``MAX_ENTRIES`` (counted, not listed).
``leaseUntil``, ``sentAt``
    Epoch seconds: who claimed the window for sending holds it until ``leaseUntil``; ``sentAt`` once published.
    Either one closes the window to appends.
``ttl``
    Two days: long enough to recognise any retry, short enough to keep the partition small.

The notify function's IAM policy can hold it to these items with ``dynamodb:LeadingKeys`` ``notify#*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from rumguard.notifications import MAX_ENTRIES, AddResult, AddStatus, Window

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

PK_PREFIX: Final = "notify#digest#"
TTL_SECONDS: Final = 2 * 24 * 3600
_OPEN: Final = "attribute_not_exists(leaseUntil) AND attribute_not_exists(sentAt)"
_NEW_ENTRY: Final = "(attribute_not_exists(entryIds) OR NOT contains(entryIds, :id))"


def _key(monitor: str, seconds: int, index: int) -> dict[str, AttributeValueTypeDef]:
    return {"pk": {"S": f"{PK_PREFIX}{monitor}"}, "sk": {"S": _sk(seconds, index)}}


def _sk(seconds: int, index: int) -> str:
    return f"{seconds:04d}#{index:012d}"


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _number(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name)
    return float(value["N"]) if isinstance(value, dict) and "N" in value else None


def _window(monitor: str, item: dict[str, Any]) -> Window:
    sk = item["sk"]["S"]
    entries = [value["S"] for value in item.get("entries", {}).get("L", []) if "S" in value]
    return Window(
        monitor=monitor,
        index=int(sk.split("#", 1)[1]),
        entries=entries,
        overflow=int(_number(item, "overflow") or 0),
        lease_until=_number(item, "leaseUntil"),
    )


class DynamoDigestStore:
    """Digest windows in the single RUM Guard table."""

    def __init__(self, client: DynamoDBClient, table_name: str, *, max_entries: int = MAX_ENTRIES) -> None:
        self.client = client
        self.table_name = table_name
        self.max_entries = max_entries

    def add(self, monitor: str, seconds: int, index: int, entry_id: str, entry: str, *, now: float) -> AddResult:
        """Append the entry (or, past ``max_entries``, count it) unless the window is closed or has it already."""
        key = _key(monitor, seconds, index)
        for _ in range(3):
            try:
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key=key,
                    UpdateExpression=(
                        "SET entries = list_append(if_not_exists(entries, :empty), :entry), "
                        "opener = if_not_exists(opener, :id), #ttl = if_not_exists(#ttl, :ttl) ADD entryIds :ids"
                    ),
                    ConditionExpression=(
                        f"{_OPEN} AND {_NEW_ENTRY} AND (attribute_not_exists(entries) OR size(entries) < :cap)"
                    ),
                    ExpressionAttributeNames={"#ttl": "ttl"},
                    ExpressionAttributeValues={
                        ":empty": {"L": []},
                        ":entry": {"L": [{"S": entry}]},
                        ":id": {"S": entry_id},
                        ":ids": {"SS": [entry_id]},
                        ":ttl": {"N": str(int(now) + TTL_SECONDS)},
                        ":cap": {"N": str(self.max_entries)},
                    },
                    ReturnValues="UPDATED_NEW",
                )
                return AddResult(AddStatus.ADDED, response.get("Attributes", {}).get("opener", {}).get("S"))
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    raise
            # Why was it refused? Read the window as it is now.
            item = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item", {})
            opener = item.get("opener", {}).get("S")
            if entry_id in item.get("entryIds", {}).get("SS", []):
                return AddResult(AddStatus.DUPLICATE, opener)
            if "leaseUntil" in item or "sentAt" in item:
                return AddResult(AddStatus.CLOSED, None)
            if len(item.get("entries", {}).get("L", [])) >= self.max_entries and self._overflow(key, entry_id):
                return AddResult(AddStatus.ADDED, opener)
            # The window changed between the two reads: try again.
        raise RuntimeError(f"could not append event {entry_id} to digest window {index} of {monitor!r}")

    def _overflow(self, key: dict[str, AttributeValueTypeDef], entry_id: str) -> bool:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=key,
                UpdateExpression="ADD overflow :one, entryIds :ids",
                ConditionExpression=f"attribute_exists(pk) AND {_OPEN} AND {_NEW_ENTRY}",
                ExpressionAttributeValues={":one": {"N": "1"}, ":ids": {"SS": [entry_id]}, ":id": {"S": entry_id}},
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def unsent(self, monitor: str, seconds: int, first: int, last: int) -> list[Window]:
        """The windows ``first..last`` not marked sent, oldest first (a consistent query of one partition)."""
        if last < first:
            return []
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "FilterExpression": "attribute_not_exists(sentAt)",
            "ExpressionAttributeValues": {
                ":pk": {"S": f"{PK_PREFIX}{monitor}"},
                ":first": {"S": _sk(seconds, max(first, 0))},
                ":last": {"S": _sk(seconds, last)},
            },
            "ConsistentRead": True,
        }
        windows: list[Window] = []
        while True:
            page = self.client.query(**arguments)
            windows.extend(_window(monitor, item) for item in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return windows
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def claim(self, monitor: str, seconds: int, index: int, *, now: float, lease: float) -> Window | None:
        """Close the window and hold it for sending until ``now + lease``; ``None`` if held or sent."""
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=_key(monitor, seconds, index),
                UpdateExpression="SET leaseUntil = :until ADD claims :one",
                ConditionExpression=(
                    "attribute_exists(pk) AND attribute_not_exists(sentAt) "
                    "AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now)"
                ),
                ExpressionAttributeValues={
                    ":until": {"N": repr(now + lease)},
                    ":now": {"N": repr(now)},
                    ":one": {"N": "1"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return None
            raise
        return _window(monitor, dict(response["Attributes"]))

    def mark_sent(self, monitor: str, seconds: int, index: int, *, now: float) -> None:
        """Mark the window sent and drop its entries (the ids stay, to recognise late redeliveries)."""
        self.client.update_item(
            TableName=self.table_name,
            Key=_key(monitor, seconds, index),
            UpdateExpression="SET sentAt = :now REMOVE entries",
            ExpressionAttributeValues={":now": {"N": repr(now)}},
        )
