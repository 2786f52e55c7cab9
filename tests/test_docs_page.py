"""/apollo/docs renders offline in headless Chromium (scripts/docs_screenshot.py), when Chromium is installed."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "docs_screenshot.py"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def load_script():
    spec = importlib.util.spec_from_file_location("docs_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="needs Chromium (Debian: apt-get install chromium) to render the docs page")
def test_docs_page_renders_every_path_with_the_internet_cut_off(tmp_path):
    script = load_script()
    shot = tmp_path / "docs.png"
    missing = script.render(shot, CHROMIUM)
    assert missing == [], f"/apollo/docs did not render: {missing}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
