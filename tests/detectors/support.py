"""Helpers shared by the detector unit tests: plain loops, no Kafka."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import fastjsonschema

from detectors.base import Context, Detector
from detectors.events import Alert
from streams.codec import encode_alert, json_schema


def check(detector: Detector, event: Any) -> list[Alert]:
    """One event through the detector, as the engine hands it over (no timers)."""
    ctx = Context(None)
    ctx.ts = event.ts.timestamp()
    return detector.update(event, ctx)


def run(detector: Detector, events: Iterable[Any]) -> list[Alert]:
    """Every alert a plain loop over ``events`` raises, in order."""
    return [alert for event in events for alert in check(detector, event)]


def _rfc3339_instant(value: str) -> bool:
    # ``format: date-time`` asserted, as tests/streams/test_schemas.py does.
    try:
        return datetime.fromisoformat(value.upper().replace(" ", "T")).tzinfo is not None
    except ValueError:
        return False


_validate = fastjsonschema.compile(
    json_schema("alerts"), formats={"date-time": _rfc3339_instant}, use_default=False
)


def validate_alert(alert: Alert) -> dict[str, Any]:
    """The alert as it goes on the wire, checked against the shipped alert schema."""
    doc = json.loads(encode_alert(alert))
    _validate(doc)  # raises JsonSchemaValueException if the alert breaks the contract
    return doc
