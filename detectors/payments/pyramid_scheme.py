"""``pyramid_scheme``: money from a growing stream of new payers, paid out as "returns".

Typology. A Ponzi or pyramid scheme pays its early participants "returns"
out of the money of later ones, so it has to keep recruiting: money comes in
from a stream of payers new to the collecting account, and some of it goes
back out to earlier payers as "profit" or as a pay-out once enough newer
money has come in (a gifting circle's "flower blooms"), while the organiser
takes cash. Most die fast: in a study of Bitcoin Ponzi schemes half lasted
a week or less (Vasek and Moore, "There's No Free Lunch, Even Using
Bitcoin", Financial Cryptography 2015; shared/domain.md), so the early signal
is the recruitment itself and the returns confirm it. Sources on the
mechanics: the US SEC's investor alerts on Ponzi and pyramid schemes;
the Criminal Code of Kazakhstan, article 217 (creating and running a
financial pyramid), and the National Bank of Kazakhstan's warnings, which
describe income paid to earlier participants from later participants' money.

Lawful look-alikes, and the mechanics that tell them apart:

- a rotating savings group (kassa, ROSCA): closed and reciprocal, the same
  members pay one fixed contribution to each other in turn; the month's taker
  gets a crowd of new payers of one sum, but no more than the circle has
  members, and pays nobody earlier more than the contribution;
- a charity drive: a burst of new donors, but mostly small gifts;
- a popular new shop: a growing crowd of new payers, but at shop prices,
  mostly small and varied;
- a credit cooperative: modest interest to members who pay month after month
  (after the first month they are not new; ``warm_up_days`` at a replay's
  start learns who already pays whom);
- a group purchase: friends' shares, small, once, paid on to a merchant;
- a landlord or a family: a handful of payers, never a crowd;
- withdrawals at a cash desk (channel ``cash_out``) are not payments to it, and
  deposits (``cash_in``) are the account holder's own cash, not a new payer's;
- a money mule's account: a crowd of new payers, but the money leaves within
  hours (``mule_account`` is about it).

What is counted, per collecting account and day of event time, over the last
``window_days``:

- **stakes**: payments of at least ``min_stake`` from payers new to the account
  (a Bloom filter of its payers, shared with ``mule_account``:
  :mod:`detectors.payments.ledger`); round sums or not;
- **newcomers**: all payments from new payers, to measure the stakes' share;
- **returns**: payments out to an earlier staker (a second Bloom filter per
  account) of more than ``min_stake``; any other payment out, and cash taken
  out, is money **passed on**.

A **warning** needs ``min_stakes`` stakes on at least ``min_days`` days, making
at least ``min_stake_share`` of the newcomers' payments, while no more than
``max_passed_share`` of the money staked was passed on: a pyramid keeps the
stakes to pay "returns" and skims some, a mule's account (``mule_account``)
passes nearly all straight on. A mule has not yet passed on its newest stakes,
so the share is judged only once ``OLD_SHARE`` of the money staked is
``HOLD_HOURS`` old. When ``fee_share`` of the account's stakes are one or two
sums (a fixed contribution: the shape of a savings circle, or of two, as much
as of a gifting pyramid), that is not enough: it also needs more stakes than
two circles have members (``CIRCLES`` times ``circle_size``: a member of two
circles may take both pots in one week, which is also why the contribution may
be two sums), or ``min_blooms`` pay-outs of at least
``bloom_multiple`` contributions to earlier stakers within the window (later
payers' money paid out again and again, not one transfer to a friend who
happens to be in the circle). **Critical** at ``critical_stakes`` stakes or
``min_returns`` returns.

Defaults (detectors/rules.toml says why each): a week's window, 20,000 tenge,
10 stakes on 2 days making 60 % of the newcomers' payments, at most 40 % passed
on; a fixed contribution 80 % of stakes in one or two sums, from more than two
circles of up to 30 members, two blooms of 2 contributions; critical at 50
stakes or 3 returns. State per account: a few day buckets, at most
``MAX_STAKES`` recent stakes and a 128-byte filter of its stakers besides the
shared filter of its payers; an account no new payer has paid for
``idle_days`` (30) is forgotten, and past ``max_entities`` accounts the least
recently active go.

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import escalates, Context
>>> from detectors.events import Activity, Payment
>>> det, ctx = PyramidScheme(warm_up_days=0), Context(None)
>>> t0 = datetime(2023, 3, 1, 9, tzinfo=timezone.utc)
>>> alerts = []
>>> for n in range(12):
...     ev = Activity(Payment(event_id=f"p-{n}", ts=t0 + timedelta(hours=10 * n),
...         payer=f"INV-{n}", payee="PYR", amount=100_000.0 + 10_000 * (n % 3)))
...     ctx.ts = ev.ts.timestamp(); alerts += det.update(ev, ctx)
>>> alerts[0].reasons[0]
'10 new payers sent 20,000 tenge or more each in 5 days (100% of payments from new payers)'

A circle's pot of one contribution from 12 members raises nothing:

>>> det = PyramidScheme(warm_up_days=0)
>>> kassa = [Activity(Payment(event_id=f"k-{n}", ts=t0 + timedelta(hours=8 * n),
...     payer=f"MEMBER-{n}", payee="TAKER", amount=50_000.0)) for n in range(12)]
>>> [a for ev in kassa for a in det.update(ev, Context(ev.ts.timestamp()))]
[]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.base import Context, escalates, make_alert, previous_of
from detectors.events import Activity, Alert
from detectors.payments.ledger import AccountDetector, Payers
from detectors.payments.sketch import Seen

DAY = 86400.0
DEFAULT_WINDOW_DAYS = 7
DEFAULT_MIN_STAKE = 20_000.0
DEFAULT_MIN_STAKES = 10
DEFAULT_MIN_DAYS = 2
DEFAULT_MIN_STAKE_SHARE = 0.6
DEFAULT_MAX_PASSED_SHARE = 0.4
DEFAULT_FEE_SHARE = 0.8
DEFAULT_CIRCLE_SIZE = 30
DEFAULT_BLOOM_MULTIPLE = 2.0
DEFAULT_MIN_BLOOMS = 2
DEFAULT_CRITICAL_STAKES = 50
DEFAULT_MIN_RETURNS = 3
DEFAULT_WARM_UP_DAYS = 14
#: Event ids an alert cites: the newest stakes and returns.
CITED = 20
#: Stakes an account remembers one by one (the newest), to find a fixed contribution
#: and the money too young to have been passed on yet.
MAX_STAKES = 64
#: Savings circles one member may take the pots of in one week: a fixed contribution
#: (one or two sums) from up to this many circles' members may be savings, not a pyramid.
CIRCLES = 2
#: Hours a stake is too young to judge whether it was passed on (mules pass on within
#: 12; the mule_account default forward_hours).
HOLD_HOURS = 12.0
#: The passed-on share is judged once this much of the staked money is HOLD_HOURS
#: old: a mule passing on 60 % or more has then passed on 40 % of all at least.
OLD_SHARE = 2 / 3


@dataclass(slots=True)
class _Account:
    # Per day (epoch day -> [stakes, newcomers, stake sum, returns, returned sum,
    # passed on: paid to others than its stakers, or withdrawn, blooms: returns of
    # at least bloom_multiple times the fixed contribution]).
    days: dict[int, list[float]] = field(default_factory=dict)
    first_day: int = 0
    last_ts: float = 0.0
    cited: list[str] = field(default_factory=list)
    finding: str = ""
    raised: str = "info"
    # The newest stakes within the window: (ts, amount), at most MAX_STAKES.
    stakes: list[tuple[float, float]] = field(default_factory=list)
    stakers: Seen | None = None  # who has staked: "returns" go to them (from the first)


class PyramidScheme(AccountDetector):
    """Flags accounts that keep the stakes of a growing crowd of new payers."""

    kind = "pyramid_scheme"
    stream = "payments"

    def __init__(
        self,
        window_days: int = DEFAULT_WINDOW_DAYS,
        min_stake: float = DEFAULT_MIN_STAKE,
        min_stakes: int = DEFAULT_MIN_STAKES,
        min_days: int = DEFAULT_MIN_DAYS,
        min_stake_share: float = DEFAULT_MIN_STAKE_SHARE,
        max_passed_share: float = DEFAULT_MAX_PASSED_SHARE,
        fee_share: float = DEFAULT_FEE_SHARE,
        circle_size: int = DEFAULT_CIRCLE_SIZE,
        bloom_multiple: float = DEFAULT_BLOOM_MULTIPLE,
        min_blooms: int = DEFAULT_MIN_BLOOMS,
        critical_stakes: int = DEFAULT_CRITICAL_STAKES,
        min_returns: int = DEFAULT_MIN_RETURNS,
        warm_up_days: float = DEFAULT_WARM_UP_DAYS,
        payers: Payers | None = None,
    ) -> None:
        self.window_days = window_days
        self.min_stake = min_stake
        self.min_stakes = min_stakes
        self.min_days = min_days
        self.min_stake_share = min_stake_share
        self.max_passed_share = max_passed_share
        self.fee_share = fee_share
        self.circle_size = circle_size
        self.bloom_multiple = bloom_multiple
        self.min_blooms = min_blooms
        self.critical_stakes = critical_stakes
        self.min_returns = min_returns
        self.warm_up_days = warm_up_days
        self.payers = payers if payers is not None else Payers()
        super().__init__()
        self._accounts: dict[str, _Account] = {}

    def judge(self, event: Activity, ctx: Context) -> list[Alert]:
        payment, ts = event.payment, ctx.ts
        day = self._tick(ts)
        alerts: list[Alert] = []
        new_payer = self.payers.observe(event, ts)
        if self._elapsed(ts) < self.warm_up_days * DAY:
            return []  # warm-up: learn who already pays whom, count nothing
        if new_payer:
            account = self._accounts.get(payment.payee)
            if account is None:
                account = self._accounts[payment.payee] = _Account(first_day=day)
                account.last_ts = ts
                self._bound()
            account.last_ts = ts
            counts = self._today(account, day)
            counts[1] += 1
            amount = payment.amount
            if amount >= self.min_stake:
                counts[0] += 1
                counts[2] += amount
                stakes = account.stakes
                stakes.append((ts, amount))
                horizon = ts - self.window_days * DAY
                if len(stakes) > MAX_STAKES or stakes[0][0] < horizon:
                    account.stakes = stakes = [s for s in stakes[-MAX_STAKES:] if s[0] >= horizon]
                if account.stakers is None:
                    account.stakers = Seen()
                account.stakers.add(payment.payer)
                self._cite(account, payment.event_id)
                alerts += self._judge(payment.payee, account, event, ts, day)
        if event.outgoing and payment.channel != "cash_in":
            account = self._accounts.get(payment.payer)
            if account is None or account.stakers is None:
                return alerts  # no stake yet: nothing it pays out is a stake passed on
            stakers = account.stakers
            if payment.channel == "cash_out" or stakers is None or payment.payee not in stakers:
                # money passed on, not paid back: a pipe passes stakes on, a pyramid keeps them
                self._today(account, day)[5] += payment.amount
            elif payment.amount > self.min_stake:
                counts = self._today(account, day)
                counts[3] += 1
                counts[4] += payment.amount
                fee = self._fee(account)
                if fee and payment.amount >= self.bloom_multiple * fee:
                    counts[6] += 1
                self._cite(account, payment.event_id)
                alerts += self._judge(payment.payer, account, event, ts, day)
        return alerts

    def _today(self, account: _Account, day: int) -> list[float]:
        counts = account.days.get(day)
        if counts is None:
            counts = account.days[day] = [0, 0, 0.0, 0, 0.0, 0.0, 0]
            for old in [d for d in account.days if d <= day - self.window_days]:
                del account.days[old]
        return counts

    def _fee(self, account: _Account) -> float | None:
        """The account's fixed contribution, if ``fee_share`` of its recent stakes are one
        or two sums (the larger of them), else None."""
        stakes = account.stakes
        if not stakes:
            return None
        counts: dict[float, int] = {}
        for _, amount in stakes:
            counts[amount] = counts.get(amount, 0) + 1
        # One sum, or two: a member of two circles may take both pots in one week.
        top = sorted(counts.items(), key=lambda item: (item[1], item[0]), reverse=True)[:2]
        if sum(count for _, count in top) < self.fee_share * len(stakes):
            return None
        return max(fee for fee, _ in top)  # the larger: a pay-out must outgrow either

    def _cite(self, account: _Account, event_id: str) -> None:
        account.cited.append(event_id)
        if len(account.cited) > CITED:
            del account.cited[0]

    def _judge(
        self, name: str, account: _Account, event: Activity, ts: float, day: int
    ) -> list[Alert]:
        since = day - self.window_days
        days = [c for d, c in account.days.items() if d > since]
        stakes = sum(c[0] for c in days)
        newcomers = sum(c[1] for c in days)
        returns = sum(c[3] for c in days)
        if stakes < self.min_stakes or stakes < self.min_stake_share * newcomers:
            return []
        if sum(1 for c in days if c[0]) < self.min_days:
            return []  # one day's crowd is an event, not recruitment
        staked = sum(c[2] for c in days)
        young = sum(a for t, a in account.stakes if t > ts - HOLD_HOURS * 3600)
        if young > (1 - OLD_SHARE) * staked:
            return []  # too young to tell whether it stays or is passed on
        if sum(c[5] for c in days) > self.max_passed_share * staked:
            return []  # the money flows straight on: a pipe (mule_account), not a pyramid
        fee = self._fee(account)
        blooms = sum(c[6] for c in days)
        circles = CIRCLES * self.circle_size
        if fee and stakes <= circles and blooms < self.min_blooms:
            return []  # one contribution from no more than two circles: maybe savings groups
        critical = stakes >= self.critical_stakes or returns >= self.min_returns
        severity = "critical" if critical else "warning"
        if not escalates(severity, account.raised):
            return []
        if not account.finding:
            account.finding = account.cited[0]
        previous = previous_of(account.raised)
        account.raised = severity
        returned = sum(c[4] for c in days)
        span = min(self.window_days, day - account.first_day + 1)
        by_day = [int(account.days.get(d, (0,))[0]) for d in range(day - span + 1, day + 1)]
        reasons = [
            f"{stakes} new payers sent {self.min_stake:,.0f} tenge or more each "
            f"in {span} day{'s' if span > 1 else ''} "
            f"({stakes / newcomers:.0%} of payments from new payers)",
        ]
        if fee:
            reasons.append(
                f"one fixed contribution of {fee:,.0f} tenge, from more payers than two savings "
                f"circles have ({CIRCLES} x {self.circle_size})"
                if stakes > circles
                else f"one fixed contribution of {fee:,.0f} tenge, and {blooms} "
                f"pay-out(s) of {self.bloom_multiple:g} or more contributions to earlier stakers"
            )
        if len(by_day) > 1:
            reasons.append(f"new stakes per day: {', '.join(map(str, by_day))}")
        if returns:
            reasons.append(
                f"{returns} payments of {returned:,.0f} tenge back to earlier stakers "
                f"({returned / staked:.0%} of the {staked:,.0f} staked)"
            )
        return [
            make_alert(
                kind=self.kind,
                entity=name,
                finding=account.finding,
                ts=event.payment.ts,
                severity=severity,
                score=min(1.0, stakes / self.critical_stakes + returns / (2 * self.min_returns)),
                reasons=reasons,
                evidence={
                    "window_days": self.window_days,
                    "new_stakes": stakes,
                    "new_payer_payments": newcomers,
                    "staked": round(staked, 2),
                    "stakes_per_day": by_day,
                    "returns": returns,
                    "returned": round(returned, 2),
                    "fixed_contribution": fee,
                },
                event_ids=list(account.cited),
                previous=previous,
            )
        ]
