"""The inspections world: authorities, their inspectors, and the businesses they visit.

Ordinary inspectors work a risk-based plan: during the moratorium they visit
medium and large businesses, and micro or small ones only on exempt grounds
(with a rare slip); outside it they visit every size. A business is not put on
the plan again within 120 days.

True patterns (truth.json), by the typologies in ``detectors/inspections/`` (each
detector's module docstring), never by what a detector happens to catch:

- ``moratorium_violation``: computed for *every* inspection by this module's
  own reading of the contract's rule (local date in Asia/Almaty, window
  [2020-01-01, 2023-01-01), micro/small, basis not exempt), one per event.
- ``repeat_inspection``: a business visited three to five times within 20-45
  days, by a harassing inspector or by several authorities piling on; every
  visit opens a new matter (an everyday ground, or an authority's first
  exempt-ground visit), so no lawful ground hides the pattern; ``start`` is
  the first of those visits.
- ``inspector_anomaly``: an inspector whose inspections break what the law
  allows at that moment or stand far from the peers': a *violator* inspects
  micro and small businesses on everyday grounds inside the moratorium (and,
  outside it, where that is lawful, hounds a few of them instead); a
  *harasser* hounds businesses with visit after visit, a new one every one to
  four weeks; a *volume* rogue works at three to four times a peer's volume
  (its authority's median pace, or its own if busier). ``start`` is the first
  inspection that belongs to the pattern (a violator's first prohibited one, a
  harasser's first hounding visit), so a habit that is lawful in its era is
  never labelled.

Lawful look-alikes (``lawful.json``, by family): an inspection and its
follow-ups (``follow_up_chain``), repeated visits on one authority's exempt
ground (``exempt_case``), fire-safety inspectors who visit many small
businesses on exempt grounds in the moratorium (``fire_life_safety``),
busy inspectors within the normal spread (``busy_inspector``), honest
inspectors whose work shifts at an edge (``edge_honest``).

Variant families (``SimConfig.has``; ``simulator/config.py`` HELD_OUT_FAMILIES
says which are held out of tuning worlds):

- ``multi_authority`` (held out): three or four authorities visit one business
  within three weeks, one or more of them on an exempt ground such as a
  prosecutor's order: a true repeat pattern.
- ``onset_rogue`` (held out): an inspector whose habit of visiting micro and
  small businesses on everyday grounds carries on after the moratorium starts;
  a true anomaly from the first prohibited visit, never before.
- ``edge_honest`` (held out): honest inspectors whose work shifts at an edge: a
  busy small-business inspector who moves to medium and large ones at the start,
  or one who returns to small businesses, most of his work, at the end.
- ``harass_cover`` (tuning): a harasser gives one visit of some campaigns an
  exempt ground of his authority; the campaign stays a pattern.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from simulator.config import SimConfig
from simulator.core import (
    DAY,
    LOCAL,
    Actor,
    Emit,
    Finding,
    World,
    local_date,
    local_ts,
    poisson,
)

#: Contract defaults, restated here on purpose: the truth must not borrow the
#: detector's code.
MORATORIUM = (date(2020, 1, 1), date(2023, 1, 1))
EXEMPT = frozenset(
    {
        "threat_to_life_health",
        "environmental_threat",
        "national_security",
        "prosecutor_order",
        "criminal_case",
        "taxpayer_request",
    }
)
PROTECTED = frozenset({"micro", "small"})
SIZE_SHARES = (("micro", 0.60), ("small", 0.25), ("medium", 0.11), ("large", 0.04))
#: A business is not planned for another routine visit within this many days.
REVISIT_DAYS = 120
BUSINESSES_PER_INSPECTOR = 600
#: Everyday (non-exempt) grounds a rogue gives his visits.
EVERYDAY = ("routine", "complaint")
#: A violator's share of visits to micro and small businesses on everyday grounds.
PREDATOR_SHARE = 0.6
#: A hounding inspector takes a new target every so many working days (one to four weeks).
HOUND_GAP = (5, 20)
#: Share of a harasser's campaigns with one visit on an exempt ground (harass_cover).
COVER_SHARE = 0.3
#: A small-business habit (onset rogues, edge_honest): share of visits, everyday grounds.
HABIT_SHARE = (0.6, 0.8)
#: Honest inspectors at this share of the top pace or above are listed as busy look-alikes.
BUSY_RATE = 0.9
#: Days a world must hold on each side of an edge for the edge families to appear.
EDGE_MARGIN_DAYS = 21

#: Authorities: (id, share of inspectors, everyday bases, exempt bases they use).
AUTHORITIES = (
    ("KZ-FIRE", 0.18, ("routine", "complaint"), ("threat_to_life_health",)),
    ("KZ-SANEPID", 0.16, ("routine", "complaint"), ("threat_to_life_health",)),
    ("KZ-TAX", 0.15, ("routine", "complaint"), ("taxpayer_request",)),
    ("KZ-LABOUR", 0.13, ("complaint", "routine"), ("prosecutor_order",)),
    ("KZ-ECO", 0.12, ("routine",), ("environmental_threat",)),
    ("KZ-TRADE", 0.10, ("routine", "complaint"), ("prosecutor_order",)),
    ("KZ-BUILD", 0.10, ("routine",), ("threat_to_life_health",)),
    ("KZ-SECURITY", 0.06, ("routine",), ("national_security", "criminal_case")),
)


def prohibited(ts: float, size: str, basis: str) -> bool:
    """The contract's moratorium rule, independently of ``detectors/``."""
    day = datetime.fromtimestamp(ts, LOCAL).date()
    return MORATORIUM[0] <= day < MORATORIUM[1] and size in PROTECTED and basis not in EXEMPT


def in_moratorium(ts: float) -> bool:
    return MORATORIUM[0] <= local_date(ts) < MORATORIUM[1]


class Registry:
    """Businesses by size, and when each was last visited on a plan."""

    def __init__(self, world: World, count: int) -> None:
        rng = world.rng("businesses")
        self.by_size: dict[str, list[str]] = {size: [] for size, _ in SIZE_SHARES}
        self.size: dict[str, str] = {}
        for n in range(count):
            roll, size = rng.random(), "large"
            for name, share in SIZE_SHARES:
                roll -= share
                if roll < 0:
                    size = name
                    break
            business = f"BIZ-{n:07d}"
            self.by_size[size].append(business)
            self.size[business] = size
        self.last_plan: dict[str, float] = {}

    def planned(self, rng: random.Random, sizes: tuple[str, ...], ts: float) -> str:
        """A business of one of ``sizes`` not planned in the last REVISIT_DAYS days."""
        for _ in range(50):
            pool = self.by_size[rng.choice(sizes)]
            business = rng.choice(pool)
            if ts - self.last_plan.get(business, -1e18) > REVISIT_DAYS * DAY:
                self.last_plan[business] = ts
                return business
        return business


@dataclass
class Inspector:
    id: str
    authority: str
    bases: tuple[str, ...]
    exempt: tuple[str, ...]
    rate: float  # inspections per working day
    #: "violator", "harasser", "volume", or "onset" (the onset_rogue family)
    rogue: str | None = None
    rogue_from: float = 0.0
    #: An honest inspector whose work shifts at the moratorium's "start" or "end".
    edge: str | None = None
    #: Share of visits to micro and small businesses on everyday grounds, where a
    #: habit holds (an onset rogue always; an edge inspector outside the moratorium).
    habit: float = 0.0
    #: The authority's volume inside the moratorium, as a share of its usual.
    cut: float = 1.0
    cover: bool = False  # some campaigns have a visit on an exempt ground (harass_cover)
    typical: float = 0.0  # its authority's median pace (a volume rogue's yardstick)


def inspection(
    world: World, ts: float, business: str, size: str, who: Inspector, kind: str, basis: str
) -> Emit:
    event = {
        "event_id": world.event_id("inspections"),
        "business": business,
        "business_size": size,
        "authority": who.authority,
        "inspector": who.id,
        "kind": kind,
        "basis": basis,
    }
    if prohibited(ts, size, basis):
        world.finding("moratorium_violation", business, ts).add(event["event_id"])
    return ts, "inspections", event


def _workdays(world: World, first: float = 0.0) -> Iterator[date]:
    day = local_date(max(world.start, first))
    while local_ts(day) < world.end:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def _rate(
    who: Inspector, rng: random.Random, rogue: str | None, during: bool, cfg: SimConfig
) -> float:
    """Inspections expected on one working day."""
    # An onset rogue ignores the moratorium, its volume cut included.
    cut = who.cut if during and rogue != "onset" else 1.0
    if rogue == "volume":
        # Three to four times a peer's volume: its authority's median pace, or its own
        # if busier (three times its own pace made a slow inspector's "rogue" volume
        # 1.9 times the peers', inside the ordinary spread of habits).
        return max(who.rate, who.typical) * cut * rng.uniform(3, 4)
    rate = who.rate * cut
    if rogue in ("violator", "harasser"):
        return rate * 1.5
    return rate


def _mark(world: World, finding: Finding | None, who: Inspector, emit: Emit) -> Finding:
    """Add a visit that belongs to the inspector's pattern to its finding."""
    if finding is None:
        finding = world.finding("inspector_anomaly", who.id, emit[0])
    # A day's visits are drawn in no particular order: the finding starts at the
    # earliest one of the pattern.
    finding.start = min(finding.start, emit[0])
    finding.add(emit[2]["event_id"])
    return finding


def inspector_actor(world: World, cfg: SimConfig, reg: Registry, who: Inspector) -> Actor:
    """One inspector's working life; a rogue one turns at ``rogue_from``."""
    rng = world.rng(f"inspector/{who.id}")
    follow_ups: list[Emit] = []
    finding = None
    waited, next_target = 0, 0  # working days since the last hounded target, and the gap
    for day in _workdays(world):
        during = MORATORIUM[0] <= day < MORATORIUM[1]
        rogue = who.rogue if who.rogue and local_ts(day) >= who.rogue_from else None
        todays: list[Emit] = [f for f in follow_ups if local_date(f[0]) == day]
        follow_ups = [f for f in follow_ups if local_date(f[0]) > day]
        for _ in range(poisson(rng, _rate(who, rng, rogue, during, cfg))):
            ts = local_ts(day, rng.uniform(9, 17))
            emit = _visit(world, rng, reg, who, ts, rogue, during, cfg)
            todays.append(emit)
            size, basis = emit[2]["business_size"], emit[2]["basis"]
            if rogue == "volume" or (
                rogue in ("violator", "onset") and prohibited(ts, size, basis)
            ):
                finding = _mark(world, finding, who, emit)
            later = _office_hours(local_ts(day + timedelta(days=rng.randint(14, 40)), 12))
            # An honest inspector plans no follow-up the moratorium would prohibit: the
            # check is on the follow-up's own date (it was on the first visit's, so
            # December visits had prohibited follow-ups in January, unlabelled as rogue).
            if (
                rng.random() < 0.12
                and basis != "follow_up"
                and not (in_moratorium(later) and size in PROTECTED)
            ):
                follow_ups.append(
                    inspection(
                        world, later, emit[2]["business"], size, who, "unscheduled", "follow_up"
                    )
                )
        # Hounding: a harasser always, a violator where inspecting small businesses
        # is lawful (outside the moratorium his predation shows as hounding). A new
        # target on the first day, then every HOUND_GAP working days; only a campaign
        # that ends inside the world (visits after the end would be in the truth, not
        # the stream). (A new target on 8 % of days left one harasser in 300 with a
        # single hounded business in six months: a repeat inspection, not a habit.)
        hounds = rogue == "harasser" or (rogue == "violator" and not during)
        if hounds and local_ts(day) + 46 * DAY < world.end and waited >= next_target:
            waited, next_target = 0, rng.randint(*HOUND_GAP)
            sizes = (
                ("micro", "small") if rogue == "violator" else ("micro", "small", "small", "medium")
            )
            campaign = _harass(world, rng, reg, who, local_ts(day, rng.uniform(9, 17)), sizes)
            for emit in campaign:
                finding = _mark(world, finding, who, emit)
            todays += campaign
        waited += 1
        follow_ups += [e for e in todays if local_date(e[0]) > day]
        yield from sorted((e for e in todays if local_date(e[0]) == day), key=lambda e: e[0])
        follow_ups.sort(key=lambda e: e[0])


def _habit(who: Inspector, rogue: str | None, day: date) -> bool:
    """Does the inspector's small-business habit hold on ``day``?"""
    if rogue == "onset":
        return True
    if who.edge == "start":
        return day < MORATORIUM[0]
    if who.edge == "end":
        return day >= MORATORIUM[1]
    return False


def _visit(
    world: World,
    rng: random.Random,
    reg: Registry,
    who: Inspector,
    ts: float,
    rogue: str | None,
    during: bool,
    cfg: SimConfig,
) -> Emit:
    if rogue == "violator" and during and rng.random() < PREDATOR_SHARE:
        sizes, basis = ("micro", "small"), rng.choice(EVERYDAY)
    elif _habit(who, rogue, local_date(ts)) and rng.random() < who.habit:
        sizes, basis = ("micro", "small"), rng.choice(who.bases)
    elif during:
        roll = rng.random()
        if roll < cfg.violation_share:  # an ordinary inspector's slip
            sizes, basis = ("micro", "small"), rng.choice(who.bases)
        elif roll < 0.3 + (0.2 if who.authority == "KZ-FIRE" else 0):
            sizes, basis = ("micro", "small"), rng.choice(who.exempt)
        else:
            sizes, basis = ("medium", "large"), rng.choice(who.bases + who.exempt)
    else:
        sizes = ("micro", "micro", "small", "small", "medium", "large")
        basis = rng.choice(who.bases * 3 + who.exempt)
    business = reg.planned(rng, sizes, ts)
    kind = (
        "scheduled"
        if basis == "routine"
        else rng.choice(("unscheduled", "unscheduled", "preventive"))
    )
    return inspection(world, ts, business, reg.size[business], who, kind, basis)


def _harass(
    world: World,
    rng: random.Random,
    reg: Registry,
    who: Inspector,
    first: float,
    sizes: tuple[str, ...],
) -> list[Emit]:
    """Three to five visits to one business within 20-45 days (a true repeat pattern)."""
    business = reg.planned(rng, sizes, first)
    size = reg.size[business]
    # Up to 42 days: moving a visit off a weekend adds at most 2.4 days, and all
    # visits must stay within the 45 days that define a repeat inspection.
    window = rng.uniform(20, 42)
    times = [first, *sorted(first + rng.uniform(1, window) * DAY for _ in range(rng.randint(2, 4)))]
    bases = [rng.choice(EVERYDAY) for _ in times]
    if who.cover and rng.random() < COVER_SHARE:
        # A lawful-sounding ground for one later visit: the authority's first exempt
        # visit to the business opens a matter of its own, so the pattern stands.
        bases[rng.randrange(1, len(bases))] = rng.choice(who.exempt)
    finding = world.finding("repeat_inspection", business, first)
    visits = []
    for ts, basis in zip(times, bases, strict=True):
        ts = _office_hours(ts)
        emit = inspection(world, ts, business, size, who, "unscheduled", basis)
        finding.add(emit[2]["event_id"])
        visits.append(emit)
    return visits


def _office_hours(ts: float) -> float:
    """The same moment moved into office hours of a working day (never earlier)."""
    day = local_date(ts)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    moment = datetime.fromtimestamp(ts, LOCAL)
    if day == moment.date() and 9 <= moment.hour < 17:
        # Already in office hours: unchanged. Rebuilding it from hours and minutes
        # dropped the seconds (and local_ts's float split can lose one more), so a
        # visit came up to a minute before the finding's start that it was made from.
        return ts
    return local_ts(day, min(17.0, max(9.0, moment.hour + moment.minute / 60)))


def _converging(
    world: World,
    rng: random.Random,
    reg: Registry,
    inspectors: list[Inspector],
    sizes: tuple[str, ...],
    days: float,
    exempt_share: float,
) -> Actor:
    """Three or four authorities visit one business within ``days`` (a true repeat pattern).

    Each visit is an ordinary inspector of another authority, on an everyday ground
    or, on ``exempt_share`` of them (and at least one when it is above 0), an exempt
    one. Inside the moratorium a visit to a micro or small business claims an exempt
    ground (the only one left), so the pile-on breaks no rule by itself and leaves no
    honest inspector a violation.
    """
    # All of it inside the world (a visit after its end would be in the truth but not
    # in the stream: a short world's pile-on once had two of its three visits).
    room = max(0.0, world.end - world.start - (days + 3) * DAY)
    first = _office_hours(world.start + rng.uniform(0.05, 0.95) * room)
    business = reg.planned(rng, sizes, first)
    size = reg.size[business]
    finding = world.finding("repeat_inspection", business, first)
    by_authority: dict[str, list[Inspector]] = {}
    for who in inspectors:
        if not who.rogue:
            by_authority.setdefault(who.authority, []).append(who)
    chosen = rng.sample(sorted(by_authority), rng.randint(3, 4))
    times = [first, *sorted(_office_hours(first + rng.uniform(1, days) * DAY) for _ in chosen[1:])]
    exempt = {n for n in range(len(chosen)) if rng.random() < exempt_share}
    if exempt_share and not exempt:
        exempt.add(rng.randrange(len(chosen)))
    for n, (ts, authority) in enumerate(zip(times, chosen, strict=True)):
        who = rng.choice(by_authority[authority])
        if n in exempt or (in_moratorium(ts) and size in PROTECTED):
            basis = rng.choice((*who.exempt, "prosecutor_order"))  # a prosecutor may order any
        else:
            basis = rng.choice(who.bases)
        kind = "scheduled" if basis == "routine" else "unscheduled"
        emit = inspection(world, ts, business, size, who, kind, basis)
        finding.add(emit[2]["event_id"])
        yield emit


def pile_on(world: World, reg: Registry, inspectors: list[Inspector], index: int) -> Actor:
    """Several authorities visit one business within 35 days, on everyday grounds."""
    rng = world.rng(f"pile-on/{index}")
    yield from _converging(world, rng, reg, inspectors, ("micro", "small", "medium"), 35, 0.0)


def multi_authority(world: World, reg: Registry, inspectors: list[Inspector], index: int) -> Actor:
    """Three or four authorities visit one business within three weeks, one or more on
    an exempt ground (a true repeat pattern: the grounds do not make the visits fewer)."""
    rng = world.rng(f"multi-authority/{index}")
    # Within three weeks: 20 days, plus at most 2.4 moving a visit off a weekend.
    sizes = ("micro", "small", "small", "medium")
    yield from _converging(world, rng, reg, inspectors, sizes, 20, 0.4)


def lawful_repeats(
    world: World, reg: Registry, inspectors: list[Inspector], index: int, exempt: bool
) -> Actor:
    """Lawful look-alikes: an inspection and its follow-ups, or visits on exempt grounds."""
    rng = world.rng(f"lawful/{exempt}/{index}")
    # All of it inside the world, as a pile-on (the last visit within 40 days).
    room = max(0.0, world.end - world.start - 43 * DAY)
    first = _office_hours(world.start + rng.uniform(0.05, 0.95) * room)
    if exempt:
        who = rng.choice([i for i in inspectors if not i.rogue])
        business = reg.planned(rng, ("micro", "small", "medium"), first)
        bases = [rng.choice(who.exempt)] * rng.randint(3, 4)
        world.lawful_as("exempt_case", business)
    else:  # follow-ups of a medium or large business (lawful at any time)
        who = rng.choice([i for i in inspectors if not i.rogue])
        business = reg.planned(rng, ("medium", "large"), first)
        bases = ["routine"] + ["follow_up"] * rng.randint(1, 2)
        world.lawful_as("follow_up_chain", business)
    times = [first, *sorted(_office_hours(first + rng.uniform(7, 40) * DAY) for _ in bases[1:])]
    for ts, basis in zip(times, bases, strict=True):
        kind = "scheduled" if basis == "routine" else "unscheduled"
        yield inspection(world, ts, business, reg.size[business], who, kind, basis)


def _spans(world: World, edge: date) -> bool:
    """Does the world hold EDGE_MARGIN_DAYS on each side of ``edge``?"""
    at = local_ts(edge)
    return world.start + EDGE_MARGIN_DAYS * DAY <= at <= world.end - EDGE_MARGIN_DAYS * DAY


def _place_rogues(world: World, cfg: SimConfig, scale: float, inspectors: list[Inspector]) -> None:
    """Pick the rogue inspectors, and when each turns."""
    rng = world.rng("inspectors/rogues")
    kinds = ("violator", "harasser", "volume")
    span = world.end - world.start
    # The part of the world inside the moratorium, where a violator has a rule to break.
    inside = (max(world.start, local_ts(MORATORIUM[0])), min(world.end, local_ts(MORATORIUM[1])))
    for n, who in enumerate(rng.sample(inspectors, cfg.scaled(cfg.rogue_inspectors_n, scale))):
        who.rogue = kinds[n % len(kinds)]
        who.rogue_from = world.start + rng.uniform(0, 0.3) * span
        # A violator turns inside the moratorium, with 45 days of it left to break (a
        # habit carried over its start is the onset_rogue family). With too little of it
        # in the world, inspecting small businesses is lawful around it, and his
        # predation shows as hounding them instead (inspector_actor).
        if who.rogue == "violator" and inside[1] - inside[0] >= 60 * DAY:
            who.rogue_from = min(max(who.rogue_from, inside[0]), inside[1] - 45 * DAY)
        if who.rogue == "harasser" and cfg.has("harass_cover"):
            who.cover = True


def add_inspections(world: World, cfg: SimConfig, scale: float) -> None:
    """Put the inspectors and the inspection patterns of the world in place."""
    rng = world.rng("inspectors")
    total = cfg.scaled(cfg.inspectors_n, scale)
    # Enough businesses that no one is planned twice within REVISIT_DAYS, however many
    # inspectors: at 600 per inspector the medium/large pool lasts the moratorium.
    # (Fewer, and planned visits fell back on recent ones: unlabelled repeats.)
    reg = Registry(
        world, max(cfg.scaled(cfg.businesses_n, scale), total * BUSINESSES_PER_INSPECTOR)
    )
    inspectors: list[Inspector] = []
    for authority, share, bases, exempt in AUTHORITIES:
        for k in range(max(2, round(total * share))):
            inspectors.append(
                Inspector(
                    f"{authority}-I{k:03d}",
                    authority,
                    bases,
                    exempt,
                    rng.uniform(*cfg.inspections_per_day),
                )
            )
    for authority, *_ in AUTHORITIES:
        members = [who for who in inspectors if who.authority == authority]
        typical = statistics.median(who.rate for who in members)
        for who in members:
            who.typical = typical
    _place_rogues(world, cfg, scale, inspectors)
    _place_families(world, cfg, scale, inspectors)
    inside = max(world.start, local_ts(MORATORIUM[0])) < min(world.end, local_ts(MORATORIUM[1]))
    for who in inspectors:
        if not who.rogue and who.rate >= BUSY_RATE * cfg.inspections_per_day[1]:
            world.lawful_as("busy_inspector", who.id)
        if not who.rogue and who.authority == "KZ-FIRE" and inside:
            world.lawful_as("fire_life_safety", who.id)
    for who in inspectors:
        world.add(f"inspector/{who.id}", inspector_actor(world, cfg, reg, who))
    for i in range(cfg.scaled(cfg.pile_ons_n, scale)):
        world.add(f"pile-on/{i}", pile_on(world, reg, inspectors, i))
    for i in range(cfg.scaled(cfg.follow_up_chains_n, scale)):
        world.add(f"follow-ups/{i}", lawful_repeats(world, reg, inspectors, i, exempt=False))
    for i in range(cfg.scaled(cfg.exempt_repeats_n, scale)):
        world.add(f"exempt/{i}", lawful_repeats(world, reg, inspectors, i, exempt=True))
    if cfg.has("multi_authority"):
        for i in range(cfg.scaled(cfg.multi_authority_n, scale)):
            world.add(f"multi-authority/{i}", multi_authority(world, reg, inspectors, i))


def _place_families(
    world: World, cfg: SimConfig, scale: float, inspectors: list[Inspector]
) -> None:
    """Onset rogues, honest inspectors at the edges, the moratorium's volume cut."""
    honest = [who for who in inspectors if not who.rogue]
    if cfg.has("onset_rogue") and _spans(world, MORATORIUM[0]):
        rng = world.rng("inspectors/onset")
        for who in rng.sample(honest, min(len(honest) // 4, cfg.scaled(cfg.onset_rogues_n, scale))):
            who.rogue, who.rogue_from = "onset", world.start
            who.habit = rng.uniform(*HABIT_SHARE)
            honest.remove(who)
    edges = [edge for edge in ("start", "end") if _spans(world, MORATORIUM[edge == "end"])]
    if cfg.has("edge_honest") and edges:
        rng = world.rng("inspectors/edge")
        # Individuals, one per authority at most: not a whole authority moving.
        chosen = rng.sample(honest, len(honest))
        chosen = [
            w for n, w in enumerate(chosen) if w.authority not in {v.authority for v in chosen[:n]}
        ]
        for who in chosen[: cfg.scaled(cfg.edge_honest_n, scale)]:
            world.lawful_as("edge_honest", who.id)
            who.edge = edges[0]
            who.habit = rng.uniform(*HABIT_SHARE)
            if who.edge == "start":  # busy, at the top of the ordinary range
                who.rate = rng.uniform(0.9, 1.0) * cfg.inspections_per_day[1]
    # Each authority's volume inside the moratorium (SimConfig.moratorium_cut; none by
    # default). The domain notes: inspections fell about five times in 2020.
    rng = world.rng("inspectors/cut")
    cuts = {authority: rng.uniform(*cfg.moratorium_cut) for authority, *_ in AUTHORITIES}
    for who in inspectors:
        who.cut = cuts[who.authority]
