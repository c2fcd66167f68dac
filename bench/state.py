"""Bounded state: bytes per tracked account of the payments detectors at 1 million accounts.

    python -m bench.state [ACCOUNTS]        # default 1,000,000

Feeds one partition of the engine's payments lane (``build_engine``'s three
payments detectors, sharing one payer ledger, with the partition's duplicate
memory, clock and timers: :class:`detectors.engine.Partition`, as a
by-account partition of the live worker runs them) a stream in which every
one of ACCOUNTS accounts receives at least one payment over a month, most
from a few payers, some from many: 1 % are busy (30 payers each) and 20
"merchants" have 5,000 payers, the history that unbounded sets would make
grow without end. All accounts in one partition: the worst case, and what
``--partitions 1`` runs. Then reports:

- resident memory growth (``/proc/self/statm``) per account;
- the pickled size of the payments detectors per account, and of the whole
  partition (what the worker saves to its state topic for it; it also holds
  the ids of the last two days of payments, for duplicates) and how long
  that pickle takes with the collector paused, as the worker takes it
  (holding its lock: it judges nothing meanwhile);
- the pickled state of one merchant with 5,000 payers against one account
  with a single payer (bounded whatever the history).

The events themselves are built on the fly, so they are not in the figure.
"""

from __future__ import annotations

import gc
import os
import pickle
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from detectors.events import Activity, Payment
from detectors.registry import build_engine

START = datetime(2023, 3, 1, tzinfo=UTC)
DAYS = 30
MERCHANTS = 20
MERCHANT_PAYERS = 5_000
BUSY_SHARE = 0.01
BUSY_PAYERS = 30


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def payments(accounts: int, rng: random.Random):
    """(payer, payee, amount) in time order: every account paid at least once."""
    plan: list[tuple[int, int]] = []  # (payee, payments)
    for a in range(accounts):
        if a < MERCHANTS:
            plan.append((a, MERCHANT_PAYERS))
        elif rng.random() < BUSY_SHARE:
            plan.append((a, BUSY_PAYERS))
        else:
            plan.append((a, rng.choice((1, 1, 1, 2, 3))))
    flat = [payee for payee, n in plan for _ in range(n)]
    rng.shuffle(flat)
    step = DAYS * 86400 / len(flat)
    for i, payee in enumerate(flat):
        payer = rng.randrange(accounts)
        if payer == payee:
            payer = (payer + 1) % accounts
        amount = float(rng.choice((5_000, 10_000, 20_000, 50_000, 100_000, 7_340, 12_890)))
        yield START + timedelta(seconds=i * step), payer, payee, amount


def main(accounts: int = 1_000_000) -> None:
    rng = random.Random(1)
    engine = build_engine()
    partition = engine.partition("payments", 0)
    detectors = partition.detectors
    lateness = engine.allowed_lateness
    outcomes: Counter[str] = Counter()
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    n = 0
    for ts, payer, payee, amount in payments(accounts, rng):
        n += 1
        event = Activity(
            Payment(
                event_id=f"p-{n}",
                ts=ts,
                payer=f"ACC-{payer:07d}",
                payee=f"ACC-{payee:07d}",
                amount=amount,
            )
        )
        outcomes[partition.process(event, lateness).outcome] += 1
    elapsed = time.perf_counter() - started
    gc.collect()
    grown = rss_bytes() - before
    pickled = len(pickle.dumps(detectors, protocol=pickle.HIGHEST_PROTOCOL))
    gc.disable()  # as the worker pickles (streams.state.off_the_loop)
    started = time.perf_counter()
    saved = len(engine.snapshot_partition("payments", 0))
    pickling = time.perf_counter() - started
    gc.enable()
    ledger = detectors[0].payers
    tracked = len(ledger)
    judged = ", ".join(f"{count:,} {outcome}" for outcome, count in sorted(outcomes.items()))
    print(f"payments fed            {n:,} in {elapsed:.0f} s ({n / elapsed:,.0f}/s): {judged}")
    print(f"accounts with state     {tracked:,} (of {accounts:,})")
    print(f"resident memory growth  {grown / 1e6:,.0f} MB = {grown / accounts:,.0f} bytes/account")
    print(
        f"detectors (pickle)      {pickled / 1e6:,.0f} MB = {pickled / accounts:,.0f} bytes/account"
    )
    print(
        f"partition (pickle)      {saved / 1e6:,.0f} MB = {saved / accounts:,.0f} bytes/account, "
        f"in {pickling:.2f} s (ids remembered: {len(partition.dedup):,}; "
        f"timers: {len(partition.timers):,})"
    )
    entities = ", ".join(f"{kind} {count:,}" for kind, count in sorted(engine.entities().items()))
    print(f"entities tracked        {entities}")
    for name in ("ACC-0000000", f"ACC-{accounts - 1:07d}"):
        parts = [ledger._seen.get(name)] + [
            getattr(d, "_accounts", {}).get(name) for d in detectors
        ]
        size = len(pickle.dumps([p for p in parts if p is not None]))
        print(f"state of {name}     {size:,} bytes pickled")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
