"""The guest role's deny policies, rendered whole from the active blocks and packed within IAM's limit.

IAM allows at most 10,240 characters of inline policy per role, all inline policies together, counted
without whitespace. RUM Guard's policies share that budget with whatever else the role carries, so the
budget is what the others leave. Blocks that do not fit are never dropped silently: they stay active in
the table, are reported as unenforced, and the capacity metric and its alarm tell people.

When blocks must be left out, the newest are kept. An older block's identity was already deleted from the
identity pool, so it cannot get new credentials; the deny only matters while credentials issued before the
block are still valid, and those expire (an hour by default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

#: IAM's limit on all inline policies of one role, in characters without whitespace.
ROLE_INLINE_LIMIT: Final = 10_240
#: Every policy RUM Guard writes on the guest role has a name with this prefix; nothing else may.
POLICY_PREFIX: Final = "rumguard-deny"
BLOCKS_POLICY: Final = f"{POLICY_PREFIX}-blocks"
LOCKDOWN_POLICY: Final = f"{POLICY_PREFIX}-lockdown"
SUB_KEY: Final = "cognito-identity.amazonaws.com:sub"


def policy_size(document: Mapping[str, Any] | str) -> int:
    """IAM's size of a policy document: its characters, whitespace not counted."""
    text = document if isinstance(document, str) else json.dumps(document, separators=(",", ":"))
    return sum(1 for ch in text if not ch.isspace())


def render(document: Mapping[str, Any]) -> str:
    """The compact JSON RUM Guard writes (so the size IAM counts equals the length)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def blocks_document(identity_ids: Sequence[str]) -> dict[str, Any]:
    """Deny everything to the guest sessions of these identities."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RumGuardBlockedIdentities",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEquals": {SUB_KEY: sorted(identity_ids)}},
            }
        ],
    }


def lockdown_document(since: datetime) -> dict[str, Any]:
    """Deny every guest session whose credentials were issued before the lockdown began."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RumGuardGuestLockdown",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": since.strftime("%Y-%m-%dT%H:%M:%SZ")}},
            }
        ],
    }


@dataclass(frozen=True, slots=True)
class PolicyPlan:
    """What the guest role's RUM Guard policies must be: name -> compact JSON, plus what did not fit."""

    policies: dict[str, str]
    enforced: tuple[str, ...]
    unenforced: tuple[str, ...]
    used_chars: int
    others_chars: int
    #: A lockdown is in force but its policy does not fit beside the role's other policies (never written
    #: over IAM's limit; the pool's guest access is off all the same).
    lockdown_unenforced: bool = False

    @property
    def capacity_used(self) -> float:
        """Percent of the role's inline policy budget in use, RUM Guard's and others' together."""
        return 100.0 * (self.used_chars + self.others_chars) / ROLE_INLINE_LIMIT


def plan(
    blocked_newest_first: Sequence[str],
    *,
    others_chars: int,
    lockdown_since: datetime | None = None,
    limit: int = ROLE_INLINE_LIMIT,
) -> PolicyPlan:
    """Pack the blocked identities (newest first) and the lockdown statement into the free budget."""
    policies: dict[str, str] = {}
    used = 0
    lockdown_unenforced = False
    if lockdown_since is not None:
        # The lockdown is the brake of last resort: it gets its room before any single block.
        lockdown = render(lockdown_document(lockdown_since))
        if others_chars + policy_size(lockdown) <= limit:
            policies[LOCKDOWN_POLICY] = lockdown
            used += policy_size(lockdown)
        else:
            lockdown_unenforced = True
    free = limit - others_chars - used
    unique = list(dict.fromkeys(blocked_newest_first))
    fitting = _fit(unique, free)
    if fitting:
        policies[BLOCKS_POLICY] = render(blocks_document(unique[:fitting]))
        used += policy_size(policies[BLOCKS_POLICY])
    return PolicyPlan(
        policies=policies,
        enforced=tuple(unique[:fitting]),
        unenforced=tuple(unique[fitting:]),
        used_chars=used,
        others_chars=others_chars,
        lockdown_unenforced=lockdown_unenforced,
    )


def _fit(identity_ids: Sequence[str], free: int) -> int:
    """How many of the identities (in order) fit a blocks policy of at most ``free`` characters."""
    if not identity_ids:
        return 0
    size = policy_size(render(blocks_document([])))  # the document around an empty list
    count = 0
    for identity in identity_ids:
        cost = len(identity) + 2 + (1 if count else 0)  # quotes, and a comma after the first
        if size + cost > free:
            break
        size += cost
        count += 1
    return count
