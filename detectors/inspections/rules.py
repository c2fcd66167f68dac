"""The inspection rules file: moratorium windows, sizes, exempt bases, thresholds.

The shipped ``rules.toml`` beside this module holds the contract's defaults and
documents every key; ``KUZET_INSPECTION_RULES`` may name another file.
:func:`parse_rules` validates a file completely and raises
:class:`~detectors.errors.ConfigError` naming the file and the key at fault, so
a worker with a bad rules file refuses to start instead of judging wrongly.

>>> rules = parse_rules(default_rules_text())
>>> rules.moratorium.windows, sorted(rules.moratorium.sizes)
(((datetime.date(2020, 1, 1), datetime.date(2023, 1, 1)),), ['micro', 'small'])
>>> try:
...     parse_rules("[moratorium]\\ncovered_sizes = ['tiny']", "mine.toml")
... except ConfigError as exc:
...     print(exc)
mine.toml: moratorium.covered_sizes: 'tiny' is not a business size (micro, small, medium, large)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from datetime import date
from importlib import resources
from typing import Any

from detectors.errors import ConfigError
from detectors.inspections.moratorium_violation import MoratoriumRules

SIZES = ("micro", "small", "medium", "large")


@dataclass(frozen=True)
class RepeatParams:
    """Parameters of :class:`~detectors.inspections.repeat_inspection.RepeatInspection`."""

    window_days: float = 60
    alert_at: float = 3.0
    critical_at: float = 5.0
    follow_up_weight: float = 0.25
    exempt_weight: float = 0.25


@dataclass(frozen=True)
class InspectorParams:
    """Parameters of :class:`~detectors.inspections.inspector_anomaly.InspectorAnomaly`."""

    window_days: float = 30
    repeat_days: float = 60
    z_alert: float = 4.0
    warm_up_days: float = 30
    min_peers: int = 5


@dataclass(frozen=True)
class InspectionRules:
    """Everything the rules file says."""

    moratorium: MoratoriumRules = field(default_factory=MoratoriumRules)
    repeat: RepeatParams = field(default_factory=RepeatParams)
    inspector: InspectorParams = field(default_factory=InspectorParams)


def default_rules_text() -> str:
    """The shipped rules file (the contract's defaults)."""
    return resources.files("detectors.inspections").joinpath("rules.toml").read_text()


def parse_rules(text: str, source: str = "rules.toml") -> InspectionRules:
    """Parse and validate a rules file; sections left out keep their defaults."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: {problem}")

    _only(data, {"moratorium", "repeat_inspection", "inspector_anomaly"}, "", fail)
    return InspectionRules(
        moratorium=_moratorium(data.get("moratorium", {}), fail),
        repeat=_numbers(data.get("repeat_inspection", {}), RepeatParams, "repeat_inspection", fail),
        inspector=_numbers(
            data.get("inspector_anomaly", {}), InspectorParams, "inspector_anomaly", fail
        ),
    )


def _only(table: Any, allowed: set[str], prefix: str, fail: Any) -> None:
    if not isinstance(table, dict):
        raise fail(prefix or "(top)", "expected a table")
    for key in table:
        if key not in allowed:
            raise fail(prefix + key, f"unknown key (expected one of {', '.join(sorted(allowed))})")


def _moratorium(table: Any, fail: Any) -> MoratoriumRules:
    _only(table, {"covered_sizes", "exempt_bases", "windows"}, "moratorium.", fail)
    defaults = MoratoriumRules()
    sizes = table.get("covered_sizes", sorted(defaults.sizes))
    bases = table.get("exempt_bases", sorted(defaults.exempt_bases))
    for key, values in (("covered_sizes", sizes), ("exempt_bases", bases)):
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise fail(f"moratorium.{key}", "expected a list of non-empty strings")
    for size in sizes:
        if size not in SIZES:
            raise fail(
                "moratorium.covered_sizes", f"{size!r} is not a business size ({', '.join(SIZES)})"
            )
    windows = []
    raw_windows = table.get("windows")
    if raw_windows is None:
        windows = list(defaults.windows)
    elif not isinstance(raw_windows, list):
        raise fail("moratorium.windows", "expected [[moratorium.windows]] tables")
    for number, window in enumerate(raw_windows or [], start=1):
        key = f"moratorium.windows[{number}]"
        _only(window, {"start", "end"}, key + ".", fail)
        start, end = window.get("start"), window.get("end")
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, date) or hasattr(value, "hour"):
                raise fail(f"{key}.{name}", "expected a date like 2020-01-01 (no quotes, no time)")
        if not start < end:
            raise fail(key, f"empty window: start {start} is not before end {end}")
        windows.append((start, end))
    return MoratoriumRules(tuple(windows), frozenset(sizes), frozenset(bases))


def _numbers(table: Any, kind: type, section: str, fail: Any) -> Any:
    names = {f.name: f for f in fields(kind)}
    _only(table, set(names), section + ".", fail)
    values = {}
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise fail(f"{section}.{name}", f"expected a positive number, got {value!r}")
        values[name] = int(value) if names[name].type == "int" else float(value)
    params = kind(**values)
    if section == "repeat_inspection" and params.critical_at < params.alert_at:
        raise fail(section, "critical_at must not be below alert_at")
    return params
