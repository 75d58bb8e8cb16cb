"""Typed settings, read from the environment with the ``KITH_`` prefix.

Every setting is documented in ``docs/configuration.md``; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_KEY_LENGTH = 32


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class EmailBackend(StrEnum):
    smtp = "smtp"
    console = "console"


class ConfigurationError(RuntimeError):
    """Raised at start-up when the settings cannot run safely."""


# Every rate-limit setting: a limit such as "300/5 minutes", or empty for none.
RATE_LIMIT_SETTINGS = (
    "rate_limit_general",
    "rate_limit_login",
    "rate_limit_login_failures",
    "rate_limit_login_failures_account",
    "rate_limit_register",
    "rate_limit_password_reset",
    "rate_limit_posts",
    "rate_limit_comments",
    "rate_limit_friend_requests",
    "rate_limit_media_uploads",
)


class Settings(BaseSettings):
    """Everything Kith reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="KITH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Environment = Environment.development
    # Where the embedded default keeps its SQLite file, generated key and media.
    var_dir: Path = Path("var")
    database_url: str = ""
    database_pool_size: int = 10
    # A pooled PostgreSQL connection idle this long is pinged before use (a busy one is
    # trusted: a dead one fails its request and the whole pool is replaced).
    database_ping_after_idle_seconds: float = Field(default=1.0, ge=0)
    database_echo: bool = False
    # How long a request waits for a pooled PostgreSQL connection when all are busy before
    # it is answered 503, and how long opening a new connection may take.
    database_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    database_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # `Retry-After` of the 503 answered while the database (or Redis) cannot be reached.
    unavailable_retry_after_seconds: int = Field(default=5, ge=1)
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8000"
    # How the server presents itself to Mastodon apps and NodeInfo crawlers (docs/mastodon.md).
    instance_title: str = Field(default="Kith", min_length=1, max_length=100)
    instance_description: str = Field(default="", max_length=1000)
    contact_email: str = Field(default="", max_length=254)
    # OAuth's password grant for Mastodon apps (an app handles the user's password): off unless
    # the operator turns it on (docs/mastodon.md#apps-and-sign-in).
    oauth_password_grant: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # How long `kith serve` waits for requests in flight at shutdown before closing them.
    shutdown_timeout_seconds: int = 30
    # Peers whose `X-Forwarded-For` is believed (addresses or CIDR networks). Empty: none.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Bearer tokens and API keys are headers, never cookies: browsers need no credentials mode.
    cors_allow_credentials: bool = False
    # Empty: localhost, 127.0.0.1, ::1 and the host of `public_url`. `*` allows any host.
    trusted_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # JSON and form bodies; uploads have their own cap (`media_max_bytes`).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # `Strict-Transport-Security` max-age on HTTPS responses; 0 sends none.
    hsts_max_age_seconds: int = Field(default=31_536_000, ge=0)
    # `GET /metrics` answers only `Authorization: Bearer <token>`; unset: 404.
    metrics_token: SecretStr | None = None
    log_level: str = "INFO"
    log_json: bool | None = None

    # Tokens and sessions.
    jwt_issuer: str = "kith"
    jwt_audience: str = "kith-api"
    access_token_ttl_seconds: int = 15 * 60
    session_max_age_days: int = 30
    email_verification_ttl_hours: int = 7 * 24
    password_reset_ttl_minutes: int = 60

    # Argon2id cost; the defaults are the OWASP floor and cannot be set lower.
    argon2_memory_kib: int = Field(default=19456, ge=19456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)

    # E-mail.
    email_backend: EmailBackend = EmailBackend.console
    email_from: str = "Kith <no-reply@kith.local>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_timeout_seconds: float = 10.0
    # An e-mail the SMTP server does not take is kept and retried for this long,
    # by a periodic task that runs this often (`kith.runtime.outbox`).
    email_retry_hours: float = Field(default=24, gt=0)
    email_retry_interval_seconds: float = Field(default=60, gt=0)

    # News feed. Precomputed timelines in Redis are off by default: at the sizes measured
    # they cost more than the SQL page on reads and on posts (docs/decisions.md#feed).
    feed_timelines: bool = False
    # The Redis timeline path's settings (the SQL path needs none).
    feed_timeline_size: int = Field(default=400, ge=50)
    feed_active_days: int = Field(default=7, ge=1)
    feed_push_in_request_max: int = Field(default=1000, ge=0)

    # Live stream (WebSocket).
    stream_ping_seconds: float = 30.0
    stream_auth_timeout_seconds: float = 10.0
    # Open streams one account, and one client address, may hold on an instance (4429 past it).
    stream_max_per_user: int = Field(default=10, ge=1)
    stream_max_per_address: int = Field(default=50, ge=1)

    # Background jobs.
    # "auto": a Redis stream for `kith worker` when Redis is configured, else in-process.
    job_backend: Literal["auto", "memory", "redis"] = "auto"
    job_queue: str = "kith:jobs"
    job_max_attempts: int = 5
    job_retry_base_seconds: float = 1.0
    job_retry_max_seconds: float = 300.0

    # Media uploads. `media_dir` defaults to `<var_dir>/media`.
    media_dir: Path | None = None
    media_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    media_max_pixels: int = Field(default=33_000_000, ge=1)
    media_unattached_ttl_hours: float = Field(default=24, gt=0)
    media_cleanup_interval_seconds: float = Field(default=600, gt=0)

    # Exports of an account's data (docs/export.md). `export_dir` defaults to `<var_dir>/exports`.
    export_dir: Path | None = None
    export_max_bytes: int = Field(default=4 * 1024**3, ge=1)
    export_ttl_hours: float = Field(default=7 * 24, gt=0)
    export_cooldown_hours: float = Field(default=24, ge=0)
    export_link_ttl_seconds: float = Field(default=600, gt=0)
    export_cleanup_interval_seconds: float = Field(default=3600, gt=0)
    export_stale_hours: float = Field(default=6, gt=0)

    # Rate limits (docs/api.md#conventions), as "<count>/<period>" ("300/5 minutes", "50/day");
    # an empty value switches that one limit off, `rate_limits_enabled=false` all of them.
    rate_limits_enabled: bool = True
    rate_limit_general: str = "300/5 minutes"
    rate_limit_login: str = "10/minute"
    rate_limit_login_failures: str = "5/15 minutes"
    rate_limit_login_failures_account: str = "100/hour"
    rate_limit_register: str = "5/hour"
    rate_limit_password_reset: str = "5/30 minutes"
    rate_limit_posts: str = "30/minute"
    rate_limit_comments: str = "60/minute"
    rate_limit_friend_requests: str = "50/day"
    rate_limit_media_uploads: str = "30/hour"
    # Moderators get this many times every per-user limit; admins are not limited.
    rate_limit_moderator_factor: float = Field(default=2.0, ge=1.0)
    # After Redis fails, limits use their fallback for this long before trying Redis again.
    rate_limit_redis_retry_seconds: float = Field(default=5.0, ge=0)
    rate_limit_redis_timeout_seconds: float = Field(default=0.5, gt=0)
    # After a Redis call fails, live events, job queueing and the feed cache leave Redis
    # alone this long (local delivery, in-process jobs, SQL) before trying it again.
    redis_retry_seconds: float = Field(default=5.0, ge=0)
    # How long a session found live is believed without asking the database again; every
    # change to a user or a session forgets it at once (docs/architecture.md#the-session-cache).
    # 0: check the database on every request.
    session_cache_seconds: float = Field(default=10.0, ge=0)
    # Prefix of the counters' Redis keys (several deployments can share one Redis).
    rate_limit_key_prefix: str = "kith:limits"

    @field_validator("cors_origins", "trusted_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator(*RATE_LIMIT_SETTINGS)
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                limits.parse(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate limit; write it like '300/5 minutes' or '50/day'"
                ) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _defaults_from_var_dir(self) -> Self:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir / 'kith.db'}"
        if self.media_dir is None:
            self.media_dir = self.var_dir / "media"
        return self

    @property
    def media_root(self) -> Path:
        """Where uploaded images are kept (`media_dir`, resolved from `var_dir` by default)."""
        return self.media_dir if self.media_dir is not None else self.var_dir / "media"

    @property
    def export_root(self) -> Path:
        """Where finished archives are kept (`export_dir`, resolved from `var_dir` by default)."""
        return self.export_dir if self.export_dir is not None else self.var_dir / "exports"

    @property
    def allowed_hosts(self) -> list[str]:
        """The `Host` values requests may carry (`trusted_hosts`, or the local defaults)."""
        if self.trusted_hosts:
            return self.trusted_hosts
        public_host = urlsplit(self.public_url).hostname
        defaults = ["localhost", "127.0.0.1", "::1"]
        return [*defaults, public_host] if public_host and public_host not in defaults else defaults

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def json_logs(self) -> bool:
        if self.log_json is not None:
            return self.log_json
        return self.env is Environment.production

    def signing_key(self) -> str:
        """The JWT signing key; `resolve_secret_key` must have run first."""
        if self.secret_key is None:
            raise ConfigurationError("secret key not resolved")
        return self.secret_key.get_secret_value()

    def resolve_secret_key(self) -> None:
        """Make sure a usable secret key is present, or refuse to start.

        Production demands one from the environment. Development and tests generate
        a random key once and keep it under ``var_dir`` so tokens survive restarts.
        """
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if key and len(key) >= MIN_SECRET_KEY_LENGTH:
            return
        if self.env is Environment.production:
            problem = "is missing" if not key else f"is only {len(key)} characters long"
            raise ConfigurationError(
                f"KITH_SECRET_KEY {problem}. In production set it to at least "
                f"{MIN_SECRET_KEY_LENGTH} random characters, for example the output of "
                '`python -c "import secrets; print(secrets.token_urlsafe(48))"`.'
            )
        if key:
            raise ConfigurationError(
                f"KITH_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters long."
            )
        path = self.var_dir / "secret_key"
        if path.exists():
            key = path.read_text().strip()
        if len(key) < MIN_SECRET_KEY_LENGTH:
            key = secrets.token_urlsafe(48)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(key)
            path.chmod(0o600)
        self.secret_key = SecretStr(key)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
