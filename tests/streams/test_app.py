"""Agent tests: the Faust agents through ``agent.test_context()``, no broker."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from detectors.base import Detector
from detectors.engine import Engine
from detectors.inspections.moratorium import MoratoriumViolation
from streams.app import BY_ACCOUNT, Publisher, create_app
from streams.codec import ENVELOPE_FORMAT, FORMAT_HEADER, decode_envelope
from streams.processor import BatchOutput, Source
from streams.settings import Settings
from tests.streams.test_repartition import C1, E2, Recording, payment


class RecordingPublisher(Publisher):
    """Keeps what the agents would send, instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, BatchOutput]] = []
        self.forwarded: list = []

    async def publish(self, stream: str, out: BatchOutput, forwards=()) -> None:
        self.sent.append((stream, out))
        self.forwarded.extend(forwards)

    def alerts(self):
        return [a for _, out in self.sent for a in out.alerts]

    def dead_letters(self):
        return [d for _, out in self.sent for d in out.dead_letters]


class Exploding(Detector):
    """Raises on the business named BOOM (to prove one bad event cannot stop the agent)."""

    kind = "repeat_inspection"
    stream = "inspections"

    def update(self, event, ctx):
        if event.business == "BOOM":
            raise RuntimeError("boom")
        return []


def inspection(event_id: str, business: str, size: str = "small") -> bytes:
    return msgspec.json.encode(
        {
            "event_id": event_id,
            "ts": "2021-03-02T05:00:00Z",
            "business": business,
            "business_size": size,
            "authority": "A",
            "inspector": "I",
            "kind": "unscheduled",
            "basis": "routine",
        }
    )


@pytest.fixture
def kuzet():
    publisher = RecordingPublisher()
    engine = Engine([MoratoriumViolation(), Exploding()])
    app = create_app(
        Settings(app_id="agent-test"),
        engine=engine,
        registry=CollectorRegistry(),
        publisher=publisher,
    )
    app.app.finalize()
    app.app.conf.store = "memory://"
    app.app.flow_control.resume()
    return app, publisher


async def drain(publisher: RecordingPublisher, count: int) -> None:
    for _ in range(100):
        if sum(sum(out.outcomes.values()) for _, out in publisher.sent) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("agent did not process the events")


async def test_agent_turns_events_into_alerts_and_dead_letters(kuzet):
    app, publisher = kuzet
    async with app.agents["inspections"].test_context() as agent:
        await agent.put(inspection("i-1", "B-1"), key=b"B-1")
        await agent.put(b"{not json", key=b"B-2")
        await agent.put(inspection("i-1", "B-1"), key=b"B-1")  # redelivered
        await agent.put(inspection("i-2", "B-3", size="large"), key=b"B-3")
        await drain(publisher, 4)

    assert [a.kind for a in publisher.alerts()] == ["moratorium_violation"]
    assert publisher.alerts()[0].event_ids == ["i-1"]
    [letter] = publisher.dead_letters()
    assert letter.raw == b"{not json"
    assert letter.key == b"B-2"
    assert letter.category == "not_json"
    assert letter.reason.startswith("not JSON:")
    outcomes = sum((out.outcomes for _, out in publisher.sent), Counter())
    assert outcomes == Counter(ok=2, invalid=1, duplicate=1)


async def test_a_detector_that_raises_dead_letters_the_event_and_the_agent_goes_on(kuzet):
    app, publisher = kuzet
    async with app.agents["inspections"].test_context() as agent:
        await agent.put(inspection("i-1", "BOOM"), key=b"BOOM")
        await agent.put(inspection("i-2", "B-2"), key=b"B-2")
        await drain(publisher, 2)

    # The other detector still judged the failing event, and the next one was processed.
    assert sorted(a.event_ids[0] for a in publisher.alerts()) == ["i-1", "i-2"]
    [letter] = publisher.dead_letters()
    assert letter.category == "detector_failed"
    assert letter.reason == "detector repeat_inspection failed: RuntimeError: boom"
    assert letter.raw == inspection("i-1", "BOOM")


async def test_metrics_count_batches_by_bounded_labels(kuzet):
    app, publisher = kuzet
    async with app.agents["inspections"].test_context() as agent:
        await agent.put(inspection("i-1", "B-1"), key=b"B-1")
        await agent.put(b"[]", key=b"B-2")
        await drain(publisher, 2)
    registry = app.metrics.registry
    value = registry.get_sample_value
    assert value("kuzet_events_total", {"stream": "inspections", "outcome": "ok"}) == 1
    assert value("kuzet_events_total", {"stream": "inspections", "outcome": "invalid"}) == 1
    assert (
        value("kuzet_alerts_total", {"kind": "moratorium_violation", "severity": "critical"}) == 1
    )
    assert value("kuzet_dead_letters_total", {"stream": "inspections", "reason": "not_object"}) == 1


class Query:
    """The part of a Faust web request the pages read."""

    def __init__(self, **query: str) -> None:
        self.query = query


async def alerts_page(app, **query: str):
    response = await app.pages["/alerts"](app.app.web, Query(**query))
    return response.status, json.loads(response.body)


async def test_alerts_page_lists_recent_alerts_newest_first_filtered(kuzet):
    app, publisher = kuzet
    async with app.agents["inspections"].test_context() as agent:
        await agent.put(inspection("i-1", "B-1"), key=b"B-1")
        await agent.put(inspection("i-2", "B-2"), key=b"B-2")
        await agent.put(inspection("i-3", "B-3", size="large"), key=b"B-3")
        await drain(publisher, 3)

    status, body = await alerts_page(app)
    assert status == 200
    assert [a["entity"] for a in body] == ["B-2", "B-1"]
    assert body[0]["kind"] == "moratorium_violation"
    assert body[0]["event_ids"] == ["i-2"]

    _, body = await alerts_page(app, kind="moratorium_violation", severity="critical", limit="1")
    assert [a["entity"] for a in body] == ["B-2"]
    _, body = await alerts_page(app, severity="warning")
    assert body == []


async def test_alerts_page_refuses_bad_parameters(kuzet):
    app, _ = kuzet
    for query in ({"limit": "lots"}, {"limit": "0"}, {"limit": "1001"}, {"kind": "nope"}):
        status, body = await alerts_page(app, **query)
        assert status == 400
        assert body["error"]


async def test_alerts_ring_is_bounded(kuzet):
    app, publisher = kuzet
    app.recent._ring = type(app.recent._ring)(maxlen=2)
    async with app.agents["inspections"].test_context() as agent:
        for i in range(4):
            await agent.put(inspection(f"i-{i}", f"B-{i}"), key=b"B")
        await drain(publisher, 4)
    assert [a.entity for a in app.recent.query()] == ["B-3", "B-2"]


async def test_payments_are_forwarded_by_account_then_judged_by_side():
    publisher = RecordingPublisher()
    detector = Recording()
    app = create_app(
        Settings(app_id="agent-test"),
        engine=Engine([detector]),
        registry=CollectorRegistry(),
        publisher=publisher,
        by_account_partitions=3,
    )
    app.app.finalize()
    app.app.conf.store = "memory://"
    app.app.flow_control.resume()
    raw = payment("p-1", C1, E2)
    async with app.agents["payments"].test_context() as agent:
        await agent.put(raw, key=C1.encode())
        await agent.put(b"{not json", key=b"X")
        for _ in range(100):
            if len(publisher.forwarded) == 2:
                break
            await asyncio.sleep(0.02)
    # One envelope for each of the two partitions the payment touches.
    assert [(f.partition, decode_envelope(f.value)) for f in publisher.forwarded] == [
        (1, [("out", raw)]),
        (2, [("in", raw)]),
    ]
    [letter] = publisher.dead_letters()
    assert letter.category == "not_json"
    registry = app.metrics.registry
    value = registry.get_sample_value
    assert value("kuzet_events_total", {"stream": "payments", "outcome": "invalid"}) == 1
    assert value("kuzet_events_total", {"stream": "payments", "outcome": "ok"}) == 0

    async with app.agents[BY_ACCOUNT].test_context() as agent:
        for forward in publisher.forwarded:
            await agent.put(
                forward.value,
                partition=forward.partition,
                headers=[(FORMAT_HEADER, ENVELOPE_FORMAT)],
            )
        await agent.put(raw, partition=0)  # a bare payment, not an envelope: dead-lettered
        for _ in range(100):
            if len(publisher.dead_letters()) == 2:
                break
            await asyncio.sleep(0.02)
    assert sorted(detector.seen) == sorted([(E2, "in", "p-1"), (C1, "out", "p-1")])
    letter = publisher.dead_letters()[1]
    assert letter.category == "invalid_envelope" and letter.raw == raw
    assert letter.source.partition == 0 and isinstance(letter.source, Source)
    assert value("kuzet_events_total", {"stream": "payments", "outcome": "ok"}) == 1
    assert value("kuzet_events_total", {"stream": "payments", "outcome": "invalid"}) == 2
    assert (
        value("kuzet_dead_letters_total", {"stream": "payments", "reason": "invalid_envelope"}) == 1
    )
