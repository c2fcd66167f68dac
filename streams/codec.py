"""Bytes to records and back: the contract enforced at the edge.

Decoding and validation happen in one pass with msgspec, straight from the
message bytes into the typed records of :mod:`detectors.events`. Measured
against the alternatives the issue names (``bench/decode.py``; figures in the
README), this is several times faster than orjson plus fastjsonschema and
needs no hand-written field checks.

Every rejection carries a short reason (``missing field: payer``) and a
bounded category for metrics (``missing_field``).

The worker's internal by-account topic carries *envelopes* of payments rather
than events (:func:`encode_envelopes`, :func:`decode_envelope`; why, in
:mod:`streams.repartition`).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any, Literal

import msgspec

from detectors.errors import KuzetError
from detectors.events import EVENT_TYPES, Alert, Side

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
    return event


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


# --- envelopes of the by-account topic -----------------------------------------

#: Version of the envelope format: the first element of every envelope.
ENVELOPE_VERSION = 1

#: Kafka header naming the format of a by-account record, and its value. It is a
#: label for people and tools reading the topic; the reader goes by the version
#: inside the value.
FORMAT_HEADER = "kuzet.format"
ENVELOPE_FORMAT = b"kuzet.halves.v1+msgpack"

#: An envelope holds as many halves as fit in this many bytes (a single larger
#: half goes alone). Far under the producer's request limit (Faust's default,
#: 1,000,000 bytes) and the broker's message.max.bytes (1 MiB), and still ~1,500
#: typical payments (~170 bytes), more than a default batch (1,000) brings.
ENVELOPE_MAX_BYTES = 256 * 1024

#: One half of a payment as an envelope carries it: its side, its original bytes.
Half = tuple[Side, bytes]


class _Envelope(msgspec.Struct, array_like=True, frozen=True):
    version: Literal[1]
    halves: list[tuple[Side, bytes]]


class _EnvelopeHead(msgspec.Struct, array_like=True):
    version: Any  # array_like: the elements after the first are not read


_envelope_encoder = msgspec.msgpack.Encoder()
_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)
_envelope_head = msgspec.msgpack.Decoder(_EnvelopeHead)


def encode_envelopes(halves: list[Half], limit: int = ENVELOPE_MAX_BYTES) -> list[bytes]:
    """The halves, in order, as one envelope, or several if one would pass ``limit`` bytes.

    An envelope is the MessagePack array ``[1, [[side, payment], ...]]``:
    the version, then each half as its side (``"in"``, ``"out"`` or
    ``"both"``, a string) and the payment's original bytes (``bin``, unchanged).

    >>> encode_envelopes([("in", b'{"a":1}'), ("both", b'{"b":2}')])
    [b'\\x92\\x01\\x92\\x92\\xa2in\\xc4\\x07{"a":1}\\x92\\xa4both\\xc4\\x07{"b":2}']
    >>> [len(e) for e in encode_envelopes(3 * [("in", 100 * b"x")], limit=250)]
    [109, 215]
    """
    envelope = _envelope_encoder.encode((ENVELOPE_VERSION, halves))
    if len(envelope) <= limit or len(halves) < 2:
        return [envelope]
    # Rare (a large batch, or large payments): split in two and try again.
    middle = len(halves) // 2
    return encode_envelopes(halves[:middle], limit) + encode_envelopes(halves[middle:], limit)


def decode_envelope(raw: bytes | None) -> list[Half]:
    """The halves of one envelope, in order; raise :class:`InvalidEvent` if it is not one.

    Only the envelope is checked here (version, sides, bytes); each half's
    payment is decoded and validated as any payment, by :func:`decode_event`.
    """
    if not raw:
        raise InvalidEvent("invalid envelope: empty record", "invalid_envelope")
    try:
        return _envelope_decoder.decode(raw).halves
    except msgspec.ValidationError as exc:
        detail = f"{str(exc)[:1].lower()}{str(exc)[1:]}"
    except msgspec.DecodeError as exc:
        detail = f"not MessagePack: {exc}"
    except UnicodeDecodeError:  # raised bare by older msgspec; later a DecodeError
        detail = "not MessagePack: a string is not UTF-8"
    except RecursionError:
        detail = "not MessagePack: nested too deeply"
    try:
        version = _envelope_head.decode(raw).version
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError):
        version = ENVELOPE_VERSION
    if version != ENVELOPE_VERSION:
        detail = f"version {_short(repr(version), 32)}; this worker reads {ENVELOPE_VERSION}"
    elif raw.lstrip()[:1] == b"{":
        detail = "a bare JSON record, not an envelope (one payment per record, as before v1?)"
    raise InvalidEvent(f"invalid envelope: {_short(detail)}", "invalid_envelope")
