"""What moto 5.2's IAM does not enforce, added so the embedded AWS refuses what IAM refuses.

IAM allows at most 10,240 characters of inline policy per role, all of the role's inline policies
together, whitespace not counted. A ``PutRolePolicy`` that would take the role over that total fails with
``LimitExceeded`` ("Maximum policy size of 10240 bytes exceeded for role ...") and changes nothing. moto
stores any size, so without this a test of RUM Guard's policy packing could never fail. ``install()``
wraps moto's ``IAMBackend.put_role_policy`` with that check; it is idempotent, and moto's state still
resets with each ``mock_aws``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from moto.iam.exceptions import LimitExceededException
from moto.iam.models import IAMBackend

#: IAM's limit on all inline policies of one role together, in characters without whitespace.
ROLE_INLINE_LIMIT: Final = 10_240
_INSTALLED: Final = "_rumguard_inline_limit"


def inline_size(document: str) -> int:
    """IAM's size of a policy document: its characters, whitespace not counted."""
    return sum(1 for ch in document if not ch.isspace())


def role_inline_total(policies: dict[str, str], replacing: str, document: str) -> int:
    """The role's inline total after ``replacing`` (a policy name) is written with ``document``."""
    others = sum(inline_size(text) for name, text in policies.items() if name != replacing)
    return others + inline_size(document)


def _limited(original: Callable[..., None]) -> Callable[..., None]:
    def put_role_policy(self: IAMBackend, role_name: str, policy_name: str, policy_json: str) -> None:
        role: Any = self.get_role(role_name)  # NoSuchEntity for an unknown role, as before
        total = role_inline_total(dict(role.policies), policy_name, policy_json)
        if total > ROLE_INLINE_LIMIT:
            raise LimitExceededException(
                f"Maximum policy size of {ROLE_INLINE_LIMIT} bytes exceeded for role {role_name}"
            )
        original(self, role_name, policy_name, policy_json)

    setattr(put_role_policy, _INSTALLED, True)
    return put_role_policy


def install() -> None:
    """Make moto's ``PutRolePolicy`` refuse a write over the role's inline limit (once per process)."""
    current = IAMBackend.put_role_policy
    if getattr(current, _INSTALLED, False):
        return
    setattr(IAMBackend, "put_role_policy", _limited(current))  # noqa: B010 - extends moto's class
