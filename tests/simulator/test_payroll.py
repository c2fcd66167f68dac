"""The payroll world: mass layoff labels follow the typology, families, look-alikes.

The typology (``detectors/payroll/mass_layoff.py``) is restated here and applied to
the parsed ``events.jsonl``, without importing the detector or the simulator's
plans: within 30 days, terminations for redundancy, with terminations for 'other'
reasons within 3 days of one, reach 30 % of the headcount the employer had at the
first of them and at least 3 people, or 50 people at any size. Each labelled
employer meets it from its finding's start (soundness) and no unlabelled employer
meets it anywhere (completeness), so the truth rewards no detector for flagging
lawful cuts and punishes none for missing what is not there.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from datetime import date

from simulator import SimConfig
from simulator.core import World as SimWorld
from simulator.payroll import add_payroll
from tests.simulator.conftest import World
from tests.simulator.facts import DAY, Staff, by_kind, due_instant, staff_of

WINDOW = 30 * DAY
LINK = 3 * DAY
MIN_SHARE, MIN_COUNT, ABSOLUTE = 0.30, 3, 50


def counted(staff: Staff) -> list[tuple[float, str]]:
    """(ts, event id) of the terminations a layoff counts, sorted."""
    cuts = sorted(
        (ts, why, ident) for ts, why, ident in staff.left.values() if why in ("redundancy", "other")
    )
    redundancies = [ts for ts, why, _ in cuts if why == "redundancy"]

    def linked(ts: float) -> bool:
        i = bisect_left(redundancies, ts - LINK)
        return i < len(redundancies) and redundancies[i] <= ts + LINK

    return [(ts, ident) for ts, why, ident in cuts if why == "redundancy" or linked(ts)]


def mass_from(staff: Staff, times: list[float], start: float) -> tuple[bool, int, int]:
    """Do the counted terminations in ``[start, start + 30 days]`` make a mass layoff?"""
    count = bisect_right(times, start + WINDOW) - bisect_left(times, start)
    headcount = staff.headcount(start)
    return (
        (count >= MIN_COUNT and count >= MIN_SHARE * headcount) or count >= ABSOLUTE,
        count,
        headcount,
    )


def test_mass_layoff_labels_meet_the_typology(any_world: World) -> None:
    payroll = any_world.events["payroll"]
    staff = staff_of(payroll)
    problems = []
    for employer, f in by_kind(any_world.truth, "mass_layoff").items():
        cited = [payroll[i] for i in f["event_ids"]]
        times = [ts for ts, _ in counted(staff[employer])]
        mass, count, headcount = mass_from(staff[employer], times, f["_t"])
        wrong = [
            e["event_id"]
            for e in cited
            if e["type"] != "termination"
            or e["reason"] not in ("redundancy", "other")
            or not 0 <= e["_t"] - f["_t"] <= WINDOW
        ]
        if not mass or wrong or min(e["_t"] for e in cited) != f["_t"]:
            problems.append(
                f"{employer} from {f['start']}: {count} counted terminations within 30 days "
                f"of {headcount} staff; cited events that are not the cut: {wrong[:5]}"
            )
    assert not problems, "\n".join(problems)


def test_no_unlabelled_employer_meets_the_typology(any_world: World) -> None:
    labelled = by_kind(any_world.truth, "mass_layoff")
    problems = []
    for employer, staff in staff_of(any_world.events["payroll"]).items():
        if employer in labelled:
            continue
        times = [ts for ts, _ in counted(staff)]
        for ts in times:
            mass, count, headcount = mass_from(staff, times, ts)
            if mass:
                problems.append(f"{employer}: {count} of {headcount} cut from {ts}")
                break
    assert not problems, "\n".join(problems)


def test_every_layoff_family_and_lawful_cut_is_there(any_world: World) -> None:
    """Micro layoffs, departments closed, layoffs partly recorded as 'other'; and the
    lawful cuts: one or two redundancies at a micro employer, a large employer's trim."""
    payroll = any_world.events["payroll"]
    staff = staff_of(payroll)
    labelled = by_kind(any_world.truth, "mass_layoff")
    seen: dict[str, list[str]] = defaultdict(list)
    for employer, f in labelled.items():
        headcount = staff[employer].headcount(f["_t"])
        reasons = [payroll[i]["reason"] for i in f["event_ids"]]
        if headcount <= 15 and len(reasons) <= 6:
            seen["micro"].append(employer)
        if len(reasons) >= 50 and headcount >= 150:
            seen["department"].append(employer)
        if "other" in reasons:
            seen["disguised"].append(employer)
    for employer, s in staff.items():
        cuts = counted(s)
        if employer in labelled or not cuts:
            continue
        headcount = s.headcount(cuts[0][0])
        if headcount <= 10 and len(cuts) in (1, 2):
            seen["micro_redundancies"].append(employer)
        if len(cuts) >= 6 and headcount >= 100:
            seen["trim"].append(employer)
    expected = {"micro", "department", "disguised", "trim"}
    if any_world.name == "onset":  # more employers with plans; one or two somewhere
        expected.add("micro_redundancies")
    assert expected <= set(seen), dict(seen)


def test_the_lawful_cuts_are_listed_as_look_alikes(any_world: World) -> None:
    lawful = (any_world.path / "lawful.json").read_text()
    for family in ("department_trim", "seasonal_contract_ends", "pay_instalments"):
        assert f'"{family}"' in lawful, family


# -- families --------------------------------------------------------------------------


def _payroll_by_employer(families: str, seed: int = 5) -> dict[str, list[tuple]]:
    """The payroll events of a small world, per employer, without their event ids."""
    config = SimConfig(start=date(2021, 5, 1), days=120, families=families)
    world = SimWorld(seed, config.start, config.days)
    add_payroll(world, config, 0.1)
    out: dict[str, list[tuple]] = defaultdict(list)
    for ts, _, event in world.events():
        fields = tuple(sorted((k, v) for k, v in event.items() if k != "event_id"))
        out[event["employer"]].append((ts, fields))
    return out


def test_a_tuning_world_is_the_same_world_without_the_held_out_families() -> None:
    everything, tuning = _payroll_by_employer("all"), _payroll_by_employer("tuning")
    differ = {e for e in everything if everything[e] != tuning.get(e)}
    # Only the employers of the held-out families (micro and disguised layoffs) differ.
    assert differ, "no held-out family in the world"
    for employer in differ:
        reasons = {dict(f).get("reason") for _, f in everything[employer]}
        assert "redundancy" in reasons, employer
        tuned = [dict(f).get("reason") for _, f in tuning[employer]]
        assert tuned.count("redundancy") <= 2, employer  # at most a lawful one or two


# -- salary_arrears at the world's end ---------------------------------------------------


def test_arrears_due_two_days_before_the_world_ends_are_labelled() -> None:
    """Held-out worlds ending two days after a deadline left its arrears unlabelled.

    The 2023-03 wages are due by 2023-04-11T00:00 local; this world ends at
    2023-04-13T00:00, a lateness and a day of events later: a detector decides
    them inside the world, so the truth must hold them.
    """
    # Pay days drifting past the deadline: some first miss it at the last deadline.
    config = SimConfig(start=date(2022, 10, 15), days=180, arrears_n=1, creeping_n=300)
    world = SimWorld(4, config.start, config.days)
    add_payroll(world, config, 0.1)
    assert world.end == due_instant("2023-03") + 2 * DAY
    accrued: dict[tuple[str, str, str], float] = {}
    paid: dict[tuple[str, str, str], float] = defaultdict(float)
    for ts, _, event in world.events():
        key = (event["employer"], event["employee"], event.get("period", ""))
        if event["type"] == "accrual":
            accrued[key] = event["amount"]
        elif event["type"] == "payment" and ts < due_instant(key[2]):
            paid[key] += event["amount"]
    late = {k[0] for k, amount in accrued.items() if k[2] == "2023-03" and amount - paid[k] > 1}
    labelled = {f.entity for f in world.findings if f.kind == "salary_arrears"}
    assert late, "no arrears at the last deadline: this check would prove nothing"
    assert late <= labelled, sorted(late - labelled)
