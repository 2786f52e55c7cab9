"""What a MongoDB wire-protocol server lacks of MongoDB, in one object the MongoDB plugin is given.

The plugin writes for MongoDB (``MONGODB``). A server that needs workarounds gets a dialect naming each one;
the plugin asks the dialect, never the server's name. ``choose_dialect`` picks one from the server's
``buildInfo``, and config (``mongodb.dialect``) can name one instead of ``"auto"``. Kept free of PyMongo so
that it can be tested on plain ``buildInfo`` documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from erapi.errors import ConfigurationError


@dataclass(frozen=True)
class MongoDialect:
    """The workarounds a server needs; every field at its MongoDB value means none."""

    name: str
    # $group has the $first accumulator (the newest version of each id in one aggregation)
    group_first: bool = True
    # An update's match and write are one atomic step per document, and filters other than {_id: ...} use
    # indexes. False: the plugin decides conditional writes itself and writes by _id, one update at a time.
    atomic_updates: bool = True
    # Most statements in one update command; None: the driver's own batching
    update_statements: int | None = None
    # Multi-document transactions (on a replica set or a sharded cluster): what atomic=true batches need
    transactions: bool = True
    # PyMongo's bulk_write can read the server's replies to unordered batches with write errors, so conditional
    # writes go through it: retryable writes, split into batches by the driver. False: raw update commands whose
    # replies the plugin reads itself (not retried by the driver across a failover)
    bulk_write: bool = True
    # Updates may be aggregation pipelines (MongoDB 4.2+): the current view's conditional replacement matches on
    # the unique key alone and compares versions inside the update. False: the version is compared in the filter
    pipeline_updates: bool = True


MONGODB = MongoDialect("mongodb")

# FerretDB 1.x (tested: 1.24.2, SQLite backend). Each field is one row of docs/OPERATIONS.md's FerretDB table.
FERRETDB1 = MongoDialect(
    "ferretdb1",
    group_first=False,  # $group has only $count and $sum
    atomic_updates=False,  # updates read, then write by _id outside a transaction; no index but _id is used
    update_statements=25,  # ~100 matching statements in one update command deadlock its SQLite pool of 100
    transactions=False,  # no multi-document transactions in 1.x: atomic=true batches are refused
    bulk_write=False,  # its reply to an unordered batch with a write error lacks nModified (FerretDB#2612)
    pipeline_updates=False,  # "BSON field 'update.updates.u' is the wrong type 'array'"
)

DIALECTS = {dialect.name: dialect for dialect in (MONGODB, FERRETDB1)}
AUTO = "auto"
CHOICES = (AUTO, *DIALECTS)


@dataclass(frozen=True)
class Choice:
    """The dialect chosen for a server, and why (logged at start-up)."""

    dialect: MongoDialect
    reason: str


def choose_dialect(build_info: Mapping[str, Any], configured: str | MongoDialect = AUTO) -> Choice:
    """The dialect for a server, from config or else from its ``buildInfo``.

    FerretDB 1.x gets FERRETDB1. Any other server, a later FerretDB major included, gets MONGODB: a new major is
    not assumed to have 1.x's gaps (FerretDB 2 runs on PostgreSQL with DocumentDB, a different engine); if it
    needs them, say so in config (``dialect = "ferretdb1"``).
    """
    if isinstance(configured, MongoDialect):
        return Choice(configured, "given by the caller")
    if configured != AUTO:
        return Choice(dialect_named(configured), "set by config mongodb.dialect")
    ferretdb = build_info.get("ferretdbVersion")
    if ferretdb is None:
        return Choice(MONGODB, f"server reports MongoDB {build_info.get('version', 'of unknown version')}")
    if _major(str(ferretdb)) == 1:
        return Choice(FERRETDB1, f"server reports FerretDB {ferretdb}")
    return Choice(MONGODB, f"server reports FerretDB {ferretdb}, not 1.x: no 1.x workarounds unless configured")


def dialect_named(name: str) -> MongoDialect:
    if name not in DIALECTS:
        raise ConfigurationError(f"config key mongodb.dialect must be one of {list(CHOICES)}, got {name!r}")
    return DIALECTS[name]


def _major(version: str) -> int | None:
    head = version.lstrip("vV").split(".", 1)[0]
    return int(head) if head.isascii() and head.isdigit() else None
