"""``kuzet capture``: write what is on the input topics to a historical stream file.

The file (contract "Files") can then be replayed (``kuzet replay``) or
backtested (``kuzet backtest``). The consumer has no group (``group_id=None``):
it never commits and never touches any consumer group, and it reads every
partition of the three input topics by manual assignment, from the beginning
or from ``--from-time`` (a Kafka record timestamp, see :mod:`streams.offsets`).
By default it stops when every partition has reached the end offset it had
when the capture started; ``--follow`` keeps going until Ctrl-C.

Order. The backtest reads a file as ONE ordered sequence and judges lateness
on it, so the order matters. Partitions are merged by Kafka record timestamp
(ties: payments, payroll, inspections, then partition number), and each
partition keeps its own offset order: the records of one entity (one key, one
partition) stay exactly in the order the worker read them, and the streams
interleave as they arrived. Appending in consumption order instead would
write whole fetches of one partition at a time, hours or months of event time
apart on a sparse stream, and the backtest would call them late. The merge
holds a record back until every unfinished partition has one to compare;
partitions that run ahead are paused, so memory stays bounded.

A Kafka record that the file format cannot hold (a value that is empty or not
JSON, a key that is not UTF-8) is skipped and counted with its reason; the
worker has dead-lettered such records already. A value with line breaks
(pretty-printed JSON) has them replaced by spaces, which keeps the JSON equal
but not the bytes; they are counted too.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter, deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streams.codec import InvalidEvent, encode_file_line
from streams.offsets import (
    client_kwargs,
    input_partitions,
    input_topics,
    kafka_failed,
    parse_time,
    run_until_stopped,
)
from streams.offsets import start_offsets as find_start_offsets
from streams.progress import Progress
from streams.settings import Settings

logger = logging.getLogger(__name__)

#: A partition whose merge buffer holds this many records is paused ...
PAUSE_AT = 20_000
#: ... and resumed when it is down to this many: bounded memory, few pause/resume calls.
RESUME_AT = 5_000
#: getmany wait: short enough to notice the end and Ctrl-C promptly.
POLL_MS = 500
#: How many skipped records the summary quotes.
SHOWN_EXAMPLES = 10


class Merger:
    """Merges ordered sources into one sequence by timestamp, keeping each source's order.

    An item is released only when every source that is still open has an item
    buffered to compare with (or is marked ``idle``: caught up, in follow mode).

    >>> m = Merger(["a", "b"])
    >>> m.push("a", [(1, "a1"), (5, "a5")])
    >>> list(m.ready())  # "b" might still bring something earlier than 1
    []
    >>> m.push("b", [(3, "b3")])
    >>> list(m.ready())
    ['a1', 'b3']
    >>> m.close("b")
    >>> list(m.ready())
    ['a5']
    """

    def __init__(self, sources: Iterable[Hashable]) -> None:
        self._rank = {source: rank for rank, source in enumerate(sources)}
        self._buffers: dict[Hashable, deque[tuple[int, Any]]] = {s: deque() for s in self._rank}
        self._open = set(self._rank)
        self._idle: set[Hashable] = set()
        self._blocking = set(self._rank)  # open, empty and not idle
        self._heap: list[tuple[int, int, Hashable]] = []  # (timestamp, rank, source) of heads

    def push(self, source: Hashable, items: Sequence[tuple[int, Any]]) -> None:
        """Append ``(timestamp, item)`` pairs that ``source`` produced, in its order."""
        if not items:
            return
        buffer = self._buffers[source]
        if not buffer:
            heapq.heappush(self._heap, (items[0][0], self._rank[source], source))
            self._blocking.discard(source)
        buffer.extend(items)

    def close(self, source: Hashable) -> None:
        """``source`` will push nothing more."""
        self._open.discard(source)
        self._blocking.discard(source)

    def idle(self, source: Hashable, idle: bool) -> None:
        """Mark ``source`` caught up (it does not hold the others back) or not."""
        if idle:
            self._idle.add(source)
            self._blocking.discard(source)
        else:
            self._idle.discard(source)
            if source in self._open and not self._buffers[source]:
                self._blocking.add(source)

    def buffered(self, source: Hashable) -> int:
        return len(self._buffers[source])

    @property
    def finished(self) -> bool:
        """Every source closed and every item released."""
        return not self._open and not self._heap

    def ready(self, force: bool = False) -> Iterator[Any]:
        """Release items in order while no open source could still bring an earlier one.

        ``force`` releases everything buffered (at the end of an interrupted run).
        """
        heap, buffers = self._heap, self._buffers
        while heap and (force or not self._blocking):
            _, rank, source = heapq.heappop(heap)
            buffer = buffers[source]
            yield buffer.popleft()[1]
            if buffer:
                heapq.heappush(heap, (buffer[0][0], rank, source))
            elif source in self._open and source not in self._idle:
                self._blocking.add(source)


def file_line(stream: str, key: bytes | None, value: bytes | None) -> tuple[bytes, bool]:
    """One Kafka record as a file line (no newline) and whether line breaks were flattened.

    Raises :class:`~streams.codec.InvalidEvent` when the file format cannot hold it.

    >>> file_line("payments", b"A-1", b'{"payer": "A-1"}')
    (b'{"topic":"payments","value":{"payer": "A-1"},"key":"A-1"}', False)
    >>> file_line("payments", None, b'{\\n "x": 1}')
    (b'{"topic":"payments","value":{  "x": 1},"key":null}', True)
    """
    if not value:
        raise InvalidEvent("value is empty (null or zero bytes)", "empty")
    try:
        msgspec.json.decode(value, type=msgspec.Raw)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"value is not JSON: {str(exc)[:120]}", "not_json") from None
    if not value.isascii():
        try:
            value.decode()
        except UnicodeDecodeError:
            raise InvalidEvent("value is not UTF-8", "not_utf8") from None
    text_key = None
    if key is not None:
        try:
            text_key = key.decode()
        except UnicodeDecodeError:
            raise InvalidEvent("key is not UTF-8", "key_not_utf8") from None
    # In valid JSON a raw line break can only be whitespace between tokens
    # (inside strings it must be escaped), so a space means the same.
    flattened = b"\n" in value or b"\r" in value
    if flattened:
        value = value.replace(b"\r", b" ").replace(b"\n", b" ")
    return encode_file_line(stream, text_key, value), flattened


@dataclass
class CaptureSummary:
    """What one capture wrote and skipped."""

    read: int = 0
    written: Counter[str] = field(default_factory=Counter)  # by stream
    skipped: Counter[str] = field(default_factory=Counter)  # by category
    examples: list[str] = field(default_factory=list)
    flattened: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    out: Path | None = None

    def skip(self, where: str, exc: InvalidEvent) -> None:
        self.skipped[exc.category] += 1
        if len(self.examples) < SHOWN_EXAMPLES:
            self.examples.append(f"{where}: {exc.reason}")

    @property
    def records_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def render(self) -> str:
        lines = [f"read        {self.read:>12,}", f"written     {self.written.total():>12,}"]
        for stream, count in sorted(self.written.items()):
            lines.append(f"  {stream:<12} {count:>10,}")
        if self.flattened:
            lines.append(f"  values with line breaks replaced by spaces {self.flattened:,}")
        lines.append(f"skipped     {self.skipped.total():>12,}")
        for category, count in sorted(self.skipped.items()):
            lines.append(f"  {category:<22} {count:>8,}")
        lines.extend(f"    {example}" for example in self.examples)
        lines.append(
            f"time        {self.seconds:>12.2f} s  ({self.records_per_second:,.0f} records/s)"
        )
        if self.out is not None:
            lines.append(f"file        {self.out}")
        if self.interrupted:
            lines.append("interrupted: the file is incomplete")
        return "\n".join(lines)


def new_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A group-less consumer: it never commits and never joins or moves any group."""
    return AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_kwargs(settings, "kuzet-capture"),
    )


async def capture(
    out: Path,
    settings: Settings,
    from_time: datetime | None = None,
    follow: bool = False,
    summary: CaptureSummary | None = None,
    progress_stream: Any = True,
) -> CaptureSummary:
    """Write the input topics to ``out``; return (and fill in ``summary``) what happened.

    The file is written as ``out.part`` and renamed to ``out`` when the capture
    is complete (in follow mode: when it is stopped), so a failed capture never
    leaves a file that looks whole. Pass ``summary`` to keep the counts when
    the run is interrupted.
    """
    summary = summary if summary is not None else CaptureSummary()
    partitions = await input_partitions(settings)
    consumer = new_consumer(settings)
    try:
        await consumer.start()
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        start = await find_start_offsets(consumer, partitions, from_time, end)
    except KafkaError as exc:
        await consumer.stop()
        raise kafka_failed(settings, "starting the capture", exc) from exc
    except BaseException:
        await consumer.stop()
        raise
    for tp in partitions:
        consumer.seek(tp, start[tp])
    total = None if follow else sum(max(end[tp] - start[tp], 0) for tp in partitions)
    progress = Progress(total=total, label="capture", stream=progress_stream)
    partial = out.with_name(out.name + ".part")
    started = time.perf_counter()
    complete = False
    try:
        with open(partial, "wb") as sink:
            reader = _Reader(consumer, settings, partitions, start, end, follow, summary, sink)
            try:
                await reader.run(progress)
            except asyncio.CancelledError:
                reader.drain()  # what was read is written, in merge order
                if not follow:  # following, being stopped is the normal end
                    summary.interrupted = True
                    raise
            complete = True
    except KafkaError as exc:
        raise kafka_failed(settings, "capturing", exc) from exc
    finally:
        await consumer.stop()
        progress.finish()
        summary.seconds = time.perf_counter() - started
        if complete:
            partial.replace(out)
            summary.out = out
        else:
            summary.out = partial
    return summary


def capture_to_file(out: Path, settings: Settings, from_time_text: str | None, follow: bool) -> int:
    """``kuzet capture``: capture into ``out``, print the summary, return the exit code.

    Skipped records are reported, not fatal (exit code 0). Ctrl-C or SIGTERM
    ends a ``--follow`` capture normally; any other capture they interrupt
    exits with 130 and leaves ``out.part``.
    """
    from_time = parse_time(from_time_text) if from_time_text else None
    summary = CaptureSummary()
    run_until_stopped(capture(out, settings, from_time, follow, summary))
    print(summary.render())
    return 130 if summary.interrupted and not follow else 0


class _Reader:
    """The capture loop: fetch, merge by timestamp, write, stop at the end offsets."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        settings: Settings,
        partitions: list[TopicPartition],
        start: dict[TopicPartition, int],
        end: dict[TopicPartition, int],
        follow: bool,
        summary: CaptureSummary,
        sink: IO[bytes],
    ) -> None:
        self.consumer = consumer
        self.streams = input_topics(settings)
        self.partitions = partitions
        self.end = end
        self.next = dict(start)
        self.follow = follow
        self.summary = summary
        self.sink = sink
        self.merger = Merger(partitions)
        self.paused: set[TopicPartition] = set()
        self.done: set[TopicPartition] = set()
        for tp in partitions:
            if not follow and start[tp] >= end[tp]:
                self._close(tp)

    def _close(self, tp: TopicPartition) -> None:
        """``tp`` reached its end offset: nothing more from it is wanted."""
        self.merger.close(tp)
        self.done.add(tp)
        self.consumer.pause(tp)

    async def run(self, progress: Progress) -> None:
        consumer, merger = self.consumer, self.merger
        while not merger.finished:
            batch = await consumer.getmany(timeout_ms=POLL_MS)
            for tp, records in batch.items():
                if not self.follow:
                    records = [r for r in records if r.offset < self.end[tp]]
                if not records:
                    continue
                merger.push(tp, [(r.timestamp, r) for r in records])
                self.next[tp] = records[-1].offset + 1
                progress.update(len(records), len(records))
                if self.follow:
                    merger.idle(tp, False)
                elif self.next[tp] >= self.end[tp]:
                    self._close(tp)
            await self._check_positions(batch)
            self._write(merger.ready())
            self._flow_control()
            if self.follow:
                self.sink.flush()

    async def _check_positions(self, batch: dict[TopicPartition, list]) -> None:
        """Partitions that brought nothing: at their end (or, following, caught up)?

        The position, not the last offset seen, because a partition can end in
        offsets that hold no record for a consumer (transaction markers).
        """
        for tp in self.partitions:
            if tp in batch or tp in self.paused or tp in self.done:
                continue
            if self.follow:
                highwater = self.consumer.highwater(tp)
                caught_up = highwater is not None and await self.consumer.position(tp) >= highwater
                self.merger.idle(tp, caught_up)
            elif await self.consumer.position(tp) >= self.end[tp]:
                self._close(tp)

    def _flow_control(self) -> None:
        for tp in self.partitions:
            if tp in self.done:
                continue
            buffered = self.merger.buffered(tp)
            if tp not in self.paused and buffered >= PAUSE_AT:
                self.consumer.pause(tp)
                self.paused.add(tp)
            elif tp in self.paused and buffered <= RESUME_AT:
                self.consumer.resume(tp)
                self.paused.discard(tp)

    def drain(self) -> None:
        self._write(self.merger.ready(force=True))

    def _write(self, records: Iterable[Any]) -> None:
        write, summary, streams = self.sink.write, self.summary, self.streams
        for record in records:
            summary.read += 1
            stream = streams[record.topic]
            try:
                line, flattened = file_line(stream, record.key, record.value)
            except InvalidEvent as exc:
                summary.skip(f"{record.topic}[{record.partition}]@{record.offset}", exc)
                continue
            summary.flattened += flattened
            write(line + b"\n")
            summary.written[stream] += 1
