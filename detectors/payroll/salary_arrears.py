"""``salary_arrears``: wages accrued for a period and not paid by the due date.

Wages accrued for a period are due by ``due_day`` of the following month
(local date in ``timezone``, through the tz database): the deadline is the
local midnight that ends that day. What an employee was accrued for a period
and not paid *before* the deadline is in arrears. Payments for a period add
up (instalments); redelivered events count once (the engine drops them).

Tolerance: an employee is unpaid only when the shortfall exceeds
``tolerance`` tenge (default 1). Employers that pay in whole tenge round the
tiyn away, by up to 0.99 tenge; anything more is money missing.

The decision rests on something not happening, so it waits: a timer at the
deadline fires once the watermark has passed it, i.e. once every event up to
the allowed lateness after the deadline has been seen, so a payment made on
the due day and delivered hours late still counts.

One alert per employer and finding, not per employee: how many employees,
how much is owed, since which deadline. The finding is the first missed
period; it is raised again, as critical, when it grows (another period
missed, or half the staff unpaid), and lapses once a deadline passes with
nothing owed.

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
>>> ctx.due, ctx.ts = at, at + 86400; [alert] = det.on_timer(key, ctx)
>>> alert.reasons[0]
'1 of 2 employees not paid their 2022-10 wages by 2022-11-10 (Asia/Almaty): 100,000 tenge owed'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from detectors.base import Context, Detector, escalates, make_alert
from detectors.events import Alert, PayrollEvent, day_after_period

DEFAULT_DUE_DAY = 10
#: Whole-tenge rounding loses under 1 tenge; a larger shortfall is money missing.
DEFAULT_TOLERANCE = 1.0
#: Half the staff unpaid, or a second period missed, makes the finding critical.
CRITICAL_SHARE = 0.5
#: At most this many unpaid accrual ids are kept per period (alerts cite <= 100).
MAX_IDS = 100


@dataclass
class _Period:
    """What one employer accrued and paid for one period, per employee."""

    accrued: dict[str, tuple[float, str]] = field(default_factory=dict)  # employee -> (amount, id)
    paid: dict[str, float] = field(default_factory=dict)


@dataclass
class _Finding:
    """An employer's open arrears: since which period, and what it has grown to."""

    first_period: str
    first_due: float
    severity: str
    periods: list[str] = field(default_factory=list)


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
        kind = event.type
        if kind != "accrual" and kind != "payment":
            return []
        period: str = event.period  # type: ignore[assignment]  # required for money types
        deadline = self.due(period)
        if deadline <= ctx.watermark:
            return []  # already decided: a late accrual or payment changes nothing now
        key = (event.employer, period)
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = _Period()
            ctx.schedule(deadline, key)
        employee = event.employee
        if kind == "accrual":
            amount, _ = book.accrued.get(employee, (0.0, ""))
            book.accrued[employee] = (amount + event.amount, event.event_id)  # type: ignore[operator]
        elif ctx.ts < deadline:  # a payment on or after the deadline did not prevent arrears
            book.paid[employee] = book.paid.get(employee, 0.0) + event.amount  # type: ignore[operator]
        return []

    def on_timer(self, key: tuple[str, str], ctx: Context) -> list[Alert]:  # type: ignore[override]
        book = self._books.pop(key, None)
        if book is None:
            return []
        if not book.accrued:
            return []  # only payments for a period never accrued: no deadline was at stake
        employer, period = key
        unpaid = []
        owed = 0.0
        for employee, (amount, accrual_id) in book.accrued.items():
            shortfall = amount - book.paid.get(employee, 0.0)
            if shortfall > self.tolerance:
                unpaid.append(accrual_id)
                owed += shortfall
        if not unpaid:
            self._open.pop(employer, None)  # nothing owed at this deadline: the finding lapses
            return []
        finding = self._open.get(employer)
        share = len(unpaid) / len(book.accrued)
        if finding is None:
            severity = "critical" if share >= CRITICAL_SHARE else "warning"
            finding = self._open[employer] = _Finding(period, ctx.due, "info")
        else:
            severity = "critical"  # a further period missed
        finding.periods.append(period)
        if not escalates(severity, finding.severity):
            return []
        finding.severity = severity
        return [self._alert(employer, period, finding, book, unpaid, owed, ctx)]

    def _alert(
        self,
        employer: str,
        period: str,
        finding: _Finding,
        book: _Period,
        unpaid: list[str],
        owed: float,
        ctx: Context,
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
            ts=datetime.fromtimestamp(ctx.ts, self._tz),
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
        )
