"""The simulation engine: actors, event-time merge, delivery imperfections, truth.

A world is a set of *actors*: generators that yield ``(ts, stream, event)`` in
non-decreasing event time (epoch seconds). :class:`World` merges them through a
heap, so memory holds one pending event per actor, never the output. Each
event then gets a delivery delay (most arrive within two minutes, some hours,
a few up to 23 h late), sometimes a redelivered duplicate, and a timestamp
written in ``Z``, the local offset, or ``+05:00``; a small share of broken
records is mixed in. Lines are written in delivery order, as a consumer would
see them. Because every delay is under 24 h, no event is later than the
contract's allowed lateness.

Determinism: every actor draws from its own ``random.Random`` seeded from the
world seed and the actor's name, and the merge breaks ties by a counter, so a
seed always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import IO, Any
from zoneinfo import ZoneInfo

import msgspec

#: Local time of every calendar rule (contract default).
LOCAL = ZoneInfo("Asia/Almaty")
UTC = UTC
PLUS5 = timezone(timedelta(hours=5))
DAY = 86400.0
HOUR = 3600.0

#: Delivery delays: (share, lowest, highest seconds). The last bucket stays under
#: the 24 h allowed lateness, so no event is dropped as late.
DELAYS = ((0.90, 0.0, 120.0), (0.08, 120.0, 3 * HOUR), (0.02, 3 * HOUR, 23 * HOUR))
#: Share of events delivered twice (at-least-once producers), and how much later.
DUPLICATE_SHARE = 0.003
DUPLICATE_DELAY = (60.0, 6 * HOUR)
#: Share of broken records mixed into the stream (on top of the real events).
INVALID_SHARE = 0.0005
#: How timestamps are written: UTC with Z, the local offset (+06:00 before
#: March 2024, +05:00 after), or +05:00 (a producer in western Kazakhstan).
TS_STYLES = ((0.5, "Z"), (0.4, "local"), (0.1, "+05:00"))

Emit = tuple[float, str, dict[str, Any]]
Actor = Iterator[Emit]


def local_ts(day: date, hour: float = 0.0) -> float:
    """Epoch seconds of ``hour`` o'clock (fractional) on local date ``day``."""
    whole = int(hour)
    minutes = (hour - whole) * 60
    moment = datetime.combine(day, time(whole, int(minutes), int((minutes % 1) * 60)), LOCAL)
    return moment.timestamp()


def local_date(ts: float) -> date:
    return datetime.fromtimestamp(ts, LOCAL).date()


def format_ts(ts: float, style: str) -> str:
    if style == "Z":
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")[:-6] + "Z"
    zone = LOCAL if style == "local" else PLUS5
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, normal approximation for large)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@dataclass
class Finding:
    """One true pattern (a line of truth.json)."""

    kind: str
    entity: str
    start: float
    event_ids: list[str] = field(default_factory=list)

    #: truth.json lists at most this many event ids per finding (as alerts do).
    MAX_IDS = 100

    def add(self, event_id: str) -> None:
        if len(self.event_ids) < self.MAX_IDS:
            self.event_ids.append(event_id)


class World:
    """Shared services for actors: time span, ids, random streams, truth."""

    def __init__(self, seed: int, start: date, days: int) -> None:
        self.seed = seed
        self.start_date = start
        self.start = local_ts(start)
        self.end = self.start + days * DAY
        self.end_date = local_date(self.end - 1)
        self.findings: list[Finding] = []
        self._ids: dict[str, int] = {}
        self._actors: list[tuple[str, Actor]] = []
        self.reordered = 0  # events an actor yielded out of order (held at its last time)
        #: Lawful look-alikes by family: the entities no detector should alert on.
        self.lawful: dict[str, set[str]] = {}

    # -- services for actors ------------------------------------------------------

    def rng(self, name: str) -> random.Random:
        """An independent, reproducible random stream for one actor."""
        digest = hashlib.blake2b(f"{self.seed}/{name}".encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def event_id(self, stream: str) -> str:
        number = self._ids.get(stream, 0) + 1
        self._ids[stream] = number
        return f"{stream[:3]}-{self.seed}-{number:09d}"

    def finding(self, kind: str, entity: str, start: float) -> Finding:
        found = Finding(kind, entity, start)
        self.findings.append(found)
        return found

    def lawful_as(self, family: str, *entities: str) -> None:
        """Record ``entities`` as members of a lawful look-alike ``family`` (lawful.json)."""
        self.lawful.setdefault(family, set()).update(entities)

    def add(self, name: str, actor: Actor) -> None:
        self._actors.append((name, actor))

    # -- running ------------------------------------------------------------------

    def events(self) -> Iterator[Emit]:
        """Every actor's events merged in event time, up to the world's end."""
        heap: list[tuple[float, int, Emit, Actor]] = []
        counter = 0
        for _, actor in self._actors:
            first = next(actor, None)
            if first is not None:
                counter += 1
                heap.append((first[0], counter, first, actor))
        heapq.heapify(heap)
        end = self.end
        while heap:
            ts, _, emitted, actor = heap[0]
            if ts >= end:
                break
            following = next(actor, None)
            if following is None:
                heapq.heappop(heap)
            else:
                if following[0] < ts:  # an actor's own slip back in time: hold it at ts
                    following = (ts, following[1], following[2])
                    self.reordered += 1
                counter += 1
                heapq.heapreplace(heap, (following[0], counter, following, actor))
            yield emitted

    def look_alikes(self) -> dict[str, Any]:
        """lawful.json: per look-alike family, the entities that are lawful.

        Not part of the contract: ``kuzet worlds`` counts the alerts on them. An entity
        that also shows a true pattern (a kassa member recruited as a mule) is left out.
        """
        patterned = {f.entity for f in self.findings}
        return {
            "families": {
                family: sorted(entities - patterned)
                for family, entities in sorted(self.lawful.items())
            }
        }

    def truth(self) -> dict[str, Any]:
        """truth.json: the findings whose pattern started inside the world."""
        findings = [
            {
                "kind": f.kind,
                "entity": f.entity,
                "start": format_ts(f.start, "Z"),
                "event_ids": f.event_ids,
            }
            for f in sorted(self.findings, key=lambda f: (f.start, f.kind, f.entity))
            if self.start <= f.start < self.end and f.event_ids
        ]
        return {"findings": findings}


KEYS = {"payments": "payer", "payroll": "employer", "inspections": "business"}


@dataclass
class WriteStats:
    events: int = 0
    duplicates: int = 0
    invalid: int = 0
    by_stream: dict[str, int] = field(default_factory=dict)


def write_stream(
    world: World, out: IO[bytes], on_line: Callable[[], None] | None = None
) -> WriteStats:
    """Write the world's events to ``out`` in delivery order, with imperfections."""
    rng = world.rng("delivery")
    encode = msgspec.json.encode
    stats = WriteStats()
    pending: list[tuple[float, int, bytes]] = []  # (delivery time, seq, line)
    seq = 0
    for ts, stream, event in world.events():
        while pending and pending[0][0] <= ts:
            out.write(heapq.heappop(pending)[2])
            if on_line:
                on_line()
        event["ts"] = format_ts(ts, pick(rng, TS_STYLES))
        line = encode({"topic": stream, "key": event[KEYS[stream]], "value": event}) + b"\n"
        seq += 1
        heapq.heappush(pending, (ts + _delay(rng), seq, line))
        stats.events += 1
        stats.by_stream[stream] = stats.by_stream.get(stream, 0) + 1
        if rng.random() < DUPLICATE_SHARE:
            seq += 1
            stats.duplicates += 1
            heapq.heappush(pending, (ts + rng.uniform(*DUPLICATE_DELAY), seq, line))
        if rng.random() < INVALID_SHARE:
            seq += 1
            stats.invalid += 1
            heapq.heappush(pending, (ts, seq, _broken(rng, stream, event)))
    while pending:
        out.write(heapq.heappop(pending)[2])
        if on_line:
            on_line()
    return stats


def pick(rng: random.Random, weighted: tuple[tuple[float, str], ...]) -> str:
    """One value of ``weighted`` ((share, value) pairs, shares summing to 1)."""
    roll = rng.random()
    for share, value in weighted:
        roll -= share
        if roll < 0:
            return value
    return weighted[-1][1]


def _delay(rng: random.Random) -> float:
    roll = rng.random()
    for share, low, high in DELAYS:
        roll -= share
        if roll < 0:
            return rng.uniform(low, high)
    return DELAYS[-1][2] * 0.99


def _broken(rng: random.Random, stream: str, event: dict[str, Any]) -> bytes:
    """One broken record of a kind the contract calls invalid (never a real event)."""
    encode = msgspec.json.encode
    bad = dict(event, event_id=f"bad-{event['event_id']}")
    kind = rng.randrange(8)
    if kind == 0:  # a line cut short: not JSON at all
        return encode({"topic": stream, "key": "x", "value": bad})[:-9] + b"\n"
    if kind == 1:
        bad.pop(KEYS[stream])
    elif kind == 2:
        bad["ts"] = bad["ts"][:19]  # no offset
    elif kind == 3:
        bad["event_id"] = ""
    elif kind == 4:
        return b'{"topic": "%s", "key": "x", "value": {"event_id": "%s", "amount": NaN}}\n' % (
            stream.encode(),
            bad["event_id"].encode(),
        )
    elif kind == 5:
        return encode({"topic": "payouts", "key": "x", "value": bad}) + b"\n"
    elif kind == 6:
        bad["ts"] = 1614650400  # a number, not RFC 3339
    else:
        return encode({"topic": stream, "key": "x", "value": [bad]}) + b"\n"
    return encode({"topic": stream, "key": "x", "value": bad}) + b"\n"
