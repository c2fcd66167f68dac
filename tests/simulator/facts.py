"""Facts about a simulated world, computed from its bytes alone.

The simulator's truth is checked against what *this* module reads in
``events.jsonl``: the contract's rules are restated here and applied to the
parsed events, without importing anything from ``simulator`` or ``detectors``
(so a bug shared by the simulator and a detector cannot hide itself).
"""

from __future__ import annotations

import json
import re
import statistics
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ALMATY = ZoneInfo("Asia/Almaty")
DAY = 86400.0
HOUR = 3600.0
STREAMS = ("payments", "payroll", "inspections")
#: The Kafka key of each stream (contract).
ENTITY = {"payments": "payer", "payroll": "employer", "inspections": "business"}
#: Contract defaults of the moratorium.
MORATORIUM = (date(2020, 1, 1), date(2023, 1, 1))
PROTECTED = frozenset({"micro", "small"})
EXEMPT = frozenset(
    {
        "threat_to_life_health",
        "environmental_threat",
        "national_security",
        "prosecutor_order",
        "criminal_case",
        "taxpayer_request",
    }
)
DUE_DAY = 10

_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "payments": {"payer": str, "payee": str, "amount": (int, float)},
    "payroll": {"type": str, "employer": str, "employee": str},
    "inspections": {
        "business": str,
        "business_size": str,
        "authority": str,
        "inspector": str,
        "kind": str,
        "basis": str,
    },
}


def parse_ts(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp with an offset."""
    return datetime.fromisoformat(text).timestamp()


def local_midnight(day: date) -> float:
    """Epoch seconds of the local (Asia/Almaty) midnight that starts ``day``."""
    return datetime.combine(day, time(0), ALMATY).timestamp()


def local_date(ts: float) -> date:
    return datetime.fromtimestamp(ts, ALMATY).date()


def due_instant(period: str, due_day: int = DUE_DAY) -> float:
    """The local midnight that ends the due day of the month after ``period``."""
    year, month = int(period[:4]), int(period[5:])
    following = date(year + month // 12, month % 12 + 1, due_day)
    return local_midnight(following + timedelta(days=1))


def _constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def problem(record: Any) -> str | None:
    """Why a parsed line breaks the contract, or None if it is a valid record."""
    if not isinstance(record, dict) or record.get("topic") not in STREAMS:
        return "not a record of a known topic"
    event, stream = record.get("value"), record["topic"]
    if not isinstance(event, dict):
        return "value is not an object"
    event_id, ts = event.get("event_id"), event.get("ts")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 128:
        return "bad event_id"
    if not isinstance(ts, str) or not _RFC3339.match(ts):
        return "bad ts"
    for name, kind in _REQUIRED[stream].items():
        value = event.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) or value in ("", None):
            return f"bad {name}"
    if stream == "payments" and not 0 < event["amount"] < 1e13:
        return "bad amount"
    if stream == "payroll" and event["type"] in ("accrual", "payment"):
        if not _PERIOD.match(str(event.get("period"))):
            return "bad period"
        if not isinstance(event.get("amount"), int | float) or not event["amount"] > 0:
            return "bad amount"
    return None


@dataclass
class Stream:
    """What a historical stream file holds, read line by line."""

    lines: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)
    repeated: int = 0  # lines equal byte for byte to an earlier line
    id_conflicts: list[str] = field(default_factory=list)  # ids seen with other bytes
    key_mismatches: list[int] = field(default_factory=list)
    styles: Counter[str] = field(default_factory=Counter)  # Z, +06:00, +05:00, other
    wrong_local: list[str] = field(default_factory=list)  # +06:00 that is not Almaty time
    shapes: Counter[tuple[str, ...]] = field(default_factory=Counter)  # keys of valid records
    #: Per stream, the most a line's event time lags the newest event time before it.
    behind: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0.0))
    #: stream -> event_id -> event (first delivery), with ``_t`` = epoch seconds.
    events: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {s: {} for s in STREAMS}
    )


def read_stream(path: Path) -> Stream:
    out = Stream()
    seen_lines: set[bytes] = set()
    newest = dict.fromkeys(STREAMS, float("-inf"))
    line_of_id: dict[tuple[str, str], bytes] = {}
    with open(path, "rb") as source:
        for number, line in enumerate(source, start=1):
            out.lines += 1
            if line in seen_lines:
                out.repeated += 1
            else:
                seen_lines.add(line)
            try:
                record = json.loads(line, parse_constant=_constant)
            except ValueError as exc:
                out.invalid.append((number, f"not JSON: {exc}"))
                continue
            why = problem(record)
            if why:
                out.invalid.append((number, why))
                continue
            stream, event = record["topic"], record["value"]
            out.shapes[tuple(sorted(record))] += 1
            if record.get("key") != event[ENTITY[stream]]:
                out.key_mismatches.append(number)
            ident = (stream, event["event_id"])
            if ident in line_of_id:
                if line_of_id[ident] != line:
                    out.id_conflicts.append(event["event_id"])
                continue
            line_of_id[ident] = line
            ts = event["ts"]
            event["_t"] = parse_ts(ts)
            newest[stream] = max(newest[stream], event["_t"])
            out.behind[stream] = max(out.behind[stream], newest[stream] - event["_t"])
            style = "Z" if ts.endswith("Z") else ts[-6:]
            out.styles[style] += 1
            if style == "+06:00":
                offset = datetime.fromtimestamp(event["_t"], ALMATY).utcoffset()
                if offset != timedelta(hours=6) or event["_t"] >= local_midnight(date(2024, 3, 1)):
                    out.wrong_local.append(ts)
            out.events[stream][event["event_id"]] = event
    return out


def read_truth(path: Path) -> list[dict[str, Any]]:
    findings = json.loads(path.read_text())["findings"]
    for finding in findings:
        finding["_t"] = parse_ts(finding["start"])
    return findings


def by_kind(findings: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Findings of one kind by entity (the earliest if an entity has several)."""
    out: dict[str, dict[str, Any]] = {}
    for finding in sorted(findings, key=lambda f: f["_t"]):
        if finding["kind"] == kind:
            out.setdefault(finding["entity"], finding)
    return out


# -- inspections ---------------------------------------------------------------------


def in_moratorium(ts: float) -> bool:
    """Is the local (Asia/Almaty) date of ``ts`` inside the default moratorium window?"""
    return MORATORIUM[0] <= local_date(ts) < MORATORIUM[1]


def prohibited(event: dict[str, Any]) -> bool:
    """The contract's moratorium rule, with its default windows, sizes and bases."""
    return (
        in_moratorium(event["_t"])
        and event["business_size"] in PROTECTED
        and event["basis"] not in EXEMPT
    )


#: An authority back on an exempt ground within this many days continues its case.
CASE_DAYS = 60


def opening(visits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The visits (of one business, in time order) that each open a matter of their own.

    The repeat-inspection typology: every visit is an intrusion, whatever its
    ground, except one that continues a matter: a follow-up, or an authority's
    visit on an exempt ground within CASE_DAYS of its previous exempt-ground visit
    to the business (the same case).
    """
    last_exempt: dict[str, float] = {}  # authority -> its last exempt-ground visit
    out = []
    for event in visits:
        if event["basis"] == "follow_up":
            continue
        if event["basis"] in EXEMPT:
            before = last_exempt.get(event["authority"])
            last_exempt[event["authority"]] = event["_t"]
            if before is not None and event["_t"] - before <= CASE_DAYS * DAY:
                continue
        out.append(event)
    return out


def most_within(times: list[float], window: float) -> tuple[int, float]:
    """The most of ``times`` (sorted) in any ``[t, t + window]``, and the first such t."""
    best, first = 0, float("nan")
    for i, start in enumerate(times):
        count = bisect_right(times, start + window) - i
        if count > best:
            best, first = count, start
    return best, first


def count_within(times: list[float], start: float, window: float) -> int:
    """How many of ``times`` (sorted) fall in ``[start, start + window]``."""
    return bisect_right(times, start + window) - bisect_left(times, start)


def visits_by_business(events: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events.values():
        out[event["business"]].append(event)
    for visits in out.values():
        visits.sort(key=lambda e: e["_t"])
    return out


@dataclass
class InspectorStats:
    """One inspector's record over a span of event time."""

    count: int  # inspections
    protected_share: float  # share of micro/small, non-exempt ones among them
    most_repeats: int  # most visits to one business within 45 days


def inspector_stats(
    events: dict[str, dict[str, Any]], since: float, moratorium_only: bool = False
) -> dict[str, InspectorStats]:
    """Every inspector's record from ``since`` on.

    With ``moratorium_only`` the protected share counts only inspections inside
    the moratorium (outside it, visiting small businesses is ordinary work).
    """
    mine: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events.values():
        mine[event["inspector"]]  # every inspector appears, even with nothing since
        if event["_t"] >= since:
            mine[event["inspector"]].append(event)
    out = {}
    for who, visits in mine.items():
        counted = [e for e in visits if not moratorium_only or in_moratorium(e["_t"])]
        protected = sum(
            1 for e in counted if e["business_size"] in PROTECTED and e["basis"] not in EXEMPT
        )
        per_business: dict[str, list[float]] = defaultdict(list)
        for e in visits:
            per_business[e["business"]].append(e["_t"])
        most = max((most_within(sorted(t), 45 * DAY)[0] for t in per_business.values()), default=0)
        out[who] = InspectorStats(len(visits), protected / len(counted) if counted else 0.0, most)
    return out


def authorities(events: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {e["inspector"]: e["authority"] for e in events.values()}


def peer_median(
    stats: dict[str, InspectorStats],
    authority_of: dict[str, str],
    who: str,
    value: str,
    excluded: set[str],
) -> float:
    """Median of ``value`` over ``who``'s peers: the other inspectors of its authority.

    Inspectors in ``excluded`` are no peers. If that leaves none (a small world
    may have two inspectors in an authority, both rogue), the peers are every
    inspector not excluded.
    """
    others = [p for p in authority_of if p != who and p not in excluded]
    peers = [p for p in others if authority_of[p] == authority_of[who]] or others
    return statistics.median(getattr(stats[p], value) for p in peers)


# -- payroll -------------------------------------------------------------------------


@dataclass
class Ledger:
    """Accruals and payments per (employer, employee, period), duplicates counted once."""

    #: (employer, employee, period) -> [(event_id, amount, ts)] accruals.
    accruals: dict[tuple[str, str, str], list[tuple[str, float, float]]]
    #: (employer, employee, period) -> [(ts, amount)] payments, sorted.
    payments: dict[tuple[str, str, str], list[tuple[float, float]]]

    def paid_before(self, key: tuple[str, str, str], instant: float) -> float:
        return sum(amount for ts, amount in self.payments.get(key, ()) if ts < instant)

    def shortfall(self, key: tuple[str, str, str], instant: float) -> float:
        """Accrued minus paid before ``instant``."""
        accrued = sum(amount for _, amount, _ in self.accruals[key])
        return accrued - self.paid_before(key, instant)


def ledger(events: dict[str, dict[str, Any]]) -> Ledger:
    accruals: dict[tuple[str, str, str], list[tuple[str, float, float]]] = defaultdict(list)
    payments: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    for event in events.values():
        if event["type"] in ("accrual", "payment"):
            key = (event["employer"], event["employee"], event["period"])
            if event["type"] == "accrual":
                accruals[key].append((event["event_id"], event["amount"], event["_t"]))
            else:
                payments[key].append((event["_t"], event["amount"]))
    for paid in payments.values():
        paid.sort()
    return Ledger(dict(accruals), dict(payments))


@dataclass
class Staff:
    """Who works for one employer: first sight, hire and termination of each employee."""

    hired: dict[str, float] = field(default_factory=dict)
    left: dict[str, tuple[float, str, str]] = field(default_factory=dict)  # ts, reason, id
    seen: set[str] = field(default_factory=set)

    def headcount(self, at: float) -> int:
        """Employees on the books at ``at``.

        Everyone the stream ever shows for the employer counts, unless hired
        after ``at`` or terminated before it. The stream starts after most
        people were hired, so an employee without a hire event was employed
        from before its beginning.
        """
        return sum(
            1
            for person in self.seen
            if self.hired.get(person, float("-inf")) <= at
            and (person not in self.left or self.left[person][0] >= at)
        )

    def terminations(self, reason: str) -> list[tuple[float, str]]:
        return sorted((ts, ident) for ts, why, ident in self.left.values() if why == reason)


def staff_of(events: dict[str, dict[str, Any]]) -> dict[str, Staff]:
    out: dict[str, Staff] = defaultdict(Staff)
    for event in events.values():
        staff = out[event["employer"]]
        staff.seen.add(event["employee"])
        if event["type"] == "hire":
            staff.hired[event["employee"]] = event["_t"]
        elif event["type"] == "termination":
            staff.left[event["employee"]] = (event["_t"], event["reason"], event["event_id"])
    return dict(out)


def pay_days(events: dict[str, dict[str, Any]]) -> dict[str, dict[tuple[int, int], float]]:
    """Per employer and (year, month) of payment: the median local day wages were paid."""
    days: dict[str, dict[tuple[int, int], list[int]]] = defaultdict(lambda: defaultdict(list))
    for event in events.values():
        if event["type"] == "payment":
            day = local_date(event["_t"])
            days[event["employer"]][(day.year, day.month)].append(day.day)
    return {
        employer: {month: statistics.median(d) for month, d in months.items()}
        for employer, months in days.items()
    }


# -- payments ------------------------------------------------------------------------


@dataclass
class Account:
    inflows: list[tuple[float, str, float]] = field(default_factory=list)  # ts, payer, amount
    outflows: list[tuple[float, str, float]] = field(default_factory=list)  # ts, payee, amount


def accounts(events: dict[str, dict[str, Any]]) -> dict[str, Account]:
    out: dict[str, Account] = defaultdict(Account)
    for event in events.values():
        out[event["payee"]].inflows.append((event["_t"], event["payer"], event["amount"]))
        out[event["payer"]].outflows.append((event["_t"], event["payee"], event["amount"]))
    for account in out.values():
        account.inflows.sort()
        account.outflows.sort()
    return dict(out)


def distinct_payers_within(account: Account, start: float, window: float) -> int:
    return len({payer for ts, payer, _ in account.inflows if start <= ts < start + window})


def most_payers_in_a_week(account: Account) -> int:
    """The most distinct payers of the account in any 7 days (from one of its inflows)."""
    times = [ts for ts, _, _ in account.inflows]
    best = 0
    for i, start in enumerate(times):
        end = bisect_left(times, start + 7 * DAY)
        if end - i > best:
            best = max(best, len({p for _, p, _ in account.inflows[i:end]}))
    return best


def paid_back_to_payers(account: Account) -> int:
    """How many distinct accounts it pays that had paid it earlier."""
    first_paid: dict[str, float] = {}
    for ts, payer, _ in account.inflows:
        first_paid.setdefault(payer, ts)
    return len({payee for ts, payee, _ in account.outflows if first_paid.get(payee, ts) < ts})
