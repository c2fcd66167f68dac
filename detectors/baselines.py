"""Naive rule baselines: the first rule an analyst would write for each alert kind.

They exist only to be beaten. ``kuzet backtest --truth`` runs them over the
same events as the real detectors and prints both sets of figures side by side
in the scorecard (:mod:`streams.scorecard`), so what the real detectors add
(in precision, recall and time to detect) is measured, not claimed. They never
run in the live worker: only :func:`build_baseline_engine` builds them, and
only the backtest calls it.

What they share, on purpose naive:

- fixed thresholds, UTC calendar dates, no learning, no tolerance;
- one alert per entity per finding: after an alert the entity stays quiet
  for the rule's window, and the next alert after that is a new finding
  (keyed by its event time), never a repeat for every event;
- bounded state: a windowed rule keeps one deque of its window's events,
  which expire with event time, and per-entity counts that vanish with
  them; the record of alerted entities is swept once a day of event time;
- severity ``warning`` and score 1.0: a rule either fires or not;
- plain attributes, so every baseline survives a pickle round trip.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Any

from detectors.base import Context, Detector, make_alert
from detectors.engine import Engine
from detectors.events import Alert, Inspection, Payment, PayrollEvent, day_after_period
from detectors.registry import DetectionConfig

DAY = 86400.0
HOUR = 3600.0
#: A rule either fires or not: every baseline alert is a plain warning, fully "sure".
SEVERITY = "warning"
SCORE = 1.0
#: Entities whose window has emptied are dropped once per day of event time:
#: often enough that stale entities never outnumber a day's worth, rarely enough
#: that the scan costs nothing per event.
SWEEP_SECONDS = DAY

# The rules' thresholds, as an analyst would first write them down.
#: pyramid_scheme: a "collector" account; 20 payers a week is beyond a family or a small club.
PYRAMID_MIN_PAYERS = 20
PYRAMID_WINDOW_DAYS = 7.0
#: mule_account: many inflows in a day, and money going out the same day.
MULE_MIN_PAYERS = 5
MULE_WINDOW_HOURS = 24.0
#: payment_anomaly: 10 million tenge (~20,000 USD) is a large sum for a personal payment.
LARGE_PAYMENT_TENGE = 10_000_000.0
#: ... and an account with large payments is flagged at most once a day.
LARGE_PAYMENT_QUIET_HOURS = 24.0
#: salary_arrears: wages for a period are due by this day of the next month (contract default).
WAGE_DUE_DAY = 10
#: payroll_anomaly: pay normally lands within the first days of the next month.
LATE_PAY_AFTER_DAY = 5
#: payroll_anomaly: an employer's alerted period is remembered this long (a quarter),
#: so a straggling payment for the same period does not alert again.
LATE_PAY_MEMORY_DAYS = 93.0
#: mass_layoff: 10 people in 30 days, the absolute-count style of regional practice.
LAYOFF_MIN_TERMINATIONS = 10
LAYOFF_WINDOW_DAYS = 30.0
#: moratorium_violation: the contract's window, read as UTC dates.
MORATORIUM_START = datetime(2020, 1, 1, tzinfo=UTC)
MORATORIUM_END = datetime(2023, 1, 1, tzinfo=UTC)
MORATORIUM_SIZES = frozenset({"micro", "small"})
#: repeat_inspection: a second inspection within a month.
REPEAT_MIN_INSPECTIONS = 2
REPEAT_WINDOW_DAYS = 30.0
#: inspector_anomaly: more than 15 inspections a month, about one every working
#: day and a half, looks busier than one person can inspect properly.
INSPECTOR_MAX_INSPECTIONS = 15
INSPECTOR_WINDOW_DAYS = 30.0


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _day(ts: float) -> str:
    return _utc(ts).date().isoformat()


@lru_cache(maxsize=512)
def month_after(period: str, day: int) -> float:
    """Epoch seconds of 00:00 UTC on ``day`` of the month after ``period`` (``YYYY-MM``).

    >>> _utc(month_after("2021-12", 11)).isoformat()
    '2022-01-11T00:00:00+00:00'
    """
    return datetime.combine(day_after_period(period, day), time(0), UTC).timestamp()


# --- sliding windows ------------------------------------------------------------


class QuietPeriods:
    """When each alerted entity may alert again: one alert per finding.

    Only alerted entities are remembered, and each only until its quiet
    period ends (:meth:`sweep`).
    """

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until: dict[str, float] = {}

    def allows(self, entity: str, ts: float) -> bool:
        until = self.until.get(entity)
        return until is None or ts >= until

    def start(self, entity: str, ts: float, seconds: float) -> None:
        self.until[entity] = ts + seconds

    def sweep(self, now: float) -> None:
        self.until = {entity: t for entity, t in self.until.items() if t > now}

    def __len__(self) -> int:
        return len(self.until)


class WindowRule(Detector):
    """Base of the windowed baselines: one sliding window shared by every entity.

    Every entity's window has the same length, so one FIFO queue in arrival
    order holds the whole window: when the newest event time moves on,
    entries at least ``window`` older leave the front and their entity's
    figures drop (naive about arrival order: a late event leaves when it
    reaches the front). Entities with nothing left in the window are
    forgotten at once, so state is exactly what the window holds.

    Figures, not events: no per-entity container is created, which keeps the
    baselines cheap enough to run beside the real detectors on every
    backtest. So an alert cites the event that crossed the threshold, not
    every event behind the figure (the figure is in its reasons).

    Subclasses say what is counted: :class:`CountRule` (events per entity) or
    :class:`DistinctRule` (distinct counterparties per entity).
    """

    def __init__(self, window_seconds: float) -> None:
        self._window_seconds = window_seconds
        self._queue: deque[tuple[float, Hashable]] = deque()
        self._quiet = QuietPeriods()
        self._newest = float("-inf")
        self._swept_at = float("-inf")

    def _advance(self, ts: float) -> None:
        """Move the window's end to ``ts`` if it is the newest event time yet."""
        if ts > self._newest:
            self._newest = ts
            self._expire(ts - self._window_seconds)
            if ts >= self._swept_at + SWEEP_SECONDS:
                self.sweep(ts)

    def _expire(self, before: float) -> None:
        raise NotImplementedError

    def sweep(self, now: float) -> None:
        """Daily housekeeping in event time: forget quiet periods that have ended."""
        self._swept_at = now
        self._quiet.sweep(now)

    def may_alert(self, entity: str, ts: float) -> bool:
        """False while ``entity`` is quiet after its last alert."""
        return self._quiet.allows(entity, ts)

    def alert(
        self,
        entity: str,
        ts: datetime,
        reasons: list[str],
        evidence: dict[str, Any],
        event_ids: list[str],
    ) -> list[Alert]:
        """One alert for ``entity`` (its finding: the alert's time); then a quiet window."""
        self._quiet.start(entity, ts.timestamp(), self._window_seconds)
        return [
            make_alert(
                kind=self.kind,
                entity=entity,
                finding=ts.astimezone(UTC).isoformat(),
                ts=ts,
                severity=SEVERITY,
                score=SCORE,
                reasons=reasons,
                evidence={"rule": "naive baseline", **evidence},
                event_ids=event_ids,
            )
        ]


class CountRule(WindowRule):
    """A window rule on the number of events per entity."""

    def __init__(self, window_seconds: float) -> None:
        super().__init__(window_seconds)
        self._counts: dict[str, int] = {}

    @property
    def n_entities(self) -> int:
        return len(self._counts)

    def observe(self, entity: str, ts: float) -> int:
        """Add one event of ``entity``; return its events in the window, this one included."""
        self._queue.append((ts, entity))
        self._counts[entity] = self._counts.get(entity, 0) + 1
        self._advance(ts)
        return self._counts.get(entity, 0)

    def _expire(self, before: float) -> None:
        queue, counts = self._queue, self._counts
        while queue and queue[0][0] <= before:
            entity = queue.popleft()[1]
            left = counts[entity] - 1
            if left:
                counts[entity] = left
            else:
                del counts[entity]


class DistinctRule(WindowRule):
    """A window rule on the number of distinct counterparties per entity."""

    def __init__(self, window_seconds: float) -> None:
        super().__init__(window_seconds)
        self._pairs: dict[tuple[str, str], int] = {}  # (entity, counterparty) -> events
        self._distinct: dict[str, int] = {}  # entity -> distinct counterparties

    @property
    def n_entities(self) -> int:
        return len(self._distinct)

    def observe(self, entity: str, other: str, ts: float) -> int:
        """Add one event between ``entity`` and ``other``; return ``entity``'s distinct
        counterparties in the window."""
        pair = (entity, other)
        self._queue.append((ts, pair))
        seen = self._pairs.get(pair)
        if seen is None:
            self._pairs[pair] = 1
            self._distinct[entity] = self._distinct.get(entity, 0) + 1
        else:
            self._pairs[pair] = seen + 1
        self._advance(ts)
        return self._distinct.get(entity, 0)

    def distinct(self, entity: str) -> int:
        """How many distinct counterparties ``entity`` has in the window."""
        return self._distinct.get(entity, 0)

    def _expire(self, before: float) -> None:
        queue, pairs, distinct = self._queue, self._pairs, self._distinct
        while queue and queue[0][0] <= before:
            pair = queue.popleft()[1]
            left = pairs[pair] - 1
            if left:
                pairs[pair] = left
                continue
            del pairs[pair]
            entity = pair[0]
            left = distinct[entity] - 1
            if left:
                distinct[entity] = left
            else:
                del distinct[entity]


# --- payments ---------------------------------------------------------------------


class NaivePyramid(DistinctRule):
    """``pyramid_scheme``, naive: a payee receiving from >= ``min_payers`` distinct
    payers within ``window_days``.

    >>> from datetime import datetime, timedelta, timezone
    >>> det, ctx = NaivePyramid(min_payers=3), Context(None)
    >>> def pay(n, hours):
    ...     ev = Payment(event_id=f"p-{n}", ts=datetime(2021, 3, 1, tzinfo=timezone.utc)
    ...         + timedelta(hours=hours), payer=f"A-{n}", payee="P-1", amount=100_000.0)
    ...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
    >>> pay(1, 0), pay(2, 24)
    ([], [])
    >>> [a.reasons[0] for a in pay(3, 48)]
    ['received from 3 distinct payers within 7 days (naive rule: >= 3)']
    >>> pay(4, 50)  # the same finding: no second alert
    []
    """

    kind = "pyramid_scheme"
    stream = "payments"

    def __init__(
        self, min_payers: int = PYRAMID_MIN_PAYERS, window_days: float = PYRAMID_WINDOW_DAYS
    ) -> None:
        super().__init__(window_days * DAY)
        self.min_payers = min_payers
        self.window_days = window_days

    def update(self, event: Payment, ctx: Context) -> list[Alert]:
        ts, payee = ctx.ts, event.payee
        payers = self.observe(payee, event.payer, ts)
        if payers < self.min_payers or not self.may_alert(payee, ts):
            return []
        reason = (
            f"received from {payers} distinct payers within {self.window_days:g} days "
            f"(naive rule: >= {self.min_payers})"
        )
        evidence = {"distinct_payers": payers}
        return self.alert(payee, event.ts, [reason], evidence, [event.event_id])


class NaiveMule(DistinctRule):
    """``mule_account``, naive: an account receiving from >= ``min_payers`` distinct
    payers within ``window_hours`` that also pays out at least once in that time.

    >>> from datetime import datetime, timedelta, timezone
    >>> det, ctx = NaiveMule(min_payers=2), Context(None)
    >>> def pay(n, payer, payee, hours):
    ...     ev = Payment(event_id=f"p-{n}", ts=datetime(2021, 3, 1, tzinfo=timezone.utc)
    ...         + timedelta(hours=hours), payer=payer, payee=payee, amount=50_000.0)
    ...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
    >>> pay(1, "A", "M", 0), pay(2, "B", "M", 1)  # two payers, nothing out yet
    ([], [])
    >>> [a.reasons[0] for a in pay(3, "M", "X", 2)]
    ['received from 2 distinct payers within 24 hours and made an outgoing payment in that time \
(naive rule: >= 2 payers and any outgoing payment)']
    """

    kind = "mule_account"
    stream = "payments"

    def __init__(
        self, min_payers: int = MULE_MIN_PAYERS, window_hours: float = MULE_WINDOW_HOURS
    ) -> None:
        super().__init__(window_hours * HOUR)
        self.min_payers = min_payers
        self.window_hours = window_hours
        # Account -> (ts, event id) of its newest outgoing payment; swept daily.
        self._outgoing: dict[str, tuple[float, str]] = {}

    def update(self, event: Payment, ctx: Context) -> list[Alert]:
        ts, payee, payer = ctx.ts, event.payee, event.payer
        payers = self.observe(payee, payer, ts)
        previous = self._outgoing.get(payer)
        if previous is None or ts > previous[0]:
            self._outgoing[payer] = (ts, event.event_id)
        # The inflow may complete the payee's pattern, the outflow the payer's.
        alerts: list[Alert] = []
        if payers >= self.min_payers:
            alerts += self._check(payee, event.ts, event.event_id)
        if self._distinct.get(payer, 0) >= self.min_payers:
            alerts += self._check(payer, event.ts, event.event_id)
        return alerts

    def _check(self, account: str, when: datetime, event_id: str) -> list[Alert]:
        ts = when.timestamp()
        payers = self.distinct(account)
        if payers < self.min_payers or not self.may_alert(account, ts):
            return []
        outgoing = self._outgoing.get(account)
        if outgoing is None or outgoing[0] <= ts - self._window_seconds:
            return []
        out_id = outgoing[1]
        reason = (
            f"received from {payers} distinct payers within {self.window_hours:g} hours "
            "and made an outgoing payment in that time "
            f"(naive rule: >= {self.min_payers} payers and any outgoing payment)"
        )
        evidence = {"distinct_payers": payers, "outgoing_payment": out_id}
        event_ids = [event_id] if event_id == out_id else [event_id, out_id]
        return self.alert(account, when, [reason], evidence, event_ids)

    def sweep(self, now: float) -> None:
        super().sweep(now)
        horizon = now - self._window_seconds
        self._outgoing = {a: out for a, out in self._outgoing.items() if out[0] > horizon}


class NaiveLargePayment(CountRule):
    """``payment_anomaly``, naive: a single payment of >= ``min_amount`` tenge
    (the payer is flagged, at most once per ``quiet_hours``).

    >>> from datetime import datetime, timezone
    >>> det, ctx = NaiveLargePayment(), Context(None)
    >>> def pay(n, amount):
    ...     ev = Payment(event_id=f"p-{n}", ts=datetime(2021, 3, 1, n, tzinfo=timezone.utc),
    ...         payer="A", payee="B", amount=amount)
    ...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
    >>> pay(1, 9_999_999.0)
    []
    >>> [a.reasons[0] for a in pay(2, 12_500_000.0)]
    ['single payment of 12,500,000 tenge (naive rule: >= 10,000,000)']
    >>> pay(3, 20_000_000.0)  # within the day: quiet
    []
    """

    kind = "payment_anomaly"
    stream = "payments"

    def __init__(
        self,
        min_amount: float = LARGE_PAYMENT_TENGE,
        quiet_hours: float = LARGE_PAYMENT_QUIET_HOURS,
    ) -> None:
        super().__init__(quiet_hours * HOUR)
        self.min_amount = min_amount
        self.quiet_hours = quiet_hours

    def update(self, event: Payment, ctx: Context) -> list[Alert]:
        if event.amount < self.min_amount:
            return []
        ts, payer = ctx.ts, event.payer
        self.observe(payer, ts)
        if not self.may_alert(payer, ts):
            return []
        reason = (
            f"single payment of {event.amount:,.0f} tenge (naive rule: >= {self.min_amount:,.0f})"
        )
        evidence = {"amount": event.amount, "payee": event.payee}
        return self.alert(payer, event.ts, [reason], evidence, [event.event_id])


# --- payroll ----------------------------------------------------------------------


class _PeriodBook:
    """Accruals and payments of one employer for one pay period, until its due date."""

    __slots__ = ("accrued", "paid")

    def __init__(self) -> None:
        self.accrued: dict[str, str] = {}  # employee -> accrual event id
        self.paid: set[str] = set()


class NaiveArrears(Detector):
    """``salary_arrears``, naive: an accrual (employer, employee, period) with no
    payment for that employee and period before 00:00 UTC on the day after
    ``due_day`` of the next month. Any payment counts, however partial; no
    time zone, no rounding tolerance. One alert per employer and period, raised
    by a timer at the due instant (the engine fires it once the watermark,
    allowed lateness included, has passed it).

    >>> from datetime import datetime, timezone
    >>> det = NaiveArrears()
    >>> engine = Engine([det])
    >>> def payroll(n, day, kind, employee, period="2021-02", month=3):
    ...     return engine.process("payroll", PayrollEvent(event_id=f"r-{n}",
    ...         ts=datetime(2021, month, day, 9, tzinfo=timezone.utc), type=kind,
    ...         employer="E-1", employee=employee, period=period, amount=100_000.0)).alerts
    >>> payroll(1, 1, "accrual", "W-1"), payroll(2, 1, "accrual", "W-2")
    ((), ())
    >>> payroll(3, 10, "payment", "W-1", month=3)  # W-1 paid on the 10th; W-2 never
    ()
    >>> [a.reasons[0] for a in payroll(4, 13, "accrual", "W-1", period="2021-03")]
    ['1 of 2 employees with wages accrued for 2021-02 had no payment by 2021-03-10 (UTC) \
(naive rule: any payment before the due date counts)']
    """

    kind = "salary_arrears"
    stream = "payroll"

    def __init__(self, due_day: int = WAGE_DUE_DAY) -> None:
        self.due_day = due_day
        self._books: dict[tuple[str, str], _PeriodBook] = {}

    @property
    def n_entities(self) -> int:
        return len(self._books)

    def update(self, event: PayrollEvent, ctx: Context) -> list[Alert]:
        kind = event.type
        if kind != "accrual" and kind != "payment":
            return []
        period: str = event.period  # type: ignore[assignment]  # set for money types
        due = month_after(period, self.due_day + 1)
        if due <= ctx.watermark or (kind == "payment" and ctx.ts >= due):
            return []  # the period is already decided, or the payment came too late to count
        key = (event.employer, period)
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = _PeriodBook()
            ctx.schedule(due, key)
        if kind == "accrual":
            book.accrued.setdefault(event.employee, event.event_id)
        else:
            book.paid.add(event.employee)
        return []

    def on_timer(self, key: Hashable, ctx: Context) -> list[Alert]:
        book = self._books.pop(key, None)  # type: ignore[arg-type]
        if book is None:
            return []
        employer, period = key  # type: ignore[misc]
        unpaid = [e for e in book.accrued if e not in book.paid]
        if not unpaid:
            return []
        last_day = _day(ctx.due - DAY)
        reason = (
            f"{len(unpaid)} of {len(book.accrued)} employees with wages accrued for {period} "
            f"had no payment by {last_day} (UTC) "
            "(naive rule: any payment before the due date counts)"
        )
        return [
            make_alert(
                kind=self.kind,
                entity=employer,
                finding=period,
                ts=_utc(ctx.ts),
                severity=SEVERITY,
                score=SCORE,
                reasons=[reason],
                evidence={
                    "rule": "naive baseline",
                    "period": period,
                    "due": last_day,
                    "unpaid_employees": len(unpaid),
                    "accrued_employees": len(book.accrued),
                },
                event_ids=[book.accrued[e] for e in unpaid],
            )
        ]


class NaiveLatePayroll(Detector):
    """``payroll_anomaly``, naive: an employer's wage payment for a period made
    after ``late_after_day`` of the next month (UTC). One alert per employer
    and period.

    >>> from datetime import datetime, timezone
    >>> det, ctx = NaiveLatePayroll(), Context(None)
    >>> def pay(n, day, employee="W-1"):
    ...     ev = PayrollEvent(event_id=f"r-{n}", ts=datetime(2021, 4, day, 9, tzinfo=timezone.utc),
    ...         type="payment", employer="E-1", employee=employee, period="2021-03",
    ...         amount=100_000.0)
    ...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
    >>> pay(1, 5)
    []
    >>> [a.reasons[0] for a in pay(2, 6)]
    ['paid wages for 2021-03 on 2021-04-06 (UTC), after the 5th of the next month \
(naive rule)']
    >>> pay(3, 7, employee="W-2")  # the same period: one alert
    []
    """

    kind = "payroll_anomaly"
    stream = "payroll"

    def __init__(
        self, late_after_day: int = LATE_PAY_AFTER_DAY, memory_days: float = LATE_PAY_MEMORY_DAYS
    ) -> None:
        self.late_after_day = late_after_day
        self.memory_days = memory_days
        # Employer -> (newest alerted period, when it was alerted).
        self._alerted: dict[str, tuple[str, float]] = {}
        self._swept_at = float("-inf")

    @property
    def n_entities(self) -> int:
        return len(self._alerted)

    def update(self, event: PayrollEvent, ctx: Context) -> list[Alert]:
        if event.type != "payment":
            return []
        ts = ctx.ts
        period: str = event.period  # type: ignore[assignment]  # set for payments
        if ts < month_after(period, self.late_after_day + 1):
            return []
        if ts >= self._swept_at + SWEEP_SECONDS:
            self._sweep(ts)
        previous = self._alerted.get(event.employer)
        if previous is not None and previous[0] >= period:
            return []
        self._alerted[event.employer] = (period, ts)
        reason = (
            f"paid wages for {period} on {_day(ts)} (UTC), after the "
            f"{_ordinal(self.late_after_day)} of the next month (naive rule)"
        )
        return [
            make_alert(
                kind=self.kind,
                entity=event.employer,
                finding=period,
                ts=event.ts,
                severity=SEVERITY,
                score=SCORE,
                reasons=[reason],
                evidence={"rule": "naive baseline", "period": period, "paid_on": _day(ts)},
                event_ids=[event.event_id],
            )
        ]

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        horizon = now - self.memory_days * DAY
        self._alerted = {e: seen for e, seen in self._alerted.items() if seen[1] > horizon}


class NaiveMassLayoff(CountRule):
    """``mass_layoff``, naive: >= ``min_terminations`` terminations (any reason)
    at one employer within ``window_days``.

    >>> from datetime import datetime, timezone
    >>> det, ctx = NaiveMassLayoff(min_terminations=2), Context(None)
    >>> def leave(n, day):
    ...     ev = PayrollEvent(event_id=f"t-{n}", ts=datetime(2021, 3, day, tzinfo=timezone.utc),
    ...         type="termination", employer="E-1", employee=f"W-{n}", reason="voluntary")
    ...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
    >>> leave(1, 1)
    []
    >>> [a.reasons[0] for a in leave(2, 29)]
    ['2 terminations within 30 days (naive rule: >= 2, any reason)']
    """

    kind = "mass_layoff"
    stream = "payroll"

    def __init__(
        self,
        min_terminations: int = LAYOFF_MIN_TERMINATIONS,
        window_days: float = LAYOFF_WINDOW_DAYS,
    ) -> None:
        super().__init__(window_days * DAY)
        self.min_terminations = min_terminations
        self.window_days = window_days

    def update(self, event: PayrollEvent, ctx: Context) -> list[Alert]:
        if event.type != "termination":
            return []
        ts, employer = ctx.ts, event.employer
        count = self.observe(employer, ts)
        if count < self.min_terminations or not self.may_alert(employer, ts):
            return []
        reason = (
            f"{count} terminations within {self.window_days:g} days "
            f"(naive rule: >= {self.min_terminations}, any reason)"
        )
        return self.alert(employer, event.ts, [reason], {"terminations": count}, [event.event_id])


# --- inspections ------------------------------------------------------------------


class NaiveMoratorium(Detector):
    """``moratorium_violation``, naive: any inspection of a micro or small business
    whose UTC date is in [2020-01-01, 2023-01-01), exempt bases ignored.
    One alert per inspection.

    >>> from datetime import datetime
    >>> det, ctx = NaiveMoratorium(), Context(None)
    >>> def inspect(ts, basis="routine"):
    ...     ev = Inspection(event_id="i-1", ts=datetime.fromisoformat(ts), business="B-1",
    ...         business_size="small", authority="A", inspector="I", kind="scheduled",
    ...         basis=basis)
    ...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
    >>> len(inspect("2021-06-01T10:00:00Z", basis="threat_to_life_health"))  # exempt, yet flagged
    1
    >>> inspect("2019-12-31T23:00:00Z")  # already 2020-01-01 in Almaty, not in UTC
    []
    """

    kind = "moratorium_violation"
    stream = "inspections"

    def __init__(
        self,
        start: datetime = MORATORIUM_START,
        end: datetime = MORATORIUM_END,
        sizes: frozenset[str] = MORATORIUM_SIZES,
    ) -> None:
        self.start = start
        self.end = end
        self.sizes = sizes
        self._lo = start.timestamp()
        self._hi = end.timestamp()

    def update(self, event: Inspection, ctx: Context) -> list[Alert]:
        if event.business_size not in self.sizes or not self._lo <= ctx.ts < self._hi:
            return []
        reason = (
            f"inspection of a {event.business_size} business on {_day(ctx.ts)} (UTC), inside "
            f"{self.start.date()} to {self.end.date()} (naive rule: basis ignored)"
        )
        return [
            make_alert(
                kind=self.kind,
                entity=event.business,
                finding=event.event_id,
                ts=event.ts,
                severity=SEVERITY,
                score=SCORE,
                reasons=[reason],
                evidence={"rule": "naive baseline", "basis": event.basis},
                event_ids=[event.event_id],
            )
        ]


class NaiveRepeatInspection(CountRule):
    """``repeat_inspection``, naive: >= ``min_inspections`` inspections of the same
    business within ``window_days``.

    >>> from datetime import datetime, timezone
    >>> det, ctx = NaiveRepeatInspection(), Context(None)
    >>> def inspect(n, month, day):
    ...     ev = Inspection(event_id=f"i-{n}", ts=datetime(2021, month, day, tzinfo=timezone.utc),
    ...         business="B-1", business_size="medium", authority="A", inspector="I",
    ...         kind="scheduled", basis="routine")
    ...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
    >>> inspect(1, 1, 1), inspect(2, 2, 15)  # 45 days apart
    ([], [])
    >>> [a.reasons[0] for a in inspect(3, 3, 1)]
    ['2 inspections within 30 days (naive rule: >= 2)']
    """

    kind = "repeat_inspection"
    stream = "inspections"

    def __init__(
        self,
        min_inspections: int = REPEAT_MIN_INSPECTIONS,
        window_days: float = REPEAT_WINDOW_DAYS,
    ) -> None:
        super().__init__(window_days * DAY)
        self.min_inspections = min_inspections
        self.window_days = window_days

    def update(self, event: Inspection, ctx: Context) -> list[Alert]:
        ts, business = ctx.ts, event.business
        count = self.observe(business, ts)
        if count < self.min_inspections or not self.may_alert(business, ts):
            return []
        reason = (
            f"{count} inspections within {self.window_days:g} days "
            f"(naive rule: >= {self.min_inspections})"
        )
        return self.alert(business, event.ts, [reason], {"inspections": count}, [event.event_id])


class NaiveInspectorLoad(CountRule):
    """``inspector_anomaly``, naive: an inspector with more than ``max_inspections``
    inspections within ``window_days``.

    >>> from datetime import datetime, timezone
    >>> det, ctx = NaiveInspectorLoad(max_inspections=2), Context(None)
    >>> def inspect(n):
    ...     ev = Inspection(event_id=f"i-{n}", ts=datetime(2021, 3, n, tzinfo=timezone.utc),
    ...         business=f"B-{n}", business_size="large", authority="A", inspector="I-1",
    ...         kind="scheduled", basis="routine")
    ...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
    >>> inspect(1), inspect(2)
    ([], [])
    >>> [a.reasons[0] for a in inspect(3)]
    ['3 inspections within 30 days (naive rule: more than 2)']
    """

    kind = "inspector_anomaly"
    stream = "inspections"

    def __init__(
        self,
        max_inspections: int = INSPECTOR_MAX_INSPECTIONS,
        window_days: float = INSPECTOR_WINDOW_DAYS,
    ) -> None:
        super().__init__(window_days * DAY)
        self.max_inspections = max_inspections
        self.window_days = window_days

    def update(self, event: Inspection, ctx: Context) -> list[Alert]:
        ts, inspector = ctx.ts, event.inspector
        count = self.observe(inspector, ts)
        if count <= self.max_inspections or not self.may_alert(inspector, ts):
            return []
        reason = (
            f"{count} inspections within {self.window_days:g} days "
            f"(naive rule: more than {self.max_inspections})"
        )
        return self.alert(inspector, event.ts, [reason], {"inspections": count}, [event.event_id])


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


#: Every baseline, one per alert kind, in the contract's order.
BASELINES: tuple[type[Detector], ...] = (
    NaivePyramid,
    NaiveMule,
    NaiveLargePayment,
    NaiveArrears,
    NaiveLatePayroll,
    NaiveMassLayoff,
    NaiveMoratorium,
    NaiveRepeatInspection,
    NaiveInspectorLoad,
)


def build_baseline_engine(config: DetectionConfig | None = None) -> Engine:
    """An engine running every naive baseline (for the backtest scorecard only).

    It takes the real engine's lateness and dedup ceiling from ``config``, so
    both accept exactly the same events; the rules ignore the rest (time zone,
    moratorium settings) on purpose: they are naive.
    """
    config = config or DetectionConfig()
    return Engine(
        [baseline() for baseline in BASELINES],
        allowed_lateness=config.allowed_lateness,
        dedup_max_ids=config.dedup_max_ids,
    )
