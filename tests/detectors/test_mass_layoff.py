"""``mass_layoff``: a large share of the staff cut for redundancy within weeks, at any size.

Through :class:`Engine` with the default 24 h lateness. Figures are worked out by
hand from the documented defaults: within 30 days, terminations for redundancy (and
for 'other' reasons within 3 days of one) reach 30 % of the headcount the employer
had just before the first of them and at least 3 people, or 50 people at any size;
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
            event_id=f"{employer}-acc-{k}-{day}",
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


def hired(employee: int, day: float, employer: str = "E-1") -> PayrollEvent:
    return PayrollEvent(
        event_id=f"{employer}-hire-{employee}-{day}",
        ts=T0 + timedelta(days=day),
        type="hire",
        employer=employer,
        employee=f"W-{employee}",
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


# --- the share, at any size --------------------------------------------------------------


def test_three_of_nine_within_two_weeks_is_a_mass_layoff():
    """Issue 13: micro employers (8-10 staff) cutting 3-4 people in two weeks were missed.

    The old floor of 5 people could never be met by a micro employer's layoff.
    """
    layoffs = [fired(k, 2 + 6 * k) for k in range(3)]  # days 2, 8, 14
    results = per_event(accrual(9) + layoffs)
    assert [len(r) for r in results[9:]] == [0, 0, 1]
    [alert] = results[-1]
    assert alert.severity == "warning"  # 33 %, under half
    assert alert.ts == layoffs[-1].ts
    assert (alert.entity, alert.entity_type, alert.domain) == ("E-1", "employer", "payroll")
    assert alert.event_ids == [f"E-1-term-{k}" for k in range(3)]
    assert alert.reasons[0] == "3 of 9 employees (33%) terminated for redundancy within 12 days"
    assert alert.evidence == {
        "terminated": 3,
        "redundancies": 3,
        "other_reasons": 0,
        "headcount_before": 9,
        "share": 0.333,
        "first_termination": "2022-10-03T09:00:00+00:00",
        "span_days": 12.0,
        "window_days": 30,
    }
    assert alert.score == (3 / 9) / 0.5
    assert alert.alert_id == alert_id(KIND, "E-1", "E-1-term-0", "warning")
    validate_alert(alert)


def test_three_of_six_on_one_day_is_critical_at_once():
    [alert] = run(accrual(6) + [fired(k, 5 + k / 100) for k in range(3)])
    assert alert.severity == "critical"
    assert alert.reasons[0] == "3 of 6 employees (50%) terminated for redundancy within 0 days"


def test_one_or_two_redundancies_at_a_micro_employer_are_not_a_mass_layoff():
    assert run([*accrual(5), fired(0, 2)]) == []  # 20 %
    assert run([*accrual(5), fired(0, 2), fired(1, 2.1)]) == []  # 40 %, but two people


def test_three_of_twelve_are_under_the_share():
    assert run(accrual(12) + [fired(k, 1 + k) for k in range(3)]) == []  # 25 %


def test_five_of_twelve_within_two_weeks_is_a_warning_at_the_fourth():
    results = per_event(accrual(12) + [fired(k, 1 + 3.25 * k) for k in range(5)])
    assert [len(r) for r in results[12:]] == [0, 0, 0, 1, 0]  # 4 of 12 is 33 %
    assert results[15][0].reasons[0].startswith("4 of 12 employees (33%)")


def test_half_the_staff_escalates_to_critical_once():
    layoffs = [fired(k, 1 + k) for k in range(9)]
    results = per_event(accrual(12) + layoffs)
    counts = [len(r) for r in results[12:]]
    assert counts == [0, 0, 0, 1, 0, 1, 0, 0, 0]  # 4th: warning; 6th (50 %): critical
    warning, critical = results[15][0], results[17][0]
    assert (warning.severity, critical.severity) == ("warning", "critical")
    assert critical.reasons[0].startswith("6 of 12 employees (50%)")
    assert critical.alert_id == alert_id(KIND, "E-1", "E-1-term-0", "critical")
    assert critical.score == 1.0


def test_fifty_redundancies_at_a_thousand_person_employer_alert_on_the_absolute_count():
    layoffs = [fired(k, 1 + k * 0.5) for k in range(50)]
    results = per_event(accrual(1000) + layoffs)
    assert [len(r) for r in results[1000:]] == [0] * 49 + [1]
    [alert] = results[-1]
    assert alert.severity == "warning"  # 5 %, under 100 people
    assert alert.evidence["terminated"] == 50
    assert alert.evidence["headcount_before"] == 1000
    assert alert.evidence["share"] == 0.05
    assert alert.reasons[0] == "50 of 1000 employees (5%) terminated for redundancy within 24 days"


def test_a_large_employer_trimming_twenty_posts_is_not_a_mass_layoff():
    assert run(accrual(400) + [fired(k, 1 + k / 4) for k in range(20)]) == []


# --- what counts --------------------------------------------------------------------------


def test_contract_ends_and_voluntary_quits_never_count():
    reasons = ["contract_end", "voluntary", "misconduct"] * 3
    events = accrual(12) + [fired(k, 1 + k, reason) for k, reason in enumerate(reasons)]
    assert run(events) == []


def test_a_seasonal_wave_of_contract_ends_beside_two_redundancies_is_not_a_layoff():
    events = accrual(10) + [fired(k, 3 + k / 10, "contract_end") for k in range(5)]
    events += [fired(5, 4), fired(6, 4.2)]
    assert run(events) == []


def test_other_reasons_on_the_days_of_redundancies_count_with_them():
    # 2 redundancies and 2 'other' departures on the same days: 4 of 12 cut.
    events = [*accrual(12), fired(0, 3), fired(1, 3.1, "other"), fired(2, 4, "other")]
    results = per_event([*events, fired(3, 5)])
    [alert] = results[-1]
    assert alert.reasons[0] == (
        "4 of 12 employees (33%) terminated (2 for redundancy, 2 for 'other' reasons on "
        "the same days) within 2 days"
    )
    assert (alert.evidence["redundancies"], alert.evidence["other_reasons"]) == (2, 2)
    assert alert.event_ids == ["E-1-term-0", "E-1-term-1", "E-1-term-2", "E-1-term-3"]


def test_an_other_departure_before_the_redundancy_it_goes_with_counts_too():
    events = [*accrual(9), fired(0, 3, "other"), fired(1, 3.5, "other"), fired(2, 5)]
    [alert] = run(events)
    assert alert.evidence["other_reasons"] == 2


def test_other_reasons_alone_or_weeks_away_from_a_redundancy_do_not_count():
    assert run(accrual(9) + [fired(k, 2 + k, "other") for k in range(5)]) == []
    events = [*accrual(9), fired(0, 2), fired(1, 2.5), fired(2, 12, "other"), fired(3, 20, "other")]
    assert run(events) == []


def test_redundancies_spread_over_more_than_the_window_do_not_add_up():
    # One every 16 days: any 30-day window holds at most 2 of them.
    assert run(accrual(9) + [fired(k, 1 + 16 * k) for k in range(6)]) == []


def test_a_slow_trickle_is_judged_against_the_staff_left_when_it_began():
    # One every 11 days at 12 people: days 23, 34 and 45 are 3 of the 10 left at day 23.
    [alert] = run(accrual(12) + [fired(k, 1 + 11 * k) for k in range(5)])
    assert alert.reasons[0] == "3 of 10 employees (30%) terminated for redundancy within 22 days"


def test_redundancies_exactly_thirty_days_apart_share_the_window():
    [alert] = run(accrual(9) + [fired(k, 1 + 15 * k) for k in range(3)])
    assert alert.evidence["span_days"] == 30.0


# --- headcount from the stream ---------------------------------------------------------------


def test_headcount_counts_hires_payments_and_accruals():
    # 3 seen via accruals, 3 via hires, 3 only via a payment: 9 in all.
    events = accrual(3)
    events += [hired(k, 0.04) for k in range(3, 6)]
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
        for k in range(6, 9)
    ]
    # Fire the payment-only employees, so their count cannot come from elsewhere.
    [alert] = run(events + [fired(k, 2 + k - 6) for k in range(6, 9)])
    assert alert.evidence["headcount_before"] == 9
    assert alert.reasons[0].startswith("3 of 9 employees (33%)")


def test_final_wages_after_a_termination_do_not_count_the_leaver_back():
    events = [*accrual(10), fired(0, 2), fired(1, 3)]
    events += accrual(10, day=4)  # the month's accruals still name the two leavers
    [alert] = run([*events, fired(2, 5)])
    assert alert.evidence["headcount_before"] == 10  # 3 of 10, not 3 of 12


def test_people_gone_from_the_payroll_without_a_termination_are_not_counted():
    # 12 accrued in September; in October and November only 9: three left unannounced.
    events = accrual(12) + accrual(9, day=31) + accrual(9, day=61)
    [alert] = run(events + [fired(k, 62 + k / 10) for k in range(3)])
    assert alert.evidence["headcount_before"] == 9  # 3 of 9, not 3 of 12


def test_a_cut_delivered_out_of_order_is_judged_against_the_same_headcount():
    # The first termination of the cut (day 2) is delivered after the two of day 2.5.
    events = [*accrual(10), fired(1, 2.5), fired(2, 2.5), fired(0, 2)]
    [alert] = run(events)
    assert alert.evidence["headcount_before"] == 10  # not 8: the two were on the books
    [in_order] = run([*accrual(10), fired(0, 2), fired(1, 2.5), fired(2, 2.5)])
    assert in_order.evidence == alert.evidence


def test_people_hired_again_are_no_job_lost():
    events = [*accrual(9), fired(0, 2), fired(1, 2.1), hired(0, 2.5), hired(1, 2.5)]
    assert run([*events, fired(2, 3)]) == []  # one job lost, not three


def test_cuts_before_the_stream_shows_the_staff_are_judged_once_it_does():
    # Three redundancies before any accrual or payment: the headcount is unknown.
    cuts = [fired(k, 1 + k / 10) for k in range(3)]
    assert run(cuts) == []
    engine = Engine([MassLayoff()])
    assert run(cuts, engine) == []
    assert run(accrual(6, day=2, first=3), engine) == []  # the round: 6 on the books
    assert run(accrual(1, day=2.5, first=3), engine) == []  # a day is not over yet
    [alert] = run(accrual(1, day=3.5, first=4), engine)  # the next event, a day after
    assert alert.evidence["headcount_before"] == 9  # 6 seen, and the 3 cut
    assert alert.ts == T0 + timedelta(days=3.5)


def test_a_large_employer_cut_before_its_staff_is_known_is_not_judged_on_the_share():
    engine = Engine([MassLayoff()])
    assert run([fired(k, 1 + k / 10) for k in range(3)], engine) == []
    assert run(accrual(60, day=2, first=3), engine) == []
    assert run([hired(100, 3.5)], engine) == []  # 3 of 64


def test_a_second_employer_is_counted_apart():
    events = accrual(12, employer="E-1") + accrual(12, employer="E-2")
    events += [fired(k, 1 + k, employer="E-1" if k % 2 else "E-2") for k in range(6)]
    assert run(events) == []  # 3 each, 25 %


def test_a_new_cut_long_after_the_last_is_a_new_finding():
    first = [fired(k, 1 + k / 10) for k in range(4)]
    second = [fired(k, 60 + k / 10) for k in range(4, 8)]
    alerts = run(accrual(12) + first + accrual(8, day=45, first=4) + second)
    assert [(a.severity, a.status) for a in alerts] == [
        ("warning", "open"),
        ("warning", "resolved"),  # 30 days after its last cut, on day 1.3
        ("warning", "open"),
        ("critical", "escalated"),
    ]
    assert alerts[0].alert_id == alert_id(KIND, "E-1", "E-1-term-0", "warning")
    assert alerts[1].alert_id == alert_id(KIND, "E-1", "E-1-term-0", "resolved")
    assert alerts[1].supersedes == alerts[0].alert_id
    assert alerts[1].evidence["resolution"] == "window_passed"
    assert alerts[2].alert_id == alert_id(KIND, "E-1", "E-1-term-4", "warning")
    assert alerts[3].alert_id == alert_id(KIND, "E-1", "E-1-term-4", "critical")
    assert alerts[3].supersedes == alerts[2].alert_id


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
        ("E-1", "warning"),  # day 11: 6 of 20
        ("E-2", "warning"),  # day 13: 4 of 12
        ("E-2", "critical"),  # day 15: 6 of 12
        ("E-1", "critical"),  # day 19: 10 of 20
    ]
    assert run(events) == first
