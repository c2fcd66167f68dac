"""Live throughput: events through a real ``kuzet worker`` on the local broker.

    deploy/kafka/kafka.sh start
    python -m bench.live [N]              # default 200,000 events, the usual mix
    python -m bench.live [N] --payments   # payments only (the repartitioned path)

Pre-loads N events into fresh topics (3 partitions each), starts a worker
subprocess, and reads its ``/metrics`` until every event is counted. The rate
is taken from the first counted batch to the last, so start-up and consumer
group join are not in it. Payments are counted once each, when the by-account
agent has run the detectors on them (``streams/repartition.py``). The topics
(and the worker's by-account topic) are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from itertools import islice

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.events import records
from detectors.events import STREAMS

BOOTSTRAP = os.environ.get("KUZET_BENCH_BOOTSTRAP", "127.0.0.1:9092")
PORT = 6099
COUNT = re.compile(r"^kuzet_events_total\{[^}]*\} ([0-9.e+]+)$", re.M)


async def preload(prefix: str, n: int, payments_only: bool = False) -> float:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    names = [prefix + s for s in STREAMS] + [prefix + s + ".dlq" for s in STREAMS]
    await admin.create_topics([NewTopic(t, 3, 1) for t in [*names, prefix + "alerts"]])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    started = time.perf_counter()
    pending = []
    mix = records(n) if not payments_only else _payments(n)
    for stream, key, raw in mix:
        pending.append(await producer.send(prefix + stream, raw, key=key.encode()))
        if len(pending) >= 20_000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await producer.stop()
    return time.perf_counter() - started


def _payments(n: int):
    """``n`` payments of the usual mix (its other records left out)."""
    return islice((r for r in records(10 * n) if r[0] == "payments"), n)


async def delete_topics(prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.delete_topics([t for t in await admin.list_topics() if t.startswith(prefix)])
    finally:
        await admin.close()


def counted() -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=2) as response:
            return sum(float(v) for v in COUNT.findall(response.read().decode()))
    except OSError:
        return 0.0


def main(n: int = 200_000, payments_only: bool = False) -> None:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    try:
        run(prefix, n, payments_only)
    finally:
        asyncio.run(delete_topics(prefix))


def run(prefix: str, n: int, payments_only: bool) -> None:
    produce_seconds = asyncio.run(preload(prefix, n, payments_only))
    what = "payments" if payments_only else "events (70% payments)"
    print(f"preloaded {n:,} {what} in {produce_seconds:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "KUZET_BROKER": BOOTSTRAP,
            "KUZET_TOPIC_PREFIX": prefix,
            "KUZET_APP_ID": prefix + "worker",
            "KUZET_WEB_PORT": str(PORT),
            "KUZET_STATE_DIR": tmp,
            "KUZET_LOG_LEVEL": "warning",
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            first = None
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                done = counted()
                now = time.perf_counter()
                if done > 0 and first is None:
                    first = (now, done)
                if done >= n:
                    break
                time.sleep(0.05)
            else:
                raise SystemExit(f"worker counted only {counted():,.0f} of {n:,} events")
        finally:
            worker.terminate()
            worker.wait(30)
    (t0, c0), t1 = first, now
    print(
        f"live worker: {n - c0:,.0f} events in {t1 - t0:.2f} s "
        f"= {(n - c0) / (t1 - t0):,.0f} {'payments' if payments_only else 'events'}/s "
        "(3 partitions per topic, one worker)"
    )


if __name__ == "__main__":
    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(numbers[0]) if numbers else 200_000, payments_only="--payments" in sys.argv)
