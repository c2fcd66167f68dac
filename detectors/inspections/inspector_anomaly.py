"""``inspector_anomaly``: an inspector whose inspections break what the law allows, or
stand far from the peers'.

Typology
--------
What makes the pattern: **an inspector's inspections of covered businesses
judged against what the law allows at that moment, and his work against his
peers'**, across the moratorium's start and end (issue 13's typology). An inspector is one person
with a habit; the pattern is the habit, not one visit (one prohibited visit
is a ``moratorium_violation``; one hounded business a ``repeat_inspection``).

Its defining mechanics:

- **What the law allows at that moment.** A presidential decree of December
  2019 put a moratorium on inspections of micro and small businesses from
  1 January 2020 to 1 January 2023 (the contract's default window, read from
  ``[moratorium]`` in ``detectors/rules.toml``), keeping inspections on grounds
  such as a threat to life or health or a prosecutor's order; the domain notes
  say it cut inspections about five times in 2020. Inside a window an
  inspector who keeps visiting covered businesses on everyday grounds breaks
  the law again and again, from his first prohibited visit, whatever his
  peers do and however long his habit is. Outside it the same visits are
  ordinary work: before the start and after the end visiting small
  businesses is no pattern at all.
- **Visits beyond any plan.** Kazakhstan's Entrepreneurial Code (2015) plans
  routine inspections by risk, the riskiest businesses about once a year at
  most, and asks a ground of each unscheduled visit; an inspector who returns to the same
  businesses on everyday grounds is hounding them (a lawful follow-up or an
  exempt ground is not a return).
- **Against peers.** Inspectors of one authority share a mandate (a fire
  inspector visits many small shops on a life-safety ground; a tax inspector
  does not), so an inspector's volume is judged against the same authority's
  inspectors as they stand now. The OECD's *Regulatory Enforcement and
  Inspections Toolkit* (2018) and *Best Practice Principles* (2014) ask for
  inspection effort in proportion to risk and planned by the body, not the
  individual: an inspector far busier than colleagues with the same mandate
  is choosing his own targets.

Lawful look-alikes, which stay quiet: a slip (up to three prohibited visits in
two months, each alerted as a ``moratorium_violation``); a fire inspector's many
small-business visits on life-safety grounds; follow-ups; a busy inspector
within the ordinary spread; an honest inspector who moves to medium and large
businesses at the start, or back to small ones after the end; a whole
authority whose work changes at an edge.

How it is measured
------------------
Each inspector's last ``window_days`` as running counts, judged on each of its
inspections:

- **violations**: inspections the moratorium prohibited on their own local
  date. The law is the yardstick: ``min_violations`` of them stand out, with
  no peers and no warm-up, so a habit carried over the start is found within
  days of it, and one that was lawful before it is never counted;
- **returns**: everyday-ground visits to a business the inspector had visited
  within ``repeat_days``. The law's yardstick is none: ``min_repeats`` stand
  out. Where the authority has ``min_peers`` other inspectors, they may raise
  that bar once ``warm_up_days`` have passed: the robust z-score ``(value -
  median) / max(IQR / 1.349, 0.75, sqrt(median))`` must also reach
  ``z_alert``, so where a whole authority returns by chance no one stands out;
- **volume**: inspections started, against the same authority's other
  inspectors active in the window (taken afresh once a day of event time),
  after ``warm_up_days``: their median with ``min_peers`` of them, the busiest
  of them with fewer. It stands out at three times the yardstick, or twice it
  when the inspector has also turned to 2.5 times its own pace of the days
  before the window; in both cases beyond Poisson chance (1.25 ``z_alert``
  deviations, since every inspector's count is re-judged daily) of what the
  busiest honest peer (1.5 times the median) or its own old pace would give,
  and, with a median, a robust z-score of ``z_alert``. Its own pace is measured
  within one legal regime only: crossing a moratorium's start or end starts it
  afresh, because a pace learnt before an edge is no yardstick after it. A
  yardstick under 20 inspections is too noisy to judge by.

Peers are taken as they stand, never as they stood: a change that moves a
whole authority at once (the moratorium's end) moves its yardstick too. An
inspector already flagged is no peer: a rogue is no yardstick for the next.
(Rolling quantiles over past inspector-days, River's ``RollingQuantile``,
were tried first: they lag when a whole authority moves at once and flagged
88 honest inspectors of 100 in a simulated world, precision 0.07.) A share of
everyday visits to small businesses judged against peers in any era was
dropped: before the start and after the end it is lawful work, at the start
peers' windows move at different times, and in small authorities there were
no peers to compare with, so it flagged honest inspectors at the edges and
found a rogue who carried his habit over the start only after months.

One alert per inspector and finding, raised again as critical when two
figures stand out, or one reaches twice its bar (``2 * min_violations``,
``2 * z_alert``). State per inspector is bounded: the visits of one window,
the businesses visited within ``repeat_days``, a window and ``BEFORE_DAYS`` of
daily counts. So is the number of inspectors: one idle for longer than all of
that (``window_days + BEFORE_DAYS``, and ``repeat_days`` if longer) is
forgotten with its finding (swept once a day of event time; an authority
goes with its last inspector), and past ``max_entities`` inspectors the least
recently active go. Forgetting an alerted inspector ends its finding with a
``resolved`` alert: a whole window and more without an inspection. (A finding
is not ended while the inspector keeps working: a flagged inspector is no
peer, and figures that dip under the bar for a day are no end of a habit.)

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import Context
>>> det = InspectorAnomaly()
>>> def inspect(n, who, day, size="large"):
...     ev = Inspection(event_id=f"i-{n}", ts=datetime(2019, 12, 20, 4, tzinfo=timezone.utc)
...         + timedelta(days=day, minutes=n % 500), business=f"B-{n}", business_size=size,
...         authority="A", inspector=who, kind="scheduled", basis="routine")
...     ctx = Context(None); ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
>>> alerts = []
>>> for day in range(20):  # I-9 keeps visiting small businesses after 1 January 2020
...     alerts += inspect(day * 10, "I-1", day) + inspect(day * 10 + 1, "I-9", day, "small")
>>> [(a.entity, a.severity, a.ts.date().isoformat(), a.reasons[0][:47]) for a in alerts]
[('I-9', 'warning', '2020-01-04', '4 inspections in 60 days that the moratorium pr'), \
('I-9', 'critical', '2020-01-08', '8 inspections in 60 days that the moratorium pr')]
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter

from river import stats

from detectors.base import Context, Detector, escalates, make_alert, previous_of, resolve_alert
from detectors.events import BY_AUTHORITY, Alert, Inspection
from detectors.inspections.moratorium_violation import (
    DEFAULT_TIMEZONE,
    MoratoriumCalendar,
    MoratoriumRules,
)

DAY = 86400.0
#: Two months of work: a month's count (about 17 inspections) carries so much Poisson
#: noise that, re-judged every day, honest inspectors' lucky months stood three times
#: a thin authority's median; two months halve the relative noise and still catch a
#: turn (a volume rogue is found about 45 days after turning, a violator within days).
DEFAULT_WINDOW_DAYS = 60
#: An everyday visit to a business visited within two months is a return: no plan
#: brings an inspector back so soon (routine plans: about once a year).
DEFAULT_REPEAT_DAYS = 60
#: Four prohibited inspections in a window: one or two are slips (a misread size or
#: date); honest inspectors slipping three times in two months turned up in simulated
#: worlds (one slip in 300 visits), four did not; a habit passes four within weeks.
DEFAULT_MIN_VIOLATIONS = 4
#: Three everyday returns in a window: one hounded business gives two or more.
DEFAULT_MIN_REPEATS = 3
#: Four robust standard deviations: rare among honest peers, plain in the rogue.
DEFAULT_Z_ALERT = 4.0
#: Event time before volumes are compared with peers: half a window, so that counts
#: have grown (the law, and returns, need none).
DEFAULT_WARM_UP_DAYS = 30
#: Peers an authority needs for a median and quartiles. With four they still stand
#: on two peers each; with three one slow peer halved the yardstick (an honest
#: inspector stood at 3.8 times a three-peer median in a simulated world). With fewer,
#: the busiest peer is the volume's yardstick, and returns are judged by the law alone.
DEFAULT_MIN_PEERS = 4
#: Volume, in plain terms (see _volume_gap()): three times the peers' median (2.5 let
#: honest busy inspectors through) ...
VOLUME_RATIO = 3.0
#: ... or twice it when the inspector has also turned to 2.5 times its own pace of
#: the days before the window: honest paces hold steady, a rogue's jumps.
TURN_PEER_RATIO = 2.0
OWN_PACE_RATIO = 2.5
#: The days before the window its own pace is measured over (at least MIN_BEFORE_DAYS
#: of them, three working weeks), within one legal regime.
BEFORE_DAYS = 90
MIN_BEFORE_DAYS = 21
#: Honest workloads in one authority differ about twofold by habit: the busiest work
#: about one and a half times the median pace (the slowest about three quarters).
HABIT_RATIO = 1.5
#: A volume is a count re-judged every day for every inspector: over a hundred
#: inspectors and a few months some honest one's rolling window lies four Poisson
#: deviations out (seen in simulated worlds, against peers and against its own pace),
#: so a volume must stand 1.25 times z_alert deviations beyond chance.
LOOKS_Z_FACTOR = 1.25
#: A volume is judged once the yardstick (the peers' median) holds this many
#: inspections: below it a median of a few small counts carries so much Poisson noise
#: that slow luck halves it (five peers at a median of 7 after a month of a simulated
#: world made an honest inspector's lucky 33 stand 4.7 times out).
MIN_YARDSTICK = 20

FIGURES = ("volume", "violations", "repeat_visits")
#: Figures compared with peers.
PEER_FIGURES = ("volume", "repeat_visits")
#: Smallest spread each peer figure is judged with (a floor under IQR/1.349): 0.75
#: lets three repeat visits reach z = 4 against peers with none.
FLOORS = {"volume": 3.0, "repeat_visits": 0.75}
_LAST_TS = attrgetter("last_ts")


@dataclass
class _Inspector:
    """The last window of one inspector's work, as running counts."""

    authority: str
    # (ts, violation, repeat visit)
    recent: deque[tuple[float, bool, bool]] = field(default_factory=deque)
    violations: int = 0
    repeats: int = 0
    visited: dict[str, float] = field(default_factory=dict)  # business -> last visit
    sampled_day: int = -1
    today: int = 0  # inspections started on sampled_day
    regime: int = -2  # the moratorium window its pace was measured in (-1: none)
    # Its own pace before the window: the finished days' counts wait a window in
    # ``lately``, then spend BEFORE_DAYS in ``earlier``, whose mean (inspections per
    # calendar day) River keeps with update and revert.
    lately: deque[int] = field(default_factory=deque)
    earlier: deque[int] = field(default_factory=deque)
    before: stats.Mean = field(default_factory=stats.Mean)
    last_ts: float = 0.0  # event time of its latest inspection

    def close_days(self, day: int, regime: int, window: int) -> None:
        """Count the finished days (the last one sampled, any skipped ones zero).

        A day in another legal regime than the pace was measured in (a moratorium
        started or ended) starts the pace afresh.
        """
        if regime != self.regime:
            self.regime = regime
            self.lately.clear()
            self.earlier.clear()
            self.before = stats.Mean()
        elif self.sampled_day >= 0:
            gap = min(day - self.sampled_day, window + BEFORE_DAYS)
            for n in range(gap):
                self.lately.append(self.today if n == 0 else 0)
                if len(self.lately) > window:
                    count = self.lately.popleft()
                    self.earlier.append(count)
                    self.before.update(count)
                    if len(self.earlier) > BEFORE_DAYS:
                        self.before.revert(self.earlier.popleft())
        self.sampled_day, self.today = day, 0

    def pace_before(self) -> tuple[float, int] | None:
        """(inspections per day, days measured) before the window, once known."""
        days = len(self.earlier)
        if days < MIN_BEFORE_DAYS:
            return None
        return self.before.get(), days

    def expire(self, horizon: float) -> None:
        """Drop the visits that started before ``horizon`` from the running counts."""
        recent = self.recent
        while recent and recent[0][0] < horizon:
            _, old_violation, old_repeat = recent.popleft()
            self.violations -= old_violation
            self.repeats -= old_repeat

    def figures(self) -> dict[str, float]:
        return {
            "volume": float(len(self.recent)),
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

    def refresh(
        self,
        day: int,
        inspectors: dict[str, _Inspector],
        horizon: float,
        flagged: dict[str, tuple[str, str]],
    ) -> None:
        if day != self.day:
            self.day = day
            # Figures as they stand now: an inspector idle since ``horizon`` is no peer,
            # nor is one already flagged (a rogue is no yardstick: an authority with
            # several of them moved its median up to the next one's level).
            for m in self.members:
                inspectors[m].expire(horizon)
            self.figures = {
                m: inspectors[m].figures()
                for m in sorted(self.members)
                if inspectors[m].recent and m not in flagged
            }

    def headcount(self, exclude: str) -> int:
        """How many peers ``exclude`` has now."""
        return len(self.figures) - (exclude in self.figures)

    def yardstick(self, exclude: str) -> Yardstick:
        """The peers' figures without ``exclude``: how many, median, IQR, the highest."""
        others = [f for m, f in self.figures.items() if m != exclude]
        median = dict.fromkeys(PEER_FIGURES, 0.0)
        iqr = dict.fromkeys(PEER_FIGURES, 0.0)
        top = dict.fromkeys(PEER_FIGURES, 0.0)
        for name in PEER_FIGURES:
            values = [f[name] for f in others]
            if len(values) >= 2:
                q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
                median[name], iqr[name] = q2, q3 - q1
            if values:
                top[name] = max(values)
        return Yardstick(len(others), median, iqr, top)


@dataclass(frozen=True)
class Yardstick:
    """An authority's other inspectors' figures: how many, median, IQR and highest of each."""

    peers: int = 0
    median: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PEER_FIGURES, 0.0))
    iqr: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PEER_FIGURES, 0.0))
    top: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PEER_FIGURES, 0.0))


class InspectorAnomaly(Detector):
    """Flags inspectors who break the law again and again, or stand far from their peers.

    See the module docstring for the typology and the figures.

    Parameters:
        rules, timezone: the moratorium, to count violations.
        window_days: the span of work each figure counts.
        repeat_days: a business visited again within this many days is a repeat visit.
        min_violations: prohibited inspections in a window that stand out.
        min_repeats: everyday repeat visits in a window that stand out.
        z_alert: robust z-score at which a figure stands out from the peers.
        warm_up_days: event time before peers are compared.
        min_peers: peers an authority needs for a comparison.
    """

    kind = "inspector_anomaly"
    stream = "inspections"
    #: Fewer inspectors than the default cap: a country has thousands, not hundreds of
    #: thousands, and each costs about 4 KB with its authority's share (the deques of
    #: its daily counts), so a flood of made-up inspectors stops at about 0.2 GB.
    max_entities = 50_000
    #: An inspector's visits are keyed by business, spread over every partition;
    #: its peers are its authority's inspectors: it reads inspections by authority.
    lane = BY_AUTHORITY

    def __init__(
        self,
        rules: MoratoriumRules | None = None,
        timezone: str = DEFAULT_TIMEZONE,
        window_days: float = DEFAULT_WINDOW_DAYS,
        repeat_days: float = DEFAULT_REPEAT_DAYS,
        min_violations: int = DEFAULT_MIN_VIOLATIONS,
        min_repeats: int = DEFAULT_MIN_REPEATS,
        z_alert: float = DEFAULT_Z_ALERT,
        warm_up_days: float = DEFAULT_WARM_UP_DAYS,
        min_peers: int = DEFAULT_MIN_PEERS,
    ) -> None:
        self.rules = rules or MoratoriumRules()
        self.timezone = timezone
        self.window_days = window_days
        self.repeat_days = repeat_days
        self.min_violations = min_violations
        self.min_repeats = min_repeats
        self.z_alert = z_alert
        self.warm_up_days = warm_up_days
        self.min_peers = min_peers
        self._calendar = MoratoriumCalendar(self.rules, timezone)
        self._inspectors: dict[str, _Inspector] = {}
        self._peers: dict[str, _Peers] = {}
        self._raised: dict[str, tuple[str, str]] = {}  # inspector -> (finding, severity)
        self._first_ts: float | None = None
        self._swept_day = -1  # the day of event time idle inspectors were last swept

    @property
    def n_entities(self) -> int:
        return len(self._inspectors)

    def update(self, event: Inspection, ctx: Context) -> list[Alert]:
        ts = ctx.ts
        if self._first_ts is None:
            self._first_ts = ts
        day = int(ts // DAY)
        ended: list[Alert] = []
        if day > self._swept_day:  # once a day of event time
            self._swept_day = day
            idle = self._forget_idle(self._inspectors, ts - self._idle_days() * DAY, _LAST_TS)
            ended = [self._resolved(name, who) for name, who in idle if name in self._raised]
            self._drop(idle)
        who = self._inspectors.get(event.inspector)
        if who is None:
            if len(self._inspectors) >= self.max_entities:  # make room: the least recent go
                self._drop(self._shed(self._inspectors, _LAST_TS))
            who = self._inspectors[event.inspector] = _Inspector(event.authority)
        if ts > who.last_ts:
            who.last_ts = ts
        peers = self._peers.get(who.authority)
        if peers is None:
            peers = self._peers[who.authority] = _Peers()
        peers.members.add(event.inspector)
        if day > who.sampled_day:  # once a day: update its own pace, forget old visits
            who.close_days(day, self._regime(ts), math.ceil(self.window_days))
            self._forget(who, ts)
        who.today += 1
        self._record(who, event, ts)
        peers.refresh(day, self._inspectors, ts - self.window_days * DAY, self._raised)
        warm = ts - self._first_ts >= self.warm_up_days * DAY
        alerts = self._judge(event, who, peers, warm)
        return [*ended, *alerts] if ended else alerts

    def _resolved(self, name: str, who: _Inspector) -> Alert:
        """The alert that ends a forgotten inspector's finding."""
        finding, severity = self._raised[name]
        idle = self._idle_days()
        last = datetime.fromtimestamp(who.last_ts, UTC).date().isoformat()
        return resolve_alert(
            kind=self.kind,
            entity=name,
            finding=finding,
            ts=datetime.fromtimestamp(who.last_ts + idle * DAY, UTC),
            severity=severity,
            reasons=[f"no inspection since {last}: {idle:g} days without one"],
            evidence={"resolution": "quiet", "quiet_days": idle, "last_active": last},
        )

    def _idle_days(self) -> float:
        """Silence after which nothing of an inspector is judged any more: its window is
        empty (so it is no peer either), the businesses it visited are past
        ``repeat_days``, and its own pace before the window would be of days it did not
        work (a pace of zero, against which an inspector back from a long leave would
        look as if it had turned). Forgotten then, it starts afresh like a newcomer."""
        return max(self.window_days + BEFORE_DAYS, self.repeat_days)

    def _drop(self, gone: list[tuple[str, _Inspector]]) -> None:
        """Forget what else is kept about inspectors dropped from ``_inspectors``."""
        for name, who in gone:
            self._raised.pop(name, None)
            peers = self._peers.get(who.authority)
            if peers is not None:
                peers.members.discard(name)
                peers.figures.pop(name, None)
                if not peers.members:
                    del self._peers[who.authority]

    def _regime(self, ts: float) -> int:
        """Which moratorium window ``ts`` falls in (its index), or -1 for none."""
        for index, (lo, hi, _, _) in enumerate(self._calendar.bounds):
            if lo <= ts < hi:
                return index
        return -1

    def _record(self, who: _Inspector, event: Inspection, ts: float) -> None:
        basis = event.basis
        everyday = basis != "follow_up" and basis not in self.rules.exempt_bases
        violation = self._calendar.window(ts, event.business_size, basis) is not None
        last = who.visited.get(event.business)
        repeat = everyday and last is not None and ts - last <= self.repeat_days * DAY
        who.visited[event.business] = max(ts, last or ts)
        who.recent.append((ts, violation, repeat))
        who.violations += violation
        who.repeats += repeat
        who.expire(ts - self.window_days * DAY)

    def _forget(self, who: _Inspector, ts: float) -> None:
        """Drop visits older than the repeat horizon (bounded state)."""
        horizon = ts - self.repeat_days * DAY
        for business in [b for b, last in who.visited.items() if last < horizon]:
            del who.visited[business]

    def _judge(
        self, event: Inspection, who: _Inspector, authority: _Peers, warm: bool
    ) -> list[Alert]:
        figures = who.figures()
        # The peers' quartiles only when a figure could stand out against them (on most
        # events none could, and the number of peers is enough).
        need = figures["repeat_visits"] >= self.min_repeats or (
            warm and figures["volume"] >= TURN_PEER_RATIO * MIN_YARDSTICK
        )
        peers = authority.yardstick(event.inspector) if need else None
        count = peers.peers if peers else authority.headcount(event.inspector)
        # With enough peers, returns and volume wait for their yardstick (warm-up);
        # with fewer, returns are judged by the law from the first day.
        compared = count >= self.min_peers
        # figure -> (value, yardstick, strength: 1 at its bar, 2 at twice it)
        standing: dict[str, tuple[float, float, float]] = {}
        notes: dict[str, str] = {}  # figure -> why it stands out, in plain words
        violations = figures["violations"]
        if violations >= self.min_violations:
            standing["violations"] = (violations, 0.0, violations / self.min_violations)
            notes["violations"] = "the moratorium allows none"
        repeats = figures["repeat_visits"]
        if repeats >= self.min_repeats and (warm or not compared):
            median = peers.median["repeat_visits"] if compared else 0.0
            iqr = peers.iqr["repeat_visits"] if compared else 0.0
            spread = max(iqr / 1.349, FLOORS["repeat_visits"], math.sqrt(median))
            z = (repeats - median) / spread
            if z >= self.z_alert:
                standing["repeat_visits"] = (repeats, median, z / self.z_alert)
                notes["repeat_visits"] = (
                    f"z = {z:.1f} among {count} {who.authority} inspectors"
                    if compared
                    else "no plan returns to a business on everyday grounds so soon"
                )
        value = figures["volume"]
        if peers is None or not warm:  # too few inspections to stand out, or too early
            pass
        elif compared:
            median = peers.median["volume"]
            spread = max(
                peers.iqr["volume"] / 1.349, FLOORS["volume"], math.sqrt(median), 0.25 * median
            )
            z = (value - median) / spread
            # A median of k Poisson counts varies about pi / (2k) times as much as one.
            noise = math.pi / (2 * count)
            gap = _volume_gap(
                value, median, noise, "the peers' median", who, self.z_alert, self.window_days
            )
            if z >= self.z_alert and gap:
                standing["volume"] = (value, median, z / self.z_alert)
                notes["volume"] = f"{gap}; z = {z:.1f} among {count} {who.authority} inspectors"
        elif count:
            # Too few peers for a median: the busiest of them is the yardstick.
            busiest = peers.top["volume"]
            gap = _volume_gap(
                value, busiest, 1.0, "its busiest peer", who, self.z_alert, self.window_days
            )
            if gap:
                standing["volume"] = (value, busiest, value / (VOLUME_RATIO * max(busiest, 1.0)))
                notes["volume"] = f"{gap}; {count} other {who.authority} inspectors"
        if not standing:
            return []
        top = max(strength for _, _, strength in standing.values())
        severity = "critical" if len(standing) >= 2 or top >= 2 else "warning"
        finding, raised = self._raised.get(event.inspector, (event.event_id, "info"))
        if not escalates(severity, raised):
            return []
        self._raised[event.inspector] = (finding, severity)
        peers = peers or authority.yardstick(event.inspector)  # for the evidence
        previous = previous_of(raised)
        return [
            self._alert(
                event, who, peers, figures, standing, notes, severity, finding, top, previous
            )
        ]

    def _alert(
        self,
        event: Inspection,
        who: _Inspector,
        peers: Yardstick,
        figures: dict[str, float],
        standing: dict[str, tuple[float, float, float]],
        notes: dict[str, str],
        severity: str,
        finding: str,
        top: float,
        previous: str | None,
    ) -> Alert:
        days = self.window_days
        reasons = []
        for name, (value, yardstick, _) in standing.items():
            if name == "volume":
                text = f"{value:.0f} inspections in {days:g} days against {yardstick:.0f}"
            elif name == "violations":
                text = (
                    f"{value:.0f} inspections in {days:g} days that the moratorium prohibited "
                    "(micro or small businesses, no exempt ground)"
                )
            else:
                text = (
                    f"{value:.0f} everyday-ground visits in {days:g} days to businesses it had "
                    f"visited within {self.repeat_days:g} days, against {yardstick:g}"
                )
            reasons.append(f"{text}: {notes[name]}")
        return make_alert(
            kind=self.kind,
            entity=event.inspector,
            finding=finding,
            ts=event.ts,
            severity=severity,
            score=min(1.0, top / 2),
            reasons=reasons,
            evidence={
                "authority": who.authority,
                "peers": peers.peers,
                "window_days": days,
                "figures": figures,
                "peer_medians": peers.median,
                "yardsticks": {name: y for name, (_, y, _) in standing.items()},
                "strength": {name: round(s, 2) for name, (_, _, s) in standing.items()},
                "standing_out": list(standing),
            },
            event_ids=[event.event_id],
            previous=previous,
        )


def _volume_gap(
    value: float,
    median: float,
    noise: float,
    what: str,
    who: _Inspector,
    z_alert: float,
    window_days: float,
) -> str | None:
    """Why the volume is large in plain terms against ``median`` (``what``), or None.

    ``noise`` is the yardstick's Poisson variance as a multiple of its own value (a
    median of k counts: about pi / 2k; the busiest of a few: 1).

    Honest workloads in one authority differ about 2x by habit, and a window's
    count adds its own noise: three times the peers' median, beyond the Poisson
    chance of a peer twice as busy as the median, is beyond both. Twice is enough
    when the inspector has also *turned*: 2.5 times its own pace of the months
    before, beyond Poisson chance (an honest pace holds, a rogue's jumps). Tried
    and dropped: a pace kept as an exponentially weighted mean and read a month
    back (over a young world it still carried the first days' luck and missed a
    rogue that had tripled its pace), and twice the peers' over 60 days (honest
    inspectors at the top of the range reach 2.05x: 5 false alerts on 13 worlds).
    """
    if median < MIN_YARDSTICK or value < TURN_PEER_RATIO * median:
        return None
    # Counts have Poisson noise, the yardstick too (``noise``: its variance over a
    # single count's), and they are re-judged every day: beyond the plain ratio, the
    # volume must be more than chance would give the busiest honest peer (HABIT_RATIO
    # times the median).
    z_count = LOOKS_Z_FACTOR * z_alert
    busiest = HABIT_RATIO * max(median, 1.0)
    spread = math.sqrt(busiest * (1 + HABIT_RATIO * noise))
    if value >= VOLUME_RATIO * median and (value - busiest) / spread >= z_count:
        return f"{value / max(median, 1.0):.1f} times {what}"
    known = who.pace_before()
    if known is not None:
        pace, days = known
        expected = pace * window_days
        # Both paces are counts with Poisson noise: of the visits of the two spans
        # together, the window's share would be binomial if the pace had held.
        together = value + pace * days
        share = window_days / (window_days + days)
        z = (value - together * share) / math.sqrt(together * share * (1 - share))
        if value >= OWN_PACE_RATIO * max(expected, 1.0) and z >= z_count:
            return (
                f"{value / max(expected, 1.0):.1f} times its own pace of the {days} days "
                f"before ({pace:.2f} a day)"
            )
    return None
