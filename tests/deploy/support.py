"""Finding the Prometheus tools (Debian's `prometheus` and `prometheus-alertmanager`).

A missing tool skips the test on a developer's machine but FAILS it when
``CI`` or ``KUZET_REQUIRE_BROKER`` is set, as ``make test`` and CI do (the
Makefile's setup installs the packages there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def require_tool(name: str) -> str:
    """The path of ``name`` on PATH, or skip (fail in CI) naming the package to install."""
    path = shutil.which(name)
    if path:
        return path
    package = (
        "prometheus-alertmanager" if name in ("amtool", "prometheus-alertmanager") else "prometheus"
    )
    message = f"{name} not found: install the Debian package {package} (`make setup` does)"
    if os.environ.get("CI") or os.environ.get("KUZET_REQUIRE_BROKER"):
        pytest.fail(message)
    pytest.skip(message)


def run(*args: str, cwd: Path = ROOT) -> str:
    """Run a tool; fail the test with its output if it exits non-zero."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return output
