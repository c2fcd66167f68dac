"""Fuzzing the engine: any mix of valid and broken records, as the worker and backtest feed it.

The processor and the detectors it drives (``build_engine``, every shipped
kind) get streams of records of all three topics (``strategies.streams_of_records``):
contract-valid events in event-time order with some late, redelivered or
reusing an earlier id, among every broken kind ``strategies.py`` makes. Three
ways in, as Kuzet has them: one partition per lane (``kuzet backtest``'s
default, :meth:`Processor.whole`), three partitions with the regrouped
streams carried as envelope bytes and forged envelopes among them (the live
worker), and files through ``run_backtest`` itself.

Properties: nothing raises; every record is counted once, under one outcome;
a record the decoder rejects is one dead letter with the decoder's reason;
a decoded one is judged (ok, duplicate, late, or dead-lettered with a
reason) and no detector fails on it, nor on a timer; a redelivery never counts
twice; every alert is one the contract allows; the state still pickles.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.engine import DUPLICATE, FAILED, LATE, OK, Engine
from detectors.events import KEY_FIELDS
from detectors.registry import build_engine
from streams.backtest import run_backtest
from streams.codec import CATEGORIES, InvalidEvent, decode_alert, decode_event, encode_file_line
from streams.processor import INVALID, BatchOutput, DeadLetter, Processor, Source
from streams.regroup import DONE, REGROUP_OF, WAIT, encode_envelopes, partition_for
from tests.fuzz import strategies as gen
from tests.fuzz.oracle import check_alert
from tests.fuzz.strategies import FUZZ, Record
from tests.fuzz.tally import OUTCOMES, TRIED, check_quota, timed

#: Dead-letter categories: the codec's bounded set, and the reasons shared/contract.md names
#: for what decodes but is refused (issue 14). A metric label: never open-ended.
KNOWN_CATEGORIES = frozenset(CATEGORIES)


def check_letter(letter: DeadLetter) -> None:
    assert letter.category in KNOWN_CATEGORIES, f"dead letter category {letter.category!r}"
    assert letter.category != "detector_failed", f"a detector failed: {letter.reason}"
    assert isinstance(letter.reason, str) and letter.reason, "a dead letter without a reason"
    letter.kafka_record()  # what the worker sends: the bytes (or their start) and headers


def check_output(out: BatchOutput, accepted: set[str]) -> None:
    for letter in out.dead_letters:
        check_letter(letter)
    for alert in out.alerts:
        check_alert(alert)
        cited = set(alert.event_ids) - accepted
        assert not cited, f"{alert.kind} cites events never accepted: {sorted(cited)[:5]}"


def decoded(record: Record):
    try:
        return decode_event(record.stream, record.value), None
    except InvalidEvent as exc:
        return None, exc


def check_state(engine: Engine) -> None:
    assert engine.timer_failures == 0, "a detector failed on a timer"
    Engine.restore(engine.snapshot())  # checkpointed state pickles, whatever came in


# --- one partition per lane: Processor.whole (kuzet backtest) ----------------------------

WHOLE_BATCHES = 500


@settings(FUZZ, max_examples=WHOLE_BATCHES)
@given(gen.streams_of_records(min_size=40, max_size=120))
def fuzz_whole(records: list[Record]) -> None:
    TRIED["engine, 1 partition"] += len(records)
    processor = Processor(build_engine())
    accepted: set[str] = set()  # event ids the detectors took
    first: dict[bytes | None, str] = {}  # each distinct message's first outcome
    for offset, record in enumerate(records):
        out = BatchOutput()
        source = Source(record.stream, 0, offset)
        processor.whole(record.stream, record.value, record.key, source, out)
        assert sum(out.outcomes.values()) == 1, f"counted {dict(out.outcomes)}: {record}"
        (outcome,) = out.outcomes
        OUTCOMES[outcome] += 1
        event, rejection = decoded(record)
        if event is None:
            assert outcome == INVALID, f"{outcome} for a record the codec rejects: {record}"
            (letter,) = out.dead_letters
            assert (letter.raw, letter.reason) == (record.value, rejection.reason)
        else:
            assert outcome != FAILED, f"{out.dead_letters[0].reason}: {record}"
            if outcome in (OK, DUPLICATE):
                assert not out.dead_letters, f"{outcome} and dead-lettered: {record}"
            else:  # late, or refused after decoding (future_ts, key_mismatch, id_conflict)
                (letter,) = out.dead_letters
                if letter.category == "key_mismatch":
                    entity = getattr(event, KEY_FIELDS[record.stream])
                    assert record.key != entity.encode(), f"key_mismatch of a right key: {record}"
            if outcome == OK:
                accepted.add(event.event_id)
        if record.how == "redelivered" and first.get(record.value) in (OK, DUPLICATE, LATE):
            assert outcome != OK, f"a redelivered event counted twice: {record}"
        first.setdefault(record.value, outcome)
        check_output(out, accepted)
    check_state(processor.engine)


def test_the_engine_takes_any_mix_of_records_on_one_partition():
    with timed("engine, 1 partition"):
        fuzz_whole()
    check_quota("engine, 1 partition")
    # Not vacuous: a good share of the records reached the detectors, and every kind of refusal
    # happened.
    assert OUTCOMES[OK] > TRIED["engine, 1 partition"] / 4
    assert OUTCOMES[INVALID] and OUTCOMES[DUPLICATE] and OUTCOMES[LATE]


# --- three partitions, regrouped streams as envelope bytes (the live worker) -------------

N = 3


class Wire:
    """Input and internal topics in memory, driven as the worker drives them."""

    def __init__(self) -> None:
        self.processor = Processor(build_engine())
        self.processor.accepted = []
        self.next: Counter[tuple[str, int]] = Counter()  # next offset of each input partition
        self.internal: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        self.read: Counter[tuple[str, int]] = Counter()
        self.out = BatchOutput()
        self.forged = 0  # forged internal records
        self.forged_counted = 0  # of them, those on a topic whose records count

    def upstream(self, stream: str, p: int, records: list[Record], frontier: float) -> None:
        """One batch of input partition ``p``; its shipments go onto the internal topics."""
        start = self.next[stream, p]
        self.next[stream, p] += len(records)
        batch = [(r.value, r.key, Source(stream, p, start + i)) for i, r in enumerate(records)]
        through = self.next[stream, p] - 1
        _, shipments = self.processor.upstream(
            stream, p, batch, N, frontier=frontier, through=through, out=self.out
        )
        for q, upstream, last, ahead, halves in shipments:
            self.internal[stream, q] += encode_envelopes(upstream, last, ahead, halves)

    def forge(self, stream: str, q: int, raw: bytes) -> None:
        self.internal[stream, q].append(raw)
        self.forged += 1
        self.forged_counted += REGROUP_OF[stream].counts

    def downstream(self) -> None:
        """Every internal record not read yet."""
        for (stream, q), values in list(self.internal.items()):
            for offset in range(self.read[stream, q], len(values)):
                record = (values[offset], None, Source(f"internal-{stream}", q, offset))
                self.processor.downstream_record(REGROUP_OF[stream], q, N, record, stream, self.out)
            self.read[stream, q] = len(values)


#: Internal records that are no envelope this worker can take; each must be dead-lettered.
FORGED = (
    b"",
    b"\xc1",  # never used in MessagePack
    b"\x95\x02\x00\x00",  # an array of 5 cut short
    msgspec.msgpack.encode([1, 0, 0, 0.0, []]),  # another version
    msgspec.msgpack.encode([2, 7, 0, 0.0, []]),  # an upstream partition that does not exist
    msgspec.msgpack.encode([2, -1, 0, 0.0, []]),
    msgspec.msgpack.encode([2, 0, 0, math.nan, []]),
    msgspec.msgpack.encode([2, 0, 5, 0.0, [["in", 5, math.inf, b"{}"]]]),
    msgspec.msgpack.encode([2, 0, 5, 0.0, [["sideways", 5, 1.0, b"{}"]]]),
    msgspec.msgpack.encode({"version": 2}),
)

WIRE_BATCHES = 300


@settings(FUZZ, max_examples=WIRE_BATCHES)
@given(gen.streams_of_records(min_size=40, max_size=120), st.integers(1, 40))
def fuzz_wire(records: list[Record], batch_size: int) -> None:
    TRIED["engine, 3 partitions"] += len(records)
    wire = Wire()
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        by_partition: dict[tuple[str, int], list[Record]] = defaultdict(list)
        for record in chunk:
            p = partition_for(record.key, N) if record.key else 0
            by_partition[record.stream, p].append(record)
        for (stream, p), batch in by_partition.items():
            wire.upstream(stream, p, batch, WAIT)
        if batch_size % 3 == 0:  # now and then, something forged on an internal topic
            forged = FORGED[(start + batch_size) % len(FORGED)]
            wire.forge(("payments", "inspections")[start % 2], start % N, forged)
        wire.downstream()
    for stream in REGROUP_OF:  # every input partition read to its end: the merges drain
        for p in range(N):
            wire.upstream(stream, p, [], DONE)
    wire.downstream()

    out = wire.out
    assert sum(out.outcomes.values()) == len(records) + wire.forged_counted, dict(out.outcomes)
    assert not out.outcomes[FAILED]
    letters = Counter(letter.category for letter in out.dead_letters)
    assert letters["invalid_envelope"] == wire.forged, "a forged envelope not dead-lettered"
    accepted = {event.event_id for _, _, event in wire.processor.accepted}
    check_output(out, accepted)
    assert not any(len(merge) for merge in wire.processor.merges.values()), "halves left behind"
    check_state(wire.processor.engine)


def test_the_engine_takes_any_mix_of_records_on_three_partitions_and_forged_envelopes():
    with timed("engine, 3 partitions"):
        fuzz_wire()
    check_quota("engine, 3 partitions")


# --- files, through kuzet backtest itself -------------------------------------------------

BACKTEST_BATCHES = 160


def file_of(records: list[Record]) -> bytes:
    """The records as a historical stream file; a value that is no JSON breaks its line."""
    lines = []
    for index, record in enumerate(records):
        try:
            key = None if record.key is None else record.key.decode()
        except UnicodeDecodeError:
            key = None
        value = record.value if record.value else b"null"
        lines.append(encode_file_line(record.stream, key, value))
        if index % 17 == 0:
            lines.append(b"  ")  # blank lines are skipped
    return b"\n".join(lines) + b"\n"


@settings(FUZZ, max_examples=BACKTEST_BATCHES)
@given(gen.streams_of_records(min_size=40, max_size=120), st.sampled_from((1, 3)))
def fuzz_backtest(records: list[Record], partitions: int) -> None:
    content = file_of(records)
    lines = sum(1 for line in content.split(b"\n") if line.strip())
    TRIED["backtest file lines"] += lines
    with tempfile.TemporaryDirectory() as folder:
        events, alerts, rejects = (Path(folder) / n for n in ("in.jsonl", "out.jsonl", "rej.tsv"))
        events.write_bytes(content)
        summary = run_backtest(
            events, alerts, rejects_path=rejects, progress=False, partitions=partitions
        )
        written = alerts.read_bytes().splitlines()
        rejected = rejects.read_bytes().decode().split("\n")[:-1]
    assert summary.records == lines
    assert sum(summary.outcomes.values()) == lines, dict(summary.outcomes)
    assert set(summary.rejects) <= KNOWN_CATEGORIES and not summary.rejects["detector_failed"]
    assert len(written) == sum(summary.alerts.values())
    for raw in written:
        check_alert(decode_alert(raw))
    assert len(rejected) == sum(summary.rejects.values())
    for row in rejected:  # one reject a line: line number, category, reason
        number, category, reason = row.split("\t")
        assert int(number) > 0 and category in KNOWN_CATEGORIES and reason


def test_kuzet_backtest_takes_any_file():
    with timed("backtest file lines"):
        fuzz_backtest()
    check_quota("backtest file lines")
