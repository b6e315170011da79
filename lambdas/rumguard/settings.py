"""Settings: one validated model per entry point, read once at cold start from the environment.

Each model's field aliases are the environment names its function takes in template.yaml; a contract test
holds the two equal. Names of resources have no defaults: a missing one fails the cold start with a message
that names it, instead of a silent fallback that writes somewhere unexpected.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rumguard.alarms import AlarmThresholds
from rumguard.decisions import Escalation, Mode
from rumguard.detection import Counter, Detection, Rule, Threshold
from rumguard.guard import GuardConfig
from rumguard.monitors import MonitorConfigError, MonitorDirectory


class SettingsError(RuntimeError):
    """The environment does not describe a usable configuration."""


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=False, extra="ignore", str_strip_whitespace=True)
    entry_point: ClassVar[str] = "rumguard"

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


class TableSettings(_Settings):
    """The single RUM Guard table."""

    table_name: str = Field(alias="RUMGUARD_TABLE", min_length=3, max_length=255)

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError("must be a DynamoDB table name (letters, digits, '_', '-', '.')")
        return value


class EnforcementSettings(TableSettings):
    """What every function that changes (or, in dry-run, would change) IAM and Cognito needs."""

    identity_pool_id: str = Field(alias="IDENTITY_POOL_ID", pattern=r"^[\w-]+:[0-9a-f-]+$", max_length=55)
    guest_role_name: str = Field(alias="GUEST_ROLE_NAME", pattern=r"^[\w+=,.@-]{1,64}$")
    event_bus_name: str = Field(alias="EVENT_BUS_NAME", pattern=r"^[/\.\-_A-Za-z0-9]{1,256}$")
    mode: Mode = Field(alias="RUMGUARD_MODE")


class DecisionSettings(EnforcementSettings):
    """How long blocks last, the grace period and the safety valve (DESIGN.md's defaults)."""

    block_base_seconds: int = Field(alias="BLOCK_BASE_SECONDS", default=3600, ge=60)
    block_max_seconds: int = Field(alias="BLOCK_MAX_SECONDS", default=7 * 24 * 3600, ge=60)
    block_jitter: float = Field(alias="BLOCK_JITTER", default=0.1, ge=0, lt=1)
    grace_seconds: int = Field(alias="GRACE_SECONDS", default=3600, ge=0)
    manual_block_seconds: int = Field(alias="MANUAL_BLOCK_SECONDS", default=3600, ge=60)
    safety_valve_limit: int = Field(alias="SAFETY_VALVE_LIMIT", default=50, ge=1)
    lockdown_on_storm: bool = Field(alias="LOCKDOWN_ON_STORM", default=False)

    def guard_config(self, detection: Detection | None = None) -> GuardConfig:
        """The decision service's configuration."""
        try:
            escalation = Escalation(
                base=timedelta(seconds=self.block_base_seconds),
                cap=timedelta(seconds=self.block_max_seconds),
                jitter=self.block_jitter,
            )
        except ValueError as error:
            raise SettingsError(f"{self.entry_point} settings are invalid: BLOCK_*: {error}") from None
        return GuardConfig(
            mode=self.mode,
            detection=detection or Detection(),
            escalation=escalation,
            grace=timedelta(seconds=self.grace_seconds),
            manual_duration=timedelta(seconds=self.manual_block_seconds),
            valve_limit=self.safety_valve_limit,
            lockdown_on_storm=self.lockdown_on_storm,
        )


class DetectionSettings(_Settings):
    """The automatic rules' thresholds: more than LIMIT in WINDOW minutes (DESIGN.md's defaults)."""

    event_flood_limit: int = Field(alias="EVENT_FLOOD_LIMIT", default=1000, ge=0)
    event_flood_window: int = Field(alias="EVENT_FLOOD_WINDOW_MINUTES", default=5, ge=1, le=60)
    session_churn_limit: int = Field(alias="SESSION_CHURN_LIMIT", default=5, ge=0)
    session_churn_window: int = Field(alias="SESSION_CHURN_WINDOW_MINUTES", default=10, ge=1, le=60)
    page_velocity_limit: int = Field(alias="PAGE_VELOCITY_LIMIT", default=60, ge=0)
    page_velocity_window: int = Field(alias="PAGE_VELOCITY_WINDOW_MINUTES", default=1, ge=1, le=60)
    error_spam_limit: int = Field(alias="ERROR_SPAM_LIMIT", default=100, ge=0)
    error_spam_window: int = Field(alias="ERROR_SPAM_WINDOW_MINUTES", default=5, ge=1, le=60)
    junk_limit: int = Field(alias="JUNK_LIMIT", default=20, ge=0)
    junk_window: int = Field(alias="JUNK_WINDOW_MINUTES", default=5, ge=1, le=60)

    def detection(self) -> Detection:
        """The thresholds in force."""
        return Detection(
            {
                Rule.EVENT_FLOOD: Threshold(Counter.EVENTS, self.event_flood_limit, self.event_flood_window),
                Rule.SESSION_CHURN: Threshold(
                    Counter.SESSION_STARTS, self.session_churn_limit, self.session_churn_window
                ),
                Rule.PAGE_VELOCITY: Threshold(Counter.PAGE_VIEWS, self.page_velocity_limit, self.page_velocity_window),
                Rule.ERROR_SPAM: Threshold(Counter.JS_ERRORS, self.error_spam_limit, self.error_spam_window),
                Rule.JUNK: Threshold(Counter.JUNK, self.junk_limit, self.junk_window),
            }
        )


class IngestSettings(MonitorSettings, DetectionSettings, DecisionSettings):
    """``lambdas/handlers/ingest.py``: the CloudWatch Logs subscription consumer, and the automatic rules."""

    entry_point: ClassVar[str] = "ingest"
    identity_attribute: str = Field(
        alias="IDENTITY_ATTRIBUTE", default="cognitoIdentityId", min_length=1, max_length=128
    )


#: An alarm name prefix: the stack name in template.yaml (letters, digits, '-'; never '/', which ends it).
ALARM_PREFIX_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.#-]{0,127}$"


class AlarmSettings(_Settings):
    """The per-monitor CloudWatch alarms the sweeper publishes (``rumguard.alarms``), and their thresholds.

    ``ALARM_PREFIX`` names the alarms (``<prefix>/<monitor>/<kind>``); template.yaml sets it to the stack name.
    It is required (a missing one fails the cold start): the sweeper never guesses whose alarms it reconciles.
    The thresholds default to ``rumguard.alarms.AlarmThresholds``: a guest traffic surge beyond 3 standard
    deviations of the anomaly detection band, more than 5 JS errors per 100 page views, more than 10 failed
    HTTP requests per 100 events (rates count only in 5-minute periods with at least 20 page views or events),
    more than 10 blocks or 100 rejected events in 5 minutes, and the deny policy over 80 % full.
    """

    alarm_prefix: str = Field(alias="ALARM_PREFIX", pattern=ALARM_PREFIX_PATTERN)
    traffic_surge_band: float = Field(alias="TRAFFIC_SURGE_BAND", default=3.0, ge=0.5, le=10)
    js_error_rate_percent: float = Field(alias="JS_ERROR_RATE_PERCENT", default=5.0, ge=0)
    http_error_rate_percent: float = Field(alias="HTTP_ERROR_RATE_PERCENT", default=10.0, ge=0, le=100)
    error_rate_min_volume: int = Field(alias="ERROR_RATE_MIN_VOLUME", default=20, ge=1)
    blocks_alarm_limit: int = Field(alias="BLOCKS_ALARM_LIMIT", default=10, ge=0)
    rejected_events_limit: int = Field(alias="REJECTED_EVENTS_LIMIT", default=100, ge=0)
    policy_capacity_percent: float = Field(alias="POLICY_CAPACITY_PERCENT", default=80.0, ge=1, le=100)

    def alarm_thresholds(self) -> AlarmThresholds:
        """The thresholds in force."""
        return AlarmThresholds(
            traffic_band=self.traffic_surge_band,
            js_error_rate=self.js_error_rate_percent,
            http_error_rate=self.http_error_rate_percent,
            min_volume=self.error_rate_min_volume,
            blocks=self.blocks_alarm_limit,
            rejected_events=self.rejected_events_limit,
            policy_capacity=self.policy_capacity_percent,
        )


class SweeperSettings(MonitorSettings, EnforcementSettings, AlarmSettings):
    """``lambdas/handlers/sweeper.py``: expiry of blocks, reconciliation of the deny policy and of the alarms."""

    entry_point: ClassVar[str] = "sweeper"


class ApiSettings(MonitorSettings, DecisionSettings):
    """``chalice_app/app.py``: the operator API (manual blocks, allowlist, lockdown, monitors)."""

    entry_point: ClassVar[str] = "api"


class NotifySettings(TableSettings):
    """``lambdas/handlers/notify.py``: alarm state changes and RUM Guard's events, as messages to people.

    ``RUMGUARD_TABLE`` holds the per-minute digests of block events; ``ALARM_PREFIX`` says which alarms are RUM
    Guard's (the sweeper's value); ``DASHBOARD_NAME`` is linked from every message; ``DIGEST_WINDOW_SECONDS``
    (default 60) is how often at most one message about blocks goes out per app monitor.
    """

    entry_point: ClassVar[str] = "notify"
    topic_arn: str = Field(
        alias="NOTIFY_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
    )
    alarm_prefix: str = Field(alias="ALARM_PREFIX", pattern=ALARM_PREFIX_PATTERN)
    dashboard_name: str = Field(alias="DASHBOARD_NAME", pattern=r"^[A-Za-z0-9_-]{1,255}$")
    #: One digest of identity events per window and app monitor; the function's timeout must exceed it by 20 s.
    digest_seconds: int = Field(alias="DIGEST_WINDOW_SECONDS", default=60, ge=1, le=600)
