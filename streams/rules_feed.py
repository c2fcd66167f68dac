"""Rules changed without a restart: the compacted rules topic, read by every worker.

A record of the rules topic (``<app id>-rules``, ``KUZET_TOPIC_RULES``; one
partition, compacted) is one change (:mod:`detectors.live_rules`)::

    key   "raise-mule-bar"                      (the change's name)
    value {"effective": "2024-03-01T00:00:00+05:00",
           "rules": "[mule_account]\\nmin_payers = 3",
           "note": "fewer false alarms after the March campaign"}

``rules`` is a rules file, usually partial: it is laid over the rules in force
at ``effective``. Publishing a name again replaces that change (compaction
keeps the newest); an empty value (a tombstone) withdraws it.

A worker reads the topic to its end before it judges anything
(:meth:`RulesWatch.load`), then follows it in the background
(:meth:`RulesWatch.follow`). Each version of a change is validated once, logged
and counted (``kuzet_rules_changes_total{outcome="applied|refused"}``); a
refused one changes nothing. The engine applies each applied change in every
partition before its first event at or after ``effective``.

``kuzet backtest --rules-changes FILE`` reads the same records from a JSON Lines
file, one ``{"key": name, "value": {...}}`` a line (``kuzet rules show --jsonl``
writes one), so a replay with a rules change can be compared with a backtest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from detectors.engine import Engine
from detectors.errors import ConfigError
from detectors.live_rules import RulesChange, Timeline, decode_change
from detectors.rules import Rules
from streams.offsets import client_kwargs, kafka_failed, read_to_end
from streams.settings import Settings

logger = logging.getLogger(__name__)

#: How long the background reader waits for a new record before it asks again.
POLL_MS = 1000
#: A failed read of the rules topic is retried after this long (the worker goes on).
RETRY_SECONDS = 5.0


def decode_all(raw: Mapping[str, bytes]) -> tuple[list[RulesChange], dict[str, str]]:
    """The changes among raw records (name -> value), and why the others were refused."""
    changes, refused = [], {}
    for name, value in raw.items():
        try:
            changes.append(decode_change(name.encode(), value))
        except ConfigError as exc:
            refused[name] = str(exc)
    return changes, refused


def read_changes_file(path: Path) -> dict[str, bytes]:
    """The records of a changes file (JSON Lines of ``{"key", "value"}``), name -> value.

    A later line of the same name replaces an earlier one, a ``null`` value
    withdraws it, as on the compacted topic.
    """
    raw: dict[str, bytes] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            name, value = record["key"], record["value"]
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f'{path}:{number}: expected {{"key": NAME, "value": {{"effective": ..., '
                '"rules": ...}} (or null)}'
            ) from None
        if not isinstance(name, str):
            raise ConfigError(f"{path}:{number}: the key must be the change's name")
        if value is None:
            raw.pop(name, None)
        else:
            raw[name] = json.dumps(value).encode()
    return raw


def changes_from_file(path: Path, base: Rules) -> tuple[list[RulesChange], Timeline, dict]:
    """The changes of a file, the timeline they make over ``base``, and every refusal."""
    changes, refused = decode_all(read_changes_file(path))
    timeline = Timeline(base, changes)
    refused.update(
        (name, verdict.reason) for name, verdict in timeline.verdicts.items() if not verdict.applied
    )
    return changes, timeline, refused


def take(raw: dict[str, bytes], records: Iterable[Any]) -> None:
    """Add records of the rules topic to ``raw`` (name -> value), as compaction would."""
    for record in records:
        try:
            name = (record.key or b"").decode()
        except UnicodeDecodeError:
            name = repr(record.key)
        if record.value is None:
            raw.pop(name, None)
        else:
            raw[name] = record.value


class RulesWatch:
    """The worker's reader of the rules topic; hands every change to the engine."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        on_verdict: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.on_verdict = on_verdict
        self.tp = TopicPartition(settings.rules_topic, 0)
        self.raw: dict[str, bytes] = {}  # name -> value, the newest of each
        self._judged: dict[str, bytes] = {}  # what was logged and counted, per name
        self.consumer: AIOKafkaConsumer | None = None

    async def load(self) -> None:
        """Read the topic to its end and run the engine by its changes (before judging)."""
        settings = self.settings
        self.consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            group_id=None,
            **client_kwargs(settings, f"{settings.app_id}-rules"),
        )
        consumer = self.consumer
        try:
            await consumer.start()
            await read_to_end(consumer, [self.tp], partial(take, self.raw), POLL_MS)
        except KafkaError as exc:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise kafka_failed(settings, f"reading rules topic {self.tp.topic}", exc) from exc
        self.apply()

    async def follow(self, lock: asyncio.Lock) -> None:
        """Keep reading the topic; apply what arrives between two batches (under ``lock``)."""
        consumer = self.consumer
        assert consumer is not None
        try:
            while True:
                try:
                    batch = await consumer.getmany(self.tp, timeout_ms=POLL_MS)
                except KafkaError as exc:  # the worker goes on by the rules it has
                    logger.warning("reading rules topic %s failed (%s)", self.tp.topic, exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                records = batch.get(self.tp, [])
                if records:
                    take(self.raw, records)
                    async with lock:
                        self.apply()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def apply(self) -> Timeline:
        """Hand the engine the changes; log and count each change not seen before."""
        changes, refused = decode_all(self.raw)
        timeline = self.engine.set_changes(changes)
        by_name = {change.name: change for change in changes}
        for name in sorted(self.raw):
            if self._judged.get(name) == self.raw[name]:
                continue
            self._judged[name] = self.raw[name]
            verdict = timeline.verdicts.get(name)
            if verdict is not None and verdict.applied:
                change = by_name[name]
                logger.info(
                    "rules change %s applies from event time %s%s: %s",
                    name,
                    change.written,
                    f" ({change.note})" if change.note else "",
                    " ".join(change.rules.split()),
                )
                outcome = "applied"
            else:
                reason = refused.get(name) or (verdict.reason if verdict else "")
                logger.warning(
                    "rules change %s refused, the rules stay as they were: %s", name, reason
                )
                outcome = "refused"
            if self.on_verdict is not None:
                self.on_verdict(outcome)
        for name in set(self._judged) - set(self.raw):
            del self._judged[name]
            logger.info("rules change %s withdrawn", name)
        return timeline


# -- the command line: kuzet rules set / show / withdraw ------------------------------------


async def read_topic(settings: Settings) -> dict[str, bytes]:
    """Every change on the rules topic (name -> value); empty if the topic does not exist."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False,
        group_id=None,
        **client_kwargs(settings, "kuzet-rules-cli"),
    )
    try:
        await consumer.start()
        if settings.rules_topic not in await consumer.topics():
            return {}
        raw: dict[str, bytes] = {}
        tp = TopicPartition(settings.rules_topic, 0)
        await read_to_end(consumer, [tp], partial(take, raw), POLL_MS)
        return raw
    except KafkaError as exc:
        raise kafka_failed(settings, f"reading rules topic {settings.rules_topic}", exc) from exc
    finally:
        await consumer.stop()


async def publish(settings: Settings, name: str, value: bytes | None) -> None:
    """Write one change (or, with ``value`` None, withdraw it), creating the topic if need be."""
    from streams.topics import RULES_TOPIC_CONFIG, _create, _describe, _wait_for

    admin = AIOKafkaAdminClient(**client_kwargs(settings, "kuzet-rules-cli"))
    producer = AIOKafkaProducer(
        acks="all", enable_idempotence=True, **client_kwargs(settings, "kuzet-rules-cli")
    )
    try:
        await admin.start()
        if settings.rules_topic not in await _describe(admin):
            await _create(admin, settings.rules_topic, 1, 1, RULES_TOPIC_CONFIG)
            await _wait_for(admin, [settings.rules_topic])
        await producer.start()
        await producer.send_and_wait(settings.rules_topic, value, key=name.encode(), partition=0)
    except KafkaError as exc:
        raise kafka_failed(settings, f"writing rules topic {settings.rules_topic}", exc) from exc
    finally:
        await producer.stop()
        await admin.close()


def change_value(effective: str, rules: str, note: str = "") -> bytes:
    value = {"effective": effective, "rules": rules}
    if note:
        value["note"] = note
    return json.dumps(value).encode()


def check_new(settings: Settings, raw: dict[str, bytes], name: str, value: bytes) -> Timeline:
    """Validate a change as the workers will (over the rules file and the changes on the
    topic); :class:`ConfigError` if they would refuse it."""
    change = decode_change(name.encode(), value)
    others, _ = decode_all({k: v for k, v in raw.items() if k != name})
    timeline = Timeline(settings.detection.rules, [*others, change])
    verdict = timeline.verdicts[name]
    if not verdict.applied:
        raise ConfigError(f"{verdict.reason}; nothing was published")
    return timeline


def render(settings: Settings, raw: Mapping[str, bytes]) -> str:
    """The changes on the topic, in the order they apply, each with its verdict."""
    changes, refused = decode_all(raw)
    timeline = Timeline(settings.detection.rules, changes)
    lines = []
    for change in timeline.changes:
        verdict = timeline.verdicts[change.name]
        status = "applied" if verdict.applied else f"REFUSED: {verdict.reason}"
        lines.append(f"{change.written}  {change.name}  {status}")
        if change.note:
            lines.append(f"    note: {change.note}")
        lines.extend(f"    {line}" for line in change.rules.strip().splitlines())
    for name, reason in sorted(refused.items()):
        lines.append(f"(unreadable)  {name}  REFUSED: {reason}")
    return "\n".join(lines) if lines else f"no rules changes on {settings.rules_topic}"


def jsonl(raw: Mapping[str, bytes]) -> str:
    """The changes as a changes file (``kuzet backtest --rules-changes``)."""
    lines = []
    for name, value in sorted(raw.items()):
        try:
            data = json.loads(value)
        except ValueError:
            continue
        lines.append(json.dumps({"key": name, "value": data}, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)
