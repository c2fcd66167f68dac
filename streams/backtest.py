"""``kuzet backtest``: the live detectors, offline, over a historical stream file.

Reads JSON Lines records (``{"topic", "key", "value"}``, contract "Files"),
runs each through the same :class:`~streams.processor.Processor` and engine the
worker uses, writes alerts as JSON Lines, and reports what it skipped: bad
lines are counted by reason, with the first few quoted by line number.

With ``baseline=True`` (``kuzet backtest --truth``) every accepted event,
decoded once, is also handed to an engine of naive rules
(:mod:`detectors.baselines`), so the scorecard (:mod:`streams.scorecard`) can
show what the real detectors add. A progress bar follows the bytes read when
stderr is a terminal.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.baselines import build_baseline_engine
from detectors.engine import Engine
from detectors.errors import KuzetError
from detectors.events import BY_AUTHORITY, STREAMS, Alert
from detectors.live_rules import RulesChange
from detectors.registry import DetectionConfig, build_engine
from streams.codec import InvalidEvent, decode_alert, encode_alert
from streams.processor import INVALID, BatchOutput, DeadLetter, Processor, Source
from streams.progress import Progress
from streams.regroup import DONE, REGROUP_OF, REGROUPS, partition_for
from streams.replay import parse_line
from streams.scorecard import AlertTally, Scorecard, TruthFinding

#: How many rejected lines the summary quotes; the rest are only counted.
SHOWN_REJECTS = 10
#: A job gathers what its partitions produced (counts, alerts, the baselines' turn)
#: every this many accepted events, not after each.
COLLECT_EVERY = 4096


@dataclass
class BacktestSummary:
    """Counts of one backtest run.

    ``events`` counts the accepted events of each stream (those the detectors
    saw); ``tally`` and ``baseline`` gather what the scorecard needs from the
    detectors' and (with ``baseline=True``) the naive baselines' alerts.
    """

    records: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    #: Lines that are no stream record at all (``kuzet replay`` skips them; they are
    #: among the ``invalid`` outcomes).
    unreadable: int = 0
    rejects: Counter[str] = field(default_factory=Counter)  # by category
    examples: list[str] = field(default_factory=list)
    alerts: Counter[str] = field(default_factory=Counter)  # by kind
    resolved: Counter[str] = field(default_factory=Counter)  # of them, resolved alerts
    seconds: float = 0.0
    events: Counter[str] = field(default_factory=Counter)  # accepted, by stream
    tally: AlertTally = field(default_factory=AlertTally)
    baseline: AlertTally | None = None

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def scorecard(self, truth: Iterable[TruthFinding]) -> Scorecard:
        """Score this run's alerts (and the baselines', if they ran) against ``truth``."""
        return Scorecard.build(truth, self.tally, self.events, self.baseline)

    def render(self) -> str:
        o = self.outcomes
        lines = [
            f"records     {self.records:>12,}",
            f"  accepted  {o['ok'] + o['failed']:>12,}",
            f"  duplicate {o['duplicate']:>12,}",
            f"  late      {o['late']:>12,}",
            f"  invalid   {o[INVALID]:>12,}",
        ]
        if o["failed"]:
            lines.append(f"  detector failures {o['failed']:,}")
        for category, count in sorted(self.rejects.items()):
            lines.append(f"    {category:<22} {count:>8,}")
        lines.extend(f"    {example}" for example in self.examples)
        lines.append(f"alerts      {sum(self.alerts.values()):>12,}")
        for kind, count in sorted(self.alerts.items()):
            ended = self.resolved[kind]
            lines.append(f"  {kind:<22} {count:>8,}" + (f"  ({ended:,} resolved)" if ended else ""))
        if self.baseline is not None:
            lines.append(f"baseline alerts {sum(self.baseline.counts.values()):>8,}")
        lines.append(
            f"time        {self.seconds:>12.2f} s  ({self.events_per_second:,.0f} events/s)"
        )
        return "\n".join(lines)


def run_backtest(
    input_path: Path,
    out_path: Path,
    config: DetectionConfig | None = None,
    rejects_path: Path | None = None,
    *,
    baseline: bool = False,
    progress: bool = True,
    partitions: int = 1,
    jobs: int = 1,
    changes: Sequence[RulesChange] = (),
) -> BacktestSummary:
    """Run every detector over ``input_path``; write alerts to ``out_path``.

    ``partitions`` lays the records out as ``kuzet replay`` would on topics
    of that many partitions (Kafka's default partitioner of each record's key)
    and judges each partition with its own state, exactly as the live worker
    does; ``jobs`` runs the partitions in that many processes. ``baseline``
    also runs the naive baselines (for the scorecard); ``progress`` draws a
    bar on stderr when it is a terminal. ``changes`` are rules changes, each
    applied from its event time on, as the worker applies those of its rules
    topic (:mod:`streams.rules_feed`).

    Alerts are written in event-time order (then kind, entity and id), so the
    file is the same for any ``jobs``.
    """
    if partitions < 1 or jobs < 1:
        raise KuzetError("--partitions and --jobs must be at least 1")
    jobs = min(jobs, partitions)
    started = time.perf_counter()
    plan = _Plan(input_path, config, partitions, jobs, baseline, tuple(changes))
    if jobs == 1:
        parts = [plan.run(0, progress)]
    else:
        context = multiprocessing.get_context("fork")
        with context.Pool(jobs) as pool:
            parts = pool.starmap(plan.run, [(job, progress and job == 0) for job in range(jobs)])
    summary = BacktestSummary(baseline=AlertTally() if baseline else None)
    alerts: list[Alert] = []
    letters: list[tuple[int, str, str]] = []
    for part in parts:
        summary.records = max(summary.records, part.records)
        summary.unreadable = max(summary.unreadable, part.unreadable)
        summary.outcomes.update(part.outcomes)
        summary.events.update(part.events)
        alerts.extend(decode_alert(raw) for raw in part.alerts)
        letters.extend(part.letters)
        if summary.baseline is not None:
            for raw in part.baseline_alerts:
                summary.baseline.add(decode_alert(raw))
    alerts.sort(key=lambda a: (a.ts, a.kind, a.entity, a.alert_id))
    with open(out_path, "wb") as alerts_file:
        for alert in alerts:
            alerts_file.write(encode_alert(alert) + b"\n")
            summary.alerts[alert.kind] += 1
            if alert.status == "resolved":
                summary.resolved[alert.kind] += 1
            summary.tally.add(alert)
    letters.sort()
    for line, category, reason in letters:
        summary.rejects[category] += 1
        if len(summary.examples) < SHOWN_REJECTS:
            summary.examples.append(f"line {line}: {reason}")
    if rejects_path is not None:
        with open(rejects_path, "wb") as rejects_file:
            for line, category, reason in letters:
                rejects_file.write(f"{line}\t{category}\t{reason}\n".encode())
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass
class _Part:
    """What one job found: counts, alerts (encoded, to cross processes), rejected lines."""

    records: int = 0
    unreadable: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    alerts: list[bytes] = field(default_factory=list)
    baseline_alerts: list[bytes] = field(default_factory=list)
    letters: list[tuple[int, str, str]] = field(default_factory=list)


@dataclass
class _Plan:
    """One backtest, split by partition: each partition of each lane is judged by one job.

    Every job reads the whole file. A regrouped stream's upstream step runs in
    every job (payments are only validated there; inspections are judged by
    business, which is cheap), because every regrouped partition needs the
    shipments of every upstream partition; each job keeps only what its own
    partitions produce.
    """

    path: Path
    config: DetectionConfig | None
    partitions: int
    jobs: int
    baseline: bool
    changes: tuple[RulesChange, ...] = ()

    def run(self, job: int, progress: bool) -> _Part:
        part = _Part()
        n, jobs, name = self.partitions, self.jobs, str(self.path)
        processor = Processor(build_engine(self.config, self.changes))
        # Each event the detectors accepted, counted per stream and handed to the naive
        # baselines (a payment once, as itself, not as a half).
        accepted: list[tuple[str, int, Any]] = []
        processor.accepted = accepted
        baselines = build_baseline_engine(self.config) if self.baseline else None
        # Which partitions this job judges. The payments partitions (most of the work) are
        # dealt from job 0, the others from job 1, so that with fewer jobs than
        # partitions the heavy and the light partitions even out.
        mine = {
            lane: [(p + (lane != "payments")) % jobs == job for p in range(n)]
            for lane in (*STREAMS, BY_AUTHORITY)
        }
        bar = Progress(
            total=self.path.stat().st_size, label="backtest", stream=True if progress else None
        )
        out = BatchOutput()
        upstream, downstream, whole = processor.upstream, processor.downstream, processor.whole
        try:
            with open(self.path, "rb") as source:
                for number, line in enumerate(source, start=1):
                    bar.update(len(line))
                    if not line.strip():
                        continue
                    part.records += 1
                    try:
                        stream, key, raw = parse_line(line)
                    except InvalidEvent as exc:
                        part.unreadable += 1
                        if job == 0:
                            out.outcomes[INVALID] += 1
                            where = Source(name, 0, number)
                            out.dead_letters.append(
                                DeadLetter("?", line, None, exc.reason, exc.category, where)
                            )
                        continue
                    if n == 1:  # one partition: no shipping needed (Processor.whole)
                        whole(stream, raw, key, Source(name, 0, number), out)
                        if len(accepted) >= COLLECT_EVERY:
                            self._collect(out, part, accepted, baselines)
                        continue
                    p = partition_for(key, n) if key is not None else 0
                    regroup = REGROUP_OF.get(stream)
                    if regroup is None and not mine[stream][p]:
                        continue
                    record = [(raw, key, Source(name, p, number))]
                    if mine[stream][p]:
                        _, shipments = upstream(stream, p, record, n, decoded=True, out=out)
                    else:  # only its shipments count here; another job counts the rest
                        mark = len(accepted)
                        _, shipments = upstream(stream, p, record, n, decoded=True)
                        del accepted[mark:]
                    for q, up, through, frontier, halves in shipments:
                        if halves and mine[regroup.lane][q]:
                            downstream(regroup, q, n, up, through, frontier, halves, name, out)
                    if len(accepted) >= COLLECT_EVERY:
                        self._collect(out, part, accepted, baselines)
            # The end of the file: every upstream partition is at its end; drain the merges.
            end = part.records and number
            for regroup in REGROUPS:
                for q in range(n):
                    if mine[regroup.lane][q]:
                        for up in range(n):
                            downstream(regroup, q, n, up, end, DONE, [], name, out)
            self._collect(out, part, accepted, baselines)
        finally:
            bar.finish()  # end the bar's line even if the run stops
        part.outcomes = out.outcomes
        return part

    def _collect(
        self,
        out: BatchOutput,
        part: _Part,
        accepted: list[tuple[str, int, Any]],
        baselines: Engine | None,
    ) -> None:
        part.alerts.extend(encode_alert(alert) for alert in out.alerts)
        out.alerts.clear()
        for letter in out.dead_letters:
            part.letters.append((letter.source.offset, letter.category, letter.reason))
        out.dead_letters.clear()
        if accepted:
            for stream, p, event in accepted:
                part.events[stream] += 1
                if baselines is not None:
                    for alert in baselines.process(stream, event, p).alerts:
                        part.baseline_alerts.append(encode_alert(alert))
            accepted.clear()
