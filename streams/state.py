"""Partition state kept in Kafka: a compacted snapshot topic, restored by whoever is assigned.

Every input and internal partition a worker owns is a *task* with state of its
own (:class:`TaskState`): that partition's detectors, duplicate memory, clock
and timers (:class:`detectors.engine.Partition`), the merge of a regrouped
partition (:class:`streams.regroup.Merge`), the counts of its records'
outcomes, and the offset of the next record it has not judged. The worker
saves each task's state every ``KUZET_SNAPSHOT_SECONDS`` and when the
partition leaves it (a rebalance, a stop), always between batches and only
after every alert, dead letter and forward of the records it reflects was
acknowledged by Kafka. Whichever worker is assigned the partition next reads
the newest snapshot back and seeks to its offset: no local disk, no consumer
group offsets that a dead member could keep anyone from moving.

The topic (``<app id>-state`` by default) is compacted. A snapshot larger than
one record is written in chunks, then a small *manifest* that names them::

    key "<topic>/<partition>"                       value: MessagePack {"generation", "writer",
                                                           "chunks", "size", "sha256", "offset"}
    key "<topic>/<partition>/<gen>.<writer>/<i>"    value: chunk i of the pickle, at most 512 KiB

A manifest is written only after all its chunks were acknowledged, so a crash
mid-snapshot leaves the previous one whole; the previous generation's chunks
are then deleted (tombstones), and compaction removes them. ``writer`` is a
token drawn by each worker process, so two workers that both believe they own a
partition for a moment (one about to learn it was replaced) never write into
each other's chunks. A task's records
go to the state topic's partition ``p % partitions`` for input partition
``p``, so restoring a task reads one partition of the state topic.

Why not Faust tables: a table's changelog is replayed per key, and our state
is one object per partition whose offset must move with it atomically; a
snapshot per partition that names its own offset is exactly that, and costs
one serialisation per partition per interval, not a changelog record per
event (measured in the README's Performance section).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import pickle
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from detectors.engine import Partition, SnapshotError
from streams.regroup import Merge

logger = logging.getLogger(__name__)

#: Format of the pickled :class:`TaskState` inside the chunks.
STATE_VERSION = 1
#: Largest chunk: well under the broker's default message.max.bytes (1 MiB).
CHUNK_BYTES = 512 * 1024


@dataclass
class TaskState:
    """What one task knows: see the module docstring."""

    topic: str
    partition: int
    #: The next offset to judge: every record before it is reflected here.
    position: int = 0
    #: The engine's state of this partition (None: no detector reads it here).
    engine: Partition | None = None
    merge: Merge | None = None
    #: Outcomes of this partition's records (ok, duplicate, late, invalid, failed), exact
    #: across restarts: they are saved and restored with the state.
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Event time (epoch seconds) of the newest record judged here: for alignment.
    max_ts: float = float("-inf")

    @property
    def key(self) -> str:
        return f"{self.topic}/{self.partition}"


class _Manifest(msgspec.Struct):
    generation: int
    writer: str
    chunks: int
    size: int
    sha256: str
    offset: int


_manifest_encoder = msgspec.msgpack.Encoder()
_manifest_decoder = msgspec.msgpack.Decoder(_Manifest)


def dump(state: TaskState) -> bytes:
    return pickle.dumps((STATE_VERSION, state), protocol=pickle.HIGHEST_PROTOCOL)


def load(blob: bytes, key: str) -> TaskState:
    try:
        version, state = pickle.loads(blob)
    except Exception as exc:
        raise SnapshotError(f"cannot read the saved state of {key} ({type(exc).__name__})") from exc
    if version != STATE_VERSION or not isinstance(state, TaskState):
        raise SnapshotError(f"the saved state of {key} is of another version ({version!r})")
    return state


async def off_the_loop(function: Any, *args: Any) -> Any:
    """Run a (de)serialisation in a thread, with the garbage collector paused.

    The worker holds its lock meanwhile, so nothing mutates the state; the event
    loop keeps heartbeats, fetches and the web pages going. The
    collector is paused because a pickle of a few MB allocates enough to
    trigger full collections: measured on a scale-1 world's payments partition
    (2.25 MB), 33 ms with the collector paused against up to 207 ms without,
    and the loop's longest stall during a threaded dump 27 ms.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return await asyncio.to_thread(function, *args)
    finally:
        if enabled:
            gc.enable()


class StateStore:
    """Writes task snapshots to the state topic and reads the newest ones back."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partitions: int,
        consumer_kwargs: dict[str, Any],
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.consumer_kwargs = consumer_kwargs
        #: Generation last written or read per task key (the next write is one more),
        #: and how many chunks it has (deleted once the next one is written).
        self.generations: dict[str, int] = {}
        #: The chunks of the save each task key stands on now: (label, count).
        self._current: dict[str, tuple[str, int]] = {}
        self.writer = uuid.uuid4().hex[:12]
        self.last_seconds = 0.0

    def partition_of(self, partition: int) -> int:
        """The state topic's partition that holds the tasks of input partition ``partition``."""
        return partition % self.partitions

    async def save(self, state: TaskState, blob: bytes) -> None:
        """Write one task's snapshot (``blob`` = :func:`dump` of it) and wait for Kafka's acks."""
        started = time.perf_counter()
        key = state.key
        into = self.partition_of(state.partition)
        generation = self.generations.get(key, 0) + 1
        label = f"{generation}.{self.writer}"
        chunks = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
        send = self.producer.send
        pending = [
            await send(self.topic, chunk, key=f"{key}/{label}/{i}".encode(), partition=into)
            for i, chunk in enumerate(chunks)
        ]
        for future in pending:
            await future
        digest = hashlib.sha256(blob).hexdigest()
        manifest = _Manifest(
            generation, self.writer, len(chunks), len(blob), digest, state.position
        )
        await (
            await send(
                self.topic, _manifest_encoder.encode(manifest), key=key.encode(), partition=into
            )
        )
        self.generations[key] = generation
        previous = self._current.get(key)
        if previous is not None:  # the chunks of the save before are garbage now
            old_label, count = previous
            for i in range(count):
                await send(self.topic, None, key=f"{key}/{old_label}/{i}".encode(), partition=into)
        self._current[key] = (label, len(chunks))
        self.last_seconds = time.perf_counter() - started

    async def read(self, wanted: list[tuple[str, int]]) -> dict[str, TaskState]:
        """The newest saved state of each ``(topic, partition)`` task that has one."""
        if not wanted:
            return {}
        keys = {f"{topic}/{partition}": partition for topic, partition in wanted}
        state_partitions = sorted({self.partition_of(p) for p in keys.values()})
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **self.consumer_kwargs)
        manifests: dict[str, _Manifest] = {}
        chunks: dict[str, bytes] = {}
        started = time.perf_counter()
        try:
            await consumer.start()
            tps = [TopicPartition(self.topic, p) for p in state_partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if end[tp] > 0}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        key = record.key.decode() if record.key else ""
                        task = key if key in keys else key.rsplit("/", 2)[0]
                        if task not in keys:
                            continue
                        if key == task:
                            if record.value is None:
                                manifests.pop(task, None)
                            else:
                                manifests[task] = _manifest_decoder.decode(record.value)
                        elif record.value is None:
                            chunks.pop(key, None)
                        else:
                            chunks[key] = record.value
                for tp in list(remaining):
                    if await consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
        states: dict[str, TaskState] = {}
        for task, manifest in manifests.items():
            label = f"{manifest.generation}.{manifest.writer}"
            parts = [chunks.get(f"{task}/{label}/{i}") for i in range(manifest.chunks)]
            if any(part is None for part in parts):
                raise SnapshotError(
                    f"the saved state of {task} (generation {manifest.generation}) lacks chunks; "
                    "the state topic was altered: delete the group's state topic to start empty"
                )
            blob = b"".join(parts)  # type: ignore[arg-type]
            if hashlib.sha256(blob).hexdigest() != manifest.sha256:
                raise SnapshotError(f"the saved state of {task} does not match its checksum")
            states[task] = await off_the_loop(load, blob, task)
            self.generations[task] = manifest.generation
            self._current[task] = (label, manifest.chunks)
        logger.info(
            "read the saved state of %d of %d partitions in %.2f s",
            len(states),
            len(keys),
            time.perf_counter() - started,
        )
        return states
