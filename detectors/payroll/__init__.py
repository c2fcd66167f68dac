"""Detectors on the ``payroll`` stream: arrears, drifting payrolls, mass layoffs."""
