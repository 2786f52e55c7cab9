"""Render /apollo/docs of a local `erapi serve` in headless Chromium with the internet cut off; save a screenshot.

    python scripts/docs_screenshot.py [--out docs-screenshot.png] [--chromium /usr/bin/chromium]

Starts the service on a free loopback port (memory storage, a throwaway local secret), asks Chromium for the
page's DOM after its scripts ran and for a screenshot, and checks that Swagger UI rendered the description:
the title and every documented path appear in the DOM. Chromium resolves no host but 127.0.0.1, so a page that
needed a CDN would come out blank. Exit status 0 when the page rendered; the PNG is written either way.
tests/test_docs_page.py runs this when Chromium is installed (Debian: apt-get install chromium).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline: only the local service resolves
    "--virtual-time-budget=20000",  # let the page's scripts finish before the DOM is dumped or the shot taken
    "--window-size=1280,900",
]
STARTUP_POLLS = 300  # x 0.1 s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_service(log_path: Path) -> Iterator[str]:
    """`erapi serve` on a free loopback port; yields its base URL and stops it afterwards."""
    port = free_port()
    environment = {**os.environ, "ERAPI_STORAGE": "memory", "ERAPI_AUTH_SECRET": "docs-screenshot-" + "s" * 32,
                   "ERAPI_CONFIG": ""}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "erapi.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(STARTUP_POLLS):
            if process.poll() is not None:
                raise RuntimeError(f"erapi serve exited with {process.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"erapi serve did not answer on {base}; see {log_path}")
        yield base
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    """Terminate ``process``; kill it when it has not ended within 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def screenshot_arguments(argv: list[str] | None, description: str, out: str) -> argparse.Namespace | None:
    """The command line of a screenshot script (``--out``, default ``out``; ``--chromium``); None, and why on
    stderr, when there is no Chromium at the path given."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    arguments = parser.parse_args(argv)
    if not Path(arguments.chromium).exists():
        print(f"no Chromium at {arguments.chromium} (Debian: apt-get install chromium)", file=sys.stderr)
        return None
    return arguments


def chromium(binary: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def render(out: Path, binary: str) -> list[str]:
    """Screenshot /apollo/docs into ``out``; return what is missing from the rendered page ([] when it rendered)."""
    with tempfile.TemporaryDirectory(prefix="erapi-docs-") as work:
        work_dir = Path(work)
        with running_service(work_dir / "erapi.log") as base:
            with urllib.request.urlopen(base + "/apollo/openapi.json") as response:
                document = json.load(response)
            url = base + "/apollo/docs"
            dom = chromium(binary, work_dir / "profile-dom", "--dump-dom", url).stdout
            chromium(binary, work_dir / "profile-shot", f"--screenshot={out.resolve()}", url)
    expected = ["swagger-ui", document["info"]["title"].split(" — ")[0], *document["paths"]]
    missing = [text for text in expected if text not in dom]
    # Swagger UI's boxes for a description it could not read or resolve
    missing += [f"no {marker!r}" for marker in ("errors-wrapper", "Resolver error", "Warning") if marker in dom]
    if not out.is_file() or out.stat().st_size == 0:
        missing.append(f"screenshot {out}")
    return missing


def main(argv: list[str] | None = None) -> int:
    arguments = screenshot_arguments(argv, __doc__.split("\n")[0], "docs-screenshot.png")
    if arguments is None:
        return 2
    missing = render(arguments.out, arguments.chromium)
    if missing:
        print(f"/apollo/docs did not render: missing {missing}", file=sys.stderr)
        return 1
    print(f"/apollo/docs rendered; screenshot in {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
