"""Rules changed while the detectors run: each change takes effect at a stated event time.

A *change* (:class:`RulesChange`) is a named piece of a rules file (usually a
partial one: ``[mule_account]`` with ``min_payers = 3``, or ``enabled =
false``) and the event time from which it holds. The live worker reads them
from a compacted topic, ``kuzet backtest --rules-changes`` from a file; both
hand the same set to the engine, which lays them, in order of their time
(then name), over the rules file it started with: a :class:`Timeline` of the
rules in force from each time on. Each change is validated against the rules
in force at its time (:func:`detectors.rules.overlay`); one that does not
validate is refused, and the rules before it stay.

Each partition of the engine applies a step of the timeline before it judges
its first event at or after the step's time (:class:`detectors.engine.Partition`),
so the same records in the same order give the same alerts live and offline.

>>> from detectors.rules import Rules
>>> raise_bar = decode_change(b"raise", b'{"effective": "2024-03-01T00:00:00+05:00",'
...     b' "rules": "[mule_account]\\\\nmin_payers = 3"}')
>>> typo = decode_change(b"typo", b'{"effective": "2024-04-01T00:00:00Z",'
...     b' "rules": "[mule_account]\\\\nmin_payres = 3"}')
>>> timeline = Timeline(Rules(), [typo, raise_bar])
>>> [timeline.rules_at(t).mule_account.params.min_payers for t in (0.0, 1709233200.0, 2e9)]
[2, 3, 3]
>>> timeline.verdicts["raise"].applied, timeline.verdicts["typo"].applied
(True, False)
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from detectors.errors import ConfigError
from detectors.rules import Rules, overlay

#: Longest change name (the Kafka key): a name, not a document.
MAX_NAME = 128
#: Longest rules text of one change: a whole rules file is about 9 KB.
MAX_RULES_TEXT = 64 * 1024
#: Longest note.
MAX_NOTE = 1024
APPLIED = "applied"
REFUSED = "refused"


@dataclass(frozen=True)
class RulesChange:
    """One change: its name, the event time it holds from, the rules text laid over."""

    name: str
    effective: float  #: epoch seconds
    rules: str
    note: str = ""
    #: ``effective`` as written (RFC 3339), for people.
    written: str = ""

    def record(self) -> dict[str, str]:
        """The record's value, as JSON-able data (what :func:`decode_change` reads)."""
        value = {"effective": self.written, "rules": self.rules}
        if self.note:
            value["note"] = self.note
        return value


def parse_time(text: object, what: str = "effective") -> float:
    """An RFC 3339 time with an offset, as epoch seconds; :class:`ConfigError` otherwise."""
    if not isinstance(text, str):
        raise ConfigError(f"{what}: expected an RFC 3339 time like 2024-03-01T00:00:00+05:00")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ConfigError(
            f"{what}: {text!r} is not an RFC 3339 time (like 2024-03-01T00:00:00+05:00)"
        ) from None
    if moment.tzinfo is None:
        raise ConfigError(f"{what}: {text!r} has no UTC offset: add Z or +05:00")
    return moment.timestamp()


def make_change(name: str, effective: str, rules: str, note: str = "") -> RulesChange:
    """A change checked for shape (not yet against the rules: :class:`Timeline` does that)."""
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ConfigError(f"change name {name!r}: expected 1-{MAX_NAME} printable characters")
    if not isinstance(rules, str) or not rules.strip():
        raise ConfigError(f"change {name!r}: 'rules' must be the text of a rules file (TOML)")
    if len(rules) > MAX_RULES_TEXT:
        raise ConfigError(f"change {name!r}: rules text over {MAX_RULES_TEXT} characters")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise ConfigError(f"change {name!r}: 'note' must be text of at most {MAX_NOTE} characters")
    at = parse_time(effective, f"change {name!r}: effective")
    return RulesChange(name, at, rules, note, effective)


def decode_change(key: bytes | None, value: bytes) -> RulesChange:
    """A change from a record of the rules topic (key: its name; value: JSON).

    The value is ``{"effective": RFC 3339, "rules": TOML text, "note": text}``
    (``note`` optional); anything else is a :class:`ConfigError` saying what.
    """
    try:
        name = (key or b"").decode()
    except UnicodeDecodeError:
        raise ConfigError("a rules change's key is not UTF-8") from None
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"change {name!r}: the value is not JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"change {name!r}: the value must be a JSON object")
    unknown = set(data) - {"effective", "rules", "note"}
    if unknown:
        raise ConfigError(
            f"change {name!r}: unknown field(s) {', '.join(sorted(unknown))} "
            "(expected effective, rules, note)"
        )
    if "effective" not in data or "rules" not in data:
        raise ConfigError(f"change {name!r}: 'effective' and 'rules' are required")
    return make_change(name, data["effective"], data["rules"], data.get("note", ""))


@dataclass(frozen=True)
class Verdict:
    """What became of one change: applied, or refused and why."""

    applied: bool
    reason: str = ""

    @property
    def outcome(self) -> str:
        return APPLIED if self.applied else REFUSED


@dataclass(frozen=True)
class Step:
    """The rules in force from ``at`` on, and the changes that took effect then."""

    at: float
    names: tuple[str, ...]
    rules: Rules


class Timeline:
    """The rules in force at each event time: ``base`` with the valid changes laid over.

    Changes apply in order of ``effective``, then name; each is validated
    against the rules in force just before it, and a refused one leaves them
    as they were (its reason is in :attr:`verdicts`).
    """

    def __init__(self, base: Rules, changes: Iterable[RulesChange] = ()) -> None:
        self.base = base
        self.changes = sorted(changes, key=lambda c: (c.effective, c.name))
        self.steps = [Step(float("-inf"), (), base)]
        self.verdicts: dict[str, Verdict] = {}
        rules = base
        for change in self.changes:
            try:
                rules = overlay(rules, change.rules, f"rules change {change.name!r}")
            except ConfigError as exc:
                self.verdicts[change.name] = Verdict(False, str(exc))
                continue
            self.verdicts[change.name] = Verdict(True)
            last = self.steps[-1]
            if last.at == change.effective:  # two changes at one time: one step
                self.steps[-1] = Step(last.at, (*last.names, change.name), rules)
            else:
                self.steps.append(Step(change.effective, (change.name,), rules))
        self._ats = [step.at for step in self.steps]

    def index(self, ts: float) -> int:
        """The step in force at event time ``ts`` (the last one at or before it)."""
        return bisect.bisect_right(self._ats, ts) - 1

    def next_at(self, index: int) -> float:
        """When the step after ``index`` begins (``inf``: none follows)."""
        return self._ats[index + 1] if index + 1 < len(self._ats) else float("inf")

    def rules_at(self, ts: float) -> Rules:
        return self.steps[self.index(ts)].rules
