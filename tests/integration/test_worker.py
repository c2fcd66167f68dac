"""The live path on the real broker: events in, exact alerts and dead letters out."""

from __future__ import annotations

import urllib.request

import msgspec
import pytest

from detectors.registry import build_engine
from streams.codec import decode_alert, decode_event
from tests.integration.support import Topics, consume, inspection, wait_until

pytestmark = pytest.mark.integration


# Within a day of each other, so none is late whichever partition its key lands on
# (the window's midnight edges are covered by tests/detectors/test_moratorium.py).
VALID_INSPECTIONS = [
    ("B-1", inspection("i-1", "2021-03-02T05:00:00Z", "B-1")),  # violation
    ("B-2", inspection("i-2", "2021-03-02T05:00:00Z", "B-2", size="large")),  # lawful: size
    ("B-3", inspection("i-3", "2021-03-02T05:00:00Z", "B-3", basis="criminal_case")),  # exempt
    ("B-4", inspection("i-4", "2021-03-01T00:01:00+06:00", "B-4", size="micro")),  # violation
    ("B-5", inspection("i-5", "2021-03-01T23:59:00+06:00", "B-5", size="medium")),  # lawful: size
]
REDELIVERED = VALID_INSPECTIONS[0]

# (stream, key, raw bytes, the reason the dead letter must carry). A reason ending in
# ": " is Kuzet's category, followed by the decoder's detail (whose wording is msgspec's,
# not ours to pin down); the others are Kuzet's own words, in full.
INVALID = [
    ("inspections", b"B-9", b"not json", "not JSON: "),
    ("inspections", b"B-9", b"[1, 2]", "not a JSON object: "),
    (
        "inspections",
        b"B-9",
        b'{"event_id": "x", "ts": "2021-03-02T05:00:00Z"}',
        "missing field: business",
    ),
    (
        "inspections",
        b"B-9",
        inspection("i-9", "2021-03-02T05:00:00", "B-9"),  # no UTC offset
        "invalid field ts: ",
    ),
    (
        "payments",
        b"A-1",
        b'{"event_id":"p","ts":"2021-03-02T05:00:00Z","payer":"A-1","payee":"A-1","amount":5}',
        "payee equals payer",
    ),
    (
        "payroll",
        b"E-1",
        b'{"event_id":"r","ts":"2021-03-02T05:00:00Z","type":"accrual","employer":"E-1",'
        b'"employee":"W-1","amount":5}',
        "missing field: period (required for type accrual)",
    ),
]


def reason_matches(reason: str, expected: str) -> bool:
    return reason.startswith(expected) if expected.endswith(": ") else reason == expected


def expected_alerts() -> dict[str, dict]:
    """What the offline engine makes of the valid inspections, by alert id."""
    engine = build_engine()
    alerts = {}
    for partition, (_, raw) in enumerate(VALID_INSPECTIONS):
        event = decode_event("inspections", raw)
        for alert in engine.process("inspections", event, partition).alerts:
            alerts[alert.alert_id] = msgspec.to_builtins(alert)
    return alerts


async def test_worker_publishes_exact_alerts_and_dead_letters(
    bootstrap, topics: Topics, producer, start_worker
):
    worker = start_worker(topics)

    for key, raw in [*VALID_INSPECTIONS, REDELIVERED]:
        await producer.send_and_wait(topics.input("inspections"), raw, key=key.encode())
    sent_invalid = []
    for stream, key, raw, reason in INVALID:
        meta = await producer.send_and_wait(topics.input(stream), raw, key=key)
        sent_invalid.append((stream, key, raw, reason, meta))

    expected = expected_alerts()
    assert len(expected) == 2  # i-1 and i-4
    records = await consume(bootstrap, topics.alerts, expected=len(expected))
    got = {}
    for record in records:
        alert = decode_alert(record.value)
        assert record.key == alert.entity.encode()
        assert alert.alert_id not in got, "a redelivered event yielded a second alert"
        got[alert.alert_id] = msgspec.to_builtins(alert)
    assert got == expected

    for stream in ("inspections", "payments", "payroll"):
        mine = [s for s in sent_invalid if s[0] == stream]
        letters = await consume(bootstrap, topics.dlq(stream), expected=len(mine))
        assert len(letters) == len(mine)
        by_offset = {(s[4].partition, s[4].offset): s for s in mine}
        for letter in letters:
            headers = {k: v.decode() for k, v in letter.headers}
            position = (int(headers["kuzet.source.partition"]), int(headers["kuzet.source.offset"]))
            _, key, raw, reason, meta = by_offset.pop(position)
            assert letter.value == raw  # the original bytes, unchanged
            assert letter.key == key
            assert reason_matches(headers.pop("kuzet.reason"), reason), (reason, letter.headers)
            assert headers == {
                "kuzet.source.topic": topics.input(stream),
                "kuzet.source.partition": str(meta.partition),
                "kuzet.source.offset": str(meta.offset),
            }
        assert not by_offset

    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics") as response:
        metrics = response.read().decode()
    assert 'kuzet_events_total{outcome="ok",stream="inspections"} 5.0' in metrics
    assert 'kuzet_events_total{outcome="duplicate",stream="inspections"} 1.0' in metrics
    assert 'kuzet_events_total{outcome="invalid",stream="inspections"} 4.0' in metrics
    assert 'kuzet_alerts_total{kind="moratorium_violation",severity="critical"} 2.0' in metrics

    assert worker.stop() == 0, worker.log_tail()


async def test_reprocessing_reproduces_the_same_alert_ids(
    bootstrap, topics: Topics, producer, start_worker
):
    """A second worker that re-reads the topics from the start (a fresh consumer
    group, no state) publishes the same findings under the same ids, so a consumer
    de-duplicating on alert_id sees each finding once."""
    for key, raw in VALID_INSPECTIONS:
        await producer.send_and_wait(topics.input("inspections"), raw, key=key.encode())

    first = start_worker(topics, app_id=f"first-{topics.prefix}")
    records = await consume(bootstrap, topics.alerts, expected=2)
    assert first.stop() == 0, first.log_tail()
    ids_first = sorted(decode_alert(r.value).alert_id for r in records)

    second = start_worker(topics, app_id=f"second-{topics.prefix}")
    records = await consume(bootstrap, topics.alerts, expected=4)
    assert second.stop() == 0, second.log_tail()
    ids_all = [decode_alert(r.value).alert_id for r in records]
    assert len(ids_all) == 4
    assert sorted(set(ids_all)) == ids_first == sorted(expected_alerts())


async def test_records_near_the_contracts_1_mib_neither_stop_nor_blind_the_worker(
    bootstrap, topics: Topics, producer, start_worker
):
    """A dead letter or a shipment as large as an input record is sent whole or in part.

    Before: a send the broker refuses stops the worker (nothing acknowledged that was
    not handled), so an invalid record near 1 MiB, whose dead letter with its headers no
    default topic holds, would have stopped it on the same record after every restart.
    """
    worker = start_worker(topics)
    garbage = b"\x00" * (1_000_000)  # not JSON; with its headers, over 1 MiB
    big = msgspec.json.encode(
        {
            "event_id": "p-big",
            "ts": "2021-03-02T05:00:00Z",
            "payer": "A-1",
            "payee": "A-2",
            "amount": 5.0,
            "note": "y" * 900_000,  # unknown fields are allowed: a valid payment near 1 MiB
        }
    )
    await producer.send_and_wait(topics.input("payments"), garbage, key=b"A-9")
    await producer.send_and_wait(topics.input("payments"), big, key=b"A-1")
    await producer.send_and_wait(
        topics.input("inspections"), VALID_INSPECTIONS[0][1], key=VALID_INSPECTIONS[0][0].encode()
    )
    [letter] = await consume(bootstrap, topics.dlq("payments"), expected=1)
    headers = {k: v for k, v in letter.headers}
    assert headers["kuzet.truncated"] == b"true"
    assert headers["kuzet.original.length"] == str(len(garbage)).encode()
    assert letter.value == garbage[: len(letter.value)] and len(letter.value) < len(garbage)
    await consume(bootstrap, topics.alerts, expected=1)  # the worker goes on after both

    def judged_both() -> bool:  # the big payment (once its merge stops waiting) and the visit
        status = worker.status()
        return status is not None and status["outcomes"].get("ok", 0) == 2

    await wait_until(judged_both, timeout=60)
    assert worker.process.poll() is None, worker.log_tail()
