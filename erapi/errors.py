"""The service's own exceptions; one middleware turns each into the contract's JSON envelope."""

from __future__ import annotations


MAX_SHOWN_CHARS = 64


def shown(value: str) -> str:
    """``value`` as a message may echo it: an id from a path has no bound, so a long one is cut."""
    if len(value) <= MAX_SHOWN_CHARS:
        return value
    return f"{value[:MAX_SHOWN_CHARS]}... ({len(value)} characters)"


class ApiError(Exception):
    """A request-level refusal with its HTTP status and a message safe to show the client."""

    status = 400

    def __init__(self, message: str, errors: list[dict] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}


class InvalidRequest(ApiError):
    status = 400


class UnreadableBody(InvalidRequest):
    """The body's stream broke off or cannot be decoded: the connection cannot carry another request."""


class RequestTimeout(UnreadableBody):
    status = 408


class ClientDisconnected(UnreadableBody):
    """The body stopped short: a client that hung up, or whose framing broke. Logged as such, not as a fault."""


class Unauthenticated(ApiError):
    status = 401

    def __init__(self, message: str):
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class HeadersTooLarge(ApiError):
    status = 431


class UnsupportedMediaType(ApiError):
    status = 415


class TooManyRequests(ApiError):
    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class PreconditionFailed(ApiError):
    status = 412


class Unprocessable(ApiError):
    status = 422


class NotAcceptable(ApiError):
    status = 406
