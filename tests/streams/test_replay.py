"""``kuzet replay`` without a broker: pacing, file lines, keys, and the send loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.codec import InvalidEvent
from streams.offsets import HistoryError
from streams.progress import Progress
from streams.replay import (
    Pacer,
    ReplaySummary,
    _publish,
    _settle,
    derive_key,
    event_time,
    parse_line,
    parse_speed,
    schedule,
)

# --- speed and pacing --------------------------------------------------------------


@pytest.mark.parametrize(("text", "speed"), [("max", None), ("MAX", None), ("3600", 3600.0)])
def test_parse_speed(text, speed):
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["0", "-1", "fast", "inf", "nan", ""])
def test_parse_speed_refuses_what_is_not_a_positive_number(text):
    with pytest.raises(HistoryError, match="--speed"):
        parse_speed(text)


def test_schedule_is_event_time_divided_by_speed():
    hour = 3600.0
    assert schedule([0.0, hour, 2 * hour, 2.5 * hour], speed=3600) == [0.0, 1.0, 2.0, 2.5]
    assert schedule([0.0, hour, 2 * hour], speed=7200) == [0.0, 0.5, 1.0]


def test_schedule_starts_at_the_first_event_time_not_the_epoch():
    assert schedule([1.6e9, 1.6e9 + 60], speed=60) == [0.0, 1.0]


def test_schedule_never_goes_back_for_out_of_order_records():
    # The 1800 s record is late: it goes out at once, and the clock stays at 3600.
    assert schedule([0.0, 3600.0, 1800.0, 5400.0], speed=3600) == [0.0, 1.0, 1.0, 1.5]


def test_schedule_records_without_time_go_at_once_and_do_not_move_the_clock():
    assert schedule([None, 0.0, None, 60.0, None], speed=60) == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert schedule([None, None], speed=60) == [0.0, 0.0]


def test_schedule_at_max_speed_sends_everything_at_once():
    assert schedule([0.0, 1e9, None], speed=None) == [0.0, 0.0, 0.0]


def test_pacer_due_is_incremental():
    pacer = Pacer(speed=10)
    assert pacer.due(100.0) == 0.0
    assert pacer.due(150.0) == 5.0
    assert pacer.due(None) == 5.0
    assert pacer.due(120.0) == 5.0


# --- event time, read leniently, only for pacing ------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"ts": "2021-03-01T00:00:00Z"}', 1614556800.0),
        (b'{"ts": "2021-03-01T06:00:00+06:00"}', 1614556800.0),
        (b'{"ts": "2021-03-01T00:00:00.250Z"}', 1614556800.25),
        (b'{"ts": "2021-03-01T00:00:00"}', 1614556800.0),  # no offset: UTC, for pacing only
        (b'{"event_id": "x", "nested": {"ts": 1}, "ts": "2021-03-01T00:00:00Z"}', 1614556800.0),
        (b'{"ts": "soon"}', None),
        (b'{"ts": 1614556800}', None),
        (b'{"event_id": "x"}', None),
        (b"[1, 2]", None),
        (b'"text"', None),
    ],
)
def test_event_time(raw, expected):
    assert event_time(raw) == expected


# --- file lines -----------------------------------------------------------------------


def test_parse_line_keeps_the_value_bytes_exactly():
    value = b'{ "event_id" : "p-1",\t"ts":"2021-03-01T00:00:00Z", "payer": "A\\u00e9", "x": 1.50 }'
    line = b'{"topic": "payments", "key": "K-1", "value": ' + value + b"}"
    assert parse_line(line) == ("payments", b"K-1", value)


def test_parse_line_key_from_the_file_wins_over_the_event():
    line = b'{"topic": "payments", "key": "K-9", "value": {"payer": "A-1"}}'
    assert parse_line(line)[1] == b"K-9"


@pytest.mark.parametrize(
    ("stream", "value", "key"),
    [
        ("payments", b'{"payer": "A-1", "payee": "A-2"}', b"A-1"),
        ("payroll", b'{"employer": "E-1", "employee": "W-1"}', b"E-1"),
        ("inspections", b'{"business": "B-1", "inspector": "I-1"}', b"B-1"),
        ("inspections", b'{"business": "\\u0436"}', "\u0436".encode()),  # escaped Cyrillic
        ("payments", b'{"payee": "A-2"}', None),  # no key field: invalid, still published
        ("payments", b'{"payer": 5}', None),  # not a string
        ("payments", b"[1]", None),
    ],
)
def test_parse_line_derives_a_missing_key_from_the_event(stream, value, key):
    for line in (
        b'{"topic": "%s", "value": %s}' % (stream.encode(), value),
        b'{"topic": "%s", "key": null, "value": %s}' % (stream.encode(), value),
    ):
        assert parse_line(line) == (stream, key, value)


def test_parse_line_publishes_invalid_events_unchanged():
    # The worker, not the replay, judges events: this one goes to the dead-letter topic.
    line = b'{"topic": "payroll", "key": "E", "value": {"event_id": "r", "type": "nonsense"}}'
    assert parse_line(line) == ("payroll", b"E", b'{"event_id": "r", "type": "nonsense"}')


@pytest.mark.parametrize(
    ("line", "category", "reason"),
    [
        (b"not json", "not_json", "not JSON"),
        (b'{"topic": "payments", "value": {"a": 1}', "not_json", "not JSON"),
        (b"[1, 2]", "not_object", "not a JSON object"),
        (b'{"topic": "alerts", "value": {}}', "unknown_topic", "unknown topic: 'alerts'"),
        (b'{"value": {}}', "missing_field", "missing field: topic"),
        (b'{"topic": "payments", "key": "k"}', "missing_field", "missing field: value"),
        (b'{"topic": "payments", "value": null}', "missing_field", "missing field: value"),
        (b'{"topic": "payments", "key": 5, "value": {}}', "invalid_field", "invalid field key"),
    ],
)
def test_parse_line_rejects_what_is_not_a_file_record(line, category, reason):
    with pytest.raises(InvalidEvent) as caught:
        parse_line(line)
    assert caught.value.category == category
    assert caught.value.reason.startswith(reason)


def test_derive_key_ignores_other_streams_key_fields():
    assert derive_key("payroll", b'{"payer": "A", "business": "B"}') is None


# --- the send loop, with a stand-in producer -------------------------------------------


class FakeProducer:
    """Records when each send happened; sends whose value is b'"fail"' fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, bytes | None, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        self.sent.append((time.monotonic(), topic, key, value))
        future = asyncio.get_running_loop().create_future()
        if value == b'"fail"':
            future.set_exception(RuntimeError("broker said no"))
        else:
            future.set_result(None)
        return future


TOPICS = {"payments": "t.payments", "payroll": "t.payroll", "inspections": "t.inspections"}


def line(stream: str, ts: str | None, key: str = "K", value: str | None = None) -> bytes:
    body = value or (f'{{"ts": "{ts}"}}' if ts else "{}")
    return f'{{"topic": "{stream}", "key": "{key}", "value": {body}}}\n'.encode()


async def run_publish(
    lines: list[bytes], speed: float | None
) -> tuple[FakeProducer, ReplaySummary]:
    producer, summary = FakeProducer(), ReplaySummary()
    pending: list = []
    streams: list[str] = []
    progress = Progress(stream=None)
    await _publish(lines, producer, TOPICS, speed, summary, progress, pending, streams)  # type: ignore[arg-type]
    await _settle(pending, streams, summary)
    return producer, summary


async def test_publish_paces_sends_by_event_time():
    lines = [
        line("payments", "2021-03-01T00:00:00Z"),
        line("payroll", "2021-03-01T00:30:00Z"),  # +0.5 s at 3600x
        line("inspections", None),  # no time: at once
        line("payments", "2021-03-01T00:10:00Z"),  # out of order: at once
        line("payments", "2021-03-01T01:00:00Z"),  # +1.0 s
    ]
    producer, summary = await run_publish(lines, speed=3600)
    start = producer.sent[0][0]
    offsets = [round(at - start, 1) for at, *_ in producer.sent]
    assert offsets == [0.0, 0.5, 0.5, 0.5, 1.0]
    assert [topic for _, topic, _, _ in producer.sent] == [
        "t.payments",
        "t.payroll",
        "t.inspections",
        "t.payments",
        "t.payments",
    ]
    assert summary.published == {"payments": 3, "payroll": 1, "inspections": 1}


async def test_publish_counts_skipped_lines_and_failed_sends():
    lines = [
        line("payments", "2021-03-01T00:00:00Z"),
        b"\n",  # blank: ignored, not counted
        b"garbage\n",
        line("payroll", None, value='"fail"'),
        b'{"topic": "nope", "value": {}}\n',
        line("inspections", None),
    ]
    producer, summary = await run_publish(lines, speed=None)
    assert len(producer.sent) == 3
    assert summary.lines == 5
    assert summary.published == {"payments": 1, "inspections": 1}
    assert summary.failed == {"RuntimeError": 1}
    assert summary.failure_examples == ["RuntimeError: broker said no"]
    assert summary.skipped == {"not_json": 1, "unknown_topic": 1}
    assert [e.split(":")[0] for e in summary.skip_examples] == ["line 3", "line 5"]
    text = summary.render(TOPICS)
    assert "published              2" in text
    assert "payments              1  -> t.payments" in text
    assert "failed                 1" in text


async def test_publish_at_max_speed_does_not_sleep():
    lines = [line("payments", f"202{y}-01-01T00:00:00Z") for y in range(10)]
    started = time.monotonic()
    _, summary = await run_publish(lines, speed=None)
    assert time.monotonic() - started < 0.5
    assert summary.published == {"payments": 10}
