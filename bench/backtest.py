"""Offline throughput: ``kuzet backtest`` over a generated file, every detector on,
then again with the naive baselines beside them (as ``--truth`` runs).

python -m bench.backtest [N]        # default 250,000 records
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.events import write_file
from streams.backtest import run_backtest


def main(n: int = 250_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "events.jsonl"
        write_file(str(source), n)
        summary = run_backtest(source, Path(tmp) / "alerts.jsonl")
        # As ``kuzet backtest --truth`` runs: the naive baselines beside the detectors.
        scored = run_backtest(source, Path(tmp) / "alerts.jsonl", baseline=True)
    print(summary.render())
    print(f"backtest: {summary.records:,} records at {summary.events_per_second:,.0f} events/s")
    print(
        f"backtest with baselines (--truth): {scored.records:,} records at "
        f"{scored.events_per_second:,.0f} events/s"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 250_000)
