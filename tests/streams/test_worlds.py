"""``kuzet worlds``: the spec refuses what makes no world; the table reports minima."""

from __future__ import annotations

import json
import statistics
from datetime import date
from pathlib import Path

import pytest

from detectors.events import KIND_DOMAIN
from streams.cli import main
from streams.worlds import (
    DEFAULT_SPEC,
    HELD_OUT,
    TUNING,
    WorldsError,
    load_worlds,
    parse_worlds,
    select,
)

#: Seeds the tests and the README simulate with: tuning territory, never held out.
SEEDS_IN_USE = {1, 3, 5, 7, 8, 11, 77}
MORATORIUM = (date(2020, 1, 1), date(2023, 1, 1))


def world(**fields: object) -> str:
    """One [[world]] table; a field given as None is left out."""
    entry = {"name": "w", "role": "held-out", "seed": 4, "scale": 0.5} | fields
    lines = ["[[world]]"]
    for key, value in entry.items():
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[world]\n", "not valid TOML"),
        ("", "no worlds"),
        ("title = 'x'\n" + world(), "unknown top-level key"),
        (world(colour="red"), r"world 1 \('w'\): unknown key\(s\) colour"),
        (world(seed=None), "missing seed"),
        (world(name="../up"), "name must be"),
        (world(role="held_out"), "role must be one of held-out, tuning"),
        (world(seed=-1), "seed must be a whole number"),
        (world(seed=True), "seed must be a whole number"),
        (world(seed=1.5), "seed must be a whole number"),
        (world(scale=0), "scale must be a positive number"),
        (world(scale="big"), "scale must be a positive number"),
        (world(set="start=2021-01-01"), "set must be a list"),
        (world(set=["colour=red"]), r"world 1 \('w'\): --set 'colour=red': expected NAME=VALUE"),
        (world(set=["start=2021-13-01"]), "not a valid date"),
        (world(set=["days=0"]), "at least one day"),
        (world(note=3), "note must be a string"),
        (world() + world(seed=5), "two worlds are named 'w'"),
        (world(role="tuning") + world(name="h"), "held-out world 'h' uses seed 4"),
    ],
)
def test_the_spec_refuses_a_bad_world_saying_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(WorldsError, match=message):
        parse_worlds(text)


def test_a_missing_spec_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(WorldsError, match="cannot read worlds spec"):
        load_worlds(tmp_path / "nowhere.toml")


def test_the_shipped_spec_holds_ten_held_out_worlds_over_fresh_seeds_eras_and_scales() -> None:
    specs = load_worlds(DEFAULT_SPEC)
    held_out = select(specs, HELD_OUT)
    assert len(held_out) >= 10
    assert not {spec.seed for spec in held_out} & SEEDS_IN_USE
    assert {spec.seed for spec in select(specs, TUNING)} <= SEEDS_IN_USE
    assert all(0.3 <= spec.scale <= 2 for spec in held_out)
    assert min(s.scale for s in held_out) == 0.3 and max(s.scale for s in held_out) == 2
    starts = [spec.config.start for spec in held_out]
    assert any(start < MORATORIUM[0] for start in starts)
    assert any(MORATORIUM[0] <= start < MORATORIUM[1] for start in starts)
    assert any(start >= MORATORIUM[1] for start in starts)


def test_select_refuses_an_unknown_role() -> None:
    with pytest.raises(WorldsError, match="--only must be one of"):
        select(parse_worlds(world()), "best")


SMALL = (
    world(name="a-onset", seed=4901, scale=1.0, set=["start=2019-11-01", "days=90"])
    + world(name="b-after", seed=4902, scale=0.75, set=["start=2023-03-01", "days=90"])
    + world(name="c-tuning", role="tuning", seed=3, scale=0.5, set=["days=60"])
)


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, dict]:
    spec = tmp_path / "worlds.toml"
    spec.write_text(SMALL)
    out = tmp_path / "run.json"
    argv = ["worlds", "--spec", str(spec), "--work", str(tmp_path / "work")]
    assert main([*argv, "--scale-factor", "0.02", "--json", str(out), *extra]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def test_the_table_reports_each_kinds_minimum_over_the_held_out_worlds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, report = run(tmp_path, capsys, "--jobs", "2")
    worlds = report["worlds"]
    assert [w["name"] for w in worlds] == ["a-onset", "b-after"]  # the tuning world left out
    assert {w["role"] for w in worlds} == {HELD_OUT}
    assert [w["scale"] for w in worlds] == [0.02, 0.015]
    rows = {line.split()[0].rstrip("*"): line.split() for line in table.splitlines() if line}
    checked = 0
    for kind in KIND_DOMAIN:
        # Computed here from each world's own scorecard, not from the summary.
        f1s = {
            w["name"]: w["scorecard"]["kinds"][kind]["detector"]["f1"]
            for w in worlds
            if w["scorecard"]["kinds"][kind]["detector"]["f1"] is not None
        }
        summary = report["summary"]["kinds"][kind]
        if not f1s:
            assert summary["f1"]["min"] is None and "no truth" in " ".join(rows[kind])
            continue
        lowest = min(f1s.values())
        assert summary["f1"]["min"] == lowest
        assert f1s[summary["f1"]["world"]] == lowest
        assert summary["f1"]["median"] == statistics.median(f1s.values())
        assert rows[kind][2] == f"{lowest:.2f}"  # worlds, then the min F1 column
        p90s = [w["scorecard"]["kinds"][kind]["detector"]["ttd_hours"]["p90"] for w in worlds]
        p90s = [p for p in p90s if p is not None]
        assert summary["ttd_p90_hours"]["max"] == (max(p90s) if p90s else None)
        checked += 1
    assert checked >= 5
    macros = [w["macro_f1"] for w in worlds]
    assert report["summary"]["macro_f1"]["min"] == min(macros)
    assert rows["macro"][3] == f"{min(macros):.2f}"


def test_all_adds_the_tuning_worlds_and_an_unchanged_world_is_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, first = run(tmp_path, capsys, "--only", "tuning")
    assert [w["name"] for w in first["worlds"]] == ["c-tuning"]
    assert not first["worlds"][0]["reused"]
    _, both = run(tmp_path, capsys, "--only", "all")
    assert [(w["name"], w["reused"]) for w in both["worlds"]] == [
        ("a-onset", False),
        ("b-after", False),
        ("c-tuning", True),
    ]
    assert both["worlds"][2]["scorecard"] == first["worlds"][0]["scorecard"]
