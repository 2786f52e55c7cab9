"""The cache of verified tokens: it saves re-verifying a token, and never keeps one alive past its exp."""

from __future__ import annotations

import time

import pytest

from erapi.auth import AuthenticationError, Principal, VerifiedTokens, create_authenticator, mint_local_token
from erapi.config import AuthConfig
from tests.clock import ManualClock

SECRET = "c" * 48
ALICE = Principal("alice", frozenset({"apollo_read"}))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())  # tokens are minted and checked at about the real time, then time moves


def test_an_entry_lives_at_most_its_seconds_and_never_past_exp(clock):
    cache = VerifiedTokens(seconds=30, entries=10, clock=clock)
    cache.put(b"long", ALICE, expires_at=clock.now + 3600)
    cache.put(b"short", ALICE, expires_at=clock.now + 5)
    clock.now += 4
    assert cache.get(b"long") == ALICE and cache.get(b"short") == ALICE
    clock.now += 2  # past the short token's exp
    assert cache.get(b"short") is None
    clock.now += 25  # past the cache's own 30 s
    assert cache.get(b"long") is None


def test_an_expired_token_is_not_cached_and_the_oldest_entry_goes_first(clock):
    cache = VerifiedTokens(seconds=30, entries=2, clock=clock)
    cache.put(b"dead", ALICE, expires_at=clock.now - 1)
    assert cache.get(b"dead") is None and len(cache) == 0
    for key in (b"a", b"b", b"c"):
        cache.put(key, ALICE, expires_at=clock.now + 60)
    assert len(cache) == 2
    assert cache.get(b"a") is None and cache.get(b"c") == ALICE


async def test_a_cached_token_is_refused_once_it_expires(clock):
    # the cache and the exp check read the same injected clock: moving it past exp expires the token for both
    authenticator = create_authenticator(AuthConfig(secret=SECRET, leeway_seconds=0), clock=clock)
    await authenticator.open()
    try:
        token = mint_local_token(SECRET, "alice", ["apollo_read"], ttl_seconds=2, now=clock.now)  # exp: 1 to 2 s ahead
        assert (await authenticator.authenticate(token)).subject == "alice"
        assert (await authenticator.authenticate(token)).subject == "alice"  # served from the cache
        clock.advance(2.2)
        with pytest.raises(AuthenticationError):
            await authenticator.authenticate(token)
    finally:
        await authenticator.close()
