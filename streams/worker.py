"""The live worker: a Kafka consumer group member that owns partitions, not a process.

Every partition the group assigns this worker is a *task* (:class:`Task`):

- an input partition of ``payroll`` or ``inspections``: its records are judged
  by that partition's own state (:meth:`streams.processor.Processor.upstream`);
- an input partition of ``payments``: its records are validated and shipped,
  by account, to the by-account topic; inspections are shipped by authority too
  (:mod:`streams.regroup`);
- a partition of an internal regrouped topic: its shipments are merged in one
  order and judged (:meth:`streams.processor.Processor.downstream`).

Each task's state (:class:`streams.state.TaskState`) is saved to the group's
compacted state topic every ``KUZET_SNAPSHOT_SECONDS`` and when the partition
leaves the worker, and read back by whichever worker is assigned the partition
next, which then seeks to the offset the state reflects. So a rebalance, a
scale-out, a crash or a new machine with an empty disk all continue where the
state stands: records after it are judged again, and produce the same alerts
with the same ids (consumers de-duplicate on them), the same dead letters, and
exact counts (they are part of the state).

**Nothing is acknowledged that was not fully handled.** A batch's alerts, dead
letters and shipments are all acknowledged by Kafka (``acks=all``, idempotent
producer) before the batch's offsets move, and a task's state is saved only
between batches. A send that fails after the client's retries stops the
worker with an error saying so (crash-only: the restart restores and replays).

**Why not Faust.** The worker was a Faust app until the state model moved into
Kafka. Faust's per-record path measured ~77 µs a record on the project's
2-core machine (our decode and detectors: ~4 µs), capping the worker under
the 10,000 events/s target, and it offers no hook to restore a partition's
state and seek on assignment without fighting its own offset manager. The
worker now drives aiokafka directly: ``getmany`` returns records already
grouped by partition, which is exactly the unit of state (figures: README,
Performance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detectors.errors import KuzetError
from detectors.events import STREAMS
from detectors.registry import build_engine
from streams.codec import encode_alert
from streams.findings import ALERT_HEADERS, FindingsTable, QueryError, follow, parse_query, to_json
from streams.metrics import Metrics
from streams.offsets import client_kwargs
from streams.processor import BatchOutput, Processor, Shipment, Source
from streams.regroup import (
    DONE,
    ENVELOPE_HEADERS,
    IDLE_SECONDS,
    REGROUP_OF,
    REGROUPS,
    WAIT,
    Regroup,
    encode_envelopes,
)
from streams.rules_feed import RulesWatch
from streams.settings import Settings
from streams.state import StateStore, TaskState, dump, off_the_loop, require_state_key
from streams.topics import INTERNAL_MAX_BYTES, Layout
from streams.web import guard, is_loopback

logger = logging.getLogger(__name__)

#: How often the gauges that are read rather than counted (consumer lag, tracked
#: entities) are refreshed: a little faster than a typical 15 s scrape.
GAUGE_REFRESH_SECONDS = 5.0
#: A producer request may take this long, retries included, before a send counts
#: as failed and stops the worker: long enough to ride out a broker restart.
SEND_TIMEOUT_MS = 120_000
#: Kafka's session timeout for the group: a worker that dies is replaced this soon.
SESSION_TIMEOUT_MS = 10_000


class WorkerError(KuzetError):
    """The worker cannot go on; the message says why and what to do."""


@dataclass
class Task:
    """One assigned partition and what the worker does with it."""

    tp: TopicPartition
    stream: str  #: the logical stream (for a regrouped topic: the stream regrouped)
    regroup: Regroup | None  #: set for a partition of an internal regrouped topic
    state: TaskState
    last_saved: float = 0.0  #: monotonic time of the last save
    #: Wall time up to which all judged here is saved (kuzet_state_last_saved_timestamp_seconds):
    #: set by each save, and by a gauge refresh that finds nothing unsaved.
    saved_at: float = field(default_factory=time.time)
    dirty: bool = False  #: judged records since the last save
    #: The frontier last sent to the regrouped partitions (:mod:`streams.regroup`).
    frontier: float = WAIT
    #: Monotonic time since which the partition has been read to its end (None: it is not).
    end_since: float | None = None


class Worker:
    """Consumes, judges, publishes, saves state; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        layout: Layout,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.layout = layout
        self.state_key = require_state_key(settings)  # no key: no start (streams/state.py)
        self.engine = build_engine(settings.detection)
        self.processor = Processor(self.engine, now=time.time, clock_skew=settings.clock_skew)
        self.metrics = Metrics(registry or CollectorRegistry())
        # Rules changes from the rules topic, read before anything is judged.
        self.rules = RulesWatch(settings, self.engine, on_verdict=self.metrics.record_rules_change)
        #: Every finding's latest alert, read from the findings topic (``/alerts``).
        self.findings = FindingsTable()
        self.findings_read = asyncio.Event()  # the topic read to its end once
        self.tasks: dict[TopicPartition, Task] = {}
        # Tasks revoked by a rebalance, kept in case the same partitions come back.
        self.parked: dict[TopicPartition, Task] = {}
        self.lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.input_topics = {settings.topic(s): s for s in STREAMS}
        self.regroup_topics = {settings.regroup_topic(r.name): r for r in REGROUPS}
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.store: StateStore | None = None
        self.paused: set[TopicPartition] = set()
        #: Set when a rebalance callback failed: the loop stops and run() raises it.
        self.fatal: WorkerError | None = None
        #: True from judging a batch until all it produced is acknowledged. A batch
        #: that failed leaves it set: the state in memory then holds effects that were
        #: never published, and must never be saved.
        self.unpublished = False

    # -- life cycle ------------------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop` (or SIGTERM/SIGINT); raise :class:`WorkerError` on failure."""
        settings = self.settings
        self.producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=int(settings.producer_linger * 1000),
            request_timeout_ms=SEND_TIMEOUT_MS,
            # Room for an envelope holding a payment near the contract's 1 MiB
            # (the internal topics are created to hold it: streams/topics.py).
            max_request_size=INTERNAL_MAX_BYTES + 64 * 1024,
            **client_kwargs(settings, f"{settings.app_id}-producer"),
        )
        self.consumer = AIOKafkaConsumer(
            group_id=settings.app_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=SESSION_TIMEOUT_MS // 4,
            max_poll_interval_ms=300_000,
            **client_kwargs(settings, f"{settings.app_id}-consumer"),
        )
        self.store = StateStore(
            self.producer,
            settings.state_topic,
            self.layout.state,
            client_kwargs(settings, f"{settings.app_id}-restore"),
            key=self.state_key,
            on_reject=self.metrics.record_state_rejected,
        )
        runner = await self._serve_web()
        try:
            await self.producer.start()
            await self.consumer.start()
            await self.rules.load()  # the rules in force, before the first record is judged
            self.consumer.subscribe(
                [*self.input_topics, *self.regroup_topics], listener=_Listener(self)
            )
            following = asyncio.create_task(self.rules.follow(self.lock))
            gauges = asyncio.create_task(self._refresh_gauges())
            findings = asyncio.create_task(follow(self.settings, self.findings, self.findings_read))
            try:
                await self._loop()
            except (TopicAuthorizationFailedError, GroupAuthorizationFailedError) as exc:
                what = (
                    f"the Read right on consumer group {settings.app_id}"
                    if isinstance(exc, GroupAuthorizationFailedError)
                    else "the Read right on the input and internal topics "
                    f"({', '.join([*self.input_topics, *self.regroup_topics])})"
                )
                raise WorkerError(
                    f"the worker's Kafka principal lacks {what}; grant it and restart"
                ) from exc
            finally:
                gauges.cancel()
                following.cancel()
                findings.cancel()
            if self.fatal is not None:
                raise self.fatal
            async with self.lock:
                await self._save_all("the worker stops")
        finally:
            with contextlib.suppress(Exception):
                await self.consumer.stop()  # leaves the group: the others take over at once
            with contextlib.suppress(Exception):
                await self.producer.stop()
            await runner.cleanup()

    def stop(self) -> None:
        self.stopping.set()

    async def _loop(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        settings = self.settings
        timeout_ms = int(settings.batch_within * 1000)
        while not self.stopping.is_set():
            batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=settings.batch_size)
            async with self.lock:
                await self._handle(batch)
                await self._announce_ends(batch)
                self._align()
                await self._save_due()

    # -- one batch -------------------------------------------------------------------

    async def _handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Judge a batch, publish what it produced, wait for every ack, then advance."""
        if not batch:
            return
        sends: list[Any] = []
        done: list[tuple[Task, int, BatchOutput, float]] = []
        self.unpublished = True
        for tp, records in batch.items():
            task = self.tasks.get(tp)
            if task is None:  # revoked while the batch was on its way
                continue
            state = task.state
            if records and records[0].offset < state.position:  # fetched before a seek
                records = [r for r in records if r.offset >= state.position]
            if not records:
                continue
            started = time.perf_counter()
            if task.regroup is None:
                out = await self._judge_input(task, records, sends)
            else:
                out = self._judge_regrouped(task, records)
            elapsed = time.perf_counter() - started
            await self._publish(task.stream, out, sends)
            done.append((task, records[-1].offset + 1, out, elapsed))
        await self._settle(sends)
        self.unpublished = False
        for task, position, out, elapsed in done:
            state = task.state
            state.position = position
            state.outcomes.update(out.outcomes)
            task.dirty = True
            lane = task.regroup.lane if task.regroup else task.stream
            # The lowest watermark of the lane's partitions this worker holds.
            self.metrics.record_batch(task.stream, out, elapsed, self.engine.watermark(lane))
        jumps = self.processor.jumps
        if jumps:
            for stream, count in jumps.items():
                self.metrics.clock_jumps.labels(stream).inc(count)
            jumps.clear()

    async def _judge_input(self, task: Task, records: list[Any], sends: list[Any]) -> BatchOutput:
        tp, state = task.tp, task.state
        batch = [(r.value, r.key, Source(tp.topic, tp.partition, r.offset)) for r in records]
        regroup = REGROUP_OF.get(task.stream)
        downstream = self.layout.inputs[task.stream] if regroup else 0
        out, shipments = self.processor.upstream(task.stream, tp.partition, batch, downstream)
        if shipments:
            assert regroup is not None
            for shipment in shipments:
                if shipment.halves:
                    state.max_ts = max(state.max_ts, max(half[2] for half in shipment.halves))
            at_end = self._at_end(tp, records[-1].offset + 1)
            task.end_since = time.monotonic() if at_end else None
            task.frontier = state.max_ts + self.settings.max_skew if at_end else WAIT
            shipments = [s._replace(frontier=task.frontier) for s in shipments]
            await self._ship(regroup, shipments, sends)
        return out

    def _judge_regrouped(self, task: Task, records: list[Any]) -> BatchOutput:
        regroup, tp = task.regroup, task.tp
        assert regroup is not None
        out = BatchOutput()
        upstreams = self.layout.inputs[regroup.stream]
        topic = self.settings.topic(regroup.stream)
        judge = self.processor.downstream_record
        for record in records:
            source = Source(tp.topic, tp.partition, record.offset)
            judge(regroup, tp.partition, upstreams, (record.value, record.key, source), topic, out)
        return out

    async def _ship(self, regroup: Regroup, shipments: list[Shipment], sends: list[Any]) -> None:
        assert self.producer is not None
        send = self.producer.send
        topic = self.settings.regroup_topic(regroup.name)
        for q, upstream, through, frontier, halves in shipments:
            for value in encode_envelopes(upstream, through, frontier, halves):
                sends.append(
                    (topic, await send(topic, value, partition=q, headers=ENVELOPE_HEADERS))
                )

    async def _publish(self, stream: str, out: BatchOutput, sends: list[Any]) -> None:
        assert self.producer is not None
        send = self.producer.send
        alerts_topic, findings_topic = self.settings.alerts_topic, self.settings.findings_topic
        for alert in out.alerts:
            value = encode_alert(alert)
            sends.append(
                (
                    alerts_topic,
                    await send(
                        alerts_topic, value, key=alert.entity.encode(), headers=ALERT_HEADERS
                    ),
                )
            )
            # The findings table: the finding's latest step, keyed by its id (compacted).
            sends.append(
                (
                    findings_topic,
                    await send(
                        findings_topic,
                        value,
                        key=alert.finding_id.encode(),
                        headers=ALERT_HEADERS,
                    ),
                )
            )
        if out.dead_letters:
            dlq = self.settings.dlq_topic(stream)
            for letter in out.dead_letters:
                value, headers = letter.kafka_record()
                sends.append((dlq, await send(dlq, value, key=letter.key, headers=headers)))

    async def _settle(self, sends: list[tuple[str, Any]]) -> None:
        """Wait for every send's ack; a failed send stops the worker."""
        if not sends:
            return
        results = await asyncio.gather(*(future for _, future in sends), return_exceptions=True)
        for (topic, _), result in zip(sends, results, strict=True):
            if isinstance(result, TopicAuthorizationFailedError):
                raise WorkerError(
                    f"the worker's Kafka principal lacks the Write right on topic {topic}; "
                    "grant it and restart the worker (nothing was acknowledged: it resumes "
                    "from its saved state)"
                ) from result
            if isinstance(result, BaseException):
                raise WorkerError(
                    f"could not publish to topic {topic} ({type(result).__name__}: {result}) "
                    "after the Kafka client's retries; stopping without moving any offset. "
                    "Check the broker and the worker's Write right on that topic, then restart "
                    "the worker: it resumes from the last saved state, and the alerts it "
                    "repeats carry the same ids"
                ) from result

    def _at_end(self, tp: TopicPartition, position: int) -> bool:
        assert self.consumer is not None
        highwater = self.consumer.highwater(tp)
        return highwater is not None and position >= highwater

    async def _announce_ends(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Tell the regrouped partitions how far they may go without an upstream partition.

        An input partition read to its end lets the others' events through up
        to its own newest event time plus ``KUZET_MAX_SKEW_HOURS``, and, once it
        has stayed at its end for ``IDLE_SECONDS``, without bound. Without it a
        regrouped partition would wait for an upstream partition that has
        nothing more to say (see :mod:`streams.regroup`).
        """
        sends: list[Any] = []
        now = time.monotonic()
        for tp, task in self.tasks.items():
            regroup = REGROUP_OF.get(task.stream)
            if task.regroup is not None or regroup is None or batch.get(tp):
                continue
            if tp in self.paused:  # not fetched: its high watermark may be stale
                continue
            if not self._at_end(tp, task.state.position):
                task.end_since = None
                continue
            if task.end_since is None:
                task.end_since = now
            if now - task.end_since >= IDLE_SECONDS:
                frontier = DONE
            else:
                frontier = task.state.max_ts + self.settings.max_skew
            if frontier == task.frontier:
                continue
            _, shipments = self.processor.upstream(
                task.stream,
                tp.partition,
                [],
                self.layout.inputs[task.stream],
                frontier=frontier,
                through=task.state.position - 1,
            )
            await self._ship(regroup, shipments, sends)
            task.frontier = frontier
        await self._settle(sends)

    def _align(self) -> None:
        """Pause the input partitions of a regrouped stream that run ahead in event time.

        While a backlog is read, one partition can run days ahead of another;
        every regrouped partition would then hold its halves until the slow
        one catches up. Partitions more than ``max_skew`` ahead of the slowest
        one this worker reads (and that is not at its end) wait.
        """
        consumer = self.consumer
        assert consumer is not None
        skew = self.settings.max_skew
        for stream in REGROUP_OF:
            tasks = [t for t in self.tasks.values() if t.regroup is None and t.stream == stream]
            behind = [t.state.max_ts for t in tasks if not self._at_end(t.tp, t.state.position)]
            floor = min(behind) if behind else float("inf")  # all at their end: none waits
            for task in tasks:
                ahead = task.state.max_ts > floor + skew
                if ahead and task.tp not in self.paused:
                    consumer.pause(task.tp)
                    self.paused.add(task.tp)
                elif not ahead and task.tp in self.paused:
                    consumer.resume(task.tp)
                    self.paused.discard(task.tp)

    # -- state ------------------------------------------------------------------------

    def _new_task(self, tp: TopicPartition) -> Task:
        regroup = self.regroup_topics.get(tp.topic)
        stream = regroup.stream if regroup else self.input_topics[tp.topic]
        return Task(tp, stream, regroup, TaskState(tp.topic, tp.partition))

    def _lane(self, task: Task) -> str | None:
        """The engine lane whose partition this task owns (None: it judges nothing itself)."""
        if task.regroup is not None:
            return task.regroup.lane
        regroup = REGROUP_OF.get(task.stream)
        return None if regroup is not None and regroup.counts else task.stream

    def _attach(self, task: Task) -> None:
        """Hand a restored task's engine state and merge to the processor."""
        lane, partition, state = self._lane(task), task.tp.partition, task.state
        if task.regroup is None:  # an input partition: its clock for future_ts
            if state.clock is not None:
                self.processor.clocks[task.stream, partition] = state.clock
            else:
                self.processor.clocks.pop((task.stream, partition), None)
        if lane is None:
            return
        if state.engine is not None:
            self.engine.adopt_partition(lane, partition, state.engine)
        else:
            self.engine.drop_partition(lane, partition)
        if task.regroup is not None:
            if state.merge is not None:
                self.processor.merges[lane, partition] = state.merge
            else:
                self.processor.merges.pop((lane, partition), None)

    def _detach(self, task: Task) -> None:
        lane, partition = self._lane(task), task.tp.partition
        if task.regroup is None:
            self.processor.clocks.pop((task.stream, partition), None)
        if lane is None:
            return
        self.engine.drop_partition(lane, partition)
        self.processor.merges.pop((lane, partition), None)

    async def _save(self, task: Task) -> None:
        assert self.store is not None
        if self.unpublished:
            raise WorkerError(
                "a batch was not fully published: its partitions' state is not saved; the "
                "restart resumes from the last save"
            )
        lane, partition, state = self._lane(task), task.tp.partition, task.state
        if task.regroup is None:
            state.clock = self.processor.clocks.get((task.stream, partition))
        if lane is not None:
            state.engine = self.engine.partition(lane, partition)
            state.merge = self.processor.merges.get((lane, partition))
        started = time.perf_counter()
        blob = await off_the_loop(dump, state)
        pickled = time.perf_counter() - started
        try:
            await self.store.save(state, blob)
        except KafkaError as exc:
            raise WorkerError(
                f"could not save the state of {task.tp.topic}[{partition}] to topic "
                f"{self.store.topic} ({type(exc).__name__}: {exc}); stopping. Check the broker "
                "and the worker's Write right on the state topic, then restart the worker"
            ) from exc
        task.last_saved = time.monotonic()
        task.saved_at = time.time()
        task.dirty = False
        self.metrics.record_snapshot(len(blob), pickled, self.store.last_seconds)

    async def _save_due(self) -> None:
        """Save the most overdue partition, if any is due: one a batch, so judging never
        waits for more than one save (all at once held every partition for 0.5-1 s, and
        the append-to-alert p99 rose from 62 ms to 257-631 ms: bench.live)."""
        now = time.monotonic()
        interval = self.settings.snapshot_seconds
        due = [t for t in self.tasks.values() if t.dirty and now - t.last_saved >= interval]
        if not due:
            return
        task = min(due, key=lambda t: t.last_saved)
        await self._save(task)
        await self._commit([task])

    async def _save_all(self, why: str) -> None:
        dirty = [t for t in self.tasks.values() if t.dirty]
        for task in dirty:
            await self._save(task)
        await self._commit(list(self.tasks.values()))
        if dirty:
            logger.info("saved the state of %d partitions: %s", len(dirty), why)

    async def _commit(self, tasks: list[Task]) -> None:
        """Commit the saved positions (for lag monitoring, and a start without saved state)."""
        assert self.consumer is not None
        offsets = {t.tp: t.state.position for t in tasks if t.state.position > 0}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance under way: the saved state is what counts
            logger.info("offsets not committed (%s); the saved state stands", type(exc).__name__)

    async def revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self._revoked(revoked)
        except Exception as exc:  # aiokafka would only log it: stop instead
            self._fail("saving the state of the partitions leaving this worker", exc)

    async def assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._assigned(assigned)
        except Exception as exc:  # aiokafka would only log it, and the partitions go unread
            self._fail("restoring the state of the partitions assigned to this worker", exc)

    def _fail(self, what: str, exc: Exception) -> None:
        if isinstance(exc, WorkerError):
            self.fatal = exc
        else:
            self.fatal = WorkerError(f"{what} failed ({type(exc).__name__}: {exc}); stopping")
            self.fatal.__cause__ = exc
        self.stop()

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:
            tasks = [self.tasks[tp] for tp in revoked if tp in self.tasks]
            for task in tasks:
                if task.dirty:
                    await self._save(task)
            await self._commit(tasks)
            for task in tasks:
                del self.tasks[task.tp]
                self.parked[task.tp] = task
            self.paused -= set(revoked)
            logger.info("%d partitions revoked; their state is saved", len(tasks))

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        async with self.lock:
            consumer, store = self.consumer, self.store
            assert consumer is not None and store is not None
            # A parked task that was not given back may be judged elsewhere now: forget it.
            for tp in list(self.parked):
                if tp not in assigned:
                    self._detach(self.parked.pop(tp))
            kept = {tp: self.parked.pop(tp) for tp in list(self.parked)}
            new = [tp for tp in assigned if tp not in kept and tp not in self.tasks]
            saved = await store.read([(tp.topic, tp.partition) for tp in new])
            restored = 0
            for tp in new:
                state = saved.get(f"{tp.topic}/{tp.partition}")
                task = self._new_task(tp)
                if state is not None:
                    task.state = state
                    restored += 1
                self._attach(task)
                self.tasks[tp] = task
                if state is not None:
                    consumer.seek(tp, state.position)
                else:  # nothing saved: the group's committed offset, or the beginning
                    committed = await consumer.committed(tp)
                    task.state.position = committed or 0
            for tp, task in kept.items():
                self.tasks[tp] = task
                consumer.seek(tp, task.state.position)
            # First saves spread over one interval, so they do not all come due together.
            now, interval = time.monotonic(), self.settings.snapshot_seconds
            fresh = [t for t in self.tasks.values() if not t.last_saved]
            for i, task in enumerate(fresh):
                task.last_saved = now - interval * i / len(fresh)
            logger.info(
                "%d partitions assigned: %d restored from saved state, %d kept, %d new",
                len(assigned),
                restored,
                len(kept),
                len(new) - restored,
            )

    # -- what operators see ----------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The partitions this worker owns, their positions and outcome counts."""
        tasks = []
        for tp, task in sorted(self.tasks.items()):
            tasks.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "stream": task.stream,
                    "position": task.state.position,
                    "outcomes": dict(task.state.outcomes),
                    "queued": len(self.processor.merges.get((task.regroup.lane, tp.partition), ()))
                    if task.regroup
                    else 0,
                    "paused": tp in self.paused,
                    "saved_generation": self.store.generations.get(task.state.key)
                    if self.store
                    else None,
                }
            )
        totals: Counter[str] = Counter()
        for task in self.tasks.values():
            totals.update(task.state.outcomes)
        return {"tasks": tasks, "outcomes": dict(totals)}

    async def _refresh_gauges(self) -> None:
        while True:
            await asyncio.sleep(GAUGE_REFRESH_SECONDS)
            try:
                self.metrics.record_engine(self.engine)
                self.metrics.record_consumer_lag(self._lags())
                self.metrics.record_regrouped_lag(self._lags(regrouped=True))
                self.metrics.record_state_saved(self._saved_at(time.time()))
            except Exception:  # metrics must never stop the worker
                logger.debug("gauge refresh failed", exc_info=True)

    def _lags(self, regrouped: bool = False) -> dict[tuple[str, int], int]:
        """Records not yet judged per ``(stream, partition)`` of the input partitions held,
        or, ``regrouped``, per ``(regrouping's name, partition)`` of the internal topics'."""
        consumer = self.consumer
        lags: dict[tuple[str, int], int] = {}
        if consumer is None:
            return lags
        for tp, task in list(self.tasks.items()):
            if (task.regroup is not None) != regrouped:
                continue
            highwater = consumer.highwater(tp)
            if highwater is not None:
                name = task.regroup.name if task.regroup is not None else task.stream
                lags[name, tp.partition] = max(0, highwater - task.state.position)
        return lags

    def _saved_at(self, now: float) -> dict[tuple[str, str, int], float]:
        """Each held partition's saved-up-to wall time; one with nothing unsaved is saved
        as of ``now``."""
        saved: dict[tuple[str, str, int], float] = {}
        for tp, task in list(self.tasks.items()):
            if not task.dirty:
                task.saved_at = now
            regroup = task.regroup.name if task.regroup is not None else ""
            saved[task.stream, regroup, tp.partition] = task.saved_at
        return saved

    async def _serve_web(self) -> web.AppRunner:
        app = web.Application()

        async def metrics(request: web.Request) -> web.Response:
            body = generate_latest(self.metrics.registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok", "partitions": len(self.tasks)})

        async def status(request: web.Request) -> web.Response:
            return web.json_response(self.status())

        async def alerts(request: web.Request) -> web.Response:
            """``/alerts?kind=&severity=&status=&entity=&since=&limit=``: findings, newest
            step first, each as its latest alert (from the findings topic: the same on every
            worker). ``X-Kuzet-Findings-Complete: false`` while the topic is still being read."""
            try:
                query = parse_query(request.query)
            except QueryError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            body = to_json(self.findings.query(**query))
            complete = "true" if self.findings_read.is_set() else "false"
            return web.Response(
                body=body,
                content_type="application/json",
                headers={"X-Kuzet-Findings-Complete": complete},
            )

        # /metrics and /healthz stay open (Prometheus, health checks: counts, no ids);
        # the pages naming entities or partitions need KUZET_WEB_TOKEN when it is set.
        token = self.settings.web_token
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/status", guard(status, token))
        app.router.add_get("/alerts", guard(alerts, token))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = self.settings.web_host, self.settings.web_port
        site = web.TCPSite(runner, host, port)
        await site.start()
        if token is not None:
            logger.info("web server on %s:%d; /alerts and /status require the token", host, port)
        else:
            # Open pages are fine on loopback; elsewhere they hand entity ids to anyone.
            log = logger.info if is_loopback(host) else logger.warning
            log(
                "web server on %s:%d; /alerts and /status are open to whoever reaches it "
                "(set KUZET_WEB_TOKEN to require a token)",
                host,
                port,
            )
        return runner


class _Listener(ConsumerRebalanceListener):
    """Saves the state of partitions leaving, restores those arriving (aiokafka awaits both)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.assigned(set(assigned))


def run_worker(settings: Settings, layout: Layout) -> int:
    """Run a worker until SIGTERM or Ctrl-C; the exit code (1 after a failure)."""

    async def main() -> int:
        worker = Worker(settings, layout)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, worker.stop)
        try:
            await worker.run()
        except WorkerError as exc:
            logger.error("%s", exc)
            return 1
        return 0

    return asyncio.run(main())
