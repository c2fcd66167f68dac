"""The README's demo: a live worker on the local broker, a few events, alerts as they arrive.

Run by ``make demo`` (which starts and stops the broker). Creates fresh
``demo-*`` input topics, starts ``kuzet worker`` on them (it creates the alert,
dead-letter and internal topics it writes, and keeps its state in Kafka, signed
with a key drawn for the run: nothing on disk but its log, in a private
``.kuzet/demo``), publishes a handful of inspections (prohibited, lawful,
exempt, either side of local midnight at the moratorium's start), a redelivered
duplicate and some broken records, then prints the alerts and dead letters the
worker publishes, and its metrics.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from detectors.events import STREAMS
from streams.folders import private_folder

BOOTSTRAP = os.environ.get("KUZET_BROKER", "127.0.0.1:9092")
WEB_PORT = int(os.environ.get("KUZET_DEMO_WEB_PORT", "6066"))
ROOT = Path(__file__).resolve().parents[1]


def inspection(n: int, ts: str, business: str, size: str, basis: str, kind: str = "unscheduled"):
    return business, {
        "event_id": f"demo-insp-{n}",
        "ts": ts,
        "business": business,
        "business_size": size,
        "authority": "KZ-SES",
        "inspector": f"INS-{n % 3}",
        "kind": kind,
        "basis": basis,
    }


# One spring day of 2021, inside the moratorium (Almaty time, given as +06:00 and as Z).
EVENTS = [
    inspection(1, "2021-04-12T09:30:00+06:00", "BIZ-ALMATY-CAFE", "micro", "routine"),
    inspection(2, "2021-04-12T10:00:00+06:00", "BIZ-STEEL-PLANT", "large", "routine"),
    inspection(3, "2021-04-12T04:15:00Z", "BIZ-BAKERY", "small", "threat_to_life_health"),
    inspection(4, "2021-04-12T05:00:00Z", "BIZ-PHARMACY", "small", "complaint", "scheduled"),
    inspection(5, "2021-04-12T14:00:00+06:00", "BIZ-CONSTRUCTION", "medium", "complaint"),
    inspection(6, "2021-04-12T16:45:00+06:00", "BIZ-KIOSK", "micro", "prosecutor_order"),
]
BROKEN = [
    ("inspections", b"BIZ-X", b"<inspection>not json</inspection>"),
    ("inspections", b"BIZ-Y", b'{"event_id": "demo-bad-1", "ts": "2021-04-12T10:30:00"}'),
    (
        "payments",
        b"ACC-1",
        b'{"event_id":"demo-bad-2","ts":"2021-04-12T10:30:00Z",'
        b'"payer":"ACC-1","payee":"ACC-2","amount":-5}',
    ),
]


def say(text: str) -> None:
    print(text, flush=True)


async def main() -> int:
    # A freshly created topic has no leader for a moment; the producer retries, quietly.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    prefix = f"demo-{uuid.uuid4().hex[:6]}."
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    await admin.create_topics([NewTopic(prefix + s, 3, 1) for s in STREAMS])
    await admin.close()

    logs = private_folder(ROOT / ".kuzet" / "demo")
    log = logs / "worker.log"
    say(f"== starting `kuzet worker` on topics {prefix}* (log: {log.relative_to(ROOT)})")
    env = {
        **os.environ,
        "KUZET_BROKER": BOOTSTRAP,
        "KUZET_TOPIC_PREFIX": prefix,
        "KUZET_APP_ID": f"kuzet-{prefix.rstrip('.')}",
        "KUZET_WEB_PORT": str(WEB_PORT),
        # The key the worker signs its saved state with: a fresh one for a fresh group
        # (a group that lives on needs the same key at every start).
        "KUZET_STATE_KEY": secrets.token_hex(32),
    }
    env.pop("KUZET_STATE_KEY_FILE", None)
    with open(log, "wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        return await run_demo(prefix, worker)
    finally:
        worker.terminate()
        worker.wait(30)
        say("== worker stopped")


async def worker_up(worker: subprocess.Popen, timeout: float = 60) -> bool:
    """Wait for the worker's web port: it opens once the worker has made its topics."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/healthz", timeout=1):
                return True
        except OSError:
            await asyncio.sleep(0.2)
    return False


async def run_demo(prefix: str, worker: subprocess.Popen) -> int:
    if not await worker_up(worker):
        say("!! the worker did not start; see its log")
        return 1
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    say("== publishing 6 inspections, 1 redelivered duplicate and 3 broken records")
    for key, event in [*EVENTS, EVENTS[0]]:
        await producer.send_and_wait(
            prefix + "inspections", msgspec.json.encode(event), key=key.encode()
        )
    for stream, key, raw in BROKEN:
        await producer.send_and_wait(prefix + stream, raw, key=key)
    await producer.stop()

    consumer = AIOKafkaConsumer(
        prefix + "alerts",
        *(prefix + s + ".dlq" for s in STREAMS),
        bootstrap_servers=BOOTSTRAP,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    expected_alerts, expected_letters = 2, len(BROKEN)
    alerts = letters = 0
    deadline = time.monotonic() + 90
    try:
        while (
            alerts < expected_alerts or letters < expected_letters
        ) and time.monotonic() < deadline:
            if worker.poll() is not None:
                say("!! the worker exited; see its log")
                return 1
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.topic.endswith(".dlq"):
                        letters += 1
                        headers = {k: v.decode() for k, v in record.headers}
                        say(
                            f"DEAD LETTER from {headers['kuzet.source.topic']}"
                            f"@{headers['kuzet.source.offset']}: {headers['kuzet.reason']}"
                        )
                    else:
                        alerts += 1
                        alert = msgspec.json.decode(record.value)
                        say(
                            f"ALERT {alert['severity'].upper()} {alert['kind']} "
                            f"{alert['entity_type']}={alert['entity']} id={alert['alert_id'][:12]} "
                            f"finding={alert['finding_id'][:12]} ({alert['status']})"
                        )
                        for reason in alert["reasons"]:
                            say(f"      {reason}")
    finally:
        await consumer.stop()
    await asyncio.sleep(1)  # let the last batch's metrics land
    with urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/metrics") as response:
        lines = [
            ln
            for ln in response.read().decode().splitlines()
            if ln.startswith(
                ("kuzet_events_total", "kuzet_alerts_total", "kuzet_dead_letters_total")
            )
            and not ln.endswith(" 0.0")  # every label starts at 0: show what happened
        ]
    say(f"== metrics at http://127.0.0.1:{WEB_PORT}/metrics")
    for line in lines:
        say("   " + line)
    ok = alerts == expected_alerts and letters == expected_letters
    say(
        f"== {alerts} alerts (expected {expected_alerts}), {letters} dead letters "
        f"(expected {expected_letters}): {'OK' if ok else 'UNEXPECTED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
