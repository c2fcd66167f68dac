"""The payroll world: employers accruing and paying wages, hiring and letting go.

The stream starts after most people were hired: an employer's staff first
shows in its accruals. Wages for a month are accrued at its end and due by the
10th of the next (local dates).

True patterns (truth.json):

- ``salary_arrears``: from some month on, an employer pays part of its staff
  nothing, or everyone only half; ``start`` is the first missed due date (the
  local midnight that ends the due day).
- ``payroll_anomaly``: an employer whose pay day drifts later month after month
  while the wages it accrues shrink, until it misses the due date (then it is
  also ``salary_arrears``); ``start`` is its first drifted payment.
- ``mass_layoff``: 30-80 % of the staff (at least five people) terminated for
  redundancy within one to three weeks; ``start`` is the first termination.

Lawful hard cases: wages in two instalments, whole-tenge rounding, payment on
the due day itself (often delivered hours late), seasonal staff whose
contracts end together, ordinary churn, a redundancy or two.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field
from datetime import date, timedelta

from simulator.config import SimConfig
from simulator.core import (
    DAY,
    Actor,
    Emit,
    Finding,
    World,
    add_months,
    local_ts,
    period_of,
    poisson,
)

#: Employer sizes: (share, fewest, most employees). Most employers are small.
SIZES = ((0.55, 2, 10), (0.35, 11, 50), (0.09, 51, 250), (0.01, 251, 600))


@dataclass
class Staff:
    """One employee: id, monthly wage, and wages accrued but not yet paid."""

    id: str
    wage: float
    seasonal: bool = False
    leaves: float = math.inf  # termination time, once decided
    accrued: dict[str, tuple[float, str]] = field(default_factory=dict)  # period -> (amount, id)


@dataclass
class Plan:
    """What an employer does beyond ordinary life (at most one pattern)."""

    pattern: str | None = None  # "arrears", "creeping", "layoff", "seasonal"
    from_month: date | None = None  # arrears, creeping: the first period affected
    share: float = 1.0  # arrears: share of staff unpaid; layoff: share let go
    partial: float = 0.0  # arrears: share of wages still paid to the affected
    drift: float = 0.0  # creeping: days later each month
    at: float = 0.0  # layoff, seasonal: when it starts
    days: int = 0  # layoff: over how many days


@dataclass
class Employer:
    id: str
    staff: list[Staff]
    pay_day: int
    style: str  # "normal", "instalments", "rounding", "due_day"
    plan: Plan = field(default_factory=Plan)
    hired: int = 0


def _event(world: World, ts: float, kind: str, emp: Employer, person: Staff, **fields) -> Emit:
    event = {
        "event_id": world.event_id("payroll"),
        "type": kind,
        "employer": emp.id,
        "employee": person.id,
        **fields,
    }
    return ts, "payroll", event


def _at_work(rng: random.Random, day: date) -> float:
    return local_ts(day, rng.uniform(9, 18))


def employer_actor(world: World, cfg: SimConfig, emp: Employer) -> Actor:
    """All payroll events of one employer, a calendar month at a time, in time order."""
    rng = world.rng(f"employer/{emp.id}")
    plan = emp.plan
    month = world.start_date.replace(day=1)
    carried: list[Emit] = []  # events that fall after the month they were planned in
    arrears: Finding | None = None
    steps = 0  # creeping: months of drift so far
    while local_ts(month) < world.end:
        following = add_months(month, 1)
        events = carried
        # Wages of the previous month, due by the due day of this one.
        previous = add_months(month, -1)
        due = local_ts(month.replace(day=cfg.due_day) + timedelta(days=1))
        drifting = plan.pattern == "creeping" and previous >= plan.from_month
        steps += drifting
        pay_day = min(28, round(emp.pay_day + plan.drift * steps))
        owed: list[str] = []
        paid: list[Emit] = []
        for person in emp.staff:
            amount, accrual_id = person.accrued.pop(period_of(previous), (0.0, ""))
            if not accrual_id:
                continue
            fraction = 1.0
            if plan.pattern == "arrears" and previous >= plan.from_month and _hit(person, plan):
                fraction = plan.partial
            made = (
                _payments(world, rng, emp, person, previous, month, pay_day, amount * fraction)
                if fraction > 0
                else []
            )
            paid += made
            # Owed: short-paid, or paid on or after the due instant. Not "pay_day >
            # due_day": a drifted pay day of 11 with the usual day-early jitter still
            # pays on the 10th, in time, and such accruals were labelled arrears.
            if fraction < 1.0 or any(e[0] >= due for e in made):
                owed.append(accrual_id)
        events += paid
        if drifting and steps == 1 and paid:
            creeping = world.finding("payroll_anomaly", emp.id, min(e[0] for e in paid))
            for emit in sorted(paid, key=lambda e: e[0]):
                creeping.add(emit[2]["event_id"])
        if owed and due + 2 * DAY < world.end:
            arrears = arrears or world.finding("salary_arrears", emp.id, due)
            for accrual_id in owed:
                arrears.add(accrual_id)
        # This month's comings and goings, then its accruals on the last day.
        events += _comings_and_goings(world, rng, cfg, emp, month)
        last_day = following - timedelta(days=1)
        cut = 1.0 - 0.06 * steps if drifting else 1.0  # wages shrink as pay drifts
        for person in emp.staff:
            if person.leaves < local_ts(month):
                continue
            emit = _event(
                world,
                local_ts(last_day, 17 + rng.random()),
                "accrual",
                emp,
                person,
                period=period_of(month),
                amount=round(person.wage * cut * rng.uniform(0.97, 1.05), 2),
            )
            person.accrued[period_of(month)] = (emit[2]["amount"], emit[2]["event_id"])
            events.append(emit)
        emp.staff = [p for p in emp.staff if p.leaves >= local_ts(month) or p.accrued]
        boundary = local_ts(following)
        events.sort(key=lambda e: e[0])
        carried = [e for e in events if e[0] >= boundary]
        yield from (e for e in events if e[0] < boundary)
        month = following
    yield from carried


def _hit(person: Staff, plan: Plan) -> bool:
    """Is this employee among the share an arrears plan leaves unpaid? (stable per id)"""
    return zlib.crc32(person.id.encode()) / 0xFFFFFFFF < plan.share


def _payments(
    world: World,
    rng: random.Random,
    emp: Employer,
    person: Staff,
    period: date,
    month: date,
    pay_day: int,
    amount: float,
) -> list[Emit]:
    """The payment(s) of one employee's wages for ``period``, made in ``month``."""
    jitter = 0 if emp.style == "due_day" else rng.choice((-1, 0, 0, 0))
    day = month.replace(day=max(1, min(28, pay_day + jitter)))
    label = period_of(period)
    if emp.style == "instalments":
        first = round(amount * rng.uniform(0.5, 0.7), 2)
        return [
            _event(
                world,
                _at_work(rng, month.replace(day=min(day.day, 5))),
                "payment",
                emp,
                person,
                period=label,
                amount=first,
            ),
            _event(
                world,
                _at_work(rng, day),
                "payment",
                emp,
                person,
                period=label,
                amount=round(amount - first, 2),
            ),
        ]
    if emp.style == "rounding":  # whole tenge, down or to the nearest
        amount = float(math.floor(amount) if rng.random() < 0.5 else round(amount))
    when = local_ts(day, rng.uniform(15, 21)) if emp.style == "due_day" else _at_work(rng, day)
    return [_event(world, when, "payment", emp, person, period=label, amount=round(amount, 2))]


def _comings_and_goings(
    world: World, rng: random.Random, cfg: SimConfig, emp: Employer, month: date
) -> list[Emit]:
    events: list[Emit] = []
    start, end = local_ts(month), local_ts(add_months(month, 1))
    days = (add_months(month, 1) - month).days

    def some_day() -> float:
        return _at_work(rng, month + timedelta(days=rng.randrange(days)))

    def leave(person: Staff, when: float, reason: str) -> Emit:
        person.leaves = when
        emit = _event(world, when, "termination", emp, person, reason=reason)
        events.append(emit)
        return emit

    active = [p for p in emp.staff if p.leaves == math.inf]
    for person in active:
        if rng.random() < cfg.churn_per_month:
            leave(person, some_day(), "voluntary" if rng.random() < 0.9 else "misconduct")
    plan = emp.plan
    if plan.pattern == "layoff" and start <= plan.at < end:
        victims = [p for p in active if p.leaves == math.inf]
        rng.shuffle(victims)
        # ceil, not round: rounding down cut 13 of 44 (29.5 %), under the 30 % a
        # mass layoff is defined by, and the truth labelled it anyway.
        count = min(len(victims), max(5, math.ceil(len(active) * plan.share)))
        finding = world.finding("mass_layoff", emp.id, plan.at)
        times = [plan.at, *sorted(plan.at + rng.uniform(0, plan.days) * DAY for _ in range(count))]
        for person, when in zip(victims[:count], times, strict=False):
            finding.add(leave(person, when, "redundancy")[2]["event_id"])
    if plan.pattern == "seasonal" and start <= plan.at < end:
        for person in active:
            if person.seasonal and person.leaves == math.inf:
                leave(person, plan.at + rng.uniform(0, 8) * DAY, "contract_end")
    if len(active) > 3 and rng.random() < 0.02:  # a redundancy or two: not a mass layoff
        for person in rng.sample(active, min(2, max(1, len(active) // 10))):
            if person.leaves == math.inf:
                leave(person, some_day(), "redundancy")
    for _ in range(poisson(rng, len(active) * cfg.hires_per_month)):
        emp.hired += 1
        person = Staff(f"{emp.id}-W{emp.hired:04d}", emp.staff[0].wage * rng.uniform(0.7, 1.3))
        emp.staff.append(person)
        events.append(_event(world, some_day(), "hire", emp, person))
    return events


def add_payroll(world: World, cfg: SimConfig, scale: float) -> None:
    """Put every employer of the world in place, with their plans."""
    rng = world.rng("employers")
    employers = [_employer(rng, cfg, n) for n in range(cfg.scaled(cfg.employers_n, scale))]
    _assign_patterns(world, cfg, scale, rng, employers)
    for emp in employers:
        world.add(f"employer/{emp.id}", employer_actor(world, cfg, emp))


def _employer(rng: random.Random, cfg: SimConfig, n: int) -> Employer:
    roll, low, high = rng.random(), 2, 10
    for share, fewest, most in SIZES:
        roll -= share
        if roll < 0:
            low, high = fewest, most
            break
    emp_id = f"EMP-{n:06d}"
    median, size = rng.uniform(150_000, 450_000), rng.randint(low, high)
    staff = [
        Staff(f"{emp_id}-W{k:04d}", rng.lognormvariate(math.log(median), 0.3)) for k in range(size)
    ]
    style, roll = "normal", rng.random()
    for share, name in (
        (cfg.instalment_share, "instalments"),
        (cfg.rounding_share, "rounding"),
        (cfg.due_day_share, "due_day"),
    ):
        roll -= share
        if roll < 0:
            style = name
            break
    pay_day = cfg.due_day if style == "due_day" else rng.randint(1, cfg.due_day - 2)
    return Employer(emp_id, staff, pay_day, style, hired=size)


def _assign_patterns(
    world: World, cfg: SimConfig, scale: float, rng: random.Random, employers: list[Employer]
) -> None:
    first = world.start_date.replace(day=1)
    months = max(1, round((world.end - world.start) / (30 * DAY)))
    span = world.end - world.start
    order = list(range(len(employers)))
    rng.shuffle(order)
    free = iter(order)

    def pick(fits) -> Employer | None:
        return next((employers[i] for i in free if fits(employers[i])), None)

    for _ in range(cfg.scaled(cfg.arrears_n, scale)):
        if emp := pick(lambda e: True):
            emp.plan = Plan(
                "arrears",
                add_months(first, rng.randint(1, max(1, months - 2))),
                share=rng.choice((0.3, 0.5, 0.8, 1.0)),
                partial=rng.choice((0.0, 0.0, 0.0, 0.5)),
            )
    for _ in range(cfg.scaled(cfg.creeping_n, scale)):
        if emp := pick(lambda e: e.style in ("normal", "rounding")):
            emp.pay_day = rng.randint(1, 3)
            emp.plan = Plan(
                "creeping",
                add_months(first, rng.randint(0, max(0, months - 5))),
                drift=rng.uniform(2.0, 3.5),
            )
    for _ in range(cfg.scaled(cfg.layoffs_n, scale)):
        if emp := pick(lambda e: len(e.staff) >= 8):
            emp.plan = Plan(
                "layoff",
                share=rng.uniform(0.3, 0.8),
                at=world.start + rng.uniform(0.1, 0.85) * span,
                days=rng.randint(1, 21),
            )
    for index in free:  # the rest: some have a seasonal wave of contract ends
        emp = employers[index]
        if rng.random() < cfg.seasonal_share and len(emp.staff) >= 4:
            for k in range(max(3, round(len(emp.staff) * rng.uniform(0.3, 0.6)))):
                emp.staff.append(Staff(f"{emp.id}-S{k:04d}", emp.staff[0].wage * 0.8, True))
            emp.plan = Plan("seasonal", at=world.start + rng.uniform(0.1, 0.8) * span)
