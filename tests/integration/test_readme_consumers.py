"""The README's consumer examples, run as written against the local broker.

The examples are taken from the README itself (the code block after each
``<!-- consumer-example: NAME -->`` marker), so the README cannot drift from
what works. The alerts topic gets one finding's life, open, escalated and
resolved, with the open alert redelivered: the Python consumer must print
each step once, and kcat must show every record with its schema headers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detectors.base import make_alert, resolve_alert
from streams.codec import encode_alert
from streams.findings import ALERT_HEADERS

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def example(name: str) -> str:
    """The code block after ``<!-- consumer-example: name -->`` in the README."""
    text = README.read_text()
    found = re.search(rf"<!-- consumer-example: {name} -->\n```\w+\n(.*?)\n```", text, re.S)
    assert found, f"README has no consumer example {name!r}"
    return found.group(1)


def life() -> list:
    """One arrears finding: open, escalated, resolved."""
    common = {"kind": "salary_arrears", "entity": "EMP-7", "finding": "2022-10"}
    opened = make_alert(
        **common,
        ts=datetime(2022, 11, 11, 18, tzinfo=UTC),
        severity="warning",
        score=0.6,
        reasons=["1 of 3 employees not paid"],
        evidence={},
        event_ids=["a-1"],
    )
    escalated = make_alert(
        **common,
        ts=datetime(2022, 12, 11, 18, tzinfo=UTC),
        severity="critical",
        score=0.6,
        reasons=["2 periods missed"],
        evidence={},
        event_ids=["a-2"],
        previous="warning",
    )
    resolved = resolve_alert(
        **common,
        ts=datetime(2022, 12, 16, 4, tzinfo=UTC),
        severity="critical",
        reasons=["arrears paid"],
        evidence={"resolution": "paid"},
        event_ids=["late-1"],
    )
    return [opened, escalated, resolved]


async def publish(producer, topic: str) -> list:
    opened, escalated, resolved = life()
    for alert in (opened, opened, escalated, resolved):  # the open alert redelivered
        await producer.send_and_wait(
            topic, encode_alert(alert), key=alert.entity.encode(), headers=ALERT_HEADERS
        )
    return [opened, escalated, resolved]


async def test_the_python_consumer_dedups_and_follows_the_finding(
    topics, producer, bootstrap, tmp_path
):
    await publish(producer, topics.alerts)
    script = tmp_path / "consumer.py"
    script.write_text(example("python"))
    env = {"KUZET_BROKER": bootstrap, "KUZET_TOPIC_ALERTS": topics.alerts, "PATH": ""}
    process = subprocess.Popen(
        [sys.executable, str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while len(lines) < 3 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        time.sleep(2)  # a fourth line (the redelivery) would come now
    finally:
        process.terminate()
        rest, errors = process.communicate(timeout=30)
    lines += [line for line in rest.splitlines() if line.strip()]
    assert lines == [
        "salary_arrears EMP-7: new -> open (warning)",
        "salary_arrears EMP-7: open -> escalated (critical)",
        "salary_arrears EMP-7: escalated -> resolved (critical)",
    ], errors


async def test_the_kcat_line_shows_every_record_with_its_schema_headers(
    topics, producer, bootstrap
):
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: `make setup` installs it (scripts/install-prometheus.sh)"
    published = await publish(producer, topics.alerts)
    done = subprocess.run(
        ["bash", "-c", example("kcat")],
        env={
            "KUZET_BROKER": bootstrap,
            "KUZET_TOPIC_ALERTS": topics.alerts,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    heads, values = lines[0::2], lines[1::2]
    assert len(heads) == 4
    for head in heads:
        assert head.startswith("key=EMP-7 ")
        assert "kuzet-schema=urn:kuzet:schema:alert:2" in head
        assert "kuzet-schema-version=2" in head
    ids = [re.search(r'"alert_id":"(\w+)"', v).group(1) for v in values]
    assert ids == [published[0].alert_id, *(a.alert_id for a in published)]
