"""The Faust app: one agent per input topic, feeding the shared processor.

Each agent takes events in batches (``take_events``), hands the raw bytes to
the :class:`~streams.processor.Processor`, publishes what comes back, and
counts it. Faust acknowledges a batch only after the agent body has finished
with it, and the body waits until every alert and dead letter of the batch is
acknowledged by Kafka: processing is at least once, and a redelivered event
yields the same alert id again (ids are deterministic), never a new one.

Payments take two agents (:mod:`streams.repartition`): ``kuzet.payments``
validates them and forwards them, by account, to the by-account topic, one
envelope per partition and batch (its batch is acknowledged once Kafka has
acknowledged the forwards); ``kuzet.payments-by-account`` reads them back
there and runs the detectors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detectors.engine import Engine
from detectors.events import STREAMS
from detectors.registry import build_engine
from streams.checkpoint import Checkpointer, path_for
from streams.codec import ENVELOPE_FORMAT, FORMAT_HEADER, encode_alert
from streams.metrics import Metrics
from streams.processor import BatchOutput, Forward, Processor, Source
from streams.recent import QueryError, RecentAlerts, parse_query
from streams.settings import KafkaSecurity, Settings

logger = logging.getLogger(__name__)

#: Name of the agent (and key in :attr:`KuzetApp.agents`) reading payments by account.
BY_ACCOUNT = "payments-by-account"

#: How often the gauges that are read rather than counted (consumer lag, tracked
#: entities) are refreshed: a little faster than a typical 15 s scrape.
GAUGE_REFRESH_SECONDS = 5.0

#: Kafka headers of every forwarded envelope (shared, never mutated).
_ENVELOPE_HEADERS = [(FORMAT_HEADER, ENVELOPE_FORMAT)]


class Publisher:
    """Sends alerts, dead letters and forwards, and waits until Kafka has acknowledged them."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.alerts = _raw_topic(app, settings.alerts_topic)
        self.dead_letters = {s: _raw_topic(app, settings.dlq_topic(s)) for s in STREAMS}
        self.by_account = settings.by_account_topic

    async def publish(
        self, stream: str, out: BatchOutput, forwards: Sequence[Forward] = ()
    ) -> None:
        """Send ``out``'s alerts and dead letters and the ``forwards``; wait for every ack."""
        # Forwards go straight to the producer with their explicit partition and
        # no key (Faust's Topic.send wraps each in futures and callbacks not needed here).
        send = self.app.producer.send
        topic = self.by_account
        pending = [
            await send(topic, None, value, partition, None, _ENVELOPE_HEADERS)
            for partition, value in forwards
        ]
        pending += [
            await self.alerts.send(key=alert.entity.encode(), value=encode_alert(alert))
            for alert in out.alerts
        ]
        dlq = self.dead_letters[stream]
        for letter in out.dead_letters:
            pending.append(
                await dlq.send(key=letter.key, value=letter.raw, headers=letter.headers())
            )
        if pending:
            # Raises if any send failed: the agent stops before acking the batch,
            # so the batch is consumed again after the restart (at least once).
            await asyncio.gather(*pending)


@dataclass
class KuzetApp:
    """The Faust app with the pieces tests and the CLI reach into."""

    app: faust.App
    processor: Processor
    publisher: Publisher
    metrics: Metrics
    agents: dict[str, Any]
    recent: RecentAlerts
    #: The web pages' handlers by path (``handler(web, request)``), for tests.
    pages: dict[str, Any]


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    registry: CollectorRegistry | None = None,
    publisher: Publisher | None = None,
    checkpointer: Checkpointer | None = None,
    by_account_partitions: int = 1,
) -> KuzetApp:
    """Build the worker's Faust app from ``settings``.

    ``by_account_partitions`` is the number of partitions of the by-account
    topic (the payments topic's; the worker looks it up and creates the topic
    with :func:`streams.repartition.ensure_by_account_topic` before this).
    """
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker,
        broker_credentials=_credentials(settings.security),
        datadir=str(settings.state_dir / "faust"),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        web_host=settings.web_host,
        web_port=settings.web_port,
        producer_linger=settings.producer_linger,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,
        topic_replication_factor=1,
    )
    processor = Processor(engine or build_engine(settings.detection))
    metrics = Metrics(registry or CollectorRegistry())
    publisher = publisher or Publisher(app, settings)
    recent = RecentAlerts()
    checkpointer = checkpointer or Checkpointer(path_for(settings), settings.app_id)
    agents = {
        stream: _add_agent(
            app, stream, settings, processor, publisher, metrics, recent, checkpointer
        )
        for stream in STREAMS
        if stream != "payments"
    }
    agents["payments"] = _add_routing_agent(
        app, settings, processor, publisher, metrics, checkpointer, by_account_partitions
    )
    agents[BY_ACCOUNT] = _add_by_account_agent(
        app, settings, processor, publisher, metrics, recent, checkpointer
    )
    if settings.checkpoint_seconds > 0:

        @app.timer(settings.checkpoint_seconds)
        async def checkpoint() -> None:
            await checkpointer.save(processor.engine)

    streams_by_topic = {settings.topic(stream): stream for stream in STREAMS}

    @app.timer(GAUGE_REFRESH_SECONDS)
    async def refresh_gauges() -> None:
        metrics.record_engine(processor.engine)
        metrics.record_consumer_lag(await consumer_lags(app, streams_by_topic))

    async def prometheus_metrics(web: Any, request: Any) -> Any:
        # Passed as a header: aiohttp refuses a content_type argument with parameters.
        return web.bytes(
            generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    async def alerts(web: Any, request: Any) -> Any:
        """``/alerts?kind=&severity=&limit=``: recent alerts as JSON, newest first."""
        try:
            query = parse_query(request.query, recent.maxlen)
        except QueryError as exc:
            return web.json({"error": str(exc)}, status=400)
        body = recent.to_json(recent.query(**query))
        return web.bytes(body, content_type="application/json")

    pages = {"/metrics": prometheus_metrics, "/healthz": healthz, "/alerts": alerts}
    for path, handler in pages.items():
        app.page(path)(handler)
    return KuzetApp(app, processor, publisher, metrics, agents, recent, pages)


async def consumer_lags(
    app: faust.App, streams_by_topic: dict[str, str]
) -> dict[tuple[str, int], int]:
    """High watermark minus position of every assigned input partition, by (stream, partition).

    Empty while the consumer is not running or not yet assigned; a partition
    whose high watermark is not known yet (no fetch answered) is left out.
    """
    lags: dict[tuple[str, int], int] = {}
    try:
        consumer = app.consumer
        assigned = consumer.assignment()
    except Exception:  # not started, or stopping: nothing to report
        return lags
    for tp in assigned:
        stream = streams_by_topic.get(tp.topic)
        if stream is None:
            continue
        try:
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
        except Exception as exc:  # a rebalance took it away meanwhile
            logger.debug("no lag for %s: %s", tp, exc)
            continue
        if highwater is not None and position is not None:
            lags[stream, tp.partition] = max(0, highwater - position)
    return lags


def _add_agent(
    app: faust.App,
    stream: str,
    settings: Settings,
    processor: Processor,
    publisher: Publisher,
    metrics: Metrics,
    recent: RecentAlerts,
    checkpointer: Checkpointer,
) -> Any:
    topic = _raw_topic(app, settings.topic(stream))
    engine = processor.engine

    async def consume(events: faust.StreamT) -> None:
        async for batch in events.take_events(settings.batch_size, settings.batch_within):
            async with checkpointer.lock:  # a checkpoint never splits a batch
                checkpointer.in_batch = True
                started = time.perf_counter()
                records = [_record(event) for event in batch]
                out = processor.handle(stream, records)
                elapsed = time.perf_counter() - started
                await publisher.publish(stream, out)
                checkpointer.advance(source for _, _, source in records)
            if out.alerts:
                recent.add(out.alerts)
            metrics.record_batch(stream, out, elapsed, engine.watermark(stream))

    return app.agent(topic, name=f"kuzet.{stream}")(consume)


def _add_routing_agent(
    app: faust.App,
    settings: Settings,
    processor: Processor,
    publisher: Publisher,
    metrics: Metrics,
    checkpointer: Checkpointer,
    partitions: int,
) -> Any:
    """Payments in: validate, dead-letter the invalid, forward the rest by account."""
    topic = _raw_topic(app, settings.topic("payments"))
    engine = processor.engine

    async def route(events: faust.StreamT) -> None:
        async for batch in events.take_events(settings.batch_size, settings.batch_within):
            async with checkpointer.lock:
                checkpointer.in_batch = True
                started = time.perf_counter()
                records = [_record(event) for event in batch]
                forwards, out = processor.route_payments(records, partitions)
                elapsed = time.perf_counter() - started
                await publisher.publish("payments", out, forwards)
                checkpointer.advance(source for _, _, source in records)
            metrics.record_batch("payments", out, elapsed, engine.watermark("payments"))

    return app.agent(topic, name="kuzet.payments")(route)


def _add_by_account_agent(
    app: faust.App,
    settings: Settings,
    processor: Processor,
    publisher: Publisher,
    metrics: Metrics,
    recent: RecentAlerts,
    checkpointer: Checkpointer,
) -> Any:
    """Payments by account: each account's side of each payment through the detectors."""
    topic = _raw_topic(app, settings.by_account_topic)
    engine = processor.engine

    async def consume(events: faust.StreamT) -> None:
        # A batch of envelopes holds many more payments than records: up to a
        # payments batch each (taking fewer envelopes at a time measured slower).
        async for batch in events.take_events(settings.batch_size, settings.batch_within):
            async with checkpointer.lock:
                checkpointer.in_batch = True
                started = time.perf_counter()
                records = [_record(event) for event in batch]
                out = processor.handle_activities(records)
                elapsed = time.perf_counter() - started
                await publisher.publish("payments", out)
                checkpointer.advance(record[2] for record in records)
            if out.alerts:
                recent.add(out.alerts)
            metrics.record_batch("payments", out, elapsed, engine.watermark("payments"))

    return app.agent(topic, name=f"kuzet.{BY_ACCOUNT}")(consume)


def _record(event: faust.EventT) -> tuple[bytes | None, bytes | None, Source]:
    message = event.message
    return event.value, message.key, Source(message.topic, message.partition, message.offset)


def _raw_topic(app: faust.App, name: str) -> faust.TopicT:
    return app.topic(name, key_serializer="raw", value_serializer="raw")


def _credentials(security: KafkaSecurity) -> faust.types.auth.CredentialsT | None:
    if security.protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password,
            mechanism=security.sasl_mechanism,
            ssl_context=security.ssl_context(),
        )
    if security.protocol == "SSL":
        return faust.SSLCredentials(security.ssl_context())
    return None
