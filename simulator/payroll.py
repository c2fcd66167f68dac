"""The payroll world: employers accruing and paying wages, hiring and letting go.

The stream starts after most people were hired: an employer's staff first
shows in the stream's first days, paid the wages of the month before it (accrued
before the stream began, so no accrual in it stands for them), then in its
accruals. Wages for a month are accrued at its end and due by the 10th of the
next (local dates).

True patterns (truth.json):

- ``salary_arrears``: from some month on, an employer pays part of its staff
  nothing, or everyone only half; ``start`` is the first missed due date (the
  local midnight that ends the due day).
- ``payroll_anomaly``: an employer whose pay day drifts later month after month
  while the wages it accrues shrink, until it misses the due date (then it is
  also ``salary_arrears``); ``start`` is its first drifted payment.
- ``mass_layoff``: the typology of :mod:`detectors.payroll.mass_layoff`, which
  the labels follow (the plans are drawn to meet it, and tests check every
  label against the events): within 30 days, terminations for redundancy, with
  terminations for 'other' reasons within 3 days of one, reach 30 % of the
  headcount the employer had at the first of them and at least 3 people, or 50
  people at any size. ``start`` is the first termination. Families:

  - ``layoff``: an employer of 8 or more cutting 30-80 % of its staff;
  - ``department_layoff``: a large employer closing a department, 50-120
    people (often under a third of its staff);
  - ``micro_layoff`` (held out): a micro or small employer (5-15 staff)
    cutting 3 to 5 people;
  - ``disguised_layoff`` (held out): a quarter to a half of the people cut are
    recorded as leaving for 'other' reasons, on the same days as the
    redundancies (a "mutual agreement" that spares the employer notice and
    severance).

  Redundancy takes effect when the notice ends, and notice goes to a group
  at once, so half the layoffs fall on one day; in 30 % a few people on leave
  go one to three weeks later; 10 % come in two or three similar steps and
  10 % person by person, within one to three weeks (:data:`LAYOFF_TIMINGS`).

Lawful hard cases: wages in two instalments, whole-tenge rounding, payment on
the due day itself (often delivered hours late); seasonal staff whose
contracts end together; ordinary churn (quits, dismissals, and some leaving
for 'other' reasons); one or two redundancies (at a micro employer, one or two
is a large share, yet no mass layoff), once in a while; ``department_trim``: a
large employer making 6-20 people redundant, under both the share and the
absolute count. ``lawful.json`` lists the employers of each (``kuzet worlds``
counts the alerts on them).
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
    HOUR,
    Actor,
    Emit,
    Finding,
    World,
    add_months,
    local_date,
    local_ts,
    period_of,
    pick,
    poisson,
)

#: Employer sizes: (share, fewest, most employees). Most employers are small.
SIZES = ((0.55, 2, 10), (0.35, 11, 50), (0.09, 51, 250), (0.01, 251, 600))
#: How a layoff's terminations fall in time: (share of layoffs, timing). A staff
#: reduction takes effect on the date its order sets, once the notice has run (at least
#: a month in Kazakhstan), for everyone given notice together: ``one_day``. People on
#: leave or sick then go when they are back, one to three weeks later: ``stragglers``
#: (a tenth to a third of them). Some employers cut in two or three steps of similar
#: size (``staged``), some let people go one by one as work runs out (``rolling``).
LAYOFF_TIMINGS = (
    (0.5, "one_day"),
    (0.3, "stragglers"),
    (0.1, "staged"),
    (0.1, "rolling"),
)
#: Of the ordinary leavers, the share that leaves for misconduct, for 'other'
#: reasons (by agreement, retirement, ...); the rest quit.
MISCONDUCT_SHARE = 0.10
#: Chance per month that an employer makes one or two people redundant, at most once.
LONE_REDUNDANCY_PER_MONTH = 0.02


@dataclass
class Staff:
    """One employee: id, monthly wage, and wages accrued but not yet paid."""

    id: str
    wage: float
    seasonal: bool = False
    leaves: float = math.inf  # termination time, once decided
    joined: float = -math.inf  # hire time; before the stream for the first staff
    # period -> (amount, accrual id); the id is "" for wages accrued before the stream
    accrued: dict[str, tuple[float, str]] = field(default_factory=dict)


@dataclass
class Cut:
    """A planned cut of staff (a layoff, or a lawful trim): who goes, when, why."""

    family: str  # layoff, department_layoff, micro_layoff, disguised_layoff, department_trim
    labelled: bool  # a true mass layoff (truth), or a lawful look-alike
    share: float = 0.0  # of the headcount at ``at`` ...
    people: int = 0  # ... or this many people
    days: int = 1  # spread over at most this many days
    other_share: float = 0.0  # recorded as leaving for 'other' reasons
    most: int = 0  # at most this many people, unless fewer would be under 30 %
    # Filled in when the cut starts: (time, reason) of each termination still to come.
    slots: list[tuple[float, str]] | None = None
    finding: Finding | None = None


@dataclass
class Plan:
    """What an employer does beyond ordinary life (at most one pattern)."""

    pattern: str | None = None  # "arrears", "creeping", "cut", "seasonal"
    from_month: date | None = None  # arrears, creeping: the first period affected
    share: float = 1.0  # arrears: share of staff unpaid
    partial: float = 0.0  # arrears: share of wages still paid to the affected
    drift: float = 0.0  # creeping: days later each month
    at: float = 0.0  # cut, seasonal: when it starts
    cut: Cut | None = None


@dataclass
class Employer:
    id: str
    staff: list[Staff]
    pay_day: int
    style: str  # "normal", "instalments", "rounding", "due_day"
    plan: Plan = field(default_factory=Plan)
    hired: int = 0
    trimmed: bool = False  # has had its one or two ordinary redundancies


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
    # Wages of the month before the stream were accrued before it: they are paid in
    # its first days (which show the staff), but no accrual in the stream stands for them.
    before = period_of(add_months(month, -1))
    for person in emp.staff:
        person.accrued[before] = (round(person.wage * rng.uniform(0.97, 1.05), 2), "")
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
            if not amount:
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
            if accrual_id and (fraction < 1.0 or any(e[0] >= due for e in made)):
                owed.append(accrual_id)
        events += paid
        if drifting and steps == 1 and paid:
            creeping = world.finding("payroll_anomaly", emp.id, min(e[0] for e in paid))
            for emit in sorted(paid, key=lambda e: e[0]):
                creeping.add(emit[2]["event_id"])
        # Labelled when a detector can decide inside the world: the lateness (a day) after
        # the deadline, and a day of events to carry the decision. Worlds end at a local
        # midnight, as deadlines fall: "<" left arrears due two days before the end
        # unlabelled, and detectors that found them scored false positives (issue 13).
        if owed and due + 2 * DAY <= world.end:
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
            roll = rng.random()
            reason = (
                "misconduct"
                if roll < MISCONDUCT_SHARE
                else "other"
                if roll < MISCONDUCT_SHARE + cfg.other_reason_share
                else "voluntary"
            )
            leave(person, some_day(), reason)
    # Hires before the cuts: whoever is on the books when a cut starts counts in its share.
    for _ in range(poisson(rng, len(active) * cfg.hires_per_month)):
        emp.hired += 1
        person = Staff(f"{emp.id}-W{emp.hired:04d}", emp.staff[0].wage * rng.uniform(0.7, 1.3))
        person.joined = some_day()
        emp.staff.append(person)
        events.append(_event(world, person.joined, "hire", emp, person))
    plan = emp.plan
    if plan.pattern == "cut" and plan.cut is not None:
        _cut(world, rng, emp, plan, start, end, leave)
    if plan.pattern == "seasonal" and start <= plan.at < end:
        for person in active:
            if person.seasonal and person.leaves == math.inf:
                leave(person, plan.at + rng.uniform(0, 8) * DAY, "contract_end")
    if (
        plan.pattern in (None, "arrears", "creeping", "seasonal")
        and not emp.trimmed
        and len(active) > 3
        and rng.random() < LONE_REDUNDANCY_PER_MONTH
    ):
        # One or two redundancies, once: at a micro employer two may be a large share of
        # the staff, but two people are no mass layoff.
        emp.trimmed = True
        many = rng.choice((1, 2)) if len(active) <= 10 else min(2, len(active) // 10)
        world.lawful_as("micro_redundancies" if len(active) <= 10 else "redundancies", emp.id)
        when = some_day()
        for person in rng.sample(active, many):
            if person.leaves == math.inf:
                leave(person, when + rng.uniform(0, 4) * HOUR, "redundancy")
    return events


def _cut(world: World, rng: random.Random, emp: Employer, plan: Plan, start, end, leave) -> None:
    """The terminations of a planned cut that fall in ``[start, end)``."""
    cut = plan.cut
    assert cut is not None
    if cut.slots is None:
        if not start <= plan.at < end:
            return
        headcount = sum(1 for p in emp.staff if p.joined <= plan.at < p.leaves)
        if cut.people:
            count = cut.people
        else:
            # ceil, not round: rounding down cut 13 of 44 (29.5 %), under the 30 % a
            # mass layoff is defined by, and the truth labelled it anyway.
            count = max(3, math.ceil(headcount * cut.share))
            if cut.most:
                count = min(count, max(cut.most, math.ceil(headcount * 0.3)))
        count = min(count, headcount - 1)
        if count < 3:  # shrunk to three or fewer by now: no mass layoff to be had
            cut.slots = []
            return
        days = max(1, min(cut.days, int((world.end - plan.at) / DAY) - 2))  # inside the world
        times = _layoff_times(rng, plan.at, count, days)
        others = set(rng.sample(range(1, count), round(cut.other_share * count)))
        reasons = ["other" if k in others else "redundancy" for k in range(count)]
        # 'other' counts with a redundancy within 3 days of it (the typology): one that
        # fell on a day of its own is recorded as what it is.
        cut.slots = [
            (t, "redundancy" if reason == "other" and not _near(t, times, reasons) else reason)
            for t, reason in zip(times, reasons, strict=True)
        ]
        if cut.labelled:
            cut.finding = world.finding("mass_layoff", emp.id, times[0])
    now = [slot for slot in cut.slots if slot[0] < end]
    cut.slots = cut.slots[len(now) :]
    if not now:
        return
    candidates = [p for p in emp.staff if p.leaves == math.inf and p.joined <= now[0][0]]
    rng.shuffle(candidates)
    for person, (when, reason) in zip(candidates, now, strict=False):
        emit = leave(person, when, reason)
        if cut.finding is not None:
            cut.finding.add(emit[2]["event_id"])


def _near(when: float, times: list[float], reasons: list[str]) -> bool:
    """Is a redundancy among ``times`` within 3 days of ``when``?"""
    return any(
        r == "redundancy" and abs(t - when) <= 3 * DAY for t, r in zip(times, reasons, strict=True)
    )


def _layoff_times(rng: random.Random, at: float, count: int, days: int) -> list[float]:
    """When each of ``count`` people goes, the first at ``at`` (a working hour), sorted."""
    timing = pick(rng, LAYOFF_TIMINGS)
    first_day = local_date(at)
    if timing == "one_day" or days < 2:
        dates = [first_day] * count
    elif timing == "stragglers":
        late = rng.uniform(0.1, 0.33)
        dates = [first_day] + [
            first_day + timedelta(days=rng.randint(1, days) if rng.random() < late else 0)
            for _ in range(count - 1)
        ]
    elif timing == "staged":
        stages = [0, *rng.sample(range(1, days + 1), min(days, rng.randint(1, 2)))]
        dates = [first_day] + [
            first_day + timedelta(days=rng.choice(stages)) for _ in range(count - 1)
        ]
    else:  # rolling: person by person
        dates = [first_day] + [
            first_day + timedelta(days=rng.randint(0, days)) for _ in range(count - 1)
        ]
    times = [at] + [max(at, _at_work(rng, day)) for day in dates[1:]]
    return sorted(times)


def add_payroll(world: World, cfg: SimConfig, scale: float) -> None:
    """Put every employer of the world in place, with their plans."""
    rng = world.rng("employers")
    employers = [_employer(rng, cfg, n) for n in range(cfg.scaled(cfg.employers_n, scale))]
    _assign_patterns(world, cfg, scale, rng, employers)
    _assign_held_out(world, cfg, scale, employers)
    for emp in employers:
        if emp.style != "normal":  # instalments, whole-tenge rounding, due-day payers
            world.lawful_as(f"pay_{emp.style}", emp.id)
        cut = emp.plan.cut
        if cut is not None and not cut.labelled:
            world.lawful_as(cut.family, emp.id)
        if emp.plan.pattern == "seasonal":
            world.lawful_as("seasonal_contract_ends", emp.id)
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


def _when(world: World, rng: random.Random) -> float:
    """A working hour on a day between a tenth and 85 % of the way through the world."""
    day = local_date(world.start + rng.uniform(0.1, 0.85) * (world.end - world.start))
    return local_ts(day, rng.uniform(9, 12))


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
            cut = Cut("layoff", True, share=rng.uniform(0.3, 0.8), days=rng.randint(1, 21))
            emp.plan = Plan("cut", at=_when(world, rng), cut=cut)
    # Large employers are few: the later families take the first that fits from the
    # rest without passing over (and so leaving planless) the ones that do not.
    rest = [employers[i] for i in free]

    def take(fits) -> Employer | None:
        found = next((e for e in rest if fits(e)), None)
        if found is not None:
            rest.remove(found)
        return found

    for _ in range(cfg.scaled(cfg.department_layoffs_n, scale)):
        if emp := take(lambda e: len(e.staff) >= 150):
            cut = Cut(
                "department_layoff", True, people=rng.randint(50, 120), days=rng.randint(1, 21)
            )
            emp.plan = Plan("cut", at=_when(world, rng), cut=cut)
    for _ in range(cfg.scaled(cfg.department_trims_n, scale)):
        if emp := take(lambda e: len(e.staff) >= 100):
            # Under both bars: fewer than 50 people and under a fifth of the staff.
            people = rng.randint(6, min(20, len(emp.staff) // 5))
            cut = Cut("department_trim", False, people=people, days=rng.randint(1, 21))
            emp.plan = Plan("cut", at=_when(world, rng), cut=cut)
    for emp in rest:  # the rest: some have a seasonal wave of contract ends
        if rng.random() < cfg.seasonal_share and len(emp.staff) >= 4:
            for k in range(max(3, round(len(emp.staff) * rng.uniform(0.3, 0.6)))):
                emp.staff.append(Staff(f"{emp.id}-S{k:04d}", emp.staff[0].wage * 0.8, True))
            emp.plan = Plan("seasonal", at=world.start + rng.uniform(0.1, 0.8) * span)


def _assign_held_out(world: World, cfg: SimConfig, scale: float, employers: list[Employer]) -> None:
    """Held-out families, each from its own random stream, among employers left without a
    plan: a world without them (``families=tuning``) is otherwise the same world."""
    if cfg.has("micro_layoff"):
        rng = world.rng("employers/micro_layoff")
        pool = [e for e in employers if e.plan.pattern is None and 5 <= len(e.staff) <= 15]
        for emp in rng.sample(pool, min(len(pool), cfg.scaled(cfg.micro_layoffs_n, scale))):
            # Three to five people (a third to a half of the staff) within one to three weeks.
            cut = Cut("micro_layoff", True, share=rng.uniform(0.3, 0.5), days=rng.randint(7, 21))
            cut.most = 5
            emp.plan = Plan("cut", at=_when(world, rng), cut=cut)
    if cfg.has("disguised_layoff"):
        rng = world.rng("employers/disguised_layoff")
        pool = [e for e in employers if e.plan.pattern is None and 10 <= len(e.staff) <= 80]
        for emp in rng.sample(pool, min(len(pool), cfg.scaled(cfg.disguised_layoffs_n, scale))):
            cut = Cut(
                "disguised_layoff",
                True,
                share=rng.uniform(0.3, 0.6),
                days=rng.randint(1, 14),
                other_share=rng.uniform(0.25, 0.5),
            )
            emp.plan = Plan("cut", at=_when(world, rng), cut=cut)
