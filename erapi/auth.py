"""Bearer-token authentication: local HS256 tokens, or RS256/ES256 tokens checked against a provider's JWKS."""

from __future__ import annotations

import abc
import asyncio
import hashlib
import math
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import aiohttp
import jwt
import structlog

from erapi.clock import Clock
from erapi.config import AuthConfig
from erapi.errors import ConfigurationError, Unauthenticated
from erapi.scopes import KNOWN_SCOPES, READ_SCOPE, WRITE_SCOPE  # noqa: F401 (imported from here by handlers)

log = structlog.get_logger(__name__)

MAX_TOKEN_BYTES = 8 * 1024
MIN_SECRET_BYTES = 32  # an HS256 key shorter than the SHA-256 output weakens it (RFC 7518 section 3.2)
LOCAL_ALGORITHMS = ("HS256",)
JWKS_ALGORITHMS = ("RS256", "ES256")  # a tuple, not a set: a client-supplied unhashable "alg" must not raise
VERIFIED_TOKEN_SECONDS = 30.0  # how long a verified token is taken on trust (never past its exp)
VERIFIED_TOKEN_ENTRIES = 10_000

# Most specific first: several of these are subclasses of DecodeError.
_ERROR_MESSAGES: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidSignatureError, "invalid token signature"),
    (jwt.InvalidAlgorithmError, "token algorithm not allowed"),
    (jwt.InvalidIssuerError, "invalid token issuer"),
    (jwt.InvalidAudienceError, "invalid token audience"),
    (jwt.DecodeError, "malformed token"),
)


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for, and the scopes it grants."""

    subject: str
    scopes: frozenset[str]


class AuthenticationError(Unauthenticated):
    """The token is missing, malformed, badly signed or expired; the message is safe for clients."""


class VerifiedTokens:
    """Tokens verified recently, by their SHA-256, with the Principal each speaks for.

    A client sends the same token with every request; checking its signature each time (PyJWT's decode,
    about 0.1 ms for HS256 and more for RS256) is the largest fixed cost of a small request. A hit skips
    it for at most ``seconds``, and never past the token's ``exp`` (from then on it is verified again,
    which applies the leeway and rejects it once that has passed too). Only tokens that verified are kept,
    at most ``entries`` of them (the oldest goes first); the tokens themselves are not kept, only digests.
    """

    def __init__(self, seconds: float = VERIFIED_TOKEN_SECONDS, entries: int = VERIFIED_TOKEN_ENTRIES,
                 clock: Clock = time.time) -> None:
        self._seconds = seconds
        self._clock = clock
        self._limit = entries
        self._entries: dict[bytes, tuple[Principal, float]] = {}  # insertion order is age

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, key: bytes) -> Principal | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if self._clock() >= found[1]:
            del self._entries[key]
            return None
        return found[0]

    def put(self, key: bytes, principal: Principal, expires_at: float) -> None:
        now = self._clock()
        until = min(now + self._seconds, expires_at)
        if until <= now or self._limit <= 0:
            return
        self._entries.pop(key, None)
        while len(self._entries) >= self._limit:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (principal, until)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class Authenticator(abc.ABC):
    """Turns a bearer token into a Principal. Opened once inside the running event loop, then closed once."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Acquire what verification needs (secret, HTTP session); called before the first authenticate()."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release what open() acquired; a no-op when there is nothing to release."""

    @abc.abstractmethod
    async def authenticate(self, token: str) -> Principal:
        """Verify ``token`` (without "Bearer "); a bad token raises AuthenticationError and nothing else."""


class LocalAuthenticator(Authenticator):
    """HS256 tokens signed with the local secret, as minted by ``erapi token``."""

    def __init__(self, config: AuthConfig, clock: Clock = time.time) -> None:
        self._config = config
        self._clock = clock
        self._secret: str | None = None
        self._verified = VerifiedTokens(clock=clock)

    async def open(self) -> None:
        # Reading (or creating) the secret file is disk I/O; keep it off the event loop.
        self._secret = await asyncio.to_thread(resolve_local_secret, self._config)

    async def close(self) -> None:
        self._secret = None

    async def authenticate(self, token: str) -> Principal:
        if self._secret is None:
            raise RuntimeError("LocalAuthenticator.authenticate() called before open()")
        _check_shape(token)
        key = VerifiedTokens.key(token)
        principal = self._verified.get(key)
        if principal is None:
            principal, expires_at = _verify(token, self._secret, LOCAL_ALGORITHMS, now=self._clock(),
                                            leeway=self._config.leeway_seconds)
            self._verified.put(key, principal, expires_at)
        return principal


class _JwksUnavailable(Exception):
    """The JWKS endpoint could not be reached or did not answer with a usable key set."""


class JwksAuthenticator(Authenticator):
    """RS256/ES256 tokens signed by an identity provider whose public keys are published at ``jwks_url``.

    The key set is fetched lazily and cached. A token whose key is not in the cache triggers a refetch, at
    most once per ``jwks_refresh_interval``; a failed fetch keeps the last good set.
    """

    def __init__(self, config: AuthConfig, clock: Clock = time.time) -> None:
        if not config.jwks_url:
            raise ConfigurationError("config key auth.jwks_url is required when auth.mode is 'jwks'")
        self._config = config
        self._clock = clock
        self._keys: tuple[jwt.PyJWK, ...] = ()
        self._fetched_at = -math.inf  # clock() of the last fetch attempt, good or bad
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._verified = VerifiedTokens(clock=clock)  # emptied whenever the key set is fetched again (a key may be gone)

    async def open(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self._config.jwks_timeout)
        self._session = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def authenticate(self, token: str) -> Principal:
        _check_shape(token)
        cache_key = VerifiedTokens.key(token)
        principal = self._verified.get(cache_key)
        if principal is not None:
            return principal
        header = _unverified_header(token)
        # Checked before any key lookup, so a forged HS256 or "none" token can never cause a refetch.
        # The jku, x5u and jwk headers are deliberately never read: keys come only from jwks_url.
        if header.get("alg") not in JWKS_ALGORITHMS:
            raise AuthenticationError("token algorithm not allowed")
        key = await self._key_for(header.get("kid"))
        config = self._config
        principal, expires_at = _verify(
            token,
            key,
            (key.algorithm_name,),
            now=self._clock(),
            issuer=config.issuer,
            audience=config.audience,
            leeway=config.leeway_seconds,
        )
        self._verified.put(cache_key, principal, expires_at)
        return principal

    async def _key_for(self, kid: str | None) -> jwt.PyJWK:
        key = self._select(kid)
        if key is None:
            await self._refresh()
            key = self._select(kid)
        if key is None:
            raise AuthenticationError("unknown token signing key" if kid else "token has no kid header")
        return key

    def _select(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            # Without a kid the choice is unambiguous only when the provider publishes a single key.
            return self._keys[0] if len(self._keys) == 1 else None
        return next((key for key in self._keys if key.key_id == kid), None)

    async def _refresh(self) -> None:
        async with self._lock:
            # Requests that queued on the lock find the fetch just done and share it instead of repeating it.
            # a wall clock: a step backwards (NTP) counts as the interval having passed, never as a long wait
            now = self._clock()
            if 0 <= now - self._fetched_at < self._config.jwks_refresh_interval:
                return
            self._fetched_at = now
            try:
                self._keys = await self._fetch()
                self._verified.clear()  # a token signed with a key the provider has retired must not stay trusted
            except _JwksUnavailable as error:
                log.warning("jwks_fetch_failed", url=self._config.jwks_url, error=str(error), kept=len(self._keys))

    async def _fetch(self) -> tuple[jwt.PyJWK, ...]:
        if self._session is None:
            raise RuntimeError("JwksAuthenticator used before open()")
        try:
            async with self._session.get(self._config.jwks_url) as response:
                if response.status != 200:
                    raise _JwksUnavailable(f"HTTP status {response.status}")
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise _JwksUnavailable(f"{type(error).__name__}: {error}") from error
        keys = _signing_keys(document)
        if not keys:
            raise _JwksUnavailable("no usable RS256/ES256 signing key in the key set")
        return keys


def create_authenticator(config: AuthConfig, clock: Clock = time.time) -> Authenticator:
    """The authenticator for ``config.mode``; it does no I/O until open(). ``clock`` (seconds since the epoch)
    decides a token's expiry, its cache's and the JWKS refetch interval alike."""
    modes = {"local": LocalAuthenticator, "jwks": JwksAuthenticator}
    if config.mode not in modes:
        raise ConfigurationError(f"unknown auth.mode {config.mode!r}; valid modes: {', '.join(modes)}")
    return modes[config.mode](config, clock)


def resolve_local_secret(config: AuthConfig) -> str:
    """The HS256 secret: ``config.secret`` when set, else the one kept in ``config.secret_file``.

    The file is created on first use (mode 0600, parent directories included) and reused afterwards, so
    ``erapi token`` and ``erapi serve`` agree without any setup.
    """
    if config.secret:
        return _strong_secret(config.secret, "config key auth.secret (ERAPI_AUTH_SECRET)")
    path = Path(config.secret_file).expanduser()
    try:
        if not path.exists():
            return _create_secret_file(path)
        return _read_secret_file(path)
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"cannot use auth secret file {path}: {error}") from error


def mint_local_token(
    secret: str, subject: str, scopes: Iterable[str], ttl_seconds: int, now: float | None = None
) -> str:
    """An HS256 token for ``subject`` valid ``ttl_seconds`` from ``now``; a str ``scopes`` is space-separated."""
    if not subject:
        raise ValueError("subject must be a non-empty string")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    # A bare string is an iterable of characters; treat it as the space-separated list the CLI passes.
    scope = scopes if isinstance(scopes, str) else " ".join(scopes)
    issued_at = int(time.time() if now is None else now)
    claims = {"sub": subject, "scope": " ".join(scope.split()), "iat": issued_at, "exp": issued_at + ttl_seconds}
    return jwt.encode(claims, _strong_secret(secret, "the local token secret"), algorithm="HS256")


def _check_shape(token: Any) -> None:
    if not isinstance(token, str) or not token:
        raise AuthenticationError("missing bearer token")
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthenticationError("token too large")
    if not token.isascii():  # a JWT is base64url and dots; this also keeps len() equal to the byte count
        raise AuthenticationError("malformed token")


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise AuthenticationError(_message(error)) from None


def _verify(
    token: str,
    key: str | jwt.PyJWK,
    algorithms: tuple[str, ...],
    *,
    now: float,
    issuer: str = "",
    audience: str = "",
    leeway: float = 0,
) -> tuple[Principal, float]:
    """The token's Principal and its ``exp`` (seconds since the epoch); AuthenticationError when it fails.

    PyJWT checks everything but ``exp``, which is checked against ``now``: the authenticator's clock, which its
    cache of verified tokens reads too (PyJWT reads the system clock and takes no other).
    """
    options: Any = {
        "require": ["exp", "sub"],
        "verify_exp": False,
        "verify_iss": bool(issuer),
        "verify_aud": bool(audience),  # PyJWT would otherwise reject any token carrying an aud claim
        "enforce_minimum_key_length": True,  # an error, never a warning per request
    }
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            options=options,
            issuer=issuer or None,
            audience=audience or None,
            leeway=leeway,
        )
    except jwt.PyJWTError as error:
        raise AuthenticationError(_message(error)) from None
    expires_at = _unexpired(claims["exp"], now, leeway)
    return _principal(claims), expires_at


def _unexpired(exp: Any, now: float, leeway: float) -> float:
    """``exp`` (a NumericDate, RFC 7519) when it is still ahead of ``now`` within ``leeway``, as PyJWT decides."""
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not math.isfinite(exp):
        raise AuthenticationError("malformed token")
    if exp <= now - leeway:
        raise AuthenticationError("token expired")
    return float(exp)


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims["sub"]  # present and a string: PyJWT checked both
    if not subject.strip():
        raise AuthenticationError("token sub claim is empty")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise AuthenticationError("token scope claim must be a space-separated string")
    return Principal(subject=subject, scopes=frozenset(scope.split()))


def _message(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"token is missing the {error.claim} claim"
    for kind, message in _ERROR_MESSAGES:
        if isinstance(error, kind):
            return message
    return "invalid token"


def _signing_keys(document: Any) -> tuple[jwt.PyJWK, ...]:
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise _JwksUnavailable("response is not a JWK set")
    return tuple(key for key in map(_signing_key, entries) if key is not None)


def _signing_key(entry: Any) -> jwt.PyJWK | None:
    """``entry`` as a verification key, or None unless it is a sound RS256/ES256 signature key."""
    if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
        return None
    try:
        key = jwt.PyJWK(entry)
        if key.algorithm_name not in JWKS_ALGORITHMS or key.Algorithm.check_key_length(key.key):
            return None
        key.Algorithm.prepare_key(key.key)  # rejects e.g. a P-384 key labelled ES256
    except (jwt.PyJWTError, LookupError, TypeError, ValueError):
        # The provider's document is untrusted input too: skip a malformed entry, keep the others.
        return None
    return key


def _strong_secret(secret: str, source: str) -> str:
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ConfigurationError(f"{source} must be at least {MIN_SECRET_BYTES} bytes long")
    return secret


def _read_secret_file(path: Path) -> str:
    return _strong_secret(path.read_text(encoding="utf-8").strip(), f"auth secret file {path}")


def _create_secret_file(path: Path) -> str:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Written under a temporary name (mkstemp creates it with mode 0600), then hard-linked into place: a
    # concurrent `erapi token` and `erapi serve` never read a half-written file, and the first link wins.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secret + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return _read_secret_file(path)
    finally:
        os.unlink(temporary)
    return secret
