"""/apollo/explorer in headless Chromium, offline (scripts/explorer_screenshot.py), when Chromium is installed:
a token pasted, an entity searched and opened, a neighbour clicked to expand it; the nodes drawn are the API's."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "explorer_screenshot.py"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def load_script():
    spec = importlib.util.spec_from_file_location("explorer_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="needs Chromium (Debian: apt-get install chromium) to drive the explorer page")
def test_the_explorer_draws_what_the_api_answers_and_expands_a_clicked_node(tmp_path):
    shot = tmp_path / "explorer.png"
    seen = load_script().render(shot, CHROMIUM)
    assert seen["opened"] == seen["api_opened"] == ["plant/ahu1", "plant/vav1", "plant/vav2"]
    assert seen["expanded"] == seen["api_expanded"] == ["plant/ahu1", "plant/vav1", "plant/vav2", "points/pt1"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
