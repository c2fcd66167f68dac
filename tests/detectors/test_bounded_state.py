"""Bounded state (issue 14): a cap on tracked entities, least recently active evicted,
and idle entities forgotten by their partition's own event time.

Issue 14 measured 200k random accounts in one day at +282 MB and a 67 MB checkpoint,
and found inspector and peer maps, layoff and payroll-drift employers never pruned.
Each detector is driven through an :class:`Engine` of its own (one partition: it runs
the very instance given), as the worker drives it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detectors.base import EVICT_TO, Detector
from detectors.engine import Engine, lane_of
from detectors.events import Activity, Inspection, Payment, PayrollEvent
from detectors.inspections.inspector_anomaly import BEFORE_DAYS, InspectorAnomaly
from detectors.inspections.moratorium_violation import MoratoriumViolation
from detectors.inspections.repeat_inspection import RepeatInspection
from detectors.payments.ledger import Payers
from detectors.payments.mule_account import MuleAccount
from detectors.payments.payment_anomaly import PaymentAnomaly
from detectors.payments.pyramid_scheme import PyramidScheme
from detectors.payroll.mass_layoff import FORGET_AFTER_DAYS, MassLayoff
from detectors.payroll.payroll_anomaly import IDLE_DAYS, PayrollAnomaly
from detectors.payroll.salary_arrears import FINDING_IDLE_DAYS, SalaryArrears
from detectors.registry import build_engine

T0 = datetime(2023, 3, 1, tzinfo=UTC)  # after the moratorium: inspections alert nothing
CAP = 100
FED = 1_000
KEEP = "KEEP"  # an entity active from the first event to the last


def payment(n: int, ts: datetime, payer: str, payee: str, amount: float = 50_000.0) -> Activity:
    return Activity(Payment(event_id=f"p-{n}", ts=ts, payer=payer, payee=payee, amount=amount))


def payroll(n: int, ts: datetime, employer: str, kind: str = "accrual", **fields: Any):
    if kind in ("accrual", "payment"):
        fields = {"period": "2023-02", "amount": 200_000.0, **fields}
    fields.setdefault("employee", "W-1")
    return PayrollEvent(event_id=f"pr-{n}", ts=ts, type=kind, employer=employer, **fields)


def inspection(
    n: int, ts: datetime, business: str, inspector: str = "I-1", authority: str = "A-1"
) -> Inspection:
    return Inspection(
        event_id=f"i-{n}",
        ts=ts,
        business=business,
        business_size="small",
        authority=authority,
        inspector=inspector,
        kind="scheduled",
        basis="routine",
    )


@dataclass(frozen=True)
class Case:
    """How to flood one kind: a fresh detector, the events touching entity ``name``
    (the n-th of the flood), and the map of entities the cap bounds."""

    make: Callable[[], Detector]
    touch: Callable[[int, datetime, str], list[Any]]
    entities: Callable[[Detector], dict]
    key: Callable[[str], Any] = lambda name: name


CASES = {
    "pyramid_scheme": Case(
        lambda: PyramidScheme(warm_up_days=0),
        lambda n, ts, name: [payment(n, ts, f"NEW-{n}", name)],  # a new payer's stake
        lambda d: d._accounts,
    ),
    "mule_account": Case(
        MuleAccount,
        lambda n, ts, name: [payment(n, ts, f"NEW-{n}", name)],
        lambda d: d._accounts,
    ),
    "payment_anomaly": Case(  # two payments a day make an account one of today's busy ones
        PaymentAnomaly,
        lambda n, ts, name: [
            payment(2 * n, ts, "SRC", name),
            payment(2 * n + 1, ts + timedelta(seconds=1), "SRC", name),
        ],
        lambda d: d._today,
    ),
    "salary_arrears": Case(
        SalaryArrears,
        lambda n, ts, name: [payroll(n, ts, name)],
        lambda d: d._books,
        lambda name: (name, "2023-02"),
    ),
    "payroll_anomaly": Case(
        PayrollAnomaly, lambda n, ts, name: [payroll(n, ts, name)], lambda d: d._employers
    ),
    "mass_layoff": Case(
        MassLayoff, lambda n, ts, name: [payroll(n, ts, name)], lambda d: d._employers
    ),
    "repeat_inspection": Case(
        RepeatInspection, lambda n, ts, name: [inspection(n, ts, name)], lambda d: d._visits
    ),
    "inspector_anomaly": Case(
        InspectorAnomaly,
        lambda n, ts, name: [inspection(n, ts, f"B-{n}", name, f"A-{n % 7}")],
        lambda d: d._inspectors,
    ),
}


def flood(case: Case, detector: Detector, count: int = FED) -> Iterator[dict]:
    """``count`` new entities a minute apart, ``KEEP`` touched every tenth; yields the
    entity map after each event."""
    engine = Engine([detector])
    lane = lane_of(detector)
    for n in range(count):
        ts = T0 + timedelta(minutes=n)
        name = KEEP if n % 10 == 0 else f"E-{n:05d}"
        for event in case.touch(n, ts, name):
            engine.process(lane, event)
            yield case.entities(detector)


@pytest.mark.parametrize("kind", list(CASES))
def test_past_the_cap_the_least_recently_active_go(kind: str):
    case = CASES[kind]
    detector = case.make()
    detector.max_entities = CAP
    sizes = [len(entities) for entities in flood(case, detector)]
    entities = case.entities(detector)
    assert max(sizes) <= CAP
    assert min(sizes[len(sizes) // 2 :]) >= int(EVICT_TO * CAP)  # evicted in one go, not all
    assert detector.evicted >= FED * 0.9 - CAP  # 900 others and KEEP came in
    assert detector.evicted + len(entities) >= FED * 0.9
    # The most recently active survive: the newest, and KEEP, touched all along.
    newest = [f"E-{n:05d}" for n in range(FED - 60, FED) if n % 10]
    assert all(case.key(name) in entities for name in [*newest, KEEP])
    assert case.key("E-00001") not in entities


def test_moratorium_violation_keeps_no_entity_so_nothing_to_evict():
    detector = MoratoriumViolation()
    detector.max_entities = CAP
    engine = Engine([detector])
    for n in range(FED):
        engine.process("inspections", inspection(n, T0 + timedelta(minutes=n), f"B-{n}"))
    assert detector.n_entities == 0
    assert detector.evicted == 0
    assert engine.evictions() == {"moratorium_violation": 0}


def test_the_payer_ledger_keeps_the_accounts_paid_most_recently():
    ledger = Payers(idle_days=10_000)  # its own idle sweep out of the way
    ledger.max_entities = CAP
    for n in range(FED):  # a day apart: the ledger knows an account's last day
        name = KEEP if n % 10 == 0 else f"E-{n:05d}"
        ledger.observe(payment(n, T0 + timedelta(days=n), f"P-{n}", name), 86400.0 * n)
        assert len(ledger) <= CAP
    assert ledger._seen.keys() == ledger._day_of.keys()
    assert ledger.has_paid("P-990", KEEP) and ledger.has_paid("P-999", "E-00999")
    assert not ledger.has_paid("P-1", "E-00001")
    # 900 others and KEEP received; 1,000 payers paid (whom they paid is kept too).
    assert ledger.evicted + len(ledger) + len(ledger._paid) == 901 + FED
    assert len(ledger._paid) <= CAP and ledger.paid_to("P-999", "E-00999")


def test_payment_anomaly_bounds_the_first_payments_of_a_flooded_day():
    detector = PaymentAnomaly()
    detector.max_entities = CAP
    engine = Engine([detector])
    for n in range(FED):  # every payer and payee new: each a first payment of the day
        engine.process("payments", payment(n, T0 + timedelta(minutes=n), f"P-{n}", f"E-{n}"))
        assert len(detector._first) <= CAP
    assert detector.evicted >= 2 * FED - CAP
    assert "E-999" in detector._first and "E-1" not in detector._first


def test_salary_arrears_bounds_open_findings():
    detector = SalaryArrears()
    detector.max_entities = CAP
    engine = Engine([detector])
    for n in range(FED):  # accrued, never paid: one finding each once the deadline passed
        engine.process("payroll", payroll(n, T0 + timedelta(seconds=n), f"E-{n}"))
        assert len(detector._books) <= CAP
    late = T0 + timedelta(days=15)  # past 2023-02's deadline (10 March) and the lateness
    engine.process("payroll", payroll(FED, late, "OTHER", period="2023-03"))
    assert 0 < len(detector._open) <= CAP
    assert detector.evicted >= FED - CAP


def test_an_inspector_evicted_at_the_cap_leaves_no_peer_or_finding_behind():
    detector = InspectorAnomaly()
    detector.max_entities = CAP
    engine = Engine([detector])
    for n, event in enumerate(hostile("inspections", FED)):
        engine.process("inspections-by-authority", event)
        if n == 10:
            detector._raised[event.inspector] = (event.event_id, "warning")
    members = set().union(*(peers.members for peers in detector._peers.values()))
    assert members == set(detector._inspectors)
    assert len(detector._peers) <= CAP and set(detector._raised) <= members
    assert detector._raised == {}  # the early one's finding went with it


# --- idle pruning by the partition's own event time -----------------------------------


def test_inspector_anomaly_forgets_an_idle_inspector_its_finding_and_its_authority():
    detector = InspectorAnomaly()
    engine = Engine([detector])
    idle = max(detector.window_days + BEFORE_DAYS, detector.repeat_days)
    engine.process("inspections-by-authority", inspection(0, T0, "B-0", "I-OLD", "A-OLD"))
    detector._raised["I-OLD"] = ("i-0", "warning")
    for day in range(1, int(idle) + 3):  # another inspector works on, day after day
        engine.process(
            "inspections-by-authority", inspection(day, T0 + timedelta(days=day), f"B-{day}")
        )
        gone = "I-OLD" not in detector._inspectors
        assert gone == (day > idle), day
    assert "I-OLD" not in detector._raised and "A-OLD" not in detector._peers
    assert detector._peers["A-1"].members == {"I-1"}
    assert detector.evicted == 0  # forgotten for idleness, not evicted at the cap


def test_mass_layoff_forgets_an_employer_silent_past_its_window_and_headcount():
    detector = MassLayoff()
    engine = Engine([detector])
    idle = detector.window_days + detector.link_days + FORGET_AFTER_DAYS + 1
    engine.process("payroll", payroll(0, T0, "E-OLD"))
    for day in range(1, int(idle) + 3):
        engine.process("payroll", payroll(day, T0 + timedelta(days=day), "E-ON", "hire"))
        assert ("E-OLD" not in detector._employers) == (day > idle), day
    assert detector.evicted == 0


def test_payroll_anomaly_forgets_an_employer_silent_for_over_a_year():
    detector = PayrollAnomaly()
    engine = Engine([detector])
    engine.process("payroll", payroll(0, T0, "E-OLD"))
    for day in range(IDLE_DAYS - 2, IDLE_DAYS + 3):
        engine.process("payroll", payroll(day, T0 + timedelta(days=day), "E-ON"))
        assert ("E-OLD" not in detector._employers) == (day > IDLE_DAYS), day
    assert "E-ON" in detector._employers


def test_salary_arrears_forgets_an_open_finding_once_its_employer_is_long_gone():
    detector = SalaryArrears()
    engine = Engine([detector])
    engine.process("payroll", payroll(0, T0, "E-OLD"))  # 2023-02 wages, never paid
    engine.process("payroll", payroll(1, T0 + timedelta(days=15), "E-ON", period="2023-03"))
    [finding] = detector._open.values()
    last_due = datetime.fromtimestamp(finding.last_due, UTC)
    for n, day in enumerate(range(FINDING_IDLE_DAYS - 2, FINDING_IDLE_DAYS + 3)):
        ts = last_due + timedelta(days=day, hours=1)
        engine.process("payroll", payroll(10 + n, ts, "E-ON", "hire"))
        assert ("E-OLD" not in detector._open) == (day >= FINDING_IDLE_DAYS), day


def test_a_pruned_employer_starts_afresh_and_judges_a_layoff_on_the_staff_shown_anew():
    # After a long silence the old headcount is no yardstick: the cut waits for the
    # staff to be shown again (an accrual), as in a stream's first month.
    detector = MassLayoff()
    engine = Engine([detector])
    for k in range(9):
        engine.process("payroll", payroll(k, T0, "E-1", employee=f"W-{k}"))
    back = T0 + timedelta(days=200)
    engine.process("payroll", payroll(100, back, "E-ON", "hire"))
    assert "E-1" not in detector._employers
    cuts = [
        engine.process(
            "payroll",
            payroll(
                200 + k,
                back + timedelta(hours=k + 1),
                "E-1",
                "termination",
                employee=f"W-{k}",
                reason="redundancy",
            ),
        ).alerts
        for k in range(3)
    ]
    assert cuts == [(), (), ()]
    staff = [
        payroll(300 + k, back + timedelta(days=2), "E-1", employee=f"W-{k}") for k in range(3, 9)
    ]
    staff.append(payroll(400, back + timedelta(days=4), "E-1", employee="W-3"))  # a day on
    alerts = [a for event in staff for a in engine.process("payroll", event).alerts]
    assert [a.evidence["headcount_before"] for a in alerts] == [9]


# --- every shipped detector against hostile growth ---------------------------------------


def hostile(stream: str, count: int, seed: int = 14) -> Iterator[Any]:
    """``count`` events naming random entities (no two alike), within a day."""
    rng = random.Random(seed)

    def new() -> str:
        return f"X-{rng.getrandbits(64):016x}"

    for n in range(count):
        ts = T0 + timedelta(seconds=n)
        if stream == "payments":
            yield payment(n, ts, new(), new(), rng.choice([5_000.0, 25_000.0, 90_000.0]))
        elif stream == "payroll":
            kind = rng.choice(["accrual", "payment", "hire", "termination"])
            extra = {"reason": "redundancy"} if kind == "termination" else {}
            yield payroll(n, ts, new(), kind, employee=new(), **extra)
        else:
            yield inspection(n, ts, new(), new(), new())


SHIPPED = [pytest.param(i, id=d.kind) for i, d in enumerate(build_engine().detectors)]


@pytest.mark.parametrize("index", SHIPPED)
def test_every_shipped_detector_stays_bounded_under_a_flood_of_new_ids(index: int):
    detector = build_engine().detectors[index]
    cap = 1_000
    detector.max_entities = cap
    memories: list[Any] = [detector]
    payers = getattr(detector, "payers", None)
    if payers is not None:
        payers.max_entities = cap
        memories.append(payers)
    engine = Engine([detector])
    lane = lane_of(detector)
    for event in hostile(detector.stream, 50_000):
        engine.process(lane, event)
    for memory in memories:
        for name, value in vars(memory).items():
            if isinstance(value, dict) and name not in ("_due_cache", "_period_end"):
                assert len(value) <= cap, f"{type(memory).__name__}.{name}: {len(value):,}"
    if detector.kind != "moratorium_violation":
        assert detector.evicted > 0 or (payers is not None and payers.evicted > 0)
    counts = engine.evictions()
    assert counts[detector.kind] == detector.evicted
    if payers is not None:
        assert counts["payer_ledger"] == payers.evicted > 0


def test_engine_evictions_sum_each_kind_over_partitions_and_the_ledger_once():
    detectors = build_engine().detectors
    for detector in detectors:
        detector.max_entities = 50
        if getattr(detector, "payers", None) is not None:
            detector.payers.max_entities = 50
    engine = Engine(detectors)  # every partition a copy of these, caps included
    for partition in (0, 1):
        for event in hostile("payments", 500, seed=partition):
            engine.process("payments", event, partition)
    counts = engine.evictions()
    by_partition = [engine.partition("payments", p).detectors for p in (0, 1)]
    ledgers = [dets[0].payers for dets in by_partition]
    assert all(d[1].payers is ledger for d, ledger in zip(by_partition, ledgers, strict=True))
    assert counts["payer_ledger"] == sum(ledger.evicted for ledger in ledgers) > 0
    for index, detector in enumerate(by_partition[0]):
        assert counts[detector.kind] == detector.evicted + by_partition[1][index].evicted
    assert counts["mule_account"] > 0 and counts["payment_anomaly"] > 0
