"""Logging for `serve` and `render`: the SDK's format, without anything secret in it.

`configure(level)` replaces `crossplane.function.logging.configure`. It keeps
its shapes (JSON lines like function-sdk-go's production logger, or a console
format for debugging) but:

- renders exceptions **without frame locals**. The SDK's `dict_tracebacks`
  prints every frame's locals, and a frame of `compose` holds the raw key;
- passes every string of every event through `function.redact.redact`, as a
  second line of defence under the rule that no code logs a key at all.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog
from crossplane.function.logging import Level
from structlog.tracebacks import ExceptionDictTransformer

from function.redact import redact

_MAX_LOGGED = 4000


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value, _MAX_LOGGED)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: every string in the event, redacted."""
    return {k: _scrub(v) for k, v in event.items()}


def _drop(_logger: Any, _method: str, _event: MutableMapping[str, Any]) -> Any:
    raise structlog.DropEvent


def configure(level: Level = Level.INFO) -> None:
    """Configure structlog as the SDK does, minus frame locals, plus redaction."""
    if level == Level.DISABLED:
        structlog.configure(processors=[_drop])
        return
    common: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.processors.CallsiteParameterAdder(
            {
                structlog.processors.CallsiteParameter.FILENAME,
                structlog.processors.CallsiteParameter.LINENO,
            }
        ),
    ]
    if level == Level.DEBUG:
        structlog.configure(
            processors=[
                *common,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.format_exc_info,
                redact_event,
                structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
            ]
        )
        return
    structlog.configure(
        processors=[
            *common,
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            structlog.processors.TimeStamper(key="ts"),
            structlog.processors.EventRenamer(to="msg"),
            redact_event,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
