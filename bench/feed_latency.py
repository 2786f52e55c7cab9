"""How soon a long poll of the change feed answers after a write: through the same process, and through
another process on the same MongoDB.

    python -m bench.feed_latency [--rounds 30] [--mongodb-uri mongodb://127.0.0.1:27017/]

Each round: a long poll (``wait=10``) waits on the reading process; a one-entity write goes to the writing
process; the latency is from the write's answer to the poll's answer (and from the write's start). Without
``--mongodb-uri`` only the same-process case runs (memory plugin).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid

import orjson

from bench import harness

COLLECTION = "feed_bench"


def poll_after(service: harness.Service, after: int, answer: dict) -> None:
    reply = harness.http(service.port, "GET", f"/apollo/er/ercollections/{COLLECTION}/changes?after={after}&wait=10",
                         headers=service.headers())
    answer["at"] = time.perf_counter()
    answer["changes"] = orjson.loads(reply.body)["data"]


def one_round(writer: harness.Service, reader: harness.Service, number: int) -> tuple[float, float]:
    latest = orjson.loads(harness.http(reader.port, "GET", f"/apollo/er/ercollections/{COLLECTION}/changes?"
                                       f"after=0&limit=1&includeDocuments=false", headers=reader.headers()).body)
    after = latest["paging"]["latest"]
    answer: dict = {}
    poll = threading.Thread(target=poll_after, args=(reader, after, answer))
    poll.start()
    time.sleep(0.3)  # the poll is waiting
    started = time.perf_counter()
    reply = harness.http(writer.port, "POST", "/apollo/er/entities",
                         {"id": f"e{number}", "entityType": "BRICK_0_4__AHU", "entityName": str(number)},
                         headers=writer.headers(COLLECTION))
    answered = time.perf_counter()
    poll.join(15)
    if reply.status != 207 or not answer.get("changes"):
        raise harness.BenchError(f"round {number}: write {reply.status}, poll answer {answer}")
    return (answer["at"] - answered) * 1000, (answer["at"] - started) * 1000


def measure(label: str, writer: harness.Service, reader: harness.Service, rounds: int) -> None:
    harness.http(writer.port, "POST", "/apollo/collections", {"collectionId": COLLECTION}, headers=writer.headers())
    results = [one_round(writer, reader, number) for number in range(rounds)]
    after_answer = sorted(result[0] for result in results)
    after_start = sorted(result[1] for result in results)
    print(f"{label}: {rounds} rounds; poll answered after the write's answer: median {statistics.median(after_answer):.1f} ms,"
          f" p90 {after_answer[int(0.9 * (rounds - 1))]:.1f} ms, max {after_answer[-1]:.1f} ms; after the write's start:"
          f" median {statistics.median(after_start):.1f} ms, max {after_start[-1]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--mongodb-uri", default="")
    options = parser.parse_args()
    with harness.workspace() as workdir:
        service = harness.start_service(workdir, "same", "memory")
        try:
            measure("same process (memory)", service, service, options.rounds)
        finally:
            service.stop()
        if not options.mongodb_uri:
            return
        database = f"erapi_feed_bench_{uuid.uuid4().hex[:8]}"
        services = [harness.start_service(workdir, name, "mongodb", mongodb_uri=options.mongodb_uri,
                                          database=database) for name in ("writer", "reader")]
        try:
            measure("another process (mongodb)", services[0], services[1], options.rounds)
        finally:
            for service in services:
                service.stop()
            harness.drop_databases(options.mongodb_uri, [database])


if __name__ == "__main__":
    main()
