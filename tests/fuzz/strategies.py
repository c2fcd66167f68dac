"""Hypothesis strategies: the records a hostile or broken upstream could send Kuzet.

Every strategy here yields :class:`Record`: the bytes of a Kafka message, the
key it travels with, and what ``shared/contract.md`` says of it
(:attr:`Record.expect`):

- ``VALID``: a contract-valid event (all three streams, every optional field,
  every RFC 3339 spelling, unknown extra fields, any Unicode, escapes): it must
  decode;
- ``INVALID``: broken on purpose in a way the contract rejects (a missing or
  mistyped field, NaN/Infinity, a huge number, a bad ``ts`` offset, bytes that
  are not UTF-8, a raw control character, an oversized message, ...): it must
  be rejected, with a reason;
- ``EITHER``: what the contract leaves open, or a change that may or may not
  break the event (a BOM, deep nesting, a duplicate key, years 0001 and 9999,
  a period far from its ``ts``, a flipped byte, random bytes): either verdict,
  but whatever decodes must still be contract-valid (``oracle.py``).

Speed is the design constraint: issue 14 asks for 100,000 records a CI run,
and a Hypothesis draw costs tens of microseconds (a record drawn field by field
came to ~500 records/s). So Hypothesis draws one number a record, standing for
what it *is* (its stream, which mutation, if any) and a seed, and the details
(ids, amounts, timestamps, where a byte goes wrong) come from
``random.Random(seed)``: ~9,000 records/s. A failure still shrinks: to the
fewest records, each towards no mutation and seed 0; the falsifying example
prints every record's bytes (cut at 300) and how it was made.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from detectors.events import KEY_FIELDS, STREAMS
from detectors.inspections.moratorium_violation import DEFAULT_EXEMPT_BASES
from tests.streams.cases import REQUIRED

VALID = "valid"
INVALID = "invalid"
EITHER = "either"

#: Settings of every fuzz test: derandomized (the same records every run: CI is
#: reproducible), no example database (nothing kept between runs), no deadline (a batch of
#: a hundred records, some of a megabyte, takes what it takes).
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Inside the inspection moratorium (2020-2022), so inspections of micro and small
#: businesses alert and the inspection detectors do real work.
T0 = datetime(2021, 6, 1, tzinfo=UTC)

#: Contract: a message over 1 MiB is invalid.
MIB = 1024 * 1024

ID_FIELDS: dict[str, tuple[str, ...]] = {
    "payments": ("payer", "payee"),
    "payroll": ("employer", "employee"),
    "inspections": ("business", "authority", "inspector"),
}
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "payments": {"channel": ("card", "transfer", "qr", "cash_in", "cash_out")},
    "payroll": {
        "type": ("accrual", "payment", "hire", "termination"),
        "reason": ("redundancy", "voluntary", "misconduct", "contract_end", "other"),
    },
    "inspections": {
        "business_size": ("micro", "small", "medium", "large"),
        "kind": ("scheduled", "unscheduled", "preventive"),
    },
}
KNOWN_FIELDS = frozenset(
    {*REQUIRED["payments"], *REQUIRED["payroll"], *REQUIRED["inspections"]}
    | {"channel", "purpose", "period", "amount", "reason"}
)
#: The contract's example bases: three ordinary, and the default exempt ones.
BASES = ("routine", "complaint", "follow_up", *sorted(DEFAULT_EXEMPT_BASES))

#: Small pools, so that entities recur and the detectors build state on them.
POOLS: dict[str, tuple[str, ...]] = {
    "payer": tuple(f"ACC-{i}" for i in range(40)),
    "payee": tuple(f"ACC-{i}" for i in range(40)),
    "employer": tuple(f"EMP-{i}" for i in range(8)),
    "employee": tuple(f"W-{i}" for i in range(60)),
    "business": tuple(f"BIZ-{i}" for i in range(30)),
    "authority": tuple(f"AUTH-{i}" for i in range(4)),
    "inspector": tuple(f"INSP-{i}" for i in range(12)),
}

#: RFC 3339 offsets as written, with their value in minutes.
OFFSETS = (
    ("Z", 0),
    ("+06:00", 360),
    ("+05:00", 300),
    ("z", 0),
    ("+00:00", 0),
    ("-00:00", 0),
    ("+05:45", 345),
    ("-03:30", -210),
    ("+14:00", 840),
    ("-12:00", -720),
    ("+23:59", 1439),
    ("-23:59", -1439),
)

#: Characters real ids are made of, and some that need escaping or several bytes.
ID_CHARS = 'ABCxyz019-_.:/ é€😀"\\\t\x00\u2028\ufeff'

#: Placeholders for what ``json.dumps`` cannot write; :func:`render` replaces them.
_RAW = "\x00kuzet-fuzz-{}\x00"


@dataclass(frozen=True)
class Record:
    """One message of a stream as a producer sends it, and what the contract says of it."""

    stream: str
    value: bytes | None
    key: bytes | None
    expect: str  #: VALID, INVALID or EITHER
    how: str  #: the mutation applied ("" for none), to read a failure by

    def __repr__(self) -> str:  # a falsifying example is read by people
        value = self.value
        if value is not None and len(value) > 300:
            value = value[:300] + b"...(%d bytes)" % len(value)
        return f"Record({self.stream!r}, {value!r}, key={self.key!r}, {self.expect}, {self.how!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis prints with this
        printer.text(repr(self))


# --- the parts of a valid event ---------------------------------------------------------


def _char(rnd: random.Random) -> str:
    """Any character JSON can carry (a lone surrogate cannot be UTF-8)."""
    roll = rnd.random()
    if roll < 0.5:
        return chr(rnd.randint(0x20, 0x7E))
    if roll < 0.6:
        return chr(rnd.randint(0, 0x1F))
    if roll < 0.9:
        return chr(rnd.randint(0xA0, 0xD7FF))
    code = rnd.randint(0xE000, 0x10FFFF)
    return chr(code)


def _text(rnd: random.Random, min_size: int, max_size: int) -> str:
    return "".join(_char(rnd) for _ in range(rnd.randint(min_size, max_size)))


def _id(rnd: random.Random, field: str) -> str:
    """An id of 1-64 characters: mostly from the field's pool, sometimes anything."""
    pool = POOLS.get(field)
    roll = rnd.random()
    if pool is not None and roll < 0.85:
        return rnd.choice(pool)
    if roll < 0.93:
        return "".join(rnd.choice(ID_CHARS) for _ in range(rnd.randint(1, 12)))
    return (_text(rnd, 1, 3) * 64)[: rnd.choice((1, 63, 64))]


def _amount(rnd: random.Random) -> float | int:
    """A contract-valid amount, ``0 < amount < 1e13``, as a JSON integer or a float."""
    roll = rnd.random()
    if roll < 0.4:
        return rnd.randint(1, 2_000_000)
    if roll < 0.7:
        return round(rnd.uniform(0.01, 300_000), rnd.choice((0, 1, 2)))
    if roll < 0.8:
        return rnd.choice((5e-324, 0.01, 9999999999999, 9999999999999.998, 1e12, 1e-7))
    return rnd.uniform(0, 1e13) or 1.0


def _ts(rnd: random.Random, moment: datetime) -> str:
    """``moment`` as RFC 3339 allows it: any offset, T/t/space, 0-9 fraction digits."""
    offset, minutes = rnd.choice(OFFSETS) if rnd.random() < 0.5 else OFFSETS[rnd.randint(0, 2)]
    local = moment.astimezone(UTC).replace(tzinfo=None) + timedelta(minutes=minutes)
    sep = "T" if rnd.random() < 0.8 else rnd.choice("t ")
    digits = rnd.choice((0, 0, 0, 1, 3, 6, 9))
    fraction = ""
    if digits:
        fraction = "." + f"{moment.microsecond:06d}{rnd.randint(0, 999):03d}"[:digits]
    return f"{local:%Y-%m-%d}{sep}{local:%H:%M:%S}{fraction}{offset}"


def _period(moment: datetime, back: int) -> str:
    """The ``YYYY-MM`` pay period ``back`` months before ``moment``'s month."""
    month = moment.year * 12 + moment.month - 1 - back
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def json_value(rnd: random.Random, budget: int = 6) -> Any:
    """Any JSON value an unknown field could hold (never NaN: that is a mutation)."""
    roll = rnd.random()
    if budget <= 0 or roll < 0.5:
        return rnd.choice(
            (
                None,
                True,
                False,
                rnd.randint(-(2**70), 2**70),
                rnd.uniform(-1e300, 1e300),
                _text(rnd, 0, 8),
                0,
                -0.0,
                "",
            )
        )
    if roll < 0.75:
        return [json_value(rnd, budget - 2) for _ in range(rnd.randint(0, 3))]
    return {_text(rnd, 0, 4): json_value(rnd, budget - 2) for _ in range(rnd.randint(0, 3))}


def event(rnd: random.Random, stream: str, moment: datetime) -> dict[str, Any]:
    """A contract-valid event of ``stream`` at ``moment``, as the JSON object's dict."""
    doc: dict[str, Any] = {}
    if rnd.random() < 0.9:
        doc["event_id"] = f"{stream[:3]}-{rnd.randint(0, 10**6)}"
    else:
        doc["event_id"] = (_text(rnd, 1, 3) * 128)[: rnd.choice((1, 2, 127, 128))]
    doc["ts"] = _ts(rnd, moment)
    if stream == "payments":
        doc["payer"] = payer = _id(rnd, "payer")
        payee = _id(rnd, "payee")
        doc["payee"] = payee if payee != payer else f"{payer[:63]}~"
        doc["amount"] = _amount(rnd)
        if rnd.random() < 0.5:
            doc["channel"] = rnd.choice(ENUMS["payments"]["channel"])
        if rnd.random() < 0.3:
            doc["purpose"] = (_text(rnd, 0, 6) * rnd.choice((1, 2, 50)))[:256]
    elif stream == "payroll":
        doc["type"] = kind = rnd.choice(ENUMS["payroll"]["type"])
        doc["employer"] = _id(rnd, "employer")
        doc["employee"] = _id(rnd, "employee")
        if kind in ("accrual", "payment") or rnd.random() < 0.1:  # not needed is allowed
            doc["period"] = _period(moment, rnd.choice((0, 0, 1, 1, 2, 3)))
            doc["amount"] = _amount(rnd)
        if kind == "termination" or rnd.random() < 0.1:
            doc["reason"] = rnd.choice(ENUMS["payroll"]["reason"])
    else:
        doc["business"] = _id(rnd, "business")
        doc["business_size"] = rnd.choice(ENUMS["inspections"]["business_size"])
        doc["authority"] = _id(rnd, "authority")
        doc["inspector"] = _id(rnd, "inspector")
        doc["kind"] = rnd.choice(ENUMS["inspections"]["kind"])
        doc["basis"] = rnd.choice(BASES) if rnd.random() < 0.9 else _id(rnd, "basis")
    if rnd.random() < 0.15:  # producers may add fields
        for _ in range(rnd.randint(1, 3)):
            name = _text(rnd, 0, 6)
            doc[name if name not in KNOWN_FIELDS else f"x-{name}"] = json_value(rnd)
    if rnd.random() < 0.2:  # the order of the fields is not part of the contract
        names = list(doc)
        rnd.shuffle(names)
        doc = {name: doc[name] for name in names}
    return doc


def render(rnd: random.Random, doc: Any, raws: dict[str, bytes] | None = None) -> bytes:
    """``doc`` as UTF-8 JSON in one of the spellings JSON allows; placeholders replaced."""
    ascii_only = rnd.random() < 0.5
    style = rnd.random()
    if style < 0.6:
        text = json.dumps(doc, ensure_ascii=ascii_only, separators=(",", ":"))
    elif style < 0.9:
        text = json.dumps(doc, ensure_ascii=ascii_only)
    else:
        text = json.dumps(doc, ensure_ascii=ascii_only, indent="\t")
    raw = text.encode()
    for name, replacement in (raws or {}).items():
        raw = raw.replace(json.dumps(name).encode(), replacement)
    return raw


def entity_key(stream: str, doc: Any) -> bytes | None:
    """The Kafka key a producer sends ``doc`` with: its entity (contract)."""
    value = doc.get(KEY_FIELDS[stream]) if isinstance(doc, dict) else None
    return value.encode() if isinstance(value, str) else None


# --- mutations -------------------------------------------------------------------------
#
# Each takes (rnd, stream, doc, key), a valid event and its key, and returns the
# Record it becomes, with the verdict the contract gives it.

WRONG_TYPES: tuple[Any, ...] = (None, True, 0, 1.5, [], {}, ["x"], {"a": 1})
#: Wrong for every required field of every stream (an empty id, ts or enum; a 0 amount).
ALWAYS_WRONG: tuple[Any, ...] = (None, 0, "", [], {})
BAD_AMOUNTS: tuple[str, ...] = (
    "NaN",
    "Infinity",
    "-Infinity",
    "0",
    "-0.0",
    "-1",
    "1e13",
    "10000000000000.0",
    "1e308",
    "1e400",
    "-1e400",
    "100000000000000000000000000000000000000000",
    "1E+13",
    '"1000"',
    "0x10",
    "01",
    "1.",
    ".5",
    "+1",
    "true",
    "null",
    "[1]",
)
BAD_TS: tuple[Any, ...] = (
    "2021-06-01T05:00:00",  # no offset
    "2021-06-01T05:00:00+0600",  # an ISO 8601 basic offset
    "2021-06-01T05:00:00-0530",
    "2021-06-01T05:00:00+06",
    "2021-06-01T05:00:00+24:00",
    "2021-06-01T05:00:00+06:60",
    "2021-02-30T05:00:00Z",
    "2021-06-01T24:00:00Z",
    "2021-06-01T05:60:00Z",
    "2021-06-01T05:00:60Z",  # a leap second: RFC 3339 has them, Python has not
    "2021-06-01T05:00Z",
    "2021-06-01T05:00:00.Z",
    "2021-06-01T05:00:00,5Z",
    "2021-06-01",
    "20210601T050000Z",
    "2021-6-1T05:00:00Z",
    "2021-06-01T05:00:00 Z",
    "2021-06-01T05:00:00ZZ",
    "2021-06-01T05:00:00+06:00 ",
    " 2021-06-01T05:00:00Z",
    "2021-06-01_05:00:00Z",
    "0000-00-00T00:00:00Z",
    "\uff12\uff10\uff12\uff11-06-01T05:00:00Z",  # fullwidth digits
    "",
    "now",
    1622523600,
    None,
)
#: Valid RFC 3339 at the edges of time: what Kuzet makes of them is open.
ODD_TS: tuple[str, ...] = (
    "0001-01-01T00:00:00+06:00",  # before year 1 in UTC
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    "9999-12-31T23:59:59.999999Z",
    "2099-01-01T00:00:00Z",  # far ahead (issue 14: future_ts)
    "1970-01-01T00:00:00Z",
    "1900-02-28T23:59:59+05:00",
    "2021-06-01T05:00:00.1234567890123456789Z",
)
BAD_PERIODS: tuple[Any, ...] = (
    "2021-13",
    "2021-00",
    "2021-1",
    "21-01",
    "2021/01",
    "2021-01-01",
    "202101",
    " 2021-01",
    "2021-01\n",  # Python's `$` matches before a final newline (fixed: test_fuzz_findings.py)
    "\uff12\uff10\uff12\uff11-01",  # fullwidth digits
    202101,
    None,
)
#: Periods of the right shape far from any real ts (issue 14: they are to be invalid).
ODD_PERIODS: tuple[str, ...] = ("0000-01", "0001-01", "9999-12", "2099-01", "1900-01", "1970-01")
#: Byte sequences that are not UTF-8: stray, overlong, a surrogate, past U+10FFFF, cut short.
NOT_UTF8: tuple[bytes, ...] = (
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc3\x28",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
)


def _record(rnd, stream, doc, key, expect, how, raws=None) -> Record:
    return Record(stream, render(rnd, doc, raws), key, expect, how)


def _a_string_field(rnd: random.Random, doc: dict[str, Any]) -> str:
    return rnd.choice([name for name, value in doc.items() if isinstance(value, str)])


def _missing(rnd, stream, doc, key):
    required = list(REQUIRED[stream])
    if stream == "payroll":
        if doc["type"] in ("accrual", "payment"):
            required += ["period", "amount"]
        elif doc["type"] == "termination":
            required.append("reason")
    field = rnd.choice(required)
    del doc[field]
    return _record(rnd, stream, doc, key, INVALID, f"no {field}")


def _mistyped(rnd, stream, doc, key):
    field = rnd.choice(REQUIRED[stream])
    doc[field] = value = rnd.choice(WRONG_TYPES)
    if field == "amount":  # 0 and 1.5 are numbers: an amount is wrong as anything else
        doc[field] = value = rnd.choice(("12", None, True, [], {}))
    elif field in ("type", "business_size", "kind"):
        doc[field] = value = rnd.choice(("12", None, True, [], {}, 7))
    return _record(rnd, stream, doc, key, INVALID, f"{field}={value!r}")


def _bad_amount(rnd, stream, doc, key):
    if stream == "inspections":
        return _mistyped(rnd, stream, doc, key)
    token = rnd.choice(BAD_AMOUNTS)
    if stream == "payroll" and doc["type"] not in ("accrual", "payment"):
        doc["type"] = "accrual"
        doc["period"] = _period(T0, 0)
    doc["amount"] = name = _RAW.format("amount")
    return _record(rnd, stream, doc, key, INVALID, f"amount {token}", {name: token.encode()})


def _bad_ts(rnd, stream, doc, key):
    doc["ts"] = value = rnd.choice(BAD_TS)
    if stream == "payroll":  # keep the period from being what is wrong
        doc.pop("period", None)
        doc["type"] = "hire"
    return _record(rnd, stream, doc, key, INVALID, f"ts {value!r}")


def _odd_ts(rnd, stream, doc, key):
    doc["ts"] = value = rnd.choice(ODD_TS)
    if "period" in doc:  # a pay period near its ts, as a producer at that time would send
        moment = datetime.fromisoformat(value[:19])
        doc["period"] = _period(moment, rnd.choice((0, 1, 2, 3)))
    return _record(rnd, stream, doc, key, EITHER, f"ts {value!r}, period {doc.get('period')}")


def _too_long(rnd, stream, doc, key):
    limits = {"event_id": 128, **dict.fromkeys(ID_FIELDS[stream], 64)}
    if stream == "payments":
        limits["purpose"] = 256
    if stream == "inspections":
        limits["basis"] = 64
    field = rnd.choice(sorted(limits))
    length = limits[field] + rnd.choice((1, 2, 1000, 100_000))
    doc[field] = (_text(rnd, 1, 2) * length)[:length]
    return _record(rnd, stream, doc, key, INVALID, f"{field} of {length} characters")


def _empty(rnd, stream, doc, key):
    field = rnd.choice(("event_id", *ID_FIELDS[stream]))
    doc[field] = ""
    return _record(rnd, stream, doc, key, INVALID, f"empty {field}")


def _bad_enum(rnd, stream, doc, key):
    if stream == "payments" and rnd.random() < 0.5:
        doc["payee"] = doc["payer"]
        return _record(rnd, stream, doc, key, INVALID, "payee == payer")
    choices = ENUMS[stream]
    field = rnd.choice(sorted(choices))
    good = choices[field][0]
    value = rnd.choice((good.upper(), f" {good}", f"{good}\x00", "", "?", good.title()))
    if stream == "payroll" and field == "reason":
        doc["type"] = "termination"
    doc[field] = value
    return _record(rnd, stream, doc, key, INVALID, f"{field}={value!r}")


def _period_set(rnd, stream, doc, key, periods, verdict):
    """A payroll event carrying money, with a period drawn from ``periods``."""
    doc["type"] = rnd.choice(("accrual", "payment"))
    doc.setdefault("amount", 1000)
    doc["period"] = value = rnd.choice(periods)
    return _record(rnd, stream, doc, key, verdict, f"period {value!r}")


def _bad_period(rnd, stream, doc, key):
    if stream != "payroll":
        return _bad_ts(rnd, stream, doc, key)
    return _period_set(rnd, stream, doc, key, BAD_PERIODS, INVALID)


def _odd_period(rnd, stream, doc, key):
    if stream != "payroll":
        return _odd_ts(rnd, stream, doc, key)
    return _period_set(rnd, stream, doc, key, ODD_PERIODS, EITHER)


def _not_object(rnd, stream, doc, key):
    value = rnd.choice(([doc], [], json.dumps(doc), None, 0, json_value(rnd)))
    if isinstance(value, dict):
        value = [value]
    return _record(rnd, stream, value, key, INVALID, f"a JSON {type(value).__name__}")


def _unknown_fields(rnd, stream, doc, key):
    """Unknown fields, long, nested or full of escaped control characters: all allowed."""
    name = _text(rnd, 0, 4)
    name = name if name not in KNOWN_FIELDS else f"x-{name}"
    roll = rnd.random()
    if roll < 0.3:
        doc[name] = _text(rnd, 1, 3) * rnd.choice((100, 10_000, 200_000))
    elif roll < 0.5:
        doc[name] = "".join(chr(c) for c in range(0x20)) + "\x7f\u2028\u2029\ufeff"
    else:
        doc[name] = json_value(rnd, budget=12)
    record = _record(rnd, stream, doc, key, VALID, f"unknown field {name!r}")
    if len(record.value) > MIB:  # escaped, a long field can pass the contract's 1 MiB
        return replace(record, expect=INVALID, how=f"{record.how}, {len(record.value)} bytes")
    return record


def _deep(rnd, stream, doc, key):
    """Nesting in an unknown field: fine when shallow, too deep for any parser when not."""
    depth = rnd.choice((2, 64, 500, 5_000, 100_000))
    opener, closer = rnd.choice(((b"[", b"]"), (b'{"a":', b"}")))
    doc["nested"] = name = _RAW.format("deep")
    raws = {name: opener * depth + b"0" + closer * depth}
    return _record(rnd, stream, doc, key, EITHER, f"nested {depth} deep", raws)


def _oversize(rnd, stream, doc, key):
    """Just over the contract's 1 MiB (an unknown field fills it)."""
    doc["filler"] = name = _RAW.format("filler")
    raw = render(rnd, doc)
    placeholder = json.dumps(name).encode()
    pad = MIB - len(raw) + len(placeholder) + rnd.choice((1, 2, 1000))
    value = raw.replace(placeholder, b'"' + b"x" * (pad - 2) + b'"')
    return Record(stream, value, key, INVALID, f"{len(value)} bytes")


def _not_utf8(rnd, stream, doc, key):
    """Bytes that are not UTF-8 in a string: a field the codec reads, or one it skips."""
    bad = rnd.choice(NOT_UTF8)
    field = _a_string_field(rnd, doc) if rnd.random() < 0.5 else "skipped"
    doc[field] = name = _RAW.format("utf8")
    raws = {name: b'"A' + bad + b'B"'}
    return _record(rnd, stream, doc, key, INVALID, f"{field} holds {bad!r}", raws)


def _raw_control(rnd, stream, doc, key):
    """A raw control character in a string (JSON wants it escaped); raw DEL is allowed."""
    field = _a_string_field(rnd, doc) if rnd.random() < 0.5 else "note"
    doc[field] = name = _RAW.format("ctl")
    if rnd.random() < 0.1:  # DEL: allowed raw; the field stays valid if an id
        return _record(rnd, stream, doc, key, EITHER, f"{field} holds DEL", {name: b'"A\x7fB"'})
    char = rnd.randint(0, 0x1F)
    raws = {name: b'"A' + bytes([char]) + b'B"'}
    return _record(rnd, stream, doc, key, INVALID, f"{field} holds raw {char:#04x}", raws)


def _lone_surrogate(rnd, stream, doc, key):
    """A lone UTF-16 surrogate escape: JSON text that names no character."""
    escape = rnd.choice((b"\\ud800", b"\\udfff", b"\\ud83d", b"\\ude00\\ud83d"))
    field = _a_string_field(rnd, doc) if rnd.random() < 0.5 else "note"
    doc[field] = name = _RAW.format("surrogate")
    raws = {name: b'"A' + escape + b'"'}
    return _record(rnd, stream, doc, key, INVALID, f"{field} holds {escape.decode()}", raws)


def _escaped(rnd, stream, doc, key):
    """Every character of a string written as a \\u escape: the same event."""
    field = _a_string_field(rnd, doc)
    units = doc[field].encode("utf-16-be")  # a character past U+FFFF is two escapes
    escaped = "".join(f"\\u{units[i] << 8 | units[i + 1]:04x}" for i in range(0, len(units), 2))
    doc[field] = name = _RAW.format("escaped")
    raws = {name: f'"{escaped}"'.encode()}
    return _record(rnd, stream, doc, key, VALID, f"{field} escaped", raws)


def _duplicate_key(rnd, stream, doc, key):
    """A field twice: the last one wins (msgspec, Python and JavaScript alike)."""
    field = rnd.choice(REQUIRED[stream])
    bad = rnd.choice(ALWAYS_WRONG)
    if field == "ts" and rnd.random() < 0.5:
        bad = "2021-06-01T05:00:00+0600"  # the codec's second look at ts must see this one
    pair = f"{json.dumps(field)}:{json.dumps(bad)}".encode()
    raw = render(rnd, doc)
    if rnd.random() < 0.5:  # the bad one last: it wins, and breaks the event
        value = raw[: raw.rindex(b"}")] + b"," + pair + b"}"
        return Record(stream, value, key, INVALID, f"{field} twice, {bad!r} last")
    value = b"{" + pair + b"," + raw[1:]
    return Record(stream, value, key, EITHER, f"{field} twice, {bad!r} first")


def _around(rnd, stream, doc, key):
    """Around the JSON text: a BOM, whitespace, trailing bytes, a cut, nothing, noise."""
    raw = render(rnd, doc)
    shape = rnd.randint(0, 7)
    if shape == 0:
        return Record(stream, b"\xef\xbb\xbf" + raw, key, EITHER, "a BOM")
    if shape == 1:
        pad = rnd.choice((b" ", b"\n", b"\r\n\t "))
        return Record(stream, pad + raw + pad, key, VALID, f"whitespace {pad!r}")
    if shape == 2:
        tail = rnd.choice((b"x", b"}", b",", b"{}", b"\x00", b"]", b"\n{}", b"\xff"))
        return Record(stream, raw + tail, key, INVALID, f"then {tail!r}")
    if shape == 3:
        cut = rnd.randint(1, len(raw) - 1)
        return Record(stream, raw[:cut], key, INVALID, f"cut at byte {cut}")
    if shape == 4:
        return Record(stream, rnd.choice((b"", None)), key, INVALID, "empty")
    if shape == 5:
        return Record(stream, rnd.randbytes(rnd.randint(1, 40)), key, EITHER, "random bytes")
    if shape == 6:
        value = rnd.choice((b"null", b"true", b"0", b'""', b"[]", b"{}", b"[{}]"))
        return Record(stream, value, key, INVALID, f"just {value!r}")
    index = rnd.randrange(len(raw))  # one byte changed: anything can happen
    flipped = raw[:index] + bytes([raw[index] ^ rnd.randint(1, 255)]) + raw[index + 1 :]
    return Record(stream, flipped, key, EITHER, f"byte {index} flipped")


def _wrong_key(rnd, stream, doc, key):
    """A valid event with a key that does not name its entity (issue 14: key_mismatch)."""
    key = rnd.choice((None, b"", b"\xff\xfe", b"OTHER-1", (key or b"") + b" "))
    return _record(rnd, stream, doc, key, VALID, f"key {key!r}")


#: Every mutation but the oversized one, which is rare (a megabyte to build and read).
MUTATIONS = (
    _missing,
    _mistyped,
    _bad_amount,
    _bad_ts,
    _too_long,
    _empty,
    _bad_enum,
    _bad_period,
    _not_object,
    _unknown_fields,
    _deep,
    _not_utf8,
    _raw_control,
    _lone_surrogate,
    _escaped,
    _duplicate_key,
    _around,
    _wrong_key,
    _odd_ts,
    _odd_period,
)
#: Draws of the record's kind that mean "no mutation": about 55% of records are valid.
UNCHANGED = 24
#: One in this many mutated records is oversized instead.
OVERSIZE_EVERY = 400


def make_record(
    stream: str, kind: int, seed: int, moment: datetime, *, first_id: str | None = None
) -> Record:
    """The record a (stream, kind, seed) draw stands for, at ``moment``.

    ``kind`` below :data:`UNCHANGED` is a valid event, else the mutation it names.
    ``first_id``: give the event this ``event_id`` (a conflict with an earlier one).
    """
    rnd = random.Random(seed)
    doc = event(rnd, stream, moment)
    if first_id is not None:
        doc["event_id"] = first_id
    key = entity_key(stream, doc)
    if kind < UNCHANGED:
        return _record(rnd, stream, doc, key, VALID, "")
    if seed % OVERSIZE_EVERY == OVERSIZE_EVERY - 1:  # never the seed a failure shrinks to
        return _oversize(rnd, stream, doc, key)
    return MUTATIONS[kind - UNCHANGED](rnd, stream, doc, key)


#: Kinds of record: unchanged, or one of the mutations.
KINDS = UNCHANGED + len(MUTATIONS)
#: One Hypothesis draw stands for a whole record (draws are what costs): its kind, its
#: stream and its seed, packed so that it shrinks towards 0 (a valid payment, seed 0).
codes = st.integers(0, 2**63 - 1)
#: One more draw a batch, mixed into every record's seed with the record's place:
#: Hypothesis repeats values within and across examples (~1 distinct in 7 of 30,000
#: draws measured), which a fuzzer wants distinct.
salts = st.integers(0, 2**32 - 1)


def unpack(code: int, salt: int = 0, index: int = 0) -> tuple[int, str, int]:
    """(kind, stream, seed) of a drawn code, the ``index``-th of its batch."""
    kind, rest = code % KINDS, code // KINDS
    seed = (rest // len(STREAMS) * 0x9E3779B97F4A7C15 + salt * 1_000_003 + index) % 2**64
    return kind, STREAMS[rest % len(STREAMS)], seed


@st.composite
def batches(draw: st.DrawFn, min_size: int, max_size: int) -> list[Record]:
    """Records of any stream and time (within 90 days of T0), independent of each other."""
    salt = draw(salts)
    found = []
    for index, code in enumerate(draw(st.lists(codes, min_size=min_size, max_size=max_size))):
        kind, stream, seed = unpack(code, salt, index)
        found.append(make_record(stream, kind, seed, T0 + timedelta(seconds=seed % 7_776_000)))
    return found


#: How far a stream's event time moves from one of its records to the next (seconds), as
#: each stream moves: payments by the minute, inspections by the hour or day, payroll by
#: the day (a hundred records span the month end wages are due after). One step in 64 is a
#: quiet spell past the stream's future_ts skew.
_HOUR, _DAY = 3600, 86400
_MINUTES = (0, 0, 10, 60, 60, 120, 300, 300, 600, 900, 1800, _HOUR, _HOUR, 2 * _HOUR, 6 * _HOUR)
_HOURS = (0, 600, _HOUR, 3 * _HOUR, 6 * _HOUR, 12 * _HOUR, _DAY, 2 * _DAY)
_DAYS = (0, 0, 600, _HOUR, 6 * _HOUR, _DAY, _DAY, 2 * _DAY)
STEPS: dict[str, tuple[int, ...]] = {  # 64 each; the last, a spell past the stream's skew
    "payments": (*(_MINUTES * 5)[:63], 2 * _DAY),  # skew: 1 day
    "payroll": (*(_DAYS * 8)[:63], 45 * _DAY),  # skew: 31 days
    "inspections": (*(_HOURS * 8)[:63], 20 * _DAY),  # skew: 14 days
}
#: Where a stream starts: in the moratorium, and just before its start and its end.
STARTS = (T0, datetime(2019, 12, 30, tzinfo=UTC), datetime(2022, 12, 29, tzinfo=UTC))
#: How late a record comes (seconds behind the stream's time): mostly not, some past 24 h.
LATENESS = (0, 0, 0, 0, 3600, 20 * 3600, 30 * 3600, 10 * 86400)
#: What a record of a stream is: new, an exact redelivery, or one reusing an earlier id.
AGAIN = ("new",) * 10 + ("redelivered", "same id")


@st.composite
def streams_of_records(draw: st.DrawFn, min_size: int = 1, max_size: int = 120) -> list[Record]:
    """Records of all three streams in one arrival order, event time moving on as it does.

    Mostly in order; some late (up to 10 days), some redelivered byte for byte
    (at least once delivery), some reusing an earlier event's id for other
    content (issue 14: ``id_conflict``). One draw a record, as :func:`batches`.
    """
    salt = draw(salts)
    clocks = dict.fromkeys(STREAMS, STARTS[salt % len(STARTS)])
    found: list[Record] = []
    ids: list[tuple[str, str]] = []  # (stream, event_id) of the valid events so far
    for index, code in enumerate(draw(st.lists(codes, min_size=min_size, max_size=max_size))):
        kind, stream, seed = unpack(code, salt, index)
        late, again = LATENESS[seed // 64 % 8], AGAIN[seed // 512 % len(AGAIN)]
        clocks[stream] += timedelta(seconds=STEPS[stream][seed % 64])
        if again == "redelivered" and found:
            found.append(replace(found[seed % len(found)], how="redelivered"))
            continue
        first_id = None
        if again == "same id" and ids:
            stream, first_id = ids[seed % len(ids)]
        moment = clocks[stream] - timedelta(seconds=late)
        record = make_record(stream, kind, seed, moment, first_id=first_id)
        if record.expect == VALID and record.value is not None:
            ids.append((stream, json.loads(record.value)["event_id"]))
        found.append(record)
    return found
