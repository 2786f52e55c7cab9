"""The ``erapi`` command end to end: a real ``erapi serve`` process, a token from ``erapi token``, real HTTP.

Each test runs the commands with HOME in a temporary directory (so the local secret file is created fresh),
no ERAPI_* variables and no ERAPI_CONFIG; every process started here is killed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHUTDOWN_TIMEOUT = 30.0  # server.shutdown_timeout's default
START_TIMEOUT = 30.0

# CONTRACT.md's example relationship, byte for byte as the contract prints it
CONTRACT_BODY = (
    b'{"id": "5091e806-39b1-11e8-ae2c-c8e0eb18b031",\n'
    b' "sourceEntityId": "ac4d999e-3798-11e8-a1af-c8e0eb18b031",\n'
    b' "destinationEntityId": "ac4d8cd8-3798-11e8-a527-c8e0eb18b031",\n'
    b' "relationshipName": "test",\n'
    b' "relationshipType": "BRICK_0_4__isFedBy_Equipment_Equipment",\n'
    b' "sourceERCollectionId": "august_14_81",\n'
    b' "destinationERCollectionId": "august_14_8"}'
)
RELATIONSHIP_ID = "5091e806-39b1-11e8-ae2c-c8e0eb18b031"
SOURCE = "ac4d999e-3798-11e8-a1af-c8e0eb18b031"
DESTINATION = "ac4d8cd8-3798-11e8-a527-c8e0eb18b031"


def erapi_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).parent / "erapi"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "erapi.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ERAPI_")}
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    # the code under test, whichever checkout the console script was installed from
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run(env: dict, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*erapi_command(), *arguments], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def mint(env: dict, cwd: Path, subject: str = "alice", scopes: str = "apollo_read apollo_write") -> str:
    done = run(env, "token", "--subject", subject, "--scopes", scopes, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Server:
    """One ``erapi serve`` process; its stdout (JSON logs) and stderr go to files, never to a full pipe."""

    def __init__(self, env: dict, directory: Path, *arguments: str) -> None:
        self.env = env
        self.directory = directory
        self.port = free_port()
        self.arguments = ["serve", "--port", str(self.port), *arguments]
        self.stdout = directory / "serve.stdout"
        self.stderr = directory / "serve.stderr"
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.process = subprocess.Popen([*erapi_command(), *self.arguments], env=self.env, cwd=self.directory,
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = time.monotonic() + START_TIMEOUT
        while f"erapi listening on http://127.0.0.1:{self.port}" not in self.stderr.read_text():
            if self.process.poll() is not None:
                raise AssertionError(f"erapi serve exited with {self.process.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"erapi serve did not say it was listening: {self.output()}")
            time.sleep(0.05)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(SHUTDOWN_TIMEOUT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return f"stderr: {self.stderr.read_text()[-3000:]}\nstdout: {self.stdout.read_text()[-3000:]}"


@pytest.fixture
def server_factory(cli_env, tmp_path):
    started: list[Server] = []

    def factory(*arguments: str, env: dict | None = None) -> Server:
        server = Server(env or cli_env, tmp_path, *arguments)
        started.append(server)
        server.start()
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.kill()


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy of the host


def http(method: str, url: str, token: str | None = None, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict, dict]:
    all_headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    request = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    try:
        with _opener.open(request, timeout=15) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.loads(error.read())


def post_json(url: str, token: str, document, collection: str | None = None) -> tuple[int, dict, dict]:
    headers = {"Content-Type": "application/json", **({"ercollectionid": collection} if collection else {})}
    return http("POST", url, token, json.dumps(document).encode(), headers)


# ---- the contract's example over real HTTP --------------------------------------------------------------------------


def test_contract_example_end_to_end_then_sigterm_exits_0(server_factory, cli_env, tmp_path):
    server = server_factory()
    alice = mint(cli_env, tmp_path)

    for collection in ("august_14_81", "august_14_8"):
        status, _, body = post_json(f"{server.base}/apollo/collections", alice, {"collectionId": collection})
        assert status == 201, body
        assert body["data"]["owner"] == "alice"
    for collection, entity_id in (("august_14_81", SOURCE), ("august_14_8", DESTINATION)):
        status, _, body = post_json(f"{server.base}/apollo/er/entities", alice,
                                    {"id": entity_id, "entityType": "BRICK_0_4__AHU", "entityName": "AHU"},
                                    collection)
        assert status == 207, body
        assert body["status"]["message"] == "Total number of Entities Upserted:  1."

    status, headers, body = http("POST", f"{server.base}/apollo/er/relationships", alice, CONTRACT_BODY, {
        "Content-Type": "application/json", "ercollectionid": "august_14_81", "async": "false"})
    assert status == 207, body
    assert body["status"] == {"message": "Total number of Relationships Upserted:  1.", "code": "207"}
    transaction_id = body["transactionId"]
    assert headers["X-Transaction-Id"] == transaction_id
    assert body["data"]["responses"].get("failure", []) == []
    [success] = body["data"]["responses"]["success"]
    tracker = (f"{server.base}/apollo/status/logs?relationshipid={RELATIONSHIP_ID}"
               f"&transactionid={transaction_id}")
    assert success == {"id": RELATIONSHIP_ID, "message": "Relationship upserted successfully", "tracker": tracker}

    status, _, logs = http("GET", success["tracker"], alice, headers={"ercollectionid": "august_14_81"})
    assert status == 200, logs
    assert logs["status"] == {"message": "", "code": "OK"}
    [record] = logs["data"]
    assert record["state"] == "Completed"
    assert record["stateHistory"][-1]["state"] == "Completed"
    assert record["transactionId"] == transaction_id
    assert record["serviceData"] == {"erCollectionId": "august_14_81", "entityId": None,
                                     "relationshipId": RELATIONSHIP_ID}

    status, _, stored = http("GET", f"{server.base}/apollo/er/relationships/{RELATIONSHIP_ID}", alice,
                             headers={"ercollectionid": "august_14_81"})
    assert status == 200
    assert stored["data"][0]["destinationERCollectionId"] == "august_14_8"

    started = time.monotonic()
    assert server.terminate() == 0, server.output()
    assert time.monotonic() - started < SHUTDOWN_TIMEOUT
    assert "Traceback" not in server.output()


def test_probes_answer_without_a_token(server_factory):
    server = server_factory()
    assert http("GET", f"{server.base}/healthz")[0] == 200
    assert http("GET", f"{server.base}/readyz")[0] == 200
    status, headers, body = http("GET", f"{server.base}/apollo/collections/x")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")


# ---- the generated local secret ---------------------------------------------------------------------------------------


def test_token_first_then_serve_agree_on_the_generated_secret(server_factory, cli_env, tmp_path):
    secret_file = Path(cli_env["HOME"]) / ".config" / "erapi" / "local-secret"
    assert not secret_file.exists()
    alice = mint(cli_env, tmp_path)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text()
    server = server_factory()
    status, _, body = http("GET", f"{server.base}/apollo/collections/nowhere", alice)
    assert (status, body["status"]["message"]) == (404, "ERCollection nowhere not found")
    assert secret_file.read_text() == secret  # serve reused it


def test_serve_first_then_token_agree_and_another_home_does_not(server_factory, cli_env, tmp_path):
    server = server_factory()
    secret_file = Path(cli_env["HOME"]) / ".config" / "erapi" / "local-secret"
    assert secret_file.is_file()
    alice = mint(cli_env, tmp_path)
    assert http("GET", f"{server.base}/apollo/collections/nowhere", alice)[0] == 404

    stranger_home = tmp_path / "stranger"
    stranger_home.mkdir()
    stranger = mint({**cli_env, "HOME": str(stranger_home)}, tmp_path)
    status, headers, body = http("GET", f"{server.base}/apollo/collections/nowhere", stranger)
    assert (status, body["status"]["message"]) == (401, "invalid token signature")
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_erapi_auth_secret_is_shared_by_token_and_serve(server_factory, cli_env, tmp_path):
    env = {**cli_env, "ERAPI_AUTH_SECRET": "e" * 40}
    server = server_factory(env=env)
    assert http("GET", f"{server.base}/apollo/collections/nowhere", mint(env, tmp_path))[0] == 404
    assert not (Path(cli_env["HOME"]) / ".config" / "erapi" / "local-secret").exists()
    # a token signed with the generated file secret is not one of this server's
    assert http("GET", f"{server.base}/apollo/collections/nowhere", mint(cli_env, tmp_path))[0] == 401


def test_token_scopes_are_honoured(server_factory, cli_env, tmp_path):
    server = server_factory()
    reader = mint(cli_env, tmp_path, scopes="apollo_read")
    status, _, body = post_json(f"{server.base}/apollo/collections", reader, {"collectionId": "c1"})
    assert (status, body["status"]["message"]) == (403, "The token lacks the scope apollo_write")


# ---- configuration errors stop start-up ---------------------------------------------------------------------------------


def test_unknown_config_key_makes_serve_exit_non_zero_naming_it(cli_env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 8080\nprot = 9090\n")
    done = run(cli_env, "serve", "--config", str(bad), "--port", str(free_port()), cwd=tmp_path)
    assert done.returncode != 0
    assert "unknown config key server.prot" in done.stderr
    assert "Traceback" not in done.stderr
    assert "listening" not in done.stderr


def test_unknown_config_key_via_erapi_config_stops_token_too(cli_env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'blue'\n")
    done = run({**cli_env, "ERAPI_CONFIG": str(bad)}, "token", "--subject", "alice", cwd=tmp_path)
    assert done.returncode != 0
    assert "unknown config key colour" in done.stderr
    assert done.stdout == ""


def test_unknown_storage_plugin_makes_serve_exit_non_zero_naming_it(cli_env, tmp_path):
    done = run({**cli_env, "ERAPI_STORAGE": "redis"}, "serve", "--port", str(free_port()), cwd=tmp_path)
    assert done.returncode != 0
    assert "unknown storage plugin 'redis'" in done.stderr


# ---- every operator mistake: one line on stderr, a non-zero exit, no traceback ------------------------------------


def assert_one_line_error(done: subprocess.CompletedProcess, status: int, *parts: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == status, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("erapi"), lines[0]
    for part in parts:
        assert part in lines[0]
    assert done.stdout == ""


@pytest.mark.parametrize("arguments, message", [
    (("token", "--subject", "alice", "--ttl", "-5"), "argument --ttl: must be a positive whole number, got -5"),
    (("token", "--subject", "alice", "--ttl", "soon"), "argument --ttl: must be a whole number, got 'soon'"),
    (("token", "--subject", ""), "argument --subject: must not be empty"),
    (("token", "--subject", "  "), "argument --subject: must not be empty"),
    (("token", "--subject", "alice", "--scopes", "apollo_read apollo_wirte"),
     "argument --scopes: unknown scope 'apollo_wirte'; did you mean apollo_write? known scopes: apollo_read apollo_write"),
    (("serve", "--port", "70000"), "argument --port: must be a port number between 0 and 65535, got 70000"),
    (("serve", "--port", "-1"), "argument --port: must be a port number between 0 and 65535, got -1"),
    (("serve", "--workers", "two"), "argument --workers: must be a whole number, got 'two'"),
    (("catalog", "build", "--brick-versoin", "1.4"), "unrecognized arguments: --brick-versoin"),
])
def test_a_mistaken_argument_is_one_line_and_exit_2(cli_env, tmp_path, arguments, message):
    assert_one_line_error(run(cli_env, *arguments, cwd=tmp_path), 2, message)


def test_a_port_out_of_range_in_the_config_is_one_line_and_exit_2(cli_env, tmp_path):
    config = tmp_path / "erapi.toml"
    config.write_text("[server]\nport = 65536\n")
    done = run(cli_env, "serve", "--config", str(config), cwd=tmp_path)
    assert_one_line_error(done, 2, "configuration error: config key server.port must be between 0 and 65535, "
                                   "got 65536")


def test_a_port_in_use_is_one_line_and_exit_2(cli_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(cli_env, "serve", "--port", str(port), cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines == [f"erapi: cannot listen on 127.0.0.1:{port}: Address already in use"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unreachable_mongodb_at_start_is_one_line_and_exit_1(cli_env, tmp_path, workers):
    # with 2 workers each fails alike; the line is still said once
    uri = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"
    env = {**cli_env, "ERAPI_STORAGE": "mongodb", "ERAPI_MONGODB_URI": uri}
    done = subprocess.run([*erapi_command(), "serve", "--port", str(free_port()), "--workers", workers], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"erapi: storage unavailable: no MongoDB server answered at {uri} within 0.3 s (server selection timeout: "
        f"mongodb.timeout_ms, or serverSelectionTimeoutMS in the URI)"
    ]


def test_missing_pymongo_names_the_mongodb_extra(cli_env, tmp_path):
    # PyMongo made unimportable the way Python itself marks a module absent
    without_pymongo = "import sys; sys.modules['pymongo'] = None; from erapi.cli import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", without_pymongo, "serve", "--port", str(free_port())],
                          env={**cli_env, "ERAPI_STORAGE": "mongodb"}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert_one_line_error(done, 2, "configuration error: storage plugin 'mongodb' cannot be loaded",
                          "install the mongodb extra: pip install 'erapi[mongodb]'")


def test_catalog_build_takes_its_documented_arguments(cli_env, tmp_path):
    done = run(cli_env, "catalog", "build", "--brick-version", "9.9", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert_one_line_error(done, 1, "erapi catalog build: ")
    assert "9.9" in done.stderr


def test_version_and_python_dash_m(cli_env, tmp_path):
    from importlib.metadata import version

    by_script = run(cli_env, "--version", cwd=tmp_path)
    by_module = subprocess.run([sys.executable, "-m", "erapi", "--version"], env=cli_env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
    assert by_script.returncode == by_module.returncode == 0
    assert by_script.stdout == by_module.stdout == f"erapi {version('erapi')}\n"


def test_the_start_banner_names_the_docs_page_and_the_openapi_document(server_factory):
    server = server_factory()
    banner = server.stderr.read_text()
    assert f"{server.base}/apollo/docs" in banner and f"{server.base}/apollo/openapi.json" in banner
    assert http("GET", f"{server.base}/apollo/openapi.json")[0] == 200


@pytest.mark.parametrize("name, storage", [("default", "memory"), ("mongodb", "mongodb")])
def test_config_example_prints_the_shipped_example_which_loads(cli_env, tmp_path, name, storage):
    from erapi.config import load_config

    done = run(cli_env, "config", "example", name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (REPO / "config" / f"{name}.toml").read_text(encoding="utf-8")
    saved = tmp_path / "erapi.toml"
    saved.write_text(done.stdout, encoding="utf-8")
    assert load_config(saved, {}).storage == storage
