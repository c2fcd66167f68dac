"""``pyramid_scheme``: a collecting account fed by a fast-growing crowd of new "investors".

A pyramid recruits: day after day more people it has never dealt with send
it round "investment" sums, and after a few days it starts paying some of
them "returns" out of the newer money while the organiser takes cash out.
It must be caught while it is still recruiting (half of them die within a
week), so the early signal is the recruitment itself, and the returns raise
the severity when they come.

Per collecting account, by day of event time over the last ``window_days``:

- **stakes**: payments from payers new to the account (a Bloom filter of its
  payers, shared with ``mule_account``: :mod:`detectors.payments.ledger`) of a
  round sum (a multiple of ``round_to``) of at least ``min_stake``;
- **newcomers**: all payments from new payers, to measure the stakes' share;
- **returns**: payments out to an earlier payer of more than ``min_stake``.

A warning is raised when the window holds ``min_stakes`` stakes making at
least ``min_stake_share`` of the newcomers' payments; critical when the
stakes reach ``critical_stakes`` or returns reach ``min_returns``.

Lawful look-alikes, and what keeps them out:

- a growing shop: many new payers, but its prices are not round investment
  sums;
- a donation drive: round sums from new donors, but gifts are small (most
  under 20,000 tenge; ``min_stake`` is 50,000, about a fifth of a monthly
  wage);
- a credit cooperative or a savings group: members pay round sums, but the
  same members month after month: after the first month they are not new
  (in a replay, the ``warm_up_days`` at the start learn who already pays whom);
- withdrawals at a cash desk (channel ``cash_out``) are not investments;
- a landlord or a family: a handful of payers, never a crowd.

Defaults: 10 stakes in 7 days with 60 % of the newcomers' payments (a small
pyramid with two or three recruits a day passes it within its first week;
no honest account in the simulated worlds comes near); critical at 50 stakes
or 3 returns. State per account: 8 day buckets of counts (kept only for accounts
that new payers pay) besides the shared 128-byte Bloom filter; an account no
new payer has paid for ``IDLE_DAYS`` is forgotten.

>>> from datetime import datetime, timedelta, timezone
>>> from detectors.base import escalates, Context
>>> from detectors.events import Activity, Payment
>>> det, ctx = PyramidScheme(warm_up_days=0), Context(None)
>>> t0 = datetime(2023, 3, 1, 9, tzinfo=timezone.utc)
>>> alerts = []
>>> for n in range(12):
...     ev = Activity(Payment(event_id=f"p-{n}", ts=t0 + timedelta(hours=10 * n),
...         payer=f"INV-{n}", payee="PYR", amount=100_000.0))
...     ctx.ts = ev.ts.timestamp(); alerts += det.update(ev, ctx)
>>> alerts[0].reasons[0]
'10 new payers sent round sums of 50,000 tenge or more in 5 days (100% of payments from new payers)'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.base import Context, Detector, escalates, make_alert
from detectors.events import Activity, Alert
from detectors.payments.ledger import Payers, forget_idle

DAY = 86400.0
DEFAULT_WINDOW_DAYS = 7
DEFAULT_MIN_STAKE = 50_000.0
DEFAULT_ROUND_TO = 10_000.0
DEFAULT_MIN_STAKES = 10
DEFAULT_MIN_STAKE_SHARE = 0.6
DEFAULT_CRITICAL_STAKES = 50
DEFAULT_MIN_RETURNS = 3
DEFAULT_WARM_UP_DAYS = 14
#: An account with no payment for this long is forgotten.
IDLE_DAYS = 30
#: Event ids an alert cites: the newest stakes and returns.
CITED = 20


@dataclass(slots=True)
class _Account:
    # Per day (epoch day -> [stakes, newcomers, stake sum, returns, returned sum]).
    days: dict[int, list[float]] = field(default_factory=dict)
    first_day: int = 0
    last_ts: float = 0.0
    cited: list[str] = field(default_factory=list)
    finding: str = ""
    raised: str = "info"


class PyramidScheme(Detector):
    """Flags accounts collecting round sums from a fast-growing crowd of new payers."""

    kind = "pyramid_scheme"
    stream = "payments"

    def __init__(
        self,
        window_days: int = DEFAULT_WINDOW_DAYS,
        min_stake: float = DEFAULT_MIN_STAKE,
        round_to: float = DEFAULT_ROUND_TO,
        min_stakes: int = DEFAULT_MIN_STAKES,
        min_stake_share: float = DEFAULT_MIN_STAKE_SHARE,
        critical_stakes: int = DEFAULT_CRITICAL_STAKES,
        min_returns: int = DEFAULT_MIN_RETURNS,
        warm_up_days: float = DEFAULT_WARM_UP_DAYS,
        payers: Payers | None = None,
    ) -> None:
        self.window_days = window_days
        self.min_stake = min_stake
        self.round_to = round_to
        self.min_stakes = min_stakes
        self.min_stake_share = min_stake_share
        self.critical_stakes = critical_stakes
        self.min_returns = min_returns
        self.warm_up_days = warm_up_days
        self.payers = payers if payers is not None else Payers()
        self._accounts: dict[str, _Account] = {}
        self._first_ts: float | None = None
        self._swept_day = -1

    @property
    def n_entities(self) -> int:
        return len(self._accounts)

    def update(self, event: Activity, ctx: Context) -> list[Alert]:
        payment, ts = event.payment, ctx.ts
        day = int(ts // DAY)
        if self._first_ts is None:
            self._first_ts = ts
        if day > self._swept_day:  # a late event from yesterday does not sweep again
            self._sweep(ts, day)
        alerts: list[Alert] = []
        new_payer = self.payers.observe(event, ts)
        if ts - self._first_ts < self.warm_up_days * DAY:
            return []  # warm-up: learn who already pays whom, count nothing
        if new_payer:
            account = self._accounts.get(payment.payee)
            if account is None:
                account = self._accounts[payment.payee] = _Account(first_day=day)
            account.last_ts = ts
            counts = self._today(account, day)
            counts[1] += 1
            amount = payment.amount
            if amount >= self.min_stake and amount % self.round_to == 0:
                counts[0] += 1
                counts[2] += amount
                self._cite(account, payment.event_id)
                alerts += self._judge(payment.payee, account, event, ts, day)
        if event.outgoing and payment.amount > self.min_stake:
            account = self._accounts.get(payment.payer)
            if (
                account is not None
                and account.days
                and self.payers.has_paid(payment.payee, payment.payer)
            ):
                counts = self._today(account, day)
                counts[3] += 1
                counts[4] += payment.amount
                self._cite(account, payment.event_id)
                alerts += self._judge(payment.payer, account, event, ts, day)
        return alerts

    def _today(self, account: _Account, day: int) -> list[float]:
        counts = account.days.get(day)
        if counts is None:
            counts = account.days[day] = [0, 0, 0.0, 0, 0.0]
            for old in [d for d in account.days if d <= day - self.window_days]:
                del account.days[old]
        return counts

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
        critical = stakes >= self.critical_stakes or returns >= self.min_returns
        severity = "critical" if critical else "warning"
        if not escalates(severity, account.raised):
            return []
        if not account.finding:
            account.finding = account.cited[0]
        account.raised = severity
        staked = sum(c[2] for c in days)
        returned = sum(c[4] for c in days)
        span = min(self.window_days, day - account.first_day + 1)
        by_day = [int(account.days.get(d, (0,))[0]) for d in range(day - span + 1, day + 1)]
        reasons = [
            f"{stakes} new payers sent round sums of {self.min_stake:,.0f} tenge or more "
            f"in {span} day{'s' if span > 1 else ''} "
            f"({stakes / newcomers:.0%} of payments from new payers)",
        ]
        if len(by_day) > 1:
            reasons.append(f"new stakes per day: {', '.join(map(str, by_day))}")
        if returns:
            reasons.append(
                f"{returns} payments of {returned:,.0f} tenge back to earlier payers "
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
                },
                event_ids=list(account.cited),
            )
        ]

    def _sweep(self, ts: float, day: int) -> None:
        """Once a day of event time: forget accounts idle for IDLE_DAYS."""
        self._swept_day = day
        forget_idle(self._accounts, ts - IDLE_DAYS * DAY)
