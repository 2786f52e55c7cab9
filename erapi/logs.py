"""structlog set-up (JSON lines on stdout) and the operators' summary of each transaction."""

from __future__ import annotations

import logging
import sys
from typing import BinaryIO

import orjson
import structlog

from erapi.domain import BatchResult


def configure_logging(level: str, stream: BinaryIO | None = None) -> None:
    """JSON lines on ``stream`` (standard output unless given), one per event."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.BytesLoggerFactory(stream or sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )


def audit(event: str, **fields) -> None:
    """A line of the audit trail (``audit: true``): who did it is the request's bound ``principal``."""
    structlog.get_logger("erapi.audit").info(event, audit=True, **fields)


def log_transaction(result: BatchResult) -> None:
    """One line per transaction; one more per item only at DEBUG, where its cost is acceptable."""
    logger = structlog.get_logger("erapi.transaction")
    failures = result.failures
    logger.info(
        "transaction",
        kind=result.kind,
        items=len(result.results),
        succeeded=len(result.results) - len(failures),
        failed=len(failures),
        failures=[{"id": item.id, "reason": item.message} for item in failures],
    )
    if logger.is_enabled_for(logging.DEBUG):
        for item in result.results:
            logger.debug("transaction item", kind=result.kind, id=item.id, ok=item.ok, message=item.message)
