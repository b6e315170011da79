"""What moto 5.2's Cognito identity lacks, added to moto so RUM Guard's adapter runs unchanged against it.

moto answers the Cognito identity actions it knows by method name on ``CognitoIdentityResponse`` (the
action ``DescribeIdentity`` calls ``describe_identity``) and keeps each pool's identities as a list of
``{"IdentityId": ...}`` records in its backend. It has no ``DescribeIdentity`` and no ``DeleteIdentities``,
its ``GetId`` drops the ``Logins`` it is given (so every identity looks like a guest), and its
``UpdateIdentityPool`` keeps settings a request leaves out. ``install()`` sets, on moto's own classes:

- ``DescribeIdentity``: ``IdentityId``, ``Logins`` (provider names), ``CreationDate``,
  ``LastModifiedDate``; ``ResourceNotFoundException`` for an identity this region does not know, and
  ``ValidationException`` for an id not shaped like one, as AWS answers.
- ``DeleteIdentities``: removes identities from their pool; 1 to 60 well-formed ids, or
  ``ValidationException``; unknown ids are ignored (``UnprocessedIdentityIds`` stays empty).
- ``GetId`` keeps the provider names of its ``Logins`` on the identity (``ListIdentities`` shows them
  too), answers the same identity again for the same login, and refuses guests
  (``NotAuthorizedException``) while the pool's ``AllowUnauthenticatedIdentities`` is false.
- ``GetCredentialsForIdentity`` refuses a deleted or unknown identity (``ResourceNotFoundException``), a
  guest of a pool that no longer allows guests, and a signed-in identity asked for without one of its
  logins (``NotAuthorizedException``), so a block's deletion and the guest lockdown are visible. moto hands
  every caller the same fixed keys valid for 90 seconds; here each call issues new temporary credentials
  (an ``ASIA`` access key id, a secret, a session token) valid for an hour, as Cognito does, and records
  them: ``issued_credentials(access_key_id)`` tells who holds a key (identity, pool, role, signed in or
  not) and when it was issued (``aws:TokenIssueTime``), which is how the local RUM data plane
  (``rumguard.local.dataplane``) finds and authorizes the caller of a signed request.
- ``SetIdentityPoolRoles`` and ``GetIdentityPoolRoles`` (moto has neither): the ``authenticated`` and
  ``unauthenticated`` role ARNs of a pool. Credentials are issued for the pool's role of the identity's
  kind; a pool without roles still issues them (for a role of ``None``), where AWS would refuse.
- ``UpdateIdentityPool`` replaces the pool's configuration as AWS does: settings left out are cleared
  (the developer provider name, which AWS never changes once set, and the tags stay).

Login tokens are not verified: any value signs in, and a token value stands for one user of a provider.
``install()`` is idempotent; moto's state still resets with each ``mock_aws``.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from moto.cognitoidentity.exceptions import ResourceNotFoundError
from moto.cognitoidentity.models import CognitoIdentityBackend, CognitoIdentityPool, cognitoidentity_backends
from moto.cognitoidentity.responses import CognitoIdentityResponse
from moto.core.exceptions import JsonRESTError

from rumguard.local.context import ACCOUNT_ID

if TYPE_CHECKING:
    from mypy_boto3_cognito_identity import CognitoIdentityClient

IDENTITY_ID: Final = re.compile(r"[\w-]+:[0-9a-f-]+")
MAX_DELETE: Final = 60
_INSTALLED: Final = "_rumguard_installed"
_LINKS: Final = "_rumguard_logins"
_ROLES: Final = "_rumguard_roles"
_ISSUED: Final = "_rumguard_issued"
#: How long Cognito's temporary credentials last by default.
CREDENTIALS_LIFETIME: Final = timedelta(hours=1)
_KEY_ALPHABET: Final = string.ascii_uppercase + string.digits
_UNAUTHENTICATED: Final = "Unauthenticated access is not supported for this identity pool."


class ValidationError(JsonRESTError):
    """AWS's answer to a parameter that breaks the API's constraints."""

    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", f"1 validation error detected: {message}")


class NotAuthorizedError(JsonRESTError):
    """AWS's answer when the pool does not allow the request (for example a guest while guests are off)."""

    def __init__(self, message: str) -> None:
        super().__init__("NotAuthorizedException", message)


class InvalidParameterError(JsonRESTError):
    """AWS's answer to a request whose parameters are not valid together (for example an unknown role kind)."""

    def __init__(self, message: str) -> None:
        super().__init__("InvalidParameterException", message)


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """Temporary credentials that ``GetCredentialsForIdentity`` issued, and to whom."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    identity_id: str
    pool_id: str
    #: The pool's role for this kind of identity (``None`` when the pool has no roles set).
    role_arn: str | None
    #: The provider names the identity is signed in with; empty for a guest.
    logins: tuple[str, ...]
    #: ``aws:TokenIssueTime``.
    issued_at: datetime
    expires_at: datetime

    @property
    def signed_in(self) -> bool:
        """Whether the identity is signed in (has logins), so its role is the authenticated one."""
        return bool(self.logins)


def _check_identity_id(value: object, where: str = "identityId") -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 55 or not IDENTITY_ID.fullmatch(value):
        raise ValidationError(
            f"Value '{value}' at '{where}' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: [\\w-]+:[0-9a-f-]+"
        )
    return value


def _allows_guests(pool: CognitoIdentityPool) -> bool:
    return str(pool.allow_unauthenticated_identities).lower() == "true"


def _links(backend: CognitoIdentityBackend) -> dict[tuple[str, str, str], str]:
    """(pool, provider, token) -> identity id, kept on the backend so it resets with moto."""
    links: dict[tuple[str, str, str], str] | None = getattr(backend, _LINKS, None)
    if links is None:
        links = {}
        setattr(backend, _LINKS, links)
    return links


def _record(backend: CognitoIdentityBackend, identity_id: str) -> tuple[str, dict[str, Any]] | None:
    """The identity's pool id and moto's record of it (with RUM Guard's fields filled in), if it exists."""
    for pool_id, pool in backend.pools_identities.items():
        for record in pool["Identities"]:
            if record.get("IdentityId") == identity_id:
                now = time.time()
                record.setdefault("Logins", [])
                record.setdefault("CreationDate", now)
                record.setdefault("LastModifiedDate", now)
                return pool_id, record
    return None


def _roles(backend: CognitoIdentityBackend) -> dict[str, dict[str, str]]:
    """pool id -> {"authenticated": arn, "unauthenticated": arn}, kept on the backend so it resets with moto."""
    roles: dict[str, dict[str, str]] | None = getattr(backend, _ROLES, None)
    if roles is None:
        roles = {}
        setattr(backend, _ROLES, roles)
    return roles


def _issued(backend: CognitoIdentityBackend) -> dict[str, IssuedCredentials]:
    """access key id -> the credentials issued with it, kept on the backend so it resets with moto."""
    issued: dict[str, IssuedCredentials] | None = getattr(backend, _ISSUED, None)
    if issued is None:
        issued = {}
        setattr(backend, _ISSUED, issued)
    return issued


def _pool(backend: CognitoIdentityBackend, pool_id: str) -> CognitoIdentityPool:
    pool = backend.identity_pools.get(pool_id)
    if pool is None:
        raise ResourceNotFoundError(f"IdentityPool '{pool_id}' not found.")
    return pool


# --- the backend --------------------------------------------------------------------------------------
def describe_identity(backend: CognitoIdentityBackend, identity_id: str) -> str:
    """DescribeIdentity's answer for an identity of this account and region."""
    found = _record(backend, _check_identity_id(identity_id))
    if found is None:
        raise ResourceNotFoundError(f"Identity '{identity_id}' not found.")
    _, record = found
    return json.dumps({key: record[key] for key in ("IdentityId", "Logins", "CreationDate", "LastModifiedDate")})


def delete_identities(backend: CognitoIdentityBackend, identity_ids: list[str]) -> str:
    """DeleteIdentities: remove each known identity from its pool; unknown ones are ignored."""
    if not isinstance(identity_ids, list) or not 1 <= len(identity_ids) <= MAX_DELETE:
        count = len(identity_ids) if isinstance(identity_ids, list) else 0
        raise ValidationError(
            f"Value of length {count} at 'identityIdsToDelete' failed to satisfy constraint: "
            f"Member must have length between 1 and {MAX_DELETE}"
        )
    for identity_id in identity_ids:
        _check_identity_id(identity_id, "identityIdsToDelete")
    links = _links(backend)
    for identity_id in identity_ids:
        found = _record(backend, identity_id)
        if found is None:
            continue
        pool_id, record = found
        backend.pools_identities[pool_id]["Identities"].remove(record)
        for key in [key for key, linked in links.items() if linked == identity_id]:
            del links[key]
    return json.dumps({"UnprocessedIdentityIds": []})


# --- the responses (``self`` is moto's CognitoIdentityResponse) --------------------------------------
def _describe_identity(self: CognitoIdentityResponse) -> str:
    return describe_identity(self.backend, self._get_param("IdentityId"))


def _delete_identities(self: CognitoIdentityResponse) -> str:
    return delete_identities(self.backend, self._get_param("IdentityIdsToDelete"))


def _get_id(self: CognitoIdentityResponse) -> str:
    pool_id: str = self._get_param("IdentityPoolId")
    logins: Mapping[str, str] = self._get_param("Logins") or {}
    # moto keeps a pool's identities in the backend of the pool's region (see its own get_id).
    backend = cognitoidentity_backends[self.current_account][pool_id.split(":")[0]]
    pool = _pool(backend, pool_id)
    if not logins and not _allows_guests(pool):
        raise NotAuthorizedError(_UNAUTHENTICATED)
    links = _links(backend)
    for provider, token in logins.items():
        known = links.get((pool_id, provider, token))
        if known is not None and _record(backend, known) is not None:
            return json.dumps({"IdentityId": known})
    identity_id: str = json.loads(self.backend.get_id(identity_pool_id=pool_id))["IdentityId"]
    found = _record(backend, identity_id)
    assert found is not None
    found[1]["Logins"] = sorted(logins)
    for provider, token in logins.items():
        links[(pool_id, provider, token)] = identity_id
    return json.dumps({"IdentityId": identity_id})


def issue_credentials(
    backend: CognitoIdentityBackend, identity_id: str, logins: Mapping[str, str] | None = None
) -> IssuedCredentials:
    """GetCredentialsForIdentity: new temporary credentials for an identity of this backend, recorded."""
    found = _record(backend, _check_identity_id(identity_id))
    if found is None:
        raise ResourceNotFoundError(f"Identity '{identity_id}' not found.")
    pool_id, record = found
    linked: list[str] = record["Logins"]
    if not linked and not _allows_guests(_pool(backend, pool_id)):
        raise NotAuthorizedError(_UNAUTHENTICATED)
    if linked and not set(logins or {}) & set(linked):
        raise NotAuthorizedError("Logins don't match. Please include at least one valid login for this identity.")
    roles = _roles(backend).get(pool_id, {})
    now = datetime.now(UTC)
    credentials = IssuedCredentials(
        access_key_id="ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
        secret_access_key=secrets.token_urlsafe(30)[:40],
        session_token=secrets.token_urlsafe(96),
        identity_id=identity_id,
        pool_id=pool_id,
        role_arn=roles.get("authenticated" if linked else "unauthenticated"),
        logins=tuple(linked),
        issued_at=now,
        expires_at=now + CREDENTIALS_LIFETIME,
    )
    _issued(backend)[credentials.access_key_id] = credentials
    return credentials


def issued_credentials(access_key_id: str, *, region: str, account_id: str = ACCOUNT_ID) -> IssuedCredentials | None:
    """The credentials issued with this access key id by the embedded Cognito of an account and region."""
    return _issued(cognitoidentity_backends[account_id][region]).get(access_key_id)


def _get_credentials_for_identity(self: CognitoIdentityResponse) -> str:
    credentials = issue_credentials(self.backend, self._get_param("IdentityId"), self._get_param("Logins"))
    return json.dumps(
        {
            "IdentityId": credentials.identity_id,
            "Credentials": {
                "AccessKeyId": credentials.access_key_id,
                "SecretKey": credentials.secret_access_key,
                "SessionToken": credentials.session_token,
                "Expiration": credentials.expires_at.timestamp(),
            },
        }
    )


_ROLE_KINDS: Final = frozenset({"authenticated", "unauthenticated"})


def _set_identity_pool_roles(self: CognitoIdentityResponse) -> str:
    pool_id: str = self._get_param("IdentityPoolId")
    _pool(self.backend, pool_id)
    roles: dict[str, str] = self._get_param("Roles") or {}
    unknown = set(roles) - _ROLE_KINDS
    if unknown:
        raise InvalidParameterError(f"Roles: unsupported role types {sorted(unknown)}")
    _roles(self.backend)[pool_id] = dict(roles)
    return ""


def _get_identity_pool_roles(self: CognitoIdentityResponse) -> str:
    pool_id: str = self._get_param("IdentityPoolId")
    _pool(self.backend, pool_id)
    return json.dumps({"IdentityPoolId": pool_id, "Roles": _roles(self.backend).get(pool_id, {})})


def _update_identity_pool(self: CognitoIdentityResponse) -> str:
    pool = _pool(self.backend, self._get_param("IdentityPoolId"))
    pool.identity_pool_name = self._get_param("IdentityPoolName") or pool.identity_pool_name
    allow = self._get_bool_param("AllowUnauthenticatedIdentities")
    if allow is not None:
        pool.allow_unauthenticated_identities = allow
    pool.supported_login_providers = self._get_param("SupportedLoginProviders") or {}
    pool.open_id_connect_provider_arns = self._get_param("OpenIdConnectProviderARNs") or []
    pool.cognito_identity_providers = self._get_param("CognitoIdentityProviders") or []
    pool.saml_provider_arns = self._get_param("SamlProviderARNs") or []
    pool.developer_provider_name = pool.developer_provider_name or self._get_param("DeveloperProviderName") or ""
    tags = self._get_param("IdentityPoolTags")
    if tags is not None:
        pool.tags = tags
    return pool.to_json()


_RESPONSES: Final[dict[str, Callable[[CognitoIdentityResponse], str]]] = {
    "describe_identity": _describe_identity,
    "delete_identities": _delete_identities,
    "get_id": _get_id,
    "get_credentials_for_identity": _get_credentials_for_identity,
    "update_identity_pool": _update_identity_pool,
    "set_identity_pool_roles": _set_identity_pool_roles,
    "get_identity_pool_roles": _get_identity_pool_roles,
}


def install() -> None:
    """Add the actions above to moto (once per process; safe to call again)."""
    if getattr(CognitoIdentityResponse, _INSTALLED, False):
        return
    setattr(CognitoIdentityBackend, "describe_identity", describe_identity)  # noqa: B010 - extends moto's class
    setattr(CognitoIdentityBackend, "delete_identities", delete_identities)  # noqa: B010
    for name, method in _RESPONSES.items():
        setattr(CognitoIdentityResponse, name, method)
    setattr(CognitoIdentityResponse, _INSTALLED, True)


def new_identity(client: CognitoIdentityClient, pool_id: str, logins: Mapping[str, str] | None = None) -> str:
    """An identity of the pool: a guest, or signed in with ``logins`` (provider name -> token)."""
    if logins:
        return client.get_id(IdentityPoolId=pool_id, Logins=dict(logins))["IdentityId"]
    return client.get_id(IdentityPoolId=pool_id)["IdentityId"]
