"""Per-item rules as named, ordered checks, and the one loop that runs them over a batch.

A rule is one function: given the batch and an item's index, the item's failure message, or None when the
item passes. The rules of a kind run in the order of their list; an item that fails one is not checked further,
so its message is that of the first rule it breaks, and only the first occurrence of each id is checked (a
repeated id fails as such). A rule that needs something from storage or the ACL names a fetch: it runs once
per batch, over the items still passing, just before the rule's own pass, so a batch costs a constant number
of calls whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Sequence, TypeVar

from erapi.kinds import Kind
from erapi.timestamps import utc_timestamp
from erapi.writes.context import BatchResult, WriteContext
from erapi.writes.versioning import Build, batch_result, first_occurrences, unless_unchanged, upsert_versioned


@dataclass
class Batch:
    """One batch under check: its items (a rule may replace one by its completed copy) and the failures so far."""

    ctx: WriteContext
    items: list[dict[str, Any]]
    failures: dict[int, str] = field(default_factory=dict)  # by index in the request
    unique: list[int] = field(default_factory=list)  # the first occurrence of each id: the items checked

    def passing(self) -> list[int]:
        return [index for index in self.unique if index not in self.failures]


B = TypeVar("B", bound=Batch)


@dataclass(frozen=True)
class Rule(Generic[B]):
    name: str  # what the rule asks of an item, for a reader of the list
    check: Callable[[B, int], str | None]  # the failure message of the item at this index, or None
    fetch: Callable[[B, list[int]], Awaitable[None]] | None = None  # gets what ``check`` needs, for these indexes


async def apply_rules(batch: B, rules: Sequence[Rule[B]]) -> None:
    """Check every item against every rule, in order, recording each item's first failure.

    The rules run in stages, each starting at a rule that fetches: an item is checked against every rule of a stage
    in one pass (the same outcome as one pass per rule, without walking the batch once per rule)."""
    for stage in _stages(rules):
        passing = batch.passing()
        if stage[0].fetch is not None:
            await stage[0].fetch(batch, passing)
        checks = [rule.check for rule in stage]
        for index in passing:
            for check in checks:
                problem = check(batch, index)
                if problem:
                    batch.failures[index] = problem
                    break


def _stages(rules: Sequence[Rule[B]]) -> list[list[Rule[B]]]:
    stages: list[list[Rule[B]]] = []
    for rule in rules:
        if rule.fetch is not None or not stages:
            stages.append([])
        stages[-1].append(rule)
    return stages


async def upsert_checked(batch: B, kind: Kind, rules: Sequence[Rule[B]], build: Build,
                         success_message: str) -> BatchResult:
    """Check the batch's items, write each that passes as the next version of its id (``build`` makes the
    document from the item, the current version and the time), and answer for every item in request order."""
    batch.unique = first_occurrences(batch.items, kind, batch.failures)
    await apply_rules(batch, rules)
    candidates = {batch.items[index]["id"]: batch.items[index] for index in batch.passing()}
    now = utc_timestamp()
    outcomes = await upsert_versioned(batch.ctx, kind, candidates, unless_unchanged(build, now))
    return batch_result(batch.ctx, kind, batch.items, batch.failures, outcomes, success_message)
