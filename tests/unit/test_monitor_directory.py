"""Tests of the app monitor directory: exact log group matching, audiences and configuration errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rumguard.monitors import LOG_GROUP_PREFIX, Audience, Monitor, MonitorConfigError, MonitorDirectory

#: RUM app monitor names: 1 to 255 of letters, digits, ``.``, ``-``, ``_`` and ``#``, not starting with ``.``.
NAMES = st.from_regex(r"[\-_#A-Za-z0-9][.\-_#A-Za-z0-9]{0,120}", fullmatch=True)
NAME_TAILS = st.from_regex(r"[.\-_#A-Za-z0-9]{1,20}", fullmatch=True)
APP_MONITOR_IDS = st.uuids().map(str)


def _matches_exactly(log_group: str, monitor: Monitor) -> bool:
    return re.fullmatch(re.escape(LOG_GROUP_PREFIX + monitor.name) + "[0-9a-f]{8}", log_group) is not None


def test_the_log_group_of_a_configured_monitor_finds_it() -> None:
    directory = MonitorDirectory(["RetailDemoStore_Unauthenticated"], ["RetailDemoStore_Authenticated"])

    guest = directory.for_log_group("/aws/vendedlogs/RUMService_RetailDemoStore_Unauthenticated0a1b2c3d")
    signed_in = directory.for_log_group("/aws/vendedlogs/RUMService_RetailDemoStore_Authenticated9f8e7d6c")

    assert guest == Monitor("RetailDemoStore_Unauthenticated", Audience.GUEST)
    assert signed_in == Monitor("RetailDemoStore_Authenticated", Audience.SIGNED_IN)


@given(
    name=NAMES, tail=NAME_TAILS, guest_id=APP_MONITOR_IDS, signed_in_id=APP_MONITOR_IDS, longer_is_guest=st.booleans()
)
def test_a_name_that_is_a_prefix_of_another_never_takes_its_log_group(
    name: str, tail: str, guest_id: str, signed_in_id: str, longer_is_guest: bool
) -> None:
    short, long = (name, name + tail) if not longer_is_guest else (name + tail, name)
    directory = MonitorDirectory([short], [long])
    guest, signed_in = directory.monitors

    assert directory.for_log_group(guest.log_group_name(guest_id)) == guest
    assert directory.for_log_group(signed_in.log_group_name(signed_in_id)) == signed_in


@pytest.mark.parametrize(
    "log_group",
    [
        "/aws/vendedlogs/RUMService_Shop",  # no id
        "/aws/vendedlogs/RUMService_Shop0a1b2c3",  # 7 hex digits
        "/aws/vendedlogs/RUMService_Shop0a1b2c3d4",  # 9 hex digits: "Shop0" is not configured
        "/aws/vendedlogs/RUMService_Shop0A1B2C3D",  # RUM writes the id in lower case
        "/aws/vendedlogs/RUMService_Shop0a1b2c3g",
        "/aws/vendedlogs/RUMService_shop0a1b2c3d",
        "/aws/vendedlogs/RUMService_Sho0a1b2c3d",
        "/aws/vendedlogs/RUMService_Shop_0a1b2c3d",
        "/aws/vendedlogs/RUMService-Shop0a1b2c3d",
        "/aws/vendedlogs/rumservice_Shop0a1b2c3d",
        "aws/vendedlogs/RUMService_Shop0a1b2c3d",
        "/aws/vendedlogs/RUMService_Shop0a1b2c3d/",
        " /aws/vendedlogs/RUMService_Shop0a1b2c3d",
        "/aws/vendedlogs/RUMService_Shop0a1b2c3d ",
        "/aws/vendedlogs/RUMService_Shop0a1b2c3d\n",
        "/aws/lambda/Shop0a1b2c3d",
        "Shop",
        "",
    ],
)
def test_a_log_group_that_is_not_exactly_a_monitors_is_not_matched(log_group: str) -> None:
    directory = MonitorDirectory(["Shop"], ["Shop_SignedIn"])

    assert directory.for_log_group(log_group) is None
    assert directory.for_log_group(log_group) is None  # and the cached answer stays the same


EDITS = st.sampled_from(["insert", "delete", "replace"])


@given(name=NAMES, app_id=APP_MONITOR_IDS, operation=EDITS, position=st.integers(0, 300), char=st.characters())
def test_any_edit_of_a_log_group_misses_or_still_names_a_monitor_exactly(
    name: str, app_id: str, operation: str, position: int, char: str
) -> None:
    directory = MonitorDirectory([name], [name + "_SignedIn"])
    log_group = directory.monitors[0].log_group_name(app_id)
    position %= len(log_group)
    keep = position + (operation != "insert")
    edited = log_group[:position] + ("" if operation == "delete" else char) + log_group[keep:]

    found = directory.for_log_group(edited)

    assert found is None or _matches_exactly(edited, found)


def test_monitors_keep_their_audience_and_the_configured_order() -> None:
    directory = MonitorDirectory.from_csv(" Shop_Guest , Blog_Guest,,", "Shop_SignedIn")

    assert directory.monitors == (
        Monitor("Shop_Guest", Audience.GUEST),
        Monitor("Blog_Guest", Audience.GUEST),
        Monitor("Shop_SignedIn", Audience.SIGNED_IN),
    )
    assert directory.get("Blog_Guest") == Monitor("Blog_Guest", Audience.GUEST)
    assert directory.get("Nope") is None


def test_the_log_group_name_uses_the_first_eight_characters_of_the_id() -> None:
    monitor = Monitor("Shop", Audience.GUEST)

    assert monitor.log_group_name("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d") == "/aws/vendedlogs/RUMService_Shop0a1b2c3d"


@pytest.mark.parametrize("name", ["x" * 255, "a.b", "#1", "-a", "_", "A-Z_a-z.0-9#"])
def test_valid_monitor_names_are_accepted(name: str) -> None:
    assert MonitorDirectory([name], []).monitors == (Monitor(name, Audience.GUEST),)


@pytest.mark.parametrize(
    "name", ["", ".hidden", "has space", "a/b", "x" * 256, "ünïcode", "tab\tname", "new\nline", "trailing\n", "a,b"]
)
@pytest.mark.parametrize("audience", ["guest", "signed-in"])
def test_an_invalid_monitor_name_is_a_config_error(name: str, audience: str) -> None:
    guest, signed_in = ([name], ["Valid"]) if audience == "guest" else (["Valid"], [name])

    with pytest.raises(MonitorConfigError, match="not a valid"):
        MonitorDirectory(guest, signed_in)


@pytest.mark.parametrize(
    ("guest", "signed_in"),
    [(["Shop", "Shop"], []), (["Shop"], ["Shop"]), ([], ["Shop", "Blog", "Shop"])],
)
def test_a_monitor_configured_twice_is_a_config_error(guest: list[str], signed_in: list[str]) -> None:
    with pytest.raises(MonitorConfigError, match="'Shop' is configured twice"):
        MonitorDirectory(guest, signed_in)


@pytest.mark.parametrize(("guest", "signed_in"), [("", ""), (" , ,", ""), ("", ",")])
def test_no_monitors_at_all_is_a_config_error(guest: str, signed_in: str) -> None:
    with pytest.raises(MonitorConfigError, match="no app monitors"):
        MonitorDirectory.from_csv(guest, signed_in)
