r"""How the worker logs: plain lines for a person, or one JSON object a line for a shipper.

``KUZET_LOG_FORMAT=json`` writes each record as one JSON object on one line, with
``ts`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger``, ``message`` and,
when an exception is logged, ``exc_info`` (the formatted traceback). A newline in
a message is escaped by JSON, so a record never spans lines. Ids of accounts,
employees or businesses are logged only at debug, whatever the format.

>>> record = logging.LogRecord("streams.x", logging.INFO, "", 1, "%d\nsaved", (3,), None)
>>> record.created = 0.0
>>> line = JsonFormatter().format(record)
>>> json.loads(line)
{'ts': '1970-01-01T00:00:00.000Z', 'level': 'INFO', 'logger': 'streams.x', 'message': '3\nsaved'}
>>> "\n" in line
False
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

#: The text format: time, level, logger, message.
TEXT_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message (and exc_info)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC)
        entry = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """Send the root logger's records to stderr at ``level`` (a ``KUZET_LOG_LEVEL``), as
    ``log_format`` (``text`` or ``json``, ``KUZET_LOG_FORMAT``) says."""
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
