"""Kuzet's detectors: pure Python, no Kafka.

Everything here can be driven by handing events to :class:`detectors.engine.Engine`
in a plain loop. Imports are limited to the standard library, River and msgspec
(the event records are msgspec structs, so a decoded event reaches a detector
without a copy); never aiokafka, aiohttp or prometheus_client.

Layout: ``events`` (the contract's records), ``base`` (the detector interface),
``engine`` (dedup, watermarks, timers, alert ids, snapshots), ``registry``
(which detectors run), ``rules`` (every detector's parameters, from
``rules.toml``), and one subpackage per domain.
"""
