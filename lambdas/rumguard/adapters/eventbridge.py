"""RUM Guard's EventBridge bus: the ``EventBus`` port.

One event per detail, source ``rumguard``, the detail as compact JSON. ``PutEvents`` takes at most 10
entries and 256 KB per call and answers per entry: a call can succeed while some entries failed. Entries
that failed for a transient reason (``InternalFailure``, throttling, or a code this adapter does not know)
are put again with backoff; the rest, and those that keep failing, are named in ``EventPublishError``
after every other entry was published. Nothing is dropped silently.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE: Final = "rumguard"
#: PutEvents' limits: entries per call, and bytes per call (each entry counted as AWS documents it).
MAX_ENTRIES: Final = 10
MAX_BYTES: Final = 256 * 1024
#: Per-entry error codes that no retry will fix.
PERMANENT_CODES: Final = frozenset(
    {
        "InvalidArgument",
        "MalformedDetail",
        "AccessDeniedException",
        "NotAuthorizedForSourceException",
        "NotAuthorizedForDetailTypeException",
        "KMSAccessDeniedException",
        "ResourceNotFoundException",
        "NotFoundException",
    }
)


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """An event the bus did not accept, and why."""

    detail: Mapping[str, Any]
    code: str
    message: str


class EventPublishError(RuntimeError):
    """Some events could not be put on the bus; ``failures`` names each."""

    def __init__(self, bus_name: str, detail_type: str, total: int, failures: Sequence[FailedEvent]) -> None:
        self.bus_name = bus_name
        self.detail_type = detail_type
        self.failures = list(failures)
        shown = ", ".join(f"{f.detail.get('identityId') or '-'} ({f.code}: {f.message})" for f in self.failures[:10])
        more = f" and {len(self.failures) - 10} more" if len(self.failures) > 10 else ""
        super().__init__(
            f"{len(self.failures)} of {total} {detail_type!r} events were not put on bus {bus_name!r}: {shown}{more}"
        )


class EventBusNotFoundError(EventPublishError):
    """The configured bus does not exist (wrong ``EVENT_BUS_NAME``, region or account)."""


def entry_size(entry: PutEventsRequestEntryTypeDef) -> int:
    """An entry's size as PutEvents counts it (UTF-8 bytes of its fields, 14 for the time)."""
    size = 14
    for key in ("Source", "DetailType", "Detail"):
        value = entry.get(key)
        if isinstance(value, str):
            size += len(value.encode())
    return size


def chunks(entries: Sequence[PutEventsRequestEntryTypeDef]) -> Iterator[list[PutEventsRequestEntryTypeDef]]:
    """Consecutive groups within PutEvents' limits (an oversized entry goes alone; PutEvents refuses it)."""
    chunk: list[PutEventsRequestEntryTypeDef] = []
    size = 0
    for entry in entries:
        n = entry_size(entry)
        if chunk and (len(chunk) == MAX_ENTRIES or size + n > MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += n
    if chunk:
        yield chunk


class EventBridgeBus:
    """RUM Guard's own EventBridge bus."""

    def __init__(
        self,
        client: EventBridgeClient,
        bus_name: str,
        source: str = SOURCE,
        *,
        attempts: int = 3,
        backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.bus_name = bus_name
        self.source = source
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    def publish(self, detail_type: str, details: Sequence[Mapping[str, Any]]) -> None:
        """Put one event per detail; raises ``EventPublishError`` naming those that were not accepted."""
        entries: list[PutEventsRequestEntryTypeDef] = [
            {
                "Source": self.source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail, separators=(",", ":")),
                "EventBusName": self.bus_name,
            }
            for detail in details
        ]
        failures: list[FailedEvent] = []
        position = 0
        for chunk in chunks(entries):
            members = list(range(position, position + len(chunk)))
            position += len(chunk)
            failures.extend(self._put(members, entries, details))
        if any(f.code == "ResourceNotFoundException" for f in failures):
            raise EventBusNotFoundError(self.bus_name, detail_type, len(entries), failures)
        if failures:
            raise EventPublishError(self.bus_name, detail_type, len(entries), failures)

    def _put(
        self,
        members: list[int],
        entries: Sequence[PutEventsRequestEntryTypeDef],
        details: Sequence[Mapping[str, Any]],
    ) -> list[FailedEvent]:
        failed: list[FailedEvent] = []
        pending = members
        last: dict[int, tuple[str, str]] = {}
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            try:
                response = self.client.put_events(Entries=[entries[i] for i in pending])
            except ClientError as error:
                # Throttling and internal errors were already retried by botocore.
                code = error.response.get("Error", {}).get("Code", "")
                message = error.response.get("Error", {}).get("Message", str(error))
                return failed + [FailedEvent(details[i], code, message) for i in pending]
            retry: list[int] = []
            for i, result in zip(pending, response.get("Entries", []), strict=False):
                error_code = result.get("ErrorCode")
                if not error_code:
                    continue
                error_message = result.get("ErrorMessage", "")
                if error_code in PERMANENT_CODES:
                    failed.append(FailedEvent(details[i], error_code, error_message))
                else:
                    retry.append(i)
                    last[i] = (error_code, error_message)
            if not retry:
                return failed
            pending = retry
        return failed + [FailedEvent(details[i], *last[i]) for i in pending]
