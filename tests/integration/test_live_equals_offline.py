"""Live equals offline: the worker and ``kuzet backtest`` agree on a simulated world.

The world is replayed with ``kuzet replay`` into single-partition topics (one
order per stream, as in the file), a worker consumes it, and the set of alert
ids on the alert topic must equal the set ``kuzet backtest`` writes for the
same file: the two paths share one engine, and this proves they stay one.
"""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest

from simulator import SimConfig, simulate
from streams.backtest import run_backtest
from streams.codec import decode_alert
from tests.integration.support import Topics, consume

pytestmark = pytest.mark.integration

#: Small enough for CI (about 30,000 records), large enough to hold findings.
SCALE = 0.03


@pytest.mark.partitions(1)
async def test_worker_alerts_equal_backtest_alerts(
    bootstrap, topics: Topics, start_worker, tmp_path
):
    world = tmp_path / "world"
    simulate(world, seed=7, scale=SCALE, config=SimConfig())
    events = world / "events.jsonl"
    offline = run_backtest(events, tmp_path / "alerts.jsonl")
    expected = {
        alert["alert_id"]: alert
        for alert in map(msgspec.json.decode, (tmp_path / "alerts.jsonl").read_bytes().splitlines())
    }
    assert len(expected) >= 10, "the world should hold findings to compare"

    env = {**os.environ, **topics.env(), "KUZET_BROKER": bootstrap}
    replay = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", str(events), "--speed", "max"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr

    worker = start_worker(topics)
    records = await consume(bootstrap, topics.alerts, expected=len(expected), timeout=180)
    assert worker.stop() == 0, worker.log_tail()
    live = {}
    for record in records:
        alert = msgspec.to_builtins(decode_alert(record.value))
        live.setdefault(alert["alert_id"], alert)
    assert set(live) == set(expected), (
        f"live only: {sorted(set(live) - set(expected))[:5]}, "
        f"offline only: {sorted(set(expected) - set(live))[:5]}"
    )
    assert live == expected  # not only the ids: every field of every alert
    assert len(records) == len(live)  # and no alert twice
    assert offline.outcomes["ok"] > 20_000
