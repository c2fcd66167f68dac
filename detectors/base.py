"""The detector interface: two verbs, ``update`` and ``on_timer``.

A detector watches one stream. The engine hands it each accepted event, in
arrival order, with a :class:`Context` that carries the event time and the
stream's watermark; the detector returns the alerts the event completes. A
detector whose decision rests on something *not* happening asks for a timer at
an event time; the engine calls ``on_timer`` once the watermark has passed it.

Conventions (River's): parameters are stored under their own names in
``__init__``; learned state is kept apart, starts empty, and pickles, because
a pickle of the engine is the checkpoint.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import msgspec

from detectors.events import (
    ALERT_SCHEMA_VERSION,
    KIND_DOMAIN,
    MAX_ALERT_EVENT_IDS,
    SEVERITY_RANK,
    Alert,
)


class Context:
    """What a detector may know and do besides reading the event.

    ``ts`` is the current event time (epoch seconds): the event's own in
    ``update``; in ``on_timer`` the newest event time of the partition, the
    moment the decision can be made, which is what an alert raised then should
    carry. ``watermark`` is the completeness mark: every event older than it
    has been seen, up to the allowed lateness. ``schedule`` asks for
    ``on_timer(key)`` once the watermark reaches ``at``; in ``on_timer``,
    ``due`` is that ``at``.
    """

    __slots__ = ("_schedule", "due", "ts", "watermark")

    def __init__(self, schedule: Any) -> None:
        self._schedule = schedule
        self.ts = 0.0
        self.due = 0.0
        self.watermark = float("-inf")

    def schedule(self, at: float, key: Hashable) -> None:
        self._schedule(at, key)


# --- bounded state -----------------------------------------------------------------

#: Entities a detector keeps in each of its per-entity maps, per engine partition, before
#: the least recently active go (``Bounded.max_entities``). Far above honest traffic (a
#: scale-0.5 simulated world peaks at 6,641 accounts in one partition), and a bound on
#: what a flood of made-up ids costs. Measured (``python -m bench.memory``: a million new
#: ids in a day, one partition per lane), a million tracked entities take, resident and
#: saved (pickled): payments ~2.5 GB and ~0.65 GB per million accounts (the payer
#: ledger, pyramid_scheme, mule_account and payment_anomaly each keep one), payroll
#: ~2.4 GB and ~0.44 GB per million employers, inspections ~0.9 KB a business and
#: ~4 KB an inspector. At this cap a flooded partition holds ~1.45 GB resident (~0.35 GB
#: saved) for payments, ~1.5 GB (~0.25 GB) for payroll, ~1 GB (~0.08 GB) for
#: inspections' two lanes together (inspector_anomaly's own cap is lower): a worker needs that per
#: partition it holds under attack. More honest entities per partition than the cap
#: call for more partitions, not a higher cap.
DEFAULT_MAX_ENTITIES = 500_000
#: An eviction drops the least recently active down to this share of the cap in one go,
#: so the sort it costs is paid once per tenth of the cap of new entities (amortised).
EVICT_TO = 0.9

K = TypeVar("K")
V = TypeVar("V")


class Bounded:
    """A cap on the entities a detector (or a memory detectors share) keeps.

    Each per-entity map is checked where an entity is added, ``len(map) >
    self.max_entities`` and nothing more, so the per-event cost is one comparison.
    Past the cap :meth:`_shed` drops the least recently active entities (by the
    event time of their last activity; ties oldest-added first) down to
    ``EVICT_TO`` of the cap, in one go, and counts them in ``evicted`` (a class
    attribute until the first eviction, so a detector that never evicts pickles
    no count).

    >>> memory = Bounded()
    >>> memory.max_entities = 10
    >>> last_seen = {f"A-{n}": float(n * 7 % 11) for n in range(11)}  # event times
    >>> [key for key, _ in memory._shed(last_seen)], len(last_seen), memory.evicted
    (['A-0', 'A-8'], 9, 2)
    """

    #: Most entities kept in each per-entity map (per engine partition).
    max_entities: int = DEFAULT_MAX_ENTITIES
    #: Entities dropped at the cap, over the detector's life (not idle ones forgotten).
    evicted: int = 0

    def _shed(
        self, entities: dict[K, V], last_active: Callable[[V], float] | None = None
    ) -> list[tuple[K, V]]:
        """Drop the least recently active of ``entities`` down to ``EVICT_TO`` of the cap.

        ``last_active`` reads an entity's last activity (event time) from its value;
        None when the values are those times. Returns what was dropped, so that the
        caller can forget what else it keeps about them.
        """
        excess = len(entities) - int(self.max_entities * EVICT_TO)
        if excess <= 0:
            return []
        values = entities.values()
        times: list[Any] = list(values if last_active is None else map(last_active, values))
        order = sorted(times)
        bar = order[excess - 1]
        ties = excess - bisect_left(order, bar)  # how many of those at the bar go too
        gone: list[tuple[K, V]] = []
        for (key, value), at in zip(entities.items(), times, strict=True):
            if at < bar or (at == bar and ties > 0):
                ties -= at == bar
                gone.append((key, value))
        for key, _ in gone:
            del entities[key]
        self.evicted += len(gone)
        return gone

    @staticmethod
    def _forget_idle(
        entities: dict[K, V], before: float, last_active: Callable[[V], float] | None = None
    ) -> list[tuple[K, V]]:
        """Drop the entities last active before ``before`` (idle, not evicted); return them."""
        if last_active is None:
            gone = [(k, v) for k, v in entities.items() if v < before]  # type: ignore[operator]
        else:
            gone = [(k, v) for k, v in entities.items() if last_active(v) < before]
        for key, _ in gone:
            del entities[key]
        return gone


class Detector(Bounded, ABC):
    """Base class of every detector.

    Subclasses set ``kind`` (the alert kind they raise) and ``stream`` (the
    logical stream they watch) and implement :meth:`update`; one that does
    not cannot be built (``TypeError`` names the method). Each keeps at most
    ``max_entities`` entities in each per-entity map (:class:`Bounded`).
    """

    kind: ClassVar[str]
    stream: ClassVar[str]
    #: The lane it reads (:data:`detectors.events.LANES`): its stream as keyed,
    #: unless a detector needs the stream regrouped by another entity.
    lane: ClassVar[str | None] = None

    @abstractmethod
    def update(self, event: Any, ctx: Context) -> list[Alert]:
        """Take one event; return the alerts it raises (usually none)."""

    def on_timer(self, key: Hashable, ctx: Context) -> list[Alert]:
        """Called once the watermark has passed a time this detector scheduled."""
        return []

    @property
    def n_entities(self) -> int:
        """How many entities this detector keeps state for (for metrics)."""
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, stream={self.stream!r})"


# --- alerts ------------------------------------------------------------------------


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


def alert_id(kind: str, entity: str, finding: str, severity: str) -> str:
    """Deterministic id of an alert: the same finding at the same severity, the same id.

    An escalation of a finding (a higher severity) is a new alert with a new id, and so
    is its resolution (``severity`` is then ``"resolved"``); a redelivered or replayed
    event reproduces the old one.
    """
    return _digest(kind, entity, finding, severity)


def finding_id(kind: str, entity: str, finding: str) -> str:
    """Deterministic id of a finding: the same for its first alert, escalations and end."""
    return _digest(kind, entity, finding)


def make_alert(
    *,
    kind: str,
    entity: str,
    finding: str,
    ts: datetime,
    severity: str,
    score: float,
    reasons: list[str],
    evidence: dict[str, Any],
    event_ids: Sequence[str],
    previous: str | None = None,
) -> Alert:
    """Build an alert with its deterministic ids; ``finding`` names the finding within the entity.

    ``previous`` is the severity of the finding's last alert, None for its first: the
    alert is then ``open``; otherwise it is ``escalated`` and supersedes that alert.
    """
    domain, entity_type = KIND_DOMAIN[kind]
    return Alert(
        alert_id=alert_id(kind, entity, finding, severity),
        kind=kind,
        domain=domain,
        entity=entity,
        entity_type=entity_type,
        ts=ts.astimezone(UTC),  # one notation for every alert: UTC, encoded with Z
        severity=severity,
        score=min(1.0, max(0.0, float(score))),
        reasons=reasons,
        evidence=evidence,
        event_ids=list(event_ids[-MAX_ALERT_EVENT_IDS:]),
        finding_id=finding_id(kind, entity, finding),
        supersedes=None if previous is None else alert_id(kind, entity, finding, previous),
        status="open" if previous is None else "escalated",
        schema_version=ALERT_SCHEMA_VERSION,
    )


def resolve_alert(
    *,
    kind: str,
    entity: str,
    finding: str,
    ts: datetime,
    severity: str,
    reasons: list[str],
    evidence: dict[str, Any],
    event_ids: Sequence[str] = (),
) -> Alert:
    """The alert that ends a finding: its pattern is gone (debt paid, a window passed).

    ``severity`` is the finding's last; the alert supersedes the alert raised at it,
    keeps that severity (what the finding was), scores 0 and is ``resolved``.
    ``evidence`` says why it ended, under ``resolution``.
    """
    alert = make_alert(
        kind=kind,
        entity=entity,
        finding=finding,
        ts=ts,
        severity=severity,
        score=0.0,
        reasons=reasons,
        evidence=evidence,
        event_ids=event_ids,
        previous=severity,
    )
    return msgspec.structs.replace(
        alert, alert_id=alert_id(kind, entity, finding, "resolved"), status="resolved"
    )


def escalates(severity: str, raised: str | None) -> bool:
    """Is an alert at ``severity`` news, after one at ``raised`` (None: none yet)?

    A finding is alerted once, and again only when its severity grows.

    >>> escalates("warning", None), escalates("critical", "warning")
    (True, True)
    >>> escalates("warning", "warning"), escalates("warning", "critical")
    (False, False)
    """
    return raised is None or SEVERITY_RANK[severity] > SEVERITY_RANK[raised]


def previous_of(raised: str | None) -> str | None:
    """A detector's record of the severity raised, as ``make_alert``'s ``previous``.

    Detectors start a finding's record at ``"info"`` (below any alert they raise) or
    None: both mean no alert yet.
    """
    return None if raised is None or raised == "info" else raised
