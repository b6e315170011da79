"""Schema-driven property tests of the RUM event parser.

The RUM web client's JSON Schemas (vendored in ``tests/data/rum-event-schemas``) are the oracle: every
``event_details`` and ``metadata`` they allow, wrapped the way RUM writes it to CloudWatch Logs, must parse,
keep its content and be counted under its type; an example broken in one rule must be rejected with the
right reason and charged as junk to the identity it claims. Each generated example is checked against the
schema with ``jsonschema`` first, so a generator bug cannot pass for a parser property.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator

from rumguard.events import (
    KNOWN_EVENT_TYPES,
    MAX_CLOCK_SKEW_MS,
    METADATA_KEY_MAX,
    METADATA_VALUE_MAX,
    EventKind,
    Rejection,
    RejectReason,
    RumEvent,
    parse_event,
)
from rumguard.ingest import TIMED_KINDS, BatchReport
from rumguard.local.traffic import TrafficSimulator, mixed_traffic
from rumguard.monitors import MonitorDirectory

Ingest = Callable[[list[dict[str, Any]]], BatchReport]

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "data" / "rum-event-schemas"
#: The shared reference copies beside the repository: present in the workspace, absent in a fresh clone.
SHARED_DIR = Path(__file__).resolve().parents[3] / "shared" / "rum-event-schemas"
META_FILE = "meta-data.json"
XRAY_FILE = "xray-trace-event.json"
#: xray-trace-event.json's $id is ``com.amazon.xray_trace_event``; the client sends this constant.
XRAY_CLIENT_TYPE = "com.amazon.rum.xray_trace_event"
IDENTITY = "cognitoIdentityId"
#: DESIGN.md's junk rule: events that fail the schema or carry timestamps more than 24 hours off.
JUNK = frozenset({RejectReason.INVALID, RejectReason.TOO_LONG, RejectReason.CLOCK_SKEW})


def _load(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def _with_anchors(node: Any) -> Any:
    """The schema as draft 2020-12 spells it: ``"$id": "#name"`` in a definition becomes ``"$anchor"``.

    The files declare draft 2020-12 but name their definitions the draft-07 way. Under 2020-12 such an
    ``$id`` starts a new resource, and the ``#/definitions/...`` references inside it no longer resolve.
    """
    if isinstance(node, dict):
        return {
            ("$anchor" if key == "$id" and str(value).startswith("#") else key): (
                value[1:] if key == "$id" and str(value).startswith("#") else _with_anchors(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_with_anchors(item) for item in node]
    return node


def _generable(schema: dict[str, Any], depth: int = 2, max_items: int = 3) -> Any:
    """The schema narrowed for generation: references inlined, recursion cut at ``depth``, short arrays.

    hypothesis-jsonschema cannot generate from recursive references (X-Ray subsegments hold subsegments).
    Past ``depth`` a reference becomes ``false``, which only leaves empty arrays there; arrays hold at most
    ``max_items`` items so that the big schemas (X-Ray, rrweb) stay quick. Every document the narrowed
    schema allows is one the original allows, and the validator checks against the original.
    """
    definitions = schema.get("definitions", {})

    def walk(node: Any, path: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.removeprefix("#/definitions/")
                return False if path.count(name) >= depth else walk(definitions[name], (*path, name))
            narrowed = {key: walk(value, path) for key, value in node.items() if key not in ("$id", "definitions")}
            if narrowed.get("type") == "array":
                narrowed.setdefault("maxItems", max_items)
            return narrowed
        if isinstance(node, list):
            return [walk(item, path) for item in node]
        return node

    return walk(schema, ())


META_SCHEMA = _load(SCHEMA_DIR / META_FILE)
DETAIL_SCHEMAS = {path.name: _load(path) for path in sorted(SCHEMA_DIR.glob("*.json")) if path.name != META_FILE}
#: (event_type, schema file) for every schema, plus the client's spelling of the X-Ray type.
CASES = sorted([(schema["$id"], name) for name, schema in DETAIL_SCHEMAS.items()] + [(XRAY_CLIENT_TYPE, XRAY_FILE)])
#: One case per schema file, for the tests that break a rule of the details.
FILE_CASES = sorted((schema["$id"], name) for name, schema in DETAIL_SCHEMAS.items())

VALIDATORS = {name: Draft202012Validator(_with_anchors(schema)) for name, schema in DETAIL_SCHEMAS.items()}
META_VALIDATOR = Draft202012Validator(META_SCHEMA)
Objects = st.SearchStrategy[dict[str, Any]]
DETAILS = {name: cast(Objects, from_schema(_generable(schema))) for name, schema in DETAIL_SCHEMAS.items()}
# A key that contains "pageTags" after its start matches both patterns of meta-data.json, which no value can
# satisfy when the key is short: generate "pageTags" keys from the start only, or half the examples are lost.
# (The long ones, valid anywhere, have their own test below.)
META_PATTERNS = {
    ("^pageTags" if key == "pageTags" else key): value for key, value in META_SCHEMA["patternProperties"].items()
}
METADATA = cast(Objects, from_schema({**META_SCHEMA, "patternProperties": META_PATTERNS}))


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


#: Any JSON value, for the places where the schemas allow anything.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    _containers,
    max_leaves=8,
)
#: Client clocks are off by up to 24 hours either way, exactly 24 hours included; milliseconds may be fractional.
SKEWS = st.integers(-MAX_CLOCK_SKEW_MS, MAX_CLOCK_SKEW_MS) | st.floats(-MAX_CLOCK_SKEW_MS, MAX_CLOCK_SKEW_MS)
#: What RUM writes as ``user_details``: usually the client's ids, all zeros without cookies.
USER_DETAILS = st.sampled_from(
    [
        {"sessionId": "1a2b3c4d-0000-4000-8000-000000000001", "userId": "9f8e7d6c-0000-4000-8000-000000000002"},
        {"sessionId": "00000000-0000-0000-0000-000000000000", "userId": "00000000-0000-0000-0000-000000000000"},
        None,
    ]
)
#: The identity an event claims: any attribute value RUM accepts, or none at all.
IDENTITIES = st.none() | st.text(min_size=1, max_size=METADATA_VALUE_MAX)


@st.composite
def _metadata(draw: st.DrawFn) -> tuple[dict[str, Any], str | None]:
    """Valid metadata, with the app's identity attribute or without it."""
    metadata: dict[str, Any] = draw(METADATA, label="metadata")
    identity = draw(IDENTITIES, label="identity")
    metadata.pop(IDENTITY, None)
    if identity is not None:
        metadata[IDENTITY] = identity
    META_VALIDATOR.validate(metadata)
    return metadata, identity


@st.composite
def _message(draw: st.DrawFn, event_type: Any, details: Any, metadata: Any, received_ms: int) -> str:
    """One CloudWatch Logs message as RUM writes it, its fields in any order, escaped or raw UTF-8."""
    body: dict[str, Any] = {
        "event_timestamp": received_ms + draw(SKEWS, label="skew"),
        "event_type": event_type,
        "event_id": "6f0c6a1e-1d3c-4a44-9d7e-2c1c1d7a9b11",
        "event_version": "1.0.0",
        "log_stream": "2026-01-01T00",
        "application_id": "a1b2c3d4-0000-4000-8000-00000000abcd",
        "application_version": "1.0.0",
        "metadata": metadata,
        "user_details": draw(USER_DETAILS),
        "event_details": details,
    }
    order = draw(st.permutations(list(body)), label="field order")
    return json.dumps({key: body[key] for key in order}, ensure_ascii=draw(st.booleans(), label="ascii"))


@st.composite
def _valid_event(draw: st.DrawFn) -> tuple[str, dict[str, Any], dict[str, Any], str | None]:
    """A valid event of any schema: its type, details, metadata and claimed identity."""
    event_type, schema_file = draw(st.sampled_from(CASES), label="event type")
    details = draw(DETAILS[schema_file], label="event_details")
    VALIDATORS[schema_file].validate(details)
    metadata, identity = draw(_metadata())
    return event_type, details, metadata, identity


def _same(parsed: Any, original: Any) -> bool:
    """Whether a parsed value (as builtins) holds the JSON content of the original.

    Numbers compare as the doubles a JSON parser makes of them: a schema "number" may arrive as ``3`` and
    be kept as ``3.0``.
    """
    if isinstance(original, bool) or original is None or isinstance(original, str):
        return type(parsed) is type(original) and parsed == original
    if isinstance(original, int | float):
        return type(parsed) in (int, float) and float(parsed) == float(original)
    if isinstance(original, list):
        return isinstance(parsed, list) and len(parsed) == len(original) and all(map(_same, parsed, original))
    if isinstance(original, dict):
        return (
            isinstance(parsed, dict)
            and parsed.keys() == original.keys()
            and all(_same(parsed[key], value) for key, value in original.items())
        )
    raise AssertionError(f"not a JSON value: {original!r}")


def _log_event(message: str, received_ms: int) -> dict[str, Any]:
    return {"id": "event-0", "timestamp": received_ms, "message": message}


def _assert_rejected(
    message: str, received_ms: int, reason: RejectReason, identity: str | None, ingest: Ingest
) -> None:
    """Rejected for ``reason`` alone, counted once, sampled, and charged as junk to the claimed identity."""
    result = parse_event(message, received_ms)
    assert isinstance(result, Rejection), f"accepted: {message[:500]}"
    assert result.reason is reason, result
    report = ingest([_log_event(message, received_ms)])
    assert (report.by_kind, report.rejected) == ({}, {reason: 1})
    assert report.samples[reason].log_event_id == "event-0"
    if identity is not None and reason in JUNK:
        assert list(report.identities) == [identity]
        assert (report.identities[identity].junk, report.identities[identity].events) == (1, 0)
    else:
        assert report.identities == {}


# --- the vendored schemas ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(path.name for path in SCHEMA_DIR.iterdir() if path.name != "NOTICE"))
def test_vendored_copy_equals_the_shared_reference(name: str) -> None:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"no shared reference copies at {SHARED_DIR}")
    assert (SCHEMA_DIR / name).read_bytes() == (SHARED_DIR / name).read_bytes()


def test_every_shared_schema_is_vendored() -> None:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"no shared reference copies at {SHARED_DIR}")
    shared = {path.name for path in SHARED_DIR.glob("*.json")}
    assert shared <= {path.name for path in SCHEMA_DIR.glob("*.json")}


def test_the_parser_knows_exactly_the_event_types_of_the_schemas() -> None:
    assert {event_type for event_type, _ in CASES} == set(KNOWN_EVENT_TYPES)


# --- everything the schemas allow ---------------------------------------------------------------------------
@pytest.mark.parametrize(("event_type", "schema_file"), CASES)
@given(data=st.data())
def test_every_event_the_schemas_allow_parses_and_counts_under_its_type(
    event_type: str, schema_file: str, data: st.DataObject, received_ms: int, ingest: Ingest
) -> None:
    details = data.draw(DETAILS[schema_file], label="event_details")
    VALIDATORS[schema_file].validate(details)
    metadata, identity = data.draw(_metadata())
    message = data.draw(_message(event_type, details, metadata, received_ms))
    kind = KNOWN_EVENT_TYPES[event_type]

    result = parse_event(message, received_ms)

    assert isinstance(result, RumEvent), f"{result} for {message[:1000]}"
    assert (result.kind, result.event_type) == (kind, event_type)
    expected = details
    if kind is EventKind.RRWEB:
        # A recording event's other properties are open in the schema, and the parser keeps only these three.
        expected = {**details, "events": [{k: e[k] for k in ("type", "timestamp", "data")} for e in details["events"]]}
    assert _same(msgspec.to_builtins(result.details), expected)
    assert _same(result.metadata, metadata)
    assert result.attribute(IDENTITY) == identity

    report = ingest([_log_event(message, received_ms)])

    assert (report.by_kind, report.rejected) == ({kind: 1}, {})
    timing = details["duration" if kind is EventKind.NAVIGATION else "value"] if kind in TIMED_KINDS else None
    assert report.timings == ({} if timing is None else {kind: [float(timing)]})
    failed = kind is EventKind.HTTP and ("error" in details or details.get("response", {}).get("status", 0) >= 400)
    assert report.http_errors == failed
    if identity is None:
        assert (report.identities, report.without_identity) == ({}, 1)
    else:
        assert list(report.identities) == [identity]
        assert (report.identities[identity].events, report.identities[identity].junk) == (1, 0)


@given(data=st.data())
def test_a_page_tags_key_may_be_longer_than_128_characters(
    data: st.DataObject, received_ms: int, ingest: Ingest
) -> None:
    # meta-data.json bounds keys only in its scalar-value pattern; "pageTags" keys match the unbounded one.
    event_type, details, metadata, _ = data.draw(_valid_event())
    prefix = data.draw(st.text(max_size=40), label="prefix")
    key = prefix + "pageTags" + data.draw(st.text(min_size=METADATA_KEY_MAX, max_size=300), label="suffix")
    metadata[key] = data.draw(st.lists(st.text(max_size=20), max_size=3), label="tags")
    META_VALIDATOR.validate(metadata)
    message = data.draw(_message(event_type, details, metadata, received_ms))

    result = parse_event(message, received_ms)

    assert isinstance(result, RumEvent), result
    assert result.metadata[key] == metadata[key]
    assert ingest([_log_event(message, received_ms)]).by_kind == {KNOWN_EVENT_TYPES[event_type]: 1}


# --- one rule broken ----------------------------------------------------------------------------------------
#: The mutation tests run per schema and rule, so each needs fewer examples than the acceptance property.
FEW = settings(max_examples=max(5, settings().max_examples // 4))


def _required_numbers(schema: dict[str, Any]) -> list[str]:
    properties = schema["properties"]
    return [name for name in schema.get("required", []) if properties[name].get("type") in ("number", "integer")]


NOT_NUMBERS = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)


@pytest.mark.parametrize(
    ("event_type", "schema_file"),
    [case for case in FILE_CASES if _required_numbers(DETAIL_SCHEMAS[case[1]])],
)
@FEW
@given(data=st.data())
def test_a_required_number_of_another_type_is_invalid(
    event_type: str, schema_file: str, data: st.DataObject, received_ms: int, ingest: Ingest
) -> None:
    details = data.draw(DETAILS[schema_file], label="event_details")
    name = data.draw(st.sampled_from(_required_numbers(DETAIL_SCHEMAS[schema_file])), label="property")
    details[name] = data.draw(NOT_NUMBERS, label="value")
    assert not VALIDATORS[schema_file].is_valid(details)
    metadata, identity = data.draw(_metadata())
    message = data.draw(_message(event_type, details, metadata, received_ms))

    _assert_rejected(message, received_ms, RejectReason.INVALID, identity, ingest)


@pytest.mark.parametrize(("event_type", "schema_file"), FILE_CASES)
@FEW
@given(data=st.data())
def test_an_unknown_property_of_the_details_is_invalid(
    event_type: str, schema_file: str, data: st.DataObject, received_ms: int, ingest: Ingest
) -> None:
    details = data.draw(DETAILS[schema_file], label="event_details")
    known = DETAIL_SCHEMAS[schema_file]["properties"]
    details[data.draw(st.text(max_size=12).filter(lambda key: key not in known), label="key")] = data.draw(
        JSON_VALUES, label="value"
    )
    assert not VALIDATORS[schema_file].is_valid(details)
    metadata, identity = data.draw(_metadata())
    message = data.draw(_message(event_type, details, metadata, received_ms))

    _assert_rejected(message, received_ms, RejectReason.INVALID, identity, ingest)


@pytest.mark.parametrize(("event_type", "schema_file"), FILE_CASES)
@FEW
@given(data=st.data())
def test_a_missing_required_property_is_invalid(
    event_type: str, schema_file: str, data: st.DataObject, received_ms: int, ingest: Ingest
) -> None:
    details = data.draw(DETAILS[schema_file], label="event_details")
    del details[data.draw(st.sampled_from(DETAIL_SCHEMAS[schema_file]["required"]), label="missing")]
    assert not VALIDATORS[schema_file].is_valid(details)
    metadata, identity = data.draw(_metadata())
    message = data.draw(_message(event_type, details, metadata, received_ms))

    _assert_rejected(message, received_ms, RejectReason.INVALID, identity, ingest)


#: Metadata keys that may hold a string: known string properties and custom attributes (1 to 128 characters).
STRING_KEYS = st.sampled_from(["domain", "pageUrl", "title", "browserName"]) | st.text(
    min_size=1, max_size=METADATA_KEY_MAX
).filter(lambda key: "pageTags" not in key and key not in (IDENTITY, "version", "interaction"))


@given(data=st.data())
def test_a_metadata_value_over_256_characters_is_too_long(
    data: st.DataObject, received_ms: int, ingest: Ingest
) -> None:
    event_type, details, metadata, identity = data.draw(_valid_event())
    metadata[data.draw(STRING_KEYS, label="key")] = data.draw(
        st.text(min_size=METADATA_VALUE_MAX + 1, max_size=METADATA_VALUE_MAX + 200), label="value"
    )
    assert not META_VALIDATOR.is_valid(metadata)
    message = data.draw(_message(event_type, details, metadata, received_ms))

    _assert_rejected(message, received_ms, RejectReason.TOO_LONG, identity, ingest)


@given(data=st.data())
def test_a_metadata_key_over_128_characters_is_too_long(data: st.DataObject, received_ms: int, ingest: Ingest) -> None:
    event_type, details, metadata, identity = data.draw(_valid_event())
    key = data.draw(
        st.text(min_size=METADATA_KEY_MAX + 1, max_size=METADATA_KEY_MAX + 200).filter(lambda k: "pageTags" not in k),
        label="key",
    )
    # Any value: a string, a number, a boolean, and even an array (which only a "pageTags" key could hold).
    metadata[key] = data.draw(
        st.text(max_size=20) | st.booleans() | st.integers() | st.lists(st.text(max_size=5), max_size=2),
        label="value",
    )
    assert not META_VALIDATOR.is_valid(metadata)
    message = data.draw(_message(event_type, details, metadata, received_ms))

    _assert_rejected(message, received_ms, RejectReason.TOO_LONG, identity, ingest)


@given(data=st.data())
def test_a_long_page_tags_key_with_a_scalar_value_is_too_long(
    data: st.DataObject, received_ms: int, ingest: Ingest
) -> None:
    event_type, details, metadata, identity = data.draw(_valid_event())
    key = "pageTags" + data.draw(st.text(min_size=METADATA_KEY_MAX, max_size=200), label="suffix")
    metadata[key] = data.draw(st.text(max_size=20) | st.booleans() | st.integers(), label="value")
    assert not META_VALIDATOR.is_valid(metadata)
    message = data.draw(_message(event_type, details, metadata, received_ms))

    _assert_rejected(message, received_ms, RejectReason.TOO_LONG, identity, ingest)


# --- the traffic simulator ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 7, 2026])
def test_every_simulated_event_is_valid_against_the_schemas(
    seed: int, monitors: MonitorDirectory, received_ms: int
) -> None:
    validators = {event_type: VALIDATORS[schema_file] for event_type, schema_file in CASES}
    simulator = TrafficSimulator(*monitors.monitors, seed=seed, start_ms=received_ms)
    event_types: set[str] = set()

    for record in mixed_traffic(simulator, sessions=40, identities=8):
        body = json.loads(record.message)
        META_VALIDATOR.validate(body["metadata"])
        validator = validators.get(body["event_type"])
        if validator is None:
            assert record.kind is EventKind.OTHER, body["event_type"]
        else:
            validator.validate(body["event_details"])
        event_types.add(body["event_type"])

    assert set(KNOWN_EVENT_TYPES) <= event_types, "every schema, both X-Ray spellings, should be exercised"
