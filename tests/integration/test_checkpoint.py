"""Detector state survives a worker restart (checkpoint, restore, rewind)."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import msgspec
import pytest

from streams.codec import decode_alert
from tests.integration.support import Topics, consume

pytestmark = pytest.mark.integration


def payroll(event_id: str, ts: str, kind: str, employee: str, **fields) -> bytes:
    return msgspec.json.encode(
        {"event_id": event_id, "ts": ts, "type": kind, "employer": "E-1", "employee": employee}
        | fields
    )


async def counted(worker, outcome: str = "ok", timeout: float = 60) -> float:
    """Wait until the worker's metrics count some payroll events; return the count."""
    deadline = time.monotonic() + timeout
    line = f'kuzet_events_total{{outcome="{outcome}",stream="payroll"}} '
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics") as response:
            for text in response.read().decode().splitlines():
                if text.startswith(line):
                    return float(text.removeprefix(line))
        await asyncio.sleep(0.3)
    raise AssertionError(f"the worker counted no payroll events:\n{worker.log_tail()}")


async def test_accruals_seen_before_a_restart_still_count_after_it(
    bootstrap, topics: Topics, producer, start_worker, tmp_path
):
    state = {"KUZET_STATE_DIR": str(tmp_path / "state"), "KUZET_CHECKPOINT_SECONDS": "1"}
    app_id = f"ckpt-{topics.prefix}"
    send = lambda raw: producer.send_and_wait(topics.input("payroll"), raw, key=b"E-1")  # noqa: E731

    first = start_worker(topics, app_id=app_id, **state)
    await send(payroll("a-1", "2022-10-31T18:00:00+06:00", "accrual", "W-1", period="2022-10",
                       amount=250_000.0))  # fmt: skip
    await send(payroll("a-2", "2022-10-31T18:00:00+06:00", "accrual", "W-2", period="2022-10",
                       amount=180_000.0))  # fmt: skip
    while await counted(first) < 2:
        await asyncio.sleep(0.3)
    assert first.stop() == 0, first.log_tail()
    assert (tmp_path / "state" / "engine.ckpt").is_file()

    # The second worker resumes after the accruals: it knows them only from the checkpoint.
    second = start_worker(topics, app_id=app_id, **state)
    await send(payroll("p-1", "2022-11-05T11:00:00+06:00", "payment", "W-1", period="2022-10",
                       amount=250_000.0))  # fmt: skip
    # Deadline 2022-11-11T00:00+06:00; the watermark passes it 24 h later.
    await send(payroll("h-1", "2022-11-12T09:00:00+06:00", "hire", "W-3"))
    records = await consume(bootstrap, topics.alerts, expected=1)
    assert await counted(second) == 2  # only the new events were read again
    assert second.stop() == 0, second.log_tail()
    [alert] = [decode_alert(r.value) for r in records]
    assert (alert.kind, alert.entity, alert.event_ids) == ("salary_arrears", "E-1", ["a-2"])
    assert alert.evidence["unpaid_employees"] == 1
    assert alert.evidence["accrued_employees"] == 2
