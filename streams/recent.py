"""The worker's recent alerts, kept in a bounded ring for the ``/alerts`` page.

Operators look here first when a notification arrives: the notification says
which kind and how many, the page says which entities. Alerts carry entity ids
by design (they are the product); they stay on this page and the ``alerts``
topic, never in metric labels.

>>> from datetime import UTC, datetime
>>> from detectors.base import make_alert
>>> ring = RecentAlerts(maxlen=2)
>>> ring.add([make_alert(kind="moratorium_violation", entity="B-1", finding="i-1",
...     ts=datetime(2021, 3, 2, tzinfo=UTC), severity="critical", score=1.0,
...     reasons=["r"], evidence={}, event_ids=["i-1"])])
>>> [a.entity for a in ring.query(severity="critical")]
['B-1']
>>> parse_query({"limit": "0"})
Traceback (most recent call last):
...
streams.recent.QueryError: limit must be an integer from 1 to 1000, not '0'
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from detectors.errors import KuzetError
from detectors.events import KIND_DOMAIN, SEVERITY_RANK, Alert
from streams.codec import encode_alert

#: Alerts kept: enough for an operator's morning, ~2 kB each so ~2 MB at most.
DEFAULT_MAXLEN = 1000
#: Alerts a request returns unless it asks for another ``limit``.
DEFAULT_LIMIT = 100


class QueryError(KuzetError):
    """A bad ``/alerts`` query parameter."""


class RecentAlerts:
    """The last ``maxlen`` alerts published, newest last."""

    def __init__(self, maxlen: int = DEFAULT_MAXLEN) -> None:
        self.maxlen = maxlen
        self._ring: deque[Alert] = deque(maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._ring)

    def add(self, alerts: Iterable[Alert]) -> None:
        self._ring.extend(alerts)

    def query(
        self, kind: str | None = None, severity: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> list[Alert]:
        """The newest ``limit`` alerts of ``kind`` and ``severity`` (None: any), newest first."""
        found: list[Alert] = []
        for alert in reversed(self._ring):
            if (kind is None or alert.kind == kind) and (
                severity is None or alert.severity == severity
            ):
                found.append(alert)
                if len(found) >= limit:
                    break
        return found

    def to_json(self, alerts: list[Alert]) -> bytes:
        """A JSON array of alerts, each as on the ``alerts`` topic."""
        return b"[" + b",".join(encode_alert(alert) for alert in alerts) + b"]"


def parse_query(query: Mapping[str, str], maxlen: int = DEFAULT_MAXLEN) -> dict:
    """``kind``, ``severity`` and ``limit`` from a request's query, checked."""
    kind = query.get("kind") or None
    if kind is not None and kind not in KIND_DOMAIN:
        raise QueryError(f"unknown kind {kind!r}; kinds are {', '.join(KIND_DOMAIN)}")
    severity = query.get("severity") or None
    if severity is not None and severity not in SEVERITY_RANK:
        raise QueryError(
            f"unknown severity {severity!r}; severities are {', '.join(SEVERITY_RANK)}"
        )
    raw = query.get("limit") or str(DEFAULT_LIMIT)
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= maxlen:
        raise QueryError(f"limit must be an integer from 1 to {maxlen}, not {raw!r}")
    return {"kind": kind, "severity": severity, "limit": limit}
