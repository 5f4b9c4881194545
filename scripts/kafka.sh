#!/usr/bin/env bash
# Local single-node Kafka for eventshop (tests and the native dev stack).
#
#   scripts/kafka.sh start|stop|status|env|classpath|topics [TopicCommand args]
#
# Real Apache Kafka 4.1 in KRaft combined mode (broker + controller) from the jars that Maven
# resolves for deploy/kafka/pom.xml (kept in ~/.m2, never in the repo), listening on
# 127.0.0.1:$EVENTSHOP_KAFKA_PORT (PLAINTEXT, default 19092) and 127.0.0.1:$EVENTSHOP_KAFKA_CONTROLLER_PORT
# (controller, default 19093). State in $EVENTSHOP_WORK/kafka, log in $EVENTSHOP_WORK/logs/kafka.log.
#
# Fallback without Java: EVENTSHOP_KAFKA=kfake (or no Java 17+ found) runs pkg/cmd/kfake, an
# in-process Kafka-protocol broker, on the same address. EVENTSHOP_KAFKA=kafka forces the real one.
set -euo pipefail
ES_TAG=kafka
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_HOST=127.0.0.1
KAFKA_PORT="${EVENTSHOP_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${EVENTSHOP_KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_BROKERS="$KAFKA_HOST:$KAFKA_PORT"
NUM_PARTITIONS="${EVENTSHOP_KAFKA_PARTITIONS:-6}"
READY_TIMEOUT="${EVENTSHOP_KAFKA_READY_TIMEOUT:-120}"
STOP_TIMEOUT="${EVENTSHOP_KAFKA_STOP_TIMEOUT:-60}"
KAFKA_HEAP="${EVENTSHOP_KAFKA_HEAP:--Xms256m -Xmx768m}"

DEPLOY="$ES_REPO/deploy/kafka"
POM="$DEPLOY/pom.xml"
TEMPLATE="$DEPLOY/server.properties.template"
LOG4J2="$DEPLOY/log4j2.xml"

K_DIR="$EVENTSHOP_WORK/kafka"
K_DATA="$K_DIR/data"
K_PROPS="$K_DIR/server.properties"
K_CLUSTER_ID="$K_DIR/cluster.id"
K_CP="$K_DIR/classpath.txt"
K_CP_SUM="$K_DIR/classpath.pom.sha256"
K_MODE_FILE="$K_DIR/mode"
K_LOG="$ES_LOGS/kafka.log"
K_OUT="$ES_LOGS/kafka.out"
K_TOOLS_LOG="$ES_LOGS/kafka-tools.log"
K_PIDFILE="$ES_PIDS/kafka.pid"

KFAKE_BIN="$EVENTSHOP_WORK/bin/kfake"
KFAKE_DATA="$EVENTSHOP_WORK/kfake/data"
KFAKE_LOG="$ES_LOGS/kfake.log"

JAVA_FIX="apt-get install -y openjdk-17-jre-headless maven (Kafka 4 needs Java 17+), or use the fallback: EVENTSHOP_KAFKA=kfake"

usage() {
	cat >&2 <<USAGE
usage: $0 start|stop|status|env|classpath|topics [args]
  start      start the broker (real Kafka, or kfake when EVENTSHOP_KAFKA=kfake or Java is missing);
             waits up to ${READY_TIMEOUT}s until it answers; no-op if ours is already running
  stop       stop the broker this script started: SIGTERM, SIGKILL after ${STOP_TIMEOUT}s
  status     exit 0 when our broker is running and answering, 3 when not
  env        print export lines for the tests (EVENTSHOP_KAFKA_BROKERS)
  classpath  resolve the Kafka jars with Maven and cache the classpath (no broker started)
  topics     run org.apache.kafka.tools.TopicCommand against our broker, e.g. topics --list
env: EVENTSHOP_WORK=$EVENTSHOP_WORK EVENTSHOP_KAFKA=${EVENTSHOP_KAFKA:-<auto>} EVENTSHOP_KAFKA_PORT=$KAFKA_PORT
     EVENTSHOP_KAFKA_CONTROLLER_PORT=$CONTROLLER_PORT EVENTSHOP_KAFKA_HEAP="$KAFKA_HEAP"
USAGE
}

# java_ok: true when a Java 17+ runtime is on PATH (or JAVA_HOME).
java_bin() {
	if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
		printf '%s\n' "$JAVA_HOME/bin/java"
	else
		command -v java 2>/dev/null
	fi
}
java_ok() {
	local j v
	j="$(java_bin)" || return 1
	v="$("$j" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}')"
	[[ ${v%%.*} =~ ^[0-9]+$ ]] && ((${v%%.*} >= 17))
}

# pick_mode: print kafka or kfake.
pick_mode() {
	case "${EVENTSHOP_KAFKA:-}" in
	kfake) echo kfake ;;
	kafka)
		java_ok || die "EVENTSHOP_KAFKA=kafka but no Java 17+ runtime found. Fix: $JAVA_FIX"
		echo kafka
		;;
	"")
		if ! java_ok; then
			warn "no Java 17+ runtime found: falling back to kfake, the in-process Kafka-protocol broker (pkg/cmd/kfake). For the real broker: $JAVA_FIX"
			echo kfake
		elif ! command -v mvn >/dev/null 2>&1 && ! classpath_fresh; then
			warn "Maven not found and no cached Kafka classpath: falling back to kfake. For the real broker: apt-get install -y maven"
			echo kfake
		else
			echo kafka
		fi
		;;
	*) die "EVENTSHOP_KAFKA=$EVENTSHOP_KAFKA: want kafka, kfake or empty (auto)" ;;
	esac
}

pom_sum() { sha256sum "$POM" | awk '{print $1}'; }

# classpath_fresh: the cached classpath matches the pom and every jar on it still exists.
classpath_fresh() {
	[[ -s $K_CP && -s $K_CP_SUM ]] || return 1
	[[ "$(cat "$K_CP_SUM")" == "$(pom_sum)" ]] || return 1
	local jar
	while IFS= read -r jar; do
		[[ -f $jar ]] || return 1
	done < <(tr ':' '\n' <"$K_CP")
	return 0
}

cmd_classpath() {
	ensure_work_dirs
	mkdir -p "$K_DIR"
	if classpath_fresh; then
		log "Kafka classpath cached in $K_CP (pom unchanged)"
		return 0
	fi
	command -v mvn >/dev/null 2>&1 || die "Maven (mvn) not found; it resolves the Kafka jars. Fix: apt-get install -y maven, or EVENTSHOP_KAFKA=kfake"
	log "resolving Kafka jars with Maven (deploy/kafka/pom.xml -> ~/.m2; first time downloads ~100 MB)"
	local tmp="$K_CP.tmp"
	if ! mvn -B -q -f "$POM" dependency:build-classpath -Dmdep.outputFile="$tmp" >"$ES_LOGS/maven.log" 2>&1; then
		tail -n 30 "$ES_LOGS/maven.log" >&2 || true
		die "mvn dependency:build-classpath failed (log $ES_LOGS/maven.log). Fix: check network access to Maven Central (or ~/.m2/settings.xml mirrors)."
	fi
	[[ -s $tmp ]] || die "Maven wrote an empty classpath; see $ES_LOGS/maven.log"
	mv "$tmp" "$K_CP"
	pom_sum >"$K_CP_SUM"
	log "Kafka classpath cached in $K_CP ($(tr ':' '\n' <"$K_CP" | wc -l) jars)"
}

# kafka_java MAIN ARGS...: run a Kafka class in the foreground with the cached classpath.
kafka_java() {
	local main=$1
	shift
	"$(java_bin)" -Xmx256m -Dlog4j2.configurationFile="$LOG4J2" -Deventshop.kafka.logfile="$K_TOOLS_LOG" \
		-cp "$(cat "$K_CP")" "$main" "$@"
}

render_props() {
	sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
		-e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
		-e "s|@LOG_DIR@|$K_DATA|g" \
		-e "s|@NUM_PARTITIONS@|$NUM_PARTITIONS|g" \
		"$TEMPLATE" >"$K_PROPS.tmp"
	mv "$K_PROPS.tmp" "$K_PROPS"
}

format_storage() {
	if [[ -f $K_DATA/meta.properties ]]; then
		return 0
	fi
	if [[ ! -s $K_CLUSTER_ID ]]; then
		# A Kafka cluster id is a base64url UUID without padding; generated once and kept.
		head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$K_CLUSTER_ID"
	fi
	log "formatting KRaft storage in $K_DATA (cluster id $(cat "$K_CLUSTER_ID"))"
	mkdir -p "$K_DATA"
	kafka_java kafka.tools.StorageTool format -t "$(cat "$K_CLUSTER_ID")" -c "$K_PROPS" --ignore-formatted >&2 ||
		die "kafka-storage format failed; see $K_TOOLS_LOG"
}

# kafka_answers: the broker on our port answers an ApiVersions request (sent from bash, so the
# check costs milliseconds and works for both the real broker and kfake).
kafka_answers() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 5 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		# size 18 | api_key 18 (ApiVersions) | version 0 | correlation id 7 | client id "eventshp"
		printf "\x00\x00\x00\x12\x00\x12\x00\x00\x00\x00\x00\x07\x00\x08eventshp" >&3
		resp=$(head -c 10 <&3 | od -An -tx1 | tr -d " \n")
		# size(4) | correlation id(4) == 7 | error code(2) == 0
		[[ ${resp:8:8} == 00000007 && ${resp:16:4} == 0000 ]]
	' _ "$KAFKA_HOST" "$KAFKA_PORT" 2>/dev/null
}

our_pid() {
	local mode
	mode="$(cat "$K_MODE_FILE" 2>/dev/null || true)"
	case "$mode" in
	kafka) ours_pid "$K_PIDFILE" kafka.Kafka "$K_PROPS" ;;
	kfake) ours_pid "$K_PIDFILE" "$KFAKE_BIN" ;;
	*) return 1 ;;
	esac
}

# wait_ready PID LOGFILE OFFSET: wait until PID answers on our port (and, for the real broker,
# logged "Kafka Server started" after byte OFFSET of LOGFILE).
wait_ready() {
	local pid=$1 logfile=$2 offset=$3 mode=$4 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! pid_alive "$pid"; then
			rm -f "$K_PIDFILE"
			tail -n 30 "$logfile" >&2 || true
			[[ $mode == kafka ]] && tail -n 20 "$K_OUT" >&2
			die "the broker (pid $pid) exited during start-up; see $logfile"
		fi
		if [[ $mode == kfake ]] || tail -c +"$((offset + 1))" "$logfile" 2>/dev/null | grep -q 'Kafka Server started'; then
			if kafka_answers; then
				return 0
			fi
		fi
		sleep 0.5
	done
	die "the broker (pid $pid) did not answer on $KAFKA_BROKERS within ${READY_TIMEOUT}s; see $logfile. It is left running: scripts/kafka.sh stop"
}

check_ports_free() {
	local p
	for p in "$@"; do
		if port_open "$KAFKA_HOST" "$p"; then
			if [[ $p == "$KAFKA_PORT" ]]; then
				port_taken_die "$p" "Kafka" EVENTSHOP_KAFKA_PORT
			else
				port_taken_die "$p" "the Kafka controller" EVENTSHOP_KAFKA_CONTROLLER_PORT
			fi
		fi
	done
}

start_kafka() {
	cmd_classpath
	check_ports_free "$KAFKA_PORT" "$CONTROLLER_PORT"
	render_props
	format_storage
	touch "$K_LOG"
	local offset pid
	offset="$(stat -c %s "$K_LOG")"
	log "starting Apache Kafka (KRaft broker+controller) on $KAFKA_BROKERS, controller 127.0.0.1:$CONTROLLER_PORT, heap $KAFKA_HEAP (log $K_LOG)"
	printf 'kafka\n' >"$K_MODE_FILE"
	# setsid + nohup: the broker outlives this script, make and the terminal.
	# shellcheck disable=SC2086 # KAFKA_HEAP holds several JVM flags on purpose
	setsid nohup "$(java_bin)" $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$LOG4J2" -Deventshop.kafka.logfile="$K_LOG" \
		-Dkafka.logs.dir="$ES_LOGS" \
		-cp "$(cat "$K_CP")" kafka.Kafka "$K_PROPS" </dev/null >>"$K_OUT" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$K_PIDFILE"
	wait_ready "$pid" "$K_LOG" "$offset" kafka
}

start_kfake() {
	command -v go >/dev/null 2>&1 || die "kfake needs the Go toolchain (go) to build pkg/cmd/kfake. Fix: install Go (see go.work for the version), or install Java 17 + Maven for the real broker."
	check_ports_free "$KAFKA_PORT"
	mkdir -p "$(dirname "$KFAKE_BIN")" "$KFAKE_DATA"
	log "building pkg/cmd/kfake -> $KFAKE_BIN"
	(cd "$ES_REPO/pkg" && go build -o "$KFAKE_BIN" ./cmd/kfake) >&2 || die "go build ./cmd/kfake failed"
	touch "$KFAKE_LOG"
	local pid
	log "starting kfake (in-process Kafka-protocol broker) on $KAFKA_BROKERS, data $KFAKE_DATA (log $KFAKE_LOG)"
	printf 'kfake\n' >"$K_MODE_FILE"
	setsid nohup "$KFAKE_BIN" -addr "$KAFKA_BROKERS" -partitions "$NUM_PARTITIONS" -data-dir "$KFAKE_DATA" \
		</dev/null >>"$KFAKE_LOG" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$K_PIDFILE"
	wait_ready "$pid" "$KFAKE_LOG" 0 kfake
}

cmd_start() {
	local pid mode t0=$SECONDS
	ensure_work_dirs
	mkdir -p "$K_DIR"
	if pid="$(our_pid)"; then
		log "already running ($(cat "$K_MODE_FILE"), pid $pid) on $KAFKA_BROKERS"
		return 0
	fi
	rm -f "$K_PIDFILE"
	mode="$(pick_mode)"
	if [[ $mode == kafka ]]; then start_kafka; else start_kfake; fi
	log "ready in $((SECONDS - t0))s: $mode pid $(cat "$K_PIDFILE"), EVENTSHOP_KAFKA_BROKERS=$KAFKA_BROKERS"
}

cmd_stop() {
	local pid mode deadline
	if ! pid="$(our_pid)"; then
		rm -f "$K_PIDFILE"
		log "not running (nothing of ours to stop)"
		return 0
	fi
	mode="$(cat "$K_MODE_FILE")"
	log "stopping $mode (pid $pid): SIGTERM, SIGKILL after ${STOP_TIMEOUT}s"
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + STOP_TIMEOUT))
	while pid_alive "$pid" && ((SECONDS < deadline)); do
		sleep 0.5
	done
	if pid_alive "$pid"; then
		warn "pid $pid still alive after ${STOP_TIMEOUT}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		while pid_alive "$pid"; do sleep 0.2; done
	fi
	rm -f "$K_PIDFILE"
	log "stopped"
}

cmd_status() {
	local pid
	if pid="$(our_pid)"; then
		if kafka_answers; then
			log "running: $(cat "$K_MODE_FILE") pid $pid, $KAFKA_BROKERS answering"
			return 0
		fi
		log "process $pid is running but $KAFKA_BROKERS does not answer (starting or stuck; see $ES_LOGS)"
		return 3
	fi
	log "not running"
	return 3
}

cmd_env() {
	printf "export EVENTSHOP_KAFKA_BROKERS='%s'\n" "$KAFKA_BROKERS"
}

cmd_topics() {
	java_ok || die "topics needs Java 17+. Fix: $JAVA_FIX"
	cmd_classpath
	kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BROKERS" "$@"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
classpath) cmd_classpath ;;
topics)
	shift
	cmd_topics "$@"
	;;
-h | --help | help) usage ;;
*)
	usage
	exit 2
	;;
esac
