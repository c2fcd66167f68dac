"""The step both paths share: input partitions upstream, regrouped partitions downstream.

No Kafka: a :class:`Wire` stands in for the internal topics, carrying each
shipment as the worker does (:func:`~streams.regroup.encode_envelopes` to a
partition, :meth:`Processor.downstream_record` on the way back). The worker
that drives the same calls against the real broker is tested in
``tests/integration``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from detectors.base import Detector
from detectors.engine import Engine
from detectors.events import BY_AUTHORITY, KEY_FIELDS, Activity
from detectors.inspections.moratorium_violation import MoratoriumViolation
from detectors.registry import build_engine
from streams.processor import BatchOutput, DeadLetter, Processor, Source
from streams.regroup import BY_ACCOUNT, DONE, REGROUP_OF, WAIT, encode_envelopes, partition_for

N = 3  # partitions of every topic here, input and internal
T0 = datetime(2023, 3, 1, 9, tzinfo=UTC)
#: Inspections happen during the moratorium (2020-2022), so micro businesses' are prohibited.
T_INSPECTIONS = datetime(2021, 3, 2, 5, tzinfo=UTC)
INTERNAL = {
    "payments": "kuzet-payments-by-account",
    "inspections": "kuzet-inspections-by-authority",
}


def accounts(partition: int, n: int = 2, prefix: str = "ACC") -> list[str]:
    """``n`` ids that Kafka's default partitioner puts in ``partition`` of 3."""
    found = (f"{prefix}-{i}" for i in range(1000))
    return [a for a in found if partition_for(a.encode(), N) == partition][:n]


A0, B0 = accounts(0)
C1, D1 = accounts(1)
E2, F2 = accounts(2)


def payment(event_id: str, payer: str, payee: str, hours: float = 0.0) -> bytes:
    ts = (T0 + timedelta(hours=hours)).isoformat()
    doc = {"event_id": event_id, "ts": ts, "payer": payer, "payee": payee, "amount": 1000.0}
    return msgspec.json.encode(doc)


def inspection(event_id: str, business: str, authority: str, hours: float = 0.0, **extra) -> bytes:
    doc = {
        "event_id": event_id,
        "ts": (T_INSPECTIONS + timedelta(hours=hours)).isoformat(),
        "business": business,
        "business_size": "medium",
        "authority": authority,
        "inspector": f"INSP-{authority}",
        "kind": "scheduled",
        "basis": "routine",
        **extra,
    }
    return msgspec.json.encode(doc)


class Recording(Detector):
    """Records which account saw which side of which payment, in order."""

    kind = "payment_anomaly"
    stream = "payments"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []  # (account, "in" | "out", event id)

    def update(self, event: Any, ctx: Any) -> list:
        assert isinstance(event, Activity)
        if event.incoming:
            self.seen.append((event.payment.payee, "in", event.payment.event_id))
        if event.outgoing:
            self.seen.append((event.payment.payer, "out", event.payment.event_id))
        return []


class RecordingByAuthority(Detector):
    """Reads inspections by authority, as inspector_anomaly does; records what it saw."""

    kind = "inspector_anomaly"
    stream = "inspections"
    lane = BY_AUTHORITY

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (authority, event id)

    def update(self, event: Any, ctx: Any) -> list:
        self.seen.append((event.authority, event.event_id))
        return []


class Exploding(Recording):
    def update(self, event: Any, ctx: Any) -> list:
        raise RuntimeError("boom")


def key_of(stream: str, raw: bytes) -> bytes:
    try:
        return msgspec.json.decode(raw)[KEY_FIELDS[stream]].encode()
    except Exception:
        return b"?"


class Wire:
    """Input topics and internal topics in memory, driven as the worker drives them."""

    def __init__(self, processor: Processor, partitions: int = N) -> None:
        self.processor = processor
        self.n = partitions
        self.offsets: Counter[tuple[str, int]] = Counter()  # next offset of each partition
        self.internal: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        self.read: Counter[tuple[str, int]] = Counter()

    def records(self, stream: str, p: int, values: list[bytes]) -> list:
        start = self.offsets[stream, p]
        self.offsets[stream, p] += len(values)
        return [
            (value, key_of(stream, value), Source(stream, p, start + i))
            for i, value in enumerate(values)
        ]

    def upstream(self, stream: str, p: int, values: list[bytes], frontier: float = DONE):
        """One batch of input partition ``p``; its shipments go onto the internal topic.

        By default the batch reads the partition to its end, and it is done.
        """
        records = self.records(stream, p, values)
        through = self.offsets[stream, p] - 1
        out, shipments = self.processor.upstream(
            stream, p, records, self.n, frontier=frontier, through=through
        )
        for q, upstream, through, frontier, halves in shipments:
            self.internal[stream, q] += encode_envelopes(upstream, through, frontier, halves)
        return out

    def downstream(self, stream: str) -> BatchOutput:
        """Every internal record not read yet, partition by partition."""
        out = BatchOutput()
        regroup = REGROUP_OF[stream]
        for q in range(self.n):
            values = self.internal[stream, q]
            for offset in range(self.read[stream, q], len(values)):
                record = (values[offset], None, Source(INTERNAL[stream], q, offset))
                got = self.processor.downstream_record(regroup, q, self.n, record, stream)
                merge_into(out, got)
            self.read[stream, q] = len(values)
        return out

    def feed(self, stream: str, values: list[bytes]) -> tuple[BatchOutput, BatchOutput]:
        """Every value to its key's partition (one batch each, then done), then downstream."""
        by_partition: dict[int, list[bytes]] = {p: [] for p in range(self.n)}
        for value in values:
            by_partition[partition_for(key_of(stream, value), self.n)].append(value)
        up = BatchOutput()
        for p, batch in by_partition.items():
            merge_into(up, self.upstream(stream, p, batch))
        return up, self.downstream(stream)


def merge_into(out: BatchOutput, got: BatchOutput) -> None:
    out.alerts += got.alerts
    out.dead_letters += got.dead_letters
    out.outcomes.update(got.outcomes)
    out.event_times += got.event_times


def seen(processor: Processor, lane: str = "payments") -> dict[int, list]:
    """What the recording detector of each partition of ``lane`` saw, in order (if anything)."""
    engine = processor.engine
    found = {}
    for name, p in engine.partitions():
        events = engine.partition(name, p).detectors[0].seen if name == lane else None
        if events:
            found[p] = events
    return found


@pytest.fixture
def wire() -> Wire:
    return Wire(Processor(Engine([Recording()])))


# --- payments by account ----------------------------------------------------------


def test_every_account_sees_each_of_its_payments_once_and_each_counts_once(wire: Wire):
    wire.processor.accepted = accepted = []
    up, down = wire.feed(
        "payments",
        [
            payment("p-1", A0, B0, 0),  # both sides in partition 0
            payment("p-2", C1, E2, 1),  # in at 2, out at 1
            payment("p-3", E2, A0, 2),  # in at 0, out at 2
            payment("p-4", D1, C1, 3),  # both in partition 1
        ],
    )
    assert up.outcomes == Counter() and not up.dead_letters  # only validated upstream
    assert down.outcomes == Counter(ok=4)  # one per payment, not one per half (6 halves)
    assert len(down.event_times) == 4 and not down.dead_letters
    assert seen(wire.processor) == {
        0: [(B0, "in", "p-1"), (A0, "out", "p-1"), (A0, "in", "p-3")],
        1: [(C1, "out", "p-2"), (C1, "in", "p-4"), (D1, "out", "p-4")],
        2: [(E2, "in", "p-2"), (E2, "out", "p-3")],
    }
    # The backtest counts accepted events from here: each payment once, where its money went.
    assert sorted((p, event.event_id) for _, p, event in accepted) == [
        (0, "p-1"),
        (0, "p-3"),
        (1, "p-4"),
        (2, "p-2"),
    ]


def test_a_redelivered_payment_counts_once_as_a_duplicate(wire: Wire):
    raw = payment("p-1", C1, E2)
    _, first = wire.feed("payments", [raw, raw])
    _, again = wire.feed("payments", [raw])  # and once more, in a later batch
    assert first.outcomes == Counter(ok=1, duplicate=1)
    assert again.outcomes == Counter(duplicate=1)
    assert seen(wire.processor) == {1: [(C1, "out", "p-1")], 2: [(E2, "in", "p-1")]}
    assert not first.dead_letters and not again.dead_letters  # duplicates are not letters


def test_late_halves_are_dead_lettered_as_the_payment_from_its_input_position(wire: Wire):
    # Move the clocks of partitions 1 and 2 two days on, then a payment from before.
    wire.feed("payments", [payment("p-new-1", D1, C1, 48), payment("p-new-2", F2, E2, 48)])
    raw = payment("p-old", C1, E2, 0)
    up, down = wire.feed("payments", [raw])
    assert up.outcomes == Counter() and down.outcomes == Counter(late=1)
    # One letter per late half (the payment is late on both sides), each the payment's own
    # bytes, keyed by its payer as on the payments topic, from its place there.
    source = Source("payments", partition_for(C1.encode(), N), 1)
    assert [(d.stream, d.category, d.raw, d.key, d.source) for d in down.dead_letters] == [
        ("payments", "late", raw, C1.encode(), source),
        ("payments", "late", raw, C1.encode(), source),
    ]
    assert down.dead_letters[0].reason == (
        "late: event time is 48.0 h behind the newest payments event of its partition "
        "(allowed lateness 24 h)"
    )
    assert down.dead_letters[0].headers() == [
        ("kuzet.source.topic", b"payments"),
        ("kuzet.source.partition", b"1"),
        ("kuzet.source.offset", b"1"),
        ("kuzet.reason", down.dead_letters[0].reason.encode()),
    ]
    assert not down.event_times
    assert (C1, "out", "p-old") not in seen(wire.processor)[1]


def test_a_payment_late_on_one_side_only_counts_as_its_incoming_side_says(wire: Wire):
    wire.feed("payments", [payment("p-new", D1, C1, 48)])  # partition 1 moves on, 2 does not
    raw = payment("p-old", C1, E2, 0)  # out at 1 (late), in at 2 (on time)
    _, down = wire.feed("payments", [raw])
    assert down.outcomes == Counter(ok=1)
    assert [(d.category, d.source.partition) for d in down.dead_letters] == [("late", 1)]
    assert seen(wire.processor)[2] == [(E2, "in", "p-old")]


def test_invalid_payments_are_dead_lettered_upstream_and_not_shipped(wire: Wire):
    values = [b"{not json", payment("p-1", A0, A0), payment("p-2", A0, B0), b""]
    records = wire.records("payments", 0, values)
    out, shipments = wire.processor.upstream("payments", 0, records, N)
    assert out.outcomes == Counter(invalid=3)
    assert [(d.category, d.source, d.raw, d.key) for d in out.dead_letters] == [
        ("not_json", Source("payments", 0, 0), b"{not json", b"?"),
        ("invalid_value", Source("payments", 0, 1), values[1], A0.encode()),
        ("empty", Source("payments", 0, 3), b"", b"?"),
    ]
    assert out.dead_letters[1].reason == "payee equals payer"
    # Every downstream partition hears from this batch, through its last record; by
    # default, to wait for its next one.
    assert [(s.partition, s.upstream, s.through, s.frontier) for s in shipments] == [
        (0, 0, 3, WAIT),
        (1, 0, 3, WAIT),
        (2, 0, 3, WAIT),
    ]
    assert [len(s.halves) for s in shipments] == [1, 0, 0]
    [(side, offset, ts, event)] = shipments[0].halves
    assert (side, offset, ts) == ("both", 2, T0.timestamp())
    assert event == values[2]  # the bytes as they came, not re-encoded


@pytest.mark.parametrize("frontier", [WAIT, T0.timestamp() + 6 * 3600, DONE])
def test_an_empty_batch_ships_how_far_its_partition_was_read_and_its_frontier(frontier: float):
    processor = Processor(Engine([Recording()]))
    out, shipments = processor.upstream("payments", 1, [], N, frontier=frontier, through=41)
    assert out == BatchOutput()
    assert [(s.partition, s.upstream, s.through, s.frontier, s.halves) for s in shipments] == [
        (q, 1, 41, frontier, []) for q in range(N)
    ]


def test_the_merged_order_does_not_depend_on_which_input_partition_is_read_first():
    # To E2: from A0 (input partition 0) at 2 h, then 0.5 h; from C1 (partition 1) at 1 h,
    # then 3 h. Partition 2 takes the earliest head each time, each input keeping its order.
    zero = [payment("a", A0, E2, 2.0), payment("b", A0, E2, 0.5)]
    one = [payment("c", C1, E2, 1.0), payment("d", C1, E2, 3.0)]
    orders = []
    for first, second in ((0, 1), (1, 0)):
        wire = Wire(Processor(Engine([Recording()])))
        batches = {0: zero, 1: one}
        wire.upstream("payments", first, batches[first])
        wire.downstream("payments")
        wire.upstream("payments", second, batches[second])
        wire.upstream("payments", 2, [])
        wire.downstream("payments")
        orders.append(seen(wire.processor))
    assert orders[0] == orders[1]
    assert [event_id for _, _, event_id in orders[0][2]] == ["c", "a", "b", "d"]


def test_a_regrouped_partition_waits_for_every_input_partition():
    wire = Wire(Processor(Engine([Recording()])))
    wire.upstream("payments", 0, [payment("p-1", A0, B0)], frontier=WAIT)
    wire.upstream("payments", 1, [], frontier=DONE)
    assert wire.downstream("payments").outcomes == Counter()  # input 2 has said nothing
    wire.upstream("payments", 2, [], frontier=WAIT)
    assert wire.downstream("payments").outcomes == Counter()  # but to wait for it
    wire.upstream("payments", 2, [payment("p-2", E2, F2, 5)], frontier=DONE)
    # p-1 (0 h) goes; p-2 (5 h) waits, input 0 may still bring something earlier.
    assert wire.downstream("payments").outcomes == Counter(ok=1)
    wire.upstream("payments", 0, [], frontier=DONE)
    assert wire.downstream("payments").outcomes == Counter(ok=1)


def test_a_finite_frontier_lets_the_others_through_up_to_it():
    wire = Wire(Processor(Engine([Recording()])))

    def at(h: float) -> float:  # an event time as envelopes carry it
        return (T0 + timedelta(hours=h)).timestamp()

    wire.upstream("payments", 1, [], frontier=DONE)
    wire.upstream("payments", 0, [payment("p-1", A0, B0, 0), payment("p-2", A0, B0, 4)], WAIT)
    assert wire.downstream("payments").outcomes == Counter()  # input 2 has said nothing
    # Input 2 is read to its end: the others may go up to 2 h without it. p-1 goes.
    wire.upstream("payments", 2, [], frontier=at(2))
    assert wire.downstream("payments").outcomes == Counter(ok=1)
    wire.upstream("payments", 2, [], frontier=at(3.5))  # not far enough for p-2 (4 h)
    assert wire.downstream("payments").outcomes == Counter()
    # Input 2 sends a payment to A0 at 3 h: it goes, before p-2 (the earlier head).
    wire.upstream("payments", 2, [payment("p-3", E2, A0, 3)], frontier=WAIT)
    assert wire.downstream("payments").outcomes == Counter(ok=1)  # its in half, at 0
    # Then input 2 is waited for again; once it is done, p-2 goes.
    wire.upstream("payments", 0, [], frontier=DONE)
    assert wire.downstream("payments").outcomes == Counter()  # p-3's out half, at 2
    wire.upstream("payments", 2, [], frontier=DONE)
    assert wire.downstream("payments").outcomes == Counter(ok=1)
    assert seen(wire.processor) == {
        0: [
            (B0, "in", "p-1"),
            (A0, "out", "p-1"),
            (A0, "in", "p-3"),
            (B0, "in", "p-2"),
            (A0, "out", "p-2"),
        ],
        2: [(E2, "out", "p-3")],
    }


@pytest.mark.parametrize(
    "envelope",
    [
        None,
        b"",
        payment("p-0", A0, B0),  # a bare payment, as records were before envelopes
        msgspec.msgpack.encode([1, [["both", payment("p-0", A0, B0)]]]),  # version 1
        msgspec.msgpack.encode([2, 0, 0, DONE, [["sideways", 0, 0.0, b"{}"]]]),
        b"\x95\x02\x00",  # cut short
        encode_envelopes(7, 0, DONE, [("both", 0, 0.0, payment("p-0", A0, B0))])[0],  # no 7
        msgspec.msgpack.encode([2, 0, 0, float("nan"), []]),
        msgspec.msgpack.encode([2, 0, 0, DONE, [["both", 0, DONE, payment("p-0", A0, B0)]]]),
        msgspec.msgpack.encode([2, 0, 0, True, []]),  # "at its end", as envelopes said before
    ],
    ids=[
        "none",
        "empty",
        "bare-payment",
        "version-1",
        "bad-side",
        "truncated",
        "upstream-7",
        "nan-frontier",
        "infinite-time",
        "boolean-frontier",
    ],
)
def test_an_invalid_envelope_is_dead_lettered_whole_and_counted_invalid_once(wire: Wire, envelope):
    raw = payment("p-1", C1, E2)
    wire.internal["payments", 1].append(envelope)
    wire.upstream("payments", 0, [])
    wire.upstream("payments", 1, [raw])
    wire.upstream("payments", 2, [])
    out = wire.downstream("payments")
    [letter] = out.dead_letters
    assert letter.category == "invalid_envelope"
    assert letter.reason.startswith("invalid envelope: ")
    assert (letter.stream, letter.raw, letter.key) == ("payments", envelope, None)
    assert letter.source == Source(INTERNAL["payments"], 1, 0)  # its place on the internal topic
    assert out.outcomes == Counter(invalid=1, ok=1)  # the envelope once; the payment still counts
    assert seen(wire.processor) == {1: [(C1, "out", "p-1")], 2: [(E2, "in", "p-1")]}


def test_a_half_that_is_no_payment_is_dead_lettered_and_counted_on_its_incoming_side(wire: Wire):
    ts = T0.timestamp()
    halves = [
        ("both", 4, ts, payment("p-1", A0, B0)),
        ("in", 5, ts, b'{"event_id": 1}'),
        ("out", 6, ts, b"[]"),
    ]
    wire.internal["payments", 0] += encode_envelopes(2, 6, DONE, halves)
    for p in (0, 1):
        wire.upstream("payments", p, [])
    out = wire.downstream("payments")
    assert [(d.category, d.raw, d.key, d.source) for d in out.dead_letters] == [
        ("invalid_field", b'{"event_id": 1}', None, Source("payments", 2, 5)),
        ("not_object", b"[]", None, Source("payments", 2, 6)),
    ]
    assert out.outcomes == Counter(ok=1, invalid=1)  # the out half is not counted
    assert seen(wire.processor) == {0: [(B0, "in", "p-1"), (A0, "out", "p-1")]}


def test_a_failing_detector_dead_letters_each_half_and_counts_the_payment_once():
    wire = Wire(Processor(Engine([Exploding()])))
    raw = payment("p-1", C1, E2)
    _, out = wire.feed("payments", [raw])
    assert out.outcomes == Counter(failed=1)
    assert [(d.category, d.raw, d.source.partition) for d in out.dead_letters] == [
        ("detector_failed", raw, 1),
        ("detector_failed", raw, 1),
    ]
    assert out.dead_letters[0].reason == "detector payment_anomaly failed: RuntimeError: boom"
    _, next_one = wire.feed("payments", [payment("p-2", C1, E2, 1)])  # and it goes on
    assert next_one.outcomes == Counter(failed=1)


def test_handing_halves_over_decoded_judges_exactly_as_envelopes_do():
    # The backtest hands decoded events over in memory; the worker ships bytes.
    values = [
        payment(f"p-{i}", payer, payee, hours=(7 * i) % 11)
        for i, (payer, payee) in enumerate(
            [(A0, B0), (C1, E2), (E2, A0), (D1, C1), (F2, D1), (B0, F2), (C1, E2)] * 3
        )
    ]
    values.append(values[3])  # a duplicate
    wire = Wire(Processor(Engine([Recording()])))
    _, by_bytes = wire.feed("payments", values)

    processor = Processor(Engine([Recording()]))
    decoded = BatchOutput()
    offsets: Counter[int] = Counter()
    for value in values:
        p = partition_for(key_of("payments", value), N)
        record = [(value, key_of("payments", value), Source("payments", p, offsets[p]))]
        offsets[p] += 1
        _, shipments = processor.upstream("payments", p, record, N, decoded=True)
        for q, up, through, frontier, halves in shipments:
            if halves:
                processor.downstream(BY_ACCOUNT, q, N, up, through, frontier, halves, "p", decoded)
    for q in range(N):
        for up in range(N):
            processor.downstream(BY_ACCOUNT, q, N, up, offsets[up], DONE, [], "p", decoded)
    assert decoded.outcomes == by_bytes.outcomes == Counter(ok=21, duplicate=1)
    assert seen(processor) == seen(wire.processor)


# --- inspections by business, and by authority ------------------------------------


def test_inspections_are_judged_by_business_and_feed_the_authority_lane():
    wire = Wire(Processor(Engine([MoratoriumViolation(), RecordingByAuthority()])))
    businesses = {p: accounts(p, 1)[0] for p in range(N)}  # one business per input partition
    auth_a, auth_b = accounts(2, 1, "AUTH")[0], accounts(0, 1, "AUTH")[0]
    values = [
        inspection("i-1", businesses[0], auth_a, 3, business_size="micro"),  # prohibited
        inspection("i-2", businesses[1], auth_a, 1),
        inspection("i-3", businesses[2], auth_b, 2),
        inspection("i-4", businesses[1], auth_b, 4),
    ]
    up, down = wire.feed("inspections", [*values, values[1]])  # i-2 redelivered
    # Judged, and counted, by business upstream: the moratorium alert comes from there.
    assert up.outcomes == Counter(ok=4, duplicate=1)
    assert [a.event_ids for a in up.alerts] == [["i-1"]]
    # The regrouped copy only feeds the authority lane: it counts nothing itself.
    assert down.outcomes == Counter() and not down.dead_letters and not down.alerts
    # Each authority's inspections in its partition, in event time merged over every input
    # partition, the duplicate not again.
    assert seen(wire.processor, BY_AUTHORITY) == {
        2: [(auth_a, "i-2"), (auth_a, "i-1")],
        0: [(auth_b, "i-3"), (auth_b, "i-4")],
    }


@pytest.mark.parametrize(
    "envelope",
    [b"garbage", encode_envelopes(7, 0, DONE, [])[0]],
    ids=["not-an-envelope", "upstream-7"],
)
def test_an_invalid_envelope_by_authority_is_dead_lettered_but_not_counted(envelope):
    # Guards a fixed bug: it was counted as an invalid inspection, though inspections are
    # counted by business, upstream: every input record once, and this is no input record.
    wire = Wire(Processor(Engine([MoratoriumViolation(), RecordingByAuthority()])))
    wire.internal["inspections", 1].append(envelope)
    _, down = wire.feed("inspections", [])
    assert down.outcomes == Counter()
    [letter] = down.dead_letters
    assert (letter.stream, letter.category, letter.raw) == (
        "inspections",
        "invalid_envelope",
        envelope,
    )
    assert letter.source == Source(INTERNAL["inspections"], 1, 0)


def test_an_inspection_late_by_business_is_dead_lettered_once_and_not_regrouped():
    wire = Wire(Processor(Engine([MoratoriumViolation(), RecordingByAuthority()])))
    business = accounts(0, 1)[0]
    wire.feed("inspections", [inspection("i-new", business, "AUTH-A", 48)])
    late = inspection("i-old", business, "AUTH-A", 0)
    up, down = wire.feed("inspections", [late])
    assert up.outcomes == Counter(late=1)
    assert [(d.category, d.raw, d.source) for d in up.dead_letters] == [
        ("late", late, Source("inspections", 0, 1))
    ]
    assert down.outcomes == Counter() and not down.dead_letters
    lanes = seen(wire.processor, BY_AUTHORITY)
    assert [event_id for s in lanes.values() for _, event_id in s] == ["i-new"]


class ExplodingInspections(Detector):
    """Raises on the business named BOOM."""

    kind = "repeat_inspection"
    stream = "inspections"

    def update(self, event: Any, ctx: Any) -> list:
        if event.business == "BOOM":
            raise RuntimeError("boom")
        return []


def test_a_detector_that_raises_dead_letters_the_event_and_the_others_still_judge_it():
    processor = Processor(Engine([MoratoriumViolation(), ExplodingInspections()]))
    wire = Wire(processor)
    boom = inspection("i-1", "BOOM", "AUTH-A", business_size="small")
    fine = inspection("i-2", "B-2", "AUTH-A", business_size="small")
    up, _ = wire.feed("inspections", [boom, fine])
    assert sorted(a.event_ids[0] for a in up.alerts) == ["i-1", "i-2"]
    [letter] = up.dead_letters
    assert (letter.category, letter.raw, letter.key) == ("detector_failed", boom, b"BOOM")
    assert letter.reason == "detector repeat_inspection failed: RuntimeError: boom"
    assert up.outcomes == Counter(failed=1, ok=1)


def test_inspector_anomaly_reads_the_authority_lane_in_the_shipped_engine():
    engine = build_engine()
    assert BY_AUTHORITY in engine.lanes()
    kinds = [d.kind for d in engine.partition(BY_AUTHORITY, 0).detectors]
    assert kinds == ["inspector_anomaly"]
    assert "inspector_anomaly" not in [d.kind for d in engine.partition("inspections", 0).detectors]


def test_a_dead_letter_names_its_source_in_headers():
    letter = DeadLetter("payroll", b"x", b"E-1", "why", "not_json", Source("payroll", 2, 5))
    assert letter.headers() == [
        ("kuzet.source.topic", b"payroll"),
        ("kuzet.source.partition", b"2"),
        ("kuzet.source.offset", b"5"),
        ("kuzet.reason", b"why"),
    ]


# --- one partition: Processor.whole, the backtest's shortcut ----------------------------


def test_with_one_partition_judging_whole_equals_shipping_through_a_merge(tmp_path):
    """``whole`` skips the shipping only: same alerts, outcomes and dead letters, in order."""
    from simulator import SimConfig, simulate
    from streams.replay import parse_line

    simulate(tmp_path, seed=3, scale=0.02, config=SimConfig())
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    shortcut, shipped = Processor(build_engine()), Processor(build_engine())
    by_whole, by_merge = BatchOutput(), BatchOutput()
    for number, line in enumerate(lines, start=1):
        try:
            stream, key, raw = parse_line(line)
        except Exception:
            continue
        source = Source("file", 0, number)
        shortcut.whole(stream, raw, key, source, by_whole)
        _, shipments = shipped.upstream(stream, 0, [(raw, key, source)], 1, out=by_merge)
        for q, up, through, frontier, halves in shipments:
            regroup = REGROUP_OF[stream]
            shipped.downstream(regroup, q, 1, up, through, frontier, halves, "file", by_merge)
    assert by_whole.alerts and by_whole.dead_letters
    assert [a.alert_id for a in by_whole.alerts] == [a.alert_id for a in by_merge.alerts]
    assert by_whole.outcomes == by_merge.outcomes
    assert [(d.reason, d.source) for d in by_whole.dead_letters] == [
        (d.reason, d.source) for d in by_merge.dead_letters
    ]
