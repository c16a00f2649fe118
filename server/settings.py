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

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / ".data"

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""


def parse_duration(text: str) -> int:
    """Seconds in "3600", "90s", "15m", "24h" or "7d"."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) <= 0:
        raise SettingsError(
            f"JWT_EXPIRES_IN={text!r} is not a positive duration such as 3600, 15m, 24h or 7d"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


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
    )
