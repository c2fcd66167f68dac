"""``repeat_inspection``: how often, and by how many authorities, one business is visited.

Expected figures are worked out by hand from the typology and the detector's
documented weights (a visit opening a matter 1, whatever its ground; a follow-up
0.25; an authority's further exempt-ground visit 0.25; warning at 3, critical at
5 with three everyday visits among them, within 60 days), never by asking the
detector under test.
"""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta

from detectors.base import alert_id
from detectors.engine import Engine
from detectors.events import Inspection
from detectors.inspections.repeat_inspection import RepeatInspection
from tests.detectors.support import check, run, validate_alert

T0 = datetime(2023, 3, 1, 9, tzinfo=UTC)
KIND = "repeat_inspection"


def visit(
    event_id: str,
    day: float,
    basis: str = "routine",
    business: str = "B-1",
    authority: str = "AUTH-1",
    inspector: str = "INSP-1",
    size: str = "small",
) -> Inspection:
    """An inspection of ``business`` ``day`` days after T0."""
    return Inspection(
        event_id=event_id,
        ts=T0 + timedelta(days=day),
        business=business,
        business_size=size,
        authority=authority,
        inspector=inspector,
        kind="unscheduled",
        basis=basis,
    )


def per_event(detector: RepeatInspection, events: list[Inspection]) -> list[int]:
    """How many alerts each event raised."""
    return [len(check(detector, event)) for event in events]


THREE = [
    visit("v1", 0, "routine", authority="AUTH-1", inspector="INSP-1"),
    visit("v2", 20, "complaint", authority="AUTH-2", inspector="INSP-2"),
    visit("v3", 45, "routine", authority="AUTH-3", inspector="INSP-3"),
]


# --- the threshold ----------------------------------------------------------------


def test_three_everyday_visits_by_different_authorities_alert_once_at_the_third():
    detector = RepeatInspection()
    assert run(detector, THREE[:2]) == []
    [alert] = check(detector, THREE[2])
    assert alert.kind == KIND
    assert alert.domain == "inspections"
    assert alert.entity == "B-1" and alert.entity_type == "business"
    assert alert.severity == "warning"
    assert alert.ts == THREE[2].ts
    assert alert.event_ids == ["v1", "v2", "v3"]
    assert alert.evidence["weighted_visits"] == 3.0
    assert alert.evidence["visits"] == 3
    assert alert.evidence["everyday_visits"] == 3
    assert alert.evidence["authorities"] == ["AUTH-1", "AUTH-2", "AUTH-3"]
    assert alert.evidence["visit_dates"] == ["2023-03-01", "2023-03-21", "2023-04-15"]
    assert alert.evidence["bases"] == ["routine", "complaint", "routine"]
    assert alert.score == 3.0 / 5.0
    assert alert.alert_id == alert_id(KIND, "B-1", "v1", "warning")


def test_two_visits_raise_nothing():
    assert run(RepeatInspection(), THREE[:2]) == []


def test_three_visits_spread_over_more_than_the_window_raise_nothing():
    events = [visit("v1", 0), visit("v2", 30), visit("v3", 61)]
    assert run(RepeatInspection(), events) == []
    # The same three visits a day and a half closer together are inside the window.
    events = [visit("v1", 0), visit("v2", 30), visit("v3", 59.5)]
    assert per_event(RepeatInspection(), events) == [0, 0, 1]


def test_a_routine_visit_and_two_follow_ups_raise_nothing():
    # 1 + 0.25 + 0.25 = 1.5 < 3
    events = [visit("v1", 0), visit("v2", 10, "follow_up"), visit("v3", 20, "follow_up")]
    assert run(RepeatInspection(), events) == []


def test_four_visits_on_an_exempt_ground_raise_nothing():
    # 4 x 0.25 = 1.0 < 3
    events = [visit(f"v{i}", 5 * i, "threat_to_life_health") for i in range(4)]
    assert run(RepeatInspection(), events) == []


def test_an_authoritys_further_visits_on_its_exempt_ground_continue_its_case():
    # One authority, the same case: 1 + 0.25 + 0.25 + 0.25 = 1.75 < 3, even on two grounds.
    events = [
        visit("v1", 0, "threat_to_life_health"),
        visit("v2", 5, "criminal_case"),
        visit("v3", 10, "threat_to_life_health"),
        visit("v4", 15, "prosecutor_order"),
    ]
    assert run(RepeatInspection(), events) == []


def test_a_lawful_ground_never_hides_three_authorities_in_three_weeks():
    # Issue 13: missed on an independently built world, one of the visits on a prosecutor's
    # order (weighed 0.25 then: 2.25 < 3). Each authority's first visit opens a matter.
    events = [
        visit("v1", 0, "routine", authority="TAX"),
        visit("v2", 9, "prosecutor_order", authority="LABOUR"),
        visit("v3", 19, "complaint", authority="SANEPID"),
    ]
    detector = RepeatInspection()
    assert per_event(detector, events[:2]) == [0, 0]
    [alert] = check(detector, events[2])
    assert alert.severity == "warning"
    assert alert.evidence["weighted_visits"] == 3.0
    assert alert.evidence["matters"] == 3
    assert alert.evidence["everyday_visits"] == 2
    assert alert.evidence["authorities"] == ["LABOUR", "SANEPID", "TAX"]
    # All three on exempt grounds: the same pattern, still a warning.
    exempt = [
        visit("w1", 0, "threat_to_life_health", authority="FIRE"),
        visit("w2", 4, "environmental_threat", authority="ECO"),
        visit("w3", 8, "prosecutor_order", authority="LABOUR"),
    ]
    [alert] = run(RepeatInspection(), exempt)
    assert alert.evidence["everyday_visits"] == 0 and alert.severity == "warning"


def test_follow_ups_and_exempt_visits_add_up_with_everyday_ones():
    # One authority: routine 1, complaint 1, follow-up 0.25, its first exempt visit
    # (criminal_case) 1: 3.25 at the fourth visit; its second exempt one continues the case.
    events = [
        visit("v1", 0),
        visit("v2", 5, "complaint"),
        visit("v3", 10, "follow_up"),
        visit("v4", 15, "criminal_case"),
        visit("v5", 20, "follow_up"),
        visit("v6", 25, "prosecutor_order"),
    ]
    detector = RepeatInspection()
    assert per_event(detector, events[:3]) == [0] * 3
    [alert] = check(detector, events[3])
    assert alert.evidence["weighted_visits"] == 3.25
    assert alert.evidence["everyday_visits"] == 2
    assert alert.event_ids == ["v1", "v2", "v3", "v4"]
    assert per_event(detector, events[4:]) == [0, 0]  # 3.75: no escalation


def test_exempt_grounds_lower_the_severity_never_the_pattern():
    # Five authorities in a month, three on exempt grounds: 5 matters, but only two
    # everyday visits: a warning; a sixth everyday visit (three everyday) makes it critical.
    events = [
        visit("v1", 0, "routine", authority="A"),
        visit("v2", 5, "threat_to_life_health", authority="B"),
        visit("v3", 10, "complaint", authority="C"),
        visit("v4", 15, "prosecutor_order", authority="D"),
        visit("v5", 20, "environmental_threat", authority="E"),
        visit("v6", 25, "routine", authority="F"),
    ]
    detector = RepeatInspection()
    raised = [check(detector, event) for event in events]
    assert [[a.severity for a in r] for r in raised] == [[], [], ["warning"], [], [], ["critical"]]
    assert "kept a warning" not in " ".join(raised[5][0].reasons)


# --- one finding, escalated once, then a new episode -----------------------------------


def test_fifth_visit_escalates_to_critical_under_a_new_id_and_the_sixth_is_quiet():
    detector = RepeatInspection()
    events = [visit(f"v{i}", 5 * i, authority=f"AUTH-{i}") for i in range(1, 7)]
    raised = [check(detector, event) for event in events]
    assert [len(r) for r in raised] == [0, 0, 1, 0, 1, 0]
    [warning], [critical] = raised[2], raised[4]
    assert (warning.severity, critical.severity) == ("warning", "critical")
    assert warning.alert_id != critical.alert_id
    # The same finding (named after its first visit), at two severities.
    assert warning.alert_id == alert_id(KIND, "B-1", "v1", "warning")
    assert critical.alert_id == alert_id(KIND, "B-1", "v1", "critical")
    assert critical.event_ids == ["v1", "v2", "v3", "v4", "v5"]
    assert critical.evidence["weighted_visits"] == 5.0
    assert critical.score == 1.0


def test_a_new_episode_after_the_window_closes_alerts_again_with_a_new_id():
    detector = RepeatInspection()
    first = [visit("v1", 0), visit("v2", 10), visit("v3", 20)]
    # Last visit of the first episode on day 20; nothing until day 90 (70 days later).
    second = [visit("v4", 90), visit("v5", 100), visit("v6", 110)]
    assert per_event(detector, first) == [0, 0, 1]
    raised = [check(detector, event) for event in second]
    assert [len(r) for r in raised] == [1, 0, 1]
    [ended] = raised[0]  # day 90: the first episode's window passed on day 80
    assert (ended.status, ended.evidence["resolution"]) == ("resolved", "window_passed")
    assert ended.ts == T0 + timedelta(days=80)
    [alert] = raised[2]
    assert alert.severity == "warning"
    assert alert.event_ids == ["v4", "v5", "v6"]
    assert alert.evidence["weighted_visits"] == 3.0
    assert alert.alert_id == alert_id(KIND, "B-1", "v4", "warning")
    assert alert.alert_id != alert_id(KIND, "B-1", "v1", "warning")


def test_businesses_are_counted_apart():
    events = [visit(f"v{i}", i, business=f"B-{i % 2}") for i in range(5)]
    # B-0 gets visits 0, 2, 4 (alert at the third); B-1 only two.
    alerts = run(RepeatInspection(), events)
    assert [(a.entity, a.event_ids) for a in alerts] == [("B-0", ["v0", "v2", "v4"])]


# --- event time, not arrival order -------------------------------------------------


def test_a_late_visit_within_the_window_is_counted_in_time_order():
    detector = RepeatInspection()
    assert check(detector, visit("v1", 0)) == []
    assert check(detector, visit("v3", 40)) == []
    [alert] = check(detector, visit("v2", 20, "complaint"))  # arrives last
    assert alert.event_ids == ["v1", "v2", "v3"]
    assert alert.evidence["visit_dates"] == ["2023-03-01", "2023-03-21", "2023-04-10"]
    assert alert.evidence["bases"] == ["routine", "complaint", "routine"]
    assert alert.evidence["span_days"] == 40.0


def test_a_late_visit_older_than_the_window_is_not_counted():
    detector = RepeatInspection()
    events = [visit("v1", 100), visit("v2", 110), visit("v0", 30)]  # v0: 80 days before v2
    assert run(detector, events) == []


def test_a_redelivered_visit_counts_once_through_the_engine():
    engine = Engine([RepeatInspection()])
    outcomes = []
    for event in [visit("v1", 0), visit("v2", 10), visit("v2", 10), visit("v2", 10)]:
        result = engine.process("inspections", event)
        outcomes.append((result.outcome, len(result.alerts)))
    assert outcomes == [("ok", 0), ("ok", 0), ("duplicate", 0), ("duplicate", 0)]
    assert len(engine.process("inspections", visit("v3", 20)).alerts) == 1


# --- the alert explains itself and keeps the contract -------------------------------


def test_reasons_give_the_count_the_days_and_the_threshold():
    [alert] = run(RepeatInspection(), THREE)
    first, second = alert.reasons
    assert first.startswith(
        "3 inspections in 45 days by 3 authorities, weighing 3 against a threshold of 3 in "
        "60 days: "
    )
    assert "2023-03-01 AUTH-1 routine" in first
    assert "2023-03-21 AUTH-2 complaint" in first
    assert "2023-04-15 AUTH-3 routine" in first
    assert second == (
        "3 of them opened a matter of their own (3 on everyday grounds, 0 an authority's "
        "first on an exempt ground); 0 continued one (follow-ups weigh 0.25, an authority's "
        "further exempt visits 0.25)"
    )


def test_alerts_validate_against_the_alert_schema():
    events = [visit(f"v{i}", 3 * i) for i in range(6)]
    alerts = run(RepeatInspection(), events)
    assert [a.severity for a in alerts] == ["warning", "critical"]
    for alert in alerts:
        doc = validate_alert(alert)
        assert doc["ts"].endswith("Z")
        assert doc["kind"] == KIND and doc["entity_type"] == "business"


# --- the detector contract ------------------------------------------------------------


def busy_stream(seed: int = 7, n: int = 600) -> list[Inspection]:
    """Visits to 40 businesses over 200 days: some get inspected again and again."""
    rng = random.Random(seed)
    bases = ["routine", "complaint", "follow_up", "threat_to_life_health", "taxpayer_request"]
    events = []
    for i in range(n):
        business = f"B-{min(rng.randrange(40), rng.randrange(40))}"  # low ids are busier
        events.append(
            visit(
                f"e{i}",
                rng.uniform(0, 200),
                rng.choice(bases),
                business=business,
                authority=f"AUTH-{rng.randrange(4)}",
                inspector=f"INSP-{rng.randrange(12)}",
            )
        )
    events.sort(key=lambda e: e.ts)
    # A few arrive a little late (within a day), as the contract allows.
    for i in range(5, len(events) - 1, 37):
        events[i], events[i + 1] = events[i + 1], events[i]
    return events


def test_pickle_round_trip_mid_stream_gives_the_same_later_alerts():
    events = busy_stream()
    half = len(events) // 2
    detector = RepeatInspection()
    run(detector, events[:half])
    copy = pickle.loads(pickle.dumps(detector))
    later = run(detector, events[half:])
    assert later, "the second half should raise alerts, or this test proves nothing"
    assert run(copy, events[half:]) == later
    assert copy.n_entities == detector.n_entities


def test_fresh_runs_are_identical():
    first = run(RepeatInspection(), busy_stream())
    second = run(RepeatInspection(), busy_stream())
    assert len({a.severity for a in first}) == 2  # both warnings and criticals
    assert first == second
    assert len({a.alert_id for a in first}) == len(first)  # each alert once


def test_state_is_bounded_by_the_businesses_of_the_last_window():
    detector = RepeatInspection()
    n, year = 10_000, 365.0
    days = [year * i / n for i in range(n)]
    for i, day in enumerate(days):
        check(detector, visit(f"e{i}", day, business=f"B-{i}"))
    last = days[-1]
    # Swept once a day of event time: what is left is the last window, plus at most a day.
    lower = sum(1 for d in days if d >= last - 60)
    upper = sum(1 for d in days if d >= last - 61)
    assert lower <= detector.n_entities <= upper
    assert detector.n_entities < 0.2 * n


def test_custom_weights_and_thresholds_are_honoured():
    detector = RepeatInspection(
        window_days=7,
        alert_at=2,
        critical_at=3,
        follow_up_weight=1.0,
        exempt_weight=0.5,
        exempt_bases=frozenset({"inspection_of_the_day"}),
    )
    # 1 + 1 (follow-up weighs 1 here) = 2: a warning at the second visit.
    [warning] = run(detector, [visit("v1", 0), visit("v2", 3, "follow_up")])
    assert warning.evidence["weighted_visits"] == 2.0
    assert "against a threshold of 2 in 7 days" in warning.reasons[0]
    assert "follow-ups weigh 1, an authority's further exempt visits 0.5" in warning.reasons[1]
    # threat_to_life_health is not exempt here: it weighs 1, so 3 in the window: critical.
    [critical] = check(detector, visit("v3", 6, "threat_to_life_health"))
    assert critical.severity == "critical" and critical.evidence["weighted_visits"] == 3.0
    assert critical.score == 1.0

    other = RepeatInspection(
        window_days=7,
        alert_at=2,
        exempt_weight=0.5,
        exempt_bases=frozenset({"inspection_of_the_day"}),
    )
    # Visits 8 days apart never share a 7-day window.
    assert run(other, [visit("w1", 0), visit("w2", 8), visit("w3", 16)]) == []
    # A custom-exempt visit opens the authority's case (1), a second continues it (0.5):
    # 1.5; an everyday visit makes 2.5.
    events = [
        visit("x1", 0, "inspection_of_the_day", business="B-2"),
        visit("x2", 1, "inspection_of_the_day", business="B-2"),
    ]
    assert run(other, events) == []
    [alert] = check(other, visit("x3", 2, business="B-2"))
    assert alert.evidence["weighted_visits"] == 2.5 and alert.evidence["everyday_visits"] == 1


def test_the_detector_does_not_mutate_its_input():
    events = busy_stream(n=200)
    copies = [pickle.loads(pickle.dumps(event)) for event in events]
    run(RepeatInspection(), events)
    assert events == copies


def test_a_second_burst_after_falling_below_the_threshold_alerts_again():
    # Guards a fixed bug: an episode only ends when its window holds a single visit, so a
    # business that falls below the threshold and is then hammered again within 60 days of the
    # old episode's last visit never alerts again (repeat_inspection.py reset _raised only at
    # len == 1)
    detector = RepeatInspection()
    first = [visit("v1", 0), visit("v2", 10), visit("v3", 20)]
    # Day 75: the window [15, 75] holds v3 and v4 only, weight 2 < 3: the finding has lapsed.
    # By day 90 the window [30, 90] holds v4, v5, v6: none of the first episode's visits.
    second = [visit("v4", 75), visit("v5", 85), visit("v6", 90)]
    assert per_event(detector, first) == [0, 0, 1]
    raised = [check(detector, event) for event in second]
    assert [[a.event_ids for a in r] for r in raised] == [[[]], [], [["v4", "v5", "v6"]]]
    [lapsed] = raised[0]  # day 75 weighs 2: the first finding ends on that visit
    assert lapsed.status == "resolved" and lapsed.evidence["weighted_visits"] == 2.0
    assert lapsed.finding_id != raised[2][0].finding_id
