"""``kuzet backtest``: the live detectors, offline, over a historical stream file.

Reads JSON Lines records (``{"topic", "key", "value"}``, contract "Files"),
runs each through the same :class:`~streams.processor.Processor` and engine the
worker uses, writes alerts as JSON Lines, and reports what it skipped: bad
lines are counted by reason, with the first few quoted by line number.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from detectors.registry import DetectionConfig, build_engine
from streams.codec import InvalidEvent, decode_file_line, encode_alert
from streams.processor import INVALID, BatchOutput, DeadLetter, Processor, Source

#: How many rejected lines the summary quotes; the rest are only counted.
SHOWN_REJECTS = 10


@dataclass
class BacktestSummary:
    """Counts of one backtest run."""

    records: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)  # by category
    examples: list[str] = field(default_factory=list)
    alerts: Counter[str] = field(default_factory=Counter)  # by kind
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

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
        lines.append(
            f"time        {self.seconds:>12.2f} s  ({self.events_per_second:,.0f} events/s)"
        )
        return "\n".join(lines)


def run_backtest(
    input_path: Path,
    out_path: Path,
    config: DetectionConfig | None = None,
    rejects_path: Path | None = None,
) -> BacktestSummary:
    """Run every detector over ``input_path``; write alerts to ``out_path``."""
    processor = Processor(build_engine(config))
    summary = BacktestSummary()
    started = time.perf_counter()
    out = BatchOutput()
    name = str(input_path)
    with (
        open(input_path, "rb") as source,
        open(out_path, "wb") as alerts_file,
        _maybe_open(rejects_path) as rejects_file,
    ):
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            summary.records += 1
            where = Source(name, 0, number)
            try:
                stream, key, raw = decode_file_line(line)
            except InvalidEvent as exc:
                out.outcomes[INVALID] += 1
                out.dead_letters.append(
                    DeadLetter("?", line.rstrip(b"\n"), None, exc.reason, exc.category, where)
                )
            else:
                processor.handle_one(stream, raw, key and key.encode(), where, out)
            if out.alerts:
                _write_alerts(out, alerts_file, summary)
            if out.dead_letters:
                _note_rejects(out, summary, rejects_file)
    summary.outcomes = out.outcomes
    summary.seconds = time.perf_counter() - started
    return summary


def _write_alerts(out: BatchOutput, alerts_file: IO[bytes], summary: BacktestSummary) -> None:
    for alert in out.alerts:
        alerts_file.write(encode_alert(alert) + b"\n")
        summary.alerts[alert.kind] += 1
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
