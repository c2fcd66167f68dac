"""The data contract in code: input events and the alert record.

These records mirror ``shared/contract.md`` field for field; the JSON Schemas in
``streams/schemas/`` say the same thing for other languages, and
``tests/streams/test_schemas.py`` checks that both accept and reject the same
documents.

The records are ``msgspec`` structs so that the codec decodes and validates
bytes straight into them (no intermediate dict) and detectors read plain
attributes. Constraints the type system cannot state (``payee != payer``,
fields required by the payroll event's ``type``) are checked in
``__post_init__``; msgspec reports a failure there as a validation error.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

# --- shared field types -------------------------------------------------------

Id = Annotated[str, Meta(min_length=1, max_length=64)]
EventId = Annotated[str, Meta(min_length=1, max_length=128)]
# tz=True: a timestamp without an offset is invalid (event time must be absolute).
Timestamp = Annotated[datetime, Meta(tz=True)]
# Tenge. JSON has no NaN or Infinity, and the bounds exclude 0 and absurd sums.
Amount = Annotated[float, Meta(gt=0, lt=1e13)]
# Exactly seven characters: Python's `$` also matches before a final newline, so
# "2021-05\n" passed the pattern alone (found by the fuzz tests).
Period = Annotated[str, Meta(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", min_length=7, max_length=7)]

Channel = Literal["card", "transfer", "qr", "cash_in", "cash_out"]
PayrollType = Literal["accrual", "payment", "hire", "termination"]
TerminationReason = Literal["redundancy", "voluntary", "misconduct", "contract_end", "other"]
BusinessSize = Literal["micro", "small", "medium", "large"]
InspectionKind = Literal["scheduled", "unscheduled", "preventive"]

Severity = Literal["info", "warning", "critical"]
#: Where a finding stands (:class:`Alert`): its first alert, a graver one, its end.
FindingStatus = Literal["open", "escalated", "resolved"]
#: The alert schema's version (``streams/schemas/alert.schema.json``), in every alert
#: and in a Kafka header of every alert record. 2 added the finding's life.
ALERT_SCHEMA_VERSION = 2
Domain = Literal["payments", "payroll", "inspections"]
EntityType = Literal["account", "employer", "business", "inspector"]
AlertKind = Literal[
    "pyramid_scheme",
    "mule_account",
    "payment_anomaly",
    "salary_arrears",
    "payroll_anomaly",
    "mass_layoff",
    "moratorium_violation",
    "repeat_inspection",
    "inspector_anomaly",
]

#: The logical input streams, in a fixed order.
STREAMS: tuple[str, ...] = ("payments", "payroll", "inspections")

#: Inspections regrouped by authority: where ``inspector_anomaly`` sees every
#: visit of every inspector of an authority, whatever business it was.
BY_AUTHORITY = "inspections-by-authority"

#: What detectors read (``Detector.lane``): a stream as keyed (payments by
#: account, which the worker repartitions), or a stream regrouped.
LANES: tuple[str, ...] = (*STREAMS, BY_AUTHORITY)

#: Which domain and entity type each alert kind belongs to (contract table).
KIND_DOMAIN: dict[str, tuple[str, str]] = {
    "pyramid_scheme": ("payments", "account"),
    "mule_account": ("payments", "account"),
    "payment_anomaly": ("payments", "account"),
    "salary_arrears": ("payroll", "employer"),
    "payroll_anomaly": ("payroll", "employer"),
    "mass_layoff": ("payroll", "employer"),
    "moratorium_violation": ("inspections", "business"),
    "repeat_inspection": ("inspections", "business"),
    "inspector_anomaly": ("inspections", "inspector"),
}

SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}

#: Most event ids one alert may cite (contract: ``event_ids`` <= 100).
MAX_ALERT_EVENT_IDS = 100


def day_after_period(period: str, day: int) -> date:
    """The calendar date ``day`` of the month after ``period`` (``YYYY-MM``).

    >>> day_after_period("2021-12", 10)
    datetime.date(2022, 1, 10)
    """
    year, month = int(period[:4]), int(period[5:7])
    return date(year + month // 12, month % 12 + 1, day)


#: Payroll types that carry money and so need ``period`` and ``amount``.
MONEY_TYPES = frozenset({"accrual", "payment"})


# --- input events -------------------------------------------------------------


class Payment(Struct, frozen=True, gc=False):
    """A transfer of money from ``payer`` to ``payee`` (stream ``payments``, key ``payer``)."""

    event_id: EventId
    ts: Timestamp
    payer: Id
    payee: Id
    amount: Amount
    channel: Channel = "transfer"
    purpose: Annotated[str, Meta(max_length=256)] | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if self.payee == self.payer:
            raise ValueError("payee equals payer")


class PayrollEvent(Struct, frozen=True, gc=False):
    """An accrual, payment, hire or termination (stream ``payroll``, key ``employer``)."""

    event_id: EventId
    ts: Timestamp
    type: PayrollType
    employer: Id
    employee: Id
    period: Period | msgspec.UnsetType = msgspec.UNSET
    amount: Amount | msgspec.UnsetType = msgspec.UNSET
    reason: TerminationReason | msgspec.UnsetType = msgspec.UNSET

    def __post_init__(self) -> None:
        if self.type in MONEY_TYPES:
            if self.period is msgspec.UNSET:
                raise ValueError(f"missing field: period (required for type {self.type})")
            if self.amount is msgspec.UNSET:
                raise ValueError(f"missing field: amount (required for type {self.type})")
        elif self.type == "termination" and self.reason is msgspec.UNSET:
            raise ValueError("missing field: reason (required for type termination)")


class Inspection(Struct, frozen=True, gc=False):
    """The start of an inspection of ``business`` (stream ``inspections``, key ``business``)."""

    event_id: EventId
    ts: Timestamp
    business: Id
    business_size: BusinessSize
    authority: Id
    inspector: Id
    kind: InspectionKind
    basis: Annotated[str, Meta(min_length=1, max_length=64)]


Side = Literal["in", "out", "both"]


class Activity(Struct, frozen=True, gc=False):
    """A payment as the accounts on its sides see it: what payments detectors read.

    Payments arrive keyed by payer, but a pyramid or a mule shows in what an
    account *receives* as much as in what it sends. Each payment is therefore
    seen from both sides: money in for ``payee``, money out for ``payer``.
    Offline (and whenever one process sees every payment) one activity carries
    both sides (``side="both"``); the live worker repartitions payments by
    account and, when payee and payer live in different partitions, hands each
    partition only its own side (``"in"`` or ``"out"``). Either way every
    account sees each of its payments exactly once.
    """

    payment: Payment
    side: Side = "both"

    @property
    def event_id(self) -> str:
        """Duplicate key: the two halves of one payment are different activities."""
        if self.side == "both":
            return self.payment.event_id
        return f"{self.payment.event_id}#{self.side}"

    @property
    def ts(self) -> datetime:
        return self.payment.ts

    @property
    def incoming(self) -> bool:
        """Does this activity carry the payee's side (money in)?"""
        return self.side != "out"

    @property
    def outgoing(self) -> bool:
        """Does this activity carry the payer's side (money out)?"""
        return self.side != "in"


Event = Payment | PayrollEvent | Inspection

#: Record type of each logical stream.
EVENT_TYPES: dict[str, type[Payment] | type[PayrollEvent] | type[Inspection]] = {
    "payments": Payment,
    "payroll": PayrollEvent,
    "inspections": Inspection,
}

#: Field holding each stream's partitioning entity (the Kafka key).
KEY_FIELDS: dict[str, str] = {
    "payments": "payer",
    "payroll": "employer",
    "inspections": "business",
}


# --- output -------------------------------------------------------------------


class Alert(Struct, frozen=True, gc=False):
    """One finding, published on the alert topic keyed by ``entity``.

    ``alert_id`` is derived from the finding itself (see
    :func:`detectors.base.alert_id`), so replaying the same stream yields the
    same ids and consumers can de-duplicate on them.

    A finding has a life: its first alert is ``open``, a later one at a higher
    severity is ``escalated``, and one saying the pattern has ended is
    ``resolved``; every alert of one finding carries the same ``finding_id``,
    and each after the first names in ``supersedes`` the alert it follows. The
    four fields came with schema version 2; an alert written before them (a
    version 1 file) reads with their defaults.
    """

    alert_id: str
    kind: AlertKind
    domain: Domain
    entity: Id
    entity_type: EntityType
    ts: Timestamp
    severity: Severity
    score: Annotated[float, Meta(ge=0.0, le=1.0)]
    reasons: Annotated[list[str], Meta(min_length=1)]
    evidence: dict[str, Any]
    event_ids: Annotated[list[EventId], Meta(max_length=MAX_ALERT_EVENT_IDS)]
    finding_id: str = ""
    supersedes: str | None = None
    status: FindingStatus = "open"
    schema_version: int = 1
