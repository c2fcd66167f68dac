"""``kuzet backtest`` over a file holding good events and one of every kind of bad line."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from detectors.errors import KuzetError
from detectors.events import KEY_FIELDS
from detectors.registry import DetectionConfig
from detectors.rules import parse_rules
from simulator import simulate
from streams import backtest as backtest_module
from streams.backtest import BacktestSummary, run_backtest
from streams.cli import main
from streams.codec import InvalidEvent
from streams.processor import Processor
from streams.regroup import DONE, REGROUPS, WAIT
from streams.replay import parse_line

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


def record(topic: str, value: object, key: str | None = None) -> bytes:
    """One file line; its key is the event's entity unless given."""
    if key is None and isinstance(value, dict):
        key = value.get(KEY_FIELDS.get(topic, ""), "k")
    return json.dumps({"topic": topic, "key": key, "value": value}).encode()


PAYMENT = {"event_id": "p-1", "ts": "2022-12-30T05:00:00Z", "payer": "A", "payee": "B"}

#: (line, what the backtest must make of it): an event id that alerts, "lawful",
#: "duplicate", "skipped" (blank), or the rejection category.
LINES: list[tuple[bytes, str]] = [
    (record("inspections", inspection("v-1", "2022-12-30T05:00:00Z")), "v-1"),
    (record("inspections", inspection("l-1", "2022-12-30T06:00:00Z", size="medium")), "lawful"),
    (
        record("inspections", inspection("l-2", "2022-12-30T07:00:00Z", basis="criminal_case")),
        "lawful",
    ),
    (record("inspections", inspection("v-1", "2022-12-30T05:00:00Z")), "duplicate"),
    # Out of order (02:00Z) but well within the allowed lateness.
    (record("inspections", inspection("v-2", "2022-12-30T08:00:00+06:00")), "v-2"),
    (
        record(
            "payroll",
            {
                "event_id": "h-1",
                "ts": "2022-12-30T05:00:00Z",
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
            {k: v for k, v in inspection("m-1", "2022-12-30T05:00:00Z").items() if k != "business"},
        ),
        "missing_field",
    ),
    (record("payments", {**PAYMENT, "amount": -5}), "invalid_field"),
    (record("payments", {**PAYMENT, "amount": 1.5}).replace(b"1.5", b"NaN"), "not_json"),
    (record("inspections", inspection("t-1", "2022-12-30T05:00:00")), "invalid_field"),
    (
        record("inspections", inspection("big", "2022-12-30T05:00:00Z", padding="x" * MIB)),
        "too_large",
    ),
    (b"   \t ", "skipped"),
    (b"{}", "missing_field"),
    # Guards the codec fix: invalid UTF-8 inside a string used to raise UnicodeDecodeError
    # and abort the whole backtest.
    (
        record("inspections", inspection("u-1", "2022-12-30T05:00:00Z", basis="@@")).replace(
            b"@@", b"\xc3\x28"
        ),
        "not_json",
    ),
    (record("payments", {**PAYMENT, "amount": 5, "payee": "A"}), "invalid_value"),
    # A month behind the newest inspection: later than the 24 h allowed lateness.
    (record("inspections", inspection("late-1", "2022-11-29T05:00:00Z")), "late"),
    # The last minute of the moratorium (local), then the first minute after it.
    (record("inspections", inspection("v-3", "2022-12-31T23:59:00+06:00")), "v-3"),
    (record("inspections", inspection("a-1", "2023-01-01T00:01:00+06:00")), "lawful"),
]

#: The alerting events in the order of the alert file: event time (v-2 is 02:00Z, v-1 05:00Z).
ALERTING = ["v-2", "v-1", "v-3"]
#: Lines that are no stream record at all (the rest of the rejects are records of bad events).
UNREADABLE = [7, 8, 9, 10, 13, 17]
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

    # Every non-blank line is a record; six of them are not even a stream record.
    assert summary.records == sum(1 for _, what in LINES if what != "skipped") == 21
    assert summary.unreadable == len(UNREADABLE)
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


# --- with --truth: the scorecard, detectors beside the naive baselines ------------------


def payroll_event(event_id: str, ts: str, kind: str, employee: str) -> dict:
    return {"event_id": event_id, "ts": ts, "type": kind, "employer": "E-1", "employee": employee}


SCORED_LINES: list[bytes] = [
    # 02:00 on 2020-01-01 in Almaty, still 2019 in UTC: the detector alerts, the baseline not.
    record("inspections", inspection("e-0", "2019-12-31T20:00:00Z")),
    # Prohibited: both alert.
    record("inspections", {**inspection("v-1", "2020-01-02T05:00:00Z"), "business": "BIZ-1"}),
    # Exempt basis: the baseline alerts (it ignores bases); a second inspection of BIZ-1
    # within 30 days: the baseline's repeat_inspection.
    record(
        "inspections",
        {**inspection("x-1", "2020-01-02T06:00:00Z", basis="criminal_case"), "business": "BIZ-1"},
    ),
    record("inspections", {**inspection("v-1", "2020-01-02T05:00:00Z"), "business": "BIZ-1"}),
    # Wages for 2021-02: W-1 paid on time, W-2 on 2021-03-12, after the due date.
    record(
        "payroll",
        {
            **payroll_event("r-1", "2021-02-28T12:00:00Z", "accrual", "W-1"),
            "period": "2021-02",
            "amount": 100000,
        },
    ),
    record(
        "payroll",
        {
            **payroll_event("r-2", "2021-02-28T12:00:00Z", "accrual", "W-2"),
            "period": "2021-02",
            "amount": 100000,
        },
    ),
    record(
        "payroll",
        {
            **payroll_event("r-3", "2021-03-05T12:00:00Z", "payment", "W-1"),
            "period": "2021-02",
            "amount": 100000,
        },
    ),
    # The watermark reaches the due instant (2021-03-11T00:00Z): the baseline's arrears.
    record("payroll", payroll_event("r-4", "2021-03-12T00:00:00Z", "hire", "W-3")),
    record(
        "payroll",
        {
            **payroll_event("r-5", "2021-03-12T01:00:00Z", "payment", "W-2"),
            "period": "2021-02",
            "amount": 100000,
        },
    ),
    record("payments", {**PAYMENT, "amount": 12_000_000}),
    record("payments", {**PAYMENT, "event_id": "p-2", "payer": "C", "amount": 100}),
    b"not json",
]

SCORED_TRUTH = {
    "findings": [
        {"kind": "moratorium_violation", "entity": "BIZ-e-0", "start": "2019-12-31T20:00:00Z",
         "event_ids": ["e-0"]},
        {"kind": "moratorium_violation", "entity": "BIZ-1", "start": "2020-01-02T05:00:00Z",
         "event_ids": ["v-1"]},
        {"kind": "repeat_inspection", "entity": "BIZ-1", "start": "2020-01-02T05:00:00Z"},
        # The missed due date: local midnight of 2021-03-11 in Almaty (UTC+6).
        {"kind": "salary_arrears", "entity": "E-1", "start": "2021-03-11T00:00:00+06:00"},
        {"kind": "payroll_anomaly", "entity": "E-1", "start": "2021-03-06T00:00:00Z"},
    ]
}  # fmt: skip


def test_cli_backtest_with_truth_prints_and_writes_the_scorecard(
    tmp_path: Path, monkeypatch, capsys
):
    for name in list(os.environ):
        if name.startswith("KUZET_"):
            monkeypatch.delenv(name)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(SCORED_LINES) + b"\n")
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(SCORED_TRUTH))
    card_path = tmp_path / "card.json"
    out = tmp_path / "alerts.jsonl"
    argv = ["backtest", str(events), "--out", str(out), "--truth", str(truth)]
    assert main([*argv, "--scorecard-json", str(card_path)]) == 0

    card = json.loads(card_path.read_text())
    # Accepted events only: the duplicate of v-1 and the broken line are not counted.
    assert card["events"] == {"payments": 2, "payroll": 5, "inspections": 3}
    kinds = card["kinds"]

    detector = kinds["moratorium_violation"]["detector"]
    assert {k: detector[k] for k in ("truth", "alerts", "tp", "fp", "fn")} == {
        "truth": 2,
        "alerts": 2,
        "tp": 2,
        "fp": 0,
        "fn": 0,
    }
    assert (detector["precision"], detector["recall"], detector["f1"]) == (1.0, 1.0, 1.0)
    assert detector["ttd_hours"] == {"median": 0.0, "p90": 0.0}
    assert detector["alerts_per_10k"] == pytest.approx(2 / 3 * 10_000)

    baseline = kinds["moratorium_violation"]["baseline"]
    # Truth {e-0, v-1}; the baseline flags v-1 and x-1: TP 1, FP 1, FN 1 (e-0).
    assert {k: baseline[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")} == {
        "tp": 1,
        "fp": 1,
        "fn": 1,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
    }

    def figures(kind: str) -> tuple:
        b = kinds[kind]["baseline"]
        return b["tp"], b["fp"], b["fn"], b["ttd_hours"]["median"], b["alerts_per_10k"]

    # x-1 came an hour after v-1 started the pattern.
    assert figures("repeat_inspection") == (1, 0, 0, 1.0, pytest.approx(10_000 / 3))
    # Due by 2021-03-11T00:00+06:00 (local); the naive rule's UTC due instant 2021-03-11T00:00Z
    # is decided once the watermark passes it, i.e. at the event of 2021-03-12T00:00Z: 30 h.
    assert figures("salary_arrears") == (1, 0, 0, 30.0, 2000.0)
    # Late pay alerted at 2021-03-12T01:00Z, 6 days and 1 h after the pattern's start.
    assert figures("payroll_anomaly") == (1, 0, 0, 145.0, 2000.0)
    # No truth of payment_anomaly: only the rate, 1 alert in 2 payments.
    assert figures("payment_anomaly") == (None, None, None, None, 5000.0)
    assert figures("mass_layoff") == (None, None, None, None, 0.0)
    # The baseline's late-pay alert came after the arrears began: 0 of 1 paired employers.
    early = card["payroll_anomaly_before_salary_arrears"]
    assert early["baseline"] == {"paired": 1, "early": 0, "share": 0.0}

    printed = capsys.readouterr().out
    assert "baseline alerts" in printed
    assert "scorecard: 5 truth findings" in printed
    row = next(line for line in printed.splitlines() if line.startswith("moratorium_violation*"))
    assert row.split()[1:] == [
        "detector", "2", "2", "2", "0", "0", "1.00", "1.00", "1.00", "0.0", "0.0", "6666.67",
    ]  # fmt: skip


def test_cli_backtest_refuses_a_bad_truth_file_before_running(tmp_path: Path, capsys):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(SCORED_LINES) + b"\n")
    truth = tmp_path / "truth.json"
    truth.write_text('{"findings": [{"kind": "ponzi"}]}')
    out = tmp_path / "alerts.jsonl"
    assert main(["backtest", str(events), "--out", str(out), "--truth", str(truth)]) == 2
    assert "truth.json" in capsys.readouterr().err
    assert not out.exists()


def test_cli_scorecard_json_needs_truth(tmp_path: Path, capsys):
    events = tmp_path / "events.jsonl"
    events.write_bytes(SCORED_LINES[0] + b"\n")
    argv = ["backtest", str(events), "--out", str(tmp_path / "a.jsonl")]
    assert main([*argv, "--scorecard-json", str(tmp_path / "c.json")]) == 2
    assert "--scorecard-json needs --truth" in capsys.readouterr().err


def test_backtest_counts_accepted_events_per_stream(stream_file: Path, tmp_path: Path):
    summary = run_backtest(stream_file, tmp_path / "alerts.jsonl")
    # Accepted: v-1, l-1, l-2, v-2, v-3, a-1 and the hire h-1 (not the duplicate or the late).
    assert summary.events == Counter({"inspections": 6, "payroll": 1})
    assert summary.baseline is None  # the baselines run only when asked
    assert summary.tally.counts == Counter({"moratorium_violation": 3})


def test_baselines_see_the_same_events(stream_file: Path, tmp_path: Path):
    alone = run_backtest(stream_file, tmp_path / "a.jsonl")
    both = run_backtest(stream_file, tmp_path / "b.jsonl", baseline=True)
    # The detectors' output does not change when the baselines run beside them.
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert both.outcomes == alone.outcomes
    assert both.baseline is not None
    # Naive moratorium: every micro inspection with a UTC date in 2020-2022, whatever the
    # basis: v-1, l-2 (criminal_case), v-2, v-3 (2022-12-31T17:59Z); a-1 is 2022-12-31
    # 18:01Z in UTC, so the naive rule flags it too.
    assert both.baseline.counts["moratorium_violation"] == 5


def test_unreadable_counts_the_lines_that_are_no_stream_record(stream_file: Path, tmp_path: Path):
    rejects = tmp_path / "rejects.tsv"
    summary = run_backtest(stream_file, tmp_path / "alerts.jsonl", rejects_path=rejects)
    unreadable = []
    for number, (line, what) in enumerate(LINES, start=1):
        if what == "skipped":  # a blank line is no record at all, not a bad one
            continue
        try:
            parse_line(line)
        except InvalidEvent:
            unreadable.append(number)
    assert unreadable == UNREADABLE
    assert summary.unreadable == len(UNREADABLE)
    # They are among the invalid outcomes and the rejects, by line number.
    assert summary.outcomes["invalid"] > summary.unreadable
    rows = {int(row.split("\t")[0]) for row in rejects.read_text().splitlines()}
    assert set(UNREADABLE) <= rows


@pytest.mark.parametrize(("partitions", "jobs"), [(0, 1), (1, 0), (-2, 1)])
def test_partitions_and_jobs_must_be_positive(tmp_path: Path, partitions: int, jobs: int):
    events = tmp_path / "events.jsonl"
    events.write_bytes(LINES[0][0] + b"\n")
    with pytest.raises(KuzetError, match="at least 1"):
        run_backtest(events, tmp_path / "a.jsonl", partitions=partitions, jobs=jobs)


# --- partitions and jobs, over a small simulated world -----------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated world (~30,000 lines, every stream, a few broken lines)."""
    path = tmp_path_factory.mktemp("world")
    simulate(path, seed=3, scale=0.02)
    return path / "events.jsonl"


def unreadable_lines(path: Path) -> int:
    """Lines of ``path`` that are not blank and no stream record."""
    count = 0
    for line in path.read_bytes().splitlines():
        if line.strip():
            try:
                parse_line(line)
            except InvalidEvent:
                count += 1
    return count


def backtest(world: Path, out: Path, **kwargs) -> tuple[bytes, BacktestSummary]:
    summary = run_backtest(world, out, progress=False, **kwargs)
    return out.read_bytes(), summary


def test_one_partition_gives_exactly_the_alerts_of_the_default(world: Path, tmp_path: Path):
    default, summary = backtest(world, tmp_path / "default.jsonl")
    one, one_summary = backtest(world, tmp_path / "one.jsonl", partitions=1, jobs=4)
    assert default == one and default.count(b"\n") > 10
    assert summary.outcomes == one_summary.outcomes
    assert summary.events == one_summary.events


def test_alerts_are_written_in_event_time_then_kind_entity_and_id(world: Path, tmp_path: Path):
    raw, _ = backtest(world, tmp_path / "alerts.jsonl", partitions=3)
    alerts = [json.loads(line) for line in raw.splitlines()]
    order = [
        (datetime.fromisoformat(a["ts"]), a["kind"], a["entity"], a["alert_id"]) for a in alerts
    ]
    assert order == sorted(order)
    assert len({a["kind"] for a in alerts}) > 2


def test_three_partitions_in_one_or_several_jobs_write_the_same_files(world: Path, tmp_path: Path):
    runs = {}
    for jobs in (1, 2, 3):
        rejects = tmp_path / f"rejects-{jobs}.tsv"
        alerts, summary = backtest(
            world,
            tmp_path / f"alerts-{jobs}.jsonl",
            partitions=3,
            jobs=jobs,
            baseline=True,
            rejects_path=rejects,
        )
        runs[jobs] = (alerts, rejects.read_bytes(), summary)
    alerts, rejects, summary = runs[1]
    assert alerts.count(b"\n") > 10 and rejects
    for jobs in (2, 3):
        other_alerts, other_rejects, other = runs[jobs]
        assert other_alerts == alerts, f"jobs={jobs}"
        assert other_rejects == rejects, f"jobs={jobs}"
        assert (other.records, other.unreadable) == (summary.records, summary.unreadable)
        assert other.outcomes == summary.outcomes
        assert other.rejects == summary.rejects
        assert other.events == summary.events
        assert other.alerts == summary.alerts
        assert other.baseline.counts == summary.baseline.counts


@pytest.mark.parametrize("partitions", [1, 3])
def test_every_record_has_exactly_one_outcome(world: Path, tmp_path: Path, partitions: int):
    _, summary = backtest(world, tmp_path / "alerts.jsonl", partitions=partitions, jobs=2)
    o = summary.outcomes
    assert o["ok"] + o["failed"] + o["duplicate"] + o["late"] + o["invalid"] == summary.records
    assert set(o) <= {"ok", "failed", "duplicate", "late", "invalid"}
    assert summary.records == sum(1 for line in world.read_bytes().splitlines() if line.strip())
    assert o["duplicate"] > 0 and o["invalid"] > summary.unreadable > 0
    assert summary.unreadable == unreadable_lines(world)  # counted once, whatever the jobs
    # Accepted events are counted once each, a payment once and not once a half.
    assert sum(summary.events.values()) == o["ok"] + o["failed"]
    assert set(summary.events) == {"payments", "payroll", "inspections"}


class Watched(Processor):
    """A processor that records what each regrouped partition was handed, and when."""

    made: list[Watched] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, int, int, int, float, int]] = []
        Watched.made.append(self)

    def downstream(self, regroup, partition, upstreams, upstream, through, frontier, halves, *rest):
        self.calls.append((regroup.name, partition, upstream, through, frontier, len(halves)))
        return super().downstream(
            regroup, partition, upstreams, upstream, through, frontier, halves, *rest
        )


def test_the_end_of_the_file_marks_every_upstream_done_and_drains_every_merge(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(backtest_module, "Processor", Watched)
    monkeypatch.setattr(Watched, "made", [])
    n = 3
    backtest(world, tmp_path / "alerts.jsonl", partitions=n, jobs=1)
    [processor] = Watched.made
    last_line = len(world.read_bytes().splitlines())  # the position through which all was read
    ends = len(REGROUPS) * n * n
    during, end = processor.calls[:-ends], processor.calls[-ends:]
    # While the file is read every half waits for every upstream partition's next one: the
    # file is read in one go, so the order is exact.
    assert during and all(frontier == WAIT and halves for *_, frontier, halves in during)
    # At its end, every regrouped partition hears from every upstream that it is done.
    assert sorted(end) == sorted(
        (regroup.name, q, up, last_line, DONE, 0)
        for regroup in REGROUPS
        for q in range(n)
        for up in range(n)
    )
    assert {(regroup, q) for regroup, q, *_ in during} == {
        (regroup.name, q) for regroup in REGROUPS for q in range(n)
    }
    # ... and nothing is left in any merge: every half was judged.
    assert sorted(processor.merges) == sorted(
        (regroup.lane, q) for regroup in REGROUPS for q in range(n)
    )
    for merge in processor.merges.values():
        assert len(merge) == 0 and merge.frontier == [DONE] * n


def test_a_kind_switched_off_in_the_rules_raises_nothing(stream_file: Path, tmp_path: Path):
    # moratorium_violation is the only kind this stream alerts; inspector_anomaly is
    # switched off too, so the inspections-by-authority lane has no detector at all.
    rules = parse_rules(
        "[moratorium_violation]\nenabled = false\n[inspector_anomaly]\nenabled = false\n"
    )
    out = tmp_path / "alerts.jsonl"
    summary = run_backtest(stream_file, out, DetectionConfig(rules=rules), progress=False)
    assert out.read_bytes() == b""
    assert summary.alerts == Counter()
    assert summary.outcomes["ok"] == 7  # the events are still read and checked
