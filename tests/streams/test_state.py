"""A task's saved state: :func:`streams.state.dump` and :func:`~streams.state.load` (no Kafka).

Writing it to the state topic and reading it back is tested against the real
broker in ``tests/integration``.
"""

from __future__ import annotations

import pickle
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from detectors.engine import Partition, SnapshotError
from detectors.events import Inspection
from detectors.registry import build_engine
from streams.regroup import DONE, WAIT, Merge
from streams.state import STATE_VERSION, TaskState, dump, load

T0 = datetime(2021, 3, 2, 5, tzinfo=UTC)
KEY = "inspections/2"


def inspection(n: int, business: str = "B-1", hours: float = 0.0) -> Inspection:
    return Inspection(
        event_id=f"i-{n}",
        ts=T0 + timedelta(hours=hours),
        business=business,
        business_size="small",
        authority="AUTH-1",
        inspector="I-1",
        kind="unscheduled",
        basis="routine",
    )


def task_state() -> tuple[TaskState, Partition]:
    """A task's state as the worker holds it mid-stream: a fed partition, a merge with halves."""
    engine = build_engine()
    for n in range(5):  # B-1 inspected five times in a few days: repeat_inspection learns
        engine.process("inspections", inspection(n, hours=20 * n), 2)
    partition = engine.partition("inspections", 2)
    merge = Merge(3)
    merge.add(0, 7, WAIT, [("both", 3, 10.0, b"x"), ("both", 7, 12.0, b"y")])
    merge.add(2, 4, 11.5, [("both", 4, 11.0, b"z")])  # read to its end: others up to 11.5
    state = TaskState(
        "inspections",
        2,
        position=5,
        engine=partition,
        merge=merge,
        outcomes=Counter(ok=5),
        max_ts=partition.max_ts,
    )
    return state, partition


def test_a_task_state_round_trips_with_its_partition_and_merge():
    state, partition = task_state()
    back = load(dump(state), KEY)

    assert (back.topic, back.partition, back.key) == ("inspections", 2, KEY)
    assert (back.position, back.outcomes, back.max_ts) == (5, Counter(ok=5), partition.max_ts)
    assert back.engine is not partition and isinstance(back.engine, Partition)
    assert back.engine.max_ts == partition.max_ts
    assert len(back.engine.dedup) == len(partition.dedup) == 3  # 0 h and 20 h expired
    assert back.engine.timers == partition.timers
    assert [d.kind for d in back.engine.detectors] == [d.kind for d in partition.detectors]

    # The restored partition goes on exactly as the original: the same outcomes and alerts.
    assert [d.n_entities for d in back.engine.detectors] == [
        d.n_entities for d in partition.detectors
    ]
    lateness = 24 * 3600.0
    outcomes = []
    for event in (inspection(2, hours=40), inspection(9, hours=100), inspection(10, "B-2", 101)):
        mine, theirs = partition.process(event, lateness), back.engine.process(event, lateness)
        assert (mine.outcome, mine.alerts) == (theirs.outcome, theirs.alerts)
        outcomes.append(theirs.outcome)
    assert outcomes == ["duplicate", "ok", "ok"]  # it remembers the ids it had seen

    # The merge holds the same halves, and releases them in the same order.
    assert back.merge is not None and state.merge is not None
    assert back.merge.through == [7, -1, 4] and back.merge.frontier == [WAIT, WAIT, 11.5]
    for merge in (state.merge, back.merge):
        merge.add(1, 9, DONE, [("both", 9, 10.5, b"w")])
    released = back.merge.release()
    assert released == state.merge.release()
    # x (10), w (10.5), z (11); then y (12) is past upstream 2's frontier, and waits.
    assert [half[3] for _, half in released] == [b"x", b"w", b"z"]
    assert len(back.merge) == len(state.merge) == 1
    for merge in (state.merge, back.merge):
        merge.add(2, 4, DONE, [])
    assert back.merge.release() == state.merge.release() == [(0, ("both", 7, 12.0, b"y"))]


def test_a_task_without_engine_state_or_merge_round_trips():
    state = TaskState("payments", 0, position=42, outcomes=Counter(invalid=2))
    back = load(dump(state), "payments/0")
    assert back == state


def test_the_blob_is_a_versioned_pickle():
    state, _ = task_state()
    version, inner = pickle.loads(dump(state))
    assert version == STATE_VERSION and isinstance(inner, TaskState)


@pytest.mark.parametrize(
    "garble",
    [
        lambda blob: b"",
        lambda blob: b"not a pickle at all",
        lambda blob: blob[: len(blob) // 2],  # cut short
        lambda blob: blob[:40] + bytes(b ^ 0x5A for b in blob[40:80]) + blob[80:],
        lambda blob: pickle.dumps("a string"),  # a pickle of something else
        lambda blob: pickle.dumps((STATE_VERSION,)),
    ],
    ids=["empty", "garbage", "truncated", "flipped", "a-string", "a-1-tuple"],
)
def test_a_corrupted_blob_raises_snapshot_error_naming_the_task(garble):
    state, _ = task_state()
    with pytest.raises(SnapshotError) as error:
        load(garble(dump(state)), KEY)
    assert f"the saved state of {KEY}" in str(error.value)


def test_a_state_of_another_version_or_type_is_refused():
    message = f"the saved state of {KEY} is of another version"
    newer = pickle.dumps((STATE_VERSION + 1, TaskState("inspections", 2)))
    with pytest.raises(SnapshotError, match=message):
        load(newer, KEY)
    not_a_task = pickle.dumps((STATE_VERSION, {"position": 3}))
    with pytest.raises(SnapshotError, match=message):
        load(not_a_task, KEY)
