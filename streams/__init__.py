"""Kuzet's glue: settings, codec, the shared processor, the Faust app, the CLI.

``settings`` (the one reader of ``KUZET_*``), ``codec`` (bytes <-> records),
``processor`` (records -> engine -> alerts and dead letters, shared by both
paths), ``app`` (Faust agents), ``backtest`` (offline path), ``metrics``,
``cli`` (the ``kuzet`` command), ``schemas/`` (the contract as JSON Schema).
"""
