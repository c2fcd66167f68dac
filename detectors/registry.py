"""Which detectors run, with which parameters: the one place both paths build them.

The live worker (``streams.app``) and the offline backtest (``streams.backtest``)
both call :func:`build_engine`, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors.engine import DEFAULT_ALLOWED_LATENESS, DEFAULT_DEDUP_MAX_IDS, Engine
from detectors.inspections.inspector import InspectorAnomaly
from detectors.inspections.moratorium import DEFAULT_TIMEZONE, MoratoriumRules, MoratoriumViolation
from detectors.inspections.repeat import RepeatInspection


@dataclass(frozen=True)
class DetectionConfig:
    """Parameters of the detection itself (no Kafka, no I/O)."""

    timezone: str = DEFAULT_TIMEZONE
    allowed_lateness: float = DEFAULT_ALLOWED_LATENESS
    dedup_max_ids: int = DEFAULT_DEDUP_MAX_IDS
    moratorium: MoratoriumRules = field(default_factory=MoratoriumRules)


def build_engine(config: DetectionConfig | None = None) -> Engine:
    """An engine running every shipped detector."""
    config = config or DetectionConfig()
    rules = config.moratorium
    detectors = [
        MoratoriumViolation(rules, timezone=config.timezone),
        RepeatInspection(exempt_bases=rules.exempt_bases),
        InspectorAnomaly(rules, timezone=config.timezone),
    ]
    return Engine(
        detectors,
        allowed_lateness=config.allowed_lateness,
        dedup_max_ids=config.dedup_max_ids,
    )
