"""Detectors on the ``inspections`` stream."""
