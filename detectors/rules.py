"""The rules file: every detector's parameters, whether it runs, and the moratorium.

The shipped ``rules.toml`` beside this module holds the defaults and says why
each value; ``KUZET_RULES`` may name another file. It has one table per kind,
named as the kind, holding that detector's keyword parameters and ``enabled``,
and the shared ``[moratorium]`` table. Tables and keys left out keep their
defaults, which are the detectors' own ``DEFAULT_*`` constants (the parameter
classes below take them as field defaults, and a test checks the shipped file
says the same). :func:`parse_rules` validates a file completely and raises
:class:`~detectors.errors.ConfigError` naming the file and the key at fault, so
a worker with a bad rules file refuses to start instead of judging wrongly.

>>> rules = parse_rules(default_rules_text())
>>> rules.moratorium.windows, sorted(rules.moratorium.sizes)
(((datetime.date(2020, 1, 1), datetime.date(2023, 1, 1)),), ['micro', 'small'])
>>> rules.pyramid_scheme.params.min_stakes, rules.pyramid_scheme.enabled
(10, True)
>>> parse_rules("[mule_account]\\nenabled = false").mule_account.enabled
False
>>> try:
...     parse_rules("[moratorium]\\ncovered_sizes = ['tiny']", "mine.toml")
... except ConfigError as exc:
...     print(exc)
mine.toml: moratorium.covered_sizes: 'tiny' is not a business size (micro, small, medium, large)
>>> try:
...     parse_rules("[mass_layoff]\\nmin_share = 1.5", "mine.toml")
... except ConfigError as exc:
...     print(exc)
mine.toml: mass_layoff.min_share: expected a share between 0 and 1, got 1.5
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from importlib import resources
from typing import Any, Generic, TypeVar

from detectors.errors import ConfigError
from detectors.inspections import inspector_anomaly as inspector
from detectors.inspections import repeat_inspection as repeat
from detectors.inspections.moratorium_violation import MoratoriumRules
from detectors.payments import mule_account as mule
from detectors.payments import payment_anomaly as payment
from detectors.payments import pyramid_scheme as pyramid
from detectors.payroll import mass_layoff as layoff
from detectors.payroll import payroll_anomaly as payroll
from detectors.payroll import salary_arrears as arrears

SIZES = ("micro", "small", "medium", "large")

# What a value may be, beyond its type (a field's ``metadata["range"]``):
POSITIVE = "positive"  # windows, thresholds, counts: above zero (the default)
NON_NEGATIVE = "non_negative"  # warm-ups, tolerances, weights, seeds: zero allowed
SHARE = "share"  # a fraction: between 0 and 1


def _field(default: Any, range_: str = POSITIVE) -> Any:
    return field(default=default, metadata={"range": range_})


@dataclass(frozen=True)
class PyramidSchemeParams:
    """Parameters of :class:`~detectors.payments.pyramid_scheme.PyramidScheme`."""

    window_days: int = _field(pyramid.DEFAULT_WINDOW_DAYS)
    min_stake: float = _field(pyramid.DEFAULT_MIN_STAKE)
    min_stakes: int = _field(pyramid.DEFAULT_MIN_STAKES)
    min_days: int = _field(pyramid.DEFAULT_MIN_DAYS)
    min_stake_share: float = _field(pyramid.DEFAULT_MIN_STAKE_SHARE, SHARE)
    max_passed_share: float = _field(pyramid.DEFAULT_MAX_PASSED_SHARE, SHARE)
    fee_share: float = _field(pyramid.DEFAULT_FEE_SHARE, SHARE)
    circle_size: int = _field(pyramid.DEFAULT_CIRCLE_SIZE)
    bloom_multiple: float = _field(pyramid.DEFAULT_BLOOM_MULTIPLE)
    min_blooms: int = _field(pyramid.DEFAULT_MIN_BLOOMS)
    critical_stakes: int = _field(pyramid.DEFAULT_CRITICAL_STAKES)
    min_returns: int = _field(pyramid.DEFAULT_MIN_RETURNS)
    warm_up_days: float = _field(pyramid.DEFAULT_WARM_UP_DAYS, NON_NEGATIVE)


@dataclass(frozen=True)
class MuleAccountParams:
    """Parameters of :class:`~detectors.payments.mule_account.MuleAccount`."""

    forward_hours: float = _field(mule.DEFAULT_FORWARD_HOURS)
    min_share: float = _field(mule.DEFAULT_MIN_SHARE, SHARE)
    max_pool: int = _field(mule.DEFAULT_MAX_POOL)
    min_passes: int = _field(mule.DEFAULT_MIN_PASSES)
    window_hours: float = _field(mule.DEFAULT_WINDOW_HOURS)
    min_payers: int = _field(mule.DEFAULT_MIN_PAYERS)
    cold_min_payers: int = _field(mule.DEFAULT_COLD_MIN_PAYERS)
    warm_up_days: float = _field(mule.DEFAULT_WARM_UP_DAYS, NON_NEGATIVE)
    critical_payers: int = _field(mule.DEFAULT_CRITICAL_PAYERS)
    min_amount: float = _field(mule.DEFAULT_MIN_AMOUNT, NON_NEGATIVE)
    min_forwarded_share: float = _field(mule.DEFAULT_MIN_FORWARDED_SHARE, SHARE)


@dataclass(frozen=True)
class PaymentAnomalyParams:
    """Parameters of :class:`~detectors.payments.payment_anomaly.PaymentAnomaly`."""

    q: float = _field(payment.DEFAULT_Q, SHARE)
    warm_up: int = _field(payment.DEFAULT_WARM_UP, NON_NEGATIVE)
    min_activity: int = _field(payment.DEFAULT_MIN_ACTIVITY)
    quiet_days: float = _field(payment.DEFAULT_QUIET_DAYS, NON_NEGATIVE)
    min_score: float = _field(payment.DEFAULT_MIN_SCORE, SHARE)
    repaid_share: float = _field(payment.DEFAULT_REPAID_SHARE, SHARE)
    takings_days: int = _field(payment.DEFAULT_TAKINGS_DAYS)
    seed: int = _field(payment.DEFAULT_SEED, NON_NEGATIVE)


@dataclass(frozen=True)
class SalaryArrearsParams:
    """Parameters of :class:`~detectors.payroll.salary_arrears.SalaryArrears`."""

    due_day: int = _field(arrears.DEFAULT_DUE_DAY)
    tolerance: float = _field(arrears.DEFAULT_TOLERANCE, NON_NEGATIVE)


@dataclass(frozen=True)
class PayrollAnomalyParams:
    """Parameters of :class:`~detectors.payroll.payroll_anomaly.PayrollAnomaly`."""

    min_delay_days: float = _field(payroll.DEFAULT_MIN_DELAY_DAYS)
    min_cut: float = _field(payroll.DEFAULT_MIN_CUT, SHARE)
    warm_up_periods: int = _field(payroll.DEFAULT_WARM_UP_PERIODS, NON_NEGATIVE)


@dataclass(frozen=True)
class MassLayoffParams:
    """Parameters of :class:`~detectors.payroll.mass_layoff.MassLayoff`."""

    window_days: float = _field(layoff.DEFAULT_WINDOW_DAYS)
    min_share: float = _field(layoff.DEFAULT_MIN_SHARE, SHARE)
    min_count: int = _field(layoff.DEFAULT_MIN_COUNT)
    absolute_count: int = _field(layoff.DEFAULT_ABSOLUTE_COUNT)
    link_days: float = _field(layoff.DEFAULT_LINK_DAYS, NON_NEGATIVE)


@dataclass(frozen=True)
class MoratoriumViolationParams:
    """``moratorium_violation`` has no parameters of its own: it reads ``[moratorium]``."""


@dataclass(frozen=True)
class RepeatInspectionParams:
    """Parameters of :class:`~detectors.inspections.repeat_inspection.RepeatInspection`."""

    window_days: float = _field(repeat.DEFAULT_WINDOW_DAYS)
    alert_at: float = _field(repeat.DEFAULT_ALERT_AT)
    critical_at: float = _field(repeat.DEFAULT_CRITICAL_AT)
    follow_up_weight: float = _field(repeat.DEFAULT_FOLLOW_UP_WEIGHT)
    exempt_weight: float = _field(repeat.DEFAULT_EXEMPT_WEIGHT)


@dataclass(frozen=True)
class InspectorAnomalyParams:
    """Parameters of :class:`~detectors.inspections.inspector_anomaly.InspectorAnomaly`."""

    window_days: float = _field(inspector.DEFAULT_WINDOW_DAYS)
    repeat_days: float = _field(inspector.DEFAULT_REPEAT_DAYS)
    min_violations: int = _field(inspector.DEFAULT_MIN_VIOLATIONS)
    min_repeats: int = _field(inspector.DEFAULT_MIN_REPEATS)
    z_alert: float = _field(inspector.DEFAULT_Z_ALERT)
    warm_up_days: float = _field(inspector.DEFAULT_WARM_UP_DAYS)
    min_peers: int = _field(inspector.DEFAULT_MIN_PEERS)


#: Each kind's parameter class, in the order the engine runs the detectors.
PARAMS: dict[str, type] = {
    "pyramid_scheme": PyramidSchemeParams,
    "mule_account": MuleAccountParams,
    "payment_anomaly": PaymentAnomalyParams,
    "salary_arrears": SalaryArrearsParams,
    "payroll_anomaly": PayrollAnomalyParams,
    "mass_layoff": MassLayoffParams,
    "moratorium_violation": MoratoriumViolationParams,
    "repeat_inspection": RepeatInspectionParams,
    "inspector_anomaly": InspectorAnomalyParams,
}

P = TypeVar("P")


@dataclass(frozen=True)
class KindRules(Generic[P]):
    """One kind's table: its detector's parameters, and whether it runs at all."""

    params: P
    enabled: bool = True


@dataclass(frozen=True)
class Rules:
    """Everything the rules file says."""

    moratorium: MoratoriumRules = field(default_factory=MoratoriumRules)
    pyramid_scheme: KindRules[PyramidSchemeParams] = field(
        default_factory=lambda: KindRules(PyramidSchemeParams())
    )
    mule_account: KindRules[MuleAccountParams] = field(
        default_factory=lambda: KindRules(MuleAccountParams())
    )
    payment_anomaly: KindRules[PaymentAnomalyParams] = field(
        default_factory=lambda: KindRules(PaymentAnomalyParams())
    )
    salary_arrears: KindRules[SalaryArrearsParams] = field(
        default_factory=lambda: KindRules(SalaryArrearsParams())
    )
    payroll_anomaly: KindRules[PayrollAnomalyParams] = field(
        default_factory=lambda: KindRules(PayrollAnomalyParams())
    )
    mass_layoff: KindRules[MassLayoffParams] = field(
        default_factory=lambda: KindRules(MassLayoffParams())
    )
    moratorium_violation: KindRules[MoratoriumViolationParams] = field(
        default_factory=lambda: KindRules(MoratoriumViolationParams())
    )
    repeat_inspection: KindRules[RepeatInspectionParams] = field(
        default_factory=lambda: KindRules(RepeatInspectionParams())
    )
    inspector_anomaly: KindRules[InspectorAnomalyParams] = field(
        default_factory=lambda: KindRules(InspectorAnomalyParams())
    )

    def kind(self, name: str) -> KindRules[Any]:
        """The table of one kind, by its name."""
        if name not in PARAMS:
            raise KeyError(name)
        return getattr(self, name)


def default_rules_text() -> str:
    """The shipped rules file (the defaults)."""
    return resources.files("detectors").joinpath("rules.toml").read_text()


def parse_rules(text: str, source: str = "rules.toml") -> Rules:
    """Parse and validate a rules file; tables and keys left out keep their defaults."""
    return rules_from_table(_toml(text, source), source)


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


#: Parameters a live change may not alter (:func:`overlay`): the detector built
#: something from them when it was made, which a new value would not rebuild.
#: They change with the rules file and a new app id (README, "Changing rules live").
FIXED_LIVE = {
    ("payment_anomaly", "q"): "its learned quantile estimator is built for one quantile",
    ("payment_anomaly", "seed"): "its model's trees were drawn with this seed",
    ("salary_arrears", "due_day"): "the deadlines of open pay periods are already scheduled",
}


def rules_table(rules: Rules) -> dict[str, Any]:
    """``rules`` as the tables of a rules file (what :func:`parse_rules` reads back).

    >>> rules_from_table(rules_table(Rules())) == Rules()
    True
    """
    moratorium = rules.moratorium
    table: dict[str, Any] = {
        "moratorium": {
            "covered_sizes": sorted(moratorium.sizes),
            "exempt_bases": sorted(moratorium.exempt_bases),
            "windows": [{"start": start, "end": end} for start, end in moratorium.windows],
        }
    }
    for name in PARAMS:
        kind = rules.kind(name)
        table[name] = {"enabled": kind.enabled, **asdict(kind.params)}
    return table


def overlay(rules: Rules, text: str, source: str = "rules change") -> Rules:
    """``rules`` with the tables of ``text`` laid over them, validated as a whole.

    ``text`` is a rules file, usually partial: the keys it names replace those
    of ``rules``, the rest stay. A live change may not touch ``[moratorium]``
    nor the parameters in :data:`FIXED_LIVE` (restating their value is fine).

    >>> raised = overlay(Rules(), "[mule_account]\\nmin_payers = 5")
    >>> raised.mule_account.params.min_payers, raised.pyramid_scheme == Rules().pyramid_scheme
    (5, True)
    >>> overlay(raised, "[mule_account]\\nenabled = false").mule_account.params.min_payers
    5
    """
    data = _toml(text, source)

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: {problem}")

    _only(data, set(PARAMS), "", fail)  # [moratorium] too: it is no kind's table
    merged = rules_table(rules)
    for name, table in data.items():
        _only(table, {*(f.name for f in fields(PARAMS[name])), "enabled"}, name + ".", fail)
        for key, value in table.items():
            why = FIXED_LIVE.get((name, key))
            if why is not None and value != merged[name][key]:
                raise fail(
                    f"{name}.{key}",
                    f"cannot change while the worker runs ({why}); change it in the rules "
                    "file and start a new app id",
                )
        merged[name].update(table)
    return rules_from_table(merged, source)


def rules_from_table(data: dict[str, Any], source: str = "rules.toml") -> Rules:
    """Validate the tables of a rules file (parsed TOML) into :class:`Rules`."""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: {problem}")

    _only(data, {"moratorium", *PARAMS}, "", fail)
    kinds = {name: _kind_rules(data.get(name, {}), name, fail) for name in PARAMS}
    return Rules(moratorium=_moratorium(data.get("moratorium", {}), fail), **kinds)


def _only(table: Any, allowed: set[str], prefix: str, fail: Any) -> None:
    if not isinstance(table, dict):
        raise fail(prefix.rstrip(".") or "(top)", "expected a table")
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


def _kind_rules(table: Any, section: str, fail: Any) -> KindRules[Any]:
    kind = PARAMS[section]
    names = {f.name: f for f in fields(kind)}
    _only(table, {*names, "enabled"}, section + ".", fail)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail(f"{section}.enabled", f"expected true or false, got {enabled!r}")
    values = {}
    for name, value in table.items():
        if name != "enabled":
            values[name] = _number(value, names[name], f"{section}.{name}", fail)
    params = kind(**values)
    _check(section, params, fail)
    return KindRules(params, enabled)


def _number(value: Any, spec: Any, key: str, fail: Any) -> float:
    """A value checked against its field: whole where an int is expected, within range.

    An int is accepted where a float is expected and kept as written.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(key, f"expected a number, got {value!r}")
    if spec.type == "int" and not isinstance(value, int):
        raise fail(key, f"expected a whole number, got {value!r}")
    if not math.isfinite(value):
        raise fail(key, f"expected a finite number, got {value!r}")
    range_ = spec.metadata.get("range", POSITIVE)
    if range_ == POSITIVE and value <= 0:
        raise fail(key, f"expected a positive number, got {value!r}")
    if range_ == NON_NEGATIVE and value < 0:
        raise fail(key, f"expected a number of at least 0, got {value!r}")
    if range_ == SHARE and not 0 <= value <= 1:
        raise fail(key, f"expected a share between 0 and 1, got {value!r}")
    return value


def _check(section: str, params: Any, fail: Any) -> None:
    """What one value cannot tell alone: thresholds in order, days that exist."""
    if section == "repeat_inspection" and params.critical_at < params.alert_at:
        raise fail(section, "critical_at must not be below alert_at")
    if section == "pyramid_scheme" and params.critical_stakes < params.min_stakes:
        raise fail(section, "critical_stakes must not be below min_stakes")
    if section == "mule_account" and params.critical_payers < params.min_payers:
        raise fail(section, "critical_payers must not be below min_payers")
    if section == "payment_anomaly" and params.min_activity < 2:
        raise fail(
            f"{section}.min_activity", "must be at least 2 (single payments are never scored)"
        )
    if section == "salary_arrears" and not 1 <= params.due_day <= 28:
        raise fail(
            f"{section}.due_day",
            f"expected a day from 1 to 28 (every month has it), got {params.due_day}",
        )
