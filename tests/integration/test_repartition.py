"""Payments by account on the real broker: a mule's money crosses partitions and is still seen.

Three partitions; the mule account, its payers and its exit account are
chosen so that every payment's payer and payee live in different partitions:
the mule's incoming payments reach it only through the by-account topic.
"""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from streams.backtest import run_backtest
from streams.codec import (
    ENVELOPE_FORMAT,
    FORMAT_HEADER,
    decode_alert,
    decode_envelope,
    encode_file_line,
)
from streams.processor import partition_for
from tests.integration.support import Topics, consume

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


def counted(worker) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics") as response:
        text = response.read().decode()
    prefix = 'kuzet_events_total{outcome="'
    found = {}
    for line in text.splitlines():
        if line.startswith(prefix) and 'stream="payments"' in line:
            outcome = line[len(prefix) :].split('"')[0]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found


@pytest.mark.partitions(3)
@pytest.mark.parametrize("backlog", [False, True], ids=["live", "backlog"])
async def test_a_mule_across_partitions_is_found_live_as_offline(
    bootstrap, topics: Topics, producer, start_worker, tmp_path, backlog
):
    records = mule_day()
    # Every payment crosses partitions: the payee's side reaches it only by the new topic.
    for _, raw in records:
        event = msgspec.json.decode(raw)
        assert partition_for(event["payer"].encode(), 3) != partition_for(
            event["payee"].encode(), 3
        )
    history = tmp_path / "mule.jsonl"
    history.write_bytes(
        b"".join(encode_file_line("payments", key, raw) + b"\n" for key, raw in records)
    )
    offline = run_backtest(history, tmp_path / "alerts.jsonl")
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
    # Every payment is judged, so every envelope is on the topic: read them all.
    by_account = await consume(
        bootstrap, f"{topics.prefix}{app_id}-payments-by-account", expected=1
    )
    assert worker.stop() == 0, worker.log_tail()

    alerts = [decode_alert(r.value) for r in live]
    assert sorted(a.alert_id for a in alerts) == sorted(a["alert_id"] for a in expected)
    assert [(a.kind, a.entity, a.severity) for a in alerts if a.kind == "mule_account"] == [
        (a["kind"], a["entity"], a["severity"]) for a in mule
    ]
    assert outcomes["ok"] == len(records) == offline.outcomes["ok"]  # each payment once
    assert outcomes["duplicate"] == outcomes["late"] == outcomes["invalid"] == 0

    # The by-account topic: envelopes, without a key, that hold each payment twice,
    # as the payee's side (in) and as the payer's (out), its bytes unchanged, each
    # in the partition Kafka's default partitioner gives that account.
    halves = []
    for record in by_account:
        assert record.key is None
        assert list(record.headers) == [(FORMAT_HEADER, ENVELOPE_FORMAT)]
        halves += [(record.partition, side, raw) for side, raw in decode_envelope(record.value)]
    assert len(halves) == 2 * len(records)
    for partition, side, raw in halves:
        event = msgspec.json.decode(raw)
        assert side in ("in", "out")
        assert partition == partition_for(event["payee" if side == "in" else "payer"].encode(), 3)
    assert sorted(raw for _, _, raw in halves) == sorted(2 * [raw for _, raw in records])
    if backlog:  # read in batches: several payments share an envelope
        assert len(by_account) < len(halves)
    else:  # one payment at a time: an envelope for each side, in the order sent
        assert len(by_account) == len(halves)
        for partition in range(3):
            expected_order = []
            for _, raw in records:
                event = msgspec.json.decode(raw)
                for side, account in (("in", event["payee"]), ("out", event["payer"])):
                    if partition_for(account.encode(), 3) == partition:
                        expected_order.append((side, raw))
            assert [(s, r) for p, s, r in halves if p == partition] == expected_order


async def send_live(producer, topics: Topics, records: list[tuple[str, bytes]], worker) -> None:
    """One at a time, each once the worker has judged the one before: a live stream.

    The mule's inflows come from other partitions than its outflows; sent as a
    backlog they would reach it in the order the worker happens to read them.
    """
    start = counted(worker).get("ok", 0)
    for n, (key, raw) in enumerate(records, 1):
        await producer.send_and_wait(topics.input("payments"), raw, key=key.encode())
        await wait_counted(worker, ok=start + n, settle=0.0)


async def send_backlog(producer, topics: Topics, records: list[tuple[str, bytes]]) -> None:
    for key, raw in records:
        await producer.send_and_wait(topics.input("payments"), raw, key=key.encode())


async def wait_counted(
    worker, ok: int, timeout: float = 60.0, settle: float = 1.0
) -> dict[str, float]:
    """Wait until the worker counted ``ok`` payments, then ``settle`` s (and nothing more)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        found = counted(worker)
        if found.get("ok", 0) >= ok:
            await asyncio.sleep(settle)
            return counted(worker)
        await asyncio.sleep(0.05)
    raise AssertionError(f"counted {counted(worker)}, expected ok={ok}:\n{worker.log_tail()}")


@pytest.mark.partitions(3)
async def test_a_restart_resumes_both_topics_where_the_checkpoint_stands(
    bootstrap, topics: Topics, producer, start_worker, tmp_path
):
    records = mule_day()
    state = {"KUZET_STATE_DIR": str(tmp_path / "state"), "KUZET_CHECKPOINT_SECONDS": "1"}
    app_id = f"ckpt-{topics.prefix.rstrip('.')}"
    first = start_worker(topics, app_id=app_id, **state)
    await send_live(producer, topics, records[:6], first)  # three inflows, three passed on
    assert first.stop() == 0, first.log_tail()

    second = start_worker(topics, app_id=app_id, **state)
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
async def test_reprocessing_from_the_beginning_counts_each_payment_once(
    bootstrap, topics: Topics, producer, start_worker
):
    records = mule_day()
    production = f"prod-{topics.prefix.rstrip('.')}"
    worker = start_worker(topics, app_id=production)
    await send_live(producer, topics, records, worker)
    await wait_counted(worker, ok=len(records))
    assert worker.stop() == 0, worker.log_tail()
    first = sorted(
        decode_alert(r.value).alert_id for r in await consume(bootstrap, topics.alerts, 2)
    )

    # A fresh group reads the whole input as a backlog, its partitions side by
    # side; it forwards into a by-account topic of its own, read from its start ...
    fresh = start_worker(topics, app_id=f"again-{production}", args=("--from-beginning",))
    outcomes = await wait_counted(fresh, ok=len(records))
    assert fresh.stop() == 0, fresh.log_tail()
    assert outcomes["ok"] == len(records) and outcomes["duplicate"] == 0
    # ... and one pointed at an existing by-account topic reads it from its end:
    # what is already there (the production run's forwards) is not counted again.
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


@pytest.mark.partitions(3)
async def test_the_by_account_topic_is_created_like_the_payments_topic_or_refused(
    bootstrap, topics: Topics
):
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from detectors.errors import ConfigError
    from streams.repartition import ensure_by_account_topic
    from streams.settings import Settings

    env = {"KUZET_BROKER": bootstrap, **topics.env(), "KUZET_APP_ID": "made"}
    settings = Settings.from_env(env)
    assert await ensure_by_account_topic(settings) == 3
    assert await ensure_by_account_topic(settings) == 3  # there now: left as it is
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        made = await described(admin, topics.prefix + "made-payments-by-account")
        assert len(made["partitions"]) == 3
        await admin.create_topics([NewTopic(topics.prefix + "odd", 1, 1)])
    finally:
        await admin.close()
    odd = Settings.from_env({**env, "KUZET_TOPIC_PAYMENTS_BY_ACCOUNT": "odd"})
    with pytest.raises(ConfigError, match=r"has 1 partitions but the payments topic .* has 3"):
        await ensure_by_account_topic(odd)
    # No payments topic yet: asked for as any client asks, the broker (which creates
    # topics on first use, as docker compose's and the local one do) makes it.
    fresh = Settings.from_env({**env, "KUZET_TOPIC_PREFIX": topics.prefix + "fresh."})
    assert await ensure_by_account_topic(fresh) == 1  # the local broker's num.partitions


async def described(admin, name: str, timeout: float = 10.0) -> dict:
    """The topic's description, once the broker's metadata holds it.

    Flaky test fixed here: the broker answers CreateTopics before its metadata
    cache shows the new topic (KRaft propagates it asynchronously), and
    describing all topics at once missed it in 3 runs of 4.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = [t for t in await admin.describe_topics() if t["topic"] == name]
        if found or loop.time() > deadline:
            [topic] = found
            return topic
        await asyncio.sleep(0.1)
