"""Offline throughput: ``kuzet backtest`` over a generated file, every detector on.

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
    print(summary.render())
    print(f"backtest: {summary.records:,} records at {summary.events_per_second:,.0f} events/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 250_000)
