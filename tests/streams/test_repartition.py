"""Payments by account: routing, reading back by side, and counting each payment once.

No Kafka here: :meth:`Processor.route_payments` and
:meth:`Processor.handle_activities` are pure; the agents that wrap them are in
``test_app.py`` and the real topic in ``tests/integration/test_repartition.py``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from detectors.base import Detector
from detectors.engine import Engine
from detectors.events import Activity
from streams.processor import SIDE_HEADER, Forward, Processor, Source, partition_for
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
    """The forwards as the by-account agent reads them: (value, key, source, side header)."""
    offsets: Counter[int] = Counter()
    records = []
    for forward in forwards:
        offset = start + offsets[forward.partition]
        offsets[forward.partition] += 1
        source = Source(BY_ACCOUNT, forward.partition, offset)
        records.append((forward.value, forward.key, source, forward.side.encode()))
    return records


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


def test_payee_and_payer_in_one_partition_make_one_record_with_both_sides(recording):
    processor, _ = recording
    raw = payment("p-1", A0, B0)
    forwards, out = processor.route_payments(inputs(raw), PARTITIONS)
    assert forwards == [Forward(0, B0.encode(), raw, "both")]
    assert out.outcomes == Counter() and not out.dead_letters and not out.alerts


def test_payee_and_payer_apart_make_an_in_record_and_an_out_record(recording):
    processor, _ = recording
    # Odd spacing and an exponent: the bytes must travel as they are, not re-encoded.
    raw = b' {"event_id": "p-1", "ts": "2023-03-01T09:00:00+06:00", "payer": "%s", ' % C1.encode()
    raw += b'"payee": "%s", "amount": 5e3} ' % E2.encode()
    forwards, _ = processor.route_payments(inputs(raw), PARTITIONS)
    assert forwards == [
        Forward(2, E2.encode(), raw, "in"),  # the payee's partition, keyed by the payee
        Forward(1, C1.encode(), raw, "out"),  # the payer's partition, keyed by the payer
    ]
    assert all(f.value is raw for f in forwards)  # the original bytes, not re-encoded


def test_one_partition_means_every_payment_is_one_record(recording):
    processor, _ = recording
    forwards, _ = processor.route_payments(inputs(payment("p-1", C1, E2)), 1)
    assert [(f.partition, f.side) for f in forwards] == [(0, "both")]


def test_invalid_payments_are_counted_and_dead_lettered_as_before(recording):
    processor, _ = recording
    records = inputs(b"{not json", payment("p-1", A0, A0), payment("p-2", C1, E2), b"")
    forwards, out = processor.route_payments(records, PARTITIONS)
    assert len(forwards) == 2
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
    assert out.outcomes == Counter(ok=4)  # one per payment, not per record (6 records)
    assert len(out.event_times) == 4
    assert not out.dead_letters


def test_a_redelivered_payment_counts_once_as_duplicate(recording):
    processor, detector = recording
    raw = payment("p-1", C1, E2)
    forwards, _ = processor.route_payments(inputs(raw, raw), PARTITIONS)
    assert len(forwards) == 4  # the payments agent forwards both deliveries
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
    assert [(d.category, d.source, d.key) for d in out.dead_letters] == [
        ("late", Source(BY_ACCOUNT, 2, 10), E2.encode()),
        ("late", Source(BY_ACCOUNT, 1, 10), C1.encode()),
    ]
    assert out.dead_letters[0].reason == (
        "late: event time is 48.0 h behind the newest payments event of its partition "
        "(allowed lateness 24 h)"
    )
    assert all(d.raw == raw and d.stream == "payments" for d in out.dead_letters)


@pytest.mark.parametrize(
    ("side", "shown"), [(None, "missing"), (b"sideways", "b'sideways'"), (b"", "b''")]
)
def test_a_record_without_a_valid_side_is_dead_lettered_not_counted(recording, side, shown):
    processor, detector = recording
    raw = payment("p-1", C1, E2)
    source = Source(BY_ACCOUNT, 1, 7)
    out = processor.handle_activities(
        [(raw, C1.encode(), source, side), (raw, E2.encode(), Source(BY_ACCOUNT, 2, 0), b"in")]
    )
    [letter] = out.dead_letters
    assert letter.category == "invalid_header"
    assert letter.reason == f"invalid header {SIDE_HEADER}: {shown} (expected in, out or both)"
    assert (letter.raw, letter.source) == (raw, source)
    assert out.outcomes == Counter(ok=1)  # the valid half still counts
    assert detector.seen == [(E2, "in", "p-1")]


def test_an_undecodable_forward_is_dead_lettered_not_counted(recording):
    processor, detector = recording
    source = Source(BY_ACCOUNT, 0, 3)
    out = processor.handle_activities([(b'{"event_id": 1}', b"A", source, b"both")])
    [letter] = out.dead_letters
    assert (letter.category, letter.source) == ("invalid_field", source)
    assert out.outcomes == Counter() and detector.seen == []


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
    order = [msgspec.json.decode(f.value)["event_id"] for f in forwards if f.side == "in"]
    # c (1 h) before a (2 h); b stays after a, where its partition had it; then d (3 h).
    assert order == ["c", "a", "b", "d"]
    # One partition: exactly the order it arrived in.
    forwards, _ = processor.route_payments(records[:2], PARTITIONS)
    assert [msgspec.json.decode(f.value)["event_id"] for f in forwards][::2] == ["a", "b"]
