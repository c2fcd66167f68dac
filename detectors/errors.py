"""The project's one base exception; every module raises a subclass of it."""

from __future__ import annotations


class KuzetError(Exception):
    """Base of every error Kuzet raises on purpose."""


class ConfigError(KuzetError):
    """A setting or rule file is wrong; the message names it and the fix."""
