"""The code and the schemas agree.

The shipped JSON Schemas (``streams/schemas/``) are what other teams validate
against; :func:`streams.codec.decode_event` is what Kuzet enforces. Both must
accept and reject the same documents, so one corpus (``cases.py``) goes
through both. The one rule JSON Schema cannot state (``payee != payer``) is
an explicit, documented exception.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastjsonschema
import msgspec
import pytest

from detectors.base import make_alert
from detectors.engine import Engine
from detectors.events import (
    ALERT_SCHEMA_VERSION,
    EVENT_TYPES,
    KIND_DOMAIN,
    MAX_ALERT_EVENT_IDS,
    Alert,
    Inspection,
)
from detectors.inspections.moratorium_violation import MoratoriumViolation
from streams.codec import (
    SCHEMA_FILES,
    InvalidEvent,
    decode_alert,
    decode_event,
    encode_alert,
    json_schema,
)
from tests.streams.cases import ALL_CASES, FIELDS, REQUIRED, Case

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

#: Keywords of JSON Schema draft 2020-12 (core, applicator, validation, format,
#: meta-data); fastjsonschema silently ignores unknown ones, so a typo such as
#: ``maxLenght`` would pass compile() unnoticed without this list.
KEYWORDS_2020_12 = frozenset(
    # One vocabulary a line: core; applicator; unevaluated; validation; format and
    # content; meta-data. (A word list reads better here than 57 quoted strings.)
    """
    $schema $id $ref $anchor $dynamicRef $dynamicAnchor $vocabulary $comment $defs
    allOf anyOf oneOf not if then else dependentSchemas prefixItems items contains
        properties patternProperties additionalProperties propertyNames
    unevaluatedItems unevaluatedProperties
    type enum const multipleOf maximum exclusiveMaximum minimum exclusiveMinimum maxLength
        minLength pattern maxItems minItems uniqueItems maxContains minContains
        maxProperties minProperties required dependentRequired
    format contentEncoding contentMediaType contentSchema
    title description default deprecated readOnly writeOnly examples
    """.split()  # noqa: SIM905
)
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMAS = (
    "not",
    "if",
    "then",
    "else",
    "items",
    "contains",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)


def rfc3339_instant(value: str) -> bool:
    """``format: date-time`` as an assertion: a real calendar instant with an offset.

    The schemas' ``pattern`` fixes the syntax (``+06:00``, never ``+0600``);
    this adds what a regex cannot: no 30 February, no hour 24, no offset of
    24 h. (Draft 2020-12 treats ``format`` as an annotation by default; Kuzet
    asks validators to assert it.)
    """
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


FORMATS = {"date-time": rfc3339_instant}


def compile_schema(name: str):
    # use_default=False: fastjsonschema would otherwise write defaults into the document.
    return fastjsonschema.compile(json_schema(name), formats=FORMATS, use_default=False)


VALIDATORS = {name: compile_schema(name) for name in SCHEMA_FILES}


def schema_accepts(stream: str, doc: Any) -> bool:
    try:
        VALIDATORS[stream](doc)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def codec_accepts(stream: str, doc: Any) -> bool:
    try:
        decode_event(stream, json.dumps(doc, allow_nan=False).encode())
    except InvalidEvent:
        return False
    return True


def subschemas(schema: dict[str, Any]):
    """``schema`` and every schema nested in it."""
    yield schema
    for key in _SUBSCHEMA_MAPS:
        for sub in schema.get(key, {}).values():
            yield from subschemas(sub)
    for key in _SUBSCHEMA_LISTS:
        for sub in schema.get(key, []):
            yield from subschemas(sub)
    for key in _SUBSCHEMAS:
        if isinstance(schema.get(key), dict):
            yield from subschemas(schema[key])


# --- the schemas themselves -----------------------------------------------------


@pytest.mark.parametrize("name", list(SCHEMA_FILES))
def test_schema_is_draft_2020_12_and_compiles(name: str):
    schema = json_schema(name)
    assert schema["$schema"] == DRAFT_2020_12
    version = ALERT_SCHEMA_VERSION if name == "alerts" else 1
    assert schema["$id"] == f"urn:kuzet:schema:{SCHEMA_FILES[name].split('.')[0]}:{version}"
    assert schema["type"] == "object"
    fastjsonschema.compile(schema, formats=FORMATS)  # raises on a malformed schema
    for sub in subschemas(schema):
        unknown = set(sub) - KEYWORDS_2020_12
        assert not unknown, f"{name}: not draft 2020-12 keywords: {sorted(unknown)}"
        # A nested object's (an evidence's) required keys are its own properties; an
        # if's required keys are the alert's.
        properties = sub.get("properties", schema["properties"])
        for key in sub.get("required", []):
            assert key in properties, f"{name}: required {key!r} is not a property"


def test_schema_ids_are_unique():
    ids = [json_schema(name)["$id"] for name in SCHEMA_FILES]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("stream", list(REQUIRED))
def test_schema_fields_match_the_contract_and_the_record(stream: str):
    schema = json_schema(stream)
    assert schema["required"] == list(REQUIRED[stream])
    assert set(schema["properties"]) == set(FIELDS[stream])
    assert set(schema["properties"]) == _struct_fields(stream)
    # Contract: unknown extra fields are allowed, so the schema must not forbid them.
    assert schema.get("additionalProperties", True) is not False


def _struct_fields(stream: str) -> set[str]:
    return {f.name for f in msgspec.structs.fields(EVENT_TYPES[stream])}


def test_format_checker_is_strict_where_it_should_be():
    assert rfc3339_instant("2021-03-02T05:00:00Z")
    assert rfc3339_instant("2021-03-02t05:00:00.5+06:00")
    assert not rfc3339_instant("2021-02-30T05:00:00Z")
    assert not rfc3339_instant("2021-03-02T05:00:00")


# --- one corpus, two verdicts ---------------------------------------------------


def _params() -> list[object]:
    params = []
    for case in ALL_CASES:
        marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
        params.append(pytest.param(case, id=f"{case.stream}:{case.id}", marks=marks))
    return params


@pytest.mark.parametrize("case", _params())
def test_schema_and_codec_give_the_same_verdict(case: Case):
    schema_ok = schema_accepts(case.stream, case.doc)
    codec_ok = codec_accepts(case.stream, case.doc)
    if case.schema_gap:
        # The documented exception: the schema accepts what only code can reject.
        assert (schema_ok, codec_ok) == (True, False), case.schema_gap
        return
    assert codec_ok == case.valid, f"codec says {codec_ok}, the contract says {case.valid}"
    assert schema_ok == case.valid, f"schema says {schema_ok}, the contract says {case.valid}"


def test_the_corpus_covers_every_stream_both_ways():
    for stream in REQUIRED:
        verdicts = {case.valid for case in ALL_CASES if case.stream == stream}
        assert verdicts == {True, False}, stream
    assert sum(1 for case in ALL_CASES if case.schema_gap) == 1


def test_payee_equals_payer_exception_is_documented_in_the_schema():
    assert "payee != payer" in json_schema("payments")["$comment"]


# --- alerts ---------------------------------------------------------------------


def test_alert_schema_kinds_are_the_kind_table():
    props = json_schema("alerts")["properties"]
    assert props["kind"]["enum"] == list(KIND_DOMAIN)
    assert set(props["domain"]["enum"]) == {domain for domain, _ in KIND_DOMAIN.values()}
    assert set(props["entity_type"]["enum"]) == {etype for _, etype in KIND_DOMAIN.values()}
    assert props["event_ids"]["maxItems"] == MAX_ALERT_EVENT_IDS


def test_alert_schema_fields_match_the_record():
    schema = json_schema("alerts")
    fields = [f.name for f in msgspec.structs.fields(Alert)]
    assert schema["required"] == fields
    assert list(schema["properties"]) == fields


def moratorium_alerts() -> list[Alert]:
    engine = Engine([MoratoriumViolation()])
    alerts = []
    start = datetime(2021, 3, 2, 5, tzinfo=UTC)
    for i, (size, kind, offset) in enumerate(
        [("micro", "scheduled", 0), ("small", "unscheduled", 6), ("micro", "preventive", 5)]
    ):
        ts = (start + timedelta(hours=i)).astimezone(timezone(timedelta(hours=offset)))
        event = Inspection(
            event_id=f"in-{i}",
            ts=ts,
            business=f"BIZ-{i}",
            business_size=size,
            authority="AUTH",
            inspector="INSP",
            kind=kind,
            basis="routine",
        )
        alerts.extend(engine.process("inspections", event).alerts)
    assert len(alerts) == 3
    return alerts


@pytest.mark.parametrize("alert", moratorium_alerts(), ids=lambda a: a.event_ids[0])
def test_moratorium_alert_validates_and_round_trips(alert: Alert):
    raw = encode_alert(alert)
    doc = json.loads(raw)
    VALIDATORS["alerts"](doc)  # raises if the alert breaks its own schema
    assert decode_alert(raw) == alert
    assert doc["kind"] == "moratorium_violation"
    # Guards the fix in detectors/engine.py: alert ts is UTC, written with Z,
    # whatever offset the producer used (encode_alert's documented format).
    assert doc["ts"].endswith("Z")


#: The fields schema version 2 added to an alert (a finding's life).
FINDING_FIELDS = ("finding_id", "supersedes", "status", "schema_version")

ALERT = {
    "alert_id": "a" * 32,
    "kind": "moratorium_violation",
    "domain": "inspections",
    "entity": "BIZ-1",
    "entity_type": "business",
    "ts": "2021-03-02T05:00:00Z",
    "severity": "critical",
    "score": 1.0,
    "reasons": ["because"],
    "evidence": {  # a moratorium_violation's evidence ($defs/evidence_moratorium_violation)
        "local_start": "2021-03-02T11:00:00+06:00",
        "timezone": "Asia/Almaty",
        "moratorium_window": ["2020-01-01", "2023-01-01"],
        "business_size": "micro",
        "inspection_kind": "unscheduled",
        "basis": "routine",
        "authority": "AUTH",
        "inspector": "INSP",
    },
    "event_ids": ["in-1"],
    "finding_id": "f" * 32,
    "supersedes": None,
    "status": "open",
    "schema_version": ALERT_SCHEMA_VERSION,
}


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        ({}, True),
        ({"score": 0}, True),
        ({"event_ids": [f"e{i}" for i in range(100)]}, True),
        ({"score": 1.5}, False),
        ({"score": -0.1}, False),
        ({"reasons": []}, False),
        ({"kind": "tax_evasion"}, False),
        ({"severity": "fatal"}, False),
        ({"event_ids": [f"e{i}" for i in range(101)]}, False),
        ({"entity": ""}, False),
        ({"ts": "2021-03-02T05:00:00"}, False),
        ({"evidence": []}, False),
        ({"status": "escalated", "supersedes": "b" * 32}, True),
        ({"status": "closed"}, False),
        ({"supersedes": 7}, False),
        ({"schema_version": "2"}, False),
    ],
)
def test_alert_schema_and_decode_alert_agree(change: dict[str, Any], valid: bool):
    doc = {**ALERT, **change}
    try:
        VALIDATORS["alerts"](doc)
        schema_ok = True
    except fastjsonschema.JsonSchemaValueException:
        schema_ok = False
    try:
        decode_alert(json.dumps(doc).encode())
        code_ok = True
    except msgspec.ValidationError:
        code_ok = False
    assert (schema_ok, code_ok) == (valid, valid)


def test_make_alert_output_validates():
    alert = make_alert(
        kind="salary_arrears",
        entity="EMP-1",
        finding="2021-02",
        ts=datetime(2021, 3, 11, tzinfo=UTC),
        severity="warning",
        score=3.0,  # clamped into [0, 1]
        reasons=["wages for 2021-02 unpaid"],
        evidence={  # $defs/evidence_salary_arrears
            "period": "2021-02",
            "due_date": "2021-03-10",
            "unpaid_employees": 1,
            "accrued_employees": 3,
            "owed_tenge": 100.0,
            "arrears_since_period": "2021-02",
            "periods_missed": ["2021-02"],
            "tolerance_tenge": 1.0,
        },
        event_ids=[f"e{i}" for i in range(150)],  # only the last 100 kept
    )
    doc = json.loads(encode_alert(alert))
    VALIDATORS["alerts"](doc)
    assert doc["score"] == 1.0
    assert doc["event_ids"] == [f"e{i}" for i in range(50, 150)]
    assert (doc["domain"], doc["entity_type"]) == ("payroll", "employer")


def test_a_version_1_alert_still_decodes_as_its_own_open_finding():
    """Compatible evolution: alert files written before schema 2 still read."""
    old = {k: v for k, v in ALERT.items() if k not in FINDING_FIELDS}
    alert = decode_alert(json.dumps(old).encode())
    assert (alert.status, alert.supersedes, alert.schema_version) == ("open", None, 1)
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        VALIDATORS["alerts"](old)  # what Kuzet publishes now always carries them
