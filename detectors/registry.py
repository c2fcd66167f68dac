"""Which detectors run, with which parameters: the one place both paths build them.

The live worker (``streams.worker``) and the offline backtest (``streams.backtest``)
both call :func:`build_engine`, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from detectors.base import Detector
from detectors.engine import (
    DEFAULT_ALLOWED_LATENESS,
    DEFAULT_DEDUP_MAX_IDS,
    DEFAULT_FUTURE_SKEW,
    Engine,
)
from detectors.inspections.inspector_anomaly import InspectorAnomaly
from detectors.inspections.moratorium_violation import DEFAULT_TIMEZONE, MoratoriumViolation
from detectors.inspections.repeat_inspection import RepeatInspection
from detectors.live_rules import RulesChange
from detectors.payments.ledger import Payers
from detectors.payments.mule_account import MuleAccount
from detectors.payments.payment_anomaly import PaymentAnomaly
from detectors.payments.pyramid_scheme import PyramidScheme
from detectors.payroll.mass_layoff import MassLayoff
from detectors.payroll.payroll_anomaly import PayrollAnomaly
from detectors.payroll.salary_arrears import SalaryArrears
from detectors.rules import PARAMS, Rules


@dataclass(frozen=True)
class DetectionConfig:
    """Parameters of the detection itself (no Kafka, no I/O)."""

    timezone: str = DEFAULT_TIMEZONE
    allowed_lateness: float = DEFAULT_ALLOWED_LATENESS
    dedup_max_ids: int = DEFAULT_DEDUP_MAX_IDS
    #: One cap on the entities every detector (and the payer ledger) tracks per partition;
    #: None: each its own default (:data:`detectors.base.DEFAULT_MAX_ENTITIES`).
    max_entities: int | None = None
    #: Per stream, how far ahead of its input partition's time an event is ``future_ts``.
    future_skew: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FUTURE_SKEW))
    #: Every kind's parameters, which kinds run, the moratorium (``detectors/rules.toml``).
    rules: Rules = field(default_factory=Rules)


def build_engine(
    config: DetectionConfig | None = None, changes: Iterable[RulesChange] = ()
) -> Engine:
    """An engine running every shipped detector the rules leave enabled.

    Each detector is built from its kind's parameter object in the rules file
    (:mod:`detectors.rules`). Every kind is built, and one with ``enabled =
    false`` is not run, so that a rules change (``changes``, or later
    :meth:`Engine.set_changes`: :mod:`detectors.live_rules`) can switch it on.
    """
    config = config or DetectionConfig()
    rules, timezone = config.rules, config.timezone
    moratorium = rules.moratorium
    payers = Payers()  # who has paid whom: one memory for the payments detectors
    makers: dict[str, Callable[[Any], Detector]] = {
        "pyramid_scheme": lambda p: PyramidScheme(**asdict(p), payers=payers),
        "mule_account": lambda p: MuleAccount(**asdict(p), payers=payers),
        "payment_anomaly": lambda p: PaymentAnomaly(**asdict(p), payers=payers),
        "salary_arrears": lambda p: SalaryArrears(**asdict(p), timezone=timezone),
        "payroll_anomaly": lambda p: PayrollAnomaly(**asdict(p)),
        "mass_layoff": lambda p: MassLayoff(**asdict(p)),
        "moratorium_violation": lambda p: MoratoriumViolation(moratorium, timezone=timezone),
        "repeat_inspection": lambda p: RepeatInspection(
            **asdict(p), exempt_bases=moratorium.exempt_bases
        ),
        "inspector_anomaly": lambda p: InspectorAnomaly(moratorium, timezone=timezone, **asdict(p)),
    }
    assert list(makers) == list(PARAMS), "a kind without a maker, or one out of order"
    detectors = [make(rules.kind(name).params) for name, make in makers.items()]
    if config.max_entities is not None:
        for bounded in (*detectors, payers):
            bounded.max_entities = config.max_entities
    return Engine(
        detectors,
        allowed_lateness=config.allowed_lateness,
        dedup_max_ids=config.dedup_max_ids,
        future_skew=config.future_skew,
        rules=rules,
        changes=changes,
    )
