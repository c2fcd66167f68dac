"""The rules topic's records, as the worker, the backtest and ``kuzet rules`` read them."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from detectors.errors import ConfigError
from detectors.registry import build_engine
from streams.backtest import run_backtest
from streams.metrics import Metrics
from streams.rules_feed import (
    RulesWatch,
    change_value,
    changes_from_file,
    check_new,
    jsonl,
    read_changes_file,
    render,
)
from streams.settings import Settings

AT = "2021-03-01T00:00:00+05:00"
OFF = "[moratorium_violation]\nenabled = false\n"


def line(key: str, value: dict | None) -> str:
    return json.dumps({"key": key, "value": value}) + "\n"


def test_the_rules_topic_is_named_after_the_app_id():
    settings = Settings.from_env({"KUZET_APP_ID": "kz", "KUZET_TOPIC_PREFIX": "p."})
    assert settings.rules_topic == "p.kz-rules"
    assert Settings.from_env({"KUZET_TOPIC_RULES": "mine"}).rules_topic == "mine"


def test_a_changes_file_reads_as_the_compacted_topic(tmp_path: Path):
    path = tmp_path / "changes.jsonl"
    path.write_text(
        line("a", {"effective": AT, "rules": OFF})
        + line("b", {"effective": AT, "rules": "[mule_account]\nmin_payers = 3"})
        + line("a", {"effective": AT, "rules": OFF, "note": "again"})  # replaces a
        + line("b", None)  # withdraws b
        + "\n"
    )
    raw = read_changes_file(path)
    assert list(raw) == ["a"] and json.loads(raw["a"])["note"] == "again"
    path.write_text('{"key": "a"}\n')
    with pytest.raises(ConfigError, match=r"changes\.jsonl:1: expected"):
        read_changes_file(path)


def test_a_bad_change_in_a_file_is_refused_and_the_rest_applies(tmp_path: Path):
    path = tmp_path / "changes.jsonl"
    path.write_text(
        line("off", {"effective": AT, "rules": OFF})
        + line("typo", {"effective": AT, "rules": "[moratorium_violaton]\nenabled = false"})
        + line("shape", {"effective": "soon", "rules": OFF})
    )
    _, timeline, refused = changes_from_file(path, Settings().detection.rules)
    assert [c.name for c in timeline.changes] == ["off", "typo"]
    assert sorted(refused) == ["shape", "typo"]
    assert "not an RFC 3339 time" in refused["shape"]


def test_the_worker_logs_and_counts_each_version_of_a_change_once(caplog):
    metrics = Metrics(CollectorRegistry())
    engine = build_engine()
    watch = RulesWatch(Settings(), engine, on_verdict=metrics.record_rules_change)
    counted = metrics.rules_changes.labels
    watch.raw = {"off": change_value(AT, OFF, "why"), "bad": b"{}"}
    with caplog.at_level(logging.INFO, logger="streams.rules_feed"):
        watch.apply()
        watch.apply()  # nothing new: nothing logged or counted again
    assert counted("applied")._value.get() == 1 and counted("refused")._value.get() == 1
    assert "rules change off applies from event time 2021-03-01T00:00:00+05:00 (why)" in (
        caplog.text
    )
    assert "rules change bad refused, the rules stay as they were" in caplog.text
    assert engine.timeline.verdicts["off"].applied
    watch.raw["off"] = change_value(AT, "[moratorium_violation]\nenabled = true")
    del watch.raw["bad"]
    with caplog.at_level(logging.INFO, logger="streams.rules_feed"):
        watch.apply()
    assert counted("applied")._value.get() == 2
    assert "rules change bad withdrawn" in caplog.text


def test_kuzet_rules_set_refuses_what_the_workers_would():
    settings = Settings()
    raw = {"crit": change_value(AT, "[repeat_inspection]\ncritical_at = 9.0")}
    later = change_value("2021-04-01T00:00:00Z", "[repeat_inspection]\nalert_at = 8.0")
    # Valid only over the change already on the topic (critical_at must not be below it).
    check_new(settings, raw, "alert", later)
    with pytest.raises(ConfigError, match="critical_at must not be below alert_at"):
        check_new(settings, {}, "alert", later)
    shown = render(settings, {**raw, "junk": b"nope"})
    assert "crit  applied" in shown and "junk  REFUSED" in shown
    assert json.loads(jsonl(raw))["value"]["rules"] == "[repeat_inspection]\ncritical_at = 9.0"


def test_the_backtest_applies_changes_alike_on_any_partitions_and_jobs(tmp_path: Path):
    stream = tmp_path / "events.jsonl"
    start = datetime(2021, 1, 1, 5, tzinfo=UTC)
    days = [start + timedelta(days=n) for n in range(80)]
    with open(stream, "w") as out:
        for n, when in enumerate(days):
            event = {
                "event_id": f"i-{n}",
                "ts": when.isoformat(),
                "business": f"B-{n % 5}",
                "business_size": "small",
                "authority": "A",
                "inspector": "I",
                "kind": "unscheduled",
                "basis": "routine",
            }
            out.write(json.dumps({"topic": "inspections", "key": f"B-{n % 5}", "value": event}))
            out.write("\n")
    changes_file = tmp_path / "changes.jsonl"
    changes_file.write_text(
        line("off", {"effective": "2021-02-01T00:00:00Z", "rules": OFF})
        + line("on", {"effective": "2021-03-01T00:00:00Z", "rules": OFF.replace("false", "true")})
    )
    changes, _, _ = changes_from_file(changes_file, Settings().detection.rules)

    def months(partitions: int, jobs: int) -> list[str]:
        out = tmp_path / f"alerts-{partitions}-{jobs}.jsonl"
        run_backtest(stream, out, partitions=partitions, jobs=jobs, changes=changes, progress=False)
        alerts = [msgspec.json.decode(x) for x in out.read_bytes().splitlines()]
        return sorted(a["ts"][:10] for a in alerts if a["kind"] == "moratorium_violation")

    expected = sorted(d.date().isoformat() for d in days if d.month != 2)  # off in February
    assert months(1, 1) == expected
    assert months(3, 1) == expected == months(3, 2)
