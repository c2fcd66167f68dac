"""Payments by account: the internal topic that shows each account both sides of its payments.

Payments arrive keyed by payer, so an account's incoming payments are spread
over every partition. The live worker therefore forwards each valid payment,
its original bytes unchanged, to an internal topic partitioned by *account*
(``Settings.by_account_topic``, default ``<app id>-payments-by-account``):

- to the payee's partition as its ``in`` half (money in),
- to the payer's partition as its ``out`` half (money out),
- or, when payee and payer fall into the same partition, once, as ``both``.

The partition is chosen explicitly with Kafka's default partitioner (murmur2
of the account's bytes, as the Java client and aiokafka compute it), so each
account's activities land where any Kafka client would put that key. The
routing itself is pure and lives in :meth:`streams.processor.Processor.route_payments`;
the payments detectors read :class:`detectors.events.Activity` records built
from this topic by :meth:`streams.processor.Processor.handle_activities`.

A record of this topic carries not one half but an *envelope*: every half
that one batch of the payments agent sends to that partition, in order
(:func:`streams.codec.encode_envelopes`, :func:`streams.codec.decode_envelope`)::

    value   MessagePack array [1, [[side, payment], ...]]
              1        the format's version
              side     "in", "out" or "both" (a string)
              payment  the payment's original bytes (bin), unchanged
    key     none: the partition is given explicitly, the accounts are inside
    header  kuzet.format: kuzet.halves.v1+msgpack  (a label; the reader goes by the version)

Within a partition the halves keep exactly the order they would have had as
records of their own (the batch is merged by event time before it is
routed), and a batch's envelopes are acknowledged by Kafka before the batch
is, as single records were. An envelope that would pass 256 KiB is split,
in order, into several.

Why: Faust's per-record path costs ~80-100 µs a record on this project's
machine, our decode and detectors ~4 µs a payment. With a record per half, a
payment took that path 1 + ~1.67 times (read from ``payments``, then once per
side, two halves when payee and payer fall into different partitions, two
times in three with 3 partitions), and the live worker fell from ~10,500
payments/s to ~3,900 (``python -m bench.live --payments``). With an envelope
the by-account path costs one record per partition and batch: on a day the
per-half format made ~3,600-3,900 payments/s and the worker before the
repartition ~9,850-10,300, envelopes made ~9,000-11,000, most runs ~9,300
(mixed stream: ~4,000-4,700, ~9,900-10,300 and ~8,600-9,800 events/s). What
is left of the cost is the second decode, the routing and the engine's
bookkeeping once per half.

Why MessagePack rather than JSON: the payment travels as ``bin`` behind its
length, so the reader slices it out without scanning it and any bytes fit;
JSON could embed it raw (``msgspec.Raw``) only because it is valid JSON, and
must parse each one again to find where it ends. Measured on 555 typical
halves (~154-byte payments): encode + decode ~60 ns a half with MessagePack
against ~270 ns for a JSON array of ``msgspec.Raw``, at the same size (~161
and ~163 bytes a half). Both are small beside Faust's cost; MessagePack is
the cheaper and the simpler to keep exact.

Reading an envelope that is not one (not MessagePack, another version, an
unknown side: no worker writes one) never stops the worker: it is
dead-lettered whole to ``payments.dlq`` with reason category
``invalid_envelope`` and counted once as ``invalid``. A half's own dead
letters (late, a detector failed, bytes that are no payment) carry the
payment's bytes, the envelope's position as source and the half's place in it
(header ``kuzet.source.half``).

Nothing else depends on keys or on a record per half: checkpoints hold each
partition's last offset, and a batch judges whole envelopes, so a restart
resumes after the last envelope a checkpoint reflects; re-read input
forwards the same halves again, duplicates by ``event_id`` and side.

The topic has as many partitions as the payments topic; the worker creates it
at start if it is missing (:func:`ensure_by_account_topic`) and refuses to
start if it exists with another count.

It is one topic per consumer group: a reprocessing run under a new
``KUZET_APP_ID`` forwards into its own topic and never feeds the production
group's. On ``--from-beginning`` / ``--from-time`` the new group reads this
topic from its end (see :func:`streams.offsets.prepare_reprocessing`): only
what the run itself forwards is processed, so no payment is counted twice.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from aiokafka.errors import for_code as kafka_error_for_code

from detectors.errors import ConfigError
from streams.offsets import HistoryError, client_kwargs, kafka_failed
from streams.settings import Settings

logger = logging.getLogger(__name__)


async def ensure_by_account_topic(settings: Settings) -> int:
    """Create the by-account topic if missing; return its number of partitions.

    It gets the payments topic's partition count and replication factor. The
    payments topic is looked up as any client of it does: a broker that creates
    topics on first use creates it now, as the worker's own subscription would
    a moment later. An existing by-account topic with another partition count
    is refused (its accounts would sit in the wrong partitions).
    """
    payments = settings.topic("payments")
    name = settings.by_account_topic
    admin = AIOKafkaAdminClient(**client_kwargs(settings, "kuzet-repartition-admin"))
    try:
        await admin.start()
        topics = await _describe(admin)
        if payments not in topics:
            await _look_up(settings, payments)
            topics = await _describe(admin)
        partitions, replicas = topics[payments]
        if name not in topics:
            await _create(admin, name, partitions, replicas)
            logger.info("created topic %s with %d partitions", name, partitions)
            return partitions
    except KafkaError as exc:
        raise kafka_failed(settings, f"preparing the topic {name}", exc) from exc
    finally:
        await admin.close()
    existing = topics[name][0]
    if existing != partitions:
        raise ConfigError(
            f"topic {name} has {existing} partitions but the payments topic {payments} has "
            f"{partitions}; it is internal to consumer group {settings.app_id!r}: delete it "
            "while no worker runs (it is recreated), or set KUZET_TOPIC_PAYMENTS_BY_ACCOUNT "
            "to a new name"
        )
    return partitions


async def _describe(admin: AIOKafkaAdminClient) -> dict[str, tuple[int, int]]:
    """(partitions, replicas) of every topic; asking for all of them creates none."""
    return {
        topic["topic"]: (len(topic["partitions"]), len(topic["partitions"][0]["replicas"]))
        for topic in await admin.describe_topics()
        if topic["error_code"] == 0 and topic["partitions"]
    }


async def _look_up(settings: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(**client_kwargs(settings, "kuzet-repartition"))
    try:
        await producer.start()
        await producer.partitions_for(topic)
    except UnknownTopicOrPartitionError:
        raise HistoryError(
            f"the payments topic {topic} does not exist on {settings.bootstrap_servers} and the "
            "broker does not create topics on first use: create it (or check "
            "KUZET_TOPIC_PREFIX / KUZET_TOPIC_PAYMENTS)"
        ) from None
    finally:
        await producer.stop()


async def _create(admin: AIOKafkaAdminClient, name: str, partitions: int, replicas: int) -> None:
    try:
        response = await admin.create_topics([NewTopic(name, partitions, replicas)])
    except TopicAlreadyExistsError:  # another worker of the group created it meanwhile
        return
    for error in getattr(response, "topic_errors", ()):
        code = error[1]
        if code and kafka_error_for_code(code) is not TopicAlreadyExistsError:
            raise kafka_error_for_code(code)(f"creating topic {name}: {error[2:] or ''}")
