"""The table the embedded AWS builds from template.yaml is the table the runtime writes to: it creates in moto,
and its keys and TTL attribute are the ones Powertools idempotency records use."""

from __future__ import annotations

from typing import Any

import boto3
from moto import mock_aws

from rumguard.local.template import TABLE_RESOURCE, table_definition, ttl_attribute
from rumguard.runtime import dynamodb_idempotency_store

TABLE_NAME = "rumguard-contract"


def test_table_definition_creates_the_table(fake_aws: None, template: dict[str, Any]) -> None:
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(**table_definition(TABLE_NAME))
        client.update_time_to_live(
            TableName=TABLE_NAME, TimeToLiveSpecification={"AttributeName": ttl_attribute(), "Enabled": True}
        )
        table = client.describe_table(TableName=TABLE_NAME)["Table"]
        ttl = client.describe_time_to_live(TableName=TABLE_NAME)["TimeToLiveDescription"]

    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == template["Resources"][TABLE_RESOURCE]["Properties"]["KeySchema"]
    assert ttl == {"AttributeName": "ttl", "TimeToLiveStatus": "ENABLED"}


def test_idempotency_records_use_the_table_keys_and_ttl(fake_aws: None) -> None:
    with mock_aws():
        store = dynamodb_idempotency_store(TABLE_NAME)
    keys = {key["KeyType"]: key["AttributeName"] for key in table_definition(TABLE_NAME)["KeySchema"]}

    assert ttl_attribute() == "ttl" == store.expiry_attr
    assert (store.key_attr, store.sort_key_attr) == (keys["HASH"], keys["RANGE"])
