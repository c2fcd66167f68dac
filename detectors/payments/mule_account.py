"""``mule_account``: money from many payers, each sum passed on within hours.

A money mule's account is a pipe: payment after payment comes in from
people who do not know each other, and most of each one leaves again within
hours, in cash or to one of a few accounts. What gives it away is the
*pairing*: an outgoing payment that carries on a single recent incoming one.

An outflow **forwards** an inflow when it leaves within ``forward_hours`` of
it, carries ``min_share`` to 100 % of it, and goes to someone who has never
paid the account (repaying or refunding a payer is not passing money on;
pyramid "returns" are not mule forwards either). Each inflow is forwarded at
most once. An alert is raised when, within ``window_hours``, ``min_forwards``
inflows of at least ``min_amount`` from as many distinct payers have been
forwarded *and* they are at least ``min_forwarded_share`` of the inflows of
that size the account received (a pipe passes on most of what comes in);
critical at ``critical_forwards``.

What it is not, and why the rule says so:

- a shop sweeping its takings to its owner forwards a *day* of small sums in
  one payment: no single inflow is carried on;
- friends chipping in for a group purchase, or a savings group's monthly pot,
  are paid out once, as a total of many inflows;
- a person who gets money from a relative and withdraws it does so once in a
  while, not again and again for different senders;
- a pyramid's organiser withdraws part of a day's stakes: now and then one
  withdrawal matches one stake, but out of a crowd of stakes, so far under
  half of its inflows are "forwarded".

Cash moves through the bank's own desks: a withdrawal (``cash_out``) is not
money *received* by the desk's owner, nor is a deposit (``cash_in``) money
*sent* by it, so a desk is never a mule; a withdrawal by the account itself
is a forward like any other.

Defaults: ``forward_hours`` 12 (mules move money the same day), ``min_share``
0.5 (a mule keeps a cut, rarely half), two forwards from two payers within
72 hours that are at least half the inflows (two unrelated senders whose
money each flows straight on; waiting for a third put the median time to
detect at 14-16 hours on two of four worlds, over the 12-hour target), six
for critical, ``min_amount`` 10,000 tenge (about $20: below it nobody
launders). State per account is bounded: inflows older than
``forward_hours`` and forwards older than ``window_hours`` are dropped, at
most ``MAX_PENDING`` inflows wait, and an idle account is forgotten.

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import escalates, Context
>>> from detectors.events import Activity, Payment
>>> det, ctx = MuleAccount(), Context(None)
>>> t0 = datetime(2023, 3, 1, 9, tzinfo=timezone.utc)
>>> def pay(n, payer, payee, amount, hours, channel="transfer"):
...     ev = Activity(Payment(event_id=f"p-{n}", ts=t0 + timedelta(hours=hours),
...         payer=payer, payee=payee, amount=amount, channel=channel))
...     ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
>>> alerts = []
>>> for k in range(2):
...     alerts += pay(2 * k, f"P-{k}", "M", 200_000, 10 * k)
...     alerts += pay(2 * k + 1, "M", "CASH-1", 180_000, 10 * k + 2, "cash_out")
>>> [a.reasons[0] for a in alerts]
['2 incoming payments from 2 payers passed on within 12 hours (90% of 400,000 tenge) in 12 hours']
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from detectors.base import Context, Detector, escalates, make_alert
from detectors.events import Activity, Alert
from detectors.payments.ledger import Payers, forget_idle

HOUR = 3600.0
DAY = 86400.0
DEFAULT_FORWARD_HOURS = 12.0
DEFAULT_MIN_SHARE = 0.5
DEFAULT_WINDOW_HOURS = 72.0
DEFAULT_MIN_FORWARDS = 2
DEFAULT_CRITICAL_FORWARDS = 6
DEFAULT_MIN_AMOUNT = 10_000.0
DEFAULT_MIN_FORWARDED_SHARE = 0.5
#: Most inflows an account keeps waiting to be matched (the newest are kept).
MAX_PENDING = 32
#: An account with no payment for this long is forgotten.
IDLE_DAYS = 30


@dataclass(slots=True)
class _Account:
    # Inflows waiting to be forwarded: (ts, amount, payer, event id).
    # (Lists, not deques: a deque costs over 600 bytes empty, and these stay short.)
    pending: list[tuple[float, float, str, str]] = field(default_factory=list)
    # When each inflow of at least min_amount arrived, within the window (capped).
    # Inflows of at least min_amount per hour of event time, within the window:
    # [hour, count] pairs, at most window_hours of them whatever the traffic.
    arrivals: list[list[int]] = field(default_factory=list)
    # Forwards within the window:
    # (ts in, payer, amount in, amount out, destination, in id, out id, ts out).
    forwards: list[tuple[float, str, float, float, str, str, str, float]] = field(
        default_factory=list
    )
    last_ts: float = 0.0
    finding: str = ""
    raised: str = "info"


class MuleAccount(Detector):
    """Flags accounts that pass on most of each incoming payment within hours."""

    kind = "mule_account"
    stream = "payments"

    def __init__(
        self,
        forward_hours: float = DEFAULT_FORWARD_HOURS,
        min_share: float = DEFAULT_MIN_SHARE,
        window_hours: float = DEFAULT_WINDOW_HOURS,
        min_forwards: int = DEFAULT_MIN_FORWARDS,
        critical_forwards: int = DEFAULT_CRITICAL_FORWARDS,
        min_amount: float = DEFAULT_MIN_AMOUNT,
        min_forwarded_share: float = DEFAULT_MIN_FORWARDED_SHARE,
        payers: Payers | None = None,
    ) -> None:
        self.forward_hours = forward_hours
        self.min_share = min_share
        self.window_hours = window_hours
        self.min_forwards = min_forwards
        self.critical_forwards = critical_forwards
        self.min_amount = min_amount
        self.min_forwarded_share = min_forwarded_share
        self.payers = payers if payers is not None else Payers()
        self._accounts: dict[str, _Account] = {}
        self._swept_day = -1

    @property
    def n_entities(self) -> int:
        return len(self._accounts)

    def update(self, event: Activity, ctx: Context) -> list[Alert]:
        payment, ts = event.payment, ctx.ts
        day = int(ts // DAY)
        if day > self._swept_day:  # a late event from yesterday does not sweep again
            self._sweep(ts, day)
        channel = payment.channel
        self.payers.observe(event, ts)  # every payer: paying any back is no forward
        if event.incoming and channel != "cash_out" and payment.amount >= self.min_amount:
            account = self._accounts.get(payment.payee)
            if account is None:
                account = self._accounts[payment.payee] = _Account()
            account.last_ts = ts
            account.pending.append((ts, payment.amount, payment.payer, payment.event_id))
            if len(account.pending) > MAX_PENDING:
                del account.pending[0]
            hour, arrivals = int(ts // HOUR), account.arrivals
            if arrivals and arrivals[-1][0] == hour:
                arrivals[-1][1] += 1
            else:
                for slot in arrivals:  # a late inflow lands in its own hour
                    if slot[0] == hour:
                        slot[1] += 1
                        break
                else:
                    arrivals.append([hour, 1])
                    oldest = hour - self.window_hours - 1
                    if arrivals[0][0] < oldest:  # bounded, even if nothing is ever forwarded
                        account.arrivals = [slot for slot in arrivals if slot[0] >= oldest]
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
        for index in range(len(pending) - 1, -1, -1):  # the newest inflow it can carry on
            t_in, a_in, payer, in_id = pending[index]
            # Only money that had arrived (in event time: a late inflow may be seen after).
            if t_in <= ts and self.min_share * a_in <= amount <= a_in:
                del pending[index]
                break
        else:
            return []
        account.last_ts = ts
        forwards = account.forwards
        forwards.append((t_in, payer, a_in, amount, payment.payee, in_id, payment.event_id, ts))
        window = ts - self.window_hours * HOUR
        while forwards and forwards[0][0] < window:
            del forwards[0]
        payers = {f[1] for f in forwards}
        count = min(len(forwards), len(payers))
        if count < self.min_forwards:
            return []
        account.arrivals = [slot for slot in account.arrivals if slot[0] * HOUR >= window - HOUR]
        inflows = sum(slot[1] for slot in account.arrivals)
        if len(forwards) < self.min_forwarded_share * inflows:
            return []  # a few sums passed on out of a crowd of inflows: not a pipe
        severity = "critical" if count >= self.critical_forwards else "warning"
        if not escalates(severity, account.raised):
            return []
        if not account.finding:
            account.finding = forwards[0][5]
        account.raised = severity
        return [self._alert(name, account, event, severity, count)]

    def _alert(
        self, name: str, account: _Account, event: Activity, severity: str, count: int
    ) -> Alert:
        forwards = list(account.forwards)
        received = sum(f[2] for f in forwards)
        passed = sum(f[3] for f in forwards)
        span = (forwards[-1][7] - forwards[0][0]) / HOUR
        delays = sorted((f[7] - f[0]) / HOUR for f in forwards)
        destinations = sorted({f[4] for f in forwards})
        reasons = [
            f"{len(forwards)} incoming payments from {len({f[1] for f in forwards})} payers "
            f"passed on within {self.forward_hours:g} hours ({passed / received:.0%} of "
            f"{received:,.0f} tenge) in {span:.0f} hours",
            f"each passed on after {statistics.median(delays):.1f} hours (median), "
            f"to {len(destinations)} destination(s)",
        ]
        return make_alert(
            kind=self.kind,
            entity=name,
            finding=account.finding,
            ts=event.payment.ts,
            severity=severity,
            score=min(1.0, count / (2 * self.critical_forwards)),
            reasons=reasons,
            evidence={
                "forwards": len(forwards),
                "distinct_payers": len({f[1] for f in forwards}),
                "inflows_in_window": sum(slot[1] for slot in account.arrivals),
                "received": round(received, 2),
                "passed_on": round(passed, 2),
                "share_passed_on": round(passed / received, 3),
                "median_delay_hours": round(statistics.median(delays), 2),
                "destinations": len(destinations),
                "window_hours": self.window_hours,
            },
            event_ids=[i for f in forwards for i in (f[5], f[6])],
        )

    def _sweep(self, ts: float, day: int) -> None:
        """Once a day of event time: forget accounts idle for IDLE_DAYS."""
        self._swept_day = day
        forget_idle(self._accounts, ts - IDLE_DAYS * DAY)
