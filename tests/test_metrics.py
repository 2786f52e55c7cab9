"""GET /metrics as Prometheus scrapes it: parsed with prometheus-client's own text parser, counters moving.

The metrics are the process's (prometheus-client's registry): every test reads them before and after it acts.
"""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from erapi.keys import storage_key
from storage_plugins.base import StorageError
from tests.api_fixtures import Api, entity, relationship
from tests.test_jobs import FAST_JOBS, submit, wait_for_job

ENTITIES = "/apollo/er/entities"
METRICS_TOKEN = "scrape-" + "t" * 24


async def scrape(api: Api, headers: dict | None = None) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, keyed by its name and labels."""
    response = await api.client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(await response.text()) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: dict, after: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_request_and_item_counters_move_as_requests_are_answered(api: Api):
    await api.register("c1")
    before = await scrape(api)
    await api.entities("c1", [entity("ahu-1"), entity("ahu-2")])
    await api.entities("c1", [entity("ahu-3"), entity("bad", entity_type="BRICK_0_4__NoSuchType")])
    await api.relationships("c1", relationship("r1", "ahu-1", "ahu-2"))
    await api.call("DELETE", "/apollo/er/entities/ahu-1", 200, collection="c1", params={"cascade": "true"})
    assert (await api.client.get(ENTITIES, headers={"ercollectionid": "c1"})).status == 401
    await api.call("GET", f"{ENTITIES}/ahu-2", 200, collection="c1")
    after = await scrape(api)

    requests = "erapi_http_requests_total"
    assert moved(before, after, requests, method="POST", route=ENTITIES, status="207") == 2
    assert moved(before, after, requests, method="GET", route=ENTITIES, status="401") == 1
    assert moved(before, after, requests, method="GET", route=f"{ENTITIES}/{{entityId}}", status="200") == 1
    latency = "erapi_http_request_duration_seconds"
    assert moved(before, after, f"{latency}_count", method="POST", route=ENTITIES) == 2
    assert moved(before, after, f"{latency}_bucket", method="POST", route=ENTITIES, le="+Inf") == 2
    written, failed = "erapi_items_written_total", "erapi_items_failed_total"
    assert moved(before, after, written, kind="entities", operation="upsert") == 3
    assert moved(before, after, failed, kind="entities") == 1
    assert moved(before, after, written, kind="relationships", operation="upsert") == 1
    assert moved(before, after, written, kind="entities", operation="delete") == 1
    assert moved(before, after, written, kind="relationships", operation="delete") == 1
    # a write makes a constant number of storage calls, each timed; reading the pending items is one more
    assert moved(before, after, "erapi_storage_call_duration_seconds_count", operation="put_current") >= 3
    assert moved(before, after, "erapi_storage_call_duration_seconds_count", operation="pending_items") == 1


async def test_pending_job_items_are_read_when_scraped(app_factory):
    api = await app_factory(jobs={**FAST_JOBS, "workers": 0})  # nobody applies the job: its items stay pending
    await api.register("c1")
    await api.entities("c1", [entity("e1"), entity("e2")])
    await submit(api, [relationship(f"r{i}", "e1", "e2") for i in range(30)])

    assert value(await scrape(api), "erapi_job_pending_items") == 30


async def test_a_job_applied_by_a_worker_counts_its_items(app_factory):
    api = await app_factory(jobs=FAST_JOBS)
    await api.register("c1")
    await api.entities("c1", [entity("e1"), entity("e2")])
    before = await scrape(api)
    accepted = await submit(api, [relationship(f"r{i}", "e1", "e2") for i in range(30)])
    await wait_for_job(api, accepted["transactionId"])
    after = await scrape(api)

    assert moved(before, after, "erapi_items_written_total", kind="relationships", operation="upsert") == 30
    assert value(after, "erapi_job_pending_items") == 0


async def test_a_storage_failure_is_counted_and_the_gauge_says_unknown(api: Api):
    await api.register("c1")
    plugin = api.client.app[storage_key].plugin

    async def broken(*_args, **_kwargs):
        raise StorageError("the database is down")

    before = await scrape(api)
    plugin.get_current, plugin.pending_items = broken, broken
    await api.entities("c1", entity("ahu-1"), expect=503)
    after = await scrape(api)

    assert moved(before, after, "erapi_storage_errors_total", operation="get_current") == 1
    assert moved(before, after, "erapi_storage_errors_total", operation="pending_items") == 1
    assert moved(before, after, "erapi_http_requests_total", method="POST", route=ENTITIES, status="503") == 1
    assert math.isnan(value(after, "erapi_job_pending_items"))


async def test_the_timed_storage_offers_what_its_plugin_offers(api: Api):
    """The app's storage is the plugin wrapped for timing: a method the plugin overrides on top of the interfaces'
    own (here, whether it can write a batch all or nothing) answers as the plugin does, not as the interface's
    default would (which refuses every atomic batch)."""
    metered = api.client.app[storage_key]
    assert metered.atomic_unavailable() == metered.plugin.atomic_unavailable()


async def test_a_metrics_token_is_required_once_set(app_factory):
    api = await app_factory(metrics={"token": METRICS_TOKEN})

    refused = await api.client.get("/metrics")
    assert refused.status == 401 and (await refused.json())["status"]["code"] == "401"
    assert (await api.client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
    assert (await api.client.get("/metrics", headers=api.headers)).status == 401  # a user's JWT is not the token
    assert value(await scrape(api, {"Authorization": f"Bearer {METRICS_TOKEN}"}), "erapi_job_pending_items") == 0


async def test_metrics_turned_off_answer_404(app_factory):
    api = await app_factory(metrics={"enabled": False})

    await api.call("GET", "/metrics", 404)
