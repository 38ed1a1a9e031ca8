"""JSON nested deeper than Python decodes, decoded anyway, with the deep parts dropped.

Python's `json` recurses once per level and raises RecursionError past
about a thousand. The API server and LiteLLM store deeper JSON without
complaint: a tenant can nest a few thousand levels in a status field its
XRD leaves open (`x-kubernetes-preserve-unknown-fields`), or in a key's
metadata through `/key/generate`. One such object would make a whole
listing unreadable, and with it every other tenant's objects.

- `loads(data)`: `json.loads`, and on RecursionError `loads_bounded`. An
  integer too long for Python to convert (over 4,300 digits) becomes
  infinity instead of failing the whole answer, so the one object holding
  it is what cannot be read.
- `loads_bounded(text, max_depth)`: decodes without recursion; every array
  or object nested deeper than `max_depth` becomes None. Everything the
  poller reads sits within a few levels, so only the hostile part is lost.

Raises ValueError for anything that is not JSON, as `json.loads` does.
"""

from __future__ import annotations

import json
import json.decoder
import re
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 64
# Python refuses to convert longer digit strings (sys.get_int_max_str_digits).
_MAX_DIGITS = 4000
_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS: tuple[tuple[str, Any], ...] = (("true", True), ("false", False), ("null", None))
# The C string scanner `json` itself uses (not in the type stubs).
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def _int(digits: str) -> int | float:
    """An integer, or infinity when it has more digits than Python converts."""
    return int(digits) if len(digits) <= _MAX_DIGITS else float("inf")


def loads(data: bytes | str) -> Any:
    """Decoded JSON; past Python's nesting limit, with the deepest parts dropped."""
    try:
        return json.loads(data, parse_int=_int)
    except RecursionError:
        text = data.decode() if isinstance(data, bytes) else data
        return loads_bounded(text, MAX_DEPTH)


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _key(text: str, pos: int) -> tuple[str, int]:
    """An object's key and the position after its colon."""
    if not text.startswith('"', pos):
        msg = f"expected a property name at {pos}"
        raise ValueError(msg)
    key, pos = _scanstring(text, pos + 1)
    pos = _skip(text, pos)
    if not text.startswith(":", pos):
        msg = f"expected ':' at {pos}"
        raise ValueError(msg)
    return key, _skip(text, pos + 1)


def _scalar(text: str, pos: int) -> tuple[Any, int]:
    if text.startswith('"', pos):
        return _scanstring(text, pos + 1)
    number = _NUMBER.match(text, pos)
    if number:
        literal = number.group()
        value: Any = float(literal) if number.group(1) or number.group(2) else _int(literal)
        return value, number.end()
    for word, value in _LITERALS:
        if text.startswith(word, pos):
            return value, pos + len(word)
    msg = f"expected a value at {pos}"
    raise ValueError(msg)


class _Frame:
    """An open array or object: what is kept of it (None: too deep), and its pending key."""

    __slots__ = ("closer", "container", "key")

    def __init__(self, container: dict[str, Any] | list[Any] | None, closer: str) -> None:
        self.container = container
        self.closer = closer
        self.key = ""

    def add(self, value: Any) -> None:
        if isinstance(self.container, dict):
            self.container[self.key] = value
        elif isinstance(self.container, list):
            self.container.append(value)


def loads_bounded(text: str, max_depth: int = MAX_DEPTH) -> Any:  # noqa: C901
    """Decode JSON without recursion; arrays and objects deeper than `max_depth` become None."""
    stack: list[_Frame] = []
    pos = _skip(text, 0)
    while True:
        opener = text[pos] if pos < len(text) else ""
        if opener in ("{", "["):
            dropped = len(stack) >= max_depth or (bool(stack) and stack[-1].container is None)
            container: dict[str, Any] | list[Any] | None = None
            if not dropped:
                container = {} if opener == "{" else []
            frame = _Frame(container, "}" if opener == "{" else "]")
            stack.append(frame)
            pos = _skip(text, pos + 1)
            if not text.startswith(frame.closer, pos):
                if opener == "{":
                    frame.key, pos = _key(text, pos)
                continue  # read the first member's value
            pos += 1
            value: Any = stack.pop().container
        else:
            value, pos = _scalar(text, pos)
        # Put the value in its container, then close every container that ends here.
        while True:
            if not stack:
                if _skip(text, pos) != len(text):
                    msg = f"extra data at {pos}"
                    raise ValueError(msg)
                return value
            frame = stack[-1]
            frame.add(value)
            pos = _skip(text, pos)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
                if frame.closer == "}":
                    frame.key, pos = _key(text, pos)
                break  # read the next member's value
            if not text.startswith(frame.closer, pos):
                msg = f"expected ',' or {frame.closer!r} at {pos}"
                raise ValueError(msg)
            pos += 1
            value = stack.pop().container
