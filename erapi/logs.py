"""structlog set-up (JSON lines on stdout) and the operators' summary of each transaction: its line, its counts."""

from __future__ import annotations

import logging
import sys
from typing import BinaryIO

import orjson
import structlog

from erapi.metrics import record_items
from erapi.writes.context import BatchResult


def configure_logging(level: str, stream: BinaryIO | None = None) -> logging.Handler:
    """JSON lines on ``stream`` (standard output unless given): the service's own events and, through the standard
    library's logging, every library's (aiohttp's server errors, such as a request its HTTP parser refused).

    Returns the handler installed on the root logger, for a caller that wants to take it off again.
    """
    stream = stream or sys.stdout.buffer
    threshold = logging.getLevelNamesMapping()[level]
    common = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*common, structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(serializer=orjson.dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.BytesLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    handler = _LineHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*common, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(serializer=_json_text)],
    ))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(threshold)
    return handler


class _LineHandler(logging.Handler):
    """Writes each formatted record as one line to the binary stream structlog writes to (no second buffer)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record).encode() + b"\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)


def _json_text(value: object, **options) -> str:
    return orjson.dumps(value, **options).decode()


def audit(event: str, **fields) -> None:
    """A line of the audit trail (``audit: true``): who did it is the request's bound ``principal``."""
    structlog.get_logger("erapi.audit").info(event, audit=True, **fields)


_transaction_logger = structlog.get_logger("erapi.transaction")  # bound on first use, then kept (configure_logging)


def log_transaction(result: BatchResult) -> None:
    """One line per transaction; one more per item only at DEBUG, where its cost is acceptable."""
    logger = _transaction_logger
    failures = result.failures
    record_items(result.kind.name, "upsert", len(result.results) - len(failures), len(failures))
    logger.info(
        "transaction",
        kind=result.kind.name,
        items=len(result.results),
        succeeded=len(result.results) - len(failures),
        failed=len(failures),
        failures=[{"id": item.id, "reason": item.message} for item in failures],
    )
    if logger.is_enabled_for(logging.DEBUG):
        for item in result.results:
            logger.debug("transaction item", kind=result.kind.name, id=item.id, ok=item.ok, message=item.message)
