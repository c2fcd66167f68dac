"""The detector engine: one loop for the live worker and the offline backtest.

For every accepted event the engine, in this order:

1. drops it as a **duplicate** if its ``event_id`` was already seen on that
   stream (delivery is at least once);
2. sets it aside as **late** if its event time is behind the watermark of
   its partition (the partition's newest event time minus the allowed
   lateness): detectors that waited out the lateness have already decided
   without it, so feeding it would make results depend on arrival order;
3. hands it to each detector of its stream, catching a detector's failure
   so that one bad event cannot stop the others;
4. advances the partition's watermark and fires the timers it has passed
   (timers belong to the partition of the event that scheduled them, as the
   entity they are about does), unless a detector failed on the event: an
   event that could not be taken never moves the clock.

Before all of it, an event at or past the time of a rules change the partition
has not applied yet (:mod:`detectors.live_rules`; one comparison an event) makes
the partition apply it: new parameters on its detectors, kinds switched off or on.

Events too far ahead of their partition's time never get here: the processor
dead-letters them first (``future_ts``, :mod:`streams.processor`).

Everything the engine and its detectors know pickles, one partition at a time
(:meth:`Engine.snapshot_partition`, what the worker saves) or whole
(:meth:`Engine.snapshot`, :meth:`Engine.restore`). The engine reads no clock, so
the same input in the same order gives the same alerts with the same ids.

>>> from datetime import datetime, timezone
>>> from detectors.events import Inspection
>>> from detectors.inspections.moratorium_violation import MoratoriumViolation
>>> engine = Engine([MoratoriumViolation()])
>>> event = Inspection(event_id="i-1", ts=datetime(2021, 3, 2, 5, tzinfo=timezone.utc),
...     business="B-1", business_size="small", authority="A", inspector="I",
...     kind="unscheduled", basis="routine")
>>> result = engine.process("inspections", event)
>>> result.outcome, [a.kind for a in result.alerts]
('ok', ['moratorium_violation'])
>>> engine.process("inspections", event).outcome
'duplicate'
"""

from __future__ import annotations

import heapq
import logging
import pickle
import zlib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from detectors.base import Bounded, Context, Detector
from detectors.errors import KuzetError
from detectors.events import LANES, Alert
from detectors.live_rules import RulesChange, Timeline
from detectors.rules import FIXED_LIVE, PARAMS, Rules

logger = logging.getLogger(__name__)

# Outcomes of one event; they are also the ``outcome`` label of the metrics.
OK = "ok"
DUPLICATE = "duplicate"
LATE = "late"
FAILED = "failed"
#: An event id seen before with other content: not a redelivery, and never fed.
CONFLICT = "conflict"

#: Contract default: events up to 24 h behind the newest are normal.
DEFAULT_ALLOWED_LATENESS = 24 * 3600.0
#: How far an event may lie ahead of the newest event of its input partition before it
#: is taken for a clock error (``future_ts``), per stream: more than the longest quiet
#: spell a partition has in ordinary traffic. Payments flow by the minute, so a day;
#: inspections come days apart in a small partition, so two weeks; payroll moves in
#: monthly steps (accruals at the month's end, payments by the 10th), so a month.
DEFAULT_FUTURE_SKEW = {"payments": 86400.0, "payroll": 31 * 86400.0, "inspections": 14 * 86400.0}
#: Event ids are grouped by the hour of their event time so whole hours expire at once.
DEDUP_BUCKET_SECONDS = 3600
#: Ceiling on remembered ids per stream: ~140 bytes each with the fingerprint of the
#: content (measured: 137 for ids of 18 characters), so about 280 MB at the ceiling.
#: Past it the oldest hours are forgotten early (counted in ``evicted``).
DEFAULT_DEDUP_MAX_IDS = 2_000_000


class SnapshotError(KuzetError):
    """A snapshot could not be read back."""


class Deduplicator:
    """Remembers the event ids of a bounded span of event time.

    Ids are kept in hourly buckets of their event time; :meth:`expire` forgets
    whole hours, and past ``max_ids`` the oldest hours go first.

    Each id is kept with a fingerprint of its event's content: a redelivery
    has the same content (a duplicate), an event that took another's id does
    not (a conflict; the first stays).

    >>> d = Deduplicator()
    >>> d.add("e1", 0.0, 11), d.add("e1", 0.0, 11), d.add("e1", 0.0, 12), d.add("e2", 7200.0, 13)
    ('new', 'duplicate', 'conflict', 'new')
    >>> d.expire(3600.0); len(d)
    1
    """

    def __init__(self, max_ids: int = DEFAULT_DEDUP_MAX_IDS) -> None:
        self.max_ids = max_ids
        self._ids: dict[str, int] = {}  # id -> fingerprint of its content
        self._buckets: dict[int, list[str]] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str, ts: float, fingerprint: int = 0) -> str:
        """Remember ``event_id``: ``"new"``, or ``"duplicate"``/``"conflict"`` if it was
        remembered with the same or another ``fingerprint``."""
        ids = self._ids
        seen = ids.get(event_id)
        if seen is not None:
            return DUPLICATE if seen == fingerprint else CONFLICT
        ids[event_id] = fingerprint
        bucket = int(ts // DEDUP_BUCKET_SECONDS)
        members = self._buckets.get(bucket)
        if members is None:
            self._buckets[bucket] = [event_id]
        else:
            members.append(event_id)
        if len(ids) > self.max_ids:
            self._drop(min(self._buckets), early=True)
        return _NEW

    def expire(self, before: float) -> None:
        """Forget every bucket that ends at or before ``before``."""
        limit = before // DEDUP_BUCKET_SECONDS
        for bucket in [b for b in self._buckets if b + 1 <= limit]:
            self._drop(bucket, early=False)

    def _drop(self, bucket: int, *, early: bool) -> None:
        members = self._buckets.pop(bucket)
        ids = self._ids
        for member in members:
            ids.pop(member, None)
        if early:
            self.evicted += len(members)


@dataclass(slots=True)
class DetectorFailure:
    """A detector raised on an event (or a timer); the event is dead-lettered."""

    detector: str
    error: str

    @property
    def reason(self) -> str:
        return f"detector {self.detector} failed: {self.error}"[:200]


@dataclass(slots=True)
class Result:
    """What one event led to."""

    outcome: str
    alerts: Sequence[Alert]
    failures: Sequence[DetectorFailure]


# Shared empty results: tuples, so that no caller can append to them by mistake.
_NO_ALERTS: tuple[Alert, ...] = ()
_NO_FAILURES: tuple[DetectorFailure, ...] = ()

_NEW = "new"
_encode = msgspec.json.Encoder().encode


def fingerprint(event: Any) -> int:
    """A fingerprint of an event's content (of a payment, for a payments half), the same
    in every process: ``crc32`` of its canonical JSON (fields in the contract's order,
    unknown fields dropped), so redelivered bytes and re-encoded copies both match."""
    return zlib.crc32(_encode(getattr(event, "payment", event)))


class Partition:
    """The detectors, duplicate memory, event time and timers of one partition of one lane.

    A *lane* is what a detector reads: a stream (``payroll``, ``inspections``,
    ``payments`` by account), or a stream regrouped by another entity
    (``inspections-by-authority``). Each Kafka partition of a lane has its own
    :class:`Partition`: every entity lives in one partition (the key names it),
    so everything the engine and its detectors know about an entity, and the
    event time that decides lateness, timers, expiry and daily sweeps, belongs
    to that partition and moves only with that partition's own events. A
    partition's state therefore pickles on its own (:meth:`Engine.snapshot_partition`;
    the worker saves it with its position: :mod:`streams.state`)
    and moves with the Kafka partition from worker to worker, and the same
    records in the same order give the same alerts however many partitions
    a worker holds or in what order it reads them.
    """

    def __init__(
        self,
        detectors: list[Detector],
        dedup_max_ids: int,
        lane: str = "",
        number: int = 0,
        rules: Rules | None = None,
    ) -> None:
        self.detectors = detectors
        self.lane, self.number = lane, number
        #: The rules this partition's detectors run by (None: no rules: every detector
        #: runs as given); :meth:`_follow_rules` moves them along the engine's timeline.
        self.rules = rules
        #: The event time at which to look at the timeline again: an event at or past
        #: it applies what changed first (-inf: at the next event; inf: never).
        self.next_at = float("-inf") if rules is not None else float("inf")
        self.running = self._running()
        self.owner: Engine | None = None  # the engine, for its timeline (not pickled)
        self.dedup = Deduplicator(dedup_max_ids)
        self.dedup_expired_to = float("-inf")
        self.max_ts = float("-inf")
        # (at, sequence, detector index, key); the sequence keeps ties in FIFO order.
        self.timers: list[tuple[float, int, int, Hashable]] = []
        self.timer_seq = 0
        self.timer_failures = 0  # timers have no event to dead-letter, so they are counted
        self.ctx = Context(self.schedule)
        self.current = 0  # which detector schedule() files a timer for

    def schedule(self, at: float, key: Hashable) -> None:
        self.timer_seq += 1
        heapq.heappush(self.timers, (at, self.timer_seq, self.current, key))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["ctx"]  # holds a bound method; rebuilt on restore
        state.pop("owner", None)  # the engine that adopts it sets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.owner = None
        self.ctx = Context(self.schedule)

    # -- rules changed live (detectors.live_rules) ------------------------------------

    def _running(self) -> list[tuple[int, Detector]]:
        """(index, detector) of the detectors the rules leave switched on."""
        rules = self.rules
        return [
            (index, detector)
            for index, detector in enumerate(self.detectors)
            if rules is None or detector.kind not in PARAMS or rules.kind(detector.kind).enabled
        ]

    def _follow_rules(self, ts: float) -> None:
        """Apply the step of the engine's timeline in force at ``ts`` if it is not yet.

        Called before judging an event at or past :attr:`next_at`. A step whose
        time this partition had already passed (it became known late: published
        after its time, or a restart with another rules file) applies now, from
        this event, and says so.
        """
        owner = self.owner
        if owner is None or owner.timeline is None:
            self.next_at = float("inf")
            return
        timeline = owner.timeline
        index = timeline.index(max(ts, self.max_ts))
        step = timeline.steps[index]
        self.next_at = timeline.next_at(index)
        if step.rules == self.rules:
            return
        where = f"{self.lane}[{self.number}]"
        what = ", ".join(step.names) or "the rules file"
        if self.rules is None:
            logger.info("%s: saved state set to the rules in force (%s)", where, what)
        elif step.at <= self.max_ts:
            logger.warning(
                "%s: rules change %s applied late, from event time %s: the partition had "
                "judged events up to %s before it was known",
                where,
                what,
                _iso(ts),
                _iso(self.max_ts),
            )
        else:
            logger.info("%s: rules change %s applied from event time %s", where, what, _iso(ts))
        self._apply(step.rules, owner)

    def _apply(self, rules: Rules, owner: Engine) -> None:
        """Run by ``rules`` from now on: new parameters on the live detectors (their
        learned state stays); a kind switched off is no longer called, its timers go
        and its state is dropped (switched on again, it starts afresh)."""
        before = self.rules
        on = {detector.kind for _, detector in self.running}
        here = {detector.kind for detector in self.detectors}
        for kind in owner.lane_kinds(self.lane):  # state saved without a kind: add it
            if kind not in here:
                self.detectors.append(owner.fresh(self.lane, kind, self.detectors))
                before = None
        for index, detector in enumerate(self.detectors):
            kind = detector.kind
            if kind not in PARAMS:
                continue
            wanted = rules.kind(kind)
            if kind in on and not wanted.enabled:
                self.timers = [t for t in self.timers if t[2] != index]
                heapq.heapify(self.timers)
                detector = self.detectors[index] = owner.fresh(self.lane, kind, self.detectors)
                _retune(detector, wanted.params)
            elif before is None or before.kind(kind).params != wanted.params:
                _retune(detector, wanted.params)
        self.rules = rules
        self.running = self._running()

    def process(self, event: Any, allowed_lateness: float) -> Result:
        ts = event.ts.timestamp()
        if ts >= self.next_at:  # a rules change is due (rare): apply it first
            self._follow_rules(ts)
        seen = self.dedup.add(event.event_id, ts, fingerprint(event))
        if seen is not _NEW:
            return Result(seen, _NO_ALERTS, _NO_FAILURES)
        if ts < self.max_ts - allowed_lateness:
            return Result(LATE, _NO_ALERTS, _NO_FAILURES)

        alerts: list[Alert] | None = None
        failures: list[DetectorFailure] | None = None
        ctx = self.ctx
        ctx.ts = ts
        ctx.watermark = self.max_ts - allowed_lateness
        for index, detector in self.running:
            self.current = index
            try:
                found = detector.update(event, ctx)
            except Exception as exc:  # a detector bug must not stop the stream
                if failures is None:
                    failures = []
                failures.append(DetectorFailure(detector.kind, f"{type(exc).__name__}: {exc}"))
                continue
            if found:
                if alerts is None:
                    alerts = []
                alerts.extend(found)

        if failures:  # the clock never moves on an event a detector could not take
            return Result(FAILED, alerts or _NO_ALERTS, failures)
        if ts > self.max_ts:
            self.max_ts = ts
            fired = self._advance(allowed_lateness)
            if fired:
                alerts = alerts + fired if alerts else fired
        return Result(OK, alerts or _NO_ALERTS, _NO_FAILURES)

    def _advance(self, allowed_lateness: float) -> list[Alert] | None:
        """Move the watermark to ``max_ts - allowed_lateness``; fire due timers."""
        watermark = self.max_ts - allowed_lateness
        # Ids older than twice the lateness can only come back as late events.
        horizon = watermark - allowed_lateness
        if horizon - self.dedup_expired_to >= DEDUP_BUCKET_SECONDS:
            self.dedup.expire(horizon)
            self.dedup_expired_to = horizon
        timers = self.timers
        if not timers or timers[0][0] > watermark:
            return None
        fired: list[Alert] = []
        ctx = self.ctx
        ctx.watermark = watermark
        ctx.ts = self.max_ts  # decisions are made, and stamped, at the partition's time now
        while timers and timers[0][0] <= watermark:
            at, _, index, key = heapq.heappop(timers)
            self.current = index
            ctx.due = at
            try:
                fired.extend(self.detectors[index].on_timer(key, ctx))
            except Exception:  # a detector bug must not stop the stream
                self.timer_failures += 1
        return fired


def _retune(detector: Detector, params: Any) -> None:
    """Set new parameters on a live detector: they are attributes of the same names."""
    kind = detector.kind
    for name, value in vars(params).items():
        if (kind, name) not in FIXED_LIVE:  # never changed live (rules.overlay refuses)
            setattr(detector, name, value)


def _iso(ts: float) -> str:
    if ts == float("-inf"):
        return "(none)"
    return datetime.fromtimestamp(ts, UTC).isoformat()


def lane_of(detector: Detector) -> str:
    """The lane a detector reads: its stream, or its stream regrouped (``Detector.lane``)."""
    return getattr(detector, "lane", None) or detector.stream


class Engine:
    """Runs detectors over events in event time; see the module docstring.

    Parameters:
        detectors: the detectors to run, fresh: the first partition of each
            lane runs these instances, every other partition a copy of them
            as they were given (detectors that share an object, like the
            payments detectors' payer memory, share it within each copy).
        allowed_lateness: seconds an event may trail the newest event of its
            partition and still be accepted; also how long a decision that
            rests on something not happening waits.
        dedup_max_ids: ceiling on remembered event ids per partition.
        future_skew: per stream, seconds an event may lie ahead of the newest
            event of its input partition (:data:`DEFAULT_FUTURE_SKEW`); the
            processor dead-letters one further ahead (``future_ts``).
        rules: the rules the detectors were built by (:func:`detectors.registry.build_engine`
            builds every kind, and these say which run); None: every detector runs
            as given, and no change applies.
        changes: rules changes, each from its event time on (:mod:`detectors.live_rules`;
            :meth:`set_changes` replaces them while the engine runs).
    """

    def __init__(
        self,
        detectors: Iterable[Detector],
        *,
        allowed_lateness: float = DEFAULT_ALLOWED_LATENESS,
        dedup_max_ids: int = DEFAULT_DEDUP_MAX_IDS,
        future_skew: Mapping[str, float] | None = None,
        rules: Rules | None = None,
        changes: Iterable[RulesChange] = (),
    ) -> None:
        self.allowed_lateness = float(allowed_lateness)
        #: The rules in force at each event time (None: the engine runs no rules).
        self.timeline = Timeline(rules, changes) if rules is not None else None
        self.future_skew = dict(DEFAULT_FUTURE_SKEW)
        self.future_skew.update(future_skew or {})
        self.dedup_max_ids = dedup_max_ids
        self.detectors = list(detectors)
        self._prototypes: dict[str, list[Detector]] = {lane: [] for lane in LANES}
        for detector in self.detectors:
            lane = lane_of(detector)
            if lane not in self._prototypes:
                raise KuzetError(
                    f"detector {detector!r} reads unknown lane {lane!r}; "
                    f"lanes are {', '.join(LANES)}"
                )
            self._prototypes[lane].append(detector)
        # Fresh copies are unpickled from these; the given instances themselves serve the
        # first partition of their lane (so a caller holding one sees its state).
        self._blank = {
            lane: pickle.dumps(dets, pickle.HIGHEST_PROTOCOL)
            for lane, dets in self._prototypes.items()
        }
        self._handed_out: set[str] = set()
        self._partitions: dict[tuple[str, int], Partition] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        for partition in self._partitions.values():  # restored whole: they are ours
            partition.owner = self

    def lanes(self) -> list[str]:
        """The lanes some detector reads (switched on or not)."""
        return [lane for lane, dets in self._prototypes.items() if dets]

    def enabled_kinds(self, at: float = float("-inf")) -> list[str]:
        """The kinds that run at event time ``at`` (by default: by the rules file)."""
        rules = self.timeline.rules_at(at) if self.timeline is not None else None
        return [
            d.kind
            for d in self.detectors
            if rules is None or d.kind not in PARAMS or rules.kind(d.kind).enabled
        ]

    def partition(self, lane: str, partition: int) -> Partition:
        """The state of one partition of a lane, created empty on first use."""
        state = self._partitions.get((lane, partition))
        if state is None:
            if lane in self._handed_out:
                detectors = pickle.loads(self._blank[lane])  # a fresh copy of the prototypes
            else:
                detectors = self._prototypes[lane]
                self._handed_out.add(lane)
            base = self.timeline.base if self.timeline is not None else None
            state = Partition(detectors, self.dedup_max_ids, lane, partition, base)
            state.owner = self
            self._partitions[lane, partition] = state
        return state

    # -- rules changed live -------------------------------------------------------

    def set_changes(self, changes: Iterable[RulesChange]) -> Timeline:
        """Run by ``changes`` from now on (all of them: they replace the earlier set).

        Each partition looks at the new timeline before its next event; a change
        whose time it has already passed applies from that event (and is logged
        as late). Returns the timeline, whose ``verdicts`` say which were refused.
        """
        if self.timeline is None:
            raise KuzetError("this engine runs no rules (built without them): nothing to change")
        self.timeline = Timeline(self.timeline.base, changes)
        for state in self._partitions.values():
            state.next_at = float("-inf")
        return self.timeline

    def lane_kinds(self, lane: str) -> list[str]:
        """The kinds of a lane's detectors, in their order."""
        return [detector.kind for detector in self._prototypes[lane]]

    def fresh(self, lane: str, kind: str, live: Sequence[Detector]) -> Detector:
        """A new detector of ``kind`` for a partition whose detectors are ``live``.

        What the lane's detectors share (a :class:`~detectors.base.Bounded` memory,
        like the payments detectors' payer ledger) is taken from ``live``.
        """
        blank = pickle.loads(self._blank[lane])
        [made] = [detector for detector in blank if detector.kind == kind]
        by_kind = {detector.kind: detector for detector in live}
        for name, value in vars(made).items():
            if not isinstance(value, Bounded):
                continue
            for other in blank:
                if other is not made and getattr(other, name, None) is value:
                    source = by_kind.get(other.kind)
                    if source is not None:
                        setattr(made, name, getattr(source, name))
                        break
        return made

    def partitions(self) -> list[tuple[str, int]]:
        return sorted(self._partitions)

    # -- processing -------------------------------------------------------------

    def process(self, lane: str, event: Any, partition: int = 0) -> Result:
        """Feed one decoded event of ``lane`` from ``partition``; return its outcome, alerts."""
        state = self._partitions.get((lane, partition)) or self.partition(lane, partition)
        return state.process(event, self.allowed_lateness)

    @property
    def timer_failures(self) -> int:
        return sum(p.timer_failures for p in self._partitions.values())

    # -- inspection -------------------------------------------------------------

    def watermark(self, lane: str, partition: int | None = None) -> float:
        """Watermark in epoch seconds of one partition, or the lowest of the lane's.

        ``-inf`` before any event.
        """
        if partition is not None:
            state = self._partitions.get((lane, partition))
            return (state.max_ts if state else float("-inf")) - self.allowed_lateness
        times = [p.max_ts for (name, _), p in self._partitions.items() if name == lane]
        return (min(times) if times else float("-inf")) - self.allowed_lateness

    def _of_lane(self, lane: str) -> list[Partition]:
        return [p for (name, _), p in self._partitions.items() if name == lane]

    def tracked_ids(self, lane: str) -> int:
        return sum(len(p.dedup) for p in self._of_lane(lane))

    def pending_timers(self, lane: str) -> int:
        return sum(len(p.timers) for p in self._of_lane(lane))

    def entities(self) -> dict[str, int]:
        """Entities tracked per detector kind, over every partition (for metrics)."""
        counts: dict[str, int] = {}
        for state in self._partitions.values():
            for detector in state.detectors:
                counts[detector.kind] = counts.get(detector.kind, 0) + detector.n_entities
        return counts

    def evictions(self) -> dict[str, int]:
        """Entities dropped at a detector's cap (``Bounded.max_entities``), per detector
        kind, over every partition; the payments detectors' shared payer memory counts as
        ``payer_ledger`` (once per partition)."""
        counts: dict[str, int] = {}
        for state in self._partitions.values():
            ledgers = {}
            for detector in state.detectors:
                counts[detector.kind] = counts.get(detector.kind, 0) + detector.evicted
                payers = getattr(detector, "payers", None)
                if payers is not None:
                    ledgers[id(payers)] = payers.evicted
            if ledgers:
                counts["payer_ledger"] = counts.get("payer_ledger", 0) + sum(ledgers.values())
        return counts

    # -- state of one partition -------------------------------------------------

    def snapshot_partition(self, lane: str, partition: int) -> bytes:
        """What one partition of a lane knows, as bytes (a pickle)."""
        return pickle.dumps(self.partition(lane, partition), protocol=pickle.HIGHEST_PROTOCOL)

    def adopt_partition(self, lane: str, partition: int, state: Partition) -> None:
        """Run one partition from ``state`` (restored by the caller) from now on.

        Before its next event it takes the rules in force (:meth:`set_changes`).
        """
        state.owner = self
        state.lane, state.number = lane, partition
        if self.timeline is not None:
            state.next_at = float("-inf")
        self._partitions[lane, partition] = state

    def drop_partition(self, lane: str, partition: int) -> None:
        """Forget one partition (it moved to another worker)."""
        self._partitions.pop((lane, partition), None)

    # -- the whole engine -------------------------------------------------------

    def snapshot(self) -> bytes:
        """Everything the engine knows, as bytes (a pickle)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, blob: bytes) -> Engine:
        """Rebuild an engine from :meth:`snapshot` output (trusted input only)."""
        try:
            engine = pickle.loads(blob)
        except Exception as exc:
            raise SnapshotError(
                f"cannot read engine snapshot ({type(exc).__name__}: {exc}); "
                "delete it to start with empty state"
            ) from exc
        if not isinstance(engine, cls):
            raise SnapshotError(f"snapshot holds a {type(engine).__name__}, not an Engine")
        return engine
