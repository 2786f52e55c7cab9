"""``erapi import`` end to end, two versions of the code taking turns: which one is faster on a shared machine.

    python -m bench.brick_import_ab --rounds 10 before=/path/to/checkout after=/path/to/checkout

Each import runs as bench/brick_import.py runs it (a new ``erapi serve`` of that version on the memory plugin,
pinned to the first CPU and warmed up; ``erapi import --quiet`` of EBU3B as a new process of that version, on
the other CPUs, timed from start to exit), each on its own service; the versions alternate, and their order is
reversed every round, so that a busy spell of the machine slows both alike. Prints each import (seconds, the
importer's CPU seconds, its summary's first lines) and per version the median and the range. A checkout is any
directory holding the code (``git archive COMMIT | tar -x -C DIR``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from bench import harness
from bench.brick_import import IMPORTED, run_import, warm_up

MODEL = Path("tests") / "data" / "brick" / "ebu3b_brick.ttl"


def one_import(checkout: Path, cpus: harness.Cpus) -> tuple[float, float, str]:
    """Seconds, the importer's CPU seconds and its output, on a new service, both of ``checkout``'s code."""
    harness.ROOT = checkout  # the service, its token and the importer start from there (``python -m``)
    with harness.workspace() as workdir:
        service = harness.start_service(workdir, "service-brick-import-ab", cpus=cpus.server)
        try:
            warm_up(service)
            seconds, _server_cpu, importer_cpu, summary = run_import(service, checkout / MODEL)
        finally:
            service.stop()
    return seconds, importer_cpu, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.brick_import_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("versions", nargs=2, metavar="NAME=DIRECTORY")
    arguments = parser.parse_args(argv)
    versions = {name: Path(directory).resolve() for name, directory in (v.split("=", 1) for v in arguments.versions)}
    cpus = harness.split_cpus(pin=True)
    if cpus.load:
        os.sched_setaffinity(0, cpus.load)
    seconds: dict[str, list[float]] = {name: [] for name in versions}
    for number in range(arguments.rounds):
        for name in (list(versions) if number % 2 == 0 else list(versions)[::-1]):
            took, cpu, summary = one_import(versions[name], cpus)
            seconds[name].append(took)
            first = " | ".join(line for line in summary.splitlines() if not line.startswith(" "))
            print(f"{number} {name}: {took:.3f} s, importer CPU {cpu:.3f} s | {first[:300]}", flush=True)
    for name, values in seconds.items():
        print(f"{name}: end to end median {statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f}), "
              f"{len(values)} imports into {IMPORTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
