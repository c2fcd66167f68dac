"""``kuzet replay``: publish a historical stream file into the input topics, paced by event time.

Each line of the file (contract "Files") becomes one Kafka record on the input
topic of its stream (names from :class:`~streams.settings.Settings`, so
``KUZET_TOPIC_PREFIX`` applies), keyed by the line's ``key`` or, when that is
missing, by the event's partitioning field (``payer``, ``employer``,
``business``). The value is published as the original bytes of the line's
``value``, unchanged: an invalid event still reaches the worker, which
dead-letters it exactly as it would a live one.

Pacing: ``--speed 3600`` plays one hour of event time per wall-clock second,
``--speed max`` (the default: replay is mostly used to load history) as fast
as the broker takes it. Event time is read leniently, only for pacing: the
clock is the newest ``ts`` seen so far, so an out-of-order record goes out at
once and a record without a readable ``ts`` goes out at once without moving
the clock. The worker, not the replay, judges what is late or invalid.

Delivery is checked: every record is acknowledged by Kafka (``acks=all``,
idempotent producer) or counted as failed with its reason. Sends are awaited
in windows, never one by one, so requests fill up during the linger.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from detectors.events import KEY_FIELDS
from streams.codec import InvalidEvent, decode_file_line
from streams.offsets import (
    HistoryError,
    client_kwargs,
    input_partitions,
    input_topics,
    kafka_failed,
    run_until_stopped,
)
from streams.progress import Progress
from streams.settings import Settings

logger = logging.getLogger(__name__)

#: ``--speed`` default: as fast as possible (loading history is the usual use).
DEFAULT_SPEED = "max"
#: Producer linger: replay is not latency-bound; 20 ms lets a request carry thousands of records.
LINGER_MS = 20
#: Per-partition batch size: 16 KiB (aiokafka's default) caps a request at ~60 records.
MAX_BATCH_BYTES = 512 * 1024
#: Send futures awaited together: large enough to keep many batches in flight.
ACK_WINDOW = 10_000
#: Sleeps shorter than this are skipped (the event loop cannot time them better anyway).
MIN_SLEEP = 0.002
#: Before a sleep longer than this, wait for what was sent, so counts stay current.
SETTLE_BEFORE_SLEEP = 0.5
#: How many skipped lines and failed records the summary quotes.
SHOWN_EXAMPLES = 10


def parse_speed(text: str) -> float | None:
    """``--speed``: event seconds per wall second, or ``max`` (returned as ``None``).

    >>> parse_speed("3600"), parse_speed("max")
    (3600.0, None)
    """
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not (speed > 0 and math.isfinite(speed)):
        raise HistoryError(
            f"--speed {text!r}: give event seconds per wall second (3600 = an hour a second) "
            "or 'max'"
        )
    return speed


class Pacer:
    """When each record is due, in wall seconds after the first, at ``speed``.

    The event clock is the newest event time seen; it never goes back, and a
    record without an event time (``None``) does not move it.

    >>> pacer = Pacer(speed=3600)
    >>> [pacer.due(t) for t in (0.0, 3600.0, 1800.0, None, 7200.0)]
    [0.0, 1.0, 1.0, 1.0, 2.0]
    """

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._origin: float | None = None
        self._clock: float | None = None

    def due(self, event_time: float | None) -> float:
        if event_time is not None:
            if self._origin is None:
                self._origin = self._clock = event_time
            elif event_time > self._clock:  # type: ignore[operator]
                self._clock = event_time
        if self._origin is None:
            return 0.0
        return (self._clock - self._origin) / self.speed  # type: ignore[operator]


def schedule(event_times: Iterable[float | None], speed: float | None) -> list[float]:
    """The send schedule of a replay: each record's due time, wall seconds after the start.

    >>> schedule([100.0, 160.0, None, 130.0, 220.0], speed=60)
    [0.0, 1.0, 1.0, 1.0, 2.0]
    >>> schedule([100.0, 1e9], speed=None)
    [0.0, 0.0]
    """
    if speed is None:
        return [0.0 for _ in event_times]
    pacer = Pacer(speed)
    return [pacer.due(t) for t in event_times]


class _Peek(msgspec.Struct):
    """The few fields replay reads from an event: its time and its partitioning keys."""

    ts: Any = None
    payer: Any = None
    employer: Any = None
    business: Any = None


_peek = msgspec.json.Decoder(_Peek)


def _peek_event(raw: bytes) -> _Peek | None:
    try:
        return _peek.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None  # not an object (ValidationError is a DecodeError), or not JSON


def event_time(raw: bytes) -> float | None:
    """The event's ``ts`` as epoch seconds, read leniently (no offset: UTC), or ``None``.

    >>> event_time(b'{"ts": "2021-03-01T06:00:00+06:00"}')
    1614556800.0
    >>> event_time(b'{"ts": "yesterday"}') is None, event_time(b"[1]") is None
    (True, True)
    """
    peek = _peek_event(raw)
    if peek is None or not isinstance(peek.ts, str):
        return None
    try:
        when = datetime.fromisoformat(peek.ts)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def derive_key(stream: str, raw: bytes) -> str | None:
    """The event's partitioning field (contract: the Kafka key), or ``None`` if it has none.

    >>> derive_key("payments", b'{"payer": "ACC-1", "payee": "ACC-2"}')
    'ACC-1'
    >>> derive_key("payroll", b'{"payer": "ACC-1"}') is None
    True
    """
    peek = _peek_event(raw)
    value = getattr(peek, KEY_FIELDS[stream], None) if peek is not None else None
    return value if isinstance(value, str) else None


def parse_line(line: bytes) -> tuple[str, bytes | None, bytes]:
    """One file line as (stream, Kafka key bytes or ``None``, value bytes as in the file).

    Raises :class:`~streams.codec.InvalidEvent` for a line that is not a file
    record: not JSON, an unknown ``topic``, no ``value`` (missing or ``null``).

    >>> parse_line(b'{"topic": "payments", "value": {"payer": "A", "x": 1}}')
    ('payments', b'A', b'{"payer": "A", "x": 1}')
    """
    stream, key, raw = decode_file_line(line)
    if raw == b"null":
        raise InvalidEvent("missing field: value (it is null)", "missing_field")
    if key is None:
        key = derive_key(stream, raw)
    return stream, None if key is None else key.encode(), raw


@dataclass
class ReplaySummary:
    """What one replay did: published per stream, failures and skipped lines by reason."""

    lines: int = 0
    published: Counter[str] = field(default_factory=Counter)  # by stream
    failed: Counter[str] = field(default_factory=Counter)  # by error type
    failure_examples: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # by category
    skip_examples: list[str] = field(default_factory=list)
    without_key: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def skip(self, number: int, exc: InvalidEvent) -> None:
        self.skipped[exc.category] += 1
        if len(self.skip_examples) < SHOWN_EXAMPLES:
            self.skip_examples.append(f"line {number}: {exc.reason}")

    def fail(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.failed[name] += 1
        if len(self.failure_examples) < SHOWN_EXAMPLES:
            self.failure_examples.append(f"{name}: {exc}"[:200])

    @property
    def records_per_second(self) -> float:
        return self.published.total() / self.seconds if self.seconds > 0 else 0.0

    def render(self, topics: dict[str, str] | None = None) -> str:
        topics = topics or {}
        lines = [f"lines       {self.lines:>12,}"]
        lines.append(f"published   {self.published.total():>12,}")
        for stream, count in sorted(self.published.items()):
            lines.append(f"  {stream:<12} {count:>10,}  -> {topics.get(stream, stream)}")
        if self.without_key:
            lines.append(f"  without a key (event has no key field) {self.without_key:,}")
        lines.append(f"skipped     {self.skipped.total():>12,}")
        for category, count in sorted(self.skipped.items()):
            lines.append(f"  {category:<22} {count:>8,}")
        lines.extend(f"    {example}" for example in self.skip_examples)
        lines.append(f"failed      {self.failed.total():>12,}")
        for name, count in sorted(self.failed.items()):
            lines.append(f"  {name:<22} {count:>8,}")
        lines.extend(f"    {example}" for example in self.failure_examples)
        lines.append(
            f"time        {self.seconds:>12.2f} s  ({self.records_per_second:,.0f} records/s)"
        )
        if self.interrupted:
            lines.append("interrupted: the file was not replayed to its end")
        return "\n".join(lines)


def new_producer(settings: Settings) -> AIOKafkaProducer:
    """The replay's producer: idempotent, ``acks=all``, lingering to fill large batches."""
    return AIOKafkaProducer(
        acks="all",
        enable_idempotence=True,
        linger_ms=LINGER_MS,
        max_batch_size=MAX_BATCH_BYTES,
        **client_kwargs(settings, "kuzet-replay"),
    )


async def replay(
    path: Path,
    settings: Settings,
    speed: float | None = None,
    summary: ReplaySummary | None = None,
    progress: Progress | None = None,
) -> ReplaySummary:
    """Publish every record of ``path``; return (and fill in ``summary``) what happened.

    Pass ``summary`` to keep the counts when the run is interrupted.
    """
    summary = summary if summary is not None else ReplaySummary()
    progress = progress or Progress(total=path.stat().st_size, label="replay", unit="lines")
    topics = {stream: topic for topic, stream in input_topics(settings).items()}
    await input_partitions(settings)  # the topics must exist: auto-created ones are wrong
    producer = new_producer(settings)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise kafka_failed(settings, "starting the replay", exc) from exc
    started = time.perf_counter()
    pending: list[Any] = []
    streams: list[str] = []
    try:
        with open(path, "rb") as source:
            await _publish(source, producer, topics, speed, summary, progress, pending, streams)
        await _settle(pending, streams, summary)
    finally:
        try:
            if pending:  # stopped: wait for what was sent, and count it
                await _settle(pending, streams, summary)
        finally:
            await producer.stop()
            summary.seconds = time.perf_counter() - started
            progress.finish()
    return summary


def replay_file(path: Path, settings: Settings, speed_text: str) -> int:
    """``kuzet replay``: replay ``path``, print the summary, return the exit code.

    Exit code 0 when every record was acknowledged (skipped lines are reported,
    not fatal), 1 when any record failed, 130 when stopped (Ctrl-C, SIGTERM).
    """
    speed = parse_speed(speed_text)
    if not path.is_file():
        raise HistoryError(f"no such input file: {path}")
    summary = ReplaySummary()
    summary.interrupted = run_until_stopped(replay(path, settings, speed, summary))
    print(summary.render(dict(settings.topics)))
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0


async def _publish(
    source: Iterable[bytes],
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    speed: float | None,
    summary: ReplaySummary,
    progress: Progress,
    pending: list[Any],
    streams: list[str],
) -> None:
    send = producer.send
    pacer = Pacer(speed) if speed is not None else None
    clock = time.monotonic
    started = clock()
    for number, line in enumerate(source, start=1):
        progress.update(len(line))
        if not line.strip():
            continue
        summary.lines += 1
        try:
            stream, key, value = parse_line(line)
        except InvalidEvent as exc:
            summary.skip(number, exc)
            continue
        if key is None:
            summary.without_key += 1
        if pacer is not None:
            delay = pacer.due(event_time(value)) - (clock() - started)
            if delay > SETTLE_BEFORE_SLEEP and pending:
                await _settle(pending, streams, summary)
                delay = pacer.due(None) - (clock() - started)
            if delay > MIN_SLEEP:
                await asyncio.sleep(delay)
        try:
            pending.append(await send(topics[stream], value, key=key))
        except KafkaError as exc:  # refused before sending, e.g. over max_request_size
            summary.fail(exc)
            continue
        streams.append(stream)
        if len(pending) >= ACK_WINDOW:
            await _settle(pending, streams, summary)


async def _settle(pending: list[Any], streams: list[str], summary: ReplaySummary) -> None:
    """Wait for every pending send; count each as published or failed (with its reason).

    Shielded: when the replay is stopped while waiting, the sends are not
    cancelled (they are on their way), and the caller waits for them again.
    """
    results = await asyncio.shield(asyncio.gather(*pending, return_exceptions=True))
    for stream, result in zip(streams, results, strict=True):
        if isinstance(result, BaseException):
            summary.fail(result)
        else:
            summary.published[stream] += 1
    pending.clear()
    streams.clear()
