"""Rules changed live (detectors/live_rules.py): each applies at its stated event time.

The engine applies a change in every partition before the first event at or
after its time; a change that does not validate is refused and the rules
before it stay; new parameters keep what a detector has learned; a kind
switched off is not called (nor its timers), and switched on starts afresh.
"""

from __future__ import annotations

import logging
import pickle
from datetime import UTC, datetime, timedelta

import pytest

from detectors.engine import Engine
from detectors.errors import ConfigError, KuzetError
from detectors.events import Inspection, PayrollEvent
from detectors.live_rules import RulesChange, Timeline, decode_change, make_change
from detectors.registry import build_engine
from detectors.rules import FIXED_LIVE, PARAMS, Rules, overlay

T = datetime(2024, 3, 1, tzinfo=UTC)
RAISE = "[repeat_inspection]\nalert_at = 4.0"


def change(name: str, when: datetime, rules: str) -> RulesChange:
    return make_change(name, when.isoformat(), rules)


def visit(n: int, when: datetime, business: str, size: str = "medium") -> Inspection:
    """An everyday visit by an authority of its own: each opens a matter (weight 1)."""
    return Inspection(
        event_id=f"v-{n}",
        ts=when,
        business=business,
        business_size=size,
        authority=f"A-{n}",
        inspector="I-1",
        kind="unscheduled",
        basis="routine",
    )


def kinds_of(engine: Engine, events, lane: str = "inspections") -> list[tuple[str, str]]:
    found = []
    for event in events:
        found += [(a.kind, a.entity) for a in engine.process(lane, event).alerts]
    return found


def detector_of(engine: Engine, kind: str):
    [found] = [d for d in engine.partition("inspections", 0).detectors if d.kind == kind]
    return found


def day(n: float) -> datetime:
    return T + timedelta(days=n)


# -- the timeline ------------------------------------------------------------------------


def test_a_partial_change_keeps_every_other_value():
    rules = overlay(Rules(), RAISE)
    assert rules.repeat_inspection.params.alert_at == 4.0
    default = Rules().repeat_inspection.params
    assert rules.repeat_inspection.params.critical_at == default.critical_at
    for kind in PARAMS:
        if kind != "repeat_inspection":
            assert rules.kind(kind) == Rules().kind(kind)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[repeat_inspection]\nalert_at = 9.0", "critical_at must not be below alert_at"),
        ("[mule_account]\nmin_payers = 0", "expected a positive number"),
        ("[mule_account]\nmin_payres = 3", "min_payres: unknown key"),
        ("[moratorium]\ncovered_sizes = ['micro']", "moratorium: unknown key"),
        ("[payment_anomaly]\nq = 0.9", "payment_anomaly.q: cannot change while the worker runs"),
        ("[salary_arrears]\ndue_day = 5", "due_day: cannot change while the worker runs"),
        ("[mule_account\n", "not valid TOML"),
    ],
)
def test_a_bad_change_is_refused_and_the_rules_before_it_stay(text, expected):
    timeline = Timeline(Rules(), [change("bad", T, text), change("good", day(1), RAISE)])
    verdict = timeline.verdicts["bad"]
    assert not verdict.applied and expected in verdict.reason
    assert "rules change 'bad'" in verdict.reason
    assert timeline.rules_at(day(0.5).timestamp()) == Rules()
    assert timeline.verdicts["good"].applied
    assert timeline.rules_at(day(1).timestamp()) == overlay(Rules(), RAISE)


def test_a_fixed_parameter_may_be_restated_unchanged():
    q = Rules().payment_anomaly.params.q
    assert ("payment_anomaly", "q") in FIXED_LIVE
    assert overlay(Rules(), f"[payment_anomaly]\nq = {q}\nmin_score = 0.9") is not None


def test_changes_apply_in_time_order_then_by_name_each_over_the_last():
    first = change("b-first", day(1), "[repeat_inspection]\ncritical_at = 8.0")
    second = change("a-second", day(2), "[repeat_inspection]\nalert_at = 7.0")
    # Valid only over the first: alone, alert_at 7 would pass critical_at 5.
    timeline = Timeline(Rules(), [second, first])
    params = timeline.rules_at(day(3).timestamp()).repeat_inspection.params
    assert (params.alert_at, params.critical_at) == (7.0, 8.0)
    assert [step.names for step in timeline.steps] == [(), ("b-first",), ("a-second",)]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (b"x", b"not json", "not JSON"),
        (b"x", b"[1]", "JSON object"),
        (b"x", b'{"rules": "[mule_account]"}', "'effective' and 'rules' are required"),
        (b"x", b'{"effective": "2024-03-01T00:00:00", "rules": "a"}', "no UTC offset"),
        (b"x", b'{"effective": "yesterday", "rules": "a"}', "not an RFC 3339 time"),
        (b"x", b'{"effective": "2024-03-01T00:00:00Z", "rules": ""}', "text of a rules file"),
        (b"x", b'{"effective": "2024-03-01T00:00:00Z", "rules": "a", "by": 1}', "unknown field"),
        (b"", b'{"effective": "2024-03-01T00:00:00Z", "rules": "a"}', "change name"),
    ],
)
def test_a_malformed_record_is_refused_saying_what(key, value, expected):
    with pytest.raises(ConfigError, match=expected):
        decode_change(key, value)


# -- the engine --------------------------------------------------------------------------


def test_a_raised_threshold_holds_from_its_time_on_and_not_before():
    events = [visit(1, day(-20), "X"), visit(2, day(-19), "X"), visit(3, day(-18), "X")]
    events += [visit(4, day(2), "Y"), visit(5, day(3), "Y"), visit(6, day(4), "Y")]
    baseline = kinds_of(build_engine(), events)
    assert baseline == [("repeat_inspection", "X"), ("repeat_inspection", "Y")]
    changed = build_engine(changes=[change("raise", T, RAISE)])
    assert kinds_of(changed, events) == [("repeat_inspection", "X")]  # Y has only 3 now
    assert kinds_of(changed, [visit(7, day(5), "Y")]) == [("repeat_inspection", "Y")]


def test_new_parameters_keep_what_the_detector_learned():
    engine = build_engine(changes=[change("raise", T, RAISE)])
    before = [visit(1, day(-3), "Z"), visit(2, day(-2), "Z")]
    assert kinds_of(engine, before) == []
    detector = detector_of(engine, "repeat_inspection")
    assert detector.alert_at == 3.0
    after = [visit(3, day(1), "Z"), visit(4, day(2), "Z")]
    # The two visits before the change still count: four in the window reach 4.0.
    assert kinds_of(engine, after) == [("repeat_inspection", "Z")]
    assert detector_of(engine, "repeat_inspection") is detector
    assert detector.alert_at == 4.0


def test_a_kind_switched_off_is_not_called_and_switched_on_again_it_runs():
    off = change("off", datetime(2021, 3, 1, tzinfo=UTC), "[moratorium_violation]\nenabled = false")
    on = change("on", datetime(2021, 4, 1, tzinfo=UTC), "[moratorium_violation]\nenabled = true")
    engine = build_engine(changes=[off, on])
    visits = [
        visit(n, datetime(2021, month, 15, tzinfo=UTC), f"B-{n}", size="small")
        for n, month in ((1, 2), (2, 3), (3, 4))
    ]
    found = [entity for kind, entity in kinds_of(engine, visits) if kind == "moratorium_violation"]
    assert found == ["B-1", "B-3"]
    assert (
        engine.enabled_kinds(datetime(2021, 3, 2, tzinfo=UTC).timestamp()).count(
            "moratorium_violation"
        )
        == 0
    )


def accrual(n: int, when: datetime, period: str) -> PayrollEvent:
    return PayrollEvent(
        event_id=f"p-{n}",
        ts=when,
        type="accrual",
        employer="E-1",
        employee=f"W-{n}",
        period=period,
        amount=300_000.0,
    )


def tick(n: int, when: datetime) -> PayrollEvent:
    """An event of another employer that moves the partition's clock."""
    return PayrollEvent(event_id=f"t-{n}", ts=when, type="hire", employer="E-9", employee=f"H{n}")


def test_a_kind_switched_off_loses_its_timers_and_starts_afresh_when_switched_on():
    def run(changes):
        engine = build_engine(changes=changes)
        events = [accrual(1, datetime(2024, 1, 31, 12, tzinfo=UTC), "2024-01")]
        start = datetime(2024, 2, 1, tzinfo=UTC)
        events += [tick(n, start + timedelta(days=n)) for n in range(40)]
        return [a.kind for e in events for a in engine.process("payroll", e).alerts]

    assert "salary_arrears" in run([])  # January's wages, due 10 February, never paid
    off = change("off", datetime(2024, 2, 5, tzinfo=UTC), "[salary_arrears]\nenabled = false")
    on = change("on", datetime(2024, 2, 6, tzinfo=UTC), "[salary_arrears]\nenabled = true")
    # Off before the due date: its timer went with its state; on again, it knows nothing.
    assert "salary_arrears" not in run([off, on])
    # Both passed between two events of the partition: it was never off for any event.
    off = change("off", datetime(2024, 2, 5, 6, tzinfo=UTC), "[salary_arrears]\nenabled = false")
    on = change("on", datetime(2024, 2, 5, 12, tzinfo=UTC), "[salary_arrears]\nenabled = true")
    assert "salary_arrears" in run([off, on])


def test_a_late_change_applies_from_the_next_event_and_says_so(caplog):
    engine = build_engine()
    events = [visit(1, day(1), "Y"), visit(2, day(2), "Y")]
    assert kinds_of(engine, events) == []
    timeline = engine.set_changes([change("raise", T, RAISE)])
    assert timeline.verdicts["raise"].applied
    with caplog.at_level(logging.INFO, logger="detectors.engine"):
        assert kinds_of(engine, [visit(3, day(3), "Y")]) == []  # 3 < 4: the change holds
    assert "applied late" in caplog.text and "raise" in caplog.text


def test_a_change_in_time_is_logged_but_not_as_late(caplog):
    engine = build_engine(changes=[change("raise", T, RAISE)])
    with caplog.at_level(logging.INFO, logger="detectors.engine"):
        kinds_of(engine, [visit(1, day(-1), "Y"), visit(2, day(1), "Y")])
    assert "rules change raise applied from event time" in caplog.text
    assert "late" not in caplog.text


def test_applied_changes_survive_a_restart_of_the_partition():
    changes = [change("raise", T, RAISE)]
    events = [visit(n, day(-3 + n), "Y") for n in range(1, 7)]
    whole = kinds_of(build_engine(changes=changes), events)
    for cut in range(len(events) + 1):
        first = build_engine(changes=changes)
        found = kinds_of(first, events[:cut])
        saved = pickle.dumps(first.partition("inspections", 0))
        second = build_engine(changes=changes)
        second.adopt_partition("inspections", 0, pickle.loads(saved))
        assert found + kinds_of(second, events[cut:]) == whole, cut


def test_the_whole_engine_restored_follows_its_changes():
    engine = build_engine(changes=[change("raise", T, RAISE)])
    kinds_of(engine, [visit(1, day(1), "Y")])
    restored = Engine.restore(engine.snapshot())
    assert restored.partition("inspections", 0).owner is restored
    assert kinds_of(restored, [visit(2, day(2), "Y"), visit(3, day(3), "Y")]) == []


def test_an_engine_without_rules_refuses_changes():
    with pytest.raises(KuzetError, match="runs no rules"):
        Engine([]).set_changes([])
