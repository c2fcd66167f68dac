"""Raw records in, alerts and dead letters out: the step both paths share.

The live worker (:mod:`streams.worker`) and ``kuzet backtest`` hand raw
message bytes of one input partition to :meth:`Processor.upstream`; it decodes
them (:mod:`streams.codec`), feeds that partition's state in the engine, and
sorts the results into a :class:`BatchOutput`. A regrouped stream (payments by
account, inspections by authority: :mod:`streams.regroup`) comes back as
shipments for the regrouped partitions, which :meth:`Processor.downstream`
merges in one order and judges. Nothing here touches Kafka or metrics, so
both paths run exactly the same code.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from detectors.engine import CONFLICT, DUPLICATE, LATE, Engine, Partition
from detectors.events import KEY_FIELDS, Activity, Alert
from streams.codec import InvalidEvent, decode_event
from streams.regroup import (
    REGROUP_OF,
    WAIT,
    Half,
    Merge,
    Regroup,
    decode_envelope,
    partition_for,
)

__all__ = [
    "INVALID",
    "BatchOutput",
    "DeadLetter",
    "Processor",
    "Shipment",
    "Source",
    "partition_for",
]

#: Outcome of a record that could not be decoded (beside the engine's outcomes).
INVALID = "invalid"

#: A dead letter longer than this is sent as its first bytes (with its length and hash):
#: under the 1 MiB a default topic holds, with room for the headers.
DEAD_LETTER_MAX_BYTES = 900 * 1024
#: How much of a record too long for the dead-letter topic is kept.
DEAD_LETTER_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from: a Kafka position, or a file and line."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class DeadLetter:
    """A record that reached no detector, with the reason why."""

    stream: str
    raw: bytes | None
    key: bytes | None
    reason: str
    category: str
    #: Where it came from; for a regrouped event, its position in its input topic.
    source: Source

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of the dead letter (contract: source topic, partition, offset, reason)."""
        return [
            ("kuzet.source.topic", self.source.topic.encode()),
            ("kuzet.source.partition", str(self.source.partition).encode()),
            ("kuzet.source.offset", str(self.source.offset).encode()),
            ("kuzet.reason", self.reason.encode()),
        ]

    def kafka_record(
        self, limit: int = DEAD_LETTER_MAX_BYTES
    ) -> tuple[bytes | None, list[tuple[str, bytes]]]:
        """(value, headers) to send: the original bytes, or, past ``limit``, their start.

        A dead letter the dead-letter topic cannot hold would fail its send and
        stop the worker on the same record again and again. So a record longer
        than ``limit`` keeps its first :data:`DEAD_LETTER_HEAD_BYTES` bytes, and
        says so: ``kuzet.truncated``, ``kuzet.original.length`` and
        ``kuzet.original.sha256`` (of the whole record) join the headers.

        >>> letter = DeadLetter("payments", b"x" * 2_000_000, None, "too long", "not_json",
        ...     Source("payments", 0, 7))
        >>> value, headers = letter.kafka_record()
        >>> len(value), dict(headers)["kuzet.original.length"], dict(headers)["kuzet.truncated"]
        (65536, b'2000000', b'true')
        """
        headers = self.headers()
        raw = self.raw
        if raw is None or len(raw) <= limit:
            return raw, headers
        headers += [
            ("kuzet.truncated", b"true"),
            ("kuzet.original.length", str(len(raw)).encode()),
            ("kuzet.original.sha256", hashlib.sha256(raw).hexdigest().encode()),
        ]
        return raw[:DEAD_LETTER_HEAD_BYTES], headers


#: A record as the worker and the backtest hand it over: (value, key, source).
Record = tuple[bytes | None, bytes | None, Source]


@dataclass(slots=True)
class BatchOutput:
    """What a batch of records produced."""

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Event times of the accepted events (for the event-time lag metric).
    event_times: list[datetime] = field(default_factory=list)


class Shipment(NamedTuple):
    """What one upstream batch sends one downstream partition of a regrouping."""

    partition: int
    upstream: int
    through: int
    frontier: float
    halves: list[Half]


#: Why an event that reuses another's id is set aside (the first one stays).
CONFLICT_REASON = "id_conflict: this event_id was seen before with other content; the first is kept"


class Clock:
    """An input partition's event time, as far as ``future_ts`` is concerned.

    An event is too far ahead when it lies more than the stream's skew ahead of
    both the newest event admitted on the partition and the median of the last
    :attr:`RECENT` events the partition saw (admitted or not). The first keeps
    one event dated 2099 (or a producer whose clock is a month fast) from moving
    the clock; the second lets a real jump through (a file holding two periods
    years apart, a partition quiet for longer than the skew): once most recent
    events agree on the new time, it is the time. Both are event time alone, so
    the backtest and the live worker decide alike, and the clock is saved with
    the partition's state.

    >>> clock = Clock()
    >>> for t in range(5):
    ...     _ = clock.ahead(float(t), 10.0), clock.admit(float(t), 10.0)
    >>> clock.ahead(1_000.0, 10.0)  # one event far ahead: refused
    996.0
    >>> [clock.ahead(1_000.0 + t, 10.0) > 0 for t in range(1, 6)]  # more agree: let through
    [True, True, True, True, False]
    """

    #: Events whose median time may move the clock past a gap (half of them, plus one).
    RECENT = 16
    __slots__ = ("newest", "recent")

    def __init__(self) -> None:
        self.newest = WAIT
        self.recent: deque[float] = deque(maxlen=self.RECENT)

    def ahead(self, ts: float, skew: float) -> float:
        """Seconds ``ts`` lies beyond the skew's allowance (0.0: admissible); it counts as seen."""
        self.recent.append(ts)
        if ts - self.newest <= skew or self.newest == WAIT:
            return 0.0
        median = sorted(self.recent)[(len(self.recent) - 1) // 2]  # the lower one
        return 0.0 if ts - median <= skew else ts - self.newest

    def admit(self, ts: float, skew: float) -> bool:
        """Move the clock to ``ts``; True if that jumped by over a quarter of the skew."""
        if ts <= self.newest:
            return False
        jumped = self.newest != WAIT and ts - self.newest > skew / 4
        self.newest = ts
        return jumped


class Processor:
    """Decodes records and runs them through the engine, one partition at a time.

    Every input partition's records are judged by that partition's state
    (:class:`detectors.engine.Partition`). A stream that is regrouped
    (:mod:`streams.regroup`) is judged in two steps: :meth:`upstream` on its own
    partition (payments are only validated there; inspections are also judged
    by business) returns the shipments for the regrouped partitions, and
    :meth:`downstream` on each regrouped partition merges them in one order
    (:class:`~streams.regroup.Merge`) and judges them. The live worker carries
    shipments over an internal topic; ``kuzet backtest`` hands them over in
    memory, decoded.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        now: Callable[[], float] | None = None,
        clock_skew: float = 3600.0,
    ) -> None:
        self.engine = engine
        #: The wall clock (the live worker: ``time.time``), or None (the backtest and
        #: tests: event time alone decides). An event further than ``clock_skew``
        #: seconds ahead of it is ``future_ts``.
        self.now = now
        self.clock_skew = clock_skew
        #: Each input partition's clock: the newest event time admitted on it, by
        #: (stream, partition). An event further ahead of it than the engine's
        #: ``future_skew`` for the stream is ``future_ts``, and moves nothing.
        self.clocks: dict[tuple[str, int], Clock] = {}
        #: Admitted events that moved their partition's clock by over a quarter of the
        #: skew at once, by stream: worth a look (a metric and an alert rule).
        self.jumps: Counter[str] = Counter()
        #: The merge of each (lane, partition) of a regrouped lane.
        self.merges: dict[tuple[str, int], Merge] = {}
        #: When a list: (stream, partition, event) of every event the detectors
        #: accepted, counted once (the backtest counts them and runs baselines on them).
        self.accepted: list[tuple[str, int, Any]] | None = None

    # -- upstream: the input partitions --------------------------------------------

    def upstream(
        self,
        stream: str,
        partition: int,
        records: list[Record],
        downstream: int = 0,
        *,
        frontier: float = WAIT,
        through: int | None = None,
        decoded: bool = False,
        out: BatchOutput | None = None,
    ) -> tuple[BatchOutput, list[Shipment]]:
        """Judge a batch of one input partition; return what it produced and its shipments.

        ``downstream`` is the number of partitions of the stream's regrouping
        (ignored for a stream that has none). Every downstream partition gets a
        shipment, empty if no half is for it, saying the upstream partition has
        been read ``through`` its last record (or ``through``, for an empty
        batch), and its ``frontier`` (:mod:`streams.regroup`). ``decoded``: hand the
        decoded events over rather than their bytes (the backtest, in memory).
        ``out``: add to this output rather than a new one.
        """
        if out is None:
            out = BatchOutput()
        regroup = REGROUP_OF.get(stream)
        if regroup is not None and downstream < 1:
            raise ValueError(f"{stream} is regrouped: say into how many partitions (downstream)")
        if regroup is None:
            for value, key, source in records:
                self._judge(stream, stream, partition, value, key, source, out)
            return out, []
        route = regroup.route
        boxes: list[list[Half]] = [[] for _ in range(downstream)]
        judged_here = regroup.counts is False  # inspections: judged by business too
        for value, key, source in records:
            if judged_here:
                event = self._judge(stream, stream, partition, value, key, source, out)
            else:
                event = self._decode(stream, partition, value, key, source, out)
            if event is None:
                continue
            payload = event if decoded else value
            ts = event.ts.timestamp()
            for into, side in route(event, downstream):
                boxes[into].append((side, source.offset, ts, payload))
        if through is None:
            through = records[-1][2].offset if records else -1
        return out, [
            Shipment(q, partition, through, frontier, halves) for q, halves in enumerate(boxes)
        ]

    # -- downstream: the regrouped partitions --------------------------------------

    def downstream(
        self,
        regroup: Regroup,
        partition: int,
        upstreams: int,
        shipment_upstream: int,
        through: int,
        frontier: float,
        halves: list[Half],
        topic: str,
        out: BatchOutput | None = None,
    ) -> BatchOutput:
        """Take one shipment into a regrouped partition; judge what the merge releases.

        ``upstreams`` is the number of partitions of the regrouped stream;
        ``topic`` names it in dead letters, whose source is the half's
        upstream position. ``out``: add to this output rather than a new one.
        """
        if out is None:
            out = BatchOutput()
        lane = regroup.lane
        merge = self.merges.get((lane, partition))
        if merge is None:
            merge = self.merges[lane, partition] = Merge(upstreams)
        merge.add(shipment_upstream, through, frontier, halves)
        state = self.engine.partition(lane, partition)
        judge = self._judge_half
        for upstream, (side, offset, _, payload) in merge.release():
            judge(regroup, partition, state, side, payload, Source(topic, upstream, offset), out)
        return out

    def whole(
        self, stream: str, value: bytes | None, key: bytes | None, source: Source, out: BatchOutput
    ) -> None:
        """Judge one record when every lane has one partition (``kuzet backtest`` by default).

        With one upstream partition a merge releases each half the moment it
        arrives, in arrival order, so the record is judged by its stream's
        lane and handed straight to its regrouped lane: the same outcome as
        :meth:`upstream` then :meth:`downstream`, without the shipping.
        """
        regroup = REGROUP_OF.get(stream)
        if regroup is None or not regroup.counts:
            event = self._judge(stream, stream, 0, value, key, source, out)
        else:
            event = self._decode(stream, 0, value, key, source, out)
        if event is not None and regroup is not None:
            state = self.engine.partition(regroup.lane, 0)
            self._judge_half(regroup, 0, state, "both", event, source, out)

    def _judge_half(
        self,
        regroup: Regroup,
        partition: int,
        state: Partition,
        side: str,
        payload: Any,
        source: Source,
        out: BatchOutput,
    ) -> None:
        """Judge one half a regrouped partition's merge released (bytes, or decoded)."""
        stream, lane = regroup.stream, regroup.lane
        counted = regroup.counts and side != "out"
        if isinstance(payload, bytes):
            try:
                event = decode_event(stream, payload)
            except InvalidEvent as exc:  # validated upstream: only a forged record
                if counted:
                    out.outcomes[INVALID] += 1
                out.dead_letters.append(
                    DeadLetter(stream, payload, None, exc.reason, exc.category, source)
                )
                return
            raw = payload
        else:
            event, raw = payload, None
        seen = Activity(event, side) if stream == "payments" else event
        result = state.process(seen, self.engine.allowed_lateness)
        outcome = result.outcome
        if counted:
            out.outcomes[outcome] += 1
        if result.alerts:
            out.alerts.extend(result.alerts)
        if outcome is DUPLICATE:
            return
        if outcome is CONFLICT:
            out.dead_letters.append(
                _letter(stream, raw, event, side, CONFLICT_REASON, "id_conflict", source)
            )
            return
        if outcome is LATE:
            reason = self._late_reason(lane, event, partition)
            out.dead_letters.append(_letter(stream, raw, event, side, reason, "late", source))
            return
        if result.failures:
            reason = "; ".join(failure.reason for failure in result.failures)[:200]
            out.dead_letters.append(
                _letter(stream, raw, event, side, reason, "detector_failed", source)
            )
        if counted:
            out.event_times.append(event.ts)
            if self.accepted is not None:
                self.accepted.append((stream, partition, event))

    def downstream_record(
        self,
        regroup: Regroup,
        partition: int,
        upstreams: int,
        record: Record,
        topic: str,
        out: BatchOutput | None = None,
    ) -> BatchOutput:
        """One record of an internal topic: decode the envelope, then :meth:`downstream`.

        A record that is no envelope, or names an upstream partition that does
        not exist, is dead-lettered whole. ``out``: add to this output.
        """
        if out is None:
            out = BatchOutput()
        value, key, source = record
        try:
            envelope = decode_envelope(value)
            # Merge.add checks the upstream before it queues anything: nothing half-taken.
            return self.downstream(
                regroup,
                partition,
                upstreams,
                envelope.upstream,
                envelope.through,
                envelope.frontier,
                envelope.halves,
                topic,
                out,
            )
        except InvalidEvent as exc:
            if regroup.counts:  # a copy that counts nothing (by authority) counts this neither
                out.outcomes[INVALID] += 1
            out.dead_letters.append(
                DeadLetter(regroup.stream, value, key, exc.reason, exc.category, source)
            )
            return out

    # -- one record ----------------------------------------------------------------

    def _decode(
        self,
        stream: str,
        partition: int,
        value: bytes | None,
        key: bytes | None,
        source: Source,
        out: BatchOutput,
    ) -> Any:
        """Decode and admit one input record; the event, or None once dead-lettered."""
        try:
            event = decode_event(stream, value)
            self._admit(stream, partition, event, key)
            return event
        except InvalidEvent as exc:
            out.outcomes[INVALID] += 1
            out.dead_letters.append(
                DeadLetter(stream, value, key, exc.reason, exc.category, source)
            )
            return None

    def _admit(self, stream: str, partition: int, event: Any, key: bytes | None) -> None:
        """Raise :class:`InvalidEvent` unless the record's key names its entity and its
        event time is no further ahead than the skews; then move the partition's clock.

        The key decides which partition, so which state, judges an entity: a record
        keyed otherwise would be judged apart from the rest of its entity's events
        (``key_mismatch``). An event far ahead of its partition's time (or, live, of
        the wall clock) is a clock error upstream: fed, it would make every later
        real event late and fire every pending timer (``future_ts``).
        """
        field = KEY_FIELDS[stream]
        if key is None:
            raise InvalidEvent(
                f"key_mismatch: the record has no key; its key must be its {field}",
                "key_mismatch",
            )
        if key != getattr(event, field).encode():
            raise InvalidEvent(f"key_mismatch: the record's key is not its {field}", "key_mismatch")
        ts = event.ts.timestamp()
        clock = self.clocks.get((stream, partition))
        if clock is None:
            clock = self.clocks[stream, partition] = Clock()
        skew = self.engine.future_skew[stream]
        ahead = clock.ahead(ts, skew)
        if ahead:
            raise InvalidEvent(
                f"future_ts: event time is {ahead / 3600:.1f} h ahead of the newest {stream} "
                f"event of its partition (at most {skew / 3600:g} h)",
                "future_ts",
            )
        if self.now is not None:
            wall = self.now()
            if ts - wall > self.clock_skew:
                raise InvalidEvent(
                    f"future_ts: event time is {(ts - wall) / 3600:.1f} h ahead of the worker's "
                    f"clock (at most {self.clock_skew / 3600:g} h)",
                    "future_ts",
                )
        if clock.admit(ts, skew):
            self.jumps[stream] += 1

    def _judge(
        self,
        stream: str,
        lane: str,
        partition: int,
        value: bytes | None,
        key: bytes | None,
        source: Source,
        out: BatchOutput,
    ) -> Any:
        """Decode and judge one record; the event if the engine accepted it, else None."""
        event = self._decode(stream, partition, value, key, source, out)
        if event is None:
            return None
        result = self.engine.process(lane, event, partition)
        outcome = result.outcome
        out.outcomes[outcome] += 1
        if result.alerts:
            out.alerts.extend(result.alerts)
        if outcome is DUPLICATE:
            return None
        if outcome is CONFLICT:
            out.dead_letters.append(
                DeadLetter(stream, value, key, CONFLICT_REASON, "id_conflict", source)
            )
            return None
        if outcome is LATE:
            reason = self._late_reason(lane, event, partition)
            out.dead_letters.append(DeadLetter(stream, value, key, reason, "late", source))
            return None
        if result.failures:
            reason = "; ".join(failure.reason for failure in result.failures)[:200]
            out.dead_letters.append(
                DeadLetter(stream, value, key, reason, "detector_failed", source)
            )
        out.event_times.append(event.ts)
        if self.accepted is not None:
            self.accepted.append((stream, partition, event))
        return event

    def _late_reason(self, lane: str, event: Any, partition: int) -> str:
        behind = (self.engine.watermark(lane, partition) - event.ts.timestamp()) / 3600
        lateness = self.engine.allowed_lateness / 3600
        return (
            f"late: event time is {behind + lateness:.1f} h behind the newest {lane} "
            f"event of its partition (allowed lateness {lateness:g} h)"
        )


def _letter(
    stream: str,
    raw: bytes | None,
    event: Any,
    side: str,
    reason: str,
    category: str,
    source: Source,
) -> DeadLetter:
    """A regrouped half's dead letter, keyed as its stream is (by payer for payments)."""
    if raw is None:  # handed over decoded (the backtest): its bytes are not kept
        raw = msgspec.json.encode(event)
    key = getattr(event, KEY_FIELDS[stream])
    return DeadLetter(stream, raw, key.encode(), reason, category, source)
