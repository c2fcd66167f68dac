"""Fuzzing the edge: events, file lines and internal envelopes, valid and broken.

Properties, for every generated record:

- the decoder returns an event or raises :class:`InvalidEvent` with a reason
  (non-empty, at most 200 characters: it travels in a Kafka header) and a
  category of the bounded set; never any other exception (that would stop
  the worker);
- a contract-valid record decodes, a broken one is rejected;
- whatever decodes is contract-valid, checked without the codec (``oracle.py``),
  holds what its bytes said, and survives a round trip; and no detector fails
  on it, even as the first event of a partition (where no clock holds it back);
- a file line is a record of a known stream whose value is kept byte for byte,
  or is rejected; an internal record is an envelope the merge can order, or is
  rejected as ``invalid_envelope``.

Hypothesis is derandomized and keeps no database, so every CI run tries the
same records; ``tally.py`` counts them.
"""

from __future__ import annotations

import json
import math
import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.engine import Engine
from detectors.events import BY_AUTHORITY, STREAMS, Activity
from detectors.registry import build_engine
from streams.codec import CATEGORIES, InvalidEvent, decode_event, decode_file_line, encode_file_line
from streams.regroup import (
    DONE,
    ENVELOPE_VERSION,
    WAIT,
    Envelope,
    decode_envelope,
    encode_envelopes,
)
from streams.replay import event_time, parse_line
from tests.fuzz import strategies as gen
from tests.fuzz.oracle import check_accepted, check_alert
from tests.fuzz.strategies import EITHER, FUZZ, INVALID, VALID, Record
from tests.fuzz.tally import TRIED, check_quota, timed


def check_rejection(exc: InvalidEvent, categories: tuple[str, ...] = CATEGORIES) -> None:
    assert exc.category in categories, f"category {exc.category!r} is not one of {categories}"
    assert exc.reason and exc.reason == str(exc), "a rejection without a reason"
    assert len(exc.reason) <= 200, f"a reason of {len(exc.reason)} characters"


def decode(stream: str, raw: bytes | None) -> tuple[object | None, InvalidEvent | None]:
    """decode_event's verdict; any exception but InvalidEvent fails the test (a crash)."""
    try:
        return decode_event(stream, raw), None
    except InvalidEvent as exc:
        check_rejection(exc)
        return None, exc


def check_record(record: Record) -> object | None:
    """Decode ``record`` as each stream; its event, if it decoded as its own stream."""
    event, rejection = decode(record.stream, record.value)
    if event is None:
        assert record.expect != VALID, f"a valid event rejected: {rejection.reason}"
    else:
        assert record.expect != INVALID, "a broken event accepted"
        check_accepted(record.stream, record.value, event)
    found = event
    # The same bytes on the other streams' topics: rejected, or valid there too.
    for other in STREAMS:
        if other != record.stream:
            event, _ = decode(other, record.value)
            if event is not None:
                check_accepted(other, record.value, event)
    return found


def judge_alone(engine: Engine, stream: str, event: object, partition: int) -> None:
    """``event`` as the first event of a partition of each lane it feeds: nothing holds it
    back there (no clock to be late or too far ahead of), so every detector sees it."""
    if stream == "payments":
        results = [engine.process("payments", Activity(event), partition)]
    elif stream == "inspections":
        results = [engine.process(lane, event, partition) for lane in (stream, BY_AUTHORITY)]
    else:
        results = [engine.process(stream, event, partition)]
    for result in results:
        assert not result.failures, "; ".join(failure.reason for failure in result.failures)
        for alert in result.alerts:
            check_alert(alert)


# --- events ------------------------------------------------------------------------------

EVENT_BATCHES = 450


@settings(FUZZ, max_examples=EVENT_BATCHES)
@given(gen.batches(min_size=60, max_size=140))
def fuzz_events(batch: list[Record]) -> None:
    TRIED["events"] += len(batch)
    engine = build_engine()
    for index, record in enumerate(batch):
        event = check_record(record)
        # What decodes at the edges (odd times, periods), and a sample of the rest: a new
        # partition costs up to 0.3 ms (the payroll detectors' blank state, unpickled).
        if event is not None and (record.expect != VALID or index % 10 == 0):
            judge_alone(engine, record.stream, event, index)


def test_any_message_decodes_to_a_valid_event_or_is_rejected_with_a_reason():
    with timed("events"):
        fuzz_events()
    check_quota("events")


def test_the_generators_make_what_they_promise():
    # A strategy that made only broken records would pass the rest vacuously.
    rnd = random.Random(0)
    made = [
        gen.make_record(rnd.choice(STREAMS), kind, rnd.getrandbits(32), gen.T0)
        for kind in range(gen.KINDS)
        for _ in range(40)
    ]
    for record in made:
        event, _ = decode(record.stream, record.value)
        if record.expect == VALID:
            assert event is not None, record
        if record.expect == INVALID:
            assert event is None, record
    seen = {record.expect for record in made}
    assert seen == {VALID, INVALID, EITHER}


# --- file lines --------------------------------------------------------------------------

#: Line changes the contract rejects (the line is not a file record), and what they do.
BROKEN_LINES = (
    ("no topic", lambda rnd, topic, key, value: b'{"key":%s,"value":%s}' % (key, value)),
    (
        "unknown topic",
        lambda rnd, topic, key, value: (
            b'{"topic":%s,"key":%s,"value":%s}'
            % (
                json.dumps(rnd.choice(("payment", "Payments", "", "alerts", "payments "))).encode(),
                key,
                value,
            )
        ),
    ),
    (
        "topic not a string",
        lambda rnd, topic, key, value: (
            b'{"topic":%s,"value":%s}'
            % (rnd.choice((b"null", b"1", b'["payments"]', b"{}")), value)
        ),
    ),
    (
        "key not a string",
        lambda rnd, topic, key, value: (
            b'{"topic":%s,"key":%s,"value":%s}'
            % (topic, rnd.choice((b"1", b"[]", b"{}", b"true", b"1.5")), value)
        ),
    ),
    ("no value", lambda rnd, topic, key, value: b'{"topic":%s,"key":%s}' % (topic, key)),
    ("a list", lambda rnd, topic, key, value: b'[{"topic":%s,"value":%s}]' % (topic, value)),
    (
        "cut",
        lambda rnd, topic, key, value: (b'{"topic":%s,"key":%s,"value":%s}' % (topic, key, value))[
            : rnd.randint(1, 20 + len(topic))
        ],
    ),
    (
        "not UTF-8 in the key",
        lambda rnd, topic, key, value: (
            b'{"topic":%s,"key":"A%sB","value":%s}' % (topic, rnd.choice(gen.NOT_UTF8), value)
        ),
    ),
    (
        "raw control character in the topic",
        lambda rnd, topic, key, value: b'{"topic":"pay\x01ments","value":%s}' % value,
    ),
)


def file_line(record: Record, rnd: random.Random) -> tuple[bytes, Record, str, str]:
    """(line, the record it carries, the line's verdict, how it was made)."""
    topic = json.dumps(record.stream).encode()
    try:
        key = b"null" if record.key is None else json.dumps(record.key.decode()).encode()
    except UnicodeDecodeError:  # a key that is no text cannot be written in a file
        key = b"null"
    value = record.value or b""
    if rnd.random() < 0.6:  # a line as `kuzet capture` writes it, or without a key
        if rnd.random() < 0.2:
            line = b'{"topic":%s,"value":%s}' % (topic, value)
        else:
            line = b'{"topic":%s,"key":%s,"value":%s}' % (topic, key, value)
        ending = rnd.choice((b"", b"\n", b"\r\n", b" \n"))
        # A valid event makes a valid line; other bytes may not even be JSON.
        verdict = VALID if record.expect == VALID else EITHER
        return line + ending, record, verdict, f"{record.how or 'line'}, ending {ending!r}"
    how, change = BROKEN_LINES[rnd.randrange(len(BROKEN_LINES))]
    return change(rnd, topic, key, value), record, INVALID, how


@st.composite
def file_lines(draw: st.DrawFn, min_size: int, max_size: int) -> list[tuple]:
    rnd = random.Random(draw(gen.salts))
    return [file_line(record, rnd) for record in draw(gen.batches(min_size, max_size))]


FILE_BATCHES = 200


@settings(FUZZ, max_examples=FILE_BATCHES)
@given(file_lines(min_size=60, max_size=140))
def fuzz_file_lines(batch: list[tuple[bytes, Record, str, str]]) -> None:
    TRIED["file lines"] += len(batch)
    for line, record, verdict, how in batch:
        try:
            stream, key, raw = decode_file_line(line)
        except InvalidEvent as exc:
            check_rejection(exc)
            assert verdict != VALID, f"a valid line ({how}) rejected: {exc.reason}"
            continue
        assert verdict != INVALID, f"a broken line ({how}) accepted"
        assert stream in STREAMS and (key is None or isinstance(key, str))
        # The value stays raw (decode_event judges it as it would a Kafka message), and
        # replay reads its time from it to pace itself: a number or nothing, never an error.
        when = event_time(raw)
        assert when is None or isinstance(when, float)
        if verdict == VALID:
            assert (stream, raw) == (record.stream, record.value.strip(b" \t\r\n"))
            if b'"key":null' not in line and b'"key"' in line:
                assert key is not None and key.encode() == record.key
        # What the decoder took apart, the encoder puts back together.
        assert decode_file_line(encode_file_line(stream, key, raw)) == (stream, key, raw)
        # The backtest's and replay's own reading: the Kafka key derived when the line has none.
        try:
            _, kafka_key, same = parse_line(line)
        except InvalidEvent as exc:
            check_rejection(exc)
            assert raw == b"null", exc.reason
        else:
            assert same == raw and (kafka_key is None or isinstance(kafka_key, bytes))
        event, _ = decode(stream, raw)
        if event is not None:
            check_accepted(stream, raw, event)
        elif verdict == VALID and record.expect == VALID:
            raise AssertionError(f"a valid event in a valid line ({how}) rejected")


def test_any_file_line_is_a_record_or_is_rejected_with_a_reason():
    with timed("file lines"):
        fuzz_file_lines()
    check_quota("file lines")


# --- internal envelopes ------------------------------------------------------------------

SIDES = ("in", "out", "both")
#: Values that are no part of an envelope: wrong types, NaN, infinity, 64-bit edges.
ODDITIES = (None, "2", 2.0, -1, 2**64 - 1, 2**63, -(2**63), math.nan, math.inf, [], {}, b"", "in")


def envelope(rnd: random.Random, roll: int) -> tuple[bytes, Envelope | None, str]:
    """(bytes on an internal topic, the envelope they are if valid, how they were made)."""
    halves = []
    offset = rnd.randint(-1, 10**6)
    for _ in range(rnd.choice((0, 1, 2, 5, 20))):
        offset += rnd.randint(1, 1000)
        payload = gen.make_record(
            rnd.choice(STREAMS), rnd.randint(0, 40), rnd.getrandbits(32), gen.T0
        ).value
        halves.append((rnd.choice(SIDES), offset, rnd.uniform(1e9, 2e9), payload or b""))
    fields = [
        ENVELOPE_VERSION,
        rnd.randint(0, 11),
        offset,
        rnd.choice((WAIT, DONE, rnd.uniform(1e9, 2e9))),
        halves,
    ]
    if roll < 4:  # as the worker writes them (split in several when large)
        parts = encode_envelopes(fields[1], fields[2], fields[3], halves, limit=4096)
        raw = parts[rnd.randrange(len(parts))]
        return raw, msgspec.msgpack.decode(raw, type=Envelope), "encoded"
    if roll < 6:  # one field (or a half's field) wrong
        if halves and rnd.random() < 0.5:
            index, position = rnd.randrange(len(halves)), rnd.randrange(4)
            half = list(halves[index])
            half[position] = rnd.choice(ODDITIES)
            halves[index] = tuple(half)
            how = f"field {position} of half {index} odd"
        else:
            position = rnd.randrange(5)
            fields[position] = rnd.choice(ODDITIES)
            how = f"field {position} odd"
        return msgspec.msgpack.encode(fields), None, how
    raw = msgspec.msgpack.encode(fields)
    if roll == 6:
        cut = rnd.randrange(len(raw))
        return raw[:cut], None, f"cut at byte {cut}"
    if roll == 7:
        index = rnd.randrange(len(raw))
        flipped = raw[:index] + bytes([raw[index] ^ rnd.randint(1, 255)]) + raw[index + 1 :]
        return flipped, None, f"byte {index} flipped"
    if roll == 8:
        value = rnd.choice(
            (
                fields[:4],
                [*fields, 0],
                {"version": 2},
                gen.json_value(rnd, budget=12),
                [[[[[]]]]] * 3,
            )
        )
        try:
            return msgspec.msgpack.encode(value), None, "another shape"
        except OverflowError:  # an integer MessagePack cannot hold
            return msgspec.msgpack.encode(fields[:4]), None, "another shape"
    noise = rnd.choice((rnd.randbytes(rnd.randint(0, 64)), b"\x91" * 5000 + b"\x90", b""))
    return noise, None, "noise"


@st.composite
def envelopes(draw: st.DrawFn, min_size: int, max_size: int) -> list[tuple]:
    salt = draw(gen.salts)
    return [
        envelope(random.Random(code * 1_000_003 + salt * 7 + index), code % 10)
        for index, code in enumerate(
            draw(st.lists(gen.codes, min_size=min_size, max_size=max_size))
        )
    ]


ENVELOPE_BATCHES = 100


@settings(FUZZ, max_examples=ENVELOPE_BATCHES)
@given(envelopes(min_size=60, max_size=140))
def fuzz_envelopes(batch: list[tuple[bytes, Envelope | None, str]]) -> None:
    TRIED["envelopes"] += len(batch)
    for raw, expected, how in batch:
        try:
            envelope = decode_envelope(raw)
        except InvalidEvent as exc:
            check_rejection(exc, ("invalid_envelope",))
            assert expected is None, f"a valid envelope ({how}) rejected: {exc.reason}"
            continue
        if expected is not None:
            assert envelope == expected
        # What the merge relies on, whatever the bytes were.
        assert envelope.version == ENVELOPE_VERSION
        assert isinstance(envelope.upstream, int) and isinstance(envelope.through, int)
        assert not math.isnan(envelope.frontier)
        for side, offset, ts, payload in envelope.halves:
            assert side in SIDES and isinstance(offset, int) and math.isfinite(ts)
            assert isinstance(payload, bytes)


def test_any_internal_record_is_an_envelope_or_is_rejected_with_a_reason():
    with timed("envelopes"):
        fuzz_envelopes()
    check_quota("envelopes")
