"""``salary_arrears``: accrued wages unpaid past the due date, through the engine.

Every case runs through :class:`Engine` with the default 24 h lateness, so the
deadline timer fires as in production: once an event at least 24 h past the
deadline has been seen. Expected figures are worked out by hand from the
contract (due the 10th of the following month, local Asia/Almaty date, which
was UTC+06:00 in 2022): the 2022-10 wages are due before 2022-11-11T00:00+06:00,
that is 2022-11-10T18:00Z.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

from detectors.base import alert_id
from detectors.engine import DUPLICATE, LATE, OK, Engine
from detectors.events import Alert, PayrollEvent
from detectors.payroll.salary_arrears import SalaryArrears
from tests.detectors.support import validate_alert

KIND = "salary_arrears"
DEADLINE_2022_10 = datetime(2022, 11, 10, 18, tzinfo=UTC)  # 2022-11-11T00:00+06:00
#: The first moment the watermark (newest event - 24 h) reaches the 2022-10 deadline.
DECIDED_2022_10 = DEADLINE_2022_10 + timedelta(hours=24)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def accrual(
    event_id: str,
    employee: str,
    amount: float = 100_000.0,
    period: str = "2022-10",
    when: str = "2022-10-31T18:00:00+06:00",
    employer: str = "E-1",
) -> PayrollEvent:
    return PayrollEvent(
        event_id=event_id,
        ts=ts(when),
        type="accrual",
        employer=employer,
        employee=employee,
        period=period,
        amount=amount,
    )


def payment(
    event_id: str,
    employee: str,
    amount: float = 100_000.0,
    period: str = "2022-10",
    when: str = "2022-11-05T12:00:00+06:00",
    employer: str = "E-1",
) -> PayrollEvent:
    return PayrollEvent(
        event_id=event_id,
        ts=ts(when),
        type="payment",
        employer=employer,
        employee=employee,
        period=period,
        amount=amount,
    )


def tick(event_id: str, when: datetime, employer: str = "E-1") -> PayrollEvent:
    """An event that only moves the partition's clock (arrears ignores hires)."""
    return PayrollEvent(
        event_id=event_id, ts=when, type="hire", employer=employer, employee=f"NEW-{event_id}"
    )


class Run:
    """One engine running only SalaryArrears, every event on partition 0."""

    def __init__(self) -> None:
        self.engine = Engine([SalaryArrears()])

    def send(self, event: PayrollEvent, outcome: str = OK) -> list[Alert]:
        result = self.engine.process("payroll", event)
        assert result.outcome == outcome, result
        return list(result.alerts)

    def all(self, events: list[PayrollEvent]) -> list[Alert]:
        return [alert for event in events for alert in self.send(event)]


def staff(n: int, period: str = "2022-10", prefix: str = "a", **kw) -> list[PayrollEvent]:
    return [accrual(f"{prefix}{k}-{period}", f"W-{k}", period=period, **kw) for k in range(n)]


# --- paid, unpaid ----------------------------------------------------------------------


def test_wages_paid_in_full_before_the_deadline_raise_nothing():
    run = Run()
    events = staff(3) + [payment(f"p{k}", f"W-{k}") for k in range(3)]
    assert run.all(events) == []
    assert run.engine.pending_timers("payroll") == 1
    assert run.send(tick("t", DECIDED_2022_10 + timedelta(days=5))) == []
    assert run.engine.pending_timers("payroll") == 0


def test_unpaid_wages_raise_one_alert_per_employer_stamped_when_decided():
    run = Run()
    amounts = [100_000.0, 150_000.0, 200_000.0, 250_000.0, 300_000.0]
    events = [accrual(f"a{k}", f"W-{k}", amount) for k, amount in enumerate(amounts)]
    events += [payment(f"p{k}", f"W-{k}", amounts[k]) for k in (0, 2, 4)]  # W-1, W-3 unpaid
    assert run.all(events) == []
    # The event that moves the watermark past the deadline comes 15 h after it could have.
    [alert] = run.send(tick("t", DECIDED_2022_10 + timedelta(hours=15)))
    assert alert.kind == KIND
    assert (alert.domain, alert.entity, alert.entity_type) == ("payroll", "E-1", "employer")
    assert alert.ts == DECIDED_2022_10  # the deadline plus the lateness: when it became final
    assert alert.ts != DEADLINE_2022_10
    assert alert.severity == "warning"  # 2 of 5 is under half the staff
    assert alert.event_ids == ["a1", "a3"]  # the unpaid accruals
    assert alert.evidence == {
        "period": "2022-10",
        "due_date": "2022-11-10",
        "unpaid_employees": 2,
        "accrued_employees": 5,
        "owed_tenge": 400_000.0,
        "arrears_since_period": "2022-10",
        "periods_missed": ["2022-10"],
        "tolerance_tenge": 1.0,
    }
    assert alert.reasons == [
        "2 of 5 employees not paid their 2022-10 wages by 2022-11-10 (Asia/Almaty): "
        "400,000 tenge owed"
    ]
    assert alert.score == 0.5 + 0.5 * 2 / 5
    assert alert.alert_id == alert_id(KIND, "E-1", "2022-10", "warning")
    validate_alert(alert)


def test_the_alert_time_does_not_depend_on_who_else_shares_the_partition():
    """Issue 13: arrears "found 30-66 h after the due date" on sparse partitions.

    The timer fires with the first event of the partition a full lateness past the
    deadline; on a quiet partition that event came hours or days later, and the alert
    was stamped with it. The same employer's alert must carry the same time whether
    its partition is busy or quiet.
    """
    events = [accrual("a0", "W-0"), accrual("a1", "W-1"), payment("p0", "W-0")]
    busy, quiet = Run(), Run()
    busy.all(events)
    quiet.all(events)
    hours = [1, 6, 12, 20, 23, 23.9, 24.1, 30]  # other employers' hires, every few hours
    [from_busy] = busy.all(
        [tick(f"b{h}", DEADLINE_2022_10 + timedelta(hours=h), "E-2") for h in hours]
    )
    [from_quiet] = quiet.send(tick("q", DECIDED_2022_10 + timedelta(hours=42), "E-3"))
    assert from_busy.ts == from_quiet.ts == DECIDED_2022_10
    assert from_busy == from_quiet


def test_two_employers_in_arrears_get_one_alert_each():
    run = Run()
    events = staff(4, employer="E-1") + staff(3, prefix="b", employer="E-2")
    events += [payment(f"p{k}", f"W-{k}", employer="E-1") for k in (1, 2, 3)]  # E-1: W-0 unpaid
    assert run.all(events) == []  # E-2 paid nobody
    alerts = run.send(tick("t", DECIDED_2022_10))
    assert sorted((a.entity, a.evidence["unpaid_employees"], a.severity) for a in alerts) == [
        ("E-1", 1, "warning"),
        ("E-2", 3, "critical"),
    ]


# --- the deadline ----------------------------------------------------------------------


def test_a_payment_one_minute_before_local_midnight_ending_the_10th_counts():
    run = Run()
    run.all([accrual("a", "W-1"), payment("p", "W-1", when="2022-11-10T23:59:00+06:00")])
    assert run.send(tick("t", DECIDED_2022_10 + timedelta(days=3))) == []


def test_a_payment_at_local_midnight_after_the_10th_is_too_late():
    run = Run()
    late = payment("p", "W-1", when="2022-11-11T00:00:00+06:00")
    assert late.ts == DEADLINE_2022_10  # 2022-11-10T18:00Z: still the 10th in UTC
    run.all([accrual("a", "W-1"), late])
    [alert, paid] = run.send(tick("t", DECIDED_2022_10))
    assert alert.evidence["owed_tenge"] == 100_000.0
    assert alert.event_ids == ["a"]
    # Paid at the deadline: arrears all the same, and paid in full by the decision.
    assert (paid.status, paid.evidence["resolution"], paid.supersedes) == (
        "resolved",
        "paid",
        alert.alert_id,
    )


def test_nothing_fires_until_the_watermark_reaches_the_deadline():
    run = Run()
    run.all([accrual("a", "W-1"), accrual("b", "W-2"), payment("p", "W-1")])
    assert run.send(tick("t1", DEADLINE_2022_10)) == []
    assert run.send(tick("t2", DECIDED_2022_10 - timedelta(seconds=1))) == []
    assert run.engine.pending_timers("payroll") == 1
    [alert] = run.send(tick("t3", DECIDED_2022_10))
    assert alert.ts == DECIDED_2022_10
    assert run.engine.pending_timers("payroll") == 0
    assert run.send(tick("t4", DECIDED_2022_10 + timedelta(days=10))) == []  # once


def test_a_due_day_payment_delivered_20_hours_late_still_counts():
    run = Run()
    run.all([accrual("a", "W-1")])
    assert run.send(tick("t1", ts("2022-11-11T16:00:00+06:00"))) == []
    # Made at 20:00 on the 10th, it arrives after an event 20 h younger: within the lateness.
    assert run.send(payment("p", "W-1", when="2022-11-10T20:00:00+06:00")) == []
    assert run.send(tick("t2", DECIDED_2022_10 + timedelta(days=2))) == []


def test_a_payment_delivered_beyond_the_lateness_is_set_aside_and_arrears_stand():
    run = Run()
    run.all([accrual("a", "W-1")])
    run.send(tick("t1", ts("2022-11-11T12:00:00+06:00")))
    # Made at 06:00 on the 10th, it arrives 30 h behind the newest event: beyond the lateness.
    assert run.send(payment("p", "W-1", when="2022-11-10T06:00:00+06:00"), LATE) == []
    [alert] = run.send(tick("t2", DECIDED_2022_10 + timedelta(hours=1)))
    assert alert.event_ids == ["a"]


# --- amounts -------------------------------------------------------------------------


def test_instalments_add_up():
    run = Run()
    events = [
        accrual("a", "W-1"),
        payment("p1", "W-1", 40_000.0, when="2022-11-02T10:00:00+06:00"),
        payment("p2", "W-1", 60_000.0, when="2022-11-09T10:00:00+06:00"),
    ]
    assert run.all(events) == []
    assert run.send(tick("t", DECIDED_2022_10)) == []


def test_instalments_short_of_the_accrual_leave_the_difference_owed():
    run = Run()
    events = [
        accrual("a", "W-1"),
        payment("p1", "W-1", 40_000.0, when="2022-11-02T10:00:00+06:00"),
        payment("p2", "W-1", 50_000.0, when="2022-11-09T10:00:00+06:00"),
    ]
    run.all(events)
    [alert] = run.send(tick("t", DECIDED_2022_10))
    assert alert.evidence["owed_tenge"] == 10_000.0
    assert alert.reasons[0].endswith(": 10,000 tenge owed")


def test_whole_tenge_rounding_is_not_arrears_but_more_than_a_tenge_is():
    run = Run()
    events = [
        accrual("a1", "W-1", 100_000.99, employer="E-1"),  # shortfall 0.99
        accrual("a2", "W-1", 100_001.01, employer="E-2"),  # shortfall 1.01
        payment("p1", "W-1", 100_000.0, employer="E-1"),
        payment("p2", "W-1", 100_000.0, employer="E-2"),
    ]
    run.all(events)
    [alert] = run.send(tick("t", DECIDED_2022_10))
    assert alert.entity == "E-2"
    assert alert.evidence["owed_tenge"] == 1.01


def test_a_redelivered_payment_counts_once():
    run = Run()
    run.all([accrual("a", "W-1"), payment("p", "W-1", 50_000.0)])
    # The same payment again (same event_id): the engine drops it, so 50,000 stays owed.
    assert run.send(payment("p", "W-1", 50_000.0), DUPLICATE) == []
    [alert] = run.send(tick("t", DECIDED_2022_10))
    assert alert.evidence["owed_tenge"] == 50_000.0


def test_payments_for_a_period_never_accrued_are_ignored():
    run = Run()
    events = [payment("p", "W-1", period="2022-10"), payment("q", "W-2", period="2022-09")]
    assert run.all(events) == []
    assert run.send(tick("t", DECIDED_2022_10 + timedelta(days=40))) == []


# --- the finding: escalation, lapse ------------------------------------------------------

DEADLINE_OF = {  # local midnight ending the 10th, +06:00 in 2022
    "2022-10": datetime(2022, 11, 10, 18, tzinfo=UTC),
    "2022-11": datetime(2022, 12, 10, 18, tzinfo=UTC),
    "2022-12": datetime(2023, 1, 10, 18, tzinfo=UTC),
}
ACCRUED_ON = {"2022-10": "2022-10-31", "2022-11": "2022-11-30", "2022-12": "2022-12-31"}
PAID_ON = {"2022-10": "2022-11-05", "2022-11": "2022-12-05", "2022-12": "2023-01-05"}


def month(period: str, unpaid: int, n: int = 3, employer: str = "E-1") -> list[PayrollEvent]:
    """Accruals for ``n`` employees, the first ``unpaid`` of them left unpaid, and an event
    that moves the watermark past the period's deadline."""
    events = [
        accrual(
            f"{employer}-a{k}-{period}",
            f"W-{k}",
            period=period,
            when=f"{ACCRUED_ON[period]}T18:00:00+06:00",
            employer=employer,
        )
        for k in range(n)
    ]
    events += [
        payment(
            f"{employer}-p{k}-{period}",
            f"W-{k}",
            period=period,
            when=f"{PAID_ON[period]}T12:00:00+06:00",
            employer=employer,
        )
        for k in range(unpaid, n)
    ]
    decided = DEADLINE_OF[period] + timedelta(hours=30)
    return [*events, tick(f"{employer}-t-{period}", decided, employer=employer)]


def test_a_second_missed_period_escalates_the_same_finding_and_a_third_is_quiet():
    run = Run()
    [first] = run.all(month("2022-10", unpaid=1))
    [second] = run.all(month("2022-11", unpaid=1))
    assert run.all(month("2022-12", unpaid=1)) == []
    assert (first.severity, second.severity) == ("warning", "critical")
    assert first.alert_id == alert_id(KIND, "E-1", "2022-10", "warning")
    assert second.alert_id == alert_id(KIND, "E-1", "2022-10", "critical")
    assert first.alert_id != second.alert_id
    assert second.event_ids == ["E-1-a0-2022-11"]
    assert second.evidence["period"] == "2022-11"
    assert second.evidence["arrears_since_period"] == "2022-10"
    assert second.evidence["periods_missed"] == ["2022-10", "2022-11"]
    assert second.reasons == [
        "1 of 3 employees not paid their 2022-11 wages by 2022-12-10 (Asia/Almaty): "
        "100,000 tenge owed",
        "arrears since the 2022-10 wages (due 2022-11-10), 2 periods missed: 2022-10, 2022-11",
    ]


def test_a_deadline_with_nothing_owed_ends_the_finding():
    run = Run()
    [first] = run.all(month("2022-10", unpaid=1))
    [lapsed] = run.all(month("2022-11", unpaid=0))
    assert (lapsed.status, lapsed.finding_id, lapsed.supersedes) == (
        "resolved",
        first.finding_id,
        first.alert_id,
    )
    assert lapsed.evidence["resolution"] == "lapsed"
    assert lapsed.evidence["still_owed_tenge"] == 100_000.0
    assert lapsed.reasons == [
        "wages paid on time again after the arrears of 2022-10; "
        "100,000 tenge still owed to 1 employees"
    ]
    [again] = run.all(month("2022-12", unpaid=1))
    assert again.severity == "warning"  # a new finding, not an escalation
    assert again.alert_id == alert_id(KIND, "E-1", "2022-12", "warning")
    assert again.alert_id != first.alert_id
    assert again.evidence["periods_missed"] == ["2022-12"]
    assert len(again.reasons) == 1


def test_a_stray_payment_for_a_period_never_accrued_does_not_end_the_finding():
    # Guards a fixed bug: a payment for a period with no accruals opened a book whose
    # deadline found "nothing owed" and closed the open finding (salary_arrears.py on_timer), so
    # the next missed period was reported as a new warning instead of an escalation.
    stray = payment("stray", "W-0", period="2022-11", when="2022-12-01T12:00:00+06:00")
    quiet = [stray, tick("t-2022-11", DEADLINE_OF["2022-11"] + timedelta(hours=30))]
    plain, with_stray = Run(), Run()
    expected = plain.all(month("2022-10", unpaid=1) + month("2022-12", unpaid=1))
    got = with_stray.all(month("2022-10", unpaid=1) + quiet + month("2022-12", unpaid=1))
    assert got == expected
    assert [a.severity for a in got] == ["warning", "critical"]


def test_half_the_staff_unpaid_is_critical_at_once():
    run = Run()
    [alert] = run.all(month("2022-10", unpaid=2, n=4))
    assert alert.severity == "critical"
    assert alert.alert_id == alert_id(KIND, "E-1", "2022-10", "critical")
    assert alert.score == 0.75
    # A second period missed cannot raise it further: no second alert.
    assert run.all(month("2022-11", unpaid=4, n=4)) == []


# --- checkpoint, determinism -------------------------------------------------------------


def _stream() -> list[PayrollEvent]:
    events = []
    for e, unpaid in enumerate([0, 1, 2, 3]):
        for period in ("2022-10", "2022-11", "2022-12"):
            events += month(
                period, unpaid=unpaid if period != "2022-11" else 1, n=4, employer=f"E-{e}"
            )
    return sorted(events, key=lambda ev: (ev.ts, ev.event_id))


def test_pickle_round_trip_mid_stream_keeps_pending_timers_and_later_alerts():
    events = _stream()
    # Cut after the 2022-11 accruals, before their deadline: timers are pending.
    cut = max(i for i, ev in enumerate(events) if ev.event_id == "E-0-a0-2022-11") + 1
    run = Run()
    run.all(events[:cut])
    pending = run.engine.pending_timers("payroll")
    assert pending > 0
    copy = Engine.restore(pickle.loads(pickle.dumps(run.engine.snapshot())))
    assert copy.pending_timers("payroll") == pending
    later = run.all(events[cut:])
    restored = Run()
    restored.engine = copy
    assert restored.all(events[cut:]) == later
    assert later, "no alert after the checkpoint: this check would prove nothing"


def test_fresh_runs_are_identical():
    events = _stream()
    first = Run().all(events)
    assert first
    assert Run().all(events) == first


# --- the finding's life: escalated, then resolved when the arrears are paid -----------


def test_arrears_paid_later_resolve_the_finding():
    run = Run()
    run.all([accrual("a1", "W-1"), accrual("a2", "W-2"), accrual("a3", "W-3")])
    run.all([payment("p3", "W-3")])
    [first] = run.send(tick("t1", DECIDED_2022_10))
    assert (first.status, first.severity, first.supersedes) == ("open", "critical", None)
    assert first.finding_id  # one finding: its id is on every alert of its life
    # W-1 paid in two parts, W-2 in one, all well after the decision.
    assert run.send(payment("late-1a", "W-1", 60_000.0, when="2022-11-20T10:00:00+06:00")) == []
    assert run.send(payment("late-2", "W-2", when="2022-11-21T10:00:00+06:00")) == []
    [resolved] = run.send(payment("late-1b", "W-1", 40_000.0, when="2022-11-22T10:00:00+06:00"))
    validate_alert(resolved)
    assert resolved.status == "resolved"
    assert resolved.finding_id == first.finding_id
    assert resolved.supersedes == first.alert_id
    assert resolved.alert_id == alert_id(KIND, "E-1", "2022-10", "resolved")
    assert resolved.severity == "critical" and resolved.score == 0.0
    assert resolved.ts == ts("2022-11-22T10:00:00+06:00")
    assert resolved.event_ids == ["late-1b"]
    assert resolved.evidence["resolution"] == "paid"
    assert resolved.evidence["paid_late_tenge"] == 200_000.0
    assert resolved.evidence["still_owed_tenge"] == 0.0
    # A further payment changes nothing: the finding has ended.
    assert run.send(payment("late-1c", "W-1", 10.0, when="2022-11-23T10:00:00+06:00")) == []


def test_an_escalated_finding_supersedes_its_warning_and_resolves_once_all_is_paid():
    run = Run()
    [warning] = run.all(month("2022-10", unpaid=1))
    [critical] = run.all(month("2022-11", unpaid=1))
    assert (warning.status, critical.status) == ("open", "escalated")
    assert critical.supersedes == warning.alert_id
    assert critical.finding_id == warning.finding_id
    # W-0 is owed both months: paying one is not enough.
    assert run.send(payment("x1", "W-0", period="2022-10", when="2022-12-12T09:00:00+06:00")) == []
    [resolved] = run.send(payment("x2", "W-0", period="2022-11", when="2022-12-13T09:00:00+06:00"))
    assert (resolved.status, resolved.supersedes) == ("resolved", critical.alert_id)


def test_a_small_late_payment_within_the_tolerance_is_enough():
    run = Run()
    run.all([accrual("a", "W-1")])
    [alert] = run.send(tick("t", DECIDED_2022_10))
    [resolved] = run.send(payment("p", "W-1", 99_999.5, when="2022-11-25T10:00:00+06:00"))
    assert resolved.supersedes == alert.alert_id
