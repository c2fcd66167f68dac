"""Payments detectors: pyramid schemes, money mules and anomalous payment behaviour."""
