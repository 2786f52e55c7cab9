"""Rate limiting per principal: the token bucket on a fake clock, and 429 with Retry-After through the API."""

from __future__ import annotations

import io

import orjson
import pytest

from erapi.keys import rate_limiter_key, storage_key
from erapi.middleware import http_headers, http_status
from erapi.ratelimit import RateLimited, RateLimiter
from storage_plugins.base import LogQuery
from tests.api_fixtures import entity
from tests.clock import ManualClock


def test_a_burst_is_allowed_then_the_rate():
    clock = ManualClock()
    limiter = RateLimiter(requests_per_second=2, burst=3, clock=clock)
    assert [limiter.wait_time("alice") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait_time("alice") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.wait_time("alice") == 0
    assert limiter.wait_time("alice") == pytest.approx(0.5)


def test_buckets_are_per_principal():
    limiter = RateLimiter(requests_per_second=1, burst=1, clock=ManualClock())
    limiter.check("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")
    limiter.check("bob")


def test_refill_never_exceeds_the_burst():
    clock = ManualClock()
    limiter = RateLimiter(requests_per_second=10, burst=2, clock=clock)
    limiter.check("alice")
    clock.now += 3600
    assert [limiter.wait_time("alice") for _ in range(3)] == [0, 0, pytest.approx(0.1)]


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one():
    clock = ManualClock()
    limiter = RateLimiter(requests_per_second=0.25, burst=1, clock=clock)
    limiter.check("alice")
    with pytest.raises(RateLimited) as refused:
        limiter.check("alice")
    assert http_status(refused.value) == 429
    assert http_headers(refused.value) == {"Retry-After": "4"}
    fast = RateLimiter(requests_per_second=100, burst=1, clock=clock)
    fast.check("alice")
    with pytest.raises(RateLimited) as refused:
        fast.check("alice")
    assert http_headers(refused.value) == {"Retry-After": "1"}


def test_idle_buckets_are_forgotten_when_too_many_principals_are_tracked():
    clock = ManualClock()
    limiter = RateLimiter(requests_per_second=1, burst=1, clock=clock, max_tracked=3)
    for name in ("a", "b", "c"):
        limiter.check(name)
    clock.now += 10  # a, b, c are full again: forgetting them changes nothing
    limiter.check("d")
    assert limiter.wait_time("a") == 0
    assert len(limiter._buckets) <= 3


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (1, 0)])
def test_nonsense_settings_are_refused(rate, burst):
    with pytest.raises(ValueError):
        RateLimiter(rate, burst)


async def test_rate_limiting_is_off_by_default(api):
    assert api.client.app[rate_limiter_key] is None
    for _ in range(50):
        await api.call("GET", "/apollo/schema/entitytypes/BRICK_0_4__AHU", 200, schema="entity-types")


async def test_a_principal_over_its_rate_gets_429_with_retry_after_and_nothing_is_written(app_factory):
    # a refill rate this slow cannot add a token while the test runs: the outcome does not depend on timing
    api = await app_factory(ratelimit={"enabled": True, "requests_per_second": 0.001, "burst": 3})
    await api.register("site")
    await api.entities("site", entity("ahu-1"))
    await api.call("GET", "/apollo/er/entities/ahu-1", 200, collection="site", schema="entity-read")
    storage = api.client.app[storage_key]
    before = await storage.count_logs(LogQuery(collection_id="site"))

    response = await api.client.post("/apollo/er/entities", data=io.BytesIO(orjson.dumps(entity("ahu-2"))),
                                     headers={**api.headers, "ercollectionid": "site",
                                              "Content-Type": "application/json"})
    assert response.status == 429
    body = await response.json()
    assert body["status"]["code"] == "429"
    assert body["status"]["message"].startswith("Rate limit exceeded")
    assert 1 <= int(response.headers["Retry-After"]) <= 1000
    assert response.headers["Cache-Control"] == "no-store"
    assert await storage.count_logs(LogQuery(collection_id="site")) == before
    assert await storage.get_current("entities", "site", ["ahu-2"]) == {}

    # another principal has a bucket of its own; a request without a token is refused before any bucket
    await api.as_("bob").call("GET", "/apollo/schema/entitytypes/BRICK_0_4__AHU", 200, schema="entity-types")
    anonymous = await api.client.get("/apollo/schema/entitytypes")
    assert anonymous.status == 401
    # probes are not rate limited
    assert (await api.client.get("/healthz")).status == 200
