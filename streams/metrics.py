"""Every Prometheus metric Kuzet exports, declared in one place.

Metrics are built against a registry that is passed in, so each test (and each
app) gets its own. Labels are bounded: ``stream``, ``outcome``, ``kind``,
``severity``, ``reason`` (a rejection category), ``partition`` (a Kafka
partition number) and ``version``. Never an account, employee or business id.

Metrics are updated once per batch (:meth:`Metrics.record_batch`) or from a
periodic timer (:meth:`Metrics.record_engine`, :meth:`Metrics.record_consumer_lag`,
:meth:`Metrics.record_regrouped_lag`, :meth:`Metrics.record_state_saved`), off the
per-event path. The process's own metrics (``process_*``: memory, CPU, open files,
start time; ``python_info``) come from prometheus_client's collectors, registered on
the same registry and read only when scraped.

>>> from prometheus_client import CollectorRegistry
>>> metrics = Metrics(CollectorRegistry())
>>> "kuzet_alerts_total" in exported_names(metrics.registry)
True
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from detectors.engine import CONFLICT, DUPLICATE, FAILED, LATE, OK, Engine
from detectors.events import KIND_DOMAIN, SEVERITY_RANK, STREAMS
from streams.processor import INVALID, BatchOutput
from streams.state import REJECT_REASONS

#: Every outcome of a record; their counters start at zero so a quiet stream shows.
OUTCOMES = (OK, INVALID, DUPLICATE, CONFLICT, LATE, FAILED)

#: Event-time lag buckets, 1 s to 30 days: live producers sit in the first few,
#: the contract's normal lateness reaches 24 h, replayed history lands past it.
LAG_BUCKETS = (
    1, 5, 15, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
    86400, 2 * 86400, 7 * 86400, 30 * 86400,
)  # fmt: skip

#: Most events of one batch whose lag is observed: a strided sample keeps the
#: histogram's cost per batch flat (~1 us per observation) whatever the batch size.
LAG_SAMPLES_PER_BATCH = 64

#: Suffixes under which each metric type appears in the exposition format.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "summary": ("", "_sum", "_count", "_created"),
}


class Metrics:
    """The worker's metrics, grouped in one object."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "kuzet_events",
            "Input records processed, by stream and outcome "
            "(ok, invalid, duplicate, late, failed).",
            ["stream", "outcome"],
            registry=registry,
        )
        self.alerts = Counter(
            "kuzet_alerts",
            "Alerts published, by kind and severity.",
            ["kind", "severity"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "kuzet_dead_letters",
            "Records sent to a dead-letter topic, by stream and reason category.",
            ["stream", "reason"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "kuzet_batch_seconds",
            "Wall time to decode and run the detectors over one batch.",
            ["stream"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.event_lag = Histogram(
            "kuzet_event_lag_seconds",
            "Event-time lag: processing wall time minus the event's ts, for accepted "
            f"events (a strided sample of at most {LAG_SAMPLES_PER_BATCH} per batch).",
            ["stream"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.clock_jumps = Counter(
            "kuzet_clock_jumps",
            "Accepted events that moved their input partition's event time ahead by over "
            "a quarter of the stream's future_ts skew at once: a quiet partition waking, "
            "or a producer's clock running fast (within the skew).",
            ["stream"],
            registry=registry,
        )
        self.watermark = Gauge(
            "kuzet_watermark_timestamp_seconds",
            "Event-time watermark per stream (newest event time minus allowed lateness).",
            ["stream"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "kuzet_consumer_lag",
            "Records on an input partition not yet fetched by this worker "
            "(high watermark minus consumer position).",
            ["stream", "partition"],
            registry=registry,
        )
        self.regrouped_lag = Gauge(
            "kuzet_regrouped_consumer_lag",
            "Records on a partition of an internal regrouped topic (regroup: "
            "payments-by-account, inspections-by-authority) not yet judged by this worker "
            "(high watermark minus position).",
            ["regroup", "partition"],
            registry=registry,
        )
        self.tracked_entities = Gauge(
            "kuzet_tracked_entities",
            "Entities a detector keeps state for, by the kind it raises.",
            ["kind"],
            registry=registry,
        )
        self.state_evictions = Gauge(
            "kuzet_state_evictions",
            "Entities a detector dropped at its cap on tracked entities (least recently "
            "active first), by the kind it raises (payer_ledger: the payments detectors' "
            "shared memory of who paid whom), summed over the partitions held; it moves "
            "with a partition, so read it with delta(), not rate().",
            ["kind"],
            registry=registry,
        )
        self.snapshot_bytes = Gauge(
            "kuzet_snapshot_bytes",
            "Size of the last partition state saved to the state topic.",
            registry=registry,
        )
        self.snapshot_seconds = Histogram(
            "kuzet_snapshot_seconds",
            "Time to save one partition's state, by step (pickle: holds the event loop; "
            "write: chunks and manifest acknowledged by Kafka).",
            ["step"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.snapshot_age = Gauge(
            "kuzet_snapshot_last_timestamp_seconds",
            "Wall time of the last partition state saved.",
            registry=registry,
        )
        self.state_saved = Gauge(
            "kuzet_state_last_saved_timestamp_seconds",
            "Wall time up to which everything judged on a partition this worker holds is "
            "saved to the state topic (its last save, or the last refresh that found nothing "
            "unsaved); time() minus it is what a crash would judge again. regroup is empty "
            "for an input partition, else the internal topic's regrouping.",
            ["stream", "regroup", "partition"],
            registry=registry,
        )
        self.state_rejected = Counter(
            "kuzet_state_rejected",
            "Saved partition states not read (never unpickled), by reason: "
            + ", ".join(REJECT_REASONS)
            + ".",
            ["reason"],
            registry=registry,
        )
        self.rules_changes = Counter(
            "kuzet_rules_changes",
            "Rules changes read from the rules topic, by outcome: applied (valid, in force "
            "from its event time) or refused (invalid: the rules before it stay).",
            ["outcome"],
            registry=registry,
        )
        self.build = Info("kuzet_build", "Kuzet version.", registry=registry)
        self.build.info({"version": _version()})
        # process_* (memory, CPU seconds, open and maximum files, start time) where the
        # platform has /proc, and python_info: read at each scrape, nothing on the hot path.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        # Known label values start at zero: a stream with no events shows as 0, and
        # the first alert of a kind is an increase Prometheus can see (a series
        # born at 1 has no increase).
        for stream in STREAMS:
            self.clock_jumps.labels(stream)
            for outcome in OUTCOMES:
                self.events.labels(stream, outcome)
        for kind in KIND_DOMAIN:
            for severity in SEVERITY_RANK:
                self.alerts.labels(kind, severity)
        for reason in REJECT_REASONS:
            self.state_rejected.labels(reason)
        for outcome in ("applied", "refused"):
            self.rules_changes.labels(outcome)
        self._lag_partitions: set[tuple[str, str]] = set()
        self._regrouped_partitions: set[tuple[str, str]] = set()
        self._saved_partitions: set[tuple[str, str, str]] = set()

    def record_batch(
        self,
        stream: str,
        out: BatchOutput,
        seconds: float,
        watermark: float,
        now: float | None = None,
    ) -> None:
        """Count one processed batch; ``now`` (epoch seconds) is for tests."""
        for outcome, count in out.outcomes.items():
            self.events.labels(stream, outcome).inc(count)
        for alert in out.alerts:
            self.alerts.labels(alert.kind, alert.severity).inc()
        for letter in out.dead_letters:
            self.dead_letters.labels(stream, letter.category).inc()
        self.batch_seconds.labels(stream).observe(seconds)
        if watermark != float("-inf"):
            self.watermark.labels(stream).set(watermark)
        times = out.event_times
        if times:
            now = time.time() if now is None else now
            lag = self.event_lag.labels(stream)
            for ts in times[:: max(1, len(times) // LAG_SAMPLES_PER_BATCH)]:
                lag.observe(max(0.0, now - ts.timestamp()))

    def record_snapshot(self, size: int, pickle_seconds: float, write_seconds: float) -> None:
        self.snapshot_bytes.set(size)
        self.snapshot_seconds.labels("pickle").observe(pickle_seconds)
        self.snapshot_seconds.labels("write").observe(write_seconds)
        self.snapshot_age.set(time.time())

    def record_rules_change(self, outcome: str) -> None:
        """Count a rules change read (``outcome``: applied or refused)."""
        self.rules_changes.labels(outcome).inc()

    def record_state_rejected(self, reason: str) -> None:
        """Count a saved state not read (``reason``: one of streams.state.REJECT_REASONS)."""
        self.state_rejected.labels(reason).inc()

    def record_engine(self, engine: Engine) -> None:
        """Entities tracked, and evicted at the cap, by each detector of ``engine`` (summed
        per kind)."""
        for kind, count in engine.entities().items():
            self.tracked_entities.labels(kind).set(count)
        for kind, count in engine.evictions().items():
            self.state_evictions.labels(kind).set(count)

    def record_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of each ``(stream, partition)``; drop partitions no longer assigned."""
        current = {(stream, str(partition)) for stream, partition in lags}
        for labels in self._lag_partitions - current:
            self.consumer_lag.remove(*labels)
        for (stream, partition), lag in lags.items():
            self.consumer_lag.labels(stream, str(partition)).set(lag)
        self._lag_partitions = current

    def record_regrouped_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Set the lag of each ``(regrouping's name, partition)`` of an internal topic held;
        drop partitions no longer assigned."""
        current = {(regroup, str(partition)) for regroup, partition in lags}
        for labels in self._regrouped_partitions - current:
            self.regrouped_lag.remove(*labels)
        for (regroup, partition), lag in lags.items():
            self.regrouped_lag.labels(regroup, str(partition)).set(lag)
        self._regrouped_partitions = current

    def record_state_saved(self, saved: Mapping[tuple[str, str, int], float]) -> None:
        """Set the saved-up-to time (epoch seconds) of each ``(stream, regroup, partition)``
        held (``regroup``: "" for an input partition); drop partitions no longer held."""
        current = {(stream, regroup, str(partition)) for stream, regroup, partition in saved}
        for labels in self._saved_partitions - current:
            self.state_saved.remove(*labels)
        for (stream, regroup, partition), when in saved.items():
            self.state_saved.labels(stream, regroup, str(partition)).set(when)
        self._saved_partitions = current


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry's metrics can expose (with type suffixes)."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def _version() -> str:
    try:
        return metadata.version("kuzet")
    except metadata.PackageNotFoundError:
        return "unknown"
