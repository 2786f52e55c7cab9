"""The ``erapi`` command: ``serve`` the API, mint a local ``token``, build the type ``catalog``, ``import`` and
``export`` Brick models."""

from __future__ import annotations

import argparse
import difflib
import errno
import gc
import os
import shutil
import socket
import sys
import tempfile
from typing import TYPE_CHECKING, NoReturn

from erapi import catalog_build, installed_version
from erapi.brick_cli import add_commands as add_brick_commands
from erapi.errors import ConfigurationError
from erapi.packaged import CONFIG_EXAMPLES, config_example
from erapi.scopes import KNOWN_SCOPES
from storage_plugins.common import StorageError

if TYPE_CHECKING:
    from aiohttp import web

    from erapi.config import Config

# The service's modules (aiohttp's server, the configuration and the storage plugins) are imported by the commands
# that need them: ``erapi import`` and ``erapi export`` start without them (docs/PERFORMANCE.md, "erapi import").

# The cyclic garbage collector's thresholds (CPython's defaults: 700, 10, 10). First: a write stores several
# new containers per item, so with 700 a 100-item request ran several collections, each of them walking the
# young objects again: 0.4 to 0.6 ms of CPU per request. Third: a full collection walks every container the
# process keeps, which with the memory plugin means every stored relationship's index entries (about 0.3 s at
# 1,000,000 stored); with 10, two ran while the benchmark filled the store to 1,000,000 relationships, with 100
# at most one per 100 second-generation collections (about 43,000 of the benchmark's 100-item requests).
# What the service keeps holds no reference cycles, and the cycles of a request (the HTTP stack makes a few)
# are young ones, still collected by the first two generations (docs/PERFORMANCE.md).
GC_THRESHOLDS = (20_000, 10, 100)


class CannotListen(Exception):
    """The port cannot be bound: in use, an address this host does not have, a privileged port."""


OPERATOR_ERRORS = {ConfigurationError: ("configuration error", 2), StorageError: ("storage unavailable", 1),
                   CannotListen: ("cannot listen on", 2)}
LISTEN_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def main(argv: list[str] | None = None) -> int:
    """The ``erapi`` command with ``argv`` (None: the process's own arguments, as the console script and
    ``python -m erapi`` call it); its exit status."""
    arguments = _parser().parse_args(argv)
    try:
        status = arguments.run(arguments)
    except tuple(OPERATOR_ERRORS) as error:
        return _report(error)
    if argv is None and getattr(arguments, "exit_at_once", False):
        _exit_at_once(status)
    return status


def _exit_at_once(status: int) -> NoReturn:
    """Ends the process once its output is flushed, without the interpreter's teardown: freeing every module
    and object one by one took 0.02-0.04 s of each ``erapi import`` after its summary was printed
    (docs/PERFORMANCE.md, "erapi import"). Only for a command run as the process itself, not for a caller of
    ``main`` with its own ``argv``, whose process goes on."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _report(error: Exception) -> int:
    """One line on stderr for a mistake of the operator's or an unreachable dependency; its exit status."""
    line, status = _one_line(error)
    print(line, file=sys.stderr, flush=True)
    return status


def _one_line(error: Exception) -> tuple[str, int]:
    what, status = next(entry for kind, entry in OPERATOR_ERRORS.items() if isinstance(error, kind))
    separator = " " if isinstance(error, CannotListen) else ": "
    return f"erapi: {what}{separator}{' '.join(str(error).split())}", status


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake told in one line (argparse prints the whole usage before it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    port = _integer(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number between 0 and 65535, got {port}")
    return port


def _positive(text: str) -> int:
    number = _integer(text)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {number}")
    return number


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _subject(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _scopes(text: str) -> list[str]:
    scopes = text.split()
    for scope in scopes:
        if scope not in KNOWN_SCOPES:
            close = difflib.get_close_matches(scope, KNOWN_SCOPES, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise argparse.ArgumentTypeError(f"unknown scope {scope!r}; {hint}known scopes: {' '.join(KNOWN_SCOPES)}")
    return scopes


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked (0.02 s of every command's start)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **_options) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_arguments) -> NoReturn:
        print(f"erapi {installed_version()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="erapi", description=__doc__)
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="start the HTTP service")
    serve.add_argument("--config", help="TOML config file (default: $ERAPI_CONFIG, else built-in defaults)")
    serve.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default from config: 8080)")
    serve.add_argument("--workers", type=_integer,
                       help="worker processes on one port, run by gunicorn's arbiter, one storage for all; needs a "
                            "shared storage such as mongodb (default from config: server.workers, 1)")
    serve.set_defaults(run=_serve)

    token = commands.add_parser("token", help="print a bearer token signed with the local secret")
    token.add_argument("--config", help="TOML config file (default: $ERAPI_CONFIG, else built-in defaults)")
    token.add_argument("--subject", required=True, type=_subject, help="the principal (sub claim)")
    token.add_argument("--scopes", type=_scopes, default=list(KNOWN_SCOPES),
                       help=f"space-separated scopes, of: {' '.join(KNOWN_SCOPES)} (default: all of them)")
    token.add_argument("--ttl", type=_positive, help="lifetime in seconds (default from config: 3600)")
    token.set_defaults(run=_token)

    config = commands.add_parser("config", help="example configurations")
    config_commands = config.add_subparsers(required=True, metavar="ACTION")
    example = config_commands.add_parser("example", help="print an example TOML configuration, every key explained")
    example.add_argument("name", nargs="?", choices=CONFIG_EXAMPLES, default="default",
                         help="default (memory storage, every key with its default) or mongodb")
    example.set_defaults(run=_config_example)

    storage = commands.add_parser("storage", help="check or repair the configured storage")
    storage_commands = storage.add_subparsers(required=True, metavar="ACTION")
    for name, text in (("check", "report versions claimed in the history that the current view does not show "
                                 "(exit status 1 when there are any)"),
                       ("repair", "the same, and publish those versions (exit status 1 when a problem is left)")):
        action = storage_commands.add_parser(name, help=text)
        action.add_argument("--config", help="TOML config file (default: $ERAPI_CONFIG, else built-in defaults)")
        action.set_defaults(run=_storage, repair=name == "repair")
    init_indexes = storage_commands.add_parser(
        "init-indexes", help="build every missing index (however long it takes) and drop the ones they supersede; "
                             "run it after installing or upgrading, before starting the service")
    init_indexes.add_argument("--config", help="TOML config file (default: $ERAPI_CONFIG, else built-in defaults)")
    init_indexes.set_defaults(run=_storage_init_indexes)

    catalog = commands.add_parser("catalog", help="type catalog tools")
    catalog_commands = catalog.add_subparsers(required=True, metavar="ACTION")
    build = catalog_commands.add_parser("build", help="generate schemas/catalog from the Brick ontology")
    catalog_build.add_arguments(build)
    build.set_defaults(run=catalog_build.run)
    add_brick_commands(commands)
    return parser


def _load_config(path: str | None) -> Config:
    from erapi.config import load_config

    return load_config(path)


def _serve(arguments: argparse.Namespace) -> int:
    config = _load_config(arguments.config)
    host = arguments.host if arguments.host is not None else config.server.host
    port = arguments.port if arguments.port is not None else config.server.port
    workers = arguments.workers if arguments.workers is not None else config.server.workers
    _check_workers(config, workers)
    metrics_directory = _multiprocess_metrics(workers)  # before anything imports prometheus_client

    from erapi.app import create_app
    from erapi.logs import configure_logging

    configure_logging(config.log.level)
    gc.set_threshold(*GC_THRESHOLDS)
    if workers > 1:
        from erapi.workers import serve_workers

        try:
            port = _free_port_check(host, port)
            return serve_workers(config, host, port, workers, announce=lambda pids: _announce(config, host, port, pids))
        finally:
            if metrics_directory:
                shutil.rmtree(metrics_directory, ignore_errors=True)
    _run_app(
        create_app(config),
        host=host,
        port=port,
        shutdown_timeout=config.server.shutdown_timeout,
        print=lambda _: _announce(config, host, port),  # called once the port is bound
        access_log=None,
    )
    return 0


def _multiprocess_metrics(workers: int) -> str | None:
    """With several worker processes, prometheus-client's multiprocess mode: each process writes its samples into
    files of one directory, and /metrics, whichever worker answers, sums them (docs/OPERATIONS.md, Metrics).

    The directory is the operator's PROMETHEUS_MULTIPROC_DIR when set, else a new one, returned to be removed.
    """
    if workers == 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    directory = tempfile.mkdtemp(prefix="erapi-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def _run_app(app: web.Application, host: str, port: int, **options) -> None:
    """``web.run_app``, with a port that cannot be bound told as CannotListen."""
    from aiohttp import web

    try:
        web.run_app(app, host=host, port=port, **options)
    except socket.gaierror as error:
        raise CannotListen(f"{host}:{port}: {error.strerror}") from error
    except OSError as error:
        if error.errno not in LISTEN_ERRNOS:
            raise
        raise CannotListen(f"{host}:{port}: {os.strerror(error.errno)}") from error


def _process_local(config: Config) -> bool:
    """Whether the configured plugin keeps its data inside the process that opened it, as the plugin declares:
    N worker processes would then be N separate stores."""
    from storage_plugins.base import plugin_class

    return not plugin_class(config.storage).shared_across_processes


def _check_workers(config: Config, workers: int) -> None:
    if workers < 1:
        raise ConfigurationError(f"--workers (server.workers) must be positive, got {workers}")
    if workers == 1:
        return
    if _process_local(config):
        raise ConfigurationError(
            f"--workers {workers} needs a storage shared by the worker processes, and the {config.storage} plugin "
            f"keeps its data inside one process (each worker would have a store of its own); use --workers 1, "
            f"or storage = \"mongodb\""
        )
    if config.auth.mode != "local" and not config.server.paging_secret:
        raise ConfigurationError(
            f"--workers {workers} with auth.mode {config.auth.mode!r} needs server.paging_secret: without it each "
            f"process signs continuation tokens with a key of its own, and the next page may reach another worker"
        )


def _free_port_check(host: str, port: int) -> int:
    """``port`` after a check that it can be bound (gunicorn would retry a busy port for five seconds and then
    exit with a log line, not the one-line message of the other mistakes), or a free one for port 0."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise CannotListen(f"{host}:{port}: {error.strerror}") from error
        return probe.getsockname()[1]


def _announce(config: Config, host: str, port: int, pids: list[int] | None = None) -> None:
    workers = f", {len(pids)} workers: pids {', '.join(map(str, pids))}" if pids else ""
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    lines = [
        f"erapi listening on {base} (storage: {config.storage}, auth: {config.auth.mode}{workers})",
        f"API documentation: {base}/apollo/docs (OpenAPI document: {base}/apollo/openapi.json)",
    ]
    if config.auth.mode == "local":
        lines.append('get a token with: erapi token --subject alice --scopes "apollo_read apollo_write"')
    print("\n".join(lines), file=sys.stderr, flush=True)


def _config_example(arguments: argparse.Namespace) -> int:
    print(config_example(arguments.name), end="")
    return 0


def _storage(arguments: argparse.Namespace) -> int:
    import asyncio

    from erapi import repair
    from erapi.logs import configure_logging

    config = _load_config(arguments.config)
    if _process_local(config):
        raise ConfigurationError(f"the {config.storage} plugin keeps its data inside the serving process; there is no "
                                 f"store for erapi storage {'repair' if arguments.repair else 'check'} to open")
    configure_logging(config.log.level, sys.stderr.buffer)  # standard output is the report's
    return asyncio.run(repair.run(config, arguments.repair, sys.stdout))


def _storage_init_indexes(arguments: argparse.Namespace) -> int:
    import asyncio

    from erapi.logs import configure_logging
    from storage_plugins.base import create_storage

    config = _load_config(arguments.config)
    storage = create_storage(config.storage, config.storage_settings())
    if not hasattr(storage, "init_indexes"):
        raise ConfigurationError(f"the {config.storage} plugin keeps no indexes in a database; erapi storage "
                                 f"init-indexes is for mongodb")
    configure_logging(config.log.level, sys.stderr.buffer)  # standard output is the report's
    for line in asyncio.run(storage.init_indexes()):
        print(line, flush=True)
    return 0


def _token(arguments: argparse.Namespace) -> int:
    from erapi.auth import mint_local_token, resolve_local_secret

    config = _load_config(arguments.config)
    if config.auth.mode != "local":
        raise ConfigurationError("erapi token mints local tokens only; auth.mode is 'jwks'")
    ttl = arguments.ttl or config.auth.token_ttl_seconds
    print(mint_local_token(resolve_local_secret(config.auth), arguments.subject, arguments.scopes, ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
