"""How long one piece of a cycle may take, and the stop signal, checked in one place.

- `Deadline(until, stop, limit)`: `check(what)` raises `Interrupted` once
  the stop signal is set (SIGTERM: leave the cycle now, write nothing) and
  `LiteLLMTemporaryError` once the monotonic clock passed `until` (the
  proxy was too slow: its objects keep their last values and it backs
  off). `left()` is what remains, so one request never outlives it.
  `limit` says, in our own words, which limit that was.
- `Deadline.within(seconds, cycle_end, stop)`: the earlier of `seconds`
  from now and the cycle's own end (`CYCLE_LIMIT`); `sooner(seconds)`, the
  same from a deadline.
- `over()`: whether to stop starting work (stop signal set, or time up).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from function.poller.litellm import LiteLLMTemporaryError

CYCLE_LIMIT = "the cycle's deadline (--cycle-deadline)"


class Interrupted(Exception):  # noqa: N818 - not an error: the poller is stopping.
    """The stop signal was set: leave the cycle without writing."""


@dataclass(frozen=True)
class Deadline:
    """A monotonic-clock deadline with the stop signal."""

    until: float
    stop: threading.Event | None = None
    limit: str = "its deadline"

    @classmethod
    def within(
        cls, seconds: float, cycle_end: float, stop: threading.Event | None = None
    ) -> Deadline:
        """`seconds` from now, or the cycle's end if that comes first."""
        own = time.monotonic() + seconds
        if cycle_end < own:
            return cls(cycle_end, stop, CYCLE_LIMIT)
        return cls(own, stop, f"{seconds:g} s")

    def sooner(self, seconds: float) -> Deadline:
        """`seconds` from now, or this deadline if that comes first (the same stop signal)."""
        return Deadline.within(seconds, self.until, self.stop)

    def over(self) -> bool:
        """Whether the stop signal is set or the deadline has come."""
        return self.stopping() or time.monotonic() >= self.until

    def left(self) -> float:
        """Seconds until the deadline (0 once passed)."""
        return max(0.0, self.until - time.monotonic())

    def stopping(self) -> bool:
        """Whether the stop signal is set."""
        return self.stop is not None and self.stop.is_set()

    def check(self, what: str) -> None:
        """Raise `Interrupted` on stop, `LiteLLMTemporaryError` past the deadline."""
        if self.stopping():
            raise Interrupted
        if time.monotonic() > self.until:
            msg = f"{what}: reading the proxy took longer than {self.limit}; stopped"
            raise LiteLLMTemporaryError(msg)
