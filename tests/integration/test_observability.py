"""End to end with the real servers: Kafka, the worker, Prometheus, Alertmanager, a webhook.

The local broker (fixture ``bootstrap``), a ``kuzet worker``, and Debian's
``prometheus`` and ``prometheus-alertmanager`` binaries on loopback free ports
with temporary data directories. Prometheus scrapes the worker every second
and evaluates the shipped rules (deploy/prometheus/rules) every second;
Alertmanager runs the shipped routing (deploy/alertmanager/alertmanager.yml)
with its webhook URLs pointed at a receiver run by this test. A small stream
file with one moratorium violation is replayed into the worker's topics; the
test checks the counts Prometheus scraped and that the notification reached
the inspections team's critical receiver.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deploy.support import DEPLOY, require_tool
from tests.integration.support import free_port, wait_until

pytestmark = pytest.mark.integration

BUSINESS = "BIZ-SMALL-CAFE-7"
#: The stream file: a moratorium violation (small business, basis routine, inside
#: the moratorium), a lawful inspection of a large business, and a broken record.
STREAM_FILE = [
    {
        "topic": "inspections",
        "key": BUSINESS,
        "value": {
            "event_id": "obs-1",
            "ts": "2021-03-02T05:00:00Z",
            "business": BUSINESS,
            "business_size": "small",
            "authority": "FIRE",
            "inspector": "INSP-1",
            "kind": "unscheduled",
            "basis": "routine",
        },
    },
    {
        "topic": "inspections",
        "key": "BIZ-LARGE-PLANT",
        "value": {
            "event_id": "obs-2",
            "ts": "2021-03-02T06:00:00Z",
            "business": "BIZ-LARGE-PLANT",
            "business_size": "large",
            "authority": "FIRE",
            "inspector": "INSP-1",
            "kind": "scheduled",
            "basis": "routine",
        },
    },
    {"topic": "inspections", "key": "BIZ-X", "value": {"event_id": "obs-3"}},
]


class Webhook:
    """An HTTP receiver of Alertmanager's webhook notifications, in a thread."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Servers:
    """Server subprocesses of one test, stopped at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = self.tmp_path / f"{name}.log"
        process = subprocess.Popen(
            args,
            cwd=self.tmp_path,
            stdout=open(log, "wb"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        )
        self.processes.append((process, log))
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            for _, log in self.processes
        )

    def stop(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.terminate()
        for process, _ in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    yield started
    started.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    receiver = Webhook()
    yield receiver
    receiver.close()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def ready(url: str) -> bool:
    try:
        get(url)
    except OSError:
        return False
    return True


def query(prometheus: str, promql: str) -> dict[tuple, float]:
    """An instant query: {labels except job/instance as a sorted tuple: value}."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    answer = json.loads(get(url))
    assert answer["status"] == "success", answer
    return {
        tuple(
            sorted(
                (k, v) for k, v in r["metric"].items() if k not in ("__name__", "job", "instance")
            )
        ): float(r["value"][1])
        for r in answer["data"]["result"]
    }


def alertmanager_config(webhook: Webhook) -> str:
    """The shipped Alertmanager routing, its webhooks pointed here and its waits shortened."""
    text = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
    assert "http://127.0.0.1:5001/" in text
    text = text.replace("http://127.0.0.1:5001/", f"http://127.0.0.1:{webhook.port}/")
    text, waits = re.subn(r"group_wait: \S+", "group_wait: 1s", text)
    assert waits >= 1
    return re.sub(r"group_interval: \S+", "group_interval: 1s", text)


def prometheus_config(worker_port: int, alertmanager_port: int) -> str:
    """Scrape the worker every second, evaluate the shipped rules every second."""
    rules = sorted(str(p) for p in (DEPLOY / "prometheus" / "rules").glob("*.rules.yml"))
    return json.dumps(  # JSON is YAML
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": rules,
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                ]
            },
            "scrape_configs": [
                {
                    "job_name": "kuzet",
                    "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
                }
            ],
        }
    )


async def test_a_critical_finding_reaches_prometheus_and_the_webhook(
    bootstrap, topics, producer, start_worker, servers, webhook, tmp_path
):
    prometheus_bin = require_tool("prometheus")
    alertmanager_bin = require_tool("prometheus-alertmanager")
    worker = start_worker(topics)

    am_port, prom_port = free_port(), free_port()
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(alertmanager_config(webhook))
    servers.start(
        "alertmanager",
        alertmanager_bin,
        f"--config.file={am_config}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",  # no gossip on 9094 (the local broker's SASL port)
    )
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(prometheus_config(worker.web_port, am_port))
    servers.start(
        "prometheus",
        prometheus_bin,
        f"--config.file={prom_config}",
        f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    )
    prometheus = f"http://127.0.0.1:{prom_port}"
    critical = 'kuzet_alerts_total{job="kuzet", kind="moratorium_violation", severity="critical"}'
    try:
        await wait_until(lambda: ready(f"http://127.0.0.1:{am_port}/-/ready"), timeout=30)
        await wait_until(lambda: ready(f"{prometheus}/-/ready"), timeout=30)
        # The counter is scraped at 0 before the finding, so its increase is seen.
        zero = {(("kind", "moratorium_violation"), ("severity", "critical")): 0.0}
        await wait_until(lambda: query(prometheus, critical) == zero, timeout=30)

        stream_file = tmp_path / "stream.jsonl"
        stream_file.write_text("".join(json.dumps(line) + "\n" for line in STREAM_FILE))
        for line in map(json.loads, stream_file.read_text().splitlines()):
            await producer.send_and_wait(
                topics.input(line["topic"]),
                json.dumps(line["value"]).encode(),
                key=line["key"].encode(),
            )

        # Prometheus scraped the right counts.
        def scraped() -> bool:
            alerts = query(prometheus, 'sum by (kind, severity) (kuzet_alerts_total{job="kuzet"})')
            return alerts.get((("kind", "moratorium_violation"), ("severity", "critical"))) == 1

        await wait_until(scraped, timeout=30)
        alerts = query(prometheus, 'sum by (kind, severity) (kuzet_alerts_total{job="kuzet"}) > 0')
        assert alerts == {(("kind", "moratorium_violation"), ("severity", "critical")): 1.0}
        events = query(prometheus, 'kuzet_events_total{job="kuzet", stream="inspections"} > 0')
        assert {dict(k)["outcome"]: v for k, v in events.items()} == {"ok": 2.0, "invalid": 1.0}
        letters = query(prometheus, 'sum by (stream) (kuzet_dead_letters_total{job="kuzet"})')
        assert letters == {(("stream", "inspections"),): 1.0}
        lag = query(prometheus, 'kuzet_event_lag_seconds_count{job="kuzet"}')
        assert lag == {(("stream", "inspections"),): 2.0}

        # The periodic gauges: consumer lag of every assigned partition, tracked entities.
        def gauges() -> bool:
            lags = query(prometheus, 'kuzet_consumer_lag{job="kuzet", stream="inspections"}')
            tracked = query(prometheus, 'kuzet_tracked_entities{job="kuzet"}')
            return len(lags) == topics.partitions and set(lags.values()) == {0.0} and bool(tracked)

        await wait_until(gauges, timeout=20)

        # The rule fired and Alertmanager routed it to the inspections team's urgent webhook.
        await wait_until(lambda: webhook.received, timeout=60)
        path, notification = webhook.received[0]
        assert path == "/kuzet/inspections-oversight-critical"
        assert notification["status"] == "firing"
        [alert] = notification["alerts"]
        assert alert["labels"]["alertname"] == "KuzetCriticalFinding"
        assert alert["labels"]["kind"] == "moratorium_violation"
        assert alert["labels"]["severity"] == "critical"
        # Notifications name kinds, never entities; the worker's /alerts page does.
        assert BUSINESS not in json.dumps(notification)
        page = json.loads(
            get(f"http://127.0.0.1:{worker.web_port}/alerts?kind=moratorium_violation")
        )
        assert [(a["entity"], a["event_ids"]) for a in page] == [(BUSINESS, ["obs-1"])]
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{servers.logs()}\n--- worker\n{worker.log_tail(15)}") from exc
