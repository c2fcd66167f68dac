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
from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from detectors.events import KIND_DOMAIN, MAX_ALERT_EVENT_IDS, SEVERITY_RANK, Alert


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


class Detector(ABC):
    """Base class of every detector.

    Subclasses set ``kind`` (the alert kind they raise) and ``stream`` (the
    logical stream they watch) and implement :meth:`update`; one that does
    not cannot be built (``TypeError`` names the method).
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


def alert_id(kind: str, entity: str, finding: str, severity: str) -> str:
    """Deterministic id of an alert: the same finding at the same severity, the same id.

    An escalation of a finding (a higher severity) is a new alert with a new id;
    a redelivered or replayed event reproduces the old one.
    """
    material = "\x1f".join((kind, entity, finding, severity)).encode()
    return hashlib.blake2b(material, digest_size=16).hexdigest()


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
) -> Alert:
    """Build an alert with its deterministic id; ``finding`` names the finding within the entity."""
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
