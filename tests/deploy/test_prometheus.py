"""The Prometheus configuration and alerting rules, checked and unit-tested by promtool."""

from __future__ import annotations

import pytest

from tests.deploy.support import DEPLOY, require_tool, run

PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-local.yml"])
def test_config_is_valid(config):
    run(require_tool("promtool"), "check", "config", str(PROMETHEUS / config))


def test_rules_are_valid():
    assert RULE_FILES
    run(require_tool("promtool"), "check", "rules", *map(str, RULE_FILES))


def test_rules_pass_their_unit_tests():
    assert RULE_TESTS
    output = run(require_tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert "SUCCESS" in output


def test_every_rule_has_a_unit_test():
    # A rule added without a test group is caught here (test groups are named after rules).
    rules = {
        line.split(":", 1)[1].strip()
        for path in RULE_FILES
        for line in path.read_text().splitlines()
        if line.strip().startswith("- alert:")
    }
    tested = {
        line.split(":", 1)[1].strip()
        for path in RULE_TESTS
        for line in path.read_text().splitlines()
        if line.strip().startswith("alertname:")
    }
    assert rules, "no alerting rules found"
    assert rules <= tested, f"rules without a promtool test: {sorted(rules - tested)}"
