"""The ``kuzet`` command line (contract "Command line")."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from detectors.errors import KuzetError
from streams.settings import Settings

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kuzet", description="Kuzet: event-streaming anomaly monitor for public oversight."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser(
        "worker", help="consume the input topics, publish alerts, serve metrics"
    )
    worker.set_defaults(handler=_worker)

    backtest = commands.add_parser(
        "backtest", help="run the detectors offline over a historical stream file"
    )
    backtest.add_argument("input", type=Path, metavar="INPUT.jsonl")
    backtest.add_argument("--out", type=Path, required=True, metavar="ALERTS.jsonl")
    backtest.add_argument(
        "--rejects",
        type=Path,
        metavar="FILE",
        help="also write every rejected line as 'line<TAB>category<TAB>reason'",
    )
    backtest.set_defaults(handler=_backtest)

    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        return args.handler(args, settings)
    except KuzetError as exc:
        print(f"kuzet: {exc}", file=sys.stderr)
        return 2


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from streams.app import create_app

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    kuzet = create_app(settings)
    worker = faust.Worker(kuzet.app, loglevel=settings.log_level)
    worker.execute_from_commandline()  # returns only by SystemExit
    return 0


def _backtest(args: argparse.Namespace, settings: Settings) -> int:
    from streams.backtest import run_backtest

    if not args.input.is_file():
        print(f"kuzet: no such input file: {args.input}", file=sys.stderr)
        return 2
    summary = run_backtest(args.input, args.out, settings.detection, args.rejects)
    print(summary.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
