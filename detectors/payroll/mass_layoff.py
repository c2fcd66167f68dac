"""``mass_layoff``: a large share of an employer's staff let go for redundancy, quickly.

Headcount comes from the stream itself: an employee counts from the first
hire, accrual or payment that names them until their termination (a stream
may start long after people were hired); the final wages paid after a
termination do not bring them back. Only terminations for
``redundancy`` count towards a layoff; contract ends, voluntary quits and
dismissals for misconduct do not.

An alert is raised when, within ``window_days``, the redundancies reach

- ``min_share`` of the headcount the employer had when the first of them fell
  **and** at least ``min_count`` people, or
- ``absolute_count`` people, whatever the share.

Defaults, and why: the US WARN Act counts a mass layoff at 33 % of a site's
staff (at least 50 people) within 30 days, and regional practice also uses
an absolute count (50 people in 30 days). Most employers here are small, so
a 50-person floor would ignore nearly all of them: the share is kept
(30 %, a little under WARN's third, since layoffs are often split to stay
under it) with a floor of 5 people, so that one or two redundancies at a
micro business are not a "mass" layoff; 50 people in 30 days counts at any
size. Half the staff, or 100 people, makes it critical.

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import escalates, Context
>>> from detectors.events import PayrollEvent
>>> det, ctx = MassLayoff(), Context(None)
>>> t0 = datetime(2022, 10, 1, tzinfo=timezone.utc)
>>> def feed(n, kind, day, employee, reason=None):
...     ev = PayrollEvent(event_id=f"e-{n}", ts=t0 + timedelta(days=day), type=kind,
...         employer="E-1", employee=employee, reason=reason)
...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
>>> for k in range(12):
...     _ = feed(k, "hire", 0, f"W-{k}")
>>> [feed(100 + k, "termination", 10 + k, f"W-{k}", "redundancy") for k in range(4)]
[[], [], [], []]
>>> [alert] = feed(104, "termination", 14, "W-4", "redundancy")
>>> alert.reasons[0]
'5 of 12 employees (42%) terminated for redundancy within 4 days'
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from detectors.base import Context, Detector, escalates, make_alert
from detectors.events import Alert, PayrollEvent

DAY = 86400.0
#: See the module docstring for why these values.
DEFAULT_WINDOW_DAYS = 30
DEFAULT_MIN_SHARE = 0.30
DEFAULT_MIN_COUNT = 5
DEFAULT_ABSOLUTE_COUNT = 50
CRITICAL_SHARE = 0.5
CRITICAL_COUNT = 100
#: An employee not seen for this long (no accrual, payment or hire) is no longer counted.
FORGET_AFTER_DAYS = 100


@dataclass
class _Staff:
    """An employer's known employees and its recent redundancies."""

    seen: dict[str, float] = field(default_factory=dict)  # employee -> last seen
    # employee -> when terminated: their final wages are paid after they left, and
    # must not count them back into the headcount
    left: dict[str, float] = field(default_factory=dict)
    # (ts, employee, event id) of redundancies in the window
    redundancies: deque[tuple[float, str, str]] = field(default_factory=deque)
    base: int = 0  # headcount when the window's first redundancy fell
    finding: str = ""
    severity: str = "info"
    swept: float = 0.0


class MassLayoff(Detector):
    """Flags employers letting a large share of their staff go for redundancy.

    Parameters:
        window_days, min_share, min_count, absolute_count: see the module docstring.
    """

    kind = "mass_layoff"
    stream = "payroll"

    def __init__(
        self,
        window_days: float = DEFAULT_WINDOW_DAYS,
        min_share: float = DEFAULT_MIN_SHARE,
        min_count: int = DEFAULT_MIN_COUNT,
        absolute_count: int = DEFAULT_ABSOLUTE_COUNT,
    ) -> None:
        self.window_days = window_days
        self.min_share = min_share
        self.min_count = min_count
        self.absolute_count = absolute_count
        self._employers: dict[str, _Staff] = {}

    @property
    def n_entities(self) -> int:
        return len(self._employers)

    def update(self, event: PayrollEvent, ctx: Context) -> list[Alert]:
        ts = ctx.ts
        staff = self._employers.get(event.employer)
        if staff is None:
            staff = self._employers[event.employer] = _Staff(swept=ts)
        if ts - staff.swept > 30 * DAY:
            self._forget(staff, ts)
        employee = event.employee
        if event.type != "termination":
            if event.type == "hire" or employee not in staff.left:
                staff.seen[employee] = max(ts, staff.seen.get(employee, ts))
            return []
        staff.left[employee] = ts
        if event.reason != "redundancy":
            staff.seen.pop(employee, None)
            return []
        window = staff.redundancies
        while window and window[0][0] < ts - self.window_days * DAY:
            window.popleft()
        if not window:  # a new window: remember the headcount it starts from
            staff.base = max(len(staff.seen), 1)
            staff.finding, staff.severity = event.event_id, "info"
        staff.seen.pop(employee, None)
        window.append((ts, employee, event.event_id))
        count = len(window)
        share = count / staff.base
        if not (
            (share >= self.min_share and count >= self.min_count) or count >= self.absolute_count
        ):
            return []
        severity = "critical" if share >= CRITICAL_SHARE or count >= CRITICAL_COUNT else "warning"
        if not escalates(severity, staff.severity):
            return []
        staff.severity = severity
        return [self._alert(event, staff, count, share, severity)]

    def _forget(self, staff: _Staff, ts: float) -> None:
        horizon = ts - FORGET_AFTER_DAYS * DAY
        for employee in [e for e, last in staff.seen.items() if last < horizon]:
            del staff.seen[employee]
        for employee in [e for e, when in staff.left.items() if when < horizon]:
            del staff.left[employee]
        staff.swept = ts

    def _alert(
        self, event: PayrollEvent, staff: _Staff, count: int, share: float, severity: str
    ) -> Alert:
        first, last = staff.redundancies[0][0], staff.redundancies[-1][0]
        days = (last - first) / DAY
        return make_alert(
            kind=self.kind,
            entity=event.employer,
            finding=staff.finding,
            ts=event.ts,
            severity=severity,
            score=min(1.0, share / CRITICAL_SHARE),
            reasons=[
                f"{count} of {staff.base} employees ({share:.0%}) terminated for redundancy "
                f"within {days:.0f} days",
                f"thresholds: {self.min_share:.0%} of the staff and at least {self.min_count} "
                f"people, or {self.absolute_count} people, within {self.window_days:g} days",
            ],
            evidence={
                "redundancies": count,
                "headcount_before": staff.base,
                "share": round(share, 3),
                "first_redundancy": datetime.fromtimestamp(first, UTC).isoformat(),
                "span_days": round(days, 1),
                "window_days": self.window_days,
            },
            event_ids=[e for _, _, e in staff.redundancies],
        )
