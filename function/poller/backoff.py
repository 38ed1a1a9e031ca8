"""Exponential backoff with jitter, one per LiteLLM instance (and one for the API server).

`Backoff(base, cap)`: `ready()` says whether to try now; `failed(error)`
doubles the wait (base, 2*base, 4*base ... up to cap, each scaled by a random
factor in [0.5, 1]) and remembers the error; `succeeded()` resets it. A
clock and a random source can be passed in for tests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class Backoff:
    """When to try an instance again after failures."""

    def __init__(
        self,
        base: float = 5.0,
        cap: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Start with no failure."""
        self.base = base
        self.cap = cap
        self._clock = clock
        self._rng = rng
        self.failures = 0
        self.last_error = ""
        self._next_try = 0.0

    def ready(self) -> bool:
        """Whether the backoff has run out."""
        return self._clock() >= self._next_try

    def remaining(self) -> float:
        """Seconds until the next try (0 when ready)."""
        return max(0.0, self._next_try - self._clock())

    def failed(self, error: str = "") -> float:
        """Record a failure; the delay before the next try, in seconds."""
        self.failures += 1
        self.last_error = error
        delay = min(self.cap, self.base * 2.0 ** min(self.failures - 1, 30))
        delay *= 0.5 + self._rng() / 2
        self._next_try = self._clock() + delay
        return delay

    def succeeded(self) -> None:
        """Record a success: the next failure starts from `base` again."""
        self.failures = 0
        self.last_error = ""
        self._next_try = 0.0
