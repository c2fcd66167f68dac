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
                                                           "chunks", "size", "offset",
                                                           "version", "key_id", "mac"}
    key "<topic>/<partition>/<gen>.<writer>/<i>"    value: chunk i of the pickle, at most 512 KiB

**Nobody without the key can forge it.** A pickle runs code when it is read, so
whoever could write the state topic could run code in the worker. Every save
is signed: ``mac`` is an HMAC-SHA256, under a key derived from
``KUZET_STATE_KEY`` (or ``KUZET_STATE_KEY_FILE``), of the task's key, every
manifest field and the whole pickle (:func:`seal`). A manifest whose ``mac``
does not verify (:func:`hmac.compare_digest`), that has none (saved before
state was signed: format 1), or of another format, or whose chunks are
missing is never unpickled (:func:`restore`): the worker logs a warning,
counts it (``kuzet_state_rejected_total{reason}``) and judges that partition
from the group's committed offset with empty state, as if nothing had been
saved: what someone who may write the topic could already cause by deleting
the manifest. A worker without a key does not start. The key cannot stop a
replay of an older save the same key signed (the partition then judges
again the records since it, with the same alert ids).

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
import hmac
import logging
import pickle
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from detectors.engine import Partition, SnapshotError
from detectors.errors import ConfigError
from streams.regroup import Merge

if TYPE_CHECKING:
    from streams.settings import Settings

logger = logging.getLogger(__name__)

#: Format of a save: the pickled :class:`TaskState` inside the chunks, and the manifest.
#: 2: the manifest is signed (``key_id``, ``mac``) and carries this number; 1 (no
#: ``version`` in the manifest) was unsigned and is never read.
#: 3: detectors remember what a finding still owes or when it ends (findings' life) and
#: partitions the rules changes applied; a save of 2 is refused like any other version.
STATE_VERSION = 3
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
    #: Of an input partition: its event time for ``future_ts`` (:class:`streams.processor.Clock`).
    clock: Any = None

    @property
    def key(self) -> str:
        return f"{self.topic}/{self.partition}"


class _Manifest(msgspec.Struct):
    generation: int
    writer: str
    chunks: int
    size: int
    offset: int
    #: Absent from format 1's manifests (which had a "sha256" instead, now ignored).
    version: int = 1
    key_id: str = ""
    mac: bytes = b""


_manifest_encoder = msgspec.msgpack.Encoder()
_manifest_decoder = msgspec.msgpack.Decoder(_Manifest)

#: Why a save was not read: the ``reason`` of ``kuzet_state_rejected_total``.
#: ``malformed``: the manifest does not decode; ``unsigned``: no ``mac`` (format 1, or
#: not written by Kuzet); ``version``: a format this worker does not know;
#: ``incomplete``: chunks missing; ``other_key``: signed with another key (a changed
#: ``KUZET_STATE_KEY``); ``bad_mac``: the ``mac`` does not verify (altered).
REJECT_REASONS = ("malformed", "unsigned", "version", "incomplete", "other_key", "bad_mac")


class StateRejected(SnapshotError):
    """A save that is not read (never unpickled): the task starts without it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class StateKey:
    """The key saves are signed with, derived from the configured secret, and its public id.

    The id (in every manifest) tells a save signed with another key, a changed
    ``KUZET_STATE_KEY``, from one altered; it reveals nothing of the key.
    """

    mac_key: bytes = field(repr=False)
    key_id: str

    @classmethod
    def derive(cls, secret: bytes) -> StateKey:
        mac_key = hmac.digest(secret, b"kuzet state: mac key", "sha256")
        return cls(mac_key, hmac.digest(secret, b"kuzet state: key id", "sha256")[:8].hex())


def require_state_key(settings: Settings) -> bytes:
    """The worker's state key; without one it does not start (see the module docstring)."""
    if settings.state_key is None:
        raise ConfigError(
            "the worker signs the state it saves to the state topic, and reads back only "
            "state signed with its key, but no key is set: set KUZET_STATE_KEY to at least "
            "64 hex digits of a random key (e.g. `openssl rand -hex 32`), or "
            "KUZET_STATE_KEY_FILE to a file holding them (chmod 600). Every worker of a "
            "group needs the same key, and keeps it across restarts: state signed with "
            "another key is not read"
        )
    return settings.state_key


def _mac(key: StateKey, task: str, manifest: _Manifest, blob: bytes) -> bytes:
    """HMAC-SHA256 of the task's key, every manifest field but the mac, then the pickle."""
    fields = (
        "kuzet-state",
        task,
        manifest.version,
        manifest.key_id,
        manifest.generation,
        manifest.writer,
        manifest.chunks,
        manifest.size,
        manifest.offset,
    )
    header = _manifest_encoder.encode(fields)
    mac = hmac.new(key.mac_key, len(header).to_bytes(8, "big") + header, "sha256")
    mac.update(blob)
    return mac.digest()


def seal(
    key: StateKey, task: str, offset: int, blob: bytes, generation: int, writer: str
) -> list[tuple[str, bytes]]:
    """The records of one save of ``task``, in the order written: its chunks, then its manifest.

    Each is ``(record key, value)``; ``blob`` is :func:`dump` of a state whose
    position is ``offset``.
    """
    label = f"{generation}.{writer}"
    chunks = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
    manifest = _Manifest(
        generation, writer, len(chunks), len(blob), offset, STATE_VERSION, key.key_id
    )
    manifest.mac = _mac(key, task, manifest, blob)
    records = [(f"{task}/{label}/{i}", chunk) for i, chunk in enumerate(chunks)]
    return [*records, (task, _manifest_encoder.encode(manifest))]


def restore(
    key: StateKey, task: str, value: bytes, chunks: Mapping[str, bytes]
) -> tuple[TaskState, _Manifest]:
    """The state a manifest (``value``) and its chunks hold, and the manifest.

    Nothing is unpickled unless the manifest's ``mac`` verifies: else
    :class:`StateRejected` with one of :data:`REJECT_REASONS`. A signed save
    that still cannot be read (saved by other code of the same format) raises
    :class:`~detectors.engine.SnapshotError`.
    """
    whose = f"the saved state of {task}"
    try:
        manifest = _manifest_decoder.decode(value)
    except msgspec.DecodeError:
        raise StateRejected("malformed", f"{whose} has a manifest that does not decode") from None
    if not manifest.mac:
        raise StateRejected(
            "unsigned",
            f"{whose} is not signed (saved in format 1 by an older Kuzet, or not by Kuzet)",
        )
    if manifest.version != STATE_VERSION:
        raise StateRejected("version", f"{whose} is of a format this worker does not know")
    if manifest.key_id != key.key_id:
        raise StateRejected(
            "other_key", f"{whose} is signed with another key (was KUZET_STATE_KEY changed?)"
        )
    label = f"{manifest.generation}.{manifest.writer}"
    parts = []
    for i in range(manifest.chunks if 0 < manifest.chunks <= len(chunks) else 0):
        part = chunks.get(f"{task}/{label}/{i}")
        if part is None:
            break
        parts.append(part)
    if not parts or len(parts) != manifest.chunks:
        raise StateRejected("incomplete", f"{whose} lacks chunks: the state topic was altered")
    blob = b"".join(parts)
    if not hmac.compare_digest(_mac(key, task, manifest, blob), manifest.mac):
        raise StateRejected("bad_mac", f"{whose} fails authentication: it was altered")
    state = load(blob, task)
    if state.key != task:
        raise SnapshotError(f"{whose} holds the state of another partition")
    return state, manifest


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
        *,
        key: bytes,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.consumer_kwargs = consumer_kwargs
        #: Signs every save, and proves a save read back was signed by it.
        self.key = StateKey.derive(key)
        #: Hears the reason of each save not read (:data:`REJECT_REASONS`): a metric.
        self.on_reject = on_reject
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
        # The HMAC of a few MB takes milliseconds: off the event loop, as the pickle.
        *chunks, (_, manifest) = await asyncio.to_thread(
            seal, self.key, key, state.position, blob, generation, self.writer
        )
        send = self.producer.send
        pending = [
            await send(self.topic, chunk, key=chunk_key.encode(), partition=into)
            for chunk_key, chunk in chunks
        ]
        for future in pending:
            await future
        await (await send(self.topic, manifest, key=key.encode(), partition=into))
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
        manifests: dict[str, bytes] = {}  # undecoded: restore() judges them
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
                                manifests[task] = record.value
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
            try:
                state, saved = await off_the_loop(restore, self.key, task, manifest, chunks)
            except StateRejected as exc:  # never unpickled: the task starts as if unsaved
                logger.warning(
                    "%s; not read: the partition is judged from the group's committed offset "
                    "with empty state (kuzet_state_rejected_total, reason %s)",
                    exc,
                    exc.reason,
                )
                if self.on_reject is not None:
                    self.on_reject(exc.reason)
                continue
            states[task] = state
            self.generations[task] = saved.generation
            self._current[task] = (f"{saved.generation}.{saved.writer}", saved.chunks)
        logger.info(
            "read the saved state of %d of %d partitions in %.2f s",
            len(states),
            len(keys),
            time.perf_counter() - started,
        )
        return states
