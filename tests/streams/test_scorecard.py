"""The scorecard: precision, recall, F1 and time to detect, worked out by hand.

Every expected figure below is computed in the comment beside it from the
contract's definitions ("Measuring detection"), never by asking the code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from detectors.base import make_alert
from detectors.events import KIND_DOMAIN, Alert
from streams.codec import encode_alert
from streams.scorecard import (
    AlertTally,
    Scorecard,
    TruthError,
    TruthFinding,
    load_truth,
    parse_truth,
    quantile,
)

T0 = datetime(2021, 3, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def alert(kind: str, entity: str, hours: float, event_ids: list[str] | None = None) -> Alert:
    return make_alert(
        kind=kind,
        entity=entity,
        finding=f"{hours}",
        ts=at(hours),
        severity="warning",
        score=1.0,
        reasons=["test"],
        evidence={},
        event_ids=event_ids or [],
    )


def truth(kind: str, entity: str, hours: float, event_ids: list[str] | None = None):
    return TruthFinding(kind=kind, entity=entity, start=at(hours), event_ids=event_ids or [])


TRUTH = [
    # pyramid_scheme: four true entities; A3 has two findings, the earlier at -5 h.
    truth("pyramid_scheme", "A1", 0),
    truth("pyramid_scheme", "A2", 10),
    truth("pyramid_scheme", "A3", 0),
    truth("pyramid_scheme", "A3", -5),
    truth("pyramid_scheme", "A4", 0),
    # moratorium_violation, judged per inspection: three prohibited inspections.
    truth("moratorium_violation", "B1", 0, ["e1"]),
    truth("moratorium_violation", "B1", 2, ["e2"]),
    truth("moratorium_violation", "B2", 3, ["e3"]),
    # salary_arrears: truth, never alerted.
    truth("salary_arrears", "E1", 100),
    truth("salary_arrears", "E2", 200),
    truth("salary_arrears", "E9", 300),
    # payroll_anomaly: E1 and E2 also fall into arrears (paired), E3 does not.
    truth("payroll_anomaly", "E1", 0),
    truth("payroll_anomaly", "E2", 0),
    truth("payroll_anomaly", "E3", 0),
]

DETECTOR_ALERTS = [
    alert("pyramid_scheme", "A1", 2),
    alert("pyramid_scheme", "A1", 1),  # out of order: the first alert is this one, at 1 h
    alert("pyramid_scheme", "A2", 4),  # 6 h before A2's start
    alert("pyramid_scheme", "A3", 5),  # 10 h after A3's earliest start
    alert("pyramid_scheme", "X1", 5),
    alert("pyramid_scheme", "X2", 6),
    # e1 found on time; e4 is an inspection of B1 that is not prohibited; B3 is not in truth.
    alert("moratorium_violation", "B1", 0, ["e1"]),
    alert("moratorium_violation", "B1", 7, ["e4"]),
    alert("moratorium_violation", "B3", 8, ["e5"]),
    # No truth of payment_anomaly in the file: only alerts per 10,000.
    alert("payment_anomaly", "P1", 1),
    alert("payment_anomaly", "P1", 30),
    alert("payment_anomaly", "P2", 2),
    # E1 before its arrears start (100 h), E2 after its (200 h), E3 is not paired.
    alert("payroll_anomaly", "E1", 50),
    alert("payroll_anomaly", "E2", 250),
    alert("payroll_anomaly", "E3", 1),
]

EVENTS = {"payments": 20_000, "payroll": 4_000, "inspections": 0}


@pytest.fixture
def card() -> Scorecard:
    return Scorecard.build(TRUTH, AlertTally.from_alerts(DETECTOR_ALERTS), EVENTS)


def test_per_entity_precision_recall_f1(card: Scorecard):
    score = card.detector["pyramid_scheme"]
    # Truth {A1..A4}; alerted {A1, A2, A3, X1, X2}: TP 3, FP 2, FN 1 (A4).
    assert (score.truth, score.alerts, score.tp, score.fp, score.fn) == (4, 6, 3, 2, 1)
    assert score.precision == pytest.approx(3 / 5)
    assert score.recall == pytest.approx(3 / 4)
    # 2 TP / (2 TP + FP + FN) = 6 / 9, the harmonic mean of 0.6 and 0.75.
    assert score.f1 == pytest.approx(6 / 9)
    assert score.f1 == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))


def test_time_to_detect_keeps_the_sign_and_uses_the_earliest_start(card: Scorecard):
    score = card.detector["pyramid_scheme"]
    # A1: 1 - 0 = 1 h (its first alert); A2: 4 - 10 = -6 h; A3: 5 - (-5) = 10 h.
    # Sorted [-6, 1, 10]: median 1; p90 at rank 0.9 * 2 = 1.8: 1 + 0.8 * 9 = 8.2.
    assert score.ttd_median_hours == pytest.approx(1.0)
    assert score.ttd_p90_hours == pytest.approx(8.2)


def test_moratorium_is_judged_per_inspection_event(card: Scorecard):
    score = card.detector["moratorium_violation"]
    # Truth {e1, e2, e3}; alerted {e1, e4, e5}: TP 1 (e1), FP 2, FN 2 (e2, e3). Per
    # entity, B1 would have counted as found: per event, its e4 alert is a false positive.
    assert (score.truth, score.tp, score.fp, score.fn) == (3, 1, 2, 2)
    assert (score.precision, score.recall) == (pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert score.f1 == pytest.approx(2 / 6)
    assert (score.ttd_median_hours, score.ttd_p90_hours) == (0.0, 0.0)
    # No inspections were counted: no rate rather than a division by zero.
    assert score.alerts_per_10k is None


def test_kind_without_truth_reports_only_alerts_per_10k(card: Scorecard):
    score = card.detector["payment_anomaly"]
    assert score.alerts == 3
    assert score.alerts_per_10k == pytest.approx(3 * 10_000 / 20_000)  # 1.5
    figures = (score.truth, score.tp, score.fp, score.fn, score.precision, score.recall)
    assert figures == (None,) * 6
    assert (score.f1, score.ttd_median_hours, score.ttd_p90_hours) == (None, None, None)


def test_kind_without_truth_and_without_alerts(card: Scorecard):
    score = card.detector["mass_layoff"]
    assert (score.alerts, score.alerts_per_10k, score.precision, score.f1) == (0, 0.0, None, None)
    assert card.detector["inspector_anomaly"].alerts_per_10k is None  # no inspections at all


def test_kind_with_truth_and_no_alerts(card: Scorecard):
    score = card.detector["salary_arrears"]
    assert (score.truth, score.tp, score.fp, score.fn) == (3, 0, 0, 3)
    assert (score.precision, score.recall, score.f1) == (None, 0.0, 0.0)
    assert score.ttd_median_hours is None
    assert score.alerts_per_10k == 0.0


def test_payroll_anomaly_before_arrears_share(card: Scorecard):
    # Paired: E1 and E2 (E3 has no arrears, E9 no payroll_anomaly truth). E1 was alerted
    # at 50 h, before its arrears at 100 h; E2 at 250 h, after 200 h: 1 of 2.
    early = card.early["detector"]
    assert (early.paired, early.early, early.share) == (2, 1, 0.5)
    assert early.render() == "1/2 (50%)"


def test_payroll_anomaly_share_is_na_without_pairs():
    findings = [f for f in TRUTH if f.kind != "salary_arrears"]
    card = Scorecard.build(findings, AlertTally.from_alerts(DETECTOR_ALERTS), EVENTS)
    assert card.early["detector"].share is None
    assert card.early["detector"].render() == "n/a"
    assert "payroll_anomaly alerted before the salary_arrears start" in card.render()
    assert card.render().splitlines()[-1].endswith("detector n/a")


def test_baseline_side_by_side():
    baseline = AlertTally.from_alerts(
        [alert("pyramid_scheme", f"A{n}", -1) for n in range(1, 5)]
        + [alert("pyramid_scheme", f"Y{n}", 0) for n in range(12)]
    )
    card = Scorecard.build(TRUTH, AlertTally.from_alerts(DETECTOR_ALERTS), EVENTS, baseline)
    assert card.baseline is not None
    score = card.baseline["pyramid_scheme"]
    # Truth {A1..A4} all alerted at -1 h, 12 others: TP 4, FP 12, FN 0.
    assert (score.tp, score.fp, score.fn) == (4, 12, 0)
    assert (score.precision, score.recall) == (pytest.approx(0.25), 1.0)
    assert score.f1 == pytest.approx(8 / 20)
    # A1: -1 h, A2: -11 h, A3: 4 h, A4: -1 h; sorted [-11, -1, -1, 4]: median -1,
    # p90 at rank 2.7: -1 + 0.7 * 5 = 2.5.
    assert score.ttd_median_hours == pytest.approx(-1.0)
    assert score.ttd_p90_hours == pytest.approx(2.5)
    assert score.alerts_per_10k == pytest.approx(16 * 10_000 / 20_000)  # 8.0
    assert card.early["baseline"].to_dict() == {"paired": 2, "early": 0, "share": 0.0}

    lines = card.render().splitlines()
    [row] = [i for i, line in enumerate(lines) if line.startswith("pyramid_scheme ")]
    assert lines[row].split() == [
        "pyramid_scheme", "detector", "4", "6", "3", "2", "1",
        "0.60", "0.75", "0.67", "1.0", "8.2", "3.00",
    ]  # fmt: skip
    assert lines[row + 1].split() == [
        "baseline", "4", "16", "4", "12", "0", "0.25", "1.00", "0.40", "-1.0", "2.5", "8.00",
    ]  # fmt: skip
    assert lines[-1].endswith("detector 1/2 (50%), baseline 0/2 (0%)")


def test_render_is_fixed_width_with_na(card: Scorecard):
    text = card.render()
    lines = text.splitlines()
    assert lines[0] == (
        "scorecard: 14 truth findings; events fed: payments 20,000, payroll 4,000, inspections 0"
    )
    header = lines[2]
    assert header.split() == [
        "kind", "by", "truth", "alerts", "TP", "FP", "FN", "P", "R", "F1",
        "TTD", "med", "p90", "h", "/10k",
    ]  # fmt: skip
    rows = [line for line in lines[3:] if line and not line.startswith(" ")]
    rows = rows[: len(KIND_DOMAIN)]
    assert [row.split()[0] for row in rows] == [
        kind + ("*" if kind == "moratorium_violation" else "") for kind in KIND_DOMAIN
    ]
    assert all(len(row) == len(header) for row in rows)
    [payment_row] = [row for row in rows if row.startswith("payment_anomaly")]
    assert payment_row.split() == ["payment_anomaly", "detector", "n/a", "3"] + ["n/a"] * 8 + [
        "1.50"
    ]


def test_to_dict_is_json_with_every_kind(card: Scorecard):
    data = json.loads(json.dumps(card.to_dict()))
    assert data["events"] == EVENTS
    assert list(data["kinds"]) == list(KIND_DOMAIN)
    assert data["truth_findings"]["pyramid_scheme"] == 5
    assert data["truth_findings"]["mass_layoff"] == 0
    pyramid = data["kinds"]["pyramid_scheme"]
    assert (pyramid["stream"], pyramid["unit"], pyramid["baseline"]) == ("payments", "entity", None)
    assert pyramid["detector"]["ttd_hours"]["median"] == 1.0
    assert {k: pyramid["detector"][k] for k in ("tp", "fp", "fn", "alerts")} == {
        "tp": 3,
        "fp": 2,
        "fn": 1,
        "alerts": 6,
    }
    assert data["kinds"]["moratorium_violation"]["unit"] == "event"
    assert data["kinds"]["payment_anomaly"]["detector"]["precision"] is None
    assert data["payroll_anomaly_before_salary_arrears"] == {
        "detector": {"paired": 2, "early": 1, "share": 0.5},
        "baseline": None,
    }


def test_quantile_interpolates_between_ranks():
    assert quantile([5.0], 0.9) == 5.0
    assert quantile([0.0, 10.0], 0.5) == 5.0
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0], 0.9) == 10.0


def test_tally_from_an_alerts_file(tmp_path: Path):
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"".join(encode_alert(a) + b"\n" for a in DETECTOR_ALERTS) + b"\n")
    from_file = AlertTally.from_file(path)
    assert from_file == AlertTally.from_alerts(DETECTOR_ALERTS)
    assert from_file.first["pyramid_scheme"]["A1"] == at(1).timestamp()
    assert from_file.first["moratorium_violation"] == {
        "e1": at(0).timestamp(),
        "e4": at(7).timestamp(),
        "e5": at(8).timestamp(),
    }


def test_load_truth(tmp_path: Path):
    path = tmp_path / "truth.json"
    path.write_text(
        json.dumps(
            {
                "findings": [
                    {
                        "kind": "mule_account",
                        "entity": "M-1",
                        "start": "2021-03-01T06:00:00+06:00",
                        "event_ids": ["p-1"],
                    },
                    {"kind": "mass_layoff", "entity": "E-1", "start": "2021-03-02T00:00:00Z"},
                ]
            }
        )
    )
    first, second = load_truth(path)
    assert (first.kind, first.entity, first.start, first.event_ids) == (
        "mule_account",
        "M-1",
        T0,
        ["p-1"],
    )
    assert second.event_ids == []


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b'{"findings": {}}',
        b'{"found": []}',
        b'{"findings": [{"kind": "ponzi", "entity": "A", "start": "2021-01-01T00:00:00Z"}]}',
        b'{"findings": [{"kind": "mule_account", "entity": "A", "start": "2021-01-01T00:00:00"}]}',
    ],
    ids=["not-json", "not-a-list", "no-findings", "unknown-kind", "start-without-offset"],
)
def test_bad_truth_is_refused_with_the_reason(document: bytes):
    # What is wrong, in the middle, is msgspec's text; Kuzet's part names the file
    # and says what a truth file must hold.
    with pytest.raises(TruthError) as caught:
        parse_truth(document, "world/truth.json")
    message = str(caught.value)
    assert message.startswith("world/truth.json: ")
    assert message.endswith('(contract "Truth files")')
    what_was_wrong, _, expected = message.removeprefix("world/truth.json: ").partition("; ")
    assert what_was_wrong
    assert expected.startswith('expected {"findings": [{"kind", "entity", "start", "event_ids"}')


def test_missing_truth_file(tmp_path: Path):
    with pytest.raises(TruthError, match="cannot read truth file"):
        load_truth(tmp_path / "nope.json")


def test_a_resolved_alert_is_no_detection_and_no_part_of_the_budget():
    raised = alert("mass_layoff", "E-1", 10.0)
    ended = msgspec.structs.replace(
        alert("mass_layoff", "E-9", 5.0), status="resolved", alert_id="r" * 32
    )
    tally = AlertTally.from_alerts([raised, ended])
    assert tally.counts["mass_layoff"] == 1
    assert set(tally.first["mass_layoff"]) == {"E-1"}  # E-9 only ended, never alerted
