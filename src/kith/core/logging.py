"""Structured logs (structlog): JSON lines in production, readable lines in development.

Kith's own log calls run on structlog's native pipeline: a dict through a few processors,
rendered once and written as one line to `sys.stdout`, with no `logging.LogRecord` on the
way (the request log line is written on every request, and the standard library's round
trip cost it about three times as much). Other libraries log through the standard
library, whose records the same processors and renderer format, so every line on stdout
has one shape.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from kith.core.config import Settings

_LEVELS = logging.getLevelNamesMapping()


def _orjson_dumps(value: object, **_: object) -> str:
    return orjson.dumps(value, default=str).decode()


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stdout` is at the time (it may be replaced after start-up)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


class StdoutLogger:
    """structlog's final logger: each rendered line to whatever `sys.stdout` is now."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        stream = sys.stdout
        stream.write(message + "\n")
        stream.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def _stdout_logger(*args: Any) -> StdoutLogger:
    return StdoutLogger(str(args[0]) if args else "kith")


@dataclass
class _Output:
    """What `configure_logging` chose last: read on every call, so a logger that structlog
    cached on first use follows a later configuration (the tests build apps with several)."""

    level: int = logging.INFO
    tail: list[structlog.types.Processor] = field(default_factory=list)


_output = _Output()


def _drop_below_level(_logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _LEVELS.get("WARNING" if method == "warn" else method.upper(), logging.ERROR) < _output.level:
        raise structlog.DropEvent
    return event


def _render(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
    rendered: Any = event
    for processor in _output.tail:
        rendered = processor(logger, method, rendered)
    return rendered


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library through one renderer on stdout."""
    level = _LEVELS.get(settings.log_level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    tail: list[structlog.types.Processor]
    if settings.json_logs:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        tail = [structlog.processors.format_exc_info, renderer]
    else:
        # Tracebacks without local variables: dumping them (FastAPI's are huge) takes seconds,
        # long enough to hold a shutting-down process past its timeout.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stdout.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        tail = [renderer]
    _output.level, _output.tail = level, tail
    structlog.configure(
        processors=[_drop_below_level, *shared, _render],
        logger_factory=_stdout_logger,
        # Every level reaches the processors; `_drop_below_level` filters by the current one.
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=True,
    )
    handler = StdoutHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # Our own request log replaces uvicorn's access log.
    logging.getLogger("uvicorn.access").handlers = []
    logging.getLogger("uvicorn.access").propagate = False
    for noisy in ("taskiq", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
