"""One corpus of valid and invalid events, written from ``shared/contract.md``.

``test_codec.py`` checks each case's verdict, category and reason against
:func:`streams.codec.decode_event`; ``test_schemas.py`` runs the very same
documents through the shipped JSON Schemas and checks that both say the same.

The expectations here come from the contract, not from the code: required
fields, limits and enums are restated on purpose, so that a change to either
the records or the schemas shows up as a failing case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Contract: the required fields of each stream, in the contract's order.
REQUIRED: dict[str, tuple[str, ...]] = {
    "payments": ("event_id", "ts", "payer", "payee", "amount"),
    "payroll": ("event_id", "ts", "type", "employer", "employee"),
    "inspections": (
        "event_id",
        "ts",
        "business",
        "business_size",
        "authority",
        "inspector",
        "kind",
        "basis",
    ),
}

#: Every field the contract names per stream (required or optional).
FIELDS: dict[str, tuple[str, ...]] = {
    "payments": (*REQUIRED["payments"], "channel", "purpose"),
    "payroll": (*REQUIRED["payroll"], "period", "amount", "reason"),
    "inspections": REQUIRED["inspections"],
}

TS = "2021-03-02T05:00:00Z"
#: ``TS`` as epoch seconds (2021-03-02 05:00 UTC), written out rather than computed.
TS_EPOCH = 1614661200.0

#: A complete valid event of each stream, every optional field set.
VALID: dict[str, dict[str, Any]] = {
    "payments": {
        "event_id": "pay-1",
        "ts": TS,
        "payer": "ACC-1",
        "payee": "ACC-2",
        "amount": 1500.5,
        "channel": "card",
        "purpose": "rent for March",
    },
    "payroll": {
        "event_id": "pr-1",
        "ts": TS,
        "type": "accrual",
        "employer": "EMP-1",
        "employee": "W-1",
        "period": "2021-02",
        "amount": 250000,
    },
    "inspections": {
        "event_id": "in-1",
        "ts": TS,
        "business": "BIZ-1",
        "business_size": "small",
        "authority": "AUTH-1",
        "inspector": "INSP-1",
        "kind": "unscheduled",
        "basis": "complaint",
    },
}

#: Marker for "leave this field out" in :func:`event`.
DROP: Any = object()


def event(stream: str, **changes: Any) -> dict[str, Any]:
    """A copy of ``VALID[stream]`` with fields changed (``DROP`` removes one)."""
    doc = dict(VALID[stream])
    for name, value in changes.items():
        if value is DROP:
            doc.pop(name, None)
        else:
            doc[name] = value
    return doc


@dataclass(frozen=True)
class Case:
    """One document and what the contract says about it.

    ``category`` is None for a valid document. ``reason`` is how the codec's
    reason must start. ``schema_gap`` explains a rule JSON Schema cannot
    state (the schema accepts, the codec rejects). ``bug`` names a known
    defect: the case is expected to fail until it is fixed.
    """

    id: str
    stream: str
    doc: Any
    category: str | None = None
    reason: str | None = None
    schema_gap: str | None = None
    bug: str | None = None

    @property
    def valid(self) -> bool:
        return self.category is None


def _valid_cases() -> list[Case]:
    cases = [Case(f"{stream}-complete", stream, event(stream)) for stream in VALID]
    cases += [
        Case(
            "payments-minimal",
            "payments",
            event("payments", channel=DROP, purpose=DROP),
        ),
        Case(
            "payroll-hire-minimal",
            "payroll",
            event("payroll", type="hire", period=DROP, amount=DROP),
        ),
        Case(
            "payroll-hire-with-optional-reason",
            "payroll",
            event("payroll", type="hire", period=DROP, amount=DROP, reason="other"),
        ),
        Case("payroll-payment", "payroll", event("payroll", type="payment", period="2020-12")),
        Case(
            "payroll-termination",
            "payroll",
            event("payroll", type="termination", period=DROP, amount=DROP, reason="redundancy"),
        ),
        Case(
            "unknown-extra-fields",
            "payments",
            event("payments", source="bank-7", meta={"a": [1, None]}, flag=None),
        ),
        Case("amount-integer", "payments", event("payments", amount=1)),
        Case("amount-smallest", "payments", event("payments", amount=0.01)),
        Case("amount-largest", "payments", event("payments", amount=9_999_999_999_999)),
        Case("ids-1-char", "payments", event("payments", payer="a", payee="b", event_id="e")),
        Case("ids-64-chars", "payments", event("payments", payer="p" * 64, payee="q" * 64)),
        Case("event-id-128-chars", "inspections", event("inspections", event_id="e" * 128)),
        Case("purpose-256-chars", "payments", event("payments", purpose="x" * 256)),
        Case("purpose-empty", "payments", event("payments", purpose="")),
        Case(
            "period-december",
            "payroll",
            event("payroll", period="2021-12", ts="2022-01-05T10:00:00+06:00"),
        ),
        Case("ts-plus-06", "payments", event("payments", ts="2021-03-02T11:00:00+06:00")),
        Case("ts-plus-05", "payments", event("payments", ts="2021-03-02T10:00:00+05:00")),
        Case("ts-negative-offset", "payments", event("payments", ts="2021-03-02T02:00:00-03:00")),
        Case("ts-fraction", "payments", event("payments", ts="2021-03-02T05:00:00.250Z")),
        Case("ts-lowercase", "payments", event("payments", ts="2021-03-02t05:00:00z")),
    ]
    cases += [Case(f"channel-{c}", "payments", event("payments", channel=c)) for c in _CHANNELS]
    cases += [
        Case(f"size-{s}", "inspections", event("inspections", business_size=s)) for s in _SIZES
    ]
    cases += [Case(f"kind-{k}", "inspections", event("inspections", kind=k)) for k in _KINDS]
    cases += [
        Case(
            f"reason-{r}",
            "payroll",
            event("payroll", type="termination", period=DROP, amount=DROP, reason=r),
        )
        for r in _REASONS
    ]
    return cases


_CHANNELS = ("card", "transfer", "qr", "cash_in", "cash_out")
_SIZES = ("micro", "small", "medium", "large")
_KINDS = ("scheduled", "unscheduled", "preventive")
_REASONS = ("redundancy", "voluntary", "misconduct", "contract_end", "other")


def _invalid(id: str, stream: str, doc: Any, category: str, reason: str, **extra: Any) -> Case:
    return Case(id, stream, doc, category, reason, **extra)


def _field(name: str) -> str:
    return f"invalid field {name}:"


def _invalid_cases() -> list[Case]:
    cases: list[Case] = []
    # Not an object.
    for name, doc in [("array", [1, 2]), ("string", "hello"), ("number", 42), ("null", None)]:
        for stream in VALID:
            cases.append(
                _invalid(f"{stream}-{name}", stream, doc, "not_object", "not a JSON object")
            )
    # Each required field missing, per stream: the reason is exact.
    for stream, names in REQUIRED.items():
        for name in names:
            cases.append(
                _invalid(
                    f"{stream}-missing-{name}",
                    stream,
                    event(stream, **{name: DROP}),
                    "missing_field",
                    f"missing field: {name}",
                )
            )
    # Fields the payroll type makes required.
    for kind in ("accrual", "payment"):
        for name in ("period", "amount"):
            cases.append(
                _invalid(
                    f"payroll-{kind}-without-{name}",
                    "payroll",
                    event("payroll", type=kind, **{name: DROP}),
                    "missing_field",
                    f"missing field: {name}",
                )
            )
    cases.append(
        _invalid(
            "payroll-termination-without-reason",
            "payroll",
            event("payroll", type="termination", period=DROP, amount=DROP),
            "missing_field",
            "missing field: reason",
        )
    )
    # Mistyped fields.
    mistyped = [
        ("payments", "amount", "10"),
        ("payments", "amount", True),
        ("payments", "amount", None),
        ("payments", "amount", [10]),
        ("payments", "payer", 5),
        ("payments", "payee", ["ACC-2"]),
        ("payments", "event_id", 7),
        ("payments", "ts", 1614661200),
        ("payments", "channel", 1),
        ("payments", "channel", None),
        ("payments", "purpose", 5),
        ("payments", "purpose", None),
        ("payroll", "type", 1),
        ("payroll", "employee", 17),
        ("payroll", "period", 202102),
        ("payroll", "amount", "250000"),
        ("inspections", "business_size", None),
        ("inspections", "kind", ["scheduled"]),
        ("inspections", "basis", 5),
        ("inspections", "inspector", {}),
        ("inspections", "ts", None),
    ]
    for stream, name, value in mistyped:
        cases.append(
            _invalid(
                f"{stream}-{name}-as-{type(value).__name__}",
                stream,
                event(stream, **{name: value}),
                "invalid_field",
                _field(name),
            )
        )
    # Impossible values.
    impossible = [
        ("payments", "amount", 0),
        ("payments", "amount", -1),
        ("payments", "amount", -0.01),
        ("payments", "amount", 1e13),
        ("payments", "amount", 2e13),
        ("payroll", "amount", 0),
        ("payments", "channel", "wire"),
        ("payments", "channel", "Card"),
        ("payroll", "type", "bonus"),
        ("inspections", "business_size", "tiny"),
        ("inspections", "kind", "surprise"),
        ("payroll", "period", "2021-13"),
        ("payroll", "period", "2021-00"),
        ("payroll", "period", "2021-1"),
        ("payroll", "period", "21-01"),
        ("payments", "payer", ""),
        ("payments", "payer", "p" * 65),
        ("payments", "payee", ""),
        ("payroll", "employer", ""),
        ("payroll", "employee", "w" * 65),
        ("inspections", "business", ""),
        ("inspections", "business", "b" * 65),
        ("inspections", "authority", ""),
        ("inspections", "inspector", "i" * 65),
        ("inspections", "basis", ""),
        ("payments", "event_id", ""),
        ("payments", "event_id", "e" * 129),
        ("payments", "purpose", "x" * 257),
    ]
    for stream, name, value in impossible:
        label = value if isinstance(value, int | float) or len(value) < 10 else f"{len(value)}ch"
        cases.append(
            _invalid(
                f"{stream}-{name}-{label}",
                stream,
                event(stream, **{name: value}),
                "invalid_field",
                _field(name),
            )
        )
    cases.append(
        _invalid(
            "payroll-termination-bad-reason",
            "payroll",
            event("payroll", type="termination", period=DROP, amount=DROP, reason="boredom"),
            "invalid_field",
            _field("reason"),
        )
    )
    cases.append(
        _invalid(
            "payments-payee-equals-payer",
            "payments",
            event("payments", payee="ACC-1"),
            "invalid_value",
            "payee equals payer",
            schema_gap="JSON Schema cannot compare two fields: payee != payer is the codec's alone",
        )
    )
    # Timestamps.
    bad_ts = [
        ("no-offset", "2021-03-02T05:00:00"),
        ("date-only", "2021-03-02"),
        ("no-seconds", "2021-03-02T05:00Z"),
        ("offset-hours-only", "2021-03-02T05:00:00+06"),
        ("feb-30", "2021-02-30T05:00:00Z"),
        ("hour-24", "2021-03-02T24:00:00Z"),
        ("offset-24h", "2021-03-02T05:00:00+24:00"),
        ("words", "yesterday"),
        ("empty", ""),
    ]
    for name, value in bad_ts:
        cases.append(
            _invalid(
                f"ts-{name}",
                "inspections",
                event("inspections", ts=value),
                "invalid_field",
                _field("ts"),
            )
        )
    for name, offset in [("plus", "+0600"), ("minus", "-0300")]:
        cases.append(
            _invalid(
                f"ts-{name}-offset-without-colon",
                "inspections",
                event("inspections", ts=f"2021-03-02T11:00:00{offset}"),
                "invalid_field",
                _field("ts"),
            )
        )
    # Guards a fixed bug: the +HHMM check once read the first "ts" key in the raw
    # bytes, which here belongs to an ignored extra field, not to the event.
    cases.append(
        _invalid(
            "ts-without-colon-after-a-nested-ts",
            "payments",
            nested_ts_first("2021-03-02T05:00:00Z", "2021-03-02T11:00:00+0600"),
            "invalid_field",
            _field("ts"),
        )
    )
    return cases


def nested_ts_first(nested: str, ts: str) -> dict[str, Any]:
    """A payment whose first key is an extra object with a ``ts`` of its own."""
    return {"source": {"ts": nested}, **event("payments", ts=ts)}


def _extra_valid_cases() -> list[Case]:
    return [
        Case(
            "nested-ts-with-basic-offset-before-ts",
            "payments",
            nested_ts_first("2021-03-02T11:00:00+0600", "2021-03-02T05:00:00Z"),
        )
    ]


VALID_CASES: list[Case] = _valid_cases() + _extra_valid_cases()
INVALID_CASES: list[Case] = _invalid_cases()
ALL_CASES: list[Case] = VALID_CASES + INVALID_CASES
