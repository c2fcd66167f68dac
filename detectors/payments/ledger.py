"""Who has paid each account: one memory the payments detectors share.

``pyramid_scheme`` asks whether a payer is *new* to the account it pays;
``mule_account`` whether an outgoing payment goes back to someone who *has
paid* the account (a refund or a "return" is not money passed on);
``payment_anomaly`` whether a day's payees are the account's own payers paid
back. It is one memory, a Bloom filter of payers per receiving account
(:class:`~detectors.payments.sketch.Seen`), so the registry builds one
:class:`Payers` and hands it to all three: one filter per account, filled once
per payment.

:class:`AccountDetector` is the bookkeeping ``pyramid_scheme`` and
``mule_account`` share: state per account, forgotten when idle, and when the
detector's event time began (for their warm-ups). An account alerted on and
then idle for ``idle_days`` ends its finding: the forgetting raises its
``resolved`` alert (the pattern is gone: no payment in the window).

Each detector calls :meth:`Payers.observe` with the activity it is given; the
first call for an activity records it and the others get the same answer, so
the order detectors run in does not matter. Cash withdrawals (``cash_out``)
are not payments to the desk's owner, and cash deposits (``cash_in``) are the
account holder's own money, not a desk paying them: neither is recorded. An
account that has received nothing for ``idle_days`` is forgotten (once a day of
event time), and past ``max_entities`` accounts the least recently paid go
(:class:`~detectors.base.Bounded`).
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from detectors.base import Bounded, Context, Detector, resolve_alert
from detectors.events import Activity, Alert
from detectors.payments.sketch import Seen

DAY = 86400.0
#: 45 days: a relative or an employer paying monthly (every 27-33 days) is still known
#: the next month, so its money is not taken for a stranger's.
DEFAULT_IDLE_DAYS = 45
#: Payments from which the ledger remembers whom an account paid (``Payers.paid_to``):
#: the sums a savings circle's members pay each other, not a coffee.
RECIPROCAL_MIN = 10_000.0
#: Channels whose "payer" is a bank's cash desk, not a person paying the payee: a
#: withdrawal (``cash_out``) is the payer's own money leaving, a deposit (``cash_in``)
#: the payee's own cash coming in. Neither makes the desk one of the payee's payers.
NOT_FROM_A_PAYER = frozenset({"cash_in", "cash_out"})
#: An account state's last activity (event time), by which the least recent go first.
LAST_TS = attrgetter("last_ts")


class AccountDetector(Detector):
    """A payments detector's state per account, bounded, and its event time's start.

    Subclasses keep one state object per account in ``_accounts``, each with a
    ``last_ts``, a ``finding`` ("" until alerted) and the severity ``raised``;
    they judge in :meth:`judge` and call :meth:`_tick` first thing there: once a
    day of event time it forgets the accounts idle for ``idle_days``, and ends
    the finding of each that was alerted on (its ``resolved`` alert goes out with
    the event's). Where they add an account they call :meth:`_bound`: past
    ``max_entities`` accounts the least recently active go.
    """

    #: An account with no payment for this long is forgotten.
    idle_days: float = 30.0

    def __init__(self) -> None:
        self._accounts: dict[str, Any] = {}
        self._first_ts: float | None = None  # the first event time seen: warm-ups count from it
        self._swept_day = -1
        self._ended: list[Alert] = []  # findings the last sweep ended, until handed out

    @property
    def n_entities(self) -> int:
        return len(self._accounts)

    @abstractmethod
    def judge(self, event: Activity, ctx: Context) -> list[Alert]:
        """Take one event (after :meth:`_tick`); return the alerts it raises."""

    def update(self, event: Activity, ctx: Context) -> list[Alert]:
        alerts = self.judge(event, ctx)
        if not self._ended:  # nearly always: no list made per event
            return alerts
        ended, self._ended = self._ended, []
        return [*ended, *alerts]

    def _tick(self, ts: float) -> int:
        """Take an event's time (epoch seconds); return its day, sweeping once a day."""
        day = int(ts // DAY)
        if self._first_ts is None:
            self._first_ts = ts
        if day > self._swept_day:  # a late event from yesterday does not sweep again
            self._swept_day = day
            before = ts - self.idle_days * DAY
            for name in [n for n, a in self._accounts.items() if a.last_ts < before]:
                account = self._accounts.pop(name)
                if account.finding and account.raised != "info":
                    self._ended.append(self._quiet(name, account))
        return day

    def _quiet(self, name: str, account: Any) -> Alert:
        """The alert that ends an alerted account's finding: idle for ``idle_days``."""
        ended = account.last_ts + self.idle_days * DAY
        last = datetime.fromtimestamp(account.last_ts, UTC).date().isoformat()
        return resolve_alert(
            kind=self.kind,
            entity=name,
            finding=account.finding,
            ts=datetime.fromtimestamp(ended, UTC),
            severity=account.raised,
            reasons=[
                f"no payment watched since {last}: {self.idle_days:g} days without the pattern"
            ],
            evidence={"resolution": "quiet", "quiet_days": self.idle_days, "last_active": last},
        )

    def _bound(self) -> None:
        """After an account was added: past the cap, drop the least recently active."""
        if len(self._accounts) > self.max_entities:
            self._shed(self._accounts, LAST_TS)

    def _elapsed(self, ts: float) -> float:
        """Seconds of event time since the first event (after :meth:`_tick`)."""
        assert self._first_ts is not None
        return ts - self._first_ts


class Payers(Bounded):
    """A Bloom filter of payers per receiving account, shared by payments detectors.

    Bounded: accounts idle for ``idle_days`` are forgotten once a day, and past
    ``max_entities`` accounts the least recently paid go (counted in ``evicted``;
    the engine reports them as ``payer_ledger``).

    >>> from datetime import datetime, timezone
    >>> from detectors.events import Payment
    >>> payers = Payers()
    >>> pay = Activity(Payment(event_id="p-1", ts=datetime(2023, 3, 1, tzinfo=timezone.utc),
    ...     payer="A", payee="B", amount=1000.0))
    >>> payers.observe(pay, 0.0), payers.observe(pay, 0.0), payers.has_paid("A", "B")
    (True, True, True)
    """

    def __init__(self, idle_days: float = DEFAULT_IDLE_DAYS) -> None:
        self.idle_days = idle_days
        self._seen: dict[str, Seen] = {}
        self._day_of: dict[str, int] = {}  # account -> last day it received
        # Whom each account has paid (sums of RECIPROCAL_MIN or more): a payer it paid
        # before is no stranger (savings circles' members pay each other in turn).
        self._paid: dict[str, Seen] = {}
        self._paid_day: dict[str, int] = {}  # account -> last day it paid such a sum
        self._swept_day = -1
        self._activity: Activity | None = None  # the activity last observed ...
        self._new = False  # ... and whether its payer was new to the payee

    def __len__(self) -> int:
        return len(self._seen)

    def observe(self, activity: Activity, ts: float) -> bool:
        """Record ``activity``'s payer for its payee (if it carries money in).

        Returns True if the payer had not paid the payee before. Calling it
        again with the same activity records nothing and gives the same answer.
        """
        if activity is self._activity:
            return self._new
        self._activity = activity
        payment = activity.payment
        if payment.channel in NOT_FROM_A_PAYER:
            self._new = False
            return False
        day = int(ts // DAY)
        if day > self._swept_day:
            self._sweep(day)
        if activity.outgoing and payment.amount >= RECIPROCAL_MIN:
            self._note(self._paid, self._paid_day, payment.payer, payment.payee, day)
        if not activity.incoming:
            self._new = False
            return False
        self._new = self._note(self._seen, self._day_of, payment.payee, payment.payer, day)
        return self._new

    def _note(
        self, filters: dict[str, Seen], days: dict[str, int], account: str, name: str, day: int
    ) -> bool:
        """Add ``name`` to ``account``'s filter in ``filters`` (its last day in ``days``);
        True if it was not there. Past the cap the least recently active accounts go."""
        seen = filters.get(account)
        days[account] = day
        if seen is None:
            seen = filters[account] = Seen()
            if len(filters) > self.max_entities:
                for gone, _ in self._shed(days):
                    del filters[gone]
        return seen.add(name)

    def paid_to(self, account: str, payee: str) -> bool:
        """Has ``account`` paid ``payee`` a sum of ``RECIPROCAL_MIN`` or more (remembered)?"""
        paid = self._paid.get(account)
        return paid is not None and payee in paid

    def has_paid(self, payer: str, account: str) -> bool:
        """Has ``payer`` paid ``account`` (within its remembered history)?"""
        seen = self._seen.get(account)
        return seen is not None and payer in seen

    def _sweep(self, day: int) -> None:
        self._swept_day = day
        horizon = day - self.idle_days
        for filters, days in ((self._seen, self._day_of), (self._paid, self._paid_day)):
            for account in [a for a, d in days.items() if d < horizon]:
                del filters[account]
                del days[account]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_activity"], state["_new"] = None, False  # transient: one engine call
        return state
