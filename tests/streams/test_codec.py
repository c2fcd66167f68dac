"""Decoding at the edge: what the contract accepts decodes, everything else is rejected.

Every rejection must be an :class:`InvalidEvent` (never another exception:
that would stop the worker) with a reason a person can act on and a category
from the bounded set the metrics use.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from detectors.events import Inspection, Payment, PayrollEvent
from streams.codec import (
    CATEGORIES,
    InvalidEvent,
    decode_event,
    decode_file_line,
    encode_file_line,
)
from tests.streams.cases import (
    DROP,
    INVALID_CASES,
    REQUIRED,
    TS,
    TS_EPOCH,
    VALID,
    VALID_CASES,
    Case,
    event,
    nested_ts_first,
)

MIB = 1024 * 1024


def encode(doc: object) -> bytes:
    return json.dumps(doc, allow_nan=False).encode()


def rejection(stream: str, raw: bytes | None) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        decode_event(stream, raw)
    exc = info.value
    assert exc.category in CATEGORIES, exc.category
    assert exc.reason and exc.reason == str(exc)
    assert len(exc.reason) <= 200  # it travels in a Kafka header
    return exc


def params(cases: list[Case]) -> list[object]:
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else [],
        )
        for case in cases
    ]


# --- valid events ---------------------------------------------------------------


def test_valid_payment_decodes_field_for_field():
    record = decode_event("payments", encode(VALID["payments"]))
    assert record == Payment(
        event_id="pay-1",
        ts=datetime(2021, 3, 2, 5, tzinfo=UTC),
        payer="ACC-1",
        payee="ACC-2",
        amount=1500.5,
        channel="card",
        purpose="rent for March",
    )


def test_valid_payroll_event_decodes_field_for_field():
    record = decode_event("payroll", encode(VALID["payroll"]))
    assert record == PayrollEvent(
        event_id="pr-1",
        ts=datetime(2021, 3, 2, 5, tzinfo=UTC),
        type="accrual",
        employer="EMP-1",
        employee="W-1",
        period="2021-02",
        amount=250000.0,
    )
    assert isinstance(record.amount, float)
    assert record.reason is msgspec.UNSET


def test_valid_inspection_decodes_field_for_field():
    record = decode_event("inspections", encode(VALID["inspections"]))
    assert record == Inspection(
        event_id="in-1",
        ts=datetime(2021, 3, 2, 5, tzinfo=UTC),
        business="BIZ-1",
        business_size="small",
        authority="AUTH-1",
        inspector="INSP-1",
        kind="unscheduled",
        basis="complaint",
    )


@pytest.mark.parametrize("case", params(VALID_CASES))
def test_every_valid_case_decodes(case: Case):
    record = decode_event(case.stream, encode(case.doc))
    assert record.event_id == case.doc["event_id"]
    assert record.ts.tzinfo is not None


def test_channel_defaults_to_transfer():
    record = decode_event("payments", encode(event("payments", channel=DROP, purpose=DROP)))
    assert record.channel == "transfer"
    assert record.purpose is msgspec.UNSET


def test_unknown_extra_fields_are_accepted_and_ignored():
    doc = event("inspections", note="x", nested={"deep": [1, {"a": None}]}, version=3)
    record = decode_event("inspections", encode(doc))
    assert record == decode_event("inspections", encode(VALID["inspections"]))
    assert not hasattr(record, "note")


@pytest.mark.parametrize(
    "ts",
    [
        "2021-03-02T05:00:00Z",
        "2021-03-02T11:00:00+06:00",
        "2021-03-02T10:00:00+05:00",
        "2021-03-02T05:00:00+00:00",
        "2021-03-01T23:00:00-06:00",
    ],
)
def test_ts_offsets_all_mean_the_same_instant(ts: str):
    record = decode_event("payments", encode(event("payments", ts=ts)))
    assert record.ts == datetime(2021, 3, 2, 5, tzinfo=UTC)
    assert record.ts.timestamp() == TS_EPOCH


def test_ts_keeps_the_producers_offset():
    record = decode_event("payments", encode(event("payments", ts="2021-03-02T11:00:00+06:00")))
    assert record.ts.utcoffset() == timedelta(hours=6)
    assert record.ts.hour == 11


def test_message_of_exactly_1_mib_is_accepted():
    raw = padded(VALID["payments"], MIB)
    assert len(raw) == MIB
    assert decode_event("payments", raw).event_id == "pay-1"


# --- invalid events -------------------------------------------------------------


@pytest.mark.parametrize("case", params(INVALID_CASES))
def test_every_invalid_case_is_rejected_with_its_category_and_reason(case: Case):
    exc = rejection(case.stream, encode(case.doc))
    assert exc.category == case.category
    assert exc.reason.startswith(case.reason), exc.reason


@pytest.mark.parametrize(
    ("stream", "name"),
    [(stream, name) for stream, names in REQUIRED.items() for name in names],
)
def test_missing_required_field_reason_is_exact(stream: str, name: str):
    exc = rejection(stream, encode(event(stream, **{name: DROP})))
    assert (exc.category, exc.reason) == ("missing_field", f"missing field: {name}")


@pytest.mark.parametrize(
    ("name", "doc"), [("array", [1]), ("string", "s"), ("number", 1.5), ("null", None)]
)
def test_not_an_object(name: str, doc: object):
    exc = rejection("payments", encode(doc))
    assert exc.category == "not_object"
    assert exc.reason.startswith("not a JSON object: ")


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"event_id": "e",}', b"{'single': 'quotes'}", b"   "],
)
def test_not_json(raw: bytes):
    exc = rejection("payments", raw)
    assert exc.category == "not_json"
    assert exc.reason.startswith("not JSON: ")


def test_valid_event_followed_by_garbage_is_not_json():
    exc = rejection("payments", encode(VALID["payments"]) + b" trailing")
    assert exc.category == "not_json"
    assert exc.reason.startswith("not JSON: ")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_rejected(literal: str):
    raw = encode(event("payments", amount=0.5)).replace(b"0.5", literal.encode())
    assert literal.encode() in raw
    exc = rejection("payments", raw)
    assert exc.category == "not_json"


@pytest.mark.parametrize("text", ['"NaN"', '"Infinity"', "1e400", "-1e400"])
def test_nan_as_string_and_overflowing_numbers_are_rejected(text: str):
    raw = encode(event("payments", amount=0.5)).replace(b"0.5", text.encode())
    exc = rejection("payments", raw)
    assert exc.category == "invalid_field"
    assert exc.reason.startswith("invalid field amount:")


@pytest.mark.parametrize(
    ("ts", "why"),
    [
        ("2021-03-02T05:00:00", "no offset"),
        (1614661200, "number"),
        ("2021-03-02 05:00", "no seconds, no offset"),
    ],
)
def test_ts_must_be_an_rfc3339_string_with_offset(ts: object, why: str):
    exc = rejection("inspections", encode(event("inspections", ts=ts)))
    assert exc.category == "invalid_field", why
    assert exc.reason.startswith("invalid field ts:")


@pytest.mark.parametrize("ts", ["2021-03-02T11:00:00+0600", "2021-03-02T02:00:00.5-0300"])
def test_ts_offset_without_colon_is_rejected(ts: str):
    # RFC 3339 (the contract) writes offsets as +06:00; msgspec alone also takes +0600.
    exc = rejection("inspections", encode(event("inspections", ts=ts)))
    assert (exc.category, exc.reason) == (
        "invalid_field",
        "invalid field ts: expected an RFC 3339 offset with a colon (+06:00), got +HHMM",
    )


def test_a_colonless_offset_in_other_fields_is_not_mistaken_for_ts():
    # Only the event's own ts is held to RFC 3339; other strings may hold anything.
    doc = event("payments", purpose="+0600", ts_note="2021-03-02T11:00:00+0600")
    assert decode_event("payments", encode(doc)).purpose == "+0600"


def test_a_nested_ts_in_an_extra_field_does_not_decide_the_verdict():
    # Guards a fixed bug: the +HHMM check once read the first "ts" anywhere in the bytes.
    valid = nested_ts_first("2021-03-02T11:00:00+0600", "2021-03-02T05:00:00Z")
    assert decode_event("payments", encode(valid)).ts == datetime(2021, 3, 2, 5, tzinfo=UTC)


def test_message_over_1_mib_is_too_large():
    raw = padded(VALID["payments"], MIB + 1)
    assert len(raw) == MIB + 1
    json.loads(raw)  # valid JSON, valid event: only its size is wrong
    exc = rejection("payments", raw)
    assert exc.category == "too_large"
    assert exc.reason == f"message too large: {MIB + 1} bytes > 1 MiB"


@pytest.mark.parametrize("raw", [b"", None])
def test_empty_message(raw: bytes | None):
    exc = rejection("inspections", raw)
    assert (exc.category, exc.reason) == ("empty", "empty message")


def test_invalid_utf8_outside_strings_is_not_json():
    exc = rejection("payments", b"\xff\xfe" + encode(VALID["payments"]))
    assert (exc.category, exc.reason) == ("not_json", "not UTF-8: invalid byte 0xff at offset 0")


def test_invalid_utf8_inside_a_string_is_rejected_not_raised():
    # Bug (fixed in streams/codec.py): msgspec raised a bare UnicodeDecodeError for
    # invalid UTF-8 inside a string, which would have stopped the worker. Newer
    # msgspec raises a DecodeError of its own wording instead; Kuzet's own check
    # decides the reason either way.
    raw = encode(event("payments", purpose="@@")).replace(b"@@", b"\xc3\x28")
    exc = rejection("payments", raw)
    offset = raw.index(b"\xc3")
    assert (exc.category, exc.reason) == (
        "not_json",
        f"not UTF-8: invalid byte 0xc3 at offset {offset}",
    )


def test_invalid_utf8_inside_an_ignored_field_is_rejected():
    # msgspec skips unknown fields without checking their UTF-8; the codec must not.
    raw = encode(event("payments", extra="@@")).replace(b"@@", b"\xc3\x28")
    exc = rejection("payments", raw)
    assert exc.category == "not_json"
    assert exc.reason.startswith("not UTF-8: ")


def test_deeply_nested_json_is_rejected_not_raised():
    # Bug (fixed in streams/codec.py): nesting deeper than the recursion limit, even in
    # an ignored extra field, raised a bare RecursionError that would stop the worker.
    depth = 100_000
    doc = encode(VALID["payments"])[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    assert len(doc) < MIB
    exc = rejection("payments", doc)
    assert (exc.category, exc.reason) == ("invalid_value", "JSON nested too deeply")


def test_conditional_payroll_reasons_name_the_type():
    exc = rejection("payroll", encode(event("payroll", type="payment", period=DROP)))
    assert (exc.category, exc.reason) == (
        "missing_field",
        "missing field: period (required for type payment)",
    )
    termination = event("payroll", type="termination", period=DROP, amount=DROP)
    exc = rejection("payroll", encode(termination))
    assert exc.reason == "missing field: reason (required for type termination)"


def test_hire_needs_neither_period_nor_amount_nor_reason():
    hire = event("payroll", type="hire", period=DROP, amount=DROP)
    record = decode_event("payroll", encode(hire))
    assert record.type == "hire"
    assert record.period is msgspec.UNSET and record.amount is msgspec.UNSET
    assert record.reason is msgspec.UNSET


# The text after Kuzet's "invalid field NAME: " is msgspec's, and changes with it:
# these assert on Kuzet's part (category, field) and on what the text must carry.


def test_reason_for_a_bad_enum_names_the_field_and_quotes_the_value():
    exc = rejection("payments", encode(event("payments", channel="wire")))
    assert exc.category == "invalid_field"
    assert exc.reason.startswith("invalid field channel: ")
    assert "wire" in exc.reason


def test_reason_for_a_bad_amount_names_the_field():
    exc = rejection("payments", encode(event("payments", amount=0)))
    assert exc.category == "invalid_field"
    assert exc.reason.startswith("invalid field amount: ")


def test_payee_equal_to_payer_is_an_invalid_value():
    exc = rejection("payments", encode(event("payments", payee="ACC-1")))
    assert (exc.category, exc.reason) == ("invalid_value", "payee equals payer")


# --- file lines -----------------------------------------------------------------


def test_decode_file_line_splits_topic_key_and_raw_value():
    value = encode(VALID["inspections"])
    line = b'{"topic": "inspections", "key": "BIZ-1", "value": ' + value + b"}\n"
    stream, key, raw = decode_file_line(line)
    assert (stream, key) == ("inspections", "BIZ-1")
    assert json.loads(raw) == VALID["inspections"]
    assert decode_event(stream, raw) == decode_event("inspections", value)


def test_decode_file_line_key_is_optional():
    assert decode_file_line(b'{"topic": "payments", "value": {}}') == ("payments", None, b"{}")


def test_decode_file_line_unknown_topic():
    with pytest.raises(InvalidEvent) as info:
        decode_file_line(b'{"topic": "wages", "key": "k", "value": {}}')
    assert info.value.category == "unknown_topic"
    assert info.value.reason == (
        "unknown topic: 'wages' (expected one of payments, payroll, inspections)"
    )


def test_decode_file_line_missing_value():
    with pytest.raises(InvalidEvent) as info:
        decode_file_line(b'{"topic": "payments", "key": "k"}')
    assert (info.value.category, info.value.reason) == ("missing_field", "missing field: value")


@pytest.mark.parametrize("line", [b"not json at all\n", b'{"topic": "payments", "value": '])
def test_decode_file_line_not_json(line: bytes):
    with pytest.raises(InvalidEvent) as info:
        decode_file_line(line)
    assert info.value.category == "not_json"
    assert info.value.reason.startswith("not JSON: ")


def test_decode_file_line_not_an_object():
    with pytest.raises(InvalidEvent) as info:
        decode_file_line(b'["payments", {}]')
    assert info.value.category == "not_object"


def test_decode_file_line_invalid_utf8_in_topic_is_rejected_not_raised():
    # Bug (fixed in streams/codec.py): a bare UnicodeDecodeError escaped here too.
    with pytest.raises(InvalidEvent) as info:
        decode_file_line(b'{"topic": "pay\xffments", "value": {}}')
    assert (info.value.category, info.value.reason) == (
        "not_json",
        "not UTF-8: invalid byte 0xff at offset 14",
    )


@pytest.mark.parametrize("key", ["BIZ-1", None, "ключ"])
@pytest.mark.parametrize("stream", list(VALID))
def test_encode_file_line_round_trips(stream: str, key: str | None):
    raw = encode(VALID[stream])
    line = encode_file_line(stream, key, raw)
    assert b"\n" not in line
    assert decode_file_line(line) == (stream, key, raw)
    assert json.loads(line) == {"topic": stream, "key": key, "value": VALID[stream]}


# --- helpers --------------------------------------------------------------------


def padded(doc: dict[str, object], size: int) -> bytes:
    """``doc`` as JSON of exactly ``size`` bytes, grown by an ignored extra field."""
    base = encode({**doc, "padding": ""})
    raw = encode({**doc, "padding": "x" * (size - len(base))})
    assert len(raw) == size
    return raw


def test_ts_constant_is_the_epoch_it_claims():
    assert datetime.fromisoformat(TS).timestamp() == TS_EPOCH


@pytest.mark.parametrize(
    ("period", "valid"),
    [
        ("2023-03", True),  # paid in its own month (an advance)
        ("2023-04", True),  # a month ahead
        ("2023-05", False),
        ("2020-03", True),  # back pay three years on
        ("2020-02", False),
        ("2099-01", False),
        ("9999-12", False),
    ],
)
def test_a_pay_period_far_from_the_events_time_is_invalid(period: str, valid: bool):
    raw = json.dumps(
        {
            "event_id": "r-1",
            "ts": "2023-03-05T10:00:00+06:00",
            "type": "payment",
            "employer": "E-1",
            "employee": "W-1",
            "period": period,
            "amount": 100_000,
        }
    ).encode()
    if valid:
        assert decode_event("payroll", raw).period == period
    else:
        with pytest.raises(InvalidEvent) as caught:
            decode_event("payroll", raw)
        assert caught.value.category == "invalid_value"
        assert f"period {period}" in caught.value.reason
