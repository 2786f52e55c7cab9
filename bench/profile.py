"""Where a request's time goes: py-spy samples a running service while wrk drives it.

py-spy reads the service's stacks from outside (no code change, no in-process profiler), 100 times a
second by default. Samples are summed per function: *inclusive* (the function or anything it called was
running) and *self* (the function itself was the innermost frame). Only the event loop's thread counts;
idle threads of the default executor are left out. With the request rate measured over the same window,
a share of samples becomes milliseconds per request.

    python -m bench.profile [--duration 10] [--connections 32] [--stored 0]

starts a memory-plugin service like ``bench.run`` does, optionally fills it with ``--stored``
relationships first, and prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from bench import harness, workload

PROJECT_PREFIXES = ("erapi/", "storage_plugins/")
# frames that wrap every request: their share says nothing the handler's does not
WRAPPERS = ("erapi/cli.py", "erapi/middleware.py", "<module>")


@dataclass
class Profile:
    seconds: float
    rate_hz: int
    requests_per_s: float
    samples: int  # event-loop thread samples
    inclusive: collections.Counter
    self_time: collections.Counter
    cpu_ms_per_request: float = 0.0  # the server's CPU time per request over the same window

    def ms_per_request(self, count: int) -> float:
        """The function's share of the server's CPU time per request (wall time when CPU is unknown).

        py-spy samples the stack whether or not the process is on a core, so a share of samples is a share
        of wall time; scaled by CPU per request it stays right when other processes compete for the core.
        """
        if self.cpu_ms_per_request and self.samples:
            return count / self.samples * self.cpu_ms_per_request
        if not self.requests_per_s:
            return 0.0
        return count / self.rate_hz / (self.requests_per_s * self.seconds) * 1000


def py_spy() -> str | None:
    return shutil.which("py-spy")


def record(pid: int, seconds: float, output: Path, rate_hz: int = 100) -> None:
    command = [py_spy() or "py-spy", "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r",
               str(rate_hz), "-f", "raw", "-o", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0 or not output.exists():
        raise harness.BenchError(f"py-spy failed ({result.returncode}): {result.stderr.strip()[-500:]}")


def _frame_key(frame: str) -> str:
    # "name (path/to/module.py:123)" -> "name (path/to/module.py)"
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def parse(raw: Path) -> tuple[int, collections.Counter, collections.Counter]:
    inclusive: collections.Counter = collections.Counter()
    self_time: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if frames[0].startswith("Thread._bootstrap"):
            continue  # executor threads: idle in the default configuration
        count = int(count_text)
        total += count
        keys = [_frame_key(frame) for frame in frames]
        for key in set(keys):
            inclusive[key] += count
        self_time[keys[-1]] += count
    return total, inclusive, self_time


def profile_pid(pid: int, seconds: float, workdir: Path, requests_per_s: float = 0.0,
                rate_hz: int = 100) -> Profile:
    """Sample ``pid`` for ``seconds``; ``requests_per_s`` (the load's rate) turns shares into ms/request."""
    output = workdir / f"py-spy-{pid}-{seconds:.0f}s.txt"
    record(pid, seconds, output, rate_hz)
    total, inclusive, self_time = parse(output)
    return Profile(seconds, rate_hz, requests_per_s, total, inclusive, self_time)


def format_profile(profile: Profile, top: int = 15, indent: str = "  ") -> str:
    lines = [
        f"{indent}{profile.samples} samples of the event-loop thread in {profile.seconds:.0f} s at "
        f"{profile.rate_hz} Hz ({profile.samples / profile.rate_hz / profile.seconds:.0%} busy), "
        f"{profile.requests_per_s:,.1f} requests/s, "
        f"{profile.cpu_ms_per_request:.3f} ms of server CPU per request (ms/req below: that CPU time by share)",
        f"{indent}inclusive, project code (time in the function and what it calls):",
        f"{indent}  {'share':>6} {'ms/req':>7}  function",
    ]
    project = [(key, count) for key, count in profile.inclusive.most_common()
               if any(prefix in key for prefix in PROJECT_PREFIXES) and not any(w in key for w in WRAPPERS)]
    for key, count in project[:top]:
        lines.append(f"{indent}  {count / profile.samples:6.1%} {profile.ms_per_request(count):7.3f}  {key}")
    lines += [f"{indent}self time, any code (the innermost frame):", f"{indent}  {'share':>6} {'ms/req':>7}  function"]
    for key, count in profile.self_time.most_common(top):
        lines.append(f"{indent}  {count / profile.samples:6.1%} {profile.ms_per_request(count):7.3f}  {key}")
    return "\n".join(lines)


def profile_under_load(service: harness.Service, template: Path, phase: int, seconds: float, connections: int,
                       workdir: Path, load_cpus: set[int] | None = None) -> tuple[Profile, harness.LoadResult]:
    """Run wrk a little longer than py-spy, so the whole sampled window is under load."""
    if not py_spy():
        raise harness.BenchError("py-spy is not installed (pip install py-spy)")
    result: dict[str, harness.LoadResult] = {}
    errors: list[BaseException] = []

    def load() -> None:
        try:
            result["load"] = harness.run_wrk("profile", service.port, template, phase, service.token,
                                             workload.COLLECTION, duration=seconds + 3, connections=connections,
                                             cpus=load_cpus, server_pid=service.server.pid)
        except BaseException as error:  # reported below, in the caller's thread
            errors.append(error)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        threading.Event().wait(1.5)
        profile = profile_pid(service.server.pid, seconds, workdir)
    finally:
        thread.join()
    if errors:
        raise errors[0]
    profile.requests_per_s = result["load"].rps
    profile.cpu_ms_per_request = result["load"].cpu_ms_per_request
    return profile, result["load"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds sampled (default 10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--stored", type=int, default=0, help="relationships stored over HTTP before sampling")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (py-spy output, logs)")
    arguments = parser.parse_args(argv)
    cpus = harness.split_cpus(pin=True)
    with harness.workspace(arguments.keep) as workdir:
        template = harness.write_template(workdir)
        service = harness.start_service(workdir, "service", cpus=cpus.server)
        try:
            harness.set_up_building(service.port, service.token)
            if arguments.stored:
                from bench.preload import preload

                requests = -(-arguments.stored // workload.ITEMS_PER_REQUEST)
                asyncio.run(preload(service.port, service.token, requests))
            profile, load = profile_under_load(service, template, 1, arguments.duration, arguments.connections,
                                               workdir, cpus.load)
        finally:
            service.stop()
        print(f"load: {load.rps:,.1f} requests/s, p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms")
        print(format_profile(profile, arguments.top, indent=""))
        if arguments.keep:
            print(f"work directory kept: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
