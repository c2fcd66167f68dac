"""``kuzet worlds``: the scorecard over many simulated worlds, minima first.

One world's scorecard (``kuzet backtest --truth``) says how the detectors did
on that world; a detector tuned on it can look perfect there and fail on the
next. This module reads a spec of worlds (``simulator/worlds.toml``: a name, a
role, a seed, a scale and ``--set`` overrides of :mod:`simulator.config` each),
generates every world into a work folder (reused while its spec and the
simulator's code are unchanged), runs the backtest on it with its truth, and
sums up per kind over the worlds:

- the **minimum** F1 and the world it came from, and the median F1;
- the minimum precision and the minimum recall (and their worlds);
- the **worst world's p90 time to detect**: each world's p90 (as the single
  scorecard computes it), then the largest of them, so no world's slow tail
  is averaged away by the others';
- the largest alert rate per 10,000 events of the kind's stream;
- the macro F1 of each world (the mean F1 over the kinds with truth in it),
  its minimum and median over the worlds;
- the alerts of any kind on the lawful look-alikes the simulator lists in each
  world's ``lawful.json`` (savings groups, charities, cooperatives, group
  purchases, ...), per family: none is the aim.

Roles keep tuning apart from judging: ``held-out`` worlds (the default
selection) use seeds the tests and the README never use, and a spec whose
held-out world shares a seed with a tuning world is refused.

>>> specs = parse_worlds('''
... [[world]]
... name = "a"
... role = "held-out"
... seed = 4
... scale = 0.5
... set = ["start=2021-03-01"]
... ''')
>>> specs[0].name, specs[0].config.start.isoformat(), specs[0].scale
('a', '2021-03-01', 0.5)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import re
import statistics
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simulator
from detectors.errors import ConfigError, KuzetError
from detectors.events import KIND_DOMAIN
from detectors.registry import DetectionConfig
from simulator import SimConfig
from streams.folders import private_folder
from streams.scorecard import PER_EVENT_KINDS

logger = logging.getLogger(__name__)

#: The spec shipped with the repository.
DEFAULT_SPEC = Path(simulator.__file__).parent / "worlds.toml"
#: Where worlds are generated unless ``--work`` says otherwise (git ignores ``.kuzet/``);
#: created private (0700), refused if another user's (:func:`streams.folders.private_folder`).
DEFAULT_WORK = Path(".kuzet") / "worlds"
HELD_OUT, TUNING = "held-out", "tuning"
ROLES = (HELD_OUT, TUNING)
SELECTIONS = (HELD_OUT, TUNING, "all")
#: Issue 13's targets for the p90 time to detect, in hours (arrears: after the due date).
TTD_TARGET_HOURS = {
    "pyramid_scheme": 7 * 24.0,
    "mule_account": 12.0,
    "salary_arrears": 36.0,
    "mass_layoff": 7 * 24.0,
}
#: Issue 13's targets for F1: every kind's minimum, and the macro F1 (its minimum here).
F1_TARGET, MACRO_F1_TARGET = 0.90, 0.95

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_KEYS = {"name", "role", "seed", "scale", "set", "note"}
#: The marker written beside a generated world once it is complete.
_MARKER = "world.json"


class WorldsError(KuzetError):
    """A worlds spec is wrong; the message names the world and the fix."""


@dataclass(frozen=True)
class WorldSpec:
    """One world of the spec: ``kuzet simulate --seed SEED --scale SCALE --set ...``."""

    name: str
    role: str
    seed: int
    scale: float
    overrides: tuple[str, ...]
    config: SimConfig
    note: str = ""


# --- the spec ---------------------------------------------------------------------------


def parse_worlds(text: str, source: str = "worlds spec") -> list[WorldSpec]:
    """The worlds of a TOML spec; raise :class:`WorldsError` naming what is wrong."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WorldsError(f"{source}: not valid TOML: {exc}") from None
    extra = set(document) - {"world"}
    if extra:
        raise WorldsError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(extra))}; "
            "expected only [[world]] tables"
        )
    entries = document.get("world")
    if not isinstance(entries, list) or not entries:
        raise WorldsError(f"{source}: no worlds; add at least one [[world]] table")
    specs = [_parse_world(entry, f"{source}: world {i + 1}") for i, entry in enumerate(entries)]
    names: set[str] = set()
    for spec in specs:
        if spec.name in names:
            raise WorldsError(f"{source}: two worlds are named {spec.name!r}; names must differ")
        names.add(spec.name)
    tuning_seeds = {spec.seed for spec in specs if spec.role == TUNING}
    for spec in specs:
        if spec.role == HELD_OUT and spec.seed in tuning_seeds:
            raise WorldsError(
                f"{source}: held-out world {spec.name!r} uses seed {spec.seed}, which a tuning "
                "world uses too; give it a seed of its own"
            )
    return specs


def _parse_world(entry: Any, where: str) -> WorldSpec:
    if not isinstance(entry, dict):
        raise WorldsError(f"{where}: expected a [[world]] table")
    name = entry.get("name")
    if isinstance(name, str):
        where = f"{where} ({name!r})"
    unknown = set(entry) - _KEYS
    if unknown:
        raise WorldsError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"expected {', '.join(sorted(_KEYS))}"
        )
    missing = [key for key in ("name", "role", "seed", "scale") if key not in entry]
    if missing:
        raise WorldsError(f"{where}: missing {', '.join(missing)}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise WorldsError(
            f"{where}: name must be 1-64 letters, digits, '-' or '_' (it names a folder)"
        )
    role = entry["role"]
    if role not in ROLES:
        raise WorldsError(f"{where}: role must be one of {', '.join(ROLES)}, not {role!r}")
    seed = entry["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise WorldsError(f"{where}: seed must be a whole number >= 0, not {seed!r}")
    scale = entry["scale"]
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise WorldsError(f"{where}: scale must be a positive number, not {scale!r}")
    overrides = entry.get("set", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise WorldsError(f'{where}: set must be a list of "NAME=VALUE" strings')
    try:
        config = SimConfig().with_overrides(overrides)
    except ConfigError as exc:
        raise WorldsError(f"{where}: {exc}") from None
    note = entry.get("note", "")
    if not isinstance(note, str):
        raise WorldsError(f"{where}: note must be a string")
    return WorldSpec(name, role, seed, float(scale), tuple(overrides), config, note)


def load_worlds(path: Path) -> list[WorldSpec]:
    """Read and check a worlds spec file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorldsError(f"cannot read worlds spec {path}: {exc.strerror}") from None
    return parse_worlds(text, str(path))


def select(specs: Iterable[WorldSpec], only: str) -> list[WorldSpec]:
    """The worlds of one role (``held-out``, ``tuning``) or ``all``."""
    if only not in SELECTIONS:
        raise WorldsError(f"--only must be one of {', '.join(SELECTIONS)}, not {only!r}")
    return [spec for spec in specs if only == "all" or spec.role == only]


# --- running ----------------------------------------------------------------------------


def simulator_digest() -> str:
    """A hash of the simulator's code: a world made by other code is made again."""
    digest = hashlib.sha256()
    for path in sorted(Path(simulator.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def world_hash(spec: WorldSpec, scale: float, code: str) -> str:
    """What a generated world depends on: seed, scale, every parameter, the simulator."""
    config = {f.name: str(getattr(spec.config, f.name)) for f in dataclasses.fields(SimConfig)}
    blob = json.dumps({"seed": spec.seed, "scale": repr(scale), "config": config, "code": code})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Task:
    spec: WorldSpec
    scale: float
    folder: Path
    hash: str
    detection: DetectionConfig | None


def _run_world(task: _Task) -> dict[str, Any]:
    """Generate (or reuse) one world, backtest it with its truth; its JSON-ready result."""
    from simulator import simulate
    from streams.backtest import run_backtest
    from streams.scorecard import load_truth

    spec, folder = task.spec, task.folder
    marker = folder / _MARKER
    events, truth_path = folder / "events.jsonl", folder / "truth.json"
    reused = (
        marker.is_file()
        and events.is_file()
        and truth_path.is_file()
        and json.loads(marker.read_text()).get("hash") == task.hash
    )
    simulate_seconds = 0.0
    if not reused:
        marker.unlink(missing_ok=True)  # a world cut short is never taken for whole
        result = simulate(folder, spec.seed, task.scale, spec.config)
        simulate_seconds = result.seconds
        marker.write_text(
            json.dumps(
                {"hash": task.hash, "seed": spec.seed, "scale": task.scale, "set": spec.overrides}
            )
            + "\n"
        )
    truth = load_truth(truth_path)
    summary = run_backtest(
        events, folder / "alerts.jsonl", task.detection, baseline=False, progress=False
    )
    card = summary.scorecard(truth).to_dict()
    return {
        "name": spec.name,
        "role": spec.role,
        "seed": spec.seed,
        "scale": task.scale,
        "start": spec.config.start.isoformat(),
        "days": spec.config.days,
        "set": list(spec.overrides),
        "note": spec.note,
        "folder": str(folder),
        "hash": task.hash,
        "reused": reused,
        "records": summary.records,
        "simulate_seconds": round(simulate_seconds, 2),
        "backtest_seconds": round(summary.seconds, 2),
        "macro_f1": macro_f1(card),
        "scorecard": card,
        "look_alikes": look_alike_alerts(folder),
    }


def look_alike_alerts(folder: Path) -> dict[str, Any]:
    """Alerts on the world's lawful look-alikes (``lawful.json``), per family.

    Per family: how many entities it has, how many of them got any alert (of any
    kind), and the alerts by kind. A world written before ``lawful.json`` existed
    has none to count.
    """
    lawful_path = folder / "lawful.json"
    if not lawful_path.is_file():
        return {}
    families = json.loads(lawful_path.read_text())["families"]
    family_of: dict[str, list[str]] = {}
    for family, entities in families.items():
        for entity in entities:
            family_of.setdefault(entity, []).append(family)
    counts = {f: {"entities": len(e), "alerted": set(), "kinds": {}} for f, e in families.items()}
    with open(folder / "alerts.jsonl", "rb") as alerts:
        for line in alerts:
            alert = json.loads(line)
            for family in family_of.get(alert["entity"], ()):
                counted = counts[family]
                counted["alerted"].add(alert["entity"])
                counted["kinds"][alert["kind"]] = counted["kinds"].get(alert["kind"], 0) + 1
    return {
        f: {**c, "alerted": len(c["alerted"]), "kinds": dict(sorted(c["kinds"].items()))}
        for f, c in counts.items()
    }


def run_worlds(
    specs: list[WorldSpec],
    work: Path,
    detection: DetectionConfig | None = None,
    *,
    scale_factor: float = 1.0,
    jobs: int = 1,
    on_world: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Generate and score every world (``jobs`` at a time); results in spec order.

    ``scale_factor`` multiplies every world's scale (a quick run); ``on_world``
    hears each world's result as it finishes.
    """
    if jobs < 1:
        raise WorldsError("--jobs must be at least 1")
    if not (math.isfinite(scale_factor) and scale_factor > 0):
        raise WorldsError("--scale-factor must be a positive number")
    if not specs:
        raise WorldsError("no worlds selected; see --only and the spec's roles")
    private_folder(work)  # worlds are reused from it: nobody else may put one there
    code = simulator_digest()
    tasks = []
    for spec in specs:
        scale = spec.scale * scale_factor
        tasks.append(_Task(spec, scale, work / spec.name, world_hash(spec, scale, code), detection))
    results: dict[str, dict[str, Any]] = {}
    if jobs == 1:
        for task in tasks:
            results[task.spec.name] = result = _run_world(task)
            if on_world:
                on_world(result)
    else:
        biggest_first = sorted(tasks, key=lambda t: -t.scale)  # the long ones do not come last
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=context) as pool:
            futures = [pool.submit(_run_world, task) for task in biggest_first]
            for future in as_completed(futures):
                result = future.result()
                results[result["name"]] = result
                if on_world:
                    on_world(result)
    return [results[spec.name] for spec in specs]


# --- summing up -------------------------------------------------------------------------


def macro_f1(card: dict[str, Any]) -> float | None:
    """The mean F1 of one world's scorecard (``Scorecard.to_dict()``) over its kinds with truth."""
    scores = [
        k["detector"]["f1"] for k in card["kinds"].values() if k["detector"]["f1"] is not None
    ]
    return statistics.fmean(scores) if scores else None


def _lowest(pairs: list[tuple[float, str]]) -> dict[str, Any]:
    if not pairs:
        return {"min": None, "world": None}
    value, world = min(pairs)
    return {"min": value, "world": world}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind and for the macro F1, minima and medians over the worlds' results."""
    kinds: dict[str, Any] = {}
    for kind in KIND_DOMAIN:
        scored = [(r["name"], r["scorecard"]["kinds"][kind]["detector"]) for r in results]
        with_truth = [(name, s) for name, s in scored if s["f1"] is not None]
        f1s = [(s["f1"], name) for name, s in with_truth]
        p90s = [
            (s["ttd_hours"]["p90"], name)
            for name, s in with_truth
            if s["ttd_hours"]["p90"] is not None
        ]
        rates = [(s["alerts_per_10k"], name) for name, s in scored if s["alerts_per_10k"]]
        worst_p90 = max(p90s) if p90s else None
        worst_rate = max(rates) if rates else None
        kinds[kind] = {
            "worlds_with_truth": len(with_truth),
            "f1": {**_lowest(f1s), "median": statistics.median(v for v, _ in f1s) if f1s else None},
            "precision": _lowest(
                [(s["precision"], name) for name, s in with_truth if s["precision"] is not None]
            ),
            "recall": _lowest([(s["recall"], name) for name, s in with_truth]),
            "ttd_p90_hours": {
                "max": worst_p90[0] if worst_p90 else None,
                "world": worst_p90[1] if worst_p90 else None,
                "target": TTD_TARGET_HOURS.get(kind),
            },
            "false_positives": sum(s["fp"] for _, s in with_truth),
            "alerts_per_10k": {
                "max": worst_rate[0] if worst_rate else 0.0,
                "world": worst_rate[1] if worst_rate else None,
            },
        }
    macros = [(r["macro_f1"], r["name"]) for r in results if r["macro_f1"] is not None]
    look_alikes: dict[str, dict[str, Any]] = {}
    for r in results:
        for family, c in r.get("look_alikes", {}).items():
            total = look_alikes.setdefault(family, {"entities": 0, "alerted": 0, "kinds": {}})
            total["entities"] += c["entities"]
            total["alerted"] += c["alerted"]
            for kind, n in c["kinds"].items():
                total["kinds"][kind] = total["kinds"].get(kind, 0) + n
    return {
        "look_alikes": dict(sorted(look_alikes.items())),
        "worlds": len(results),
        "ttd_p90": "the largest of the worlds' p90 times to detect (each world's own p90)",
        "kinds": kinds,
        "macro_f1": {
            **_lowest(macros),
            "median": statistics.median(v for v, _ in macros) if macros else None,
        },
    }


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


_ROW = "{:<22}{:>7}{:>8}  {:<18}{:>7}{:>7}  {:<18}{:>7}  {:<18}{:>9}  {:<18}{:>8}"


def render(summary: dict[str, Any], results: list[dict[str, Any]], label: str = "") -> str:
    """The per-kind table of minima and medians, with the worlds they came from."""
    seeds = ", ".join(str(r["seed"]) for r in results)
    scales = [r["scale"] for r in results]
    starts = sorted(r["start"] for r in results)
    lines = [
        f"{len(results)} {label + ' ' if label else ''}worlds: seeds {seeds}; "
        f"scales {min(scales):g}-{max(scales):g}; starts {starts[0]} to {starts[-1]}",
        "",
        _ROW.format(
            "kind", "worlds", "min F1", "(world)", "med F1", "min P", "(world)", "min R",
            "(world)", "p90 TTD h", "(worst world)", "target",
        ),
    ]  # fmt: skip
    short: list[str] = []
    for kind, k in summary["kinds"].items():
        label_kind = kind + ("*" if kind in PER_EVENT_KINDS else "")
        ttd = k["ttd_p90_hours"]
        target = ttd["target"]
        if k["worlds_with_truth"] == 0:
            lines.append(
                f"{label_kind:<22}{0:>7}  no truth of this kind; at most "
                f"{k['alerts_per_10k']['max']:.2f} alerts per 10,000 events "
                f"({k['alerts_per_10k']['world'] or 'no alerts'})"
            )
            continue
        lines.append(
            _ROW.format(
                label_kind,
                k["worlds_with_truth"],
                _ratio(k["f1"]["min"]),
                k["f1"]["world"] or "",
                _ratio(k["f1"]["median"]),
                _ratio(k["precision"]["min"]),
                k["precision"]["world"] or "",
                _ratio(k["recall"]["min"]),
                k["recall"]["world"] or "",
                "n/a" if ttd["max"] is None else f"{ttd['max']:.1f}",
                ttd["world"] or "",
                "" if target is None else f"<= {target:g}",
            )
        )
        if k["f1"]["min"] < F1_TARGET:
            short.append(f"{kind} min F1 {k['f1']['min']:.2f} < {F1_TARGET}")
        if target is not None and (ttd["max"] is None or ttd["max"] > target):
            short.append(f"{kind} p90 TTD {_hours(ttd['max'])} > {target:g} h")
    macro = summary["macro_f1"]
    lines.append(
        _ROW.format(
            "macro F1", summary["worlds"], _ratio(macro["min"]), macro["world"] or "",
            _ratio(macro["median"]), "", "", "", "", "", "", f">= {MACRO_F1_TARGET}",
        )
    )  # fmt: skip
    if macro["min"] is None or macro["min"] < MACRO_F1_TARGET:
        short.append(f"macro F1 min {_ratio(macro['min'])} < {MACRO_F1_TARGET}")
    if summary.get("look_alikes"):
        lines += [
            "",
            "Alerts on lawful look-alikes (entities alerted / entities, over the worlds):",
        ]
        for family, c in summary["look_alikes"].items():
            kinds = ", ".join(f"{kind} {n}" for kind, n in c["kinds"].items())
            counted = f"  {family:<24}{c['alerted']:>6} / {c['entities']:<8}"
            lines.append(counted + ("  " + kinds if kinds else ""))
    lines += [
        "",
        "Minima count, never the best world. F1, P (precision), R (recall) per entity "
        "(* per inspection event); min P leaves out worlds where the kind never alerted.",
        "p90 TTD: each world's p90 hours from a pattern's start to its first alert, the "
        "largest over the worlds. macro F1: a world's mean F1 over its kinds with truth.",
        f"Issue 13 targets (min F1 >= {F1_TARGET}, macro F1 >= {MACRO_F1_TARGET}, p90 TTD): "
        + ("all met" if not short else "short: " + "; ".join(short)),
    ]
    return "\n".join(lines)


def _hours(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def progress_line(result: dict[str, Any]) -> str:
    """One line as a world finishes."""
    made = "reused" if result["reused"] else f"simulated in {result['simulate_seconds']:.0f} s"
    return (
        f"world {result['name']} (seed {result['seed']}, scale {result['scale']:g}, from "
        f"{result['start']}): {result['records']:,} records, {made}, backtest "
        f"{result['backtest_seconds']:.0f} s, macro F1 {_ratio(result['macro_f1'])}"
    )


def report(results: list[dict[str, Any]], summary: dict[str, Any], **run: Any) -> str:
    """Everything as JSON: the run's arguments, the summary, every world's scorecard."""
    return json.dumps({"run": run, "summary": summary, "worlds": results}, indent=2) + "\n"
