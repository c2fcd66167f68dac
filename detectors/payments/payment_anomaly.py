"""``payment_anomaly``: an account's day of payments unlike the population's.

The catch-all. Once a day of event time, every account that made or received
at least ``min_activity`` payments that day is described by a few figures
(counts and sums in and out, the share sent on, how many distinct payers and
payees, the largest payment, the share of round sums), each squashed into
[0, 1] on a log scale. River's ``HalfSpaceTrees`` learns what such days look
like across the whole population and scores each new one; a running
``stats.Quantile`` of the scores sets the bar (River's ``QuantileFilter``
logic, scoring once): a day above the ``q`` quantile, with a score of at least
``min_score``, is anomalous, and is not learnt, so a run of odd days cannot
teach the model they are normal.

Budget: the contract allows at most 5 alerts per 10,000 payments. With ``q``
= 0.9995 one scored account-day in 2,000 alerts, and accounts busy enough to
be scored make far fewer days than there are payments. The model says
nothing before ``warm_up`` days have been scored, and an account is alerted
at most once per ``quiet_days``.

Explained days are not judged: a day on which the account mostly pays back
its own payers (``repaid_share`` of the counterparties it had that day are
payers it paid back) is a
credit cooperative's interest, a savings circle's turn or a shop's refunds,
and a pyramid's "returns" are ``pyramid_scheme``'s to judge; such a day is
learnt, never alerted. So is a day on which it pays out, in at most
``MAX_LUMPS`` payments, no more than it took in over the last ``takings_days``:
a collecting account paying out its takings (a charity's grant, a shop paying
its supplier or its owner, a group's purchase); passing other people's money
on in many payments is ``mule_account``'s to judge. And so is a day with
nothing coming in and at most ``EVERYDAY_PAYMENTS`` payments out: a person
spending their own money (shopping, a bill, a savings circle's contribution)
collects nothing from anyone. (The memory of who has paid whom is the one the
payments detectors share: :mod:`detectors.payments.ledger`.)

Cost: the model runs once per busy account-day, not per payment: a day's
figures are plain counters in a dict that is emptied when the day is scored.
The only state kept beyond a day is the model (fixed size), the recent days'
takings of busy accounts and when each alerted account was last alerted
(both swept). Each of these maps holds at most ``max_entities`` accounts: past
it the least recently active go (a flood of made-up accounts in one day).

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import Context
>>> from detectors.events import Activity, Payment
>>> det, ctx = PaymentAnomaly(warm_up=50, q=0.99), Context(None)
>>> t0, alerts, n = datetime(2023, 3, 1, tzinfo=timezone.utc), [], 0
>>> for day in range(60):
...     for shop in range(5):  # five shops: 4 sales of about 5,000 a day
...         for k in range(4):
...             n += 1
...             ev = Activity(Payment(event_id=f"p-{n}", ts=t0 + timedelta(days=day, hours=k),
...                 payer=f"C-{n}", payee=f"SHOP-{shop}", amount=4_000.0 + 100 * k))
...             ctx.ts = ev.ts.timestamp(); alerts += det.update(ev, ctx)
>>> alerts
[]
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from operator import attrgetter, itemgetter

from river import anomaly, stats

from detectors.base import Context, Detector, make_alert
from detectors.events import Activity, Alert, Payment
from detectors.payments.ledger import Payers

DAY = 86400.0
DEFAULT_Q = 0.9995
DEFAULT_WARM_UP = 2000
DEFAULT_MIN_ACTIVITY = 3
DEFAULT_QUIET_DAYS = 7
#: HalfSpaceTrees scores run from 0 (dense, usual) to 1 (alone): 0.8 is "rare"
#: whatever the quantile says (a population of identical days scores 0.70-0.73).
DEFAULT_MIN_SCORE = 0.8
DEFAULT_REPAID_SHARE = 0.8
DEFAULT_TAKINGS_DAYS = 7
#: A payout of an account's takings comes in at most this many payments (a grant, a
#: supplier or two, the owner); more is a fan-out, judged like any day.
MAX_LUMPS = 3
#: A day of at most this many payments out and none in is the account spending its own
#: money (shopping, a bill, a savings circle's contribution): explained, not judged.
EVERYDAY_PAYMENTS = 5
#: Seed of the trees' random splits: a fixed seed makes every run decide alike.
DEFAULT_SEED = 7
#: Payments of the day an alert cites.
CITED = 20
#: Ten trees of height 8: 14 µs a score and a learn (the default 25 of height 15
#: took 1.3 ms); a window of 250 account-days.
TREES, HEIGHT, WINDOW = 10, 8, 250
#: log10 of the largest count and sum the figures resolve (1,000 payments; 10^10 tenge).
COUNT_DECADES, SUM_DECADES = 3.0, 10.0

FIGURES = (
    "payments_in",
    "payments_out",
    "sum_in",
    "sum_out",
    "share_sent_on",
    "distinct_payers",
    "distinct_payees",
    "largest",
    "round_share",
)


class _Day:
    """One account's payments of one day, as counters."""

    __slots__ = (
        "event_ids",
        "largest",
        "last_ts",
        "n_in",
        "n_out",
        "payees",
        "payers",
        "rounds",
        "sum_in",
        "sum_out",
    )

    def __init__(self) -> None:
        self.n_in = self.n_out = self.rounds = 0
        self.sum_in = self.sum_out = self.largest = 0.0
        self.payers: set[str] = set()
        self.payees: set[str] = set()
        self.event_ids: list[str] = []  # the first CITED of the day, for the analyst
        self.last_ts = 0.0  # event time of its latest payment (for the cap)

    def add(self, incoming: bool, amount: float, other: str, event_id: str, ts: float) -> None:
        """Count one payment in (from ``other``) or out (to ``other``) at ``ts``."""
        if incoming:
            self.n_in += 1
            self.sum_in += amount
            self.payers.add(other)
        else:
            self.n_out += 1
            self.sum_out += amount
            self.payees.add(other)
        self.rounds += amount % 1000 == 0
        if amount > self.largest:
            self.largest = amount
        if len(self.event_ids) < CITED:
            self.event_ids.append(event_id)
        if ts > self.last_ts:
            self.last_ts = ts

    def figures(self) -> dict[str, float]:
        n = self.n_in + self.n_out
        return {
            "payments_in": _count(self.n_in),
            "payments_out": _count(self.n_out),
            "sum_in": _sum(self.sum_in),
            "sum_out": _sum(self.sum_out),
            "share_sent_on": self.sum_out / (self.sum_in + self.sum_out),
            "distinct_payers": _count(len(self.payers)),
            "distinct_payees": _count(len(self.payees)),
            "largest": _sum(self.largest),
            "round_share": self.rounds / n,
        }


# What the cap orders each map's accounts by: the event time (or day) of their latest
# payment.
_FIRST_TS = itemgetter(4)
_DAY_TS = attrgetter("last_ts")


def _last_takings_day(days: list[tuple[int, float]]) -> float:
    return days[-1][0]


def _count(n: float) -> float:
    return min(1.0, math.log10(1 + n) / COUNT_DECADES)


def _sum(amount: float) -> float:
    return min(1.0, math.log10(1 + amount) / SUM_DECADES)


class PaymentAnomaly(Detector):
    """Flags account-days far from what the population's account-days look like."""

    kind = "payment_anomaly"
    stream = "payments"

    def __init__(
        self,
        q: float = DEFAULT_Q,
        warm_up: int = DEFAULT_WARM_UP,
        min_activity: int = DEFAULT_MIN_ACTIVITY,
        quiet_days: float = DEFAULT_QUIET_DAYS,
        min_score: float = DEFAULT_MIN_SCORE,
        repaid_share: float = DEFAULT_REPAID_SHARE,
        takings_days: int = DEFAULT_TAKINGS_DAYS,
        seed: int = DEFAULT_SEED,
        payers: Payers | None = None,
    ) -> None:
        self.q = q
        self.warm_up = warm_up
        if min_activity < 2:
            raise ValueError("min_activity must be at least 2 (single payments are never scored)")
        self.min_activity = min_activity
        self.quiet_days = quiet_days
        self.min_score = min_score
        self.repaid_share = repaid_share
        self.takings_days = takings_days
        self.seed = seed
        self.payers = payers if payers is not None else Payers()
        self._model = anomaly.HalfSpaceTrees(
            n_trees=TREES, height=HEIGHT, window_size=WINDOW, seed=seed
        )
        self._bar = stats.Quantile(q)
        self._scored = 0
        self._day = -1
        self._today: dict[str, _Day] = {}  # accounts with two or more payments today
        self._first: dict[str, tuple[bool, float, str, str, float]] = {}  # ... with one so far
        self._last_alert: dict[str, float] = {}
        # Money each account took in per day (days with two payments or more), recent.
        self._takings: dict[str, list[tuple[int, float]]] = {}

    @property
    def n_entities(self) -> int:
        return len(self._today) + len(self._first) + len(self._last_alert) + len(self._takings)

    def update(self, event: Activity, ctx: Context) -> list[Alert]:
        payment = event.payment
        day = int(ctx.ts // DAY)
        alerts = self._close(day) if day > self._day else []  # late events join today
        self.payers.observe(event, ctx.ts)
        if event.incoming:
            self._count(payment.payee, True, payment.payer, payment, ctx.ts)
        if event.outgoing:
            self._count(payment.payer, False, payment.payee, payment, ctx.ts)
        return alerts

    def _count(self, name: str, incoming: bool, other: str, payment: Payment, ts: float) -> None:
        """Add one payment to ``name``'s day.

        Most accounts pay or are paid once a day and are never scored: their
        first payment waits as a plain tuple, and counters are set up only
        when a second one comes.
        """
        d = self._today.get(name)
        if d is None:
            first = self._first.pop(name, None)
            if first is None:
                self._first[name] = (incoming, payment.amount, other, payment.event_id, ts)
                if len(self._first) > self.max_entities:
                    self._shed(self._first, _FIRST_TS)
                return
            d = self._today[name] = _Day()
            d.add(*first)
            if len(self._today) > self.max_entities:
                self._shed(self._today, _DAY_TS)
        d.add(incoming, payment.amount, other, payment.event_id, ts)

    def _close(self, day: int) -> list[Alert]:
        """Score the finished day's busy accounts (in name order: deterministic)."""
        finished, self._today, closed_day = self._today, {}, self._day
        self._first = {}
        self._day = day
        alerts: list[Alert] = []
        if closed_day < 0:
            return alerts
        quiet = (day - self.quiet_days) * DAY
        self._last_alert = {a: t for a, t in self._last_alert.items() if t > quiet}
        model, bar = self._model, self._bar
        takings = self._takings
        for name in sorted(finished):
            d = finished[name]
            if d.n_in:
                takings.setdefault(name, []).append((closed_day, d.sum_in))
                if len(takings) > self.max_entities:
                    self._shed(takings, _last_takings_day)
            if d.n_in + d.n_out < self.min_activity:
                continue
            x = d.figures()
            score = model.score_one(x)
            threshold = bar.get()
            # Strictly above the bar, and rare to the model itself: HalfSpaceTrees' scores
            # of one and the same day drift a little as its windows turn over.
            odd = (
                self._scored >= self.warm_up
                and threshold is not None
                and score > threshold
                and score >= self.min_score
                and not self._spending(d)
                and not self._repaying(name, d)
                and not self._paying_out_takings(name, d, closed_day)
            )
            if not odd:
                model.learn_one(x)
            bar.update(score)
            self._scored += 1
            if odd and name not in self._last_alert:
                self._last_alert[name] = closed_day * DAY
                if len(self._last_alert) > self.max_entities:
                    self._shed(self._last_alert)
                alerts.append(self._alert(name, d, x, score, threshold, closed_day))
        if closed_day % 7 == 0:  # weekly: forget takings older than the window
            since = closed_day - self.takings_days
            self._takings = {
                a: kept
                for a, days in takings.items()
                if (kept := [t for t in days if t[0] > since])
            }
        return alerts

    @staticmethod
    def _spending(d: _Day) -> bool:
        """Did the account only spend that day, in a few payments (nothing came in)?

        A person's day of shopping, a rent and a savings circle's contribution is
        its own money leaving: the harms watched here show where money is
        collected or passed on, and a day with nothing in collects nothing.
        """
        return d.n_in == 0 and d.n_out <= EVERYDAY_PAYMENTS

    def _paying_out_takings(self, name: str, d: _Day, day: int) -> bool:
        """Did the account pay out, in a few lump sums, no more than it took in over the
        last ``takings_days`` (a charity's grant, a shop paying its supplier or owner)?"""
        if not 0 < d.n_out <= MAX_LUMPS:
            return False
        since = day - self.takings_days
        return d.sum_out <= sum(s for t, s in self._takings.get(name, ()) if t > since)

    def _repaying(self, name: str, d: _Day) -> bool:
        """Did the account mostly pay back its own payers that day (an explained day)?

        Asked only of the rare day above the bar, of the counterparties it paid (by
        the day's end: a payer that day counts too).
        """
        has_paid = self.payers.has_paid
        repaid = sum(1 for payee in d.payees if has_paid(payee, name))
        return repaid >= self.repaid_share * (len(d.payees) + len(d.payers))

    def _alert(
        self, name: str, d: _Day, x: dict[str, float], score: float, bar: float, day: int
    ) -> Alert:
        when = datetime.fromtimestamp((day + 1) * DAY, UTC)  # decided as the day ended
        scored = datetime.fromtimestamp(day * DAY, UTC).date().isoformat()  # the day judged
        reasons = [
            f"its payments on {scored} (UTC) scored {score:.3f} against a bar of "
            f"{bar:.3f} (the {self.q:.2%} quantile of {self._scored:,} account-days scored)",
            f"{d.n_in} payments in ({d.sum_in:,.0f} tenge from {len(d.payers)} payers), "
            f"{d.n_out} out ({d.sum_out:,.0f} tenge to {len(d.payees)} payees), "
            f"largest {d.largest:,.0f}",
        ]
        return make_alert(
            kind=self.kind,
            entity=name,
            finding=f"day-{day}",
            ts=when,
            severity="warning",
            score=score,
            reasons=reasons,
            evidence={
                "day": scored,
                "anomaly_score": round(score, 4),
                "threshold": round(bar, 4),
                "quantile": self.q,
                "payments_in": d.n_in,
                "payments_out": d.n_out,
                "sum_in": round(d.sum_in, 2),
                "sum_out": round(d.sum_out, 2),
                "distinct_payers": len(d.payers),
                "distinct_payees": len(d.payees),
                "largest": d.largest,
                "figures": {k: round(v, 4) for k, v in x.items()},
            },
            event_ids=list(d.event_ids),
        )
