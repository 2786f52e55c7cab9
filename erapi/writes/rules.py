"""Per-item rules as named, ordered checks, and the one loop that runs them over a batch.

A rule is one function: given the batch and the indexes of the items still passing, the failure message of
each item among them that breaks the rule (by index). The rules of a kind run in the order of their list; an
item that fails one is not checked further, so its message is that of the first rule it breaks, and only the
first occurrence of each id is checked (a repeated id fails as such). A rule sees the whole batch at once, so
that what most items share (a type, a collection) is checked once (``each`` makes a rule of a function of one
item, for a rule with nothing to share). A rule that needs something from storage or the ACL names a fetch: it
runs once per batch, over the items still passing, just before the rule, so a batch costs a constant number
of calls whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Iterable, Sequence, TypeVar

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
        failures = self.failures
        return [index for index in self.unique if index not in failures] if failures else self.unique


B = TypeVar("B", bound=Batch)
Failures = Iterable[tuple[int, str]]  # (index, message) of each item that breaks a rule


@dataclass(frozen=True)
class Rule(Generic[B]):
    name: str  # what the rule asks of an item, for a reader of the list
    check: Callable[[B, list[int]], Failures]  # the items among these indexes that break it, with their messages
    fetch: Callable[[B, list[int]], Awaitable[None]] | None = None  # gets what ``check`` needs, for these indexes


def each(check: Callable[[B, int], str | None]) -> Callable[[B, list[int]], Failures]:
    """A rule's check from a function of one item: its failure message, or None when it passes."""

    def check_each(batch: B, indexes: list[int]) -> Failures:
        return [(index, problem) for index in indexes if (problem := check(batch, index))]

    check_each.__name__ = check.__name__
    return check_each


async def apply_rules(batch: B, rules: Sequence[Rule[B]]) -> None:
    """Check every item against every rule, in order, recording each item's first failure."""
    for rule in rules:
        passing = batch.passing()
        if not passing:
            return
        if rule.fetch is not None:
            await rule.fetch(batch, passing)
        batch.failures.update(rule.check(batch, passing))


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
