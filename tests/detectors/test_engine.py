"""The engine: duplicates, lateness, watermarks, timers, failures, ids, checkpoints."""

from __future__ import annotations

import pickle
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta

import pytest

from detectors.base import Context, Detector, alert_id, make_alert
from detectors.engine import (
    DEDUP_BUCKET_SECONDS,
    Deduplicator,
    DetectorFailure,
    Engine,
    SnapshotError,
)
from detectors.errors import KuzetError
from detectors.events import Alert, Inspection, PayrollEvent
from detectors.inspections.moratorium_violation import MoratoriumViolation

T0 = datetime(2021, 3, 2, 5, tzinfo=UTC)
HOUR = 3600.0


def inspection(
    event_id: str,
    at: float = 0.0,
    business: str = "BIZ-1",
    size: str = "small",
    basis: str = "routine",
) -> Inspection:
    """An inspection ``at`` hours after T0 (inside the moratorium: it alerts by default)."""
    return Inspection(
        event_id=event_id,
        ts=T0 + timedelta(hours=at),
        business=business,
        business_size=size,
        authority="AUTH",
        inspector="INSP",
        kind="unscheduled",
        basis=basis,
    )


def hire(event_id: str, at: float = 0.0, employer: str = "EMP-1") -> PayrollEvent:
    return PayrollEvent(
        event_id=event_id,
        ts=T0 + timedelta(hours=at),
        type="hire",
        employer=employer,
        employee=f"W-{event_id}",
    )


class Deadline(Detector):
    """Test detector: each hire asks for a timer ``delay`` seconds after it; the timer alerts.

    It records what it saw, so tests can check when (in event time) timers fired.
    """

    kind = "salary_arrears"
    stream = "payroll"

    def __init__(self, delay: float = 2 * HOUR) -> None:
        self.delay = delay
        # (key, ctx.due, ctx.watermark): which timer fired, for when, at which watermark
        self.fired: list[tuple[Hashable, float, float]] = []

    def update(self, event: PayrollEvent, ctx: Context) -> list[Alert]:
        ctx.schedule(ctx.ts + self.delay, (event.employer, event.event_id))
        return []

    def on_timer(self, key: Hashable, ctx: Context) -> list[Alert]:
        self.fired.append((key, ctx.due, ctx.watermark))
        employer, event_id = key
        return [
            make_alert(
                kind=self.kind,
                entity=employer,
                finding=event_id,
                ts=datetime.fromtimestamp(ctx.ts, UTC),
                severity="warning",
                score=0.5,
                reasons=[f"deadline of {event_id} passed"],
                evidence={},
                event_ids=[event_id],
            )
        ]


class Exploding(Detector):
    """Test detector: raises on the business named BOOM, and in every timer."""

    kind = "repeat_inspection"
    stream = "inspections"

    def update(self, event: Inspection, ctx: Context) -> list[Alert]:
        if event.business == "BOOM":
            raise RuntimeError("boom")
        if event.business == "LATER":
            ctx.schedule(ctx.ts, "later")
        return []

    def on_timer(self, key: Hashable, ctx: Context) -> list[Alert]:
        raise ValueError("timer boom")


class Nowhere(Detector):
    kind = "payment_anomaly"
    stream = "wages"

    def update(self, event: object, ctx: Context) -> list[Alert]:
        return []


# --- duplicates -----------------------------------------------------------------


def test_duplicate_event_id_counts_once():
    engine = Engine([MoratoriumViolation()])
    first = engine.process("inspections", inspection("i-1"))
    again = engine.process("inspections", inspection("i-1"))
    assert (first.outcome, len(first.alerts)) == ("ok", 1)
    assert (again.outcome, again.alerts, again.failures) == ("duplicate", (), ())
    assert engine.tracked_ids("inspections") == 1


def test_an_id_reused_with_other_content_is_a_conflict_and_the_first_stays():
    # Issue 14: an event could take a later real event's id, and the real one was
    # dropped as a duplicate. A redelivery has the same content; another event does not.
    engine = Engine([MoratoriumViolation()])
    first = engine.process("inspections", inspection("i-1", business="BIZ-1"))
    assert first.outcome == "ok" and first.alerts
    assert engine.process("inspections", inspection("i-1", business="BIZ-2")).outcome == (
        "conflict"
    )
    assert engine.process("inspections", inspection("i-1", business="BIZ-1")).outcome == (
        "duplicate"
    )


def test_an_event_a_detector_failed_on_moves_no_clock():
    # Issue 14: the clock also advanced on events whose detectors failed, so one bad
    # event far ahead still made every later real event late.
    engine = Engine([Exploding(), MoratoriumViolation()], allowed_lateness=HOUR)
    assert engine.process("inspections", inspection("i-1", at=0)).outcome == "ok"
    failed = engine.process("inspections", inspection("i-2", at=1000, business="BOOM"))
    assert failed.outcome == "failed"
    assert engine.watermark("inspections") == (T0 + timedelta(hours=0)).timestamp() - HOUR
    assert engine.process("inspections", inspection("i-3", at=2)).outcome == "ok"


def test_same_event_id_on_two_streams_is_not_a_duplicate():
    engine = Engine([])
    assert engine.process("inspections", inspection("x-1")).outcome == "ok"
    assert engine.process("payroll", hire("x-1")).outcome == "ok"


# --- lateness and watermarks ----------------------------------------------------


def test_event_older_than_the_allowed_lateness_is_late():
    engine = Engine([MoratoriumViolation()], allowed_lateness=24 * HOUR)
    engine.process("inspections", inspection("new", at=48))
    late = engine.process("inspections", inspection("old", at=48 - 24 - 0.5))
    assert (late.outcome, late.alerts) == ("late", ())


def test_event_exactly_at_the_allowed_lateness_is_accepted():
    engine = Engine([MoratoriumViolation()], allowed_lateness=24 * HOUR)
    engine.process("inspections", inspection("new", at=48))
    edge = engine.process("inspections", inspection("edge", at=24))
    assert (edge.outcome, len(edge.alerts)) == ("ok", 1)


def test_out_of_order_events_within_the_lateness_are_accepted():
    engine = Engine([MoratoriumViolation()], allowed_lateness=24 * HOUR)
    outcomes = [
        engine.process("inspections", inspection(f"i-{at}", at=at, business=f"B-{at}"))
        for at in (10, 3, 20, 0, 15)
    ]
    assert [r.outcome for r in outcomes] == ["ok"] * 5
    assert [r.alerts[0].entity for r in outcomes] == ["B-10", "B-3", "B-20", "B-0", "B-15"]


def test_watermark_is_max_event_time_minus_lateness():
    engine = Engine([], allowed_lateness=2 * HOUR)
    assert engine.watermark("inspections") == float("-inf")
    engine.process("inspections", inspection("a", at=10))
    engine.process("inspections", inspection("b", at=5))  # older: does not move it back
    assert engine.watermark("inspections") == T0.timestamp() + 8 * HOUR


def test_watermarks_of_streams_are_independent():
    engine = Engine([MoratoriumViolation()], allowed_lateness=HOUR)
    engine.process("inspections", inspection("far", at=1000))
    assert engine.watermark("payroll") == float("-inf")
    # A payroll event far behind the inspections stream is on time on its own stream.
    assert engine.process("payroll", hire("p-1", at=0)).outcome == "ok"
    # ...and an inspection just as old is late on its.
    assert engine.process("inspections", inspection("old", at=0)).outcome == "late"
    assert engine.watermark("payroll") == T0.timestamp() - HOUR
    assert engine.watermark("inspections") == T0.timestamp() + 999 * HOUR


# --- timers ---------------------------------------------------------------------


def test_timer_fires_once_when_the_watermark_passes_it_and_not_before():
    detector = Deadline(delay=2 * HOUR)
    engine = Engine([detector], allowed_lateness=HOUR)
    assert engine.process("payroll", hire("h-1", at=0)).alerts == ()  # timer at 2 h
    assert engine.pending_timers("payroll") == 1
    # Watermark at 2.9 - 1 = 1.9 h: not yet.
    assert engine.process("payroll", hire("h-2", at=2.9, employer="E-2")).alerts == ()
    assert detector.fired == []
    # Watermark at 3 - 1 = 2 h: exactly due.
    result = engine.process("payroll", hire("h-3", at=3, employer="E-3"))
    assert [a.event_ids for a in result.alerts] == [["h-1"]]
    # Stamped with the event time at which it could be decided (the 3 h event that moved
    # the watermark), not the deadline: time to detect must include the lateness wait.
    assert result.alerts[0].ts == T0 + timedelta(hours=3)
    assert detector.fired == [
        (("EMP-1", "h-1"), T0.timestamp() + 2 * HOUR, T0.timestamp() + 2 * HOUR)
    ]
    # Never again, however far the watermark moves (h-2 due at 4.9 h, h-3 at 5 h).
    later = [engine.process("payroll", hire(f"x-{i}", at=6 + i)) for i in range(3)]
    assert [[a.event_ids[0] for a in r.alerts] for r in later] == [["h-2", "h-3"], [], []]
    assert [key[1] for key, _, _ in detector.fired] == ["h-1", "h-2", "h-3"]
    assert engine.pending_timers("payroll") == 3  # x-0..x-2, due at 8, 9 and 10 h


def test_timers_fire_in_event_time_order_not_schedule_order():
    engine = Engine([Deadline(delay=HOUR)], allowed_lateness=10 * HOUR)
    for event_id, at in [("c", 5), ("a", 1), ("b", 3), ("a2", 1)]:
        assert engine.process("payroll", hire(event_id, at=at)).alerts == ()
    result = engine.process("payroll", hire("z", at=100))
    # Due at 2, 2, 4, 6 h; ties keep the order they were scheduled in. All are decided
    # by the event at 100 h, and stamped with its time.
    assert [a.event_ids[0] for a in result.alerts] == ["a", "a2", "b", "c"]
    assert [a.ts for a in result.alerts] == [T0 + timedelta(hours=100)] * 4
    assert engine.pending_timers("payroll") == 1  # z's own timer


def test_timer_failure_is_counted_and_the_stream_goes_on():
    engine = Engine([Exploding(), MoratoriumViolation()], allowed_lateness=0)
    engine.process("inspections", inspection("l-1", business="LATER"))
    result = engine.process("inspections", inspection("n-1", at=1))
    assert engine.timer_failures == 1
    assert (result.outcome, [a.event_ids for a in result.alerts]) == ("ok", [["n-1"]])
    assert engine.pending_timers("inspections") == 0


# --- failing detectors ----------------------------------------------------------


def test_a_failing_detector_does_not_stop_the_others_or_the_engine():
    engine = Engine([Exploding(), MoratoriumViolation()])
    result = engine.process("inspections", inspection("b-1", business="BOOM"))
    assert result.outcome == "failed"
    assert result.failures == [DetectorFailure("repeat_inspection", "RuntimeError: boom")]
    assert result.failures[0].reason == "detector repeat_inspection failed: RuntimeError: boom"
    # The other detector on the same stream still raised its alert.
    assert [(a.kind, a.entity) for a in result.alerts] == [("moratorium_violation", "BOOM")]
    # And the engine keeps working.
    after = engine.process("inspections", inspection("ok-1", at=1, business="BIZ-9"))
    assert (after.outcome, [a.entity for a in after.alerts]) == ("ok", ["BIZ-9"])
    assert engine.process("inspections", inspection("b-1", business="BOOM")).outcome == (
        "duplicate"
    )


def test_failure_reason_is_bounded():
    failure = DetectorFailure("repeat_inspection", "x" * 1000)
    assert len(failure.reason) == 200


# --- deduplicator ---------------------------------------------------------------


def test_deduplicator_expires_whole_hours():
    d = Deduplicator()
    assert d.add("a", 10.0) == d.add("b", 3599.0) == d.add("c", 3600.0) == "new"
    assert d.add("a", 10.0) == "duplicate"
    d.expire(3599.0)  # hour 0 has not ended yet
    assert len(d) == 3
    d.expire(3600.0)  # now it has
    assert len(d) == 1
    assert d.add("a", 10.0) == "new"  # forgotten, so new again
    assert d.add("c", 3600.0) == "duplicate"
    assert d.evicted == 0  # expiry is not eviction


def test_deduplicator_memory_is_bounded():
    max_ids = 100
    d = Deduplicator(max_ids=max_ids)
    per_hour = 7
    total = 10 * max_ids
    for i in range(total):
        assert d.add(f"e-{i}", (i // per_hour) * DEDUP_BUCKET_SECONDS) == "new"
        assert len(d) <= max_ids
    assert len(d) >= max_ids - per_hour  # only whole (oldest) hours were dropped
    assert d.evicted == total - len(d)
    # The newest ids are still remembered; the oldest were forgotten.
    assert d.add(f"e-{total - 1}", (total - 1) // per_hour * DEDUP_BUCKET_SECONDS) != "new"
    assert d.add("e-0", 0.0) == "new"


def test_deduplicator_bound_holds_for_ids_out_of_time_order():
    d = Deduplicator(max_ids=50)
    for i in range(500):
        d.add(f"e-{i}", ((i * 37) % 23) * DEDUP_BUCKET_SECONDS)
        assert len(d) <= 50
    assert d.evicted + len(d) == 500


def test_engine_forgets_ids_once_they_can_only_come_back_late():
    engine = Engine([], allowed_lateness=HOUR)
    for i in range(50):
        engine.process("payroll", hire(f"h-{i}", at=i))
    # Only ids within about two lateness spans (plus the hour bucket) are kept.
    assert engine.tracked_ids("payroll") <= 4
    # A redelivered old id is therefore late, not accepted twice.
    assert engine.process("payroll", hire("h-0", at=0)).outcome == "late"


def test_engine_dedup_ceiling():
    engine = Engine([], dedup_max_ids=20)
    for i in range(200):
        engine.process("payroll", hire(f"h-{i}", at=i / 100))
    assert engine.tracked_ids("payroll") <= 20


# --- alert ids ------------------------------------------------------------------


def test_alert_id_is_deterministic_and_stable_across_releases():
    first = alert_id("moratorium_violation", "BIZ-1", "in-1", "critical")
    assert first == alert_id("moratorium_violation", "BIZ-1", "in-1", "critical")
    # Pinned: consumers de-duplicate on ids, so changing how they are derived
    # would make a replay look like new alerts.
    assert first == "016f6dcde277e4c50ca91b2f3d29c217"


def test_alert_id_differs_by_severity_and_by_every_part():
    base = ("salary_arrears", "EMP-1", "2021-02", "warning")
    ids = {
        alert_id(*base),
        alert_id("salary_arrears", "EMP-1", "2021-02", "critical"),
        alert_id("mass_layoff", "EMP-1", "2021-02", "warning"),
        alert_id("salary_arrears", "EMP-2", "2021-02", "warning"),
        alert_id("salary_arrears", "EMP-1", "2021-03", "warning"),
        # Parts are separated, so shifting characters between them changes the id.
        alert_id("salary_arrears", "EMP-12", "021-02", "warning"),
    }
    assert len(ids) == 6
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


# --- snapshot and restore -------------------------------------------------------


def mixed_stream() -> list[tuple[str, object]]:
    """Inspections and payroll, with duplicates, id conflicts, late events, failures
    and timers."""

    def visit(i: int, **changes) -> Inspection:
        business = "BOOM" if i % 9 == 4 else f"BIZ-{i % 5}"
        size = "medium" if i % 4 == 3 else "micro"
        return inspection(f"i-{i}", at=i * 0.75, business=business, size=size, **changes)

    events: list[tuple[str, object]] = []
    for i in range(40):
        at = i * 0.75
        events.append(("inspections", visit(i)))
        events.append(("payroll", hire(f"h-{i}", at=at, employer=f"EMP-{i % 3}")))
        if i % 6 == 5:  # redelivery of an earlier event, possibly from before the snapshot
            events.append(("inspections", visit(i - 5)))
            events.append(
                ("payroll", hire(f"h-{i - 3}", at=(i - 3) * 0.75, employer=f"EMP-{i % 3}"))
            )
        if i % 10 == 7:  # another event under an earlier one's id
            events.append(("inspections", visit(i - 2, basis="complaint")))
        if i % 7 == 6:  # out of order, and late by more than the lateness
            events.append(("inspections", inspection(f"old-{i}", at=at - 10)))
            events.append(("payroll", hire(f"o-{i}", at=at - 1.5)))
    return events


def make_engine() -> Engine:
    return Engine(
        [Exploding(), MoratoriumViolation(), Deadline(delay=1.5 * HOUR)],
        allowed_lateness=2 * HOUR,
    )


def summarise(result) -> tuple[str, list[Alert], list[DetectorFailure]]:
    return (result.outcome, list(result.alerts), list(result.failures))


def test_snapshot_restore_mid_stream_gives_exactly_the_same_results():
    events = mixed_stream()
    cut = len(events) // 2

    unbroken = make_engine()
    expected = [summarise(unbroken.process(s, e)) for s, e in events]

    first = make_engine()
    for stream, event in events[:cut]:
        first.process(stream, event)
    assert first.pending_timers("payroll") > 0  # the snapshot must carry timers
    assert first.tracked_ids("inspections") > 0  # ...and duplicate memory
    blob = first.snapshot()
    del first

    restored = Engine.restore(blob)
    got = [summarise(restored.process(s, e)) for s, e in events[cut:]]
    assert got == expected[cut:]

    # The stream exercises what the checkpoint must carry.
    outcomes = {outcome for outcome, _, _ in expected[cut:]}
    assert outcomes == {"ok", "duplicate", "conflict", "late", "failed"}
    assert any(a.kind == "salary_arrears" for _, alerts, _ in expected[cut:] for a in alerts)
    assert restored.timer_failures == unbroken.timer_failures


def test_restored_engine_keeps_its_settings():
    engine = Engine([MoratoriumViolation()], allowed_lateness=123.0, dedup_max_ids=77)
    restored = Engine.restore(engine.snapshot())
    assert (restored.allowed_lateness, restored.dedup_max_ids) == (123.0, 77)
    assert [type(d) for d in restored.detectors] == [MoratoriumViolation]


@pytest.mark.parametrize(
    "blob",
    [b"", b"garbage", b"\x80\x05garbage", pickle.dumps({"not": "an engine"})],
    ids=["empty", "text", "broken-pickle", "other-object"],
)
def test_restore_of_garbage_raises_snapshot_error(blob: bytes):
    with pytest.raises(SnapshotError) as info:
        Engine.restore(blob)
    assert isinstance(info.value, KuzetError)
    assert "snapshot" in str(info.value)


def test_snapshot_error_is_a_kuzet_error():
    assert issubclass(SnapshotError, KuzetError)


def test_detector_on_an_unknown_stream_is_refused():
    with pytest.raises(KuzetError) as info:
        Engine([MoratoriumViolation(), Nowhere()])
    assert "unknown lane 'wages'" in str(info.value)
    assert "payments, payroll, inspections" in str(info.value)
