"""Payments by account: routing into envelopes, reading them back by side, counting once.

No Kafka here: :meth:`Processor.route_payments` and
:meth:`Processor.handle_activities` are pure; the agents that wrap them are in
``test_app.py`` and the real topic in ``tests/integration/test_repartition.py``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import permutations

import msgspec
import pytest

from detectors.base import Detector
from detectors.engine import Engine
from detectors.events import Activity
from streams.codec import decode_envelope, encode_envelopes
from streams.processor import DeadLetter, Forward, Processor, Source, partition_for
from streams.settings import Settings

PARTITIONS = 3
IN_TOPIC = "payments"
BY_ACCOUNT = "kuzet-payments-by-account"
T0 = datetime(2023, 3, 1, 9, tzinfo=UTC)


class Recording(Detector):
    """Records which account saw which side of which payment."""

    kind = "payment_anomaly"
    stream = "payments"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []  # (account, "in" | "out", event id)

    def update(self, event, ctx):
        assert isinstance(event, Activity)
        payment = event.payment
        if event.incoming:
            self.seen.append((payment.payee, "in", payment.event_id))
        if event.outgoing:
            self.seen.append((payment.payer, "out", payment.event_id))
        return []


def accounts(partition: int, n: int = 2) -> list[str]:
    """``n`` account ids that Kafka's default partitioner puts in ``partition`` of 3."""
    found = [f"ACC-{i}" for i in range(1000) if partition_for(f"ACC-{i}".encode(), 3) == partition]
    return found[:n]


A0, B0 = accounts(0)  # same partition
C1, D1 = accounts(1)
E2, F2 = accounts(2)


def payment(event_id: str, payer: str, payee: str, hours: float = 0.0, amount=1000.0) -> bytes:
    return msgspec.json.encode(
        {
            "event_id": event_id,
            "ts": (T0 + timedelta(hours=hours)).isoformat(),
            "payer": payer,
            "payee": payee,
            "amount": amount,
        }
    )


def inputs(*values: bytes) -> list[tuple[bytes | None, bytes | None, Source]]:
    """Records as read from the payments topic (keyed by payer, partition 0)."""
    return [(value, b"payer", Source(IN_TOPIC, 0, offset)) for offset, value in enumerate(values)]


def read_back(forwards: list[Forward], start: int = 0):
    """The forwards as the by-account agent reads them: (envelope, key, source)."""
    offsets: Counter[int] = Counter()
    records = []
    for forward in forwards:
        offset = start + offsets[forward.partition]
        offsets[forward.partition] += 1
        records.append((forward.value, None, Source(BY_ACCOUNT, forward.partition, offset)))
    return records


def halves(forwards: list[Forward]) -> list[tuple[int, str, bytes]]:
    """Every half the forwards carry, in order: (partition, side, payment bytes)."""
    return [
        (forward.partition, side, raw)
        for forward in forwards
        for side, raw in decode_envelope(forward.value)
    ]


def per_half(raws: list[bytes], partitions: int = PARTITIONS) -> dict[int, list[tuple[str, bytes]]]:
    """What each partition got when every half was a record of its own (the old format)."""
    lanes: dict[int, list[tuple[str, bytes]]] = {}
    for raw in raws:
        event = msgspec.json.decode(raw)
        into = partition_for(event["payee"].encode(), partitions)
        out_of = partition_for(event["payer"].encode(), partitions)
        if into == out_of:
            lanes.setdefault(into, []).append(("both", raw))
        else:
            lanes.setdefault(into, []).append(("in", raw))
            lanes.setdefault(out_of, []).append(("out", raw))
    return lanes


@pytest.fixture
def recording():
    detector = Recording()
    return Processor(Engine([detector])), detector


def test_partition_for_is_kafkas_default_partitioner():
    # Kafka's own murmur2 test vectors (Java's Utils.murmur2, as signed ints).
    from aiokafka.partitioner import murmur2

    vectors = {b"21": -973932308, b"foobar": -790332482, b"abc": 479470107}
    for key, java in vectors.items():
        assert murmur2(key) == java & 0xFFFFFFFF
        assert partition_for(key, 7) == (java & 0x7FFFFFFF) % 7
    assert {partition_for(a.encode(), 3) for a in (A0, B0)} == {0}
    assert partition_for(C1.encode(), 3) == 1 and partition_for(E2.encode(), 3) == 2


def test_payee_and_payer_in_one_partition_make_one_half_with_both_sides(recording):
    processor, _ = recording
    raw = payment("p-1", A0, B0)
    forwards, out = processor.route_payments(inputs(raw), PARTITIONS)
    assert forwards == [Forward(0, encode_envelopes([("both", raw)])[0])]
    assert halves(forwards) == [(0, "both", raw)]
    assert out.outcomes == Counter() and not out.dead_letters and not out.alerts


def test_payee_and_payer_apart_make_an_in_half_and_an_out_half(recording):
    processor, _ = recording
    # Odd spacing and an exponent: the bytes must travel as they are, not re-encoded.
    raw = b' {"event_id": "p-1", "ts": "2023-03-01T09:00:00+06:00", "payer": "%s", ' % C1.encode()
    raw += b'"payee": "%s", "amount": 5e3} ' % E2.encode()
    forwards, _ = processor.route_payments(inputs(raw), PARTITIONS)
    assert sorted(halves(forwards)) == [
        (1, "out", raw),  # the payer's partition
        (2, "in", raw),  # the payee's partition
    ]


def test_one_partition_means_every_payment_is_one_half(recording):
    processor, _ = recording
    forwards, _ = processor.route_payments(inputs(payment("p-1", C1, E2)), 1)
    assert [(p, side) for p, side, _ in halves(forwards)] == [(0, "both")]


def test_a_batch_makes_one_envelope_per_partition_in_the_order_of_records_per_half(recording):
    processor, _ = recording
    pairs = list(permutations([A0, B0, C1, D1, E2, F2], 2))  # every way, both and split
    raws = [payment(f"p-{n}", payer, payee, hours=n / 10) for n, (payer, payee) in enumerate(pairs)]
    forwards, out = processor.route_payments(inputs(*raws), PARTITIONS)
    assert not out.dead_letters
    assert sorted(f.partition for f in forwards) == [0, 1, 2]  # one record each, not one a half
    # Each partition gets exactly the halves, in exactly the order, it got as records.
    assert {f.partition: decode_envelope(f.value) for f in forwards} == per_half(raws)
    # Nothing to forward, nothing forwarded.
    assert processor.route_payments(inputs(b"{"), PARTITIONS)[0] == []


def test_large_payments_are_split_over_envelopes_in_order(recording):
    processor, _ = recording
    # Extra fields are allowed: five payments of ~100 kB each, all to partition 0.
    raws = [
        msgspec.json.encode(
            msgspec.json.decode(payment(f"p-{n}", A0, B0, hours=n)) | {"note": 100_000 * "x"}
        )
        for n in range(5)
    ]
    forwards, _ = processor.route_payments(inputs(*raws), PARTITIONS)
    assert len(forwards) > 1 and {f.partition for f in forwards} == {0}
    assert all(len(f.value) <= 256 * 1024 for f in forwards)
    assert halves(forwards) == [(0, "both", raw) for raw in raws]


def test_invalid_payments_are_counted_and_dead_lettered_as_before(recording):
    processor, _ = recording
    records = inputs(b"{not json", payment("p-1", A0, A0), payment("p-2", C1, E2), b"")
    forwards, out = processor.route_payments(records, PARTITIONS)
    assert len(halves(forwards)) == 2
    assert out.outcomes == Counter(invalid=3)
    assert [(d.category, d.source.offset, d.raw) for d in out.dead_letters] == [
        ("not_json", 0, b"{not json"),
        ("invalid_value", 1, records[1][0]),
        ("empty", 3, b""),
    ]
    assert out.dead_letters[1].reason == "payee equals payer"
    assert all(d.stream == "payments" and d.key == b"payer" for d in out.dead_letters)
    assert out.dead_letters[0].headers()[0] == ("kuzet.source.topic", b"payments")


def test_every_account_sees_each_of_its_payments_once_on_its_side(recording):
    processor, detector = recording
    raws = [
        payment("p-1", A0, B0, 0),  # both sides in partition 0
        payment("p-2", C1, E2, 1),  # split: in at 2, out at 1
        payment("p-3", E2, A0, 2),  # split: in at 0, out at 2
        payment("p-4", D1, C1, 3),  # both in partition 1
    ]
    forwards, _ = processor.route_payments(inputs(*raws), PARTITIONS)
    out = processor.handle_activities(read_back(forwards))
    assert sorted(detector.seen) == sorted(
        [
            (B0, "in", "p-1"),
            (A0, "out", "p-1"),
            (E2, "in", "p-2"),
            (C1, "out", "p-2"),
            (A0, "in", "p-3"),
            (E2, "out", "p-3"),
            (C1, "in", "p-4"),
            (D1, "out", "p-4"),
        ]
    )
    assert out.outcomes == Counter(ok=4)  # one per payment, not per half (6 halves)
    assert len(out.event_times) == 4
    assert not out.dead_letters


def test_a_redelivered_payment_counts_once_as_duplicate(recording):
    processor, detector = recording
    raw = payment("p-1", C1, E2)
    forwards, _ = processor.route_payments(inputs(raw, raw), PARTITIONS)
    assert len(halves(forwards)) == 4  # the payments agent forwards both deliveries
    out = processor.handle_activities(read_back(forwards))
    assert out.outcomes == Counter(ok=1, duplicate=1)
    assert sorted(detector.seen) == sorted([(C1, "out", "p-1"), (E2, "in", "p-1")])
    assert not out.dead_letters


def test_late_halves_go_to_the_dead_letters_and_the_payment_counts_once(recording):
    processor, _ = recording
    # Move the clocks of partitions 1 and 2 two days on, then a payment from before.
    forwards, _ = processor.route_payments(
        inputs(payment("p-new-1", D1, C1, 48), payment("p-new-2", F2, E2, 48)), PARTITIONS
    )
    processor.handle_activities(read_back(forwards))
    raw = payment("p-old", C1, E2, 0)
    forwards, _ = processor.route_payments(inputs(raw), PARTITIONS)
    out = processor.handle_activities(read_back(forwards, start=10))
    assert out.outcomes == Counter(late=1)
    # Keyed by the account whose side it is; the source is the envelope and the half in it.
    assert [(d.category, d.source, d.half, d.key) for d in out.dead_letters] == [
        ("late", Source(BY_ACCOUNT, 1, 10), 0, C1.encode()),
        ("late", Source(BY_ACCOUNT, 2, 10), 0, E2.encode()),
    ]
    assert out.dead_letters[0].reason == (
        "late: event time is 48.0 h behind the newest payments event of its partition "
        "(allowed lateness 24 h)"
    )
    assert all(d.raw == raw and d.stream == "payments" for d in out.dead_letters)


@pytest.mark.parametrize(
    "envelope",
    [
        None,
        b"",
        payment("p-0", A0, B0),  # a bare payment, as records were before envelopes
        msgspec.msgpack.encode([2, [["both", payment("p-0", A0, B0)]]]),  # another version
        msgspec.msgpack.encode([1, [["both", payment("p-0", A0, B0)], ["sideways", b"{}"]]]),
        b"\x92\x01\x91",  # cut short
    ],
    ids=["none", "empty", "bare-payment", "version-2", "bad-side", "truncated"],
)
def test_a_garbled_envelope_is_dead_lettered_whole_and_counted_once(recording, envelope):
    processor, detector = recording
    raw = payment("p-1", C1, E2)
    source = Source(BY_ACCOUNT, 1, 7)
    [good] = encode_envelopes([("in", raw)])
    out = processor.handle_activities(
        [(envelope, None, source), (good, None, Source(BY_ACCOUNT, 2, 0))]
    )
    [letter] = out.dead_letters
    assert letter.category == "invalid_envelope"
    assert letter.reason.startswith("invalid envelope: ")
    assert (letter.raw, letter.key, letter.source, letter.half) == (envelope, None, source, None)
    assert ("kuzet.reason", letter.reason.encode()) in letter.headers()
    assert out.outcomes == Counter(invalid=1, ok=1)  # the envelope once; the next still counts
    assert detector.seen == [(E2, "in", "p-1")]


def test_a_half_that_is_no_payment_is_dead_lettered_and_counted_on_its_incoming_side(recording):
    processor, detector = recording
    source = Source(BY_ACCOUNT, 0, 3)
    [envelope] = encode_envelopes(
        [("both", payment("p-1", A0, B0)), ("in", b'{"event_id": 1}'), ("out", b"[]")]
    )
    out = processor.handle_activities([(envelope, None, source)])
    assert [(d.category, d.raw, d.source, d.half, d.key) for d in out.dead_letters] == [
        ("invalid_field", b'{"event_id": 1}', source, 1, None),
        ("not_object", b"[]", source, 2, None),
    ]
    assert ("kuzet.source.half", b"1") in out.dead_letters[0].headers()
    assert out.outcomes == Counter(ok=1, invalid=1)  # the out half is not counted
    assert sorted(detector.seen) == [(A0, "out", "p-1"), (B0, "in", "p-1")]


def test_a_dead_letter_names_its_half_only_when_it_has_one():
    letter = DeadLetter("payments", b"x", None, "why", "late", Source(IN_TOPIC, 0, 5))
    assert [name for name, _ in letter.headers()] == [
        "kuzet.source.topic",
        "kuzet.source.partition",
        "kuzet.source.offset",
        "kuzet.reason",
    ]
    letter.half = 3
    assert letter.headers()[-1] == ("kuzet.source.half", b"3")


class Exploding(Recording):
    def update(self, event, ctx):
        raise RuntimeError("boom")


def test_a_failing_detector_dead_letters_each_half_and_counts_the_payment_once():
    processor = Processor(Engine([Exploding()]))
    forwards, _ = processor.route_payments(inputs(payment("p-1", C1, E2)), PARTITIONS)
    out = processor.handle_activities(read_back(forwards))
    assert out.outcomes == Counter(failed=1)
    assert [d.category for d in out.dead_letters] == ["detector_failed", "detector_failed"]
    assert out.dead_letters[0].reason == "detector payment_anomaly failed: RuntimeError: boom"


def test_the_by_account_topic_is_named_after_the_group_under_the_prefix():
    assert Settings().by_account_topic == "kuzet-payments-by-account"
    assert Settings.from_env({}).by_account_topic == "kuzet-payments-by-account"
    settings = Settings.from_env({"KUZET_TOPIC_PREFIX": "t.", "KUZET_APP_ID": "reprocess-1"})
    assert settings.by_account_topic == "t.reprocess-1-payments-by-account"
    settings = Settings.from_env(
        {"KUZET_TOPIC_PREFIX": "t.", "KUZET_TOPIC_PAYMENTS_BY_ACCOUNT": "by-account"}
    )
    assert settings.by_account_topic == "t.by-account"


def test_a_batch_of_several_partitions_is_forwarded_in_event_time_each_keeping_its_order(
    recording,
):
    processor, _ = recording
    p0 = [payment("a", C1, E2, 2.0), payment("b", C1, E2, 0.5)]  # b arrived late
    p1 = [payment("c", D1, F2, 1.0), payment("d", D1, F2, 3.0)]
    records = [
        (p0[0], b"k", Source(IN_TOPIC, 0, 0)),
        (p0[1], b"k", Source(IN_TOPIC, 0, 1)),
        (p1[0], b"k", Source(IN_TOPIC, 1, 0)),
        (p1[1], b"k", Source(IN_TOPIC, 1, 1)),
    ]
    forwards, _ = processor.route_payments(records, PARTITIONS)
    order = [msgspec.json.decode(raw)["event_id"] for _, side, raw in halves(forwards)]
    # In the payees' partition (2): c (1 h) before a (2 h); b stays after a, where
    # its partition had it; then d (3 h).
    assert [p for p, side, _ in halves(forwards) if side == "in"] == [2, 2, 2, 2]
    assert order[:4] == ["c", "a", "b", "d"]
    # The payers' partition (1) sees them in the same order.
    assert order[4:] == ["c", "a", "b", "d"]
    # One partition: exactly the order it arrived in.
    forwards, _ = processor.route_payments(records[:2], PARTITIONS)
    assert [msgspec.json.decode(raw)["event_id"] for _, _, raw in halves(forwards)] == [
        "a",
        "b",
        "a",
        "b",
    ]
