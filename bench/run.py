"""The benchmark: the service side by side with the stack's ceiling, every target a ratio of one run.

    python -m bench.run [--duration 10] [--connections 32]

One run starts ``erapi serve`` (memory plugin) and a ceiling server (bench/ceiling.py: the same aiohttp +
orjson stack parsing the body and answering a precomputed 207 of the service's real size), drives both
with wrk and the same 100-relationship batches of new ids, and prints req/s, relationships/s, p50 and p99
of each and their ratios. Then: the async path (a 10,000-item job); ``--workers`` 1 against 2, when
ERAPI_MONGODB_URI is set (the processes need a storage they share: the memory plugin is one process only);
the write path at 1,000,000 stored relationships with memory per relationship; and, when ERAPI_MONGODB_URI is
set, the MongoDB plugin against a raw-PyMongo loop doing the same database work. A missed target is printed
with the profile that explains it. docs/PERFORMANCE.md describes every measure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import orjson

from bench import harness, workload
from bench.harness import BenchError, LoadResult, Service
from bench.preload import preload
from bench.profile import format_profile, profile_pid, profile_under_load, py_spy

# wrk phase bytes (the first half of each id's tag): ids stay unique within every service process
PHASE = {"warmup": 0x01, "service": 0x02, "profile": 0x03, "empty": 0x04, "full": 0x05, "full-profile": 0x06,
         "workers": 0x08, "mongodb-warmup": 0x0A, "mongodb": 0x0B, "ceiling-warmup": 0x10, "ceiling": 0x11,
         "async": 0x20}
TARGET_RPS_RATIO = 0.35
TARGET_P99_RATIO = 3.0
TARGET_MONGODB_RATIO = 0.70
TARGET_GROWTH_RATIO = 0.85
TARGET_ASYNC_RATIO = 0.80
ASYNC_ITEMS = 10_000
ASYNC_RUNS = 3  # jobs measured; the target is judged on their median
MIN_SAMPLES = 20  # fewer completed requests than this on a side: the ratio is printed as indicative only


def say(message: str) -> None:
    print(message, flush=True)


def progress(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)


@dataclass
class Target:
    name: str
    wanted: str
    measured: str
    status: str  # HOLDS, MISSED, NOT RUN


@dataclass
class Run:
    arguments: argparse.Namespace
    workdir: Path
    cpus: harness.Cpus
    template_path: Path
    template: str
    targets: list[Target] = field(default_factory=list)
    sync_relationships_per_s: float = 0.0
    sync_cpu_us_per_relationship: float = 0.0

    def wrk(self, label: str, server: harness.Server, token: str, phase: str, duration: float, *,
            pinned: bool = True, stop_when=None, timeout_s: int = 30, connections: int = 0,
            get_path: str = "") -> LoadResult:
        connections = connections or self.arguments.connections
        progress(f"{label}: wrk {connections} connections, {duration:.0f} s")
        return harness.run_wrk(label, server.port, self.template_path, PHASE[phase], token, workload.COLLECTION,
                               duration=duration, connections=connections,
                               threads=self.arguments.threads, cpus=self.cpus.load if pinned else None,
                               stop_when=stop_when, server_pid=server.pid, timeout_s=timeout_s,
                               get_path=get_path)

    def memory_guard(self, service: Service):
        limit = self.arguments.memory_guard_gb * 2**30

        def check() -> str:
            rss = service.server.rss()
            return f"memory guard: service RSS {rss / 2**30:.1f} GiB > {limit / 2**30:.1f} GiB" if rss > limit else ""

        return check

    def start_service(self, name: str, *, storage: str = "memory", pinned: bool = True, workers: int = 1,
                      mongodb_uri: str = "", database: str = "") -> Service:
        progress(f"starting {name} (erapi serve, {storage}{f', {workers} workers' if workers != 1 else ''})")
        return harness.start_service(self.workdir, name, storage, self.cpus.server if pinned else None, workers,
                                     mongodb_uri, database)

    def prepared_service(self, name: str, **options) -> tuple[Service, harness.Reply]:
        service = self.start_service(name, **options)
        try:
            harness.set_up_building(service.port, service.token)
            return service, harness.probe(service, self.template)
        except BaseException:
            service.stop()
            raise

    def profile(self, service: Service, phase: str, why: str) -> None:
        mode = self.arguments.profile
        if mode == "never" or (mode == "auto" and not why):
            return
        if not py_spy():
            say(f"  profile skipped: py-spy is not installed (pip install py-spy); it would explain: {why}")
            return
        seconds = self.arguments.profile_seconds
        progress(f"profiling the service for {seconds:.0f} s under load")
        profile, load = profile_under_load(service, self.template_path, PHASE[phase], seconds,
                                           self.arguments.connections, self.workdir, self.cpus.load)
        say(f"  profile ({why or 'requested'}): py-spy on the service while wrk drives it "
            f"({load.rps:,.1f} req/s, p99 {load.p99_ms:,.1f} ms in that window)")
        say(format_profile(profile, self.arguments.profile_top, indent="    "))


# ---- output ---------------------------------------------------------------------------------------------------


def table(rows: list[tuple[str, LoadResult]]) -> str:
    lines = [f"  {'':<22}{'req/s':>10}{'relationships/s':>17}{'p50 ms':>10}{'p99 ms':>10}{'requests':>10}"
             f"{'errors':>8}{'seconds':>9}{'server CPU':>12}{'CPU ms/req':>12}{'other CPU':>11}"]
    for name, result in rows:
        lines.append(f"  {name:<22}{result.rps:>10,.1f}{result.relationships_per_s:>17,.0f}{result.p50_ms:>10,.1f}"
                     f"{result.p99_ms:>10,.1f}{result.requests:>10,}{result.error_count:>8}{result.duration_s:>9.1f}"
                     f"{result.server_cores:>12.2f}{result.cpu_ms_per_request:>12.3f}"
                     f"{result.other_cores + result.stolen_cores:>11.2f}")
        if result.other_cores + result.stolen_cores > 0.1:
            lines.append(f"  {'':<22}disturbed: processes outside the bench used {result.other_cores:.2f} cores and "
                         f"the hypervisor took {result.stolen_cores:.2f} during this window")
        if result.stopped_early:
            lines.append(f"  {'':<22}stopped early: {result.stopped_early}")
        if result.errors:
            lines.append(f"  {'':<22}errors: {result.errors}")
    return "\n".join(lines)


def verdict(holds: bool) -> str:
    return "HOLDS" if holds else "MISSED"


def git_state() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=harness.ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=harness.ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{' with uncommitted changes' if dirty else ''}" if commit else "unknown"


def header(run: Run) -> None:
    arguments = run.arguments
    say(f"erapi bench, {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, code {git_state()}")
    say(f"  Python {platform.python_version()}, aiohttp {version('aiohttp')}, orjson {version('orjson')}, "
        f"{harness.wrk_version()}, {os.cpu_count()} cores; {run.cpus.describe()}")
    body = len(workload.render(run.template, 0, workload.tag(0)))
    say(f"  workload: POST /apollo/er/relationships, {workload.ITEMS_PER_REQUEST} new relationships per request "
        f"({body:,} bytes, ids unique per request), {arguments.connections} connections, {arguments.threads} wrk "
        f"thread(s), {arguments.duration:.0f} s per window after {arguments.warmup:.0f} s of warm-up")


# ---- sections -------------------------------------------------------------------------------------------------


def memory_against_ceiling(run: Run) -> None:
    arguments = run.arguments
    say("\n== 1. memory plugin, one process, against the ceiling ==")
    service, reply = run.prepared_service("service-memory")
    try:
        response_file = run.workdir / "service-response.json"
        response_file.write_bytes(reply.body)
        say(f"  the service's 207 for a 100-item batch: {len(reply.body):,} bytes; the ceiling answers those bytes")
        ceiling_port = harness.free_port()
        progress("starting the ceiling server")
        ceiling = harness.start_server(
            "ceiling", [sys.executable, "-m", "bench.ceiling", "--port", str(ceiling_port), "--response",
                        str(response_file)], ceiling_port, os.environ.copy(), run.workdir, run.cpus.server)
        try:
            run.wrk("ceiling warm-up", ceiling, "-", "ceiling-warmup", arguments.warmup)
            ceiling_result = run.wrk("ceiling", ceiling, "-", "ceiling", arguments.duration)
        finally:
            ceiling.stop()

        run.wrk("service warm-up", service.server, service.token, "warmup", arguments.warmup)
        before = service.log.snapshot()
        service_result = run.wrk("service", service.server, service.token, "service", arguments.duration,
                                 stop_when=run.memory_guard(service))
        time.sleep(0.5)
        after = service.log.snapshot()
        say(table([("ceiling", ceiling_result), ("service (memory)", service_result)]))
        say(f"  service's own log for the window: {after[0] - before[0]:,} requests, {after[1] - before[1]:,} "
            f"relationships stored, {after[2] - before[2]:,} item failures; {after[1]:,} stored in all, "
            f"RSS {service.server.rss() / 2**20:,.0f} MiB")
        if service.log.failure_samples:
            say(f"  item failure example: {service.log.failure_samples[0]}")
        rps_ratio = service_result.rps / ceiling_result.rps if ceiling_result.rps else 0.0
        p99_ratio = service_result.p99_ms / ceiling_result.p99_ms if ceiling_result.p99_ms else float("inf")
        rps_holds, p99_holds = rps_ratio >= TARGET_RPS_RATIO, p99_ratio <= TARGET_P99_RATIO
        service_cpu, ceiling_cpu = service_result.cpu_ms_per_request, ceiling_result.cpu_ms_per_request
        cpu_ratio = ceiling_cpu / service_cpu if service_cpu else 0.0
        say(f"  server CPU per request: service {service_cpu:.3f} ms, ceiling {ceiling_cpu:.3f} ms; ratio "
            f"{cpu_ratio:.3f} (what the req/s ratio would be with a core each to themselves)")
        say(f"  ratio service/ceiling: req/s {rps_ratio:.3f} (target >= {TARGET_RPS_RATIO}: {verdict(rps_holds)}); "
            f"p99 {p99_ratio:.1f}x the ceiling's (target <= {TARGET_P99_RATIO:.0f}x: {verdict(p99_holds)})")
        run.sync_relationships_per_s = service_result.relationships_per_s
        run.sync_cpu_us_per_relationship = service_cpu * 1000 / workload.ITEMS_PER_REQUEST
        clean = service_result.error_count == 0 and after[2] == before[2]
        run.targets += [
            Target("memory, 1 process: req/s vs ceiling", f">= {TARGET_RPS_RATIO}",
                   f"{rps_ratio:.3f} ({service_result.rps:,.1f} / {ceiling_result.rps:,.1f} req/s; by server CPU "
                   f"per request {cpu_ratio:.3f})",
                   verdict(rps_holds and clean)),
            Target(f"memory, 1 process: p99 vs ceiling at {arguments.connections} connections",
                   f"<= {TARGET_P99_RATIO:.0f}x",
                   f"{p99_ratio:.1f}x ({service_result.p99_ms:,.1f} / {ceiling_result.p99_ms:,.1f} ms)",
                   verdict(p99_holds and clean)),
        ]
        missed = [name for name, holds in (("req/s ratio", rps_holds), ("p99 ratio", p99_holds)) if not holds]
        run.profile(service, "profile", " and ".join(missed) + " missed" if missed else "")
    finally:
        service.stop()


def async_path(run: Run) -> None:
    say(f"\n== 2. async path: one {ASYNC_ITEMS:,}-item job against the sync path ==")
    name = f"async {ASYNC_ITEMS:,}-item job vs sync relationships/s"
    service, _ = run.prepared_service("service-async")
    try:
        probe = workload.render(workload.relationship_template(items=1), 0, workload.tag(PHASE["async"], 0xFF))
        reply = post_async(service, probe)
        if reply.status == 400:
            say("  async path not available: the service answers 400 to async: true")
            run.targets.append(Target(name, f">= {TARGET_ASYNC_RATIO}", "async path not available", "NOT RUN"))
            return
        if reply.status != 202:
            raise BenchError(f"async: true answered {reply.status}: {reply.body[:300]!r}")
        wait_for_job(service, reply.json()["transactionId"], timeout=60)
        # A job lasts about 0.3 s: one scheduling hiccup moves its rate by a tenth, so the ratio is the median
        # of ASYNC_RUNS jobs, each printed (thread 1 is the profile's job)
        jobs = []
        for number, thread in enumerate((0, *range(2, ASYNC_RUNS + 1)), start=1):
            job = run_job(run, service, thread=thread)
            job["rate"] = job["stored"] / job["elapsed_s"]
            jobs.append(job)
            say(f"  job {number}: accepted (202) in {job['accepted_s'] * 1000:,.0f} ms, finished in "
                f"{job['elapsed_s']:,.2f} s, {job['stored']:,} relationships stored ({job['failed']:,} item "
                f"failures), {job['rate']:,.0f} relationships/s: {job['record']['message']}")
        job = sorted(jobs, key=lambda each: each["rate"])[len(jobs) // 2]
        rate = job["rate"]
        ratio = rate / run.sync_relationships_per_s if run.sync_relationships_per_s else 0.0
        holds = ratio >= TARGET_ASYNC_RATIO and all(each["stored"] == ASYNC_ITEMS for each in jobs)
        say(f"  median of {len(jobs)} jobs: {rate:,.0f} relationships/s; sync path "
            f"{run.sync_relationships_per_s:,.0f}/s; ratio {ratio:.2f} (target >= {TARGET_ASYNC_RATIO}: "
            f"{verdict(holds)}); every job's ratio: "
            + ", ".join(f"{each['rate'] / max(run.sync_relationships_per_s, 1):.2f}" for each in jobs))
        cpu_per_relationship = job["cpu_us"] / job["stored"] if job["stored"] else 0.0
        cpu_ratio = run.sync_cpu_us_per_relationship / cpu_per_relationship if cpu_per_relationship else 0.0
        say(f"  server CPU per relationship: job {cpu_per_relationship:,.1f} us, sync "
            f"path {run.sync_cpu_us_per_relationship:,.1f} us; ratio {cpu_ratio:.2f}")
        run.targets.append(Target(name, f">= {TARGET_ASYNC_RATIO}",
                                  f"{ratio:.2f} ({rate:,.0f} / {run.sync_relationships_per_s:,.0f} per s; by server "
                                  f"CPU per relationship {cpu_ratio:.2f})", verdict(holds)))
        if run.arguments.profile == "always" or (run.arguments.profile == "auto" and not holds):
            profile_job(run, service, job["elapsed_s"], cpu_per_relationship,
                        "" if holds else f"async ratio {ratio:.2f} missed")
    finally:
        service.stop()


def post_async(service: Service, body: bytes) -> harness.Reply:
    return harness.http(service.port, "POST", "/apollo/er/relationships", body,
                        service.headers(workload.COLLECTION, **{"Content-Type": "application/json", "async": "true"}))


def run_job(run: Run, service: Service, thread: int) -> dict:
    """Submit one job of new relationships and wait for it: times, CPU and the service's own counts."""
    body = workload.render(workload.relationship_template(items=ASYNC_ITEMS), 0,
                           workload.tag(PHASE["async"], thread))
    before = service.log.snapshot()
    progress(f"async job of {ASYNC_ITEMS:,} items")
    cpu_before = harness.process_cpu_seconds(service.server.pid)
    started = time.monotonic()
    reply = post_async(service, body)
    if reply.status != 202:
        raise BenchError(f"the {ASYNC_ITEMS:,}-item job answered {reply.status}: {reply.body[:300]!r}")
    accepted = time.monotonic() - started
    limit = max(120.0, 20 * ASYNC_ITEMS / max(run.sync_relationships_per_s, 1))
    transaction_id = reply.json()["transactionId"]
    wait_for_job(service, transaction_id, timeout=limit, items=ASYNC_ITEMS, baseline=before)
    elapsed = time.monotonic() - started  # the last chunk is applied; the tracker's confirmation is not timed
    cpu_us = (harness.process_cpu_seconds(service.server.pid) - cpu_before) * 1e6
    record = wait_for_job(service, transaction_id, timeout=60)
    after = service.log.snapshot()
    return {"accepted_s": accepted, "elapsed_s": elapsed, "record": record, "cpu_us": cpu_us,
            "stored": after[1] - before[1], "failed": after[2] - before[2]}


def profile_job(run: Run, service: Service, expected_s: float, cpu_us_per_relationship: float, why: str) -> None:
    """py-spy over a second job of the same size, while it runs."""
    if not py_spy():
        say(f"  profile skipped: py-spy is not installed (pip install py-spy); it would explain: {why}")
        return
    seconds = max(1.0, min(run.arguments.profile_seconds, expected_s * 0.8))
    found: list = []
    sampler = threading.Thread(target=lambda: found.append(
        profile_pid(service.server.pid, seconds, run.workdir,
                    requests_per_s=0.0)))
    sampler.start()
    try:
        run_job(run, service, thread=1)
    finally:
        sampler.join()
    profile = found[0]
    profile.cpu_ms_per_request = cpu_us_per_relationship * workload.ITEMS_PER_REQUEST / 1000
    say(f"  profile ({why or 'requested'}): py-spy on the service during a second {ASYNC_ITEMS:,}-item job "
        f"(ms/req below: per 100 relationships)")
    say(format_profile(profile, run.arguments.profile_top, indent="    "))


def wait_for_job(service: Service, transaction_id: str, timeout: float, items: int = 0,
                 baseline: tuple[int, int, int] | None = None) -> dict:
    """Wait for a job: first on the service's own log (free), then confirm on the status tracker.

    The log gets one line per applied chunk, so the job's items are all applied once the log has counted
    ``items`` more than ``baseline``. Only then is the tracker asked (its job record is the transaction's
    first): polling it while the job runs would measure the polling too (each GET is a request the service
    serves; until the memory plugin counted without copying, each one copied every record of the transaction).
    """
    deadline = time.monotonic() + timeout
    if items and baseline:
        while time.monotonic() < deadline:
            current = service.log.snapshot()
            if (current[1] - baseline[1]) + (current[2] - baseline[2]) >= items:
                break
            time.sleep(0.01)
    path = f"/apollo/status/logs?transactionid={transaction_id}&limit=1"
    while time.monotonic() < deadline:
        reply = harness.http(service.port, "GET", path, headers=service.headers(workload.COLLECTION))
        if reply.status == 200:
            record = reply.json()["data"][0]
            if record.get("requestObject") != "Job":
                raise BenchError(f"the first status record of job {transaction_id} is not the job's: {record}")
            if record["state"] in ("Completed", "Failed"):
                return record
        elif reply.status != 404:
            raise BenchError(f"the status tracker answered {reply.status}: {reply.body[:300]!r}")
        time.sleep(0.2)
    raise BenchError(f"job {transaction_id} did not finish within {timeout:.0f} s")


def workers(run: Run) -> None:
    arguments = run.arguments
    say("\n== 3. erapi serve --workers N (N processes on one port, one storage) ==")
    name = "erapi serve --workers: 1 vs 2 processes"
    if not harness.serve_supports_workers(harness.service_environment(run.workdir)):
        say("  erapi serve --workers N not available: `erapi serve --help` has no --workers")
        run.targets.append(Target(name, "reported", "--workers not available", "NOT RUN"))
        return
    uri = os.environ.get("ERAPI_MONGODB_URI", "")
    if not uri:
        say("  skipped: N > 1 workers need a storage the processes share, and erapi serve refuses --workers 2 with "
            "the memory plugin (each process would have a store of its own); set ERAPI_MONGODB_URI")
        run.targets.append(Target(name, "reported", "needs ERAPI_MONGODB_URI (memory: one process only)", "NOT RUN"))
        return
    paths = (f"/apollo/schema/relationshiptypes/{workload.RELATIONSHIP_TYPE}",
             f"/apollo/er/entities/{workload.ahu_ids()[0]}")
    write_connections = arguments.mongodb_connections or arguments.connections
    say(f"  mongodb plugin, a scratch database per service; per worker count three windows: a read the service "
        f"answers without the database (GET {paths[0]}: token, catalog, JSON) and a read with one database "
        f"query (GET {paths[1]}), {arguments.connections} connections and {arguments.duration:.0f} s each; "
        f"then writes (the 100-relationship batches, {write_connections} connections, "
        f"{arguments.mongodb_duration:.0f} s). Nothing is pinned: wrk, the workers and the database server share "
        f"the {os.cpu_count()} cores, and 'other CPU' includes the database server")
    windows = [worker_windows(run, count, uri, paths, write_connections) for count in (1, 2)]
    own, reads, writes = ([window[kind] for window in windows] for kind in range(3))
    say(table(own + reads + writes))
    gains = [pair[1][1].rps / pair[0][1].rps if pair[0][1].rps else 0.0 for pair in (own, reads, writes)]
    few = min(writes[0][1].requests, writes[1][1].requests) < MIN_SAMPLES
    say(f"  2 workers / 1 worker: catalog reads {gains[0]:.2f}x req/s; database reads {gains[1]:.2f}x; "
        f"writes {gains[2]:.2f}x"
        + (f" (only {writes[0][1].requests} and {writes[1][1].requests} requests: indicative)" if few else "")
        + f". Caveat: nothing is pinned, and wrk and the database server share the {os.cpu_count()} cores with "
          f"the workers")
    say(f"  scratch databases left in place: {', '.join(window[3] for window in windows)}")
    run.targets.append(Target(name, "reported", f"catalog reads {gains[0]:.2f}x, database reads {gains[1]:.2f}x, "
                                                f"writes {gains[2]:.2f}x"
                              + (" (writes indicative)" if few else ""), "MEASURED"))


def worker_windows(run: Run, count: int, uri: str, paths: tuple[str, str], write_connections: int) -> tuple[
        tuple[str, LoadResult], tuple[str, LoadResult], tuple[str, LoadResult], str]:
    """``erapi serve --workers count`` on a scratch database: the catalog-read, database-read and write windows
    (each labelled for the table), and the database's name."""
    arguments = run.arguments
    catalog_path, read_path = paths
    database = f"erapi_bench_workers{count}_{uuid.uuid4().hex[:8]}"
    service, _ = run.prepared_service(f"service-workers-{count}", storage="mongodb", pinned=False, workers=count,
                                      mongodb_uri=uri, database=database)
    try:
        run.wrk(f"{count} worker(s) catalog warm-up", service.server, service.token, "warmup", arguments.warmup,
                pinned=False, get_path=catalog_path)
        own = run.wrk(f"{count} worker(s) catalog reads", service.server, service.token, "workers",
                      arguments.duration, pinned=False, get_path=catalog_path)
        run.wrk(f"{count} worker(s) read warm-up", service.server, service.token, "warmup", arguments.warmup,
                pinned=False, get_path=read_path)
        reads = run.wrk(f"{count} worker(s) reads", service.server, service.token, "workers", arguments.duration,
                        pinned=False, get_path=read_path)
        before = service.log.snapshot()
        writes = run.wrk(f"{count} worker(s) writes", service.server, service.token, "workers",
                         arguments.mongodb_duration, pinned=False, connections=write_connections,
                         timeout_s=round(arguments.mongodb_duration) + 30)
        after = wait_quiet(service)
        say(f"  --workers {count}: the service's log counted {after[1] - before[1]:,} relationships stored and "
            f"{after[2] - before[2]:,} item failures in the write window and after it")
    finally:
        service.stop(timeout=120)
    return ((f"--workers {count} catalog", own), (f"--workers {count} reads", reads),
            (f"--workers {count} writes", writes), database)


def growth(run: Run) -> None:
    arguments = run.arguments
    target = arguments.stored
    cap = arguments.window_cap
    say(f"\n== 4. the write path as data grows: empty store against {target:,} stored relationships ==")
    service, _ = run.prepared_service("service-growth")
    try:
        guard = run.memory_guard(service)

        def stored_beyond(limit: int):
            def check() -> str:
                stored = service.log.snapshot()[1]
                return f"{stored:,} relationships stored (window cap {limit:,})" if stored >= limit else guard()
            return check

        empty_stored = service.log.snapshot()[1]
        empty = run.wrk("empty store", service.server, service.token, "empty", arguments.duration,
                        stop_when=stored_beyond(cap))
        time.sleep(0.5)
        full_stored, per_relationship = fill(run, service, target, guard)
        full = run.wrk(f"{full_stored:,} stored", service.server, service.token, "full", arguments.duration,
                       stop_when=stored_beyond(full_stored + cap))
        end_stored = service.log.snapshot()[1]
        say(table([(f"from {empty_stored:,} stored", empty),
                   (f"from {full_stored:,} stored", full)]))
        ratio = full.rps / empty.rps if empty.rps else 0.0
        reached = full_stored >= target
        holds = ratio >= TARGET_GROWTH_RATIO and reached
        say(f"  ratio {full_stored:,} stored / empty: req/s {ratio:.2f} (target >= {TARGET_GROWTH_RATIO}: "
            f"{verdict(holds)}{'' if reached else f', {target:,} not reached'}); p99 {full.p99_ms:,.1f} ms vs "
            f"{empty.p99_ms:,.1f} ms; {end_stored:,} stored at the end")
        if full.cpu_ms_per_request:
            say(f"  server CPU per request: {full.cpu_ms_per_request:.3f} ms at {full_stored:,} stored vs "
                f"{empty.cpu_ms_per_request:.3f} ms empty; ratio "
                f"{empty.cpu_ms_per_request / full.cpu_ms_per_request:.2f}")
        run.targets += [
            Target(f"memory: req/s at {target:,} stored vs empty", f">= {TARGET_GROWTH_RATIO}",
                   f"{ratio:.2f} ({full.rps:,.1f} / {empty.rps:,.1f} req/s; by server CPU per request "
                   f"{empty.cpu_ms_per_request / full.cpu_ms_per_request if full.cpu_ms_per_request else 0:.2f})"
                   + ("" if reached else f" at only {full_stored:,} stored"), verdict(holds)),
            Target("memory per stored relationship", "reported", f"{per_relationship:,.0f} bytes", "MEASURED"),
        ]
        why = (f"req/s at {full_stored:,} stored fell to {ratio:.2f} of the empty store's"
               if ratio < TARGET_GROWTH_RATIO else f"the preload reached only {full_stored:,} stored")
        run.profile(service, "full-profile", "" if holds else why)
    finally:
        service.stop()


def fill(run: Run, service: Service, target: int, guard) -> tuple[int, float]:
    """Preload the service over HTTP up to ``target`` stored relationships (or until ``guard`` or the time limit
    stops it): the count reached and the memory each added relationship took (RSS delta / relationships added)."""
    start_stored, rss_before = service.log.snapshot()[1], service.server.rss()
    requests = max(0, -(-(target - start_stored) // workload.ITEMS_PER_REQUEST))
    progress(f"preloading {requests * workload.ITEMS_PER_REQUEST:,} relationships over HTTP")
    filled = asyncio.run(preload(service.port, service.token, requests, concurrency=run.arguments.connections,
                                 segment_requests=max(1, requests // 10), time_limit=run.arguments.preload_limit,
                                 guard=guard))
    full_stored, rss_after = wait_quiet(service)[1], service.server.rss()
    added = full_stored - start_stored
    say(f"  preload over HTTP: {added:,} relationships in {filled.elapsed_s:,.1f} s "
        f"({filled.relationships_per_s:,.0f}/s; per tenth of the fill: "
        + ", ".join(f"{rate:,.0f}" for _, rate in filled.segments) + " relationships/s)")
    if filled.stopped:
        say(f"  preload stopped: {filled.stopped}; the window below runs at {full_stored:,} stored, short of "
            f"{target:,}")
    per_relationship = (rss_after - rss_before) / added if added else 0.0
    say(f"  memory: RSS {rss_before / 2**20:,.0f} MiB at {start_stored:,} stored -> {rss_after / 2**20:,.0f} MiB "
        f"at {full_stored:,}: {per_relationship:,.0f} bytes per stored relationship (current view, history and "
        f"status record; RSS delta / relationships added)")
    return full_stored, per_relationship


# Connections of section 5 unless --mongodb-connections says otherwise. The database serialises the work:
# FerretDB 1.24 (the test server) takes 0.4 s for one batch alone on a near-empty database and more as the
# collections grow (its filters other than {_id: value} scan), and the plugin publishes one batch at a time
# there. With 32 in flight a request waits 10 to 20 s, so a 30-s window counted fewer than 20 requests on
# a side (printed as indicative); 4 keep the database busy with a short queue and both sides above 20.
MONGODB_CONNECTIONS = 4


def mongodb(run: Run) -> None:
    connections = run.arguments.mongodb_connections or MONGODB_CONNECTIONS
    say("\n== 5. MongoDB plugin against a raw-PyMongo loop doing the same database work ==")
    name = "mongodb: service vs raw PyMongo relationships/s"
    uri = os.environ.get("ERAPI_MONGODB_URI", "")
    if not uri:
        say("  skipped: ERAPI_MONGODB_URI is not set (e.g. start FerretDB with `.ci/ferretdb.sh start DIR` and "
            "export the URI it prints)")
        run.targets.append(Target(name, f">= {TARGET_MONGODB_RATIO}", "ERAPI_MONGODB_URI not set", "NOT RUN"))
        return
    result, raw, logged = mongodb_windows(run, uri, connections)
    say(table([("service (mongodb)", result)]))
    say(f"  {'raw PyMongo loop':<22}{raw['batches_per_s']:>10,.1f}{raw['relationships_per_s']:>17,.0f}"
        f"{raw['p50_ms']:>10,.1f}{raw['p99_ms']:>10,.1f}{raw['batches']:>10,}")
    say(f"  service's own log for the window and after: {logged[0]:,} relationships stored, "
        f"{logged[1]:,} item failures")
    if not result.requests or not raw["batches"]:
        say("  no ratio: a side completed no request within the window (the database answered too slowly)")
        run.targets.append(Target(name, f">= {TARGET_MONGODB_RATIO}", "no request completed in the window",
                                  "NOT RUN"))
        return
    ratio = result.relationships_per_s / raw["relationships_per_s"]
    status = verdict(ratio >= TARGET_MONGODB_RATIO and result.error_count == 0)
    counts = f"{result.requests} and {raw['batches']} requests"
    few = min(result.requests, raw["batches"]) < MIN_SAMPLES
    say(f"  ratio service/raw PyMongo ({raw.get('server', 'server')}): {ratio:.2f} (target >= {TARGET_MONGODB_RATIO}: "
        f"{status}" + (f"; only {counts}: indicative, not a measure)" if few else ")"))
    measured = f"{ratio:.2f} ({result.relationships_per_s:,.0f} / {raw['relationships_per_s']:,.0f} per s"
    run.targets.append(Target(name, f">= {TARGET_MONGODB_RATIO}", measured + (f"; {counts})" if few else ")"),
                              "INDICATIVE" if few else status))


def mongodb_windows(run: Run, uri: str, connections: int) -> tuple[LoadResult, dict, tuple[int, int]]:
    """The service on a scratch database, then the raw-PyMongo loop on another, each for one window: the service's
    result, the loop's, and what the service's log counted (relationships stored, item failures)."""
    arguments, duration = run.arguments, run.arguments.mongodb_duration
    nonce = uuid.uuid4().hex[:8]
    service_db, raw_db = f"erapi_bench_{nonce}", f"erapi_bench_raw_{nonce}"
    say(f"  scratch databases {service_db} and {raw_db}; {connections} connections, {duration:.0f} s windows; "
        f"nothing is pinned (the database server needs a core too) and 'other CPU' includes the database server")
    clean = False
    try:
        service, _ = run.prepared_service("service-mongodb", storage="mongodb", pinned=False, mongodb_uri=uri,
                                          database=service_db)
        try:
            run.wrk("mongodb warm-up", service.server, service.token, "mongodb-warmup", arguments.warmup,
                    pinned=False, connections=connections)
            before = service.log.snapshot()
            result = run.wrk("service (mongodb)", service.server, service.token, "mongodb", duration,
                             pinned=False, timeout_s=round(duration) + 30, connections=connections)
            after = wait_quiet(service)
        finally:
            service.stop(timeout=120)
        progress(f"raw PyMongo loop, {connections} batches in flight, {duration:.0f} s")
        raw_run = subprocess.run(
            [sys.executable, "-m", "bench.raw_pymongo", "--uri", uri, "--database", raw_db, "--duration",
             str(duration), "--warmup", str(arguments.warmup), "--concurrency", str(connections)],
            cwd=harness.ROOT, capture_output=True, text=True, timeout=duration + arguments.warmup + 600)
        line = next((text for text in raw_run.stdout.splitlines() if text.startswith("RAW ")), None)
        if raw_run.returncode != 0 or line is None:
            raise BenchError(f"the raw PyMongo loop failed ({raw_run.returncode}): {raw_run.stderr[-1500:]}")
        raw = orjson.loads(line[4:])
        clean = service.server.process.returncode == 0
    finally:
        if arguments.drop_databases and clean:
            drop_databases(uri, [service_db, raw_db])
        else:
            say(f"  scratch databases left in place: {service_db}, {raw_db} (--drop-databases drops them after a clean "
                f"run; FerretDB 1.24 crashes when a database is dropped while operations on it are still running)")
    return result, raw, (after[1] - before[1], after[2] - before[2])


def wait_quiet(service: Service, limit: float = 120.0) -> tuple[int, int, int]:
    """Wait until the service has logged no transaction for a second: requests wrk left in flight are done."""
    deadline = time.monotonic() + limit
    last = service.log.snapshot()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        current = service.log.snapshot()
        if current == last:
            return current
        last = current
    return last


def drop_databases(uri: str, names: list[str]) -> None:
    try:
        harness.drop_databases(uri, names)
    except Exception as error:  # a leftover scratch database is worth a line, not a failed run
        say(f"  could not drop the scratch databases {names}: {error}")


def summary(run: Run) -> int:
    say("\n== targets (each a ratio measured in this run) ==")
    width = max(len(t.name) for t in run.targets)
    for target in run.targets:
        say(f"  {target.status:<8} {target.name:<{width}}  wanted {target.wanted:<9} measured {target.measured}")
    missed = [t for t in run.targets if t.status == "MISSED"]
    if missed:
        say(f"  {len(missed)} target(s) missed; the profiles above show where the time goes")
    return 0


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured window (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before a window")
    parser.add_argument("--stored", type=int, default=1_000_000,
                        help="stored relationships for the growth measure (default 1,000,000)")
    parser.add_argument("--window-cap", type=int, default=100_000,
                        help="a growth window ends early once it has stored this many relationships")
    parser.add_argument("--preload-limit", type=float, default=150.0,
                        help="seconds the preload may take; it stops there and the miss is reported (default 150)")
    parser.add_argument("--memory-guard-gb", type=float, default=12.0,
                        help="stop a load window when the service's RSS passes this (GiB)")
    parser.add_argument("--mongodb-duration", type=float, default=30.0,
                        help="seconds per MongoDB window (default 30: FerretDB answers slowly)")
    parser.add_argument("--mongodb-connections", type=int,
                        help="connections for MongoDB writes (default: --connections for --workers; "
                             f"{MONGODB_CONNECTIONS} connections and raw batches in flight for the MongoDB plugin "
                             "against raw PyMongo)")
    parser.add_argument("--drop-databases", action="store_true",
                        help="drop the MongoDB scratch databases after a clean run")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="py-spy profile of the service: when a target is missed (auto), always, never")
    parser.add_argument("--profile-seconds", type=float, default=8.0)
    parser.add_argument("--profile-top", type=int, default=14)
    parser.add_argument("--only", action="append",
                        choices=("memory", "async", "workers", "growth", "mongodb"),
                        help="run only these sections (repeatable); async needs memory's sync figure")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and wrk to separate cores")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, profiles)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    cpus = harness.split_cpus(pin=not arguments.no_pin)
    if cpus.load:
        os.sched_setaffinity(0, cpus.load)  # this orchestrator and the preload client stay off the server's core
    sections = arguments.only or ["memory", "async", "workers", "growth", "mongodb"]
    started = time.monotonic()
    with harness.workspace(arguments.keep) as workdir:
        template_path = harness.write_template(workdir)
        run = Run(arguments, workdir, cpus, template_path, template_path.read_text())
        header(run)
        try:
            for name, section in (("memory", memory_against_ceiling), ("async", async_path), ("workers", workers),
                                  ("growth", growth), ("mongodb", mongodb)):
                if name in sections:
                    section(run)
        except BenchError as error:
            say(f"\nbench stopped: {error}")
            return 1
        finally:
            if arguments.keep:
                say(f"\nwork directory kept: {workdir}")
        summary(run)
    say(f"\nbench finished in {time.monotonic() - started:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
