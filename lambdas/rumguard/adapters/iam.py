"""The guest role's inline policies, on IAM: RUM Guard's ``GuestRole`` port.

IAM returns policy documents URL-encoded; botocore decodes them into dicts on the way in (and leaves the
raw string when it cannot). Either way this adapter hands out the compact, key-sorted JSON that
``rumguard.policy.render`` writes, so an unchanged policy compares equal to its rendering and the size the
domain counts is the size IAM counts.

IAM's error codes become the domain errors below; throttling is left to botocore's own retries.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from rumguard.policy import render

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient


class GuestRoleError(RuntimeError):
    """IAM refused a call on the guest role; ``code`` is IAM's error code."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class RoleNotFoundError(GuestRoleError):
    """The configured guest role does not exist (wrong ``GUEST_ROLE_NAME``, or another account)."""


class PolicyRejectedError(GuestRoleError):
    """IAM refused a policy document as malformed."""


class PolicyLimitExceededError(PolicyRejectedError):
    """IAM refused a policy for size: the role's inline policies together exceed 10,240 characters."""


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", str(error))


def normalise_document(document: object) -> str:
    """A policy document as botocore returns it (a dict, or a JSON or URL-encoded JSON string) as the
    compact JSON RUM Guard renders. A string that is no JSON at all is returned unchanged."""
    if isinstance(document, str):
        for text in (document, unquote(document)):
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                continue
            return render(parsed)
        return document
    if isinstance(document, dict):
        return render(document)
    raise TypeError(f"unexpected policy document of type {type(document).__name__}")


class IamGuestRole:
    """The IAM role guests assume, and its inline policies."""

    def __init__(self, client: IAMClient, role_name: str) -> None:
        self.client = client
        self.role_name = role_name

    def inline_policies(self) -> dict[str, str]:
        """Every inline policy of the role, RUM Guard's and others': name -> compact JSON."""
        names: list[str] = []
        try:
            for page in self.client.get_paginator("list_role_policies").paginate(RoleName=self.role_name):
                names.extend(page["PolicyNames"])
        except ClientError as error:
            raise self._error(error, "list the inline policies of") from error
        policies: dict[str, str] = {}
        for name in names:
            try:
                response = self.client.get_role_policy(RoleName=self.role_name, PolicyName=name)
            except ClientError as error:
                if _code(error) == "NoSuchEntity" and self._role_exists():
                    continue  # deleted between the listing and now: it is no longer part of the role
                raise self._error(error, f"read inline policy {name!r} of") from error
            policies[name] = normalise_document(response["PolicyDocument"])
        return policies

    def put_policy(self, name: str, document: str) -> None:
        """Create or replace an inline policy."""
        try:
            self.client.put_role_policy(RoleName=self.role_name, PolicyName=name, PolicyDocument=document)
        except ClientError as error:
            raise self._error(error, f"write inline policy {name!r} ({len(document)} characters) on") from error

    def delete_policy(self, name: str) -> None:
        """Delete an inline policy; one that is already gone is not an error."""
        try:
            self.client.delete_role_policy(RoleName=self.role_name, PolicyName=name)
        except ClientError as error:
            if _code(error) == "NoSuchEntity" and self._role_exists():
                return
            raise self._error(error, f"delete inline policy {name!r} of") from error

    def _role_exists(self) -> bool:
        # IAM answers NoSuchEntity both for a missing role and for a missing policy of an existing role.
        try:
            self.client.get_role(RoleName=self.role_name)
        except ClientError as error:
            if _code(error) == "NoSuchEntity":
                return False
            raise self._error(error, "read") from error
        return True

    def _error(self, error: ClientError, doing: str) -> GuestRoleError:
        code = _code(error)
        message = f"could not {doing} role {self.role_name!r}: {code}: {_message(error)}"
        if code == "NoSuchEntity":
            return RoleNotFoundError(message, code)
        if code == "LimitExceeded":
            return PolicyLimitExceededError(message, code)
        if code == "MalformedPolicyDocument":
            return PolicyRejectedError(message, code)
        return GuestRoleError(message, code)
