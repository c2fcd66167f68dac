"""Bytes to records and back: the contract enforced at the edge.

Decoding and validation happen in one pass with msgspec, straight from the
message bytes into the typed records of :mod:`detectors.events`. Measured
against the alternatives the issue names (``bench/decode.py``; figures in the
README), this is several times faster than orjson plus fastjsonschema and
needs no hand-written field checks.

Every rejection carries a short reason (``missing field: payer``) and a
bounded category for metrics (``missing_field``).

The worker's internal regrouped topics carry *envelopes* of events rather than
events; their format belongs to :mod:`streams.regroup`.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from importlib import resources
from typing import Any

import msgspec

from detectors.errors import KuzetError
from detectors.events import EVENT_TYPES, Alert

#: Contract: a message over 1 MiB is invalid.
MAX_MESSAGE_BYTES = 1024 * 1024

#: Bounded set of rejection categories (the ``reason`` label of metrics).
CATEGORIES = (
    "empty",
    "too_large",
    "not_json",
    "not_object",
    "missing_field",
    "invalid_field",
    "invalid_value",
    "unknown_topic",
    "invalid_envelope",
    "late",
    "detector_failed",
    "key_mismatch",
    "future_ts",
    "id_conflict",
)


#: The JSON Schema (draft 2020-12) file of each record, shipped in ``streams/schemas/``.
SCHEMA_FILES = {
    "payments": "payment.schema.json",
    "payroll": "payroll.schema.json",
    "inspections": "inspection.schema.json",
    "alerts": "alert.schema.json",
}


def json_schema(name: str) -> dict[str, Any]:
    """The shipped JSON Schema of a stream (``payments``, ...) or of ``alerts``."""
    text = resources.files("streams").joinpath("schemas", SCHEMA_FILES[name]).read_text()
    return json.loads(text)


class InvalidEvent(KuzetError):
    """A message that breaks the contract; ``reason`` says how, ``category`` is bounded."""

    def __init__(self, reason: str, category: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.category = category


_DECODERS = {stream: msgspec.json.Decoder(record) for stream, record in EVENT_TYPES.items()}
_AT_PATH = re.compile(r"^(?P<detail>.*) - at `\$\.?(?P<path>.*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>.*)`$")
_alert_encoder = msgspec.json.Encoder()


def decode_event(stream: str, raw: bytes | None) -> Any:
    """Decode and validate one message of ``stream``; raise :class:`InvalidEvent` if it is bad."""
    if not raw:
        raise InvalidEvent("empty message", "empty")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(f"message too large: {len(raw)} bytes > 1 MiB", "too_large")
    try:
        event = _DECODERS[stream].decode(raw)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise _undecodable(raw, exc) from None
    # Two things msgspec lets through that the contract does not (checked only
    # after a successful decode, and cheaply: together ~0.2 us a message).
    if not raw.isascii():
        try:
            raw.decode()  # msgspec skips unknown fields without checking their UTF-8
        except UnicodeDecodeError as exc:
            raise _undecodable(raw, exc) from None
    if _basic_offset(raw):
        raise InvalidEvent(
            "invalid field ts: expected an RFC 3339 offset with a colon (+06:00), got +HHMM",
            "invalid_field",
        )
    year = event.ts.year
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidEvent(
            f"invalid value: ts in year {year}, outside {FIRST_YEAR}-{LAST_YEAR}", "invalid_value"
        )
    if stream == "payroll" and isinstance(event.period, str):
        _near_period(event.period, event.ts)
    return event


#: Event times Kuzet takes at all: no oversight stream reaches before 1970, and dates
#: near year 1 or 9999 overflow the calendar arithmetic (a period's due date in year
#: 10000: found by the fuzz tests), whatever a partition's clock says.
FIRST_YEAR, LAST_YEAR = 1970, 2999


#: How far a payroll event's pay period may lie from its own time, in months: wages
#: are accrued at the period's end and paid by the 10th of the next month, back pay
#: can come years later (three: the claims a court still hears), an advance a month
#: ahead at most. A period outside (``2099-01``, ``9999-12``) is a producer's error.
PERIOD_MONTHS_BEFORE = 36
PERIOD_MONTHS_AFTER = 1


def _near_period(period: str, ts: datetime) -> None:
    """Raise :class:`InvalidEvent` if ``period`` (``YYYY-MM``) is far from ``ts``'s month."""
    months = (int(period[:4]) - ts.year) * 12 + int(period[5:7]) - ts.month
    if not -PERIOD_MONTHS_BEFORE <= months <= PERIOD_MONTHS_AFTER:
        raise InvalidEvent(
            f"invalid value: period {period} is {abs(months)} months "
            f"{'after' if months > 0 else 'before'} the event's ts (allowed: "
            f"{PERIOD_MONTHS_BEFORE} before to {PERIOD_MONTHS_AFTER} after)",
            "invalid_value",
        )


class _TsText(msgspec.Struct):
    ts: str


_ts_text = msgspec.json.Decoder(_TsText)


def _basic_offset(raw: bytes) -> bool:
    """Does the top-level ``ts`` end in an ISO 8601 basic offset (``+0600``)?

    msgspec's datetime parser accepts it; RFC 3339 and the shipped schemas do
    not. A second msgspec decode that reads only ``ts`` as text finds exactly
    the top-level key (escapes included) for ~0.2 us; a regex over the message
    would cost three times the whole decode.
    """
    text = _ts_text.decode(raw).ts
    return len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit()


def _undecodable(raw: bytes, exc: Exception) -> InvalidEvent:
    """Why ``raw``, which msgspec could not decode as JSON, is not JSON.

    Kuzet decides the reason itself, on this failure path only: bytes that are
    not UTF-8 are ``not UTF-8`` whatever msgspec said (it has reported invalid
    UTF-8 inside a string as a bare UnicodeDecodeError, and later as a
    DecodeError of its own wording). msgspec also raises a bare RecursionError
    for nesting deeper than the interpreter's recursion limit.
    """
    if rejection := _not_utf8(raw):
        return rejection
    if isinstance(exc, RecursionError):
        return InvalidEvent("JSON nested too deeply", "invalid_value")
    return InvalidEvent(f"not JSON: {_short(str(exc))}", "not_json")


def _not_utf8(raw: bytes) -> InvalidEvent | None:
    """The rejection of ``raw`` if it is not UTF-8 (RFC 8259: JSON is), else None."""
    try:
        raw.decode()
    except UnicodeDecodeError as exc:
        return InvalidEvent(
            f"not UTF-8: invalid byte 0x{raw[exc.start]:02x} at offset {exc.start}", "not_json"
        )
    return None


def _invalid(message: str) -> InvalidEvent:
    if match := _MISSING.match(message):
        return InvalidEvent(f"missing field: {match['field']}", "missing_field")
    if match := _AT_PATH.match(message):
        detail = match["detail"]
        return InvalidEvent(
            f"invalid field {match['path']}: {detail[:1].lower()}{detail[1:]}", "invalid_field"
        )
    if message.startswith("Expected `object`"):
        return InvalidEvent(f"not a JSON object: {message[:1].lower()}{message[1:]}", "not_object")
    if message.startswith("missing field:"):  # a conditional field (see PayrollEvent)
        return InvalidEvent(message, "missing_field")
    return InvalidEvent(_short(message), "invalid_value")


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encode_alert(alert: Alert) -> bytes:
    """One alert as UTF-8 JSON (``ts`` in RFC 3339, UTC with ``Z``)."""
    return _alert_encoder.encode(alert)


_alert_decoder = msgspec.json.Decoder(Alert)


def decode_alert(raw: bytes) -> Alert:
    """Parse and validate an alert (for consumers and tests)."""
    return _alert_decoder.decode(raw)


# --- historical stream files ---------------------------------------------------


class FileRecord(msgspec.Struct, frozen=True):
    """One line of a historical stream file: a Kafka record with its logical topic.

    ``value`` stays raw, so the event is decoded by :func:`decode_event`, exactly
    as a message from Kafka would be.
    """

    topic: str
    value: msgspec.Raw
    key: str | None = None


_file_decoder = msgspec.json.Decoder(FileRecord)


def decode_file_line(line: bytes) -> tuple[str, str | None, bytes]:
    """Split one file line into (stream, key, raw event bytes); raise InvalidEvent if bad."""
    try:
        record = _file_decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise _undecodable(line, exc) from None
    if record.topic not in _DECODERS:
        raise InvalidEvent(
            f"unknown topic: {_short(record.topic, 64)!r} (expected one of {', '.join(_DECODERS)})",
            "unknown_topic",
        )
    return record.topic, record.key, bytes(record.value)


_file_line_encoder = msgspec.json.Encoder()


def encode_file_line(stream: str, key: str | None, raw: bytes) -> bytes:
    """One line of a historical stream file (without the newline); ``raw`` must be JSON."""
    return _file_line_encoder.encode(FileRecord(topic=stream, key=key, value=msgspec.Raw(raw)))
