"""``erapi storage check`` and ``erapi storage repair``: find, and roll forward, versions the history holds but
the current view does not show (docs/OPERATIONS.md, *Checking and repairing a store*)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from erapi.config import Config
from storage_plugins.base import KINDS, Storage, VersionProblem, create_storage


@dataclass
class Report:
    checked: int = 0  # ids of both kinds
    problems: int = 0  # ids found with a problem
    rolled_forward: int = 0  # unpublished versions published by the repair
    left: int = 0  # ids with a problem the repair cannot fix (or, for a check, every problem found)

    def summary(self, repair: bool) -> str:
        done = f", {self.rolled_forward} rolled forward" if repair else ""
        return f"checked {self.checked} ids: {self.problems} with problems{done}, {self.left} left"


async def run(config: Config, repair: bool, out: TextIO) -> int:
    """Check (and with ``repair``, fix) the configured store, one line per problem and a summary on ``out``.
    Exit status: 0 when nothing is (left) wrong, 1 otherwise."""
    storage = create_storage(config.storage, config.storage_settings())
    await storage.open()
    try:
        report = await check_store(storage, repair, out)
    finally:
        await storage.close()
    print(report.summary(repair), file=out, flush=True)
    return 1 if report.left else 0


async def check_store(storage: Storage, repair: bool, out: TextIO) -> Report:
    report = Report()
    for kind in KINDS:
        async for checked, problems in storage.audit_versions(kind):
            report.checked += checked
            report.problems += len(problems)
            fixed = await _roll_forward(storage, kind, problems) if repair else set()
            for problem in problems:
                rolled = (problem.collection_id, problem.id) in fixed
                report.rolled_forward += rolled
                report.left += not rolled or bool(problem.missing)
                print(problem.describe() + (f": rolled forward to version {problem.newest}" if rolled else ""),
                      file=out, flush=True)
    return report


async def _roll_forward(storage: Storage, kind: str, problems: list[VersionProblem]) -> set[tuple[str, str]]:
    """Publish the claimed, unpublished versions among ``problems``: one roll-forward per collection."""
    by_collection: dict[str, list[str]] = {}
    for problem in problems:
        if problem.unpublished:
            by_collection.setdefault(problem.collection_id, []).append(problem.id)
    for collection_id, ids in by_collection.items():
        await storage.roll_forward(kind, collection_id, ids)
    return {(collection_id, document_id) for collection_id, ids in by_collection.items() for document_id in ids}
