"""The scorecard: how well alerts find what is really in a labelled stream.

Pure computation, no Kafka: it takes a truth file (contract "Truth files"),
the alerts of a run and the number of events each stream fed the engine, and
scores every alert kind exactly as the contract's "Measuring detection" says:

- **per entity**: a true positive (TP) is an entity with a truth finding of
  the kind and at least one alert of that kind; a false positive (FP) an
  alerted entity without one; a false negative (FN) a truth entity never
  alerted. ``moratorium_violation`` is judged **per inspection event**
  instead: the units are the event ids of the truth findings and of the
  alerts. Precision = TP / (TP + FP), recall = TP / (TP + FN), and
  F1 = 2 TP / (2 TP + FP + FN), their harmonic mean, which is also defined
  (as 0) when nothing was alerted.
- **time to detect** (TTD), for each true positive: the event time of the
  first alert of the kind about the unit minus the ``start`` of its truth
  finding (the earliest, if the unit has several), in hours; reported as the
  median and the 90th percentile (linear interpolation between ranks). An
  alert raised *before* the start gives a negative TTD, and the sign is kept:
  it means the detector saw the pattern coming (or was alerting on the entity
  for another reason already), and hiding it would flatter neither side.
- **alerts per 10,000 events** of the kind's stream (payments, payroll or
  inspections), for every kind: the alert budget. For a kind without truth
  findings in the file it is the only figure; precision, recall, F1 and TTD
  are then "n/a", never a division by zero.
- **early warning**: for ``payroll_anomaly``, the share of its truth
  employers that also have a ``salary_arrears`` finding and were alerted
  (``payroll_anomaly``) before that arrears finding's start, the issue's
  target being at least half; "n/a" when the truth pairs no employer.

The scorecard shows the real detectors and, when given, the naive baselines
(:mod:`detectors.baselines`) side by side: :meth:`Scorecard.render` for
people, :meth:`Scorecard.to_dict` (``--scorecard-json``) for tests and CI.

>>> from datetime import datetime, timezone
>>> from detectors.base import make_alert
>>> truth = [TruthFinding("mass_layoff", "E-1", datetime(2021, 3, 1, tzinfo=timezone.utc))]
>>> tally = AlertTally.from_alerts([make_alert(kind="mass_layoff", entity="E-1", finding="f",
...     ts=datetime(2021, 3, 2, tzinfo=timezone.utc), severity="warning", score=1.0,
...     reasons=["r"], evidence={}, event_ids=[])])
>>> score = Scorecard.build(truth, tally, {"payroll": 5000}).detector["mass_layoff"]
>>> score.tp, score.fp, score.fn, score.f1, score.ttd_median_hours, score.alerts_per_10k
(1, 0, 0, 1.0, 24.0, 2.0)
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from detectors.errors import KuzetError
from detectors.events import KIND_DOMAIN, STREAMS, Alert, AlertKind
from streams.codec import decode_alert

#: Kinds judged per inspection event rather than per entity (contract).
PER_EVENT_KINDS = frozenset({"moratorium_violation"})
#: Alert budgets are stated per this many events of a stream.
PER_EVENTS = 10_000
#: The early-warning pairing: alerts of the first kind, before truth of the second.
EARLY_KIND, LATER_KIND = "payroll_anomaly", "salary_arrears"
#: The issue's target for that share ("at least half of the employers").
EARLY_TARGET = 0.5
HOUR = 3600.0
NA = "n/a"


class TruthError(KuzetError):
    """A truth file could not be read; the message says what is wrong with it."""


class TruthFinding(msgspec.Struct, frozen=True):
    """One true pattern in the stream (one entry of ``truth.json``'s ``findings``)."""

    kind: AlertKind
    entity: Annotated[str, Meta(min_length=1, max_length=64)]
    start: Annotated[datetime, Meta(tz=True)]
    event_ids: list[str] = []


class _TruthFile(msgspec.Struct):
    findings: list[TruthFinding]


_truth_decoder = msgspec.json.Decoder(_TruthFile)


def parse_truth(data: bytes, name: str = "truth file") -> list[TruthFinding]:
    """Findings of a truth document; raise :class:`TruthError` naming the problem."""
    try:
        return _truth_decoder.decode(data).findings
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError too
        raise TruthError(
            f'{name}: {exc}; expected {{"findings": [{{"kind", "entity", "start", '
            '"event_ids"}, ...]}} (contract "Truth files")'
        ) from None


def load_truth(path: Path) -> list[TruthFinding]:
    """Read and check ``truth.json``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TruthError(f"cannot read truth file {path}: {exc.strerror}") from None
    return parse_truth(data, str(path))


# --- alerts, as far as the scorecard cares ----------------------------------------------


@dataclass
class AlertTally:
    """What scoring needs from a run's alerts, gathered as they go by.

    Per kind: how many alerts, and the event time (epoch seconds) of the first
    alert about each entity, or, for :data:`PER_EVENT_KINDS`, about each
    event id. Memory grows with alerted entities, not with alerts. A
    ``resolved`` alert says a finding has ended: it detects nothing and is no
    part of the alert budget, so it is left out.
    """

    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, alert: Alert) -> None:
        if alert.status == "resolved":
            return
        kind = alert.kind
        self.counts[kind] += 1
        ts = alert.ts.timestamp()
        first = self.first.get(kind)
        if first is None:
            first = self.first[kind] = {}
        units = alert.event_ids if kind in PER_EVENT_KINDS else (alert.entity,)
        for unit in units:
            seen = first.get(unit)
            if seen is None or ts < seen:
                first[unit] = ts

    @classmethod
    def from_alerts(cls, alerts: Iterable[Alert]) -> AlertTally:
        tally = cls()
        for alert in alerts:
            tally.add(alert)
        return tally

    @classmethod
    def from_file(cls, path: Path) -> AlertTally:
        """Tally an alerts file (JSON Lines, one alert per line)."""
        with open(path, "rb") as lines:
            return cls.from_alerts(decode_alert(line) for line in lines if line.strip())


# --- scores -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindScore:
    """Figures of one alert kind for one set of alerts (detectors or baselines).

    Counts are of units: entities, or inspection events for per-event kinds.
    Every figure that cannot be computed is None ("n/a").
    """

    kind: str
    alerts: int
    alerts_per_10k: float | None
    truth: int | None = None
    tp: int | None = None
    fp: int | None = None
    fn: int | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    ttd_median_hours: float | None = None
    ttd_p90_hours: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "truth": self.truth,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "ttd_hours": {"median": self.ttd_median_hours, "p90": self.ttd_p90_hours},
            "alerts_per_10k": self.alerts_per_10k,
        }


@dataclass(frozen=True)
class EarlyWarning:
    """How many paired truth employers were alerted before their arrears began."""

    paired: int
    early: int

    @property
    def share(self) -> float | None:
        return self.early / self.paired if self.paired else None

    def to_dict(self) -> dict[str, Any]:
        return {"paired": self.paired, "early": self.early, "share": self.share}

    def render(self) -> str:
        if self.share is None:
            return NA
        return f"{self.early}/{self.paired} ({self.share:.0%})"


def truth_starts(findings: Iterable[TruthFinding]) -> dict[str, dict[str, float]]:
    """Per kind, the earliest truth start (epoch seconds) of each unit (entity or event id)."""
    starts: dict[str, dict[str, float]] = {}
    for finding in findings:
        kind_starts = starts.setdefault(finding.kind, {})
        ts = finding.start.timestamp()
        units = finding.event_ids if finding.kind in PER_EVENT_KINDS else (finding.entity,)
        for unit in units:
            if unit not in kind_starts or ts < kind_starts[unit]:
                kind_starts[unit] = ts
    return starts


def score_kind(
    kind: str,
    starts: Mapping[str, float] | None,
    tally: AlertTally,
    events: Mapping[str, int],
) -> KindScore:
    """Score one kind; ``starts`` maps each truth unit to its start, None if no truth."""
    first = tally.first.get(kind, {})
    alerts = tally.counts[kind]
    stream_events = events.get(KIND_DOMAIN[kind][0], 0)
    per_10k = alerts * PER_EVENTS / stream_events if stream_events else None
    if not starts:
        return KindScore(kind, alerts, per_10k)
    tp = sum(1 for unit in first if unit in starts)
    fp = len(first) - tp
    fn = len(starts) - tp
    delays = sorted((first[unit] - start) / HOUR for unit, start in starts.items() if unit in first)
    return KindScore(
        kind=kind,
        alerts=alerts,
        alerts_per_10k=per_10k,
        truth=len(starts),
        tp=tp,
        fp=fp,
        fn=fn,
        precision=tp / (tp + fp) if tp + fp else None,
        recall=tp / (tp + fn),
        f1=2 * tp / (2 * tp + fp + fn),
        ttd_median_hours=statistics.median(delays) if delays else None,
        ttd_p90_hours=quantile(delays, 0.9) if delays else None,
    )


def quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolating linearly between ranks.

    >>> quantile([0.0, 10.0], 0.9), quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.9)
    (9.0, 4.6)
    """
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def early_warning(starts: Mapping[str, Mapping[str, float]], tally: AlertTally) -> EarlyWarning:
    """Truth employers of both :data:`EARLY_KIND` and :data:`LATER_KIND`, and how many
    of them had an :data:`EARLY_KIND` alert before their first :data:`LATER_KIND` start."""
    later = starts.get(LATER_KIND, {})
    paired = [entity for entity in starts.get(EARLY_KIND, {}) if entity in later]
    first = tally.first.get(EARLY_KIND, {})
    early = sum(1 for entity in paired if entity in first and first[entity] < later[entity])
    return EarlyWarning(len(paired), early)


# --- the card ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scorecard:
    """Every kind's figures for the detectors and, optionally, the naive baselines."""

    events: dict[str, int]
    truth_findings: dict[str, int]
    detector: dict[str, KindScore]
    baseline: dict[str, KindScore] | None
    early: dict[str, EarlyWarning]

    @classmethod
    def build(
        cls,
        truth: Iterable[TruthFinding],
        detector: AlertTally,
        events: Mapping[str, int],
        baseline: AlertTally | None = None,
    ) -> Scorecard:
        """Score ``detector`` (and ``baseline``) alerts against ``truth``.

        ``events`` counts the events each stream fed the engine (accepted: not
        invalid, duplicate or late), the denominator of alerts per 10,000.
        """
        truth = list(truth)
        starts = truth_starts(truth)
        tallies = {"detector": detector, "baseline": baseline}
        scores = {
            side: {kind: score_kind(kind, starts.get(kind), tally, events) for kind in KIND_DOMAIN}
            for side, tally in tallies.items()
            if tally is not None
        }
        return cls(
            events={stream: events.get(stream, 0) for stream in STREAMS},
            truth_findings=dict(Counter(finding.kind for finding in truth)),
            detector=scores["detector"],
            baseline=scores.get("baseline"),
            early={
                side: early_warning(starts, tally)
                for side, tally in tallies.items()
                if tally is not None
            },
        )

    def sides(self) -> list[tuple[str, dict[str, KindScore]]]:
        sides = [("detector", self.detector)]
        if self.baseline is not None:
            sides.append(("baseline", self.baseline))
        return sides

    def to_dict(self) -> dict[str, Any]:
        """The card as plain JSON-ready data (``None`` where a figure is n/a)."""
        return {
            "events": self.events,
            "truth_findings": {kind: self.truth_findings.get(kind, 0) for kind in KIND_DOMAIN},
            "kinds": {
                kind: {
                    "stream": KIND_DOMAIN[kind][0],
                    "unit": "event" if kind in PER_EVENT_KINDS else "entity",
                    "detector": self.detector[kind].to_dict(),
                    "baseline": self.baseline[kind].to_dict() if self.baseline else None,
                }
                for kind in KIND_DOMAIN
            },
            f"{EARLY_KIND}_before_{LATER_KIND}": {
                side: self.early[side].to_dict() if side in self.early else None
                for side in ("detector", "baseline")
            },
        }

    def render(self) -> str:
        """A fixed-width table: per kind, a detector row and a naive baseline row."""
        events = ", ".join(f"{stream} {count:,}" for stream, count in self.events.items())
        lines = [
            f"scorecard: {sum(self.truth_findings.values()):,} truth findings; "
            f"events fed: {events}",
            "",
            _ROW.format(*_HEADER),
        ]
        for kind in KIND_DOMAIN:
            label = kind + ("*" if kind in PER_EVENT_KINDS else "")
            for side, scores in self.sides():
                lines.append(_ROW.format(label, side, *_cells(scores[kind])))
                label = ""
        lines += [
            "",
            "P precision, R recall, F1; truth, TP, FP, FN count entities (* inspection events).",
            "TTD: hours from a pattern's start to its first alert, median and p90 "
            "(negative: alerted before the start).",
            "/10k: alerts per 10,000 events of the kind's stream. n/a: no truth of the kind, "
            "or no alerts.",
            f"{EARLY_KIND} alerted before the {LATER_KIND} start (target >= {EARLY_TARGET:.0%}): "
            + ", ".join(f"{side} {self.early[side].render()}" for side, _ in self.sides()),
        ]
        return "\n".join(lines)


_ROW = "{:<22}{:<9}{:>6}{:>7}{:>6}{:>6}{:>6}{:>6}{:>6}{:>6}{:>9}{:>8}{:>8}"
_HEADER = (
    "kind",
    "by",
    "truth",
    "alerts",
    "TP",
    "FP",
    "FN",
    "P",
    "R",
    "F1",
    "TTD med",
    "p90 h",
    "/10k",
)


def _cells(score: KindScore) -> list[str]:
    def count(value: int | None) -> str:
        return NA if value is None else f"{value:,}"

    def ratio(value: float | None) -> str:
        return NA if value is None else f"{value:.2f}"

    def hours(value: float | None) -> str:
        return NA if value is None else f"{value:.1f}"

    return [
        count(score.truth),
        f"{score.alerts:,}",
        count(score.tp),
        count(score.fp),
        count(score.fn),
        ratio(score.precision),
        ratio(score.recall),
        ratio(score.f1),
        hours(score.ttd_median_hours),
        hours(score.ttd_p90_hours),
        ratio(score.alerts_per_10k),
    ]
