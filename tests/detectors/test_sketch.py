"""``Seen``: the 128-byte Bloom filter of an account's counterparties.

What the payments detectors rely on, from the module docstring: no false "not
seen", few false "seen" (about 4.5 % at 150 names, under 1 % at 70),
a fixed size, and hashes that do not depend on the process (CRC-32, not
``hash()``), so a checkpoint restored elsewhere still recognises its payers.
"""

from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.payments.sketch import BITS, HASHES, Seen, positions

ROOT = Path(__file__).resolve().parents[2]
#: Name shapes of the simulator and of the hand-built test worlds.
PREFIXES = ("ACC-", "INV-", "P-", "payer-", "KZ86125KZT", "Қазақ-")


def filled(names: list[str]) -> Seen:
    seen = Seen()
    for name in names:
        seen.add(name)
    return seen


def test_every_added_name_is_recognised_even_far_past_the_design_load():
    names = [f"{prefix}{i}" for prefix in PREFIXES for i in range(1000)]  # 6,000 names
    seen = filled(names)
    assert all(name in seen for name in names)
    assert not any(seen.add(name) for name in names)  # nothing is new a second time


def false_seen_rate(names: list[str], unseen: list[str]) -> float:
    seen = filled(names)
    return sum(name in seen for name in unseen) / len(unseen)


# The simulator's account ids (simulator/payments.py): ACC- and seven digits, all one length.
ACCOUNTS = [f"ACC-{n:07d}" for n in random.Random(20230301).sample(range(10**7), 20_150)]


@pytest.mark.xfail(
    strict=True,
    reason="suspected bug: for names of one length the second CRC-32 (seeded) is the first "
    "XOR a constant, so all three positions follow from crc32(name) % 1024: the filter "
    "acts as one hash over 1,024 slots and takes 15 % of unseen ids for seen at 150 (7 % at 70)",
)
def test_false_seen_rate_at_150_account_ids_is_under_five_percent():
    # Docstring: about 4.5 % at 150 payers; asserted with some room, over 20,000 unseen ids.
    assert false_seen_rate(ACCOUNTS[:150], ACCOUNTS[150:]) < 0.05


@pytest.mark.xfail(
    strict=True,
    reason="suspected bug: same-length names share only 1,024 position triples "
    "(see test_false_seen_rate_at_150_account_ids_is_under_five_percent)",
)
def test_names_of_one_length_spread_over_more_than_1024_position_triples():
    assert len({positions(name) for name in ACCOUNTS}) > BITS


def test_an_empty_filter_has_seen_nothing():
    seen = Seen()
    assert not any(f"{prefix}{i}" in seen for prefix in PREFIXES for i in range(100))
    assert seen.count == 0


def test_add_is_true_only_the_first_time():
    seen = Seen()
    assert seen.add("ACC-1") is True
    assert seen.add("ACC-1") is False
    assert seen.add("ACC-2") is True
    assert [seen.add("ACC-1"), seen.add("ACC-2")] == [False, False]
    assert "ACC-1" in seen and "ACC-2" in seen
    assert seen.count == 2  # names that were new when added


def test_the_filter_stays_128_bytes_whatever_is_added():
    seen = Seen()
    assert len(seen.bits) == BITS // 8 == 128
    for i in range(20_000):
        seen.add(f"ACC-{i}")
    assert len(seen.bits) == 128
    bits, _count = seen.__getstate__()
    assert len(bits) == 128
    assert len(pickle.loads(pickle.dumps(seen)).bits) == 128


def test_pickle_round_trip_keeps_membership_and_count():
    names = [f"INV-{i}" for i in range(150)]
    seen = filled(names)
    copy = pickle.loads(pickle.dumps(seen))
    assert copy.bits == seen.bits and copy.count == seen.count
    assert all(name in copy for name in names)
    probes = [f"INV-{i}" for i in range(150, 2150)]
    assert [p in copy for p in probes] == [p in seen for p in probes]
    # The copy is independent and keeps learning.
    assert copy.add("NEW-1") is ("NEW-1" not in seen)
    assert "NEW-1" in copy


def test_positions_are_crc32_double_hashing():
    # By hand: crc32(b"") is 0, and crc32 of nothing seeded with 0x9E3779B9 is the seed,
    # which is odd already: h2 = 0x9E3779B9, 0x9E3779B9 % 1024 = 0x1B9 = 441.
    assert positions("") == (0, 441, 882)
    # Computed once and pinned: a change of hash would strand every checkpointed filter.
    assert positions("ACC-1") == (123, 516, 909)
    assert positions("INV-42") == (917, 522, 127)
    assert positions("Қазақ-7") == (498, 15, 556)
    assert all(len(positions(f"ACC-{i}")) == HASHES for i in range(10))
    assert all(0 <= p < BITS for i in range(1000) for p in positions(f"ACC-{i}"))


def test_a_filter_pickled_by_another_process_recognises_its_names():
    # Another interpreter with another string-hash seed: ``hash()`` would differ, CRC-32 must not.
    script = (
        "import pickle, sys\n"
        "from detectors.payments.sketch import Seen\n"
        "seen = Seen()\n"
        "for i in range(150): seen.add(f'ACC-{i}')\n"
        "sys.stdout.write(pickle.dumps(seen).hex())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = pickle.loads(bytes.fromhex(out))
    ours = filled([f"ACC-{i}" for i in range(150)])
    assert theirs.bits == ours.bits and theirs.count == ours.count
    assert all(f"ACC-{i}" in theirs for i in range(150))
