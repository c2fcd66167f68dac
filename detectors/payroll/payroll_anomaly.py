"""``payroll_anomaly``: an employer's payroll drifting from its own history.

What the pattern is. Before wages go unpaid they usually go late, and shrink:
an employer short of money pays later each month, still inside the deadline,
and trims what it accrues, until a due date passes with wages owed. The
authorities set out to catch delays in salaries in time (domain notes), and a
detector that waits for the deadline (``salary_arrears``) speaks only once the
debt exists. Its defining mechanics:

- **a drift against the employer's own habit**, not against a rule: pay days
  differ between employers (any day up to the deadline is lawful: the Labour
  Code of the Republic of Kazakhstan has wages paid within the first ten days
  of the following month), so each employer is its own yardstick;
- **later and later**, not once: the pay day moves later than usual *and*
  later than last period's, period after period (ILO Convention No. 95,
  Protection of Wages, 1949, Article 12: wages paid at regular intervals);
- **the same people paid less**: the wage of an employee is set by the
  employment contract, so a fall in the same employees' accruals is a cut,
  while a per-head average would move with every hire and leaver.

Lawful look-alikes: a day's jitter in the pay day (weekends, bank days);
wages in instalments (the first payment, an advance, comes early); bonuses and
overtime moving wages a few percent; a payroll that grows or shrinks by hires
and leavers; one period's payment made on the due day itself.

Learned from each employer's own history with River online statistics, it
speaks when a period stands far from it, before a due date is missed.

For each employer and pay period it takes two figures:

- **pay day**: how many days after the period's end (midnight UTC; only
  differences between periods are compared, so the zone does not matter) its
  first wage payment came (an employer pays everyone at about the same time);
- **wage change**: the median, over employees accrued in both, of this
  period's accrual against the same employee's previous one (a per-head
  average would move with every hire and leaver; the same people's wages
  move only when wages do).

The usual pay day is kept in a River exponentially weighted mean
(``stats.EWMean``), updated once per period. A period alerts when its pay day
is at least ``min_delay_days`` later than usual *and* later than the previous
period's (a drift, not a one-off), or when the same employees' wages fall by
``min_cut`` or more. Warm-up: ``warm_up_periods`` periods of history before it speaks.
One alert per employer and finding, raised again as critical when both
figures drift at once; a period judged normal ends the finding, and so does
forgetting the employer (no pay for ``IDLE_DAYS``), each with a ``resolved``
alert.

State is bounded: an employer with no accrual or payment for
``IDLE_DAYS`` is forgotten (swept once a day of event time), and past
``max_entities`` employers the least recently active go.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from operator import attrgetter

from river import stats

from detectors.base import Context, Detector, escalates, make_alert, previous_of, resolve_alert
from detectors.events import Alert, PayrollEvent, day_after_period

DAY = 86400.0
#: Pay days move by a day either way by habit; three days later than usual is a slip.
DEFAULT_MIN_DELAY_DAYS = 3.0
#: The same people's wages move a few percent with bonuses; 10 % less is a cut.
DEFAULT_MIN_CUT = 0.10
#: Two periods of history before judging a third.
DEFAULT_WARM_UP_PERIODS = 2
#: Memory of the history: about half a year of monthly periods.
FADING = 0.3
#: Periods kept open per employer while their payments come in.
OPEN_PERIODS = 3
#: Wage change is judged on at least this many employees accrued in both periods.
MIN_CONTINUING = 3
#: An employer with no accrual or payment for this long is forgotten. Its history is
#: what it is judged by: the usual pay day remembers about half a year of periods
#: (FADING), and an employer paying monthly or quarterly is seen every few months, so
#: a year and a month of silence (a seasonal employer's off-season fits in it) leaves
#: nothing worth comparing with: it starts afresh, with a new warm-up, if it returns.
IDLE_DAYS = 400
_LAST_TS = attrgetter("last_ts")


@dataclass
class _Employer:
    """An employer's payroll habits and the periods being paid now."""

    pay_day: stats.EWMean = field(default_factory=lambda: stats.EWMean(FADING))
    periods_seen: int = 0
    last_delay: float | None = None
    last_wage: dict[str, float] = field(default_factory=dict)  # employee -> last accrual
    # period -> [wage ratios of continuing employees, first payment delay (days) or None]
    open: dict[str, list] = field(default_factory=dict)
    finding: str = ""
    severity: str = "info"
    event_ids: list[str] = field(default_factory=list)
    last_ts: float = 0.0  # event time of its latest accrual or payment


class PayrollAnomaly(Detector):
    """Flags employers whose pay day slips or wages shrink against their own history.

    Parameters:
        min_delay_days, min_cut, warm_up_periods: see the module docstring.
    """

    kind = "payroll_anomaly"
    stream = "payroll"

    def __init__(
        self,
        min_delay_days: float = DEFAULT_MIN_DELAY_DAYS,
        min_cut: float = DEFAULT_MIN_CUT,
        warm_up_periods: int = DEFAULT_WARM_UP_PERIODS,
    ) -> None:
        self.min_delay_days = min_delay_days
        self.min_cut = min_cut
        self.warm_up_periods = warm_up_periods
        self._employers: dict[str, _Employer] = {}
        self._period_end: dict[str, float] = {}
        self._swept_day = -1  # the day of event time idle employers were last swept

    @property
    def n_entities(self) -> int:
        return len(self._employers)

    def _end(self, period: str) -> float:
        end = self._period_end.get(period)
        if end is None:
            moment = datetime.combine(day_after_period(period, 1), time(0), UTC)
            end = self._period_end[period] = moment.timestamp()
        return end

    def update(self, event: PayrollEvent, ctx: Context) -> list[Alert]:
        kind = event.type
        if kind != "accrual" and kind != "payment":
            return []
        ts = ctx.ts
        ended: list[Alert] = []
        if ts >= (self._swept_day + 1) * DAY:  # once a day of event time
            self._swept_day = int(ts // DAY)
            gone = self._forget_idle(self._employers, ts - IDLE_DAYS * DAY, _LAST_TS)
            ended = [self._quiet(name, idle) for name, idle in gone if idle.severity != "info"]
        if ended:
            return ended + self._update(event, ctx)
        return self._update(event, ctx)

    def _quiet(self, name: str, employer: _Employer) -> Alert:
        """The alert that ends a forgotten employer's finding: no pay for ``IDLE_DAYS``."""
        last = datetime.fromtimestamp(employer.last_ts, UTC).date().isoformat()
        return resolve_alert(
            kind=self.kind,
            entity=name,
            finding=employer.finding,
            ts=datetime.fromtimestamp(employer.last_ts + IDLE_DAYS * DAY, UTC),
            severity=employer.severity,
            reasons=[f"no wages accrued or paid since {last}: {IDLE_DAYS} days"],
            evidence={"resolution": "quiet", "quiet_days": IDLE_DAYS, "last_active": last},
        )

    def _update(self, event: PayrollEvent, ctx: Context) -> list[Alert]:
        ts, kind = ctx.ts, event.type
        employer = self._employers.get(event.employer)
        if employer is None:
            employer = self._employers[event.employer] = _Employer(last_ts=ts)
            if len(self._employers) > self.max_entities:
                self._shed(self._employers, _LAST_TS)
        elif ts > employer.last_ts:
            employer.last_ts = ts
        period: str = event.period  # type: ignore[assignment]
        book = employer.open.get(period)
        if book is None:
            if len(employer.open) >= OPEN_PERIODS:  # bounded: a period never paid is dropped
                employer.open.pop(min(employer.open))
            book = employer.open[period] = [[], None]
        if kind == "accrual":
            amount: float = event.amount  # type: ignore[assignment]
            last = employer.last_wage.get(event.employee)
            if last:
                book[0].append(amount / last)
            employer.last_wage[event.employee] = amount
            return []
        if book[1] is not None:
            return []  # only the period's first payment tells its pay day
        # Earlier periods that have begun to be paid are finished: fold them into history.
        for earlier in [p for p, b in employer.open.items() if p < period and b[1] is not None]:
            self._close(employer, earlier)
        delay = (ctx.ts - self._end(period)) / DAY
        book[1] = delay
        return self._judge(event, employer, book, delay)

    def _judge(
        self, event: PayrollEvent, employer: _Employer, book: list, delay: float
    ) -> list[Alert]:
        if employer.periods_seen < self.warm_up_periods:
            return []
        usual_day = employer.pay_day.get()
        slip = delay - usual_day
        ratios = book[0]
        cut = 1.0 - statistics.median(ratios) if len(ratios) >= MIN_CONTINUING else 0.0
        later = employer.last_delay is not None and delay > employer.last_delay + 0.5
        drifting = []
        if slip >= self.min_delay_days and later:
            drifting.append("pay_day")
        if round(cut, 9) >= self.min_cut:  # rounded: 1 - 0.9 is 0.0999..98 in floating point
            drifting.append("wages")
        if not drifting:
            if employer.severity == "info":
                return []
            # A normal period ends the finding: a later drift is a new one.
            ended = resolve_alert(
                kind=self.kind,
                entity=event.employer,
                finding=employer.finding,
                ts=event.ts,
                severity=employer.severity,
                reasons=[
                    f"wages for {event.period} paid {delay:.1f} days after the period ended, "
                    f"as usual ({usual_day:.1f}), and not cut: the drift is over"
                ],
                evidence={"resolution": "normal_period", "period": event.period},
                event_ids=[event.event_id],
            )
            employer.severity = "info"
            return [ended]
        severity = "critical" if len(drifting) == 2 else "warning"
        if not escalates(severity, employer.severity):
            return []
        if employer.severity == "info":
            employer.finding = event.event_id
        previous = previous_of(employer.severity)
        employer.severity = severity
        reasons = []
        if "pay_day" in drifting:
            reasons.append(
                f"wages for {event.period} first paid {delay:.1f} days after the period ended, "
                f"{slip:.1f} days later than its usual {usual_day:.1f} (and later than last "
                f"period's {employer.last_delay:.1f})"
            )
        if "wages" in drifting:
            reasons.append(
                f"wages accrued for {event.period} are {cut:.0%} below the same "
                f"{len(ratios)} employees' previous accruals (median)"
            )
        return [
            make_alert(
                kind=self.kind,
                entity=event.employer,
                finding=employer.finding,
                ts=event.ts,
                severity=severity,
                score=min(1.0, max(slip / (3 * self.min_delay_days), cut / (3 * self.min_cut))),
                reasons=reasons,
                evidence={
                    "period": event.period,
                    "pay_day_delay_days": round(delay, 2),
                    "usual_delay_days": round(usual_day, 2),
                    "wage_change": round(-cut, 3),
                    "continuing_employees": len(ratios),
                    "drifting": drifting,
                },
                event_ids=[event.event_id],
                previous=previous,
            )
        ]

    def _close(self, employer: _Employer, period: str) -> None:
        """Fold a finished period into the employer's history."""
        _, delay = employer.open.pop(period)
        employer.pay_day.update(delay)
        employer.last_delay = delay
        employer.periods_seen += 1
