"""Configuration from the environment, read once and typed. No secret has a production default."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

AppEnv = Literal["development", "production"]
LogFormat = Literal["json", "text"]
# DATABASE_POOL_MODE: what DATABASE_URL reaches. `session`: PostgreSQL itself (or a pooler in
# session mode), so a connection keeps its settings; `transaction`: a pooler in transaction mode
# (PgBouncer), where consecutive transactions of one connection may run on different servers.
PoolMode = Literal["session", "transaction"]
POOL_MODES: tuple[PoolMode, ...] = ("session", "transaction")
SOCKETIO_TRANSPORT_NAMES = ("polling", "websocket")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_JWT_SECRET_BYTES = 32  # HS256's hash size: a shorter key is weaker than the signature

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data"

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""


def parse_duration(text: str, *, name: str = "JWT_EXPIRES_IN") -> int:
    """Seconds in "3600", "90s", "15m", "24h" or "7d"."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise SettingsError(
            f"{name}={text!r} is not a positive duration such as 3600, 15m, 24h or 7d"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class Limits:
    """What one request may cost: GraphQL size and shape, sign-in attempts (docs/RELIABILITY.md)."""

    # POST /graphql bodies above this are refused (413) before the rest is read.
    graphql_max_body_bytes: int = 64 * 1024
    # Nesting of selection sets; the deepest legitimate query (getNotifications { relatedLead
    # { id } }) is 3 deep.
    graphql_max_depth: int = 8
    graphql_max_aliases: int = 16
    # Roughly the number of values an operation may resolve: each field costs 1, times the
    # `limit` of the list it sits in (getNotifications with its 10 fields at limit 200 is 2,200).
    graphql_max_cost: int = 10_000
    # Lexical tokens of one document (graphql-core stops parsing beyond them).
    graphql_max_tokens: int = 2_000
    # Sign-in: failures counted over a sliding window, per email and client address together,
    # per email alone (many addresses), and per address alone (many emails).
    login_window_seconds: int = 300
    login_max_failures_per_email_and_address: int = 5
    login_max_failures_per_email: int = 50
    login_max_failures_per_address: int = 20
    # argon2id runs (64 MiB each) at once (LOGIN_HASH_CONCURRENCY, about one per core) and
    # sign-ins allowed to wait for one (LOGIN_HASH_QUEUE); beyond, the answer is "busy" at once.
    login_hash_concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    login_hash_queue: int = 32


@dataclass(frozen=True)
class DatabaseTimeouts:
    """Per-session limits of the server's pool (DB_*_TIMEOUT): no request waits for ever."""

    statement_seconds: int = 10
    lock_seconds: int = 5
    idle_in_transaction_seconds: int = 30


@dataclass(frozen=True)
class Settings:
    app_env: AppEnv
    host: str
    port: int
    database_url: str | None
    jwt_secret: str
    jwt_expires_in_seconds: int
    cors_origins: tuple[str, ...]
    jwt_secret_generated: bool = field(default=False)
    # SERVE_UI / SERVE_SCHEMA; None (unset) means "in development only".
    serve_ui: bool | None = None
    serve_schema: bool | None = None
    # METRICS_ENABLED; None (unset) means "in development only" (GET /metrics).
    metrics_enabled: bool | None = None
    # SOCKETIO_TRANSPORTS: what engine.io accepts; websocket alone behind `serve --workers N`.
    socketio_transports: tuple[str, ...] = SOCKETIO_TRANSPORT_NAMES
    # LOG_FORMAT (None: JSON lines in production, readable lines in development), LOG_LEVEL.
    log_format: LogFormat | None = None
    log_level: str = "INFO"
    limits: Limits = field(default_factory=Limits)
    socket_limits: SocketLimits = field(default_factory=lambda: SocketLimits())
    database_timeouts: DatabaseTimeouts = field(default_factory=DatabaseTimeouts)
    # LISTEN_DATABASE_URL: a direct PostgreSQL URL for what needs a session of its own (LISTEN,
    # migrations and their advisory lock); None means DATABASE_URL.
    listen_database_url: str | None = None
    database_pool_mode: PoolMode = "session"

    @property
    def is_development(self) -> bool:
        return self.app_env == "development"

    @property
    def ui_enabled(self) -> bool:
        """The live notification page at / (server/ui)."""
        return self.is_development if self.serve_ui is None else self.serve_ui

    @property
    def schema_published(self) -> bool:
        """GET /graphql/schema.graphql: off outside development, like introspection."""
        return self.is_development if self.serve_schema is None else self.serve_schema

    @property
    def metrics_served(self) -> bool:
        """GET /metrics: on in development, opt-in elsewhere (it is on the public port)."""
        return self.is_development if self.metrics_enabled is None else self.metrics_enabled

    @property
    def logs_as_json(self) -> bool:
        return (not self.is_development) if self.log_format is None else self.log_format == "json"

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None


def _development_secret() -> str:
    """One secret per checkout, kept under .data/ so restarts and sibling processes agree."""
    path = DATA_DIR / "dev-jwt-secret"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_flag(name: str, text: str | None) -> bool | None:
    """None when unset or empty, else true/false (also 1/0, yes/no, on/off)."""
    if text is None or not text.strip():
        return None
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={text!r} must be true or false")


def parse_positive_int(name: str, text: str | None, default: int) -> int:
    """A whole number above zero, or `default` when unset or empty."""
    if text is None or not text.strip():
        return default
    value = text.strip()
    if not value.isdigit() or int(value) <= 0:
        raise SettingsError(f"{name}={text!r} must be a whole number above zero")
    return int(value)


def load_limits(env: Mapping[str, str]) -> Limits:
    defaults = Limits()
    window = env.get("LOGIN_THROTTLE_WINDOW")
    return Limits(
        graphql_max_body_bytes=parse_positive_int(
            "GRAPHQL_MAX_BODY_BYTES",
            env.get("GRAPHQL_MAX_BODY_BYTES"),
            defaults.graphql_max_body_bytes,
        ),
        graphql_max_depth=parse_positive_int(
            "GRAPHQL_MAX_DEPTH", env.get("GRAPHQL_MAX_DEPTH"), defaults.graphql_max_depth
        ),
        graphql_max_aliases=parse_positive_int(
            "GRAPHQL_MAX_ALIASES", env.get("GRAPHQL_MAX_ALIASES"), defaults.graphql_max_aliases
        ),
        graphql_max_cost=parse_positive_int(
            "GRAPHQL_MAX_COST", env.get("GRAPHQL_MAX_COST"), defaults.graphql_max_cost
        ),
        graphql_max_tokens=defaults.graphql_max_tokens,
        login_window_seconds=(
            parse_duration(window, name="LOGIN_THROTTLE_WINDOW")
            if window
            else defaults.login_window_seconds
        ),
        login_max_failures_per_email_and_address=parse_positive_int(
            "LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS",
            env.get("LOGIN_MAX_FAILURES_PER_EMAIL_AND_ADDRESS"),
            defaults.login_max_failures_per_email_and_address,
        ),
        login_max_failures_per_email=parse_positive_int(
            "LOGIN_MAX_FAILURES_PER_EMAIL",
            env.get("LOGIN_MAX_FAILURES_PER_EMAIL"),
            defaults.login_max_failures_per_email,
        ),
        login_max_failures_per_address=parse_positive_int(
            "LOGIN_MAX_FAILURES_PER_ADDRESS",
            env.get("LOGIN_MAX_FAILURES_PER_ADDRESS"),
            defaults.login_max_failures_per_address,
        ),
        login_hash_concurrency=parse_positive_int(
            "LOGIN_HASH_CONCURRENCY",
            env.get("LOGIN_HASH_CONCURRENCY"),
            defaults.login_hash_concurrency,
        ),
        login_hash_queue=parse_positive_int(
            "LOGIN_HASH_QUEUE", env.get("LOGIN_HASH_QUEUE"), defaults.login_hash_queue
        ),
    )


@dataclass(frozen=True)
class SocketLimits:
    """Engine.io connections one process keeps (server/realtime/admission.py)."""

    # SOCKETIO_CONNECT_TIMEOUT: a connection that has not joined the namespace by then is closed
    # (Socket.IO's own server: connectTimeout, 45 s); a refused CONNECT closes it at once.
    connect_timeout_seconds: int = 45
    # SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS / SOCKETIO_MAX_CONNECTIONS: open engine.io
    # connections per client address and in all; a handshake beyond gets 429 / 503.
    max_per_address: int = 50
    max_total: int = 10_000


def load_socket_limits(env: Mapping[str, str]) -> SocketLimits:
    defaults = SocketLimits()
    timeout = env.get("SOCKETIO_CONNECT_TIMEOUT")
    return SocketLimits(
        connect_timeout_seconds=(
            parse_duration(timeout, name="SOCKETIO_CONNECT_TIMEOUT")
            if timeout
            else defaults.connect_timeout_seconds
        ),
        max_per_address=parse_positive_int(
            "SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS",
            env.get("SOCKETIO_MAX_CONNECTIONS_PER_ADDRESS"),
            defaults.max_per_address,
        ),
        max_total=parse_positive_int(
            "SOCKETIO_MAX_CONNECTIONS",
            env.get("SOCKETIO_MAX_CONNECTIONS"),
            defaults.max_total,
        ),
    )


def parse_transports(text: str | None) -> tuple[str, ...]:
    """SOCKETIO_TRANSPORTS: "websocket", "polling" or both, comma-separated; unset means both."""
    if text is None or not text.strip():
        return SOCKETIO_TRANSPORT_NAMES
    names = tuple(dict.fromkeys(name.strip().lower() for name in text.split(",") if name.strip()))
    if not names or any(name not in SOCKETIO_TRANSPORT_NAMES for name in names):
        raise SettingsError(
            f"SOCKETIO_TRANSPORTS={text!r} must be websocket, polling or polling,websocket"
        )
    return names


def parse_log_format(text: str | None) -> LogFormat | None:
    if text is None or not text.strip():
        return None
    value = text.strip().lower()
    if value == "json":
        return "json"
    if value == "text":
        return "text"
    raise SettingsError(f"LOG_FORMAT={text!r} must be json or text")


def parse_log_level(text: str | None) -> str:
    value = (text or "INFO").strip().upper() or "INFO"
    if value not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL={text!r} must be one of {', '.join(LOG_LEVELS)}")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    database_url = env.get("DATABASE_URL") or None

    app_env_text = env.get("APP_ENV") or ("development" if database_url is None else "production")
    if app_env_text not in ("development", "production"):
        raise SettingsError(f"APP_ENV={app_env_text!r} must be 'development' or 'production'")
    app_env: AppEnv = "development" if app_env_text == "development" else "production"

    port_text = env.get("PORT", "3001")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SettingsError(f"PORT={port_text!r} is not a TCP port number")

    jwt_secret = env.get("JWT_SECRET") or ""
    generated = False
    if not jwt_secret:
        if app_env != "development":
            raise SettingsError(
                "JWT_SECRET is required outside development: set it to a long random string "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        jwt_secret = _development_secret()
        generated = True
    elif app_env != "development" and len(jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
        # HS256 with a short key: anyone holding one token can guess the key offline.
        raise SettingsError(
            f"JWT_SECRET is {len(jwt_secret.encode())} bytes; production needs at least "
            f"{MIN_JWT_SECRET_BYTES} random bytes, since a short HS256 key can be guessed "
            "offline from any token (make one: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )

    listen_database_url, database_pool_mode = load_database_routing(env, database_url)
    origins = tuple(
        origin.strip()
        for origin in env.get("CORS_ORIGINS", "http://localhost:3000").split(",")
        if origin.strip()
    )

    return Settings(
        app_env=app_env,
        host=env.get("HOST", "127.0.0.1"),
        port=int(port_text),
        database_url=database_url,
        jwt_secret=jwt_secret,
        jwt_expires_in_seconds=parse_duration(env.get("JWT_EXPIRES_IN", "24h")),
        cors_origins=origins,
        jwt_secret_generated=generated,
        serve_ui=parse_flag("SERVE_UI", env.get("SERVE_UI")),
        serve_schema=parse_flag("SERVE_SCHEMA", env.get("SERVE_SCHEMA")),
        metrics_enabled=parse_flag("METRICS_ENABLED", env.get("METRICS_ENABLED")),
        socketio_transports=parse_transports(env.get("SOCKETIO_TRANSPORTS")),
        log_format=parse_log_format(env.get("LOG_FORMAT")),
        log_level=parse_log_level(env.get("LOG_LEVEL")),
        limits=load_limits(env),
        socket_limits=load_socket_limits(env),
        database_timeouts=load_database_timeouts(env),
        listen_database_url=listen_database_url,
        database_pool_mode=database_pool_mode,
    )


def parse_pool_mode(text: str | None) -> PoolMode:
    value = (text or "session").strip().lower() or "session"
    for mode in POOL_MODES:
        if value == mode:
            return mode
    raise SettingsError(f"DATABASE_POOL_MODE={text!r} must be session or transaction")


def load_database_routing(
    env: Mapping[str, str], database_url: str | None
) -> tuple[str | None, PoolMode]:
    """LISTEN_DATABASE_URL and DATABASE_POOL_MODE, checked against DATABASE_URL.

    Behind a pooler in transaction mode a LISTEN (and a session advisory lock) would belong to
    whichever client the server connection serves next, so that mode needs a direct URL.
    """
    listen_url = env.get("LISTEN_DATABASE_URL") or None
    pool_mode = parse_pool_mode(env.get("DATABASE_POOL_MODE"))
    if listen_url is not None and database_url is None:
        raise SettingsError(
            "LISTEN_DATABASE_URL is set but DATABASE_URL is not: set both (DATABASE_URL may go "
            "through PgBouncer, LISTEN_DATABASE_URL goes straight to PostgreSQL)"
        )
    if pool_mode == "transaction" and listen_url is None:
        raise SettingsError(
            "DATABASE_POOL_MODE=transaction needs LISTEN_DATABASE_URL: LISTEN and migrations "
            "need a session of their own, so point it straight at PostgreSQL, not at the pooler "
            "(docs/DEPLOYMENT.md)"
        )
    return listen_url, pool_mode


def load_database_timeouts(env: Mapping[str, str]) -> DatabaseTimeouts:
    """DB_STATEMENT_TIMEOUT, DB_LOCK_TIMEOUT, DB_IDLE_IN_TRANSACTION_TIMEOUT: durations."""
    defaults = DatabaseTimeouts()

    def seconds(name: str, default: int) -> int:
        text = env.get(name)
        return parse_duration(text, name=name) if text else default

    return DatabaseTimeouts(
        statement_seconds=seconds("DB_STATEMENT_TIMEOUT", defaults.statement_seconds),
        lock_seconds=seconds("DB_LOCK_TIMEOUT", defaults.lock_seconds),
        idle_in_transaction_seconds=seconds(
            "DB_IDLE_IN_TRANSACTION_TIMEOUT", defaults.idle_in_transaction_seconds
        ),
    )
