"""Logging: structlog event dicts carried by the standard `logging` module.

The library never configures global logging. Its loggers drop below the level the
application set on ``logging`` (WARNING by default) before any formatting work, and render
each event as one JSON object; `configure` (called by the CLI) picks JSON for machines or a
console rendering for people and installs a handler.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_renderer: Any = structlog.processors.JSONRenderer(sort_keys=True)


def _render(logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
    return str(_renderer(logger, name, event))


class _Logger(structlog.stdlib.BoundLogger):
    """Drops an event below the logger's level before building it (the hot paths log at INFO,
    which applications usually filter out)."""

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._logger.isEnabledFor(logging.DEBUG):
            return super().debug(event, *args, **kw)
        return None

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._logger.isEnabledFor(logging.INFO):
            return super().info(event, *args, **kw)
        return None


def get_logger(name: str) -> Any:
    """A structlog logger writing through ``logging.getLogger(name)``."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            _render,
        ],
        wrapper_class=_Logger,
        cache_logger_on_first_use=True,
    )


def configure(level: str = "WARNING", *, json: bool = True) -> None:
    """Send coimprove's logs to stderr at `level`, as JSON lines or for a console."""
    global _renderer
    _renderer = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    root = logging.getLogger("coimprove")
    root.setLevel(level.upper())
    if not any(getattr(h, "_coimprove", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._coimprove = True  # type: ignore[attr-defined]
        root.addHandler(handler)
