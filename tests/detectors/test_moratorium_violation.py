"""``moratorium_violation``: the exact rule of the contract, at its edges.

Expected results are worked out here from first principles (the local date
of an instant in Asia/Almaty, from the tz database), never by asking the
detector under test.
"""

from __future__ import annotations

import pickle
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from detectors.base import Context
from detectors.engine import Engine
from detectors.errors import ConfigError, KuzetError
from detectors.events import Alert, Inspection
from detectors.inspections.moratorium_violation import MoratoriumRules, MoratoriumViolation

ALMATY = ZoneInfo("Asia/Almaty")
EXEMPT = (
    "threat_to_life_health",
    "environmental_threat",
    "national_security",
    "prosecutor_order",
    "criminal_case",
    "taxpayer_request",
)


def inspection(
    ts: str,
    event_id: str = "in-1",
    business: str = "BIZ-1",
    size: str = "micro",
    kind: str = "unscheduled",
    basis: str = "routine",
) -> Inspection:
    return Inspection(
        event_id=event_id,
        ts=datetime.fromisoformat(ts),
        business=business,
        business_size=size,
        authority="AUTH-1",
        inspector="INSP-1",
        kind=kind,
        basis=basis,
    )


def check(detector: MoratoriumViolation, event: Inspection) -> list[Alert]:
    """One event through the detector, as the engine hands it over."""
    ctx = Context(None)
    ctx.ts = event.ts.timestamp()
    return detector.update(event, ctx)


def alerts(ts: str, rules: MoratoriumRules | None = None, **fields: str) -> int:
    return len(check(MoratoriumViolation(rules), inspection(ts, **fields)))


# --- the default window, at local midnight ------------------------------------


def test_almaty_was_utc_plus_6_throughout_the_default_window():
    # The premise of the boundary cases below; fails if the tz database disagrees.
    for instant in ("2019-12-31T17:00:00Z", "2021-06-15T12:00:00Z", "2022-12-31T19:00:00Z"):
        local = datetime.fromisoformat(instant).astimezone(ALMATY)
        assert local.utcoffset() == timedelta(hours=6), instant


@pytest.mark.parametrize(
    ("local", "utc", "expected"),
    [
        # The last minute before the moratorium, local time: lawful.
        ("2019-12-31T23:59:00+06:00", "2019-12-31T17:59:00Z", 0),
        # Local midnight, first instant of 2020-01-01: prohibited.
        ("2020-01-01T00:00:00+06:00", "2019-12-31T18:00:00Z", 1),
        # One minute in: the UTC date is still 2019, the local date is 2020.
        ("2020-01-01T00:01:00+06:00", "2019-12-31T18:01:00Z", 1),
        # The last minute of the moratorium.
        ("2022-12-31T23:59:00+06:00", "2022-12-31T17:59:00Z", 1),
        # Local midnight of 2023-01-01: the window is half-open, so lawful.
        ("2023-01-01T00:00:00+06:00", "2022-12-31T18:00:00Z", 0),
        # The UTC date is still 2022, the local date is 2023: lawful.
        ("2023-01-01T00:01:00+06:00", "2022-12-31T18:01:00Z", 0),
    ],
)
def test_default_window_edges_in_local_and_utc_notation(local: str, utc: str, expected: int):
    assert datetime.fromisoformat(local) == datetime.fromisoformat(utc)  # same instant
    assert alerts(local) == expected
    assert alerts(utc) == expected


def test_mid_window_is_prohibited_and_far_outside_is_not():
    assert alerts("2021-06-15T12:00:00Z") == 1
    assert alerts("2019-06-15T12:00:00Z") == 0
    assert alerts("2024-06-15T12:00:00Z") == 0


# --- the 2024 change of Almaty's offset ---------------------------------------

SPRING_2024 = MoratoriumRules(windows=((date(2024, 3, 1), date(2024, 6, 1)),))


def test_almaty_moved_from_utc_plus_6_to_plus_5_on_2024_03_01():
    # The tz database: at 2024-03-01 00:00 local (+06:00), i.e. 2024-02-29 18:00 UTC,
    # the clocks went back to 23:00 (+05:00); the last hour of 29 February ran twice.
    def offset(utc: str) -> timedelta:
        return datetime.fromisoformat(utc).astimezone(ALMATY).utcoffset()

    assert offset("2024-02-29T17:59:59Z") == timedelta(hours=6)
    assert offset("2024-02-29T18:00:00Z") == timedelta(hours=5)
    assert offset("2024-05-31T18:30:00Z") == timedelta(hours=5)


@pytest.mark.parametrize(
    ("utc", "local_date", "expected"),
    [
        # 17:59Z + 6 h = 23:59 on 29 Feb: before the window.
        ("2024-02-29T17:59:00Z", "2024-02-29", 0),
        # 18:30Z + 5 h = 23:30 on 29 Feb (the repeated hour): still before the window.
        # A fixed +06:00 would say 00:30 on 1 March and wrongly alert.
        ("2024-02-29T18:30:00Z", "2024-02-29", 0),
        ("2024-02-29T18:59:59Z", "2024-02-29", 0),
        # 19:00Z + 5 h = local midnight of 1 March: the window opens.
        ("2024-02-29T19:00:00Z", "2024-03-01", 1),
        # 18:30Z + 5 h = 23:30 on 31 May: still inside (a fixed +06:00 would say 1 June).
        ("2024-05-31T18:30:00Z", "2024-05-31", 1),
        ("2024-05-31T18:59:59Z", "2024-05-31", 1),
        # 19:00Z + 5 h = local midnight of 1 June: the window has closed.
        ("2024-05-31T19:00:00Z", "2024-06-01", 0),
    ],
)
def test_window_across_the_2024_offset_change(utc: str, local_date: str, expected: int):
    instant = datetime.fromisoformat(utc)
    start, end = SPRING_2024.windows[0]
    # First principles: the local date, and whether it is inside [start, end).
    assert instant.astimezone(ALMATY).date().isoformat() == local_date
    assert int(start <= date.fromisoformat(local_date) < end) == expected
    assert alerts(utc, SPRING_2024) == expected


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        # The same instants written with the producer's offset of the day.
        ("2024-03-01T00:30:00+06:00", 0),  # = 18:30Z = 23:30 on 29 Feb in Almaty
        ("2024-02-29T23:30:00+05:00", 0),  # the same instant
        ("2024-03-01T00:00:00+05:00", 1),  # = 19:00Z, local midnight
        ("2024-06-01T00:30:00+06:00", 1),  # = 18:30Z on 31 May = 23:30 local
        ("2024-06-01T00:00:00+05:00", 0),
    ],
)
def test_window_across_the_offset_change_in_offset_notation(ts: str, expected: int):
    assert alerts(ts, SPRING_2024) == expected


# --- who is covered -----------------------------------------------------------

INSIDE = "2021-06-15T12:00:00+06:00"


@pytest.mark.parametrize("basis", EXEMPT)
def test_exempt_bases_give_no_alert(basis: str):
    assert alerts(INSIDE, basis=basis) == 0


@pytest.mark.parametrize("basis", ["routine", "complaint", "follow_up", "Criminal_Case"])
def test_other_bases_are_not_exempt(basis: str):
    assert alerts(INSIDE, basis=basis) == 1


@pytest.mark.parametrize(
    ("size", "expected"), [("micro", 1), ("small", 1), ("medium", 0), ("large", 0)]
)
def test_only_micro_and_small_businesses_are_protected(size: str, expected: int):
    assert alerts(INSIDE, size=size) == expected


@pytest.mark.parametrize("kind", ["scheduled", "unscheduled", "preventive"])
def test_every_kind_of_inspection_is_prohibited(kind: str):
    assert alerts(INSIDE, kind=kind) == 1


# --- custom rules -------------------------------------------------------------


def test_several_windows():
    rules = MoratoriumRules(
        windows=(
            (date(2020, 1, 1), date(2020, 2, 1)),
            (date(2021, 1, 1), date(2021, 1, 2)),
        )
    )
    assert alerts("2020-01-15T12:00:00+06:00", rules) == 1
    assert alerts("2020-02-01T00:00:00+06:00", rules) == 0
    assert alerts("2020-06-01T12:00:00+06:00", rules) == 0  # between the windows
    assert alerts("2021-01-01T23:59:00+06:00", rules) == 1  # a one-day window
    assert alerts("2021-01-02T00:00:00+06:00", rules) == 0


def test_overlapping_windows_still_give_one_alert_per_inspection():
    rules = MoratoriumRules(
        windows=((date(2020, 1, 1), date(2021, 1, 1)), (date(2020, 6, 1), date(2022, 1, 1)))
    )
    assert alerts("2020-07-01T12:00:00+06:00", rules) == 1


def test_custom_sizes():
    rules = MoratoriumRules(sizes=frozenset({"medium"}))
    assert alerts(INSIDE, rules, size="medium") == 1
    assert alerts(INSIDE, rules, size="micro") == 0
    assert alerts(INSIDE, rules, size="large") == 0


def test_custom_exempt_set_replaces_the_default():
    rules = MoratoriumRules(exempt_bases=frozenset({"complaint"}))
    assert alerts(INSIDE, rules, basis="complaint") == 0
    assert alerts(INSIDE, rules, basis="routine") == 1
    assert alerts(INSIDE, rules, basis="threat_to_life_health") == 1  # no longer exempt


def test_no_windows_means_no_alerts():
    assert alerts(INSIDE, MoratoriumRules(windows=())) == 0


def test_custom_timezone():
    # 2019-12-31T20:00Z is 2020-01-01 01:00 in Tokyo (+09:00) but still 2019 in London.
    at = "2019-12-31T20:00:00Z"
    assert len(check(MoratoriumViolation(timezone="Asia/Tokyo"), inspection(at))) == 1
    assert len(check(MoratoriumViolation(timezone="Europe/London"), inspection(at))) == 0


@pytest.mark.parametrize(
    "window",
    [(date(2020, 1, 1), date(2020, 1, 1)), (date(2023, 1, 1), date(2020, 1, 1))],
    ids=["empty", "reversed"],
)
def test_window_whose_start_is_not_before_its_end_is_a_config_error(window):
    with pytest.raises(ConfigError) as info:
        MoratoriumRules(windows=(window,))
    assert isinstance(info.value, KuzetError)
    assert str(window[0]) in str(info.value)


# --- one alert per inspection, and what it says --------------------------------


def test_two_inspections_of_the_same_business_give_two_alerts():
    engine = Engine([MoratoriumViolation()])
    first = engine.process("inspections", inspection(INSIDE, event_id="in-1"))
    second = engine.process("inspections", inspection(INSIDE, event_id="in-2"))
    assert len(first.alerts) == len(second.alerts) == 1
    assert first.alerts[0].entity == second.alerts[0].entity == "BIZ-1"
    assert first.alerts[0].alert_id != second.alerts[0].alert_id


def test_a_redelivered_inspection_gives_one_alert():
    engine = Engine([MoratoriumViolation()])
    results = [engine.process("inspections", inspection(INSIDE)) for _ in range(3)]
    assert [r.outcome for r in results] == ["ok", "duplicate", "duplicate"]
    assert sum(len(r.alerts) for r in results) == 1


def test_alert_fields():
    # 2021-06-01T20:00Z is 2021-06-02 02:00 in Almaty: the reason must give the local date.
    event = inspection(
        "2021-06-01T20:00:00Z", event_id="in-42", business="BIZ-7", size="small", kind="scheduled"
    )
    [alert] = check(MoratoriumViolation(), event)
    assert alert.kind == "moratorium_violation"
    assert (alert.domain, alert.entity, alert.entity_type) == ("inspections", "BIZ-7", "business")
    assert (alert.severity, alert.score) == ("critical", 1.0)
    assert alert.event_ids == ["in-42"]
    assert alert.ts == event.ts
    assert len(alert.reasons) >= 1
    assert "2021-06-02" in alert.reasons[0]
    assert "2021-06-01" not in alert.reasons[0]
    assert "'routine'" in alert.reasons[0] and "small" in alert.reasons[0]
    assert alert.evidence["local_start"] == "2021-06-02T02:00:00+06:00"
    assert alert.evidence["moratorium_window"] == ["2020-01-01", "2023-01-01"]
    assert alert.evidence["basis"] == "routine"


def test_alert_is_the_same_whatever_offset_the_producer_wrote():
    utc = check(MoratoriumViolation(), inspection("2021-06-01T20:00:00Z"))
    local = check(MoratoriumViolation(), inspection("2021-06-02T02:00:00+06:00"))
    assert utc == local


# --- the detector contract (pickle, no mutation, determinism) ------------------


def corpus() -> list[Inspection]:
    events = []
    stamps = ["2019-12-31T17:59:00Z", "2019-12-31T18:01:00Z", INSIDE, "2023-01-01T00:01:00+06:00"]
    for i, ts in enumerate(stamps * 3):
        events.append(
            inspection(
                ts,
                event_id=f"in-{i}",
                business=f"BIZ-{i % 4}",
                size=("micro", "small", "medium")[i % 3],
                basis=("routine", "criminal_case")[i % 2 if i > 5 else 0],
            )
        )
    return events


def run(detector: MoratoriumViolation, events: list[Inspection]) -> list[Alert]:
    return [alert for event in events for alert in check(detector, event)]


def test_detector_survives_a_pickle_round_trip():
    detector = MoratoriumViolation(SPRING_2024, timezone="Asia/Almaty")
    events = corpus()
    before = run(detector, events)
    copy = pickle.loads(pickle.dumps(detector))
    assert copy.rules == SPRING_2024 and copy.timezone == "Asia/Almaty"
    assert run(copy, events) == before
    default = MoratoriumViolation()
    assert run(pickle.loads(pickle.dumps(default)), events) == run(default, events)


def test_detector_does_not_mutate_its_input():
    events = corpus()
    copies = [pickle.loads(pickle.dumps(event)) for event in events]
    run(MoratoriumViolation(), events)
    assert events == copies


def test_detector_is_deterministic_across_fresh_runs():
    events = corpus()
    first = run(MoratoriumViolation(), events)
    second = run(MoratoriumViolation(), events)
    assert first == second
    assert [a.event_ids[0] for a in first] == ["in-1", "in-6", "in-10"]
