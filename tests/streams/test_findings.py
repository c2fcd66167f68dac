"""The findings table in memory and its query (no broker); the topic is read in
``tests/integration/test_findings_life.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from detectors.base import make_alert, resolve_alert
from detectors.events import KIND_DOMAIN
from streams.codec import encode_alert
from streams.findings import (
    DEFAULT_LIMIT,
    FindingsTable,
    QueryError,
    parse_query,
    table_lines,
    to_json,
)


def alert(
    entity: str,
    kind: str = "moratorium_violation",
    severity: str = "critical",
    day: int = 2,
    previous: str | None = None,
):
    return make_alert(
        kind=kind,
        entity=entity,
        finding=entity,
        ts=datetime(2021, 3, day, 5, tzinfo=UTC),
        severity=severity,
        score=1.0,
        reasons=["why"],
        evidence={},
        event_ids=[f"i-{entity}"],
        previous=previous,
    )


def test_a_finding_is_its_latest_step():
    table = FindingsTable()
    table.add(alert("B-1", "repeat_inspection", "warning"))
    table.add(alert("B-1", "repeat_inspection", "critical", day=3, previous="warning"))
    ended = resolve_alert(
        kind="repeat_inspection",
        entity="B-1",
        finding="B-1",
        ts=datetime(2021, 5, 1, tzinfo=UTC),
        severity="critical",
        reasons=["over"],
        evidence={"resolution": "window_passed"},
    )
    table.add(ended)
    [only] = table.query()
    assert only == ended and len(table) == 1
    assert table.query(status="open") == []
    assert table.query(status="resolved") == [ended]


def test_newest_first_filtered_by_every_filter():
    table = FindingsTable()
    table.add(alert("B-1", day=1))
    table.add(alert("B-2", day=2))
    table.add(alert("B-3", "repeat_inspection", "warning", day=3))
    assert [a.entity for a in table.query()] == ["B-3", "B-2", "B-1"]
    assert [a.entity for a in table.query(kind="moratorium_violation")] == ["B-2", "B-1"]
    query = parse_query({"kind": "moratorium_violation", "severity": "critical", "limit": "1"})
    assert [a.entity for a in table.query(**query)] == ["B-2"]
    assert [a.entity for a in table.query(entity="B-1")] == ["B-1"]
    since = parse_query({"since": "2021-03-02T00:00:00Z"})["since"]
    assert [a.entity for a in table.query(since=since)] == ["B-3", "B-2"]
    assert table.query(severity="warning", kind="moratorium_violation") == []


def test_the_table_is_bounded_the_least_recently_updated_go():
    table = FindingsTable(max_findings=2)
    table.add(alert("B-1", "repeat_inspection", "warning"))
    table.add(alert("B-2"))
    table.add(alert("B-1", "repeat_inspection", "critical", previous="warning"))  # updated
    table.add(alert("B-3"))
    assert sorted(a.entity for a in table.query()) == ["B-1", "B-3"]


def test_records_tombstones_and_foreign_values():
    table = FindingsTable()
    first = alert("B-1")
    table.add_record(first.finding_id.encode(), encode_alert(first))
    table.add_record(b"x", b"not json")
    assert (len(table), table.invalid) == (1, 1)
    table.add_record(first.finding_id.encode(), None)  # a tombstone deletes the finding
    assert len(table) == 0


def test_to_json_is_an_array_of_alerts_as_on_the_topic():
    body = json.loads(to_json([alert("B-2"), alert("B-1")]))
    assert [a["entity"] for a in body] == ["B-2", "B-1"]
    assert body[0]["ts"] == "2021-03-02T05:00:00Z"
    assert body[0]["status"] == "open" and body[0]["schema_version"] == 2
    assert json.loads(to_json([])) == []


def test_the_table_view_has_a_header_and_a_line_a_finding():
    lines = table_lines([alert("B-1")])
    assert lines[0].split() == [
        "ts",
        "kind",
        "severity",
        "status",
        "entity",
        "finding_id",
        "reason",
    ]
    assert lines[1].split()[:5] == [
        "2021-03-02T05:00:00Z",
        "moratorium_violation",
        "critical",
        "open",
        "B-1",
    ]


def test_parse_query_defaults():
    assert parse_query({}) == {
        "kind": None,
        "severity": None,
        "status": None,
        "entity": None,
        "since": None,
        "limit": DEFAULT_LIMIT,
    }
    # An empty parameter (``?kind=``) means "any", as if it were left out.
    assert parse_query({"kind": "", "severity": "", "limit": ""})["limit"] == DEFAULT_LIMIT
    kind = next(iter(KIND_DOMAIN))
    assert parse_query({"kind": kind, "limit": "1000"})["limit"] == 1000


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "lots"}, "limit must be an integer from 1 to 10000, not 'lots'"),
        ({"limit": "0"}, "not '0'"),
        ({"limit": "10001"}, "not '10001'"),
        ({"kind": "nope"}, "unknown kind 'nope'; kinds are pyramid_scheme, "),
        ({"severity": "loud"}, "unknown severity 'loud'; severities are"),
        ({"status": "closed"}, "unknown status 'closed'; statuses are open, escalated, resolved"),
        ({"since": "yesterday"}, "since 'yesterday' is not an RFC 3339 time"),
        ({"since": "2021-03-01T00:00:00"}, "has no UTC offset"),
    ],
)
def test_parse_query_refuses_bad_parameters_saying_what_is_allowed(query, message):
    with pytest.raises(QueryError) as error:
        parse_query(query)
    assert message in str(error.value)
