"""Which way to decode and validate events? Measures the candidates on the same bytes.

    python -m bench.decode [N]

Candidates: msgspec typed decode (bytes straight into the record),
orjson.loads + msgspec.convert, orjson.loads + fastjsonschema on the shipped
schema (then a record built from the dict).
"""

from __future__ import annotations

import sys
import time

import fastjsonschema
import msgspec
import orjson

from bench.events import records
from detectors.events import EVENT_TYPES
from streams.codec import decode_event, json_schema


def main(n: int = 200_000) -> None:
    data = list(records(n))
    validators = {s: fastjsonschema.compile(json_schema(s)) for s in EVENT_TYPES}
    decoders = {s: msgspec.json.Decoder(t) for s, t in EVENT_TYPES.items()}

    def via_codec() -> None:
        for stream, _, raw in data:
            decode_event(stream, raw)

    def msgspec_direct() -> None:
        for stream, _, raw in data:
            decoders[stream].decode(raw)

    def orjson_convert() -> None:
        for stream, _, raw in data:
            msgspec.convert(orjson.loads(raw), EVENT_TYPES[stream])

    def orjson_fastjsonschema() -> None:
        for stream, _, raw in data:
            doc = orjson.loads(raw)
            validators[stream](doc)
            msgspec.convert(doc, EVENT_TYPES[stream])  # still need a typed record

    print(f"{n:,} events")
    for name, fn in [
        ("streams.codec.decode_event (msgspec)", via_codec),
        ("msgspec typed decode", msgspec_direct),
        ("orjson + msgspec.convert", orjson_convert),
        ("orjson + fastjsonschema + record", orjson_fastjsonschema),
    ]:
        best = min(_time(fn) for _ in range(3))
        print(f"  {name:<40} {n / best:>12,.0f} events/s  ({best / n * 1e6:.2f} us/event)")


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
