"""Regrouping a stream by another entity, and merging it back in one deterministic order.

Some detectors need a stream grouped by an entity that is not its Kafka key:

- the payments detectors see each payment from both sides, so payments (keyed
  by payer) are regrouped **by account**: each payment goes to its payee's
  partition as its ``in`` half and to its payer's as its ``out`` half, or once
  as ``both`` when the two share a partition;
- ``inspector_anomaly`` compares an inspector with its authority's peers, so
  inspections (keyed by business) are regrouped **by authority**.

The live worker forwards these to an internal topic per regrouping
(:class:`Regroup`); the backtest does the same in memory. The partition is
Kafka's default partitioner of the entity (murmur2, as every Kafka client).

**One order, whatever the timing.** A downstream partition receives halves
from every upstream partition, and a worker reads upstream partitions at
uneven speeds (a backlog, a rebalance, a restart). If the downstream simply
took halves as they arrived, an account would see its money in a different
order on every run, and the partition that ran ahead would push the event
time forward so that the others' halves looked late. Instead every upstream
partition's halves are kept in their own queue (:class:`Merge`), and the next
half released to the detectors is always the earliest in event time among the
*heads* of all queues (ties to the lower upstream partition), released only
once every upstream partition has a head or has said that nothing it will
send later can come before it (its *frontier*, below). That rule gives the
same sequence however the halves were interleaved in transit, so the live
worker on any number of workers and through any restart produces the same
alerts as ``kuzet backtest --partitions N``. It is the "watermark is the
minimum over input channels" rule of Flink and Kafka Streams, made exact: an
upstream partition's progress is carried with the data.

To make that possible each **envelope** (one record of an internal topic: the
halves one upstream batch sends to one downstream partition) says how far its
upstream partition has been read, and every upstream batch sends one to
*every* downstream partition, empty if it has no halves for it::

    value   MessagePack array [2, upstream, through, frontier, [[side, offset, ts, event], ...]]
              2        the format's version
              upstream the upstream partition
              through  the upstream offset up to which this envelope and the earlier ones
                       hold every half for this partition
              frontier while this upstream's queue is empty, the others' halves up to
                       this event time (epoch seconds) may go ahead of its next one
                       (those at it, from a higher upstream only: ties go to the lower):
                       -inf (wait for it), +inf (it is done or idle), or between
              side     "in", "out" or "both" (a string)
              offset   the half's upstream offset: a re-sent half (the upstream was
                       re-read after a restart) is recognised and skipped
              ts       event time, epoch seconds (the merge orders by it)
              event    the event's original bytes (bin), unchanged
    key     none: the partition is given explicitly
    header  kuzet.format: kuzet.regroup.v2+msgpack

**Frontiers.** An upstream partition that has been read is not done: more may
arrive, and "read to its end" is only as fresh as the consumer's last fetch.
So a partition read to its end says how far the others may go without it:
its own newest event time plus ``KUZET_MAX_SKEW_HOURS`` (a burst that lands
after a quiet spell then cannot let one partition run days ahead and make the
others' events late). Only after it has stayed at its end for
:data:`IDLE_SECONDS` of wall time does it say ``+inf``: a partition that gets
no traffic cannot hold the others back for longer. While a backlog is read,
partitions reach their end once, at the end, so the order is exact (the
backtest says ``+inf`` at the end of its file); on a live stream, a record
that arrives in an idle partition later is judged in arrival order, and the
engine's allowed lateness covers it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiokafka.partitioner import murmur2

from detectors.events import BY_AUTHORITY, Inspection, Payment
from streams.codec import InvalidEvent

#: Version of the envelope format: the first element of every envelope.
ENVELOPE_VERSION = 2

#: Kafka header naming the format of an internal record, and its value (a label
#: for people and tools; the reader goes by the version inside the value).
FORMAT_HEADER = "kuzet.format"
ENVELOPE_FORMAT = b"kuzet.regroup.v2+msgpack"
ENVELOPE_HEADERS = [(FORMAT_HEADER, ENVELOPE_FORMAT)]

#: An envelope holds as many halves as fit in this many bytes (a single larger
#: half goes alone); far under the broker's 1 MiB message limit, and still
#: ~1,400 typical payments, more than a batch brings.
ENVELOPE_MAX_BYTES = 256 * 1024

Side = Literal["in", "out", "both"]

#: Frontiers (see the module docstring): wait for this upstream's next half, or not at all.
WAIT = float("-inf")
DONE = float("inf")
#: Wall time an upstream partition stays at its end before it stops holding the
#: merge back (Kafka Streams' max.task.idle.ms plays this part there).
IDLE_SECONDS = 5.0


#: murmur2 is pure Python in aiokafka (~3 µs a key); accounts recur, so their hashes
#: are remembered, up to this many keys (~100 B each), then forgotten all at once.
HASH_CACHE_KEYS = 1_000_000
_hashes: dict[bytes, int] = {}


def key_hash(key: bytes) -> int:
    """Kafka's murmur2 of ``key``, positive (as the default partitioner uses it)."""
    found = _hashes.get(key)
    if found is None:
        if len(_hashes) >= HASH_CACHE_KEYS:
            _hashes.clear()
        found = _hashes[key] = murmur2(key) & 0x7FFFFFFF
    return found


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partition of ``key`` among ``partitions`` (murmur2, as every client).

    >>> partition_for(b"ACC-1", 3), partition_for(b"ACC-2", 3), partition_for(b"ACC-1", 1)
    (0, 2, 0)
    """
    return key_hash(key) % partitions if partitions > 1 else 0


#: Where everything goes when there is one partition (shared, never mutated).
_ALL_IN_ONE: list[tuple[int, Side]] = [(0, "both")]


# --- what is regrouped, and how ----------------------------------------------------


def payment_halves(payment: Payment, partitions: int) -> list[tuple[int, Side]]:
    """Where a payment goes by account: (partition, side) of its payee's and payer's halves."""
    if partitions == 1:
        return _ALL_IN_ONE
    into = key_hash(payment.payee.encode()) % partitions
    out_of = key_hash(payment.payer.encode()) % partitions
    if into == out_of:
        return [(into, "both")]
    return [(into, "in"), (out_of, "out")]


def inspection_halves(inspection: Inspection, partitions: int) -> list[tuple[int, Side]]:
    """Where an inspection goes by authority: the whole event, to one partition."""
    if partitions == 1:
        return _ALL_IN_ONE
    return [(key_hash(inspection.authority.encode()) % partitions, "both")]


@dataclass(frozen=True)
class Regroup:
    """One regrouping: which stream, into which lane, by what."""

    name: str  #: also the internal topic's suffix: ``<app id>-<name>``
    stream: str  #: the stream regrouped
    lane: str  #: the engine lane fed from the internal topic
    route: Callable[[Any, int], list[tuple[int, Side]]]
    #: Does the downstream count each event's outcome (the upstream does not)?
    counts: bool


BY_ACCOUNT = Regroup("payments-by-account", "payments", "payments", payment_halves, counts=True)
# Inspections are judged by business upstream (and counted there); the regrouped
# copy only feeds inspector_anomaly.
BY_AUTHORITY_REGROUP = Regroup(
    BY_AUTHORITY, "inspections", BY_AUTHORITY, inspection_halves, counts=False
)
REGROUPS: tuple[Regroup, ...] = (BY_ACCOUNT, BY_AUTHORITY_REGROUP)
#: The regrouping of each stream that has one.
REGROUP_OF: dict[str, Regroup] = {r.stream: r for r in REGROUPS}


# --- envelopes ---------------------------------------------------------------------

#: A half as an envelope carries it: side, upstream offset, event time, the event
#: (its original bytes on a topic; the decoded event when the backtest hands it over).
Half = tuple[Side, int, float, Any]


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    """What one upstream batch sends one downstream partition (see the module docstring)."""

    version: Literal[2]
    upstream: int
    through: int
    frontier: float
    halves: list[tuple[Side, int, float, bytes]]


class _EnvelopeHead(msgspec.Struct, array_like=True):
    version: Any  # array_like: the elements after the first are not read


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)
_head = msgspec.msgpack.Decoder(_EnvelopeHead)


def encode_envelopes(
    upstream: int,
    through: int,
    frontier: float,
    halves: list[Half],
    limit: int = ENVELOPE_MAX_BYTES,
) -> list[bytes]:
    """The halves as one envelope, or several in order if one would pass ``limit`` bytes.

    Only the last of several carries ``through`` and ``frontier``; the earlier
    ones say how far they go themselves, and to wait.

    >>> [raw] = encode_envelopes(0, 7, WAIT, [("in", 7, 1.5, b'{"a":1}')])
    >>> decode_envelope(raw)
    Envelope(version=2, upstream=0, through=7, frontier=-inf, halves=[('in', 7, 1.5, b'{"a":1}')])
    """
    envelope = _encoder.encode((ENVELOPE_VERSION, upstream, through, frontier, halves))
    if len(envelope) <= limit or len(halves) < 2:
        return [envelope]
    middle = len(halves) // 2
    first = encode_envelopes(upstream, halves[middle - 1][1], WAIT, halves[:middle], limit)
    return first + encode_envelopes(upstream, through, frontier, halves[middle:], limit)


def decode_envelope(raw: bytes | None) -> Envelope:
    """One envelope; raise :class:`InvalidEvent` (``invalid_envelope``) if it is not one."""
    if not raw:
        raise InvalidEvent("invalid envelope: empty record", "invalid_envelope")
    try:
        envelope = _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        detail = f"not a v{ENVELOPE_VERSION} envelope: {exc}"
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        detail = f"not MessagePack ({type(exc).__name__})"
    else:
        # The merge orders by these: a NaN would scramble it (only a forged record has one).
        if not math.isnan(envelope.frontier) and all(
            math.isfinite(half[2]) for half in envelope.halves
        ):
            return envelope
        detail = "an event time that is not a number"
    try:
        version = _head.decode(raw).version
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        version = ENVELOPE_VERSION
    if version != ENVELOPE_VERSION:
        detail = f"version {repr(version)[:32]}; this worker reads {ENVELOPE_VERSION}"
    raise InvalidEvent(f"invalid envelope: {detail[:180]}", "invalid_envelope")


# --- the deterministic merge -------------------------------------------------------


class Merge:
    """One downstream partition's halves from every upstream partition, in one order.

    :meth:`add` takes an envelope's contents; :meth:`release` returns the
    halves that can be judged now, in the order defined in the module
    docstring. Everything here pickles: it is part of the partition's state.

    >>> m = Merge(2)
    >>> m.add(0, 5, WAIT, [("in", 4, 20.0, "a"), ("in", 5, 10.0, "b")])
    >>> m.release()  # upstream 1 has said nothing yet
    []
    >>> m.add(1, 9, 12.0, [("out", 9, 15.0, "c")])  # then: read to its end, newest at 12
    >>> [half[3] for _, half in m.release()]  # heads a (20) and c (15); then a waits: 20 > 12
    ['c']
    >>> m.add(1, 9, DONE, [])  # idle: wait for it no more
    >>> [half[3] for _, half in m.release()]
    ['a', 'b']
    """

    def __init__(self, upstreams: int) -> None:
        self.upstreams = upstreams
        self.queues: list[deque[Half]] = [deque() for _ in range(upstreams)]
        #: Highest upstream offset received from each upstream partition.
        self.through = [-1] * upstreams
        #: How far the others may go while an upstream's queue is empty (module docstring).
        self.frontier = [WAIT] * upstreams
        self.skipped = 0  # halves received twice (the upstream was re-read), not queued again

    def add(self, upstream: int, through: int, frontier: float, halves: Iterable[Half]) -> None:
        if not 0 <= upstream < self.upstreams:
            raise InvalidEvent(
                f"invalid envelope: upstream partition {upstream} of {self.upstreams}",
                "invalid_envelope",
            )
        seen = self.through[upstream]
        queue = self.queues[upstream]
        last = seen
        for half in halves:
            if half[1] > last:
                queue.append(half)
                last = half[1]
            else:
                self.skipped += 1
        if through >= seen:  # an envelope re-sent from before says nothing new about the end
            self.frontier[upstream] = frontier
        self.through[upstream] = max(last, through, seen)

    def release(self) -> list[tuple[int, Half]]:
        """(upstream, half) pairs that can be judged now, in the merge's order."""
        released: list[tuple[int, Half]] = []
        queues, frontier = self.queues, self.frontier
        while True:
            best = -1
            best_ts = 0.0
            bound = DONE  # the lowest frontier of the upstreams with nothing queued
            holder = 0  # the lowest of those upstreams with that frontier
            for upstream, queue in enumerate(queues):
                if queue:
                    ts = queue[0][2]
                    if best < 0 or ts < best_ts:
                        best, best_ts = upstream, ts
                elif frontier[upstream] < bound:
                    bound, holder = frontier[upstream], upstream
            # A half at the bound itself goes only ahead of a higher upstream (ties go to
            # the lower): a lower one's next half may come at the bound, and go first.
            if best < 0 or best_ts > bound or (best_ts == bound and holder < best):
                return released  # an upstream's next half may come first: wait for it
            released.append((best, queues[best].popleft()))

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues)
