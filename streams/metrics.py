"""Every Prometheus metric Kuzet exports, declared in one place.

Metrics are built against a registry that is passed in, so each test (and each
app) gets its own. Labels are bounded: ``stream``, ``outcome``, ``kind``,
``severity``, ``reason`` (a rejection category). Never an account, employee or
business id.

Metrics are updated once per batch, off the per-event path.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.processor import BatchOutput


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
        self.watermark = Gauge(
            "kuzet_watermark_timestamp_seconds",
            "Event-time watermark per stream (newest event time minus allowed lateness).",
            ["stream"],
            registry=registry,
        )

    def record_batch(self, stream: str, out: BatchOutput, seconds: float, watermark: float) -> None:
        """Count one processed batch."""
        for outcome, count in out.outcomes.items():
            self.events.labels(stream, outcome).inc(count)
        for alert in out.alerts:
            self.alerts.labels(alert.kind, alert.severity).inc()
        for letter in out.dead_letters:
            self.dead_letters.labels(stream, letter.category).inc()
        self.batch_seconds.labels(stream).observe(seconds)
        if watermark != float("-inf"):
            self.watermark.labels(stream).set(watermark)
