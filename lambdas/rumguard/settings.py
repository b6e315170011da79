"""Settings: one validated model per entry point, read once at cold start from the environment.

Each model's field aliases are the environment names its function takes in template.yaml; a contract test
holds the two equal. Names of resources have no defaults: a missing one fails the cold start with a message
that names it, instead of a silent fallback that writes somewhere unexpected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rumguard.monitors import MonitorConfigError, MonitorDirectory


class SettingsError(RuntimeError):
    """The environment does not describe a usable configuration."""


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=False, extra="ignore", str_strip_whitespace=True)
    entry_point: ClassVar[str]

    @classmethod
    def env_names(cls) -> frozenset[str]:
        """The environment variable names this entry point reads."""
        return frozenset(str(info.alias) for info in cls.model_fields.values())

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Read and validate; every problem is reported at once, by environment name."""
        values = {name: environ[name] for name in cls.env_names() if name in environ}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in error.errors()
            )
            raise SettingsError(f"{cls.entry_point} settings are invalid: {problems}") from None


class MonitorSettings(_Settings):
    """The app monitors every entry point must know about."""

    guest_monitors: str = Field(alias="GUEST_MONITORS")
    signed_in_monitors: str = Field(alias="SIGNED_IN_MONITORS")

    def monitor_directory(self) -> MonitorDirectory:
        """The configured monitors, validated."""
        try:
            return MonitorDirectory.from_csv(self.guest_monitors, self.signed_in_monitors)
        except MonitorConfigError as error:
            raise SettingsError(f"{self.entry_point} settings are invalid: {error}") from None


class IngestSettings(MonitorSettings):
    """``lambdas/handlers/ingest.py``: the CloudWatch Logs subscription consumer."""

    entry_point: ClassVar[str] = "ingest"
    table_name: str = Field(alias="RUMGUARD_TABLE", min_length=3, max_length=255)
    identity_attribute: str = Field(
        alias="IDENTITY_ATTRIBUTE", default="cognitoIdentityId", min_length=1, max_length=128
    )

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError("must be a DynamoDB table name (letters, digits, '_', '-', '.')")
        return value
