"""``repeat_inspection``: the same business inspected again and again in a short window.

Typology
--------
What makes the pattern: **how often, and by how many authorities, one
business is visited**. Every visit is an intrusion: the owner stops work,
opens the books, and may pay to make the inspector go away; many visits by
many bodies are how arbitrary inspections oppress a business (the domain
notes: the moratorium "targets arbitrary inspections that oppress
entrepreneurs"). A lawful ground for each visit does not make a pattern of
visits lawful: it may lower the severity, never hide the pattern.

Its defining mechanics, as the law frames an inspection:

- Kazakhstan's Entrepreneurial Code (2015) plans routine (periodic)
  inspections by risk assessment, the riskiest businesses about once a year
  at most and others less often, and every unscheduled visit needs a ground
  of its own (a complaint, a threat to life or health, a prosecutor's order).
  Each such visit opens a **matter** of its own.
- Some visits continue a matter instead of opening one: a ``follow_up``
  checks that an earlier order was carried out, and an authority that comes
  back on an exempt ground (a threat to life it is handling, a prosecutor's
  order it is executing) continues its own case.
- The OECD's *Best Practice Principles for Regulatory Policy: Regulatory
  Enforcement and Inspections* (2014) and its *Regulatory Enforcement and
  Inspections Toolkit* (2018) ask for visits in proportion to risk and for
  inspecting bodies to coordinate so that a business is not visited by one
  after another: several authorities converging on one business within weeks
  is the very duplication they warn about, whatever each one's ground.

Lawful look-alikes, which stay quiet: an inspection and its follow-ups by the
same authority; one authority returning again and again on the exempt ground
of its case (a fire inspector checking that a hazard is removed); a business
visited once by each of two bodies.

How it is measured
------------------
Over the last ``window_days`` the visits to a business, whoever made them,
are weighed by what they are:

- a visit that opens a matter weighs 1, **whatever its ground**: an
  everyday visit (routine, complaint, ...), or the first visit on an exempt
  ground by an authority with no exempt-ground visit to the business earlier
  in the window;
- a visit that continues a matter weighs less: a ``follow_up``
  ``follow_up_weight``, a further exempt-ground visit of the same authority
  ``exempt_weight``. Lawful steps, but many of them still add up.

The alert is raised once the window weighs ``alert_at``, and raised again, as
critical, at ``critical_at``. Grounds lower the severity: a pattern with fewer
than ``alert_at`` everyday visits stays a warning, so three authorities in
three weeks on a prosecutor's order and two everyday grounds is a warning,
while five everyday visits is critical. The finding ends, with a ``resolved``
alert, once its window weighs less than ``alert_at`` again: on the visit that
finds it so, or when the window passes with no visit at all.

Defaults, and why: three matters within 60 days is beyond any lawful plan
(one routine visit a year, one ground per unscheduled visit); an inspection
and two follow-ups weighs 1.5, one authority's four visits on the ground of
its case 1.75. Five is harassment by any reading.

Per business the detector keeps only the visits of the last window (a
deque), and forgets a business once its window is empty (swept once a day of
event time), so memory follows the number of recently inspected businesses;
past ``max_entities`` businesses the least recently visited go. Each event
re-reads its business's window (a handful of visits).

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import Context
>>> det = RepeatInspection()
>>> def visit(n, day, basis="routine", authority="A"):
...     ev = Inspection(event_id=f"i-{n}", ts=datetime(2023, 3, 1, 9, tzinfo=timezone.utc)
...         + timedelta(days=day), business="B-1", business_size="small",
...         authority=authority, inspector="I", kind="unscheduled", basis=basis)
...     ctx = Context(None); ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
>>> visit(1, 0), visit(2, 14, "follow_up"), visit(3, 20, "prosecutor_order", "P")
([], [], [])
>>> [alert] = visit(4, 21, "complaint", "T")  # three authorities in three weeks
>>> alert.severity, alert.evidence["weighted_visits"], alert.evidence["authorities"]
('warning', 3.25, ['A', 'P', 'T'])
"""

from __future__ import annotations

import bisect
from collections import deque
from datetime import UTC, datetime

from detectors.base import Context, Detector, escalates, make_alert, previous_of, resolve_alert
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

# (event time, event id, authority, basis)
Visit = tuple[float, str, str, str]
# What a visit is: one of these (its weight follows).
EVERYDAY, EXEMPT_NEW, EXEMPT_AGAIN, CONTINUED = "everyday", "exempt", "exempt again", "follow-up"


class RepeatInspection(Detector):
    """Flags a business visited too often, by too many authorities, in a window.

    Parameters:
        window_days: how far back visits count.
        alert_at: weight of the window's visits that raises a warning.
        critical_at: weight that raises it again as critical (with at least
            ``alert_at`` everyday visits among them).
        follow_up_weight: weight of a ``follow_up`` visit.
        exempt_weight: weight of an authority's further visit on an exempt
            ground (its first one opens a matter and weighs 1).
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

    def classify(self, visits: deque[Visit]) -> list[str]:
        """What each visit of a window (in time order) is: opens a matter, or continues one."""
        exempt_seen: set[str] = set()
        out = []
        for _, _, authority, basis in visits:
            if basis == FOLLOW_UP:
                out.append(CONTINUED)
            elif basis in self.exempt_bases:
                out.append(EXEMPT_AGAIN if authority in exempt_seen else EXEMPT_NEW)
                exempt_seen.add(authority)
            else:
                out.append(EVERYDAY)
        return out

    def weight(self, what: str) -> float:
        if what == CONTINUED:
            return self.follow_up_weight
        if what == EXEMPT_AGAIN:
            return self.exempt_weight
        return 1.0

    def update(self, event: Inspection, ctx: Context) -> list[Alert]:
        ts = ctx.ts
        window = self.window_days * DAY
        ended: list[Alert] = []
        if ts - self._swept_at >= DAY:
            ended = self._sweep(ts - window)
        business = event.business
        visits = self._visits.get(business)
        if visits is None:
            if len(self._visits) >= self.max_entities:  # make room: the least recent go
                for gone, _ in self._shed(self._visits, _last_visit):
                    self._raised.pop(gone, None)
            visits = self._visits[business] = deque()
        visit = (ts, event.event_id, event.authority, event.basis)
        if visits and ts < visits[-1][0]:
            bisect.insort(visits, visit)  # a late event: keep the visits in time order
        else:
            visits.append(visit)
        newest = visits[-1][0]
        while visits and visits[0][0] < newest - window:
            visits.popleft()
        if not visits:  # an event older than the window of visits already seen
            del self._visits[business]
            return ended
        heaviest = max(1.0, self.follow_up_weight, self.exempt_weight)
        kinds = self.classify(visits) if len(visits) * heaviest >= self.alert_at else None
        total = sum(self.weight(k) for k in kinds) if kinds else 0.0
        if kinds is None or total < self.alert_at:
            # Below the threshold the finding has ended: a later burst is a new episode.
            lapsed = self._raised.pop(business, None)
            if lapsed is not None:
                total = sum(self.weight(k) for k in kinds or self.classify(visits))
                ended.append(self._resolved(business, lapsed, ts, len(visits), total))
            return ended
        everyday = kinds.count(EVERYDAY)
        critical = total >= self.critical_at and everyday >= self.alert_at
        severity = "critical" if critical else "warning"
        finding, raised = self._raised.get(business, (visits[0][1], "info"))
        if not escalates(severity, raised):
            return ended
        self._raised[business] = (finding, severity)
        previous = previous_of(raised)
        ended.append(self._alert(event, visits, kinds, total, severity, finding, previous))
        return ended

    def _sweep(self, horizon: float) -> list[Alert]:
        """Forget businesses with no visit since ``horizon`` (bounded state); end their findings."""
        ended = []
        for business in [b for b, v in self._visits.items() if v[-1][0] < horizon]:
            last = self._visits.pop(business)[-1][0]
            raised = self._raised.pop(business, None)
            if raised is not None:
                ended.append(
                    self._resolved(business, raised, last + self.window_days * DAY, 0, 0.0)
                )
        self._swept_at = horizon + self.window_days * DAY
        return ended

    def _resolved(
        self, business: str, raised: tuple[str, str], ts: float, visits: int, total: float
    ) -> Alert:
        finding, severity = raised
        return resolve_alert(
            kind=self.kind,
            entity=business,
            finding=finding,
            ts=datetime.fromtimestamp(ts, UTC),
            severity=severity,
            reasons=[
                f"{visits} inspections in the last {self.window_days:g} days, weighing {total:g}, "
                f"under the threshold of {self.alert_at:g}: the visits have stopped"
            ],
            evidence={
                "resolution": "window_passed",
                "window_days": self.window_days,
                "visits": visits,
                "weighted_visits": total,
            },
        )

    def _alert(
        self,
        event: Inspection,
        visits: deque[Visit],
        kinds: list[str],
        total: float,
        severity: str,
        finding: str,
        previous: str | None,
    ) -> Alert:
        days = (visits[-1][0] - visits[0][0]) / DAY
        everyday = kinds.count(EVERYDAY)
        exempt = kinds.count(EXEMPT_NEW)
        continued = len(kinds) - everyday - exempt
        authorities = sorted({v[2] for v in visits})
        listing = ", ".join(
            f"{_date(ts)} {authority} {basis}" for ts, _, authority, basis in visits
        )
        opened = everyday + exempt
        reasons = [
            f"{len(visits)} inspections in {days:.0f} days by {len(authorities)} "
            f"authorit{'y' if len(authorities) == 1 else 'ies'}, weighing {total:g} against a "
            f"threshold of {self.alert_at:g} in {self.window_days:g} days: {listing}",
            f"{opened} of them opened a matter of their own ({everyday} on everyday grounds, "
            f"{exempt} an authority's first on an exempt ground); {continued} continued one "
            f"(follow-ups weigh {self.follow_up_weight:g}, an authority's further exempt "
            f"visits {self.exempt_weight:g})",
        ]
        if total >= self.critical_at and severity != "critical":
            reasons.append(
                f"kept a warning: only {everyday} everyday visits, the rest on lawful grounds"
            )
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
                "visits": len(visits),
                "matters": opened,
                "everyday_visits": everyday,
                "window_days": self.window_days,
                "span_days": round(days, 1),
                "authorities": authorities,
                "business_size": event.business_size,
                "visit_dates": [_date(v[0]) for v in visits],
                "bases": [v[3] for v in visits],
            },
            event_ids=[v[1] for v in visits],
            previous=previous,
        )


def _last_visit(visits: deque[Visit]) -> float:
    return visits[-1][0]


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()
