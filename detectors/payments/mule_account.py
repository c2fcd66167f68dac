"""``mule_account``: money from many unrelated payers that passes straight through.

Typology. A money mule's account is a pipe for the proceeds of fraud: payment
after payment comes in from people who do not know each other (the victims,
or other mules), and within hours most of it leaves again, in cash or to
one of a few accounts (a handler, the next mule, a fresh account), payment by
payment or pooled: two or three inflows passed on in one payment. Mules are
recruited people's own accounts as often as fresh ones. Sources: FATF,
"Money Laundering and Terrorist Financing Vulnerabilities of ... (Money
Mules)" and its red-flag indicators (rapid movement of funds, many
unrelated senders, little or no retained balance); Europol's European Money
Mule Action (EMMA) descriptions; the Law of the Republic of Kazakhstan on
countering the legalisation of proceeds of crime (AML/CFT), which names
transit of funds as a suspicious-transaction sign.

What makes it one, and what the rule counts, per account:

- an outflow **passes on** recent inflows when it leaves within
  ``forward_hours`` of them and carries ``min_share`` to 100 % of one inflow,
  or of the newest two to ``max_pool`` inflows taken together (pooled); it
  goes to someone who has never paid the account, or is a cash withdrawal, of
  at least ``min_amount`` like the inflows
  (repaying a payer is not passing money on; pyramid "returns" are not
  either); each inflow is passed on at most once;
- **unrelated payers**: only inflows from payers new to the account count (a
  relative or an employer who pays every month is known after the first
  time), and not from one the account has itself paid before (10,000 tenge or
  more): a stranger's money comes one way, while the members of a savings
  circle pay each other in turn, so a member taking the pot has paid several
  of its payers in earlier months; during the first ``warm_up_days`` of a
  stream every payer looks new, so then ``cold_min_payers`` are needed
  instead of ``min_payers``;
- a **pipe**: the inflows passed on are at least ``min_forwarded_share`` of all
  the money it received within ``window_hours`` (a merchant paying a supplier
  may match two or three recent inflows by chance, out of far more takings).

A warning is raised when inflows from ``min_payers`` new payers have been
passed on within ``window_hours``, in at least ``min_passes`` payments (a pipe
in use, again and again), and the account is a pipe; critical at
``critical_payers`` payers.

Lawful look-alikes, and what keeps them out:

- family support passed on (a relative's money forwarded to another, or
  taken in cash): one to three relatives, known after their first month; in a
  stream's first month ``cold_min_payers`` (four) is more than a family;
- a shop sweeping its takings to its owner: a day of many small sums in one
  payment, more inflows than ``max_pool``, most under ``min_amount``;
- a group purchase: friends' shares paid on to a merchant once, as the total
  of more inflows than ``max_pool``; a savings group's pot likewise;
- a merchant paying a supplier a week's takings: once a week, so one pass in
  the window even when its sum happens to match the last few inflows;
- a payroll agent: one payer (the employer) in, many employees out;
- a pyramid's organiser withdraws part of a day's stakes: a crowd of stakes,
  far under half of them passed on.

Cash moves through the bank's own desks: a withdrawal (``cash_out``) is not
money *received* by the desk's owner, nor is a deposit (``cash_in``) money
*sent* by it, so a desk is never a mule; a deposit is the account holder's
own cash, counted in the money received but never passed on as a payer's; a
withdrawal by the account itself is a pass like any other.

Defaults (detectors/rules.toml says why each): 12 hours, half an inflow, pools
of up to 4, three days' window, 2 new payers (4 in a stream's first 35
days), critical at 6, 10,000 tenge, half the inflows. State per account is
bounded: inflows older than ``forward_hours`` and forwards older than
``window_hours`` are dropped, at most ``MAX_PENDING`` inflows wait, an idle
account is forgotten, and past ``max_entities`` accounts the least recently
active go.

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import escalates, Context
>>> from detectors.events import Activity, Payment
>>> det, ctx = MuleAccount(warm_up_days=0), Context(None)
>>> t0 = datetime(2023, 3, 1, 9, tzinfo=timezone.utc)
>>> def pay(n, payer, payee, amount, hours, channel="transfer"):
...     ev = Activity(Payment(event_id=f"p-{n}", ts=t0 + timedelta(hours=hours),
...         payer=payer, payee=payee, amount=amount, channel=channel))
...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
>>> alerts = []
>>> for k in range(2):
...     alerts += pay(2 * k, f"P-{k}", "M", 200_000, 10 * k)
...     alerts += pay(2 * k + 1, "M", "CASH-1", 180_000, 10 * k + 2, "cash_out")
>>> print(alerts[0].reasons[0])
2 incoming payments from 2 new payers passed on within 12 hours (90% of 400,000 tenge) in 12 hours

Pooled: three victims' payments leave in one transfer.

>>> det = MuleAccount(warm_up_days=0)
>>> alerts = []
>>> for k in range(3):
...     alerts += pay(10 + k, f"V-{k}", "POOL", 100_000, k)
>>> alerts += pay(13, "POOL", "HANDLER", 270_000, 4)
>>> alerts  # one pass: not yet a pipe in use
[]
>>> for k in range(2):
...     alerts += pay(20 + k, f"W-{k}", "POOL", 150_000, 6 + k)
>>> alerts += pay(22, "POOL", "CASH-1", 280_000, 9, "cash_out")
>>> alerts[0].reasons[1]
'each passed on after 3.0 hours (median), in 2 payment(s) to 2 destination(s)'
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from detectors.base import Context, escalates, make_alert, previous_of
from detectors.events import Activity, Alert
from detectors.payments.ledger import AccountDetector, Payers

HOUR = 3600.0
DAY = 86400.0
DEFAULT_FORWARD_HOURS = 12.0
DEFAULT_MIN_SHARE = 0.5
DEFAULT_MAX_POOL = 4
DEFAULT_MIN_PASSES = 2
DEFAULT_WINDOW_HOURS = 72.0
DEFAULT_MIN_PAYERS = 2
DEFAULT_COLD_MIN_PAYERS = 4
DEFAULT_WARM_UP_DAYS = 35
DEFAULT_CRITICAL_PAYERS = 6
DEFAULT_MIN_AMOUNT = 10_000.0
DEFAULT_MIN_FORWARDED_SHARE = 0.5
#: Most inflows an account keeps waiting to be matched (the newest are kept).
MAX_PENDING = 32


@dataclass(slots=True)
class _Account:
    # Inflows waiting to be forwarded: (ts, amount, payer, event id, payer new to it).
    # (Lists, not deques: a deque costs over 600 bytes empty, and these stay short.)
    pending: list[tuple[float, float, str, str, bool]] = field(default_factory=list)
    # Money received per hour of event time (every inflow, small ones too, once the
    # account is watched), within the window: hour -> tenge, at most about
    # window_hours of them whatever the traffic.
    arrivals: dict[int, float] = field(default_factory=dict)
    # Inflows passed on, within the window: (ts in, payer, amount in, amount out
    # carried, destination, in id, out id, ts out, payer new to the account).
    forwards: list[tuple[float, str, float, float, str, str, str, float, bool]] = field(
        default_factory=list
    )
    last_ts: float = 0.0
    finding: str = ""
    raised: str = "info"


class MuleAccount(AccountDetector):
    """Flags accounts that pass on most of each incoming payment within hours."""

    kind = "mule_account"
    stream = "payments"

    def __init__(
        self,
        forward_hours: float = DEFAULT_FORWARD_HOURS,
        min_share: float = DEFAULT_MIN_SHARE,
        max_pool: int = DEFAULT_MAX_POOL,
        min_passes: int = DEFAULT_MIN_PASSES,
        window_hours: float = DEFAULT_WINDOW_HOURS,
        min_payers: int = DEFAULT_MIN_PAYERS,
        cold_min_payers: int = DEFAULT_COLD_MIN_PAYERS,
        warm_up_days: float = DEFAULT_WARM_UP_DAYS,
        critical_payers: int = DEFAULT_CRITICAL_PAYERS,
        min_amount: float = DEFAULT_MIN_AMOUNT,
        min_forwarded_share: float = DEFAULT_MIN_FORWARDED_SHARE,
        payers: Payers | None = None,
    ) -> None:
        self.forward_hours = forward_hours
        self.min_share = min_share
        self.max_pool = max_pool
        self.min_passes = min_passes
        self.window_hours = window_hours
        self.min_payers = min_payers
        self.cold_min_payers = cold_min_payers
        self.warm_up_days = warm_up_days
        self.critical_payers = critical_payers
        self.min_amount = min_amount
        self.min_forwarded_share = min_forwarded_share
        self.payers = payers if payers is not None else Payers()
        super().__init__()
        self._accounts: dict[str, _Account] = {}

    def judge(self, event: Activity, ctx: Context) -> list[Alert]:
        payment, ts = event.payment, ctx.ts
        self._tick(ts)
        channel = payment.channel
        new = self.payers.observe(event, ts)  # every payer: paying any back is no forward
        if new and self.payers.paid_to(payment.payee, payment.payer):
            new = False  # it paid this payer before: no stranger (a savings circle's turn)
        account = self._accounts.get(payment.payee)
        if (
            event.incoming
            and channel != "cash_out"
            and (account is not None or payment.amount >= self.min_amount)
        ):
            if account is None:
                account = self._accounts[payment.payee] = _Account()
            amount = payment.amount
            if amount >= self.min_amount and channel != "cash_in":  # a deposit is its own cash
                account.last_ts = ts
                account.pending.append((ts, amount, payment.payer, payment.event_id, new))
                if len(account.pending) > MAX_PENDING:
                    del account.pending[0]
            hour, arrivals = int(ts // HOUR), account.arrivals
            arrivals[hour] = arrivals.get(hour, 0.0) + amount  # a late inflow: its own hour
            if len(arrivals) > self.window_hours + 2:  # bounded, even if nothing is passed on
                oldest = hour - self.window_hours - 1
                account.arrivals = {h: m for h, m in arrivals.items() if h >= oldest}
            self._bound()
        if event.outgoing and channel != "cash_in":
            account = self._accounts.get(payment.payer)
            if account is not None and account.pending:
                return self._forward(payment.payer, account, event, ts)
        return []

    def _forward(self, name: str, account: _Account, event: Activity, ts: float) -> list[Alert]:
        payment = event.payment
        pending = account.pending
        horizon = ts - self.forward_hours * HOUR
        if pending and min(p[0] for p in pending) < horizon:
            # By event time, not arrival order: a late inflow may sit behind newer ones.
            account.pending = pending = [p for p in pending if p[0] >= horizon]
        if payment.channel != "cash_out" and self.payers.has_paid(payment.payee, name):
            return []  # paying a payer back: a refund or a "return", not a forward
        amount = payment.amount
        if amount < self.min_amount:
            return []  # a purchase of a few thousand passes nothing on worth laundering
        carried = self._match(pending, amount, ts)
        if not carried:
            return []
        account.last_ts = ts
        forwards = account.forwards
        total = sum(pending[i][1] for i in carried)
        for index in sorted(carried):
            t_in, a_in, payer, in_id, new = pending[index]
            share = amount * a_in / total
            forwards.append(
                (t_in, payer, a_in, share, payment.payee, in_id, payment.event_id, ts, new)
            )
        for index in sorted(carried, reverse=True):
            del pending[index]
        forwards.sort()  # by inflow time: a late inflow may be passed on after newer ones
        window = ts - self.window_hours * HOUR
        while forwards and forwards[0][0] < window:
            del forwards[0]
        count = len({f[1] for f in forwards if f[8]})
        cold = self._elapsed(ts) < self.warm_up_days * DAY
        if count < (self.cold_min_payers if cold else self.min_payers):
            return []
        if len({f[6] for f in forwards}) < self.min_passes:
            return []  # passed on once: a purchase or a supplier paid, not a pipe in use
        account.arrivals = {h: m for h, m in account.arrivals.items() if h * HOUR >= window - HOUR}
        received = sum(account.arrivals.values())
        if sum(f[2] for f in forwards) < self.min_forwarded_share * received:
            return []  # a few sums passed on out of much more money received: not a pipe
        severity = "critical" if count >= self.critical_payers else "warning"
        if not escalates(severity, account.raised):
            return []
        if not account.finding:
            account.finding = forwards[0][5]
        previous = previous_of(account.raised)
        account.raised = severity
        return [self._alert(name, account, event, severity, count, previous)]

    def _match(
        self, pending: list[tuple[float, float, str, str, bool]], amount: float, ts: float
    ) -> list[int]:
        """The pending inflows an outflow of ``amount`` passes on (indices), or none.

        One inflow it carries ``min_share`` to all of (the newest such), else the
        newest two to ``max_pool`` inflows taken together. Only money that had
        arrived counts (in event time: a late inflow may be seen after).
        """
        arrived = [i for i in range(len(pending) - 1, -1, -1) if pending[i][0] <= ts]
        for index in arrived:
            if self.min_share * pending[index][1] <= amount <= pending[index][1]:
                return [index]
        total = 0.0
        for depth, index in enumerate(arrived[: self.max_pool], start=1):
            total += pending[index][1]
            if depth > 1 and self.min_share * total <= amount <= total:
                return arrived[:depth]
        return []

    def _alert(
        self,
        name: str,
        account: _Account,
        event: Activity,
        severity: str,
        count: int,
        previous: str | None,
    ) -> Alert:
        forwards = list(account.forwards)
        received = sum(f[2] for f in forwards)
        passed = sum(f[3] for f in forwards)
        span = (forwards[-1][7] - forwards[0][0]) / HOUR
        delays = sorted((f[7] - f[0]) / HOUR for f in forwards)
        destinations = sorted({f[4] for f in forwards})
        passes = len({f[6] for f in forwards})
        reasons = [
            f"{len(forwards)} incoming payments from {count} new payers "
            f"passed on within {self.forward_hours:g} hours ({passed / received:.0%} of "
            f"{received:,.0f} tenge) in {span:.0f} hours",
            f"each passed on after {statistics.median(delays):.1f} hours (median), "
            f"in {passes} payment(s) to {len(destinations)} destination(s)",
        ]
        return make_alert(
            kind=self.kind,
            entity=name,
            finding=account.finding,
            ts=event.payment.ts,
            severity=severity,
            score=min(1.0, count / (2 * self.critical_payers)),
            reasons=reasons,
            evidence={
                "forwards": len(forwards),
                "distinct_payers": len({f[1] for f in forwards}),
                "new_payers": count,
                "passes": passes,
                "received_in_window": round(sum(account.arrivals.values()), 2),
                "received": round(received, 2),
                "passed_on": round(passed, 2),
                "share_passed_on": round(passed / received, 3),
                "median_delay_hours": round(statistics.median(delays), 2),
                "destinations": len(destinations),
                "window_hours": self.window_hours,
            },
            event_ids=list(dict.fromkeys(i for f in forwards for i in (f[5], f[6]))),
            previous=previous,
        )
