#!/usr/bin/env bash
# Run a command with the local Kafka broker up; stop the broker afterwards
# (also on failure or Ctrl-C) unless it was already running before.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kafka="$here/deploy/kafka/kafka.sh"

if "$kafka" status >/dev/null 2>&1; then
  exec "$@"
fi
trap '"$kafka" stop' EXIT
"$kafka" start
"$@"
