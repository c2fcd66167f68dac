"""The ``kuzet`` command line (contract "Command line").

Each subcommand is one ``_<name>_command`` function that declares its
arguments and returns its handler; :data:`COMMANDS` lists them in help order.
Handlers import what they need lazily, so ``kuzet backtest`` never starts a Kafka client.
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
    history = parser.add_mutually_exclusive_group()
    history.add_argument(
        "--from-beginning",
        action="store_true",
        help="reprocess the input topics from the start (needs a new KUZET_APP_ID)",
    )
    history.add_argument(
        "--from-time",
        metavar="RFC3339",
        help="reprocess from the first record written at/after this time (needs a new "
        "KUZET_APP_ID)",
    )

    def run(args: argparse.Namespace, settings: Settings) -> int:
        import asyncio

        from streams.logs import configure_logging
        from streams.state import require_state_key
        from streams.topics import ensure_topics
        from streams.worker import run_worker

        require_state_key(settings)  # before anything touches Kafka
        configure_logging(settings.log_level, settings.log_format)
        settings.warn_unknown_variables()
        layout = asyncio.run(ensure_topics(settings))
        if args.from_beginning or args.from_time:
            from streams.offsets import start_reprocessing

            start_reprocessing(settings, args.from_time, args.from_beginning)
        return run_worker(settings, layout)

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
    parser.add_argument(
        "--truth",
        type=Path,
        metavar="TRUTH.json",
        help="score the alerts against this truth file and print the scorecard, "
        "beside naive baseline rules run over the same events",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=1,
        metavar="N",
        help="judge the records as the live worker would on topics of N partitions "
        "(Kafka's default partitioner of each record's key; default 1)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="J",
        help="run the partitions in J processes (at most N; default 1)",
    )
    parser.add_argument(
        "--scorecard-json",
        type=Path,
        metavar="FILE",
        help="also write the scorecard as JSON (needs --truth)",
    )
    parser.add_argument(
        "--rules-changes",
        type=Path,
        metavar="FILE",
        help="apply these rules changes, each from its event time, as workers apply the rules "
        'topic\'s (JSON Lines of {"key": NAME, "value": {"effective", "rules"}}: '
        "`kuzet rules show --jsonl` writes one)",
    )

    def run(args: argparse.Namespace, settings: Settings) -> int:
        import json

        from streams.backtest import run_backtest
        from streams.scorecard import load_truth

        if not args.input.is_file():
            print(f"kuzet: no such input file: {args.input}", file=sys.stderr)
            return 2
        if args.scorecard_json and not args.truth:
            print("kuzet: --scorecard-json needs --truth TRUTH.json", file=sys.stderr)
            return 2
        truth = load_truth(args.truth) if args.truth else None  # a bad file fails before the run
        changes = []
        if args.rules_changes:
            from streams.rules_feed import changes_from_file

            changes, timeline, refused = changes_from_file(
                args.rules_changes, settings.detection.rules
            )
            for name, reason in sorted(refused.items()):
                print(f"kuzet: rules change {name} refused: {reason}", file=sys.stderr)
            applied = [c for c in timeline.changes if timeline.verdicts[c.name].applied]
            for change in applied:
                print(f"rules change {change.name} applies from {change.written}", file=sys.stderr)
        summary = run_backtest(
            args.input,
            args.out,
            settings.detection,
            args.rejects,
            baseline=truth is not None,
            partitions=args.partitions,
            jobs=args.jobs,
            changes=changes,
        )
        print(summary.render())
        if truth is not None:
            card = summary.scorecard(truth)
            print()
            print(card.render())
            if args.scorecard_json:
                args.scorecard_json.write_text(json.dumps(card.to_dict(), indent=2) + "\n")
        return 0

    return run


def _replay_command(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("input", type=Path, metavar="INPUT.jsonl")
    parser.add_argument(
        "--speed",
        default="max",
        metavar="X",
        help="event seconds per wall second (3600: an hour a second), or 'max' (default)",
    )

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from streams.replay import replay_file

        return replay_file(args.input, settings, args.speed)

    return run


def _capture_command(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--out", type=Path, required=True, metavar="FILE")
    parser.add_argument(
        "--from-time",
        metavar="RFC3339",
        help="start at the first record written at/after this time, not at the beginning",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep capturing new records until Ctrl-C (default: stop at the end offsets "
        "seen at start)",
    )

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from streams.capture import capture_to_file

        return capture_to_file(args.out, settings, args.from_time, args.follow)

    return run


def _findings_command(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--kind", help="only this kind")
    parser.add_argument("--severity", help="only this severity (info, warning, critical)")
    parser.add_argument("--status", help="only findings in this state (open, escalated, resolved)")
    parser.add_argument("--entity", help="only this account, employer, business or inspector")
    parser.add_argument(
        "--since", metavar="RFC3339", help="only findings whose latest step is at/after this time"
    )
    parser.add_argument("--limit", type=int, help="at most this many (default: all)")
    parser.add_argument(
        "--table",
        action="store_true",
        help="an aligned table (default: JSON Lines, one alert each)",
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="every step of each finding (open, escalated, resolved) still on the topic, "
        "not only its latest",
    )

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from streams.findings import findings_command

        filters = {
            "kind": args.kind,
            "severity": args.severity,
            "status": args.status,
            "entity": args.entity,
            "since": args.since,
            "limit": args.limit if args.limit is not None else 10**9,
        }
        return findings_command(settings, filters, args.table, args.history)

    return run


def _simulate_command(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="world size; 1 is about a million events"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a world parameter (see simulator/config.py), e.g. start=2019-10-01",
    )

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from simulator import SimConfig, simulate
        from streams.progress import Progress

        if args.scale <= 0:
            print("kuzet: --scale must be positive", file=sys.stderr)
            return 2
        config = SimConfig().with_overrides(args.set)
        bar = Progress(label="simulate", unit="lines")
        result = simulate(args.out, args.seed, args.scale, config, on_line=bar.update)
        bar.finish()
        stats = result.stats
        print(
            f"wrote {args.out / 'events.jsonl'}: {result.lines:,} lines "
            f"({stats.events:,} events, {stats.duplicates:,} redelivered, "
            f"{stats.invalid:,} broken) in {result.seconds:.1f} s "
            f"({result.lines / max(result.seconds, 1e-9):,.0f} lines/s)"
        )
        for stream, count in sorted(stats.by_stream.items()):
            print(f"  {stream:<12} {count:>10,}")
        print(f"wrote {args.out / 'truth.json'}: {sum(result.findings.values()):,} findings")
        for kind, count in sorted(result.findings.items()):
            print(f"  {kind:<22} {count:>6,}")
        print(f"wrote {args.out / 'lawful.json'}: the lawful look-alikes, for `kuzet worlds`")
        return 0

    return run


def _worlds_command(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument(
        "--spec",
        type=Path,
        metavar="FILE",
        help="the worlds, as TOML (default: the shipped simulator/worlds.toml)",
    )
    parser.add_argument(
        "--only",
        choices=("held-out", "tuning", "all"),
        default="held-out",
        help="which worlds of the spec to score (default held-out)",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(".kuzet/worlds"),
        metavar="DIR",
        help="where worlds are generated, and reused while unchanged (default .kuzet/worlds)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="J", help="score J worlds at once (default 1)"
    )
    parser.add_argument(
        "--scale-factor",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every world's scale by F, for a quick run (default 1)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write every world's scorecard and the summary as JSON",
    )

    def run(args: argparse.Namespace, settings: Settings) -> int:
        import time

        from streams import worlds

        started = time.perf_counter()
        specs = worlds.select(worlds.load_worlds(args.spec or worlds.DEFAULT_SPEC), args.only)
        results = worlds.run_worlds(
            specs,
            args.work,
            settings.detection,
            scale_factor=args.scale_factor,
            jobs=args.jobs,
            on_world=lambda result: print(
                worlds.progress_line(result), file=sys.stderr, flush=True
            ),
        )
        summary = worlds.summarize(results)
        label = args.only if args.only != "all" else ""
        print(worlds.render(summary, results, label))
        seconds = time.perf_counter() - started
        print(f"{len(results)} worlds scored in {seconds:.0f} s with --jobs {args.jobs}")
        if args.json:
            args.json.write_text(
                worlds.report(
                    results,
                    summary,
                    spec=str(args.spec or worlds.DEFAULT_SPEC),
                    only=args.only,
                    scale_factor=args.scale_factor,
                    jobs=args.jobs,
                    seconds=round(seconds, 1),
                )
            )
        return 0

    return run


def _rules_command(parser: argparse.ArgumentParser) -> Handler:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    put = actions.add_parser(
        "set",
        help="publish a rules change: FILE (a rules file, usually partial) laid over the "
        "rules in force from event time --at on, on every worker; validated first",
    )
    put.add_argument("file", type=Path, metavar="FILE.toml")
    put.add_argument("--at", required=True, metavar="RFC3339", help="event time it holds from")
    put.add_argument("--name", help="the change's name (default: the file's name and --at)")
    put.add_argument("--note", default="", help="why, for the log and `kuzet rules show`")
    put.add_argument(
        "--check", action="store_true", help="validate against the topic's changes; publish nothing"
    )
    show = actions.add_parser("show", help="list the changes on the rules topic and their verdicts")
    show.add_argument(
        "--jsonl", action="store_true", help="print them as a file for backtest --rules-changes"
    )
    withdraw = actions.add_parser("withdraw", help="withdraw a change by its name")
    withdraw.add_argument("name")

    def run(args: argparse.Namespace, settings: Settings) -> int:
        import asyncio

        from streams import rules_feed

        raw = asyncio.run(rules_feed.read_topic(settings))
        if args.action == "show":
            out = rules_feed.jsonl(raw) if args.jsonl else rules_feed.render(settings, raw) + "\n"
            sys.stdout.write(out)
            return 0
        if args.action == "withdraw":
            if args.name not in raw:
                print(
                    f"kuzet: no rules change {args.name!r} on {settings.rules_topic}",
                    file=sys.stderr,
                )
                return 2
            asyncio.run(rules_feed.publish(settings, args.name, None))
            print(f"withdrew rules change {args.name}")
            return 0
        try:
            text = args.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"kuzet: cannot read {args.file}: {exc}", file=sys.stderr)
            return 2
        name = args.name or f"{args.file.stem}@{args.at}"
        value = rules_feed.change_value(args.at, text, args.note)
        rules_feed.check_new(settings, raw, name, value)  # ConfigError: refused, nothing sent
        if args.check:
            print(f"rules change {name} is valid (not published: --check)")
            return 0
        asyncio.run(rules_feed.publish(settings, name, value))
        print(f"published rules change {name} to {settings.rules_topic}: from {args.at}")
        return 0

    return run


#: (name, help, declares arguments and returns the handler), in help order.
COMMANDS: list[tuple[str, str, Callable[[argparse.ArgumentParser], Handler]]] = [
    ("worker", "consume the input topics, publish alerts, serve metrics", _worker_command),
    ("backtest", "run the detectors offline over a historical stream file", _backtest_command),
    (
        "simulate",
        "write a labelled synthetic stream: DIR/events.jsonl, DIR/truth.json (and DIR/lawful.json)",
        _simulate_command,
    ),
    (
        "worlds",
        "generate and score many labelled worlds: per kind the minimum F1, never the best",
        _worlds_command,
    ),
    ("replay", "publish a historical stream file into the input topics", _replay_command),
    ("capture", "write what is on the input topics to a historical stream file", _capture_command),
    ("rules", "change rules on running workers: set, show, withdraw", _rules_command),
    (
        "findings",
        "print every finding as it stands now (its latest alert), from the findings topic",
        _findings_command,
    ),
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
