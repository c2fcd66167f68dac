"""The rules file: its defaults are the detectors' own, and it is what the engine builds."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields, replace

import pytest

from detectors.errors import ConfigError
from detectors.registry import DetectionConfig, build_engine
from detectors.rules import PARAMS, KindRules, Rules, default_rules_text, parse_rules

#: Constructor parameters that are wiring, not tunables: they are not in the rules file.
WIRING = {"payers", "timezone", "rules", "exempt_bases"}


def test_the_shipped_file_says_exactly_what_the_code_defaults_are():
    shipped = parse_rules(default_rules_text())
    assert shipped == Rules()
    for kind in PARAMS:
        table = shipped.kind(kind)
        assert table.enabled
        for spec in fields(table.params):
            value, default = getattr(table.params, spec.name), spec.default
            # Same value *and* type: 60 and 60.0 print differently in an alert's reasons.
            assert (value, type(value)) == (default, type(default)), f"{kind}.{spec.name}"


def test_every_kind_has_a_table_in_the_shipped_file():
    text = default_rules_text()
    for kind in PARAMS:
        assert f"\n[{kind}]\n" in text


def test_each_parameter_class_is_its_detectors_keyword_parameters_with_their_defaults():
    detectors = {detector.kind: type(detector) for detector in build_engine().detectors}
    assert list(detectors) == list(PARAMS)
    for kind, params in PARAMS.items():
        signature = inspect.signature(detectors[kind].__init__).parameters
        tunables = {name: p.default for name, p in signature.items() if name not in WIRING}
        tunables.pop("self")
        declared = {spec.name: spec.default for spec in fields(params)}
        assert MISSING not in declared.values()
        assert declared == tunables, kind


def test_a_partial_file_keeps_the_defaults_of_what_it_leaves_out():
    rules = parse_rules("[mass_layoff]\nmin_count = 3\n")
    assert rules.mass_layoff.params.min_count == 3
    assert rules.mass_layoff.params.min_share == Rules().mass_layoff.params.min_share
    assert replace(rules, mass_layoff=Rules().mass_layoff) == Rules()


def test_an_int_is_accepted_where_a_float_is_expected():
    rules = parse_rules("[mule_account]\nforward_hours = 6\n")
    assert rules.mule_account.params.forward_hours == 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[pyramid_scheme]\nwindow_days = 7.5", "pyramid_scheme.window_days: expected a whole"),
        ("[pyramid_scheme]\nmin_stake_share = -0.1", "min_stake_share: expected a share"),
        ("[pyramid_scheme]\ncritical_stakes = 5", "critical_stakes must not be below min_stakes"),
        ("[mule_account]\ncritical_payers = 1", "critical_payers must not be below"),
        ("[mass_layoff]\nwindow_days = 0", "mass_layoff.window_days: expected a positive"),
        ("[inspector_anomaly]\nmin_peers = true", "inspector_anomaly.min_peers: expected a number"),
        ("[repeat_inspection]\nwindow_days = nan", "window_days: expected a finite number"),
        ("[moratorium_violation]\nwindow_days = 3", "moratorium_violation.window_days: unknown"),
        ("[pyramid]\nenabled = false", ": pyramid: unknown key"),
    ],
)
def test_a_bad_value_is_refused_naming_the_table_and_key(text, expected):
    with pytest.raises(ConfigError, match=r"mine\.toml") as error:
        parse_rules(text, "mine.toml")
    assert expected in str(error.value)


def test_a_kind_switched_off_is_built_but_not_run():
    # Built, so that a rules change can switch it on (detectors/live_rules.py).
    rules = parse_rules("[payment_anomaly]\nenabled = false\n[inspector_anomaly]\nenabled = false")
    assert rules.payment_anomaly == KindRules(Rules().payment_anomaly.params, enabled=False)
    engine = build_engine(DetectionConfig(rules=rules))
    assert [d.kind for d in engine.detectors] == list(PARAMS)
    assert engine.enabled_kinds() == [
        k for k in PARAMS if k not in {"payment_anomaly", "inspector_anomaly"}
    ]


def test_every_kind_switched_off_leaves_an_engine_that_judges_nothing():
    off = "\n".join(f"[{kind}]\nenabled = false" for kind in PARAMS)
    engine = build_engine(DetectionConfig(rules=parse_rules(off)))
    assert engine.enabled_kinds() == []
    assert all(not engine.partition(lane, 0).running for lane in engine.lanes())
