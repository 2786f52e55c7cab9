"""The storage interface every plugin implements, and the plugin registry.

A plugin is one class, ``Storage``, that implements five small interfaces, each in a module of its own with the
edge behaviour of its methods in their docstrings:

- ``DocumentStore`` (storage_plugins/documents.py): versioned documents, their history, lists and edges;
- ``LogStore`` (storage_plugins/logs.py): the status records of transactions;
- ``JobQueue`` (storage_plugins/jobs.py): the chunks of async jobs and the idempotency keys of requests;
- ``AccessStore`` (storage_plugins/access.py): collection registrations and grants;
- ``SubscriptionStore`` (storage_plugins/subscriptions.py): webhook subscriptions and their delivery state.

The service holds one storage object and calls ``storage.method(...)`` whatever interface the method is of.

Every method is batch-first: it takes all the ids or documents of one request at once, so a request costs a
constant number of storage calls whatever its item count. Documents are plain dicts of JSON types.

Ownership. What a caller hands to a write method (documents, records, a StatusBatch) belongs to the plugin
from then on: the caller must not change it, nor anything in it, afterwards, and the plugin may keep it as it
is instead of copying it (the memory plugin keeps a StatusBatch as the transaction's records, and serialises a
claimed document once for both the history and the current view). The caller may go on reading it. What a
plugin returns belongs to the caller: a copy it may change, never an object the plugin keeps.

This module re-exports every name of the interfaces, so ``from storage_plugins.base import ...`` finds them.
"""

from __future__ import annotations

import abc
import functools
import sys
from importlib.metadata import entry_points
from typing import Any, ClassVar, Mapping, Sequence

from erapi.errors import ConfigurationError
from storage_plugins.access import AccessStore, GrantedCollections
from storage_plugins.changes import ChangeLog, Publishes
from storage_plugins.common import AtomicConflict, Document, DuplicateError, StorageError
from storage_plugins import documents, logs
from storage_plugins.documents import (
    ADDITIONAL_TYPES_FIELD,
    KINDS,
    TYPE_FIELD,
    VERSION_FIELD,
    ClaimResult,
    DocumentQuery,
    DocumentStore,
    EdgeQuery,
    FrontierQuery,
    VersionPage,
    VersionProblem,
    newer_than_held,
    version_of,
)
from storage_plugins.jobs import IDEMPOTENCY_SWEEP_EVERY, JobQueue
from storage_plugins.logs import LogMoves, LogQuery, LogStore, LogTransition, transitions_that_move
from storage_plugins.subscriptions import SubscriptionStore

__all__ = [
    "ADDITIONAL_TYPES_FIELD", "AccessStore", "AtomicConflict", "ClaimResult", "Document", "DocumentQuery",
    "DocumentStore", "DuplicateError", "EdgeQuery", "FrontierQuery", "GrantedCollections", "IDEMPOTENCY_SWEEP_EVERY",
    "JobQueue", "KINDS", "LogMoves", "LogQuery", "LogStore", "LogTransition", "PAGED", "Storage", "StorageError",
    "SubscriptionStore", "TYPE_FIELD", "VERSION_FIELD", "VersionPage", "VersionProblem", "WRITE_PATH_READS",
    "WritePathView", "available_plugins", "create_storage", "newer_than_held", "plugin_calls", "plugin_class",
    "transitions_that_move", "version_of",
]

ENTRY_POINT_GROUP = "erapi.storage_plugins"
# the paged reads of every interface, each by the name of the primitive a plugin supplies for it
PAGED = {**documents.PAGED, **logs.PAGED}
# what the batch write path reads of storage; a view for one batch (dry run, atomic) passes these through
WRITE_PATH_READS = frozenset({"get_current", "get_active_types", "get_latest_versions", "find_applied", "get_acl",
                              "name"})


class Storage(DocumentStore, LogStore, JobQueue, AccessStore, SubscriptionStore, ChangeLog, Publishes):
    """A storage plugin: the six interfaces in one object (and ``publish``, where documents meet the change log). Instances are created from config, then opened once
    and closed once."""

    name: str = ""
    # The plugin's own config table, ``[<name>]`` in the config file: a dataclass whose fields are its keys, with
    # their types and defaults; its ``__post_init__`` refuses a value out of range with a ConfigurationError naming
    # the key (``<name>.<key>``). Each key can also be set by ERAPI_<NAME>_<KEY> in the environment. The plugin's
    # constructor takes the fields as keyword arguments. None: the plugin takes no settings.
    settings: ClassVar[type | None] = None
    # True when every process that opens the plugin with the same settings sees the same data (a database server),
    # so several service processes can share it and ``erapi storage check`` has a store to open; False when the
    # data lives inside the process that opened it.
    shared_across_processes: ClassVar[bool] = False

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and prepare (indexes, tables). Idempotent with respect to existing data."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. Safe to call on a plugin whose open() failed."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the backend answers; raise StorageError otherwise."""


def plugin_calls() -> frozenset[str]:
    """The methods of a storage object each of which is one call of the plugin, as metrics time them and tests
    count them: the abstract ones, but a paged read by its own name in place of its primitive's."""
    return (Storage.__abstractmethods__ - frozenset(PAGED.values())) | frozenset(PAGED)


class WritePathView(Publishes):
    """A view of a plugin for one batch (a dry run, an atomic batch): the write path's reads pass through to
    the plugin, its two writes (``claim_versions``, ``put_current``) are the subclass's, and any other call is
    refused, so that a write added to the path later cannot slip past the view unnoticed.

    The changes of what the batch publishes are kept in ``deferred_changes`` (collection, changes): the
    atomic batch records them once it is kept; a dry run drops them."""

    purpose = "a view for one batch"

    def __init__(self, storage: "Storage") -> None:
        self._storage = storage
        self.deferred_changes: list[tuple[str, list[Document]]] = []

    def __getattr__(self, name: str):
        if name not in WRITE_PATH_READS:
            raise AttributeError(f"{self.purpose} does not call storage.{name}")
        return getattr(self._storage, name)

    async def record_changes(self, collection_id: str, changes: Sequence[Document]) -> int:
        self.deferred_changes.append((collection_id, list(changes)))
        return 0


def available_plugins() -> dict[str, Any]:
    """Plugins registered through the ``erapi.storage_plugins`` entry-point group, by name."""
    return dict(_registered(tuple(sys.path)))


@functools.lru_cache(maxsize=4)
def _registered(path: tuple[str, ...]) -> dict[str, Any]:
    # reading every installed distribution's metadata takes about 0.1 s, and each Config() asks (for its plugins'
    # defaults): read once per import path, again when it changes (a distribution installed on a new path)
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def plugin_class(name: str) -> type[Storage]:
    """The class of the plugin called ``name``; ConfigurationError lists the valid names, or says why it cannot
    be loaded (a missing optional dependency)."""
    plugins = available_plugins()
    if name not in plugins:
        valid = ", ".join(sorted(plugins)) or "none installed"
        raise ConfigurationError(f"unknown storage plugin {name!r}; valid plugins: {valid}")
    try:
        return plugins[name].load()
    except ImportError as error:
        raise ConfigurationError(f"storage plugin {name!r} cannot be loaded: {error}") from error


def create_storage(name: str, settings: Mapping[str, Any]) -> Storage:
    """Instantiate the plugin called ``name`` with its settings; ConfigurationError lists the valid names."""
    return plugin_class(name)(**settings)
