"""Parameters of a simulated world, at ``--scale 1``.

Counts scale linearly with ``--scale`` (at least one of each pattern), rates do
not. Every field can be overridden from the command line with
``--set NAME=VALUE`` so that detectors can be checked on worlds they were not
tuned on.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import date

from detectors.errors import ConfigError

#: Variant families that only held-out worlds hold (README "Judging detectors").
#: Each pattern and each lawful look-alike comes in several families; a world
#: with ``families = "tuning"`` leaves these out, so detectors are tuned on the
#: rest and judged on worlds that also hold these. Names are the actors' names.
HELD_OUT_FAMILIES = frozenset(
    {
        # payments
        "pyramid_fixed_fee",  # a gifting circle: one fixed entry fee, paid up the line
        "kassa",  # a rotating savings group whose members pay the month's taker directly
        "pooled_mule",  # a mule that pools two or three inflows and passes on the total
        "family_relay",  # a relative's money passed on to another relative
        # payroll
        "micro_layoff",  # a micro or small employer (5-15 staff) cutting three to five people
        "disguised_layoff",  # a layoff with a quarter to half of it recorded as 'other' reasons
        # inspections
        "multi_authority",  # a business visited by several authorities, one on an exempt ground
        "onset_rogue",  # an inspector who keeps visiting small businesses after the start
        "edge_honest",  # honest inspectors whose work shifts at the moratorium's edges
    }
)
FAMILY_SETS = ("all", "tuning")


@dataclass(frozen=True)
class SimConfig:
    """What a world holds. ``*_n`` fields are counts at scale 1."""

    start: date = date(2022, 9, 1)  # spans the moratorium's end (2023-01-01) by default
    days: int = 180

    # -- payments -----------------------------------------------------------------
    persons_n: int = 15_000
    person_payments_per_day: float = 0.12  # background payments per person per day
    merchants_n: int = 400
    growing_merchants_n: int = 20  # new shops whose payer base grows fast (look-alike)
    charities_n: int = 10  # donation drives: bursts of new donors, round amounts
    cooperatives_n: int = 8  # credit cooperatives paying modest monthly interest
    roscas_n: int = 25  # rotating savings groups: fixed members, pot to one a month
    landlords_n: int = 200
    group_purchases_n: int = 15  # collect from friends, pay one merchant (mule look-alike)
    sweeping_shops_n: int = 20  # shops that sweep takings to the owner (mule look-alike)
    pyramids_n: int = 8
    pyramid_growth: tuple[float, float] = (1.10, 1.35)  # new payers/day multiply by this daily
    pyramid_days: tuple[int, int] = (6, 45)  # lifetime before collapse
    mules_n: int = 15
    mule_forward_share: tuple[float, float] = (0.80, 0.98)
    mule_forward_hours: tuple[float, float] = (0.5, 8.0)
    payroll_agents_n: int = 10  # an agent pays an employer's lump out to its staff (look-alike)
    # Held-out families (HELD_OUT_FAMILIES): none in a tuning world.
    kassas_n: int = 30  # rotating savings groups without an organiser (look-alike)
    fixed_fee_pyramids_n: int = 4  # gifting circles: one fixed fee, often not a round sum
    pooled_mules_n: int = 8  # mules that pass on two or three inflows in one payment
    family_relays_n: int = 60  # people passing a relative's money on to another (look-alike)

    # -- payroll ------------------------------------------------------------------
    employers_n: int = 800
    churn_per_month: float = 0.015  # voluntary quits per employee per month
    hires_per_month: float = 0.015
    seasonal_share: float = 0.05  # employers with a seasonal wave of contract ends
    instalment_share: float = 0.10  # employers paying wages in two instalments
    rounding_share: float = 0.15  # employers paying whole tenge
    due_day_share: float = 0.06  # employers paying on the due day itself
    arrears_n: int = 30
    creeping_n: int = 16  # employers whose pay day drifts later until they miss it
    layoffs_n: int = 14
    department_layoffs_n: int = 2  # a large employer closing a department: 50-120 people
    department_trims_n: int = 3  # lawful: a large employer making 6-20 people redundant
    other_reason_share: float = 0.05  # of ordinary leavers, those leaving for 'other' reasons
    # Held-out families (HELD_OUT_FAMILIES): none in a tuning world.
    micro_layoffs_n: int = 8  # micro and small employers cutting three to five people
    disguised_layoffs_n: int = 3  # layoffs partly recorded as 'other' reasons
    due_day: int = 10

    # -- inspections --------------------------------------------------------------
    # Enough that the registry keeps its promise of no second planned visit within
    # 120 days: with 12,000, the moratorium's medium/large pool (15 %) ran out, planned
    # visits fell back on recently visited businesses, and dozens per world showed three
    # ordinary visits within 45 days without a repeat_inspection label.
    businesses_n: int = 60_000
    inspectors_n: int = 100
    inspections_per_day: tuple[float, float] = (0.5, 1.1)  # per inspector, working days
    rogue_inspectors_n: int = 6
    pile_ons_n: int = 8  # a business visited again and again by several authorities
    follow_up_chains_n: int = 10  # lawful: an inspection and its follow-ups
    exempt_repeats_n: int = 6  # lawful: repeated visits on exempt grounds
    violation_share: float = 0.003  # ordinary inspectors' slips during the moratorium
    # Variant families (simulator/inspections.py; HELD_OUT_FAMILIES says which are held out).
    multi_authority_n: int = 6  # businesses visited by 3-4 authorities within three weeks
    onset_rogues_n: int = 3  # inspectors whose small-business habit outlasts the start
    edge_honest_n: int = 8  # honest inspectors whose work shifts at an edge
    # An authority's volume inside the moratorium as a share of its usual, drawn per
    # authority. 1 by default: at the domain notes' fifth, monthly counts are so small
    # that a volume rogue at 3-4x is within Poisson noise of a busy peer for months.
    moratorium_cut: tuple[float, float] = (1.0, 1.0)

    # -- variant families -----------------------------------------------------------
    families: str = "all"  # "tuning" leaves out HELD_OUT_FAMILIES

    def has(self, family: str) -> bool:
        """Does this world hold ``family`` (a held-out one only when all are held)?"""
        return self.families == "all" or family not in HELD_OUT_FAMILIES

    def scaled(self, count: int, scale: float) -> int:
        """A count at ``scale``: never below one, so every pattern appears."""
        return max(1, round(count * scale))

    def with_overrides(self, pairs: list[str]) -> SimConfig:
        """Apply ``NAME=VALUE`` overrides (values parsed by the field's type)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes = {}
        for pair in pairs:
            name, _, raw = pair.partition("=")
            if name not in fields or not raw:
                raise ConfigError(
                    f"--set {pair!r}: expected NAME=VALUE with NAME one of "
                    f"{', '.join(sorted(fields))}"
                )
            current = getattr(self, name)
            try:
                if isinstance(current, tuple):
                    low, high = (type(current[0])(p) for p in raw.split(","))
                    changes[name] = (low, high)
                elif isinstance(current, date):
                    changes[name] = date.fromisoformat(raw)
                else:
                    changes[name] = type(current)(raw)
            except ValueError:
                raise ConfigError(
                    f"--set {pair!r}: {raw!r} is not a valid {type(current).__name__}"
                    + (" pair LOW,HIGH" if isinstance(current, tuple) else "")
                ) from None
            # Values that parse but make no world: before this check NaN and due_day=31
            # crashed mid-run with a traceback, days=0 wrote an empty world, a reversed
            # pyramid_days could crash randint, and negative counts quietly became 1.
            if problem := _out_of_range(name, changes[name]):
                raise ConfigError(f"--set {pair!r}: {problem}")
        return dataclasses.replace(self, **changes)


def _out_of_range(name: str, value: object) -> str | None:
    """Why an overridden value makes no sense, or None."""
    if isinstance(value, date):
        return None
    if isinstance(value, str):
        return None if value in FAMILY_SETS else f"expected one of {', '.join(FAMILY_SETS)}"
    numbers = value if isinstance(value, tuple) else (value,)
    if not all(math.isfinite(n) and n >= 0 for n in numbers):
        return "expected a finite number >= 0"
    if isinstance(value, tuple) and value[0] > value[1]:
        return "expected LOW <= HIGH"
    if name == "days" and value < 1:
        return "a world lasts at least one day"
    if name == "due_day" and not 1 <= value <= 28:
        return "the due day must be 1-28 (a day every month has)"
    return None
