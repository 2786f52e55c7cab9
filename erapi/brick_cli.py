"""``erapi import`` and ``erapi export``: Brick models in and out of a running service (docs/BRICK.md)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080"
ACCEPT = {"turtle": "text/turtle", "json-ld": "application/ld+json"}


def add_commands(commands: argparse._SubParsersAction) -> None:
    importer = commands.add_parser("import", help="import a Brick model (Turtle, N-Triples, JSON-LD, ...)")
    importer.add_argument("file", type=Path, help="the model; its format is guessed from the file name")
    _connection(importer)
    importer.add_argument("--collection", help="the ERCollection to import into (default: the file's name)")
    rule = importer.add_mutually_exclusive_group()
    rule.add_argument("--split-by-class", action="store_true",
                      help="one collection per top-level Brick class: <collection>_equipment, _point, ...")
    rule.add_argument("--collections-file", type=Path, metavar="FILE",
                      help="TOML or JSON rules: entity IRIs, IRI prefixes and classes to collections (docs/BRICK.md)")
    importer.add_argument("--quiet", action="store_true", help="no progress bar")
    importer.set_defaults(run=_import, exit_at_once=True)  # erapi/cli.py, _exit_at_once

    exporter = commands.add_parser("export", help="write a collection as Brick RDF")
    exporter.add_argument("collection", help="the ERCollection to export")
    _connection(exporter)
    exporter.add_argument("--format", choices=sorted(ACCEPT), default="turtle")
    exporter.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")
    exporter.set_defaults(run=_export)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("ERAPI_URL", DEFAULT_URL),
                        help=f"the service (default: $ERAPI_URL, else {DEFAULT_URL})")
    parser.add_argument("--token", default=os.environ.get("ERAPI_TOKEN"),
                        help="bearer token (default: $ERAPI_TOKEN); see erapi token")


def _token(arguments: argparse.Namespace) -> str:
    if not arguments.token:
        raise SystemExit("erapi: a bearer token is needed: --token or $ERAPI_TOKEN (erapi token mints one)")
    return arguments.token


def _import(arguments: argparse.Namespace) -> int:
    from erapi.brick_collections import BadCollectionsFile
    from erapi.brick_import import ImportFailed, default_collection, run_import
    from erapi.catalog import load_catalog

    collection = arguments.collection or default_collection(arguments.file)
    try:
        summary = asyncio.run(run_import(arguments.file, arguments.url, _token(arguments), collection,
                                         load_catalog(), split=arguments.split_by_class,
                                         collections_file=arguments.collections_file,
                                         show_progress=not arguments.quiet))
    except BadCollectionsFile as error:
        print(f"erapi import: --collections-file {error}", file=sys.stderr)
        return 2
    except ImportFailed as error:
        print(f"erapi import: {error}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 1 if sum(summary.refused.values()) else 0


def _export(arguments: argparse.Namespace) -> int:
    return asyncio.run(export_to(arguments.url, _token(arguments), arguments.collection,
                                 ACCEPT[arguments.format], arguments.output))


async def export_to(url: str, token: str, collection: str, accept: str, output: str, session=None) -> int:
    """Stream the export into ``output`` (``-``: standard output) chunk by chunk; 1 when the service refuses."""
    import aiohttp

    owned = session is None
    session = session or aiohttp.ClientSession()
    try:
        async with session.get(f"{url.rstrip('/')}/apollo/er/ercollections/{collection}/export",
                               headers={"Authorization": f"Bearer {token}", "Accept": accept}) as answer:
            if answer.status != 200:
                print(f"erapi export: {answer.status} {await answer.text()}", file=sys.stderr)
                return 1
            target = sys.stdout.buffer if output == "-" else open(output, "wb")
            try:
                async for chunk in answer.content.iter_chunked(1 << 16):
                    target.write(chunk)
            finally:
                if target is not sys.stdout.buffer:
                    target.close()
        return 0
    finally:
        if owned:
            await session.close()
