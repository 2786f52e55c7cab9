"""Webhook deliveries survive their process: `erapi serve` on MongoDB is killed (-9) mid-delivery, another process
takes the subscription over once the lease expires, and the receiver ends with every change (duplicates allowed:
a change the receiver accepted just before the kill, whose cursor was not yet stored, comes again)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.api_fixtures import entity
from tests.test_jobs_durability import Client, Service, database  # noqa: F401 (database is a fixture)
from tests.webhook_receiver import SECRET, Receiver

pytestmark = [pytest.mark.mongodb, pytest.mark.slow]

WEBHOOKS = ('[webhooks]\nallowed_targets = ["127.0.0.1"]\nlease_seconds = 2.0\npoll_interval_seconds = 0.1\n'
            'timeout_seconds = 0.5\nretry_initial_seconds = 0.1\nretry_max_seconds = 0.5\n')
CHANGES, BATCH = 40, 10


async def test_kill_9_mid_delivery_loses_no_change(tmp_path, mongodb_uri, database):  # noqa: F811
    first = Service(tmp_path, mongodb_uri, database, extra_toml=WEBHOOKS)
    second = None
    async with Receiver(delay=0.05) as receiver, aiohttp.ClientSession() as session:
        try:
            await first.start()
            client = Client(session, first.url)
            assert (await client.request("POST", "/apollo/collections", {"collectionId": "c1"}))[0] == 201
            status, created = await client.request("POST", "/apollo/er/ercollections/c1/subscriptions",
                                                   {"url": receiver.url, "secret": SECRET})
            assert status == 201, created
            start = created["data"]["lastDeliveredSequence"]
            for offset in range(0, CHANGES, BATCH):
                status, _ = await client.request("POST", "/apollo/er/entities",
                                                 [entity(f"e{n}") for n in range(offset, offset + BATCH)])
                assert status == 207
            await receiver.wait_for(CHANGES // 4)
            first.kill()
            delivered_before_kill = set(receiver.sequences())
            assert len(delivered_before_kill) < CHANGES  # the kill came mid-delivery
            second = Service(tmp_path, mongodb_uri, database, extra_toml=WEBHOOKS)  # rewrites the config file
            await second.start()
            wanted = set(range(start + 1, start + CHANGES + 1))
            await receiver.wait_until(lambda: set(receiver.sequences()) >= wanted, timeout=120)
            client = Client(session, second.url)
            path = f"/apollo/er/ercollections/c1/subscriptions/{created['data']['id']}"
            for _ in range(100):  # the cursor is stored just after the receiver's answer
                status, state = await client.request("GET", path)
                if state["data"]["lastDeliveredSequence"] == start + CHANGES:
                    break
                await asyncio.sleep(0.1)
        finally:
            first.kill()
            if second is not None:
                second.stop()
    sequences = receiver.sequences()
    assert set(sequences) == wanted and receiver.bad_signatures == 0
    first_deliveries = list(dict.fromkeys(sequences))
    assert first_deliveries == sorted(first_deliveries)  # in order; a repeat only of what was already sent
    assert {d["change"]["id"] for d in receiver.accepted} == {f"e{n}" for n in range(CHANGES)}
    assert status == 200 and state["data"]["lastDeliveredSequence"] == start + CHANGES
    assert state["data"]["state"] == "active"
