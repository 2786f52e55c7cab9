"""A clock the test moves: injected where erapi takes a ``Clock`` (erapi/clock.py), so no test sleeps for time
to pass or patches ``time.time``."""

from __future__ import annotations


class ManualClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
