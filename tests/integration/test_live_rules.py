"""Rules changed through the rules topic change the alerts of a replayed stream from the
stated event time on, and live still equals offline.

A simulated world is replayed into topics of 3 partitions. Before the replay,
``kuzet rules set`` publishes a change raising ``repeat_inspection``'s
``alert_at`` from the event time of the median ``repeat_inspection`` alert on,
and a bad change (refused by ``kuzet rules set``) is written to the topic
directly. The worker, killed once mid-stream, must publish exactly the alerts
of ``kuzet backtest --partitions 3 --rules-changes`` over the changes
``kuzet rules show --jsonl`` lists; those are the baseline's before the stated
time and not after it; the bad change is refused, logged and counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from simulator import SimConfig, simulate
from streams.backtest import run_backtest
from tests.integration.support import Topics, consume_alert_ids, judged

pytestmark = pytest.mark.integration

SEED = 7
SCALE = 0.03
RAISE = "[repeat_inspection]\nalert_at = 4.0\n"
BAD = "[repeat_inspection]\nalert_at = 0\n"


def kuzet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def alerts_of(path: Path) -> dict[str, dict]:
    return {a["alert_id"]: a for a in map(msgspec.json.decode, path.read_bytes().splitlines())}


@pytest.mark.partitions(3)
async def test_a_threshold_raised_through_the_rules_topic_changes_the_alerts_from_its_time(
    bootstrap, topics: Topics, start_worker, tmp_path
):
    world = tmp_path / "world"
    simulate(world, seed=SEED, scale=SCALE, config=SimConfig())
    events = world / "events.jsonl"
    summary = run_backtest(events, tmp_path / "baseline.jsonl", partitions=3, progress=False)
    baseline = alerts_of(tmp_path / "baseline.jsonl")
    repeats = sorted(a["ts"] for a in baseline.values() if a["kind"] == "repeat_inspection")
    assert len(repeats) >= 10, "the world should hold repeat inspections to change"
    effective = repeats[len(repeats) // 2]  # RFC 3339 in UTC: sorts as time

    app_id = f"kuzet-{topics.prefix.rstrip('.')}"
    env = {**os.environ, **topics.env(), "KUZET_BROKER": bootstrap, "KUZET_APP_ID": app_id}
    raise_file, bad_file = tmp_path / "raise.toml", tmp_path / "bad.toml"
    raise_file.write_text(RAISE)
    bad_file.write_text(BAD)
    done = kuzet(env, "rules", "set", str(raise_file), "--at", effective, "--name", "raise")
    assert done.returncode == 0, done.stderr
    refused = kuzet(env, "rules", "set", str(bad_file), "--at", effective, "--name", "bad")
    assert refused.returncode == 2 and "expected a positive number" in refused.stderr
    # Written past the command's check (another tool, an older rules file): refused live.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        value = json.dumps({"effective": effective, "rules": BAD}).encode()
        await producer.send_and_wait(f"{topics.prefix}{app_id}-rules", value, key=b"bad")
    finally:
        await producer.stop()
    shown = kuzet(env, "rules", "show")
    assert "raise  applied" in shown.stdout and "bad  REFUSED" in shown.stdout, shown.stdout

    # The offline answer, over what the topic holds.
    listed = kuzet(env, "rules", "show", "--jsonl")
    assert listed.returncode == 0, listed.stderr
    (tmp_path / "changes.jsonl").write_text(listed.stdout)
    offline = kuzet(
        env,
        "backtest",
        str(events),
        "--out",
        str(tmp_path / "changed.jsonl"),
        "--partitions",
        "3",
        "--rules-changes",
        str(tmp_path / "changes.jsonl"),
    )
    assert offline.returncode == 0, offline.stderr
    assert "rules change bad refused" in offline.stderr
    expected = alerts_of(tmp_path / "changed.jsonl")

    # A partition applies the change before its first event at or after the stated time;
    # events up to the allowed lateness (24 h) older, arriving after it, are judged by the
    # new rules too. Older ones are late by then: nothing before them can change.
    settled = datetime.fromisoformat(effective) - timedelta(hours=24)

    def split(alerts: dict[str, dict]) -> tuple[set[str], set[str]]:
        before = {i for i, a in alerts.items() if datetime.fromisoformat(a["ts"]) < settled}
        return before, set(alerts) - before

    base_before, base_after = split(baseline)
    changed_before, changed_after = split(expected)
    assert changed_before == base_before  # nothing changes before the stated time
    assert changed_after != base_after  # and the alerts from it on do
    kinds = {expected[i]["kind"] for i in changed_after - base_after} | {
        baseline[i]["kind"] for i in base_after - changed_after
    }
    assert kinds == {"repeat_inspection"}
    opened = [
        a
        for a in expected.values()
        if a["kind"] == "repeat_inspection"
        and a.get("status", "open") == "open"  # not a finding's escalation or resolution
        and a["ts"] >= effective
    ]
    assert opened and all(a["evidence"]["weighted_visits"] >= 4.0 for a in opened), (
        "a finding opened from the stated time on needs the raised bar"
    )

    # Live: the replayed world, a worker killed once mid-stream and restarted.
    replay = kuzet(env, "replay", str(events), "--speed", "max")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    fast = {"KUZET_SNAPSHOT_SECONDS": "1"}
    worker = start_worker(topics, app_id=app_id, **fast)
    deadline = asyncio.get_running_loop().time() + 120
    while sum(judged([worker])[0].values()) < 0.5 * summary.records:
        assert asyncio.get_running_loop().time() < deadline, worker.log_tail()
        await asyncio.sleep(0.1)
    worker.process.kill()  # no goodbye: the applied rules come back from the saved state
    worker.process.wait()
    first_log = worker.log.read_text()
    worker = start_worker(topics, app_id=app_id, **fast)
    # Read until every expected id is there: after the kill some alerts come twice.
    live = await consume_alert_ids(bootstrap, topics.alerts, set(expected), timeout=180)
    missing, extra = set(expected) - live, live - set(expected)
    assert not missing and not extra, f"missing {sorted(missing)[:5]}, extra {sorted(extra)[:5]}"

    metrics = worker.get("/metrics").decode()
    assert 'kuzet_rules_changes_total{outcome="applied"} 1.0' in metrics
    assert 'kuzet_rules_changes_total{outcome="refused"} 1.0' in metrics
    assert worker.stop() == 0, worker.log_tail()
    log = first_log + worker.log.read_text()
    assert f"rules change raise applies from event time {effective}" in log
    assert "rules change bad refused" in log
    assert "applied late" not in log
