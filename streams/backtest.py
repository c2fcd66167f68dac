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

import contextlib
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from detectors.baselines import build_baseline_engine
from detectors.engine import Engine
from detectors.registry import DetectionConfig, build_engine
from streams.codec import InvalidEvent, decode_file_line, encode_alert
from streams.processor import INVALID, BatchOutput, DeadLetter, Processor, Source
from streams.progress import Progress
from streams.scorecard import AlertTally, Scorecard, TruthFinding

#: How many rejected lines the summary quotes; the rest are only counted.
SHOWN_REJECTS = 10


@dataclass
class BacktestSummary:
    """Counts of one backtest run.

    ``events`` counts the accepted events of each stream (those the detectors
    saw); ``tally`` and ``baseline`` gather what the scorecard needs from the
    detectors' and (with ``baseline=True``) the naive baselines' alerts.
    """

    records: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)  # by category
    examples: list[str] = field(default_factory=list)
    alerts: Counter[str] = field(default_factory=Counter)  # by kind
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
            lines.append(f"  {kind:<22} {count:>8,}")
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
) -> BacktestSummary:
    """Run every detector over ``input_path``; write alerts to ``out_path``.

    ``baseline`` also runs the naive baselines (for the scorecard);
    ``progress`` draws a bar on stderr when it is a terminal.
    """
    summary = BacktestSummary(baseline=AlertTally() if baseline else None)
    bar = Progress(
        total=input_path.stat().st_size, label="backtest", stream=True if progress else None
    )
    started = time.perf_counter()
    with (
        open(input_path, "rb") as source,
        open(out_path, "wb") as alerts_file,
        _maybe_open(rejects_path) as rejects_file,
    ):
        run = _Run(config, summary, alerts_file, rejects_file, str(input_path))
        try:
            for number, line in enumerate(source, start=1):
                bar.update(len(line))
                if line.strip():
                    run.feed(number, line)
        finally:
            bar.finish()  # end the bar's line even if the run stops
    summary.outcomes = run.out.outcomes
    summary.seconds = time.perf_counter() - started
    return summary


class _Run:
    """One backtest's engines and outputs; :meth:`feed` takes one non-blank line."""

    def __init__(
        self,
        config: DetectionConfig | None,
        summary: BacktestSummary,
        alerts_file: IO[bytes],
        rejects_file: IO[bytes] | None,
        name: str,
    ) -> None:
        self.processor = Processor(build_engine(config))
        # The baselines' engine and the tally of their alerts, when they run.
        self.baseline: tuple[Engine, AlertTally] | None = (
            (build_baseline_engine(config), summary.baseline)
            if summary.baseline is not None
            else None
        )
        self.summary = summary
        self.out = BatchOutput()
        self.alerts_file = alerts_file
        self.rejects_file = rejects_file
        self.name = name

    def feed(self, number: int, line: bytes) -> None:
        summary, out = self.summary, self.out
        summary.records += 1
        where = Source(self.name, 0, number)
        try:
            stream, key, raw = decode_file_line(line)
        except InvalidEvent as exc:
            out.outcomes[INVALID] += 1
            out.dead_letters.append(
                DeadLetter("?", line.rstrip(b"\n"), None, exc.reason, exc.category, where)
            )
        else:
            event = self.processor.handle_one(stream, raw, key and key.encode(), where, out)
            if event is not None:
                summary.events[stream] += 1
                if self.baseline is not None:
                    _run_baseline(*self.baseline, stream, event)
        if out.alerts:
            _write_alerts(out, self.alerts_file, summary)
        if out.dead_letters:
            _note_rejects(out, summary, self.rejects_file)


def _run_baseline(engine: Engine, tally: AlertTally, stream: str, event: Any) -> None:
    """Hand an event the real engine accepted to the baselines; tally what they raise."""
    for alert in engine.process(stream, event).alerts:
        tally.add(alert)


def _write_alerts(out: BatchOutput, alerts_file: IO[bytes], summary: BacktestSummary) -> None:
    for alert in out.alerts:
        alerts_file.write(encode_alert(alert) + b"\n")
        summary.alerts[alert.kind] += 1
        summary.tally.add(alert)
    out.alerts.clear()


def _note_rejects(
    out: BatchOutput, summary: BacktestSummary, rejects_file: IO[bytes] | None
) -> None:
    for letter in out.dead_letters:
        summary.rejects[letter.category] += 1
        if len(summary.examples) < SHOWN_REJECTS:
            summary.examples.append(f"line {letter.source.offset}: {letter.reason}")
        if rejects_file is not None:
            rejects_file.write(
                f"{letter.source.offset}\t{letter.category}\t{letter.reason}\n".encode()
            )
    out.dead_letters.clear()


def _maybe_open(path: Path | None) -> IO[bytes] | contextlib.nullcontext[None]:
    return open(path, "wb") if path is not None else contextlib.nullcontext()
