"""Helpers for the integration tests: topic names, a worker subprocess, reading topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from detectors.events import STREAMS

#: The key the workers these tests start sign their saved state with (streams/state.py):
#: drawn once per test session, never the user's own (conftest sets it for each test).
STATE_KEY = secrets.token_hex(32)


@dataclass
class Topics:
    """The topic names of one test (all under a unique prefix)."""

    prefix: str
    partitions: int

    def input(self, stream: str) -> str:
        return self.prefix + stream

    def dlq(self, stream: str) -> str:
        return self.prefix + stream + ".dlq"

    @property
    def alerts(self) -> str:
        return self.prefix + "alerts"

    def all(self) -> list[str]:
        names = [self.alerts]
        for stream in STREAMS:
            names += [self.input(stream), self.dlq(stream)]
        return names

    def env(self) -> dict[str, str]:
        return {"KUZET_TOPIC_PREFIX": self.prefix}


async def consume(
    bootstrap: str, topic: str, expected: int, timeout: float = 60.0
) -> list[ConsumerRecord]:
    """Read ``topic`` from the start until ``expected`` records arrived, then 2 s more.

    The extra wait catches records that should NOT be there (a second alert).
    """
    return await _read_until(bootstrap, topic, lambda records: len(records) >= expected, timeout)


async def consume_alert_ids(
    bootstrap: str, topic: str, expected: set[str], timeout: float = 180.0
) -> set[str]:
    """The alert ids on ``topic``, read until every one of ``expected`` arrived, then 2 s
    more (for ids that should NOT be there).

    Counting records would not do after a crash: the worker re-judges from its last save
    and publishes some alerts again (same ids), so the count can be reached early.
    """
    from streams.codec import decode_alert

    ids: set[str] = set()
    read = 0  # records whose ids are in ``ids``

    def arrived(records: list[ConsumerRecord]) -> bool:
        nonlocal read
        ids.update(decode_alert(record.value).alert_id for record in records[read:])
        read = len(records)
        return expected <= ids

    arrived(await _read_until(bootstrap, topic, arrived, timeout))  # the settling records too
    return ids


async def _read_until(
    bootstrap: str, topic: str, enough: Callable[[list[ConsumerRecord]], bool], timeout: float
) -> list[ConsumerRecord]:
    """Read ``topic`` from the start until ``enough(records)``, then 2 s more; or until
    ``timeout``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < (settle_until or deadline):
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
            if settle_until is None and enough(records):
                settle_until = time.monotonic() + 2.0
    finally:
        await consumer.stop()
    return records


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Worker:
    """A ``kuzet worker`` subprocess."""

    process: subprocess.Popen[bytes]
    log: Path
    web_port: int
    env: dict[str, str] = field(repr=False)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def get(self, path: str) -> bytes:
        """The body of one of the worker's web pages (``/status``, ``/metrics``, ...)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=5) as r:
            return r.read()

    def status(self) -> dict | None:
        """The worker's ``/status`` (its partitions, positions, outcome counts), None if down."""
        if self.process.poll() is not None:
            return None
        try:
            return json.loads(self.get("/status"))
        except OSError:
            return None

    def counted(self, stream: str) -> dict[str, float]:
        """``kuzet_events_total`` of ``stream`` by outcome: what this process judged itself."""
        prefix = 'kuzet_events_total{outcome="'
        found = {}
        for line in self.get("/metrics").decode().splitlines():
            if line.startswith(prefix) and f'stream="{stream}"' in line:
                found[line[len(prefix) :].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        return found


def judged(workers: list[Worker]) -> tuple[Counter[str], int]:
    """Outcomes summed over the live workers' partitions (``/status``), and halves queued.

    The counts are part of each partition's saved state, so they stay exact when
    partitions move between workers.
    """
    counts: Counter[str] = Counter()
    queued = 0
    for worker in workers:
        found = worker.status()
        if found is None:
            continue
        for task in found["tasks"]:
            counts.update(task["outcomes"])
            queued += task["queued"]
    return +counts, queued


def wait_for_http(worker: Worker, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.log_tail()}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", worker.web_port), timeout=1),
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker did not open its web port in {timeout} s:\n{worker.log_tail()}")


async def wait_until(predicate, timeout: float = 60.0, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(every)
    raise AssertionError("condition not met in time")


def inspection(
    event_id: str, ts: str, business: str, size: str = "small", basis: str = "routine"
) -> bytes:
    """An inspection event's bytes (an unscheduled visit; routine ground by default)."""
    return msgspec.json.encode(
        {
            "event_id": event_id,
            "ts": ts,
            "business": business,
            "business_size": size,
            "authority": "AUTH-1",
            "inspector": "INS-1",
            "kind": "unscheduled",
            "basis": basis,
        }
    )


async def group_offsets(bootstrap: str, group: str, topics: Topics | None = None) -> dict:
    """The group's committed offsets; with ``topics``, only those in its input topics.

    A worker also commits its positions in the group's internal topics.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    inputs = {topics.input(stream) for stream in STREAMS} if topics else None
    return {tp: meta.offset for tp, meta in offsets.items() if inputs is None or tp.topic in inputs}
