"""In-memory stand-ins for the AWS resources of the ingest path, for the benchmark, replay and tests.

``InMemoryPersistenceLayer`` is a Powertools idempotency persistence layer that keeps its records in a
dict. It follows the DynamoDB layer's semantics call for call, so code that runs on it behaves as on the
table: a put is a conditional write that fails while a live record holds the key, an update is an upsert,
a delete of a missing key is a no-op, and a get returns a record even after it expired (the DynamoDB layer
reads with no TTL filter; TTL deletion is lazy) and leaves the expiry decision to Powertools.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord

INPROGRESS = STATUS_CONSTANTS["INPROGRESS"]


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One record as the table would hold it: raw attributes, no derived ``EXPIRED`` status."""

    idempotency_key: str
    status: str
    expiry_timestamp: int | None
    in_progress_expiry_timestamp: int | None = None
    response_data: str | None = None
    payload_hash: str | None = None

    def to_data_record(self) -> DataRecord:
        """A fresh ``DataRecord``, the way the DynamoDB layer deserializes an item."""
        return DataRecord(
            idempotency_key=self.idempotency_key,
            status=self.status,
            expiry_timestamp=self.expiry_timestamp,
            in_progress_expiry_timestamp=self.in_progress_expiry_timestamp,
            response_data=self.response_data or "",
            payload_hash=self.payload_hash or "",
        )


class InMemoryPersistenceLayer(BasePersistenceLayer):
    """Idempotency records in a dict, with the DynamoDB layer's conditions (and its atomic conditional put).

    ``clock`` returns the current Unix time in seconds; the put condition reads it (``expiry < now``, and an
    in-progress record whose Lambda ran out of time, ``in_progress_expiry < now in ms``). Powertools itself
    decides whether a record it reads has expired with the wall clock.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
        self._clock = clock
        self._items: dict[str, StoredItem] = {}
        self._lock = threading.Lock()
        #: Calls per operation, for tests and the benchmark's sanity checks.
        self.calls: dict[str, int] = {"get": 0, "put": 0, "update": 0, "delete": 0}

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> dict[str, StoredItem]:
        """A snapshot of the stored records by idempotency key."""
        with self._lock:
            return dict(self._items)

    def _get_record(self, idempotency_key: str) -> DataRecord:
        self.calls["get"] += 1
        item = self._items.get(idempotency_key)
        if item is None:
            raise IdempotencyItemNotFoundError
        return item.to_data_record()

    def _put_record(self, data_record: DataRecord) -> None:
        self.calls["put"] += 1
        new = StoredItem(
            idempotency_key=data_record.idempotency_key,
            status=data_record._status,  # the raw status, as the DynamoDB layer writes it
            expiry_timestamp=data_record.expiry_timestamp,
            in_progress_expiry_timestamp=data_record.in_progress_expiry_timestamp,
            payload_hash=data_record.payload_hash
            if self.payload_validation_enabled and data_record.payload_hash
            else None,
        )
        with self._lock:
            old = self._items.get(data_record.idempotency_key)
            if old is not None and not self._replaceable(old):
                old_record = old.to_data_record()
                # As DynamoDB does with ReturnValuesOnConditionCheckFailure: validate against the old record,
                # cache it, and hand it back so Powertools needs no second read.
                self._validate_payload(data_payload=data_record, stored_data_record=old_record)
                self._save_to_cache(data_record=old_record)
                raise IdempotencyItemAlreadyExistsError(old_data_record=old_record)
            self._items[data_record.idempotency_key] = new

    def _replaceable(self, old: StoredItem) -> bool:
        """The DynamoDB layer's put condition, for a key that exists."""
        now = self._clock()
        if old.expiry_timestamp is not None and old.expiry_timestamp < int(now):
            return True
        return (
            old.status == INPROGRESS
            and old.in_progress_expiry_timestamp is not None
            and old.in_progress_expiry_timestamp < int(now * 1000)
        )

    def _update_record(self, data_record: DataRecord) -> None:
        self.calls["update"] += 1
        with self._lock:
            old = self._items.get(data_record.idempotency_key)
            # UpdateItem creates the item when it is missing; it sets these attributes and keeps the others.
            base = old or StoredItem(data_record.idempotency_key, data_record._status, None)
            updated = replace(
                base,
                status=data_record._status,
                expiry_timestamp=data_record.expiry_timestamp,
                response_data=data_record.response_data,
            )
            if self.payload_validation_enabled:
                updated = replace(updated, payload_hash=data_record.payload_hash)
            self._items[data_record.idempotency_key] = updated

    def _delete_record(self, data_record: DataRecord) -> None:
        self.calls["delete"] += 1
        with self._lock:
            self._items.pop(data_record.idempotency_key, None)
