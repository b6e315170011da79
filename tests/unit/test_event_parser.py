"""Example-based tests of the RUM event parser: bad input of every kind, RUM's limits, clock skew, event types.

The schema-driven properties live in ``test_event_schemas.py``; these pin down each rejection reason on a
readable example (the README's page view, from the ``page_view`` fixture) and the edge of every limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rumguard.events import (
    EVENT_TYPE_MAX,
    KNOWN_EVENT_TYPES,
    MAX_CLOCK_SKEW_MS,
    METADATA_KEY_MAX,
    METADATA_VALUE_MAX,
    EventKind,
    Rejection,
    RejectReason,
    RumEvent,
    claimed_attribute,
    parse_event,
)

IDENTITY = "cognitoIdentityId"
Mutation = Callable[[dict[str, Any]], None]
NewBody = Callable[[], dict[str, Any]]


def _set(*path: str, value: Any) -> Mutation:
    """Set the value at ``path`` in an event body."""

    def mutate(body: dict[str, Any]) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _drop(*path: str) -> Mutation:
    """Remove the value at ``path`` from an event body."""

    def mutate(body: dict[str, Any]) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _parse(body: dict[str, Any], received_ms: int) -> RumEvent | Rejection:
    return parse_event(json.dumps(body), received_ms)


def _reason(result: RumEvent | Rejection) -> RejectReason | EventKind:
    """The reason of a rejection, or the kind of an accepted event: one value to compare against."""
    return result.reason if isinstance(result, Rejection) else result.kind


def test_the_readme_example_parses(page_view: dict[str, Any], received_ms: int) -> None:
    result = _parse(page_view, received_ms)

    assert isinstance(result, RumEvent), result
    assert (result.kind, result.event_type) == (EventKind.PAGE_VIEW, "com.amazon.rum.page_view_event")
    assert result.timestamp_ms == page_view["event_timestamp"]
    assert result.session_id == page_view["user_details"]["sessionId"]
    assert result.attribute(IDENTITY) == page_view["metadata"][IDENTITY]
    assert (result.details.pageId, result.details.interaction) == ("/", 1.0)


def test_bytes_parse_like_text(page_view: dict[str, Any], received_ms: int) -> None:
    assert parse_event(json.dumps(page_view).encode(), received_ms) == _parse(page_view, received_ms)


@pytest.mark.parametrize(
    "message",
    ["", "   ", "not json", "{", '{"event_type": ', "{'single': 'quotes'}", '{"a": 1} trailing', "[1, 2", "NaN"],
)
def test_a_message_that_is_not_json_is_rejected_as_not_json(message: str, received_ms: int) -> None:
    assert _reason(parse_event(message, received_ms)) is RejectReason.NOT_JSON


@pytest.mark.parametrize(
    "message", ["[]", "[1, 2]", "42", "-1.5", "null", "true", '"text"', "{}", '{"foo": 1}', '{"message": "hi"}']
)
def test_json_that_is_not_a_rum_event_is_rejected_as_not_rum(message: str, received_ms: int) -> None:
    assert _reason(parse_event(message, received_ms)) is RejectReason.NOT_RUM


@pytest.mark.parametrize("field", ["event_timestamp", "metadata", "event_details"])
@pytest.mark.parametrize("event_type", ["com.amazon.rum.page_view_event", "com.example.custom_event"])
def test_an_event_without_an_envelope_field_that_rum_always_writes_is_not_rum(
    page_view: dict[str, Any], received_ms: int, field: str, event_type: str
) -> None:
    # RUM writes the envelope itself; a message missing part of it did not come from RUM.
    page_view["event_type"] = event_type
    del page_view[field]

    assert _reason(_parse(page_view, received_ms)) is RejectReason.NOT_RUM


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_set("event_timestamp", value="1767225598000"), id="timestamp-string"),
        pytest.param(_set("event_timestamp", value=True), id="timestamp-boolean"),
        pytest.param(_set("event_timestamp", value=None), id="timestamp-null"),
        pytest.param(_set("event_type", value=42), id="type-number"),
        pytest.param(_set("event_type", value=None), id="type-null"),
        pytest.param(_set("metadata", value=[]), id="metadata-array"),
        pytest.param(_set("metadata", value="1.0.0"), id="metadata-string"),
        pytest.param(_drop("metadata", "version"), id="metadata-without-version"),
        pytest.param(_set("metadata", "version", value="2.0.0"), id="metadata-other-version"),
        pytest.param(_drop("metadata", "domain"), id="metadata-without-domain"),
        pytest.param(_set("metadata", "domain", value=5), id="metadata-domain-number"),
        pytest.param(_set("metadata", "title", value=True), id="metadata-known-string-boolean"),
        pytest.param(_set("metadata", "custom", value={"nested": 1}), id="metadata-object-value"),
        pytest.param(_set("metadata", "custom", value=None), id="metadata-null-value"),
        pytest.param(_set("metadata", "custom", value=["a"]), id="metadata-array-not-page-tags"),
        pytest.param(_set("metadata", "pageTags", value=[1]), id="metadata-page-tags-numbers"),
        pytest.param(_set("metadata", "pageTags", value=["a", True]), id="metadata-page-tags-mixed"),
        pytest.param(_set("metadata", "", value="x"), id="metadata-empty-key"),
        pytest.param(_set("user_details", value="someone"), id="user-details-string"),
        pytest.param(_set("event_details", value=None), id="details-null"),
        pytest.param(_set("event_details", value=[]), id="details-array"),
        pytest.param(_set("event_details", "interaction", value="1"), id="details-number-as-string"),
        pytest.param(_set("event_details", "interaction", value=True), id="details-boolean-as-number"),
        pytest.param(_set("event_details", "pageId", value=7), id="details-string-as-number"),
        pytest.param(_drop("event_details", "pageId"), id="details-without-required"),
        pytest.param(_set("event_details", "version", value="1.0.1"), id="details-other-version"),
        pytest.param(_set("event_details", "extra", value=1), id="details-unknown-property"),
    ],
)
def test_a_mistyped_or_missing_field_is_invalid(page_view: dict[str, Any], received_ms: int, mutate: Mutation) -> None:
    mutate(page_view)

    assert _reason(_parse(page_view, received_ms)) is RejectReason.INVALID


@pytest.mark.parametrize(
    ("mutate", "outcome"),
    [
        pytest.param(_set("metadata", "title", value="t" * METADATA_VALUE_MAX), EventKind.PAGE_VIEW, id="value-256"),
        pytest.param(
            _set("metadata", "title", value="t" * (METADATA_VALUE_MAX + 1)), RejectReason.TOO_LONG, id="value-257"
        ),
        # Characters, not bytes or UTF-16 units: 256 emoji are 1,024 bytes and still within the limit.
        pytest.param(_set("metadata", "note", value="😀" * METADATA_VALUE_MAX), EventKind.PAGE_VIEW, id="value-emoji"),
        pytest.param(
            _set("metadata", "domain", value="d" * (METADATA_VALUE_MAX + 1)), RejectReason.TOO_LONG, id="domain"
        ),
        pytest.param(_set("metadata", "k" * METADATA_KEY_MAX, value="v"), EventKind.PAGE_VIEW, id="key-128"),
        pytest.param(_set("metadata", "k" * (METADATA_KEY_MAX + 1), value="v"), RejectReason.TOO_LONG, id="key-129"),
        pytest.param(_set("metadata", "k" * (METADATA_KEY_MAX + 1), value=1), RejectReason.TOO_LONG, id="key-129-num"),
        pytest.param(
            _set("metadata", "pageTags" + "t" * METADATA_KEY_MAX, value=["a"]), EventKind.PAGE_VIEW, id="long-tags-key"
        ),
        pytest.param(
            _set("metadata", "pageTags" + "t" * METADATA_KEY_MAX, value="a"), RejectReason.TOO_LONG, id="long-tags-str"
        ),
        pytest.param(_set("metadata", "pageTags", value=["t" * 1000]), EventKind.PAGE_VIEW, id="page-tag-unbounded"),
    ],
)
def test_metadata_limits(
    page_view: dict[str, Any], received_ms: int, mutate: Mutation, outcome: EventKind | RejectReason
) -> None:
    mutate(page_view)

    assert _reason(_parse(page_view, received_ms)) is outcome


@pytest.mark.parametrize(
    ("field", "length", "outcome"),
    [
        ("trace_id", 35, EventKind.HTTP),
        ("trace_id", 36, RejectReason.TOO_LONG),
        ("trace_id", 34, RejectReason.INVALID),
        ("segment_id", 16, EventKind.HTTP),
        ("segment_id", 17, RejectReason.TOO_LONG),
        ("segment_id", 15, RejectReason.INVALID),
    ],
)
def test_http_trace_ids_have_fixed_lengths(
    page_view: dict[str, Any], received_ms: int, field: str, length: int, outcome: EventKind | RejectReason
) -> None:
    page_view["event_type"] = "com.amazon.rum.http_event"
    page_view["event_details"] = {"version": "1.0.0", "request": {"method": "GET"}, field: "f" * length}

    assert _reason(_parse(page_view, received_ms)) is outcome


@pytest.mark.parametrize(
    ("offset_ms", "outcome"),
    [
        (0, EventKind.PAGE_VIEW),
        (MAX_CLOCK_SKEW_MS, EventKind.PAGE_VIEW),
        (-MAX_CLOCK_SKEW_MS, EventKind.PAGE_VIEW),
        (MAX_CLOCK_SKEW_MS + 1, RejectReason.CLOCK_SKEW),
        (-MAX_CLOCK_SKEW_MS - 1, RejectReason.CLOCK_SKEW),
        (MAX_CLOCK_SKEW_MS + 0.5, RejectReason.CLOCK_SKEW),
        (-MAX_CLOCK_SKEW_MS - 0.5, RejectReason.CLOCK_SKEW),
        (-1_767_225_600_000, RejectReason.CLOCK_SKEW),  # the epoch: a client clock that was never set
        (100 * 365 * MAX_CLOCK_SKEW_MS, RejectReason.CLOCK_SKEW),
    ],
)
@pytest.mark.parametrize("event_type", ["com.amazon.rum.page_view_event", "com.example.custom_event"])
def test_an_event_more_than_24_hours_from_its_receipt_is_clock_skew(
    page_view: dict[str, Any],
    received_ms: int,
    offset_ms: float,
    outcome: EventKind | RejectReason,
    event_type: str,
) -> None:
    page_view["event_type"] = event_type
    page_view["event_timestamp"] = received_ms + offset_ms
    expected = EventKind.OTHER if outcome is EventKind.PAGE_VIEW and event_type not in KNOWN_EVENT_TYPES else outcome

    assert _reason(_parse(page_view, received_ms)) is expected


@given(offset_ms=st.floats(-MAX_CLOCK_SKEW_MS, MAX_CLOCK_SKEW_MS) | st.integers(-MAX_CLOCK_SKEW_MS, MAX_CLOCK_SKEW_MS))
def test_any_timestamp_within_24_hours_is_accepted(offset_ms: float, new_page_view: NewBody, received_ms: int) -> None:
    page_view = new_page_view()
    page_view["event_timestamp"] = received_ms + offset_ms

    assert _reason(_parse(page_view, received_ms)) is EventKind.PAGE_VIEW


# --- integers, and numbers beyond what a browser can send ----------------------------------------------------
@pytest.mark.parametrize(
    ("event_type", "details", "outcome"),
    [
        pytest.param(
            "com.amazon.rum.performance_navigation_event",
            {
                "version": "1.0.0",
                "initiatorType": "navigation",
                "startTime": 0,
                "duration": 812.5,
                "redirectCount": 2.0,
            },
            EventKind.NAVIGATION,
            id="redirect-count-2.0",
        ),
        pytest.param(
            "com.amazon.rum.performance_navigation_event",
            {
                "version": "1.0.0",
                "initiatorType": "navigation",
                "startTime": 0,
                "duration": 812.5,
                "redirectCount": 2.5,
            },
            RejectReason.INVALID,
            id="redirect-count-2.5",
        ),
        pytest.param(
            "com.amazon.xray_trace_event",
            {"name": "n", "id": "i", "trace_id": "t", "start_time": 1.5, "cause": {"exceptions": [{"truncated": 3.0}]}},
            EventKind.XRAY_TRACE,
            id="truncated-3.0",
        ),
        pytest.param(
            "com.amazon.xray_trace_event",
            {"name": "n", "id": "i", "trace_id": "t", "start_time": 1.5, "cause": {"exceptions": [{"truncated": 0.5}]}},
            RejectReason.INVALID,
            id="truncated-0.5",
        ),
        pytest.param(
            "com.amazon.rum.xray_trace_event",
            {
                "name": "n",
                "id": "i",
                "trace_id": "t",
                "start_time": 1.5,
                "subsegments": [
                    {"id": "s", "name": "n", "start_time": 2, "cause": {"exceptions": [{"stack": [{"line": 7.5}]}]}}
                ],
            },
            RejectReason.INVALID,
            id="nested-line-7.5",
        ),
        pytest.param(
            "com.amazon.rum.largest_contentful_paint_event",
            {"version": "1.0.0", "value": 1e308},
            EventKind.LCP,
            id="largest-double",
        ),
        pytest.param(
            "com.amazon.rum.largest_contentful_paint_event",
            {"version": "1.0.0", "value": 123456789012345678901234567890},
            EventKind.LCP,
            id="huge-integer",
        ),
    ],
)
def test_integer_properties_take_integral_numbers_only(
    page_view: dict[str, Any],
    received_ms: int,
    event_type: str,
    details: dict[str, Any],
    outcome: EventKind | RejectReason,
) -> None:
    page_view["event_type"], page_view["event_details"] = event_type, details

    assert _reason(_parse(page_view, received_ms)) is outcome


def test_a_number_beyond_the_double_range_is_invalid(page_view: dict[str, Any], received_ms: int) -> None:
    # Deliberately narrower than JSON Schema, which puts no bound on "number": the web client is JavaScript,
    # whose JSON.stringify writes only finite doubles, so such a number cannot come from a browser, and a
    # double cannot hold it anyway.
    message = json.dumps(page_view).replace('"interaction": 1', '"interaction": 1' + "0" * 400)

    assert _reason(parse_event(message, received_ms)) is RejectReason.INVALID


def test_a_lone_surrogate_escape_is_not_json(page_view: dict[str, Any], received_ms: int) -> None:
    # Deliberately narrower than JSON's grammar: a lone UTF-16 surrogate is no Unicode character, cannot be
    # written as UTF-8 (CloudWatch Logs messages are UTF-8), and msgspec refuses it.
    message = json.dumps(page_view).replace('"title": "Home"', '"title": "\\ud800"')

    assert _reason(parse_event(message, received_ms)) is RejectReason.NOT_JSON


# --- event types --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "event_type",
    [
        "com.example.custom_event",
        "com.amazon.rum.some_future_event",
        "com.amazonaws.rum.page_view_event",
        "a",
        "A-Z_a-z.0-9",
        "x" * EVENT_TYPE_MAX,
    ],
)
def test_an_unknown_but_well_formed_event_type_counts_as_other(
    page_view: dict[str, Any], received_ms: int, event_type: str
) -> None:
    page_view["event_type"] = event_type
    page_view["event_details"] = {"campaign": "winter-sale", "slot": 3, "nested": {"any": [1, "thing", None]}}

    result = _parse(page_view, received_ms)

    assert isinstance(result, RumEvent), result
    assert (result.kind, result.event_type) == (EventKind.OTHER, event_type)
    assert result.details == page_view["event_details"]
    assert result.attribute(IDENTITY) == page_view["metadata"][IDENTITY]


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [
        ("", RejectReason.INVALID),
        ("com example", RejectReason.INVALID),
        ("com.example.custom_event\n", RejectReason.INVALID),
        ("\ncom.example.custom_event", RejectReason.INVALID),
        ("com/example", RejectReason.INVALID),
        ("com.example.événement", RejectReason.INVALID),
        ("com.amazon.rum.page_view_event ", RejectReason.INVALID),
        ("x" * (EVENT_TYPE_MAX + 1), RejectReason.TOO_LONG),
    ],
)
def test_a_malformed_event_type_is_rejected(
    page_view: dict[str, Any], received_ms: int, event_type: str, reason: RejectReason
) -> None:
    page_view["event_type"] = event_type

    assert _reason(_parse(page_view, received_ms)) is reason


@pytest.mark.parametrize("details", [[], "text", 5, None, True])
def test_the_details_of_an_unknown_event_type_must_be_an_object(
    page_view: dict[str, Any], received_ms: int, details: Any
) -> None:
    page_view["event_type"], page_view["event_details"] = "com.example.custom_event", details

    assert _reason(_parse(page_view, received_ms)) is RejectReason.INVALID


def test_an_unknown_event_type_still_needs_valid_metadata(page_view: dict[str, Any], received_ms: int) -> None:
    page_view["event_type"] = "com.example.custom_event"
    page_view["metadata"]["k" * (METADATA_KEY_MAX + 1)] = "v"
    assert _reason(_parse(page_view, received_ms)) is RejectReason.TOO_LONG

    del page_view["metadata"]["k" * (METADATA_KEY_MAX + 1)]
    page_view["metadata"]["pageTags" + "t" * METADATA_KEY_MAX] = ["a"]
    assert _reason(_parse(page_view, received_ms)) is EventKind.OTHER


EVENT_TYPE_CHARS = "A-Za-z0-9_.\\-"


@given(
    event_type=st.from_regex(f"[{EVENT_TYPE_CHARS}]{{1,{EVENT_TYPE_MAX}}}", fullmatch=True).filter(
        lambda event_type: event_type not in KNOWN_EVENT_TYPES
    ),
    details=st.dictionaries(st.text(max_size=10), st.none() | st.booleans() | st.integers() | st.text(), max_size=4),
)
def test_any_well_formed_unknown_event_type_counts_as_other(
    event_type: str, details: dict[str, Any], new_page_view: NewBody, received_ms: int
) -> None:
    page_view = new_page_view()
    page_view["event_type"], page_view["event_details"] = event_type, details

    result = _parse(page_view, received_ms)

    assert isinstance(result, RumEvent), result
    assert (result.kind, result.event_type, result.details) == (EventKind.OTHER, event_type, details)


@given(
    event_type=st.text(min_size=1, max_size=EVENT_TYPE_MAX).filter(
        lambda text: any(not (char.isascii() and (char.isalnum() or char in "_.-")) for char in text)
    )
)
def test_any_event_type_with_a_character_outside_the_allowed_set_is_invalid(
    event_type: str, new_page_view: NewBody, received_ms: int
) -> None:
    page_view = new_page_view()
    page_view["event_type"] = event_type

    assert _reason(_parse(page_view, received_ms)) is RejectReason.INVALID


# --- what a parsed event offers -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [("us-east-1:0f9a8b7c", "us-east-1:0f9a8b7c"), ("", None), (42, None), (1.5, None), (True, None)],
)
def test_an_identity_attribute_is_a_non_empty_string(
    page_view: dict[str, Any], received_ms: int, value: Any, expected: str | None
) -> None:
    page_view["metadata"][IDENTITY] = value
    result = _parse(page_view, received_ms)

    assert isinstance(result, RumEvent), result
    assert result.attribute(IDENTITY) == expected


@pytest.mark.parametrize("user_details", [None, {}, {"sessionId": None}])
def test_an_event_without_a_session_id_has_none(
    page_view: dict[str, Any], received_ms: int, user_details: dict[str, Any] | None
) -> None:
    page_view["user_details"] = user_details
    result = _parse(page_view, received_ms)

    assert isinstance(result, RumEvent), result
    assert result.session_id is None


# --- the identity a rejected message claims -----------------------------------------------------------------
def test_a_rejected_event_still_names_the_identity_it_claims(page_view: dict[str, Any], received_ms: int) -> None:
    page_view["event_details"]["interaction"] = "not a number"
    message = json.dumps(page_view)
    assert _reason(parse_event(message, received_ms)) is RejectReason.INVALID

    assert claimed_attribute(message, IDENTITY) == page_view["metadata"][IDENTITY]


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[]",
        '{"metadata": []}',
        '{"metadata": {"cognitoIdentityId": 5}}',
        '{"metadata": {"cognitoIdentityId": ""}}',
        '{"metadata": {"cognitoIdentityId": "' + "i" * (METADATA_VALUE_MAX + 1) + '"}}',
        '{"event_type": "com.amazon.rum.page_view_event"}',
    ],
)
def test_a_message_without_a_usable_identity_claims_nobody(message: str) -> None:
    assert claimed_attribute(message, IDENTITY) is None
