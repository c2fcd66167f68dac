"""truth.json is right: every label checked against the events, from the bytes.

Each test restates a contract rule (or the pattern's definition) in
:mod:`tests.simulator.facts`, applies it to the parsed ``events.jsonl`` and
compares with the truth both ways where the rule is exact: each finding shows
the pattern (soundness), and no unlabelled entity does (completeness). Lawful
look-alikes must exist unlabelled, or the truth would reward a detector that
flags everything that moves.

Failures list every counterexample with its figures.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from itertools import pairwise
from typing import Any

from tests.simulator.conftest import World
from tests.simulator.facts import (
    ALMATY,
    DAY,
    EXEMPT,
    HOUR,
    MORATORIUM,
    PROTECTED,
    accounts,
    authorities,
    by_kind,
    count_within,
    distinct_payers_within,
    due_instant,
    inspector_stats,
    ledger,
    local_date,
    local_midnight,
    most_payers_in_a_week,
    most_within,
    opening,
    paid_back_to_payers,
    pay_days,
    peer_median,
    prohibited,
    staff_of,
    visits_by_business,
)

KINDS = (
    "pyramid_scheme",
    "mule_account",
    "salary_arrears",
    "payroll_anomaly",
    "mass_layoff",
    "moratorium_violation",
    "repeat_inspection",
    "inspector_anomaly",
)
#: Which stream each kind's events come from, and which field names its entity.
OWNER = {
    "pyramid_scheme": ("payments", ("payer", "payee")),
    "mule_account": ("payments", ("payer", "payee")),
    "salary_arrears": ("payroll", ("employer",)),
    "payroll_anomaly": ("payroll", ("employer",)),
    "mass_layoff": ("payroll", ("employer",)),
    "moratorium_violation": ("inspections", ("business",)),
    "repeat_inspection": ("inspections", ("business",)),
    "inspector_anomaly": ("inspections", ("inspector",)),
}
#: Arrears smaller than this are rounding, not debt (contract: whole-tenge payers exist).
TOLERANCE = 1.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, ALMATY).isoformat(timespec="seconds")


# -- every kind, every event ------------------------------------------------------------


def test_every_kind_has_truth(any_world: World) -> None:
    kinds = {f["kind"] for f in any_world.truth}
    assert kinds == set(KINDS), f"missing: {sorted(set(KINDS) - kinds)}"


def test_findings_cite_events_of_their_entity_after_their_start(any_world: World) -> None:
    problems = []
    for f in any_world.truth:
        stream, fields = OWNER[f["kind"]]
        events = any_world.events[stream]
        where = f"{f['kind']} {f['entity']} (start {f['start']})"
        if not f["event_ids"] or len(f["event_ids"]) > 100:
            problems.append(f"{where}: {len(f['event_ids'])} event ids")
        if len(set(f["event_ids"])) != len(f["event_ids"]):
            problems.append(f"{where}: an event id listed twice")
        cited = [events.get(i) for i in f["event_ids"]]
        if missing := [i for i, e in zip(f["event_ids"], cited, strict=True) if e is None]:
            problems.append(f"{where}: not in events.jsonl: {missing[:5]}")
            continue
        if strangers := [e["event_id"] for e in cited if f["entity"] not in (e[x] for x in fields)]:
            problems.append(f"{where}: events of another entity: {strangers[:5]}")
        if f["kind"] == "salary_arrears":
            # The start is the first missed due date, after the accrual it is about
            # (later accruals left unpaid belong to the same finding).
            if not min(e["_t"] for e in cited) < f["_t"]:
                problems.append(f"{where}: no listed accrual before the start")
        elif f["_t"] > (first := min(e["_t"] for e in cited)):
            problems.append(f"{where}: starts after its earliest event {iso(first)}")
        if not any_world.start <= f["_t"] < any_world.end:
            problems.append(f"{where}: starts outside the world")
    assert not problems, "\n".join(problems)


# -- moratorium_violation -------------------------------------------------------------------


def test_moratorium_truth_is_exactly_the_prohibited_inspections(any_world: World) -> None:
    inspections = any_world.events["inspections"]
    expected = {i for i, e in inspections.items() if prohibited(e)}
    findings = [f for f in any_world.truth if f["kind"] == "moratorium_violation"]
    labelled = [i for f in findings for i in f["event_ids"]]
    assert all(len(f["event_ids"]) == 1 for f in findings), "one finding per inspection"
    assert len(labelled) == len(set(labelled)), "an inspection labelled twice"
    wrongly = sorted(set(labelled) - expected)
    missed = sorted(expected - set(labelled))

    def show(ids: list[str]) -> list[tuple[str, ...]]:
        return [
            (i, inspections[i]["ts"], inspections[i]["business_size"], inspections[i]["basis"])
            for i in ids[:10]
        ]

    assert not wrongly and not missed, f"labelled, lawful: {show(wrongly)}; missed: {show(missed)}"
    assert expected, "no prohibited inspection at all"


def test_moratorium_edge_is_exercised(any_world: World) -> None:
    """Protected, non-exempt inspections within 30 days on both sides of the edge."""
    edge_day = MORATORIUM[1] if any_world.config.start.year >= 2022 else MORATORIUM[0]
    edge = local_midnight(edge_day)
    sides = {True: 0, False: 0}
    for e in any_world.events["inspections"].values():
        if (
            e["business_size"] in PROTECTED
            and e["basis"] not in EXEMPT
            and abs(e["_t"] - edge) < 30 * DAY
        ):
            sides[e["_t"] >= edge] += 1
    assert sides[True] and sides[False], f"around {edge_day}: {sides}"


# -- salary_arrears --------------------------------------------------------------------------


def test_arrears_findings_list_underpaid_accruals_from_the_first_missed_due_date(
    any_world: World,
) -> None:
    led = ledger(any_world.events["payroll"])
    key_of = {i: key for key, rows in led.accruals.items() for i, _, _ in rows}
    problems = []
    for employer, f in by_kind(any_world.truth, "salary_arrears").items():
        for accrual in f["event_ids"]:
            key = key_of.get(accrual)
            if key is None:
                problems.append(f"{employer}: {accrual} is not an accrual")
                continue
            due = due_instant(key[2])
            short = led.shortfall(key, due)
            if due < f["_t"]:
                problems.append(f"{employer}: {accrual} was due {iso(due)}, before the start")
            if short <= TOLERANCE:
                problems.append(
                    f"{employer}: {accrual} ({key[1]}, {key[2]}) was paid by its due date "
                    f"{iso(due)}: shortfall {short:.2f}, payments {led.payments.get(key)}"
                )
        missed = [
            due_instant(key[2])
            for key in led.accruals
            if key[0] == employer
            and due_instant(key[2]) + 2 * DAY <= any_world.end
            and led.shortfall(key, due_instant(key[2])) > TOLERANCE
        ]
        if not missed or f["_t"] != min(missed):
            first = iso(min(missed)) if missed else None
            problems.append(f"{employer}: start {f['start']}, first missed due date {first}")
    assert not problems, "\n".join(problems)


def test_no_unlabelled_employer_is_in_arrears(any_world: World) -> None:
    """Instalments, whole-tenge rounding and payment on the due day are not arrears."""
    led = ledger(any_world.events["payroll"])
    labelled = by_kind(any_world.truth, "salary_arrears")
    problems = []
    for key in led.accruals:
        due = due_instant(key[2])
        if key[0] in labelled or due + 2 * DAY > any_world.end:  # undecidable in the world
            continue
        if (short := led.shortfall(key, due)) > TOLERANCE:
            problems.append(
                f"{key}: {short:.2f} unpaid at {iso(due)}; accrued {led.accruals[key]}, "
                f"paid {[(iso(t), a) for t, a in led.payments.get(key, [])]}"
            )
    assert not problems, "\n".join(problems)


def test_lawful_payroll_habits_are_present(any_world: World) -> None:
    """The hard negatives of arrears exist: instalments, rounding, due-day payments."""
    led = ledger(any_world.events["payroll"])
    instalments = rounded = due_day = 0
    for key, paid in led.payments.items():
        accrued = sum(a for _, a, _ in led.accruals.get(key, ()))
        instalments += len(paid) >= 2
        rounded += len(paid) == 1 and 0 < accrued - paid[0][1] < TOLERANCE
        due_day += any(local_date(t).day == 10 for t, _ in paid)
    assert instalments and rounded and due_day, (instalments, rounded, due_day)


# -- payroll_anomaly --------------------------------------------------------------------------


def test_payroll_anomalies_start_when_the_pay_day_drifts(any_world: World) -> None:
    """The median pay day moves later from the start's month on.

    In the start's month it is later than in the month before, and the month
    after it is 3 days or more later than before the start (ordinary pay days
    vary by a day, so a small staff's median can lag one drift step). No
    unlabelled employer's median pay day moves later by 1.5 days or more twice
    in a row.
    """
    days = pay_days(any_world.events["payroll"])
    labelled = by_kind(any_world.truth, "payroll_anomaly")
    problems = []
    for employer, f in labelled.items():
        start = local_date(f["_t"])
        month = (start.year, start.month)
        before = (start.year - (start.month == 1), (start.month - 2) % 12 + 1)
        after = (start.year + (start.month == 12), start.month % 12 + 1)
        mine = days[employer]
        if (
            month not in mine
            or (before in mine and mine[month] <= mine[before])
            or (before in mine and after in mine and mine[after] < mine[before] + 3)
        ):
            problems.append(f"{employer} from {f['start']}: median pay days {mine}")
    for employer, mine in days.items():
        medians = [mine[m] for m in sorted(mine)]
        rises = [b - a >= 1.5 for a, b in pairwise(medians)]
        if employer not in labelled and any(a and b for a, b in pairwise(rises)):
            problems.append(f"{employer} (unlabelled): median pay days {mine}")
    assert not problems, "\n".join(problems)


# -- mass_layoff ------------------------------------------------------------------------------


# The mass layoff typology (labels both ways, every family): tests/simulator/test_payroll.py.


def test_seasonal_contract_ends_are_unlabelled_look_alikes(any_world: World) -> None:
    """Waves of contract ends (seasonal staff) are no layoffs.

    At scale 0.1 the default world has two seasonal employers on average (5 % of
    its employers), sometimes none; the onset world has more and must show one.
    """
    labelled = by_kind(any_world.truth, "mass_layoff")
    waves = []
    for employer, staff in staff_of(any_world.events["payroll"]).items():
        times = [t for t, _ in staff.terminations("contract_end")]
        if most_within(times, 10 * DAY)[0] >= 3:
            waves.append(employer)
    assert waves or any_world.name != "onset", "no seasonal wave of contract ends"
    assert not set(waves) & set(labelled), "a seasonal wave labelled mass_layoff"


# -- repeat_inspection -----------------------------------------------------------------------


def _repeat_times(world: World) -> dict[str, list[float]]:
    """Per business, the times of the visits that open a matter of their own."""
    visits = visits_by_business(world.events["inspections"])
    return {b: [e["_t"] for e in opening(v)] for b, v in visits.items()}


def test_repeat_inspections_are_three_matters_within_45_days(any_world: World) -> None:
    """Three visits opening a matter each, whatever their grounds (a prosecutor's order
    among them does not make three authorities in three weeks fewer)."""
    times = _repeat_times(any_world)
    problems = []
    for business, f in by_kind(any_world.truth, "repeat_inspection").items():
        count = count_within(times.get(business, []), f["_t"], 45 * DAY)
        if count < 3:
            visits = visits_by_business(any_world.events["inspections"])[business]
            problems.append(
                f"{business} from {f['start']}: {count} visits opening a matter within 45 "
                f"days; visits {[(e['ts'], e['authority'], e['basis']) for e in visits]}"
            )
    assert not problems, "\n".join(problems)


def test_no_unlabelled_repeat_inspection(any_world: World) -> None:
    labelled = by_kind(any_world.truth, "repeat_inspection")
    visits = visits_by_business(any_world.events["inspections"])
    problems = []
    for business, times in _repeat_times(any_world).items():
        count, first = most_within(times, 45 * DAY)
        if count >= 3 and business not in labelled:
            shown = [(e["ts"], e["inspector"], e["basis"]) for e in visits[business]]
            problems.append(f"{business}: {count} visits from {iso(first)}: {shown}")
    assert not problems, f"{len(problems)} unlabelled:\n" + "\n".join(problems[:20])


def test_three_authorities_in_three_weeks_one_on_an_exempt_ground_are_labelled(
    any_world: World,
) -> None:
    """Issue 13's missed case (the multi_authority family): three or more authorities
    within three weeks, one or more on an exempt ground, is a true repeat pattern."""
    labelled = by_kind(any_world.truth, "repeat_inspection")
    found, problems = 0, []
    for business, visits in visits_by_business(any_world.events["inspections"]).items():
        for i, first in enumerate(visits):
            window = [e for e in visits[i:] if e["_t"] - first["_t"] <= 23 * DAY]
            exempt = any(e["basis"] in EXEMPT for e in window)
            if len({e["authority"] for e in window}) >= 3 and exempt:
                found += 1
                if business not in labelled:
                    problems.append(f"{business}: {[(e['ts'], e['authority']) for e in window]}")
                break
    assert found, "no business visited by three authorities in three weeks, one exempt"
    assert not problems, "\n".join(problems)


def test_lawful_repeat_visits_are_unlabelled_look_alikes(any_world: World) -> None:
    """Three visits in 45 days, lawfully: a visit and its follow-ups, or exempt grounds.

    The default world at scale 0.1 has one follow-up chain and one exempt series,
    and a chain may hold a single follow-up, so it needs one of the two kinds; the
    onset world holds more of each and needs both.
    """
    labelled = by_kind(any_world.truth, "repeat_inspection")
    follow_ups = exempt = 0
    for business, visits in visits_by_business(any_world.events["inspections"]).items():
        times = [e["_t"] for e in visits]
        count, first = most_within(times, 45 * DAY)
        if count < 3 or business in labelled:
            continue
        window = [e for e in visits if first <= e["_t"] <= first + 45 * DAY]
        follow_ups += sum(e["basis"] == "follow_up" for e in window) >= len(window) - 1
        exempt += all(e["basis"] in EXEMPT for e in window)
    found = f"follow-up chains {follow_ups}, exempt repeats {exempt}"
    if any_world.name == "onset":
        assert follow_ups and exempt, found
    else:
        assert follow_ups or exempt, found


# -- inspector_anomaly -----------------------------------------------------------------------


def test_flagged_inspectors_stand_out_from_their_peers(any_world: World) -> None:
    """By volume, by their share of protected non-exempt visits in the moratorium, or repeats.

    Peers: the other unflagged inspectors of the same authority (of all
    authorities if it has none), over the same span: from the finding's start
    to the world's end.
    """
    inspections = any_world.events["inspections"]
    authority_of = authorities(inspections)
    flagged = by_kind(any_world.truth, "inspector_anomaly")
    problems = []
    for who, f in flagged.items():
        volume = inspector_stats(inspections, f["_t"])
        shares = inspector_stats(inspections, f["_t"], moratorium_only=True)
        peer_count = peer_median(volume, authority_of, who, "count", set(flagged))
        peer_share = peer_median(shares, authority_of, who, "protected_share", set(flagged))
        mine, share = volume[who], shares[who].protected_share
        if not (
            mine.count >= 1.8 * peer_count
            or share >= 3 * peer_share + 0.1
            or mine.most_repeats >= 3
        ):
            problems.append(
                f"{who} from {f['start']}: {mine.count} inspections (peers' median "
                f"{peer_count}), protected share {share:.2f} (peers' {peer_share:.2f}), "
                f"{mine.most_repeats} visits to one business within 45 days"
            )
    assert not problems, "\n".join(problems)


def test_no_unflagged_inspector_works_at_two_and_a_half_times_its_peers(
    any_world: World,
) -> None:
    inspections = any_world.events["inspections"]
    authority_of = authorities(inspections)
    flagged = set(by_kind(any_world.truth, "inspector_anomaly"))
    volume = inspector_stats(inspections, any_world.start)
    problems = []
    for who in authority_of:
        peers = peer_median(volume, authority_of, who, "count", flagged)
        if who not in flagged and volume[who].count >= 2.5 * peers:
            problems.append(f"{who}: {volume[who].count} inspections, peers' median {peers}")
    assert not problems, "\n".join(problems)


def _by_inspector(world: World) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in world.events["inspections"].values():
        out[event["inspector"]].append(event)
    for visits in out.values():
        visits.sort(key=lambda e: e["_t"])
    return out


def _hounded(visits: list[dict[str, Any]]) -> set[str]:
    """Businesses one inspector visited three times or more within 45 days, everyday grounds."""
    times: dict[str, list[float]] = defaultdict(list)
    for e in visits:
        if e["basis"] not in EXEMPT and e["basis"] != "follow_up":
            times[e["business"]].append(e["_t"])
    return {b for b, t in times.items() if most_within(t, 45 * DAY)[0] >= 3}


def test_inspector_findings_start_where_the_pattern_does(any_world: World) -> None:
    """Never at a habit the law allows in its era (issue 13: a "violator" visiting small
    businesses before or after the moratorium was labelled): the start is a prohibited
    inspection, a visit to a business the inspector hounds, or a volume rogue's visit."""
    inspections = any_world.events["inspections"]
    authority_of = authorities(inspections)
    flagged = by_kind(any_world.truth, "inspector_anomaly")
    mine = _by_inspector(any_world)
    problems = []
    for who, f in flagged.items():
        first = min((inspections[i] for i in f["event_ids"]), key=lambda e: e["_t"])
        volume = inspector_stats(inspections, f["_t"])
        busy = volume[who].count >= 1.8 * peer_median(
            volume, authority_of, who, "count", set(flagged)
        )
        if not (prohibited(first) or first["business"] in _hounded(mine[who]) or busy):
            problems.append(
                f"{who} from {f['start']}: {first['business_size']} {first['basis']}, "
                f"neither prohibited, nor hounding, nor a volume rogue's"
            )
    assert not problems, "\n".join(problems)


def test_no_unlabelled_inspector_breaks_the_moratorium_or_hounds_habitually(
    any_world: World,
) -> None:
    """Against the law at that moment: four prohibited inspections within 60 days, or a
    business visited three times within 45 days on everyday grounds, is a labelled habit."""
    flagged = by_kind(any_world.truth, "inspector_anomaly")
    problems = []
    for who, visits in _by_inspector(any_world).items():
        if who in flagged:
            continue
        count, first = most_within([e["_t"] for e in visits if prohibited(e)], 60 * DAY)
        if count >= 4:
            problems.append(f"{who}: {count} prohibited inspections from {iso(first)}")
        if hounded := _hounded(visits):
            problems.append(f"{who}: hounds {sorted(hounded)}")
    assert not problems, "\n".join(problems)


def test_a_small_business_habit_is_labelled_from_its_first_prohibited_visit(
    onset_world: World,
) -> None:
    """Across the start: an inspector who visits micro and small businesses on everyday
    grounds before it (lawful) and goes on after it is labelled from the first
    prohibited visit, not before (the onset_rogue family, and violators)."""
    start = local_midnight(MORATORIUM[0])
    flagged = by_kind(onset_world.truth, "inspector_anomaly")
    found = 0
    problems = []
    for who, visits in _by_inspector(onset_world).items():
        before = [
            e
            for e in visits
            if start - 60 * DAY <= e["_t"] < start
            and e["business_size"] in PROTECTED
            and e["basis"] not in EXEMPT
        ]
        after = [e for e in visits if prohibited(e) and e["_t"] < start + 60 * DAY]
        if len(before) < 5 or len(after) < 4:
            continue
        found += 1
        f = flagged.get(who)
        # Earlier only if it hounded a business before (a harasser, whatever the era).
        hounded = _hounded(visits)
        earlier = f is not None and f["_t"] < after[0]["_t"]
        if (
            f is None
            or f["_t"] > after[0]["_t"]
            or (earlier and not any(e["business"] in hounded for e in visits if e["_t"] == f["_t"]))
        ):
            problems.append(
                f"{who}: first prohibited {after[0]['ts']}, finding {f['start'] if f else None}"
            )
    assert found, "no small-business habit carried over the start"
    assert not problems, "\n".join(problems)


def test_an_honest_shift_at_the_start_is_unlabelled(onset_world: World) -> None:
    """The edge_honest family: an inspector mostly on micro and small businesses before
    the start (lawful) who moves to others at it breaks no rule and is not labelled."""
    start = local_midnight(MORATORIUM[0])
    flagged = by_kind(onset_world.truth, "inspector_anomaly")
    movers = []
    for who, visits in _by_inspector(onset_world).items():
        before = [e for e in visits if start - 30 * DAY <= e["_t"] < start]
        after = [e for e in visits if start <= e["_t"] < start + 60 * DAY]
        small = sum(e["business_size"] in PROTECTED and e["basis"] not in EXEMPT for e in before)
        if len(before) >= 10 and small >= 0.75 * len(before) and not any(map(prohibited, after)):
            movers.append(who)
    assert movers, "no small-business inspector moving to larger ones at the start"
    assert not set(movers) & set(flagged), sorted(set(movers) & set(flagged))


# -- pyramid_scheme, mule_account -------------------------------------------------------------


def test_pyramids_recruit_fast_take_round_sums_or_one_fee_and_pay_returns(
    any_world: World,
) -> None:
    """A classic pyramid takes round sums; a gifting circle (the held-out
    pyramid_fixed_fee family) one fixed fee, often not round. Both recruit fast and pay
    earlier payers more than they put in."""
    books = accounts(any_world.events["payments"])
    problems = []
    for organiser, f in by_kind(any_world.truth, "pyramid_scheme").items():
        account = books[organiser]
        recruits = distinct_payers_within(account, f["_t"], 7 * DAY)
        sums = Counter(a for _, _, a in account.inflows)
        one_fee = sums.most_common(1)[0][1] / len(account.inflows)
        round_share = sum(n for a, n in sums.items() if a % 10_000 == 0) / len(account.inflows)
        round_share = max(round_share, one_fee)
        lived = account.inflows[-1][0] - account.inflows[0][0]
        deposited: dict[str, float] = defaultdict(float)
        returns = 0
        flows = sorted(
            [(t, 0, p, a) for t, p, a in account.inflows]
            + [(t, 1, p, a) for t, p, a in account.outflows]
        )
        for _, out, party, amount in flows:
            if not out:
                deposited[party] += amount
            elif 0 < deposited[party] < amount:
                returns += 1
        if recruits < 10 or round_share < 0.9 or (lived >= 15 * DAY and not returns):
            problems.append(
                f"{organiser} from {f['start']}: {recruits} payers in its first 7 days, "
                f"{round_share:.0%} round inflows or of one fee, lived {lived / DAY:.1f} days, "
                f"{returns} returns above a payer's deposits"
            )
    assert not problems, "\n".join(problems)


def test_mules_forward_most_of_their_inflow_within_hours(any_world: World) -> None:
    """Judged from the pattern's start: a recruited mule's account (the held-out
    pooled_mule family) also has its owner's everyday life before it."""
    books = accounts(any_world.events["payments"])
    problems = []
    for mule, f in by_kind(any_world.truth, "mule_account").items():
        whole = books[mule]
        account = type(whole)(
            [i for i in whole.inflows if i[0] >= f["_t"]],
            [o for o in whole.outflows if o[0] >= f["_t"]],
        )
        inflow = sum(a for _, _, a in account.inflows)
        outflow = sum(a for _, _, a in account.outflows)
        gap = account.outflows[0][0] - account.inflows[0][0] if account.outflows else None
        if outflow < 0.7 * inflow or gap is None or not 0 <= gap <= 12 * HOUR:
            problems.append(
                f"{mule}: forwards {outflow:.0f} of {inflow:.0f}; first outflow "
                f"{gap and gap / HOUR} h after the first inflow"
            )
    assert not problems, "\n".join(problems)


def test_payment_look_alikes_are_unlabelled(any_world: World) -> None:
    """A new account with a crowd of payers in a week, and one that pays its payers back."""
    books = accounts(any_world.events["payments"])
    labelled = set(by_kind(any_world.truth, "pyramid_scheme")) | set(
        by_kind(any_world.truth, "mule_account")
    )
    crowds = [
        a
        for a, account in books.items()
        if a not in labelled
        and account.inflows
        and account.inflows[0][0] >= any_world.start + 7 * DAY
        and most_payers_in_a_week(account) >= 20
    ]
    payers = {a: len({p for _, p, _ in account.inflows}) for a, account in books.items()}
    paying_back = [
        a
        for a, account in books.items()
        if a not in labelled
        and (back := paid_back_to_payers(account)) >= 8
        and back >= 0.3 * payers[a]
    ]
    assert crowds, "no new account with 20 payers in a week (charity, new shop)"
    assert paying_back, "no account paying many of its payers back (cooperative, ROSCA)"


def test_worlds_span_the_moratorium_edges(world: World, onset_world: World) -> None:
    assert world.config.start < date(2023, 1, 1) <= local_date(world.end - 1)
    assert onset_world.config.start < date(2020, 1, 1) <= local_date(onset_world.end - 1)
