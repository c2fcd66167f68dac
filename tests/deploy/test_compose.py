"""docker-compose.yml and the Dockerfile are closed by default (issue 14).

Nothing is published on all interfaces, Kafka's plaintext listener not at all,
and every secret comes from the environment with no default. ``make test``
also validates the file against the compose specification (check-jsonschema).

The app's venv has no YAML parser; the tools venv has ruamel.yaml (for
check-jsonschema), so the file is parsed there when PyYAML is not importable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.deploy.support import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
_TO_JSON = (
    "import json, sys\n"
    "from ruamel.yaml import YAML\n"
    "with open(sys.argv[1], encoding='utf-8') as f:\n"
    "    json.dump(YAML(typ='safe').load(f), sys.stdout)\n"
)
LOOPBACK = ("127.0.0.1", "::1", "[::1]")
#: Environment variables that hold a secret, by name.
SECRET = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$")
#: ``${VAR:?message}`` or ``${VAR?message}``: compose refuses to start without VAR.
REQUIRED = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}$")


def load_compose() -> dict[str, Any]:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    if not TOOLS_PYTHON.exists():
        message = "no YAML parser: run `make setup` (it builds .venv-tools with ruamel.yaml)"
        if os.environ.get("CI") or os.environ.get("KUZET_REQUIRE_BROKER"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [str(TOOLS_PYTHON), "-c", _TO_JSON, str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return load_compose()["services"]


def host_ip(mapping: str | dict[str, Any]) -> str | None:
    """The host address a ``ports`` entry binds (None: every interface).

    >>> host_ip("6066:6066"), host_ip("127.0.0.1:6066:6066"), host_ip("[::1]:80:80/tcp")
    (None, '127.0.0.1', '[::1]')
    >>> host_ip("9090"), host_ip({"target": 80, "published": "80", "host_ip": "127.0.0.1"})
    (None, '127.0.0.1')
    """
    if isinstance(mapping, dict):
        return mapping.get("host_ip") or None
    text = str(mapping).split("/", 1)[0]
    if text.startswith("["):  # [ipv6]:published:target
        return text[: text.index("]") + 1]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else None


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def test_no_port_is_published_on_all_interfaces(services):
    published = []
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name} shares the host's network"
        for mapping in service.get("ports") or []:
            published.append(name)
            assert host_ip(mapping) in LOOPBACK, (
                f"{name} publishes {mapping!r} beyond loopback: bind it to 127.0.0.1"
            )
    assert published, "nothing is published at all: the test reads the wrong file?"


def test_kafka_is_reachable_only_inside_the_compose_network(services):
    assert not services["kafka"].get("ports"), "Kafka's plaintext listener is published"


def test_grafana_password_comes_from_the_environment_with_no_default(services):
    env = environment(services["grafana"])
    password = env["GF_SECURITY_ADMIN_PASSWORD"]
    assert REQUIRED.match(password), f"Grafana's admin password has a default: {password!r}"
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "false"


def test_every_secret_comes_from_the_environment_with_no_default(services):
    secrets = {
        (name, key): value
        for name, service in services.items()
        for key, value in environment(service).items()
        if SECRET.search(key)
    }
    assert ("worker", "KUZET_WEB_TOKEN") in secrets
    for (name, key), value in secrets.items():
        assert REQUIRED.match(value), f"{name}: {key} is not required from the environment"


def test_the_image_runs_as_a_non_root_user():
    users = re.findall(r"(?m)^USER\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"))
    assert users, "the Dockerfile never leaves root"
    user = users[-1].split(":", 1)[0]
    assert user not in ("root", "0"), users[-1]
