"""The inspections world: authorities, their inspectors, and the businesses they visit.

Ordinary inspectors work a risk-based plan: during the moratorium they visit
medium and large businesses, and micro or small ones only on exempt grounds
(with a rare slip); outside it they visit every size. A business is not put on
the plan again within 120 days.

True patterns (truth.json):

- ``moratorium_violation``: computed for *every* inspection by this module's
  own reading of the contract's rule (local date in Asia/Almaty, window
  [2020-01-01, 2023-01-01), micro/small, basis not exempt), one per event.
- ``repeat_inspection``: a business visited three to five times within 20-45
  days on non-exempt, non-follow-up grounds, by a harassing inspector or by
  several authorities piling on; ``start`` is the first of those visits.
- ``inspector_anomaly``: an inspector who, from some day on, violates the
  moratorium at a high rate, harasses a few businesses, or works at three to
  four times a peer's volume; ``start`` is the first such inspection.

Lawful look-alikes: an inspection and its follow-ups, repeated visits on
exempt grounds, fire-safety inspectors who visit many small businesses on
exempt grounds, busy inspectors within the normal spread.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from simulator.config import SimConfig
from simulator.core import DAY, LOCAL, Actor, Emit, World, local_date, local_ts, poisson

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
    rogue: str | None = None  # "violator", "harasser", "volume"
    rogue_from: float = 0.0


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


def inspector_actor(world: World, cfg: SimConfig, reg: Registry, who: Inspector) -> Actor:
    """One inspector's working life; a rogue one turns at ``rogue_from``."""
    rng = world.rng(f"inspector/{who.id}")
    follow_ups: list[Emit] = []
    finding = None
    for day in _workdays(world):
        rogue = who.rogue if who.rogue and local_ts(day) >= who.rogue_from else None
        rate = who.rate * (rng.uniform(3, 4) if rogue == "volume" else 1.5 if rogue else 1)
        todays: list[Emit] = [f for f in follow_ups if local_date(f[0]) == day]
        follow_ups = [f for f in follow_ups if local_date(f[0]) > day]
        for _ in range(poisson(rng, rate)):
            ts = local_ts(day, rng.uniform(9, 17))
            emit = _visit(world, rng, reg, who, ts, rogue, cfg)
            todays.append(emit)
            if rogue and finding is None:
                finding = world.finding("inspector_anomaly", who.id, ts)
            if rogue and finding is not None:
                # A day's visits are drawn in no particular order: the finding starts
                # at the earliest (it took the first one drawn, often not the first).
                finding.start = min(finding.start, ts)
                finding.add(emit[2]["event_id"])
            size = emit[2]["business_size"]
            later = _office_hours(local_ts(day + timedelta(days=rng.randint(14, 40)), 12))
            # An honest inspector plans no follow-up the moratorium would prohibit: the
            # check is on the follow-up's own date (it was on the first visit's, so
            # December visits had prohibited follow-ups in January, unlabelled as rogue).
            if (
                rng.random() < 0.12
                and emit[2]["basis"] != "follow_up"
                and not (in_moratorium(later) and size in PROTECTED)
            ):
                follow_ups.append(
                    inspection(
                        world, later, emit[2]["business"], size, who, "unscheduled", "follow_up"
                    )
                )
        # A new target to hound; only a campaign that ends inside the world (its
        # visits after the end would be in the truth but never in the stream).
        if rogue == "harasser" and rng.random() < 0.08 and local_ts(day) + 46 * DAY < world.end:
            todays += _harass(world, rng, reg, who, local_ts(day, rng.uniform(9, 17)))
        follow_ups += [e for e in todays if local_date(e[0]) > day]
        yield from sorted((e for e in todays if local_date(e[0]) == day), key=lambda e: e[0])
        follow_ups.sort(key=lambda e: e[0])


def _visit(
    world: World,
    rng: random.Random,
    reg: Registry,
    who: Inspector,
    ts: float,
    rogue: str | None,
    cfg: SimConfig,
) -> Emit:
    during = in_moratorium(ts)
    if rogue == "violator" and rng.random() < 0.6:  # small businesses, everyday grounds
        sizes, basis = ("micro", "small"), rng.choice(("routine", "complaint"))
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
    world: World, rng: random.Random, reg: Registry, who: Inspector, first: float
) -> list[Emit]:
    """Three to five visits to one business within 20-45 days (a true repeat pattern)."""
    business = reg.planned(rng, ("micro", "small", "small", "medium"), first)
    size = reg.size[business]
    # Up to 42 days: moving a visit off a weekend adds at most 2.4 days, and all
    # visits must stay within the 45 days that define a repeat inspection.
    window = rng.uniform(20, 42)
    times = [first, *sorted(first + rng.uniform(1, window) * DAY for _ in range(rng.randint(2, 4)))]
    finding = world.finding("repeat_inspection", business, first)
    visits = []
    for ts in times:
        ts = _office_hours(ts)
        emit = inspection(
            world, ts, business, size, who, "unscheduled", rng.choice(("routine", "complaint"))
        )
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


def pile_on(world: World, reg: Registry, inspectors: list[Inspector], index: int) -> Actor:
    """Several authorities visit one business again and again (a true repeat pattern)."""
    rng = world.rng(f"pile-on/{index}")
    first = _office_hours(world.start + rng.uniform(0.05, 0.8) * (world.end - world.start))
    business = reg.planned(rng, ("micro", "small", "medium"), first)
    size = reg.size[business]
    finding = world.finding("repeat_inspection", business, first)
    later = (_office_hours(first + rng.uniform(2, 35) * DAY) for _ in range(rng.randint(2, 3)))
    times = [first, *sorted(later)]
    ordinary = [i for i in inspectors if not i.rogue]
    for ts in times:
        who = rng.choice(ordinary)
        emit = inspection(
            world, ts, business, size, who, "unscheduled", rng.choice(("routine", "complaint"))
        )
        finding.add(emit[2]["event_id"])
        yield emit


def lawful_repeats(
    world: World, reg: Registry, inspectors: list[Inspector], index: int, exempt: bool
) -> Actor:
    """Lawful look-alikes: an inspection and its follow-ups, or visits on exempt grounds."""
    rng = world.rng(f"lawful/{exempt}/{index}")
    first = _office_hours(world.start + rng.uniform(0.05, 0.8) * (world.end - world.start))
    if exempt:
        who = rng.choice([i for i in inspectors if not i.rogue])
        business = reg.planned(rng, ("micro", "small", "medium"), first)
        bases = [rng.choice(who.exempt)] * rng.randint(3, 4)
    else:  # follow-ups of a medium or large business (lawful at any time)
        who = rng.choice([i for i in inspectors if not i.rogue])
        business = reg.planned(rng, ("medium", "large"), first)
        bases = ["routine"] + ["follow_up"] * rng.randint(1, 2)
    times = [first, *sorted(_office_hours(first + rng.uniform(7, 40) * DAY) for _ in bases[1:])]
    for ts, basis in zip(times, bases, strict=True):
        kind = "scheduled" if basis == "routine" else "unscheduled"
        yield inspection(world, ts, business, reg.size[business], who, kind, basis)


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
    kinds = ("violator", "harasser", "volume")
    for n, who in enumerate(rng.sample(inspectors, cfg.scaled(cfg.rogue_inspectors_n, scale))):
        who.rogue = kinds[n % len(kinds)]
        who.rogue_from = world.start + rng.uniform(0, 0.3) * (world.end - world.start)
        if who.rogue == "violator":  # violating needs a moratorium to break
            who.rogue_from = min(
                who.rogue_from, max(world.start, local_ts(MORATORIUM[1]) - 60 * DAY)
            )
    for who in inspectors:
        world.add(f"inspector/{who.id}", inspector_actor(world, cfg, reg, who))
    for i in range(cfg.scaled(cfg.pile_ons_n, scale)):
        world.add(f"pile-on/{i}", pile_on(world, reg, inspectors, i))
    for i in range(cfg.scaled(cfg.follow_up_chains_n, scale)):
        world.add(f"follow-ups/{i}", lawful_repeats(world, reg, inspectors, i, exempt=False))
    for i in range(cfg.scaled(cfg.exempt_repeats_n, scale)):
        world.add(f"exempt/{i}", lawful_repeats(world, reg, inspectors, i, exempt=True))
