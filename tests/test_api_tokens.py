"""Bearer tokens at the HTTP level: every bad token is 401 with WWW-Authenticate, scopes give 403, JWKS wiring.

The authenticators themselves are tested in test_auth.py; this module checks what a client of the API sees.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.api_fixtures import TEST_SECRET, entity, token

ENTITY_PATH = "/apollo/er/entities"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


def hs256(payload: dict, secret: bytes) -> str:
    """An HS256 JWT signed by hand, so that any byte string can serve as the secret."""
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(**overrides) -> dict:
    base = {"sub": "alice", "scope": "apollo_read apollo_write", "exp": int(time.time()) + 300}
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


BAD_TOKENS = {
    "expired": (lambda: token("alice", ttl=60, now=time.time() - 3600), "token expired"),
    "other secret": (lambda: jwt.encode(claims(), "another-secret-" + "y" * 40, algorithm="HS256"),
                     "invalid token signature"),
    "alg none": (lambda: unsigned(claims()), "token algorithm not allowed"),
    "missing exp": (lambda: jwt.encode(claims(exp=None), TEST_SECRET, algorithm="HS256"),
                    "token is missing the exp claim"),
    "missing sub": (lambda: jwt.encode(claims(sub=None), TEST_SECRET, algorithm="HS256"),
                    "token is missing the sub claim"),
    "garbage": (lambda: "garbage", "malformed token"),
    "three garbage segments": (lambda: "a.b.c", "malformed token"),
}


@pytest.fixture
async def site(api):
    await api.register("site")
    await api.entities("site", entity("ahu-1"))
    return api


async def assert_401(api, method: str, path: str, authorization: str | None, message: str, **kwargs) -> None:
    headers = {"ercollectionid": "site", **({"Authorization": authorization} if authorization is not None else {})}
    response = await api.client.request(method, path, headers=headers, **kwargs)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await response.json() == {"status": {"message": message, "code": "401"}}


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_a_bad_token_on_a_write_is_401_and_writes_nothing(site, kind):
    make, message = BAD_TOKENS[kind]
    await assert_401(site, "POST", ENTITY_PATH, f"Bearer {make()}", message, json=entity("new-1"))
    await site.call("GET", f"{ENTITY_PATH}/new-1", 404, collection="site")
    await site.status_logs("site", {"entityid": "new-1"}, expect=404)


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_a_bad_token_on_a_read_is_401(site, kind):
    make, message = BAD_TOKENS[kind]
    await assert_401(site, "GET", f"{ENTITY_PATH}/ahu-1", f"Bearer {make()}", message)


@pytest.mark.parametrize(
    "authorization, message",
    [
        (None, "A bearer token is required"),
        ("", "A bearer token is required"),
        ("Bearer", "A bearer token is required"),
        ("Bearer    ", "A bearer token is required"),
        (f"Basic {b64(b'alice:secret')}", "A bearer token is required"),
    ],
)
async def test_a_missing_token_is_401(site, authorization, message):
    await assert_401(site, "GET", f"{ENTITY_PATH}/ahu-1", authorization, message)


async def test_the_bearer_scheme_is_case_insensitive(site):
    response = await site.client.get(f"{ENTITY_PATH}/ahu-1", headers={
        "ercollectionid": "site", "Authorization": f"bearer {token('alice')}"})
    assert response.status == 200


async def test_a_token_is_checked_before_the_body_is_read(site):
    response = await site.client.post(ENTITY_PATH, data=b"{not json", headers={
        "ercollectionid": "site", "Authorization": "Bearer garbage", "Content-Type": "application/json"})
    assert response.status == 401
    assert (await response.json())["status"]["message"] == "malformed token"


async def test_read_only_scope_on_a_write_is_403_and_writes_nothing(site):
    reader = site.as_("alice", "apollo_read")
    body = await reader.entities("site", entity("new-1"), expect=403)
    assert body["status"]["message"] == "The token lacks the scope apollo_write"
    body = await reader.call("POST", "/apollo/collections", 403, json_body={"collectionId": "other"})
    assert body["status"]["message"] == "The token lacks the scope apollo_write"
    await site.call("GET", f"{ENTITY_PATH}/new-1", 404, collection="site")
    await site.call("GET", "/apollo/collections/other", 404)


async def test_write_only_scope_on_a_read_is_403(site):
    body = await site.as_("alice", "apollo_write").call("GET", f"{ENTITY_PATH}/ahu-1", 403, collection="site")
    assert body["status"]["message"] == "The token lacks the scope apollo_read"


async def test_scopes_are_whole_words(site):
    for scopes in ("apollo_read_all apollo_writer", "APOLLO_READ"):
        await site.as_("alice", scopes).call("GET", f"{ENTITY_PATH}/ahu-1", 403, collection="site")


# ---- JWKS mode, wired into the app ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def jwks_api(app_factory, aiohttp_server, rsa_key):
    jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    jwk.update(kid="k1", alg="RS256", use="sig")

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    provider = web.Application()
    provider.router.add_get("/.well-known/jwks.json", jwks)
    server = await aiohttp_server(provider)
    return await app_factory(auth={"mode": "jwks", "jwks_url": str(server.make_url("/.well-known/jwks.json"))})


async def test_jwks_mode_accepts_rs256_and_refuses_hs256_forged_with_the_public_key(jwks_api, rsa_key):
    good = jwt.encode(claims(scope="apollo_read"), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    response = await jwks_api.client.get("/apollo/schema/entitytypes", headers={"Authorization": f"Bearer {good}"})
    assert response.status == 200
    assert (await response.json())["status"]["code"] == "200"

    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = hs256(claims(scope="apollo_read"), pem)
    response = await jwks_api.client.get("/apollo/schema/entitytypes", headers={"Authorization": f"Bearer {forged}"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await response.json() == {"status": {"message": "token algorithm not allowed", "code": "401"}}

    # and a local HS256 token means nothing in JWKS mode
    local = token("alice", "apollo_read")
    response = await jwks_api.client.get("/apollo/schema/entitytypes", headers={"Authorization": f"Bearer {local}"})
    assert response.status == 401
