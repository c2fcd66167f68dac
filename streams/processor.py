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
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from detectors.engine import DUPLICATE, LATE, Engine, Partition
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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
                event = self._decode(stream, value, key, source, out)
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
            event = self._decode(stream, value, key, source, out)
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
        self, stream: str, value: bytes | None, key: bytes | None, source: Source, out: BatchOutput
    ) -> Any:
        try:
            return decode_event(stream, value)
        except InvalidEvent as exc:
            out.outcomes[INVALID] += 1
            out.dead_letters.append(
                DeadLetter(stream, value, key, exc.reason, exc.category, source)
            )
            return None

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
        event = self._decode(stream, value, key, source, out)
        if event is None:
            return None
        result = self.engine.process(lane, event, partition)
        outcome = result.outcome
        out.outcomes[outcome] += 1
        if result.alerts:
            out.alerts.extend(result.alerts)
        if outcome is DUPLICATE:
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
