"""GET /apollo/openapi.json and the Swagger UI page at /apollo/docs, every asset served from the installed package.

The page loads nothing from the internet: its scripts and styles come from the ``swagger-ui-py`` package
(Swagger UI 5, which reads OpenAPI 3.1) through ``/apollo/docs/assets/``, its Content-Security-Policy allows
this origin only, and Swagger UI's online validator badge is switched off.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from aiohttp import web

from erapi.errors import NotFound, shown
from erapi.keys import openapi_key
from erapi.packaged import package_dir

ASSETS_PATH = "/apollo/docs/assets"
INITIALIZER = "erapi-docs.js"
# name -> content type; only these files of the package are served
PACKAGE_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
    "LICENSE": "text/plain",
}
# the graph explorer's files (erapi/handlers/explorer.py), shipped in erapi/explorer_assets
EXPLORER_ASSETS = {
    "explorer.js": "text/javascript",
    "explorer.css": "text/css",
    "cytoscape.min.js": "text/javascript",
    "cytoscape-LICENSE.txt": "text/plain",
}
ASSETS = frozenset({*PACKAGE_ASSETS, *EXPLORER_ASSETS, INITIALIZER})

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>erapi — API documentation</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png" sizes="32x32">
<style>body {{ margin: 0; background: #fafafa; }}</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/{INITIALIZER}"></script>
</body>
</html>
"""
# a file, not an inline script, so that the CSP can forbid inline scripts
INITIALIZER_SCRIPT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/apollo/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    persistAuthorization: false
  });
});
"""
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}


@lru_cache(maxsize=1)
def package_assets_dir() -> Path:
    """The static directory of the installed swagger-ui-py package (found without importing it)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed (it is in erapi's install_requires)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[openapi_key], content_type="application/json")


async def get_docs(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers=PAGE_HEADERS)


async def get_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if name == INITIALIZER:
        return web.Response(text=INITIALIZER_SCRIPT, content_type="text/javascript", headers=ASSET_HEADERS)
    if name in EXPLORER_ASSETS:
        return web.FileResponse(package_dir("explorer_assets") / name,
                                headers={**ASSET_HEADERS, "Content-Type": EXPLORER_ASSETS[name]})
    if name not in PACKAGE_ASSETS:
        raise NotFound(f"No documentation asset {shown(name)}")
    return web.FileResponse(package_assets_dir() / name,
                            headers={**ASSET_HEADERS, "Content-Type": PACKAGE_ASSETS[name]})
