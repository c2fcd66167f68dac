"""``kuzet simulate`` writes what the contract calls a historical stream, reproducibly.

Checked from the bytes: the file format, the delivery imperfections the
simulator promises (late but within the allowed lateness, redelivered,
broken, mixed offsets), determinism, bounded memory, and the configuration
and command line around it. The labels themselves are in ``test_truth.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from detectors.errors import ConfigError
from simulator import SimConfig, simulate
from streams.backtest import run_backtest
from streams.cli import main
from tests.simulator.conftest import World
from tests.simulator.facts import ENTITY, HOUR, STREAMS

REPO = Path(__file__).resolve().parents[2]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- determinism ------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(world: World, tmp_path: Path) -> None:
    simulate(tmp_path / "same", world.seed, world.scale, world.config)
    simulate(tmp_path / "other", world.seed + 1, world.scale, world.config)
    for name in ("events.jsonl", "truth.json"):
        assert digest(tmp_path / "same" / name) == digest(world.path / name), name
        assert digest(tmp_path / "other" / name) != digest(world.path / name), name


def test_same_bytes_in_another_process_with_another_hash_seed(world: World, tmp_path: Path) -> None:
    """Nothing depends on string hashing (set order) or on the process."""
    assert world.config == SimConfig()
    probe = (
        "import sys; from pathlib import Path; from simulator import simulate; "
        f"simulate(Path(sys.argv[1]), {world.seed}, {world.scale})"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], cwd=REPO, env=env, check=True, timeout=120
    )
    for name in ("events.jsonl", "truth.json"):
        assert digest(tmp_path / name) == digest(world.path / name), name


# -- file format ------------------------------------------------------------------------------


def test_every_line_is_a_record_except_the_injected_broken_ones(any_world: World) -> None:
    stream = any_world.stream
    assert set(stream.shapes) == {("key", "topic", "value")}, stream.shapes
    assert 0 < len(stream.invalid) < 0.002 * stream.lines, stream.invalid
    # Broken records are injected with key "x"; no real event is among the rejected.
    lines = (any_world.path / "events.jsonl").read_bytes().splitlines()
    for number, why in stream.invalid:
        line = lines[number - 1]
        assert b'"key":"x"' in line or b'"key": "x"' in line, (number, why, line[:200])


def test_backtest_counts_no_late_every_redelivery_and_every_broken_line(
    any_world: World, tmp_path: Path
) -> None:
    stream = any_world.stream
    summary = run_backtest(any_world.path / "events.jsonl", tmp_path / "alerts.jsonl")
    outcomes = summary.outcomes
    assert summary.records == stream.lines
    assert outcomes["late"] == 0
    assert outcomes["duplicate"] == stream.repeated > 0
    assert outcomes["invalid"] == len(stream.invalid)
    assert not stream.id_conflicts, "an event id redelivered with other bytes"


def test_keys_are_the_entity_of_the_event(any_world: World) -> None:
    assert not any_world.stream.key_mismatches, any_world.stream.key_mismatches[:10]
    for stream, field in ENTITY.items():
        assert any_world.events[stream], f"no {stream} events"
        assert all(isinstance(e[field], str) for e in any_world.events[stream].values())


def test_events_arrive_out_of_order_but_within_the_allowed_lateness(any_world: World) -> None:
    behind = any_world.stream.behind
    assert all(lag < 24 * HOUR for lag in behind.values()), behind
    assert max(behind.values()) > 3 * HOUR, f"hardly any late delivery: {behind}"


def test_event_times_are_inside_the_world(any_world: World) -> None:
    outside = [
        (stream, e["event_id"], e["ts"])
        for stream in STREAMS
        for e in any_world.events[stream].values()
        if not any_world.start <= e["_t"] < any_world.end
    ]
    assert not outside, outside[:10]


def test_timestamps_mix_utc_local_and_plus_five(any_world: World) -> None:
    styles = any_world.stream.styles
    assert set(styles) == {"Z", "+06:00", "+05:00"}, styles
    # The local offset is Almaty's at that instant (UTC+6 until March 2024).
    assert not any_world.stream.wrong_local, any_world.stream.wrong_local[:10]


# -- memory -----------------------------------------------------------------------------------

#: A world in a fresh interpreter; prints its peak RSS and the file size, in bytes.
#: Peak RSS is VmHWM, the high-water mark of this process image: Linux carries
#: ru_maxrss over from the forking parent across exec, so under pytest (holding
#: two parsed worlds) getrusage reported the parent's 320 MB, not the child's.
MEMORY_PROBE = """
import os, re, sys
from pathlib import Path
from simulator import SimConfig, simulate
out = Path(sys.argv[1])
simulate(out, 3, 0.5, SimConfig(days=360))
status = Path("/proc/self/status").read_text()
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024
print(peak, os.path.getsize(out / "events.jsonl"))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_stays_bounded_while_writing_a_large_world(tmp_path: Path) -> None:
    """A year at half scale (~180 MB of lines) in well under half that much memory.

    Measured: about 52 MB peak RSS for 179 MB of output, the same as for 180
    days (memory follows the number of actors, not the length of the stream).
    """
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rss, size = map(int, result.stdout.split())
    seconds = time.perf_counter() - started
    print(f"peak RSS {rss / 2**20:.0f} MB for {size / 2**20:.0f} MB of lines in {seconds:.1f} s")
    assert size > 100 * 2**20, "the probe's world is too small to tell"
    assert rss < size / 2
    assert rss < 300 * 2**20


# -- configuration and command line -----------------------------------------------------------


def test_overrides_parse_by_the_type_of_the_field() -> None:
    config = SimConfig().with_overrides(
        ["pyramids_n=3", "pyramid_growth=1.2,1.5", "start=2019-10-01", "churn_per_month=0.02"]
    )
    assert config.pyramids_n == 3
    assert config.pyramid_growth == (1.2, 1.5)
    assert config.start == date(2019, 10, 1)
    assert config.churn_per_month == 0.02
    assert SimConfig().with_overrides([]) == SimConfig()


@pytest.mark.parametrize(
    ("pair", "says"),
    [
        ("pyramid_n=3", "expected NAME=VALUE with NAME one of"),  # misspelt name
        ("pyramids_n", "expected NAME=VALUE"),
        ("pyramids_n=", "expected NAME=VALUE"),
        ("pyramids_n=three", "'three' is not a valid int"),
        ("pyramid_growth=1.2", "pair LOW,HIGH"),
        ("pyramid_growth=1.2,x", "pair LOW,HIGH"),
        ("start=2019-13-01", "is not a valid date"),
        # Values that parse but make no world (they crashed mid-run or were ignored).
        ("pyramids_n=-2", "expected a finite number >= 0"),
        ("person_payments_per_day=nan", "expected a finite number >= 0"),
        ("mule_forward_hours=0.5,inf", "expected a finite number >= 0"),
        ("pyramid_days=45,6", "expected LOW <= HIGH"),
        ("days=0", "at least one day"),
        ("due_day=31", "1-28"),
    ],
)
def test_bad_overrides_are_config_errors_that_say_what_is_wrong(pair: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SimConfig().with_overrides([pair])
    assert says in str(caught.value)
    assert repr(pair) in str(caught.value)


def test_kuzet_simulate_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "world"
    assert main(["simulate", "--out", str(out), "--scale", "0.02", "--seed", "5"]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["findings"]
    first = json.loads((out / "events.jsonl").open().readline())
    assert first["topic"] in STREAMS
    assert "truth.json" in capsys.readouterr().out


def test_kuzet_simulate_reports_a_bad_override(tmp_path: Path, capsys) -> None:
    argv = ["simulate", "--out", str(tmp_path), "--scale", "0.02", "--set", "nope=1"]
    assert main(argv) == 2
    assert "nope=1" in capsys.readouterr().err
