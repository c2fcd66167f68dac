"""Worker checkpoints: detector state that survives a restart.

Every ``KUZET_CHECKPOINT_SECONDS`` (and when the worker stops) the engine is
pickled to ``KUZET_STATE_DIR/engine.ckpt`` together with the Kafka position of
the last record whose effects it holds, per partition. It is only taken
between batches, after a batch's alerts and dead letters were acknowledged,
so the state never runs ahead of what was published.

On start the worker restores the engine and commits, for its consumer group,
the offsets just after those positions: the records the checkpoint does not
reflect are read again, the ones it does are not. Alerts of re-read records
carry the same ids as before, so consumers de-duplicate them. The file is
written to a temporary name and renamed, so a crash never leaves half a
checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from detectors.engine import Engine, SnapshotError
from streams.offsets import client_kwargs, commit_offsets
from streams.processor import Source
from streams.settings import Settings

logger = logging.getLogger(__name__)

FILE_NAME = "engine.ckpt"
VERSION = 1


@dataclass
class Checkpoint:
    """The engine and, per (topic, partition), the offset of the last record it reflects."""

    engine: Engine
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    app_id: str = ""


def path_for(settings: Settings) -> Path:
    return settings.state_dir / FILE_NAME


class Checkpointer:
    """The live worker's side: positions reached, and saving between batches.

    Agents hold :attr:`lock` from decoding a batch until its alerts are
    acknowledged, then :meth:`advance`; :meth:`save` takes the same lock, so a
    checkpoint always falls between batches.
    """

    def __init__(
        self, path: Path, app_id: str, positions: dict[tuple[str, int], int] | None = None
    ) -> None:
        self.path = path
        self.app_id = app_id
        self.positions = dict(positions or {})
        self.lock = asyncio.Lock()
        self.in_batch = False  # True from decoding a batch until its sends are acknowledged

    def snapshot(self, engine: Engine) -> Checkpoint:
        return Checkpoint(engine, self.positions, self.app_id)

    def advance(self, sources: Iterable[Source]) -> None:
        """The batch is done: its records are now reflected in the engine and published."""
        self.in_batch = False
        positions = self.positions
        for source in sources:
            key = (source.topic, source.partition)
            if source.offset > positions.get(key, -1):
                positions[key] = source.offset

    async def save(self, engine: Engine) -> None:
        async with self.lock:
            started = time.perf_counter()
            save(self.path, self.snapshot(engine))
            logger.info(
                "checkpoint of %d partitions written in %.2f s",
                len(self.positions),
                time.perf_counter() - started,
            )


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically: a temporary file, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": VERSION,
        "app_id": checkpoint.app_id,
        "positions": dict(checkpoint.positions),
        "engine": checkpoint.engine.snapshot(),
    }
    temporary = path.with_suffix(".tmp")
    with open(temporary, "wb") as out:
        pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def load(path: Path, app_id: str) -> Checkpoint | None:
    """The checkpoint at ``path`` for this app id, or None (absent, or another app's)."""
    if not path.is_file():
        return None
    try:
        payload = pickle.loads(path.read_bytes())
        if payload.get("version") != VERSION:
            raise SnapshotError(f"checkpoint version {payload.get('version')} is not {VERSION}")
        engine = Engine.restore(payload["engine"])
    except (SnapshotError, pickle.UnpicklingError, EOFError, KeyError, AttributeError) as exc:
        raise SnapshotError(
            f"cannot read the checkpoint {path} ({exc}); delete it to start with empty state"
        ) from None
    if payload["app_id"] != app_id:
        logger.warning(
            "checkpoint %s belongs to app %s, not %s: starting with empty state",
            path,
            payload["app_id"],
            app_id,
        )
        return None
    return Checkpoint(engine, dict(payload["positions"]), app_id)


async def rewind(settings: Settings, positions: dict[tuple[str, int], int]) -> None:
    """Commit, for the worker's group, the offsets just after the checkpoint's positions."""
    if not positions:
        return
    consumer = AIOKafkaConsumer(
        group_id=settings.app_id,
        enable_auto_commit=False,
        **client_kwargs(settings, "kuzet-checkpoint"),
    )
    try:
        await consumer.start()
        offsets = {TopicPartition(t, p): offset + 1 for (t, p), offset in positions.items()}
        await commit_offsets(consumer, offsets, "kuzet checkpoint")
        logger.info("resuming %d partitions from the checkpoint's positions", len(positions))
    except KafkaError as exc:
        # Another member of the group is running: its offsets stand; the restored
        # state may then miss records read after the checkpoint (logged, not hidden).
        logger.warning("could not rewind group %s to the checkpoint (%s)", settings.app_id, exc)
    finally:
        await consumer.stop()
