"""The IAM, Cognito identity and EventBridge adapters against moto (with what ``rumguard.local.cognito`` adds).

Retries and AWS answers moto never gives (unprocessed identities, per-entry ``PutEvents`` failures, IAM's
size limit) are driven through botocore's ``Stubber`` on a real client: the adapters run unchanged.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from rumguard.adapters.cognito import CognitoIdentityDirectory, IdentityPoolError, IdentityPoolNotFoundError
from rumguard.adapters.eventbridge import EventBridgeBus, EventBusNotFoundError, EventPublishError
from rumguard.adapters.iam import (
    IamGuestRole,
    PolicyLimitExceededError,
    PolicyRejectedError,
    RoleNotFoundError,
    normalise_document,
)
from rumguard.guard import IDENTITY_BLOCKED, LOCKDOWN_CHANGED
from rumguard.local import cognito as local_cognito
from rumguard.policy import BLOCKS_POLICY, LOCKDOWN_POLICY, blocks_document, lockdown_document, render
from rumguard.ports import EventBus, GuestRole, IdentityDirectory, IdentityInfo

if TYPE_CHECKING:
    from mypy_boto3_cognito_identity import CognitoIdentityClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
ROLE = "RetailDemoStore-Guest"
BUS = "rumguard"
USER_POOL = "cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"
OTHER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["rum:PutRumEvents"], "Resource": "arn:aws:rum:*:*:appmonitor/*"}],
}


@pytest.fixture
def session() -> Iterator[boto3.session.Session]:
    """A fresh moto account, with RUM Guard's Cognito additions installed."""
    local_cognito.install()
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


@pytest.fixture
def iam(session: boto3.session.Session) -> IAMClient:
    client: IAMClient = session.client("iam")
    client.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    return client


@pytest.fixture
def cognito(session: boto3.session.Session) -> CognitoIdentityClient:
    client: CognitoIdentityClient = session.client("cognito-identity")
    return client


@pytest.fixture
def pool_id(cognito: CognitoIdentityClient) -> str:
    return cognito.create_identity_pool(
        IdentityPoolName="RetailDemoStore",
        AllowUnauthenticatedIdentities=True,
        SupportedLoginProviders={"accounts.google.com": "shop-client-id"},
        DeveloperProviderName="login.retaildemostore",
        OpenIdConnectProviderARNs=["arn:aws:iam::123456789012:oidc-provider/id.example.com"],
        CognitoIdentityProviders=[{"ProviderName": USER_POOL, "ClientId": "webclient", "ServerSideTokenCheck": False}],
        SamlProviderARNs=["arn:aws:iam::123456789012:saml-provider/corp"],
        IdentityPoolTags={"app": "retail-demo-store"},
    )["IdentityPoolId"]


def calls(client: Any, operation: str, key: str) -> list[int]:
    """The sizes of the ``key`` list of every ``operation`` call the client makes from now on."""
    sizes: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params[key]))

    client.meta.events.register(
        f"provide-client-params.{client.meta.service_model.service_id.hyphenize()}.{operation}", record
    )
    return sizes


def test_adapters_implement_the_ports(iam: IAMClient, cognito: CognitoIdentityClient, session: Any) -> None:
    role: GuestRole = IamGuestRole(iam, ROLE)
    directory: IdentityDirectory = CognitoIdentityDirectory(cognito, f"{REGION}:00000000-0000-0000-0000-000000000000")
    bus: EventBus = EventBridgeBus(session.client("events"), BUS)
    assert role.inline_policies() == {}
    assert directory.pool_id.startswith(REGION)
    assert isinstance(bus, EventBridgeBus)


# --- IAM -------------------------------------------------------------------------------------------------
def test_role_policies_round_trip(iam: IAMClient) -> None:
    # Someone else's inline policy, written with whitespace, is listed too (it shares the size budget).
    iam.put_role_policy(RoleName=ROLE, PolicyName="rum-put-events", PolicyDocument=json.dumps(OTHER_POLICY, indent=4))
    role = IamGuestRole(iam, ROLE)
    first = render(blocks_document(["us-east-1:11111111-1111-1111-1111-111111111111"]))
    role.put_policy(BLOCKS_POLICY, first)
    assert role.inline_policies() == {"rum-put-events": render(OTHER_POLICY), BLOCKS_POLICY: first}

    replaced = render(
        blocks_document(
            ["us-east-1:11111111-1111-1111-1111-111111111111", "us-east-1:22222222-2222-2222-2222-222222222222"]
        )
    )
    role.put_policy(BLOCKS_POLICY, replaced)
    role.put_policy(LOCKDOWN_POLICY, render(lockdown_document(datetime(2026, 1, 1, tzinfo=UTC))))
    policies = role.inline_policies()
    assert policies[BLOCKS_POLICY] == replaced
    assert sorted(policies) == sorted(["rum-put-events", BLOCKS_POLICY, LOCKDOWN_POLICY])

    role.delete_policy(BLOCKS_POLICY)
    role.delete_policy(BLOCKS_POLICY)  # already gone: no error
    assert sorted(role.inline_policies()) == sorted(["rum-put-events", LOCKDOWN_POLICY])
    assert iam.list_role_policies(RoleName=ROLE)["PolicyNames"] == sorted(["rum-put-events", LOCKDOWN_POLICY])


def test_policies_are_listed_across_pages_as_iam_returns_them(iam: IAMClient) -> None:
    # moto answers ListRolePolicies in one page and GetRolePolicy decoded; IAM pages (100 names by default)
    # and URL-encodes documents. IAM's answers are replayed.
    role = IamGuestRole(iam, ROLE)
    encoded = urllib.parse.quote(json.dumps(OTHER_POLICY, indent=2))
    with Stubber(iam) as stub:
        stub.add_response(
            "list_role_policies",
            {"PolicyNames": ["a", "b"], "IsTruncated": True, "Marker": "page-2"},
            {"RoleName": ROLE},
        )
        stub.add_response(
            "list_role_policies", {"PolicyNames": ["c"], "IsTruncated": False}, {"RoleName": ROLE, "Marker": "page-2"}
        )
        for name in "abc":
            stub.add_response(
                "get_role_policy",
                {"RoleName": ROLE, "PolicyName": name, "PolicyDocument": encoded},
                {"RoleName": ROLE, "PolicyName": name},
            )
        assert role.inline_policies() == dict.fromkeys("abc", render(OTHER_POLICY))
        stub.assert_no_pending_responses()


def test_a_policy_deleted_while_listing_is_skipped(iam: IAMClient) -> None:
    role = IamGuestRole(iam, ROLE)
    record = iam.get_role(RoleName=ROLE)["Role"]
    described = {
        "Path": record["Path"],
        "RoleName": record["RoleName"],
        "RoleId": record["RoleId"],
        "Arn": record["Arn"],
        "CreateDate": record["CreateDate"],
    }
    with Stubber(iam) as stub:
        stub.add_response("list_role_policies", {"PolicyNames": ["gone", "kept"], "IsTruncated": False})
        stub.add_client_error("get_role_policy", service_error_code="NoSuchEntity", http_status_code=404)
        stub.add_response("get_role", {"Role": described})
        stub.add_response(
            "get_role_policy", {"RoleName": ROLE, "PolicyName": "kept", "PolicyDocument": json.dumps(OTHER_POLICY)}
        )
        assert role.inline_policies() == {"kept": render(OTHER_POLICY)}
        stub.assert_no_pending_responses()


def test_policy_documents_are_normalised_to_the_rendering() -> None:
    compact = render(OTHER_POLICY)
    assert normalise_document(OTHER_POLICY) == compact
    assert normalise_document(json.dumps(OTHER_POLICY, indent=2)) == compact
    assert normalise_document(urllib.parse.quote(json.dumps(OTHER_POLICY, indent=2))) == compact
    assert normalise_document("not json") == "not json"


def test_iam_errors_become_domain_errors(iam: IAMClient) -> None:
    missing = IamGuestRole(iam, "no-such-role")
    with pytest.raises(RoleNotFoundError, match="no-such-role"):
        missing.inline_policies()
    with pytest.raises(RoleNotFoundError):
        missing.put_policy(BLOCKS_POLICY, render(OTHER_POLICY))
    with pytest.raises(RoleNotFoundError):
        missing.delete_policy(BLOCKS_POLICY)
    with pytest.raises(PolicyRejectedError) as malformed:
        IamGuestRole(iam, ROLE).put_policy(BLOCKS_POLICY, "{not json")
    assert malformed.value.code == "MalformedPolicyDocument"
    assert not isinstance(malformed.value, PolicyLimitExceededError)

    # moto does not enforce IAM's 10,240-character limit; IAM's answer is replayed.
    role = IamGuestRole(iam, ROLE)
    with Stubber(iam) as stub:
        stub.add_client_error(
            "put_role_policy",
            service_error_code="LimitExceeded",
            service_message=f"Maximum policy size of 10240 bytes exceeded for role {ROLE}",
            http_status_code=409,
        )
        with pytest.raises(PolicyLimitExceededError, match="10240"):
            role.put_policy(BLOCKS_POLICY, render(OTHER_POLICY))


# --- Cognito identity ------------------------------------------------------------------------------------
def test_describe_guest_signed_in_unknown_and_malformed(cognito: CognitoIdentityClient, pool_id: str) -> None:
    directory = CognitoIdentityDirectory(cognito, pool_id)
    guest = local_cognito.new_identity(cognito, pool_id)
    alice = local_cognito.new_identity(cognito, pool_id, {USER_POOL: "token-of-alice"})
    assert local_cognito.new_identity(cognito, pool_id, {USER_POOL: "token-of-alice"}) == alice
    assert local_cognito.new_identity(cognito, pool_id, {USER_POOL: "token-of-bob"}) != alice

    assert directory.describe(guest) == IdentityInfo(guest, ())
    assert directory.describe(alice) == IdentityInfo(alice, (USER_POOL,))
    assert directory.describe(f"{REGION}:00000000-0000-4000-8000-000000000000") is None
    for malformed in ("", "not-an-identity", f"{REGION}:NOT-HEX", f"{REGION}:{'a' * 60}", "x" * 500):
        assert directory.describe(malformed) is None

    described = cognito.describe_identity(IdentityId=alice)
    assert described["Logins"] == [USER_POOL]
    assert described["CreationDate"] <= described["LastModifiedDate"]
    listed = {
        i["IdentityId"]: i.get("Logins", [])
        for i in cognito.list_identities(IdentityPoolId=pool_id, MaxResults=60)["Identities"]
    }
    assert listed[guest] == [] and listed[alice] == [USER_POOL]
    with pytest.raises(ClientError) as refused:
        cognito.describe_identity(IdentityId="not-an-identity")
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_describe_maps_other_answers(cognito: CognitoIdentityClient, pool_id: str) -> None:
    directory = CognitoIdentityDirectory(cognito, pool_id)
    identity = f"{REGION}:00000000-0000-4000-8000-000000000001"
    with Stubber(cognito) as stub:
        stub.add_client_error("describe_identity", service_error_code="InvalidParameterException")
        stub.add_client_error("describe_identity", service_error_code="NotAuthorizedException", http_status_code=403)
        assert directory.describe(identity) is None
        with pytest.raises(IdentityPoolError, match="NotAuthorizedException"):
            directory.describe(identity)


def test_delete_in_batches_of_sixty(cognito: CognitoIdentityClient, pool_id: str) -> None:
    directory = CognitoIdentityDirectory(cognito, pool_id)
    identities = [local_cognito.new_identity(cognito, pool_id) for _ in range(130)]
    unknown = f"{REGION}:00000000-0000-4000-8000-000000000002"
    credentials = cognito.get_credentials_for_identity(IdentityId=identities[0])
    assert credentials["IdentityId"] == identities[0]

    batches = calls(cognito, "DeleteIdentities", "IdentityIdsToDelete")
    assert directory.delete([*identities, identities[0], unknown, "forged"]) == ["forged"]
    assert batches == [60, 60, 11]
    assert all(directory.describe(identity) is None for identity in identities)
    assert cognito.list_identities(IdentityPoolId=pool_id, MaxResults=60)["Identities"] == []
    with pytest.raises(ClientError) as gone:
        cognito.get_credentials_for_identity(IdentityId=identities[0])
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_delete_retries_transient_failures_only(cognito: CognitoIdentityClient, pool_id: str) -> None:
    sleeps: list[float] = []
    directory = CognitoIdentityDirectory(cognito, pool_id, attempts=3, backoff_seconds=0.5, sleep=sleeps.append)
    a, b, c = (f"{REGION}:00000000-0000-4000-8000-00000000000{n}" for n in (3, 4, 5))
    with Stubber(cognito) as stub:
        stub.add_response(
            "delete_identities",
            {
                "UnprocessedIdentityIds": [
                    {"IdentityId": a, "ErrorCode": "InternalServerError"},
                    {"IdentityId": b, "ErrorCode": "AccessDenied"},
                ]
            },
            {"IdentityIdsToDelete": [a, b, c]},
        )
        stub.add_response("delete_identities", {"UnprocessedIdentityIds": []}, {"IdentityIdsToDelete": [a]})
        assert directory.delete([a, b, c]) == [b]
        stub.assert_no_pending_responses()
    assert sleeps == [0.5]

    sleeps.clear()
    stuck = {"UnprocessedIdentityIds": [{"IdentityId": a, "ErrorCode": "InternalServerError"}]}
    with Stubber(cognito) as stub:
        for _ in range(3):
            stub.add_response("delete_identities", stuck, {"IdentityIdsToDelete": [a]})
        assert directory.delete([a]) == [a]
        stub.assert_no_pending_responses()
    assert sleeps == [0.5, 1.0]


def test_a_refused_batch_is_reported_and_the_next_still_deleted(cognito: CognitoIdentityClient, pool_id: str) -> None:
    directory = CognitoIdentityDirectory(cognito, pool_id, sleep=lambda _: None)
    identities = [f"{REGION}:00000000-0000-4000-8000-{n:012x}" for n in range(61)]
    with Stubber(cognito) as stub:
        stub.add_client_error("delete_identities", service_error_code="TooManyRequestsException")
        stub.add_response("delete_identities", {"UnprocessedIdentityIds": []}, {"IdentityIdsToDelete": identities[60:]})
        assert directory.delete(identities) == identities[:60]
        stub.assert_no_pending_responses()


def test_set_guest_access_toggles_only_the_flag(cognito: CognitoIdentityClient, pool_id: str) -> None:
    directory = CognitoIdentityDirectory(cognito, pool_id)
    guest = local_cognito.new_identity(cognito, pool_id)

    def pool() -> dict[str, Any]:
        described = dict(cognito.describe_identity_pool(IdentityPoolId=pool_id))
        described.pop("ResponseMetadata")
        return described

    before = pool()
    assert before["AllowUnauthenticatedIdentities"] is True
    directory.set_guest_access(False)
    assert pool() == {**before, "AllowUnauthenticatedIdentities": False}
    # Guests are refused, new and existing; signed-in users are not.
    with pytest.raises(ClientError) as new_guest:
        cognito.get_id(IdentityPoolId=pool_id)
    with pytest.raises(ClientError) as old_guest:
        cognito.get_credentials_for_identity(IdentityId=guest)
    for error in (new_guest, old_guest):
        assert error.value.response["Error"]["Code"] == "NotAuthorizedException"
    assert local_cognito.new_identity(cognito, pool_id, {USER_POOL: "token-of-carol"})

    directory.set_guest_access(True)
    assert pool() == before
    assert local_cognito.new_identity(cognito, pool_id)


def test_update_identity_pool_replaces_the_configuration(cognito: CognitoIdentityClient, pool_id: str) -> None:
    # Why the adapter writes back everything it read: UpdateIdentityPool clears what a request leaves out.
    cognito.update_identity_pool(
        IdentityPoolId=pool_id, IdentityPoolName="RetailDemoStore", AllowUnauthenticatedIdentities=False
    )
    described = cognito.describe_identity_pool(IdentityPoolId=pool_id)
    assert described["AllowUnauthenticatedIdentities"] is False
    assert not described.get("SupportedLoginProviders")
    assert not described.get("CognitoIdentityProviders")


def test_set_guest_access_on_a_missing_pool(cognito: CognitoIdentityClient) -> None:
    directory = CognitoIdentityDirectory(cognito, f"{REGION}:00000000-0000-4000-8000-0000000000ff")
    with pytest.raises(IdentityPoolNotFoundError):
        directory.set_guest_access(False)


def test_install_is_idempotent(cognito: CognitoIdentityClient, pool_id: str) -> None:
    local_cognito.install()
    local_cognito.install()
    identity = local_cognito.new_identity(cognito, pool_id)
    assert CognitoIdentityDirectory(cognito, pool_id).delete([identity]) == []


# --- EventBridge -----------------------------------------------------------------------------------------
@pytest.fixture
def events(session: boto3.session.Session) -> EventBridgeClient:
    client: EventBridgeClient = session.client("events")
    client.create_event_bus(Name=BUS)
    return client


@pytest.fixture
def queue(session: boto3.session.Session, events: EventBridgeClient) -> tuple[SQSClient, str]:
    """An SQS queue that receives every ``rumguard`` event on the bus, as a rule target."""
    sqs: SQSClient = session.client("sqs")
    url = sqs.create_queue(QueueName="rumguard-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="rumguard-all", EventBusName=BUS, EventPattern=json.dumps({"source": ["rumguard"]}))
    events.put_targets(Rule="rumguard-all", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])
    return sqs, url


def drain(sqs: SQSClient, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def detail(n: int) -> dict[str, Any]:
    return {
        "identityId": f"{REGION}:00000000-0000-4000-8000-{n:012x}",
        "appMonitor": "RetailDemoStore_Unauthenticated",
        "rule": "event-flood",
        "reason": f"{1000 + n} events in 5 minutes",
        "actor": "auto",
        "expiresAt": "2026-01-01T01:00:00Z",
        "dryRun": False,
        "counts": {"event-flood": 1000 + n},
    }


def test_publish_reaches_an_sqs_target(events: EventBridgeClient, queue: tuple[SQSClient, str]) -> None:
    sqs, url = queue
    details = [detail(n) for n in range(23)]
    puts = calls(events, "PutEvents", "Entries")
    EventBridgeBus(events, BUS).publish(IDENTITY_BLOCKED, details)
    EventBridgeBus(events, BUS, source="someone-else").publish(IDENTITY_BLOCKED, [detail(99)])
    EventBridgeBus(events, BUS).publish(LOCKDOWN_CHANGED, [{"identityId": None, "enabled": True}])
    assert puts == [10, 10, 3, 1, 1]

    received = drain(sqs, url)
    assert len(received) == 24
    blocked = [m for m in received if m["detail-type"] == IDENTITY_BLOCKED]
    assert {m["source"] for m in received} == {"rumguard"}
    assert sorted((m["detail"] for m in blocked), key=lambda d: str(d["identityId"])) == details
    assert [m["detail"] for m in received if m["detail-type"] == LOCKDOWN_CHANGED] == [
        {"identityId": None, "enabled": True}
    ]


def test_publish_retries_failed_entries_and_names_the_rest(events: EventBridgeClient) -> None:
    sleeps: list[float] = []
    bus = EventBridgeBus(events, BUS, attempts=3, backoff_seconds=0.25, sleep=sleeps.append)
    details = [detail(n) for n in range(3)]
    with Stubber(events) as stub:
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 2,
                "Entries": [
                    {"EventId": "one"},
                    {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"},
                    {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."},
                ],
            },
        )
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "two"}]})
        with pytest.raises(EventPublishError) as error:
            bus.publish(IDENTITY_BLOCKED, details)
        stub.assert_no_pending_responses()
    assert [(f.detail["identityId"], f.code) for f in error.value.failures] == [
        (details[2]["identityId"], "MalformedDetail")
    ]
    assert details[2]["identityId"] in str(error.value)
    assert sleeps == [0.25]

    throttled = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}]}
    with Stubber(events) as stub:
        for _ in range(3):
            stub.add_response("put_events", throttled)
        with pytest.raises(EventPublishError, match="ThrottlingException"):
            bus.publish(IDENTITY_BLOCKED, details[:1])
        stub.assert_no_pending_responses()


def test_publish_to_a_missing_bus(session: boto3.session.Session) -> None:
    bus = EventBridgeBus(session.client("events"), "no-such-bus")
    with pytest.raises(EventBusNotFoundError, match="no-such-bus"):
        bus.publish(IDENTITY_BLOCKED, [detail(1)])
