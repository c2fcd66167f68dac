"""What the contract says of an event, checked without the codec.

The fuzz tests hand every record to :func:`streams.codec.decode_event`; when it
accepts one, :func:`check_accepted` checks the verdict another way: Python's own
JSON parser, the shipped JSON Schemas (with ``format: date-time`` asserted,
as ``tests/streams/test_schemas.py`` does) and the one rule a schema cannot
state (``payee != payer``). It also checks that the event holds what the bytes
said, and that it survives a round trip through the codec.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import fastjsonschema
import msgspec

from detectors.events import STREAMS
from streams.codec import MAX_MESSAGE_BYTES, decode_alert, decode_event, encode_alert, json_schema


def rfc3339_instant(value: str) -> bool:
    """``format: date-time`` as an assertion: a real calendar instant with an offset."""
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _compile(name: str) -> Any:
    # use_default=False: fastjsonschema would otherwise write defaults into the document.
    formats = {"date-time": rfc3339_instant}
    return fastjsonschema.compile(json_schema(name), formats=formats, use_default=False)


VALIDATORS = {name: _compile(name) for name in (*STREAMS, "alerts")}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """``raw`` as RFC 8259 JSON: strict UTF-8, no BOM, no NaN or Infinity; else raises."""
    return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)


def check_accepted(stream: str, raw: bytes, event: Any) -> None:
    """Fail unless ``raw``, which the codec decoded to ``event``, is a contract-valid event."""
    assert 0 < len(raw) <= MAX_MESSAGE_BYTES, f"accepted a message of {len(raw)} bytes"
    try:
        doc = parse_json(raw)
    except ValueError as exc:
        raise AssertionError(f"the codec accepted what is not JSON: {exc}") from None
    assert isinstance(doc, dict), f"the codec accepted a JSON {type(doc).__name__}"
    try:
        VALIDATORS[stream](doc)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise AssertionError(f"the codec accepted what the schema rejects: {exc}") from None
    if stream == "payments":
        assert doc["payer"] != doc["payee"], "the codec accepted payee == payer"
    for name in type(event).__struct_fields__:
        value = getattr(event, name)
        if value is msgspec.UNSET:
            assert name not in doc, f"{name} was in the message but not in the event"
        elif name == "ts":
            said = datetime.fromisoformat(doc["ts"].upper().replace(" ", "T"))
            assert value.utcoffset() == said.utcoffset(), (value, doc["ts"])
            # msgspec rounds past microseconds, Python cuts: at most 1 us apart
            gap = value.replace(tzinfo=None) - said.replace(tzinfo=None)
            assert abs(gap.total_seconds()) <= 1e-6, (value, doc["ts"])
        elif name == "amount":
            assert value == float(doc["amount"]), (value, doc["amount"])
        elif name in doc:
            assert value == doc[name], (name, value, doc[name])
        else:  # a default (payments' channel)
            assert name == "channel" and value == "transfer", (name, value)
    again = decode_event(stream, msgspec.json.encode(event))
    assert again == event, f"no round trip: {event!r} came back as {again!r}"


def check_alert(alert: Any) -> None:
    """An alert is what the contract promises downstream consumers: schema-valid, round trip."""
    raw = encode_alert(alert)
    VALIDATORS["alerts"](parse_json(raw))
    assert decode_alert(raw) == alert
