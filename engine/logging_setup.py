"""Logging for every engine process: one JSON object per line for machines (journald,
``docker logs``, Kubernetes log shippers), plain text on a terminal for people.

Each JSON line has ``ts`` (RFC 3339, UTC), ``level``, ``logger``, ``msg`` and, when
known, ``incident_id``, plus any ``extra={...}`` fields that are JSON-able (others are
written with ``repr``). The incident id comes from ``extra={"incident_id": ...}`` or
from :func:`incident_context`, which tags every line logged inside it (asyncio tasks
inherit it: it is a ``contextvars`` variable).

``configure_logging(verbose, json=None)``: JSON unless stderr is a terminal; ``-v`` is
INFO, ``-vv`` DEBUG. ``ENGINE_LOG_FORMAT=json|text`` overrides the guess when ``json``
is None (containers without a TTY get JSON anyway).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json as jsonlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

_incident: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "engine_incident_id", default=None
)

# Attributes every LogRecord has: not copied into the JSON as extra fields.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


@contextlib.contextmanager
def incident_context(incident_id: str | None) -> Iterator[None]:
    """Every record logged inside (this task and tasks it starts) carries the id."""
    token = _incident.set(incident_id)
    try:
        yield
    finally:
        _incident.reset(token)


class IncidentFilter(logging.Filter):
    """Sets ``record.incident_id`` from :func:`incident_context` unless given."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "incident_id", None) is None:
            record.incident_id = _incident.get()
        return True


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return repr(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; non-ASCII (Chinese addresses) kept as is."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        incident_id = getattr(record, "incident_id", None)
        if incident_id is not None:
            out["incident_id"] = str(incident_id)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out and key != "incident_id":
                out[key] = _jsonable(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return jsonlib.dumps(out, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``12:00:01.234 INFO engine.streams [INC-...] message`` for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)s %(name)s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        incident_id = getattr(record, "incident_id", None)
        if incident_id is None:
            return text
        head, sep, tail = text.partition(f" {record.name} ")
        return f"{head}{sep}[{incident_id}] {tail}" if sep else f"[{incident_id}] {text}"


def _want_json(json: bool | None, stream: TextIO) -> bool:
    if json is not None:
        return json
    forced = os.environ.get("ENGINE_LOG_FORMAT", "").strip().lower()
    if forced in ("json", "text"):
        return forced == "json"
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(
    verbose: int = 0, json: bool | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Replace the root logger's handlers with one on ``stream`` (stderr).

    ``verbose``: 0 WARNING, 1 INFO, 2+ DEBUG. ``json``: True/False forces the format;
    None picks JSON unless the stream is a terminal. Returns the handler (tests).
    """
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if _want_json(json, stream) else TextFormatter())
    handler.addFilter(IncidentFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING - 10 * min(max(verbose, 0), 2))
    # aiokafka logs every refused connection at ERROR while it retries; the commands
    # report the outcome themselves.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL if verbose == 0 else logging.NOTSET)
    return handler
