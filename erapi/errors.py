"""The service's own exceptions: what went wrong, in a message safe to show the client, and nothing of HTTP.

The error middleware (erapi/middleware.py) is the one place that turns each into the contract's JSON envelope,
with its HTTP status and headers (HTTP_STATUS there). ConfigurationError never reaches a client: it stops
start-up or a command.
"""

from __future__ import annotations


MAX_SHOWN_CHARS = 64


def shown(value: str) -> str:
    """``value`` as a message may echo it: an id from a path has no bound, so a long one is cut."""
    if len(value) <= MAX_SHOWN_CHARS:
        return value
    return f"{value[:MAX_SHOWN_CHARS]}... ({len(value)} characters)"


class ConfigurationError(Exception):
    """The configuration names something that does not exist or is out of range."""


class ServiceError(Exception):
    """A refusal of a request, with a message (and, for a body that fails its schema, the errors) to show, and
    for a refusal that may pass later, after how many seconds to try again."""

    def __init__(self, message: str, errors: list[dict] | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.retry_after = retry_after


class InvalidRequest(ServiceError):
    """The request is malformed: a header, a query parameter or the body."""


class UnreadableBody(InvalidRequest):
    """The body's stream broke off or cannot be decoded: the connection cannot carry another request."""


class RequestTimeout(UnreadableBody):
    """The body did not arrive in time."""


class ClientDisconnected(UnreadableBody):
    """The body stopped short: a client that hung up, or whose framing broke. Logged as such, not as a fault."""


class Unauthenticated(ServiceError):
    """No valid bearer token."""


class Forbidden(ServiceError):
    """The caller may not do this: a scope, a grant."""


class NotFound(ServiceError):
    """Nothing of that id where the request looks (or nothing the caller may know of)."""


class Conflict(ServiceError):
    """The request contradicts what is stored."""


class PayloadTooLarge(ServiceError):
    """The body is over the byte limit, or carries more items than a request may."""


class HeadersTooLarge(ServiceError):
    """The request headers are over their limit."""


class UnsupportedMediaType(ServiceError):
    """The body is not of a content type the operation takes."""


class TooManyRequests(ServiceError):
    """Come back later: after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, retry_after=retry_after)


class PreconditionFailed(ServiceError):
    """A conditional write (If-Match, If-None-Match) found another version."""


class Unprocessable(ServiceError):
    """Well-formed, but cannot be applied as sent (an idempotency key reused for another request)."""


class NotAcceptable(ServiceError):
    """No representation the Accept header takes."""


class Gone(ServiceError):
    """What the request asks for was there once and is no more (a trimmed part of the change feed)."""


class NotYet(ServiceError):
    """This server does not reflect what the request asks to see yet: retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message, retry_after=retry_after)
