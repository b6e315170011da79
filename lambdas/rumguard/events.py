"""The RUM event model and parser: one log message in, one typed event or one counted rejection out.

The types mirror the JSON Schemas that the aws-rum-web client ships (``packages/core/src/event-schemas``)
so that everything those schemas allow parses and what they forbid does not. Decoding and validation run
in one pass inside msgspec, straight from the JSON text. We measured the alternatives on a real-shaped
1 KB event: orjson decode alone 2.3 us, msgspec decode *and* full validation 2.4 us, pydantic (models)
15.9 us, pydantic (TypedDicts) 9.3 us. This is the per-event hot path, so msgspec it is.

Mapping rules from JSON Schema, applied throughout:
- ``"type": "number"`` is ``float`` (msgspec takes JSON integers and floats, never ``true`` or ``"1"``);
- ``"type": "integer"`` is ``float`` checked in ``__post_init__`` (draft 2020-12 allows ``1.0``);
- ``"additionalProperties": false`` is ``forbid_unknown_fields``; ``"const"``/``"enum"`` are ``Literal``;
- an optional property defaults to ``UNSET`` (absent), which is not the same as a JSON ``null``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

# --- RUM's own limits -------------------------------------------------------------------------------------
#: Custom session attributes: keys of 1 to 128 characters, values up to 256 (meta-data.json).
METADATA_KEY_MAX: Final = 128
METADATA_VALUE_MAX: Final = 256
#: Event types: 1 to 256 letters, digits, ``_``, ``-`` and ``.`` (the RUM custom events documentation).
#: msgspec matches patterns with ``re.search``, where ``$`` also matches before a trailing newline: anchor
#: with ``\A`` and ``\Z``. The length is its own limit so that an overlong type counts as too long.
EVENT_TYPE_MAX: Final = 256
EVENT_TYPE_PATTERN: Final = r"\A[A-Za-z0-9_.\-]+\Z"
#: An event more than this far from the time RUM received it is junk (see DESIGN.md, detection defaults).
MAX_CLOCK_SKEW_MS: Final = 24 * 60 * 60 * 1000


class EventKind(enum.StrEnum):
    """What RUM Guard counts an event as. The value is the short name used in reports."""

    SESSION_START = "session_start"
    PAGE_VIEW = "page_view"
    PAGE_CLOSE = "page_close"
    NAVIGATION = "navigation"
    RESOURCE = "resource"
    DOM = "dom"
    JS_ERROR = "js_error"
    HTTP = "http"
    XRAY_TRACE = "xray_trace"
    LCP = "largest_contentful_paint"
    FCP = "first_contentful_paint"
    FID = "first_input_delay"
    CLS = "cumulative_layout_shift"
    INP = "interaction_to_next_paint"
    TTFB = "time_to_first_byte"
    TTI = "time_to_interactive"
    RRWEB = "rrweb"
    OTHER = "other"


class RejectReason(enum.StrEnum):
    """Why a log event was not counted as a RUM event. The value is the ``Reason`` metric dimension."""

    NOT_JSON = "not_json"
    NOT_RUM = "not_rum"
    INVALID = "invalid"
    TOO_LONG = "too_long"
    CLOCK_SKEW = "clock_skew"
    UNKNOWN_MONITOR = "unknown_monitor"
    #: The whole subscription payload could not be decoded (not base64, not gzip, not the batch shape).
    UNDECODABLE = "undecodable"


# --- shared pieces ------------------------------------------------------------------------------------
Opt = UnsetType  # shorthand in annotations: ``float | Opt = UNSET`` reads as "optional number"
LoadState = Literal["loading", "dom-interactive", "dom-content-loaded", "complete"]
V1 = Literal["1.0.0"]


def _require_integers(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if value is not UNSET and not float(value).is_integer():
            raise ValueError(f"`{name}` must be an integer")


class _Closed(Struct, forbid_unknown_fields=True):
    """A JSON object with ``"additionalProperties": false``."""


# --- event_details, one type per schema ------------------------------------------------------------------
class SessionStartDetails(_Closed):
    """session-start-event.json"""

    version: V1


class PageViewDetails(_Closed):
    """page-view-event.json"""

    pageId: str
    version: V1 | Opt = UNSET
    pageInteractionId: str | Opt = UNSET
    interaction: float | Opt = UNSET
    parentPageInteractionId: str | Opt = UNSET
    timeOnParentPage: float | Opt = UNSET
    referrer: str | Opt = UNSET
    referrerDomain: str | Opt = UNSET


class PageCloseDetails(_Closed):
    """page-close-event.json"""

    pageId: str
    pageInteractionId: str
    interaction: float
    version: V1 | Opt = UNSET
    duration: float | Opt = UNSET


class _Timing(_Closed):
    """Fields that navigation-event.json and resource-event.json share (both from PerformanceEntry)."""

    version: V1
    duration: float
    redirectStart: float | Opt = UNSET
    redirectTime: float | Opt = UNSET
    workerStart: float | Opt = UNSET
    workerTime: float | Opt = UNSET
    fetchStart: float | Opt = UNSET
    domainLookupStart: float | Opt = UNSET
    dns: float | Opt = UNSET
    nextHopProtocol: str | Opt = UNSET
    connectStart: float | Opt = UNSET
    connect: float | Opt = UNSET
    secureConnectionStart: float | Opt = UNSET
    tlsTime: float | Opt = UNSET
    requestStart: float | Opt = UNSET
    timeToFirstByte: float | Opt = UNSET
    responseStart: float | Opt = UNSET
    responseTime: float | Opt = UNSET
    headerSize: float | Opt = UNSET
    transferSize: float | Opt = UNSET
    compressionRatio: float | Opt = UNSET


class NavigationDetails(_Timing, kw_only=True):
    """navigation-event.json: ``duration`` is the page load time."""

    initiatorType: Literal["navigation", "route_change"]
    startTime: float
    navigationType: Literal["navigate", "reload", "back_forward", "reserved"] | Opt = UNSET
    unloadEventStart: float | Opt = UNSET
    promptForUnload: float | Opt = UNSET
    redirectCount: float | Opt = UNSET
    domInteractive: float | Opt = UNSET
    domContentLoadedEventStart: float | Opt = UNSET
    domContentLoaded: float | Opt = UNSET
    domComplete: float | Opt = UNSET
    domProcessingTime: float | Opt = UNSET
    loadEventStart: float | Opt = UNSET
    loadEventTime: float | Opt = UNSET
    navigationTimingLevel: float | Opt = UNSET

    def __post_init__(self) -> None:
        _require_integers(self, "redirectCount")


class ResourceDetails(_Timing, kw_only=True):
    """resource-event.json"""

    initiatorType: str
    fileType: str
    targetUrl: str | Opt = UNSET
    startTime: float | Opt = UNSET


class DomDetails(_Closed):
    """dom-event.json"""

    version: Literal["1.1.0"]
    event: str
    element: str | Opt = UNSET
    elementId: str | Opt = UNSET
    cssLocator: str | Opt = UNSET
    interactionId: str | Opt = UNSET


class _ErrorFields(_Closed):
    type: str | Opt = UNSET
    message: str | Opt = UNSET
    filename: str | Opt = UNSET
    lineno: float | Opt = UNSET
    colno: float | Opt = UNSET
    stack: str | Opt = UNSET


class JsErrorDetails(_ErrorFields, kw_only=True):
    """js-error-event.json"""

    version: V1


class HttpRequest(_Closed):
    """http-event.json: request"""

    method: str
    url: str | Opt = UNSET


class HttpResponse(_Closed):
    """http-event.json: response"""

    status: float
    statusText: str | Opt = UNSET


class HttpError(_ErrorFields, kw_only=True):
    """http-event.json: error (the JS error fields, with a free-form version)"""

    version: str | Opt = UNSET


class HttpDetails(_Closed):
    """http-event.json"""

    version: V1
    request: HttpRequest
    trace_id: Annotated[str, Meta(min_length=35, max_length=35)] | Opt = UNSET
    segment_id: Annotated[str, Meta(min_length=16, max_length=16)] | Opt = UNSET
    response: HttpResponse | Opt = UNSET
    error: HttpError | Opt = UNSET


# X-Ray trace (xray-trace-event.json) ---------------------------------------------------------------------
class XRayStackFrame(_Closed):
    """#stackFrame"""

    class_name: str | Opt = UNSET
    file_name: str | Opt = UNSET
    line: float | Opt = UNSET
    method_name: str | Opt = UNSET

    def __post_init__(self) -> None:
        _require_integers(self, "line")


class XRayException(_Closed):
    """#exception"""

    id: str | Opt = UNSET
    message: str | Opt = UNSET
    type: str | Opt = UNSET
    remote: bool | Opt = UNSET
    truncated: float | Opt = UNSET
    cause: str | Opt = UNSET
    stack: list[XRayStackFrame] | Opt = UNSET

    def __post_init__(self) -> None:
        _require_integers(self, "truncated")


class XRayCause(_Closed):
    """#cause"""

    exceptions: list[XRayException] | Opt = UNSET


class XRayHttpRequest(_Closed):
    """#http: request"""

    method: str | Opt = UNSET
    url: str | Opt = UNSET
    client_ip: str | Opt = UNSET
    x_forwarded_for: bool | Opt = UNSET
    traced: bool | Opt = UNSET


class XRayHttpResponse(_Closed):
    """#http: response"""

    status: float | Opt = UNSET
    content_length: float | Opt = UNSET


class XRayHttp(_Closed):
    """#http"""

    request: XRayHttpRequest | Opt = UNSET
    response: XRayHttpResponse | Opt = UNSET


class _XRaySegment(_Closed):
    id: str
    name: str
    start_time: float
    end_time: float | Opt = UNSET
    origin: str | Opt = UNSET
    in_progress: bool | Opt = UNSET
    parent_id: str | Opt = UNSET
    http: XRayHttp | Opt = UNSET
    error: bool | Opt = UNSET
    throttle: bool | Opt = UNSET
    fault: bool | Opt = UNSET
    cause: XRayCause | Opt = UNSET
    annotations: dict[str, Any] | Opt = UNSET
    metadata: dict[str, Any] | Opt = UNSET
    subsegments: list[XRaySubsegment] | Opt = UNSET


class XRaySubsegment(_XRaySegment, kw_only=True):
    """#subsegment"""

    trace_id: str | Opt = UNSET
    type: str | Opt = UNSET
    namespace: str | Opt = UNSET


class XRayTraceDetails(_XRaySegment, kw_only=True):
    """xray-trace-event.json: the segment document."""

    trace_id: str
    version: V1 | Opt = UNSET
    user: str | Opt = UNSET


# Web vitals --------------------------------------------------------------------------------------------
class LcpAttribution(_Closed):
    """largest-contentful-paint-event.json: attribution"""

    timeToFirstByte: float
    resourceLoadDelay: float
    resourceLoadTime: float
    elementRenderDelay: float
    element: str | Opt = UNSET
    url: str | Opt = UNSET
    navigationEntry: str | Opt = UNSET
    lcpResourceEntry: str | Opt = UNSET


class FcpAttribution(_Closed):
    """first-contentful-paint-event.json: attribution"""

    timeToFirstByte: float
    firstByteToFCP: float
    loadState: LoadState


class FidAttribution(_Closed):
    """first-input-delay-event.json: attribution"""

    eventTarget: str
    eventType: str
    eventTime: float
    loadState: LoadState


class ClsAttribution(_Closed):
    """cumulative-layout-shift-event.json: attribution"""

    largestShiftTarget: str | Opt = UNSET
    largestShiftValue: float | Opt = UNSET
    largestShiftTime: float | Opt = UNSET
    loadState: LoadState | Opt = UNSET


class InpAttribution(_Closed):
    """interaction-to-next-paint.json: attribution"""

    interactionTarget: str | Opt = UNSET
    interactionTime: float | Opt = UNSET
    nextPaintTime: float | Opt = UNSET
    interactionType: Literal["pointer", "keyboard"] | Opt = UNSET
    inputDelay: float | Opt = UNSET
    processingDuration: float | Opt = UNSET
    presentationDelay: float | Opt = UNSET
    loadState: LoadState | Opt = UNSET


class TtfbAttribution(_Closed):
    """time-to-first-byte-event.json: attribution"""

    waitingDuration: float
    cacheDuration: float
    dnsDuration: float
    connectionDuration: float
    requestDuration: float


class _Vital(_Closed):
    version: V1
    value: float


class LcpDetails(_Vital, kw_only=True):
    """largest-contentful-paint-event.json"""

    attribution: LcpAttribution | Opt = UNSET


class FcpDetails(_Vital, kw_only=True):
    """first-contentful-paint-event.json"""

    attribution: FcpAttribution | Opt = UNSET


class FidDetails(_Vital, kw_only=True):
    """first-input-delay-event.json"""

    attribution: FidAttribution | Opt = UNSET


class ClsDetails(_Vital, kw_only=True):
    """cumulative-layout-shift-event.json"""

    attribution: ClsAttribution | Opt = UNSET


class InpDetails(_Vital, kw_only=True):
    """interaction-to-next-paint.json"""

    attribution: InpAttribution | Opt = UNSET


class TtfbDetails(_Vital, kw_only=True):
    """time-to-first-byte-event.json"""

    attribution: TtfbAttribution | Opt = UNSET


class TtiDetails(_Vital):
    """time-to-interactive-event.json"""


class RRWebRecord(Struct):
    """rrweb-event.json: one recording event (the schema leaves its other properties open)."""

    type: float
    timestamp: float
    data: Any


class RRWebDetails(_Closed):
    """rrweb-event.json"""

    version: V1
    events: list[RRWebRecord]
    eventCount: float


# --- metadata and the envelope ----------------------------------------------------------------------------
MetaKey = Annotated[str, Meta(min_length=1, max_length=METADATA_KEY_MAX)]
# meta-data.json limits keys to 128 characters only through the pattern of scalar values: a key containing
# "pageTags" matches just the unbounded "pageTags" pattern, so it may be longer. The fast decoders keep the
# 128 limit (checked in C while decoding); the rare longer key is handled in ``_decode_rare``.
_LONG_KEY: Final = f"Expected `str` of length <= {METADATA_KEY_MAX} - at `key` in `$.metadata`"
MetaValue = Annotated[str, Meta(max_length=METADATA_VALUE_MAX)] | bool | float | list[str]
#: Known metadata keys whose values must be strings (meta-data.json ``properties``).
_STRING_KEYS: Final = frozenset(
    {
        *("aws:releaseId", "aws:client", "aws:clientVersion", "aws:userAgent", "domain"),
        *("browserLanguage", "browserName", "browserVersion", "osName", "osVersion", "deviceType"),
        *("platformType", "pageUrl", "url", "pageId", "parentPageId", "referrerUrl", "pageTitle", "title"),
        *("countryCode", "subdivisionCode"),
    }
)
# patternProperties: a key containing "pageTags" must hold an array of strings; no other key may.
_TAGS_KEY: Final = re.compile("pageTags")
_ONLY_STR: Final = {str}


class UserDetails(Struct):
    """The client-generated user and session ids (all zeros when cookies are off)."""

    sessionId: str | None = None
    userId: str | None = None


class _Envelope(Struct, tag_field="event_type"):
    """What RUM writes to CloudWatch Logs around each event (see the schemas' README)."""

    event_timestamp: float
    # Flat custom attributes beside the known keys; key and value limits are checked while decoding,
    # the rest of meta-data.json in ``_metadata_error`` (msgspec has no "typed extra keys").
    metadata: dict[MetaKey, MetaValue]
    user_details: UserDetails | None = None


class _LongKeyEnvelope(_Envelope):
    """The envelope without the key length limit, for the rare event with a long ``pageTags`` key."""

    metadata: dict[str, MetaValue]


def _event(tag: str, details: type[Struct], base: type[_Envelope] = _Envelope) -> type[_Envelope]:
    """The envelope of one event type: its tag value and its ``event_details`` type."""
    prefix = "LongKey" if base is _LongKeyEnvelope else ""
    envelope: type[_Envelope] = msgspec.defstruct(  # type: ignore[assignment]  # defstruct returns type[Struct]
        f"{prefix}{details.__name__.removesuffix('Details')}Event",
        [("event_details", details)],
        bases=(base,),
        tag=tag,
        kw_only=True,
    )
    return envelope


_R = "com.amazon.rum."
#: Every event type RUM Guard has a schema for: what it counts as, and the type of its details.
SCHEMAS: Final[dict[str, tuple[EventKind, type[Struct]]]] = {
    _R + "session_start_event": (EventKind.SESSION_START, SessionStartDetails),
    _R + "page_view_event": (EventKind.PAGE_VIEW, PageViewDetails),
    _R + "page_close_event": (EventKind.PAGE_CLOSE, PageCloseDetails),
    _R + "performance_navigation_event": (EventKind.NAVIGATION, NavigationDetails),
    _R + "performance_resource_event": (EventKind.RESOURCE, ResourceDetails),
    _R + "dom_event": (EventKind.DOM, DomDetails),
    _R + "js_error_event": (EventKind.JS_ERROR, JsErrorDetails),
    _R + "http_event": (EventKind.HTTP, HttpDetails),
    # The client constant and the schema's $id disagree on this one: RUM data may carry either.
    _R + "xray_trace_event": (EventKind.XRAY_TRACE, XRayTraceDetails),
    "com.amazon.xray_trace_event": (EventKind.XRAY_TRACE, XRayTraceDetails),
    _R + "largest_contentful_paint_event": (EventKind.LCP, LcpDetails),
    _R + "first_contentful_paint_event": (EventKind.FCP, FcpDetails),
    _R + "first_input_delay_event": (EventKind.FID, FidDetails),
    _R + "cumulative_layout_shift_event": (EventKind.CLS, ClsDetails),
    _R + "interaction_to_next_paint_event": (EventKind.INP, InpDetails),
    _R + "time_to_first_byte_event": (EventKind.TTFB, TtfbDetails),
    _R + "time_to_interactive_event": (EventKind.TTI, TtiDetails),
    _R + "rrweb_event": (EventKind.RRWEB, RRWebDetails),
}
KNOWN_EVENT_TYPES: Final[dict[str, EventKind]] = {tag: kind for tag, (kind, _) in SCHEMAS.items()}

#: Each generated envelope type, mapped back to its kind and its ``event_type`` value.
_ENVELOPES: Final[dict[type[_Envelope], tuple[EventKind, str]]] = {
    _event(tag, details): (kind, tag) for tag, (kind, details) in SCHEMAS.items()
}
# One tagged union over every known type: msgspec picks the branch from ``event_type`` in C.
_KNOWN_DECODER: Final = msgspec.json.Decoder(Union[tuple(_ENVELOPES)])  # noqa: UP007
_LONG_KEY_ENVELOPES: Final[dict[type[_Envelope], tuple[EventKind, str]]] = {
    _event(tag, details, _LongKeyEnvelope): (kind, tag) for tag, (kind, details) in SCHEMAS.items()
}
_LONG_KEY_DECODER: Final = msgspec.json.Decoder(Union[tuple(_LONG_KEY_ENVELOPES)])  # noqa: UP007


class OtherEnvelope(Struct):
    """A well-formed event of a type RUM Guard has no schema for (custom events, newer clients)."""

    event_timestamp: float
    event_type: Annotated[str, Meta(min_length=1, max_length=EVENT_TYPE_MAX, pattern=EVENT_TYPE_PATTERN)]
    metadata: dict[MetaKey, MetaValue]
    event_details: dict[str, Any]
    user_details: UserDetails | None = None


class _LongKeyOtherEnvelope(OtherEnvelope):
    metadata: dict[str, MetaValue]


_OTHER_DECODER: Final = msgspec.json.Decoder(OtherEnvelope)
_LONG_KEY_OTHER_DECODER: Final = msgspec.json.Decoder(_LongKeyOtherEnvelope)


class RumEvent(Struct, frozen=True, gc=False):
    """A parsed event: what it counts as, when it happened, its metadata and its typed details.

    A msgspec ``Struct`` rather than a frozen dataclass: it is built once per event, and a frozen
    dataclass costs ten times as much to construct.
    """

    kind: EventKind
    event_type: str
    timestamp_ms: float
    metadata: dict[str, Any]
    details: Any
    session_id: str | None

    def attribute(self, name: str) -> str | None:
        """A non-empty string metadata value (for example the app's ``cognitoIdentityId`` attribute)."""
        value = self.metadata.get(name)
        return value if type(value) is str and value else None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A log message that is not a usable RUM event, with a short, log-safe explanation."""

    reason: RejectReason
    detail: str


# msgspec names the failing path at the end of its message; these mark a message that is not RUM at all.
_UNKNOWN_TAG: Final = "- at `$.event_type`"
_NOT_RUM: Final = (
    "Expected `object`, got",
    "Object missing required field `event_type`",
    "Object missing required field `event_timestamp`",
    "Object missing required field `event_details`",
    "Object missing required field `metadata`",
)


#: Checks JSON syntax only, without building objects (about 1 us per KB).
_SYNTAX: Final = msgspec.json.Decoder(msgspec.Raw)


def _classify(error: msgspec.DecodeError, message: str | bytes) -> Rejection:
    """One reason for one decode failure; msgspec's message already says what and where."""
    text = str(error)
    if not isinstance(error, msgspec.ValidationError):
        return Rejection(RejectReason.NOT_JSON, text)
    # msgspec validates while it parses, so a type error can come before a syntax error further on (a
    # truncated event, trailing garbage): only a message that is JSON all through is judged on its content.
    try:
        _SYNTAX.decode(message)
    except msgspec.DecodeError as syntax_error:
        return Rejection(RejectReason.NOT_JSON, str(syntax_error))
    top_level = " - at `" not in text
    if top_level and text.startswith(_NOT_RUM):
        return Rejection(RejectReason.NOT_RUM, text)
    if "of length <=" in text:
        return Rejection(RejectReason.TOO_LONG, text)
    return Rejection(RejectReason.INVALID, text)


def _metadata_error(metadata: dict[str, Any]) -> str | None:
    """The parts of meta-data.json that the decoder's ``dict`` type cannot express."""
    if metadata.get("version") != "1.0.0":
        return "Expected `metadata.version` to be '1.0.0'"
    if type(metadata.get("domain")) is not str:
        return "Expected `metadata.domain` to be a string"
    # Fast path, in C: all values are strings (the usual case) and no key asks for an array (a key
    # containing "pageTags" must hold one), so nothing is left to check.
    if set(map(type, metadata.values())) == _ONLY_STR and "pageTags" not in "\0".join(metadata):
        return None
    for key, value in metadata.items():
        is_list = type(value) is list
        if is_list != bool(_TAGS_KEY.search(key)):
            return f"Expected `metadata.{key}` {'not ' if is_list else ''}to be an array"
        if key in _STRING_KEYS and type(value) is not str:
            return f"Expected `metadata.{key}` to be a string"
    return None


def _decode_rare(message: str | bytes, error: msgspec.DecodeError) -> tuple[Any, EventKind, str] | Rejection:
    """The slow paths, tried only after the fast decoder failed.

    An event type without a schema is decoded as ``other``. A metadata key over 128 characters is
    accepted only where meta-data.json allows it: the key contains ``pageTags`` and holds an array.
    msgspec stops at the first error, so each retry may still fail on something further on.
    """
    text = str(error)
    unknown_type = text.endswith(_UNKNOWN_TAG)
    if unknown_type:
        try:
            other = _OTHER_DECODER.decode(message)
        except msgspec.DecodeError as other_error:
            error, text = other_error, str(other_error)
        else:
            return other, EventKind.OTHER, other.event_type
    if text != _LONG_KEY:
        return _classify(error, message)
    try:
        event: Any = (_LONG_KEY_OTHER_DECODER if unknown_type else _LONG_KEY_DECODER).decode(message)
    except msgspec.DecodeError as long_key_error:
        return _classify(long_key_error, message)
    for key, value in event.metadata.items():
        if len(key) > METADATA_KEY_MAX and (type(value) is not list or "pageTags" not in key):
            return _classify(error, message)
    if unknown_type:
        return event, EventKind.OTHER, event.event_type
    kind, event_type = _LONG_KEY_ENVELOPES[type(event)]
    return event, kind, event_type


def parse_event(message: str | bytes, received_ms: float) -> RumEvent | Rejection:
    """Parse one RUM log message.

    ``received_ms`` is when RUM took the event in (the log event's timestamp). An event whose own
    timestamp is more than 24 hours away from it is rejected as clock skew: the client clock is wrong or
    the event is made up, and either way it must not count in the current windows.
    """
    event: Any
    try:
        event = _KNOWN_DECODER.decode(message)
        kind, event_type = _ENVELOPES[type(event)]
    except msgspec.ValidationError as error:
        decoded = _decode_rare(message, error)
        if isinstance(decoded, Rejection):
            return decoded
        event, kind, event_type = decoded
    except msgspec.DecodeError as error:
        return _classify(error, message)
    metadata = event.metadata
    problem = _metadata_error(metadata)
    if problem is not None:
        return Rejection(RejectReason.INVALID, problem)
    skew = event.event_timestamp - received_ms
    if abs(skew) > MAX_CLOCK_SKEW_MS:
        return Rejection(RejectReason.CLOCK_SKEW, f"event_timestamp is {skew / 3_600_000:+.1f} h from receipt")
    user = event.user_details
    session_id = user.sessionId if user is not None else None
    return RumEvent(kind, event_type, event.event_timestamp, metadata, event.event_details, session_id)


class _MetadataOnly(Struct):
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


_METADATA_ONLY: Final = msgspec.json.Decoder(_MetadataOnly)


def claimed_attribute(message: str | bytes, name: str) -> str | None:
    """Best effort: the metadata attribute ``name`` of a message that failed validation.

    Junk still counts against the identity that claims to have sent it (see DESIGN.md, junk rule), so a
    rejected event is looked at once more for just this one value; a message that is not even a JSON
    object with a metadata object claims nobody.
    """
    try:
        value = _METADATA_ONLY.decode(message).metadata.get(name)
    except msgspec.DecodeError:
        return None
    return value if type(value) is str and 0 < len(value) <= METADATA_VALUE_MAX else None
