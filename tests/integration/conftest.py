"""Fixtures for tests against the real Kafka broker started by ``deploy/kafka/kafka.sh``.

Every test gets topics of its own (a unique prefix), so tests never see each
other's records. When the broker is not up the tests skip on a developer's
machine (plain ``pytest``) but FAIL when ``CI`` or ``KUZET_REQUIRE_BROKER`` is
set, as ``make test`` and CI do: there a missing broker is a broken build.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.support import STATE_KEY, Topics, Worker, free_port, wait_for_http

BOOTSTRAP = os.environ.get("KUZET_TEST_BOOTSTRAP", "127.0.0.1:9092")


def _broker_up() -> bool:
    host, _, port = BOOTSTRAP.partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def state_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The test session's state key, for every worker a test starts (they inherit the
    environment): a worker without one refuses to start."""
    monkeypatch.setenv("KUZET_STATE_KEY", STATE_KEY)
    monkeypatch.delenv("KUZET_STATE_KEY_FILE", raising=False)
    return STATE_KEY


@pytest.fixture(scope="session")
def bootstrap() -> str:
    if not _broker_up():
        message = (
            f"no Kafka broker at {BOOTSTRAP}: start it with `deploy/kafka/kafka.sh start` "
            "(`make test` does)"
        )
        if os.environ.get("CI") or os.environ.get("KUZET_REQUIRE_BROKER"):
            pytest.fail(message)
        pytest.skip(message)
    return BOOTSTRAP


@pytest.fixture
async def topics(bootstrap: str, request: pytest.FixtureRequest) -> AsyncIterator[Topics]:
    """Fresh topics for one test: 3 partitions, or ``@pytest.mark.partitions(n)``."""
    marker = request.node.get_closest_marker("partitions")
    partitions = marker.args[0] if marker else 3
    names = Topics(prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=partitions)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(n, num_partitions=names.partitions, replication_factor=1)
                for n in names.all()
            ]
        )
        yield names
        # Also the topics a worker created (its internal topics are named after its app id).
        await admin.delete_topics(
            [t for t in await admin.list_topics() if t.startswith(names.prefix)]
        )
    finally:
        await admin.close()


@pytest.fixture
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@pytest.fixture
def start_worker(bootstrap: str, tmp_path: Path) -> Iterator:
    """Start ``kuzet worker`` on the test's topics; every worker is stopped at teardown."""
    started: list[Worker] = []

    def start(
        topics: Topics,
        *,
        app_id: str | None = None,
        args: tuple[str, ...] = (),
        cwd: Path | None = None,
        wait: bool = True,
        **extra: str,
    ) -> Worker:
        """``kuzet worker *args`` on ``topics``; ``extra`` adds environment variables.

        ``cwd``: the worker's working directory (default: the test's ``tmp_path``).
        ``wait``: return once its web port answers (else at once, e.g. for a worker
        expected to refuse to start).
        """
        port = free_port()
        log = tmp_path / f"worker-{len(started)}.log"
        env = {
            **os.environ,
            **topics.env(),
            "KUZET_BROKER": bootstrap,
            "KUZET_APP_ID": app_id or f"kuzet-{topics.prefix.rstrip('.')}",
            "KUZET_WEB_PORT": str(port),
            **extra,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", *args],
            env=env,
            cwd=cwd or tmp_path,
            stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        )
        worker = Worker(process, log, port, env)
        started.append(worker)
        if wait:
            wait_for_http(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
