"""A FerretDB process of a test's own, for tests that stop and restart the server or need one to themselves.

The binary is the one ``.ci/ferretdb.sh build`` makes: ``ERAPI_FERRETDB_BIN``, else its default location.
Tests get it through the ``ferretdb`` fixture of ``tests.storage_fixtures``, which skips with a reason when
the binary is absent and stops the process at teardown.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

VERSION = "v1.24.2"
DEFAULT_BINARY = Path.home() / ".cache" / "erapi" / f"ferretdb-{VERSION}" / "ferretdb"
MISSING_REASON = (
    "FerretDB tests need the FerretDB binary (ERAPI_FERRETDB_BIN, default {path}); "
    "build it with `.ci/ferretdb.sh build`"
)


def binary() -> Path:
    return Path(os.environ.get("ERAPI_FERRETDB_BIN") or DEFAULT_BINARY)


def binary_missing_reason() -> str | None:
    """None when the binary is there; otherwise the reason a test needing it is skipped."""
    path = binary()
    if path.is_file() and os.access(path, os.X_OK):
        return None
    return MISSING_REASON.format(path=path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FerretDB:
    """One FerretDB process on 127.0.0.1 with its SQLite files in ``directory``; stop() may be followed by start().

    The port and the files outlive a stop, so a restarted server is the same database at the same URI.
    """

    def __init__(self, directory: Path, port: int | None = None, executable: Path | None = None) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.executable = executable or binary()
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.directory / "ferretdb.log"

    def start(self, timeout: float = 30.0) -> None:
        if self.process is not None:
            raise RuntimeError("FerretDB is already running")
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.executable),
                    "--handler=sqlite",
                    # no fsync per commit: a test server needs no durability across a machine crash
                    f"--sqlite-url=file:{self.directory / 'data'}/?_pragma=synchronous(OFF)",
                    f"--state-dir={self.directory}",
                    f"--listen-addr=127.0.0.1:{self.port}",
                    "--debug-addr=-",
                    "--telemetry=disable",
                    "--log-level=ERROR",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"FerretDB exited with {code} at start: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"FerretDB did not answer on port {self.port} within {timeout} s")
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> "FerretDB":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
