"""Memory a worker needs per million tracked entities, and what the cap bounds it to.

    python -m bench.memory [ENTITIES]     # default 1,000,000

A flood of made-up ids (issue 14: "200k random accounts in one day: +282 MB"),
one engine partition per lane, built by ``build_engine`` as the worker builds
them, each scenario in a fresh process (so that one's freed memory does not
flatter the next):

- ``payments``: ENTITIES accounts, each paid 50,000 tenge once by one of 1,000
  payers, within a day, after a first payment 15 days earlier (so that
  ``pyramid_scheme``'s warm-up is over and every detector keeps the account):
  the shared payer ledger, ``pyramid_scheme``, ``mule_account`` and
  ``payment_anomaly`` (the day's payments) each hold one entry per account;
- ``payroll``: ENTITIES employers, each accruing one employee's wages within a
  day: ``salary_arrears`` (a period book and its deadline timer),
  ``payroll_anomaly`` and ``mass_layoff`` each hold one entry per employer;
- ``inspections``: ENTITIES inspections within a day, each of its own business
  by its own inspector of its own authority: ``repeat_inspection`` (by
  business) and ``inspector_anomaly`` (by authority: an inspector and its
  authority's peers) hold one entry each.

Each scenario runs twice: with no cap (memory per tracked entity) and with
the shipped caps (``max_entities``: :data:`detectors.base.DEFAULT_MAX_ENTITIES`,
fewer for ``inspector_anomaly``), what a flood costs at most. It reports, per
scenario: entities tracked and evicted per kind, resident memory growth
(``/proc/self/statm``; it includes the duplicate memory of the events, one
per entity), and the saved partition states (pickled, with the collector
paused as the worker does) and the time that takes. Honest traffic (an
account paid by many payers over a month) is ``bench.state``'s.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from detectors.events import BY_AUTHORITY, Activity, Inspection, Payment, PayrollEvent
from detectors.registry import build_engine

START = datetime(2023, 3, 1, tzinfo=UTC)
#: The flood comes within this much event time: no daily sweep forgets any of it.
SPAN = timedelta(hours=20)
PAYERS = 1_000
SCENARIOS = ("payments", "payroll", "inspections")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def flood(scenario: str, n: int) -> Iterator[tuple[str, Any]]:
    """(lane, event) of one scenario, in time order."""
    step = SPAN / n
    if scenario == "payments":
        yield "payments", _payment(0, START - timedelta(days=15), "WARM-UP", "ACC-WARM-UP")
        t0 = START
        for i in range(n):
            yield "payments", _payment(i + 1, t0 + i * step, f"P-{i % PAYERS:04d}", f"ACC-{i:07d}")
    elif scenario == "payroll":
        for i in range(n):
            yield (
                "payroll",
                PayrollEvent(
                    event_id=f"pr-{i}",
                    ts=START + i * step,
                    type="accrual",
                    employer=f"EMP-{i:07d}",
                    employee="W-1",
                    period="2023-02",
                    amount=200_000.0,
                ),
            )
    else:
        for i in range(n):
            inspection = Inspection(
                event_id=f"i-{i}",
                ts=START + i * step,
                business=f"BIZ-{i:07d}",
                business_size="small",
                authority=f"AUTH-{i:07d}",
                inspector=f"INS-{i:07d}",
                kind="scheduled",
                basis="routine",
            )
            yield "inspections", inspection
            yield BY_AUTHORITY, inspection


def _payment(n: int, ts: datetime, payer: str, payee: str) -> Activity:
    return Activity(Payment(event_id=f"p-{n}", ts=ts, payer=payer, payee=payee, amount=50_000.0))


def measure(scenario: str, n: int, capped: bool) -> dict[str, Any]:
    """Run one scenario in this process (with the shipped caps, or none); what it cost."""
    engine = build_engine()
    if not capped:  # the first partition of each lane runs these very instances
        for detector in engine.detectors:
            detector.max_entities = sys.maxsize
            payers = getattr(detector, "payers", None)
            if payers is not None:
                payers.max_entities = sys.maxsize
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    events = 0
    for lane, event in flood(scenario, n):
        engine.process(lane, event)
        events += 1
    feeding = time.perf_counter() - started
    gc.collect()
    grown = rss_bytes() - before
    saved, pickling = 0, 0.0
    for lane, partition in engine.partitions():
        gc.disable()  # as the worker pickles (streams.state)
        started = time.perf_counter()
        saved += len(engine.snapshot_partition(lane, partition))
        pickling += time.perf_counter() - started
        gc.enable()
    detectors = sum(
        len(pickle.dumps(engine.partition(lane, p).detectors, pickle.HIGHEST_PROTOCOL))
        for lane, p in engine.partitions()
    )
    tracked = engine.entities()
    ledgers = {}  # the payments detectors' shared memory: one per partition
    for lane, p in engine.partitions():
        for detector in engine.partition(lane, p).detectors:
            payers = getattr(detector, "payers", None)
            if payers is not None:
                ledgers[id(payers)] = len(payers)
    if ledgers:
        tracked["payer_ledger"] = sum(ledgers.values())
    return {
        "scenario": scenario,
        "entities": n,
        "capped": capped,
        "events": events,
        "feed_seconds": feeding,
        "rss_bytes": grown,
        "saved_bytes": saved,
        "detector_bytes": detectors,
        "pickle_seconds": pickling,
        "tracked": tracked,
        "evicted": engine.evictions(),
    }


def report(r: dict[str, Any]) -> None:
    n = r["entities"]
    cap = "shipped caps" if r["capped"] else "no cap"
    print(f"== {r['scenario']}: {n:,} new entities, {cap}")
    print(
        f"   fed {r['events']:,} events in {r['feed_seconds']:.0f} s "
        f"({r['events'] / r['feed_seconds']:,.0f}/s)"
    )
    tracked = ", ".join(f"{k} {v:,}" for k, v in sorted(r["tracked"].items()) if v)
    evicted = ", ".join(f"{k} {v:,}" for k, v in sorted(r["evicted"].items()) if v)
    print(f"   tracked   {tracked}")
    print(f"   evicted   {evicted or 'none'}")
    grown = r["rss_bytes"]
    print(f"   resident  +{grown / 1e6:,.0f} MB ({grown / n:,.0f} bytes per entity fed)")
    print(
        f"   saved     {r['saved_bytes'] / 1e6:,.0f} MB ({r['saved_bytes'] / n:,.0f} bytes per "
        f"entity fed; detectors alone {r['detector_bytes'] / 1e6:,.0f} MB), "
        f"pickled in {r['pickle_seconds']:.1f} s"
    )


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--one":  # a child: one scenario, JSON out
        scenario, n, capped = argv[1], int(argv[2]), argv[3] == "capped"
        print(json.dumps(measure(scenario, n, capped)))
        return
    n = int(argv[0]) if argv else 1_000_000
    for scenario in SCENARIOS:
        for cap in ("uncapped", "capped"):
            out = subprocess.run(
                [sys.executable, "-m", "bench.memory", "--one", scenario, str(n), cap],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            report(json.loads(out))


if __name__ == "__main__":
    main(sys.argv[1:])
