"""Unit tests of streams/metrics.py: a fresh CollectorRegistry per test."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from detectors.base import Detector, make_alert
from detectors.engine import Engine
from detectors.events import KIND_DOMAIN, STREAMS
from streams.metrics import LAG_SAMPLES_PER_BATCH, OUTCOMES, Metrics, exported_names
from streams.processor import BatchOutput, DeadLetter, Source

NOW = datetime(2024, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def alert(kind: str = "moratorium_violation", severity: str = "critical", entity: str = "B-1"):
    return make_alert(
        kind=kind,
        entity=entity,
        finding=entity,
        ts=NOW,
        severity=severity,
        score=1.0,
        reasons=["why"],
        evidence={},
        event_ids=["e-1"],
    )


def batch(times: list[datetime], **outcomes: int) -> BatchOutput:
    return BatchOutput(outcomes=Counter(outcomes), event_times=times)


def test_known_label_values_start_at_zero(metrics):
    # A series born at 1 shows Prometheus no increase: the first alert would be missed.
    for stream in STREAMS:
        for outcome in OUTCOMES:
            assert value(metrics, "kuzet_events_total", stream=stream, outcome=outcome) == 0
    for kind in KIND_DOMAIN:
        assert value(metrics, "kuzet_alerts_total", kind=kind, severity="critical") == 0


def test_record_batch_counts_outcomes_alerts_dead_letters_and_watermark(metrics):
    out = batch([NOW], ok=3, invalid=1, late=1)
    out.alerts += [alert(), alert(entity="B-2"), alert("repeat_inspection", "warning")]
    source = Source("inspections", 0, 7)
    out.dead_letters += [
        DeadLetter("inspections", b"x", None, "not JSON: ...", "not_json", source),
        DeadLetter("inspections", b"y", None, "late: ...", "late", source),
    ]
    metrics.record_batch("inspections", out, 0.002, 1_700_000_000.0, now=NOW.timestamp())

    assert value(metrics, "kuzet_events_total", stream="inspections", outcome="ok") == 3
    assert value(metrics, "kuzet_events_total", stream="inspections", outcome="late") == 1
    assert (
        value(metrics, "kuzet_alerts_total", kind="moratorium_violation", severity="critical") == 2
    )
    assert value(metrics, "kuzet_alerts_total", kind="repeat_inspection", severity="warning") == 1
    assert value(metrics, "kuzet_dead_letters_total", stream="inspections", reason="late") == 1
    assert value(metrics, "kuzet_batch_seconds_count", stream="inspections") == 1
    assert (
        value(metrics, "kuzet_watermark_timestamp_seconds", stream="inspections") == 1_700_000_000
    )


def test_no_watermark_before_the_first_event(metrics):
    metrics.record_batch("payments", batch([], invalid=1), 0.001, float("-inf"))
    assert value(metrics, "kuzet_watermark_timestamp_seconds", stream="payments") is None


def test_event_lag_is_wall_time_minus_event_time(metrics):
    times = [NOW - timedelta(seconds=3), NOW - timedelta(hours=2), NOW + timedelta(seconds=9)]
    metrics.record_batch("payroll", batch(times, ok=3), 0.001, 0.0, now=NOW.timestamp())

    assert value(metrics, "kuzet_event_lag_seconds_count", stream="payroll") == 3
    # An event from the future (producer clock skew) counts as no lag, not negative.
    assert value(metrics, "kuzet_event_lag_seconds_sum", stream="payroll") == 3 + 7200
    assert value(metrics, "kuzet_event_lag_seconds_bucket", stream="payroll", le="1.0") == 1
    assert value(metrics, "kuzet_event_lag_seconds_bucket", stream="payroll", le="5.0") == 2
    assert value(metrics, "kuzet_event_lag_seconds_bucket", stream="payroll", le="3600.0") == 2
    assert value(metrics, "kuzet_event_lag_seconds_bucket", stream="payroll", le="10800.0") == 3


def test_event_lag_samples_a_large_batch(metrics):
    times = [NOW - timedelta(seconds=i) for i in range(1000)]
    metrics.record_batch("payments", batch(times, ok=1000), 0.01, 0.0, now=NOW.timestamp())
    observed = value(metrics, "kuzet_event_lag_seconds_count", stream="payments")
    assert LAG_SAMPLES_PER_BATCH <= observed <= 2 * LAG_SAMPLES_PER_BATCH


class Tracking(Detector):
    kind = "repeat_inspection"
    stream = "inspections"

    def __init__(self, n: int) -> None:
        self.n = n

    def update(self, event, ctx):
        return []

    @property
    def n_entities(self) -> int:
        return self.n


def test_tracked_entities_per_kind_over_every_partition(metrics):
    engine = Engine([Tracking(4), Tracking(3)])
    metrics.record_engine(engine)  # no partition yet: nothing tracked, nothing reported
    assert value(metrics, "kuzet_tracked_entities", kind="repeat_inspection") is None

    engine.partition("inspections", 0)
    metrics.record_engine(engine)
    assert value(metrics, "kuzet_tracked_entities", kind="repeat_inspection") == 7
    engine.partition("inspections", 2)  # each partition runs its own copy of the detectors
    metrics.record_engine(engine)
    assert value(metrics, "kuzet_tracked_entities", kind="repeat_inspection") == 14
    engine.drop_partition("inspections", 0)  # moved to another worker: no longer counted here
    metrics.record_engine(engine)
    assert value(metrics, "kuzet_tracked_entities", kind="repeat_inspection") == 7


def test_record_snapshot(metrics):
    before = datetime.now(UTC).timestamp()
    metrics.record_snapshot(12_345, 0.004, 0.03)
    assert value(metrics, "kuzet_snapshot_bytes") == 12_345
    assert value(metrics, "kuzet_snapshot_seconds_count", step="pickle") == 1
    assert value(metrics, "kuzet_snapshot_seconds_sum", step="write") == 0.03
    assert value(metrics, "kuzet_snapshot_last_timestamp_seconds") >= before


def test_consumer_lag_per_partition_forgets_revoked_partitions(metrics):
    metrics.record_consumer_lag({("payments", 0): 5, ("payments", 1): 0})
    assert value(metrics, "kuzet_consumer_lag", stream="payments", partition="0") == 5
    assert value(metrics, "kuzet_consumer_lag", stream="payments", partition="1") == 0

    metrics.record_consumer_lag({("payments", 1): 2})
    assert value(metrics, "kuzet_consumer_lag", stream="payments", partition="0") is None
    assert value(metrics, "kuzet_consumer_lag", stream="payments", partition="1") == 2


def test_build_info(metrics):
    [sample] = [s for f in metrics.registry.collect() if f.name == "kuzet_build" for s in f.samples]
    assert sample.name == "kuzet_build_info"
    assert sample.value == 1
    assert sample.labels["version"]


def test_exported_names_match_the_exposition(metrics):
    metrics.record_batch("payments", batch([NOW], ok=1), 0.001, 0.0, now=NOW.timestamp())
    metrics.record_consumer_lag({("payments", 0): 1})
    engine = Engine([Tracking(1)])
    engine.partition("inspections", 0)
    metrics.record_engine(engine)
    metrics.record_snapshot(1, 0.001, 0.001)
    metrics.dead_letters.labels("payments", "not_json").inc()
    exposed = {
        line.split("{")[0].split(" ")[0]
        for line in generate_latest(metrics.registry).decode().splitlines()
        if line and not line.startswith("#")
    }
    assert exposed <= exported_names(metrics.registry)
    assert {
        "kuzet_event_lag_seconds_bucket",
        "kuzet_consumer_lag",
        "kuzet_tracked_entities",
        "kuzet_snapshot_seconds_bucket",
    } <= exposed


def test_labels_are_bounded(metrics):
    # Style guide: labels name streams, kinds, severities, outcomes, reasons; never an entity.
    allowed = {
        "stream", "outcome", "kind", "severity", "reason", "partition", "version", "step", "le",
        "regroup",
    }  # fmt: skip
    # prometheus_client's own python_info names the interpreter, nothing of the data.
    allowed_python_info = {"implementation", "major", "minor", "patchlevel", "version"}
    out = batch([NOW], ok=1)
    out.alerts.append(alert(entity="SECRET-BUSINESS-ID"))
    metrics.record_batch("inspections", out, 0.001, 0.0, now=NOW.timestamp())
    metrics.record_snapshot(1, 0.001, 0.001)
    metrics.record_consumer_lag({("inspections", 0): 1})
    text = generate_latest(metrics.registry).decode()
    assert "SECRET-BUSINESS-ID" not in text
    metrics.record_regrouped_lag({("payments-by-account", 0): 1})
    metrics.record_state_saved({("payments", "payments-by-account", 0): 1.0})
    for family in metrics.registry.collect():
        for sample in family.samples:
            ok = allowed_python_info if family.name == "python_info" else allowed
            assert set(sample.labels) <= ok, sample


def test_process_metrics_are_on_the_workers_registry(metrics):
    # Memory, CPU, open files and start time, read at scrape time (Linux has /proc).
    names = exported_names(metrics.registry)
    assert {
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "python_info",
    } <= names
    assert value(metrics, "process_resident_memory_bytes") > 0
    assert value(metrics, "process_start_time_seconds") <= datetime.now(UTC).timestamp()


def test_regrouped_lag_per_partition_forgets_revoked_partitions(metrics):
    metrics.record_regrouped_lag(
        {("payments-by-account", 0): 7, ("inspections-by-authority", 1): 0}
    )
    lag = "kuzet_regrouped_consumer_lag"
    assert value(metrics, lag, regroup="payments-by-account", partition="0") == 7
    assert value(metrics, lag, regroup="inspections-by-authority", partition="1") == 0
    metrics.record_regrouped_lag({("inspections-by-authority", 1): 3})
    assert value(metrics, lag, regroup="payments-by-account", partition="0") is None
    assert value(metrics, lag, regroup="inspections-by-authority", partition="1") == 3
    # The input partitions' lag is a metric of its own: the two never sum by mistake.
    assert value(metrics, "kuzet_consumer_lag", stream="payments", partition="0") is None


def test_state_saved_time_per_partition_forgets_partitions_no_longer_held(metrics):
    name = "kuzet_state_last_saved_timestamp_seconds"
    metrics.record_state_saved(
        {("payments", "", 0): 100.0, ("payments", "payments-by-account", 0): 90.0}
    )
    assert value(metrics, name, stream="payments", regroup="", partition="0") == 100.0
    assert (
        value(metrics, name, stream="payments", regroup="payments-by-account", partition="0")
        == 90.0
    )
    metrics.record_state_saved({("payments", "", 0): 130.0})
    assert value(metrics, name, stream="payments", regroup="", partition="0") == 130.0
    assert (
        value(metrics, name, stream="payments", regroup="payments-by-account", partition="0")
        is None
    )
