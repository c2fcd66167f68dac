"""``mass_layoff``: a large share of an employer's staff cut for redundancy within weeks.

What the pattern is. A mass (collective) layoff is the employer ending many
jobs at once for reasons of its own (economic, technological, structural),
not for anything the employees did or chose. Its defining mechanics:

- **the employer's initiative, for redundancy**: the Labour Code of the
  Republic of Kazakhstan (2015, Article 52) lets an employer end a contract on
  a reduction in the number or staff of employees, with at least a month's
  notice; ILO Convention No. 158 (Termination of Employment, 1982, Articles 13
  and 14) asks for consultation and notice to the authorities when terminations
  for economic, technological, structural or similar reasons are contemplated;
- **many people within a short window, as a share of the workforce**: the US
  WARN Act (29 U.S.C. 2101(a)(3)) counts a mass layoff at 33 % of a site's
  staff, and at least 50 people, within 30 days (or 500 people at any share);
  the EU Collective Redundancies Directive (98/59/EC) counts 10 people at 20-100
  workers, 10 % at 100-300, 30 people beyond, within 30 days; regional practice
  also uses absolute counts (50 people in 30 days: domain notes);
- **at any employer size**: most employers here are micro and small (domain
  notes), where the laws' floors of 50 or 10 people can never be met, yet a
  third of a nine-person staff cut in two weeks is the same event; the share
  is the measure, with a floor of a few people so that one or two
  redundancies are not "mass", and the harm, so the severity, grows with the
  number of people;
- **dressed up or spread out**: employers split layoffs into steps, and may
  record part of a layoff as an agreed departure (reason ``other``: no
  notice, no severance) on the same days as the redundancies.

Lawful look-alikes: seasonal or fixed-term contracts ending together
(``contract_end``: the contract said so from the start); ordinary churn (quits,
dismissals for misconduct, people leaving for other reasons at their own
pace); one or two redundancies (a post abolished: at a micro employer that is a
large share of the staff, but not a mass layoff); a large employer trimming a
few posts (a small share, under the absolute count); the final wages paid after
a termination (they do not bring the leaver back).

How it is detected. Headcount comes from the stream itself: an employee
counts from the first hire, accrual or payment that names them until their
termination (a stream may start long after people were hired; a month of pay
shows everyone paid monthly), and is forgotten after ``FORGET_AFTER_DAYS``
(45) unseen; final wages after a termination do not count them back, and a
leaver hired again is no longer counted as lost. Each termination for
``redundancy`` counts, and so does one for ``other`` reasons within
``link_days`` of a redundancy of the same employer (part of the same cut);
``contract_end``, ``voluntary`` and ``misconduct`` never do. An alert is raised
when, within ``window_days``, the counted terminations reach

- ``min_share`` of the headcount the employer had just before the first of
  them **and** at least ``min_count`` people, or
- ``absolute_count`` people, whatever the share.

The decision rests on terminations that happened, so it is taken on the
termination that crosses the bar, without waiting. An employer silent for
longer than its cuts and headcount are remembered (``window_days`` plus
``link_days`` plus ``FORGET_AFTER_DAYS``, and a day of lateness) is forgotten
(swept once a day of event time), and past ``max_entities`` employers the
least recently active go. An employer whose staff the
stream has not yet shown (no accrual or payment seen) is judged on its next
accrual or payment instead, once the headcount is known. Half the staff, or
``CRITICAL_COUNT`` people, makes the finding critical. One finding per cut: it
ends once ``window_days`` pass without a counted termination (a timer at the
latest counted cut plus the window), with a ``resolved`` alert.

Defaults, and why: ``window_days`` 30 (WARN, the EU directive and regional
practice all count within 30 days); ``min_share`` 0.30, a little under WARN's
third, since layoffs are split to stay under it; ``min_count`` 3, since two
people are "one or two redundancies" at any size and three of nine in two
weeks is a third of a micro employer; ``absolute_count`` 50 (WARN's and the
regional count); ``link_days`` 3 (the days of one notice round: an 'other'
departure on the same days as redundancies is part of them, one weeks away is
churn).

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import Context
>>> from detectors.events import PayrollEvent
>>> det, ctx = MassLayoff(), Context(lambda at, key: None)
>>> t0 = datetime(2022, 10, 1, tzinfo=timezone.utc)
>>> def feed(n, kind, day, employee, reason=None):
...     ev = PayrollEvent(event_id=f"e-{n}", ts=t0 + timedelta(days=day), type=kind,
...         employer="E-1", employee=employee, reason=reason,
...         period="2022-09" if kind == "accrual" else None,
...         amount=200_000.0 if kind == "accrual" else None)
...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
>>> for k in range(9):
...     _ = feed(k, "accrual", 0, f"W-{k}")
>>> [feed(100 + k, "termination", 3 + 4 * k, f"W-{k}", "redundancy") for k in range(2)]
[[], []]
>>> [alert] = feed(102, "termination", 12, "W-2", "redundancy")
>>> alert.reasons[0]
'3 of 9 employees (33%) terminated for redundancy within 9 days'
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter

from detectors.base import Context, Detector, escalates, make_alert, previous_of, resolve_alert
from detectors.events import Alert, PayrollEvent

DAY = 86400.0
#: See the module docstring for why these values.
DEFAULT_WINDOW_DAYS = 30
DEFAULT_MIN_SHARE = 0.30
DEFAULT_MIN_COUNT = 3
DEFAULT_ABSOLUTE_COUNT = 50
DEFAULT_LINK_DAYS = 3.0
#: Half the staff, or this many people, makes a layoff critical.
CRITICAL_SHARE = 0.5
CRITICAL_COUNT = 100
#: An employee not seen for this long (no accrual, payment or hire) is no longer counted:
#: everyone on the books is accrued and paid monthly, so someone missing from a month and
#: a half of payroll has left, whether or not the stream said so (checked every 30 days).
FORGET_AFTER_DAYS = 45
#: Reasons that can be part of a layoff; 'other' only beside a redundancy.
REDUNDANCY, OTHER = "redundancy", "other"
#: Event time a delivery may trail its partition's newest (the contract's lateness).
LATENESS_DAYS = 1.0
_LAST_TS = attrgetter("last_ts")


@dataclass
class _Staff:
    """An employer's known employees and its recent cuts."""

    seen: dict[str, float] = field(default_factory=dict)  # employee -> last seen
    # employee -> when terminated: their final wages are paid after they left, and
    # must not count them back into the headcount
    left: dict[str, float] = field(default_factory=dict)
    # From when the stream has shown the staff: a day after the first accrual or
    # payment (a pay round takes a day). Before it, the headcount is not known.
    known_at: float = math.inf
    # Terminations for redundancy or 'other' reasons in the window, sorted by time:
    # (ts, reason, employee, event id, headcount just before, or -1 if not yet known)
    cuts: list[tuple[float, str, str, str, int]] = field(default_factory=list)
    pending: bool = False  # cuts seen before the headcount was known, not yet judged
    finding: str = ""  # the open finding (first counted termination's event id), or ""
    severity: str = "info"
    last_cut: float = -math.inf  # the open finding's latest counted termination
    swept: float = 0.0
    last_ts: float = -math.inf  # event time of its latest event


class MassLayoff(Detector):
    """Flags employers cutting a large share of their staff for redundancy within weeks.

    Parameters:
        window_days, min_share, min_count, absolute_count, link_days: see the
        module docstring.
    """

    kind = "mass_layoff"
    stream = "payroll"

    def __init__(
        self,
        window_days: float = DEFAULT_WINDOW_DAYS,
        min_share: float = DEFAULT_MIN_SHARE,
        min_count: int = DEFAULT_MIN_COUNT,
        absolute_count: int = DEFAULT_ABSOLUTE_COUNT,
        link_days: float = DEFAULT_LINK_DAYS,
    ) -> None:
        self.window_days = window_days
        self.min_share = min_share
        self.min_count = min_count
        self.absolute_count = absolute_count
        self.link_days = link_days
        self._employers: dict[str, _Staff] = {}
        self._swept_day = -1  # the day of event time idle employers were last swept

    @property
    def n_entities(self) -> int:
        return len(self._employers)

    def update(self, event: PayrollEvent, ctx: Context) -> list[Alert]:
        ts = ctx.ts
        if ts >= (self._swept_day + 1) * DAY:  # once a day of event time
            self._swept_day = int(ts // DAY)
            self._forget_idle(self._employers, ts - self._idle_days() * DAY, _LAST_TS)
        staff = self._employers.get(event.employer)
        if staff is None:
            staff = self._employers[event.employer] = _Staff(swept=ts, last_ts=ts)
            if len(self._employers) > self.max_entities:
                self._shed(self._employers, _LAST_TS)
        elif ts > staff.last_ts:
            staff.last_ts = ts
        if ts - staff.swept > 30 * DAY:
            self._forget(staff, ts)
        employee = event.employee
        kind = event.type
        if kind != "termination":
            if kind == "hire":
                if employee in staff.left:  # hired again: no job lost
                    del staff.left[employee]
                    staff.cuts = [c for c in staff.cuts if c[2] != employee]
            elif staff.known_at == math.inf:
                staff.known_at = ts + DAY
            if kind == "hire" or employee not in staff.left:
                staff.seen[employee] = max(ts, staff.seen.get(employee, ts))
            if staff.pending and ts >= staff.known_at:  # the staff is known now: judge
                staff.pending = False
                if staff.cuts:
                    return self._judge(event, staff, ts, ctx)
            return []
        staff.seen.pop(employee, None)
        staff.left[employee] = ts
        reason = event.reason
        if reason != REDUNDANCY and reason != OTHER:
            return []
        # Headcount just before: everyone on the books now, this employee, and those cut
        # after it in event time whose terminations were delivered first (deliveries
        # come up to a day late: a cut's first termination arriving last found the
        # others gone, and judged 12 of 38 what was 12 of 41).
        before = -1
        if ts >= staff.known_at:
            before = len(staff.seen) + 1 + sum(1 for c in staff.cuts if c[0] > ts)
        bisect.insort(staff.cuts, (ts, reason, employee, event.event_id, before))
        if before < 0:
            staff.pending = True
        return self._judge(event, staff, ts, ctx)

    def _idle_days(self) -> float:
        """Silence after which nothing of an employer counts any more: its cuts are out of
        every later termination's window and link (``window_days + link_days``), and the
        staff it was shown are forgotten ``FORGET_AFTER_DAYS`` after they were last seen,
        with a day for a late delivery. Forgetting it then changes nothing but that its
        headcount has to be shown afresh (an accrual or payment) before a cut is judged,
        as the stream's first month is: after that long the old staff is no yardstick."""
        return self.window_days + self.link_days + FORGET_AFTER_DAYS + LATENESS_DAYS

    def _judge(self, event: PayrollEvent, staff: _Staff, ts: float, ctx: Context) -> list[Alert]:
        """Count the cut in the window up to its latest termination; alert at a bar."""
        cuts = staff.cuts
        now = cuts[-1][0]
        horizon = now - self.window_days * DAY
        # Keep what a later termination may still be counted with, or linked to.
        keep = bisect.bisect_left(cuts, (horizon - self.link_days * DAY,))
        if keep:
            del cuts[:keep]
        redundancies = [c[0] for c in cuts if c[1] == REDUNDANCY]
        counted = [
            c
            for c in cuts
            if c[0] >= horizon and (c[1] == REDUNDANCY or self._linked(c[0], redundancies))
        ]
        if not counted:
            return []
        if staff.finding and counted[-1][0] - staff.last_cut > self.window_days * DAY:
            staff.finding, staff.severity = "", "info"  # a new cut, long after the last
        count = len(counted)
        known = ts >= staff.known_at
        base = counted[0][4]
        if base < 0:  # cut before the staff was known: everyone now, and those cut
            base = len(staff.seen) + count
        share = count / max(base, count)
        if count < self.absolute_count and not (
            known and share >= self.min_share and count >= self.min_count
        ):
            return []
        severity = "critical" if share >= CRITICAL_SHARE or count >= CRITICAL_COUNT else "warning"
        if not staff.finding:
            staff.finding = counted[0][3]
        if counted[-1][0] > staff.last_cut:
            staff.last_cut = counted[-1][0]
            # The finding ends once a whole window passes without another counted cut.
            ctx.schedule(staff.last_cut + self.window_days * DAY, event.employer)
        if not escalates(severity, staff.severity):
            return []
        previous = previous_of(staff.severity)
        staff.severity = severity
        return [self._alert(event, staff, counted, max(base, count), share, severity, previous)]

    def on_timer(self, key: str, ctx: Context) -> list[Alert]:  # type: ignore[override]
        """A window after a finding's latest cut: if no cut came since, the finding ends."""
        staff = self._employers.get(key)
        if staff is None or not staff.finding or staff.severity == "info":
            return []  # forgotten, or already ended
        if staff.last_cut + self.window_days * DAY > ctx.due:
            return []  # a later cut moved the end (its own timer is pending)
        last = datetime.fromtimestamp(staff.last_cut, UTC).date().isoformat()
        alert = resolve_alert(
            kind=self.kind,
            entity=key,
            finding=staff.finding,
            ts=datetime.fromtimestamp(ctx.due, UTC),
            severity=staff.severity,
            reasons=[
                f"no further termination counted for {self.window_days:g} days after the "
                f"last one ({last}): the layoff is over"
            ],
            evidence={
                "resolution": "window_passed",
                "window_days": self.window_days,
                "last_termination": last,
            },
        )
        staff.finding, staff.severity = "", "info"
        return [alert]

    def _linked(self, ts: float, redundancy_times: list[float]) -> bool:
        """Is a redundancy within ``link_days`` of ``ts``?"""
        i = bisect.bisect_left(redundancy_times, ts - self.link_days * DAY)
        return i < len(redundancy_times) and redundancy_times[i] <= ts + self.link_days * DAY

    def _forget(self, staff: _Staff, ts: float) -> None:
        horizon = ts - FORGET_AFTER_DAYS * DAY
        for employee in [e for e, last in staff.seen.items() if last < horizon]:
            del staff.seen[employee]
        for employee in [e for e, when in staff.left.items() if when < horizon]:
            del staff.left[employee]
        staff.swept = ts

    def _alert(
        self,
        event: PayrollEvent,
        staff: _Staff,
        counted: list[tuple[float, str, str, str, int]],
        base: int,
        share: float,
        severity: str,
        previous: str | None,
    ) -> Alert:
        first, last = counted[0][0], counted[-1][0]
        days = (last - first) / DAY
        count = len(counted)
        others = sum(1 for c in counted if c[1] == OTHER)
        how = (
            "for redundancy"
            if not others
            else f"({count - others} for redundancy, {others} for 'other' reasons on the same days)"
        )
        return make_alert(
            kind=self.kind,
            entity=event.employer,
            finding=staff.finding,
            ts=event.ts,
            severity=severity,
            score=min(1.0, max(share / CRITICAL_SHARE, count / CRITICAL_COUNT)),
            reasons=[
                f"{count} of {base} employees ({share:.0%}) terminated {how} "
                f"within {days:.0f} days",
                f"thresholds: {self.min_share:.0%} of the staff and at least {self.min_count} "
                f"people, or {self.absolute_count} people, within {self.window_days:g} days",
            ],
            evidence={
                "terminated": count,
                "redundancies": count - others,
                "other_reasons": others,
                "headcount_before": base,
                "share": round(share, 3),
                "first_termination": datetime.fromtimestamp(first, UTC).isoformat(),
                "span_days": round(days, 1),
                "window_days": self.window_days,
            },
            event_ids=[c[3] for c in counted],
            previous=previous,
        )
