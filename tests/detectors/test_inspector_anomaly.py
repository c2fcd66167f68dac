"""``inspector_anomaly``: an inspector far from the peers of its own authority.

The worlds here are small and built by hand: honest inspectors doing a steady
day's work, and one inspector who differs in one plain way (volume, visits to
small businesses during the moratorium, revisits). What should stand out is
worked out from the contract and the detector's documented thresholds.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from detectors.base import alert_id
from detectors.events import Alert, Inspection
from detectors.inspections.inspector_anomaly import InspectorAnomaly
from tests.detectors.support import run, validate_alert

KIND = "inspector_anomaly"
#: 09:00 in Almaty (UTC+6 then): inside the moratorium [2020-01-01, 2023-01-01).
IN_MORATORIUM = datetime(2021, 3, 1, 3, tzinfo=UTC)
#: The same hour two and a half years later, after the moratorium.
AFTER_MORATORIUM = datetime(2023, 6, 1, 3, tzinfo=UTC)
PEERS = [f"P-{i}" for i in range(6)]


def inspection(
    event_id: str,
    ts: datetime,
    inspector: str,
    authority: str = "AUTH-A",
    business: str | None = None,
    size: str = "large",
    basis: str = "routine",
) -> Inspection:
    return Inspection(
        event_id=event_id,
        ts=ts,
        business=business or f"B-{event_id}",  # a fresh business unless told
        business_size=size,
        authority=authority,
        inspector=inspector,
        kind="scheduled" if basis == "routine" else "unscheduled",
        basis=basis,
    )


def shifts(
    start: datetime,
    inspectors: dict[str, int],
    days: Iterable[int],
    authority: str = "AUTH-A",
    size: str = "large",
    basis: str = "routine",
) -> list[Inspection]:
    """``per_day`` inspections of fresh businesses by each inspector on each day."""
    events = []
    for day in days:
        for index, (name, per_day) in enumerate(sorted(inspectors.items())):
            for k in range(per_day):
                ts = start + timedelta(days=day, minutes=25 * k + index)
                event_id = f"{authority}-{name}-{day}-{k}"
                events.append(inspection(event_id, ts, name, authority, size=size, basis=basis))
    return events


def extra(
    start: datetime,
    inspector: str,
    days: Iterable[int],
    size: str = "large",
    basis: str = "routine",
    business: str | None = None,
    authority: str = "AUTH-A",
) -> list[Inspection]:
    """One additional inspection by ``inspector`` at 14:30 local on each of ``days``."""
    return [
        inspection(
            f"x-{inspector}-{day}",
            start + timedelta(days=day, hours=5, minutes=30),
            inspector,
            authority,
            business=business,
            size=size,
            basis=basis,
        )
        for day in days
    ]


def feed(detector: InspectorAnomaly, events: list[Inspection]) -> list[Alert]:
    return run(detector, sorted(events, key=lambda e: (e.ts, e.event_id)))


def small(**overrides: float) -> InspectorAnomaly:
    """A detector with a short warm-up, for small worlds."""
    params = {"warm_up_days": 10, "min_peers": 5, **overrides}
    return InspectorAnomaly(**params)


# --- volume --------------------------------------------------------------------------


def volume_world(rogue_per_day: int, days: int = 40) -> list[Inspection]:
    workload = dict.fromkeys(PEERS, 3) | {"ROGUE": rogue_per_day}
    return shifts(AFTER_MORATORIUM, workload, range(days))


def test_five_times_the_peers_volume_alerts_after_warm_up():
    alerts = feed(small(), volume_world(15))
    assert {a.entity for a in alerts} == {"ROGUE"}
    first = alerts[0]
    assert first.evidence["standing_out"] == ["volume"]
    assert first.evidence["authority"] == "AUTH-A"
    assert first.evidence["peers"] == 6
    assert first.entity_type == "inspector" and first.domain == "inspections"
    # Warm-up: 10 days from the first event (day 0 at 09:00 local); the rogue works daily.
    warm = AFTER_MORATORIUM + timedelta(days=10)
    assert warm <= first.ts < warm + timedelta(days=1)
    # 10 days of the peers: 30 inspections each; the rogue has 150 and more.
    assert first.evidence["peer_medians"]["volume"] == 30.0
    assert first.evidence["figures"]["volume"] >= 150.0


def test_four_times_the_peers_volume_alerts_too():
    alerts = feed(small(), volume_world(12))
    assert {a.entity for a in alerts} == {"ROGUE"}
    assert alerts[0].evidence["standing_out"] == ["volume"]


def test_nothing_is_said_before_warm_up():
    events = [e for e in volume_world(15) if e.ts < AFTER_MORATORIUM + timedelta(days=9.9)]
    assert feed(small(), events) == []
    # With a longer warm-up the same 40 days alert later.
    alerts = feed(small(warm_up_days=25), volume_world(15))
    assert alerts and alerts[0].ts >= AFTER_MORATORIUM + timedelta(days=25)


def test_one_and_a_half_times_the_peers_volume_does_not_alert():
    workload = dict.fromkeys(PEERS, 4) | {"BUSY": 6}
    assert feed(small(), shifts(AFTER_MORATORIUM, workload, range(60))) == []


def test_peers_are_the_same_authority_only():
    # AUTH-A: the rogue and 3 others (3 peers < min_peers 5); AUTH-B: ten honest inspectors.
    events = shifts(AFTER_MORATORIUM, {"P-0": 3, "P-1": 3, "P-2": 3, "ROGUE": 15}, range(60))
    honest = {f"Q-{i}": 3 for i in range(10)}
    events += shifts(AFTER_MORATORIUM, honest, range(60), authority="AUTH-B")
    assert feed(small(), events) == []
    # The same rogue among five peers of its own authority is flagged.
    events += shifts(AFTER_MORATORIUM, {"P-3": 3, "P-4": 3}, range(60))
    alerts = feed(small(), events)
    assert {a.entity for a in alerts} == {"ROGUE"}
    assert alerts[0].evidence["peers"] == 5


def test_inspectors_idle_for_a_whole_window_are_no_peers():
    # Guards a bug fixed with this test: peers kept the figures of their last visit
    # forever, so three inspectors who stopped work on day 19 still counted (and
    # weighed in the median) on day 70, although the yardstick is the inspectors
    # active in the window.
    events = shifts(AFTER_MORATORIUM, {"P-0": 3, "P-1": 3, "P-2": 3}, range(90))
    events += shifts(AFTER_MORATORIUM, {"R-0": 3, "R-1": 3, "R-2": 3}, range(20))
    events += shifts(AFTER_MORATORIUM, {"ROGUE": 15}, range(55, 90))
    assert feed(small(), events) == []  # 3 active peers < min_peers 5
    alerts = feed(small(min_peers=3), events)
    assert {a.entity for a in alerts} == {"ROGUE"}
    assert alerts[0].evidence["peers"] == 3
    assert alerts[0].evidence["peer_medians"]["volume"] == 90.0


def test_an_inspector_is_not_its_own_peer_with_the_default_parameters():
    # Guards a fixed bug: the rogue's own figures were part of the yardstick and
    # widened its interquartile range. An authority of 5 honest inspectors and a
    # rogue at 5x volume, default warm-up (30 days) and min_peers (5).
    workload = {f"P-{i}": 3 for i in range(5)} | {"ROGUE": 15}
    alerts = feed(InspectorAnomaly(), shifts(AFTER_MORATORIUM, workload, range(45)))
    assert {a.entity for a in alerts} == {"ROGUE"}
    first = alerts[0]
    assert first.evidence["peers"] == 5  # the five others, not six
    assert first.evidence["peer_medians"]["volume"] == 90.0  # 30 days x 3
    assert first.evidence["standing_out"] == ["volume"]
    warm = AFTER_MORATORIUM + timedelta(days=30)
    assert warm <= first.ts < warm + timedelta(days=1)


# --- moratorium violations -------------------------------------------------------------


def violations_world(start: datetime, n_small: int) -> list[Inspection]:
    """Seven inspectors, 3 a day to large businesses; the rogue adds ``n_small`` visits
    to small businesses on a routine ground, one a day from day 35."""
    events = shifts(start, dict.fromkeys([*PEERS, "ROGUE"], 3), range(50))
    events += extra(start, "ROGUE", range(35, 35 + n_small), size="small")
    return events


def test_five_violations_in_the_window_stand_out():
    alerts = feed(small(), violations_world(IN_MORATORIUM, 5))
    assert len(alerts) == 1
    [alert] = alerts
    assert alert.entity == "ROGUE"
    assert alert.evidence["standing_out"] == ["violations"]
    assert alert.evidence["figures"]["violations"] == 5.0
    assert alert.evidence["peer_medians"]["violations"] == 0.0
    assert alert.severity == "warning"
    # Raised by the fifth violation (day 39), not before.
    assert alert.event_ids == ["x-ROGUE-39"]


def test_four_violations_are_not_enough():
    assert feed(small(), violations_world(IN_MORATORIUM, 4)) == []


def test_the_same_visits_after_the_moratorium_are_not_violations():
    assert feed(small(), violations_world(AFTER_MORATORIUM, 5)) == []
    assert feed(small(), violations_world(AFTER_MORATORIUM, 7)) == []


# --- repeat visits ---------------------------------------------------------------------


def revisit_world(basis: str, revisits: int) -> list[Inspection]:
    """The rogue visits one business on a routine ground on day 35 and again on later days."""
    events = shifts(AFTER_MORATORIUM, dict.fromkeys([*PEERS, "ROGUE"], 3), range(50))
    events += extra(AFTER_MORATORIUM, "ROGUE", [35], business="B-TARGET")
    events += extra(
        AFTER_MORATORIUM, "ROGUE", range(36, 36 + revisits), basis=basis, business="B-TARGET"
    )
    return events


def test_everyday_revisits_of_the_same_business_stand_out():
    alerts = feed(small(), revisit_world("routine", 4))
    assert [(a.entity, a.evidence["standing_out"]) for a in alerts] == [
        ("ROGUE", ["repeat_visits"])
    ]
    # It stands out at the third repeat visit (3 / 0.75 = z 4), day 38.
    assert alerts[0].evidence["figures"]["repeat_visits"] == 3.0
    assert alerts[0].event_ids == ["x-ROGUE-38"]


def test_three_everyday_revisits_stand_out():
    # Guards a fixed bug: three everyday repeat visits (the documented plain-terms threshold)
    # never alert with the defaults: against peers with none, the spread is floored at 1, so z =
    # 3 < z_alert 4 and the effective threshold is 4 repeat visits
    alerts = feed(small(), revisit_world("routine", 3))
    assert [(a.entity, a.evidence["standing_out"]) for a in alerts] == [
        ("ROGUE", ["repeat_visits"])
    ]


def test_two_everyday_revisits_are_not_enough():
    assert feed(small(), revisit_world("routine", 2)) == []


def test_follow_up_revisits_are_not_repeats():
    assert feed(small(), revisit_world("follow_up", 8)) == []


# --- exempt grounds, and a whole authority moving at once ------------------------------


def test_an_authority_visiting_small_businesses_on_exempt_grounds_raises_nothing():
    fire = {f"F-{i}": 3 for i in range(8)}
    events = shifts(
        IN_MORATORIUM,
        fire,
        range(60),
        authority="FIRE",
        size="small",
        basis="threat_to_life_health",
    )
    assert feed(small(), events) == []


def test_exempt_visits_to_small_businesses_are_not_everyday_ones():
    # One fire inspector on life-safety grounds among peers who visit large businesses:
    # if exempt visits counted, its share of small-business visits (100% against 0%)
    # and its "violations" (3 a day in 2021) would stand out.
    events = shifts(IN_MORATORIUM, dict.fromkeys(PEERS, 3), range(60), authority="FIRE")
    events += shifts(
        IN_MORATORIUM,
        {"F-LIFE": 3},
        range(60),
        authority="FIRE",
        size="micro",
        basis="threat_to_life_health",
    )
    assert feed(small(), events) == []


def test_a_whole_authority_switching_at_once_raises_nothing():
    # Guards a fixed bug: rolling quantiles over past inspector-days lagged when a
    # whole authority changed pattern at once (the moratorium's end) and flagged 88
    # of 100 honest inspectors in a simulated world. Default parameters.
    rng = random.Random(2023)
    start = datetime(2022, 11, 1, 3, tzinfo=UTC)
    end_of_moratorium = datetime(2023, 1, 1, tzinfo=UTC)
    events = []
    for day in range(120):
        for i in range(12):
            for k in range(rng.randint(2, 5)):
                ts = start + timedelta(days=day, minutes=25 * k + i)
                after = ts >= end_of_moratorium
                size = rng.choice(["micro", "small"]) if after and rng.random() < 0.7 else "large"
                events.append(inspection(f"{day}-{i}-{k}", ts, f"I-{i}", size=size))
    # The switch is real: 70% of the visits after it go to small businesses, lawfully.
    later = [e for e in events if e.ts >= end_of_moratorium]
    assert 0.65 < sum(e.business_size != "large" for e in later) / len(later) < 0.75
    assert feed(InspectorAnomaly(), events) == []
    assert feed(small(), events) == []


def lax_authority(seed: int, small_share: float, businesses: int | None) -> list[Inspection]:
    """Eight inspectors drawn from one distribution: 3-4 routine visits a day in 2021,
    ``small_share`` of them to small businesses (violations), to fresh businesses or
    to a pool of ``businesses`` (chance revisits)."""
    rng = random.Random(seed)
    events = []
    for day in range(90):
        for i in range(8):
            for k in range(rng.randint(3, 4)):
                ts = IN_MORATORIUM + timedelta(days=day, minutes=25 * k + i)
                size = "small" if rng.random() < small_share else "large"
                business = f"B-{rng.randrange(businesses)}" if businesses else None
                events.append(
                    inspection(f"{day}-{i}-{k}", ts, f"I-{i}", business=business, size=size)
                )
    return events


def test_inspectors_drawn_from_one_distribution_are_not_flagged_on_counts():
    # Guards a fixed bug: counts (violations, repeat visits) are judged with a spread of
    # max(IQR/1.349, 1) over 5-7 peers and an absolute bar (5, 3), so when the whole authority's
    # base rate is ~25 a month, Poisson noise alone flags 2-4 of 8 identical inspectors; a floor
    # of sqrt(median) on their spread removes it
    # Every inspector of a lax authority violates the moratorium at the same rate
    # (each gets its moratorium_violation alerts); none stands out from its peers.
    assert feed(InspectorAnomaly(), lax_authority(0, 0.25, None)) == []
    # Chance revisits within a pool of 300 businesses, the same for everyone.
    assert feed(InspectorAnomaly(), lax_authority(0, 0.0, 300)) == []


# --- escalation, explanation, contract --------------------------------------------------


def escalation_world() -> list[Inspection]:
    """The rogue commits 5 violations (days 35-39), then revisits a business 4 times."""
    events = violations_world(IN_MORATORIUM, 5)
    events += extra(IN_MORATORIUM, "ROGUE", [40], business="B-TARGET")
    events += [
        inspection(
            f"r-{day}", IN_MORATORIUM + timedelta(days=day, hours=6), "ROGUE", business="B-TARGET"
        )
        for day in range(41, 45)
    ]
    return events


def test_two_figures_standing_out_escalate_to_critical_once():
    alerts = feed(small(), escalation_world())
    assert [a.severity for a in alerts] == ["warning", "critical"]
    warning, critical = alerts
    assert warning.evidence["standing_out"] == ["violations"]
    assert critical.evidence["standing_out"] == ["violations", "repeat_visits"]
    assert critical.event_ids == ["r-43"]  # the third repeat visit
    # One finding (named after the event that opened it) at two severities.
    assert warning.alert_id == alert_id(KIND, "ROGUE", "x-ROGUE-39", "warning")
    assert critical.alert_id == alert_id(KIND, "ROGUE", "x-ROGUE-39", "critical")
    assert critical.score >= warning.score


def test_reasons_name_the_authority_the_peers_and_the_figures():
    [alert] = feed(small(), violations_world(IN_MORATORIUM, 5))
    # 5 violations against a median of 0; spread floored at 1, so z = 5.
    assert alert.reasons == [
        "5 moratorium violations in 30 days against 0 among 6 AUTH-A inspectors (z = 6.7)"
    ]
    volume = feed(small(), volume_world(15))[0]
    [reason] = volume.reasons
    assert reason.startswith(
        f"{volume.evidence['figures']['volume']:.0f} inspections in 30 days against a median "
        "of 30 among 6 AUTH-A inspectors (z = "
    )


def test_alerts_validate_against_the_alert_schema():
    alerts = feed(small(), escalation_world()) + feed(small(), volume_world(15))
    assert len(alerts) >= 3
    for alert in alerts:
        doc = validate_alert(alert)
        assert doc["kind"] == KIND and doc["entity_type"] == "inspector"


def mixed_world() -> list[Inspection]:
    """Two authorities, honest inspectors with varying days, and three rogues."""
    rng = random.Random(11)
    events = []
    for authority in ("AUTH-A", "AUTH-B"):
        for day in range(70):
            for i in range(8):
                name = f"{authority}-I{i}"
                for k in range(rng.randint(2, 5)):
                    ts = IN_MORATORIUM + timedelta(days=day, minutes=25 * k + i)
                    size = rng.choice(["medium", "large", "large", "small"])
                    basis = "routine" if size != "small" else "threat_to_life_health"
                    events.append(
                        inspection(f"{name}-{day}-{k}", ts, name, authority, None, size, basis)
                    )
    events += shifts(IN_MORATORIUM, {"BUSY": 16}, range(30, 70))
    events += extra(IN_MORATORIUM, "AUTH-B-I0", range(40, 48), size="micro")
    events += extra(IN_MORATORIUM, "AUTH-B-I1", range(50, 56), business="B-X")
    return sorted(events, key=lambda e: (e.ts, e.event_id))


def test_pickle_round_trip_mid_stream_gives_the_same_later_alerts():
    events = mixed_world()
    half = len(events) // 2
    detector = small()
    run(detector, events[:half])
    copy = pickle.loads(pickle.dumps(detector))
    later = run(detector, events[half:])
    assert {a.entity for a in later} >= {"BUSY", "AUTH-B-I0", "AUTH-B-I1"}
    assert run(copy, events[half:]) == later


def test_fresh_runs_are_identical():
    first = run(small(), mixed_world())
    assert first == run(small(), mixed_world())
    assert len({a.alert_id for a in first}) == len(first)


def test_the_detector_does_not_mutate_its_input():
    events = mixed_world()
    copies = [pickle.loads(pickle.dumps(event)) for event in events]
    run(small(), events)
    assert events == copies


# --- an inspector's own pace -----------------------------------------------------------


def turning_world(before: int, after: int, turn_day: int = 60, days: int = 100):
    """Peers at 3 a day throughout; ROGUE at ``before`` a day, then ``after``."""
    events = shifts(AFTER_MORATORIUM, dict.fromkeys(PEERS, 3), range(days))
    events += shifts(AFTER_MORATORIUM, {"ROGUE": before}, range(turn_day))
    events += shifts(AFTER_MORATORIUM, {"ROGUE": after}, range(turn_day, days))
    return events


def test_a_slow_inspector_tripling_its_pace_to_twice_the_peers_alerts():
    alerts = feed(small(), turning_world(before=2, after=6))
    assert {a.entity for a in alerts} == {"ROGUE"}
    first = alerts[0]
    # 6 a day is twice the peers' 3, and three times its own 2 of the days before.
    assert "3.0 times its own pace" in first.reasons[0]
    # Twice the peers' month takes 30 days at the new pace... (day 60 + 30 at most)
    assert first.ts < AFTER_MORATORIUM + timedelta(days=91)


def test_working_at_twice_the_peers_from_the_start_is_habit_not_a_turn():
    assert feed(small(), turning_world(before=6, after=6)) == []


def test_doubling_its_own_pace_is_not_a_turn():
    # 3 -> 6 a day: twice the peers' and twice its own pace, under the 2.5x bar.
    assert feed(small(), turning_world(before=3, after=6)) == []


def test_a_turn_needs_three_weeks_of_its_own_record_before_the_window():
    # Turning on day 15: when its 30 days at the new pace are full, the 15 days before
    # are too few to judge; by the time 21 are, they include the new pace.
    assert feed(small(), turning_world(before=2, after=6, turn_day=15)) == []
    # The same turn on day 40 is judged (39 days of the old pace before the window).
    assert feed(small(), turning_world(before=2, after=6, turn_day=40))
