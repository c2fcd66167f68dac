"""Grafana provisioning: every dashboard queries only metrics the worker exports.

The metric names come from :class:`streams.metrics.Metrics` built on a fresh
registry (with the suffixes each type is exposed under), plus ``up``, which
Prometheus adds to every target. Every query is also checked as PromQL by
promtool, written out as a recording rule.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics, exported_names
from tests.deploy.support import DEPLOY, require_tool, run

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
#: Series Prometheus itself makes for every scrape target.
PROMETHEUS_SERIES = {"up"}

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (functions, keywords, labels left out).

    >>> sorted(metric_names('sum by (kind) (rate(kuzet_alerts_total{job="x"}[5m])) > 3 * up'))
    ['kuzet_alerts_total', 'up']
    """
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub(" ", expr)
    expr = _RANGE.sub(" ", expr)
    expr = _GROUPING.sub(" ", expr)
    return {name for name in _NAME.findall(expr) if name.lower() not in _KEYWORDS}


def exprs(node) -> list[str]:
    """Every ``expr`` in a dashboard (panels, nested rows, targets)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                found.append(value)
            else:
                found += exprs(value)
    elif isinstance(node, list):
        for item in node:
            found += exprs(item)
    return found


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_is_an_overview_and_one_dashboard_per_domain():
    names = {path.name for path in DASHBOARDS}
    assert names == {
        "kuzet-overview.json",
        "kuzet-payments.json",
        "kuzet-payroll.json",
        "kuzet-inspections.json",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_use_only_exported_metrics(path):
    exported = exported_names(Metrics(CollectorRegistry()).registry) | PROMETHEUS_SERIES
    queries = exprs(load(path))
    assert queries, f"{path.name} has no queries"
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - exported
        assert not unknown, (
            f"{path.name}: {sorted(unknown)} not exported by the worker, in {expr!r}"
        )


def test_the_name_check_catches_a_misspelt_metric():
    exported = exported_names(Metrics(CollectorRegistry()).registry)
    assert metric_names("rate(kuzet_alert_total[5m])") - exported == {"kuzet_alert_total"}
    assert metric_names("kuzet_event_lag_seconds") - exported == {"kuzet_event_lag_seconds"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_are_well_formed(path):
    board = load(path)
    assert board["uid"] and board["title"].startswith("Kuzet")
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_datasource_uid_matches_the_dashboards():
    text = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "uid: prometheus" in text
    assert "type: prometheus" in text


def test_every_query_is_valid_promql(tmp_path):
    # promtool has no expression checker; a recording rule per query gets the real parser.
    lines = ["groups:", "  - name: dashboards", "    rules:"]
    for index, expr in enumerate(e for path in DASHBOARDS for e in exprs(load(path))):
        expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        lines += [f"      - record: dashboard:query_{index}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "dashboards.rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    run(require_tool("promtool"), "check", "rules", str(rules))


#: The selector every dashboard query narrows to the workers picked in ``$instance``.
INSTANCE_MATCHER = 'instance=~"$instance"'
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")


def instance_variable(board: dict) -> dict:
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "instance"]
    return variable


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_pick_workers_from_a_kuzet_metric(path):
    variable = instance_variable(load(path))
    assert variable["type"] == "query"
    assert variable["datasource"] == {"type": "prometheus", "uid": "prometheus"}
    assert variable["includeAll"] and variable["multi"] and variable["allValue"] == ".*"
    match = re.fullmatch(r"label_values\((.+), instance\)", variable["query"]["query"])
    assert match, variable["query"]
    assert variable["definition"] == variable["query"]["query"]
    exported = exported_names(Metrics(CollectorRegistry()).registry)
    [name] = metric_names(match.group(1))
    assert name.startswith("kuzet_") and name in exported


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_is_narrowed_to_the_picked_workers(path):
    for expr in exprs(load(path)):
        stripped = _STRING.sub(lambda m: m.group(0) if m.group(0) == '"$instance"' else '""', expr)
        for name in metric_names(expr):
            selectors = [
                m.group(2) or ""
                for m in _SELECTOR.finditer(stripped)
                if m.group(1) == name and not stripped[m.end() :].lstrip().startswith("(")
            ]
            assert selectors, (name, expr)
            for selector in selectors:
                assert INSTANCE_MATCHER in selector, f"{path.name}: {name} in {expr!r}"


def test_the_instance_check_catches_a_query_without_it():
    expr = 'sum(rate(kuzet_events_total{job="kuzet"}[5m])) / sum(up{instance=~"$instance"})'
    unscoped = [
        m.group(1)
        for m in _SELECTOR.finditer(expr)
        if m.group(1) in metric_names(expr) and INSTANCE_MATCHER not in (m.group(2) or "")
    ]
    assert unscoped == ["kuzet_events_total"]


def test_the_overview_marks_critical_findings():
    board = load(GRAFANA / "dashboards" / "kuzet-overview.json")
    [annotation] = [a for a in board["annotations"]["list"] if a["name"] == "Critical findings"]
    assert annotation["enable"]
    assert annotation["datasource"] == {"type": "prometheus", "uid": "prometheus"}
    expr = annotation["expr"]
    assert metric_names(expr) == {"kuzet_alerts_total"}
    assert 'severity="critical"' in expr and INSTANCE_MATCHER in expr
    assert annotation["tagKeys"] == "kind" and "{{kind}}" in annotation["titleFormat"]


def test_the_overview_shows_the_process_and_state_metrics():
    queries = " ".join(exprs(load(GRAFANA / "dashboards" / "kuzet-overview.json")))
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "kuzet_state_last_saved_timestamp_seconds",
        "kuzet_regrouped_consumer_lag",
    ):
        assert name in queries, name
