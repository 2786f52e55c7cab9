"""Processes and probes the benchmarks share: servers as subprocesses, a tiny HTTP client, wrk, RSS.

Everything talks to 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from bench import workload

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_body.lua"
WRK_GET_SCRIPT = Path(__file__).resolve().parent / "wrk_get.lua"
HOST = "127.0.0.1"


class BenchError(Exception):
    """The benchmark cannot go on (a server did not start, set-up failed); the message says why."""


def exit_status(run: Callable[[], object]) -> int:
    """A bench command's exit status: 0 when ``run()`` finished, 1 (and why, printed) when it raised BenchError."""
    try:
        run()
    except BenchError as error:
        print(f"bench failed: {error}")
        return 1
    return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


# ---- HTTP ---------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


def http(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 60.0) -> Reply:
    """One request on a fresh connection; ``body`` is bytes as is, anything else is sent as JSON."""
    all_headers = dict(headers or {})
    if body is not None and not isinstance(body, bytes):
        body = orjson.dumps(body)
        all_headers.setdefault("Content-Type", "application/json")
    connection = HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return Reply(response.status, response.read(), {k.lower(): v for k, v in response.getheaders()})
    finally:
        connection.close()


def wait_healthy(port: int, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"server exited with {process.returncode} at start; its output:\n{tail(log)}")
        with contextlib.suppress(OSError):
            if http(port, "GET", "/healthz", timeout=2).status == 200:
                return
        time.sleep(0.1)
    raise BenchError(f"server did not answer /healthz on port {port} within {timeout:.0f} s:\n{tail(log)}")


def drop_databases(uri: str, names: list[str]) -> None:
    """Drop a run's scratch databases on the MongoDB server at ``uri``."""
    from pymongo import MongoClient

    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        for name in names:
            client.drop_database(name)


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no output)"


# ---- processes ----------------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 once it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def children_of(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def tree_rss_bytes(pid: int) -> int:
    """RSS of a process and its descendants (a server with worker processes)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        total += rss_bytes(current)
        pending.extend(children_of(current))
    return total


@dataclass(frozen=True)
class Cpus:
    server: set[int] | None  # the server under test (one process)
    load: set[int] | None  # the load generator and this orchestrator

    def describe(self) -> str:
        if not self.server:
            return "not pinned"
        return f"server on CPU {_cpu_list(self.server)}, load generator on CPU {_cpu_list(self.load)}"


def _cpu_list(cpus: set[int] | None) -> str:
    return ",".join(map(str, sorted(cpus or ())))


def split_cpus(pin: bool) -> Cpus:
    """One core for the server, the rest for wrk: steadier numbers than letting them share both cores."""
    available = sorted(os.sched_getaffinity(0))
    if not pin or len(available) < 2:
        return Cpus(None, None)
    return Cpus({available[0]}, set(available[1:]))


TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy, and those stolen by the hypervisor, since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / TICKS, steal / TICKS


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live descendants (0 once gone)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
        pending.extend(children_of(current))
    return total


class CpuWatch:
    """What else used the machine during a window: busy CPU not spent by the server, wrk or this process."""

    def __init__(self, server_pid: int | None):
        self.server_pid = server_pid
        self._start = self._read()

    def _read(self) -> tuple[float, float, float, float, float]:
        busy, steal = machine_cpu_seconds()
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        server = process_cpu_seconds(self.server_pid) if self.server_pid else 0.0
        return time.monotonic(), busy, steal, ours, server

    def stop(self) -> tuple[float, float, float]:
        """Server cores, other processes' cores and stolen cores, each averaged over the window."""
        end = self._read()
        elapsed = max(end[0] - self._start[0], 1e-9)
        busy, steal, ours, server = (end[i] - self._start[i] for i in range(1, 5))
        return server / elapsed, max(0.0, busy - ours - server) / elapsed, steal / elapsed


def pin(pid: int, cpus: set[int] | None) -> None:
    if cpus:
        for each in [pid, *children_of(pid)]:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(each, cpus)


@dataclass
class Server:
    """A server subprocess with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    name: str
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return tree_rss_bytes(self.pid)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_server(name: str, command: list[str], port: int, env: dict[str, str], workdir: Path,
                 cpus: set[int] | None = None, timeout: float = 60.0) -> Server:
    log = workdir / f"{name}.log"
    output = log.open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output,
                               stderr=subprocess.STDOUT, start_new_session=True)
    output.close()
    server = Server(name, port, process, log)
    try:
        pin(process.pid, cpus)
        wait_healthy(port, process, timeout, log)
        pin(process.pid, cpus)  # again: worker processes exist only once the server is up
    except BaseException:
        server.stop()
        raise
    return server


# ---- the service --------------------------------------------------------------------------------------------


def service_environment(home: Path) -> dict[str, str]:
    """The parent's environment without any ERAPI_* setting, a throwaway HOME and a fresh local secret."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ERAPI_")}
    env.update(HOME=str(home), ERAPI_AUTH_SECRET=secrets.token_urlsafe(48), ERAPI_LOG_LEVEL="INFO")
    return env


def write_config(path: Path, storage: str, mongodb_uri: str = "", database: str = "") -> Path:
    lines = [f'storage = "{storage}"']
    if storage == "mongodb":
        lines += ["[mongodb]", f"uri = {orjson.dumps(mongodb_uri).decode()}", f'database = "{database}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def erapi_command() -> list[str]:
    return [sys.executable, "-m", "erapi.cli"]


def mint_token(config: Path, env: dict[str, str]) -> str:
    result = subprocess.run([*erapi_command(), "token", "--config", str(config), "--subject", "bench",
                             "--ttl", "14400"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise BenchError(f"erapi token failed: {result.stderr.strip()}")
    return result.stdout.strip()


def serve_supports_workers(env: dict[str, str]) -> bool:
    result = subprocess.run([*erapi_command(), "serve", "--help"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    return "--workers" in result.stdout


def write_template(workdir: Path) -> Path:
    path = workdir / "relationships-template.json"
    path.write_text(workload.relationship_template())
    return path


def client_headers(token: str, collection: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", **extra}
    if collection:
        headers["ercollectionid"] = collection
    return headers


def set_up_building(port: int, token: str, collection: str = workload.COLLECTION) -> None:
    """Register the collection and store its 200 AHUs: what every relationship of the workload references."""
    reply = http(port, "POST", "/apollo/collections", {"collectionId": collection}, client_headers(token))
    if reply.status != 201:
        raise BenchError(f"registering {collection} answered {reply.status}: {reply.body[:300]!r}")
    for batch in workload.entity_batches():
        reply = http(port, "POST", "/apollo/er/entities", batch, client_headers(token, collection))
        if reply.status != 207 or f"Upserted:  {len(batch)}.".encode() not in reply.body:
            raise BenchError(f"storing the AHUs answered {reply.status}: {reply.body[:300]!r}")


def probe(service: "Service", template: str, collection: str = workload.COLLECTION) -> Reply:
    """One batch of new relationships (phase ``ff``): it must be a 207 with every item upserted."""
    body = workload.render(template, 0, workload.tag(workload.PHASE_PROBE))
    reply = http(service.port, "POST", "/apollo/er/relationships", body,
                 service.headers(collection, **{"Content-Type": "application/json", "async": "false"}))
    if reply.status != 207 or f"Upserted:  {workload.ITEMS_PER_REQUEST}.".encode() not in reply.body:
        raise BenchError(f"a batch of new relationships answered {reply.status}: {reply.body[:500]!r}")
    return reply


class ServiceLog:
    """Reads the operators' log the service writes (one JSON line per transaction) as it grows.

    Each ``transaction`` line counts a request and its items, so the service itself says how many
    relationships it stored and how many items failed, without a request of ours.
    """

    def __init__(self, path: Path):
        self.path = path
        self._offset = 0
        self._partial = b""
        self.transactions = 0
        self.items = 0
        self.succeeded = 0
        self.failed = 0
        self.failure_samples: list[str] = []

    def poll(self) -> "ServiceLog":
        with contextlib.suppress(OSError), self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
            self._offset += len(data)
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                if b'"transaction"' in line:
                    self._count(line)
        return self

    def _count(self, line: bytes) -> None:
        with contextlib.suppress(orjson.JSONDecodeError):
            record = orjson.loads(line)
            if record.get("event") != "transaction" or record.get("kind") != "relationships":
                return
            self.transactions += 1
            self.items += record.get("items", 0)
            self.succeeded += record.get("succeeded", 0)
            self.failed += record.get("failed", 0)
            if record.get("failures") and len(self.failure_samples) < 3:
                self.failure_samples.append(str(record["failures"][0])[:300])

    def snapshot(self) -> tuple[int, int, int]:
        self.poll()
        return self.transactions, self.succeeded, self.failed


@dataclass
class Service:
    """A running ``erapi serve`` with what a client needs: port, token, and its log."""

    server: Server
    token: str
    config: Path
    env: dict[str, str]
    log: ServiceLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = ServiceLog(self.server.log)

    @property
    def port(self) -> int:
        return self.server.port

    def headers(self, collection: str | None = None, **extra: str) -> dict[str, str]:
        return client_headers(self.token, collection, **extra)

    def stop(self, timeout: float = 15.0) -> None:
        self.server.stop(timeout)


def start_service(workdir: Path, name: str, storage: str = "memory", cpus: set[int] | None = None,
                  workers: int = 1, mongodb_uri: str = "", database: str = "") -> Service:
    home = workdir / f"{name}-home"
    home.mkdir(exist_ok=True)
    env = service_environment(home)
    config = write_config(workdir / f"{name}.toml", storage, mongodb_uri, database)
    port = free_port()
    command = [*erapi_command(), "serve", "--config", str(config), "--host", HOST, "--port", str(port)]
    if workers != 1:
        command += ["--workers", str(workers)]
    server = start_server(name, command, port, env, workdir, cpus)
    try:
        return Service(server, mint_token(config, env), config, env)
    except BaseException:
        server.stop()
        raise


@contextlib.contextmanager
def workspace(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="erapi-bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def on_each_plugin(name: str, mongodb_uri: str, use: Callable[[str, Service], None]) -> None:
    """``use(plugin, service)`` with a service on the memory plugin, then (with ``mongodb_uri``) with one on a new
    database of that server; each service is stopped (its database dropped) before the next starts."""
    with workspace() as workdir:
        plugins = [("memory", "")] + ([("mongodb", f"erapi_bench_{name}_{secrets.token_hex(4)}")]
                                      if mongodb_uri else [])
        for storage, database in plugins:
            service = start_service(workdir, f"{name}-{storage}", storage, mongodb_uri=mongodb_uri,
                                    database=database)
            try:
                use(storage, service)
            finally:
                service.stop()
                if database:
                    drop_databases(mongodb_uri, [database])


# ---- wrk ----------------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    label: str
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    stopped_early: str = ""
    items_per_request: int = 100
    server_cores: float = 0.0  # CPU the server used, averaged over the window
    other_cores: float = 0.0  # CPU used by processes that are not part of the measurement
    stolen_cores: float = 0.0  # CPU the hypervisor took

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def relationships_per_s(self) -> float:
        return self.rps * self.items_per_request

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cores * self.duration_s / self.requests * 1000 if self.requests else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk_version() -> str:
    path = shutil.which("wrk")
    if not path:
        return ""
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    words = (result.stdout or result.stderr).split()
    return f"wrk {words[1].rpartition('/')[2]}" if len(words) > 1 else "wrk"


def run_wrk(label: str, port: int, template: Path, phase: int, token: str, collection: str, *, duration: float,
            connections: int, threads: int = 1, cpus: set[int] | None = None,
            stop_when: Callable[[], str] | None = None, timeout_s: int = 30,
            server_pid: int | None = None, get_path: str = "") -> LoadResult:
    """Drive POST /apollo/er/relationships with wrk for ``duration`` seconds (or, with ``get_path``, a GET of
    that path: ``template`` and ``phase`` are then unused and the result counts no relationships).

    ``stop_when`` is polled every 0.1 s; a non-empty answer (the reason) interrupts wrk early, which then
    reports what it measured until then.
    """
    wrk = shutil.which("wrk")
    if not wrk:
        raise BenchError("wrk is not installed: apt-get install -y wrk")
    if get_path:
        script, script_arguments = WRK_GET_SCRIPT, [get_path, token, collection, f"{HOST}:{port}"]
    else:
        script, script_arguments = WRK_SCRIPT, [str(template), f"{phase:02x}", token, collection, f"{HOST}:{port}"]
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
               "--timeout", f"{timeout_s}s", "-s", str(script), f"http://{HOST}:{port}", "--", *script_arguments]
    if cpus:
        command = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
    watch = CpuWatch(server_pid)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + duration + 60
    reason = ""
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise BenchError(f"wrk ({label}) did not finish within {duration + 60:.0f} s")
        if stop_when and not reason:
            reason = stop_when()
            if reason:
                process.send_signal(signal.SIGINT)
        time.sleep(0.1)
    output = process.stdout.read().decode(errors="replace")
    server_cores, other_cores, stolen_cores = watch.stop()
    line = next((line for line in output.splitlines() if line.startswith("BENCH ")), None)
    if process.returncode != 0 or line is None:
        raise BenchError(f"wrk ({label}) failed with exit code {process.returncode}:\n{output[-2000:]}")
    data = orjson.loads(line[len("BENCH "):])
    return LoadResult(
        label=label,
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        p50_ms=data["latency_p50_us"] / 1000,
        p90_ms=data["latency_p90_us"] / 1000,
        p99_ms=data["latency_p99_us"] / 1000,
        max_ms=data["latency_max_us"] / 1000,
        errors={key[len("errors_"):]: value for key, value in data.items() if key.startswith("errors_") and value},
        stopped_early=reason,
        items_per_request=0 if get_path else workload.ITEMS_PER_REQUEST,
        server_cores=server_cores,
        other_cores=other_cores,
        stolen_cores=stolen_cores,
    )
