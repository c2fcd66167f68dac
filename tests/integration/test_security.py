"""A worker on the broker's secured listeners: SCRAM-SHA-512, TLS, and both.

Besides PLAINTEXT on 9092, ``deploy/kafka/kafka.sh`` opens (deploy/kafka/README.md):

* ``127.0.0.1:9094`` SASL_PLAINTEXT, SCRAM-SHA-512 only, one user ``kuzet`` /
  ``kuzet-secret`` (test-only) stored when the storage is formatted;
* ``127.0.0.1:9095`` SSL, a certificate signed by a local CA (``.data/tls/ca.pem``);
* ``127.0.0.1:9096`` SASL_SSL, the same SCRAM user over the same TLS.

The worker is pointed at one secured listener alone, so everything it reads and
writes goes through that listener's security; the test itself produces and checks
on the PLAINTEXT listener, like any other client.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from detectors.registry import build_engine
from streams.codec import decode_alert, decode_event
from streams.settings import Settings
from tests.integration.support import Topics, consume, inspection

pytestmark = pytest.mark.integration

LISTENERS = {
    "SASL_PLAINTEXT": os.environ.get("KUZET_TEST_SASL_BOOTSTRAP", "127.0.0.1:9094"),
    "SSL": os.environ.get("KUZET_TEST_SSL_BOOTSTRAP", "127.0.0.1:9095"),
    "SASL_SSL": os.environ.get("KUZET_TEST_SASL_SSL_BOOTSTRAP", "127.0.0.1:9096"),
}
# The same variables and defaults as deploy/kafka/kafka.sh.
SCRAM_USER = os.environ.get("KUZET_KAFKA_SCRAM_USER", "kuzet")
SCRAM_PASSWORD = os.environ.get("KUZET_KAFKA_SCRAM_PASSWORD", "kuzet-secret")
_DATA = os.environ.get("KUZET_KAFKA_DATA") or Path(__file__).parents[2] / "deploy/kafka/.data"
CAFILE = os.environ.get("KUZET_TEST_SSL_CAFILE") or str(Path(_DATA) / "tls" / "ca.pem")


def _port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def listener(protocol: str, bootstrap: str) -> str:
    """The address of a secured listener; fails like ``bootstrap`` in CI when it is missing."""
    address = LISTENERS[protocol]
    problem = None
    if not _port_open(address):
        problem = (
            f"no {protocol} listener at {address} although the broker at {bootstrap} is up: "
            "was it started by an older kafka.sh? `deploy/kafka/kafka.sh restart` opens it"
        )
    elif "SSL" in protocol and not Path(CAFILE).is_file():
        problem = f"no CA certificate at {CAFILE} (kafka.sh makes it; or set KUZET_TEST_SSL_CAFILE)"
    if problem:
        if os.environ.get("CI") or os.environ.get("KUZET_REQUIRE_BROKER"):
            pytest.fail(problem)
        pytest.skip(problem)
    return address


def worker_env(
    protocol: str, address: str, *, password: str = SCRAM_PASSWORD, cafile: str | None = CAFILE
) -> dict[str, str]:
    env = {"KUZET_BROKER": address, "KUZET_KAFKA_SECURITY_PROTOCOL": protocol}
    if protocol.startswith("SASL"):
        env.update(
            KUZET_KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
            KUZET_KAFKA_SASL_USERNAME=SCRAM_USER,
            KUZET_KAFKA_SASL_PASSWORD=password,
        )
    if "SSL" in protocol and cafile:
        env["KUZET_KAFKA_SSL_CAFILE"] = cafile
    return env


# A routine inspection of a small business inside the moratorium: one violation.
VIOLATION = inspection("s-1", "2021-03-02T05:00:00Z", "B-1")


def expected_alert() -> dict:
    out = build_engine().process("inspections", decode_event("inspections", VIOLATION), 0)
    [alert] = out.alerts
    return msgspec.to_builtins(alert)


@pytest.mark.parametrize("protocol", list(LISTENERS))
async def test_worker_consumes_and_publishes_through_a_secured_listener(
    protocol, bootstrap, topics: Topics, producer, start_worker
):
    address = listener(protocol, bootstrap)
    worker = start_worker(topics, **worker_env(protocol, address))

    await producer.send_and_wait(topics.input("inspections"), VIOLATION, key=b"B-1")

    records = await consume(bootstrap, topics.alerts, expected=1)
    assert len(records) == 1, worker.log_tail()
    assert msgspec.to_builtins(decode_alert(records[0].value)) == expected_alert()
    assert records[0].key == b"B-1"

    # The same alert read back through the secured listener by a plain aiokafka
    # client configured from the worker's own settings (KafkaSecurity.aiokafka_kwargs).
    security = Settings.from_env(worker.env).security
    consumer = AIOKafkaConsumer(
        topics.alerts,
        bootstrap_servers=address,
        auto_offset_reset="earliest",
        group_id=None,
        **security.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    assert [r.value for part in batch.values() for r in part] == [records[0].value]

    assert worker.stop() == 0, worker.log_tail()


@pytest.mark.parametrize(
    ("protocol", "wrong"),
    [
        ("SASL_PLAINTEXT", {"password": "not-the-password"}),
        ("SSL", {"cafile": None}),  # only the system CAs: the local CA is unknown
    ],
    ids=["wrong SCRAM password", "untrusted broker certificate"],
)
async def test_worker_that_cannot_get_in_processes_nothing_and_says_so(
    protocol, wrong, bootstrap, topics: Topics, producer, start_worker
):
    address = listener(protocol, bootstrap)
    await producer.send_and_wait(topics.input("inspections"), VIOLATION, key=b"B-1")

    # The worker checks its topics before it starts (streams/topics.py); it cannot
    # connect, so it exits with the command line's error code before opening its
    # web port, naming the listener it could not use.
    worker = start_worker(topics, wait=False, **worker_env(protocol, address, **wrong))
    try:
        code = worker.process.wait(90)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker did not give up:\n{worker.log_tail()}") from None
    text = worker.log.read_text(errors="replace")
    assert code == 2, text[-4000:]
    assert f"kuzet: checking the worker's topics: cannot reach Kafka at {address}" in text, text
    assert await consume(bootstrap, topics.alerts, expected=1, timeout=5) == []
