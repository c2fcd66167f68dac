"""Starting points in the input topics: ``--from-time`` parsing and the production guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from streams.offsets import HistoryError, check_reprocessing_group, parse_time, to_millis
from streams.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-01T00:00:00Z", datetime(2021, 3, 1, tzinfo=UTC)),
        ("2021-03-01T06:00:00+06:00", datetime(2021, 3, 1, 6, tzinfo=timezone(timedelta(hours=6)))),
        (" 2021-03-01T00:00:00.5+00:00 ", datetime(2021, 3, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("2021-03-01T00:00:00", "no UTC offset"), ("yesterday", "not an RFC 3339 time")],
)
def test_parse_time_refuses(text, message):
    with pytest.raises(HistoryError, match=message):
        parse_time(text)


def test_to_millis():
    assert to_millis(parse_time("1970-01-01T00:00:01.5Z")) == 1500


def test_reprocessing_refuses_the_production_group():
    with pytest.raises(HistoryError, match="KUZET_APP_ID is the production id 'kuzet'"):
        check_reprocessing_group(Settings(), "--from-time")
    check_reprocessing_group(Settings(app_id="kuzet-reprocess-1"), "--from-time")
