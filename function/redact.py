"""Removing anything key-like from text before a person or a log sees it.

`redact(text)` replaces LiteLLM keys (`sk-...` becomes `sk-REDACTED`), bearer
values and LiteLLM's "Passed in: ..." echo, folds newlines and shortens the
text. The function uses it for conditions and Fatal messages, the poller for
log lines, events and exception texts (function/poller/redact.py).
"""

from __future__ import annotations

import re

_KEY = re.compile(r"sk-[A-Za-z0-9_\-.]+")
_BEARER = re.compile(r"(?i)bearer\s+\S+")
_PASSED_IN = re.compile(r"Passed in:\s*\S+")
MAX_MESSAGE = 300


def redact(text: object, limit: int = MAX_MESSAGE) -> str:
    """A printable, key-free version of `text`, on one line, at most `limit` characters."""
    value = _KEY.sub("sk-REDACTED", str(text))
    value = _BEARER.sub("Bearer REDACTED", value)
    value = _PASSED_IN.sub("Passed in: REDACTED", value)
    value = value.replace("\n", " ").strip()
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return value
