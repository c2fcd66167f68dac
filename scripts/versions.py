"""Print the versions in use of Kuzet's direct dependencies, beside the locked ones.

``make test`` runs it first, so a CI log says what was tested. Standard library
only; it never fails the build (``tests/test_lock.py`` does that when the
installed versions are not the locked ones).

    .venv/bin/python scripts/versions.py
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_LOCK = ROOT / "requirements-dev.lock"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def normalize(name: str) -> str:
    """A name as PEP 503 compares them: ``Prometheus_Client`` is ``prometheus-client``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def direct_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[tuple[str, str, str]]:
    """(group, name, requirement) of every direct dependency: runtime, then each extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    groups = {"runtime": project.get("dependencies", [])}
    groups.update(project.get("optional-dependencies", {}))
    found = []
    for group, requirements in groups.items():
        for requirement in requirements:
            match = _NAME.match(requirement)
            if match:
                found.append((group, match[1], requirement))
    return found


def locked(path: Path = DEV_LOCK) -> dict[str, str]:
    """Normalized name -> version pinned in a lock file."""
    if not path.exists():
        return {}
    return {normalize(name): version for name, version in _PIN.findall(path.read_text())}


def main() -> None:
    pins = locked()
    print(f"== direct dependencies (Python {sys.version.split()[0]}, {sys.prefix})")
    for group, name, requirement in direct_dependencies():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        pin = pins.get(normalize(name), "not locked")
        note = "" if installed == pin else "   <- not the locked version"
        print(f"{group:8} {name:20} {installed:12} locked {pin:12} {requirement}{note}")


if __name__ == "__main__":
    main()
