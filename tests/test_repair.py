"""``erapi storage check`` and ``erapi storage repair``: what a crash between claim and publish leaves, found and
rolled forward, on every plugin (through ``erapi.repair``) and as the command an operator runs (on MongoDB)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from erapi.repair import check_store
from storage_plugins.base import create_storage
from tests.storage_fixtures import MONGODB_BACKENDS
from tests.storage_contract.helpers import doc, store


async def leave_a_crash_behind(storage) -> None:
    """A relationship claimed and never published, an entity whose update was claimed and never published, a
    relationship whose history has a gap (no writer makes one: it is reported, not repaired), and a fine one."""
    await store(storage, "relationships", "c1", doc("relationships", "fine", 1))
    await storage.claim_versions("relationships", "c1", [doc("relationships", "new", 1)])
    await store(storage, "entities", "c2", doc("entities", "ahu", 1))
    await storage.claim_versions("entities", "c2", [doc("entities", "ahu", 2)])
    await store(storage, "relationships", "c1", doc("relationships", "gap", 2))


async def test_check_reports_and_changes_nothing_then_repair_rolls_forward(storage):
    await leave_a_crash_behind(storage)
    out = io.StringIO()
    report = await check_store(storage, repair=False, out=out)
    assert (report.checked, report.problems, report.rolled_forward, report.left) == (4, 3, 0, 3)
    assert sorted(out.getvalue().splitlines()) == [
        "entities c2/ahu: version 2 is claimed in the history, the current view shows version 1",
        "relationships c1/gap: the history lacks 1 of versions 1..2",
        "relationships c1/new: version 1 is claimed in the history, the current view shows nothing",
    ]
    assert await storage.get_current("relationships", "c1", ["new"]) == {}

    out = io.StringIO()
    report = await check_store(storage, repair=True, out=out)
    assert (report.checked, report.problems, report.rolled_forward, report.left) == (4, 3, 2, 1)
    assert "relationships c1/new: version 1 is claimed in the history, the current view shows nothing: rolled " \
           "forward to version 1" in out.getvalue().splitlines()
    assert await storage.get_current("relationships", "c1", ["new"]) == {"new": doc("relationships", "new", 1)}
    assert await storage.get_current("entities", "c2", ["ahu"]) == {"ahu": doc("entities", "ahu", 2)}

    report = await check_store(storage, repair=False, out=io.StringIO())
    assert (report.problems, report.left) == (1, 1)  # the gap stays: nothing can fill it


def erapi_storage(action: str, config_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "erapi.cli", "storage", action, "--config", str(config_path)],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.mongodb
@pytest.mark.slow
@pytest.mark.parametrize("storage_backend", MONGODB_BACKENDS, indirect=True)
async def test_the_commands_on_mongodb_say_what_they_found_and_did(storage_name, storage_settings, tmp_path):
    storage = create_storage(storage_name, storage_settings)
    await storage.open()
    try:
        await storage.claim_versions("relationships", "c1", [doc("relationships", "new", 1)])
    finally:
        await storage.close()
    config = tmp_path / "erapi.toml"
    config.write_text(f'storage = "mongodb"\n[mongodb]\nuri = "{storage_settings["uri"]}"\n'
                      f'database = "{storage_settings["database"]}"\n')
    unpublished = "relationships c1/new: version 1 is claimed in the history, the current view shows nothing"

    checked = erapi_storage("check", config)
    assert (checked.returncode, checked.stdout.splitlines()) == (
        1, [unpublished, "checked 1 ids: 1 with problems, 1 left"]), checked.stderr
    repaired = erapi_storage("repair", config)
    assert (repaired.returncode, repaired.stdout.splitlines()) == (
        0, [f"{unpublished}: rolled forward to version 1", "checked 1 ids: 1 with problems, 1 rolled forward, 0 left"])
    again = erapi_storage("check", config)
    assert (again.returncode, again.stdout.splitlines()) == (0, ["checked 1 ids: 0 with problems, 0 left"])


def test_the_commands_refuse_the_memory_plugin(tmp_path):
    config = tmp_path / "erapi.toml"
    config.write_text('storage = "memory"\n')
    checked = erapi_storage("check", config)
    assert checked.returncode == 2
    assert "the memory plugin keeps its data inside the serving process" in checked.stderr
