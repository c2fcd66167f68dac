"""``kuzet backtest`` over a file holding good events and one of every kind of bad line."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from streams.backtest import run_backtest
from streams.cli import main

MIB = 1024 * 1024


def inspection(event_id: str, ts: str, size: str = "micro", basis: str = "routine", **extra):
    return {
        "event_id": event_id,
        "ts": ts,
        "business": f"BIZ-{event_id}",
        "business_size": size,
        "authority": "AUTH-1",
        "inspector": "INSP-1",
        "kind": "unscheduled",
        "basis": basis,
        **extra,
    }


def record(topic: str, value: object, key: str | None = "k") -> bytes:
    return json.dumps({"topic": topic, "key": key, "value": value}).encode()


PAYMENT = {"event_id": "p-1", "ts": "2021-03-02T05:00:00Z", "payer": "A", "payee": "B"}

#: (line, what the backtest must make of it): an event id that alerts, "lawful",
#: "duplicate", "skipped" (blank), or the rejection category.
LINES: list[tuple[bytes, str]] = [
    (record("inspections", inspection("v-1", "2021-03-02T05:00:00Z")), "v-1"),
    (record("inspections", inspection("l-1", "2021-03-02T06:00:00Z", size="medium")), "lawful"),
    (
        record("inspections", inspection("l-2", "2021-03-02T07:00:00Z", basis="criminal_case")),
        "lawful",
    ),
    (record("inspections", inspection("v-1", "2021-03-02T05:00:00Z")), "duplicate"),
    # Out of order (02:00Z) but well within the allowed lateness.
    (record("inspections", inspection("v-2", "2021-03-02T08:00:00+06:00")), "v-2"),
    (
        record(
            "payroll",
            {
                "event_id": "h-1",
                "ts": "2021-03-02T05:00:00Z",
                "type": "hire",
                "employer": "E",
                "employee": "W",
            },
        ),
        "lawful",
    ),
    (b"this is not json", "not_json"),
    (b"[1, 2, 3]", "not_object"),
    (record("wages", {"event_id": "w-1"}), "unknown_topic"),
    (b'{"topic": "inspections", "key": "k"}', "missing_field"),
    (
        record(
            "inspections",
            {k: v for k, v in inspection("m-1", "2021-03-02T05:00:00Z").items() if k != "business"},
        ),
        "missing_field",
    ),
    (record("payments", {**PAYMENT, "amount": -5}), "invalid_field"),
    (record("payments", {**PAYMENT, "amount": 1.5}).replace(b"1.5", b"NaN"), "not_json"),
    (record("inspections", inspection("t-1", "2021-03-02T05:00:00")), "invalid_field"),
    (
        record("inspections", inspection("big", "2021-03-02T05:00:00Z", padding="x" * MIB)),
        "too_large",
    ),
    (b"   \t ", "skipped"),
    (b"{}", "missing_field"),
    # Guards the codec fix: invalid UTF-8 inside a string used to raise UnicodeDecodeError
    # and abort the whole backtest.
    (
        record("inspections", inspection("u-1", "2021-03-02T05:00:00Z", basis="@@")).replace(
            b"@@", b"\xc3\x28"
        ),
        "not_json",
    ),
    (record("payments", {**PAYMENT, "amount": 5, "payee": "A"}), "invalid_value"),
    # A month behind the newest inspection: later than the 24 h allowed lateness.
    (record("inspections", inspection("late-1", "2021-02-01T05:00:00Z")), "late"),
    # The last minute of the moratorium (local), then the first minute after it.
    (record("inspections", inspection("v-3", "2022-12-31T23:59:00+06:00")), "v-3"),
    (record("inspections", inspection("a-1", "2023-01-01T00:01:00+06:00")), "lawful"),
]

ALERTING = ["v-1", "v-2", "v-3"]
REJECTED = {
    "not_json",
    "not_object",
    "unknown_topic",
    "missing_field",
    "invalid_field",
    "invalid_value",
    "too_large",
    "late",
}


@pytest.fixture
def stream_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in LINES) + b"\n")
    return path


def expected_rejects() -> list[tuple[int, str]]:
    return [(number, what) for number, (_, what) in enumerate(LINES, start=1) if what in REJECTED]


def test_oversize_line_really_is_over_1_mib():
    [line] = [line for line, what in LINES if what == "too_large"]
    value = json.loads(line)["value"]
    assert len(json.dumps(value).encode()) > MIB


def test_backtest_writes_exactly_the_expected_alerts(stream_file: Path, tmp_path: Path):
    out = tmp_path / "alerts.jsonl"
    rejects = tmp_path / "rejects.tsv"
    summary = run_backtest(stream_file, out, rejects_path=rejects)

    alerts = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert [a["event_ids"] for a in alerts] == [[event_id] for event_id in ALERTING]
    assert {a["kind"] for a in alerts} == {"moratorium_violation"}
    assert [a["entity"] for a in alerts] == [f"BIZ-{event_id}" for event_id in ALERTING]
    assert summary.alerts == Counter({"moratorium_violation": 3})

    # Every non-blank line is a record.
    assert summary.records == sum(1 for _, what in LINES if what != "skipped") == 21
    assert summary.outcomes == Counter(
        {"ok": 7, "duplicate": 1, "late": 1, "invalid": len(expected_rejects()) - 1}
    )

    # Rejections are counted by category...
    assert summary.rejects == Counter(what for _, what in expected_rejects())
    assert summary.rejects == Counter(
        {
            "not_json": 3,
            "not_object": 1,
            "unknown_topic": 1,
            "missing_field": 3,
            "invalid_field": 2,
            "invalid_value": 1,
            "too_large": 1,
            "late": 1,
        }
    )
    # ...and each one is listed with its line number, category and reason.
    rows = [row.split("\t") for row in rejects.read_text().splitlines()]
    assert [(int(number), category) for number, category, _ in rows] == expected_rejects()
    assert all(reason for _, _, reason in rows)
    reasons = {int(number): reason for number, _, reason in rows}
    assert reasons[10] == "missing field: value"
    assert reasons[11] == "missing field: business"
    assert reasons[17] == "missing field: topic"
    assert reasons[19] == "payee equals payer"
    assert reasons[9].startswith("unknown topic: 'wages'")
    assert reasons[15].startswith("message too large: ")
    assert reasons[20].startswith("late: ")

    # The summary quotes the first few by line number.
    assert summary.examples[:2] == [f"line 7: {reasons[7]}", f"line 8: {reasons[8]}"]
    assert len(summary.examples) == 10


def test_backtest_is_deterministic(stream_file: Path, tmp_path: Path):
    run_backtest(stream_file, tmp_path / "a.jsonl")
    run_backtest(stream_file, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_summary_render(stream_file: Path, tmp_path: Path):
    summary = run_backtest(stream_file, tmp_path / "alerts.jsonl")
    text = summary.render()
    assert "events/s" in text
    assert summary.seconds > 0
    lines = text.splitlines()
    assert lines[0].split() == ["records", "21"]
    assert ["invalid", "12"] in [line.split() for line in lines]
    assert any(line.split() == ["moratorium_violation", "3"] for line in lines)
    assert any(line.split() == ["too_large", "1"] for line in lines)


def test_cli_backtest(stream_file: Path, tmp_path: Path, monkeypatch, capsys):
    for name in list(os.environ):
        if name.startswith("KUZET_"):
            monkeypatch.delenv(name)
    out = tmp_path / "cli-alerts.jsonl"
    assert main(["backtest", str(stream_file), "--out", str(out)]) == 0
    alerts = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert [a["event_ids"][0] for a in alerts] == ALERTING
    assert "events/s" in capsys.readouterr().out
