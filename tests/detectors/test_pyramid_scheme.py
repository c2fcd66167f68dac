"""``pyramid_scheme``: round stakes from a fast-growing crowd of new payers, then "returns".

Hand-built worlds fed through the detector in a plain loop, each payment as one
``Activity`` (both sides) and, where it matters, as its two halves ("in" for the
payee, "out" for the payer), as the live worker may see it. Expected figures
are worked out by hand from the documented defaults: a stake is a payment from
a payer new to the account of a multiple of 10,000 tenge and at least 50,000;
warning at 10 stakes within 7 days making at least 60 % of the new payers'
payments; critical at 50 stakes or 3 returns (payments of more than 50,000 out
to earlier payers); during the first 14 days of event time nothing is counted
(payers are only learnt); an account idle for 30 days is forgotten.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from detectors.base import alert_id
from detectors.events import Activity, Alert, Payment
from detectors.payments.pyramid_scheme import PyramidScheme
from detectors.payments.sketch import Seen
from tests.detectors.support import check, run, validate_alert

KIND = "pyramid_scheme"
T0 = datetime(2023, 3, 1, 9, tzinfo=UTC)
ORGANISER = "PYR"
#: Stake sums, in turn: stake n pays ROUND[n % 3].
ROUND = (50_000.0, 100_000.0, 200_000.0)


def pay(
    event_id: str, day: float, payer: str, payee: str, amount: float, channel: str = "transfer"
) -> Payment:
    """A payment ``day`` days after T0 (09:00 UTC; day 0 is 2023-03-01 in UTC)."""
    return Payment(
        event_id=event_id,
        ts=T0 + timedelta(days=day),
        payer=payer,
        payee=payee,
        amount=amount,
        channel=channel,
    )


def stakes(
    per_day: list[int], payee: str = ORGANISER, start: float = 0, prefix: str = ""
) -> list[Payment]:
    """``per_day[d]`` new investors on day ``start + d``, one an hour from 09:00 UTC.

    Investor n is ``{prefix}INV-n``, its payment ``{prefix}stake-n`` of ``ROUND[n % 3]``.
    """
    events, n = [], 0
    for d, count in enumerate(per_day):
        for k in range(count):
            at = start + d + k / 24
            events.append(pay(f"{prefix}stake-{n}", at, f"{prefix}INV-{n}", payee, ROUND[n % 3]))
            n += 1
    return events


def activities(payments: list[Payment], split: bool = False) -> list[Activity]:
    """In event-time order; ``split``: each payment as its "in" then its "out" half."""
    ordered = sorted(payments, key=lambda p: (p.ts, p.event_id))
    if not split:
        return [Activity(p) for p in ordered]
    return [Activity(p, side) for p in ordered for side in ("in", "out")]


def feed(detector: PyramidScheme, payments: list[Payment], split: bool = False) -> list[Alert]:
    return run(detector, activities(payments, split))


def per_event(detector: PyramidScheme, payments: list[Payment]) -> dict[str, list[Alert]]:
    """The alerts each payment raised, by event id (only those that raised some)."""
    out = {}
    for event in activities(payments):
        alerts = check(detector, event)
        if alerts:
            out[event.event_id] = alerts
    return out


def quick(**overrides: float) -> PyramidScheme:
    """Defaults but no warm-up: these worlds are too short for 14 quiet days."""
    return PyramidScheme(**{"warm_up_days": 0, **overrides})


def told_apart(names: list[str]) -> bool:
    """Does the 128-byte payer sketch count every one of ``names`` as new?

    The sketch may take an unseen payer for a known one (tests/detectors/test_sketch.py);
    the worlds here use names it tells apart, so the counts below are exact.
    """
    seen = Seen()
    return all(seen.add(name) for name in names)


def test_the_worlds_payers_are_told_apart_by_the_sketch():
    assert told_apart([f"INV-{n}" for n in range(80)])
    assert told_apart([f"B-INV-{n}" for n in range(60)])
    assert told_apart([f"BUYER-{k}" for k in range(7)] + [f"INV-{n}" for n in range(11)])
    investors = Seen()
    for n in range(10):
        investors.add(f"INV-{n}")
    assert "BOSS" not in investors and "CASH-001" not in investors


# --- warning, critical ---------------------------------------------------------------


def test_a_growing_pyramid_is_a_warning_at_its_tenth_stake():
    world = stakes([1, 2, 3, 4, 5])  # 1, 3, 6, 10, 15 stakes by the end of each day
    raised = per_event(quick(), world)
    assert list(raised) == ["stake-9"]
    [alert] = raised["stake-9"]
    assert (alert.kind, alert.domain) == (KIND, "payments")
    assert (alert.entity, alert.entity_type) == (ORGANISER, "account")
    assert alert.severity == "warning"
    assert alert.ts == T0 + timedelta(days=3, hours=3)  # the fourth investor of day 3
    assert alert.event_ids == [f"stake-{n}" for n in range(10)]
    assert alert.alert_id == alert_id(KIND, ORGANISER, "stake-0", "warning")
    assert alert.reasons == [
        "10 new payers sent round sums of 50,000 tenge or more in 4 days "
        "(100% of payments from new payers)",
        "new stakes per day: 1, 2, 3, 4",
    ]
    # 4 x 50,000 + 3 x 100,000 + 3 x 200,000
    assert alert.evidence == {
        "window_days": 7,
        "new_stakes": 10,
        "new_payer_payments": 10,
        "staked": 1_100_000.0,
        "stakes_per_day": [1, 2, 3, 4],
        "returns": 0,
        "returned": 0.0,
    }
    assert alert.score == pytest.approx(10 / 50)
    validate_alert(alert)


def returns_world() -> list[Payment]:
    """A pyramid growing by one investor a day that pays 'returns' from day 4.

    Each return leaves at 07:00 UTC, before that day's new stakes.
    """
    world = stakes([1, 2, 3, 4, 5, 6, 7])
    world += [
        pay("return-1", 4 - 2 / 24, ORGANISER, "INV-0", 60_000.0),
        pay("return-2", 5 - 2 / 24, ORGANISER, "INV-1", 120_000.0),
        pay("return-3", 6 - 2 / 24, ORGANISER, "INV-2", 240_000.0),
        pay("return-4", 6 + 11 / 24, ORGANISER, "INV-3", 240_000.0),
    ]
    return world


def test_three_returns_to_earlier_payers_raise_it_to_critical():
    raised = per_event(quick(), returns_world())
    assert list(raised) == ["stake-9", "return-3"]
    [critical] = raised["return-3"]
    assert critical.severity == "critical"
    assert critical.entity == ORGANISER
    assert critical.ts == T0 + timedelta(days=6, hours=-2)
    assert critical.alert_id == alert_id(KIND, ORGANISER, "stake-0", "critical")
    # Days 0-5 hold 1+2+3+4+5+6 = 21 stakes, 7 of each sum: 7 x 350,000 staked.
    assert critical.reasons == [
        "21 new payers sent round sums of 50,000 tenge or more in 7 days "
        "(100% of payments from new payers)",
        "new stakes per day: 1, 2, 3, 4, 5, 6, 0",
        "3 payments of 420,000 tenge back to earlier payers (17% of the 2,450,000 staked)",
    ]
    assert critical.evidence == {
        "window_days": 7,
        "new_stakes": 21,
        "new_payer_payments": 21,
        "staked": 2_450_000.0,
        "stakes_per_day": [1, 2, 3, 4, 5, 6, 0],
        "returns": 3,
        "returned": 420_000.0,
    }
    assert critical.score == pytest.approx(21 / 50 + 3 / 6)
    # The newest 20 stakes and returns, in the order they happened.
    cited = [f"stake-{n}" for n in range(4, 10)] + ["return-1"]
    cited += [f"stake-{n}" for n in range(10, 15)] + ["return-2"]
    cited += [f"stake-{n}" for n in range(15, 21)] + ["return-3"]
    assert critical.event_ids == cited
    validate_alert(critical)


def test_fifty_stakes_are_critical_without_any_return():
    world = stakes([10] * 6)
    raised = per_event(quick(), world)
    assert list(raised) == ["stake-9", "stake-49"]
    [critical] = raised["stake-49"]
    assert critical.severity == "critical"
    assert critical.evidence["new_stakes"] == 50
    assert critical.evidence["stakes_per_day"] == [10, 10, 10, 10, 10]
    assert critical.evidence["returns"] == 0
    assert critical.reasons[0] == (
        "50 new payers sent round sums of 50,000 tenge or more in 5 days "
        "(100% of payments from new payers)"
    )
    assert critical.score == 1.0
    assert len(critical.event_ids) == 20
    assert critical.event_ids == [f"stake-{n}" for n in range(30, 50)]
    # The finding is named by its first alert, so the escalation keeps the same finding.
    assert critical.alert_id == alert_id(KIND, ORGANISER, "stake-0", "critical")


def test_returns_before_the_tenth_stake_make_the_first_alert_critical():
    world = stakes([3, 3, 4])
    world += [
        pay(f"return-{k}", 2 - (3 - k) / 24, ORGANISER, f"INV-{k}", 80_000.0) for k in range(3)
    ]
    raised = per_event(quick(), world)
    assert list(raised) == ["stake-9"]
    [alert] = raised["stake-9"]
    assert alert.severity == "critical"
    assert alert.evidence["returns"] == 3
    assert alert.alert_id == alert_id(KIND, ORGANISER, "stake-0", "critical")


def test_one_warning_and_at_most_one_critical_per_account():
    world = stakes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])  # 66 stakes, 50 in a week by day 10
    world += [
        pay(f"return-{d}-{k}", d + (k - 3) / 24, ORGANISER, f"INV-{k}", 100_000.0)
        for d in range(4, 11)
        for k in range(3)
    ]
    alerts = feed(quick(), world)
    mine = [a for a in alerts if a.entity == ORGANISER]
    assert [a.severity for a in mine] == ["warning", "critical"]
    assert len({a.alert_id for a in mine}) == 2


def test_a_pyramid_caught_on_its_first_day_says_one_day():
    [alert] = feed(quick(), stakes([10]))  # stakes 0-9 from 09:00 to 18:00 UTC, one day
    assert alert.reasons == [
        "10 new payers sent round sums of 50,000 tenge or more in 1 day "
        "(100% of payments from new payers)",
    ]  # and no per-day breakdown for a single day
    assert alert.evidence["stakes_per_day"] == [10]


def test_a_second_pyramid_is_judged_apart():
    world = stakes([3, 3, 3]) + [
        pay(f"other-{n}", 0.5 + n / 24, f"OTHER-INV-{n}", "PYR-2", 100_000.0) for n in range(9)
    ]
    assert feed(quick(), world) == []  # 9 stakes each: neither has 10


# --- what a stake is -----------------------------------------------------------------


def test_stakes_must_be_at_least_fifty_thousand():
    world = [pay(f"small-{n}", n / 24, f"INV-{n}", ORGANISER, 40_000.0) for n in range(20)]
    assert feed(quick(), world) == []


def test_the_same_investor_paying_again_is_no_new_stake():
    world = [
        pay(f"again-{n}-{r}", r + n / 24, f"INV-{n}", ORGANISER, 100_000.0)
        for n in range(9)
        for r in range(3)
    ]
    assert feed(quick(), world) == []  # 27 round payments, 9 payers


def test_stakes_must_be_sixty_percent_of_the_new_payers_payments():
    buyers = [
        pay(f"buy-{k}", -1 / 24 + k / 1440, f"BUYER-{k}", ORGANISER, 63_700.0) for k in range(7)
    ]
    world = buyers + stakes([11])
    raised = per_event(quick(), world)
    # At the 10th stake: 10 of 17 (59 %); at the 11th: 11 of 18 (61 %).
    assert list(raised) == ["stake-10"]
    [alert] = raised["stake-10"]
    assert alert.evidence["new_stakes"] == 11
    assert alert.evidence["new_payer_payments"] == 18
    assert alert.reasons[0].endswith("(61% of payments from new payers)")


def test_stakes_older_than_the_window_no_longer_count():
    # 9 stakes on day 0 and the 10th on day 7: day 0 has left the 7-day window.
    assert feed(quick(), stakes([9, 0, 0, 0, 0, 0, 0, 1])) == []


def test_stakes_six_days_apart_share_the_window():
    [alert] = feed(quick(), stakes([9, 0, 0, 0, 0, 0, 1]))
    assert alert.evidence["stakes_per_day"] == [9, 0, 0, 0, 0, 0, 1]
    assert alert.reasons[0].startswith(
        "10 new payers sent round sums of 50,000 tenge or more in 7 days"
    )


def test_returns_are_over_fifty_thousand_and_to_earlier_payers():
    world = stakes([10])  # warning at stake-9, day 0
    day = 1 + 1 / 24
    world += [pay(f"exact-{k}", day + k / 1440, ORGANISER, f"INV-{k}", 50_000.0) for k in range(3)]
    world += [
        pay(f"boss-{k}", day + (10 + k) / 1440, ORGANISER, "BOSS", 500_000.0) for k in range(3)
    ]
    world += [pay("cash", day + 20 / 1440, ORGANISER, "CASH-001", 300_000.0, "cash_out")]
    world += [
        pay(f"paid-{k}", day + (30 + k) / 1440, ORGANISER, f"INV-{k + 3}", 50_010.0)
        for k in range(3)
    ]
    raised = per_event(quick(), world)
    assert list(raised) == ["stake-9", "paid-2"]
    [critical] = raised["paid-2"]
    assert critical.severity == "critical"
    assert critical.evidence["returns"] == 3
    assert critical.evidence["returned"] == 150_030.0


# --- warm-up -------------------------------------------------------------------------


def test_nothing_is_counted_during_the_warm_up():
    world = stakes([3] * 20)  # 3 a day from the first event on
    alerts = feed(PyramidScheme(), world)
    assert alerts, "the pyramid is never caught: this check would prove nothing"
    assert all(a.ts >= T0 + timedelta(days=14) for a in alerts)
    # The 42 stakes of days 0-13 are not counted: the count starts with stake-42 at
    # 14 days exactly, and the tenth counted stake is day 17's first.
    first = alerts[0]
    assert first.ts == T0 + timedelta(days=17)
    assert first.event_ids == [f"stake-{n}" for n in range(42, 52)]
    assert first.evidence["new_stakes"] == 10
    assert first.evidence["stakes_per_day"] == [3, 3, 3, 1]


def test_the_warm_up_ends_fourteen_days_after_the_first_event():
    background = pay("bg", 0, "A", "B", 1_000.0)  # the stream's first event: the warm-up starts
    after = stakes([10], start=14)  # stake-0 exactly 14 days after it
    [alert] = feed(PyramidScheme(), [background, *after])
    assert alert.event_ids[-1] == "stake-9"
    assert alert.ts == T0 + timedelta(days=14, hours=9)
    before = [
        pay(p.event_id, 14 - (9 - n) / 24 - 1 / 86400, p.payer, ORGANISER, p.amount)
        for n, p in enumerate(after)
    ]  # the tenth stake one second before the warm-up ends
    assert feed(PyramidScheme(), [background, *before]) == []


def test_payers_seen_during_the_warm_up_are_learnt_not_counted():
    background = pay("bg", 0, "A", "B", 1_000.0)  # starts the 14-day warm-up
    early = pay("early", 14 - 1 / 86400, "INV-0", ORGANISER, 100_000.0)  # a second before its end
    after = stakes([10], start=14)  # INV-0 again, then nine investors new to the account
    assert feed(PyramidScheme(), [background, early, *after]) == []  # 9 stakes, not 10
    tenth = pay("stake-10", 14 + 10 / 24, "INV-10", ORGANISER, 100_000.0)
    [alert] = feed(PyramidScheme(), [background, early, *after, tenth])
    assert alert.event_ids == [f"stake-{n}" for n in range(1, 11)]
    assert alert.evidence["new_stakes"] == 10
    assert alert.evidence["new_payer_payments"] == 10  # INV-0 is no new payer after the warm-up


# --- look-alikes that must not alert -------------------------------------------------

PRICES = (6_370.0, 12_490.0, 54_990.0, 63_700.0, 129_990.0)


def test_a_growing_shop_is_not_a_pyramid():
    world = [
        pay(f"sale-{d}-{k}", d + k / 60, f"CUST-{d}-{k}", "SHOP", PRICES[(d + k) % 5])
        for d in range(10)
        for k in range(4 * (d + 1))  # 4 new customers on day 0, 40 on day 9
    ]
    world += [pay(f"supplier-{d}", d + 0.6, "SHOP", "SUPPLIER", 2_000_000.0) for d in range(10)]
    assert feed(quick(), world) == []


def donation_drive() -> list[Payment]:
    gifts = (1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0, 5_000.0, 10_000.0, 3_000.0)
    world = []
    for n in range(200):  # 40 new donors a day for 5 days; 15 of them give 50,000 or 100,000
        amount = (50_000.0, 100_000.0)[n % 2] if n % 13 == 12 else gifts[n % 8]
        world.append(pay(f"gift-{n}", n // 40 + (n % 40) / 96, f"DONOR-{n}", "CHARITY", amount))
    return world


def test_a_donation_drive_is_not_a_pyramid():
    assert feed(quick(), donation_drive()) == []
    # What keeps it out is the share: its big gifts alone would pass the count.
    assert feed(quick(min_stake_share=0.0), donation_drive())


def cooperative(first_day: int = 0, months: int = 4) -> list[Payment]:
    """30 members pay 50,000 each month over 5 days; the cooperative lends to members."""
    world = [
        pay(
            f"dues-{m}-{k}",
            first_day + 30 * m + k % 5 + (k // 5) / 24,
            f"MEMBER-{k}",
            "COOP",
            50_000.0,
        )
        for m in range(months)
        for k in range(30)
    ]
    return world


def test_a_cooperative_learnt_during_the_warm_up_is_not_a_pyramid():
    world = cooperative()
    world += [pay(f"loan-{k}", 35 + k, "COOP", f"MEMBER-{k}", 300_000.0) for k in range(3)]
    world += [pay("loan-3", 65, "COOP", "MEMBER-3", 300_000.0)]
    assert feed(PyramidScheme(), world) == []
    # Without the warm-up its first month looks like recruiting: the warm-up is what keeps it out.
    assert [a.severity for a in feed(quick(), world)] == ["warning"]


def test_a_cooperative_collecting_in_the_last_week_of_the_warm_up_is_not_a_pyramid():
    # The docstring: "the warm_up_days at the start learn who already pays whom".
    background = pay("bg", 0, "A", "B", 1_000.0)  # starts the 14-day warm-up
    world = [background, *cooperative(first_day=9, months=1)]  # dues on days 9-13
    world += [pay(f"loan-{k}", 14.5 + k / 2, "COOP", f"MEMBER-{k}", 300_000.0) for k in range(3)]
    assert feed(PyramidScheme(), world) == []
    # Without the warm-up: 30 new members' round dues, then three loans back to them.
    assert [a.severity for a in feed(quick(), world)] == ["warning", "critical"]


def cash_desk(channel: str = "cash_out") -> list[Payment]:
    amounts = (50_000.0, 100_000.0, 150_000.0, 200_000.0)
    return [
        pay(f"cash-{n}", n / 48, f"CLIENT-{n}", "CASH-001", amounts[n % 4], channel)
        for n in range(100)
    ]


def test_withdrawals_at_a_cash_desk_are_not_investments():
    assert feed(quick(), cash_desk()) == []
    # The same sums as transfers would be recruiting: the channel is what keeps them out.
    assert feed(quick(), cash_desk("transfer"))


def landlord() -> list[Payment]:
    world = [
        pay(f"rent-{m}-{k}", 30 * m + k / 24, f"TENANT-{k}", "LANDLORD", 150_000.0)
        for m in range(6)
        for k in range(5)
    ]
    world += [
        pay(f"deposit-{k}", k / 24 + 0.01, f"TENANT-{k}", "LANDLORD", 300_000.0) for k in range(5)
    ]
    world += [pay("deposit-back", 151, "LANDLORD", "TENANT-0", 300_000.0)]
    return world


def test_a_landlord_with_five_tenants_is_not_a_pyramid():
    assert feed(quick(), landlord()) == []


# --- both sides, alert contract, checkpoint, memory ----------------------------------


def mixed_world() -> list[Payment]:
    """Two pyramids among a donation drive, a cash desk and a landlord's tenants."""
    world = returns_world() + stakes([10] * 6, payee="PYR-2", start=2, prefix="B-")
    world += donation_drive() + cash_desk() + landlord()
    return world


def test_the_two_halves_of_each_payment_raise_the_same_alerts_as_the_whole():
    world = mixed_world()
    whole = feed(quick(), world)
    assert {(a.entity, a.severity) for a in whole} == {
        (ORGANISER, "warning"),
        (ORGANISER, "critical"),
        ("PYR-2", "warning"),
        ("PYR-2", "critical"),
    }
    assert feed(quick(), world, split=True) == whole


def test_halves_in_the_other_order_raise_the_same_alerts():
    ordered = sorted(returns_world(), key=lambda p: (p.ts, p.event_id))
    out_first = [Activity(p, side) for p in ordered for side in ("out", "in")]
    assert run(quick(), out_first) == feed(quick(), returns_world())


def test_every_alert_meets_the_contract_and_ids_are_deterministic():
    alerts = feed(quick(), mixed_world())
    for alert in alerts:
        doc = validate_alert(alert)
        assert doc["kind"] == KIND
        assert 1 <= len(alert.event_ids) <= 20
        assert all(i.startswith(("stake-", "B-stake-", "return-")) for i in alert.event_ids)
    again = feed(quick(), mixed_world())
    assert [a.alert_id for a in again] == [a.alert_id for a in alerts]
    assert len({a.alert_id for a in alerts}) == len(alerts)


def test_pickle_round_trip_mid_stream_gives_the_same_later_alerts():
    events = activities(mixed_world())
    # Day 3, 11:00: PYR-2 is a warning already; PYR is one stake short of its own.
    cut = next(i for i, e in enumerate(events) if e.ts >= T0 + timedelta(days=3, hours=2))
    detector = quick()
    before = run(detector, events[:cut])
    assert [(a.entity, a.severity) for a in before] == [("PYR-2", "warning")]
    copy = pickle.loads(pickle.dumps(detector))
    later = run(detector, events[cut:])
    assert run(copy, events[cut:]) == later
    assert [(a.entity, a.severity) for a in later] == [
        (ORGANISER, "warning"),
        (ORGANISER, "critical"),
        ("PYR-2", "critical"),
    ]


def test_an_account_idle_for_thirty_days_is_forgotten():
    detector = quick()
    nine = [pay(f"early-{n}", n / 24, f"INV-{n}", "ACC-A", 100_000.0) for n in range(9)]
    assert run(detector, activities(nine)) == []
    assert detector.n_entities == 1  # ACC-A's last payment: day 0, 17:00
    run(detector, activities([pay("b", 29, "X", "ACC-B", 1_000.0)]))
    assert detector.n_entities == 2  # ACC-A idle for 29 days: kept
    run(detector, activities([pay("c", 30 + 9 / 24, "X", "ACC-C", 1_000.0)]))
    assert detector.n_entities == 2  # ACC-A idle for 30 days and an hour: forgotten
    # Forgotten means forgotten: its nine investors are new to it again, and a tenth joins.
    world = [pay(f"late-{n}", 31 + n / 24, f"INV-{n}", "ACC-A", 100_000.0) for n in range(10)]
    assert [a.entity for a in run(detector, activities(world))] == ["ACC-A"]
