"""A plain, deterministic mix of valid events for throughput benchmarks.

Not the labelled simulator: just realistic record shapes in realistic
proportions, so decode and detector costs are measured on typical bytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec

from streams.codec import encode_file_line

START = datetime(2021, 1, 1, tzinfo=UTC)
SIZES = ("micro", "small", "medium", "large")
BASES = ("routine", "complaint", "follow_up", "threat_to_life_health", "taxpayer_request")


def records(n: int, seed: int = 7) -> Iterator[tuple[str, str, bytes]]:
    """``n`` records (stream, key, value bytes): 70 % payments, 20 % payroll, 10 % inspections."""
    rng = random.Random(seed)
    encode = msgspec.json.encode
    for i in range(n):
        ts = (START + timedelta(seconds=i * 3)).isoformat()
        roll = rng.random()
        if roll < 0.7:
            payer = f"ACC-{rng.randrange(100_000)}"
            yield (
                "payments",
                payer,
                encode(
                    {
                        "event_id": f"p-{i}",
                        "ts": ts,
                        "payer": payer,
                        "payee": f"ACC-{rng.randrange(100_000, 200_000)}",
                        "amount": round(rng.lognormvariate(9, 1.2), 2),
                        "channel": rng.choice(("card", "transfer", "qr")),
                        "purpose": "invoice 2021",
                    }
                ),
            )
        elif roll < 0.9:
            employer = f"EMP-{rng.randrange(5_000)}"
            yield (
                "payroll",
                employer,
                encode(
                    {
                        "event_id": f"r-{i}",
                        "ts": ts,
                        "type": "payment",
                        "employer": employer,
                        "employee": f"W-{rng.randrange(50_000)}",
                        "period": "2020-12",
                        "amount": float(rng.randrange(80_000, 400_000)),
                    }
                ),
            )
        else:
            business = f"BIZ-{rng.randrange(20_000)}"
            yield (
                "inspections",
                business,
                encode(
                    {
                        "event_id": f"i-{i}",
                        "ts": ts,
                        "business": business,
                        "business_size": rng.choice(SIZES),
                        "authority": f"AUTH-{rng.randrange(10)}",
                        "inspector": f"INS-{rng.randrange(300)}",
                        "kind": rng.choice(("scheduled", "unscheduled", "preventive")),
                        "basis": rng.choice(BASES),
                    }
                ),
            )


def write_file(path: str, n: int, seed: int = 7) -> None:
    """Write ``n`` records as a historical stream file."""
    with open(path, "wb") as out:
        for stream, key, raw in records(n, seed):
            out.write(encode_file_line(stream, key, raw) + b"\n")
