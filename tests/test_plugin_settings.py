"""A third-party storage plugin, registered as any other (an entry point of an installed distribution), has a
config table of its own, checked by the plugin, and says whether several processes share its data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from erapi.config import load_config
from erapi.errors import ConfigurationError
from storage_plugins.base import create_storage
from tests.test_cli import cli_env, erapi_command  # noqa: F401 (cli_env: a fixture)

THIRD_PARTY_PLUGIN = '''
from dataclasses import dataclass

from erapi.errors import ConfigurationError
from storage_plugins.memory import MemoryStorage


@dataclass(frozen=True)
class ShelfSettings:
    shelf: str = "top"
    capacity: int = 10

    def __post_init__(self):
        if self.capacity < 1:
            raise ConfigurationError(f"config key shelf.capacity must be at least 1, got {self.capacity}")


class ShelfStorage(MemoryStorage):
    name = "shelf"
    settings = ShelfSettings

    def __init__(self, *, shelf, capacity):
        super().__init__()
        self.shelf, self.capacity = shelf, capacity


class SharedShelfStorage(ShelfStorage):
    name = "sharedshelf"
    settings = None
    shared_across_processes = True

    def __init__(self):
        super().__init__(shelf="shared", capacity=1)
'''


@pytest.fixture
def third_party(tmp_path, monkeypatch) -> str:
    """The directory holding the plugin's module and its distribution's metadata, put on sys.path."""
    (tmp_path / "shelf_plugin.py").write_text(THIRD_PARTY_PLUGIN)
    metadata = tmp_path / "shelf_plugin-1.0.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: shelf-plugin\nVersion: 1.0\n")
    (metadata / "entry_points.txt").write_text("[erapi.storage_plugins]\nshelf = shelf_plugin:ShelfStorage\n"
                                               "sharedshelf = shelf_plugin:SharedShelfStorage\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield str(tmp_path)
    sys.modules.pop("shelf_plugin", None)


def config_file(tmp_path, text: str):
    path = tmp_path / "erapi.toml"
    path.write_text(text)
    return path


def test_a_third_party_plugin_reads_its_own_table(third_party, tmp_path):
    config = load_config(config_file(tmp_path, 'storage = "shelf"\n[shelf]\ncapacity = 3\n'), {})
    assert config.storage_settings() == {"shelf": "top", "capacity": 3}
    plugin = create_storage(config.storage, config.storage_settings())
    assert (plugin.shelf, plugin.capacity) == ("top", 3)


def test_each_key_of_a_plugins_table_has_an_environment_override(third_party, tmp_path):
    path = config_file(tmp_path, 'storage = "shelf"\n[shelf]\ncapacity = 3\n')
    config = load_config(path, {"ERAPI_SHELF_CAPACITY": "7", "ERAPI_SHELF_SHELF": "bottom"})
    assert config.storage_settings() == {"shelf": "bottom", "capacity": 7}


@pytest.mark.parametrize("table, message", [
    ("capacty = 3", "unknown config key shelf.capacty; valid keys: shelf, capacity"),
    ('capacity = "many"', "config key shelf.capacity must be a int, got 'many'"),
    ("capacity = 0", "config key shelf.capacity must be at least 1, got 0"),
])
def test_a_plugins_table_is_checked_by_the_plugin_naming_the_key(third_party, tmp_path, table, message):
    with pytest.raises(ConfigurationError) as refused:
        load_config(config_file(tmp_path, f'storage = "memory"\n[shelf]\n{table}\n'), {})
    assert str(refused.value) == message


def test_a_plugin_without_settings_has_no_table(third_party, tmp_path):
    with pytest.raises(ConfigurationError, match="^unknown config key sharedshelf; valid keys: storage, server"):
        load_config(config_file(tmp_path, "[sharedshelf]\ncapacity = 3\n"), {})


@pytest.mark.parametrize("plugin, shared", [("shelf", False), ("sharedshelf", True)])
def test_erapi_storage_check_opens_only_a_plugin_shared_across_processes(third_party, cli_env, tmp_path, plugin,
                                                                        shared):
    environment = {**cli_env, "ERAPI_STORAGE": plugin, "PYTHONPATH": f"{third_party}:{cli_env['PYTHONPATH']}"}
    done = subprocess.run([*erapi_command(), "storage", "check"], env=environment, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    refusal = f"the {plugin} plugin keeps its data inside the serving process"
    assert (done.returncode, refusal in done.stderr) == ((0, False) if shared else (2, True)), done.stderr
