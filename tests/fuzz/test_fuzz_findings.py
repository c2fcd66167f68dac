"""What the fuzz tests found, each as its minimal example, kept as regressions.

A new finding goes here marked ``xfail(strict=True)`` until it is fixed (the
run fails the day it passes, so the marker goes and the generator in
``strategies.py`` makes the case again).
"""

from __future__ import annotations

import pytest

from detectors.registry import build_engine
from streams.codec import InvalidEvent, decode_event
from streams.processor import BatchOutput, Processor, Source


def test_a_period_with_a_trailing_newline_is_invalid():
    # Found by test_fuzz_decode (BAD_PERIODS). Accepted as period "2021-05\n", the accrual
    # is never matched by its payment for "2021-05": a false salary_arrears alert follows
    # ("1 of 1 employees not paid their 2021-05\n wages by 2021-06-10").
    raw = (
        b'{"event_id":"e-1","ts":"2021-05-31T12:00:00+06:00","type":"accrual",'
        b'"employer":"EMP-1","employee":"W-1","period":"2021-05\\n","amount":100000}'
    )
    with pytest.raises(InvalidEvent) as info:
        decode_event("payroll", raw)
    assert info.value.category == "invalid_field"


#: Payroll events at the edges of time: valid to the schema, each with its pay period beside
#: its ts (so within issue 14's period window), each the first event of its partition (so
#: no future_ts check holds it back).
EDGES_OF_TIME = [
    # period 9999-12 is due in January 10000
    b'{"event_id":"e-1","ts":"9999-12-31T00:00:00Z","type":"payment",'
    b'"employer":"EMP-1","employee":"W-1","period":"9999-12","amount":5}',
    # period 0000-11 is due on 0000-12-10
    b'{"event_id":"e-2","ts":"0001-01-01T00:00:00Z","type":"accrual",'
    b'"employer":"EMP-1","employee":"W-1","period":"0000-11","amount":5}',
]


@pytest.mark.parametrize("raw", EDGES_OF_TIME, ids=["period-9999-12", "period-0000-11"])
def test_no_detector_fails_on_a_payroll_event_at_the_edges_of_time(raw: bytes):
    # Found by test_fuzz_engine (strategies.ODD_TS with a period beside its ts). Rejecting
    # such events at the edge (invalid) or judging them would both do; a detector failing is
    # a crash the engine only contains.
    processor = Processor(build_engine())
    out = BatchOutput()
    processor.whole("payroll", raw, b"EMP-1", Source("payroll", 0, 0), out)
    assert [
        letter.reason for letter in out.dead_letters if letter.category == "detector_failed"
    ] == []
