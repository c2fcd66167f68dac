"""Live figures: real ``kuzet worker`` processes on the local broker, topics of 3 partitions.

    deploy/kafka/kafka.sh start
    python -m bench.live                         # all three parts (a few minutes)
    python -m bench.live --events 200000         # backlog of the throughput parts
    python -m bench.live --only throughput       # parts 1 and 2; --only latency: part 3
    python -m bench.live --pace-seconds 30 --rate 2000   # part 3's pace (the defaults)
    python -m bench.live --payments              # a backlog of payments only
    python -m bench.live --keep-logs             # keep the workers' logs (kept on failure)

1. **One worker, a backlog.** N events of the usual mix (``bench/events.py``:
   70% payments, 20% payroll, 10% inspections, event time in order) are
   loaded into fresh topics first; then one worker (``python -m streams.cli
   worker``, its own consumer group) reads them. Its ``/status`` outcome
   totals (every record counted once, payments when the by-account partition
   has judged them) are read every 50 ms; the rate runs from the first poll
   at which it holds all 15 tasks (9 input partitions, 6 internal) and has
   judged a record to the first that sees all N, so start-up and the group
   join are not in it. The default backlog lasts seconds, so the worker's
   periodic state save (every ``KUZET_SNAPSHOT_SECONDS``, 30) is not in it.
2. **Two workers of one group, a backlog.** Both workers are started on
   fresh, empty topics and left to form their group; once they hold every
   task between them, each task once, unchanged for a second, both are
   paused (SIGSTOP) while the same backlog is loaded, then resumed together,
   so neither reads alone while the other joins. Their ``/status`` totals
   are summed; the rate runs from the first poll at which
   every worker holds tasks and something is judged to the first that sees
   all N. (Paused for longer than the group's 10 s session, as a very large
   ``--events`` may need, they rejoin on resumption: the rate starts after.)
3. **Append-to-alert latency at a paced rate.** Fresh topics whose records
   carry the broker's append time (``message.timestamp.type=LogAppendTime``,
   inputs and alerts alike). A worker is started and assigned; then the bench
   paces ``--rate`` events/s for ``--pace-seconds`` with an ``AIOKafkaProducer``
   (linger 1 ms), event time advancing in step with the wall clock. Every
   50th record (2%) is a *probe*: an inspection of a micro business in 2021,
   basis "routine", which the moratorium detector flags at once (one alert per
   probe; a business of its own, so no other detector counts its visits).
   Once the worker has judged everything, the inspections and alerts topics
   are read back and each ``moratorium_violation`` alert is matched to its
   probe by ``event_ids``: latency = the alert's append timestamp minus the
   probe's, both stamped by the same broker. The worker saves its state every
   30 s, so a 30 s run holds one save (they stall judging while they last):
   the probes over the target are listed with when they were appended and
   when the last save ended.

Every topic the bench uses lives under one unique prefix (the workers' own
internal topics too: ``KUZET_TOPIC_PREFIX``), and all of them are deleted at
the end, whatever happened. Workers are stopped on any exit; they also get a
SIGTERM if the bench process dies (``PR_SET_PDEATHSIG``). Their logs stay in
a temporary folder that is printed when a part fails. The consumer groups
(``kbench<id>-*``) hold no data and expire with the broker's offset retention.

The machine is shared: read the figures as a smoke check, and compare runs
made side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.events import records
from detectors.events import STREAMS
from streams.regroup import REGROUPS

BOOTSTRAP = os.environ.get("KUZET_BENCH_BOOTSTRAP", "127.0.0.1:9092")
ROOT = Path(__file__).resolve().parent.parent
#: The key every worker of this run signs its saved state with (one group, one key).
STATE_KEY = secrets.token_hex(32)
PARTITIONS = 3
#: Tasks of a group: every input partition and every partition of an internal regrouped topic.
TASKS = PARTITIONS * (len(STREAMS) + len(REGROUPS))
POLL_SECONDS = 0.05
TARGET_RATE = 10_000
TARGET_P99_MS = 250.0
#: One record in this many of the paced stream is a probe (2%).
PROBE_EVERY = 50
#: Event time of the paced stream starts here: inside the moratorium (2020-2022).
PACED_START = datetime(2021, 6, 1, tzinfo=UTC)
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
#: How long a worker may take to join its group and be assigned every task.
JOIN_SECONDS = 90.0
#: How long a worker may take, after the pacing, to judge what is left.
DRAIN_SECONDS = 60.0
#: SIGTERM, then this long for the worker to save its state and leave, then SIGKILL.
STOP_SECONDS = 30.0


class BenchError(Exception):
    """A part could not be measured; the message says why."""


# --- the machine ----------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo") as meminfo:
        memory = f", {int(meminfo.readline().split()[1]) / 2**20:.1f} GiB RAM"
    load = ", load " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{len(os.sched_getaffinity(0))} CPUs (nproc) of {os.cpu_count()}, {model}{memory}{load}; "
        f"Python {platform.python_version()}; Kafka at {BOOTSTRAP}"
    )


# --- worker processes -----------------------------------------------------------------

#: Runs the worker in a process that gets SIGTERM when the bench dies (PR_SET_PDEATHSIG,
#: kept across exec), without a preexec_fn (unsafe once the bench has threads).
LAUNCH = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
if os.getppid() != int(sys.argv[1]):
    sys.exit("bench.live: the bench is gone")
os.execv(sys.executable, [sys.executable, "-m", "streams.cli", "worker"])
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: Every worker started, so that any exit stops them.
STARTED: list[WorkerProcess] = []


class WorkerProcess:
    """One ``python -m streams.cli worker`` subprocess and its web port."""

    def __init__(self, name: str, prefix: str, app_id: str, logs: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.log = logs / f"{name}.log"
        env = {
            **os.environ,
            "KUZET_BROKER": BOOTSTRAP,
            "KUZET_TOPIC_PREFIX": prefix,
            "KUZET_APP_ID": app_id,
            "KUZET_WEB_PORT": str(self.port),
            "KUZET_LOG_LEVEL": "info",
            "KUZET_STATE_KEY": STATE_KEY,
        }
        env.pop("KUZET_STATE_KEY_FILE", None)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, str(os.getpid())],
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        STARTED.append(self)
        self.total = 0  #: outcome total at the last good /status
        self.outcomes: dict[str, int] = {}
        self.tasks: list[tuple[str, int]] = []

    def check(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise BenchError(f"worker {self.name} exited with code {code}:\n{self.tail()}")

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"    (no log at {self.log})"
        return "\n".join("    " + line for line in text)

    async def get(self, session: aiohttp.ClientSession, path: str) -> Any:
        """A web endpoint's body (JSON for /status, text otherwise); None if it did not answer."""
        try:
            async with session.get(
                f"http://127.0.0.1:{self.port}{path}", timeout=aiohttp.ClientTimeout(total=2)
            ) as response:
                if response.status != 200:
                    return None
                if path == "/status":
                    return await response.json()
                return await response.text()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def poll(self, session: aiohttp.ClientSession) -> None:
        """Refresh :attr:`total` and :attr:`tasks` (kept as they were if no answer)."""
        status = await self.get(session, "/status")
        if status is not None:
            self.outcomes = status["outcomes"]
            self.total = int(sum(self.outcomes.values()))
            self.tasks = [(t["topic"], t["partition"]) for t in status["tasks"]]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(workers: list[WorkerProcess]) -> None:
    """SIGTERM them all, give them :data:`STOP_SECONDS` together, then SIGKILL."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.signal(signal.SIGCONT)  # if it was paused
            worker.proc.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for worker in workers:
        try:
            worker.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()
        if worker in STARTED:
            STARTED.remove(worker)


def stop_all() -> None:
    stop(list(STARTED))


@dataclass
class Snapshots:
    """What the workers' ``/metrics`` say about state saves (``kuzet_snapshot_seconds``)."""

    count: int = 0
    pickle_seconds: float = 0.0
    write_seconds: float = 0.0
    pickle_max_le: float = 0.0  #: the smallest histogram bound over every pickle seen
    last_wall: float = 0.0  #: wall time of the last save (epoch seconds)

    def add(self, metrics: str | None) -> None:
        if not metrics:
            return
        buckets: list[tuple[float, float]] = []
        for line in metrics.splitlines():
            if not line.startswith("kuzet_snapshot_"):
                continue
            name, _, value = line.rpartition(" ")
            if name == "kuzet_snapshot_last_timestamp_seconds":
                self.last_wall = max(self.last_wall, float(value))
            elif name == 'kuzet_snapshot_seconds_count{step="pickle"}':
                self.count += int(float(value))
            elif name == 'kuzet_snapshot_seconds_sum{step="pickle"}':
                self.pickle_seconds += float(value)
            elif name == 'kuzet_snapshot_seconds_sum{step="write"}':
                self.write_seconds += float(value)
            elif name.startswith("kuzet_snapshot_seconds_bucket{") and 'step="pickle"' in name:
                bound = name.split('le="', 1)[1].split('"', 1)[0]
                buckets.append((float(bound), float(value)))
        if buckets:
            top = max(count for _, count in buckets)
            if top:
                le = min(bound for bound, count in buckets if count >= top)
                self.pickle_max_le = max(self.pickle_max_le, le)

    def render(self) -> str:
        if not self.count:
            return "no state saved"
        most = "over 5 s" if math.isinf(self.pickle_max_le) else f"<= {self.pickle_max_le:g} s"
        return (
            f"{self.count} state saves: pickle {1000 * self.pickle_seconds / self.count:.0f} ms "
            f"mean ({most} each), write {1000 * self.write_seconds / self.count:.0f} ms mean"
        )


# --- topics ---------------------------------------------------------------------------


async def create_topics(prefix: str, config: dict[str, str] | None = None) -> None:
    """The input topics, their ``.dlq`` and ``alerts``, 3 partitions each, under ``prefix``."""
    names = [prefix + s for s in STREAMS]
    names += [prefix + s + ".dlq" for s in STREAMS] + [prefix + "alerts"]
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, PARTITIONS, 1, topic_configs=config or {}) for t in names]
        )
        deadline = time.monotonic() + 15
        while not await _led(admin, names):  # a send before the leaders are up is retried noisily
            if time.monotonic() > deadline:
                raise BenchError(f"the topics under {prefix} got no partition leaders in 15 s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _led(admin: AIOKafkaAdminClient, names: list[str]) -> bool:
    """Does every partition of every topic in ``names`` have a leader?"""
    described = await admin.describe_topics(names)
    return len(described) == len(names) and all(
        topic["error_code"] == 0
        and len(topic["partitions"]) == PARTITIONS
        and all(p["error_code"] == 0 and p["leader"] >= 0 for p in topic["partitions"])
        for topic in described
    )


async def delete_topics(prefix: str) -> list[str]:
    """Delete every topic under ``prefix``; return those still there afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        for _ in range(3):
            mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if not mine:
                return []
            with contextlib.suppress(Exception):  # one unknown topic must not keep the rest
                await admin.delete_topics(mine)
            await asyncio.sleep(1.0)
        return [t for t in await admin.list_topics() if t.startswith(prefix)]
    finally:
        await admin.close()


async def read_topic(topic: str) -> list[Any]:
    """Every record of ``topic`` (3 partitions) from the beginning to its end now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    got: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        deadline = time.monotonic() + 120
        while remaining:
            if time.monotonic() > deadline:
                raise BenchError(f"could not read {topic} to its end in 120 s")
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for part in batch.values():
                got.extend(part)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return got


# --- part 1 and 2: throughput ---------------------------------------------------------


def backlog(n: int, payments_only: bool) -> Iterator[tuple[str, str, bytes]]:
    """The usual mix, or only its payments (``n`` of them)."""
    if not payments_only:
        return records(n)
    return islice((r for r in records(10 * n) if r[0] == "payments"), n)


async def preload(prefix: str, n: int, payments_only: bool) -> float:
    """Produce the backlog into the input topics under ``prefix``; the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for stream, key, raw in backlog(n, payments_only):
            pending.append(await producer.send(prefix + stream, raw, key=key.encode()))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


@dataclass
class Mark:
    at: float  #: perf_counter
    judged: int
    cpu: list[float]


@dataclass
class Throughput:
    label: str
    workers: int
    events: int
    unit: str
    first: Mark | None = None  #: the first poll that saw a judged record
    settled: Mark | None = None  #: the first at which every worker held tasks (all, once)
    last: Mark | None = None  #: the first that saw every record judged
    shares: list[int] = field(default_factory=list)  #: each worker's total at the end
    outcomes: Counter[str] = field(default_factory=Counter)
    snapshots: Snapshots = field(default_factory=Snapshots)
    error: str = ""
    load_seconds: float = 0.0  #: backlog loaded while the workers were paused

    def rate(self, start: Mark | None) -> tuple[int, float]:
        end = self.last
        if start is None or end is None or end.at <= start.at:
            return 0, 0.0
        return end.judged - start.judged, end.at - start.at

    def cpu(self) -> str:
        start, end = self.settled, self.last
        if start is None or end is None or end.at <= start.at:
            return "-"
        used = [(b - a) / (end.at - start.at) for a, b in zip(start.cpu, end.cpu, strict=True)]
        return " + ".join(f"{100 * u:.0f}%" for u in used)


async def measure_throughput(
    result: Throughput,
    prefix: str,
    app_id: str,
    logs: Path,
    timeout: float,
    load: Callable[[], Awaitable[float]] | None = None,
) -> None:
    """Start the workers on the backlog under ``prefix``; fill in ``result``.

    With ``load``, the topics are still empty: the workers are started, and once
    they hold every task between them they are paused (SIGSTOP) while ``load``
    produces the backlog, then resumed together.
    """
    n = result.events
    workers = [WorkerProcess(f"{app_id}-{i}", prefix, app_id, logs) for i in range(result.workers)]
    try:
        async with aiohttp.ClientSession() as session:
            if load is not None:
                await settle(workers, session)
                for worker in workers:
                    worker.signal(signal.SIGSTOP)
                try:
                    result.load_seconds = await load()
                finally:
                    for worker in workers:
                        worker.signal(signal.SIGCONT)
            deadline = time.monotonic() + timeout
            while True:
                for worker in workers:
                    worker.check()
                await asyncio.gather(*(w.poll(session) for w in workers))
                now = time.perf_counter()
                judged = sum(w.total for w in workers)
                held = [tp for w in workers for tp in w.tasks]
                whole = len(held) == TASKS == len(set(held))

                def mark(now: float = now, judged: int = judged) -> Mark:
                    return Mark(now, judged, [w.cpu_seconds() for w in workers])

                if judged and result.first is None:
                    result.first = mark()
                if judged and whole and result.settled is None and all(w.tasks for w in workers):
                    result.settled = mark()
                if judged >= n and whole:
                    result.last = mark()
                    break
                if time.monotonic() > deadline:
                    result.last = mark()
                    result.error = f"timed out after {timeout:.0f} s: {judged:,} of {n:,} judged"
                    break
                await asyncio.sleep(POLL_SECONDS)
            result.shares = [w.total for w in workers]
            for worker in workers:
                result.outcomes.update(worker.outcomes)
            for worker in workers:
                result.snapshots.add(await worker.get(session, "/metrics"))
    finally:
        stop(workers)


async def settle(workers: list[WorkerProcess], session: aiohttp.ClientSession) -> None:
    """Wait until every worker holds tasks, all of them once, unchanged for a second."""
    deadline = time.monotonic() + JOIN_SECONDS
    stable: list[list[tuple[str, int]]] | None = None
    while True:
        for worker in workers:
            worker.check()
        await asyncio.gather(*(w.poll(session) for w in workers))
        held = [sorted(w.tasks) for w in workers]
        flat = [tp for tasks in held for tp in tasks]
        if all(held) and len(flat) == TASKS == len(set(flat)):
            if held == stable:
                return
            stable = held
        else:
            stable = None
        if time.monotonic() > deadline:
            raise BenchError(
                f"the workers held {len(flat)} tasks ({len(set(flat))} distinct, {TASKS} wanted) "
                f"after {JOIN_SECONDS:.0f} s"
            )
        await asyncio.sleep(1.0)


# --- part 3: latency ------------------------------------------------------------------


@dataclass
class Latency:
    rate: float
    seconds: float
    sent: int = 0
    sent_seconds: float = 0.0
    probes: int = 0
    matched: list[float] = field(default_factory=list)  #: milliseconds, one per probe
    started_wall: float = 0.0  #: wall time the pacing started (epoch seconds)
    #: (seconds into the pacing the probe was appended, ms) of the probes over the target
    slow: list[tuple[float, float]] = field(default_factory=list)
    timestamp_types: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)
    snapshots: Snapshots = field(default_factory=Snapshots)
    error: str = ""

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the matched latencies (ms)."""
        values = sorted(self.matched)
        return values[max(0, math.ceil(q * len(values)) - 1)] if values else math.nan

    def slow_note(self) -> str:
        """When the probes over the target were appended, and when the worker last saved state."""
        if not self.slow:
            return f"no probe over {TARGET_P99_MS:.0f} ms"
        into = [at for at, _ in self.slow]
        note = (
            f"{len(self.slow)} probes over {TARGET_P99_MS:.0f} ms, appended "
            f"+{min(into):.1f} to +{max(into):.1f} s into the pacing"
        )
        if self.snapshots.last_wall:
            note += f" (last state save: +{self.snapshots.last_wall - self.started_wall:.1f} s)"
        return note


def paced_stream(
    prefix: str, rate: float, seconds: float, run: str
) -> tuple[list[tuple[str, bytes, bytes]], set[str]]:
    """(topic, key, value) records in send order, and the probes' event ids.

    The ordinary records are the usual mix, re-stamped: record ``i`` happens at
    ``PACED_START + i / rate``, so event time moves with the pacing.
    """
    total = int(rate * seconds)
    out: list[tuple[str, bytes, bytes]] = []
    probes: set[str] = set()
    decode, encode = msgspec.json.decode, msgspec.json.encode
    ordinary = records(total, seed=11)
    for i in range(total):
        ts = (PACED_START + timedelta(seconds=i / rate)).isoformat()
        if i % PROBE_EVERY == PROBE_EVERY // 2:
            event_id = f"probe-{run}-{i}"
            business = f"PROBE-{run}-{i}"
            probes.add(event_id)
            value = encode(
                {
                    "event_id": event_id,
                    "ts": ts,
                    "business": business,
                    "business_size": "micro",
                    "authority": "AUTH-PROBE",
                    "inspector": f"INS-PROBE-{i % 7}",
                    "kind": "unscheduled",
                    "basis": "routine",
                }
            )
            out.append((prefix + "inspections", business.encode(), value))
            next(ordinary)  # keep the mix's proportions
            continue
        stream, key, raw = next(ordinary)
        event = decode(raw)
        event["ts"] = ts
        event["event_id"] = f"{run}-{event['event_id']}"
        out.append((prefix + stream, key.encode(), encode(event)))
    return out, probes


async def measure_latency(result: Latency, prefix: str, app_id: str, logs: Path) -> None:
    await create_topics(prefix, APPEND_TIME)
    stream, probes = paced_stream(prefix, result.rate, result.seconds, app_id)
    result.probes = len(probes)
    worker = WorkerProcess(app_id, prefix, app_id, logs)
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + JOIN_SECONDS
            while len(set(worker.tasks)) < TASKS:
                worker.check()
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"worker {worker.name} held {len(worker.tasks)} of {TASKS} tasks "
                        f"after {JOIN_SECONDS:.0f} s:\n{worker.tail()}"
                    )
                await asyncio.sleep(0.2)
                await worker.poll(session)
            await asyncio.sleep(1.0)  # let the first empty fetches come back
            result.started_wall = time.time()
            result.sent_seconds = await pace(stream, result.rate)
            result.sent = len(stream)
            deadline = time.monotonic() + DRAIN_SECONDS
            while True:
                worker.check()
                await worker.poll(session)
                if worker.total >= len(stream):
                    break
                if time.monotonic() > deadline:
                    result.error = (
                        f"the worker judged {worker.total:,} of {len(stream):,} records within "
                        f"{DRAIN_SECONDS:.0f} s of the end of the pacing"
                    )
                    break
                await asyncio.sleep(0.2)
            result.outcomes.update(worker.outcomes)
            result.snapshots.add(await worker.get(session, "/metrics"))
    finally:
        stop([worker])
    appended = await probe_times(prefix + "inspections", probes, result)
    alerts = await read_topic(prefix + "alerts")
    first: dict[str, int] = {}
    for record in alerts:
        result.timestamp_types.add(_timestamp_type(record))
        alert = _alert_decoder.decode(record.value)
        if alert.kind != "moratorium_violation":
            continue
        for event_id in alert.event_ids:
            if event_id in appended:
                first[event_id] = min(first.get(event_id, record.timestamp), record.timestamp)
    for event_id, at in first.items():
        millis = float(at - appended[event_id])
        result.matched.append(millis)
        if millis > TARGET_P99_MS:
            result.slow.append((appended[event_id] / 1000 - result.started_wall, millis))


class _Id(msgspec.Struct):
    event_id: str = ""


class _AlertIds(msgspec.Struct):
    kind: str
    event_ids: list[str]


_id_decoder = msgspec.json.Decoder(_Id)
_alert_decoder = msgspec.json.Decoder(_AlertIds)


def _timestamp_type(record: Any) -> str:
    return "LogAppendTime" if record.timestamp_type == 1 else "CreateTime"


async def probe_times(topic: str, probes: set[str], result: Latency) -> dict[str, int]:
    """Each probe's Kafka timestamp (ms), read back from ``topic``."""
    appended: dict[str, int] = {}
    for record in await read_topic(topic):
        event_id = _id_decoder.decode(record.value).event_id
        if event_id in probes:
            appended[event_id] = record.timestamp
            result.timestamp_types.add(_timestamp_type(record))
    return appended


async def pace(stream: list[tuple[str, bytes, bytes]], rate: float) -> float:
    """Send ``stream`` at ``rate`` records a second; the seconds it took."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=1, acks=1)
    await producer.start()
    try:
        send = producer.send
        pending = []
        started = time.perf_counter()
        sent = 0
        total = len(stream)
        while sent < total:
            due = min(total, int((time.perf_counter() - started) * rate) + 1)
            while sent < due:
                topic, key, value = stream[sent]
                pending.append(await send(topic, value, key=key))
                sent += 1
            await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
        elapsed = time.perf_counter() - started
        failed = [r for r in await asyncio.gather(*pending, return_exceptions=True) if _err(r)]
        if failed:
            raise BenchError(f"{len(failed):,} paced records were not acknowledged: {failed[0]!r}")
        return elapsed
    finally:
        await producer.stop()


def _err(result: Any) -> bool:
    return isinstance(result, BaseException)


def outcome_note(outcomes: Counter[str]) -> str:
    """``judged 199,990 ok, 10 late``: the workers' outcome counts."""
    if not outcomes:
        return ""
    return "judged " + ", ".join(f"{n:,} {o}" for o, n in outcomes.most_common())


# --- the run --------------------------------------------------------------------------


def throughput_row(part: Throughput) -> tuple[str, str, str, str, str]:
    count, seconds = part.rate(part.settled)
    target = f">= {TARGET_RATE:,}/s" if part.workers == 1 else "-"
    if not seconds:
        return (part.label, "-", "not measured", target, part.error or "stopped")
    note = [f"CPU {part.cpu()}", outcome_note(part.outcomes)]
    if part.load_seconds:
        note.append(f"loaded in {part.load_seconds:.1f} s with the workers paused")
    if part.workers > 1:
        whole_count, whole_seconds = part.rate(part.first)
        if whole_seconds:
            note.append(f"from the first judged record {whole_count / whole_seconds:,.0f}/s")
        note.append("shares " + " / ".join(f"{share:,}" for share in part.shares))
    note.append(part.snapshots.render())
    if part.error:
        note.insert(0, "INCOMPLETE: " + part.error)
    return (
        part.label,
        f"{count:,} {part.unit} in {seconds:.2f} s",
        f"{count / seconds:,.0f} {part.unit}/s",
        target,
        "; ".join(x for x in note if x),
    )


def latency_row(part: Latency) -> tuple[str, str, str, str, str]:
    label = f"append -> alert, {part.rate:,.0f} events/s for {part.seconds:g} s"
    target = f"p99 <= {TARGET_P99_MS:.0f} ms"
    n = len(part.matched)
    if not n:
        return (label, "-", "not measured", target, part.error or "stopped")
    note = [
        f"p90 {part.percentile(0.9):.0f} ms, max {max(part.matched):.0f} ms",
        part.slow_note(),
        outcome_note(part.outcomes),
        "timestamps: " + ", ".join(sorted(part.timestamp_types)),
        part.snapshots.render(),
    ]
    if part.error:
        note.insert(0, "INCOMPLETE: " + part.error)
    return (
        label,
        f"{part.sent:,} events in {part.sent_seconds:.1f} s "
        f"({part.sent / part.sent_seconds:,.0f}/s), {n:,}/{part.probes:,} probes matched",
        f"p50 {part.percentile(0.5):.0f} ms, p99 {part.percentile(0.99):.0f} ms",
        target,
        "; ".join(x for x in note if x),
    )


def render(
    header: str, parts: list[Throughput | Latency], notes: list[str], args: argparse.Namespace
) -> str:
    rows = [("part", "measured", "result", "target", "notes")]
    for part in parts:
        rows.append(throughput_row(part) if isinstance(part, Throughput) else latency_row(part))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    what = "payments" if args.payments else "events (70% payments, 20% payroll, 10% inspections)"
    setup = f"topics of {PARTITIONS} partitions"
    if args.only != "latency":
        setup += f"; backlog of {args.events:,} {what}"
    lines = [
        "",
        "Kuzet live bench: " + header,
        setup,
        "",
    ]
    for i, row in enumerate(rows):
        cells = [cell.ljust(widths[j]) for j, cell in enumerate(row[:4])]
        lines.append("  ".join(cells) + "  " + row[4])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 5)
    lines.append("")
    lines.append(
        "events/s: records judged (sum of the workers' /status outcome totals, polled every "
        f"{1000 * POLL_SECONDS:.0f} ms) from the first poll at which every worker held tasks "
        f"(all {TASKS}, none twice) to the first with every record judged."
    )
    lines.append(
        "latency: the alert's Kafka timestamp minus its probe's, nearest-rank percentiles over "
        "the probes (an inspection the moratorium forbids, 1 record in "
        f"{PROBE_EVERY}); the worker's state saves (every KUZET_SNAPSHOT_SECONDS) are in it."
    )
    lines.extend(notes)
    return "\n".join(lines)


async def run(
    args: argparse.Namespace, prefix: str, logs: Path, parts: list[Throughput | Latency]
) -> None:
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    unit = "payments" if args.payments else "events"
    group = prefix.rstrip(".")  # consumer groups: kbench<id>-one, -two, -lat
    if args.only in (None, "throughput"):
        bound = 60 + args.events / 2000

        async def load(under: str) -> float:
            try:
                return await asyncio.wait_for(preload(under, args.events, args.payments), bound)
            except TimeoutError:
                raise BenchError(f"pre-loading took over {bound:.0f} s") from None

        timeout = 120 + args.events / 1000
        for label, workers, app in (("one worker", 1, "one"), ("two workers, one group", 2, "two")):
            result = Throughput(label, workers, args.events, unit)
            parts.append(result)
            under = f"{prefix}{app}."
            print(f"part: {label}, a backlog of {args.events:,} {unit} ...", flush=True)
            try:
                await create_topics(under)
                if workers == 1:  # the backlog first, then the worker
                    seconds = await load(under)
                    print(f"  pre-loaded in {seconds:.1f} s", flush=True)
                    await measure_throughput(result, under, f"{group}-{app}", logs, timeout)
                else:  # the workers first, paused while the backlog is loaded
                    await measure_throughput(
                        result,
                        under,
                        f"{group}-{app}",
                        logs,
                        timeout,
                        functools.partial(load, under),
                    )
                    print(
                        f"  pre-loaded in {result.load_seconds:.1f} s, workers paused", flush=True
                    )
            except BenchError as exc:
                result.error = str(exc)
            count, seconds = result.rate(result.settled)
            rate = f"{count / seconds:,.0f} {unit}/s" if seconds else "-"
            print(f"  {rate}{'  ' + result.error if result.error else ''}", flush=True)
    if args.only in (None, "latency"):
        latency = Latency(args.rate, args.pace_seconds)
        parts.append(latency)
        print(
            f"part: latency, {args.rate:,.0f} events/s for {args.pace_seconds:g} s, "
            f"{100 / PROBE_EVERY:g}% probes ...",
            flush=True,
        )
        try:
            await measure_latency(latency, f"{prefix}lat.", f"{group}-lat", logs)
        except BenchError as exc:
            latency.error = str(exc)
        if latency.matched:
            print(
                f"  p50 {latency.percentile(0.5):.0f} ms, p99 {latency.percentile(0.99):.0f} ms",
                flush=True,
            )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.live", description=__doc__.split("\n")[0]
    )
    parser.add_argument("n", nargs="?", type=int, help=argparse.SUPPRESS)  # the old form
    parser.add_argument("--events", type=int, default=200_000, help="backlog size (200,000)")
    parser.add_argument("--pace-seconds", type=float, default=30.0, help="latency run (30 s)")
    parser.add_argument("--rate", type=float, default=2_000.0, help="paced events/s (2,000)")
    parser.add_argument("--only", choices=("throughput", "latency"))
    parser.add_argument("--payments", action="store_true", help="backlog of payments only")
    parser.add_argument("--keep-logs", action="store_true", help="keep the workers' logs")
    args = parser.parse_args(argv)
    if args.n is not None:
        args.events = args.n
    if args.events <= 0 or args.rate <= 0 or args.pace_seconds <= 0:
        parser.error("--events, --rate and --pace-seconds must be positive")
    return args


def _terminate(signum: int, frame: Any) -> None:  # before the event loop runs
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    header = machine()
    prefix = f"kbench{uuid.uuid4().hex[:8]}."
    logs = Path(tempfile.mkdtemp(prefix="kuzet-bench-live-"))
    parts: list[Throughput | Latency] = []
    notes: list[str] = []
    error = ""
    try:
        asyncio.run(run(args, prefix, logs, parts))
    except BenchError as exc:
        error = str(exc)
    except asyncio.CancelledError:  # SIGTERM: the parts' own clean-up has run
        error = "stopped by SIGTERM"
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the clean-up finish
        stop_all()
        try:
            left = asyncio.run(delete_topics(prefix))
        except Exception as exc:  # the table is still worth printing
            left = [f"(all: {type(exc).__name__}: {exc})"]
        failed = bool(error) or not parts or any(p.error for p in parts)
        keep = failed or args.keep_logs
        if not keep:
            shutil.rmtree(logs, ignore_errors=True)
        notes.append(
            f"\ntopics under {prefix} deleted"
            + (f", except {', '.join(left)}" if left else "")
            + (f"; worker logs in {logs}" if keep else "")
        )
        print(render(header, parts, notes, args), flush=True)
    if error:
        print(f"bench.live: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
