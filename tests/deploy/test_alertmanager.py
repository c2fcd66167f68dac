"""The Alertmanager configuration: valid, and routing each alert to the right receiver."""

from __future__ import annotations

import pytest

from detectors.events import KIND_DOMAIN
from tests.deploy.support import DEPLOY, require_tool, run

CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def test_config_is_valid():
    output = run(require_tool("amtool"), "check-config", str(CONFIG))
    assert "SUCCESS" in output


def receiver(*labels: str) -> str:
    output = run(
        require_tool("amtool"), "config", "routes", "test", f"--config.file={CONFIG}", *labels
    )
    # amtool warns on stderr that --config.file overrides --alertmanager.url.
    [name] = [line for line in output.splitlines() if line and not line.startswith("Warning:")]
    return name.strip()


@pytest.mark.parametrize("kind", sorted(KIND_DOMAIN))
@pytest.mark.parametrize("severity", ["warning", "critical"])
def test_findings_go_to_their_domain_by_severity(kind, severity):
    domain = KIND_DOMAIN[kind][0]
    suffix = "-critical" if severity == "critical" else ""
    labels = ("category=finding", f"kind={kind}", f"severity={severity}")
    assert receiver(*labels) == f"{domain}-oversight{suffix}"


def test_operations_go_to_the_operators():
    assert receiver("category=operations", "severity=warning", "stream=payments") == "operators"
    assert receiver("alertname=KuzetWorkerDown", "category=operations", "severity=critical") == (
        "operators-critical"
    )
    assert receiver("alertname=Unknown") == "operators"


def test_critical_findings_inhibit_warnings_of_the_same_kind():
    # amtool cannot evaluate inhibition offline; the rule is read from the file instead.
    text = CONFIG.read_text()
    block = text[text.index("inhibit_rules:") : text.index("receivers:")]
    assert "source_matchers: ['category=\"finding\"', 'severity=\"critical\"']" in block
    assert "target_matchers: ['category=\"finding\"', 'severity=\"warning\"']" in block
    assert "equal: [kind]" in block
