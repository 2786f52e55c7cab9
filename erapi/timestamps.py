"""Timestamps as the contract writes them."""

from __future__ import annotations

from datetime import datetime, timezone

_last_timestamp: tuple[datetime, str] | None = None  # the last moment formatted, and its text


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with microseconds: fixed width, so string order is time order.

    The last moment's text is kept: the records of one request or job are stamped with the same few
    moments over and over (an async job of 10,000 items formats its receipt time 20,000 times), and
    ``strftime`` costs more than everything else a state entry needs.
    """
    global _last_timestamp
    moment = moment or datetime.now(timezone.utc)
    last = _last_timestamp
    if last is not None and moment.tzinfo is not None and last[0] == moment:  # aware: equal means one instant
        return last[1]
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _last_timestamp = (moment, text)
    return text
