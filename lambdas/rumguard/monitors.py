"""App monitors and their audiences, and how a RUM log group names its monitor."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: RUM names the log group of a monitor ``NAME`` whose id starts with ``abcd1234``:
#: ``/aws/vendedlogs/RUMService_NAMEabcd1234``.
LOG_GROUP_PREFIX: Final = "/aws/vendedlogs/RUMService_"
_ID_SUFFIX: Final = re.compile(r"[0-9a-f]{8}")
#: RUM app monitor names: 1 to 255 of letters, digits, ``.``, ``-``, ``_`` and ``#``, not starting with ``.``.
_MONITOR_NAME: Final = re.compile(r"(?!\.)[.\-_#A-Za-z0-9]{1,255}")


class Audience(enum.StrEnum):
    """Who sends a monitor's data. Only guest data is untrusted and subject to automatic blocks."""

    GUEST = "guest"
    SIGNED_IN = "signed-in"


@dataclass(frozen=True, slots=True)
class Monitor:
    """One configured app monitor."""

    name: str
    audience: Audience

    def log_group_name(self, app_monitor_id: str) -> str:
        """The log group RUM writes this monitor's events to, given the monitor's id."""
        return f"{LOG_GROUP_PREFIX}{self.name}{app_monitor_id[:8]}"


class MonitorConfigError(ValueError):
    """The configured monitor names are unusable."""


class MonitorDirectory:
    """The configured monitors, and the lookup from a subscription payload's ``logGroup`` to one of them.

    The lookup is exact: the log group must be RUM's prefix, a configured name and eight hex digits. A
    log group that fits no configured name is never matched by prefix or similarity.
    """

    def __init__(self, guest: Iterable[str], signed_in: Iterable[str]) -> None:
        monitors: dict[str, Monitor] = {}
        for audience, names in ((Audience.GUEST, guest), (Audience.SIGNED_IN, signed_in)):
            for name in names:
                if not _MONITOR_NAME.fullmatch(name):
                    raise MonitorConfigError(f"{name!r} is not a valid CloudWatch RUM app monitor name")
                if name in monitors:
                    raise MonitorConfigError(f"app monitor {name!r} is configured twice")
                monitors[name] = Monitor(name, audience)
        if not monitors:
            raise MonitorConfigError("no app monitors are configured")
        self._monitors = monitors
        self._by_log_group: dict[str, Monitor | None] = {}

    @classmethod
    def from_csv(cls, guest: str, signed_in: str) -> MonitorDirectory:
        """Build from the comma-separated ``GUEST_MONITORS`` and ``SIGNED_IN_MONITORS`` values."""
        return cls(_split(guest), _split(signed_in))

    @property
    def monitors(self) -> tuple[Monitor, ...]:
        """Every configured monitor, guests first, in configuration order."""
        return tuple(self._monitors.values())

    def get(self, name: str) -> Monitor | None:
        """The monitor of this name, if configured."""
        return self._monitors.get(name)

    def for_log_group(self, log_group: str) -> Monitor | None:
        """The monitor whose RUM log group this is, or ``None``."""
        if log_group not in self._by_log_group:
            self._by_log_group[log_group] = self._match(log_group)
        return self._by_log_group[log_group]

    def _match(self, log_group: str) -> Monitor | None:
        if not log_group.startswith(LOG_GROUP_PREFIX):
            return None
        rest = log_group[len(LOG_GROUP_PREFIX) :]
        name, suffix = rest[:-8], rest[-8:]
        if not _ID_SUFFIX.fullmatch(suffix):
            return None
        return self._monitors.get(name)


def _split(csv: str) -> list[str]:
    return [part.strip() for part in csv.split(",") if part.strip()]
