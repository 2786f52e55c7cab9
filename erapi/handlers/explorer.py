"""GET /apollo/explorer: a page that draws the building graph, from files of the package.

The page (``erapi/explorer_assets``) talks to the service's own API with a token the user pastes; it draws with
Cytoscape.js 3 (MIT, vendored from npm with its licence), so nothing is loaded from the internet. Its files are
served with the documentation page's (``/apollo/docs/assets/``, erapi/handlers/docs.py). No token is needed for
the page and its files: they hold no data.
"""

from __future__ import annotations

from aiohttp import web

from erapi.handlers.docs import PAGE_HEADERS
from erapi.packaged import package_dir


async def get_explorer(request: web.Request) -> web.Response:
    page = (package_dir("explorer_assets") / "index.html").read_text(encoding="utf-8")
    return web.Response(text=page, content_type="text/html", headers=PAGE_HEADERS)
