"""``inspector_anomaly``: an inspector whose pattern stands far from the peers'.

Each inspector's last ``window_days`` are summed up in four figures:

- **volume**: inspections started;
- **share on small businesses**: the share of them that were everyday-ground
  (not exempt, not follow-up) visits to micro and small businesses;
- **violations**: inspections the moratorium prohibits;
- **repeat visits**: everyday-ground visits to a business the inspector had
  already visited within ``repeat_days``.

Peers are the inspectors of the same authority, which share a mandate (a fire
inspector visits many small shops on a life-safety ground; a tax inspector
does not). Once a day of event time the authority's yardstick is taken afresh:
the median and the interquartile range of each figure across its inspectors
active in the window. (Rolling quantiles over past inspector-days, River's
``RollingQuantile``, were tried first: they lag when a whole authority moves at
once, as at the moratorium's end, and flagged 88 honest inspectors of 100 in a
simulated world, precision 0.07.) An inspector stands out on a figure when its
robust z-score,
``(value - median) / max(IQR / 1.349, floor)``, reaches ``z_alert`` *and* the
difference is large in plain terms (three times the peers' volume, 30 points
more of small-business visits and beyond binomial chance, five violations,
three repeat visits), so a quiet
authority's tiny spread cannot turn a trifle into an alert.

Volume is judged against the inspector's own past as well, since honest
workloads differ about twofold by habit: twice the peers' median is enough
when the inspector has also turned (2.5 times its own pace over the 90 days
before the window, kept with River's ``stats.Mean``, beyond Poisson chance; see
``_volume_gap``).

Warm-up: nothing is said before ``warm_up_days`` of event time have passed and
the authority has ``min_peers`` inspectors with figures. One alert per
inspector and finding, raised again as critical when two figures stand out or
one by twice ``z_alert``.

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import escalates, Context
>>> det = InspectorAnomaly(warm_up_days=5, min_peers=3)
>>> def inspect(n, who, day, size="large"):
...     ev = Inspection(event_id=f"i-{n}", ts=datetime(2023, 3, 1, 9, tzinfo=timezone.utc)
...         + timedelta(days=day, minutes=n % 500), business=f"B-{n}", business_size=size,
...         authority="A", inspector=who, kind="scheduled", basis="routine")
...     ctx = Context(None); ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
>>> alerts = []
>>> for day in range(40):
...     for k in range(4):
...         alerts += inspect(day * 100 + k, f"I-{k}", day)
...     for n in range(5):  # I-9 works five times as hard
...         alerts += inspect(day * 100 + 10 + n, "I-9", day)
>>> sorted({a.entity for a in alerts}), alerts[0].evidence["standing_out"]
(['I-9'], ['volume'])
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

from river import stats

from detectors.base import Context, Detector, escalates, make_alert
from detectors.events import BY_AUTHORITY, Alert, Inspection
from detectors.inspections.moratorium_violation import (
    DEFAULT_TIMEZONE,
    MoratoriumCalendar,
    MoratoriumRules,
)

DAY = 86400.0
#: A month of work: long enough to even out a day's luck, short enough to catch a turn.
DEFAULT_WINDOW_DAYS = 30
#: Revisiting a business within two months on an everyday ground is a repeat visit.
DEFAULT_REPEAT_DAYS = 60
#: Four robust standard deviations: rare among honest peers, plain in the rogue.
DEFAULT_Z_ALERT = 4.0
DEFAULT_WARM_UP_DAYS = 30
DEFAULT_MIN_PEERS = 5
#: Volume that stands out: see _volume_gap(). (2.5 let honest busy inspectors through.)
VOLUME_RATIO = 3.0
#: ... or twice the peers' when it is also 2.5 times its own earlier pace, beyond
#: Poisson chance (z >= z_alert): honest paces hold steady, a rogue's jumps.
OWN_PACE_RATIO = 2.5
#: The window the own pace is judged over, and the days before it it is compared with
#: (at least MIN_BEFORE_DAYS of them, three working weeks).
PACE_DAYS = 30
BEFORE_DAYS = 90
MIN_BEFORE_DAYS = 21
#: A share is re-judged daily over a few dozen visits: it must stand 1.5x further out.
SHARE_Z_FACTOR = 1.5
PROTECTED_SIZES = frozenset({"micro", "small"})

FIGURES = ("volume", "small_business_share", "violations", "repeat_visits")
#: Smallest spread each figure is judged with (a floor under IQR/1.349).
#: 0.75 for the counts lets the plain-terms bar of three repeat visits reach z = 4
#: against peers with none.
FLOORS = {"volume": 3.0, "small_business_share": 0.08, "violations": 0.75, "repeat_visits": 0.75}
#: Figures that are counts: their spread is at least Poisson's, sqrt(median).
COUNTS = frozenset({"volume", "violations", "repeat_visits"})


@dataclass
class _Inspector:
    """The last window of one inspector's work, as running counts."""

    authority: str
    # (ts, on a small business on an everyday ground, violation, repeat visit)
    recent: deque[tuple[float, bool, bool, bool]] = field(default_factory=deque)
    small: int = 0
    violations: int = 0
    repeats: int = 0
    visited: dict[str, float] = field(default_factory=dict)  # business -> last visit
    sampled_day: int = -1
    today: int = 0  # inspections started on sampled_day
    # Its own pace before the window: the finished days' counts wait PACE_DAYS in
    # ``lately``, then spend BEFORE_DAYS in ``earlier``, whose mean (inspections per
    # calendar day) River keeps with update and revert.
    lately: deque[int] = field(default_factory=deque)
    earlier: deque[int] = field(default_factory=deque)
    before: stats.Mean = field(default_factory=stats.Mean)

    def close_days(self, day: int) -> None:
        """Count the finished days (the last one sampled, any skipped ones zero)."""
        if self.sampled_day >= 0:
            gap = min(day - self.sampled_day, PACE_DAYS + BEFORE_DAYS)
            for n in range(gap):
                self.lately.append(self.today if n == 0 else 0)
                if len(self.lately) > PACE_DAYS:
                    count = self.lately.popleft()
                    self.earlier.append(count)
                    self.before.update(count)
                    if len(self.earlier) > BEFORE_DAYS:
                        self.before.revert(self.earlier.popleft())
        self.sampled_day, self.today = day, 0

    def pace_before(self) -> tuple[float, int] | None:
        """(inspections per day, days measured) before the last PACE_DAYS, once known."""
        days = len(self.earlier)
        if days < MIN_BEFORE_DAYS:
            return None
        return self.before.get(), days

    def expire(self, horizon: float) -> None:
        """Drop the visits that started before ``horizon`` from the running counts."""
        recent = self.recent
        while recent and recent[0][0] < horizon:
            _, old_small, old_violation, old_repeat = recent.popleft()
            self.small -= old_small
            self.violations -= old_violation
            self.repeats -= old_repeat

    def figures(self) -> dict[str, float]:
        volume = len(self.recent)
        return {
            "volume": float(volume),
            "small_business_share": self.small / volume if volume >= 5 else 0.0,
            "violations": float(self.violations),
            "repeat_visits": float(self.repeats),
        }


class _Peers:
    """An authority's inspectors and their figures, taken afresh once a day.

    Peers are compared as they stand, not as they stood, so a change that moves
    a whole authority at once (the moratorium's end) moves its yardstick too;
    and an inspector is measured against the others, never against itself.
    """

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.day = -1
        self.figures: dict[str, dict[str, float]] = {}

    def refresh(self, day: int, inspectors: dict[str, _Inspector], horizon: float) -> None:
        if day != self.day:
            self.day = day
            # Figures as they stand now: an inspector idle since ``horizon`` is no peer.
            for m in self.members:
                inspectors[m].expire(horizon)
            self.figures = {
                m: inspectors[m].figures() for m in sorted(self.members) if inspectors[m].recent
            }

    def yardstick(self, exclude: str) -> tuple[int, dict[str, float], dict[str, float]]:
        """(peers, median of each figure, interquartile range of each) without ``exclude``."""
        others = [f for m, f in self.figures.items() if m != exclude]
        median = dict.fromkeys(FIGURES, 0.0)
        iqr = dict.fromkeys(FIGURES, 0.0)
        if len(others) >= 2:
            for name in FIGURES:
                q1, q2, q3 = statistics.quantiles(
                    [f[name] for f in others], n=4, method="inclusive"
                )
                median[name], iqr[name] = q2, q3 - q1
        return len(others), median, iqr


class InspectorAnomaly(Detector):
    """Flags inspectors who stand far from their authority's peers (see module docstring).

    Parameters:
        rules, timezone: the moratorium, to count violations.
        exempt_bases: grounds that do not count as everyday (the moratorium's).
        window_days, repeat_days, z_alert, warm_up_days, min_peers:
            as described in the module docstring.
    """

    kind = "inspector_anomaly"
    stream = "inspections"
    #: An inspector's visits are keyed by business, spread over every partition;
    #: its peers are its authority's inspectors: it reads inspections by authority.
    lane = BY_AUTHORITY

    def __init__(
        self,
        rules: MoratoriumRules | None = None,
        timezone: str = DEFAULT_TIMEZONE,
        window_days: float = DEFAULT_WINDOW_DAYS,
        repeat_days: float = DEFAULT_REPEAT_DAYS,
        z_alert: float = DEFAULT_Z_ALERT,
        warm_up_days: float = DEFAULT_WARM_UP_DAYS,
        min_peers: int = DEFAULT_MIN_PEERS,
    ) -> None:
        self.rules = rules or MoratoriumRules()
        self.timezone = timezone
        self.window_days = window_days
        self.repeat_days = repeat_days
        self.z_alert = z_alert
        self.warm_up_days = warm_up_days
        self.min_peers = min_peers
        self._calendar = MoratoriumCalendar(self.rules, timezone)
        self._inspectors: dict[str, _Inspector] = {}
        self._peers: dict[str, _Peers] = {}
        self._raised: dict[str, tuple[str, str]] = {}  # inspector -> (finding, severity)
        self._first_ts: float | None = None

    @property
    def n_entities(self) -> int:
        return len(self._inspectors)

    def update(self, event: Inspection, ctx: Context) -> list[Alert]:
        ts = ctx.ts
        if self._first_ts is None:
            self._first_ts = ts
        who = self._inspectors.get(event.inspector)
        if who is None:
            who = self._inspectors[event.inspector] = _Inspector(event.authority)
        peers = self._peers.get(who.authority)
        if peers is None:
            peers = self._peers[who.authority] = _Peers()
        peers.members.add(event.inspector)
        day = int(ts // DAY)
        if day > who.sampled_day:  # once a day: update its own pace, forget old visits
            who.close_days(day)
            self._forget(who, ts)
        who.today += 1
        self._record(who, event, ts)
        if ts - self._first_ts < self.warm_up_days * DAY:
            return []
        peers.refresh(day, self._inspectors, ts - self.window_days * DAY)
        count, median, iqr = peers.yardstick(event.inspector)
        if count < self.min_peers:
            return []
        return self._judge(event, who, count, median, iqr)

    def _record(self, who: _Inspector, event: Inspection, ts: float) -> None:
        basis = event.basis
        everyday = basis != "follow_up" and basis not in self.rules.exempt_bases
        small = everyday and event.business_size in PROTECTED_SIZES
        violation = self._calendar.window(ts, event.business_size, basis) is not None
        last = who.visited.get(event.business)
        repeat = everyday and last is not None and ts - last <= self.repeat_days * DAY
        who.visited[event.business] = max(ts, last or ts)
        who.recent.append((ts, small, violation, repeat))
        who.small += small
        who.violations += violation
        who.repeats += repeat
        who.expire(ts - self.window_days * DAY)

    def _forget(self, who: _Inspector, ts: float) -> None:
        """Drop visits older than the repeat horizon (bounded state)."""
        horizon = ts - self.repeat_days * DAY
        for business in [b for b, last in who.visited.items() if last < horizon]:
            del who.visited[business]

    def _judge(
        self,
        event: Inspection,
        who: _Inspector,
        count: int,
        medians: dict[str, float],
        iqrs: dict[str, float],
    ) -> list[Alert]:
        figures = who.figures()
        standing: dict[str, tuple[float, float, float]] = {}  # figure -> (value, median, z)
        notes: dict[str, str] = {}  # figure -> why it is large in plain terms
        for name, value in figures.items():
            median = medians[name]
            spread = max(iqrs[name] / 1.349, FLOORS[name])
            if name in COUNTS:  # a count's chance spread among a few peers
                spread = max(spread, math.sqrt(median))
            if name == "volume":
                spread = max(spread, 0.25 * median)
            z = (value - median) / spread
            if z < self.z_alert:
                continue
            if name == "volume":
                note = _volume_gap(
                    value,
                    median,
                    who,
                    self.z_alert,
                    self.window_days,
                )
                if note is None:
                    continue
                notes[name] = note
            elif not _large(name, value, median, who, self.z_alert):
                continue
            standing[name] = (value, median, z)
        if not standing:
            return []
        top = max(z for _, _, z in standing.values())
        severity = "critical" if len(standing) >= 2 or top >= 2 * self.z_alert else "warning"
        finding, raised = self._raised.get(event.inspector, (event.event_id, "info"))
        if not escalates(severity, raised):
            return []
        self._raised[event.inspector] = (finding, severity)
        alert = self._alert(
            event, who, count, medians, figures, standing, notes, severity, finding, top
        )
        return [alert]

    def _alert(
        self,
        event: Inspection,
        who: _Inspector,
        count: int,
        medians: dict[str, float],
        figures: dict[str, float],
        standing: dict[str, tuple[float, float, float]],
        notes: dict[str, str],
        severity: str,
        finding: str,
        top: float,
    ) -> Alert:
        days, authority = self.window_days, who.authority
        reasons = []
        for name, (value, median, z) in standing.items():
            if name == "volume":
                text = f"{value:.0f} inspections in {days:g} days against a median of {median:.0f}"
            elif name == "small_business_share":
                text = (
                    f"{value:.0%} of its inspections were everyday-ground visits to micro and "
                    f"small businesses, against a median of {median:.0%}"
                )
            elif name == "violations":
                text = f"{value:.0f} moratorium violations in {days:g} days against {median:.0f}"
            else:
                text = f"{value:.0f} repeat visits in {days:g} days against {median:.0f}"
            note = f"; {notes[name]}" if name in notes else ""
            reasons.append(f"{text} among {count} {authority} inspectors (z = {z:.1f}){note}")
        return make_alert(
            kind=self.kind,
            entity=event.inspector,
            finding=finding,
            ts=event.ts,
            severity=severity,
            score=min(1.0, top / (2 * self.z_alert)),
            reasons=reasons,
            evidence={
                "authority": authority,
                "peers": count,
                "window_days": days,
                "figures": figures,
                "peer_medians": medians,
                "z_scores": {name: round(z, 2) for name, (_, _, z) in standing.items()},
                "standing_out": list(standing),
            },
            event_ids=[event.event_id],
        )


def _volume_gap(
    value: float,
    median: float,
    who: _Inspector,
    z_alert: float,
    window_days: float,
) -> str | None:
    """Why the volume is large in plain terms, or None when it is not.

    Honest workloads in one authority differ about 2x by habit, and a month's
    count adds its own noise: three times the peers' median is beyond both. Twice
    is enough when the inspector has also *turned*: 2.5 times its own pace of
    the months before, beyond Poisson chance (an honest pace holds, a rogue's
    jumps). Tried and dropped: a pace kept as an exponentially weighted mean and
    read a month back (over a young world it still carried the first days' luck
    and missed a rogue that had tripled its pace), and twice the peers' over 60
    days (honest inspectors at the top of the range reach 2.05x: 5 false alerts
    on 13 worlds).
    """
    if value < 15 or value < 2 * median:
        return None
    if value >= VOLUME_RATIO * median:
        return f"{value / max(median, 1.0):.1f} times the peers' median"
    known = who.pace_before()
    if known is not None:
        pace, days = known
        expected = max(pace * window_days, 1.0)
        if value >= OWN_PACE_RATIO * expected and (
            (value - expected) / math.sqrt(expected) >= z_alert
        ):
            return (
                f"{value / expected:.1f} times its own pace of the {days} days before "
                f"({pace:.2f} a day)"
            )
    return None


def _large(name: str, value: float, median: float, who: _Inspector, z_alert: float) -> bool:
    """Is the difference large in plain terms (and, for a share, beyond chance)?"""
    if name == "small_business_share":
        # A share over few inspections is noisy, and it is judged again every day: ask
        # the count to stand SHARE_Z_FACTOR * z_alert binomial deviations above what the
        # peers' share would give.
        volume = len(who.recent)
        p = min(max(median, 0.05), 0.95)
        binomial_z = (who.small - volume * p) / math.sqrt(volume * p * (1 - p))
        return value - median >= 0.3 and who.small >= 8 and binomial_z >= SHARE_Z_FACTOR * z_alert
    if name == "violations":
        return value >= 5
    return value >= 3
