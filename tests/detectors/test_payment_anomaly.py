"""``payment_anomaly``: a busy account-day unlike the population's, within the budget.

The population here is built by hand: shops with a steady handful of card
sales a day at varied prices, and people paying each other now and then.
Against it, one account has a day no shop has: a crowd of payers sending round
sums, all of it sent straight on.
"""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta

from detectors.events import Activity, Alert, Payment
from detectors.payments.payment_anomaly import PaymentAnomaly
from tests.detectors.support import run, validate_alert

START = datetime(2023, 3, 1, tzinfo=UTC)
SHOPS = 60
DAYS = 50


def population(seed: int = 1, days: int = DAYS) -> list[Activity]:
    """Shops selling 3-8 items a day at varied prices; people paying each other."""
    rng = random.Random(seed)
    events: list[Activity] = []
    n = 0
    for day in range(days):
        for shop in range(SHOPS):
            for _ in range(rng.randint(3, 8)):
                n += 1
                ts = START + timedelta(days=day, hours=rng.uniform(8, 20))
                amount = round(rng.lognormvariate(8.3, 0.6), -1) + 7
                payment = Payment(f"p-{n}", ts, f"C-{rng.randrange(5000)}", f"SHOP-{shop}", amount)
                events.append(Activity(payment))
        for _ in range(100):
            n += 1
            ts = START + timedelta(days=day, hours=rng.uniform(8, 20))
            payer, payee = rng.sample(range(5000), 2)
            amount = float(rng.choice((5_000, 10_000, 20_000)))
            events.append(Activity(Payment(f"p-{n}", ts, f"C-{payer}", f"C-{payee}", amount)))
    return sorted(events, key=lambda e: e.ts)


def odd_day(day: int = DAYS - 2) -> list[Activity]:
    """One account: 60 payers send it 200,000 each, and it sends each sum on."""
    events = []
    for k in range(60):
        ts = START + timedelta(days=day, hours=6, minutes=10 * k)
        events.append(Activity(Payment(f"odd-in-{k}", ts, f"NEW-{k}", "ODD", 200_000.0)))
        out = Payment(f"odd-out-{k}", ts + timedelta(minutes=5), "ODD", f"EXIT-{k % 3}", 190_000.0)
        events.append(Activity(out))
    return events


def feed(detector: PaymentAnomaly, events: list[Activity]) -> list[Alert]:
    return run(detector, sorted(events, key=lambda e: e.ts))


def small(**overrides: float) -> PaymentAnomaly:
    return PaymentAnomaly(**{"warm_up": 500, **overrides})


def test_an_account_day_unlike_any_shop_alerts():
    alerts = feed(small(), population() + odd_day())
    assert "ODD" in {a.entity for a in alerts}
    odd = next(a for a in alerts if a.entity == "ODD")
    assert odd.evidence["payments_in"] == 60 and odd.evidence["payments_out"] == 60
    assert odd.evidence["distinct_payers"] == 60
    assert odd.evidence["anomaly_score"] > odd.evidence["threshold"]
    assert "60 payments in (12,000,000 tenge from 60 payers)" in odd.reasons[1]
    assert len(odd.event_ids) == 20 and odd.event_ids[0] == "odd-in-0"
    # Raised when the day is over: stamped with the end of that day, and naming it.
    assert odd.ts == START + timedelta(days=DAYS - 1)
    judged = (START + timedelta(days=DAYS - 2)).date().isoformat()
    assert odd.evidence["day"] == judged
    assert odd.reasons[0].startswith(f"its payments on {judged} (UTC) scored")
    validate_alert(odd)


def test_the_population_alone_stays_within_the_budget():
    events = population()
    alerts = feed(small(), events)
    payments = len(events)
    # The contract's budget: at most 5 alerts per 10,000 payments.
    assert len(alerts) <= 5 * payments / 10_000


def test_nothing_is_said_during_warm_up():
    events = population(days=10) + odd_day(day=8)
    assert feed(PaymentAnomaly(), events) == []  # 2,000 account-days are not reached


def test_a_population_of_identical_days_raises_nothing():
    events = []
    for day in range(40):
        for shop in range(10):
            for k in range(4):
                ts = START + timedelta(days=day, hours=9 + k)
                payment = Payment(f"p-{day}-{shop}-{k}", ts, f"C-{k}", f"SHOP-{shop}", 4_000.0)
                events.append(Activity(payment))
    # Once the running quantile has seen the scores settle (warm-up), an identical day
    # scores at the bar, not above it.
    assert feed(small(warm_up=400), events) == []


def test_an_account_is_alerted_at_most_once_a_week():
    events = population() + odd_day(DAYS - 5) + odd_day(DAYS - 4)
    events = list({e.event_id + e.payment.ts.isoformat(): e for e in events}.values())
    alerts = [a for a in feed(small(), events) if a.entity == "ODD"]
    assert len(alerts) == 1


def test_split_sides_give_the_same_alerts_as_both():
    events = population(days=30) + odd_day(day=28)
    both = feed(small(), events)
    halves = [Activity(e.payment, side) for e in events for side in ("in", "out")]
    assert feed(small(), halves) == both


def test_pickle_round_trip_mid_stream_gives_the_same_later_alerts():
    events = sorted(population() + odd_day(), key=lambda e: e.ts)
    half = len(events) // 2
    detector = small()
    feed(detector, events[:half])
    copy = pickle.loads(pickle.dumps(detector))
    later = feed(detector, events[half:])
    assert later and feed(copy, events[half:]) == later


def test_fresh_runs_are_identical():
    events = population() + odd_day()
    assert feed(small(), events) == feed(small(), events)


def interest_day(members_paid_before: bool, day: int = DAYS - 2) -> list[Activity]:
    """A cooperative pays 80 members their interest in one day; before that, each of them
    paid in their savings (or, as a control, strangers paid elsewhere)."""
    events = []
    for k in range(80):
        ts = START + timedelta(days=day - 20, hours=k / 10)
        payee = "COOP" if members_paid_before else f"ELSEWHERE-{k}"
        events.append(Activity(Payment(f"save-{k}", ts, f"MEMBER-{k}", payee, 50_000.0)))
        paid = START + timedelta(days=day, hours=9, minutes=k)
        events.append(Activity(Payment(f"int-{k}", paid, "COOP", f"MEMBER-{k}", 750.0)))
    return events


def test_a_day_of_paying_back_its_own_payers_is_explained():
    # The control: the same day to 80 strangers is far from the population's days.
    assert "COOP" in {a.entity for a in feed(small(), population() + interest_day(False))}
    # Interest to its own members: learnt, never alerted.
    assert "COOP" not in {a.entity for a in feed(small(), population() + interest_day(True))}
    # It is the share repaid that explains it.
    alerts = feed(small(repaid_share=1.01), population() + interest_day(True))
    assert "COOP" in {a.entity for a in alerts}


def donation_drive(day: int = DAYS - 2) -> list[Activity]:
    """A charity: 50 donors a day for five days, then a grant of what came in."""
    events = []
    for d in range(5):
        for k in range(50):
            ts = START + timedelta(days=day - 4 + d, hours=6, minutes=15 * k)
            donor = f"DONOR-{d}-{k}"
            events.append(Activity(Payment(f"gift-{d}-{k}", ts, donor, "CHARITY", 5_000.0)))
    grant_at = START + timedelta(days=day, hours=20)
    events.append(Activity(Payment("grant", grant_at, "CHARITY", "HOSPITAL", 1_200_000.0)))
    return events


def test_a_grant_of_the_weeks_takings_is_explained():
    # Paying out, in one payment, 1,200,000 of the 1,250,000 given that week: explained.
    events = population() + donation_drive()
    assert "CHARITY" not in {a.entity for a in feed(small(), events)}
    # Weighed against no takings at all, the grant day is far from the population's days.
    assert "CHARITY" in {a.entity for a in feed(small(takings_days=0), events)}


def spending_day(payments: int, day: int = DAYS - 2) -> list[Activity]:
    """A person's day of paying out only: a savings circle's 100,000, then small sums."""
    events = []
    for k in range(payments):
        ts = START + timedelta(days=day, hours=9 + k)
        amount = 100_000.0 if k == 0 else 3_000.0 + 1_000 * k
        events.append(Activity(Payment(f"spend-{k}", ts, "PERSON", f"PAYEE-{k}", amount)))
    return events


def test_a_day_of_only_spending_a_few_payments_is_explained():
    # Held-out worlds: a savings circle's or a cooperative's member, paying its contribution
    # and three small sums on a day nothing came in, was the catch-all's alert.
    population_alone = {a.entity for a in feed(small(q=0.99), population())}
    assert "PERSON" not in population_alone
    assert "PERSON" not in {a.entity for a in feed(small(q=0.99), population() + spending_day(4))}
    # Past the everyday few, a day of paying many out with nothing in is judged again.
    assert "PERSON" in {a.entity for a in feed(small(q=0.99), population() + spending_day(30))}
