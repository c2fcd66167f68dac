"""Live equals offline: on several partitions, several workers, and through crashes.

A ``kuzet simulate`` world of over 100,000 records is replayed into topics of
3 partitions; workers consume it as they are deployed (one worker; a second
one joining mid-stream; one killed with SIGKILL three times and restarted at
once; the broker stopped for 20 s mid-stream). Each time the alert ids on the
alert topic must be exactly those of ``kuzet backtest --partitions 3`` (none
missing, none extra), and the counts of accepted, duplicate, late and invalid
records, summed over the workers' partitions (``/status``), exactly the
backtest's. Before the state moved into Kafka, 3 partitions gave 15 missing
and 66 extra alerts, and two SIGKILLs 21 false salary arrears (issue 12).

A one-partition run keeps the stronger check it always had: every field of
every alert equals the plain backtest's.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from simulator import SimConfig, simulate
from streams.backtest import BacktestSummary, run_backtest
from streams.codec import decode_alert
from tests.integration.support import Topics, Worker, consume, judged

pytestmark = pytest.mark.integration

#: 114,048 records: over the 100,000 the issue asks for, small enough for CI.
SCALE = 0.15
SEED = 11
KAFKA = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
#: Saved state every second, so crashes land between saves as well as before the first.
FAST_SAVES = {"KUZET_SNAPSHOT_SECONDS": "1"}


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.events = root / "events.jsonl"
        self.summary: BacktestSummary | None = None
        self.ids: set[str] = set()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("world")
    result = simulate(root, seed=SEED, scale=SCALE, config=SimConfig())
    assert result.lines >= 100_000
    found = World(root)
    found.summary = run_backtest(found.events, root / "alerts.jsonl", partitions=3, progress=False)
    found.ids = {
        msgspec.json.decode(line)["alert_id"]
        for line in (root / "alerts.jsonl").read_bytes().splitlines()
    }
    assert len(found.ids) >= 30, "the world should hold findings to compare"
    return found


def replay(bootstrap: str, topics: Topics, events: Path) -> None:
    env = {**os.environ, **topics.env(), "KUZET_BROKER": bootstrap}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", str(events), "--speed", "max"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def expected_counts(summary: BacktestSummary) -> Counter[str]:
    """The backtest's outcomes as the workers count them (replay skips unreadable lines)."""
    counts = Counter(summary.outcomes)
    counts["invalid"] -= summary.unreadable
    return +counts


async def until_judged(workers: list[Worker], share: float, total: int, timeout: float) -> None:
    """Wait until the workers have judged ``share`` of ``total`` records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts, _ = judged(workers)
        if sum(counts.values()) >= share * total:
            return
        await asyncio.sleep(0.1)
    logs = "\n".join(w.log_tail(15) for w in workers)
    raise AssertionError(f"the workers judged {judged(workers)[0]} of {total}:\n{logs}")


async def until_done(workers: list[Worker], expected: Counter[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    counts: Counter[str] = Counter()
    while time.monotonic() < deadline:
        counts, queued = judged(workers)
        if counts == expected and queued == 0:
            return
        await asyncio.sleep(0.3)
    logs = "\n".join(w.log_tail(25) for w in workers)
    raise AssertionError(f"counted {dict(counts)}, expected {dict(expected)}:\n{logs}")


async def alert_ids(bootstrap: str, topics: Topics, expected: int) -> set[str]:
    records = await consume(bootstrap, topics.alerts, expected=expected, timeout=120)
    return {decode_alert(record.value).alert_id for record in records}


async def check(bootstrap: str, topics: Topics, world: World, workers: list[Worker]) -> None:
    assert world.summary is not None
    await until_done(workers, expected_counts(world.summary))
    live = await alert_ids(bootstrap, topics, len(world.ids))
    missing, extra = world.ids - live, live - world.ids
    assert not missing and not extra, f"missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"


async def test_one_worker_on_three_partitions(bootstrap, topics: Topics, world, start_worker):
    replay(bootstrap, topics, world.events)
    worker = start_worker(topics)
    await check(bootstrap, topics, world, [worker])
    assert worker.stop() == 0, worker.log_tail()


async def test_a_second_worker_joins_mid_stream(bootstrap, topics: Topics, world, start_worker):
    replay(bootstrap, topics, world.events)
    app_id = f"kuzet-{topics.prefix.rstrip('.')}"
    first = start_worker(topics, app_id=app_id, **FAST_SAVES)
    await until_judged([first], 0.3, world.summary.records, timeout=120)
    second = start_worker(topics, app_id=app_id, **FAST_SAVES)  # the group rebalances
    await check(bootstrap, topics, world, [first, second])
    owned = [len(w.status()["tasks"]) for w in (first, second)]
    assert all(owned), f"both workers should own partitions: {owned}"
    for worker in (first, second):
        assert worker.stop() == 0, worker.log_tail()


async def test_a_worker_killed_three_times_restarts_where_its_state_stands(
    bootstrap, topics: Topics, world, start_worker
):
    replay(bootstrap, topics, world.events)
    app_id = f"kuzet-{topics.prefix.rstrip('.')}"
    chance = random.Random(SEED)
    worker = start_worker(topics, app_id=app_id, **FAST_SAVES)
    total = world.summary.records
    for share in sorted(chance.uniform(0.1, 0.8) for _ in range(3)):
        await until_judged([worker], share, total, timeout=180)
        await asyncio.sleep(chance.uniform(0, 0.5))
        counts, _ = judged([worker])
        assert sum(counts.values()) < total, "the kill should land mid-stream"
        worker.process.kill()  # SIGKILL: no goodbye, no last save
        worker.process.wait()
        worker = start_worker(topics, app_id=app_id, **FAST_SAVES)
    await check(bootstrap, topics, world, [worker])
    assert worker.stop() == 0, worker.log_tail()


async def test_the_broker_stopped_for_20_seconds_mid_stream(
    bootstrap, topics: Topics, world, start_worker
):
    replay(bootstrap, topics, world.events)
    worker = start_worker(topics, **FAST_SAVES)
    await until_judged([worker], 0.3, world.summary.records, timeout=120)
    subprocess.run([str(KAFKA), "stop"], check=True, capture_output=True, timeout=120)
    try:
        await asyncio.sleep(20)
    finally:
        subprocess.run([str(KAFKA), "start"], check=True, capture_output=True, timeout=180)
    assert worker.process.poll() is None, f"the worker stopped:\n{worker.log_tail()}"
    await check(bootstrap, topics, world, [worker])
    assert worker.stop() == 0, worker.log_tail()


@pytest.mark.partitions(1)
async def test_on_one_partition_every_field_equals_the_plain_backtest(
    bootstrap, topics: Topics, start_worker, tmp_path
):
    world = tmp_path / "world"
    simulate(world, seed=7, scale=0.03, config=SimConfig())
    events = world / "events.jsonl"
    run_backtest(events, tmp_path / "alerts.jsonl", progress=False)
    expected = {
        alert["alert_id"]: alert
        for alert in map(msgspec.json.decode, (tmp_path / "alerts.jsonl").read_bytes().splitlines())
    }
    assert len(expected) >= 10, "the world should hold findings to compare"
    replay(bootstrap, topics, events)
    worker = start_worker(topics)
    records = await consume(bootstrap, topics.alerts, expected=len(expected), timeout=180)
    assert worker.stop() == 0, worker.log_tail()
    live = {}
    for record in records:
        alert = msgspec.to_builtins(decode_alert(record.value))
        live.setdefault(alert["alert_id"], alert)
    assert live == expected  # not only the ids: every field of every alert
    assert len(records) == len(live)  # and no alert twice
