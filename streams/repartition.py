"""Payments by account: the internal topic that shows each account both sides of its payments.

Payments arrive keyed by payer, so an account's incoming payments are spread
over every partition. The live worker therefore forwards each valid payment,
its original bytes unchanged, to an internal topic partitioned by *account*
(``Settings.by_account_topic``, default ``<app id>-payments-by-account``):

- keyed by the payee with the header ``kuzet.side: in`` (money in),
- keyed by the payer with ``kuzet.side: out`` (money out),
- or, when payee and payer fall into the same partition, once, keyed by the
  payee with ``kuzet.side: both``.

The partition is chosen explicitly with Kafka's default partitioner (murmur2
of the key bytes, as the Java client and aiokafka compute it), so each
account's activities land where any Kafka client would put that key. The
routing itself is pure and lives in :meth:`streams.processor.Processor.route_payments`;
the payments detectors read :class:`detectors.events.Activity` records built
from this topic by :meth:`streams.processor.Processor.handle_activities`.

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
