"""Rate limiting per principal: one token bucket per authenticated subject, in this process's memory.

A bucket holds at most ``burst`` tokens and refills at ``requests_per_second``; each authenticated request
takes one. An empty bucket answers 429 with ``Retry-After`` (whole seconds until a token is back). Limits
are per process: N service processes behind a load balancer allow up to N times the rate in total, so an
operator who needs one global figure sets it at the proxy (docs/SECURITY.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from erapi.clock import Clock
from erapi.errors import TooManyRequests

MAX_TRACKED_PRINCIPALS = 100_000  # beyond it, idle (full) buckets are forgotten: they would allow a burst anyway


class RateLimited(TooManyRequests):
    """The principal's bucket is empty."""


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, requests_per_second: float, burst: int, clock: Clock = time.monotonic,
                 max_tracked: int = MAX_TRACKED_PRINCIPALS) -> None:
        if requests_per_second <= 0 or burst < 1:
            raise ValueError("requests_per_second must be positive and burst at least 1")
        self.rate = requests_per_second
        self.burst = burst
        self._clock = clock
        self._max_tracked = max_tracked
        self._buckets: dict[str, _Bucket] = {}

    def wait_time(self, principal: str) -> float:
        """Take a token for ``principal`` and return 0, or return the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.get(principal)
        if bucket is None:
            if len(self._buckets) >= self._max_tracked:
                self._forget_idle(now)
            bucket = self._buckets[principal] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def check(self, principal: str) -> None:
        """Take a token for ``principal`` or raise RateLimited (429) with the seconds to wait."""
        wait = self.wait_time(principal)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            raise RateLimited(
                f"Rate limit exceeded: {self.rate:g} requests per second (bursts of {self.burst}) per principal; "
                f"retry after {retry_after} s",
                retry_after,
            )

    def _forget_idle(self, now: float) -> None:
        refill_time = self.burst / self.rate
        self._buckets = {name: b for name, b in self._buckets.items() if now - b.updated < refill_time}
        if len(self._buckets) >= self._max_tracked:
            # every tracked principal is active: drop the least recently seen half
            keep = sorted(self._buckets.items(), key=lambda item: item[1].updated)[len(self._buckets) // 2:]
            self._buckets = dict(keep)
