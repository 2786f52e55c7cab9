"""Prometheus metrics: what the service counts, and the storage plugin wrapped so that each of its calls is timed.

The metrics live in prometheus-client's default registry, one set per process. With ``erapi serve --workers N``
the command line switches prometheus-client to its multiprocess mode before anything imports it
(``PROMETHEUS_MULTIPROC_DIR``), and ``registry()`` then sums what every worker process wrote.
"""

from __future__ import annotations

import os
import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from storage_plugins.base import PAGED, DuplicateError, Storage, plugin_calls

MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# from half a millisecond (a read from the memory plugin) to ten seconds (a 10,000-item job stored on a slow disk)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# any token is an HTTP method to the parser: labels take the known ones, so that callers cannot add series
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# the methods the storage interfaces build on their primitives (roll_forward, ...), from every base of Storage; a
# paged read is timed as one call of the plugin instead (storage_plugins/documents.py)
COMPOSED = frozenset(name for base in Storage.__mro__[:-1] for name, value in vars(base).items()
                     if callable(value) and not name.startswith("_") and name not in Storage.__abstractmethods__
                     and name not in PAGED)

REQUESTS = Counter("erapi_http_requests", "HTTP requests answered, by method, route template and status",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("erapi_http_request_duration_seconds", "Seconds from the parsed request to the last byte "
                            "of its answer, by method and route template", ["method", "route"], buckets=BUCKETS)
ITEMS_WRITTEN = Counter("erapi_items_written", "Entities and relationships written (each a new version), by kind "
                        "(entities, relationships) and operation (upsert, delete)", ["kind", "operation"])
ITEMS_FAILED = Counter("erapi_items_failed", "Items of upserts that failed (a 207's failures, an async job's failed "
                       "items), by kind", ["kind"])
PENDING_ITEMS = Gauge("erapi_job_pending_items", "Items of async jobs accepted and not yet applied, in the whole "
                      "storage (read when scraped; NaN when the storage did not answer)",
                      multiprocess_mode="mostrecent")  # with --workers N: the value the last scrape read
WEBHOOK_ATTEMPTS = Counter("erapi_webhook_attempts", "Webhook delivery attempts, by outcome (delivered: the receiver "
                           "answered 2xx; failed: any other answer, none, or a target refused)", ["outcome"])
WEBHOOK_PAUSES = Counter("erapi_webhook_pauses", "Webhook subscriptions paused (a receiver that kept failing, a "
                         "creator without read access, a position the feed's retention trimmed)")
STORAGE_SECONDS = Histogram("erapi_storage_call_duration_seconds", "Seconds of each call of the storage plugin, by "
                            "method of the storage interface", ["operation"], buckets=BUCKETS)
STORAGE_ERRORS = Counter("erapi_storage_errors", "Calls of the storage plugin that raised, by method (a duplicate "
                         "key, an answer rather than a failure, is not counted)", ["operation"])


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "other"
    REQUESTS.labels(method, route, str(status)).inc()
    REQUEST_SECONDS.labels(method, route).observe(seconds)


def record_items(kind: str, operation: str, written: int, failed: int = 0) -> None:
    if written:
        ITEMS_WRITTEN.labels(kind, operation).inc(written)
    if failed:
        ITEMS_FAILED.labels(kind).inc(failed)


def record_webhook_attempt(delivered: bool) -> None:
    WEBHOOK_ATTEMPTS.labels("delivered" if delivered else "failed").inc()


def record_webhook_pause() -> None:
    WEBHOOK_PAUSES.inc()


def registry() -> CollectorRegistry:
    """What /metrics shows: this process's metrics, or in multiprocess mode those of every worker process."""
    if MULTIPROCESS_DIRECTORY not in os.environ:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


class MeteredStorage(Storage):
    """The storage plugin with every call of the interface timed and its failures counted; the rest passes through.

    The app wraps whichever plugin the config names, once, where it opens it: no plugin has metrics code.
    """

    def __init__(self, plugin: Storage) -> None:
        self.plugin = plugin
        # the base class's own methods run here, on the timed primitives; one the plugin overrides runs there
        for name in COMPOSED:
            if getattr(type(plugin), name) is not getattr(Storage, name):
                setattr(self, name, getattr(plugin, name))

    def __getattr__(self, name: str):
        return getattr(self.plugin, name)


def _metered(name: str):
    seconds, errors = STORAGE_SECONDS.labels(name), STORAGE_ERRORS.labels(name)

    async def method(self: MeteredStorage, *args, **kwargs):
        started = time.perf_counter()
        try:
            return await getattr(self.plugin, name)(*args, **kwargs)
        except DuplicateError:
            raise
        except Exception:
            errors.inc()
            raise
        finally:
            seconds.observe(time.perf_counter() - started)

    method.__name__ = name
    return method


for _name in sorted(plugin_calls()):
    setattr(MeteredStorage, _name, _metered(_name))
MeteredStorage.__abstractmethods__ = frozenset()
