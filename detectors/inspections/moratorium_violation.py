"""``moratorium_violation``: an inspection the moratorium prohibits.

Typology
--------
What makes the pattern: **one inspection, of a business the moratorium
protects, started on a day inside a window, on a ground the moratorium does
not exempt**. It is a rule, not a statistic: nothing about the inspector's
or the business's history enters into it.

- A presidential decree of December 2019 put a moratorium on inspections (and
  on preventive control with a visit) of micro and small businesses from
  1 January 2020 to 1 January 2023; the domain notes say it cut inspections
  about five times in 2020 and was aimed at arbitrary inspections that
  oppress entrepreneurs. The contract's default window, sizes and exempt
  grounds restate it, and ``[moratorium]`` in ``detectors/rules.toml`` holds
  them, so a changed or prolonged moratorium is a configuration change.
- Grounds such as a threat to life or health, an environmental threat,
  national security, a prosecutor's order, a criminal case or a taxpayer's own
  request stayed lawful (the contract's exempt bases). A ``follow_up`` is not
  among them: checking an earlier order at a small business waits too.
- Dates are local calendar dates (Asia/Almaty by default, through the tz
  database): an inspection at 00:01 on 1 January 2020 in Almaty is inside,
  one at 23:59 on 31 December 2019 is not, whatever offset its timestamp is
  written in.

Lawful look-alikes, which stay quiet: the same visit the day before the
start or on the day of the end; a micro or small business inspected on an
exempt ground; a medium or large business inspected on any ground.

A habit of such inspections is an ``inspector_anomaly``; many visits to one
business a ``repeat_inspection``.

How it is measured
------------------
The rule is exact (contract): an inspection of a covered business size whose
*local* start date falls in a moratorium window ``[start, end)`` is prohibited
unless its basis is exempt. One alert per prohibited inspection.

The window bounds are turned once into absolute instants (local midnight of
``start`` and of ``end``), so the per-event check is two comparisons of epoch
seconds; Asia/Almaty's move from UTC+6 to UTC+5 in March 2024 is honoured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from detectors.base import Context, Detector, make_alert
from detectors.errors import ConfigError
from detectors.events import Alert, Inspection

#: Contract default: the moratorium on inspecting small businesses, 2020 to 2022.
DEFAULT_WINDOWS: tuple[tuple[date, date], ...] = ((date(2020, 1, 1), date(2023, 1, 1)),)
#: Sizes the moratorium protects (contract default).
DEFAULT_SIZES: frozenset[str] = frozenset({"micro", "small"})
#: Legal grounds on which inspecting stayed allowed (contract default).
DEFAULT_EXEMPT_BASES: frozenset[str] = frozenset(
    {
        "threat_to_life_health",
        "environmental_threat",
        "national_security",
        "prosecutor_order",
        "criminal_case",
        "taxpayer_request",
    }
)
DEFAULT_TIMEZONE = "Asia/Almaty"


@dataclass(frozen=True)
class MoratoriumRules:
    """Which inspections a moratorium prohibits.

    ``windows`` are half-open ``[start, end)`` ranges of local dates.
    """

    windows: tuple[tuple[date, date], ...] = DEFAULT_WINDOWS
    sizes: frozenset[str] = field(default=DEFAULT_SIZES)
    exempt_bases: frozenset[str] = field(default=DEFAULT_EXEMPT_BASES)

    def __post_init__(self) -> None:
        for start, end in self.windows:
            if not start < end:
                raise ConfigError(
                    f"moratorium window {start}..{end} is empty: the start date must come "
                    "before the end date (windows are [start, end))"
                )


class MoratoriumCalendar:
    """Answers "is this inspection prohibited?" in two comparisons of epoch seconds.

    The window bounds are turned once into absolute instants: local midnight of
    ``start`` and of ``end`` in ``timezone``, through the tz database.
    """

    def __init__(self, rules: MoratoriumRules, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.rules = rules
        self.timezone = timezone
        tz = ZoneInfo(timezone)
        self.tz = tz
        self.bounds = tuple(
            (_local_midnight(start, tz), _local_midnight(end, tz), start, end)
            for start, end in rules.windows
        )

    def window(self, ts: float, size: str, basis: str) -> tuple[date, date] | None:
        """The moratorium window that prohibits this inspection, or None if lawful."""
        rules = self.rules
        if size not in rules.sizes or basis in rules.exempt_bases:
            return None
        for lo, hi, start, end in self.bounds:
            if lo <= ts < hi:
                return start, end
        return None


class MoratoriumViolation(Detector):
    """Flags each inspection that the inspection moratorium prohibits.

    Parameters:
        rules: moratorium windows, covered sizes and exempt bases.
        timezone: IANA zone whose calendar dates the windows are in.

    >>> from datetime import datetime, timezone
    >>> from detectors.base import Context
    >>> det = MoratoriumViolation()
    >>> def inspection(ts, basis="routine", size="micro"):
    ...     return Inspection(event_id="e", ts=datetime.fromisoformat(ts), business="B-7",
    ...         business_size=size, authority="A", inspector="I", kind="unscheduled",
    ...         basis=basis)
    >>> def check(ev):
    ...     ctx = Context(None); ctx.ts = ev.ts.timestamp(); return det.update(ev, ctx)
    >>> [a.reasons[0] for a in check(inspection("2019-12-31T18:01:00Z"))]  # 00:01 local
    ["unscheduled inspection of a micro business started on 2020-01-01 (Asia/Almaty), \
inside the moratorium 2020-01-01 to 2022-12-31; basis 'routine' is not an exempt ground"]
    >>> check(inspection("2019-12-31T23:59:00+06:00"))  # the day before, local time
    []
    >>> check(inspection("2021-06-01T10:00:00+06:00", basis="threat_to_life_health"))
    []
    >>> check(inspection("2021-06-01T10:00:00+06:00", size="large"))
    []
    """

    kind = "moratorium_violation"
    stream = "inspections"

    def __init__(
        self, rules: MoratoriumRules | None = None, timezone: str = DEFAULT_TIMEZONE
    ) -> None:
        self.rules = rules or MoratoriumRules()
        self.timezone = timezone
        self._calendar = MoratoriumCalendar(self.rules, timezone)

    def update(self, event: Inspection, ctx: Context) -> list[Alert]:
        window = self._calendar.window(ctx.ts, event.business_size, event.basis)
        return [self._alert(event, *window)] if window else []

    def _alert(self, event: Inspection, start: date, end: date) -> Alert:
        local = event.ts.astimezone(self._calendar.tz)
        last_day = end - timedelta(days=1)
        reason = (
            f"{event.kind} inspection of a {event.business_size} business started on "
            f"{local.date().isoformat()} ({self.timezone}), inside the moratorium "
            f"{start.isoformat()} to {last_day.isoformat()}; basis '{event.basis}' is not an "
            "exempt ground"
        )
        return make_alert(
            kind=self.kind,
            entity=event.business,
            finding=event.event_id,
            ts=event.ts,
            severity="critical",
            score=1.0,
            reasons=[reason],
            evidence={
                "local_start": local.isoformat(),
                "timezone": self.timezone,
                "moratorium_window": [start.isoformat(), end.isoformat()],
                "business_size": event.business_size,
                "inspection_kind": event.kind,
                "basis": event.basis,
                "authority": event.authority,
                "inspector": event.inspector,
            },
            event_ids=[event.event_id],
        )


def _local_midnight(day: date, tz: ZoneInfo) -> float:
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()
