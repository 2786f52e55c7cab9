"""What each write option costs against a plain batch, measured in one run on one service.

    python -m bench.write_options [--rounds 5] [--requests 20] [--mongodb-uri URI]

One ``erapi serve`` (memory plugin; with ``--mongodb-uri`` then also the MongoDB plugin, on a scratch database
it drops afterwards) and the workload's 100-relationship batches of new ids (bench/workload.py), sent one at a
time on a fresh connection each. The options take turns round by round, ``--requests`` batches each per round,
so that a machine busy with something else slows all of them alike:

- ``plain``: the batch as is;
- ``validateOnly``: ``?validateOnly=true``, the dry run (writes nothing);
- ``expectedVersion``: every item carries ``expectedVersion: 0`` (create only);
- ``Idempotency-Key``: a new key per request (the claim and the stored answer);
- ``key replay``: a key already answered, sent again with its request (the stored answer, no write);
- ``atomic``: ``?atomic=true`` (a backend that cannot refuses with 400: the bench prints the reason).

Each answer is checked (the status, every item upserted, or the replay header) before it counts. The bench
prints, per option, the median and 90th percentile latency and the median's ratio to ``plain``'s.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import orjson

from bench import harness, workload
from bench.harness import BenchError, Service

PATH = "/apollo/er/relationships"
UPSERTED = f"Upserted:  {workload.ITEMS_PER_REQUEST}.".encode()


@dataclass
class Option:
    name: str
    phase: int  # the ids' phase byte: every option writes ids of its own
    query: str = ""
    headers: Callable[[int], dict[str, str]] = lambda counter: {}
    template: str = ""  # set by run(): the batch template this option sends
    check: Callable[[harness.Reply], str | None] = lambda reply: None  # a problem with the answer, or None
    latencies: list[float] = field(default_factory=list)
    refused: str = ""


def _written(reply: harness.Reply) -> str | None:
    if reply.status != 207 or UPSERTED not in reply.body:
        return f"answered {reply.status}: {reply.body[:300]!r}"
    return None


def _dry(reply: harness.Reply) -> str | None:
    return _written(reply) or (None if b'"validateOnly":true' in reply.body else "not marked validateOnly")


def _replayed(reply: harness.Reply) -> str | None:
    return _written(reply) or (None if reply.headers.get("idempotent-replayed") == "true" else "not a replay")


def options() -> list[Option]:
    run_id = uuid.uuid4().hex[:8]
    return [
        Option("plain", 0x20, check=_written),
        Option("validateOnly", 0x21, "?validateOnly=true", check=_dry),
        Option("expectedVersion", 0x22, check=_written),
        Option("Idempotency-Key", 0x23, headers=lambda counter: {"Idempotency-Key": f"{run_id}-{counter}"},
               check=_written),
        Option("key replay", 0x24, headers=lambda counter: {"Idempotency-Key": f"{run_id}-replayed"},
               check=_replayed),
        Option("atomic", 0x25, "?atomic=true", check=_written),
    ]


def with_expected_version(template: str) -> str:
    """The template with ``expectedVersion: 0`` on every item (the placeholders are inside strings: JSON)."""
    return orjson.dumps([{**item, "expectedVersion": 0} for item in orjson.loads(template)]).decode()


def send(service: Service, option: Option, counter: int) -> tuple[harness.Reply, float]:
    counter_for_ids = 0 if option.name == "key replay" else counter  # a replay sends its first request again
    body = workload.render(option.template, counter_for_ids, workload.tag(option.phase))
    headers = service.headers(workload.COLLECTION, **{"Content-Type": "application/json"}, **option.headers(counter))
    started = time.perf_counter()
    reply = harness.http(service.port, "POST", PATH + option.query, body, headers)
    return reply, time.perf_counter() - started


def prepare(service: Service, option: Option) -> None:
    """Refusals are found before the rounds; a replay needs its first answer stored."""
    reply, _ = send(service, option, 0)
    if reply.status == 400 and option.query:
        option.refused = orjson.loads(reply.body)["status"]["message"]
        return
    if option.name != "key replay" and option.check(reply):
        raise BenchError(f"{option.name}: {option.check(reply)}")


def measure(service: Service, rounds: int, requests: int) -> list[Option]:
    template = workload.relationship_template()
    chosen = options()
    for option in chosen:
        option.template = with_expected_version(template) if option.name == "expectedVersion" else template
        prepare(service, option)
    counter = 1
    for _ in range(rounds):
        for option in chosen:
            if option.refused:
                continue
            for _ in range(requests):
                reply, seconds = send(service, option, counter)
                problem = option.check(reply)
                if problem:
                    raise BenchError(f"{option.name}: {problem}")
                option.latencies.append(seconds)
                counter += 1
    return chosen


def report(title: str, measured: list[Option]) -> None:
    print(f"\n== {title} ==")
    print(f"  {'option':<16} {'requests':>8} {'median ms':>10} {'p90 ms':>8} {'x plain':>8}")
    plain = statistics.median(measured[0].latencies)
    for option in measured:
        if option.refused:
            print(f"  {option.name:<16} refused: {option.refused}")
            continue
        median = statistics.median(option.latencies)
        p90 = statistics.quantiles(option.latencies, n=10)[-1] if len(option.latencies) > 1 else median
        print(f"  {option.name:<16} {len(option.latencies):>8} {median * 1000:>10.1f} {p90 * 1000:>8.1f} "
              f"{median / plain:>8.2f}")


def run(rounds: int, requests: int, mongodb_uri: str = "") -> dict[str, list[Option]]:
    results = {}

    def measure_plugin(storage: str, service: Service) -> None:
        harness.set_up_building(service.port, service.token)
        results[storage] = measure(service, rounds, requests)
        report(f"{storage} plugin: {rounds} rounds of {requests} batches of {workload.ITEMS_PER_REQUEST} "
               "relationships per option", results[storage])

    harness.on_each_plugin("options", mongodb_uri, measure_plugin)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.write_options", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20, help="batches per option per round")
    parser.add_argument("--mongodb-uri", default="", help="also measure the MongoDB plugin on this server")
    arguments = parser.parse_args(argv)
    return harness.exit_status(lambda: run(arguments.rounds, arguments.requests, arguments.mongodb_uri))


if __name__ == "__main__":
    raise SystemExit(main())
