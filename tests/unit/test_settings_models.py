"""Tests of the ingest entry point's settings: no silent defaults for resource names, every problem named."""

from __future__ import annotations

import re

import pytest

from rumguard.monitors import Audience, Monitor
from rumguard.settings import IngestSettings, SettingsError

#: A complete, valid environment of the ingest function (plus unrelated variables a Lambda always has).
ENVIRON = {
    "GUEST_MONITORS": "RetailDemoStore_Unauthenticated",
    "SIGNED_IN_MONITORS": "RetailDemoStore_Authenticated",
    "RUMGUARD_TABLE": "rumguard-table",
    "IDENTITY_POOL_ID": "us-east-1:2f6a1c1e-3d4b-4c5d-8e9f-0a1b2c3d4e5f",
    "GUEST_ROLE_NAME": "RetailDemoStore-GuestRole",
    "EVENT_BUS_NAME": "rumguard",
    "RUMGUARD_MODE": "dry-run",
    "AWS_REGION": "us-east-1",
    "PATH": "/usr/bin",
}
REQUIRED = (
    "GUEST_MONITORS",
    "SIGNED_IN_MONITORS",
    "RUMGUARD_TABLE",
    "IDENTITY_POOL_ID",
    "GUEST_ROLE_NAME",
    "EVENT_BUS_NAME",
    "RUMGUARD_MODE",
)


def _without(*names: str) -> dict[str, str]:
    return {name: value for name, value in ENVIRON.items() if name not in names}


def test_the_names_of_resources_and_monitors_are_required_and_nothing_else() -> None:
    required = {str(info.alias) for info in IngestSettings.model_fields.values() if info.is_required()}

    assert required == set(REQUIRED)
    assert {*REQUIRED, "IDENTITY_ATTRIBUTE"} <= IngestSettings.env_names()


def test_an_empty_environment_names_every_missing_variable() -> None:
    with pytest.raises(SettingsError) as raised:
        IngestSettings.from_environ({})

    message = str(raised.value)
    assert message.startswith("ingest settings are invalid")
    for name in REQUIRED:
        assert re.search(rf"\b{name}: Field required", message), message


@pytest.mark.parametrize("missing", REQUIRED)
def test_one_missing_variable_is_named_and_only_it(missing: str) -> None:
    with pytest.raises(SettingsError) as raised:
        IngestSettings.from_environ(_without(missing))

    message = str(raised.value)
    assert f"{missing}: Field required" in message
    assert all(name not in message for name in REQUIRED if name != missing), message


def test_a_complete_environment_reads_with_the_default_identity_attribute() -> None:
    settings = IngestSettings.from_environ(ENVIRON)

    assert settings.identity_attribute == "cognitoIdentityId"
    assert settings.table_name == "rumguard-table"
    assert (settings.guest_monitors, settings.signed_in_monitors) == (
        "RetailDemoStore_Unauthenticated",
        "RetailDemoStore_Authenticated",
    )


def test_the_identity_attribute_and_surrounding_whitespace_are_honoured() -> None:
    settings = IngestSettings.from_environ({**ENVIRON, "IDENTITY_ATTRIBUTE": " appUserId ", "RUMGUARD_TABLE": " rg-1 "})

    assert (settings.identity_attribute, settings.table_name) == ("appUserId", "rg-1")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RUMGUARD_TABLE", "has space"),
        ("RUMGUARD_TABLE", "ab"),
        ("RUMGUARD_TABLE", "t" * 256),
        ("RUMGUARD_TABLE", "table/name"),
        ("IDENTITY_ATTRIBUTE", ""),
        ("IDENTITY_ATTRIBUTE", "   "),
        ("IDENTITY_ATTRIBUTE", "a" * 129),
    ],
)
def test_an_invalid_value_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        IngestSettings.from_environ({**ENVIRON, name: value})


def test_the_monitor_directory_takes_both_lists_with_their_audiences() -> None:
    settings = IngestSettings.from_environ({**ENVIRON, "GUEST_MONITORS": "Shop_Guest, Blog_Guest"})

    assert settings.monitor_directory().monitors == (
        Monitor("Shop_Guest", Audience.GUEST),
        Monitor("Blog_Guest", Audience.GUEST),
        Monitor("RetailDemoStore_Authenticated", Audience.SIGNED_IN),
    )


@pytest.mark.parametrize(
    ("guest", "signed_in", "problem"),
    [
        (".hidden", "Shop", "not a valid"),
        ("Shop", "Shop", "configured twice"),
        ("", " , ", "no app monitors"),
    ],
)
def test_unusable_monitor_names_are_a_settings_error(guest: str, signed_in: str, problem: str) -> None:
    settings = IngestSettings.from_environ({**ENVIRON, "GUEST_MONITORS": guest, "SIGNED_IN_MONITORS": signed_in})

    with pytest.raises(SettingsError, match=f"ingest settings are invalid: .*{problem}"):
        settings.monitor_directory()
