"""The findings table: the latest alert of every finding, kept in a compacted topic.

Every alert the worker publishes on the alerts topic (keyed by entity, the
stream of every step) it also writes to the findings topic, keyed by
``finding_id``. Kafka compaction keeps the newest record per key, so the topic
is a table of findings, each as its latest alert says it stands (``open``,
``escalated``, ``resolved``), as Kafka Streams keeps a KTable. Case tools,
``/alerts`` on every worker and ``kuzet findings`` read it whole, so they all
show the same findings, and nothing is lost when a worker restarts.

A finding's alerts are all raised by one partition's detectors, in order, so
the last record of a key is the finding's latest step; a worker that crashed
re-judges from its saved state and publishes the same steps again, in the same
order, with the same ids.

:class:`FindingsTable` is the table in memory, bounded (``max_findings``: past
it the least recently updated go), with the query both readers share;
:func:`follow` keeps one up to date from the topic, :func:`read_findings`
reads the topic once to its end (``kuzet findings``).

>>> from datetime import UTC, datetime
>>> from detectors.base import make_alert
>>> table = FindingsTable(max_findings=2)
>>> def alert(entity, severity, previous=None):
...     return make_alert(kind="repeat_inspection", entity=entity, finding="v-1",
...         ts=datetime(2021, 3, 2, tzinfo=UTC), severity=severity, score=1.0,
...         reasons=["r"], evidence={}, event_ids=["v-1"], previous=previous)
>>> table.add(alert("B-1", "warning")); table.add(alert("B-1", "critical", "warning"))
>>> [(a.entity, a.status, a.severity) for a in table.query()]
[('B-1', 'escalated', 'critical')]
>>> parse_query({"status": "closed"})
Traceback (most recent call last):
...
streams.findings.QueryError: unknown status 'closed'; statuses are open, escalated, resolved
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, get_args

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from detectors.errors import KuzetError
from detectors.events import ALERT_SCHEMA_VERSION, KIND_DOMAIN, SEVERITY_RANK, Alert, FindingStatus
from streams.codec import decode_alert, encode_alert, json_schema
from streams.offsets import (
    HistoryError,
    client_kwargs,
    existing_partitions,
    kafka_failed,
    parse_time,
    read_to_end,
)
from streams.settings import Settings

logger = logging.getLogger(__name__)

#: Findings kept in memory: ~1.5 kB each as an alert, so ~150 MB at most. The topic
#: keeps them all; past this the least recently updated leave the worker's memory.
DEFAULT_MAX_FINDINGS = 100_000
#: Findings a query returns unless it asks for another ``limit``.
DEFAULT_LIMIT = 100
#: Most findings one ``/alerts`` request may ask for.
MAX_LIMIT = 10_000
STATUSES: tuple[str, ...] = get_args(FindingStatus)

#: Headers of every alert record (alerts and findings topics): which schema the value
#: follows, so a consumer can pick its decoder before it parses.
SCHEMA_ID: str = json_schema("alerts")["$id"]
ALERT_HEADERS: list[tuple[str, bytes]] = [
    ("kuzet-schema", SCHEMA_ID.encode()),
    ("kuzet-schema-version", str(ALERT_SCHEMA_VERSION).encode()),
]


class QueryError(KuzetError):
    """A bad filter for ``/alerts`` or ``kuzet findings``."""


class FindingsTable:
    """The latest alert of each finding, the least recently updated first."""

    def __init__(self, max_findings: int = DEFAULT_MAX_FINDINGS) -> None:
        self.max_findings = max_findings
        self._latest: dict[str, Alert] = {}
        #: Records that were no Kuzet alert (counted, skipped).
        self.invalid = 0

    def __len__(self) -> int:
        return len(self._latest)

    def add(self, alert: Alert) -> None:
        """Take a finding's newest alert (an alert of schema 1 is its own finding)."""
        key = alert.finding_id or alert.alert_id
        self._latest.pop(key, None)  # re-inserted: the most recently updated is last
        self._latest[key] = alert
        if len(self._latest) > self.max_findings:
            del self._latest[next(iter(self._latest))]

    def add_record(self, key: bytes | None, value: bytes | None) -> None:
        """Take a record of the findings topic: an alert, or a tombstone (no value)."""
        if value is None:
            if key is not None:
                self._latest.pop(key.decode(errors="replace"), None)
            return
        try:
            self.add(decode_alert(value))
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.invalid += 1
            logger.debug("findings topic: a record that is no Kuzet alert, skipped")

    def query(
        self,
        kind: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        entity: str | None = None,
        since: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[Alert]:
        """The findings that match (None: any), newest step first, at most ``limit``."""
        found = [
            alert
            for alert in self._latest.values()
            if (kind is None or alert.kind == kind)
            and (severity is None or alert.severity == severity)
            and (status is None or alert.status == status)
            and (entity is None or alert.entity == entity)
            and (since is None or alert.ts >= since)
        ]
        found.sort(key=lambda a: (a.ts, a.alert_id), reverse=True)
        return found[:limit]


def to_json(alerts: Iterable[Alert]) -> bytes:
    """A JSON array of alerts, each as on the alerts topic."""
    return b"[" + b",".join(encode_alert(alert) for alert in alerts) + b"]"


def parse_query(query: Mapping[str, Any], max_limit: int = MAX_LIMIT) -> dict[str, Any]:
    """The filters from a request's query (or the command's options), checked."""
    kind = query.get("kind") or None
    if kind is not None and kind not in KIND_DOMAIN:
        raise QueryError(f"unknown kind {kind!r}; kinds are {', '.join(KIND_DOMAIN)}")
    severity = query.get("severity") or None
    if severity is not None and severity not in SEVERITY_RANK:
        raise QueryError(
            f"unknown severity {severity!r}; severities are {', '.join(SEVERITY_RANK)}"
        )
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise QueryError(f"unknown status {status!r}; statuses are {', '.join(STATUSES)}")
    since = None
    if query.get("since"):
        try:
            since = parse_time(str(query["since"]), "since")
        except HistoryError as exc:
            raise QueryError(str(exc)) from None
    raw = str(query.get("limit") or DEFAULT_LIMIT)
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= max_limit:
        raise QueryError(f"limit must be an integer from 1 to {max_limit}, not {raw!r}")
    entity = query.get("entity") or None
    return {
        "kind": kind,
        "severity": severity,
        "status": status,
        "entity": entity,
        "since": since,
        "limit": limit,
    }


# --- reading the topic -------------------------------------------------------------


def _consumer(settings: Settings, client: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        group_id=None,  # no group: every reader reads every partition, commits nothing
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_kwargs(settings, f"{settings.app_id}-{client}"),
    )


async def _load(
    settings: Settings, consumer: AIOKafkaConsumer, take: Callable[[list[Any]], None]
) -> None:
    """Read every partition of the findings topic from its start to its end as of now."""
    partitions = await existing_partitions(settings, settings.findings_topic)
    if not partitions:
        raise HistoryError(
            f"topic {settings.findings_topic} does not exist on {settings.bootstrap_servers}: "
            "a worker creates it at start (or check KUZET_TOPIC_PREFIX / KUZET_TOPIC_FINDINGS)"
        )
    await read_to_end(consumer, partitions, take)


def _into(table: FindingsTable, steps: list[Alert] | None = None) -> Callable[[list[Any]], None]:
    """What a reader does with a batch of records: into ``table`` (and ``steps``)."""

    def take(records: list[Any]) -> None:
        for record in records:
            table.add_record(record.key, record.value)
            if steps is not None and record.value is not None:
                with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                    steps.append(decode_alert(record.value))

    return take


async def read_findings(
    settings: Settings, table: FindingsTable, steps: list[Alert] | None = None
) -> None:
    """Read the findings topic from its start to its end as of now into ``table``.

    ``steps``, if given, also gets every alert still on the topic, in the order of its
    partition: a finding's whole life while compaction has not yet dropped its earlier
    steps (the topic keeps them ``min.compaction.lag.ms``, 7 days: streams/topics.py).
    """
    consumer = _consumer(settings, "findings-reader")
    try:
        await consumer.start()
        await _load(settings, consumer, _into(table, steps))
    except KafkaError as exc:
        raise kafka_failed(settings, f"reading topic {settings.findings_topic}", exc) from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


async def follow(settings: Settings, table: FindingsTable, caught_up: asyncio.Event) -> None:
    """Keep ``table`` up to date with the findings topic until cancelled.

    ``caught_up`` is set once the topic has been read to its end as of the start.
    A failure is logged and retried: ``/alerts`` may lag, judging never stops for it.
    """
    while True:
        consumer = _consumer(settings, "findings-follower")
        try:
            await consumer.start()
            take = _into(table)
            await _load(settings, consumer, take)
            caught_up.set()
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for records in batch.values():
                    take(records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the page may lag; the worker goes on
            logger.warning("reading the findings topic failed (%s); retrying in 5 s", exc)
            await asyncio.sleep(5)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()


# --- kuzet findings ----------------------------------------------------------------

#: Columns of ``kuzet findings --table``.
COLUMNS = ("ts", "kind", "severity", "status", "entity", "finding_id", "reason")


def table_lines(alerts: list[Alert]) -> list[str]:
    """Findings as an aligned text table, one line each (the first reason, cut short)."""
    rows = [COLUMNS] + [
        (
            alert.ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            alert.kind,
            alert.severity,
            alert.status,
            alert.entity,
            alert.finding_id[:12],
            alert.reasons[0][:80],
        )
        for alert in alerts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


def findings_command(
    settings: Settings, filters: Mapping[str, Any], as_table: bool, history: bool = False
) -> int:
    """``kuzet findings``: print the findings that match, newest first.

    ``history``: every step of each finding that matches still on the topic, oldest
    first per finding, instead of its latest alert only.
    """
    query = parse_query(filters, max_limit=10**9)
    table = FindingsTable(max_findings=10**9)  # a one-off read keeps every finding
    steps: list[Alert] | None = [] if history else None
    asyncio.run(read_findings(settings, table, steps))
    found = table.query(**query)
    if steps is not None:
        order = {alert.finding_id: n for n, alert in enumerate(found)}
        found = sorted(
            (step for step in steps if step.finding_id in order),
            key=lambda step: order[step.finding_id],
        )  # stable: a finding's steps stay in the order they were published
    if as_table:
        print("\n".join(table_lines(found)))
    else:
        for alert in found:
            print(encode_alert(alert).decode())
    if table.invalid:
        logger.warning(
            "%d records on %s were no Kuzet alert", table.invalid, settings.findings_topic
        )
    return 0
