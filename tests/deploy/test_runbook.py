"""Every alerting rule links to its section of deploy/runbook.md, and the section exists.

The links are ``deploy/runbook.md#<anchor>``, relative to the repository (no host can
be named; the runbook says how to prefix them). Anchors follow GitHub's rules for
headings, so a link that works here works where the repository is served.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.deploy.support import DEPLOY, ROOT

RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RUNBOOK = DEPLOY / "runbook.md"
PREFIX = "deploy/runbook.md#"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation other than hyphens and
    underscores dropped, spaces made hyphens (repeats get -1, -2: see :func:`anchors`).

    >>> github_anchor("KuzetWorkerDown")
    'kuzetworkerdown'
    >>> github_anchor("What to do: lag & `kuzet_consumer_lag`")
    'what-to-do-lag--kuzet_consumer_lag'
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of every heading of a Markdown text (outside fenced code)."""
    found: set[str] = set()
    seen: Counter[str] = Counter()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if match:
            anchor = github_anchor(match.group(1))
            found.add(anchor if not seen[anchor] else f"{anchor}-{seen[anchor]}")
            seen[anchor] += 1
    return found


def runbook_urls(path) -> dict[str, str | None]:
    """Each alerting rule of a rules file, with its ``runbook_url`` (None: it has none)."""
    urls: dict[str, str | None] = {}
    alert = None
    for line in path.read_text().splitlines():
        if match := re.match(r"\s*- (alert|record):\s*(\S+)", line):
            alert = match.group(2) if match.group(1) == "alert" else None
            if alert:
                urls[alert] = None
        elif alert and (match := re.match(r"\s*runbook_url:\s*[\"']?([^\"'\s]+)", line)):
            urls[alert] = match.group(1)
    return urls


def test_anchors_follow_githubs_rules():
    text = "# Kuzet runbook\n## Same\n## Same\n```\n# not a heading\n```\n## A, b & c.\n"
    assert anchors(text) == {"kuzet-runbook", "same", "same-1", "a-b--c"}


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_rule_links_to_an_existing_runbook_section(path):
    sections = anchors(RUNBOOK.read_text())
    urls = runbook_urls(path)
    assert urls, f"no alerting rules in {path.name}"
    for alert, url in urls.items():
        assert url, f"{alert} has no runbook_url annotation"
        assert url.startswith(PREFIX), f"{alert}: {url} is not {PREFIX}<anchor>"
        assert (ROOT / url.split("#")[0]).is_file()
        anchor = url.removeprefix(PREFIX)
        assert anchor in sections, f"{alert}: no heading of deploy/runbook.md has #{anchor}"


def test_the_check_catches_a_rule_without_a_runbook(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n  - name: g\n    rules:\n"
        "      - record: job:up:sum\n        expr: sum(up)\n"
        "      - alert: A\n        expr: up == 0\n        annotations:\n"
        '          runbook_url: "deploy/runbook.md#a"\n'
        "      - alert: B\n        expr: up == 0\n"
    )
    assert runbook_urls(rules) == {"A": "deploy/runbook.md#a", "B": None}


def test_every_runbook_section_belongs_to_a_rule():
    # A rule renamed or removed leaves its section behind: caught here.
    rules = {alert.lower() for path in RULE_FILES for alert in runbook_urls(path)}
    sections = {
        github_anchor(line[3:]) for line in RUNBOOK.read_text().splitlines() if line[:3] == "## "
    }
    assert sections == rules
