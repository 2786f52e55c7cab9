"""Bearer-token authentication: local HS256 mode, and JWKS mode against test identity-provider endpoints."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import stat
import time

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.api_jws import PyJWS
from jwt.warnings import InsecureKeyLengthWarning

from erapi.auth import (
    MAX_TOKEN_BYTES,
    AuthenticationError,
    Principal,
    create_authenticator,
    mint_local_token,
    resolve_local_secret,
)
from erapi.config import AuthConfig, load_config
from erapi.errors import ConfigurationError
from tests.clock import ManualClock

SECRET = "s" * 48
OTHER_SECRET = "o" * 48
ISSUER = "https://idp.example.test/"
AUDIENCE = "erapi"
SCOPES = ("apollo_read", "apollo_write")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(header: object, payload: object) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


def claims(**overrides: object) -> dict:
    base = {"sub": "alice", "scope": "apollo_read", "exp": int(time.time()) + 300, "iss": ISSUER, "aud": AUDIENCE}
    return {name: value for name, value in {**base, **overrides}.items() if value is not None}


@pytest.fixture
async def opened():
    """Create and open authenticators; every one is closed at teardown."""
    authenticators = []

    async def factory(config: AuthConfig, clock=time.time):
        authenticator = create_authenticator(config, clock=clock)
        await authenticator.open()
        authenticators.append(authenticator)
        return authenticator

    yield factory
    for authenticator in authenticators:
        await authenticator.close()


@pytest.fixture
async def local(opened):
    return await opened(AuthConfig(secret=SECRET))


async def assert_rejected(authenticator, token: object, message: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await authenticator.authenticate(token)
    assert str(caught.value) == message


# ---- local mode ------------------------------------------------------------------------------------------


async def test_local_round_trip(local):
    token = mint_local_token(SECRET, "alice", SCOPES, ttl_seconds=60)
    assert await local.authenticate(token) == Principal("alice", frozenset(SCOPES))


async def test_local_scopes_as_space_separated_string_and_missing_scope(local):
    token = mint_local_token(SECRET, "alice", "apollo_read  apollo_write", ttl_seconds=60)
    assert (await local.authenticate(token)).scopes == frozenset(SCOPES)
    unscoped = jwt.encode({"sub": "bob", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert await local.authenticate(unscoped) == Principal("bob", frozenset())


def test_secret_file_created_0600_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = AuthConfig(secret_file="~/.config/erapi/local-secret")
    first = resolve_local_secret(config)
    path = tmp_path / ".config" / "erapi" / "local-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first
    assert len(first) >= 64
    assert resolve_local_secret(config) == first
    assert [entry.name for entry in path.parent.iterdir()] == ["local-secret"]  # no temporary file left


async def test_token_command_and_server_agree_through_secret_file(tmp_path, opened):
    config = AuthConfig(secret_file=str(tmp_path / "secret"))
    token = mint_local_token(resolve_local_secret(config), "alice", SCOPES, ttl_seconds=60)
    server = await opened(config)
    assert await server.authenticate(token) == Principal("alice", frozenset(SCOPES))


async def test_environment_secret_wins_over_secret_file(tmp_path, opened):
    secret_file = tmp_path / "secret"
    secret_file.write_text(OTHER_SECRET + "\n")
    from_environment = load_config(environ={"ERAPI_AUTH_SECRET": SECRET}).auth
    config = dataclasses.replace(from_environment, secret_file=str(secret_file))
    assert resolve_local_secret(config) == SECRET
    assert secret_file.read_text() == OTHER_SECRET + "\n"
    server = await opened(config)
    assert (await server.authenticate(mint_local_token(SECRET, "alice", [], 60))).subject == "alice"
    await assert_rejected(server, mint_local_token(OTHER_SECRET, "alice", [], 60), "invalid token signature")


def test_short_secret_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        resolve_local_secret(AuthConfig(secret="short"))
    (tmp_path / "secret").write_text("\n")
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        resolve_local_secret(AuthConfig(secret_file=str(tmp_path / "secret")))


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param("", "missing bearer token", id="empty"),
        pytest.param(None, "missing bearer token", id="none"),
        pytest.param("garbage", "malformed token", id="garbage"),
        pytest.param("a.b.c", "malformed token", id="three-junk-segments"),
        pytest.param("!!!.@@@.###", "malformed token", id="not-base64url"),
        pytest.param(f"{b64(b'not json')}.{b64(b'{}')}.c2ln", "malformed token", id="header-not-json"),
        pytest.param(segments([1, 2], {}) + ".c2ln", "malformed token", id="header-not-object"),
        pytest.param(segments({"alg": "HS256"}, "x") + ".c2ln", "invalid token signature", id="unsigned-junk"),
        pytest.param(segments({"alg": ["HS256"]}, {}) + ".c2ln", "token algorithm not allowed", id="alg-list"),
        pytest.param(segments({"alg": "HS256", "kid": 7}, {}) + ".c2ln", "invalid token", id="kid-not-string"),
        pytest.param("x" * (MAX_TOKEN_BYTES + 1), "token too large", id="huge"),
        pytest.param("tök.én.sig", "malformed token", id="non-ascii"),
        pytest.param("\udcff.e30.c2ln", "malformed token", id="lone-surrogate"),
    ],
)
async def test_local_rejects_missing_garbage_and_malformed_tokens(local, token, message):
    await assert_rejected(local, token, message)


async def test_local_rejects_oversized_token_even_when_validly_signed(local):
    token = mint_local_token(SECRET, "alice", ["x" * MAX_TOKEN_BYTES], ttl_seconds=60)
    await assert_rejected(local, token, "token too large")


async def test_local_expired_token(local):
    token = mint_local_token(SECRET, "alice", SCOPES, ttl_seconds=60, now=time.time() - 3600)
    await assert_rejected(local, token, "token expired")


async def test_local_wrong_signature(local):
    await assert_rejected(local, mint_local_token(OTHER_SECRET, "alice", SCOPES, 60), "invalid token signature")


async def test_local_tampered_payload(local):
    header, _, signature = mint_local_token(SECRET, "alice", ["apollo_read"], 60).split(".")
    payload = b64(json.dumps({"sub": "alice", "scope": "apollo_write", "exp": int(time.time()) + 60}).encode())
    await assert_rejected(local, f"{header}.{payload}.{signature}", "invalid token signature")


async def test_local_alg_none(local):
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none")
    await assert_rejected(local, token, "token algorithm not allowed")


async def test_local_missing_exp(local):
    token = jwt.encode({"sub": "alice", "scope": "apollo_read"}, SECRET, algorithm="HS256")
    await assert_rejected(local, token, "token is missing the exp claim")


async def test_local_missing_sub(local):
    token = jwt.encode({"scope": "apollo_read", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    await assert_rejected(local, token, "token is missing the sub claim")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"sub": ""}, "token sub claim is empty", id="empty-sub"),
        pytest.param({"sub": 42}, "invalid token", id="sub-not-string"),
        pytest.param({"scope": ["x"]}, "token scope claim must be a space-separated string", id="scope-list"),
        pytest.param({"exp": "tomorrow"}, "malformed token", id="exp-not-number"),
        pytest.param({"exp": 1e400}, "malformed token", id="exp-infinite"),
        pytest.param({"nbf": int(time.time()) + 3600}, "token not yet valid", id="not-yet-valid"),
    ],
)
async def test_local_rejects_bad_claims(local, extra, message):
    payload = {"sub": "alice", "exp": int(time.time()) + 60, **extra}
    await assert_rejected(local, jwt.encode(payload, SECRET, algorithm="HS256"), message)


async def test_local_rejects_signed_payload_that_is_not_an_object(local):
    token = PyJWS().encode(b'["alice"]', SECRET, algorithm="HS256")
    await assert_rejected(local, token, "malformed token")


def test_create_authenticator_rejects_unknown_mode_and_jwks_without_url():
    with pytest.raises(ConfigurationError, match="valid modes: local, jwks"):
        create_authenticator(AuthConfig(mode="ldap"))
    with pytest.raises(ConfigurationError, match="jwks_url"):
        create_authenticator(AuthConfig(mode="jwks"))


# ---- JWKS mode -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key_2():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(private_key, kid: str) -> dict:
    if isinstance(private_key, rsa.RSAPrivateKey):
        jwk, alg = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "RS256"
    else:
        jwk, alg = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "ES256"
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def sign(private_key, kid: str | None, headers: dict | None = None, **overrides: object) -> str:
    alg = "RS256" if isinstance(private_key, rsa.RSAPrivateKey) else "ES256"
    header = {"kid": kid, **(headers or {})} if kid else headers
    return jwt.encode(claims(**overrides), private_key, algorithm=alg, headers=header)


class JwksEndpoint:
    """A test identity provider's JWKS endpoint that counts the requests it answers."""

    def __init__(self) -> None:
        self.keys: list[dict] = []
        self.failure: str | None = None  # None, "status", "bad-json" or "no-keys"
        self.delay = 0.0
        self.requests = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        await asyncio.sleep(self.delay)
        if self.failure == "status":
            return web.json_response({"error": "down"}, status=500)
        if self.failure == "bad-json":
            return web.Response(text="{not json", content_type="application/json")
        if self.failure == "no-keys":
            return web.json_response({"keys": []})
        return web.json_response({"keys": self.keys})


@pytest.fixture
def start_endpoint(aiohttp_server):
    async def start() -> tuple[JwksEndpoint, object]:
        endpoint = JwksEndpoint()
        app = web.Application()
        app.router.add_get("/jwks", endpoint.handle)
        server = await aiohttp_server(app, host="127.0.0.1")
        endpoint.url = str(server.make_url("/jwks"))
        return endpoint, server

    return start


@pytest.fixture
async def idp(start_endpoint, rsa_key, ec_key):
    endpoint, _ = await start_endpoint()
    endpoint.keys = [public_jwk(rsa_key, "rsa-1"), public_jwk(ec_key, "ec-1")]
    return endpoint


def jwks_config(endpoint: JwksEndpoint, **overrides: object) -> AuthConfig:
    settings = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_refresh_interval": 60.0, **overrides}
    return AuthConfig(mode="jwks", jwks_url=endpoint.url, **settings)


async def test_jwks_accepts_valid_rs256_token(idp, opened, rsa_key):
    authenticator = await opened(jwks_config(idp))
    principal = await authenticator.authenticate(sign(rsa_key, "rsa-1"))
    assert principal == Principal("alice", frozenset({"apollo_read"}))
    assert idp.requests == 1


async def test_jwks_accepts_valid_es256_token(idp, opened, ec_key):
    authenticator = await opened(jwks_config(idp))
    principal = await authenticator.authenticate(sign(ec_key, "ec-1"))
    assert principal == Principal("alice", frozenset({"apollo_read"}))


async def test_jwks_key_set_is_cached(idp, opened, rsa_key, ec_key):
    authenticator = await opened(jwks_config(idp, jwks_refresh_interval=0.0))
    for _ in range(3):
        await authenticator.authenticate(sign(rsa_key, "rsa-1"))
        await authenticator.authenticate(sign(ec_key, "ec-1"))
    assert idp.requests == 1


async def test_jwks_wrong_issuer(idp, opened, rsa_key):
    authenticator = await opened(jwks_config(idp))
    await assert_rejected(authenticator, sign(rsa_key, "rsa-1", iss=ISSUER + "evil"), "invalid token issuer")
    await assert_rejected(authenticator, sign(rsa_key, "rsa-1", iss=None), "token is missing the iss claim")


async def test_jwks_wrong_audience(idp, opened, rsa_key):
    authenticator = await opened(jwks_config(idp))
    await assert_rejected(authenticator, sign(rsa_key, "rsa-1", aud="other-api"), "invalid token audience")
    await assert_rejected(authenticator, sign(rsa_key, "rsa-1", aud=None), "token is missing the aud claim")


async def test_jwks_issuer_and_audience_unchecked_when_not_configured(idp, opened, rsa_key):
    authenticator = await opened(jwks_config(idp, issuer="", audience=""))
    token = sign(rsa_key, "rsa-1", iss="https://anyone.test/", aud="anything")
    assert (await authenticator.authenticate(token)).subject == "alice"


async def test_jwks_expired_and_missing_exp(idp, opened, rsa_key):
    authenticator = await opened(jwks_config(idp, leeway_seconds=30))
    await assert_rejected(authenticator, sign(rsa_key, "rsa-1", exp=int(time.time()) - 60), "token expired")
    assert (await authenticator.authenticate(sign(rsa_key, "rsa-1", exp=int(time.time()) - 10))).subject == "alice"
    await assert_rejected(authenticator, sign(rsa_key, "rsa-1", exp=None), "token is missing the exp claim")


async def test_jwks_wrong_signature(idp, opened, rsa_key_2):
    authenticator = await opened(jwks_config(idp))
    await assert_rejected(authenticator, sign(rsa_key_2, "rsa-1"), "invalid token signature")


async def test_jwks_rejects_hs256_forged_with_public_key_pem(idp, opened, rsa_key):
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = segments({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims())
    signature = b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    authenticator = await opened(jwks_config(idp))
    await assert_rejected(authenticator, f"{signing_input}.{signature}", "token algorithm not allowed")
    assert idp.requests == 0  # rejected before any key lookup


async def test_jwks_rejects_alg_none(idp, opened):
    token = jwt.encode(claims(), None, algorithm="none", headers={"kid": "rsa-1"})
    authenticator = await opened(jwks_config(idp))
    await assert_rejected(authenticator, token, "token algorithm not allowed")


async def test_jwks_rejects_algorithm_that_does_not_match_the_key(idp, opened, ec_key):
    forged = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "rsa-1"})
    authenticator = await opened(jwks_config(idp))
    await assert_rejected(authenticator, forged, "token algorithm not allowed")


async def test_jwks_key_rotation(idp, opened, rsa_key, rsa_key_2):
    authenticator = await opened(jwks_config(idp, jwks_refresh_interval=0.0))
    assert (await authenticator.authenticate(sign(rsa_key, "rsa-1"))).subject == "alice"
    idp.keys = [public_jwk(rsa_key_2, "rsa-2")]
    assert (await authenticator.authenticate(sign(rsa_key_2, "rsa-2", sub="bob"))).subject == "bob"
    assert idp.requests == 2
    await assert_rejected(authenticator, sign(rsa_key, "rsa-1"), "unknown token signing key")  # retired key


async def test_jwks_refetch_is_rate_limited_and_shared(idp, opened, rsa_key):
    idp.delay = 0.05  # keep the fetch in flight while the whole burst arrives
    clock = ManualClock(time.time())
    authenticator = await opened(jwks_config(idp, jwks_refresh_interval=0.5), clock=clock)
    burst = [sign(rsa_key, f"unknown-{number}") for number in range(20)]
    results = await asyncio.gather(*map(authenticator.authenticate, burst), return_exceptions=True)
    assert [str(result) for result in results] == ["unknown token signing key"] * 20
    assert idp.requests == 1
    results = await asyncio.gather(*map(authenticator.authenticate, burst), return_exceptions=True)
    assert all(isinstance(result, AuthenticationError) for result in results)
    assert idp.requests == 1
    clock.advance(0.6)
    results = await asyncio.gather(*map(authenticator.authenticate, burst), return_exceptions=True)
    assert all(isinstance(result, AuthenticationError) for result in results)
    assert idp.requests == 2


@pytest.mark.parametrize("failure", ["status", "bad-json", "no-keys"])
async def test_jwks_failure_keeps_last_good_key_set(idp, opened, rsa_key, ec_key, failure):
    authenticator = await opened(jwks_config(idp, jwks_refresh_interval=0.0))
    assert (await authenticator.authenticate(sign(rsa_key, "rsa-1"))).subject == "alice"
    idp.failure = failure
    await assert_rejected(authenticator, sign(rsa_key, "rsa-unknown"), "unknown token signing key")
    assert idp.requests == 2
    assert (await authenticator.authenticate(sign(rsa_key, "rsa-1"))).subject == "alice"
    assert (await authenticator.authenticate(sign(ec_key, "ec-1"))).subject == "alice"


async def test_jwks_connection_failure_keeps_last_good_key_set(start_endpoint, opened, rsa_key):
    endpoint, server = await start_endpoint()
    endpoint.keys = [public_jwk(rsa_key, "rsa-1")]
    authenticator = await opened(jwks_config(endpoint, jwks_refresh_interval=0.0))
    assert (await authenticator.authenticate(sign(rsa_key, "rsa-1"))).subject == "alice"
    await server.close()
    await assert_rejected(authenticator, sign(rsa_key, "rsa-unknown"), "unknown token signing key")
    assert (await authenticator.authenticate(sign(rsa_key, "rsa-1"))).subject == "alice"


async def test_jwks_unreachable_from_the_start(start_endpoint, opened, rsa_key):
    endpoint, server = await start_endpoint()
    await server.close()
    authenticator = await opened(jwks_config(endpoint, jwks_timeout=2.0))
    await assert_rejected(authenticator, sign(rsa_key, "rsa-1"), "unknown token signing key")


async def test_jwks_ignores_jku_x5u_and_jwk_headers(idp, start_endpoint, opened):
    attacker, _ = await start_endpoint()
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker.keys = [public_jwk(attacker_key, "attacker-1")]
    headers = {"jku": attacker.url, "x5u": attacker.url, "jwk": public_jwk(attacker_key, "attacker-1")}
    token = sign(attacker_key, "attacker-1", headers=headers)
    authenticator = await opened(jwks_config(idp))
    await assert_rejected(authenticator, token, "unknown token signing key")
    assert attacker.requests == 0
    assert idp.requests == 1


async def test_jwks_token_without_kid_needs_a_single_key(start_endpoint, opened, rsa_key, ec_key):
    endpoint, _ = await start_endpoint()
    endpoint.keys = [public_jwk(rsa_key, "rsa-1")]
    single = await opened(jwks_config(endpoint))
    assert (await single.authenticate(sign(rsa_key, None))).subject == "alice"
    endpoint.keys.append(public_jwk(ec_key, "ec-1"))
    ambiguous = await opened(jwks_config(endpoint))
    await assert_rejected(ambiguous, sign(rsa_key, None), "token has no kid header")


async def test_jwks_skips_unusable_keys_in_the_set(start_endpoint, opened, rsa_key):
    endpoint, _ = await start_endpoint()
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    endpoint.keys = [
        {"kty": "oct", "k": b64(b"k" * 32), "kid": "hmac"},
        {**public_jwk(rsa_key, "encryption"), "use": "enc"},
        {**public_jwk(weak, "weak")},
        {"kty": "RSA", "kid": "broken", "n": 5},
        {"kty": "EC", "kid": "list-alg", "alg": ["ES256"]},
        "not an object",
        public_jwk(rsa_key, "rsa-1"),
    ]
    authenticator = await opened(jwks_config(endpoint))
    assert (await authenticator.authenticate(sign(rsa_key, "rsa-1"))).subject == "alice"
    with pytest.warns(InsecureKeyLengthWarning):  # PyJWT signs with a weak key, but only with a warning
        weak_token = sign(weak, "weak")
    await assert_rejected(authenticator, weak_token, "unknown token signing key")
    await assert_rejected(authenticator, sign(rsa_key, "encryption"), "unknown token signing key")
    hmac_token = jwt.encode(claims(), b"k" * 32, algorithm="HS256", headers={"kid": "hmac"})
    await assert_rejected(authenticator, hmac_token, "token algorithm not allowed")


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "x" * (MAX_TOKEN_BYTES + 1), segments({"alg": "RS256", "kid": ["x"]}, {}) + ".c2ln"],
)
async def test_jwks_rejects_garbage_without_fetching(idp, opened, token):
    authenticator = await opened(jwks_config(idp))
    with pytest.raises(AuthenticationError):
        await authenticator.authenticate(token)
    assert idp.requests == 0
