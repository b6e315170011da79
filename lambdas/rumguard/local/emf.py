"""Read what a function printed: CloudWatch embedded metric format (EMF) blobs, and its log lines.

Powertools Metrics prints one JSON object per flush (``{"_aws": {"CloudWatchMetrics": [...]}, ...}``) and
Powertools Logger prints one JSON object per log record, on the same stdout. ``EmfOutput.parse`` splits
the two, checks every EMF blob against the rules CloudWatch applies when it extracts metrics (a blob that
breaks them is lost in production, so here it is an error), and answers the questions tests and the demo
ask: the sum or the values of a metric for one exact dimension set, and the dimension sets seen.

A metric series is a name plus an exact dimension set, as in CloudWatch: ``RejectedEvents`` with
``{AppMonitor, Audience}`` and ``RejectedEvents`` with ``{AppMonitor, Audience, Reason}`` are two series,
and neither is included in the other's sum.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

#: The EMF specification's limits.
MAX_METRICS_PER_DIRECTIVE: Final = 100
MAX_VALUES_PER_METRIC: Final = 100
MAX_DIMENSIONS_PER_SET: Final = 30
#: The units CloudWatch accepts (``StandardUnit``).
UNITS: Final = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)

#: A dimension set with its values, as a sorted tuple of ``(name, value)`` so it can key a dict.
Dimensions = tuple[tuple[str, str], ...]


class EmfError(ValueError):
    """A line has the ``_aws`` metadata of an EMF blob but breaks the format; CloudWatch would drop it."""


@dataclass(frozen=True, slots=True)
class Datum:
    """One metric of one blob in one of its dimension sets: the unit of a series and its values."""

    namespace: str
    name: str
    unit: str
    dimensions: Dimensions
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class EmfBlob:
    """One validated EMF JSON object (one flush)."""

    document: dict[str, Any]
    data: tuple[Datum, ...]

    @property
    def metric_names(self) -> frozenset[str]:
        """Names of the metrics this blob declares."""
        return frozenset(datum.name for datum in self.data)


def _dimension_key(dimensions: Mapping[str, str]) -> Dimensions:
    return tuple(sorted(dimensions.items()))


def _values(name: str, raw: Any) -> tuple[float, ...]:
    if isinstance(raw, bool) or not isinstance(raw, int | float | list):
        raise EmfError(f"metric {name!r} must be a number or an array of numbers, not {raw!r}")
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise EmfError(f"metric {name!r} has an empty array of values")
    if len(values) > MAX_VALUES_PER_METRIC:
        raise EmfError(f"metric {name!r} has {len(values)} values; EMF allows {MAX_VALUES_PER_METRIC}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise EmfError(f"metric {name!r} has a value that is not a finite number: {value!r}")
    return tuple(float(value) for value in values)


def parse_blob(document: dict[str, Any]) -> EmfBlob:
    """Validate one EMF object and flatten it into one ``Datum`` per metric and dimension set."""
    meta = document.get("_aws")
    if not isinstance(meta, dict):
        raise EmfError("the _aws metadata must be an object")
    timestamp = meta.get("Timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise EmfError(f"_aws.Timestamp must be epoch milliseconds, not {timestamp!r}")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        raise EmfError("_aws.CloudWatchMetrics must be a non-empty array of metric directives")
    data: list[Datum] = []
    for directive in directives:
        if not isinstance(directive, dict):
            raise EmfError("a metric directive must be an object")
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 255:
            raise EmfError(f"a metric directive needs a Namespace of 1 to 255 characters, not {namespace!r}")
        dimension_sets = directive.get("Dimensions")
        if not isinstance(dimension_sets, list):
            raise EmfError("a metric directive's Dimensions must be an array of dimension sets")
        resolved: list[Dimensions] = []
        for names in dimension_sets:
            if not isinstance(names, list) or len(names) > MAX_DIMENSIONS_PER_SET:
                raise EmfError(f"a dimension set must be an array of at most {MAX_DIMENSIONS_PER_SET} names")
            values: dict[str, str] = {}
            for name in names:
                value = document.get(name) if isinstance(name, str) else None
                if not isinstance(value, str) or not 1 <= len(value) <= 1024:
                    raise EmfError(f"dimension {name!r} needs a string value of 1 to 1024 characters in the root")
                values[name] = value
            resolved.append(_dimension_key(values))
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list):
            raise EmfError("a metric directive's Metrics must be an array")
        if len(metrics) > MAX_METRICS_PER_DIRECTIVE:
            raise EmfError(f"a metric directive declares {len(metrics)} metrics; EMF allows 100")
        for definition in metrics:
            name = definition.get("Name") if isinstance(definition, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= 1024:
                raise EmfError(f"a metric definition needs a Name of 1 to 1024 characters: {definition!r}")
            unit = definition.get("Unit", "None")
            if unit not in UNITS:
                raise EmfError(f"metric {name!r} has unit {unit!r}, which CloudWatch does not know")
            if definition.get("StorageResolution", 60) not in (1, 60):
                raise EmfError(f"metric {name!r} has a StorageResolution other than 1 or 60")
            if name not in document:
                raise EmfError(f"metric {name!r} is declared in the directive but missing from the root")
            metric_values = _values(name, document[name])
            data.extend(Datum(namespace, name, unit, dims, metric_values) for dims in resolved)
    return EmfBlob(document, tuple(data))


def is_emf(document: Any) -> bool:
    """Whether a decoded line claims to be an EMF blob (an object with ``_aws.CloudWatchMetrics``)."""
    return (
        isinstance(document, dict)
        and isinstance(document.get("_aws"), dict)
        and ("CloudWatchMetrics" in document["_aws"])
    )


@dataclass(slots=True)
class EmfOutput:
    """What one or more invocations printed: validated EMF blobs, and everything else as log lines."""

    blobs: list[EmfBlob] = field(default_factory=list)
    #: Structured log lines (JSON objects that are not EMF), e.g. Powertools Logger records.
    logs: list[dict[str, Any]] = field(default_factory=list)
    #: Lines that are not JSON objects at all.
    text: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, output: str | Iterable[str]) -> EmfOutput:
        """Split printed output into EMF blobs (validated; ``EmfError`` names the bad line) and logs."""
        lines = output.splitlines() if isinstance(output, str) else output
        parsed = cls()
        for number, line in enumerate(lines, start=1):
            parsed.add_line(line, number)
        return parsed

    def add_line(self, line: str, number: int = 0) -> None:
        """Classify one printed line."""
        stripped = line.strip()
        if not stripped:
            return
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            self.text.append(line)
            return
        if is_emf(document):
            try:
                self.blobs.append(parse_blob(document))
            except EmfError as error:
                raise EmfError(f"line {number}: {error}: {stripped[:200]}") from None
        elif isinstance(document, dict):
            self.logs.append(document)
        else:
            self.text.append(line)

    def extend(self, other: EmfOutput) -> None:
        """Add another output's blobs and lines to this one."""
        self.blobs.extend(other.blobs)
        self.logs.extend(other.logs)
        self.text.extend(other.text)

    # --- queries --------------------------------------------------------------------------------------
    def data(self, name: str | None = None, namespace: str | None = None) -> Iterator[Datum]:
        """Every datum, optionally of one metric name and one namespace."""
        for blob in self.blobs:
            for datum in blob.data:
                if (name is None or datum.name == name) and (namespace is None or datum.namespace == namespace):
                    yield datum

    def values(self, name: str, /, **dimensions: str) -> list[float]:
        """All values of the series ``name`` with exactly these dimensions, in the order printed."""
        key = _dimension_key(dimensions)
        return [value for datum in self.data(name) if datum.dimensions == key for value in datum.values]

    def total(self, name: str, /, **dimensions: str) -> float:
        """The sum of the series ``name`` with exactly these dimensions (0 if never printed)."""
        return math.fsum(self.values(name, **dimensions))

    def series(self, name: str) -> dict[Dimensions, list[float]]:
        """Every dimension set ``name`` was printed with, and its values."""
        out: dict[Dimensions, list[float]] = {}
        for datum in self.data(name):
            out.setdefault(datum.dimensions, []).extend(datum.values)
        return out

    def dimension_sets(self) -> set[frozenset[str]]:
        """The dimension names of every dimension set seen (without values)."""
        return {frozenset(name for name, _ in datum.dimensions) for datum in self.data()}

    def metric_names(self) -> set[str]:
        """Every metric name declared in any blob."""
        return {datum.name for datum in self.data()}

    def flushes(self, name: str) -> int:
        """How many blobs declared ``name``: a count added once per invocation shows up once."""
        return sum(1 for blob in self.blobs if name in blob.metric_names)

    def log_records(self, level: str | None = None, message: str | None = None) -> list[dict[str, Any]]:
        """Structured log lines, optionally of one level (``WARNING``...) and one message."""
        return [
            record
            for record in self.logs
            if (level is None or record.get("level") == level) and (message is None or record.get("message") == message)
        ]


class CapturedOutput(io.StringIO):
    """A stdout stand-in that a function prints into; ``take()`` parses what came since the last take."""

    def take(self) -> EmfOutput:
        """Parse and clear everything written so far."""
        text = self.getvalue()
        self.seek(0)
        self.truncate()
        return EmfOutput.parse(text)
