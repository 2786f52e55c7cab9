"""The data the package ships: the JSON schemas, the type catalog and the example configurations.

They live at the top of the repository (``schemas/``, ``config/``); ``erapi/schemas`` and
``erapi/config_examples`` link to them, and the wheel carries them as package data of erapi (setup.py). Found
through importlib.resources, so a checkout and an installed wheel read them the same way.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CONFIG_EXAMPLES = ("default", "mongodb")  # config_examples/<name>.toml


def package_dir(name: str) -> Path:
    """The directory ``name`` of the installed erapi package.

    pip installs a wheel unpacked, so importlib.resources hands out a file-system path: the catalog and schema
    loaders list these directories, and ``erapi catalog build`` writes into the catalog's.
    """
    directory = files("erapi") / name
    if not isinstance(directory, Path):
        raise RuntimeError(f"erapi's data directory {name!r} is not on the file system; install erapi unpacked")
    return directory


def config_example(name: str) -> str:
    """The text of the example configuration ``name`` (one of CONFIG_EXAMPLES)."""
    return (package_dir("config_examples") / f"{name}.toml").read_text(encoding="utf-8")
