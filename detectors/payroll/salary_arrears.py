"""``salary_arrears``: wages accrued for a period and not paid by the due date.

What the pattern is. Wage arrears are a debt for work already done that has
fallen due: the employer recognised the wage (accrued it for the period) and
did not pay it by the date the law sets. Its defining mechanics:

- **a deadline in law**: the Labour Code of the Republic of Kazakhstan (2015)
  has wages paid at least once a month, no later than the first ten days of
  the following month, hence ``due_day`` (default 10), a local date in
  ``timezone`` (through the tz database: Almaty moved from UTC+6 to UTC+5 in
  2024). The deadline is the local midnight that ends the due day; ILO
  Convention No. 95 (Protection of Wages, 1949) likewise asks that wages be
  paid regularly (Article 12);
- **a shortfall at that instant**, per employee: what was accrued for the
  period minus what was paid *before* the deadline. A payment made after it
  settles the debt but did not prevent the arrears;
- it **starts at the deadline**, whatever the employer does later, and
  **grows** when another period's deadline passes with wages still owed, or
  when most of the staff is unpaid (domain notes: about 29,000 workers a year
  with some 93,000 tenge owed each).

Lawful look-alikes, never arrears: wages in instalments (an advance and the
balance, both before the deadline: payments for a period add up); whole-tenge
rounding (``tolerance``, default 1 tenge per employee and period: rounding the
tiyn away loses up to 0.99 tenge, anything more is money missing); payment on
the due day itself, delivered hours late (counted: see below); payments for a
period whose accruals the stream never showed (no deadline was at stake);
redelivered payments (the engine counts an event once).

When it is decided, and the alert's time. The decision rests on something
*not* having happened, so it waits out the allowed lateness (contract): a
timer at the deadline fires once the watermark of the employer's partition
has passed it, i.e. once the partition has seen an event a full lateness
(24 h) past the deadline, so a payment made on the due day and delivered
hours late still counts. The alert carries the event time at which the
decision became final, **deadline + allowed lateness**, not the time of
whichever event happened to move the partition's watermark past it. That
event belongs to whoever shares the partition: the days after the 10th are
quiet (pay days are over; hires and terminations, none at night), so on a
partition of a few hundred employers the first event after deadline + 24 h
came 6 to 40 hours later, which is all issue 13's "found 30-66 h after the due
date" was (a tuning world gave 33-34 h on one partition and 36-64 h on eight,
with the same decisions). Stamped at the decision, an alert's time, and its
time to detect, are the same whatever the partition layout, as the contract
asks of replays. (The live worker still publishes it when the partition's
next event arrives: the engine moves a partition's event time with that
partition's own events only.)

One alert per employer and finding, not per employee: how many employees,
how much is owed, since which deadline. The finding is the first missed
period; it is raised again, as critical, when it grows (another period
missed, or half the staff unpaid). It ends, with a ``resolved`` alert, when
the arrears are paid: every payment for a missed period made after its
deadline (or delivered after the decision) pays down what each employee is
owed, and the one that brings every employee's debt within ``tolerance``
resolves it ("paid"). It also ends once a later deadline passes with nothing
owed for that period ("lapsed": the employer pays on time again; what is
still owed from before is in the resolution's evidence), or once no period of
the employer has been decided for ``FINDING_IDLE_DAYS`` ("idle").

State is bounded: an employer's period book lives until its deadline is
decided, and past ``max_entities`` books (or open findings) the least recently
active go.

>>> from datetime import datetime, timezone
>>> from detectors.base import escalates, Context
>>> from detectors.events import PayrollEvent
>>> det = SalaryArrears()
>>> ctx = Context(lambda at, key: timers.append((at, key))); timers = []
>>> def feed(kind, n, ts, employee="W-1", amount=100_000.0):
...     ev = PayrollEvent(event_id=f"e-{n}", ts=datetime.fromisoformat(ts), type=kind,
...         employer="E-1", employee=employee, period="2022-10", amount=amount)
...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
>>> feed("accrual", 1, "2022-10-31T18:00:00+06:00"), feed("accrual", 2,
...     "2022-10-31T18:00:00+06:00", employee="W-2")
([], [])
>>> feed("payment", 3, "2022-11-10T23:30:00+06:00", amount=99_999.5)  # rounded, in time
[]
>>> [(at, key)] = timers
>>> ctx.due, ctx.ts, ctx.watermark = at, at + 86400 + 7200, at + 7200  # 26 h past the deadline
>>> [alert] = det.on_timer(key, ctx)
>>> alert.reasons[0]
'1 of 2 employees not paid their 2022-10 wages by 2022-11-10 (Asia/Almaty): 100,000 tenge owed'
>>> alert.ts.isoformat()  # the deadline (2022-11-11T00:00+06:00) plus the 24 h lateness
'2022-11-11T18:00:00+00:00'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

from detectors.base import (
    Context,
    Detector,
    escalates,
    make_alert,
    previous_of,
    resolve_alert,
)
from detectors.events import Alert, PayrollEvent, day_after_period

DEFAULT_DUE_DAY = 10
#: Whole-tenge rounding loses under 1 tenge; a larger shortfall is money missing.
DEFAULT_TOLERANCE = 1.0
#: Half the staff unpaid, or a second period missed, makes the finding critical.
CRITICAL_SHARE = 0.5
#: At most this many unpaid accrual ids are kept per period (alerts cite <= 100).
MAX_IDS = 100
DAY = 86400.0
#: An open finding none of whose employer's periods has been decided for this long is
#: forgotten: an employer paying monthly has a deadline every month, so more than a
#: year (and a month) without one is an employer gone from the stream, and a deadline
#: missed after that is a new story, not the same arrears grown (payroll_anomaly
#: forgets an employer after as long).
FINDING_IDLE_DAYS = 400
_LAST_TS = attrgetter("last_ts")
_LAST_DUE = attrgetter("last_due")


@dataclass
class _Period:
    """What one employer accrued and paid for one period, per employee."""

    accrued: dict[str, tuple[float, str]] = field(default_factory=dict)  # employee -> (amount, id)
    paid: dict[str, float] = field(default_factory=dict)  # before the deadline
    late: dict[str, float] = field(default_factory=dict)  # after it, before the decision
    last_ts: float = 0.0  # event time of its latest accrual or payment (for the cap)


@dataclass
class _Finding:
    """An employer's open arrears: since which period, and what it has grown to."""

    first_period: str
    first_due: float
    severity: str
    periods: list[str] = field(default_factory=list)
    last_due: float = 0.0  # the latest of its employer's deadlines decided
    #: What is still owed, per missed period and employee (a late payment pays it down).
    owed: dict[tuple[str, str], float] = field(default_factory=dict)
    paid_late: float = 0.0  # tenge paid after the deadlines, towards the arrears


def decided_at(ctx: Context) -> float:
    """Event time at which a timer's decision became final: its time plus the lateness.

    In ``on_timer`` the watermark is the partition's newest event time minus the
    allowed lateness, so their difference is the lateness; the decision was
    final once the watermark reached ``ctx.due``. Never later than ``ctx.ts``.
    """
    return min(ctx.ts, ctx.due + (ctx.ts - ctx.watermark))


class SalaryArrears(Detector):
    """Flags employers with wages unpaid past the due date (see module docstring).

    Parameters:
        due_day: day of the following month by which wages are due.
        tolerance: tenge per employee and period forgiven as rounding.
        timezone: zone of the due date.
    """

    kind = "salary_arrears"
    stream = "payroll"

    def __init__(
        self,
        due_day: int = DEFAULT_DUE_DAY,
        tolerance: float = DEFAULT_TOLERANCE,
        timezone: str = "Asia/Almaty",
    ) -> None:
        self.due_day = due_day
        self.tolerance = tolerance
        self.timezone = timezone
        self._tz = ZoneInfo(timezone)
        self._books: dict[tuple[str, str], _Period] = {}  # (employer, period) -> book
        self._open: dict[str, _Finding] = {}  # employer -> open finding
        self._due_cache: dict[str, float] = {}
        self._swept_day = -1  # the day of event time open findings were last swept

    @property
    def n_entities(self) -> int:
        return len({employer for employer, _ in self._books}) + len(self._open)

    def due(self, period: str) -> float:
        """The deadline of ``period`` (``YYYY-MM``): local midnight ending the due day."""
        deadline = self._due_cache.get(period)
        if deadline is None:
            following = day_after_period(period, self.due_day)
            moment = datetime.combine(following + timedelta(days=1), time(0), self._tz)
            deadline = self._due_cache[period] = moment.timestamp()
        return deadline

    def update(self, event: PayrollEvent, ctx: Context) -> list[Alert]:
        alerts: list[Alert] = []
        if ctx.ts >= (self._swept_day + 1) * DAY:  # once a day of event time
            self._swept_day = int(ctx.ts // DAY)
            for employer, idle in self._forget_idle(
                self._open, ctx.ts - FINDING_IDLE_DAYS * DAY, _LAST_DUE
            ):
                alerts.append(self._resolved(employer, idle, "idle", ctx.ts, []))
        kind = event.type
        if kind != "accrual" and kind != "payment":
            return alerts
        period: str = event.period  # type: ignore[assignment]  # required for money types
        deadline = self.due(period)
        if deadline <= ctx.watermark:  # already decided: only a payment of arrears matters now
            if kind == "payment" and event.employer in self._open:
                alerts.extend(self._pay_down(event, period, ctx))
            return alerts
        key = (event.employer, period)
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = _Period(last_ts=ctx.ts)
            ctx.schedule(deadline, key)  # an evicted book's timer finds nothing
            if len(self._books) > self.max_entities:
                self._shed(self._books, _LAST_TS)
        elif ctx.ts > book.last_ts:
            book.last_ts = ctx.ts
        employee = event.employee
        if kind == "accrual":
            amount, _ = book.accrued.get(employee, (0.0, ""))
            book.accrued[employee] = (amount + event.amount, event.event_id)  # type: ignore[operator]
        elif ctx.ts < deadline:
            book.paid[employee] = book.paid.get(employee, 0.0) + event.amount  # type: ignore[operator]
        else:  # on or after the deadline: it did not prevent arrears, but it pays them down
            book.late[employee] = book.late.get(employee, 0.0) + event.amount  # type: ignore[operator]
        return alerts

    def _pay_down(self, event: PayrollEvent, period: str, ctx: Context) -> list[Alert]:
        """A payment for a period already decided: it pays down the open arrears, if any."""
        finding = self._open[event.employer]
        key = (period, event.employee)
        left = finding.owed.get(key)
        if left is None:
            return []
        paid = min(left, event.amount)  # type: ignore[type-var]
        finding.paid_late += paid
        if left - paid > self.tolerance:
            finding.owed[key] = left - paid
            return []
        del finding.owed[key]
        if finding.owed:
            return []
        del self._open[event.employer]
        return [self._resolved(event.employer, finding, "paid", ctx.ts, [event.event_id])]

    def _resolved(
        self, employer: str, finding: _Finding, how: str, ts: float, event_ids: list[str]
    ) -> Alert:
        """The alert that ends ``finding``: ``how`` is paid, lapsed or idle."""
        owed = sum(finding.owed.values())
        unpaid = len({employee for _, employee in finding.owed})
        missed = ", ".join(finding.periods)
        why = {
            "paid": f"arrears paid: every employee's wages for {missed} paid in full, "
            f"{finding.paid_late:,.0f} tenge after the deadlines",
            "lapsed": f"wages paid on time again after the arrears of {missed}; "
            f"{owed:,.0f} tenge still owed to {unpaid} employees",
            "idle": f"no deadline of this employer decided for {FINDING_IDLE_DAYS} days "
            f"(gone from the stream); {owed:,.0f} tenge of {missed} still owed",
        }[how]
        return resolve_alert(
            kind=self.kind,
            entity=employer,
            finding=finding.first_period,
            ts=datetime.fromtimestamp(ts, self._tz),
            severity=finding.severity,
            reasons=[why],
            evidence={
                "resolution": how,
                "arrears_since_period": finding.first_period,
                "periods_missed": list(finding.periods),
                "paid_late_tenge": round(finding.paid_late, 2),
                "still_owed_tenge": round(owed, 2),
                "still_unpaid_employees": unpaid,
            },
            event_ids=event_ids,
        )

    def on_timer(self, key: tuple[str, str], ctx: Context) -> list[Alert]:  # type: ignore[override]
        book = self._books.pop(key, None)
        if book is None:
            return []
        if not book.accrued:
            return []  # only payments for a period never accrued: no deadline was at stake
        employer, period = key
        unpaid = []
        owed = 0.0
        shortfalls: dict[str, float] = {}
        for employee, (amount, accrual_id) in book.accrued.items():
            shortfall = amount - book.paid.get(employee, 0.0)
            if shortfall > self.tolerance:
                unpaid.append(accrual_id)
                owed += shortfall
                shortfalls[employee] = shortfall
        if not unpaid:
            lapsed = self._open.pop(employer, None)  # nothing owed at this deadline
            if lapsed is None or lapsed.severity == "info":
                return []
            return [self._resolved(employer, lapsed, "lapsed", decided_at(ctx), [])]
        finding = self._open.get(employer)
        share = len(unpaid) / len(book.accrued)
        if finding is None:
            severity = "critical" if share >= CRITICAL_SHARE else "warning"
            finding = self._open[employer] = _Finding(period, ctx.due, "info", last_due=ctx.due)
            if len(self._open) > self.max_entities:
                self._shed(self._open, _LAST_DUE)
        else:
            severity = "critical"  # a further period missed
        finding.last_due = ctx.due
        finding.periods.append(period)
        for employee, shortfall in shortfalls.items():  # what was paid late already counts
            paid = min(shortfall, book.late.get(employee, 0.0))
            finding.paid_late += paid
            if shortfall - paid > self.tolerance:
                finding.owed[(period, employee)] = shortfall - paid
        alerts = []
        if escalates(severity, finding.severity):
            previous = previous_of(finding.severity)
            finding.severity = severity
            alerts.append(self._alert(employer, period, finding, book, unpaid, owed, ctx, previous))
        if not finding.owed:  # paid in full between the deadline and the decision
            del self._open[employer]
            alerts.append(self._resolved(employer, finding, "paid", decided_at(ctx), []))
        return alerts

    def _alert(
        self,
        employer: str,
        period: str,
        finding: _Finding,
        book: _Period,
        unpaid: list[str],
        owed: float,
        ctx: Context,
        previous: str | None,
    ) -> Alert:
        due_day = datetime.fromtimestamp(ctx.due, self._tz).date() - timedelta(days=1)
        since = datetime.fromtimestamp(finding.first_due, self._tz).date() - timedelta(days=1)
        reasons = [
            f"{len(unpaid)} of {len(book.accrued)} employees not paid their {period} wages by "
            f"{due_day.isoformat()} ({self.timezone}): {owed:,.0f} tenge owed"
        ]
        if len(finding.periods) > 1:
            reasons.append(
                f"arrears since the {finding.first_period} wages (due {since.isoformat()}), "
                f"{len(finding.periods)} periods missed: {', '.join(finding.periods)}"
            )
        return make_alert(
            kind=self.kind,
            entity=employer,
            finding=finding.first_period,
            ts=datetime.fromtimestamp(decided_at(ctx), self._tz),
            severity=finding.severity,
            score=min(1.0, 0.5 + 0.5 * len(unpaid) / len(book.accrued)),
            reasons=reasons,
            evidence={
                "period": period,
                "due_date": due_day.isoformat(),
                "unpaid_employees": len(unpaid),
                "accrued_employees": len(book.accrued),
                "owed_tenge": round(owed, 2),
                "arrears_since_period": finding.first_period,
                "periods_missed": list(finding.periods),
                "tolerance_tenge": self.tolerance,
            },
            event_ids=unpaid[:MAX_IDS],
            previous=previous,
        )
