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

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from detectors.events import Alert


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


class Detector:
    """Base class of every detector.

    Subclasses set ``kind`` (the alert kind they raise) and ``stream`` (the
    logical stream they watch) and implement :meth:`update`.
    """

    kind: ClassVar[str]
    stream: ClassVar[str]
    #: The lane it reads (:data:`detectors.events.LANES`): its stream as keyed,
    #: unless a detector needs the stream regrouped by another entity.
    lane: ClassVar[str | None] = None

    def update(self, event: Any, ctx: Context) -> list[Alert]:
        """Take one event; return the alerts it raises (usually none)."""
        raise NotImplementedError

    def on_timer(self, key: Hashable, ctx: Context) -> list[Alert]:
        """Called once the watermark has passed a time this detector scheduled."""
        return []

    @property
    def n_entities(self) -> int:
        """How many entities this detector keeps state for (for metrics)."""
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, stream={self.stream!r})"
