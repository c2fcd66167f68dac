"""The ``kuzet`` command line (contract "Command line").

Each subcommand is one ``_<name>_command`` function that declares its
arguments and returns its handler; :data:`COMMANDS` lists them in help order.
Handlers import what they need lazily, so ``kuzet backtest`` never loads Faust.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from detectors.errors import KuzetError
from streams.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _worker_command(parser: argparse.ArgumentParser) -> Handler:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        import faust

        from streams.app import create_app

        settings.state_dir.mkdir(parents=True, exist_ok=True)
        kuzet = create_app(settings)
        worker = faust.Worker(kuzet.app, loglevel=settings.log_level)
        worker.execute_from_commandline()  # returns only by SystemExit
        return 0

    return run


def _backtest_command(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("input", type=Path, metavar="INPUT.jsonl")
    parser.add_argument("--out", type=Path, required=True, metavar="ALERTS.jsonl")
    parser.add_argument(
        "--rejects",
        type=Path,
        metavar="FILE",
        help="also write every rejected line as 'line<TAB>category<TAB>reason'",
    )

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from streams.backtest import run_backtest

        if not args.input.is_file():
            print(f"kuzet: no such input file: {args.input}", file=sys.stderr)
            return 2
        summary = run_backtest(args.input, args.out, settings.detection, args.rejects)
        print(summary.render())
        return 0

    return run


#: (name, help, declares arguments and returns the handler), in help order.
COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], Handler]]] = [
    ("worker", "consume the input topics, publish alerts, serve metrics", _worker_command),
    ("backtest", "run the detectors offline over a historical stream file", _backtest_command),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kuzet", description="Kuzet: event-streaming anomaly monitor for public oversight."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, declare in COMMANDS:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=declare(sub))
    args = parser.parse_args(argv)
    try:
        return args.handler(args, Settings.from_env())
    except KuzetError as exc:
        print(f"kuzet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
