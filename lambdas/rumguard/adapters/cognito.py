"""The Cognito identity pool: RUM Guard's ``IdentityDirectory`` port.

``DescribeIdentity`` does not say which pool an identity belongs to. "In the configured pool" is therefore
checked as: the identity exists in this account and region (``describe`` returns it); the caller also
checks that the id's region prefix is the pool's. An identity of another pool of the same account and
region passes; a forger cannot mint one without that account's other pool, so this is accepted.

``DeleteIdentities`` takes at most 60 ids per call and reports the ids it could not delete with an error
code. ``InternalServerError`` is transient and retried with backoff; ``AccessDenied`` is not. An id that
is not shaped like an identity id is never sent (Cognito would refuse the whole batch) and is reported as
not deleted.

``UpdateIdentityPool`` replaces the pool's whole configuration, so guest access is switched by reading the
pool and writing it back with only ``AllowUnauthenticatedIdentities`` changed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError, ParamValidationError

from rumguard.ports import IdentityInfo

if TYPE_CHECKING:
    from mypy_boto3_cognito_identity import CognitoIdentityClient

logger = logging.getLogger(__name__)

#: DeleteIdentities' limit of ids per call.
DELETE_BATCH: Final = 60
#: Cognito's own shape of an identity id (``<region>:<uuid>``), at most 55 characters.
IDENTITY_ID: Final = re.compile(r"[\w-]+:[0-9a-f-]+")
IDENTITY_ID_MAX: Final = 55
#: Answers that mean "no such identity here": unknown, or not even shaped like an id.
_NOT_FOUND: Final = frozenset({"ResourceNotFoundException", "InvalidParameterException", "ValidationException"})
#: The one UnprocessedIdentityIds error code worth retrying.
_TRANSIENT: Final = "InternalServerError"


class IdentityPoolError(RuntimeError):
    """Cognito refused a call on the identity pool; ``code`` is Cognito's error code."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class IdentityPoolNotFoundError(IdentityPoolError):
    """The configured identity pool does not exist (wrong ``IDENTITY_POOL_ID``, region or account)."""


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", str(error))


def is_identity_id(value: str) -> bool:
    """Whether Cognito would accept ``value`` as an identity id at all."""
    return len(value) <= IDENTITY_ID_MAX and IDENTITY_ID.fullmatch(value) is not None


class CognitoIdentityDirectory:
    """The identities of one Cognito identity pool."""

    def __init__(
        self,
        client: CognitoIdentityClient,
        pool_id: str,
        *,
        attempts: int = 4,
        backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self._pool_id = pool_id
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep

    @property
    def pool_id(self) -> str:
        """The configured identity pool id (``<region>:<uuid>``)."""
        return self._pool_id

    def describe(self, identity_id: str) -> IdentityInfo | None:
        """The identity and its login providers (none for a guest), or ``None`` if Cognito does not know it
        or the id is malformed."""
        if not is_identity_id(identity_id):
            return None
        try:
            response = self.client.describe_identity(IdentityId=identity_id)
        except ParamValidationError:
            return None
        except ClientError as error:
            if _code(error) in _NOT_FOUND:
                return None
            raise IdentityPoolError(
                f"could not describe identity {identity_id}: {_code(error)}: {_message(error)}", _code(error)
            ) from error
        return IdentityInfo(response.get("IdentityId", identity_id), tuple(response.get("Logins", [])))

    def delete(self, identity_ids: Sequence[str]) -> list[str]:
        """Delete identities so they cannot get new credentials; returns those that could not be deleted."""
        failed: list[str] = []
        wanted: list[str] = []
        for identity in dict.fromkeys(identity_ids):
            (wanted if is_identity_id(identity) else failed).append(identity)
        if failed:
            logger.warning("not deleting %d malformed identity ids: %s", len(failed), failed)
        for start in range(0, len(wanted), DELETE_BATCH):
            failed.extend(self._delete_batch(wanted[start : start + DELETE_BATCH]))
        return failed

    def _delete_batch(self, batch: list[str]) -> list[str]:
        refused: list[str] = []
        pending = batch
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            try:
                response = self.client.delete_identities(IdentityIdsToDelete=pending)
            except ClientError as error:
                # Throttling and internal errors were already retried by botocore. The policy's deny still
                # holds these identities: report them rather than abort the rest of the enforcement.
                logger.error("DeleteIdentities failed for %d identities: %s", len(pending), error)
                return refused + pending
            retry: list[str] = []
            for item in response.get("UnprocessedIdentityIds", []):
                identity = item.get("IdentityId", "")
                if item.get("ErrorCode") == _TRANSIENT:
                    retry.append(identity)
                else:
                    logger.error("DeleteIdentities refused %s: %s", identity, item.get("ErrorCode"))
                    refused.append(identity)
            if not retry:
                return refused
            pending = retry
        logger.error("DeleteIdentities kept failing for %d identities: %s", len(pending), pending)
        return refused + pending

    def set_guest_access(self, allowed: bool) -> None:
        """Allow or refuse unauthenticated identities, leaving every other setting of the pool as it was."""
        try:
            pool: dict[str, Any] = dict(self.client.describe_identity_pool(IdentityPoolId=self._pool_id))
        except ClientError as error:
            raise self._pool_error(error, "read") from error
        pool.pop("ResponseMetadata", None)
        # An empty value and an absent one mean the same; botocore refuses some empty ones (min length 1).
        settings = {key: value for key, value in pool.items() if value is not None and value != ""}
        settings["AllowUnauthenticatedIdentities"] = allowed
        try:
            self.client.update_identity_pool(**settings)
        except ClientError as error:
            raise self._pool_error(error, "update") from error

    def _pool_error(self, error: ClientError, doing: str) -> IdentityPoolError:
        code = _code(error)
        message = f"could not {doing} identity pool {self._pool_id}: {code}: {_message(error)}"
        if code == "ResourceNotFoundException":
            return IdentityPoolNotFoundError(message, code)
        return IdentityPoolError(message, code)
