"""Raw records in, alerts and dead letters out: the step both paths share.

The live agents and ``kuzet backtest`` hand raw message bytes to
:meth:`Processor.handle_one`; it decodes them (:mod:`streams.codec`), feeds
the engine, and sorts the results into a :class:`BatchOutput`. Nothing here
touches Kafka or metrics, so both paths run exactly the same code.

Payments take one step more live (:mod:`streams.repartition`): the payments
agent only validates them and routes each to the accounts on its sides
(:meth:`Processor.route_payments`); a second agent reads them back by account
and runs the engine on them (:meth:`Processor.handle_activities`). Offline,
where one process sees every payment, :meth:`Processor.handle_one` hands the
engine one :class:`~detectors.events.Activity` with both sides at once.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple

from aiokafka.partitioner import murmur2

from detectors.engine import DUPLICATE, LATE, Engine
from detectors.events import Activity, Alert, Payment
from streams.codec import Half, InvalidEvent, decode_envelope, decode_event, encode_envelopes

#: Outcome of a record that could not be decoded (beside the engine's outcomes).
INVALID = "invalid"


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partition of ``key`` among ``partitions`` (murmur2, as every client).

    >>> partition_for(b"ACC-1", 3), partition_for(b"ACC-2", 3), partition_for(b"ACC-1", 1)
    (0, 2, 0)
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


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
    source: Source
    #: For a payment read back from an envelope of the by-account topic: its
    #: place in the envelope (0, 1, ...) at ``source``; else None.
    half: int | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of the dead letter (contract: source topic, partition, offset, reason).

        A half of an envelope also names its place in it: ``kuzet.source.half``.
        """
        headers = [
            ("kuzet.source.topic", self.source.topic.encode()),
            ("kuzet.source.partition", str(self.source.partition).encode()),
            ("kuzet.source.offset", str(self.source.offset).encode()),
            ("kuzet.reason", self.reason.encode()),
        ]
        if self.half is not None:
            headers.append(("kuzet.source.half", str(self.half).encode()))
        return headers


#: A record as the agents hand it over: (value, key, source).
Record = tuple[bytes | None, bytes | None, Source]


class Forward(NamedTuple):
    """A record for the by-account topic: an envelope of payment halves for one partition."""

    partition: int
    value: bytes


@dataclass(slots=True)
class BatchOutput:
    """What a batch of records produced."""

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Event times of the accepted events (filled by :meth:`Processor.handle`, for
    #: the event-time lag metric; the backtest's per-record path leaves it empty).
    event_times: list[datetime] = field(default_factory=list)


class Processor:
    """Decodes records and runs them through the engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def handle(
        self, stream: str, records: list[tuple[bytes | None, bytes | None, Source]]
    ) -> BatchOutput:
        """Process a batch of ``(value, key, source)`` records of one stream."""
        out = BatchOutput()
        times = out.event_times
        for value, key, source in records:
            event = self.handle_one(stream, value, key, source, out)
            if event is not None:
                times.append(event.ts)
        return out

    def handle_one(
        self,
        stream: str,
        value: bytes | None,
        key: bytes | None,
        source: Source,
        out: BatchOutput,
    ) -> Any:
        """Process one record, adding its alerts, dead letters and outcome to ``out``.

        Returns the decoded event if the engine accepted it (not invalid,
        duplicate or late), else None, so a caller can count it or hand the
        same event to a second engine without decoding it again.
        """
        try:
            event = decode_event(stream, value)
        except InvalidEvent as exc:
            out.outcomes[INVALID] += 1
            out.dead_letters.append(
                DeadLetter(stream, value, key, exc.reason, exc.category, source)
            )
            return None
        # Payments detectors read both sides of a payment (detectors.events.Activity).
        seen = Activity(event) if stream == "payments" else event
        result = self.engine.process(stream, seen, source.partition)
        outcome = result.outcome
        out.outcomes[outcome] += 1
        if result.alerts:
            out.alerts.extend(result.alerts)
        if outcome is DUPLICATE:
            return None
        if outcome is LATE:
            reason = self._late_reason(stream, event, source)
            out.dead_letters.append(DeadLetter(stream, value, key, reason, "late", source))
            return None
        if result.failures:
            reason = "; ".join(failure.reason for failure in result.failures)[:200]
            out.dead_letters.append(
                DeadLetter(stream, value, key, reason, "detector_failed", source)
            )
        return event

    # -- payments, live: repartitioned by account ----------------------------------

    def route_payments(
        self, records: list[Record], partitions: int
    ) -> tuple[list[Forward], BatchOutput]:
        """Validate payments and route each to the partitions of its payee and payer.

        Returns the records to forward to the by-account topic (``partitions``
        partitions) and what else the batch produced: invalid records, counted
        and dead-lettered exactly as :meth:`handle` does. Valid payments are
        counted later, by :meth:`handle_activities`, once each.

        A payment goes to its payee's partition as its ``in`` half and to its
        payer's as its ``out`` half, or once as ``both`` when the two accounts
        share a partition (:func:`partition_for`). The halves bound for one
        partition travel together, in order, as one envelope (or a few, if
        large; :func:`streams.codec.encode_envelopes`): one record per partition
        and batch instead of one per half (why: :mod:`streams.repartition`).

        The halves of a batch that holds several input partitions are merged
        by event time, each partition's own order kept (late events stay where
        they arrived). An account's payments come from every input partition,
        and a catching-up consumer reads those partitions side by side: merged,
        the account sees its money come in before it goes out, as it happened.
        """
        out = BatchOutput()
        lanes: dict[int, list[tuple[float, bytes, bytes, bytes]]] = {}
        for value, key, source in records:
            try:
                payment = decode_event("payments", value)
            except InvalidEvent as exc:
                out.outcomes[INVALID] += 1
                out.dead_letters.append(
                    DeadLetter("payments", value, key, exc.reason, exc.category, source)
                )
                continue
            assert value is not None  # decode_event refuses an empty message
            lane = lanes.get(source.partition)
            if lane is None:
                lane = lanes[source.partition] = []
            lane.append(
                (payment.ts.timestamp(), payment.payee.encode(), payment.payer.encode(), value)
            )
        if len(lanes) > 1:
            ordered: Iterable[tuple[float, bytes, bytes, bytes]] = heapq.merge(
                *lanes.values(), key=itemgetter(0)
            )
        else:
            ordered = next(iter(lanes.values()), ())
        envelopes: list[list[Half]] = [[] for _ in range(partitions)]
        for _, payee, payer, value in ordered:
            into = (murmur2(payee) & 0x7FFFFFFF) % partitions  # partition_for, inlined
            out_of = (murmur2(payer) & 0x7FFFFFFF) % partitions
            if into == out_of:
                envelopes[into].append(("both", value))
            else:
                envelopes[into].append(("in", value))
                envelopes[out_of].append(("out", value))
        forwards = [
            Forward(partition, envelope)
            for partition, halves in enumerate(envelopes)
            if halves
            for envelope in encode_envelopes(halves)
        ]
        return forwards, out

    def handle_activities(self, records: list[Record]) -> BatchOutput:
        """Run the engine on payments read back by account: envelopes of halves.

        Each record is an envelope (:func:`streams.codec.decode_envelope`); its
        halves are judged in order, with the envelope's position as their
        source. Each payment is counted once, by the half that carries its
        incoming side (``in`` or ``both``); the ``out`` half adds its alerts
        and dead letters but no count. Dead letters of a half carry its own
        bytes and its place in the envelope (:attr:`DeadLetter.half`).

        An envelope that does not decode (no worker writes one) is
        dead-lettered whole, counted once as ``invalid``; so is a half whose
        payment does not decode (it was validated before it was forwarded),
        counted on its incoming side.
        """
        out = BatchOutput()
        outcomes = out.outcomes
        times = out.event_times
        engine = self.engine
        for envelope, key, source in records:
            try:
                halves = decode_envelope(envelope)
            except InvalidEvent as exc:
                outcomes[INVALID] += 1
                out.dead_letters.append(
                    DeadLetter("payments", envelope, key, exc.reason, exc.category, source)
                )
                continue
            for half, (side, value) in enumerate(halves):
                counted = side != "out"
                try:
                    payment = decode_event("payments", value)
                except InvalidEvent as exc:
                    if counted:
                        outcomes[INVALID] += 1
                    out.dead_letters.append(
                        DeadLetter("payments", value, None, exc.reason, exc.category, source, half)
                    )
                    continue
                result = engine.process("payments", Activity(payment, side), source.partition)
                outcome = result.outcome
                if counted:
                    outcomes[outcome] += 1
                if result.alerts:
                    out.alerts.extend(result.alerts)
                if outcome is DUPLICATE:
                    continue
                if outcome is LATE:
                    reason = self._late_reason("payments", payment, source)
                    out.dead_letters.append(
                        _half_letter(value, payment, side, reason, "late", source, half)
                    )
                    continue
                if result.failures:
                    reason = "; ".join(failure.reason for failure in result.failures)[:200]
                    out.dead_letters.append(
                        _half_letter(value, payment, side, reason, "detector_failed", source, half)
                    )
                if counted:
                    times.append(payment.ts)
        return out

    def _late_reason(self, stream: str, event: Any, source: Source) -> str:
        behind = (self.engine.watermark(stream, source.partition) - event.ts.timestamp()) / 3600
        lateness = self.engine.allowed_lateness / 3600
        return (
            f"late: event time is {behind + lateness:.1f} h behind the newest {stream} "
            f"event of its partition (allowed lateness {lateness:g} h)"
        )


def _half_letter(
    value: bytes, payment: Payment, side: str, reason: str, category: str, source: Source, half: int
) -> DeadLetter:
    """A half's dead letter, keyed by the account whose side it is."""
    account = payment.payer if side == "out" else payment.payee
    return DeadLetter("payments", value, account.encode(), reason, category, source, half)
