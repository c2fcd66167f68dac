"""``mule_account``: incoming payments from new payers, passed on within hours.

Hand-built worlds fed through the detector in a plain loop, each payment as one
``Activity`` (both sides) and as its two halves. Expected figures are worked
out by hand from the documented defaults: an outflow passes on pending inflows
of at least 10,000 tenge when it leaves within 12 hours of them (and not before
them, in event time) and carries 50 % to 100 % of one inflow, or of the newest
two to four inflows taken together (pooled); it goes to someone who never paid
the account (a cash withdrawal by the account counts); each inflow is passed on
once. Only payers new to the account count: a warning at 2 new payers (4 during
the first 35 days of the detector's event time) whose money was passed on
within 72 hours in at least 2 payments, when the inflows passed on are at least
half of all the money the account received in those 72 hours (small inflows
too, once the account is watched); critical at 6 new payers.

Most worlds here last a few days, well inside the 35-day warm-up, so they run
through ``quick()`` (no warm-up: 2 new payers suffice); the warm-up has tests
of its own.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from detectors.base import alert_id
from detectors.events import Activity, Alert, Payment
from detectors.payments.ledger import Payers
from detectors.payments.mule_account import MuleAccount
from detectors.payments.pyramid_scheme import PyramidScheme
from detectors.payments.sketch import Seen
from tests.detectors.support import check, run, validate_alert

KIND = "mule_account"
T0 = datetime(2023, 3, 1, 9, tzinfo=UTC)
MULE = "MULE"
EXIT = "EXIT-1"
DESK = "CASH-001"

#: The mule's traffic: (amount in, amount passed on, hour in, delay in hours), payer P-k.
FLOWS = [
    (200_000.0, 180_000.0, 0, 2),  # 90 %
    (150_000.0, 120_000.0, 10, 5),  # 80 %
    (300_000.0, 285_000.0, 20, 1),  # 95 %
    (100_000.0, 85_000.0, 30, 8),  # 85 %
    (250_000.0, 220_000.0, 40, 3),  # 88 %
    (120_000.0, 108_000.0, 50, 3),  # 90 %
]


def pay(
    event_id: str, hours: float, payer: str, payee: str, amount: float, channel: str = "transfer"
) -> Payment:
    """A payment ``hours`` after T0 (2023-03-01 09:00 UTC)."""
    return Payment(
        event_id=event_id,
        ts=T0 + timedelta(hours=hours),
        payer=payer,
        payee=payee,
        amount=amount,
        channel=channel,
    )


def mule_world(
    flows: list[tuple[float, float, float, float]] = FLOWS,
    account: str = MULE,
    prefix: str = "",
    start: float = 0,
    cash: bool = False,
) -> list[Payment]:
    """Payer ``{prefix}P-k`` pays ``{prefix}in-k``; ``{prefix}out-k`` passes it on.

    To the exit account by transfer, or (``cash``) withdrawn at the cash desk.
    """
    world = []
    for k, (amount_in, amount_out, hour, delay) in enumerate(flows):
        at = start + hour
        world.append(pay(f"{prefix}in-{k}", at, f"{prefix}P-{k}", account, amount_in))
        if cash:
            world.append(pay(f"{prefix}out-{k}", at + delay, account, DESK, amount_out, "cash_out"))
        else:
            world.append(pay(f"{prefix}out-{k}", at + delay, account, EXIT, amount_out))
    return world


def activities(payments: list[Payment], split: bool = False) -> list[Activity]:
    """In event-time order; ``split``: each payment as its "in" then its "out" half."""
    ordered = sorted(payments, key=lambda p: (p.ts, p.event_id))
    if not split:
        return [Activity(p) for p in ordered]
    return [Activity(p, side) for p in ordered for side in ("in", "out")]


def quick(**overrides: float) -> MuleAccount:
    """Defaults but no warm-up: these worlds are far shorter than its 35 days."""
    return MuleAccount(**{"warm_up_days": 0, **overrides})


def feed(payments: list[Payment], detector: MuleAccount | None = None) -> list[Alert]:
    return run(detector or quick(), activities(payments))


def per_event(
    payments: list[Payment], detector: MuleAccount | None = None
) -> dict[str, list[Alert]]:
    """The alerts each payment raised, by event id (only those that raised some)."""
    detector, out = detector or quick(), {}
    for event in activities(payments):
        alerts = check(detector, event)
        if alerts:
            out[event.event_id] = alerts
    return out


FIGURES = (
    "forwards",
    "distinct_payers",
    "new_payers",
    "passes",
    "received_in_window",
    "received",
    "passed_on",
    "share_passed_on",
    "median_delay_hours",
    "destinations",
    "window_hours",
)


def figures(alert: Alert) -> dict[str, object]:
    """The documented figures of a mule alert's evidence (other keys may be added)."""
    return {key: alert.evidence[key] for key in FIGURES}


def test_the_destinations_are_told_apart_from_the_payers_by_the_sketch():
    # The sketch may take a stranger for a payer (tests/detectors/test_sketch.py); the
    # worlds here use names it tells apart, so a pass is never mistaken for a refund.
    destinations = (EXIT, "EXIT-2", DESK, "OWNER", "STORE", "HANDLER", "SIBLING", "SUPPLIER")
    payer_sets = [
        [f"{prefix}P-{k}" for prefix in ("", "B-") for k in range(10)],
        [f"P-{k}" for k in range(2)] + [f"X-{k}" for k in range(41)],
        [f"P-{k}" for k in range(2)] + [f"TIP-{k}" for k in range(50)],
        [f"P-{k}" for k in range(2)] + [f"V-{k}" for k in range(5)],
        [f"CUST-{d}-{k}" for d in range(3) for k in range(20)],
        ["MOTHER", "FATHER"],
    ]
    for names in payer_sets:
        payers = Seen()
        for name in names:
            assert payers.add(name)
        assert not any(name in payers for name in destinations)


# --- warning, critical ---------------------------------------------------------------


def test_two_new_payers_passed_on_in_two_payments_are_a_warning():
    raised = per_event(mule_world(FLOWS[:2]))
    assert list(raised) == ["out-1"]
    [alert] = raised["out-1"]
    assert (alert.kind, alert.domain) == (KIND, "payments")
    assert (alert.entity, alert.entity_type) == (MULE, "account")
    assert alert.severity == "warning"
    assert alert.ts == T0 + timedelta(hours=15)
    assert alert.alert_id == alert_id(KIND, MULE, "in-0", "warning")
    assert alert.event_ids == ["in-0", "out-0", "in-1", "out-1"]
    # 300,000 of 350,000 passed on (85.7 %); from the first inflow (0 h) to the second
    # pass (15 h); delays 2 and 5 hours, median 3.5; 2 inflows in 2 payments.
    assert alert.reasons == [
        "2 incoming payments from 2 new payers passed on within 12 hours "
        "(86% of 350,000 tenge) in 15 hours",
        "each passed on after 3.5 hours (median), in 2 payment(s) to 1 destination(s)",
    ]
    assert figures(alert) == {
        "forwards": 2,
        "distinct_payers": 2,
        "new_payers": 2,
        "passes": 2,
        "received_in_window": 350_000.0,
        "received": 350_000.0,
        "passed_on": 300_000.0,
        "share_passed_on": 0.857,
        "median_delay_hours": 3.5,
        "destinations": 1,
        "window_hours": 72.0,
    }
    assert alert.score == pytest.approx(2 / 12)
    validate_alert(alert)


def test_six_new_payers_passed_on_are_critical():
    raised = per_event(mule_world())
    assert list(raised) == ["out-1", "out-5"]
    [critical] = raised["out-5"]
    assert critical.severity == "critical"
    assert critical.ts == T0 + timedelta(hours=53)
    # The finding keeps the name its first alert gave it.
    assert critical.alert_id == alert_id(KIND, MULE, "in-0", "critical")
    assert critical.event_ids == [f"{d}-{k}" for k in range(6) for d in ("in", "out")]
    # 998,000 of 1,120,000 (89.1 %); delays 1, 2, 3, 3, 5, 8 hours.
    assert critical.reasons == [
        "6 incoming payments from 6 new payers passed on within 12 hours "
        "(89% of 1,120,000 tenge) in 53 hours",
        "each passed on after 3.0 hours (median), in 6 payment(s) to 1 destination(s)",
    ]
    assert figures(critical) == {
        "forwards": 6,
        "distinct_payers": 6,
        "new_payers": 6,
        "passes": 6,
        "received_in_window": 1_120_000.0,
        "received": 1_120_000.0,
        "passed_on": 998_000.0,
        "share_passed_on": 0.891,
        "median_delay_hours": 3.0,
        "destinations": 1,
        "window_hours": 72.0,
    }
    assert critical.score == pytest.approx(6 / 12)
    validate_alert(critical)


def test_cash_withdrawals_at_a_desk_are_forwards_too():
    by_transfer = feed(mule_world())
    in_cash = feed(mule_world(cash=True))
    assert [a.severity for a in in_cash] == ["warning", "critical"]
    assert [a.event_ids for a in in_cash] == [a.event_ids for a in by_transfer]
    assert [a.evidence for a in in_cash] == [a.evidence for a in by_transfer]


def test_several_destinations_are_counted():
    world = mule_world(FLOWS[:2])
    world[3] = pay("out-1", 15, MULE, "EXIT-2", 120_000.0)
    [alert] = feed(world)
    assert alert.evidence["destinations"] == 2
    assert alert.reasons[1].endswith("in 2 payment(s) to 2 destination(s)")


def test_more_forwards_after_the_critical_raise_nothing():
    flows = FLOWS + [(200_000.0, 180_000.0, 60 + 4 * k, 1) for k in range(4)]
    assert [a.severity for a in feed(mule_world(flows))] == ["warning", "critical"]


def test_the_median_delay_of_an_even_number_of_forwards_is_the_middle_pair_mean():
    flows = [*FLOWS[:5], (120_000.0, 108_000.0, 50, 4)]  # delays 2, 5, 1, 8, 3, 4
    [_, critical] = feed(mule_world(flows))
    # Sorted 1, 2, 3, 4, 5, 8: the middle pair is 3 and 4.
    assert critical.evidence["median_delay_hours"] == 3.5
    assert critical.reasons[1] == (
        "each passed on after 3.5 hours (median), in 6 payment(s) to 1 destination(s)"
    )


# --- where a pass ends ----------------------------------------------------------------


def two(amount: float = 180_000.0, delay: float = 2) -> list[Payment]:
    """One clean pass of 200,000 and a second inflow of 200,000 passed on as told."""
    world = mule_world([(200_000.0, 180_000.0, 0, 2)])
    world += [pay("in-1", 10, "P-1", MULE, 200_000.0), pay("out-1", 10 + delay, MULE, EXIT, amount)]
    return world


@pytest.mark.parametrize(
    ("amount", "delay", "alerts"),
    [
        (99_999.0, 2, 0),  # under half the inflow
        (100_000.0, 2, 1),  # exactly half
        (200_000.0, 2, 1),  # all of it
        (200_001.0, 2, 0),  # more than came in
        (180_000.0, 12, 1),  # exactly 12 hours later
        (180_000.0, 12 + 1 / 3600, 0),  # 12 hours and a second later
    ],
)
def test_a_forward_carries_half_to_all_of_an_inflow_within_twelve_hours(amount, delay, alerts):
    assert len(feed(two(amount, delay))) == alerts


def test_an_outflow_that_fits_no_inflow_nor_pool_of_the_newest_is_no_pass():
    world = mule_world(FLOWS[:1])
    world += [
        pay("in-1", 10, "P-1", MULE, 100_000.0),
        pay("in-2", 11, "P-2", MULE, 400_000.0),
        # 150 % of one, 37.5 % of the other, 30 % of the two together
        pay("out-150", 12, MULE, EXIT, 150_000.0),
        pay("out-200", 13, MULE, EXIT, 200_000.0),  # half of the 400,000
    ]
    raised = per_event(world)
    assert list(raised) == ["out-200"]
    [alert] = raised["out-200"]
    assert alert.event_ids == ["in-0", "out-0", "in-2", "out-200"]
    # 600,000 passed on of the 700,000 received: in-1 stayed.
    assert alert.evidence["received_in_window"] == 700_000.0
    assert alert.evidence["received"] == 600_000.0


def test_an_inflow_is_forwarded_at_most_once():
    world = mule_world(FLOWS[:2])
    world += [pay(f"again-{k}", 3 + k, MULE, EXIT, 180_000.0) for k in range(2)]  # P-0's again
    [alert] = feed(world)
    assert alert.evidence["forwards"] == 2
    assert alert.evidence["passes"] == 2
    assert alert.evidence["received"] == 350_000.0
    assert alert.event_ids == ["in-0", "out-0", "in-1", "out-1"]


def test_paying_back_the_payers_is_no_forward():
    world = []
    for k, (amount_in, amount_out, hour, delay) in enumerate(FLOWS):
        world.append(pay(f"in-{k}", hour, f"P-{k}", MULE, amount_in))
        world.append(pay(f"back-{k}", hour + delay, MULE, f"P-{k}", amount_out))
    assert feed(world) == []


def test_paying_someone_who_once_paid_the_account_is_no_forward():
    # The exit account paid the mule 5,000 once: too little to be an inflow, enough to be known.
    world = [pay("hello", -1, EXIT, MULE, 5_000.0), *mule_world()]
    assert feed(world) == []


def test_inflows_under_ten_thousand_are_not_counted():
    small = [(9_999.0, 9_000.0, 10 * k, 1) for k in range(6)]
    assert feed(mule_world(small)) == []
    floor = [(10_000.0, 10_000.0, 10 * k, 1) for k in range(2)]
    assert [a.severity for a in feed(mule_world(floor))] == ["warning"]


def test_payments_under_ten_thousand_pass_nothing_on():
    # Each inflow of 10,000 is followed by 9,999 out (a purchase, say): no pass.
    under = [(10_000.0, 9_999.0, 10 * k, 1) for k in range(6)]
    assert feed(mule_world(under)) == []


def test_one_forward_is_not_enough():
    assert feed(mule_world(FLOWS[:1])) == []


def test_the_same_payer_twice_is_one_payer():
    payers = ["P-0", "P-0", "P-1"]
    world = [pay(f"in-{k}", 10 * k, payer, MULE, 200_000.0) for k, payer in enumerate(payers)]
    world += [pay(f"out-{k}", 10 * k + 2, MULE, EXIT, 180_000.0) for k in range(3)]
    raised = per_event(world)
    assert list(raised) == ["out-2"]  # P-0, P-0, P-1: two payers at the third
    [alert] = raised["out-2"]
    assert alert.evidence["forwards"] == 3
    assert alert.evidence["distinct_payers"] == 2
    assert alert.evidence["new_payers"] == 2
    assert alert.reasons[0].startswith("3 incoming payments from 2 new payers")
    assert alert.score == pytest.approx(2 / 12)


def test_six_forwards_from_three_payers_stay_a_warning():
    world = []
    for k in range(6):
        world.append(pay(f"in-{k}", 10 * k, f"P-{k % 3}", MULE, 200_000.0))
        world.append(pay(f"out-{k}", 10 * k + 2, MULE, EXIT, 180_000.0))
    assert [a.severity for a in feed(world)] == ["warning"]


def test_the_forwards_must_fall_within_seventy_two_hours():
    def spread(last: float) -> list[Payment]:
        return mule_world([(200_000.0, 180_000.0, h, 2) for h in (0, last)])

    # First inflow at 0 h, second pass at 72 h: inside.
    [alert] = feed(spread(70))
    assert alert.reasons[0].endswith("in 72 hours")
    assert alert.evidence["forwards"] == 2
    # Second pass a second later: the first inflow has left the window.
    assert feed(spread(70 + 1 / 3600)) == []


def test_money_sent_before_it_arrived_is_no_forward():
    def world(delay: float) -> list[Payment]:
        # 20 hours apart, so no outflow is within 12 hours after an earlier inflow.
        payments = []
        for k in range(3):
            payments.append(pay(f"in-{k}", 20 * k + 1, f"P-{k}", MULE, 200_000.0))
            payments.append(pay(f"out-{k}", 20 * k + 1 + delay, MULE, EXIT, 180_000.0))
        return payments  # in the order seen: each inflow, then its outflow

    # Each outflow happens an hour *before* its inflow (in event time) and is seen after it.
    assert run(quick(), [Activity(p) for p in world(-1)]) == []
    # An hour after, the same payments are passes: the event time is what keeps them out.
    assert [a.severity for a in run(quick(), [Activity(p) for p in world(1)])] == ["warning"]


def test_an_inflow_seen_late_is_not_forwarded_after_twelve_hours():
    world = [
        *mule_world(FLOWS[:1]),  # P-0: 200,000 at 0 h, 180,000 on at 2 h
        pay("in-1", 10, "P-1", MULE, 100_000.0),
        pay("in-2", 3, "P-2", MULE, 200_000.0),  # seen after in-1
        pay("out-2", 20, MULE, EXIT, 180_000.0),  # 17 hours after in-2
    ]
    assert run(quick(), [Activity(p) for p in world]) == []


# --- pooled passes ---------------------------------------------------------------------


def pooled_world(pooled: int) -> list[Payment]:
    """P-0's 200,000 passed on alone, then ``pooled`` victims' 100,000 each (V-k, from
    10:00 on, every quarter of an hour) passed on together at 12 h: 90 % of their sum."""
    world = mule_world(FLOWS[:1])
    world += [pay(f"v-{k}", 10 + k / 4, f"V-{k}", MULE, 100_000.0) for k in range(pooled)]
    world.append(pay("pool", 12, MULE, EXIT, 90_000.0 * pooled))
    return world


@pytest.mark.parametrize("pooled", [2, 3, 4])
def test_two_to_four_inflows_passed_on_in_one_payment_are_one_pass(pooled):
    raised = per_event(pooled_world(pooled))
    assert list(raised) == ["pool"]
    [alert] = raised["pool"]
    assert alert.severity == "warning"  # 1 + 4 new payers at most: under 6
    assert alert.event_ids == ["in-0", "out-0", "v-0", "pool"] + [
        f"v-{k}" for k in range(1, pooled)
    ]
    assert alert.evidence["forwards"] == 1 + pooled
    assert alert.evidence["new_payers"] == 1 + pooled
    assert alert.evidence["passes"] == 2
    assert alert.evidence["passed_on"] == 180_000.0 + 90_000.0 * pooled
    assert alert.reasons[0].startswith(f"{1 + pooled} incoming payments from {1 + pooled} new")
    assert alert.reasons[1].endswith("in 2 payment(s) to 1 destination(s)")


def test_five_inflows_passed_on_in_one_payment_are_no_pass():
    # 450,000 is more than the newest four (400,000) hold: no pool of at most four carries it.
    assert feed(pooled_world(5)) == []
    # It is max_pool that keeps it out: pools of five would take it.
    [alert] = feed(pooled_world(5), quick(max_pool=5))
    assert alert.evidence["forwards"] == 6


def test_a_pool_is_the_newest_inflows():
    # Three inflows of 100,000; 150,000 out fits the newest two (a pool of 200,000).
    world = mule_world(FLOWS[:1])
    world += [pay(f"v-{k}", 10 + k, f"V-{k}", MULE, 100_000.0) for k in range(3)]
    world.append(pay("pool", 13, MULE, EXIT, 150_000.0))
    [alert] = feed(world)
    assert alert.event_ids == ["in-0", "out-0", "v-1", "pool", "v-2"]


def test_a_single_pass_is_not_enough_even_from_four_new_payers():
    # Four strangers' money leaves in one payment: a purchase or a pot, not yet a pipe in use.
    world = [pay(f"v-{k}", k / 4, f"V-{k}", MULE, 100_000.0) for k in range(4)]
    world.append(pay("pool", 2, MULE, EXIT, 360_000.0))
    assert feed(world) == []
    assert feed(world, MuleAccount()) == []
    # It is min_passes that keeps it out.
    [alert] = feed(world, quick(min_passes=1))
    assert (alert.evidence["new_payers"], alert.evidence["passes"]) == (4, 1)


# --- new payers: the warm-up, known payers ----------------------------------------------


def test_during_the_warm_up_four_new_payers_are_needed():
    detector = MuleAccount()  # the stream starts with in-0: its first 35 days are cold
    raised = per_event(mule_world(), detector)
    assert list(raised) == ["out-3", "out-5"]
    [warning] = raised["out-3"]
    assert warning.severity == "warning"
    assert warning.evidence["new_payers"] == 4
    assert warning.reasons[0].startswith("4 incoming payments from 4 new payers")
    assert [a.severity for a in raised["out-5"]] == ["critical"]
    # Three new payers are not enough then, whatever they pass on.
    assert feed(mule_world(FLOWS[:3]), MuleAccount()) == []


def test_after_the_warm_up_two_new_payers_suffice():
    start = pay("start", 0, "A", "B", 1_000.0)  # the stream's first event: the warm-up starts

    def world(end: float) -> list[Payment]:
        # Two new payers' money passed on in two payments, the second pass at ``end`` hours.
        return [start, *mule_world(FLOWS[:2], start=end - 15)]

    [alert] = feed(world(35 * 24), MuleAccount())
    assert alert.ts == T0 + timedelta(days=35)
    assert alert.evidence["new_payers"] == 2
    # A second before the 35 days are up, two are too few.
    assert feed(world(35 * 24 - 1 / 3600), MuleAccount()) == []


def test_payers_known_before_do_not_count():
    # P-0 and P-1 paid the mule 5,000 each a week before: known to it, though never watched.
    hello = [pay(f"hello-{k}", -24 * 7 + k, f"P-{k}", MULE, 5_000.0) for k in range(2)]
    assert feed(hello + mule_world(FLOWS[:2])) == []
    # Two strangers' money passed on as well: the two new payers alert.
    raised = per_event(hello + mule_world(FLOWS[:4]))
    assert list(raised) == ["out-3"]
    [alert] = raised["out-3"]
    assert alert.evidence["forwards"] == 4
    assert alert.evidence["distinct_payers"] == 4
    assert alert.evidence["new_payers"] == 2
    assert alert.reasons[0].startswith("4 incoming payments from 2 new payers")
    assert alert.score == pytest.approx(2 / 12)


def family() -> list[Payment]:
    """The stream starts 10 days before; then, every 30 days, MOTHER and FATHER send money
    the person passes on within hours: one sum to a sibling, one taken in cash."""
    world = [pay("start", -24 * 10, "A", "B", 1_000.0)]
    for m in range(3):
        at = 24 * 30 * m
        world += [
            pay(f"mother-{m}", at, "MOTHER", "PERSON", 150_000.0),
            pay(f"sibling-{m}", at + 2, "PERSON", "SIBLING", 140_000.0),
            pay(f"father-{m}", at + 5, "FATHER", "PERSON", 120_000.0),
            pay(f"cash-{m}", at + 7, "PERSON", DESK, 110_000.0, "cash_out"),
        ]
    return world


def test_a_relatives_monthly_money_passed_on_is_quiet_in_its_second_month():
    # Month 1 is in the warm-up (two payers, not four); month 2 (40 days into the stream)
    # is not, but the parents are known by then; month 3 likewise.
    assert feed(family(), MuleAccount()) == []
    # What keeps month 2 quiet is the parents being known: a ledger that forgets payers
    # after 20 days takes them for strangers, and month 2 alerts.
    forgetful = MuleAccount(payers=Payers(idle_days=20))
    [alert] = feed(family(), forgetful)
    assert alert.event_ids == ["mother-1", "sibling-1", "father-1", "cash-1"]
    assert alert.evidence["new_payers"] == 2


# --- the passed-on share ---------------------------------------------------------------


def with_unpassed(extra: int, amount: float = 50_000.0, hour: float = 11) -> list[Payment]:
    """Two clean passes (P-0, P-1: 400,000 in, each passed on) and ``extra`` inflows
    passed on by no one.

    The extra inflows (payers X-k, ``amount`` each) arrive at ``hour`` and a minute apart
    after, before the second pass (12 h), and are too small to be carried on by its
    180,000 (which carries P-1's 200,000).
    """
    world = mule_world([(200_000.0, 180_000.0, 0, 2), (200_000.0, 180_000.0, 10, 2)])
    world += [pay(f"x-{k}", hour + k / 60, f"X-{k}", MULE, amount) for k in range(extra)]
    return world


@pytest.mark.parametrize(
    ("extra", "alerts"),
    [
        (0, 1),  # 400,000 of 400,000
        (4, 1),  # 400,000 of 600,000
        (8, 1),  # 400,000 of 800,000: exactly half
        (9, 0),  # 400,000 of 850,000
    ],
)
def test_the_money_passed_on_must_be_at_least_half_of_the_money_received(extra, alerts):
    raised = feed(with_unpassed(extra))
    assert len(raised) == alerts
    if raised:
        assert raised[0].evidence["received_in_window"] == 400_000.0 + 50_000.0 * extra
        assert raised[0].evidence["received"] == 400_000.0
        assert raised[0].evidence["forwards"] == 2


def test_two_passes_of_two_thirds_of_the_money_are_a_warning_and_of_under_half_are_not():
    [alert] = feed(with_unpassed(4))
    assert alert.severity == "warning"
    assert alert.event_ids == ["in-0", "out-0", "in-1", "out-1"]
    assert figures(alert)["received_in_window"] == 600_000.0
    assert feed(with_unpassed(9)) == []
    # What keeps it out is the share: without it two passes from two new payers alert.
    assert len(feed(with_unpassed(9), quick(min_forwarded_share=0.0))) == 1


def test_small_inflows_count_in_the_money_received_once_the_account_is_watched():
    # 40 inflows of 9,999 (399,960) beside the 400,000 passed on: just over half.
    [alert] = feed(with_unpassed(40, amount=9_999.0))
    assert alert.evidence["received_in_window"] == 799_960.0
    assert alert.evidence["forwards"] == 2  # too small to be passed on themselves
    # 41 of them (409,959): the 400,000 passed on are under half.
    assert feed(with_unpassed(41, amount=9_999.0)) == []
    # Before its first inflow of 10,000 or more nobody watches the account: tips of 9,999
    # before it are not counted.
    tips = [pay(f"tip-{k}", -5 + k / 60, f"TIP-{k}", MULE, 9_999.0) for k in range(50)]
    [alert] = feed(tips + with_unpassed(0))
    assert alert.evidence["received_in_window"] == 400_000.0


def test_inflows_older_than_the_window_do_not_dilute_the_share():
    old = [pay(f"old-{k}", k, f"OLD-{k}", MULE, 50_000.0) for k in range(10)]  # 0-9 h

    def forwards_from(start: float) -> list[Payment]:
        return mule_world([(200_000.0, 180_000.0, start + 10 * k, 2) for k in range(2)])

    # Second pass at 92 h: the window starts at 20 h, after the ten old inflows.
    [alert] = feed(old + forwards_from(80))
    assert alert.evidence["received_in_window"] == 400_000.0
    # Second pass at 72 h: the window starts at 0 h and holds them: 400,000 of 900,000.
    assert feed(old + forwards_from(60)) == []


#: A pyramid's stakes: three round sums in turn and, once a day, one big stake.
STAKES = (50_000.0, 100_000.0, 200_000.0)
BIG_STAKE = 1_500_000.0


def pyramid_like(days: int = 7) -> list[Payment]:
    """20 stakes a day from new investors, 09:00-18:30 UTC (the 11th the big one),
    and at 20:00 one cash withdrawal of 30 % of the day's stakes."""
    world = []
    for d in range(days):
        day = [
            pay(
                f"stake-{d}-{k}",
                24 * d + k / 2,
                f"INV-{d}-{k}",
                "PYR",
                BIG_STAKE if k == 10 else STAKES[k % 3],
            )
            for k in range(20)
        ]
        cash = sum(p.amount for p in day) * 3 / 10
        world += [*day, pay(f"cash-{d}", 24 * d + 11, "PYR", DESK, cash, "cash_out")]
    return world


def test_a_pyramid_withdrawing_part_of_its_stakes_is_not_a_mule():
    world = pyramid_like()
    # 19 stakes of 50,000-200,000 and the big one: 3,650,000 a day, 1,095,000 withdrawn,
    # which carries on 73 % of the big stake (6 hours earlier): one pass a day.
    cash = [p.amount for p in world if p.channel == "cash_out"]
    assert cash == [1_095_000.0] * 7
    assert BIG_STAKE / 2 <= cash[0] <= BIG_STAKE
    assert feed(world) == []
    # The passes are there, from a new investor each day, but 3,000,000 of 7,300,000.
    [alert] = feed(world, quick(min_forwarded_share=0.0))
    assert alert.event_ids == ["stake-0-10", "cash-0", "stake-1-10", "cash-1"]
    assert alert.evidence["received_in_window"] == 7_300_000.0
    # It is the pyramid detector's to catch.
    pyramid = run(PyramidScheme(warm_up_days=0), activities(world))
    assert [(a.entity, a.severity) for a in pyramid] == [("PYR", "warning"), ("PYR", "critical")]


def test_a_busy_account_forwarding_a_third_of_its_inflows_is_not_a_mule():
    world = []
    for k in range(120):  # an inflow every half hour, every third passed on 15 minutes later
        world.append(pay(f"in-{k}", k / 2, f"P-{k}", "HUB", 200_000.0))
        if k % 3 == 2:  # 1 of 3, 2 of 6, 3 of 9, ...: always a third of the money
            world.append(pay(f"out-{k}", k / 2 + 0.25, "HUB", EXIT, 180_000.0))
    assert feed(world) == []


def test_a_merchant_paying_a_supplier_its_last_few_takings_is_not_a_pipe():
    # 20 new customers a day (458,000 tenge); at 19:30 the merchant pays its supplier 95 %
    # of its last three takings (71,300): by chance a pooled pass, every day.
    amounts = (12_500.0, 18_900.0, 24_000.0, 31_700.0, 15_200.0, 39_900.0)
    world = []
    for d in range(3):
        sales = [
            pay(f"sale-{d}-{k}", 24 * d + k / 2, f"CUST-{d}-{k}", "MERCHANT", amounts[k % 6])
            for k in range(20)
        ]
        last = sum(p.amount for p in sales[-3:])
        world += [*sales, pay(f"supplier-{d}", 24 * d + 10.5, "MERCHANT", "SUPPLIER", 0.95 * last)]
    assert sum(p.amount for p in world if p.event_id.startswith("sale-0-")) == 458_000.0
    assert feed(world) == []
    # The passes are there, two a window and more, but out of far more takings.
    alerts = feed(world, quick(min_forwarded_share=0.0))
    assert alerts
    assert alerts[0].evidence["passes"] == 2
    assert alerts[0].evidence["forwards"] == 6
    assert alerts[0].evidence["received_in_window"] == 916_000.0


# --- look-alikes that must not alert -------------------------------------------------


def test_a_shop_sweeping_its_takings_to_its_owner_is_not_a_mule():
    takings = (2_500.0, 4_800.0, 12_000.0, 7_300.0, 25_000.0, 15_500.0)
    world = []
    for day in range(5):
        sales = [
            pay(f"sale-{day}-{k}", 24 * day + k / 2, f"CUST-{k}", "SHOP", takings[k % 6])
            for k in range(20)
        ]
        total = sum(p.amount for p in sales)
        world += [*sales, pay(f"sweep-{day}", 24 * day + 11, "SHOP", "OWNER", total)]
    assert feed(world) == []
    assert feed(world, MuleAccount()) == []


def test_a_group_purchase_is_not_a_mule():
    world = [pay(f"chip-{k}", k / 15, f"FRIEND-{k}", "ORGANISER", 10_000.0) for k in range(15)]
    world.append(pay("purchase", 1 + 3, "ORGANISER", "STORE", 150_000.0))
    assert feed(world) == []


def test_a_savings_group_pot_is_not_a_mule():
    world = []
    for month in range(4):
        start = 24 * 30 * month
        world += [
            pay(f"dues-{month}-{k}", start + k / 6, f"MEMBER-{k}", "TREASURER", 50_000.0)
            for k in range(10)
        ]
        world.append(pay(f"pot-{month}", start + 8, "TREASURER", f"MEMBER-{month}", 500_000.0))
    assert feed(world) == []


def test_a_kassa_taker_passing_on_its_pot_is_no_mule_when_it_paid_the_members_before():
    # Held-out worlds: a kassa member took the pot (the members pay the taker directly),
    # then paid it on in two payments, matching two pairs of contributions: two passes
    # of two new payers' money. But the taker had paid those members their pots in
    # earlier months: they pay each other in turn, they are no strangers.
    pot = [pay(f"c-{k}", 100 + k, f"MEMBER-{k}", "TAKER", 30_000.0) for k in range(4)]
    passes = [
        pay("spend-1", 102, "TAKER", "SHOP-1", 55_000.0),
        pay("spend-2", 104, "TAKER", DESK, 56_000.0, "cash_out"),
    ]
    assert feed(pot + passes), "strangers' money passed on twice: a pipe"
    earlier = [pay(f"turn-{k}", 24 * k, "TAKER", f"MEMBER-{k}", 120_000.0) for k in range(4)]
    assert feed(earlier + pot + passes) == []


def test_a_merchant_refunding_earlier_payers_is_not_a_mule():
    world = []
    for k, (amount_in, _, hour, delay) in enumerate(FLOWS):
        world.append(pay(f"order-{k}", hour, f"CUSTOMER-{k}", "MERCHANT", amount_in))
        world.append(pay(f"refund-{k}", hour + delay, "MERCHANT", f"CUSTOMER-{k}", 0.9 * amount_in))
    assert feed(world) == []


def test_money_from_a_relative_withdrawn_once_in_a_while_is_not_a_mule():
    world = []
    for month in range(3):
        start = 24 * 30 * month
        world.append(pay(f"gift-{month}", start, "RELATIVE", "PERSON", 150_000.0))
        world.append(pay(f"cash-{month}", start + 3, "PERSON", DESK, 140_000.0, "cash_out"))
    assert feed(world) == []
    assert feed(world, MuleAccount()) == []


def test_a_cash_desk_is_not_a_mule():
    # People withdraw (cash_out, to the desk) and others deposit (cash_in, from the desk)
    # the same sums within the hour.
    amounts = (50_000.0, 100_000.0, 150_000.0, 200_000.0)
    world = []
    for k in range(20):
        amount = amounts[k % 4]
        world.append(pay(f"out-{k}", 2 * k, f"CLIENT-{k}", DESK, amount, "cash_out"))
        world.append(pay(f"in-{k}", 2 * k + 1, DESK, f"DEPOSITOR-{k}", amount, "cash_in"))
    assert feed(world) == []


# --- both sides, alert contract, checkpoint, memory ----------------------------------


def mixed_world() -> list[Payment]:
    """Two mules (one cashing out, a day later) among a shop, a merchant and a cash desk."""
    world = mule_world() + mule_world(account="MULE-2", prefix="B-", start=24, cash=True)
    for k in range(30):
        world.append(pay(f"shop-{k}", k, f"CUST-{k % 7}", "SHOP", 12_000.0 + 100 * k))
        world.append(pay(f"w-{k}", k + 0.5, f"CLIENT-{k}", DESK, 100_000.0, "cash_out"))
        world.append(pay(f"d-{k}", k + 0.7, DESK, f"CLIENT-{k + 1}", 100_000.0, "cash_in"))
    world += [pay(f"sweep-{d}", 24 * d + 20, "SHOP", "OWNER", 150_000.0) for d in range(2)]
    return world


MIXED_ALERTS = [
    (MULE, "warning"),
    ("MULE-2", "warning"),
    (MULE, "critical"),
    ("MULE-2", "critical"),
]


def test_the_mixed_world_raises_each_mule_once_and_nothing_else():
    assert [(a.entity, a.severity) for a in feed(mixed_world())] == MIXED_ALERTS


def test_the_two_halves_of_each_payment_raise_the_same_alerts_as_the_whole():
    # Regression: the "out" half once recorded the payee's inflow again, with a fresh
    # state, so a mule seen as halves (the live worker's repartition) never alerted.
    world = mixed_world()
    whole = feed(world)
    assert [(a.entity, a.severity) for a in whole] == MIXED_ALERTS
    assert run(quick(), activities(world, split=True)) == whole


def test_halves_in_the_other_order_raise_the_same_alerts():
    world = mixed_world()
    ordered = sorted(world, key=lambda p: (p.ts, p.event_id))
    out_first = [Activity(p, side) for p in ordered for side in ("out", "in")]
    assert run(quick(), out_first) == feed(world)


def test_every_alert_meets_the_contract_and_ids_are_deterministic():
    alerts = feed(mixed_world())
    for alert in alerts:
        doc = validate_alert(alert)
        assert doc["kind"] == KIND
        assert all(i.startswith(("in-", "out-", "B-in-", "B-out-")) for i in alert.event_ids)
    again = feed(mixed_world())
    assert [a.alert_id for a in again] == [a.alert_id for a in alerts]
    assert len({a.alert_id for a in alerts}) == len(alerts)


def test_pickle_round_trip_mid_stream_gives_the_same_later_alerts():
    events = activities(mixed_world())
    cut = next(i for i, e in enumerate(events) if e.ts >= T0 + timedelta(hours=30))
    detector = quick()
    assert [(a.entity, a.severity) for a in run(detector, events[:cut])] == [(MULE, "warning")]
    copy = pickle.loads(pickle.dumps(detector))
    later = run(detector, events[cut:])
    assert run(copy, events[cut:]) == later
    assert [(a.entity, a.severity) for a in later] == [
        ("MULE-2", "warning"),
        (MULE, "critical"),
        ("MULE-2", "critical"),
    ]


def test_an_idle_account_is_forgotten():
    detector = quick()
    run(detector, activities(mule_world(FLOWS[:2])))
    assert detector.n_entities == 2  # the mule and its exit account
    run(detector, activities([pay("late", 24 * 31, "X", "Y", 50_000.0)]))
    assert detector.n_entities == 1  # only Y: 31 days on, the others are forgotten


def test_sharing_one_payer_ledger_with_pyramid_scheme_changes_nothing():
    # The registry hands both payments detectors one Payers; each must see what it saw alone.
    world = mixed_world()
    # A gifting pyramid: 12 stakes of one contribution over two days, then pay-outs of
    # 2.5 contributions to earlier stakers (blooms).
    world += [pay(f"stake-{n}", 100 + 2 * n, f"INV-{n}", "PYR", 100_000.0) for n in range(12)]
    world += [pay(f"return-{k}", 140 + k, "PYR", f"INV-{k}", 250_000.0) for k in range(3)]
    events = activities(world)
    mule_alone = run(quick(), events)
    pyramid_alone = run(PyramidScheme(warm_up_days=0), events)
    assert [a.severity for a in pyramid_alone] == ["warning", "critical"]

    def pair() -> tuple[PyramidScheme, MuleAccount]:
        payers = Payers()
        return PyramidScheme(warm_up_days=0, payers=payers), quick(payers=payers)

    pyramid, mule = pair()
    shared_pyramid, shared_mule = [], []
    for event in events:  # the pyramid first here: the order must not matter
        shared_pyramid += check(pyramid, event)
        shared_mule += check(mule, event)
    assert (shared_mule, shared_pyramid) == (mule_alone, pyramid_alone)

    # A checkpoint of the pair keeps one ledger between them.
    cut = next(i for i, e in enumerate(events) if e.ts >= T0 + timedelta(hours=30))
    pyramid, mule = pair()
    for event in events[:cut]:
        check(mule, event)
        check(pyramid, event)
    pyramid_copy, mule_copy = pickle.loads(pickle.dumps((pyramid, mule)))
    assert pyramid_copy.payers is mule_copy.payers
    later = [(check(mule_copy, e), check(pyramid_copy, e)) for e in events[cut:]]
    assert [a for m, _ in later for a in m] == [a for a in mule_alone if a.ts >= events[cut].ts]
    assert [a for _, p in later for a in p] == pyramid_alone


def test_an_account_paid_for_a_month_and_never_forwarding_keeps_bounded_state():
    # A shop paid 20,000 a few times every hour for 30 days: it never passes money on,
    # so only the window's hours of money received and MAX_PENDING inflows stay.
    detector = MuleAccount()
    payments = [
        pay(f"in-{h}-{k}", h + k / 4, f"P-{h}-{k}", "SHOP", 20_000.0)
        for h in range(30 * 24)
        for k in range(3)
    ]
    assert feed(payments, detector) == []
    account = detector._accounts["SHOP"]
    assert len(account.arrivals) <= detector.window_hours + 2
    assert len(account.pending) <= 32


def test_cash_deposited_and_taken_out_again_is_no_pass():
    # Regression: a deposit's desk counted as a new payer, so an ordinary person paying
    # cash in at two desks and taking it out (or sending it on) looked like a pipe.
    world = []
    for k in range(3):
        world.append(pay(f"dep-{k}", 10 * k, f"CASH-{k}", MULE, 50_000.0, "cash_in"))
        world.append(pay(f"out-{k}", 10 * k + 2, MULE, EXIT, 45_000.0))
    assert feed(world) == []
    # The same sums from people are a pipe.
    paid = [
        p
        if not p.event_id.startswith("dep")
        else pay(p.event_id, 10 * int(p.event_id[-1]), f"P-{p.event_id[-1]}", MULE, 50_000.0)
        for p in world
    ]
    assert feed(paid)
