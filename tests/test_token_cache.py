"""The cache of verified tokens: it saves re-verifying a token, and never keeps one alive past its exp."""

from __future__ import annotations

import asyncio
import time

import pytest

from erapi import auth
from erapi.auth import AuthenticationError, Principal, VerifiedTokens, create_authenticator, mint_local_token
from erapi.config import AuthConfig

SECRET = "c" * 48
ALICE = Principal("alice", frozenset({"apollo_read"}))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock(time.time())
    monkeypatch.setattr(auth.time, "time", fake)
    return fake


def test_an_entry_lives_at_most_its_seconds_and_never_past_exp(clock):
    cache = VerifiedTokens(seconds=30, entries=10)
    cache.put(b"long", ALICE, expires_at=clock.now + 3600)
    cache.put(b"short", ALICE, expires_at=clock.now + 5)
    clock.now += 4
    assert cache.get(b"long") == ALICE and cache.get(b"short") == ALICE
    clock.now += 2  # past the short token's exp
    assert cache.get(b"short") is None
    clock.now += 25  # past the cache's own 30 s
    assert cache.get(b"long") is None


def test_an_expired_token_is_not_cached_and_the_oldest_entry_goes_first(clock):
    cache = VerifiedTokens(seconds=30, entries=2)
    cache.put(b"dead", ALICE, expires_at=clock.now - 1)
    assert cache.get(b"dead") is None and len(cache) == 0
    for key in (b"a", b"b", b"c"):
        cache.put(key, ALICE, expires_at=clock.now + 60)
    assert len(cache) == 2
    assert cache.get(b"a") is None and cache.get(b"c") == ALICE


async def test_a_cached_token_is_refused_once_it_expires():
    # real time here: the token's exp is checked by PyJWT's own clock once the cache lets go of it
    authenticator = create_authenticator(AuthConfig(secret=SECRET, leeway_seconds=0))
    await authenticator.open()
    try:
        token = mint_local_token(SECRET, "alice", ["apollo_read"], ttl_seconds=2)  # exp lands 1 to 2 s ahead: iat is whole seconds
        assert (await authenticator.authenticate(token)).subject == "alice"
        assert (await authenticator.authenticate(token)).subject == "alice"  # served from the cache
        await asyncio.sleep(2.2)
        with pytest.raises(AuthenticationError):
            await authenticator.authenticate(token)
    finally:
        await authenticator.close()
