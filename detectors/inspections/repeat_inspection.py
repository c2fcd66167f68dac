"""``repeat_inspection``: the same business inspected again and again in a short window.

Whoever inspects it: the visits of every authority and inspector count
together. Visits are weighed by their ground, because the law treats them
differently:

- a routine, complaint or other everyday visit weighs 1;
- a ``follow_up`` (checking that an earlier order was carried out) weighs
  ``follow_up_weight``: a lawful, expected step, but four of them in a
  window still add up to another visit;
- a visit on an exempt ground (threat to life, a prosecutor's order, ...)
  weighs ``exempt_weight``: lawful whenever the ground is real.

The alert is raised once the visits of the last ``window_days`` weigh
``alert_at`` or more, and raised again, as critical, at ``critical_at``.

Defaults, and why: under Kazakhstan's Entrepreneurial Code a business is put
on the plan of routine (risk-based) inspections at most about once a year, and
unscheduled visits need a ground each time. Three everyday visits within 60
days is therefore far beyond any lawful plan, while an inspection followed by
a follow-up or two (1.5 at most) or repeated visits on exempt grounds
(0.25 each) stay below it. Five weighted visits is harassment by any reading.

Per business the detector keeps only the visits of the last window (a
deque), and forgets a business once its window is empty (swept once a day of
event time), so memory follows the number of recently inspected businesses.

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import escalates, Context
>>> det = RepeatInspection()
>>> def visit(n, day, basis="routine"):
...     ev = Inspection(event_id=f"i-{n}", ts=datetime(2023, 3, 1, 9, tzinfo=timezone.utc)
...         + timedelta(days=day), business="B-1", business_size="small", authority="A",
...         inspector="I", kind="unscheduled", basis=basis)
...     ctx = Context(None); ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
>>> visit(1, 0), visit(2, 14, "follow_up"), visit(3, 30)
([], [], [])
>>> [alert] = visit(4, 41)
>>> alert.severity, alert.evidence["weighted_visits"]
('warning', 3.25)
"""

from __future__ import annotations

import bisect
from collections import deque
from datetime import UTC, datetime

from detectors.base import Context, Detector, escalates, make_alert
from detectors.events import Alert, Inspection
from detectors.inspections.moratorium_violation import DEFAULT_EXEMPT_BASES

DAY = 86400.0
#: See the module docstring for why these values.
DEFAULT_WINDOW_DAYS = 60
DEFAULT_ALERT_AT = 3.0
DEFAULT_CRITICAL_AT = 5.0
DEFAULT_FOLLOW_UP_WEIGHT = 0.25
DEFAULT_EXEMPT_WEIGHT = 0.25
FOLLOW_UP = "follow_up"

# (event time, weight, event id, authority, basis)
Visit = tuple[float, float, str, str, str]


class RepeatInspection(Detector):
    """Flags a business whose weighted visits in a window reach a threshold.

    Parameters:
        window_days: how far back visits count.
        alert_at: weighted visits that raise a warning.
        critical_at: weighted visits that raise it again as critical.
        follow_up_weight: weight of a ``follow_up`` visit.
        exempt_weight: weight of a visit on an exempt ground.
        exempt_bases: the exempt grounds (the moratorium's, by default).
    """

    kind = "repeat_inspection"
    stream = "inspections"

    def __init__(
        self,
        window_days: float = DEFAULT_WINDOW_DAYS,
        alert_at: float = DEFAULT_ALERT_AT,
        critical_at: float = DEFAULT_CRITICAL_AT,
        follow_up_weight: float = DEFAULT_FOLLOW_UP_WEIGHT,
        exempt_weight: float = DEFAULT_EXEMPT_WEIGHT,
        exempt_bases: frozenset[str] = DEFAULT_EXEMPT_BASES,
    ) -> None:
        self.window_days = window_days
        self.alert_at = alert_at
        self.critical_at = critical_at
        self.follow_up_weight = follow_up_weight
        self.exempt_weight = exempt_weight
        self.exempt_bases = exempt_bases
        self._visits: dict[str, deque[Visit]] = {}
        # business -> (finding key, highest severity raised) while its window is open
        self._raised: dict[str, tuple[str, str]] = {}
        self._swept_at = float("-inf")

    @property
    def n_entities(self) -> int:
        return len(self._visits)

    def weight(self, basis: str) -> float:
        if basis == FOLLOW_UP:
            return self.follow_up_weight
        if basis in self.exempt_bases:
            return self.exempt_weight
        return 1.0

    def update(self, event: Inspection, ctx: Context) -> list[Alert]:
        ts = ctx.ts
        window = self.window_days * DAY
        if ts - self._swept_at >= DAY:
            self._sweep(ts - window)
        business = event.business
        visits = self._visits.get(business)
        if visits is None:
            visits = self._visits[business] = deque()
        visit = (ts, self.weight(event.basis), event.event_id, event.authority, event.basis)
        if visits and ts < visits[-1][0]:
            bisect.insort(visits, visit)  # a late event: keep the visits in time order
        else:
            visits.append(visit)
        newest = visits[-1][0]
        while visits and visits[0][0] < newest - window:
            visits.popleft()
        if not visits:  # an event older than the window of visits already seen
            del self._visits[business]
            return []
        total = sum(v[1] for v in visits)
        if total < self.alert_at:
            # Below the threshold the finding has lapsed: a later burst is a new episode.
            self._raised.pop(business, None)
            return []
        severity = "critical" if total >= self.critical_at else "warning"
        finding, raised = self._raised.get(business, (visits[0][2], "info"))
        if not escalates(severity, raised):
            return []
        self._raised[business] = (finding, severity)
        return [self._alert(event, visits, total, severity, finding)]

    def _sweep(self, horizon: float) -> None:
        """Forget businesses with no visit since ``horizon`` (bounded state)."""
        for business in [b for b, v in self._visits.items() if v[-1][0] < horizon]:
            del self._visits[business]
            self._raised.pop(business, None)
        self._swept_at = horizon + self.window_days * DAY

    def _alert(
        self, event: Inspection, visits: deque[Visit], total: float, severity: str, finding: str
    ) -> Alert:
        ordered = sorted(visits)
        days = (ordered[-1][0] - ordered[0][0]) / DAY
        everyday = sum(1 for v in ordered if v[1] == 1.0)
        authorities = sorted({v[3] for v in ordered})
        listing = ", ".join(
            f"{_date(ts)} {authority} {basis}" for ts, _, _, authority, basis in ordered
        )
        reasons = [
            f"{len(ordered)} inspections in {days:.0f} days ({everyday} on everyday grounds), "
            f"weighing {total:g} against a threshold of {self.alert_at:g} in "
            f"{self.window_days:g} days: {listing}",
            f"by {len(authorities)} authorit{'y' if len(authorities) == 1 else 'ies'}; "
            f"follow-ups weigh {self.follow_up_weight:g}, exempt grounds "
            f"{self.exempt_weight:g}",
        ]
        return make_alert(
            kind=self.kind,
            entity=event.business,
            finding=finding,
            ts=event.ts,
            severity=severity,
            score=min(1.0, total / self.critical_at),
            reasons=reasons,
            evidence={
                "weighted_visits": total,
                "visits": len(ordered),
                "everyday_visits": everyday,
                "window_days": self.window_days,
                "span_days": round(days, 1),
                "authorities": authorities,
                "business_size": event.business_size,
                "visit_dates": [_date(v[0]) for v in ordered],
                "bases": [v[4] for v in ordered],
            },
            event_ids=[v[2] for v in ordered],
        )


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()
