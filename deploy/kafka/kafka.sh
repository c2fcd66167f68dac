#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x (KRaft, combined broker+controller) on loopback.
# Jars come from Maven Central via ./pom.xml; see ./README.md.
# Listeners: PLAINTEXT :9092 for everything, plus SASL_PLAINTEXT (SCRAM) :9094, SSL :9095
# and SASL_SSL :9096 with test-only credentials, for tests of Kuzet's security settings.
#
#   kafka.sh fetch|start|stop|restart|status|reset|logs [N]
set -euo pipefail

KAFKA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---------------------------------------------------------------- settings
KAFKA_VERSION="${KUZET_KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_DIR/pom.xml" | head -n1)}"
[[ -n "$KAFKA_VERSION" ]] || { echo "kafka.sh: cannot read kafka.version from $KAFKA_DIR/pom.xml" >&2; exit 1; }

BROKER_PORT="${KUZET_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KUZET_KAFKA_CONTROLLER_PORT:-9093}"
SASL_PORT="${KUZET_KAFKA_SASL_PORT:-9094}"
SSL_PORT="${KUZET_KAFKA_SSL_PORT:-9095}"
SASL_SSL_PORT="${KUZET_KAFKA_SASL_SSL_PORT:-9096}"
# The one SCRAM-SHA-512 user of the SASL listeners. Test-only credentials
# on a loopback-only broker; tests/integration/test_security.py reads the same variables.
SCRAM_USER="${KUZET_KAFKA_SCRAM_USER:-kuzet}"
SCRAM_PASSWORD="${KUZET_KAFKA_SCRAM_PASSWORD:-kuzet-secret}"
START_TIMEOUT="${KUZET_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KUZET_KAFKA_STOP_TIMEOUT:-30}"
OFFSETS_PARTITIONS="${KUZET_KAFKA_OFFSETS_PARTITIONS:-10}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
KAFKA_OPTS="${KAFKA_OPTS:-}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
JAVAC="${JAVA_HOME:+$JAVA_HOME/bin/}javac"
KEYTOOL="${JAVA_HOME:+$JAVA_HOME/bin/}keytool"

LIB_ROOT="${KUZET_KAFKA_LIB:-$KAFKA_DIR/.lib}"
LIB_DIR="$LIB_ROOT/$KAFKA_VERSION"
DATA_DIR="${KUZET_KAFKA_DATA:-$KAFKA_DIR/.data}"
LOG_DIR="$DATA_DIR/logs"            # log4j output (server.log) + JVM stdout/stderr
KRAFT_DIR="$DATA_DIR/kraft-logs"    # Kafka log.dirs (topic data + cluster metadata)
CONFIG="$DATA_DIR/server.properties"
PID_FILE="$DATA_DIR/kafka.pid"
CLUSTER_ID_FILE="$DATA_DIR/cluster.id"
MARKER="$DATA_DIR/.kuzet-kafka-data"
# Written once the SCRAM user is in the metadata log. A formatted storage without it
# (or with another user/password) predates the SASL listener: see ensure_scram_user.
SCRAM_STAMP="$DATA_DIR/scram.stamp"
# TLS material of the SSL and SASL_SSL listeners, made once per data folder (ensure_tls).
TLS_DIR="$DATA_DIR/tls"
TLS_PASSWORD="kuzet-tls"  # only protects the keystore file of this loopback test broker
SERVER_LOG="$LOG_DIR/server.log"
OUT_LOG="$LOG_DIR/kafkaServer.out"

log() { echo "kafka.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PORTS=("$BROKER_PORT" "$CONTROLLER_PORT" "$SASL_PORT" "$SSL_PORT" "$SASL_SSL_PORT")
for p in "${PORTS[@]}"; do
  if ! [[ "$p" =~ ^[0-9]+$ ]] || ! (( p > 0 && p < 65536 )); then die "bad port: $p"; fi
done
[[ "$(printf '%s\n' "${PORTS[@]}" | sort -u | wc -l)" == "${#PORTS[@]}" ]] \
  || die "broker, controller, SASL, SSL and SASL_SSL ports must differ: ${PORTS[*]}"
# Both end up inside 'SCRAM-SHA-512=[name=...,password=...]': keep them to safe characters.
for v in "$SCRAM_USER" "$SCRAM_PASSWORD"; do
  [[ "$v" =~ ^[A-Za-z0-9._@-]+$ ]] || die "SCRAM user/password may only use A-Z a-z 0-9 . _ @ -"
done

# ---------------------------------------------------------------- helpers
stamp_value() {
  # Identifies what is in LIB_DIR: the version plus the pom that resolved it.
  echo "kafka=$KAFKA_VERSION pom-sha256=$(sha256sum "$KAFKA_DIR/pom.xml" | cut -d' ' -f1) probe-sha256=$(sha256sum "$KAFKA_DIR/probe/KafkaReady.java" | cut -d' ' -f1)"
}

is_fetched() {
  [[ -f "$LIB_DIR/.stamp" && "$(cat "$LIB_DIR/.stamp")" == "$(stamp_value)" ]]
}

cmd_fetch() {
  if is_fetched; then
    [[ "${1:-}" == "--quiet" ]] || log "Kafka $KAFKA_VERSION jars already in $LIB_DIR"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed to resolve Kafka jars from Maven Central)"
  mkdir -p "$LIB_ROOT"
  local tmp="$LIB_ROOT/.tmp-$KAFKA_VERSION-$$"
  rm -rf "$tmp"; mkdir -p "$tmp/jars" "$tmp/probe"
  log "resolving Kafka $KAFKA_VERSION jars with Maven ..."
  if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_DIR/pom.xml" \
        -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/jars" \
        >"$tmp/mvn.log" 2>&1; then
    cat "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
  fi
  [[ -f "$tmp/jars/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after resolution"; }
  log "compiling readiness probe ..."
  "$JAVAC" -nowarn -d "$tmp/probe" -cp "$tmp/jars/*" "$KAFKA_DIR/probe/KafkaReady.java" \
    || { rm -rf "$tmp"; die "could not compile probe/KafkaReady.java"; }
  stamp_value >"$tmp/.stamp"
  rm -f "$tmp/mvn.log"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  log "Kafka $KAFKA_VERSION: $(find "$LIB_DIR/jars" -name '*.jar' | wc -l) jars in $LIB_DIR/jars"
}

# Run a short-lived helper JVM on the Kafka classpath (quiet logging).
run_tool() {
  "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2-tools.xml" \
    -cp "$LIB_DIR/probe:$LIB_DIR/jars/*" "$@"
}

# Prints the broker's pid if it is running, else nothing (returns 1).
find_pid() {
  local pid
  if [[ -f "$PID_FILE" ]]; then
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && is_our_broker "$pid"; then
      echo "$pid"; return 0
    fi
    rm -f "$PID_FILE"  # stale
  fi
  # Pid file lost/stale: look for a broker started with exactly our config file.
  local d
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    if is_our_broker "$pid"; then
      [[ -d "$DATA_DIR" ]] && echo "$pid" >"$PID_FILE"
      echo "$pid"; return 0
    fi
  done
  return 1
}

is_our_broker() {
  local cmdline
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline")" || return 1
  [[ "$cmdline" == *" kafka.Kafka $CONFIG"* ]]
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

new_cluster_id() {
  # Same shape as Kafka's Uuid.randomUuid().toString(): 16 random bytes, url-safe
  # base64 without padding (22 chars); never starting with '-' (CLI-unsafe).
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* && ${#id} -eq 22 ]] && { echo "$id"; return; }
  done
}

render_config() {
  mkdir -p "$DATA_DIR" "$LOG_DIR" "$KRAFT_DIR"
  touch "$MARKER"
  sed -e "s|@BROKER_PORT@|$BROKER_PORT|g" \
      -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
      -e "s|@SASL_PORT@|$SASL_PORT|g" \
      -e "s|@SSL_PORT@|$SSL_PORT|g" \
      -e "s|@SASL_SSL_PORT@|$SASL_SSL_PORT|g" \
      -e "s|@TLS_DIR@|$TLS_DIR|g" \
      -e "s|@TLS_PASSWORD@|$TLS_PASSWORD|g" \
      -e "s|@LOG_DIRS@|$KRAFT_DIR|g" \
      -e "s|@OFFSETS_PARTITIONS@|$OFFSETS_PARTITIONS|g" \
      "$KAFKA_DIR/server.properties.template" >"$CONFIG.tmp"
  mv "$CONFIG.tmp" "$CONFIG"
}

format_storage() {
  if [[ -f "$KRAFT_DIR/meta.properties" ]]; then
    return 0
  fi
  local cid="${KUZET_KAFKA_CLUSTER_ID:-}"
  if [[ -z "$cid" && -s "$CLUSTER_ID_FILE" ]]; then cid="$(cat "$CLUSTER_ID_FILE")"; fi
  [[ -n "$cid" ]] || cid="$(new_cluster_id)"
  echo "$cid" >"$CLUSTER_ID_FILE"
  log "formatting KRaft storage in $KRAFT_DIR (cluster.id=$cid, SCRAM user $SCRAM_USER) ..."
  rm -f "$SCRAM_STAMP"
  # --add-scram writes the user into the bootstrap metadata snapshot, so it exists
  # from the broker's first start on.
  run_tool kafka.tools.StorageTool format -t "$cid" -c "$CONFIG" \
      --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
      >"$LOG_DIR/format.log" 2>&1 \
    || { cat "$LOG_DIR/format.log" >&2; die "storage format failed"; }
  scram_stamp_value >"$SCRAM_STAMP"
}

scram_stamp_value() {
  # The password only as a hash: the stamp says which credentials are stored.
  echo "SCRAM-SHA-512 user=$SCRAM_USER password-sha256=$(printf '%s' "$SCRAM_PASSWORD" | sha256sum | cut -d' ' -f1)"
}

# A data folder formatted before the SASL listener existed (no stamp), or with other
# SCRAM credentials, lacks the user. Add (or update) it through the running broker's
# PLAINTEXT listener, like `kafka-configs --alter --add-config SCRAM-SHA-512=[...]`:
# topics and offsets stay, no reset needed.
ensure_scram_user() {
  [[ -f "$SCRAM_STAMP" && "$(cat "$SCRAM_STAMP")" == "$(scram_stamp_value)" ]] && return 0
  log "data folder has no SCRAM user $SCRAM_USER yet (formatted by an older kafka.sh or other credentials); adding it ..."
  local msg
  if ! msg="$(run_tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$BROKER_PORT" \
      --alter --entity-type users --entity-name "$SCRAM_USER" \
      --add-config "SCRAM-SHA-512=[password=$SCRAM_PASSWORD]" 2>&1)"; then
    echo "$msg" >&2
    return 1
  fi
  scram_stamp_value >"$SCRAM_STAMP"
  log "SCRAM user $SCRAM_USER added"
}

# A local CA and a broker key + certificate for 127.0.0.1/localhost, made with the
# JDK's keytool (no openssl needed). The CA's private key is thrown away: the CA can
# sign nothing else. Clients verify the broker with $TLS_DIR/ca.pem.
ensure_tls() {
  [[ -s "$TLS_DIR/broker.p12" && -s "$TLS_DIR/ca.pem" ]] && return 0
  command -v "$KEYTOOL" >/dev/null || die "keytool not found (part of the JDK; makes the TLS listeners' certificate)"
  local t="$TLS_DIR.tmp" pw="$TLS_PASSWORD"
  rm -rf "$t"; mkdir -p "$t"
  log "making the TLS listeners' CA and certificate in $TLS_DIR ..."
  kt() { "$KEYTOOL" -J-XX:TieredStopAtLevel=1 -J-Xshare:auto "$@" >>"$t/keytool.log" 2>&1; }
  if ! {
    kt -genkeypair -alias ca -keyalg EC -groupname secp256r1 -validity 3650 \
       -dname "CN=Kuzet local test CA" -ext bc:c -ext KU=keyCertSign,cRLSign \
       -keystore "$t/ca.p12" -storetype PKCS12 -storepass "$pw" &&
    kt -exportcert -rfc -alias ca -keystore "$t/ca.p12" -storepass "$pw" -file "$t/ca.pem" &&
    kt -genkeypair -alias broker -keyalg EC -groupname secp256r1 -validity 3650 \
       -dname "CN=127.0.0.1" -keystore "$t/broker.p12" -storetype PKCS12 -storepass "$pw" &&
    kt -certreq -alias broker -keystore "$t/broker.p12" -storepass "$pw" -file "$t/broker.csr" &&
    kt -gencert -alias ca -keystore "$t/ca.p12" -storepass "$pw" -infile "$t/broker.csr" \
       -outfile "$t/broker.pem" -rfc -validity 3650 \
       -ext SAN=ip:127.0.0.1,dns:localhost -ext KU=digitalSignature -ext EKU=serverAuth &&
    kt -importcert -noprompt -alias ca -file "$t/ca.pem" -keystore "$t/broker.p12" -storepass "$pw" &&
    kt -importcert -alias broker -file "$t/broker.pem" -keystore "$t/broker.p12" -storepass "$pw"
  }; then
    cat "$t/keytool.log" >&2
    rm -rf "$t"
    die "keytool could not make the TLS certificate"
  fi
  rm -f "$t/ca.p12" "$t/broker.csr" "$t/keytool.log"
  rm -rf "$TLS_DIR"
  mv "$t" "$TLS_DIR"
}

file_size() { if [[ -f "$1" ]]; then stat -c %s "$1"; else echo 0; fi; }

# Last lines written by this start attempt (offsets recorded just before launch).
print_log_tail() {
  local f off
  for f in "$OUT_LOG" "$SERVER_LOG"; do
    [[ -s "$f" ]] || continue
    off=0
    [[ "$f" == "$OUT_LOG" ]] && off="${OUT_LOG_OFFSET:-0}"
    [[ "$f" == "$SERVER_LOG" ]] && off="${SERVER_LOG_OFFSET:-0}"
    (( off <= $(file_size "$f") )) || off=0   # rotated meanwhile
    (( off < $(file_size "$f") )) || continue  # nothing new from this start
    echo "----- last 40 lines of $f (this start) -----" >&2
    tail -c +"$((off + 1))" "$f" | tail -n 40 >&2
  done
}

with_lock() {
  mkdir -p "$DATA_DIR"
  exec 9>"$DATA_DIR/.lock"
  flock -w 120 9 || die "another kafka.sh is busy with $DATA_DIR"
}

# ---------------------------------------------------------------- commands
cmd_start() {
  with_lock
  local pid
  if pid="$(find_pid)"; then
    log "already running (pid $pid) on 127.0.0.1:$BROKER_PORT"
    if ! port_open "$SASL_PORT" || ! port_open "$SSL_PORT" || ! port_open "$SASL_SSL_PORT"; then
      log "WARNING: a secured listener (:$SASL_PORT, :$SSL_PORT, :$SASL_SSL_PORT) is not open: started by an older kafka.sh? \`kafka.sh restart\` adds them"
    fi
    return 0
  fi
  cmd_fetch --quiet
  for p in "${PORTS[@]}"; do
    port_open "$p" && die "port 127.0.0.1:$p is already in use by another process"
  done
  render_config
  ensure_tls
  format_storage
  rm -f "$PID_FILE"

  OUT_LOG_OFFSET="$(file_size "$OUT_LOG")"
  SERVER_LOG_OFFSET="$(file_size "$SERVER_LOG")"
  local t0=$SECONDS
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$BROKER_PORT (SASL_PLAINTEXT :$SASL_PORT, SSL :$SSL_PORT, SASL_SSL :$SASL_SSL_PORT, controller :$CONTROLLER_PORT), data in $DATA_DIR"
  # shellcheck disable=SC2086  # the *_OPTS variables are word lists on purpose
  nohup setsid "$JAVA" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS $KAFKA_OPTS \
    -Dkafka.logs.dir="$LOG_DIR" \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.xml" \
    -cp "$LIB_DIR/jars/*" \
    kafka.Kafka "$CONFIG" \
    </dev/null >>"$OUT_LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"

  # 1) cheap wait: process alive and broker port accepting connections
  local deadline=$((t0 + START_TIMEOUT))
  until port_open "$BROKER_PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      print_log_tail
      die "Kafka exited during startup (see $SERVER_LOG)"
    fi
    if (( SECONDS >= deadline )); then
      print_log_tail
      terminate_pid "$pid"
      die "Kafka did not open 127.0.0.1:$BROKER_PORT within ${START_TIMEOUT}s; stopped it again"
    fi
    sleep 0.3
  done
  # 2) real round trip: DescribeCluster + Metadata through the Java admin client
  local left=$((deadline - SECONDS)); (( left > 5 )) || left=5
  local msg rc=0
  msg="$(run_tool KafkaReady "127.0.0.1:$BROKER_PORT" "$left" "$pid" 2>&1)" || rc=$?
  if (( rc != 0 )); then
    echo "$msg" >&2
    print_log_tail
    if (( rc == 2 )); then rm -f "$PID_FILE"; die "Kafka exited during startup"; fi
    terminate_pid "$pid"
    die "Kafka did not answer metadata requests within ${START_TIMEOUT}s; stopped it again"
  fi
  log "$msg"
  # 3) the secured listeners start with the others; they must be open by now
  for p in "$SASL_PORT" "$SSL_PORT" "$SASL_SSL_PORT"; do
    port_open "$p" || {
      print_log_tail; terminate_pid "$pid"
      die "listener 127.0.0.1:$p is not open; stopped Kafka again"
    }
  done
  ensure_scram_user || {
    terminate_pid "$pid"
    die "could not add SCRAM user $SCRAM_USER; stopped Kafka again (\`kafka.sh reset\` starts afresh)"
  }
  log "started (pid $pid) in $((SECONDS - t0))s; log: $SERVER_LOG"
}

# SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL.
terminate_pid() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still running after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PID_FILE"
}

cmd_stop() {
  with_lock
  local pid
  if ! pid="$(find_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  log "stopping Kafka (pid $pid) ..."
  terminate_pid "$pid"
  log "stopped"
}

listener_status() {
  local state="closed"
  port_open "$2" && state="listening"
  printf '  %-15s 127.0.0.1:%s %s (%s)\n' "$1" "$2" "$state" "$3"
}

cmd_status() {
  local pid
  if pid="$(find_pid)"; then
    local state="port closed (starting or unhealthy)"
    port_open "$BROKER_PORT" && state="listening"
    echo "running: pid $pid, Kafka $KAFKA_VERSION, 127.0.0.1:$BROKER_PORT $state"
    listener_status SASL_PLAINTEXT "$SASL_PORT" "SCRAM-SHA-512, user $SCRAM_USER"
    listener_status SSL "$SSL_PORT" "CA $TLS_DIR/ca.pem"
    listener_status SASL_SSL "$SASL_SSL_PORT" "SCRAM-SHA-512 over TLS"
    echo "data: $DATA_DIR"
    echo "log:  $SERVER_LOG"
    return 0
  fi
  echo "stopped (Kafka $KAFKA_VERSION, data: $DATA_DIR)"
  return 3
}

cmd_reset() {
  cmd_stop
  if [[ -d "$DATA_DIR" ]]; then
    # Only delete folders this script created (guards against KUZET_KAFKA_DATA=/ accidents).
    if [[ -f "$MARKER" || -z "$(find "$DATA_DIR" -mindepth 1 -maxdepth 1 ! -name .lock -print -quit)" ]]; then
      rm -rf "$DATA_DIR"
      log "deleted $DATA_DIR"
    else
      die "$DATA_DIR has no $(basename "$MARKER") marker; not deleting it"
    fi
  fi
}

cmd_logs() {
  local n="${1:-100}"
  [[ -f "$SERVER_LOG" ]] || die "no log yet at $SERVER_LOG"
  tail -n "$n" "$SERVER_LOG"
}

usage() {
  cat <<EOF
usage: $(basename "$0") COMMAND
  fetch     resolve Kafka $KAFKA_VERSION jars with Maven into $LIB_ROOT (cached)
  start     fetch if needed, format storage once (with the SCRAM user), start the
            broker, wait until it answers; add the SCRAM user to older data folders
  stop      SIGTERM, wait up to ${STOP_TIMEOUT}s, then SIGKILL (exit 0 if not running)
  restart   stop + start
  status    exit 0 if running, 3 if stopped
  reset     stop and delete the data folder ($DATA_DIR)
  logs [N]  print the last N (100) lines of $SERVER_LOG
EOF
}

case "${1:-}" in
  fetch)   cmd_fetch ;;
  start)   cmd_start ;;
  stop)    cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status)  cmd_status ;;
  reset)   cmd_reset ;;
  logs)    shift; cmd_logs "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
