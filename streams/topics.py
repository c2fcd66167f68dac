"""Every topic the worker reads or writes, checked or created before it starts.

Production brokers do not create topics on first use, and a worker that could
not write a dead letter or an alert would lose it. So before it joins its
group the worker looks up every topic it needs:

- the input topics must exist (producers own them);
- the alerts topic and each ``<input>.dlq`` are created when missing, with the
  partitions of the input they serve (alerts: the payments topic's), and so is
  the compacted findings topic (``findings``, :mod:`streams.findings`), with
  the alerts topic's partitions;
- the internal topics of the group are created when missing: one per
  regrouping (``<app id>-payments-by-account``, ``<app id>-inspections-by-authority``)
  with the partitions of the stream regrouped, and the compacted state topic
  (``<app id>-state``, :mod:`streams.state`) with as many partitions as the
  largest input topic, and the compacted rules topic (``<app id>-rules``,
  :mod:`streams.rules_feed`) of one partition. An internal topic with another
  partition count is refused.

A topic it may not create is refused by name, saying which right is missing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)
from aiokafka.errors import for_code as kafka_error_for_code

from detectors.errors import ConfigError
from detectors.events import STREAMS
from streams.offsets import HistoryError, client_kwargs, kafka_failed
from streams.regroup import REGROUPS
from streams.settings import Settings

logger = logging.getLogger(__name__)

#: The state topic keeps only the newest snapshot of each partition; segments roll
#: every 10 minutes so that compaction can drop the old ones soon.
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(60 * 60 * 1000),
}

#: The findings topic keeps the latest alert of each finding (its key, ``finding_id``):
#: a table of findings, as Kafka Streams keeps a KTable, read whole by ``/alerts`` and
#: ``kuzet findings``. Every step stays for 7 days before compaction may drop it
#: (``kuzet findings --history``); the alerts topic keeps every step for its retention.
FINDINGS_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": str(7 * 24 * 3600 * 1000),
    "segment.ms": str(24 * 3600 * 1000),
}

#: The rules topic keeps the newest version of each change (by name); one partition, so
#: every worker reads the changes in one order (streams/rules_feed.py).
RULES_TOPIC_CONFIG = {"cleanup.policy": "compact"}

#: Largest record the internal regrouped topics take: an envelope holding one
#: event near the contract's 1 MiB, with its framing (the broker default is 1 MiB).
INTERNAL_MAX_BYTES = 2 * 1024 * 1024
REGROUP_TOPIC_CONFIG = {"max.message.bytes": str(INTERNAL_MAX_BYTES)}

#: How long a topic just created may take to show in the broker's metadata.
CREATE_WAIT = 10.0


@dataclass(frozen=True)
class Layout:
    """Partition counts the worker runs with."""

    inputs: dict[str, int]  #: stream -> partitions of its input topic
    state: int  #: partitions of the state topic


async def ensure_topics(settings: Settings) -> Layout:
    """Check the input topics, create what the worker writes; return the partition counts."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings, "kuzet-topics"))
    try:
        await admin.start()
        existing = await _describe(admin)
        missing = [settings.topic(s) for s in STREAMS if settings.topic(s) not in existing]
        if missing:
            raise HistoryError(
                f"input topic(s) {', '.join(missing)} do not exist on "
                f"{settings.bootstrap_servers}: create them (or check KUZET_TOPIC_PREFIX / "
                "KUZET_TOPIC_*)"
            )
        inputs = {s: existing[settings.topic(s)][0] for s in STREAMS}
        replicas = max(existing[settings.topic(s)][1] for s in STREAMS)
        wanted: list[tuple[str, int, dict[str, str], bool]] = [
            (settings.alerts_topic, inputs["payments"], {}, False),
            (settings.findings_topic, inputs["payments"], FINDINGS_TOPIC_CONFIG, False),
            *((settings.dlq_topic(s), inputs[s], {}, False) for s in STREAMS),
            *(
                (settings.regroup_topic(r.name), inputs[r.stream], REGROUP_TOPIC_CONFIG, True)
                for r in REGROUPS
            ),
            (settings.state_topic, max(inputs.values()), STATE_TOPIC_CONFIG, True),
            (settings.rules_topic, 1, RULES_TOPIC_CONFIG, True),
        ]
        created = []
        for name, partitions, config, internal in wanted:
            if name in existing:
                if internal and existing[name][0] != partitions:
                    raise ConfigError(
                        f"topic {name} has {existing[name][0]} partitions, not {partitions}; it "
                        f"is internal to consumer group {settings.app_id!r}: delete it while no "
                        "worker of the group runs (it is created again), or use a new "
                        "KUZET_APP_ID"
                    )
                continue
            await _create(admin, name, partitions, min(replicas, 3), config)
            created.append(name)
        if created:
            logger.info("created topics: %s", ", ".join(created))
            await _wait_for(admin, created)
        state = existing[settings.state_topic][0] if settings.state_topic in existing else None
        return Layout(inputs, state or max(inputs.values()))
    except KafkaError as exc:
        raise kafka_failed(settings, "checking the worker's topics", exc) from exc
    finally:
        await admin.close()


async def _describe(admin: AIOKafkaAdminClient) -> dict[str, tuple[int, int]]:
    """(partitions, replicas) of every topic; asking for all of them creates none."""
    return {
        topic["topic"]: (len(topic["partitions"]), len(topic["partitions"][0]["replicas"]))
        for topic in await admin.describe_topics()
        if topic["error_code"] == 0 and topic["partitions"]
    }


async def _create(
    admin: AIOKafkaAdminClient, name: str, partitions: int, replicas: int, config: dict[str, str]
) -> None:
    refused = ConfigError(
        f"cannot create topic {name}: the worker's Kafka principal lacks the Create right on "
        "it (or on the cluster); grant it, or create the topic beforehand (see the README's "
        "Topics section)"
    )
    try:
        response = await admin.create_topics(
            [NewTopic(name, partitions, replicas, topic_configs=config)]
        )
    except TopicAlreadyExistsError:  # another worker of the group created it meanwhile
        return
    except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
        raise refused from None
    for error in getattr(response, "topic_errors", ()):
        code = error[1]
        if not code:
            continue
        kind = kafka_error_for_code(code)
        if kind is TopicAlreadyExistsError:
            continue
        if kind in (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
            raise refused
        raise kind(f"creating topic {name}: {error[2:] or ''}")


async def _wait_for(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CREATE_WAIT
    while loop.time() < deadline:
        known = await _describe(admin)
        if all(name in known for name in names):
            return
        await asyncio.sleep(0.2)
