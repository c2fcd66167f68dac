"""Payments by account on the real broker: a mule's money crosses partitions and is still seen.

Three partitions; the mule account, its payers and its exit account are
chosen so that every payment's payer and payee live in different partitions:
the mule's incoming payments reach it only through the by-account topic, one
of the internal topics the worker creates (``streams/topics.py``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from detectors.errors import ConfigError
from streams.backtest import run_backtest
from streams.codec import decode_alert, encode_file_line
from streams.offsets import HistoryError
from streams.processor import partition_for
from streams.settings import Settings
from streams.topics import ensure_topics
from tests.integration.support import Topics, Worker, consume

pytestmark = pytest.mark.integration

T0 = datetime(2023, 3, 1, 8, tzinfo=UTC)


def in_partition(prefix: str, partition: int, n: int) -> list[str]:
    """``n`` account ids that Kafka's default partitioner puts in ``partition`` of 3."""
    names = (f"{prefix}-{i}" for i in range(10_000))
    return [name for name in names if partition_for(name.encode(), 3) == partition][:n]


[MULE] = in_partition("MULE", 0, 1)
[EXIT] = in_partition("EXIT", 2, 1)
PAYERS = in_partition("PAYER", 1, 4) + in_partition("PAYER", 2, 4)


def payment(event_id: str, ts: datetime, payer: str, payee: str, amount: float, **extra) -> bytes:
    return msgspec.json.encode(
        {"event_id": event_id, "ts": ts.isoformat(), "payer": payer, "payee": payee}
        | {"amount": amount}
        | extra
    )


def mule_day() -> list[tuple[str, bytes]]:
    """A fresh account takes 8 transfers over a day and passes ~90% of each on within hours."""
    records = []
    for n, payer in enumerate(PAYERS):
        arrived = T0 + timedelta(hours=3 * n)
        amount = 100_000.0 + 25_000.0 * n
        records.append((payer, payment(f"in-{n}", arrived, payer, MULE, amount)))
        passed = arrived + timedelta(hours=1 + n % 3)
        if n % 2:
            out = payment(f"out-{n}", passed, MULE, "CASH-001", amount * 0.9, channel="cash_out")
        else:
            out = payment(f"out-{n}", passed, MULE, EXIT, amount * 0.9)
        records.append((MULE, out))
    return records


@pytest.mark.partitions(3)
@pytest.mark.parametrize("backlog", [False, True], ids=["live", "backlog"])
async def test_a_mule_across_partitions_is_found_live_as_offline(
    bootstrap, topics: Topics, producer, start_worker, tmp_path, backlog
):
    records = mule_day()
    # Every payment crosses partitions: the payee's side reaches it only by the by-account topic.
    for _, raw in records:
        event = msgspec.json.decode(raw)
        assert partition_for(event["payer"].encode(), 3) != partition_for(
            event["payee"].encode(), 3
        )
    history = tmp_path / "mule.jsonl"
    history.write_bytes(
        b"".join(encode_file_line("payments", key, raw) + b"\n" for key, raw in records)
    )
    offline = run_backtest(history, tmp_path / "alerts.jsonl", partitions=3, progress=False)
    expected = [
        msgspec.json.decode(line) for line in (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    ]
    mule = [a for a in expected if a["kind"] == "mule_account"]
    assert [(a["entity"], a["severity"]) for a in mule] == [
        (MULE, "warning"),  # two inflows passed on
        (MULE, "critical"),  # six: the finding escalates once, a new id
    ]

    app_id = f"kuzet-{topics.prefix.rstrip('.')}"
    if backlog:  # all on the topics before the worker starts: it reads them side by side
        await send_backlog(producer, topics, records)
        worker = start_worker(topics, app_id=app_id)
    else:
        worker = start_worker(topics, app_id=app_id)
        await send_live(producer, topics, records, worker)
    live = await consume(bootstrap, topics.alerts, expected=len(expected))
    outcomes = await wait_counted(worker, ok=len(records), settle=0.0)
    assert worker.stop() == 0, worker.log_tail()

    alerts = [decode_alert(r.value) for r in live]
    assert sorted(a.alert_id for a in alerts) == sorted(a["alert_id"] for a in expected)
    assert [(a.kind, a.entity, a.severity) for a in alerts if a.kind == "mule_account"] == [
        (a["kind"], a["entity"], a["severity"]) for a in mule
    ]
    assert outcomes["ok"] == len(records) == offline.outcomes["ok"]  # each payment once
    assert outcomes["duplicate"] == outcomes["late"] == outcomes["invalid"] == 0


async def send_live(producer, topics: Topics, records: list[tuple[str, bytes]], worker) -> None:
    """One at a time, each once the worker has judged the one before: a live stream.

    The mule's inflows come from other partitions than its outflows, so the
    by-account merge sees its upstream partitions read to their end between
    payments (the backlog case reads them side by side instead).
    """
    start = worker.counted("payments").get("ok", 0)
    for n, (key, raw) in enumerate(records, 1):
        await producer.send_and_wait(topics.input("payments"), raw, key=key.encode())
        await wait_counted(worker, ok=start + n, settle=0.0)


async def send_backlog(producer, topics: Topics, records: list[tuple[str, bytes]]) -> None:
    for key, raw in records:
        await producer.send_and_wait(topics.input("payments"), raw, key=key.encode())


async def wait_counted(
    worker: Worker, ok: int, timeout: float = 60.0, settle: float = 1.0
) -> dict[str, float]:
    """Wait until the worker counted ``ok`` payments, then ``settle`` s (and nothing more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = worker.counted("payments")
        if found.get("ok", 0) >= ok:
            await asyncio.sleep(settle)
            return worker.counted("payments")
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"counted {worker.counted('payments')}, expected ok={ok}:\n{worker.log_tail()}"
    )


@pytest.mark.partitions(3)
async def test_a_restart_resumes_both_topics_where_the_saved_state_stands(
    bootstrap, topics: Topics, producer, start_worker
):
    records = mule_day()
    app_id = f"restart-{topics.prefix.rstrip('.')}"
    first = start_worker(topics, app_id=app_id)
    await send_live(producer, topics, records[:6], first)  # three inflows, three passed on
    assert first.stop() == 0, first.log_tail()  # SIGTERM: every partition's state is saved

    second = start_worker(topics, app_id=app_id)
    await send_live(producer, topics, records[6:], second)
    outcomes = await wait_counted(second, ok=len(records) - 6)
    alerts = [decode_alert(r.value) for r in await consume(bootstrap, topics.alerts, expected=2)]
    assert second.stop() == 0, second.log_tail()
    # Nothing was read twice, neither on the input nor on the by-account topic ...
    assert outcomes["ok"] == len(records) - 6 and outcomes["duplicate"] == 0
    # ... and the inflows seen before the restart still count: the finding escalates.
    assert [(a.kind, a.entity, a.severity) for a in alerts if a.kind == "mule_account"] == [
        ("mule_account", MULE, "warning"),
        ("mule_account", MULE, "critical"),
    ]


@pytest.mark.partitions(3)
async def test_reprocessing_counts_each_payment_once(
    bootstrap, topics: Topics, producer, start_worker
):
    records = mule_day()
    production = f"prod-{topics.prefix.rstrip('.')}"
    worker = start_worker(topics, app_id=production)
    await send_live(producer, topics, records[:8], worker)
    await asyncio.sleep(1.0)
    cut = datetime.now(UTC).isoformat()  # Kafka record time: the second half comes after it
    await asyncio.sleep(1.0)
    await send_live(producer, topics, records[8:], worker)
    await wait_counted(worker, ok=len(records))
    assert worker.stop() == 0, worker.log_tail()
    first = sorted(
        decode_alert(r.value).alert_id for r in await consume(bootstrap, topics.alerts, 2)
    )

    # A fresh group reads the whole input as a backlog, its partitions side by
    # side; it ships into internal topics of its own, read from their start ...
    fresh = start_worker(topics, app_id=f"again-{production}", args=("--from-beginning",))
    outcomes = await wait_counted(fresh, ok=len(records))
    assert fresh.stop() == 0, fresh.log_tail()
    assert outcomes["ok"] == len(records) and outcomes["duplicate"] == 0
    # ... and one pointed at an existing by-account topic reads it from its end:
    # what is already there (the production run's shipments) is not counted again.
    shared = f"{topics.prefix}{production}-payments-by-account"
    third = start_worker(
        topics,
        app_id=f"third-{production}",
        args=("--from-beginning",),
        KUZET_TOPIC_PAYMENTS_BY_ACCOUNT=shared.removeprefix(topics.prefix),
    )
    outcomes = await wait_counted(third, ok=len(records))
    assert third.stop() == 0, third.log_tail()
    assert outcomes["ok"] == len(records) and outcomes["duplicate"] == 0
    # Every run raised the same two alerts, with the same ids.
    alerts = await consume(bootstrap, topics.alerts, expected=3 * len(first))
    ids = sorted(decode_alert(r.value).alert_id for r in alerts)
    assert ids == sorted(3 * first)

    # From a time: only the payments written after it, each once.
    later = start_worker(topics, app_id=f"later-{production}", args=("--from-time", cut))
    outcomes = await wait_counted(later, ok=len(records) - 8)
    assert later.stop() == 0, later.log_tail()
    assert outcomes["ok"] == len(records) - 8 and sum(outcomes.values()) == outcomes["ok"]


@pytest.mark.partitions(1)
async def listed(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Wait until the broker's metadata lists ``names``: create_topics returns once the
    controller has them, and a new client asking the broker a moment later may not see
    them yet (this test failed so, now and then, on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while not set(names) <= set(await admin.list_topics()):
        assert time.monotonic() < deadline, f"topics {names} not listed in {timeout:g} s"
        await asyncio.sleep(0.1)


async def test_internal_topics_get_their_inputs_partitions_or_are_refused(
    bootstrap, topics: Topics
):
    """The worker creates what it writes, as wide as what it reads; it refuses a mismatch.

    Inputs of 3 (payments), 1 (payroll) and 2 (inspections) partitions.
    """
    prefix = topics.prefix + "made."  # under the test's prefix: deleted at teardown
    widths = {"payments": 3, "payroll": 1, "inspections": 2}
    env = {"KUZET_BROKER": bootstrap, "KUZET_TOPIC_PREFIX": prefix, "KUZET_APP_ID": "made"}
    settings = Settings.from_env(env)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # No input topics: refused, naming them, and nothing is created.
        with pytest.raises(HistoryError, match=rf"input topic\(s\) {prefix}payments, .* do not"):
            await ensure_topics(settings)
        assert not [t for t in await admin.list_topics() if t.startswith(prefix)]

        await admin.create_topics([NewTopic(prefix + stream, n, 1) for stream, n in widths.items()])
        await listed(admin, [prefix + stream for stream in widths])
        layout = await ensure_topics(settings)
        assert (layout.inputs, layout.state) == (widths, 3)
        made = {name: await partitions(admin, name) for name in wanted(settings)}
        assert made == {
            f"{prefix}alerts": 3,  # as the payments topic
            f"{prefix}payments.dlq": 3,
            f"{prefix}payroll.dlq": 1,
            f"{prefix}inspections.dlq": 2,
            f"{prefix}made-payments-by-account": 3,
            f"{prefix}made-inspections-by-authority": 2,
            f"{prefix}made-state": 3,  # as the widest input
            f"{prefix}made-rules": 1,  # one partition: every worker reads one order
        }
        [described] = await admin.describe_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, f"{prefix}made-state", {"cleanup.policy": ""}
                )
            ]
        )
        assert [entry[:2] for entry in described.resources[0][4]] == [("cleanup.policy", "compact")]
        assert await ensure_topics(settings) == layout  # there now: left as they are

        # Another group whose by-authority topic exists with another partition count.
        await admin.create_topics([NewTopic(prefix + "odd", 1, 1)])
        await listed(admin, [prefix + "odd"])
        odd = Settings.from_env({**env, "KUZET_TOPIC_INSPECTIONS_BY_AUTHORITY": "odd"})
        with pytest.raises(ConfigError, match=rf"topic {prefix}odd has 1 partitions, not 2"):
            await ensure_topics(odd)
    finally:
        await admin.close()


def wanted(settings: Settings) -> list[str]:
    """Every topic the worker writes."""
    return [
        settings.alerts_topic,
        *(settings.dlq_topic(stream) for stream in ("payments", "payroll", "inspections")),
        settings.by_account_topic,
        settings.by_authority_topic,
        settings.state_topic,
        settings.rules_topic,
    ]


async def partitions(admin: AIOKafkaAdminClient, name: str, timeout: float = 10.0) -> int:
    """The topic's partition count, once the broker's metadata holds it.

    Flaky test fixed here: the broker answers CreateTopics before its metadata
    cache shows the new topic (KRaft propagates it asynchronously), and
    describing all topics at once missed it in 3 runs of 4.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = [t for t in await admin.describe_topics([name]) if t["error_code"] == 0]
        if found or time.monotonic() > deadline:
            [topic] = found
            return len(topic["partitions"])
        await asyncio.sleep(0.1)
