#!/usr/bin/env bash
# Install Debian's `prometheus` and `prometheus-alertmanager` packages (they
# provide prometheus, promtool, prometheus-alertmanager and amtool, which the
# deploy/ tests and the end-to-end observability test run) when any is missing,
# and Debian's `kcat`, which the README's consumer example uses (its test runs it).
#
# The packages start system services on install: Prometheus on 9090 and
# Alertmanager on 9093 (plus gossip on 9094), the ports of the local Kafka
# broker's controller and SASL listener (deploy/kafka). So the install runs
# under a policy-rc.d that forbids starting services, and the services are then
# stopped and disabled: the tests start their own instances on free ports.
set -euo pipefail

tools=(prometheus promtool prometheus-alertmanager amtool kcat)
missing=0
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing=1
done
[ "$missing" = 1 ] || exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
policy=/usr/sbin/policy-rc.d
added=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# Written by kuzet scripts/install-prometheus.sh for one install: start nothing.\nexit 101\n' \
    | $sudo tee "$policy" >/dev/null
  $sudo chmod 0755 "$policy"
  added=1
fi
cleanup() { if [ -n "$added" ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT

echo "== installing Debian packages prometheus, prometheus-alertmanager (services left stopped) and kcat"
$sudo apt-get update -q
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  prometheus prometheus-alertmanager kcat

# Whatever started anyway (an init that ignores policy-rc.d) is stopped, and kept
# from starting at boot.
for service in prometheus prometheus-alertmanager; do
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now "$service" >/dev/null 2>&1 || true
  else
    $sudo service "$service" stop >/dev/null 2>&1 || true
    $sudo update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
done
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "install-prometheus: $tool still missing" >&2; exit 1; }
done
