"""Raw records in, alerts and dead letters out: the step both paths share.

The live agents and ``kuzet backtest`` hand raw message bytes to
:meth:`Processor.handle_one`; it decodes them (:mod:`streams.codec`), feeds
the engine, and sorts the results into a :class:`BatchOutput`. Nothing here
touches Kafka or metrics, so both paths run exactly the same code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from detectors.engine import DUPLICATE, LATE, Engine
from detectors.events import Activity, Alert
from streams.codec import InvalidEvent, decode_event

#: Outcome of a record that could not be decoded (beside the engine's outcomes).
INVALID = "invalid"


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

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of the dead letter (contract: source topic, partition, offset, reason)."""
        return [
            ("kuzet.source.topic", self.source.topic.encode()),
            ("kuzet.source.partition", str(self.source.partition).encode()),
            ("kuzet.source.offset", str(self.source.offset).encode()),
            ("kuzet.reason", self.reason.encode()),
        ]


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
            behind = (self.engine.watermark(stream, source.partition) - event.ts.timestamp()) / 3600
            lateness = self.engine.allowed_lateness / 3600
            reason = (
                f"late: event time is {behind + lateness:.1f} h behind the newest {stream} "
                f"event of its partition (allowed lateness {lateness:g} h)"
            )
            out.dead_letters.append(DeadLetter(stream, value, key, reason, "late", source))
            return None
        if result.failures:
            reason = "; ".join(failure.reason for failure in result.failures)[:200]
            out.dead_letters.append(
                DeadLetter(stream, value, key, reason, "detector_failed", source)
            )
        return event
