"""Which detectors run, with which parameters: the one place both paths build them.

The live worker (``streams.worker``) and the offline backtest (``streams.backtest``)
both call :func:`build_engine`, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.engine import DEFAULT_ALLOWED_LATENESS, DEFAULT_DEDUP_MAX_IDS, Engine
from detectors.inspections.inspector_anomaly import InspectorAnomaly
from detectors.inspections.moratorium_violation import DEFAULT_TIMEZONE, MoratoriumViolation
from detectors.inspections.repeat_inspection import RepeatInspection
from detectors.inspections.rules import InspectionRules
from detectors.payments.ledger import Payers
from detectors.payments.mule_account import MuleAccount
from detectors.payments.payment_anomaly import PaymentAnomaly
from detectors.payments.pyramid_scheme import PyramidScheme
from detectors.payroll.mass_layoff import MassLayoff
from detectors.payroll.payroll_anomaly import PayrollAnomaly
from detectors.payroll.salary_arrears import SalaryArrears


@dataclass(frozen=True)
class DetectionConfig:
    """Parameters of the detection itself (no Kafka, no I/O)."""

    timezone: str = DEFAULT_TIMEZONE
    allowed_lateness: float = DEFAULT_ALLOWED_LATENESS
    dedup_max_ids: int = DEFAULT_DEDUP_MAX_IDS
    inspections: InspectionRules = field(default_factory=InspectionRules)


def build_engine(config: DetectionConfig | None = None) -> Engine:
    """An engine running every shipped detector."""
    config = config or DetectionConfig()
    rules = config.inspections
    moratorium, repeat, inspector = rules.moratorium, rules.repeat, rules.inspector
    payers = Payers()  # who has paid whom: one memory for both payments detectors
    detectors = [
        PyramidScheme(payers=payers),
        MuleAccount(payers=payers),
        PaymentAnomaly(),
        SalaryArrears(timezone=config.timezone),
        PayrollAnomaly(),
        MassLayoff(),
        MoratoriumViolation(moratorium, timezone=config.timezone),
        RepeatInspection(
            window_days=repeat.window_days,
            alert_at=repeat.alert_at,
            critical_at=repeat.critical_at,
            follow_up_weight=repeat.follow_up_weight,
            exempt_weight=repeat.exempt_weight,
            exempt_bases=moratorium.exempt_bases,
        ),
        InspectorAnomaly(
            moratorium,
            timezone=config.timezone,
            window_days=inspector.window_days,
            repeat_days=inspector.repeat_days,
            z_alert=inspector.z_alert,
            warm_up_days=inspector.warm_up_days,
            min_peers=inspector.min_peers,
        ),
    ]
    return Engine(
        detectors,
        allowed_lateness=config.allowed_lateness,
        dedup_max_ids=config.dedup_max_ids,
    )
