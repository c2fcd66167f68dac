"""Kuzet's glue: settings, codec, the shared processor, the worker, the CLI.

``settings`` (the one reader of ``KUZET_*``), ``codec`` (bytes <-> records),
``processor`` (records -> engine -> alerts and dead letters, shared by both
paths), ``regroup`` (streams regrouped by another entity, merged back in one
order), ``worker`` (the live consumer-group member), ``state`` (partition
state kept in Kafka), ``topics`` (the topics the worker needs), ``backtest``
(offline path), ``metrics``, ``cli`` (the ``kuzet`` command), ``schemas/``
(the contract as JSON Schema).
"""
