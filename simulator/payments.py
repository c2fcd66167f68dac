"""The payments world: everyday life, lawful look-alikes, pyramids and mules.

Accounts share one id space (``ACC-nnnnnnn``) whatever they are, so nothing
but behaviour tells a pyramid from a charity. Ranges of numbers are set aside
per role only to keep them apart.

True patterns (truth.json):

- ``pyramid_scheme``: an organiser collects round "investments" from a fast-
  growing stream of new payers, after a few days pays "returns" to earlier
  payers out of new money, withdraws cash, and collapses within days to weeks.
- ``mule_account``: a fresh account receives from several unrelated payers over
  one to five days and forwards most of each inflow within hours, to one to
  three accounts or to cash.

Lawful look-alikes: growing merchants (many new payers, refunds), charities
(donation drives with round amounts), credit cooperatives (modest interest to
members), rotating savings groups (the pot to one member a month), landlords,
family transfers, group purchases (collect from friends, pay a shop at once)
and shops sweeping their takings to the owner.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from typing import Any

from simulator.config import SimConfig
from simulator.core import DAY, HOUR, Actor, Emit, World, poisson

# Id ranges per role (numbers after ACC-).
PERSONS, MERCHANTS, SUPPLIERS, SPECIAL = 0, 5_000_000, 6_000_000, 7_000_000
CASH_DESKS = [f"CASH-{n:03d}" for n in range(40)]
UTILITIES = [f"ACC-{4_900_000 + n:07d}" for n in range(8)]
ROUND_INVESTMENTS = (50_000, 100_000, 100_000, 150_000, 200_000, 300_000, 500_000)

# Share of the day's activity by local hour (people sleep at night).
_HOURLY = [
    0.2,
    0.1,
    0.05,
    0.05,
    0.05,
    0.1,
    0.3,
    0.6,
    0.9,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    1.0,
    0.95,
    0.9,
    0.8,
    0.6,
    0.4,
]
_LOCAL_OFFSET = 6 * HOUR  # activity rhythm only; calendar rules use the tz database


def acc(number: int) -> str:
    return f"ACC-{number:07d}"


class _Special:
    """Hands out fresh account numbers for special roles, deterministically."""

    def __init__(self) -> None:
        self.next = SPECIAL

    def take(self) -> str:
        self.next += 1
        return acc(self.next)


def pay(
    world: World,
    ts: float,
    payer: str,
    payee: str,
    amount: float,
    channel: str = "transfer",
    purpose: str | None = None,
) -> Emit:
    event: dict[str, Any] = {
        "event_id": world.event_id("payments"),
        "payer": payer,
        "payee": payee,
        "amount": round(max(amount, 1.0), 2),
        "channel": channel,
    }
    if purpose:
        event["purpose"] = purpose
    return ts, "payments", event


def _daytime(rng: random.Random, day_start: float) -> float:
    """A moment of the day, weighted by when people are awake."""
    while True:
        hour = rng.random() * 24
        if rng.random() < _HOURLY[int(hour)]:
            return day_start + hour * HOUR


def _price(rng: random.Random, median: float, spread: float = 1.0) -> float:
    return round(rng.lognormvariate(math.log(median), spread), -1) or 10.0


class _Agenda:
    """A small private schedule so an actor can plan events ahead in time order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Emit]] = []
        self._seq = 0

    def add(self, emit: Emit) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (emit[0], self._seq, emit))

    def due(self, until: float) -> Iterator[Emit]:
        while self._heap and self._heap[0][0] <= until:
            yield heapq.heappop(self._heap)[2]

    def rest(self) -> Iterator[Emit]:
        return self.due(float("inf"))


def everyday(world: World, cfg: SimConfig, persons: int, merchants: int) -> Actor:
    """Background payments of the whole population, as one Poisson process."""
    rng = world.rng("everyday")
    rate = persons * cfg.person_payments_per_day / DAY / (sum(_HOURLY) / 24)
    agenda = _Agenda()
    ts = world.start
    while ts < world.end:
        ts += rng.expovariate(rate)
        hour = int(((ts + _LOCAL_OFFSET) % DAY) / HOUR)
        if rng.random() >= _HOURLY[hour]:
            continue
        yield from agenda.due(ts)
        person = rng.randrange(persons)
        payer = acc(PERSONS + person)
        roll = rng.random()
        if roll < 0.55:  # a purchase from a merchant, popular ones more often
            merchant = acc(MERCHANTS + int(merchants * rng.random() ** 2.2))
            emit = pay(world, ts, payer, merchant, _price(rng, 4000), rng.choice(("card", "qr")))
            if rng.random() < 0.01:  # a refund of it, days later
                refund_at = ts + rng.uniform(0.5, 10) * DAY
                amount = emit[2]["amount"]
                agenda.add(pay(world, refund_at, merchant, payer, amount, "card", "refund"))
            yield emit
        elif roll < 0.75:  # family and friends: a few fixed contacts, round sums
            contact = (person * 7919 + rng.randrange(3) * 104_729 + 1) % persons
            if contact == person:
                contact = (contact + 1) % persons
            amount = rng.choice((5_000, 10_000, 20_000, 30_000, 50_000, 100_000))
            yield pay(world, ts, payer, acc(PERSONS + contact), amount)
        elif roll < 0.85:
            yield pay(world, ts, payer, rng.choice(UTILITIES), _price(rng, 9000, 0.6))
        elif roll < 0.93:
            amount = rng.choice((10_000, 20_000, 50_000, 100_000, 200_000))
            yield pay(world, ts, payer, rng.choice(CASH_DESKS), amount, "cash_out")
        else:
            amount = rng.choice((10_000, 20_000, 50_000, 100_000))
            yield pay(world, ts, rng.choice(CASH_DESKS), payer, amount, "cash_in")
    yield from agenda.rest()


def merchant_suppliers(
    world: World, cfg: SimConfig, index: int, merchants: int, persons: int
) -> Actor:
    """A merchant pays its suppliers weekly, most of a week's takings."""
    rng = world.rng(f"merchant/{index}")
    me = acc(MERCHANTS + index)
    share = ((index + 1) / merchants) ** (1 / 2.2) - (index / merchants) ** (1 / 2.2)
    weekly = cfg.person_payments_per_day * persons * 0.55 * share * 7 * 5000
    suppliers = [acc(SUPPLIERS + index * 3 + k) for k in range(rng.randint(1, 3))]
    ts = world.start + rng.uniform(0, 7) * DAY
    while ts < world.end:
        yield pay(world, ts, me, rng.choice(suppliers), weekly * rng.uniform(0.4, 0.8))
        ts += rng.uniform(6, 8) * DAY


def growing_merchant(world: World, index: int, persons: int, special: _Special) -> Actor:
    """A new shop: a fast-growing crowd of new payers, varied prices, some refunds."""
    rng = world.rng(f"growing/{index}")
    me = special.take()
    supplier = special.take()
    world.lawful_as("growing_merchant", me)
    opening = world.start + rng.uniform(0, 0.7) * (world.end - world.start)
    growth, cap = rng.uniform(1.08, 1.25), rng.uniform(30, 150)
    agenda = _Agenda()
    day, takings, last = 0, 0.0, opening
    while opening + day * DAY < world.end:
        start = opening + day * DAY
        for ts in sorted(
            _daytime(rng, start) for _ in range(poisson(rng, min(cap, 2 * growth**day)))
        ):
            yield from agenda.due(ts)
            payer = acc(PERSONS + rng.randrange(persons))
            emit = pay(world, ts, payer, me, _price(rng, 6000), rng.choice(("card", "qr")))
            takings += emit[2]["amount"]
            if rng.random() < 0.02:
                agenda.add(
                    pay(
                        world,
                        ts + rng.uniform(1, 6) * DAY,
                        me,
                        payer,
                        emit[2]["amount"],
                        "card",
                        "refund",
                    )
                )
            last = ts
            yield emit
        if day % 7 == 6 and takings > 0:
            paid_at = max(start + 0.8 * DAY, last + 600)
            agenda.add(pay(world, paid_at, me, supplier, takings * rng.uniform(0.5, 0.75)))
            takings = 0.0
        day += 1
    yield from agenda.rest()


def charity(world: World, index: int, persons: int, special: _Special) -> Actor:
    """A donation drive: a burst of new donors with round gifts, then grants out."""
    rng = world.rng(f"charity/{index}")
    me, beneficiary = special.take(), special.take()
    world.lawful_as("charity", me, beneficiary)
    launch = world.start + rng.uniform(0, 0.8) * (world.end - world.start)
    days, peak = rng.randint(7, 21), rng.uniform(20, 150)
    collected, last = 0.0, launch
    for day in range(days):
        level = peak * math.sin(math.pi * (day + 0.5) / days)
        start = launch + day * DAY
        for ts in sorted(_daytime(rng, start) for _ in range(poisson(rng, level))):
            amount = rng.choice((1_000, 2_000, 2_000, 5_000, 5_000, 10_000, 20_000, 50_000))
            collected += amount
            last = ts + 60
            yield pay(
                world,
                ts,
                acc(PERSONS + rng.randrange(persons)),
                me,
                amount,
                rng.choice(("card", "transfer", "qr")),
                "donation",
            )
        if day % 5 == 4 and collected > 0:
            last = max(last, start + 0.9 * DAY)
            yield pay(world, last, me, beneficiary, collected * 0.8, "transfer", "grant")
            collected *= 0.2
    if collected > 0:
        yield pay(world, max(last, launch + (days + 2) * DAY), me, beneficiary, collected)


def cooperative(world: World, index: int, persons: int, special: _Special) -> Actor:
    """A credit cooperative: members save monthly; it pays them modest interest."""
    rng = world.rng(f"coop/{index}")
    me = special.take()
    members = {acc(PERSONS + rng.randrange(persons)): 0.0 for _ in range(rng.randint(60, 250))}
    world.lawful_as("cooperative", me, *members)
    rate = rng.uniform(0.008, 0.02)  # monthly interest
    month = world.start
    while month < world.end:
        events = []
        for member in list(members):
            ts = _daytime(rng, month + rng.randrange(7) * DAY)
            amount = rng.choice((10_000, 20_000, 30_000, 50_000, 100_000))
            members[member] += amount
            events.append(pay(world, ts, member, me, amount, "transfer", "savings"))
        for member, balance in members.items():
            ts = month + 24 * DAY + rng.uniform(10, 17) * HOUR
            events.append(pay(world, ts, me, member, balance * rate, "transfer", "interest"))
        for _ in range(rng.randint(1, 4)):  # slow, steady growth
            members[acc(PERSONS + rng.randrange(persons))] = 0.0
        world.lawful_as("cooperative", *members)
        yield from sorted(events, key=lambda e: e[0])
        month += 30 * DAY


def rosca(world: World, index: int, persons: int, special: _Special) -> Actor:
    """A rotating savings group: fixed members pay in monthly; one takes the pot."""
    rng = world.rng(f"rosca/{index}")
    organiser = special.take()
    members = [acc(PERSONS + rng.randrange(persons)) for _ in range(rng.randint(8, 15))]
    world.lawful_as("rosca", organiser, *members)
    amount = rng.choice((20_000, 30_000, 50_000, 100_000))
    turn = rng.randrange(len(members))
    month = world.start + rng.uniform(0, 10) * DAY
    while month < world.end:
        events = [
            pay(
                world,
                _daytime(rng, month + rng.choice((0, 0, 1)) * DAY),
                m,
                organiser,
                amount,
                "transfer",
                "kassa",
            )
            for m in members
        ]
        last = max(e[0] for e in events)
        events.append(
            pay(
                world,
                last + rng.uniform(2, 30) * HOUR,
                organiser,
                members[turn],
                amount * len(members),
                "transfer",
            )
        )
        turn = (turn + 1) % len(members)
        yield from sorted(events, key=lambda e: e[0])
        month += 30 * DAY


def landlord(world: World, index: int, persons: int, special: _Special) -> Actor:
    """Tenants pay a fixed rent early each month."""
    rng = world.rng(f"landlord/{index}")
    me = special.take()
    tenants = [
        (
            acc(PERSONS + rng.randrange(persons)),
            rng.choice((80, 120, 150, 200, 300)) * 1000,
            rng.randrange(5),
        )
        for _ in range(rng.randint(1, 6))
    ]
    month = world.start
    while month < world.end:
        events = [
            pay(world, _daytime(rng, month + day * DAY), tenant, me, rent, "transfer", "rent")
            for tenant, rent, day in tenants
        ]
        yield from sorted(events, key=lambda e: e[0])
        month += 30 * DAY


def group_purchase(
    world: World, index: int, persons: int, merchants: int, special: _Special
) -> Actor:
    """Friends chip in equal shares; the organiser pays a shop the total within hours."""
    rng = world.rng(f"group/{index}")
    organiser = special.take()
    ts = world.start + rng.uniform(0, 0.3) * (world.end - world.start)
    while ts < world.end:
        share = rng.choice((5_000, 10_000, 15_000, 20_000))
        friends = [acc(PERSONS + rng.randrange(persons)) for _ in range(rng.randint(8, 20))]
        world.lawful_as("group_purchase", organiser, *friends)
        times = sorted(ts + rng.uniform(0, 20) * HOUR for _ in friends)
        for when, friend in zip(times, friends, strict=True):
            yield pay(world, when, friend, organiser, share, rng.choice(("transfer", "qr")))
        shop = acc(MERCHANTS + rng.randrange(merchants))
        yield pay(
            world,
            times[-1] + rng.uniform(1, 6) * HOUR,
            organiser,
            shop,
            share * len(friends),
            "card",
        )
        ts += rng.uniform(20, 60) * DAY


def sweeping_shop(world: World, index: int, persons: int, special: _Special) -> Actor:
    """A shop's account: many small takings, swept to the owner daily or weekly."""
    rng = world.rng(f"sweep/{index}")
    me, owner = special.take(), special.take()
    world.lawful_as("sweeping_shop", me, owner)
    per_day, every = rng.uniform(5, 30), rng.choice((1, 7))
    day, takings = 0, 0.0
    emit: Emit = (world.start, "payments", {})
    while world.start + day * DAY < world.end:
        start = world.start + day * DAY
        for ts in sorted(_daytime(rng, start) for _ in range(poisson(rng, per_day))):
            emit = pay(
                world,
                ts,
                acc(PERSONS + rng.randrange(persons)),
                me,
                _price(rng, 3000),
                rng.choice(("card", "qr")),
            )
            takings += emit[2]["amount"]
            yield emit
        if day % every == every - 1 and takings > 0:
            sweep_at = max(start + rng.uniform(20, 22) * HOUR, emit[0] + 600)
            yield pay(
                world, sweep_at, me, owner, takings * rng.uniform(0.85, 0.95), "transfer", "takings"
            )
            takings = 0.0
        day += 1


def pyramid(world: World, cfg: SimConfig, index: int, persons: int, special: _Special) -> Actor:
    """A financial pyramid from its first deposit to its collapse (a true pattern)."""
    rng = world.rng(f"pyramid/{index}")
    organiser = special.take()
    span = world.end - world.start
    launch = world.start + rng.uniform(0.05, 0.75) * span
    growth = rng.uniform(*cfg.pyramid_growth)
    low, high = cfg.pyramid_days
    # Half of pyramids die within about a week (domain notes), the rest live longer.
    lifetime = rng.randint(low, max(low, 10)) if rng.random() < 0.5 else rng.randint(10, high)
    first_returns = rng.uniform(3, 10)  # days until "returns" start
    promised = rng.uniform(0.1, 0.4)  # "profit" paid on a deposit
    wait = rng.uniform(5, 14)  # days a deposit waits for its "return"
    finding = world.finding("pyramid_scheme", organiser, launch)
    agenda = _Agenda()
    recruits = rng.uniform(2, 6)
    purpose = rng.choice(("investment", "deposit", "vklad", "dolya", None))
    for day in range(lifetime):
        start = launch + day * DAY
        # Growth saturates at 1 % of the population a day. Unbounded, 1.35 ** 44 made
        # one long-lived pyramid 2.2 million deposits (from 7,500 people) at --scale 0.5,
        # 80 % of the world's lines, and its size swung by orders of magnitude by seed.
        count = poisson(rng, min(recruits * growth**day, max(20.0, 0.01 * persons)))
        times = sorted(_daytime(rng, start) for _ in range(count))
        if day == 0:
            times = [launch, *times]
        withdrawn = 0.0
        for ts in times:
            yield from agenda.due(ts)
            investor = acc(PERSONS + rng.randrange(persons))
            amount = rng.choice(ROUND_INVESTMENTS)
            emit = pay(
                world,
                ts,
                investor,
                organiser,
                amount,
                rng.choice(("transfer", "transfer", "card")),
                purpose,
            )
            finding.add(emit[2]["event_id"])
            withdrawn += amount
            due = ts + wait * DAY
            if day + wait > first_returns and due < launch + lifetime * DAY:
                agenda.add(
                    pay(
                        world,
                        due,
                        organiser,
                        investor,
                        amount * (1 + promised),
                        "transfer",
                        "profit",
                    )
                )
            yield emit
        if withdrawn and rng.random() < 0.5:  # the organiser cashes out part of the inflow
            cash_at = max(start + rng.uniform(18, 23) * HOUR, times[-1] + 600)
            agenda.add(
                pay(
                    world,
                    cash_at,
                    organiser,
                    rng.choice(CASH_DESKS),
                    withdrawn * rng.uniform(0.2, 0.4),
                    "cash_out",
                )
            )
    yield from agenda.due(launch + lifetime * DAY)  # then it collapses: no more returns


def _victim_pays(
    world: World,
    rng: random.Random,
    ts: float,
    persons: int,
    mule: str,
    most: float,
    channels: tuple[str, ...],
) -> Emit:
    """A fraud victim's payment to a mule: 20,000 to ``most`` tenge, rarely a round sum."""
    amount = round(rng.uniform(20_000, most), -2) + rng.choice((0, 0, 50, 17))
    victim = acc(PERSONS + rng.randrange(persons))
    return pay(world, ts, victim, mule, amount, rng.choice(channels))


def mule(world: World, cfg: SimConfig, index: int, persons: int, special: _Special) -> Actor:
    """A money mule: several payers in, most of each inflow out within hours (true)."""
    rng = world.rng(f"mule/{index}")
    me = special.take()
    exits = [special.take() for _ in range(rng.randint(1, 3))]
    cash = rng.random() < 0.4
    begin = world.start + rng.uniform(0.05, 0.9) * (world.end - world.start)
    finding = world.finding("mule_account", me, begin)
    days = rng.randint(1, 5)
    inflows = sorted(
        [begin] + [begin + rng.uniform(0, days) * DAY for _ in range(rng.randint(4, 29))]
    )
    agenda = _Agenda()
    for ts in inflows:
        yield from agenda.due(ts)
        emit = _victim_pays(world, rng, ts, persons, me, 500_000, ("transfer", "card"))
        amount = emit[2]["amount"]
        finding.add(emit[2]["event_id"])
        out_at = ts + rng.uniform(*cfg.mule_forward_hours) * HOUR
        out = amount * rng.uniform(*cfg.mule_forward_share)
        if cash:
            agenda.add(pay(world, out_at, me, rng.choice(CASH_DESKS), out, "cash_out"))
        else:
            agenda.add(pay(world, out_at, me, rng.choice(exits), out, "transfer"))
        yield emit
    for emit in agenda.rest():
        finding.add(emit[2]["event_id"])
        yield emit


def payroll_agent(world: World, index: int, persons: int, special: _Special) -> Actor:
    """An agent paying an employer's monthly lump out to its staff within hours."""
    rng = world.rng(f"agent/{index}")
    me, employer = special.take(), special.take()
    world.lawful_as("payroll_agent", me)
    staff = [acc(PERSONS + rng.randrange(persons)) for _ in range(rng.randint(5, 40))]
    wages = {person: round(rng.uniform(90_000, 400_000), -3) for person in staff}
    month = world.start + rng.uniform(0, 20) * DAY
    while month < world.end:
        total = sum(wages.values()) * rng.uniform(1.0, 1.02)  # the agent's fee on top
        yield pay(world, month, employer, me, total, "transfer", "salary fund")
        ts = month + rng.uniform(0.5, 4) * HOUR
        for person, wage in wages.items():
            ts += rng.uniform(5, 120)
            yield pay(world, ts, me, person, wage, "transfer", "salary")
        month += rng.uniform(29, 31) * DAY


def kassa(world: World, index: int, persons: int, merchants: int) -> Actor:
    """A rotating savings group without an organiser (held-out family ``kassa``).

    Each month every member pays the month's taker directly, within a few days,
    the same sum; the taker then often spends or withdraws the pot at once.
    Members are ordinary people, each with an everyday life of payments.
    """
    rng = world.rng(f"kassa/{index}")
    members = list(dict.fromkeys(acc(PERSONS + rng.randrange(persons)) for _ in range(40)))
    members = members[: rng.randint(6, 24)]
    world.lawful_as("kassa", *members)
    amount = rng.choice((20_000, 25_000, 30_000, 50_000, 50_000, 70_000, 100_000, 150_000))
    spread = rng.uniform(0.3, 5.0)  # days the members take to pay in
    purpose = rng.choice(("kassa", "kassa", "tanys", None))
    turn = rng.randrange(len(members))
    month = world.start + rng.uniform(0, 25) * DAY
    while month < world.end:
        taker = members[turn]
        events = [
            pay(
                world,
                _daytime(rng, month + rng.uniform(0, spread) * DAY),
                member,
                taker,
                amount,
                rng.choice(("transfer", "transfer", "qr")),
                purpose,
            )
            for member in members
            if member != taker
        ]
        pot, last = amount * len(events), max(e[0] for e in events)
        roll = rng.random()
        if roll < 0.35:  # withdrawn at once
            events.append(
                pay(
                    world,
                    last + rng.uniform(1, 30) * HOUR,
                    taker,
                    rng.choice(CASH_DESKS),
                    round(pot * rng.uniform(0.6, 1.0), -3),
                    "cash_out",
                )
            )
        elif roll < 0.6:  # a big purchase
            shop = acc(MERCHANTS + rng.randrange(merchants))
            events.append(
                pay(
                    world,
                    last + rng.uniform(2, 72) * HOUR,
                    taker,
                    shop,
                    pot * rng.uniform(0.7, 1.0),
                    "card",
                )
            )
        turn = (turn + 1) % len(members)
        yield from sorted(events, key=lambda e: e[0])
        month += rng.uniform(28, 32) * DAY


def fixed_fee_pyramid(
    world: World, cfg: SimConfig, index: int, persons: int, special: _Special
) -> Actor:
    """A gifting circle (held-out family ``pyramid_fixed_fee``), a true pyramid.

    Every recruit pays the circle one fixed fee, often not a round sum
    (37,500, 64,000); once enough newer fees have come in, the circle pays an
    earlier member a multiple of the fee ("the flower blooms") and the
    organiser withdraws the rest. Growth is slow or fast.
    """
    rng = world.rng(f"giftpyramid/{index}")
    organiser = special.take()
    span = world.end - world.start
    launch = world.start + rng.uniform(0.05, 0.75) * span
    growth = rng.uniform(*cfg.pyramid_growth)
    low, high = cfg.pyramid_days
    lifetime = rng.randint(low, high)
    fee = rng.choice((37_500, 45_000, 50_000, 64_000, 75_000, 100_000, 120_000, 33_333))
    multiple = rng.choice((4, 6, 8))  # a member is paid this many fees once "bloomed"
    finding = world.finding("pyramid_scheme", organiser, launch)
    recruits, members, paid_out, pot = rng.uniform(1.5, 5), [], 0, 0.0
    purpose = rng.choice(("gift", "podarok", "vznos", None))
    for day in range(lifetime):
        start = launch + day * DAY
        count = poisson(rng, min(recruits * growth**day, max(20.0, 0.01 * persons)))
        times = sorted(_daytime(rng, start) for _ in range(count))
        if day == 0:
            times = [launch, *times]
        for ts in times:
            member = acc(PERSONS + rng.randrange(persons))
            emit = pay(world, ts, member, organiser, fee, rng.choice(("transfer", "qr")), purpose)
            finding.add(emit[2]["event_id"])
            members.append(member)
            pot += fee
            yield emit
            # Each earlier member blooms once the circle holds 2 * multiple newer fees.
            if paid_out < len(members) - 2 * multiple and pot >= multiple * fee:
                out = pay(
                    world,
                    ts + rng.uniform(0.5, 6) * HOUR,
                    organiser,
                    members[paid_out],
                    multiple * fee,
                    "transfer",
                    purpose,
                )
                pot -= multiple * fee
                paid_out += 1
                yield out
        if pot > 10 * fee and rng.random() < 0.4:
            cash = pot * rng.uniform(0.3, 0.6)
            pot -= cash
            yield pay(
                world,
                max(start + rng.uniform(20, 23) * HOUR, times[-1] + 600)
                if times
                else start + 22 * HOUR,
                organiser,
                rng.choice(CASH_DESKS),
                cash,
                "cash_out",
            )


def pooled_mule(world: World, cfg: SimConfig, index: int, persons: int, special: _Special) -> Actor:
    """A mule that pools inflows (held-out family ``pooled_mule``), a true pattern.

    Two or three victims' payments come in, and their total less a cut leaves in
    one payment: to a handler, to a fresh account, or as cash. Half the mules
    are people's own everyday accounts, recruited, not fresh ones.
    """
    rng = world.rng(f"pooledmule/{index}")
    me = acc(PERSONS + rng.randrange(persons)) if rng.random() < 0.5 else special.take()
    handler = special.take()
    begin = world.start + rng.uniform(0.05, 0.9) * (world.end - world.start)
    finding = world.finding("mule_account", me, begin)
    days = rng.uniform(0.5, 4)
    inflows = sorted(
        [begin] + [begin + rng.uniform(0, days) * DAY for _ in range(rng.randint(4, 24))]
    )
    share = rng.uniform(*cfg.mule_forward_share)
    pooled: list[float] = []
    for k, ts in enumerate(inflows):
        emit = _victim_pays(world, rng, ts, persons, me, 400_000, ("transfer", "card", "qr"))
        amount = emit[2]["amount"]
        finding.add(emit[2]["event_id"])
        yield emit
        pooled.append(amount)
        following = inflows[k + 1] if k + 1 < len(inflows) else float("inf")
        out_at = ts + rng.uniform(*cfg.mule_forward_hours) * HOUR
        if len(pooled) >= rng.choice((2, 3)) or out_at < following or k + 1 == len(inflows):
            if out_at >= following:  # pass on before the next victim pays
                out_at = ts + (following - ts) * rng.uniform(0.3, 0.9)
            out = sum(pooled) * share
            roll = rng.random()
            if roll < 0.4:
                emit = pay(world, out_at, me, rng.choice(CASH_DESKS), round(out, -3), "cash_out")
            elif roll < 0.8:
                emit = pay(world, out_at, me, handler, out, "transfer")
            else:
                emit = pay(world, out_at, me, special.take(), out, "transfer")
            finding.add(emit[2]["event_id"])
            pooled = []
            yield emit


def family_relay(world: World, index: int, persons: int) -> Actor:
    """Relatives' support passed on (held-out look-alike ``family_relay``).

    One to three relatives send a person money around their pay day, month after
    month, and the person passes most of it on within hours to another relative
    (parents, a student child) or takes it out in cash, in one payment or one
    by one.
    """
    rng = world.rng(f"relay/{index}")
    me = acc(PERSONS + rng.randrange(persons))
    senders = [acc(PERSONS + rng.randrange(persons)) for _ in range(rng.randint(1, 3))]
    receiver = acc(PERSONS + rng.randrange(persons))
    world.lawful_as("family_relay", me)
    pooled = rng.random() < 0.5
    cash = rng.random() < 0.3
    amounts = {s: rng.choice((20_000, 30_000, 50_000, 70_000, 100_000, 150_000)) for s in senders}
    month = world.start + rng.uniform(0, 28) * DAY
    while month < world.end:
        events, total, last = [], 0.0, month
        for sender in senders:
            ts = _daytime(rng, month + rng.uniform(0, 1.5) * DAY)
            amount = amounts[sender] * rng.choice((1, 1, 1, 0.5, 2))
            events.append(pay(world, ts, sender, me, amount, "transfer"))
            total, last = total + amount, max(last, ts)
            if not pooled:
                out = amount * rng.uniform(0.7, 1.0)
                at = ts + rng.uniform(0.5, 10) * HOUR
                if cash:
                    events.append(
                        pay(world, at, me, rng.choice(CASH_DESKS), round(out, -3), "cash_out")
                    )
                else:
                    events.append(pay(world, at, me, receiver, round(out, -3), "transfer"))
        if pooled:
            at = last + rng.uniform(0.5, 10) * HOUR
            out = round(total * rng.uniform(0.6, 1.0), -3)
            if cash:
                events.append(pay(world, at, me, rng.choice(CASH_DESKS), out, "cash_out"))
            else:
                events.append(pay(world, at, me, receiver, out, "transfer"))
        yield from sorted(events, key=lambda e: e[0])
        month += rng.uniform(27, 33) * DAY


def add_payments(world: World, cfg: SimConfig, scale: float) -> None:
    """Put every payments actor of the world in place."""
    n = lambda count: cfg.scaled(count, scale)  # noqa: E731
    persons, merchants = n(cfg.persons_n), n(cfg.merchants_n)
    special = _Special()
    world.add("everyday", everyday(world, cfg, persons, merchants))
    for i in range(merchants):
        world.add(f"merchant/{i}", merchant_suppliers(world, cfg, i, merchants, persons))
    look_alikes = (
        (cfg.growing_merchants_n, growing_merchant),
        (cfg.charities_n, charity),
        (cfg.cooperatives_n, cooperative),
        (cfg.roscas_n, rosca),
        (cfg.landlords_n, landlord),
        (cfg.sweeping_shops_n, sweeping_shop),
    )
    for count, actor in look_alikes:
        for i in range(n(count)):
            world.add(f"{actor.__name__}/{i}", actor(world, i, persons, special))
    for i in range(n(cfg.group_purchases_n)):
        world.add(f"group/{i}", group_purchase(world, i, persons, merchants, special))
    for i in range(n(cfg.pyramids_n)):
        world.add(f"pyramid/{i}", pyramid(world, cfg, i, persons, special))
    for i in range(n(cfg.mules_n)):
        world.add(f"mule/{i}", mule(world, cfg, i, persons, special))
    for i in range(n(cfg.payroll_agents_n)):
        world.add(f"agent/{i}", payroll_agent(world, i, persons, special))
    # Held-out families: only in worlds that hold them all.
    if cfg.has("kassa"):
        for i in range(n(cfg.kassas_n)):
            world.add(f"kassa/{i}", kassa(world, i, persons, merchants))
    if cfg.has("pyramid_fixed_fee"):
        for i in range(n(cfg.fixed_fee_pyramids_n)):
            world.add(f"giftpyramid/{i}", fixed_fee_pyramid(world, cfg, i, persons, special))
    if cfg.has("pooled_mule"):
        for i in range(n(cfg.pooled_mules_n)):
            world.add(f"pooledmule/{i}", pooled_mule(world, cfg, i, persons, special))
    if cfg.has("family_relay"):
        for i in range(n(cfg.family_relays_n)):
            world.add(f"relay/{i}", family_relay(world, i, persons))
