"""A token bucket: ``rate`` per second sustained, ``burst`` at once; refuse (``take``) or wait (``reserve``)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(burst, 1.0)
        self._tokens = self._burst
        self._clock = clock
        self._last = clock()
        self._reported = float("-inf")

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def take(self) -> bool:
        """A token if one is there now (refusal policy)."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def reserve(self) -> float:
        """Take a token now or in the future (waiting policy): the seconds to wait before using it."""
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def should_report(self, every_s: float = 1.0) -> bool:
        """At most one refusal report per ``every_s``."""
        now = self._clock()
        if now - self._reported >= every_s:
            self._reported = now
            return True
        return False
