"""History on the real broker: replay a file, capture it back, reprocess from a time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from detectors.registry import build_engine
from streams.capture import capture
from streams.cli import main
from streams.codec import decode_alert, decode_event, decode_file_line
from streams.offsets import HistoryError, prepare_reprocessing
from streams.replay import replay
from streams.settings import Settings
from tests.integration.support import Topics, Worker, consume, group_offsets

pytestmark = pytest.mark.integration


def settings_for(bootstrap: str, topics: Topics, **env: str) -> Settings:
    return Settings.from_env({"KUZET_BROKER": bootstrap, **topics.env(), **env})


def inspection(event_id: str, ts: str, business: str) -> bytes:
    return msgspec.json.encode(
        {
            "event_id": event_id,
            "ts": ts,
            "business": business,
            "business_size": "small",
            "authority": "AUTH-1",
            "inspector": "INS-1",
            "kind": "unscheduled",
            "basis": "routine",
        }
    )


#: Values exactly as they stand in the file: odd spacing, escapes, an invalid event.
PAYMENT = b'{ "event_id" : "p-1", "ts": "2021-03-02T05:00:00Z", "payer": "ACC-\\u0436",\t"payee": "ACC-2", "amount": 1.50 }'  # noqa: E501
PAYROLL = b'{"event_id":"r-1","ts":"2021-03-02T05:00:01+06:00","type":"hire","employer":"EMP-1","employee":"W-1"}'  # noqa: E501
INVALID = b'{"event_id": "i-x", "ts": "2021-03-02T05:00:00Z", "business": "BIZ-9"}'  # no size: DLQ

#: (file line, what replay must do: (stream, key, value) it publishes, or the skip category)
LINES: list[tuple[bytes, tuple[str, bytes | None, bytes] | str]] = [
    (
        b'{"topic": "payments", "key": "ACC-\\u0436", "value": ' + PAYMENT + b"}",
        ("payments", "ACC-\u0436".encode(), PAYMENT),
    ),
    (b'{"topic": "payroll", "value": ' + PAYROLL + b"}", ("payroll", b"EMP-1", PAYROLL)),
    (b"this is not json", "not_json"),
    (
        b'{"topic": "inspections", "key": "BIZ-9", "value": ' + INVALID + b"}",
        ("inspections", b"BIZ-9", INVALID),
    ),
    (b'{"topic": "alerts", "key": "x", "value": {}}', "unknown_topic"),
    (b'{"topic": "payments", "key": "ACC-1"}', "missing_field"),
    (
        b'{"topic": "payments", "value": {"payee": "ACC-2"}}',
        ("payments", None, b'{"payee": "ACC-2"}'),
    ),
]


async def read_topic(bootstrap: str, topic: str, expected: int) -> list:
    records = await consume(bootstrap, topic, expected, timeout=30)
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def test_replay_publishes_each_record_with_its_key_and_unchanged_bytes(
    bootstrap, topics: Topics, tmp_path: Path
):
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in LINES) + b"\n\n")
    summary = await replay(path, settings_for(bootstrap, topics))

    wanted = defaultdict(list)
    for _, outcome in LINES:
        if isinstance(outcome, tuple):
            wanted[outcome[0]].append((outcome[1], outcome[2]))
    assert summary.published == {stream: len(records) for stream, records in wanted.items()}
    assert summary.failed.total() == 0
    assert summary.without_key == 1
    assert summary.skipped == {"not_json": 1, "unknown_topic": 1, "missing_field": 1}
    assert [e.split(":")[0] for e in summary.skip_examples] == ["line 3", "line 5", "line 6"]
    for stream in ("payments", "payroll", "inspections"):
        records = await read_topic(bootstrap, topics.input(stream), len(wanted[stream]))
        assert sorted((r.key or b"", r.value) for r in records) == sorted(
            (k or b"", v) for k, v in wanted[stream]
        )


def test_replay_command_paces_by_event_time_and_prints_the_count(
    bootstrap, topics: Topics, tmp_path: Path, monkeypatch, capsys
):
    path = tmp_path / "paced.jsonl"
    hours = ["2021-03-02T00:00:00Z", "2021-03-02T01:00:00Z", "2021-03-02T02:00:00Z"]
    path.write_bytes(
        b"".join(
            b'{"topic": "inspections", "value": %s}\n' % inspection(f"i-{n}", ts, f"B-{n}")
            for n, ts in enumerate(hours)
        )
    )
    for name, value in {"KUZET_BROKER": bootstrap, **topics.env()}.items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    assert main(["replay", str(path), "--speed", "3600"]) == 0
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed < 6.0  # two hours of event time at an hour a second
    out = capsys.readouterr().out
    assert "published              3" in out
    assert f"inspections           3  -> {topics.input('inspections')}" in out


async def test_replay_to_missing_topics_says_what_to_check(bootstrap, tmp_path: Path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(b'{"topic": "payments", "value": {}}\n')
    settings = Settings.from_env({"KUZET_BROKER": bootstrap, "KUZET_TOPIC_PREFIX": "no-such."})
    with pytest.raises(HistoryError, match=r"do not exist.*KUZET_TOPIC_PREFIX"):
        await replay(path, settings)


def history_file(n: int) -> list[bytes]:
    """``n`` records over few keys of every stream, so that order within a key matters."""
    lines = []
    for i in range(n):
        stream = ("payments", "payroll", "inspections")[i % 3]
        key = f"K-{i % 7}"
        value = b'{"event_id": "e-%d", "ts": "2021-03-02T05:%02d:%02dZ", "seq": %d}' % (
            i,
            (i // 60) % 60,
            i % 60,
            i,
        )
        lines.append(
            b'{"topic":"%s","key":"%s","value":%s}' % (stream.encode(), key.encode(), value)
        )
    return lines


async def test_capture_reproduces_the_replayed_file(bootstrap, topics: Topics, tmp_path: Path):
    settings = settings_for(bootstrap, topics)
    source = tmp_path / "in.jsonl"
    lines = history_file(3000)
    source.write_bytes(b"\n".join(lines) + b"\n")
    assert (await replay(source, settings)).published.total() == 3000

    out = tmp_path / "captured.jsonl"
    summary = await capture(out, settings)
    assert summary.written.total() == 3000 and summary.skipped.total() == 0
    assert not out.with_name(out.name + ".part").exists()
    captured = [decode_file_line(line) for line in out.read_bytes().splitlines()]
    original = [decode_file_line(line) for line in lines]
    assert sorted(captured) == sorted(original)
    # Per key (so per partition), the order of the file is kept.
    for stream_key in {(s, k) for s, k, _ in original}:
        assert [v for s, k, v in captured if (s, k) == stream_key] == [
            v for s, k, v in original if (s, k) == stream_key
        ]

    again = tmp_path / "again.jsonl"
    assert await asyncio.to_thread(main_capture, bootstrap, topics, again) == 0
    assert sorted(again.read_bytes().splitlines()) == sorted(out.read_bytes().splitlines())


def main_capture(bootstrap: str, topics: Topics, out: Path, *args: str) -> int:
    """``kuzet capture`` as the command line runs it (its own event loop, in a thread)."""
    env = {"KUZET_BROKER": bootstrap, **topics.env()}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return main(["capture", "--out", str(out), *args])
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def test_capture_from_time_skips_earlier_records_and_reports_unwritable_ones(
    bootstrap, topics: Topics, producer, tmp_path: Path
):
    before = [inspection(f"old-{n}", "2021-03-02T05:00:00Z", f"B-{n}") for n in range(5)]
    for n, raw in enumerate(before):
        await producer.send_and_wait(topics.input("inspections"), raw, key=f"B-{n}".encode())
    await asyncio.sleep(1.0)
    cut = datetime.now(UTC)
    await asyncio.sleep(1.0)
    after = [inspection(f"new-{n}", "2021-03-02T06:00:00Z", f"B-{n}") for n in range(5)]
    for n, raw in enumerate(after):
        await producer.send_and_wait(topics.input("inspections"), raw, key=f"B-{n}".encode())
    await producer.send_and_wait(topics.input("payments"), b"not json", key=b"A-1")
    await producer.send_and_wait(topics.input("payroll"), b"{}", key=b"\xff\xfe")
    await producer.send_and_wait(topics.input("payroll"), b'{\n"event_id": "r"\n}', key=b"E")

    out = tmp_path / "since.jsonl"
    summary = await capture(out, settings_for(bootstrap, topics), from_time=cut)
    captured = [decode_file_line(line) for line in out.read_bytes().splitlines()]
    assert sorted(v for s, _, v in captured if s == "inspections") == sorted(after)
    assert ("payroll", "E", b'{ "event_id": "r" }') in captured
    assert summary.flattened == 1
    assert summary.skipped == {"not_json": 1, "key_not_utf8": 1}
    assert summary.read == 8

    everything = tmp_path / "all.jsonl"
    summary = await capture(everything, settings_for(bootstrap, topics))
    assert summary.written["inspections"] == 10


# --- reprocessing with the live worker ------------------------------------------------


@pytest.fixture
def start_worker_with(start_worker) -> Callable[..., Worker]:
    """Like ``start_worker``, with an app id and command-line arguments for ``kuzet worker``."""

    def start(topics: Topics, app_id: str, *args: str) -> Worker:
        return start_worker(topics, app_id=app_id, args=args)

    return start


def alert_id_of(raw: bytes) -> str:
    [alert] = build_engine().process("inspections", decode_event("inspections", raw), 0).alerts
    return alert.alert_id


async def test_worker_from_time_reprocesses_only_later_records_under_a_fresh_group(
    bootstrap, topics: Topics, producer, start_worker, start_worker_with, tmp_path: Path
):
    early = inspection("i-early", "2021-03-02T05:00:00Z", "B-1")
    late = inspection("i-late", "2021-03-02T06:00:00Z", "B-2")
    await producer.send_and_wait(topics.input("inspections"), early, key=b"B-1")
    await asyncio.sleep(1.0)
    cut = datetime.now(UTC).isoformat()
    await asyncio.sleep(1.0)
    await producer.send_and_wait(topics.input("inspections"), late, key=b"B-2")

    # The production worker has read both and committed its offsets.
    production = f"prod-{topics.prefix}"
    worker = start_worker(topics, app_id=production)
    alerts = await consume(bootstrap, topics.alerts, expected=2)
    assert worker.stop() == 0, worker.log_tail()
    assert sorted(decode_alert(r.value).alert_id for r in alerts) == sorted(
        [alert_id_of(early), alert_id_of(late)]
    )
    committed = await group_offsets(bootstrap, production)  # internal topics' too
    assert sum((await group_offsets(bootstrap, production, topics)).values()) == 2

    # Reprocessing into a group that has offsets is refused; nothing moves.
    refused = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker", "--from-time", cut],
        env={**os.environ, **topics.env(), "KUZET_BROKER": bootstrap, "KUZET_APP_ID": production},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "already has committed offsets" in refused.stderr

    # A fresh group from the cut: only the later inspection is processed again.
    fresh = f"reprocess-{topics.prefix}"
    worker = start_worker_with(topics, fresh, "--from-time", cut)
    alerts = await consume(bootstrap, topics.alerts, expected=3)
    assert worker.stop() == 0, worker.log_tail()
    ids = [decode_alert(r.value).alert_id for r in alerts]
    assert len(ids) == 3
    assert sorted(ids) == sorted([alert_id_of(early), alert_id_of(late), alert_id_of(late)])
    assert "reprocessing under consumer group" in worker.log.read_text()

    assert await group_offsets(bootstrap, production) == committed
    assert sum((await group_offsets(bootstrap, fresh, topics)).values()) == 2


async def test_from_beginning_needs_a_fresh_group_and_commits_nothing(
    bootstrap, topics: Topics, producer
):
    settings = settings_for(bootstrap, topics, KUZET_APP_ID=f"fresh-{topics.prefix}")
    assert await prepare_reprocessing(settings, None, "--from-beginning") == 9
    assert await group_offsets(bootstrap, settings.app_id) == {}

    used = f"used-{topics.prefix}"
    await producer.send_and_wait(topics.input("payments"), b"{}", key=b"A")
    consumer = AIOKafkaConsumer(
        topics.input("payments"),
        bootstrap_servers=bootstrap,
        group_id=used,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=5000)
        await consumer.commit()
    finally:
        await consumer.stop()
    before = await group_offsets(bootstrap, used)
    assert before
    with pytest.raises(HistoryError, match="already has committed offsets"):
        await prepare_reprocessing(
            settings_for(bootstrap, topics, KUZET_APP_ID=used), None, "--from-beginning"
        )
    assert await group_offsets(bootstrap, used) == before
