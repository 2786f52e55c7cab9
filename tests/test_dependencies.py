"""Dependency floors: setup.py requires the versions with known advisories fixed, and they are what is installed.

aiohttp 3.14.3 and PyJWT 2.13 carry the fixes for the advisories known when the floors were set
(docs/SECURITY.md); operators check the whole environment with pip-audit.
"""

from __future__ import annotations

import ast
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

SETUP = Path(__file__).resolve().parent.parent / "setup.py"
FLOORS = {"aiohttp": "3.14.3", "pyjwt": "2.13"}


def install_requires() -> dict[str, Requirement]:
    """The install_requires of setup.py, read without running it."""
    for node in ast.walk(ast.parse(SETUP.read_text())):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            requirements = [Requirement(ast.literal_eval(element)) for element in node.value.elts]
            return {requirement.name.lower(): requirement for requirement in requirements}
    raise AssertionError("setup.py has no install_requires")


@pytest.mark.parametrize("name, floor", sorted(FLOORS.items()))
def test_setup_py_requires_at_least_the_fixed_version(name, floor):
    requirement = install_requires()[name]
    minimums = [Version(spec.version) for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
    assert minimums and min(minimums) >= Version(floor), f"{requirement} allows versions below {floor}"
    assert not requirement.specifier.contains(str(Version(floor).release[0]) + ".0"), requirement


@pytest.mark.parametrize("name, floor", sorted(FLOORS.items()))
def test_the_installed_version_is_at_or_above_the_floor(name, floor):
    assert Version(version(name)) >= Version(floor)


def test_every_installed_requirement_satisfies_setup_py():
    for name, requirement in install_requires().items():
        installed = version(name)
        assert requirement.specifier.contains(installed, prereleases=True), f"{name} {installed} violates {requirement}"
