"""``mass_layoff``: redundancies reaching a share of the headcount within a window.

Through :class:`Engine` with the default 24 h lateness. Figures are worked out by
hand from the documented defaults: within 30 days, 30 % of the headcount (as it
was at the first redundancy) and at least 5 people, or 50 people at any size;
half the staff, or 100 people, is critical.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

from detectors.base import alert_id
from detectors.engine import OK, Engine
from detectors.events import Alert, PayrollEvent
from detectors.payroll.mass_layoff import MassLayoff
from tests.detectors.support import validate_alert

KIND = "mass_layoff"
T0 = datetime(2022, 10, 1, 9, tzinfo=UTC)


def accrual(n: int, day: float = 0, employer: str = "E-1", first: int = 0) -> list[PayrollEvent]:
    """Accruals for ``n`` employees W-``first``.. on ``day``: how the headcount is seen."""
    return [
        PayrollEvent(
            event_id=f"{employer}-acc-{k}",
            ts=T0 + timedelta(days=day),
            type="accrual",
            employer=employer,
            employee=f"W-{k}",
            period="2022-09",
            amount=200_000.0,
        )
        for k in range(first, first + n)
    ]


def fired(
    employee: int, day: float, reason: str = "redundancy", employer: str = "E-1"
) -> PayrollEvent:
    return PayrollEvent(
        event_id=f"{employer}-term-{employee}",
        ts=T0 + timedelta(days=day),
        type="termination",
        employer=employer,
        employee=f"W-{employee}",
        reason=reason,
    )


def per_event(events: list[PayrollEvent], engine: Engine | None = None) -> list[list[Alert]]:
    engine = engine or Engine([MassLayoff()])
    out = []
    for event in events:
        result = engine.process("payroll", event)
        assert result.outcome == OK, result
        out.append(list(result.alerts))
    return out


def run(events: list[PayrollEvent], engine: Engine | None = None) -> list[Alert]:
    return [alert for alerts in per_event(events, engine) for alert in alerts]


def test_five_of_twelve_within_two_weeks_is_a_warning():
    layoffs = [fired(k, 1 + 3.25 * k) for k in range(5)]  # days 1 to 14
    results = per_event(accrual(12) + layoffs)
    assert [len(r) for r in results[12:]] == [0, 0, 0, 0, 1]
    [alert] = results[-1]
    assert alert.severity == "warning"
    assert alert.ts == layoffs[-1].ts
    assert (alert.entity, alert.entity_type, alert.domain) == ("E-1", "employer", "payroll")
    assert alert.event_ids == [f"E-1-term-{k}" for k in range(5)]
    assert alert.reasons[0] == "5 of 12 employees (42%) terminated for redundancy within 13 days"
    assert alert.evidence == {
        "redundancies": 5,
        "headcount_before": 12,
        "share": 0.417,
        "first_redundancy": "2022-10-02T09:00:00+00:00",
        "span_days": 13.0,
        "window_days": 30,
    }
    assert alert.score == (5 / 12) / 0.5
    assert alert.alert_id == alert_id(KIND, "E-1", "E-1-term-0", "warning")
    validate_alert(alert)


def test_half_the_staff_escalates_to_critical_once():
    layoffs = [fired(k, 1 + k) for k in range(9)]
    results = per_event(accrual(12) + layoffs)
    counts = [len(r) for r in results[12:]]
    assert counts == [0, 0, 0, 0, 1, 1, 0, 0, 0]  # 5th: warning; 6th (50 %): critical
    warning, critical = results[16][0], results[17][0]
    assert (warning.severity, critical.severity) == ("warning", "critical")
    assert critical.reasons[0].startswith("6 of 12 employees (50%)")
    assert critical.alert_id == alert_id(KIND, "E-1", "E-1-term-0", "critical")
    assert critical.score == 1.0


def test_contract_ends_and_voluntary_quits_never_count():
    reasons = ["contract_end", "voluntary"] * 4 + ["contract_end"]
    events = accrual(12) + [fired(k, 1 + k, reason) for k, reason in enumerate(reasons)]
    assert run(events) == []


def test_other_terminations_do_not_count_towards_the_redundancies():
    # 4 redundancies and 5 contract ends at a 12-person employer: 4 is under the floor of 5.
    events = accrual(12) + [fired(k, 1 + k, "contract_end") for k in range(5)]
    events += [fired(k, 10 + k) for k in range(5, 9)]
    assert run(events) == []


def test_four_redundancies_at_twelve_people_are_under_the_floor():
    assert run(accrual(12) + [fired(k, 1 + k) for k in range(4)]) == []


def test_two_of_four_at_a_micro_employer_are_not_a_mass_layoff():
    assert run([*accrual(4), fired(0, 1), fired(1, 2)]) == []


def test_fifty_redundancies_at_a_thousand_person_employer_alert_on_the_absolute_count():
    layoffs = [fired(k, 1 + k * 0.5) for k in range(50)]
    results = per_event(accrual(1000) + layoffs)
    assert [len(r) for r in results[1000:]] == [0] * 49 + [1]
    [alert] = results[-1]
    assert alert.severity == "warning"  # 5 %, under 100 people
    assert alert.evidence["redundancies"] == 50
    assert alert.evidence["headcount_before"] == 1000
    assert alert.evidence["share"] == 0.05
    assert alert.reasons[0] == "50 of 1000 employees (5%) terminated for redundancy within 24 days"


def test_redundancies_spread_over_more_than_the_window_do_not_add_up():
    # One every 8 days: any 30-day window holds at most 4 of them.
    assert run(accrual(12) + [fired(k, 1 + 8 * k) for k in range(8)]) == []


def test_redundancies_exactly_thirty_days_apart_share_the_window():
    [alert] = run(accrual(12) + [fired(k, 1 + 7.5 * k) for k in range(5)])
    assert alert.evidence["span_days"] == 30.0


def test_headcount_counts_hires_payments_and_accruals():
    # 4 seen via accruals, 4 via hires, 4 only via a payment: 12 in all.
    events = accrual(4)
    events += [
        PayrollEvent(
            event_id=f"hire-{k}",
            ts=T0 + timedelta(hours=1),
            type="hire",
            employer="E-1",
            employee=f"W-{k}",
        )
        for k in range(4, 8)
    ]
    events += [
        PayrollEvent(
            event_id=f"pay-{k}",
            ts=T0 + timedelta(hours=2),
            type="payment",
            employer="E-1",
            employee=f"W-{k}",
            period="2022-09",
            amount=200_000.0,
        )
        for k in range(8, 12)
    ]
    # Fire the payment-only employees first, so their count cannot come from elsewhere.
    [alert] = run(events + [fired(k, 1 + k - 8) for k in range(8, 12)] + [fired(0, 6)])
    assert alert.evidence["headcount_before"] == 12
    assert alert.reasons[0].startswith("5 of 12 employees (42%)")


def test_a_second_employer_is_counted_apart():
    events = accrual(12, employer="E-1") + accrual(12, employer="E-2")
    events += [fired(k, 1 + k, employer="E-1" if k % 2 else "E-2") for k in range(8)]
    assert run(events) == []  # 4 each


# --- checkpoint, determinism ---------------------------------------------------------


def _stream() -> list[PayrollEvent]:
    events = accrual(20, employer="E-1") + accrual(12, employer="E-2") + accrual(4, employer="E-3")
    events += [fired(k, 1 + 2 * k, employer="E-1") for k in range(12)]
    events += [fired(k, 10 + k, employer="E-2") for k in range(7)]
    events += [fired(k, 3 + k, "voluntary", employer="E-3") for k in range(3)]
    return sorted(events, key=lambda e: (e.ts, e.event_id))


def test_pickle_round_trip_mid_stream_gives_the_same_later_alerts():
    events = _stream()
    cut = next(i for i, e in enumerate(events) if e.ts >= T0 + timedelta(days=9))
    engine = Engine([MassLayoff()])
    run(events[:cut], engine)
    copy = Engine.restore(pickle.loads(pickle.dumps(engine.snapshot())))
    later = run(events[cut:], engine)
    assert run(events[cut:], copy) == later
    assert later, "no alert after the checkpoint: this check would prove nothing"


def test_fresh_runs_are_identical():
    events = _stream()
    first = run(events)
    assert [(a.entity, a.severity) for a in first] == [
        ("E-1", "warning"),
        ("E-2", "warning"),
        ("E-2", "critical"),
        ("E-1", "critical"),
    ]
    assert run(events) == first
