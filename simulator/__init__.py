"""``kuzet simulate``: labelled synthetic worlds for judging detectors.

A world holds every alert kind of the contract as true patterns, lawful
look-alikes of each, and the stream's own imperfections (late and duplicate
deliveries, mixed timestamp offsets, broken records). It is written as a
historical stream file (``events.jsonl``) with its ground truth
(``truth.json``), both described in the contract.

Layout: ``core`` (actors merged in event time, delivery imperfections,
truth), ``config`` (the world's parameters), and one module per domain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from simulator.config import SimConfig
from simulator.core import World, WriteStats, write_stream
from simulator.inspections import add_inspections
from simulator.payments import add_payments
from simulator.payroll import add_payroll

__all__ = ["SimConfig", "SimulationResult", "simulate"]


@dataclass
class SimulationResult:
    stats: WriteStats
    findings: dict[str, int]
    seconds: float
    reordered: int

    @property
    def lines(self) -> int:
        return self.stats.events + self.stats.duplicates + self.stats.invalid


def build_world(seed: int, scale: float, config: SimConfig) -> World:
    world = World(seed, config.start, config.days)
    add_payments(world, config, scale)
    add_payroll(world, config, scale)
    add_inspections(world, config, scale)
    return world


def simulate(
    out_dir: Path,
    seed: int = 1,
    scale: float = 1.0,
    config: SimConfig | None = None,
    on_line=None,
) -> SimulationResult:
    """Write ``out_dir/events.jsonl``, ``truth.json`` and ``lawful.json``; return what was written.

    ``lawful.json`` (not part of the contract) lists the lawful look-alikes' entities by
    family, for ``kuzet worlds`` to count the alerts raised on them.
    """
    config = config or SimConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    world = build_world(seed, scale, config)
    with open(out_dir / "events.jsonl", "wb", buffering=1 << 20) as out:
        stats = write_stream(world, out, on_line)
    truth = world.truth()
    (out_dir / "truth.json").write_bytes(msgspec.json.format(msgspec.json.encode(truth)))
    lawful = msgspec.json.format(msgspec.json.encode(world.look_alikes()))
    (out_dir / "lawful.json").write_bytes(lawful)
    findings: dict[str, int] = {}
    for finding in truth["findings"]:
        findings[finding["kind"]] = findings.get(finding["kind"], 0) + 1
    return SimulationResult(stats, findings, time.perf_counter() - started, world.reordered)
