"""The ``/alerts`` page's ring of recent alerts and its query parameters (no web server).

The page itself is served by the worker and tested against the real broker
(``tests/integration``); what it answers is decided here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from detectors.base import make_alert
from detectors.events import KIND_DOMAIN
from streams.recent import DEFAULT_LIMIT, QueryError, RecentAlerts, parse_query


def alert(entity: str, kind: str = "moratorium_violation", severity: str = "critical"):
    return make_alert(
        kind=kind,
        entity=entity,
        finding=entity,
        ts=datetime(2021, 3, 2, 5, tzinfo=UTC),
        severity=severity,
        score=1.0,
        reasons=["why"],
        evidence={},
        event_ids=[f"i-{entity}"],
    )


def test_newest_first_filtered_by_kind_and_severity():
    ring = RecentAlerts()
    ring.add([alert("B-1"), alert("B-2"), alert("B-3", "repeat_inspection", "warning")])
    assert [a.entity for a in ring.query()] == ["B-3", "B-2", "B-1"]
    assert [a.entity for a in ring.query(kind="moratorium_violation")] == ["B-2", "B-1"]
    query = parse_query({"kind": "moratorium_violation", "severity": "critical", "limit": "1"})
    assert [a.entity for a in ring.query(**query)] == ["B-2"]
    assert ring.query(severity="warning", kind="moratorium_violation") == []


def test_the_ring_is_bounded():
    ring = RecentAlerts(maxlen=2)
    ring.add(alert(f"B-{i}") for i in range(4))
    assert len(ring) == 2
    assert [a.entity for a in ring.query()] == ["B-3", "B-2"]


def test_to_json_is_an_array_of_alerts_as_on_the_topic():
    ring = RecentAlerts()
    ring.add([alert("B-1"), alert("B-2")])
    body = json.loads(ring.to_json(ring.query()))
    assert [a["entity"] for a in body] == ["B-2", "B-1"]
    assert body[0]["event_ids"] == ["i-B-2"]
    assert body[0]["ts"] == "2021-03-02T05:00:00Z"
    assert json.loads(ring.to_json([])) == []


def test_parse_query_defaults():
    assert parse_query({}) == {"kind": None, "severity": None, "limit": DEFAULT_LIMIT}
    # An empty parameter (``?kind=``) means "any", as if it were left out.
    assert parse_query({"kind": "", "severity": "", "limit": ""})["limit"] == DEFAULT_LIMIT
    kind = next(iter(KIND_DOMAIN))
    assert parse_query({"kind": kind, "limit": "1000"}) == {
        "kind": kind,
        "severity": None,
        "limit": 1000,
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "lots"}, "limit must be an integer from 1 to 1000, not 'lots'"),
        ({"limit": "0"}, "limit must be an integer from 1 to 1000, not '0'"),
        ({"limit": "1001"}, "not '1001'"),
        ({"limit": "-5"}, "not '-5'"),
        ({"kind": "nope"}, "unknown kind 'nope'; kinds are pyramid_scheme, "),
        ({"severity": "loud"}, "unknown severity 'loud'; severities are"),
    ],
)
def test_parse_query_refuses_bad_parameters_saying_what_is_allowed(query, message):
    with pytest.raises(QueryError) as error:
        parse_query(query)
    assert message in str(error.value)


def test_the_limit_follows_the_rings_size():
    assert parse_query({"limit": "5"}, maxlen=5)["limit"] == 5
    with pytest.raises(QueryError, match="from 1 to 5, not '6'"):
        parse_query({"limit": "6"}, maxlen=5)
