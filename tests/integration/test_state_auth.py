"""Issue 14, "state nobody can forge", on the real broker: a forged save is not read.

Someone who may write the group's state topic appends a save of their own for
a partition: a pickle that would create a marker file when read, under a
manifest that claims the workers' key (its id copied from the genuine
manifest) but cannot carry its MAC. The worker restarted on that topic:

- never unpickles it (no marker), logs a warning and counts it
  (``kuzet_state_rejected_total{reason="bad_mac"}``);
- keeps running, and judges the partition from the group's committed offset
  with empty state, as if nothing had been saved;
- saves that partition again under its key, and the next worker reads that
  save back with nothing refused.

The unit tests (tests/streams/test_state_auth.py) cover every other way to
tamper with a save; this one checks the worker's path through them.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.state import STATE_VERSION
from tests.integration.support import Topics, Worker

pytestmark = pytest.mark.integration


class Bomb:
    """Creates ``marker`` when unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def payroll(event_id: str, employee: str) -> bytes:
    return msgspec.json.encode(
        {
            "event_id": event_id,
            "ts": "2022-10-31T18:00:00+06:00",
            "type": "accrual",
            "employer": "E-1",
            "employee": employee,
            "period": "2022-10",
            "amount": 250_000.0,
        }
    )


async def read_topic(bootstrap: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                return records
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()


def rejected(worker: Worker, reason: str) -> float:
    prefix = f'kuzet_state_rejected_total{{reason="{reason}"}} '
    for line in worker.get("/metrics").decode().splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    raise AssertionError(f"no {prefix.strip()} in /metrics")


async def wait_judged(worker: Worker, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum(worker.counted("payroll").values()) < n:
        assert time.monotonic() < deadline, worker.log_tail()
        await asyncio.sleep(0.2)


async def owned(worker: Worker, topic: str, timeout: float = 30) -> dict:
    """The worker's task of ``topic`` (its only partition), once it owns it."""
    deadline = time.monotonic() + timeout
    while True:
        status = worker.status() or {"tasks": []}
        found = [t for t in status["tasks"] if t["topic"] == topic]
        if found:
            return found[0]
        assert time.monotonic() < deadline, worker.log_tail()
        await asyncio.sleep(0.2)


@pytest.mark.partitions(1)
async def test_a_forged_save_is_refused_counted_and_the_worker_goes_on(
    bootstrap, topics: Topics, producer, start_worker, tmp_path: Path
):
    app_id = f"forged-{topics.prefix.rstrip('.')}"
    state_topic = f"{topics.prefix}{app_id}-state"
    task = f"{topics.input('payroll')}/0"
    source = topics.input("payroll")

    first = start_worker(topics, app_id=app_id)
    await producer.send_and_wait(source, payroll("a-1", "W-1"), key=b"E-1")
    await wait_judged(first, 1)
    assert first.stop() == 0, first.log_tail()  # saved, signed

    # The forger's save: a bomb, under a manifest that copies the genuine one's key id.
    [genuine] = [r for r in await read_topic(bootstrap, state_topic) if r.key == task.encode()]
    manifest = msgspec.msgpack.decode(genuine.value)
    marker = tmp_path / "unpickled"
    blob = pickle.dumps((STATE_VERSION, Bomb(str(marker))))
    forged = manifest | {"generation": 99, "writer": "forger", "chunks": 1, "size": len(blob)}
    forged["mac"] = bytes(32)
    forger = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await forger.start()
    try:
        chunk_key = f"{task}/99.forger/0".encode()
        await forger.send_and_wait(state_topic, blob, key=chunk_key, partition=genuine.partition)
        value = msgspec.msgpack.encode(forged)
        await forger.send_and_wait(
            state_topic, value, key=task.encode(), partition=genuine.partition
        )
    finally:
        await forger.stop()

    second = start_worker(topics, app_id=app_id, KUZET_SNAPSHOT_SECONDS="1")
    await producer.send_and_wait(source, payroll("a-2", "W-2"), key=b"E-1")
    await wait_judged(second, 1)
    assert not marker.exists(), "the forged pickle was read"
    assert rejected(second, "bad_mac") == 1
    log = second.log.read_text(errors="replace")
    assert f"the saved state of {task} fails authentication" in log
    assert "WARNING" in log
    # Empty state from the committed offset: only the new record is counted.
    task_status = await owned(second, source)
    assert (task_status["position"], task_status["outcomes"]) == (2, {"ok": 1})
    assert second.stop() == 0, second.log_tail()

    # Its own save stands on top now: read back with nothing refused.
    third = start_worker(topics, app_id=app_id)
    task_status = await owned(third, source)
    assert (task_status["position"], task_status["outcomes"]) == (2, {"ok": 1})
    assert rejected(third, "bad_mac") == 0
    assert third.stop() == 0, third.log_tail()
    assert not marker.exists()
