"""The gauges the worker refreshes on its timer: lag of input and internal partitions, and
how far each partition's state is saved. No broker: a stand-in consumer gives high
watermarks, and tasks are made as an assignment would make them."""

from __future__ import annotations

import time

import pytest
from aiokafka import TopicPartition

from detectors.events import STREAMS
from streams.settings import Settings
from streams.topics import Layout
from streams.worker import Worker

#: The worker refuses to start without a state key; this one is for tests only.
STATE_KEY = bytes(range(32))


class Highwaters:
    """A consumer that only knows each partition's high watermark."""

    def __init__(self, marks: dict[TopicPartition, int]) -> None:
        self.marks = marks

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.marks.get(tp)


@pytest.fixture
def worker() -> Worker:
    worker = Worker(
        Settings(state_key=STATE_KEY), Layout(inputs=dict.fromkeys(STREAMS, 2), state=1)
    )
    payments = TopicPartition("payments", 0)
    by_account = TopicPartition("kuzet-payments-by-account", 1)
    by_authority = TopicPartition("kuzet-inspections-by-authority", 0)
    for tp, position in ((payments, 10), (by_account, 4), (by_authority, 9)):
        task = worker._new_task(tp)
        task.state.position = position
        worker.tasks[tp] = task
    worker.consumer = Highwaters({payments: 25, by_account: 5, by_authority: 9})  # type: ignore[assignment]
    return worker


def test_input_and_regrouped_lags_are_kept_apart(worker):
    assert worker._lags() == {("payments", 0): 15}
    assert worker._lags(regrouped=True) == {
        ("payments-by-account", 1): 1,
        ("inspections-by-authority", 0): 0,
    }


def test_a_partition_with_nothing_unsaved_counts_as_saved_now(worker):
    by_account = worker.tasks[TopicPartition("kuzet-payments-by-account", 1)]
    by_account.dirty, by_account.saved_at = True, 1_000.0  # judged since its last save
    saved = worker._saved_at(5_000.0)
    assert saved == {
        ("payments", "", 0): 5_000.0,
        ("payments", "payments-by-account", 1): 1_000.0,
        ("inspections", "inspections-by-authority", 0): 5_000.0,
    }


def test_the_refresh_exports_them(worker):
    before = time.time()
    worker.metrics.record_regrouped_lag(worker._lags(regrouped=True))
    worker.metrics.record_state_saved(worker._saved_at(time.time()))
    get = worker.metrics.registry.get_sample_value
    assert (
        get("kuzet_regrouped_consumer_lag", {"regroup": "payments-by-account", "partition": "1"})
        == 1
    )
    saved = get(
        "kuzet_state_last_saved_timestamp_seconds",
        {"stream": "payments", "regroup": "", "partition": "0"},
    )
    assert saved >= before
