"""A finding's life on the real broker, across a worker restart.

Salary arrears at one employer: the October wages of one employee of three are
not paid by the deadline (a warning: the finding opens), November's neither (it
escalates to critical), then both are paid late (it is resolved). The first
worker sees the opening and stops; a second worker, started afresh, sees the
rest. The whole life is then read back from the findings topic, from
``kuzet findings`` (latest step and ``--history``) and from the second worker's
``/alerts``, which knows the finding the first worker opened only from the topic.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import orjson
import pytest

from detectors.base import alert_id, finding_id
from streams.codec import decode_alert
from tests.integration.support import consume, wait_until

pytestmark = pytest.mark.integration

FINDING = finding_id("salary_arrears", "E-1", "2022-10")
HEADERS = {"kuzet-schema": b"urn:kuzet:schema:alert:2", "kuzet-schema-version": b"2"}


def payroll(event_id: str, ts: str, kind: str, employee: str, **fields) -> bytes:
    event = {"event_id": event_id, "ts": ts, "type": kind, "employer": "E-1"}
    return orjson.dumps({**event, "employee": employee, **fields})


def month(period: str, accrued: str, paid: str, decided: str) -> list[bytes]:
    """Three employees' wages accrued, W-1 and W-2 paid in time, W-0 not; then a hire
    a day after the deadline moves the partition's watermark past it."""
    events = [
        payroll(f"a-{period}-{k}", accrued, "accrual", f"W-{k}", period=period, amount=100_000.0)
        for k in range(3)
    ]
    events += [
        payroll(f"p-{period}-{k}", paid, "payment", f"W-{k}", period=period, amount=100_000.0)
        for k in (1, 2)
    ]
    return [*events, payroll(f"h-{period}", decided, "hire", f"NEW-{period}")]


OCTOBER = month(
    "2022-10", "2022-10-31T18:00:00+06:00", "2022-11-05T12:00:00+06:00", "2022-11-12T06:00:00+06:00"
)
NOVEMBER = month(
    "2022-11", "2022-11-30T18:00:00+06:00", "2022-12-05T12:00:00+06:00", "2022-12-12T06:00:00+06:00"
)
PAID_LATE = [
    payroll("late-10", "2022-12-15T10:00:00+06:00", "payment", "W-0", period="2022-10", amount=1e5),
    payroll("late-11", "2022-12-16T10:00:00+06:00", "payment", "W-0", period="2022-11", amount=1e5),
]


def findings(worker, *args: str) -> list[dict]:
    """``kuzet findings ARGS`` with the worker's settings, as JSON objects."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "findings", *args],
        env=worker.env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def alerts_page(worker, query: str) -> tuple[list[dict], str | None]:
    import urllib.request

    url = f"http://127.0.0.1:{worker.web_port}/alerts?{query}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read()), response.headers.get("X-Kuzet-Findings-Complete")


async def test_a_finding_escalates_and_resolves_across_a_restart(
    topics, producer, start_worker, bootstrap
):
    payroll_topic = topics.input("payroll")
    first = start_worker(topics)
    for value in OCTOBER:
        await producer.send_and_wait(payroll_topic, value, key=b"E-1")
    [opened] = await consume(bootstrap, topics.alerts, 1)
    assert decode_alert(opened.value).status == "open"
    assert first.stop() == 0

    second = start_worker(topics, app_id=first.env["KUZET_APP_ID"])
    # It never saw the finding open: /alerts knows it from the findings topic alone.
    await wait_until(lambda: alerts_page(second, "entity=E-1")[1] == "true", timeout=60)
    [known], _ = alerts_page(second, "entity=E-1")
    assert (known["finding_id"], known["status"]) == (FINDING, "open")

    for value in NOVEMBER + PAID_LATE:
        await producer.send_and_wait(payroll_topic, value, key=b"E-1")
    records = await consume(bootstrap, topics.alerts, 3)
    steps = [decode_alert(r.value) for r in records]
    assert [(a.status, a.severity) for a in steps] == [
        ("open", "warning"),
        ("escalated", "critical"),
        ("resolved", "critical"),
    ]
    for record in records:
        assert {k: v for k, v in record.headers if k in HEADERS} == HEADERS
        assert record.key == b"E-1"

    # The findings topic: every step under the finding's id, each superseding the last.
    table = await consume(bootstrap, topics.prefix + "findings", 3)
    life = [decode_alert(r.value) for r in table]
    assert {r.key for r in table} == {FINDING.encode()}
    assert [a.alert_id for a in life] == [a.alert_id for a in steps]
    assert [a.supersedes for a in life] == [
        None,
        alert_id("salary_arrears", "E-1", "2022-10", "warning"),
        alert_id("salary_arrears", "E-1", "2022-10", "critical"),
    ]
    assert life[-1].evidence["resolution"] == "paid"
    assert life[-1].event_ids == ["late-11"]

    # kuzet findings: the finding as it stands, and its whole life.
    [latest] = await asyncio.to_thread(findings, second, "--entity", "E-1")
    assert (latest["finding_id"], latest["status"]) == (FINDING, "resolved")
    history = await asyncio.to_thread(findings, second, "--entity", "E-1", "--history")
    assert [h["status"] for h in history] == ["open", "escalated", "resolved"]
    assert await asyncio.to_thread(findings, second, "--status", "open") == []
    table_view = subprocess.run(
        [sys.executable, "-m", "streams.cli", "findings", "--table"],
        env=second.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert table_view[0].split()[:4] == ["ts", "kind", "severity", "status"]
    assert "salary_arrears  critical  resolved  E-1" in table_view[1]

    # /alerts on the running worker follows the topic to the end of the life.
    await wait_until(
        lambda: [a["status"] for a in alerts_page(second, "entity=E-1")[0]] == ["resolved"],
        timeout=30,
    )
    assert alerts_page(second, "status=resolved&kind=salary_arrears")[0][0]["entity"] == "E-1"
    assert second.stop() == 0
