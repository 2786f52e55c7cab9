"""Opaque continuation tokens: signed, and bound to the collection and query they were issued for.

A token carries the sort key of the last item served. It is HMAC-signed with the paging secret, so a
client can neither forge a position nor replay a token against another collection or another query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from erapi.errors import InvalidRequest


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def issue(self, scope: str, query: Any, position: Any) -> str:
        payload = base64.urlsafe_b64encode(orjson.dumps({"s": scope, "q": query, "p": position})).rstrip(b"=")
        return f"{payload.decode()}.{self._sign(payload)}"

    def open(self, token: str, scope: str, query: Any) -> Any:
        """The position carried by ``token``; InvalidRequest when it is tampered with or foreign."""
        payload, _, signature = token.encode().partition(b".")
        if not signature or not hmac.compare_digest(self._sign(payload).encode(), signature):
            raise InvalidRequest("continuationToken is invalid")
        try:
            content = orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        except (ValueError, orjson.JSONDecodeError) as error:
            raise InvalidRequest("continuationToken is invalid") from error
        if content.get("s") != scope or content.get("q") != orjson.loads(orjson.dumps(query)):
            raise InvalidRequest("continuationToken was issued for another collection or query")
        return content["p"]

    def _sign(self, payload: bytes) -> str:
        digest = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
