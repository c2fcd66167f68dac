"""``kuzet capture`` without a broker: the partition merge and Kafka records as file lines."""

from __future__ import annotations

import random

import msgspec
import pytest

from streams.capture import CaptureSummary, Merger, file_line
from streams.codec import InvalidEvent, decode_file_line

# --- merging partitions by timestamp -------------------------------------------------


def test_merge_orders_by_timestamp_across_sources():
    merger = Merger(["a", "b", "c"])
    merger.push("a", [(1, "a1"), (4, "a4")])
    merger.push("b", [(2, "b2"), (3, "b3")])
    merger.push("c", [(0, "c0")])
    for source in "abc":
        merger.close(source)
    assert list(merger.ready()) == ["c0", "a1", "b2", "b3", "a4"]
    assert merger.finished


def test_merge_keeps_each_sources_order_even_when_its_timestamps_go_back():
    # A producer's clock can step back: the records of one partition (one key)
    # must still come out in offset order.
    merger = Merger(["a", "b"])
    merger.push("a", [(5, "a-first"), (1, "a-second")])
    merger.push("b", [(3, "b")])
    merger.close("a")
    merger.close("b")
    out = list(merger.ready())
    assert out.index("a-first") < out.index("a-second")
    assert out == ["b", "a-first", "a-second"]


def test_merge_waits_for_every_open_source():
    merger = Merger(["a", "b"])
    merger.push("a", [(10, "a10")])
    assert list(merger.ready()) == []  # b might still bring something earlier
    merger.push("b", [(5, "b5"), (20, "b20")])
    assert list(merger.ready()) == ["b5", "a10"]  # now a is empty and open again
    merger.close("a")
    assert list(merger.ready()) == ["b20"]
    assert not merger.finished  # b is still open
    merger.close("b")
    assert merger.finished


def test_merge_ties_go_to_the_earlier_source():
    merger = Merger(["payments", "payroll"])
    merger.push("payroll", [(7, "r")])
    merger.push("payments", [(7, "p")])
    merger.close("payments")
    merger.close("payroll")
    assert list(merger.ready()) == ["p", "r"]


def test_merge_idle_sources_do_not_hold_the_others_back():
    merger = Merger(["a", "b"])
    merger.push("a", [(1, "a1")])
    merger.idle("b", True)
    assert list(merger.ready()) == ["a1"]
    merger.idle("b", False)
    merger.push("a", [(2, "a2")])
    assert list(merger.ready()) == []


def test_merge_force_releases_everything_buffered():
    merger = Merger(["a", "b"])
    merger.push("a", [(3, "a3")])
    merger.push("b", [(1, "b1"), (9, "b9")])
    assert list(merger.ready(force=True)) == ["b1", "a3", "b9"]


def test_merge_of_random_partitions_is_sorted_and_keeps_partition_order():
    rng = random.Random(3)
    partitions = {p: sorted(rng.sample(range(10_000), 500)) for p in range(6)}
    merger = Merger(partitions)
    out = []
    cursors = dict.fromkeys(partitions, 0)
    while any(cursors[p] < 500 for p in partitions):
        p = rng.choice([p for p in partitions if cursors[p] < 500])
        n = rng.randrange(1, 50)
        chunk = partitions[p][cursors[p] : cursors[p] + n]
        merger.push(p, [(ts, (ts, p)) for ts in chunk])
        cursors[p] += len(chunk)
        if cursors[p] >= 500:
            merger.close(p)
        out.extend(merger.ready())
    out.extend(merger.ready())
    assert len(out) == 3000
    assert [ts for ts, _ in out] == sorted(ts for ts, _ in out)
    for p, timestamps in partitions.items():
        assert [ts for ts, q in out if q == p] == timestamps


# --- Kafka records as file lines -----------------------------------------------------


def test_file_line_round_trips_through_the_file_reader():
    value = b'{ "event_id": "p-1", "payer": "\\u0410", "amount": 1.50 }'
    line, flattened = file_line("payments", "Ақ-1".encode(), value)
    assert not flattened
    assert decode_file_line(line) == ("payments", "Ақ-1", value)


def test_file_line_without_key():
    line, _ = file_line("payroll", None, b"{}")
    assert decode_file_line(line) == ("payroll", None, b"{}")


def test_file_line_keeps_valid_json_that_is_not_an_event():
    line, _ = file_line("inspections", b"k", b"[1, 2]")
    assert decode_file_line(line)[2] == b"[1, 2]"


def test_file_line_flattens_line_breaks_so_the_file_stays_one_record_a_line():
    value = b'{\r\n  "event_id": "x",\n  "note": "a\\nb"\n}'
    line, flattened = file_line("payments", b"k", value)
    assert flattened
    assert b"\n" not in line and b"\r" not in line
    raw = decode_file_line(line)[2]
    assert msgspec.json.decode(raw) == msgspec.json.decode(value)


@pytest.mark.parametrize(
    ("key", "value", "category"),
    [
        (b"k", None, "empty"),
        (b"k", b"", "empty"),
        (b"k", b"not json", "not_json"),
        (b"k", b'{"a": 1', "not_json"),
        (b"k", b'{"a": 1} trailing', "not_json"),
        (b"k", b'{"a": "\xff"}', "not_utf8"),
        (b"\xff\xfe", b"{}", "key_not_utf8"),
    ],
)
def test_file_line_refuses_what_the_file_cannot_hold(key, value, category):
    with pytest.raises(InvalidEvent) as caught:
        file_line("payments", key, value)
    assert caught.value.category == category


def test_capture_summary_render():
    summary = CaptureSummary(read=3, seconds=1.0)
    summary.written["payments"] = 2
    summary.skip("t.payments[0]@7", InvalidEvent("value is not JSON: x", "not_json"))
    text = summary.render()
    assert "written                2" in text
    assert "t.payments[0]@7: value is not JSON: x" in text
