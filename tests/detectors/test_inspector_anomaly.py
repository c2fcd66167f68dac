"""``inspector_anomaly``: an inspector against the law at that moment, and against peers.

The worlds here are small and built by hand: honest inspectors doing a steady
day's work, and one inspector who differs in one plain way (prohibited visits,
returns to a business, volume), around the moratorium's start and end too.
What should stand out is worked out from the contract and the detector's
documented thresholds (four prohibited inspections in 60 days; three everyday
returns; three times the peers' median volume, beyond Poisson chance).
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
#: 09:00 in Almaty on 1 November 2019, two months before the moratorium's start.
BEFORE_START = datetime(2019, 11, 1, 3, tzinfo=UTC)
#: 09:00 in Almaty on 1 November 2022, two months before the moratorium's end.
BEFORE_END = datetime(2022, 11, 1, 3, tzinfo=UTC)
START = datetime(2019, 12, 31, 18, tzinfo=UTC)  # local midnight of 2020-01-01
END = datetime(2022, 12, 31, 18, tzinfo=UTC)  # local midnight of 2023-01-01
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
    params = {"warm_up_days": 10, **overrides}
    return InspectorAnomaly(**params)


def entities(alerts: list[Alert]) -> set[str]:
    return {a.entity for a in alerts}


# --- against the law at that moment: prohibited inspections -------------------------------


def violations_world(start: datetime, n_small: int) -> list[Inspection]:
    """Seven inspectors, 3 a day to large businesses; the rogue adds ``n_small`` visits
    to small businesses on a routine ground, one a day from day 35."""
    events = shifts(start, dict.fromkeys([*PEERS, "ROGUE"], 3), range(50))
    events += extra(start, "ROGUE", range(35, 35 + n_small), size="small")
    return events


def test_four_prohibited_inspections_in_the_window_stand_out():
    alerts = feed(small(), violations_world(IN_MORATORIUM, 4))
    assert len(alerts) == 1
    [alert] = alerts
    assert alert.entity == "ROGUE"
    assert alert.evidence["standing_out"] == ["violations"]
    assert alert.evidence["figures"]["violations"] == 4.0
    assert alert.severity == "warning"
    assert alert.entity_type == "inspector" and alert.domain == "inspections"
    # Raised by the fourth prohibited inspection (day 38), not before.
    assert alert.event_ids == ["x-ROGUE-38"]


def test_three_are_slips():
    assert feed(small(), violations_world(IN_MORATORIUM, 3)) == []


def test_eight_are_critical():
    alerts = feed(small(), violations_world(IN_MORATORIUM, 8))
    assert [(a.severity, a.event_ids) for a in alerts] == [
        ("warning", ["x-ROGUE-38"]),
        ("critical", ["x-ROGUE-42"]),  # twice min_violations
    ]


def test_the_same_visits_outside_the_moratorium_are_ordinary_work():
    # Guards issue 13's mislabelled "violator": visiting small businesses breaks no rule
    # before the moratorium or after it, however many of them.
    for start in (AFTER_MORATORIUM, datetime(2019, 3, 1, 3, tzinfo=UTC)):
        assert feed(small(), violations_world(start, 4)) == []
        assert feed(small(), violations_world(start, 15)) == []


def test_the_law_needs_no_peers_and_no_warm_up():
    # A lone inspector (no peers at all), four prohibited visits in the first four days.
    events = extra(IN_MORATORIUM, "LONE", range(4), size="micro")
    alerts = feed(InspectorAnomaly(), events)
    assert [(a.entity, a.evidence["peers"], a.event_ids) for a in alerts] == [
        ("LONE", 0, ["x-LONE-3"])
    ]


def test_peers_who_break_the_law_too_are_no_excuse():
    # A lax authority: eight inspectors, a quarter of their visits to small businesses on
    # everyday grounds in 2021. Each breaks the moratorium again and again: each is flagged,
    # although none stands out from the others.
    events = lax_authority(0, 0.25, None)
    assert entities(feed(InspectorAnomaly(), events)) == {f"I-{i}" for i in range(8)}


def test_exempt_visits_to_small_businesses_are_lawful():
    # One fire inspector on life-safety grounds among peers who visit large businesses.
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


def test_follow_ups_of_small_businesses_are_not_exempt():
    # The contract: a follow-up is not an exempt ground, so in the moratorium it is
    # prohibited at a small business like any everyday visit.
    events = violations_world(IN_MORATORIUM, 0)
    events += extra(IN_MORATORIUM, "ROGUE", range(35, 39), size="small", basis="follow_up")
    assert entities(feed(small(), events)) == {"ROGUE"}


# --- across the moratorium's start and end -----------------------------------------------


def edge_world(start: datetime, days: int, who: str, size_before: str, size_after: str, edge):
    """Six peers at 3 a day to large businesses; ``who`` at 3 a day, routine visits to
    ``size_before`` businesses before ``edge`` and ``size_after`` ones from it."""
    events = shifts(start, dict.fromkeys(PEERS, 3), range(days))
    for event in shifts(start, {who: 3}, range(days)):
        size = size_before if event.ts < edge else size_after
        events.append(inspection(event.event_id, event.ts, who, size=size))
    return events


def test_a_habit_carried_over_the_start_is_found_within_days():
    # Issue 13: at the moratorium's start a rogue who kept inspecting small businesses
    # was found only after 110 days. Two months of lawful small-business visits, then the
    # same habit from 1 January 2020: prohibited from its first visit.
    events = edge_world(BEFORE_START, 90, "HABIT", "small", "small", START)
    alerts = feed(InspectorAnomaly(), events)
    assert entities(alerts) == {"HABIT"}
    first = alerts[0]
    assert first.evidence["standing_out"] == ["violations"]
    # Three visits a day from 1 January: the fourth prohibited one is on 2 January.
    assert START < first.ts < START + timedelta(days=2)
    assert first.evidence["figures"]["violations"] == 4.0


def test_a_busy_inspector_moving_to_larger_businesses_at_the_start_is_lawful():
    events = edge_world(BEFORE_START, 120, "MOVER", "small", "large", START)
    assert feed(InspectorAnomaly(), events) == []
    assert feed(small(), events) == []


def test_an_inspector_returning_to_small_businesses_at_the_end_is_lawful():
    events = edge_world(BEFORE_END, 120, "RETURNER", "large", "small", END)
    assert feed(InspectorAnomaly(), events) == []
    assert feed(small(), events) == []


def test_a_habit_stopped_at_the_end_is_counted_only_before_it():
    # Visits to small businesses every day from 24 December 2022: the seven before
    # 1 January (local dates) are prohibited, those after are not.
    events = shifts(BEFORE_END, dict.fromkeys(PEERS, 3), range(90))
    events += extra(BEFORE_END, "LATE", range(53, 80), size="small")
    alerts = feed(small(), events)
    assert entities(alerts) == {"LATE"}
    last = alerts[-1]
    assert last.evidence["figures"]["violations"] <= 8.0
    assert all(a.ts < END for a in alerts)


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


def test_a_pace_learnt_inside_the_moratorium_is_no_yardstick_after_it():
    # Peers at 3 a day throughout; QUIET at 1 a day until the end, then 6.5 a day: 2.2
    # times the peers (under the plain 3x) and 6.5 times its own moratorium pace. Its
    # own pace starts afresh at the edge, so the old one never judges the new.
    events = shifts(BEFORE_END, dict.fromkeys(PEERS, 3), range(200))
    for event in shifts(BEFORE_END, {"QUIET": 7}, range(200)):
        k = int(event.event_id.rsplit("-", 1)[1])
        if k < (1 if event.ts < END else 6) + (event.ts >= END and event.ts.day % 2 == 0):
            events.append(event)
    assert feed(InspectorAnomaly(), events) == []
    # The same jump inside one regime (all after the moratorium) is a turn.
    shifted = [
        inspection(e.event_id, e.ts + timedelta(days=365), e.inspector, size=e.business_size)
        for e in events
    ]
    alerts = feed(InspectorAnomaly(), shifted)
    assert entities(alerts) == {"QUIET"}
    assert "times its own pace" in alerts[0].reasons[0]


# --- visits beyond any plan: returns to the same business ---------------------------------


def revisit_world(basis: str, revisits: int) -> list[Inspection]:
    """The rogue visits one business on a routine ground on day 35 and again on later days."""
    events = shifts(AFTER_MORATORIUM, dict.fromkeys([*PEERS, "ROGUE"], 3), range(50))
    events += extra(AFTER_MORATORIUM, "ROGUE", [35], business="B-TARGET")
    events += extra(
        AFTER_MORATORIUM, "ROGUE", range(36, 36 + revisits), basis=basis, business="B-TARGET"
    )
    return events


def test_three_everyday_returns_stand_out():
    alerts = feed(small(), revisit_world("routine", 3))
    assert [(a.entity, a.evidence["standing_out"]) for a in alerts] == [
        ("ROGUE", ["repeat_visits"])
    ]
    # It stands out at the third return (3 / 0.75 = z 4 against peers with none), day 38.
    assert alerts[0].evidence["figures"]["repeat_visits"] == 3.0
    assert alerts[0].evidence["peer_medians"]["repeat_visits"] == 0.0
    assert alerts[0].event_ids == ["x-ROGUE-38"]


def test_two_everyday_returns_are_not_enough():
    assert feed(small(), revisit_world("routine", 2)) == []


def test_follow_ups_and_exempt_grounds_are_not_returns():
    assert feed(small(), revisit_world("follow_up", 8)) == []
    assert feed(small(), revisit_world("threat_to_life_health", 8)) == []


def test_returns_need_no_peers():
    # A lone inspector hounding one business: the law is the yardstick.
    events = extra(AFTER_MORATORIUM, "LONE", range(4), business="B-TARGET")
    alerts = feed(InspectorAnomaly(), events)
    assert [(a.entity, a.evidence["peers"], a.event_ids) for a in alerts] == [
        ("LONE", 0, ["x-LONE-3"])
    ]


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


def test_chance_returns_that_every_peer_makes_are_not_flagged():
    # Guards a fixed bug: counts judged with a spread of max(IQR/1.349, 1) over 5-7 peers
    # flagged 2-4 of 8 identical inspectors on Poisson noise alone; a floor of
    # sqrt(median) on their spread removes it. Revisits within a pool of 300 businesses,
    # the same for everyone.
    assert feed(InspectorAnomaly(), lax_authority(0, 0.0, 300)) == []


# --- against peers: volume ------------------------------------------------------------------


def volume_world(rogue_per_day: int, days: int = 40) -> list[Inspection]:
    workload = dict.fromkeys(PEERS, 3) | {"ROGUE": rogue_per_day}
    return shifts(AFTER_MORATORIUM, workload, range(days))


def test_five_times_the_peers_volume_alerts_after_warm_up():
    alerts = feed(small(), volume_world(15))
    assert entities(alerts) == {"ROGUE"}
    first = alerts[0]
    assert first.evidence["standing_out"] == ["volume"]
    assert first.evidence["authority"] == "AUTH-A"
    assert first.evidence["peers"] == 6
    # Warm-up: 10 days from the first event (day 0 at 09:00 local); the rogue works daily.
    warm = AFTER_MORATORIUM + timedelta(days=10)
    assert warm <= first.ts < warm + timedelta(days=1)
    # 10 days of the peers: 30 inspections each; the rogue has 150 and more.
    assert first.evidence["peer_medians"]["volume"] == 30.0
    assert first.evidence["figures"]["volume"] >= 150.0


def test_four_times_the_peers_volume_alerts_too():
    alerts = feed(small(), volume_world(12))
    assert entities(alerts) == {"ROGUE"}
    assert alerts[0].evidence["standing_out"] == ["volume"]


def test_nothing_is_said_of_volume_before_warm_up():
    events = [e for e in volume_world(15) if e.ts < AFTER_MORATORIUM + timedelta(days=9.9)]
    assert feed(small(), events) == []
    # With a longer warm-up the same 40 days alert later.
    alerts = feed(small(warm_up_days=25), volume_world(15))
    assert alerts and alerts[0].ts >= AFTER_MORATORIUM + timedelta(days=25)


def test_one_and_a_half_and_two_and_a_half_times_the_peers_volume_do_not_alert():
    for busy in (6, 10):  # peers at 4 a day
        workload = dict.fromkeys(PEERS, 4) | {"BUSY": busy}
        assert feed(small(), shifts(AFTER_MORATORIUM, workload, range(60))) == []


def test_peers_are_the_same_authority_only():
    # AUTH-A: the rogue alone; AUTH-B: ten honest inspectors. No peers, no volume judged.
    events = shifts(AFTER_MORATORIUM, {"ROGUE": 15}, range(60))
    honest = {f"Q-{i}": 3 for i in range(10)}
    events += shifts(AFTER_MORATORIUM, honest, range(60), authority="AUTH-B")
    assert feed(small(), events) == []
    # Two AUTH-A peers (fewer than min_peers): the busiest of them is the yardstick.
    two = events + shifts(AFTER_MORATORIUM, {"P-0": 3, "P-1": 2}, range(60))
    [alert] = feed(small(), two)
    assert alert.entity == "ROGUE" and alert.evidence["peers"] == 2
    assert "times its busiest peer" in alert.reasons[0]
    assert "median" not in alert.reasons[0]  # the yardstick is named once, and rightly
    # Four (min_peers): their median.
    four = two + shifts(AFTER_MORATORIUM, {"P-2": 3, "P-3": 3}, range(60))
    [alert] = feed(small(), four)
    assert alert.evidence["peers"] == 4
    assert "times the peers' median" in alert.reasons[0]


def test_three_times_the_busiest_of_few_peers_is_needed():
    # Two peers at 2 and 4 a day: 2.5 times the busiest is not enough, 3.75 times is.
    base = shifts(AFTER_MORATORIUM, {"P-0": 2, "P-1": 4}, range(60))
    assert feed(small(), base + shifts(AFTER_MORATORIUM, {"BUSY": 10}, range(60))) == []
    assert entities(feed(small(), base + shifts(AFTER_MORATORIUM, {"R": 15}, range(60)))) == {"R"}


def test_inspectors_idle_for_a_whole_window_are_no_peers():
    # Guards a bug fixed with this test: peers kept the figures of their last visit
    # forever, so three inspectors who stopped work on day 19 still counted (and
    # weighed in the median) on day 90, although the yardstick is the inspectors
    # active in the window (60 days).
    events = shifts(AFTER_MORATORIUM, {"P-0": 3, "P-1": 3, "P-2": 3}, range(150))
    events += shifts(AFTER_MORATORIUM, {"R-0": 3, "R-1": 3, "R-2": 3}, range(20))
    events += shifts(AFTER_MORATORIUM, {"ROGUE": 15}, range(90, 150))
    alerts = feed(small(min_peers=3), events)
    assert entities(alerts) == {"ROGUE"}
    assert alerts[0].evidence["peers"] == 3
    assert alerts[0].evidence["peer_medians"]["volume"] == 180.0  # 60 days x 3


def test_an_inspector_is_not_its_own_peer_with_the_default_parameters():
    # Guards a fixed bug: the rogue's own figures were part of the yardstick and
    # widened its interquartile range. An authority of 5 honest inspectors and a
    # rogue at 5x volume, default warm-up (30 days) and min_peers (4).
    workload = {f"P-{i}": 3 for i in range(5)} | {"ROGUE": 15}
    alerts = feed(InspectorAnomaly(), shifts(AFTER_MORATORIUM, workload, range(45)))
    assert entities(alerts) == {"ROGUE"}
    first = alerts[0]
    assert first.evidence["peers"] == 5  # the five others, not six
    assert first.evidence["peer_medians"]["volume"] == 90.0  # 30 days x 3
    assert first.evidence["standing_out"] == ["volume"]
    warm = AFTER_MORATORIUM + timedelta(days=30)
    assert warm <= first.ts < warm + timedelta(days=1)


def test_a_yardstick_of_few_inspections_judges_nothing():
    # Peers at one visit every third day: 13 in 40 days, under 20; the rogue at 2 a day
    # (six times as many) is not judged on so little.
    events = [e for e in shifts(AFTER_MORATORIUM, dict.fromkeys(PEERS, 1), range(40))]
    events = [e for e in events if int(e.event_id.split("-")[-2]) % 3 == 0]
    events += shifts(AFTER_MORATORIUM, {"ROGUE": 2}, range(40))
    assert feed(small(), events) == []


# --- an inspector's own pace -----------------------------------------------------------


def turning_world(before: int, after: int, turn_day: int = 60, days: int = 160):
    """Peers at 3 a day throughout; ROGUE at ``before`` a day, then ``after``."""
    events = shifts(AFTER_MORATORIUM, dict.fromkeys(PEERS, 3), range(days))
    events += shifts(AFTER_MORATORIUM, {"ROGUE": before}, range(turn_day))
    events += shifts(AFTER_MORATORIUM, {"ROGUE": after}, range(turn_day, days))
    return events


def test_a_slow_inspector_tripling_its_pace_to_twice_the_peers_alerts():
    alerts = feed(small(), turning_world(before=2, after=6))
    assert entities(alerts) == {"ROGUE"}
    first = alerts[0]
    # 6 a day is twice the peers' 3, and three times its own 2 of the days before.
    assert "3.0 times its own pace" in first.reasons[0]
    # Twice the peers' window takes a window (60 days) at the new pace.
    assert first.ts < AFTER_MORATORIUM + timedelta(days=121)


def test_working_at_twice_the_peers_from_the_start_is_habit_not_a_turn():
    assert feed(small(), turning_world(before=6, after=6)) == []


def test_doubling_its_own_pace_is_not_a_turn():
    # 3 -> 6 a day: twice the peers' and twice its own pace, under the 2.5x bar.
    assert feed(small(), turning_world(before=3, after=6)) == []


def test_a_turn_needs_three_weeks_of_its_own_record_before_the_window():
    # Turning on day 15: when its window at the new pace is full, the 15 days before
    # are too few to judge; by the time 21 are, they include the new pace.
    assert feed(small(), turning_world(before=2, after=6, turn_day=15)) == []
    # The same turn on day 40 is judged (39 days of the old pace before the window).
    assert feed(small(), turning_world(before=2, after=6, turn_day=40))


# --- escalation, explanation, contract --------------------------------------------------


def escalation_world() -> list[Inspection]:
    """The rogue commits 4 violations (days 35-38), then revisits a business 4 times."""
    events = violations_world(IN_MORATORIUM, 4)
    events += extra(IN_MORATORIUM, "ROGUE", [40], business="B-TARGET")
    events += [
        inspection(
            f"r-{day}", IN_MORATORIUM + timedelta(days=day, hours=6), "ROGUE", business="B-TARGET"
        )
        for day in range(41, 45)
    ]
    return events


def test_two_figures_standing_out_escalate_to_critical_once():
    # B-TARGET is a large business: the returns are no violations.
    alerts = feed(small(), escalation_world())
    assert [a.severity for a in alerts] == ["warning", "critical"]
    warning, critical = alerts
    assert warning.evidence["standing_out"] == ["violations"]
    assert critical.evidence["standing_out"] == ["violations", "repeat_visits"]
    assert critical.event_ids == ["r-43"]  # the third return
    # One finding (named after the event that opened it) at two severities.
    assert warning.alert_id == alert_id(KIND, "ROGUE", "x-ROGUE-38", "warning")
    assert critical.alert_id == alert_id(KIND, "ROGUE", "x-ROGUE-38", "critical")
    assert critical.score >= warning.score


def test_reasons_say_what_stands_out_and_against_what():
    [alert] = feed(small(), violations_world(IN_MORATORIUM, 4))
    assert alert.reasons == [
        "4 inspections in 60 days that the moratorium prohibited (micro or small "
        "businesses, no exempt ground): the moratorium allows none"
    ]
    [returns] = feed(small(), revisit_world("routine", 3))
    assert returns.reasons == [
        "3 everyday-ground visits in 60 days to businesses it had visited within 60 days, "
        "against 0: z = 4.0 among 6 AUTH-A inspectors"
    ]
    volume = feed(small(), volume_world(15))[0]
    [reason] = volume.reasons
    assert reason.startswith(
        f"{volume.evidence['figures']['volume']:.0f} inspections in 60 days against 30: "
        "5.0 times the peers' median; z = "
    )
    assert reason.endswith(" among 6 AUTH-A inspectors")


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
    events += shifts(IN_MORATORIUM, {"BUSY": 20}, range(30, 70))
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
    assert entities(later) >= {"BUSY", "AUTH-B-I0", "AUTH-B-I1"}
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


def test_state_is_bounded_by_the_window():
    # A year of one inspector visiting fresh businesses: it remembers the businesses of
    # the last repeat_days and the visits of the last window, not the year.
    detector = InspectorAnomaly()
    run(detector, shifts(AFTER_MORATORIUM, {"I": 5}, range(365)))
    who = detector._inspectors["I"]
    assert len(who.visited) <= 5 * 61
    assert len(who.recent) <= 5 * 61
    assert len(who.lately) + len(who.earlier) <= 60 + 90 + 1
