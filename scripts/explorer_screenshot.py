"""Drive /apollo/explorer of a local `erapi serve` in headless Chromium, offline; check it; save a screenshot.

    python scripts/explorer_screenshot.py [--out explorer-screenshot.png] [--chromium /usr/bin/chromium]

Starts the service (memory storage, a throwaway secret) with a small plant over two collections, then, in
Chromium driven through the DevTools protocol with every host but 127.0.0.1 unresolvable: pastes a token,
connects, searches an entity by name, opens it, clicks one of its neighbours with the mouse to expand it, and
compares the nodes drawn with what the API answers for the same two neighbourhoods. Exit status 0 when they
match; the PNG is written either way. tests/test_explorer_page.py runs this when Chromium is installed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_screenshot import CHROMIUM_FLAGS, running_service, screenshot_arguments, stop  # noqa: E402 (beside this one)

SECRET = "docs-screenshot-" + "s" * 32  # the secret running_service starts the service with
B = "BRICK_1_4__"
# the plant: AHU-1 feeds two VAVs; VAV-1 has a point kept in another collection (a cross-collection edge)
ENTITIES = {"plant": [("ahu1", "AHU-1", "AHU"), ("vav1", "VAV-1", "VAV"), ("vav2", "VAV-2", "VAV")],
            "points": [("pt1", "Zone temperature 1", "Zone_Air_Temperature_Sensor")]}
RELATIONSHIPS = {"plant": [("f1", "ahu1", "feeds", "vav1", "plant"), ("f2", "ahu1", "feeds", "vav2", "plant"),
                           ("p1", "vav1", "hasPoint", "pt1", "points")]}


def call(base: str, token: str, method: str, path: str, body: Any = None, collection: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if collection:
        headers["ercollectionid"] = collection
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def seed(base: str, token: str) -> None:
    for collection, entities in ENTITIES.items():
        call(base, token, "POST", "/apollo/collections", {"collectionId": collection})
        call(base, token, "POST", "/apollo/er/entities", [
            {"id": key, "entityName": name, "entityType": B + kind} for key, name, kind in entities], collection)
    for collection, items in RELATIONSHIPS.items():
        call(base, token, "POST", "/apollo/er/relationships", [
            {"id": key, "sourceEntityId": source, "brickRelationshipType": B + name, "destinationEntityId": target,
             "destinationERCollectionId": there} for key, source, name, target, there in items], collection)


def drawn_by_api(base: str, token: str, opened: list[tuple[str, str]]) -> list[str]:
    """The node ids the page should draw: the depth-1 neighbourhoods of the entities opened, merged."""
    found = set()
    for collection, entity_id in opened:
        graph = call(base, token, "GET", f"/apollo/er/entities/{entity_id}/graph?depth=1", collection=collection)
        found |= {f"{node['erCollectionId']}/{node['id']}" for node in graph["data"]["nodes"]}
    return sorted(found)


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.next_id = 0

    async def send(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await self.socket.receive_json(timeout=60)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, tries: int = 100) -> Any:
        for _ in range(tries):
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        status = await self.evaluate("document.getElementById('status').textContent")
        raise RuntimeError(f"the page never satisfied {expression}; its status line: {status}")

    async def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


async def drive(base: str, token: str, binary: str, profile: Path, out: Path) -> dict[str, list[str]]:
    """Use the page as a person would; the nodes drawn, and those the API answers, once the entity is opened
    (``opened``, ``api_opened``) and once a neighbour is expanded (``expanded``, ``api_expanded``)."""
    flags = [flag for flag in CHROMIUM_FLAGS if not flag.startswith("--virtual-time-budget")]
    chromium = subprocess.Popen([binary, *flags, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                 "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.is_file() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.1)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                target = next(t for t in await response.json() if t["type"] == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                page = Page(socket)
                return await _use_the_page(page, base, token, out)
    finally:
        stop(chromium)


async def _use_the_page(page: Page, base: str, token: str, out: Path) -> dict[str, list[str]]:
    await page.send("Page.navigate", url=base + "/apollo/explorer")
    await page.wait_for("window.explorer !== undefined")
    await page.evaluate(f"document.getElementById('token').value = {json.dumps(token)}")
    await page.evaluate("document.getElementById('connect').click()")
    await page.wait_for("document.getElementById('collection').options.length === 2")
    await page.evaluate("document.getElementById('collection').value = 'plant'")
    await page.evaluate("document.getElementById('search').value = 'AHU-1'")
    await page.evaluate("document.getElementById('find').click()")
    await page.wait_for("document.getElementById('matches').options.length > 0")
    await page.evaluate("document.getElementById('open').click()")
    await page.wait_for("document.getElementById('title').textContent.startsWith('ahu1')")
    opened = await page.evaluate("explorer.drawn()")
    # click VAV-1 where it is drawn: expands it (its point, in the other collection) and shows its document
    box = await page.evaluate("""(() => {
        const node = explorer.state.cy.getElementById('plant/vav1').renderedPosition();
        const area = document.getElementById('graph').getBoundingClientRect();
        return {x: area.left + node.x, y: area.top + node.y}; })()""")
    await page.click(box["x"], box["y"])
    await page.wait_for("document.getElementById('title').textContent.startsWith('vav1')")
    await page.wait_for("document.getElementById('versions').textContent.includes('version')")
    expanded = await page.evaluate("explorer.drawn()")
    shot = await page.send("Page.captureScreenshot", format="png")
    out.write_bytes(base64.b64decode(shot["data"]))
    return {"opened": opened, "api_opened": drawn_by_api(base, token, [("plant", "ahu1")]),
            "expanded": expanded, "api_expanded": drawn_by_api(base, token, [("plant", "ahu1"), ("plant", "vav1")])}


def render(out: Path, binary: str) -> dict[str, list[str]]:
    from erapi.auth import mint_local_token

    with tempfile.TemporaryDirectory(prefix="erapi-explorer-") as work:
        work_dir = Path(work)
        with running_service(work_dir / "erapi.log") as base:
            token = mint_local_token(SECRET, "explorer", ["apollo_read", "apollo_write"], 600)
            seed(base, token)
            return asyncio.run(drive(base, token, binary, work_dir / "profile", out))


def main(argv: list[str] | None = None) -> int:
    arguments = screenshot_arguments(argv, __doc__.split("\n")[0], "explorer-screenshot.png")
    if arguments is None:
        return 2
    seen = render(arguments.out, arguments.chromium)
    if seen["opened"] != seen["api_opened"] or seen["expanded"] != seen["api_expanded"]:
        print(f"the explorer drew {seen}, unlike the API", file=sys.stderr)
        return 1
    print(f"/apollo/explorer drew {len(seen['expanded'])} entities as the API answers; screenshot in {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
