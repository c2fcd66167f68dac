"""The Helm chart (deploy/helm/kuzet), rendered and checked offline.

``scripts/check-helm.sh`` lints and renders it with the default values and with
every optional part on (``ci/all-on-values.yaml``), validates the core objects
against the Kubernetes schemas kubernetes-validate ships and the PrometheusRule's
groups with promtool. The custom resources have no schema offline, so their
required fields, and the wiring between the objects, are checked here.

helm comes from ``.tools/bin`` (``scripts/check-helm.sh --install``, which ``make
test`` runs) and YAML is read with the tools venv's Python (the app's has no YAML
parser). Either missing skips the test on a developer's machine and FAILS it when
``CI`` or ``KUZET_REQUIRE_BROKER`` is set, as ``make test`` and CI do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.deploy.support import DEPLOY, ROOT, run

CHART = DEPLOY / "helm" / "kuzet"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
HELM = ROOT / ".tools" / "bin" / "helm"
TOOLS_PY = ROOT / ".venv-tools" / "bin" / "python"
CHECK = ROOT / "scripts" / "check-helm.sh"
#: The Kubernetes version the chart is rendered for (scripts/check-helm.sh).
KUBE_VERSION = "1.37.0"
RULES = DEPLOY / "prometheus" / "rules" / "kuzet.rules.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
_YAML_TO_JSON = (
    "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)"
)


def require(path: Path, how: str) -> Path:
    """``path`` if it exists, or skip (fail in CI) saying how to get it."""
    if path.exists():
        return path
    message = f"{path.relative_to(ROOT)} not found: {how}"
    if os.environ.get("CI") or os.environ.get("KUZET_REQUIRE_BROKER"):
        pytest.fail(message)
    pytest.skip(message)


def helm() -> Path:
    return require(HELM, "run scripts/check-helm.sh --install (make test does)")


def load_yaml(text: str) -> list[dict]:
    """YAML documents, read by the tools venv's PyYAML."""
    python = require(TOOLS_PY, "run make setup (the tools venv)")
    result = subprocess.run(
        [python, "-c", _YAML_TO_JSON], input=text, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def template(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm(), "template", "kuzet", CHART, "--kube-version", KUBE_VERSION, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@cache
def render(values: str | None) -> dict[str, dict]:
    """The chart's objects by ``Kind/name``, with the default values or a values file."""
    result = template(*(["-f", values] if values else []))
    assert result.returncode == 0, result.stderr
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in load_yaml(result.stdout)}


def one(objects: dict[str, dict], kind: str) -> dict:
    found = [doc for doc in objects.values() if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects rendered, expected 1"
    return found[0]


def worker(objects: dict[str, dict]) -> dict:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container["env"]}


DEFAULT, EVERYTHING = None, str(ALL_ON)
BOTH = pytest.mark.parametrize("values", [DEFAULT, EVERYTHING], ids=["default", "all-on"])


# -- the chart's copies of files outside it ------------------------------------------


def test_rules_copy_equals_the_source():
    copy = CHART / "files" / "kuzet.rules.yml"
    assert copy.read_bytes() == RULES.read_bytes(), "run scripts/check-helm.sh --sync"


def test_dashboard_copies_equal_the_sources():
    copies = sorted((CHART / "files" / "dashboards").glob("*.json"))
    assert [p.name for p in copies] == [p.name for p in DASHBOARDS], (
        "run scripts/check-helm.sh --sync"
    )
    for source, copy in zip(DASHBOARDS, copies, strict=True):
        assert copy.read_bytes() == source.read_bytes(), f"{copy.name}: run --sync"


# -- lint, render, schemas, promtool ---------------------------------------------------


def test_chart_lints_renders_and_validates():
    helm()
    run(str(CHECK))


def test_schema_validation_is_strict():
    # Guards the check itself: a field Kubernetes does not know fails it, not a warning.
    text = template().stdout.replace(
        "automountServiceAccountToken: false", "automountServiceAccountToken: false\n      bogus: 1"
    )
    validate = require(ROOT / ".venv-tools" / "bin" / "kubernetes-validate", "run make setup")
    result = subprocess.run(
        [validate, "--strict", "--quiet", "-k", KUBE_VERSION, "-"],
        input=text,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "'bogus' was unexpected" in result.stdout


# -- the worker ------------------------------------------------------------------------


def test_defaults_match_the_workers_own():
    variables = env(worker(render(DEFAULT)))
    assert variables["KUZET_APP_ID"]["value"] == Settings.app_id
    assert variables["KUZET_WEB_PORT"]["value"] == str(Settings.web_port)
    assert variables["KUZET_KAFKA_SECURITY_PROTOCOL"]["value"] == "PLAINTEXT"


@BOTH
def test_probes_and_scrapes_reach_the_web_port(values):
    objects = render(values)
    container = worker(objects)
    variables = env(container)
    port = int(variables["KUZET_WEB_PORT"]["value"])
    assert variables["KUZET_WEB_HOST"]["value"] == "0.0.0.0"
    assert container["ports"] == [{"name": "web", "containerPort": port, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "web"}
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "web"
    pod = one(objects, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    annotations = pod["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") == "true":
        assert annotations["prometheus.io/port"] == str(port)


@BOTH
def test_secrets_come_from_secrets(values):
    variables = env(worker(render(values)))
    for name in ("KUZET_STATE_KEY", "KUZET_WEB_TOKEN"):
        assert "value" not in variables[name]
        assert variables[name]["valueFrom"]["secretKeyRef"]["name"] == "kuzet"


def test_sasl_ssl_reads_the_kafka_secret():
    objects = render(EVERYTHING)
    container = worker(objects)
    variables = env(container)
    assert variables["KUZET_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    for name in ("KUZET_KAFKA_SASL_USERNAME", "KUZET_KAFKA_SASL_PASSWORD"):
        assert variables[name]["valueFrom"]["secretKeyRef"]["name"] == "kuzet-kafka"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "kafka-certs")
    volume = next(
        v
        for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "kafka-certs"
    )
    assert volume["secret"]["secretName"] == "kuzet-kafka"
    files = {item["path"] for item in volume["secret"]["items"]}
    for name in ("CAFILE", "CERTFILE", "KEYFILE"):
        path = Path(variables[f"KUZET_KAFKA_SSL_{name}"]["value"])
        assert path.parent == Path(mount["mountPath"]) and path.name in files


def test_pods_run_as_the_images_user():
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert user, "the Dockerfile names no numeric USER"
    pod = one(render(DEFAULT), "Deployment")["spec"]["template"]["spec"]
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True
    assert (context["runAsUser"], context["runAsGroup"]) == tuple(map(int, user.groups()))
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True


def test_keda_owns_the_replica_count():
    assert one(render(DEFAULT), "Deployment")["spec"]["replicas"] == 3
    assert "replicas" not in one(render(EVERYTHING), "Deployment")["spec"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "kafka.securityProtocol=SASL_SSL"], "needs kafka.secret.name"),
        (["--set", "kafka.securityProtocol=TLS"], "is not one of"),
        (["--set", "secrets.stateKeyKey="], "KUZET_STATE_KEY"),
        (["--set", "env.KUZET_MAX_ENTITIES=200000"], "quote the value"),
        (["--set", "env.KUZET_BROKER=x:9092"], "its own value"),
    ],
)
def test_values_the_worker_would_refuse_are_refused(args, message):
    result = template(*args)
    assert result.returncode != 0
    assert message in result.stderr


# -- custom resources: the fields their CRDs require ----------------------------------


def test_pod_monitor():
    objects = render(EVERYTHING)
    monitor = one(objects, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    pod = one(objects, "Deployment")["spec"]["template"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector and selector.items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == pod["spec"]["containers"][0]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    # The rules and dashboards select job="kuzet".
    assert {"action": "replace", "targetLabel": "job", "replacement": "kuzet"} in endpoint[
        "relabelings"
    ]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_prometheus_rule_holds_the_shipped_rules():
    rule = one(render(EVERYTHING), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"] == load_yaml(RULES.read_text())[0]
    for group in rule["spec"]["groups"]:
        assert group["name"] and group["rules"]
        for item in group["rules"]:
            assert ("alert" in item or "record" in item) and item["expr"]


def test_scaled_object_scales_the_worker_on_its_groups_lag():
    objects = render(EVERYTHING)
    scaled = one(objects, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == one(objects, "Deployment")["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    # KEDA's CRD types trigger metadata as strings only.
    assert all(isinstance(value, str) for value in metadata.values()), metadata
    variables = env(worker(objects))
    assert metadata["consumerGroup"] == variables["KUZET_APP_ID"]["value"]
    assert metadata["bootstrapServers"] == "kafka-0.kafka:9093,kafka-1.kafka:9093"
    assert int(metadata["lagThreshold"]) > 0
    assert (metadata["sasl"], metadata["tls"]) == ("scram_sha512", "enable")
    auth = objects[f"TriggerAuthentication/{trigger['authenticationRef']['name']}"]
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    refs = auth["spec"]["secretTargetRef"]
    assert all(ref.keys() == {"parameter", "name", "key"} for ref in refs)
    assert {ref["name"] for ref in refs} == {"kuzet-kafka"}
    assert {ref["parameter"] for ref in refs} == {"username", "password", "ca", "cert", "key"}


def test_no_custom_resources_by_default():
    # A cluster without the Prometheus Operator or KEDA installs the defaults.
    kinds = {doc["kind"] for doc in render(DEFAULT).values()}
    assert kinds == {"Deployment", "Service", "ConfigMap"}


# -- Grafana ---------------------------------------------------------------------------


def test_dashboards_are_config_maps_for_grafanas_sidecar():
    maps = [doc for doc in render(DEFAULT).values() if doc["kind"] == "ConfigMap"]
    assert len(maps) == len(DASHBOARDS)
    by_file = {name: (doc, text) for doc in maps for name, text in doc["data"].items()}
    for source in DASHBOARDS:
        doc, text = by_file[source.name]
        assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert text == source.read_text(encoding="utf-8")
