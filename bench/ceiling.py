"""The stack's ceiling: aiohttp + orjson reading and parsing the body, answering a precomputed 207.

Same stack and server settings as ``erapi serve`` (``web.run_app``, no access log), none of the service's
work: no auth, no validation, no storage. The answer is a response the service really gave to the same kind
of request, read from a file, so both servers send the same number of bytes back.

    python -m bench.ceiling --port 8181 --response /tmp/response.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
from aiohttp import web

ROUTE = "/apollo/er/relationships"


def create_ceiling_app(response_body: bytes) -> web.Application:
    async def relationships(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(status=207, body=response_body, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":{"message":"ok","code":"200"}}', content_type="application/json")

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post(ROUTE, relationships)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response", required=True, help="file holding the response body to answer with")
    arguments = parser.parse_args(argv)
    body = Path(arguments.response).read_bytes()
    web.run_app(
        create_ceiling_app(body),
        host=arguments.host,
        port=arguments.port,
        access_log=None,
        print=lambda _: print(f"ceiling listening on http://{arguments.host}:{arguments.port}", file=sys.stderr,
                              flush=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
