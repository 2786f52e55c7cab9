"""Configuration: TOML file, then ERAPI_* environment overrides, checked strictly into frozen dataclasses.

An unknown key or a value of the wrong type or range stops start-up with a ConfigurationError naming it.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from erapi.errors import ConfigurationError
from storage_plugins.base import available_plugins, plugin_class

DEFAULT_SECRET_FILE = "~/.config/erapi/local-secret"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # base of tracker URLs; empty: the request's own scheme and host
    max_body_bytes: int = 4 * 1024 * 1024
    max_items: int = 100
    max_header_bytes: int = 16384  # all header names and values together: 431 beyond it
    shutdown_timeout: float = 30.0
    workers: int = 1
    paging_secret: str = ""  # signs continuation tokens; empty: derived from the local secret (see docs)
    retry_after_seconds: int = 5  # the Retry-After of every 503
    # a connection must deliver a complete request head within this of opening or of its previous answer
    # (aiohttp's keepalive_timeout: also how long an idle keep-alive connection is kept)
    header_timeout_seconds: float = 75.0
    body_timeout_seconds: float = 60.0  # a request body must arrive in full within this: 408 beyond it


@dataclass(frozen=True)
class AuthConfig:
    mode: str = "local"  # "local" (HS256, shared secret) or "jwks" (RS256/ES256 from an identity provider)
    secret: str = ""  # local mode; empty: ERAPI_AUTH_SECRET, else generated once into secret_file
    secret_file: str = DEFAULT_SECRET_FILE
    token_ttl_seconds: int = 3600  # lifetime of tokens minted by `erapi token`
    jwks_url: str = ""
    issuer: str = ""  # checked exactly when set
    audience: str = ""  # checked exactly when set
    leeway_seconds: int = 30
    jwks_refresh_interval: float = 60.0  # at most one refetch per interval on an unknown kid
    jwks_timeout: float = 5.0


@dataclass(frozen=True)
class AclConfig:
    cache_ttl_seconds: float = 5.0
    destination_access: str = "read"  # access the caller needs on a relationship's destination collection


@dataclass(frozen=True)
class JobsConfig:
    max_items: int = 10000  # items per async request: 413 beyond it
    chunk_size: int = 100  # items a worker applies at once
    workers: int = 1  # job workers per service process
    lease_seconds: float = 30.0  # a claimed chunk is another worker's to take once its lease expires
    max_attempts: int = 5  # claims of one chunk before it is failed with the reason
    poll_interval_seconds: float = 1.0  # how often an idle worker looks for chunks accepted elsewhere
    max_pending_items_per_collection: int = 100000  # backpressure: 429 beyond it
    max_pending_items_total: int = 500000
    retry_after_seconds: int = 5


@dataclass(frozen=True)
class IdempotencyConfig:
    retention_seconds: int = 86400  # a key's answer is replayed this long after the first request
    wait_seconds: float = 10.0  # a retry arriving while the first request runs waits this long, then 409
    lease_seconds: float = 60.0  # a first request whose process died gives its key up after this long


@dataclass(frozen=True)
class ChangesConfig:
    retention_seconds: float = 7 * 86400.0  # the change feed keeps changes this long (the newest one always)
    trim_interval_seconds: float = 600.0  # how often a process trims the feeds of the collections it wrote
    poll_interval_seconds: float = 0.05  # how often a long poll asks storage for changes made by other processes
    max_wait_seconds: float = 60.0  # the longest wait= of a feed request
    read_your_writes_wait_seconds: float = 5.0  # a read sent with X-ER-Sequence waits this long, then 503
    gap_grace_seconds: float = 10.0  # a claimed sequence number without its record is skipped after this long


@dataclass(frozen=True)
class WebhooksConfig:
    # hosts (a name, or *.name for its subdomains), addresses and CIDR ranges that subscriptions may post to;
    # empty (the default): no subscription can be created. Loopback is allowed only when listed here.
    allowed_targets: tuple[str, ...] = ()
    deliver: bool = True  # this process delivers; false: it only serves the API (another process delivers)
    timeout_seconds: float = 10.0  # one delivery attempt as a whole: connect, send, answer
    retry_initial_seconds: float = 1.0  # wait after the first failed attempt; each next wait is multiplied
    retry_multiplier: float = 2.0
    retry_max_seconds: float = 300.0
    pause_after_attempts: int = 10  # consecutive failed attempts of one change pause the subscription
    pause_after_seconds: float = 3600.0  # ... as does failing for this long, whichever comes first
    lease_seconds: float = 30.0  # a subscription whose process died is taken over by another after this
    poll_interval_seconds: float = 1.0  # how often new subscriptions and changes written elsewhere are looked for
    max_per_collection: int = 100  # subscriptions one collection may hold
    max_per_process: int = 100  # subscriptions one process delivers at once
    kept_attempts: int = 20  # delivery attempts kept per subscription for GET (the newest)


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = False  # per-principal token buckets; off for a laptop, on behind a public endpoint
    requests_per_second: float = 20.0  # refill rate of each principal's bucket
    burst: int = 40  # bucket size: requests a principal may make at once


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True  # GET /metrics on the service's own port; false: 404
    token: str = ""  # empty: /metrics is open; else it needs "Authorization: Bearer <token>"


@dataclass(frozen=True)
class Config:
    storage: str = "memory"
    server: ServerConfig = field(default_factory=ServerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    acl: AclConfig = field(default_factory=AclConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)
    idempotency: IdempotencyConfig = field(default_factory=IdempotencyConfig)
    changes: ChangesConfig = field(default_factory=ChangesConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # each storage plugin's own table ([mongodb], ...) by plugin name, checked by the plugin, holding only the keys
    # that differ from the plugin's defaults (a table of defaults is left out, as if not given); not a table itself
    plugins: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, metadata={"table": False})

    def storage_settings(self) -> dict[str, Any]:
        """Keyword arguments for the selected storage plugin: its table over its defaults. Loads the plugin;
        ConfigurationError when it is unknown or cannot be loaded."""
        table = self.plugins.get(self.storage, {})
        settings = plugin_class(self.storage).settings
        return dict(table) if settings is None else dataclasses.asdict(settings(**table))


ENVIRONMENT_OVERRIDES = {
    "ERAPI_STORAGE": ("storage",),
    "ERAPI_AUTH_SECRET": ("auth", "secret"),
    "ERAPI_PUBLIC_URL": ("server", "public_url"),
    "ERAPI_LOG_LEVEL": ("log", "level"),
    "ERAPI_METRICS_TOKEN": ("metrics", "token"),
    "ERAPI_WEBHOOKS_ALLOWED_TARGETS": ("webhooks", "allowed_targets"),
}

CHOICES = {
    "auth.mode": {"local", "jwks"},
    "acl.destination_access": {"read", "write"},
    "log.level": {"DEBUG", "INFO", "WARNING", "ERROR"},
}


def load_config(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or ``ERAPI_CONFIG``; none: built-in defaults), apply environment overrides, check."""
    environ = os.environ if environ is None else environ
    raw = _read(path or environ.get("ERAPI_CONFIG") or None)
    for variable, key_path in ENVIRONMENT_OVERRIDES.items():
        _override(raw, key_path, environ.get(variable))
    plugins = _plugin_tables(raw, environ)
    config = dataclasses.replace(_build(Config, raw, prefix="", also_valid=list(plugins)), plugins=plugins)
    _check(config)
    return config


def _read(path: str | os.PathLike | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"cannot read config file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"config file {path} is not valid TOML: {error}") from error


def _override(raw: dict[str, Any], key_path: tuple[str, ...], value: str | None) -> None:
    """Set the key at ``key_path`` to an environment variable's value; unset or empty: leave the file's."""
    if not value:
        return
    section = raw
    for key in key_path[:-1]:
        section = section.setdefault(key, {})
    if isinstance(section, dict):  # otherwise _build reports the section that is not a table
        section[key_path[-1]] = value


def _plugin_tables(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Each storage plugin's own table (``[<name>]``, overridden by ERAPI_<NAME>_<KEY>), taken out of ``raw``,
    checked by the plugin's settings class and kept as far as it differs from the defaults, by plugin name.

    Only a plugin given a table or an override is loaded (the MongoDB plugin imports PyMongo). The table of a plugin
    that cannot be loaded (its optional dependency is not installed) is left unread: selecting that plugin fails,
    naming the reason.
    """
    tables = {}
    for name in available_plugins():
        prefix = f"ERAPI_{name.upper()}_"
        if name not in raw and not any(variable.startswith(prefix) and environ[variable] for variable in environ):
            continue
        try:
            settings = plugin_class(name).settings
        except ConfigurationError:
            raw.pop(name, None)
            continue
        if settings is None:
            continue  # a table of its name is an unknown key
        for key in (setting.name for setting in fields(settings)):
            _override(raw, (name, key), environ.get(prefix + key.upper()))
        given, defaults = dataclasses.asdict(_build(settings, raw.pop(name, {}), f"{name}.")), settings()
        differing = {key: value for key, value in given.items() if value != getattr(defaults, key)}
        if differing:
            tables[name] = differing
    return tables


def _build(cls: type, raw: Mapping[str, Any], prefix: str, also_valid: list[str] | None = None) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"config section {prefix.rstrip('.') or '(top)'} must be a table")
    known = {f.name: f for f in fields(cls) if f.metadata.get("table", True)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        valid = ", ".join([*known, *(also_valid or [])])
        raise ConfigurationError(f"unknown config key {prefix}{unknown[0]}; valid keys: {valid}")
    values = {}
    for name, value in raw.items():
        default = known[name].default_factory() if known[name].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            values[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            values[name] = _coerce(f"{prefix}{name}", value, type(getattr(cls(), name)))
    return cls(**values)


def _coerce(key: str, value: Any, expected: type) -> Any:
    """Accept the TOML type, or a string from the environment that parses as it."""
    try:
        if expected is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in {"true", "false"}:
                return value.lower() == "true"
            raise ValueError
        # a TOML float is not an int: int(8080.5) would quietly truncate it
        if expected is int and isinstance(value, (int, str)) and not isinstance(value, bool):
            return int(value)
        if expected is float and not isinstance(value, bool):
            return float(value)
        if expected is str and isinstance(value, str):
            return value
        if expected is tuple:  # a list of strings; from the environment, comma-separated
            items = value.split(",") if isinstance(value, str) else value
            if isinstance(items, list) and all(isinstance(item, str) for item in items):
                return tuple(item.strip() for item in items if item.strip())
    except ValueError:
        pass
    what = "list of strings" if expected is tuple else expected.__name__
    raise ConfigurationError(f"config key {key} must be a {what}, got {value!r}")


def _check(config: Config) -> None:
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in allowed:
            raise ConfigurationError(f"config key {key} must be one of {sorted(allowed)}, got {value!r}")
    for key, value in _positive_settings(config).items():
        if value <= 0:
            raise ConfigurationError(f"config key {key} must be positive, got {value}")
    _check_ranges(config)
    _check_webhooks(config.webhooks)
    if config.auth.mode == "jwks" and not config.auth.jwks_url:
        raise ConfigurationError("config key auth.jwks_url is required when auth.mode is 'jwks'")


def _positive_settings(config: Config) -> dict[str, float]:
    """The settings that must be above zero, by their config key."""
    return {
        "server.port": config.server.port,
        "server.max_body_bytes": config.server.max_body_bytes,
        "server.max_items": config.server.max_items,
        "server.max_header_bytes": config.server.max_header_bytes,
        "server.workers": config.server.workers,
        "server.retry_after_seconds": config.server.retry_after_seconds,
        "server.header_timeout_seconds": config.server.header_timeout_seconds,
        "server.body_timeout_seconds": config.server.body_timeout_seconds,
        "auth.token_ttl_seconds": config.auth.token_ttl_seconds,
        "jobs.max_items": config.jobs.max_items,
        "jobs.lease_seconds": config.jobs.lease_seconds,
        "jobs.max_attempts": config.jobs.max_attempts,
        "jobs.poll_interval_seconds": config.jobs.poll_interval_seconds,
        "jobs.max_pending_items_per_collection": config.jobs.max_pending_items_per_collection,
        "jobs.max_pending_items_total": config.jobs.max_pending_items_total,
        "jobs.retry_after_seconds": config.jobs.retry_after_seconds,
        "idempotency.retention_seconds": config.idempotency.retention_seconds,
        "idempotency.wait_seconds": config.idempotency.wait_seconds,
        "idempotency.lease_seconds": config.idempotency.lease_seconds,
        **{f"changes.{item.name}": getattr(config.changes, item.name) for item in fields(ChangesConfig)},
        "webhooks.timeout_seconds": config.webhooks.timeout_seconds,
        "webhooks.retry_initial_seconds": config.webhooks.retry_initial_seconds,
        "webhooks.retry_max_seconds": config.webhooks.retry_max_seconds,
        "webhooks.pause_after_attempts": config.webhooks.pause_after_attempts,
        "webhooks.pause_after_seconds": config.webhooks.pause_after_seconds,
        "webhooks.lease_seconds": config.webhooks.lease_seconds,
        "webhooks.poll_interval_seconds": config.webhooks.poll_interval_seconds,
        "webhooks.max_per_collection": config.webhooks.max_per_collection,
        "webhooks.max_per_process": config.webhooks.max_per_process,
        "webhooks.kept_attempts": config.webhooks.kept_attempts,
    }


def _check_ranges(config: Config) -> None:
    """The settings with bounds other than "above zero"."""
    if not 0 <= config.server.port <= 65535:
        raise ConfigurationError(f"config key server.port must be between 0 and 65535, got {config.server.port}")
    if not 0 <= config.auth.leeway_seconds <= 60:
        raise ConfigurationError("config key auth.leeway_seconds must be between 0 and 60")
    if config.jobs.workers < 0:
        raise ConfigurationError("config key jobs.workers must not be negative (0: this process runs no workers)")
    if not 1 <= config.jobs.chunk_size <= 100:
        raise ConfigurationError("config key jobs.chunk_size must be between 1 and 100")
    if config.ratelimit.requests_per_second <= 0 or config.ratelimit.burst < 1:
        raise ConfigurationError("config keys ratelimit.requests_per_second and ratelimit.burst must be positive")
    if config.server.shutdown_timeout < 0:
        raise ConfigurationError("config key server.shutdown_timeout must not be negative")
    if config.acl.cache_ttl_seconds < 0:
        raise ConfigurationError("config key acl.cache_ttl_seconds must not be negative")
    if config.auth.secret and len(config.auth.secret.encode()) < 32:
        raise ConfigurationError("config key auth.secret (ERAPI_AUTH_SECRET) must be at least 32 bytes")
    if config.auth.jwks_timeout <= 0 or config.auth.jwks_refresh_interval < 0:
        raise ConfigurationError("config keys auth.jwks_timeout must be positive and auth.jwks_refresh_interval not negative")
    if config.metrics.token and not 16 <= len(config.metrics.token) <= 256:
        raise ConfigurationError("config key metrics.token (ERAPI_METRICS_TOKEN) must be 16 to 256 characters")


def _check_webhooks(settings: WebhooksConfig) -> None:
    from erapi.allowlist import TargetPolicy  # the policy parses the entries; an import here keeps config light

    if settings.retry_multiplier < 1:
        raise ConfigurationError("config key webhooks.retry_multiplier must be at least 1")
    # a delivery renews its lease between attempts and waits: both must fit well inside it
    if settings.lease_seconds < 3 * max(settings.timeout_seconds, settings.poll_interval_seconds):
        raise ConfigurationError("config key webhooks.lease_seconds must be at least 3 times webhooks.timeout_seconds "
                                 "and webhooks.poll_interval_seconds")
    try:
        TargetPolicy(settings.allowed_targets)
    except ValueError as error:
        raise ConfigurationError(f"config key webhooks.allowed_targets: {error}") from error
