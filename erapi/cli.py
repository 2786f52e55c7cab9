"""The ``erapi`` command: ``serve`` the API, mint a local ``token``, build the type ``catalog``."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from erapi.config import Config, load_config
from storage_plugins.base import ConfigurationError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    try:
        return arguments.run(arguments)
    except ConfigurationError as error:
        print(f"erapi: configuration error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="erapi", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="start the HTTP service")
    serve.add_argument("--config", help="TOML config file (default: $ERAPI_CONFIG, else built-in defaults)")
    serve.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default from config: 8080)")
    serve.set_defaults(run=_serve)

    token = commands.add_parser("token", help="print a bearer token signed with the local secret")
    token.add_argument("--config", help="TOML config file (default: $ERAPI_CONFIG, else built-in defaults)")
    token.add_argument("--subject", required=True, help="the principal (sub claim)")
    token.add_argument("--scopes", default="apollo_read apollo_write", help="space-separated scopes")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (default from config: 3600)")
    token.set_defaults(run=_token)

    catalog = commands.add_parser("catalog", help="type catalog tools")
    catalog_commands = catalog.add_subparsers(required=True, metavar="ACTION")
    build = catalog_commands.add_parser("build", help="generate schemas/catalog from the Brick ontology")
    build.add_argument("rest", nargs=argparse.REMAINDER)
    build.set_defaults(run=_catalog_build)
    return parser


def _serve(arguments: argparse.Namespace) -> int:
    from erapi.app import create_app
    from erapi.logs import configure_logging

    config = load_config(arguments.config)
    host = arguments.host if arguments.host is not None else config.server.host
    port = arguments.port if arguments.port is not None else config.server.port
    configure_logging(config.log.level)
    web.run_app(
        create_app(config),
        host=host,
        port=port,
        shutdown_timeout=config.server.shutdown_timeout,
        print=lambda _: _announce(config, host, port),  # called once the port is bound
        access_log=None,
    )
    return 0


def _announce(config: Config, host: str, port: int) -> None:
    lines = [f"erapi listening on http://{host}:{port} (storage: {config.storage}, auth: {config.auth.mode})"]
    if config.auth.mode == "local":
        lines.append('get a token with: erapi token --subject alice --scopes "apollo_read apollo_write"')
    print("\n".join(lines), file=sys.stderr, flush=True)


def _token(arguments: argparse.Namespace) -> int:
    from erapi.auth import mint_local_token, resolve_local_secret

    config = load_config(arguments.config)
    if config.auth.mode != "local":
        raise ConfigurationError("erapi token mints local tokens only; auth.mode is 'jwks'")
    ttl = arguments.ttl or config.auth.token_ttl_seconds
    print(mint_local_token(resolve_local_secret(config.auth), arguments.subject, arguments.scopes.split(), ttl))
    return 0


def _catalog_build(arguments: argparse.Namespace) -> int:
    from erapi import catalog_build

    return catalog_build.main(arguments.rest)


if __name__ == "__main__":
    sys.exit(main())
