"""What recording the changes of a 100-relationship batch costs the memory plugin alone, in process CPU time:
``claim_versions`` then ``publish`` (the change records, then the current view) against ``claim_versions`` then
``put_current`` (the current view alone), the difference per batch.

    python -m bench.feed_record_cost [--batches 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from storage_plugins.documents import VERSION_FIELD
from storage_plugins.memory import MemoryStorage

BATCH = 100


def batch_of(number: int) -> list[dict]:
    return [{"id": f"r{number}-{index}", "ercollectionid": "c", "relationshipType": "feeds",
             "sourceEntityId": f"e{index}", "destinationEntityId": f"e{index + 1}", "destinationCollectionId": "c",
             "isActive": True, "sysData": {VERSION_FIELD["relationships"]: 1}, "properties": {"note": "x" * 40},
             "createdAt": "2026-11-29T00:00:00Z", "transactionId": f"t{number}"} for index in range(BATCH)]


async def ms_per_batch(with_changes: bool, batches: int) -> float:
    storage = MemoryStorage()
    await storage.open()
    documents = [batch_of(number) for number in range(batches)]
    started = time.process_time()
    for batch in documents:
        await storage.claim_versions("relationships", "c", batch)
        if with_changes:
            await storage.publish("relationships", "c", batch)
        else:
            await storage.put_current("relationships", "c", batch)
    return (time.process_time() - started) / batches * 1000


async def main(batches: int, repeats: int) -> None:
    for _ in range(repeats):
        alone = await ms_per_batch(False, batches)
        recorded = await ms_per_batch(True, batches)
        print(f"claim+put_current {alone:.3f} ms  claim+publish {recorded:.3f} ms  "
              f"recording {BATCH} changes {recorded - alone:.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.batches, arguments.repeats))
