"""Positions in the input topics, and what ``replay``, ``capture`` and ``worker --from-*`` share.

Kafka can seek by offset or by record timestamp, nothing else. ``--from-time``
is therefore a *Kafka record timestamp* (when the record was produced: close to
event time for a live producer, the time of the replay for replayed history),
looked up with ``offsets_for_times``.

Starting a reprocessing run is done here, before the worker joins its group, by
committing the start offsets for the run's own, fresh consumer group. The worker
then starts from them as from any committed offsets of a partition that has no
saved state yet (:mod:`streams.state`), and a restarted reprocessing worker
continues where it stopped instead of seeking back. The production group is
never touched: a group that already has committed offsets is refused.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from detectors.errors import KuzetError
from detectors.events import STREAMS
from streams.settings import Settings

logger = logging.getLogger(__name__)

#: The default app id, i.e. the production consumer group: never reprocessed into.
PRODUCTION_APP_ID = Settings.app_id


#: How long a missing input topic is waited for: a topic created a moment ago
#: reaches the broker's metadata a little later.
TOPIC_WAIT = 3.0


class HistoryError(KuzetError):
    """Replay, capture or reprocessing cannot go on; the message says what to do."""


def parse_time(text: str, option: str = "--from-time") -> datetime:
    """An RFC 3339 time with an offset (``2021-03-01T00:00:00+06:00`` or ``...Z``).

    >>> parse_time("2021-03-01T00:00:00Z").isoformat()
    '2021-03-01T00:00:00+00:00'
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HistoryError(
            f"{option} {text!r} is not an RFC 3339 time; write e.g. 2021-03-01T00:00:00+06:00"
        ) from None
    if when.tzinfo is None:
        raise HistoryError(
            f"{option} {text!r} has no UTC offset; add one, e.g. {text.strip()}Z or +06:00"
        )
    return when


def to_millis(when: datetime) -> int:
    """Kafka timestamps are milliseconds since the epoch."""
    return int(when.timestamp() * 1000)


def input_topics(settings: Settings) -> dict[str, str]:
    """Kafka topic name -> logical stream name, for the three input streams."""
    return {settings.topic(stream): stream for stream in STREAMS}


async def input_partitions(settings: Settings) -> list[TopicPartition]:
    """Every partition of the three input topics; raise if a topic does not exist."""
    client = AIOKafkaClient(**client_kwargs(settings, "kuzet-metadata"))
    deadline = time.monotonic() + TOPIC_WAIT
    try:
        await client.bootstrap()
        while True:
            cluster = await client.fetch_all_metadata()
            missing = [t for t in input_topics(settings) if t not in cluster.topics()]
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    except KafkaError as exc:
        raise kafka_failed(settings, "reading the topic list", exc) from exc
    finally:
        await client.close()
    if missing:
        raise HistoryError(
            f"input topic(s) {', '.join(missing)} do not exist on {settings.bootstrap_servers}: "
            "check KUZET_TOPIC_PREFIX / KUZET_TOPIC_* or create the topics"
        )
    return [
        TopicPartition(topic, number)
        for topic in input_topics(settings)
        for number in sorted(cluster.partitions_for_topic(topic) or ())
    ]


async def existing_partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``, none if it does not exist (asking creates nothing)."""
    client = AIOKafkaClient(**client_kwargs(settings, "kuzet-metadata"))
    try:
        await client.bootstrap()
        cluster = await client.fetch_all_metadata()
    except KafkaError as exc:
        raise kafka_failed(settings, "reading the topic list", exc) from exc
    finally:
        await client.close()
    return [TopicPartition(topic, n) for n in sorted(cluster.partitions_for_topic(topic) or ())]


async def start_offsets(
    consumer: AIOKafkaConsumer,
    partitions: Iterable[TopicPartition],
    when: datetime | None,
    end: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Where to start in each partition: its beginning, or its first record at/after ``when``.

    A partition with no record at or after ``when`` starts at its end (``end``).
    """
    partitions = list(partitions)
    if when is None:
        return dict(await consumer.beginning_offsets(partitions))
    found = await consumer.offsets_for_times({tp: to_millis(when) for tp in partitions})
    return {tp: found[tp].offset if found.get(tp) is not None else end[tp] for tp in partitions}


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    take: Callable[[list[Any]], None],
    poll_ms: int = 1000,
) -> None:
    """Assign ``partitions`` to a started, groupless ``consumer`` and read each from its
    beginning to its end offset as of now, handing ``take`` each batch's records (in
    partition order). The compacted tables (rules, findings) are loaded so."""
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(partitions)
    pending = [tp for tp in partitions if ends[tp] > 0]
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=poll_ms)
        for records in batch.values():
            take(records)
        pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]


def client_kwargs(settings: Settings, client_id: str) -> dict:
    """Connection keyword arguments for an aiokafka client of ``settings``."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id,
        **settings.security.aiokafka_kwargs(),
    }


def kafka_failed(settings: Settings, what: str, exc: Exception) -> HistoryError:
    """A Kafka client error as a :class:`HistoryError` that says what to check."""
    if isinstance(exc, KafkaConnectionError):
        # aiokafka reports a refused login or an untrusted certificate the same way as
        # a broker that is down: name what else to check when a secured listener is used.
        protocol = settings.security.protocol
        checks = [
            "the broker is running (deploy/kafka/kafka.sh start)",
            "KUZET_BROKER names it",
            f"the listener speaks {protocol} (KUZET_KAFKA_SECURITY_PROTOCOL)",
        ]
        if protocol.startswith("SASL"):
            checks.append("the SASL mechanism, username and password are right")
        if protocol.endswith("SSL"):
            checks.append("KUZET_KAFKA_SSL_CAFILE trusts the broker's certificate")
        return HistoryError(
            f"{what}: cannot reach Kafka at {settings.bootstrap_servers} "
            f"({type(exc).__name__}): check that {', that '.join(checks)}; "
            "the Kafka client's log line above says more"
        )
    return HistoryError(f"{what}: Kafka refused ({type(exc).__name__}: {exc}); try again")


def run_until_stopped(main: Coroutine[Any, Any, Any]) -> bool:
    """Run ``main`` on a new event loop; Ctrl-C or SIGTERM cancel it. Was it stopped?

    The cancellation reaches ``main`` as :class:`asyncio.CancelledError`, so its
    ``finally`` blocks flush and count what was already sent or read.
    """

    async def supervise() -> bool:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        stopped = False

        def stop() -> None:
            nonlocal stopped
            stopped = True
            task.cancel()

        if threading.current_thread() is threading.main_thread():  # else signals cannot reach us
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop)
        try:
            await main
        except asyncio.CancelledError:
            if not stopped:
                raise
        return stopped

    return asyncio.run(supervise())


# --- reprocessing with the live worker ---------------------------------------------


async def commit_offsets(
    consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], note: str
) -> None:
    """Commit ``offsets`` for the consumer's group before the worker joins it.

    A consumer with a group id but a manual assignment commits as a "simple"
    member, which Kafka allows while no member of the group is active; else it
    raises :class:`KafkaError`.
    """
    consumer.assign(list(offsets))
    await consumer.commit({tp: OffsetAndMetadata(o, note) for tp, o in offsets.items()})


def check_reprocessing_group(settings: Settings, option: str) -> None:
    """Refuse to reprocess into the production consumer group (the default app id)."""
    if settings.app_id == PRODUCTION_APP_ID:
        raise HistoryError(
            f"{option} reprocesses history under a fresh consumer group, but KUZET_APP_ID is "
            f"the production id {PRODUCTION_APP_ID!r}; set a new one, e.g. "
            "KUZET_APP_ID=kuzet-reprocess-1 (alerts still go to the alerts topic unless "
            "KUZET_TOPIC_ALERTS is set)"
        )


async def prepare_reprocessing(settings: Settings, when: datetime | None, option: str) -> int:
    """Make ``settings.app_id`` start at the beginning of the input topics, or at ``when``.

    The group must be fresh (no committed offsets): a group that has run before
    resumes from its own offsets, and silently ignoring the flag, or moving a
    live group's offsets, would both be wrong. For ``when`` the start offsets
    are committed for the fresh group; from the beginning needs nothing (a
    fresh group starts at the earliest offset, ``auto_offset_reset`` in
    ``streams/worker.py``).

    The regrouped topics (:mod:`streams.regroup`) are internal: the run fills
    them again from the input it re-reads, so they are read from their *end*.
    They are the group's own topics (named after the app id) and normally hold
    nothing yet; if they do (left by an earlier group of the same id, or named
    by ``KUZET_TOPIC_PAYMENTS_BY_ACCOUNT`` / ``_INSPECTIONS_BY_AUTHORITY``), their
    end offsets are committed too,
    so what is already on it is not counted a second time. Returns the number
    of input partitions prepared.
    """
    check_reprocessing_group(settings, option)
    group = settings.app_id
    admin = AIOKafkaAdminClient(**client_kwargs(settings, "kuzet-reprocess-admin"))
    try:
        await admin.start()
        committed = await admin.list_consumer_group_offsets(group)
    except KafkaError as exc:
        raise kafka_failed(settings, f"reading the offsets of group {group!r}", exc) from exc
    finally:
        await admin.close()
    if committed:
        raise HistoryError(
            f"consumer group {group!r} already has committed offsets ({len(committed)} "
            f"partitions), so {option} would not apply: use a new KUZET_APP_ID for a new "
            "reprocessing run, or drop the flag to resume this one where it stopped"
        )
    consumer = AIOKafkaConsumer(
        group_id=group, enable_auto_commit=False, **client_kwargs(settings, "kuzet-reprocess")
    )
    try:
        await consumer.start()
        partitions = await input_partitions(settings)
        internal = [
            tp
            for topic in (settings.by_account_topic, settings.by_authority_topic)
            for tp in await existing_partitions(settings, topic)
        ]
        offsets = dict(await consumer.end_offsets(internal)) if internal else {}
        if when is not None:
            end = await consumer.end_offsets(partitions)
            offsets.update(await start_offsets(consumer, partitions, when, end))
            logger.info(
                "reprocessing group %s starts at %s: %d records to read",
                group,
                when.isoformat(),
                sum(end[tp] - offsets[tp] for tp in partitions),
            )
        if offsets:
            await commit_offsets(consumer, offsets, f"kuzet {option}")  # the group is empty
        return len(partitions)
    except KafkaError as exc:
        raise kafka_failed(settings, f"setting the start offsets of group {group!r}", exc) from exc
    finally:
        await consumer.stop()


def start_reprocessing(settings: Settings, from_time: str | None, from_beginning: bool) -> None:
    """``kuzet worker --from-beginning | --from-time``: prepare the fresh group, say so.

    Runs on an event loop of its own that it closes again, leaving no current
    loop behind, so the worker that starts next builds its own as usual.
    """
    option = "--from-time" if from_time else "--from-beginning"
    when = parse_time(from_time) if from_time else None
    loop = asyncio.new_event_loop()
    try:
        partitions = loop.run_until_complete(prepare_reprocessing(settings, when, option))
    finally:
        loop.close()
    start = when.isoformat() if when else "the beginning"
    print(
        f"kuzet: reprocessing under consumer group {settings.app_id!r} from {start} "
        f"({partitions} input partitions); alerts go to {settings.alerts_topic!r}",
        file=sys.stderr,
    )
