"""async: true — jobs accepted with 202, applied in chunks by workers, exactly once, tracked to the end."""

from __future__ import annotations

import asyncio
import time

import pytest

from erapi.app import create_app
from erapi.jobs import JobWorker, Services
from erapi.keys import acl_key, catalog_key, job_workers_key, storage_key
from tests.api_fixtures import Api, entity, make_config, relationship
from tests.clock import ManualClock

ASYNC = {"async": "true"}
# FerretDB, the MongoDB test server, scans a whole collection for every statement that is not an `_id`
# lookup (docs/OPERATIONS.md): on it the big jobs shrink, the rules they check stay the same.
FULL_JOB = {"memory": 10_000, "mongodb": 300}
SHARED_JOB = {"memory": 2_000, "mongodb": 200}
FAST_JOBS = {"poll_interval_seconds": 0.05, "lease_seconds": 5.0}


async def submit(api: Api, items, kind="relationships", expect=202, collection="c1") -> dict:
    return await api.call("POST", f"/apollo/er/{kind}", expect, collection=collection, json_body=items,
                          headers=ASYNC)


async def wait_for_job(api: Api, transaction_id: str, collection="c1", timeout=120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = await api.status_logs(collection, {"transactionid": transaction_id, "limit": "1"})
        job = logs["data"][0]
        assert job["requestObject"] == "Job" and job["id"] == transaction_id
        if job["state"] == "Completed":
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {transaction_id} did not complete in {timeout} s: {job}")


async def all_records(api: Api, transaction_id: str, collection="c1") -> list[dict]:
    records, params = [], {"transactionid": transaction_id, "limit": "1000"}
    while True:
        page = await api.status_logs(collection, params)
        records.extend(page["data"])
        if page["paging"]["continuationToken"] is None:
            return records
        params = {**params, "continuationToken": page["paging"]["continuationToken"]}


async def versions_of(api: Api, ids, collection="c1", kind="relationships") -> dict[str, list[int]]:
    storage = api.client.app[storage_key]
    field = "sysRelationshipVersion" if kind == "relationships" else "sysEntityVersion"
    return {i: [v["sysData"][field] for v in await storage.get_versions(kind, collection, i)] for i in ids}


@pytest.fixture
async def jobs_api(app_factory) -> Api:
    api = await app_factory(jobs=FAST_JOBS)
    await api.register("c1")
    await api.entities("c1", [entity(f"e{i}") for i in range(100)])
    return api


def chain(count: int, prefix: str = "r") -> list[dict]:
    return [relationship(f"{prefix}{i}", f"e{i % 100}", f"e{(i + 1) % 100}") for i in range(count)]


async def test_a_10000_item_job_completes_with_every_item_tracked(jobs_api, storage_name):
    total = FULL_JOB[storage_name]
    items = chain(total)
    items[total - 1] = items[5]  # a duplicate: fails like in a synchronous request
    body = await submit(jobs_api, items)
    transaction_id = body["transactionId"]
    tracker = f"/apollo/status/logs?transactionid={transaction_id}"
    assert body["status"]["code"] == "202"
    assert body["status"]["message"].startswith(f"Request {transaction_id} is processed and can be tracked by URL ")
    assert body["status"]["message"].endswith(tracker)
    assert body["data"]["transactionId"] == transaction_id
    assert body["data"]["tracker"].endswith(tracker)
    assert body["status"]["message"].endswith(body["data"]["tracker"])
    assert body["_headers"]["X-Transaction-Id"] == transaction_id

    job = await wait_for_job(jobs_api, transaction_id)
    assert job["jobData"] == {"total": total, "done": total - 1, "failed": 1, "pending": 0}
    assert [s["state"] for s in job["stateHistory"]] == ["Requested", "Processing", "Completed"]

    records = await all_records(jobs_api, transaction_id)
    items_records = [r for r in records if r["requestObject"] == "Relationship"]
    assert len(items_records) == total
    assert len({r["id"] for r in items_records}) == total
    by_state = {}
    for record in items_records:
        by_state.setdefault(record["state"], []).append(record)
    assert len(by_state["Completed"]) == total - 1
    [failed] = by_state["Failed"]
    assert failed["message"] == "Relationship id r5 appears more than once in the request"
    sample = by_state["Completed"][123]
    assert [s["state"] for s in sample["stateHistory"]] == ["Requested", "Processing", "Completed"]
    versions = await versions_of(jobs_api, ["r0", "r5", f"r{total - 2}"])
    assert versions == {"r0": [1], "r5": [1], f"r{total - 2}": [1]}


async def test_item_trackers_resolve_at_once_and_per_item_rules_apply(jobs_api):
    items = [relationship("good", "e1", "e2"), relationship("bad", "e1", "missing")]
    body = await submit(jobs_api, items)
    transaction_id = body["transactionId"]
    # resolves immediately, whatever state the worker has reached
    first = await jobs_api.status_logs("c1", {"relationshipid": "bad", "transactionid": transaction_id})
    assert first["data"][0]["state"] in {"Requested", "Processing", "Failed"}
    await wait_for_job(jobs_api, transaction_id)
    bad = await jobs_api.status_logs("c1", {"relationshipid": "bad", "transactionid": transaction_id})
    assert (bad["data"][0]["state"], bad["data"][0]["message"]) == (
        "Failed", "Destination entity missing not found in ERCollection c1")
    good = await jobs_api.status_logs("c1", {"relationshipid": "good", "transactionid": transaction_id})
    assert good["data"][0]["message"] == "Relationship upserted successfully"


async def test_async_entities(jobs_api):
    body = await submit(jobs_api, [entity("new-1"), entity("new-2", "BRICK_0_4__Nope")], kind="entities")
    job = await wait_for_job(jobs_api, body["transactionId"])
    assert job["jobData"] == {"total": 2, "done": 1, "failed": 1, "pending": 0}
    got = await jobs_api.call("GET", "/apollo/er/entities/new-1", 200, collection="c1")
    assert got["data"][0]["brickEntitySubType"].endswith("AHU")


async def test_10001_items_is_413_and_nothing_is_queued(jobs_api):
    body = await submit(jobs_api, chain(10_001), expect=413)
    assert body["status"]["message"] == "A request may carry at most 10000 items; this one has 10001"
    assert await jobs_api.client.app[storage_key].pending_items(None) == 0
    await jobs_api.relationship("c1", "r0", expect=404)


async def test_request_level_rules_are_checked_before_acceptance(jobs_api):
    bad = [relationship("r1", "e1", "e2"), {"id": "r2"}]
    body = await submit(jobs_api, bad, expect=400)
    assert body["status"]["message"] == "The request body does not match its schema"
    await jobs_api.as_("mallory").call("POST", "/apollo/er/relationships", 403, collection="c1",
                                       json_body=chain(1), headers=ASYNC)
    assert await jobs_api.client.app[storage_key].pending_items(None) == 0


async def test_backpressure_answers_429_with_retry_after_until_the_queue_drains(app_factory):
    api = await app_factory(jobs={**FAST_JOBS, "workers": 0, "max_pending_items_per_collection": 150,
                                  "retry_after_seconds": 7})
    await api.register("c1")
    await api.entities("c1", [entity(f"e{i}") for i in range(100)])
    await submit(api, chain(100))
    body = await submit(api, chain(100, "s"), expect=429)
    assert body["_headers"]["Retry-After"] == "7"
    assert body["status"]["message"] == "ERCollection c1 has 100 items waiting; the bound is 150"
    # a worker (as another process would run) drains the queue; then the same request is accepted
    worker = _worker(api, FAST_JOBS)
    assert await worker.run_once() is True
    assert await worker.run_once() is False
    await submit(api, chain(100, "s"))


async def test_total_bound_counts_every_collection(app_factory):
    api = await app_factory(jobs={**FAST_JOBS, "workers": 0, "max_pending_items_total": 120})
    for name in ("c1", "c2"):
        await api.register(name)
        await api.entities(name, [entity(f"e{i}") for i in range(100)])
    await submit(api, chain(100), collection="c1")
    body = await submit(api, chain(50), collection="c2", expect=429)
    assert body["status"]["message"] == "100 items are waiting; the bound is 120"


def _worker(api: Api, settings: dict, worker_id: str | None = None, clock=time.time) -> JobWorker:
    from erapi.config import JobsConfig

    app = api.client.app
    services = Services(storage=app[storage_key], catalog=app[catalog_key], acl=app[acl_key])
    return JobWorker(services, JobsConfig(**settings), worker_id, clock=clock)


async def test_a_chunk_reapplied_after_a_crash_bumps_no_version_and_logs_one_completion(app_factory):
    api = await app_factory(jobs={**FAST_JOBS, "workers": 0, "lease_seconds": 0.2})
    await api.register("c1")
    await api.entities("c1", [entity(f"e{i}") for i in range(100)])
    await api.relationships("c1", chain(10))  # version 1 of r0..r9 exists before the job
    body = await submit(api, [{**item, "relationshipName": "second"} for item in chain(10)])  # a change
    storage = api.client.app[storage_key]

    crashed = _worker(api, {**FAST_JOBS, "lease_seconds": 0.2}, "crashed")
    chunk = await storage.claim_chunk("crashed", time.time(), 0.2)
    await crashed._upsert(chunk)  # writes the versions, then "dies": no status update, no finish
    assert (await versions_of(api, ["r0"]))["r0"] == [1, 2]

    later = ManualClock(time.time() + 0.3)  # the survivor's clock: the crashed worker's lease has expired
    survivor = _worker(api, {**FAST_JOBS, "lease_seconds": 0.2}, "survivor", clock=later)
    assert await survivor.run_once() is True
    job = await wait_for_job(api, body["transactionId"])
    assert job["jobData"] == {"total": 10, "done": 10, "failed": 0, "pending": 0}
    assert await versions_of(api, [f"r{i}" for i in range(10)]) == {f"r{i}": [1, 2] for i in range(10)}
    records = await all_records(api, body["transactionId"])
    for record in records[1:]:
        assert [s["state"] for s in record["stateHistory"]].count("Completed") == 1
    # the crashed worker lost its lease: it can neither renew nor finish the chunk any more
    assert await storage.finish_chunk(chunk["id"], "crashed", "done") is False


async def test_a_job_publishes_what_a_dead_writer_claimed_before_writing_the_next_version(jobs_api):
    # r1 as a synchronous writer killed between its claim and its publish leaves it: version 1, unpublished
    storage = jobs_api.client.app[storage_key]
    await jobs_api.relationships("c1", relationship("template", "e0", "e1"))
    [written] = await storage.get_versions("relationships", "c1", "template")
    await storage.claim_versions("relationships", "c1", [{**written, "id": "r1", "relationshipName": "claimed"}])
    body = await submit(jobs_api, [relationship("r1", "e0", "e1", relationshipName="from the job")])
    job = await wait_for_job(jobs_api, body["transactionId"])
    assert job["jobData"] == {"total": 1, "done": 1, "failed": 0, "pending": 0}
    versions = await storage.get_versions("relationships", "c1", "r1")
    assert [(v["sysData"]["sysRelationshipVersion"], v["relationshipName"]) for v in versions] == [
        (1, "claimed"), (2, "from the job")]
    [current] = (await jobs_api.relationship("c1", "r1"))["data"]
    assert current["relationshipName"] == "from the job"


async def test_a_chunk_is_failed_with_the_reason_after_max_attempts(app_factory):
    api = await app_factory(jobs={**FAST_JOBS, "workers": 0, "max_attempts": 2})
    await api.register("c1")
    await api.entities("c1", [entity("e1"), entity("e2")])
    body = await submit(api, [relationship("r1", "e1", "e2")])
    storage = api.client.app[storage_key]
    for attempt in range(2):  # two workers die holding it
        assert await storage.claim_chunk(f"dead-{attempt}", time.time() - 100, 0.0) is not None
    worker = _worker(api, {**FAST_JOBS, "max_attempts": 2})
    assert await worker.run_once() is True
    job = await wait_for_job(api, body["transactionId"])
    assert job["jobData"]["failed"] == 1
    [record] = (await api.status_logs("c1", {"relationshipid": "r1"}))["data"]
    assert (record["state"], record["message"]) == ("Failed", "Gave up after 2 attempts to apply the item")
    await api.relationship("c1", "r1", expect=404)
    assert await worker.run_once() is False  # never retried again


async def test_two_workers_on_one_queue_apply_every_item_once(app_factory, storage_name):
    total = SHARED_JOB[storage_name]
    api = await app_factory(jobs={**FAST_JOBS, "workers": 0})
    await api.register("c1")
    await api.entities("c1", [entity(f"e{i}") for i in range(100)])
    body = await submit(api, chain(total))
    # a lease far longer than a chunk takes even on a loaded FerretDB: a lease that runs out is another test's
    # subject, and here it would let the second worker claim a chunk again (counted twice below)
    workers = [_worker(api, {**FAST_JOBS, "lease_seconds": 120.0}, f"w{n}") for n in range(2)]

    async def drain(worker):
        applied = 0
        while await worker.run_once():
            applied += 1
        return applied

    counts = await asyncio.gather(*(drain(w) for w in workers))
    assert sum(counts) == total // 100
    job = await wait_for_job(api, body["transactionId"])
    assert job["jobData"] == {"total": total, "done": total, "failed": 0, "pending": 0}
    versions = await versions_of(api, [f"r{i}" for i in range(0, total, 7)])
    assert all(v == [1] for v in versions.values())


async def test_graceful_stop_releases_an_unfinished_chunk_for_another_worker(app_factory):
    api = await app_factory(jobs={**FAST_JOBS, "workers": 0})
    await api.register("c1")
    await api.entities("c1", [entity(f"e{i}") for i in range(100)])
    body = await submit(api, chain(10))
    storage = api.client.app[storage_key]
    worker = _worker(api, FAST_JOBS, "stopping")
    started, release = asyncio.Event(), asyncio.Event()
    original = worker._apply

    async def slow_apply(chunk):
        started.set()
        await release.wait()  # never set: the chunk cannot finish before the stop timeout
        await original(chunk)

    worker._apply = slow_apply
    worker.start()
    await started.wait()
    await worker.stop(timeout=0.1)
    assert await storage.pending_items("c1") == 10
    other = _worker(api, FAST_JOBS, "other")
    chunk = await storage.claim_chunk("other", time.time(), 5.0)
    assert chunk["attempts"] == 1  # the released attempt does not count against the chunk
    await storage.release_chunk(chunk["id"], "other")
    assert await other.run_once() is True
    await wait_for_job(api, body["transactionId"])


async def test_app_shutdown_lets_the_current_chunk_finish(storage_name, storage_settings, aiohttp_client):
    app = create_app(make_config(storage_name, storage_settings, jobs=FAST_JOBS))
    client = await aiohttp_client(app)
    api = Api(client)
    await api.register("c1")
    await api.entities("c1", [entity(f"e{i}") for i in range(100)])
    body = await submit(api, chain(300))
    assert len(app[job_workers_key]) == 1
    await client.close()  # runs the cleanup contexts: workers stop before storage closes
    assert body["transactionId"]
