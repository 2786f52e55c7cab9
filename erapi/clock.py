"""The one clock abstraction: a function returning seconds, injected wherever behaviour depends on time.

``time.time`` (seconds since the epoch) where the time is compared with stored or signed times (token ``exp``,
job leases, idempotency keys); ``time.monotonic`` for intervals kept in memory (caches, rate limits). Tests
inject a clock they move (tests/clock.py) instead of sleeping or patching ``time.time``.
"""

from __future__ import annotations

from typing import Callable

Clock = Callable[[], float]
