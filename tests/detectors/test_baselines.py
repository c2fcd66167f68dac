"""The naive baselines: each rule fires exactly at its threshold, and not below it.

Every expected alert is worked out by hand from the rule as its docstring states
it (UTC dates, fixed thresholds); the events sit just inside or just outside
each limit.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from detectors.base import Detector
from detectors.baselines import (
    BASELINES,
    NaiveArrears,
    NaiveInspectorLoad,
    NaiveLargePayment,
    NaiveLatePayroll,
    NaiveMassLayoff,
    NaiveMoratorium,
    NaiveMule,
    NaivePyramid,
    NaiveRepeatInspection,
    build_baseline_engine,
)
from detectors.engine import Engine
from detectors.events import KIND_DOMAIN, Alert, Event, Inspection, Payment, PayrollEvent
from detectors.registry import DetectionConfig, build_engine

T0 = datetime(2021, 3, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def payment(event_id: str, hours: float, payer: str, payee: str, amount: float = 50_000.0):
    return Payment(event_id=event_id, ts=at(hours), payer=payer, payee=payee, amount=amount)


def payroll(event_id: str, ts: str, kind: str, employee: str = "W-1", **fields) -> PayrollEvent:
    return PayrollEvent(
        event_id=event_id,
        ts=datetime.fromisoformat(ts),
        type=kind,
        employer=fields.pop("employer", "E-1"),
        employee=employee,
        **fields,
    )


def inspection(
    event_id: str,
    ts: datetime | str,
    business: str = "B-1",
    size: str = "small",
    inspector: str = "I-1",
    basis: str = "routine",
) -> Inspection:
    return Inspection(
        event_id=event_id,
        ts=datetime.fromisoformat(ts) if isinstance(ts, str) else ts,
        business=business,
        business_size=size,
        authority="A-1",
        inspector=inspector,
        kind="scheduled",
        basis=basis,
    )


def run(detector: Detector, events: list[Event]) -> list[tuple[str, list[Alert]]]:
    """Each event through an engine holding only ``detector``: (event id, its alerts)."""
    engine = Engine([detector])
    return [(e.event_id, list(engine.process(detector.stream, e).alerts)) for e in events]


def alerted(detector: Detector, events: list[Event]) -> dict[str, list[Alert]]:
    """Only the events that raised alerts."""
    return {event_id: alerts for event_id, alerts in run(detector, events) if alerts}


def check_alert(alert: Alert, kind: str, entity: str, ts: datetime) -> None:
    assert (alert.kind, alert.entity, alert.ts) == (kind, entity, ts)
    assert (alert.severity, alert.score) == ("warning", 1.0)
    assert alert.evidence["rule"] == "naive baseline"


# --- pyramid_scheme ------------------------------------------------------------------


def test_pyramid_fires_at_the_twentieth_distinct_payer_within_7_days():
    events = [payment(f"p-{n}", n, f"A-{n}", "P-1") for n in range(20)]
    found = alerted(NaivePyramid(), events)
    assert list(found) == ["p-19"]
    [alert] = found["p-19"]
    check_alert(alert, "pyramid_scheme", "P-1", at(19))
    assert alert.reasons == ["received from 20 distinct payers within 7 days (naive rule: >= 20)"]
    assert alert.evidence["distinct_payers"] == 20
    assert alert.event_ids == ["p-19"]


def test_pyramid_counts_distinct_payers_not_payments():
    events = [payment(f"p-{n}", n, f"A-{n % 19}", "P-1") for n in range(60)]
    assert alerted(NaivePyramid(), events) == {}


def test_pyramid_window_is_7_days():
    # One new payer every 9 h: the 20th comes 171 h after the first, which has left.
    events = [payment(f"p-{n}", 9 * n, f"A-{n}", "P-1") for n in range(20)]
    assert alerted(NaivePyramid(), events) == {}
    # One every 8 h: the 20th at 152 h, all 20 within the week.
    events = [payment(f"p-{n}", 8 * n, f"A-{n}", "P-1") for n in range(20)]
    assert list(alerted(NaivePyramid(), events)) == ["p-19"]


def test_pyramid_alerts_once_per_finding_then_again_after_a_quiet_week():
    events = [payment(f"p-{n}", n, f"A-{n}", "P-1") for n in range(200)]
    found = alerted(NaivePyramid(), events)
    # The first at 19 h; quiet until 19 + 168 = 187 h; still 168 payers in the week then.
    assert list(found) == ["p-19", "p-187"]
    assert found["p-19"][0].alert_id != found["p-187"][0].alert_id


# --- mule_account --------------------------------------------------------------------


def test_mule_fires_on_the_outgoing_payment_after_five_payers():
    events = [payment(f"in-{n}", n, f"A-{n}", "M-1") for n in range(5)]
    events.append(payment("out-1", 6, "M-1", "X-1"))
    found = alerted(NaiveMule(), events)
    assert list(found) == ["out-1"]
    [alert] = found["out-1"]
    check_alert(alert, "mule_account", "M-1", at(6))
    assert alert.evidence["distinct_payers"] == 5
    assert alert.event_ids == ["out-1"]


def test_mule_fires_on_the_fifth_payer_after_an_outgoing_payment():
    events = [payment("out-1", 0, "M-1", "X-1")]
    events += [payment(f"in-{n}", 1 + n, f"A-{n}", "M-1") for n in range(5)]
    found = alerted(NaiveMule(), events)
    assert list(found) == ["in-4"]
    assert found["in-4"][0].event_ids == ["in-4", "out-1"]


def test_mule_needs_five_payers_and_an_outgoing_payment_within_24_hours():
    four = [payment(f"in-{n}", n, f"A-{n}", "M-1") for n in range(4)]
    assert alerted(NaiveMule(), [*four, payment("out-1", 5, "M-1", "X-1")]) == {}
    five = [payment(f"in-{n}", n, f"A-{n}", "M-1") for n in range(5)]
    assert alerted(NaiveMule(), five) == {}  # nothing goes out
    # Out at 25 h: the inflows at 0 h and 1 h have left the window (3 payers remain).
    assert alerted(NaiveMule(), [*five, payment("out-1", 25, "M-1", "X-1")]) == {}


# --- payment_anomaly -----------------------------------------------------------------


def test_large_payment_threshold_and_daily_quiet():
    events = [
        payment("p-1", 0, "A-1", "B-1", 9_999_999.99),
        payment("p-2", 1, "A-1", "B-1", 10_000_000.0),
        payment("p-3", 24, "A-1", "B-1", 50_000_000.0),  # 23 h after the alert: quiet
        payment("p-4", 25, "A-1", "B-1", 50_000_000.0),  # 24 h after: a new finding
        payment("p-5", 25, "A-2", "B-1", 10_000_000.0),  # another payer
    ]
    found = alerted(NaiveLargePayment(), events)
    assert list(found) == ["p-2", "p-4", "p-5"]
    check_alert(found["p-2"][0], "payment_anomaly", "A-1", at(1))
    assert found["p-2"][0].reasons == [
        "single payment of 10,000,000 tenge (naive rule: >= 10,000,000)"
    ]


# --- salary_arrears ------------------------------------------------------------------


def arrears_events(*payments: PayrollEvent, tick: str) -> list[PayrollEvent]:
    """Two accruals for 2021-02 (due by 2021-03-10 UTC), ``payments``, then an event at ``tick``."""
    return [
        payroll(
            "acc-1", "2021-02-28T12:00:00+00:00", "accrual", "W-1", period="2021-02", amount=1e5
        ),
        payroll(
            "acc-2", "2021-02-28T12:00:00+00:00", "accrual", "W-2", period="2021-02", amount=1e5
        ),
        *payments,
        payroll("tick", tick, "hire", "W-9"),
    ]


def pay(event_id: str, ts: str, employee: str, amount: float = 1e5) -> PayrollEvent:
    return payroll(event_id, ts, "payment", employee, period="2021-02", amount=amount)


def test_arrears_fires_when_the_watermark_passes_the_due_date():
    paid_w1 = pay("pay-1", "2021-03-10T23:59:59+00:00", "W-1")  # the last second counts
    paid_w2 = pay("pay-2", "2021-03-11T00:00:00+00:00", "W-2")  # too late
    # Due instant 2021-03-11T00:00Z; the watermark trails the newest event by 24 h.
    early = arrears_events(paid_w1, paid_w2, tick="2021-03-11T23:59:59+00:00")
    assert alerted(NaiveArrears(), early) == {}
    found = alerted(
        NaiveArrears(), arrears_events(paid_w1, paid_w2, tick="2021-03-12T00:00:00+00:00")
    )
    assert list(found) == ["tick"]
    [alert] = found["tick"]
    # Stamped when it could be decided (the tick that moved the watermark past the due date).
    check_alert(alert, "salary_arrears", "E-1", datetime(2021, 3, 12, tzinfo=UTC))
    assert alert.event_ids == ["acc-2"]
    assert alert.evidence["unpaid_employees"] == 1
    assert alert.evidence["accrued_employees"] == 2
    assert alert.reasons == [
        "1 of 2 employees with wages accrued for 2021-02 had no payment by 2021-03-10 (UTC) "
        "(naive rule: any payment before the due date counts)"
    ]


def test_arrears_counts_any_payment_and_uses_utc_dates():
    payments = [
        pay("pay-1", "2021-03-01T09:00:00+00:00", "W-1", amount=1.0),  # partial: counts
        # 2021-03-11 02:00 in Almaty, still the 10th in UTC: paid, naively.
        pay("pay-2", "2021-03-11T02:00:00+06:00", "W-2"),
    ]
    detector = NaiveArrears()
    assert alerted(detector, arrears_events(*payments, tick="2021-03-20T00:00:00+00:00")) == {}
    assert detector.n_entities == 0  # the decided period is forgotten


def test_arrears_one_alert_per_employer_and_period():
    events = arrears_events(tick="2021-03-12T00:00:00+00:00")
    found = alerted(NaiveArrears(), events)
    assert [a.evidence["unpaid_employees"] for a in found["tick"]] == [2]


# --- payroll_anomaly -----------------------------------------------------------------


def test_late_payroll_after_the_fifth_once_per_period():
    def late(event_id: str, ts: str, period: str = "2021-03") -> PayrollEvent:
        return payroll(event_id, ts, "payment", period=period, amount=1e5)

    events = [
        late("r-1", "2021-04-05T23:59:59+00:00"),
        payroll("r-2", "2021-04-07T00:00:00+00:00", "accrual", period="2021-03", amount=1e5),
        late("r-3", "2021-04-06T00:00:00+00:00"),
        late("r-4", "2021-04-08T00:00:00+00:00"),  # the same period again
        late("r-5", "2021-05-06T00:00:00+00:00", period="2021-04"),
        late("r-6", "2021-05-06T01:00:00+00:00", period="2021-02"),  # older than alerted
    ]
    found = alerted(NaiveLatePayroll(), events)
    assert list(found) == ["r-3", "r-5"]
    check_alert(found["r-3"][0], "payroll_anomaly", "E-1", datetime(2021, 4, 6, tzinfo=UTC))
    assert found["r-3"][0].reasons == [
        "paid wages for 2021-03 on 2021-04-06 (UTC), after the 5th of the next month (naive rule)"
    ]


def test_late_payroll_december_is_due_in_january():
    events = [payroll("r-1", "2022-01-06T00:00:00+00:00", "payment", period="2021-12", amount=1.0)]
    assert list(alerted(NaiveLatePayroll(), events)) == ["r-1"]


# --- mass_layoff ---------------------------------------------------------------------


def leave(n: int, day: float, reason: str = "voluntary") -> PayrollEvent:
    return PayrollEvent(
        event_id=f"t-{n}",
        ts=T0 + timedelta(days=day),
        type="termination",
        employer="E-1",
        employee=f"W-{n}",
        reason=reason,
    )


def test_mass_layoff_at_ten_terminations_of_any_reason_in_30_days():
    reasons = ("redundancy", "voluntary", "misconduct", "contract_end", "other")
    events = [leave(n, 3 * n, reasons[n % 5]) for n in range(10)]  # the 10th on day 27
    hire = PayrollEvent(event_id="h-1", ts=at(1), type="hire", employer="E-1", employee="W-x")
    found = alerted(NaiveMassLayoff(), [hire, *events])
    assert list(found) == ["t-9"]
    check_alert(found["t-9"][0], "mass_layoff", "E-1", T0 + timedelta(days=27))
    assert found["t-9"][0].evidence["terminations"] == 10


def test_mass_layoff_window_is_30_days():
    events = [leave(n, 10 * n / 3) for n in range(10)]  # the 10th on day 30 exactly
    assert alerted(NaiveMassLayoff(), events) == {}


# --- moratorium_violation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "size", "basis", "fires"),
    [
        ("2020-01-01T00:00:00+00:00", "micro", "routine", True),
        ("2019-12-31T23:59:59+00:00", "micro", "routine", False),
        ("2020-01-01T03:00:00+06:00", "micro", "routine", False),  # 2019-12-31 in UTC
        ("2022-12-31T23:59:59+00:00", "small", "routine", True),
        ("2023-01-01T00:00:00+00:00", "small", "routine", False),
        ("2021-06-01T00:00:00+00:00", "small", "threat_to_life_health", True),  # exempt: ignored
        ("2021-06-01T00:00:00+00:00", "medium", "routine", False),
    ],
)
def test_naive_moratorium(ts: str, size: str, basis: str, fires: bool):
    found = alerted(NaiveMoratorium(), [inspection("i-1", ts, size=size, basis=basis)])
    assert bool(found) is fires


def test_naive_moratorium_one_alert_per_inspection():
    events = [inspection(f"i-{n}", at(n)) for n in range(3)]
    found = alerted(NaiveMoratorium(), events)
    assert [a.event_ids for alerts in found.values() for a in alerts] == [["i-0"], ["i-1"], ["i-2"]]
    assert len({a.alert_id for alerts in found.values() for a in alerts}) == 3


# --- repeat_inspection / inspector_anomaly ------------------------------------------------


def test_repeat_inspection_second_within_30_days():
    events = [
        inspection("i-1", T0),
        inspection("i-2", T0 + timedelta(days=30)),  # exactly 30 days: the first has left
        inspection("i-3", T0 + timedelta(days=45)),
        inspection("i-4", T0 + timedelta(days=46)),  # quiet: the same finding
        inspection("x-1", T0 + timedelta(days=46), business="B-2"),
    ]
    found = alerted(NaiveRepeatInspection(), events)
    assert list(found) == ["i-3"]
    check_alert(found["i-3"][0], "repeat_inspection", "B-1", T0 + timedelta(days=45))
    assert found["i-3"][0].reasons == ["2 inspections within 30 days (naive rule: >= 2)"]


def test_inspector_anomaly_more_than_15_in_30_days():
    events = [inspection(f"i-{n}", at(40 * n), business=f"B-{n}") for n in range(17)]
    found = alerted(NaiveInspectorLoad(), events)  # 40 h apart: the 16th at 600 h = 25 days
    assert list(found) == ["i-15"]
    check_alert(found["i-15"][0], "inspector_anomaly", "I-1", at(600))
    assert found["i-15"][0].evidence["inspections"] == 16


# --- every baseline ------------------------------------------------------------------

#: For each baseline, a stream on which it fires (in its second half).
SCENARIOS: dict[type[Detector], list[Event]] = {
    NaivePyramid: [payment(f"p-{n}", n, f"A-{n}", "P-1") for n in range(25)],
    NaiveMule: [
        *(payment(f"in-{n}", n, f"A-{n}", "M-1") for n in range(5)),
        payment("out-1", 6, "M-1", "X-1"),
    ],
    NaiveLargePayment: [payment(f"p-{n}", n, "A-1", "B-1", 2e7) for n in range(30)],
    NaiveArrears: arrears_events(tick="2021-03-12T00:00:00+00:00"),
    NaiveLatePayroll: [
        payroll(
            f"r-{n}", f"2021-04-{n:02d}T09:00:00+00:00", "payment", period="2021-03", amount=1.0
        )
        for n in range(1, 9)
    ],
    NaiveMassLayoff: [leave(n, n) for n in range(12)],
    NaiveMoratorium: [inspection(f"i-{n}", at(n)) for n in range(4)],
    NaiveRepeatInspection: [inspection(f"i-{n}", at(24 * n)) for n in range(3)],
    NaiveInspectorLoad: [inspection(f"i-{n}", at(n), business=f"B-{n}") for n in range(20)],
}


def test_one_baseline_per_kind():
    assert sorted(b.kind for b in BASELINES) == sorted(KIND_DOMAIN)
    assert set(SCENARIOS) == set(BASELINES)
    for baseline in BASELINES:
        assert baseline.stream == KIND_DOMAIN[baseline.kind][0]
        assert baseline.__doc__ and "naive" in baseline.__doc__


@pytest.mark.parametrize("baseline", BASELINES, ids=lambda b: b.__name__)
def test_pickle_round_trip_mid_stream(baseline: type[Detector]):
    events = SCENARIOS[baseline]
    half = len(events) // 2
    engine = Engine([baseline()])
    for event in events[:half]:
        engine.process(baseline.stream, event)
    restored = Engine.restore(engine.snapshot())
    rest = [
        [[a.alert_id for a in e.process(baseline.stream, event).alerts] for event in events[half:]]
        for e in (engine, restored)
    ]
    assert rest[0] == rest[1]
    assert any(rest[0]), "the scenario must fire after the snapshot"


@pytest.mark.parametrize("baseline", BASELINES, ids=lambda b: b.__name__)
def test_deterministic(baseline: type[Detector]):
    ids = [
        [a.alert_id for _, alerts in run(baseline(), SCENARIOS[baseline]) for a in alerts]
        for _ in range(2)
    ]
    assert ids[0] == ids[1] and ids[0]


@pytest.mark.parametrize(
    "baseline", [b for b in BASELINES if b is not NaiveMoratorium], ids=lambda b: b.__name__
)
def test_state_is_forgotten_once_the_window_has_passed(baseline: type[Detector]):
    detector = baseline()
    engine = Engine([detector])
    events = SCENARIOS[baseline]
    held = 0
    for event in events:
        engine.process(baseline.stream, event)
        held = max(held, detector.n_entities)
    assert held >= 1
    # The last event again, 100 days later, moves every window past the rest.
    last = events[-1]
    stray = msgspec.structs.replace(last, event_id="stray", ts=last.ts + timedelta(days=100))
    engine.process(baseline.stream, stray)
    assert detector.n_entities <= 1  # at most the stray event's own entity


def test_baseline_engine_runs_every_baseline_and_the_live_engine_none():
    config = DetectionConfig(allowed_lateness=3600.0, dedup_max_ids=1000)
    engine = build_baseline_engine(config)
    assert [type(d) for d in engine.detectors] == list(BASELINES)
    assert (engine.allowed_lateness, engine.dedup_max_ids) == (3600.0, 1000)
    assert not any(isinstance(d, BASELINES) for d in build_engine().detectors)


def test_detectors_pickle_fresh():
    for baseline in BASELINES:
        detector = baseline()
        assert type(pickle.loads(pickle.dumps(detector))) is baseline
