"""Issue 14's hostile records, reproduced on a simulated world and kept as regressions.

One event dated 2099 (or a month ahead: a producer's clock gone wrong) used to
move its partition's clock: every later real event was late, every pending
arrears timer fired at once. Now it is dead-lettered as ``future_ts`` and the
alerts of the clean stream are unchanged, byte for byte, on one partition and
on several. Records keyed by something else than their entity were judged
apart from it (``key_mismatch``), and an event that took another's id made the
real one a "duplicate" (``id_conflict``): both are dead-lettered now.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from simulator import simulate
from simulator.config import SimConfig
from streams.backtest import run_backtest

SEED = 14


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile-time")
    simulate(folder, SEED, 0.05, SimConfig(start=date(2019, 11, 1), days=120))
    return folder / "events.jsonl"


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _first(lines: list[bytes], topic: str) -> dict:
    for line in lines:
        record = json.loads(line)
        if record.get("topic") == topic and isinstance(record.get("value"), dict):
            return record
    raise AssertionError(f"no {topic} record")


def _ahead(record: dict, ts: str, event_id: str) -> bytes:
    value = dict(record["value"], ts=ts, event_id=event_id)
    return json.dumps({"topic": record["topic"], "key": record["key"], "value": value}).encode()


def _backtest(tmp_path: Path, name: str, lines: list[bytes], partitions: int):
    events, alerts = tmp_path / f"{name}.jsonl", tmp_path / f"{name}-alerts.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    rejects = tmp_path / f"{name}-rejects.tsv"
    summary = run_backtest(
        events, alerts, partitions=partitions, progress=False, rejects_path=rejects
    )
    return summary, alerts.read_bytes(), rejects.read_text()


@pytest.mark.parametrize("partitions", [1, 3])
def test_far_future_events_are_dead_lettered_and_change_no_alert(
    world: Path, tmp_path: Path, partitions: int
):
    lines = _lines(world)
    payroll, inspection = _first(lines, "payroll"), _first(lines, "inspections")
    month_ahead = (
        datetime.fromisoformat(json.loads(lines[len(lines) // 2])["value"]["ts"])
        + timedelta(days=35)
    ).isoformat()
    poisons = [
        _ahead(payroll, "2099-01-01T00:00:00Z", "poison-payroll-2099"),
        _ahead(inspection, "2099-01-01T00:00:00Z", "poison-inspection-2099"),
        _ahead(payroll, month_ahead, "poison-payroll-35d"),
    ]
    # Early, in the middle and late: each would have blinded its partition from there on.
    poisoned = list(lines)
    for at, poison in zip(
        (len(lines) // 10, len(lines) // 2, len(lines) // 2 + 1), poisons, strict=True
    ):
        poisoned.insert(at, poison)

    clean, clean_alerts, _ = _backtest(tmp_path, "clean", lines, partitions)
    dirty, dirty_alerts, rejects = _backtest(tmp_path, "dirty", poisoned, partitions)

    assert clean_alerts, "the world raises alerts to compare"
    assert dirty_alerts == clean_alerts
    assert dirty.outcomes["late"] == clean.outcomes["late"]
    assert dirty.outcomes["invalid"] == clean.outcomes["invalid"] + 3
    # The 2099 payroll record carries a pay period, now 79 years before its ts: refused
    # for that first (invalid_value), the other two as future_ts.
    assert rejects.count("\tfuture_ts\t") == 2


def test_a_real_jump_in_time_gets_through_after_a_few_events(tmp_path: Path):
    # Two periods years apart in one file: the first events after the gap are taken
    # for a clock error, then the partition's time moves and the rest are judged.
    def inspection(n: int, ts: datetime) -> bytes:
        value = {
            "event_id": f"i-{n}",
            "ts": ts.isoformat(),
            "business": "BIZ-1",
            "business_size": "medium",
            "authority": "A",
            "inspector": "I",
            "kind": "scheduled",
            "basis": "routine",
        }
        return json.dumps({"topic": "inspections", "key": "BIZ-1", "value": value}).encode()

    start, later = datetime(2019, 3, 1, 9, tzinfo=UTC), datetime(2023, 3, 1, 9, tzinfo=UTC)
    lines = [inspection(n, start + timedelta(hours=n)) for n in range(20)]
    lines += [inspection(100 + n, later + timedelta(hours=n)) for n in range(20)]
    summary, _, rejects = _backtest(tmp_path, "jump", lines, 1)
    refused = rejects.count("\tfuture_ts\t")
    assert 0 < refused <= 9
    assert summary.outcomes["ok"] == 40 - refused


def _rejected(rejects: str, category: str) -> list[int]:
    return [int(line.split("\t")[0]) for line in rejects.splitlines() if f"\t{category}\t" in line]


@pytest.mark.parametrize("partitions", [1, 3])
def test_records_keyed_by_something_else_are_dead_lettered(
    world: Path, tmp_path: Path, partitions: int
):
    lines = _lines(world)
    payroll, payment = _first(lines, "payroll"), _first(lines, "payments")
    strays = [
        json.dumps({**payroll, "key": "EMP-NOT-IT"}).encode(),
        json.dumps({**payroll, "key": None}).encode(),
        json.dumps({**payment, "key": payment["value"]["payee"]}).encode(),  # keyed by payee
    ]
    mixed = lines[:100] + strays + lines[100:]
    clean, clean_alerts, _ = _backtest(tmp_path, "clean", lines, partitions)
    dirty, dirty_alerts, rejects = _backtest(tmp_path, "strays", mixed, partitions)
    # A file line without a key is keyed by its entity (as `kuzet replay` does), so the
    # second stray is a redelivery of the first payroll record: a duplicate.
    assert _rejected(rejects, "key_mismatch") == [101, 103]
    assert dirty_alerts == clean_alerts
    assert dirty.outcomes["invalid"] == clean.outcomes["invalid"] + 2
    assert dirty.outcomes["duplicate"] == clean.outcomes["duplicate"] + 1


def test_a_kafka_record_without_a_key_is_a_key_mismatch():
    from detectors.engine import Engine
    from streams.processor import Processor, Source

    value = json.dumps(
        {"event_id": "h-1", "ts": "2021-03-01T09:00:00Z", "type": "hire",
         "employer": "E-1", "employee": "W-1"}
    ).encode()  # fmt: skip
    processor = Processor(Engine([]))
    for key in (None, b"E-2", b"e-1"):
        out, _ = processor.upstream("payroll", 0, [(value, key, Source("payroll", 0, 0))])
        [letter] = out.dead_letters
        assert letter.category == "key_mismatch"
        assert "E-1" not in letter.reason  # ids stay out of reasons (they reach logs)
    out, _ = processor.upstream("payroll", 0, [(value, b"E-1", Source("payroll", 0, 1))])
    assert out.outcomes == {"ok": 1}


def test_an_event_under_another_events_id_is_a_conflict_and_the_first_stays(
    world: Path, tmp_path: Path
):
    lines = _lines(world)
    records = [json.loads(line) for line in lines[:400]]
    inspections = [
        (n, r) for n, r in enumerate(records) if r.get("topic") == "inspections" and "value" in r
    ]
    (_, first), (n_second, second) = inspections[0], inspections[1]
    forged = dict(second, value=dict(second["value"], event_id=first["value"]["event_id"]))
    # The forgery comes after the real event: the real one stays, the forgery is set aside.
    mixed = [*lines[: n_second + 1], json.dumps(forged).encode(), *lines[n_second + 1 :]]
    _, _, rejects = _backtest(tmp_path, "forged", mixed, 1)
    assert _rejected(rejects, "id_conflict") == [n_second + 2]
    # A true redelivery (the same bytes) is still a duplicate, not a conflict.
    again = [*lines[: n_second + 1], lines[n_second], *lines[n_second + 1 :]]
    _summary, _, rejects = _backtest(tmp_path, "again", again, 1)
    assert not _rejected(rejects, "id_conflict")
