"""The locks agree with pyproject.toml, and the environment is the locked one.

``requirements.lock`` (runtime) and ``requirements-dev.lock`` (runtime and dev
extras) are what ``make setup``, CI and the Dockerfile install, hash-checked:
the versions that were tested. ``pyproject.toml`` keeps ranges for people who
install Kuzet into an environment of their own. A dependency added to one but
not the other, or a lock no longer inside the ranges, fails here: run
``make lock``. An environment that is not the lock (installed by hand, or left
from an older lock) fails here too: run ``make setup``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
TOOLS_IN = ROOT / "requirements-tools.in"
TOOLS_LOCK = ROOT / "requirements-tools.lock"


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    version: Version
    hashes: tuple[str, ...]

    def applies(self) -> bool:
        """Is it installed here (its environment marker, if any, holds)?"""
        marker = self.requirement.marker
        return marker is None or marker.evaluate()


def read_lock(path: Path) -> dict[str, Pin]:
    """Canonical name -> pin of a hashed requirements lock (``uv pip compile`` output)."""
    pins: dict[str, Pin] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spec, *hashes = (part.strip() for part in line.split("--hash="))
        requirement = Requirement(spec)
        (specifier,) = requirement.specifier  # exactly one, ==
        assert specifier.operator == "==", f"{path.name}: {spec!r} is not pinned with =="
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{path.name}: {name} is pinned twice"
        pins[name] = Pin(requirement, Version(specifier.version), tuple(hashes))
    return pins


def read_requirements(lines: list[str]) -> list[Requirement]:
    return [Requirement(line) for line in lines]


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = read_requirements(PROJECT["dependencies"])
DEV = read_requirements(PROJECT["optional-dependencies"]["dev"])
TOOLS = read_requirements(
    [
        line.split("#", 1)[0].strip()
        for line in TOOLS_IN.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
)

#: Each lock with the direct requirements it must satisfy.
LOCKS = [
    pytest.param(LOCK, RUNTIME, id="requirements.lock"),
    pytest.param(DEV_LOCK, RUNTIME + DEV, id="requirements-dev.lock"),
    pytest.param(TOOLS_LOCK, TOOLS, id="requirements-tools.lock"),
]


@pytest.mark.parametrize(("path", "direct"), LOCKS)
def test_every_direct_dependency_is_locked_within_its_declared_range(path, direct):
    pins = read_lock(path)
    for requirement in direct:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {path.name}: run `make lock`"
        version = pins[name].version
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{path.name} pins {name}=={version}, outside {requirement}: run `make lock`, "
            "or widen the range in the file that declares it"
        )


@pytest.mark.parametrize(("path", "direct"), LOCKS)
def test_every_locked_package_is_pinned_with_hashes(path, direct):
    pins = read_lock(path)
    assert pins, f"{path.name} pins nothing"
    unhashed = [name for name, pin in pins.items() if not pin.hashes]
    assert not unhashed, f"{path.name}: no --hash for {unhashed}"
    assert all(h.startswith("sha256:") for pin in pins.values() for h in pin.hashes)


def test_the_dev_lock_has_the_runtime_lock_s_versions():
    # The image (runtime lock) must run what the tests ran (dev lock).
    runtime, dev = read_lock(LOCK), read_lock(DEV_LOCK)
    differ = {
        name: (str(pin.version), str(dev[name].version) if name in dev else None)
        for name, pin in runtime.items()
        if name not in dev or dev[name].version != pin.version
    }
    assert not differ, f"runtime lock vs dev lock: {differ}: run `make lock`"


def test_the_locks_pin_nothing_beyond_what_pyproject_pulls_in():
    # A dependency dropped from pyproject.toml leaves the lock too (`make lock`).
    runtime, dev = read_lock(LOCK), read_lock(DEV_LOCK)
    assert set(runtime) <= set(dev)
    names = {canonicalize_name(r.name) for r in RUNTIME + DEV}
    assert names <= set(dev)


@pytest.mark.parametrize("requirement", RUNTIME + DEV, ids=str)
def test_the_installed_version_of_each_direct_dependency_is_the_locked_one(requirement):
    pin = read_lock(DEV_LOCK)[canonicalize_name(requirement.name)]
    installed = Version(metadata.version(requirement.name))
    assert installed == pin.version, (
        f"{requirement.name} {installed} is installed but {pin.version} is locked: "
        "run `make setup` (it reinstalls the venv from requirements-dev.lock)"
    )


def test_every_installed_locked_package_is_at_its_locked_version():
    wrong = {}
    for name, pin in read_lock(DEV_LOCK).items():
        if not pin.applies():
            continue
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong[name] = (None, str(pin.version))
            continue
        if installed != pin.version:
            wrong[name] = (str(installed), str(pin.version))
    assert not wrong, f"installed vs locked: {wrong}: run `make setup`"


# --- every install path installs from the locks ------------------------------


def test_the_makefile_installs_the_venvs_from_the_locks():
    makefile = (ROOT / "Makefile").read_text()
    stamp = re.search(r"^\$\(VENV\)/\.installed:(.*)$", makefile, re.MULTILINE)
    assert stamp and "$(DEV_LOCK)" in stamp[1], "a change of lock must reinstall the venv"
    tools = re.search(r"^\$\(TOOLS\)/\.installed:(.*)$", makefile, re.MULTILINE)
    assert tools and "$(TOOLS_LOCK)" in tools[1]
    assert re.search(r"^DEV_LOCK\s*:=\s*requirements-dev\.lock$", makefile, re.MULTILINE)
    assert re.search(r"^TOOLS_LOCK\s*:=\s*requirements-tools\.lock$", makefile, re.MULTILINE)
    assert "--require-hashes -r $(DEV_LOCK)" in makefile
    assert "--require-hashes -r $(TOOLS_LOCK)" in makefile
    assert "--no-deps -e ." in makefile


def test_the_image_installs_the_runtime_lock_and_every_package_the_cli_runs():
    # Bug: the image lacked simulator/, so `kuzet simulate` failed in it.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--no-deps ." in dockerfile
    copied = set(re.findall(r"^COPY\s+(?:--\S+\s+)*(.+?)\s+\S+$", dockerfile, re.MULTILINE))
    sources = {path.rstrip("/") for line in copied for path in line.split()}
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in setuptools["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert package in sources, f"the Dockerfile does not copy {package}/"
    # The lock goes in before the source, so a change of source reuses the dependencies' layer.
    assert dockerfile.index("COPY requirements.lock") < dockerfile.index("COPY streams")
