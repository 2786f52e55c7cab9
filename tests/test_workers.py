"""``erapi serve --workers N``: N processes on one port (gunicorn's arbiter) sharing one storage.

Real processes and real HTTP, as in tests/test_cli.py. The memory plugin keeps its data inside one process,
so N > 1 is refused with it; the tests that run workers use the mongodb plugin (``ERAPI_TEST_MONGODB_URI``,
skipped without it). Which worker answered is told by the ``X-Erapi-Worker`` header (its pid), which the
service sets only when it runs more than one worker. No timing is asserted: every wait is bounded only so
that a broken build fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.test_cli import erapi_command, free_port, mint, post_json

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
WORKERS_LINE = re.compile(r"erapi listening on http://127\.0\.0\.1:(\d+) \(.*, (\d+) workers: pids ([\d, ]+)\)")

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy of the host


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ERAPI_")}
    home = tmp_path / "home"
    home.mkdir()
    repository = str(Path(__file__).resolve().parent.parent)
    environment.update(HOME=str(home), PYTHONPATH=os.pathsep.join(filter(None, [repository,
                                                                                 environment.get("PYTHONPATH")])))
    return environment


def refused(env: dict, cwd: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Run ``erapi serve`` that must stop at start-up; killed if it does not within the bound."""
    done = subprocess.run([*erapi_command(), "serve", *arguments], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=START_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    assert "listening" not in done.stderr
    assert "Traceback" not in done.stderr
    return done


# ---- refused at start-up --------------------------------------------------------------------------------------------


def test_memory_plugin_refuses_two_workers_with_a_clear_message(env, tmp_path):
    done = refused(env, tmp_path, "--workers", "2", "--port", str(free_port()))
    assert done.returncode == 2
    assert "configuration error: --workers 2 needs a storage shared by the worker processes" in done.stderr
    assert "memory plugin keeps its data inside one process" in done.stderr


def test_server_workers_in_the_config_file_is_refused_too_with_memory(env, tmp_path):
    config = tmp_path / "erapi.toml"
    config.write_text('storage = "memory"\n[server]\nworkers = 3\n')
    done = refused(env, tmp_path, "--config", str(config), "--port", str(free_port()))
    assert done.returncode == 2
    assert "--workers 3 needs a storage shared by the worker processes" in done.stderr


def test_workers_must_be_positive(env, tmp_path):
    done = refused(env, tmp_path, "--workers", "0", "--port", str(free_port()))
    assert done.returncode == 2
    assert "--workers (server.workers) must be positive, got 0" in done.stderr


def test_jwks_workers_need_a_shared_paging_secret(env, tmp_path):
    config = tmp_path / "erapi.toml"
    config.write_text('storage = "mongodb"\n[auth]\nmode = "jwks"\njwks_url = "http://127.0.0.1:9/jwks"\n')
    done = refused(env, tmp_path, "--config", str(config), "--workers", "2", "--port", str(free_port()))
    assert done.returncode == 2
    assert "needs server.paging_secret" in done.stderr


def test_workers_refuse_a_port_another_server_listens_on(env, tmp_path):
    # with SO_REUSEPORT the workers could otherwise join the other server's port and share its traffic
    config = tmp_path / "erapi.toml"
    config.write_text('storage = "mongodb"\n')
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = refused(env, tmp_path, "--config", str(config), "--workers", "2", "--port", str(port))
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_one_worker_is_the_usual_single_process(env, tmp_path):
    port = free_port()
    stderr = tmp_path / "serve.stderr"
    with open(stderr, "wb") as err:
        process = subprocess.Popen([*erapi_command(), "serve", "--workers", "1", "--port", str(port)], env=env,
                                   cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: f"erapi listening on http://127.0.0.1:{port} (storage: memory" in stderr.read_text(),
                 process, stderr)
        status, headers = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and "X-Erapi-Worker" not in headers
        process.send_signal(signal.SIGTERM)
        assert process.wait(STOP_TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---- two workers on the mongodb plugin ------------------------------------------------------------------------------


class Workers:
    """``erapi serve --workers 2`` on the mongodb plugin, a database of its own (dropped at teardown)."""

    def __init__(self, env: dict, directory: Path, uri: str) -> None:
        self.env = env
        self.directory = directory
        self.database = f"erapi_test_workers_{uuid.uuid4().hex[:12]}"
        self.uri = uri
        self.config = directory / "erapi.toml"
        self.config.write_text(f'storage = "mongodb"\n[mongodb]\nuri = "{uri}"\ndatabase = "{self.database}"\n')
        self.stderr = directory / "serve.stderr"
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.pids: list[int] = []

    def start(self, count: int = 2) -> None:
        with open(self.stderr, "wb") as err, open(self.directory / "serve.stdout", "wb") as out:
            self.process = subprocess.Popen(
                [*erapi_command(), "serve", "--config", str(self.config), "--workers", str(count), "--port", "0"],
                env=self.env, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        wait_for(lambda: WORKERS_LINE.search(self.stderr.read_text()), self.process, self.stderr)
        port, workers, pids = WORKERS_LINE.search(self.stderr.read_text()).groups()
        self.port = int(port)
        self.pids = [int(pid) for pid in pids.split(", ")]
        assert int(workers) == count == len(set(self.pids))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.pids:  # workers stop once their parent is gone; never leave one behind
            deadline = time.monotonic() + STOP_TIMEOUT
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        drop_database(self.uri, self.database)


@pytest.fixture
def workers(env, tmp_path, mongodb_uri):
    started = Workers(env, tmp_path, mongodb_uri)
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.mongodb
def test_two_workers_answer_on_one_port_share_one_storage_and_stop_on_sigterm(workers, env, tmp_path):
    workers.start(2)
    assert workers.process.pid not in workers.pids
    for pid in workers.pids:
        assert parent_of(pid) == workers.process.pid

    # each new connection goes to one of the two sockets: both answer within a few requests
    seen = set()
    for _ in range(200):
        status, headers = get(f"{workers.base}/healthz")
        assert status == 200
        seen.add(int(headers["X-Erapi-Worker"]))
        if seen == set(workers.pids):
            break
    assert seen == set(workers.pids)

    # one storage: what one worker writes, every worker reads
    token = mint(env, tmp_path)
    status, headers, body = post_json(f"{workers.base}/apollo/collections", token, {"collectionId": "shared"})
    assert status == 201, body
    writer = int(headers["X-Erapi-Worker"])
    readers = set()
    for _ in range(200):
        status, headers = get(f"{workers.base}/apollo/collections/shared", token)
        assert status == 200
        readers.add(int(headers["X-Erapi-Worker"]))
        if writer in readers and len(readers) == 2:
            break
    assert readers == set(workers.pids)

    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(STOP_TIMEOUT) == 0, workers.stderr.read_text()[-3000:]
    assert not any(alive(pid) for pid in workers.pids)
    assert "Traceback" not in workers.stderr.read_text()


@pytest.mark.mongodb
def test_metrics_count_the_requests_of_every_worker_whichever_answers_the_scrape(workers, env, tmp_path):
    metrics_parent = tmp_path / "tmp"  # where the service makes its multiprocess metrics directory
    metrics_parent.mkdir()
    env["TMPDIR"] = str(metrics_parent)
    workers.start(2)
    answered: dict[int, int] = {}
    for _ in range(200):
        status, headers = get(f"{workers.base}/healthz")
        assert status == 200
        pid = int(headers["X-Erapi-Worker"])
        answered[pid] = answered.get(pid, 0) + 1
        if len(answered) == 2:
            break
    assert set(answered) == set(workers.pids)

    # each scrape reaches either worker; both sum the samples of both (a worker records a request right after
    # answering it, so a scrape on the other one may come a moment early: scrape again)
    total, reported = sum(answered.values()), {}
    for _ in range(200):
        pid, counts = scrape_requests(workers.base)
        reported[pid] = counts.get("/healthz")
        if set(reported) == set(workers.pids) and set(reported.values()) == {total}:
            break
    assert reported == {pid: total for pid in workers.pids}
    assert list(metrics_parent.iterdir())  # each worker's samples in files there, while the service runs

    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(STOP_TIMEOUT) == 0, workers.stderr.read_text()[-3000:]
    assert list(metrics_parent.iterdir()) == []  # removed at exit


@pytest.mark.mongodb
def test_workers_stop_by_themselves_when_the_parent_is_killed(workers):
    workers.start(2)
    workers.process.kill()
    workers.process.wait()
    for pid in workers.pids:
        deadline = time.monotonic() + STOP_TIMEOUT
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), f"worker {pid} still runs after its parent was killed"


@pytest.mark.mongodb
def test_a_worker_killed_is_replaced_while_the_other_keeps_answering(workers):
    workers.start(2)
    victim, survivor = workers.pids
    os.kill(victim, signal.SIGKILL)

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        current = children_of(workers.process.pid)
        if victim not in current and len(current) == 2:
            break
        assert time.monotonic() < deadline, f"no replacement for worker {victim}: {current}"
        time.sleep(0.1)
    replacement = (current - {survivor}).pop()
    workers.pids.append(replacement)  # stopped at teardown like the others
    assert survivor in current

    seen = set()
    for _ in range(200):
        status, headers = get(f"{workers.base}/healthz")
        assert status == 200
        seen.add(int(headers["X-Erapi-Worker"]))
        if seen == current:
            break
    assert seen == current


# ---- helpers ----------------------------------------------------------------------------------------------------------


def wait_for(condition, process: subprocess.Popen, stderr: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"erapi serve exited with {process.returncode}: {stderr.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"erapi serve did not say it was listening: {stderr.read_text()[-3000:]}")
        time.sleep(0.05)


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    """One GET on a new connection (so that the kernel picks a worker for it)."""
    headers = {"Authorization": f"Bearer {token}", "ercollectionid": "shared"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with _opener.open(request, timeout=15) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers)


def scrape_requests(base: str) -> tuple[int, dict[str, float]]:
    """Which worker answered /metrics, and its count of 200 answers by route."""
    with _opener.open(f"{base}/metrics", timeout=15) as response:
        families = text_string_to_metric_families(response.read().decode())
        return int(response.headers["X-Erapi-Worker"]), {
            sample.labels["route"]: sample.value for family in families for sample in family.samples
            if sample.name == "erapi_http_requests_total" and sample.labels["status"] == "200"}


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def children_of(pid: int) -> set[int]:
    """The live processes whose parent is ``pid``."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                if parent_of(int(entry.name)) == pid and alive(int(entry.name)):
                    children.add(int(entry.name))
    return children


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def drop_database(uri: str, database: str) -> None:
    from pymongo import MongoClient

    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(database)
