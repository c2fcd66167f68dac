"""Simulated worlds shared by the simulator's tests (each is simulated once per session).

``world`` is the default world (it spans the moratorium's END, 2023-01-01);
``onset_world`` starts in October 2019, so it spans the moratorium's START,
and holds more of every pattern than the default proportions give at a small
scale (all three kinds of rogue inspector among them). ``any_world`` runs a
test on both.

``KUZET_SIM_SCALE`` and ``KUZET_SIM_SEED`` (environment) check the truth of
other worlds with the same tests, e.g. ``KUZET_SIM_SCALE=1 pytest tests/simulator``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from simulator import SimConfig, simulate
from tests.simulator.facts import DAY, Stream, local_midnight, read_stream, read_truth

SCALE = float(os.environ.get("KUZET_SIM_SCALE", "0.1"))
SEED = int(os.environ.get("KUZET_SIM_SEED", "7"))

#: The onset world: the moratorium starts three months in; more of every pattern.
ONSET = SimConfig(start=date(2019, 10, 1)).with_overrides(
    [
        "rogue_inspectors_n=30",
        "inspectors_n=300",
        "businesses_n=180000",  # as many per inspector as by default
        "seasonal_share=0.2",
        "pile_ons_n=40",
        "follow_up_chains_n=40",
        "exempt_repeats_n=40",
        "pyramids_n=40",
        "mules_n=40",
        "arrears_n=100",
        "creeping_n=60",
        "layoffs_n=60",
    ]
)


@dataclass
class World:
    """One simulated world: where it was written, and what its bytes say."""

    name: str
    path: Path
    seed: int
    scale: float
    config: SimConfig
    stream: Stream
    truth: list[dict[str, Any]]

    @property
    def start(self) -> float:
        return local_midnight(self.config.start)

    @property
    def end(self) -> float:
        return self.start + self.config.days * DAY

    @property
    def events(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.stream.events


def _make(factory: pytest.TempPathFactory, name: str, seed: int, config: SimConfig) -> World:
    path = factory.mktemp(name)
    simulate(path, seed, SCALE, config)
    return World(
        name,
        path,
        seed,
        SCALE,
        config,
        read_stream(path / "events.jsonl"),
        read_truth(path / "truth.json"),
    )


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _make(tmp_path_factory, "default", SEED, SimConfig())


@pytest.fixture(scope="session")
def onset_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _make(tmp_path_factory, "onset", SEED + 1, ONSET)


@pytest.fixture(params=["world", "onset_world"])
def any_world(request: pytest.FixtureRequest) -> World:
    return request.getfixturevalue(request.param)
