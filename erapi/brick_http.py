"""The HTTP client of ``erapi import``: the standard library's http.client, not aiohttp.

``erapi import`` is a short-lived command whose start is part of every import: aiohttp's import costs it 0.13-0.2 s
of CPU (mostly the two default TLS contexts aiohttp builds when imported), http.client's 0.02 s. Each request runs
in a thread of asyncio's default executor on a kept-alive connection of a small pool, so the importer's
concurrent jobs and trackers still overlap. A caller that has an aiohttp session (the tests, on an in-process
service) passes it instead: ``AiohttpTransport``.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import urllib.parse
from dataclasses import dataclass
from typing import Any

import orjson

TIMEOUT_SECONDS = 300.0  # per socket operation; aiohttp's default for a whole request
# a kept-alive connection the service closed meanwhile fails like this before any answer: sent again, once
STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Unreachable(Exception):
    """The service could not be reached, or broke off an answer; the message says where and why."""


@dataclass
class Answer:
    status: int
    reason: str
    retry_after: str | None
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def message(self) -> str:
        """``status message`` from the service's envelope, else ``status reason`` (a proxy's page, say)."""
        try:
            return f"{self.status} {self.json()['status']['message']}"
        except (ValueError, TypeError, KeyError):
            return f"{self.status} {self.reason}"


class StdlibTransport:
    """Requests to the service at ``url`` over http.client connections kept alive."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url
        self.https = parts.scheme == "https"
        self.netloc, self.prefix = parts.netloc, parts.path.rstrip("/")
        self.idle: list[http.client.HTTPConnection] = []  # list.append/pop are atomic: no lock needed

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None, *,
                      waiting: bool = False) -> Answer:
        """The service's answer. ``waiting``: nothing else goes on until it comes (the import's first requests),
        so it is asked from this thread, not handed to one of the pool: starting the pool's first thread was
        3-8 ms of the import before its first job."""
        if waiting:
            return self._request(method, self.prefix + path, headers, body)
        return await asyncio.to_thread(self._request, method, self.prefix + path, headers, body)

    def _request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Answer:
        try:
            connection, reused = self.idle.pop(), True
        except IndexError:
            connection, reused = self._connect(), False
        try:
            try:
                answer = _exchange(connection, method, path, headers, body)
            except STALE_CONNECTION:
                if not reused:
                    raise
                connection.close()
                connection = self._connect()
                answer = _exchange(connection, method, path, headers, body)
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise Unreachable(f"{self.url}: {error}") from None
        self.idle.append(connection)
        return answer

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return kind(self.netloc, timeout=TIMEOUT_SECONDS)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


def _exchange(connection: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str],
              body: bytes | None) -> Answer:
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    content = response.read()
    if response.will_close:
        connection.close()  # the next request on it reconnects
    return Answer(response.status, response.reason, response.getheader("Retry-After"), content)


class AiohttpTransport:
    """The same requests through an aiohttp client session the caller owns."""

    def __init__(self, session: Any, url: str) -> None:
        self.session, self.url = session, url.rstrip("/")

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None, *,
                      waiting: bool = False) -> Answer:
        data = None if body is None else io.BytesIO(body)  # aiohttp sends a file-like body in pieces; bytes at once
        try:
            async with self.session.request(method, self.url + path, headers=headers, data=data) as answer:
                return Answer(answer.status, answer.reason or "", answer.headers.get("Retry-After"),
                              await answer.read())
        except OSError as error:  # aiohttp's connection errors are OSErrors
            raise Unreachable(f"{self.url}: {error}") from None

    def close(self) -> None:
        """The session is the caller's to close."""
