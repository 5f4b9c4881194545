#!/usr/bin/env bash
# The four eventshop services as local processes (the native stack of `make up`).
#
#   scripts/services.sh start|stop|status|endpoints
#
# start      start every service binary found in bin/ (built by `make build-services`) that
#            is not running yet, with the local stack's configuration, and wait until each
#            answers /readyz; logs go to $EVENTSHOP_WORK/logs/<service>.log
# stop       SIGTERM the services this script started (cart first, so nothing new is
#            accepted), SIGKILL after 30s
# status     exit 0 when every service with a binary is running and ready
# endpoints  print HTTP, gRPC and metrics addresses, a dev token and a curl line
#
# EVENTSHOP_PPROF=1 also serves /debug/pprof/ on 127.0.0.1:6061-6064 (HTTP port - 2020).
set -euo pipefail
ES_TAG=services # used by lib.sh
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

PG_PORT="${EVENTSHOP_PG_PORT:-15432}"
KAFKA_PORT="${EVENTSHOP_KAFKA_PORT:-19092}"
BIN="$ES_REPO/bin"
READY_TIMEOUT="${EVENTSHOP_SERVICE_READY_TIMEOUT:-90}"

# name http-port grpc-port database
SERVICES=(
	"inventory 8082 9082 inventory"
	"discount 8084 9084 discount"
	"order 8083 9083 orders"
	"cart 8081 9081 cart"
)


pidfile() { printf '%s/%s.pid\n' "$ES_PIDS" "$1"; }

ready() { curl -fsS -m 2 "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; }

start_one() {
	local name=$1 hport=$2 gport=$3 db=$4 pid
	local bin="$BIN/$name"
	if [[ ! -x $bin ]]; then
		warn "$name: no binary at $bin (run make build-services); not started"
		return 0
	fi
	if pid="$(ours_pid "$(pidfile "$name")" "$bin")"; then
		log "$name already running (pid $pid)"
		return 0
	fi
	for p in "$hport" "$gport"; do
		port_open 127.0.0.1 "$p" && port_taken_die "$p" "$name"
	done
	log "starting $name: http 127.0.0.1:$hport grpc 127.0.0.1:$gport (log $ES_LOGS/$name.log)"
	(
		export HTTP_ADDR="127.0.0.1:$hport" GRPC_ADDR="127.0.0.1:$gport"
		export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$db?sslmode=disable"
		export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" DEV_MODE="${DEV_MODE:-true}" LOG_LEVEL="${LOG_LEVEL:-info}"
		# EVENTSHOP_PPROF=1: the Go profiler on 127.0.0.1:6061 (cart) .. 6064 (discount)
		if [[ -n ${EVENTSHOP_PPROF:-} ]]; then export PPROF_ADDR="127.0.0.1:$((hport - 2020))"; fi
		exec setsid "$bin" >>"$ES_LOGS/$name.log" 2>&1 </dev/null
	) &
	echo $! >"$(pidfile "$name")"
}

wait_ready() {
	local name=$1 hport=$2 pid deadline=$((SECONDS + READY_TIMEOUT))
	[[ -x $BIN/$name ]] || return 0
	pid="$(read_pidfile "$(pidfile "$name")")"
	until ready "$hport"; do
		if ! pid_alive "$pid"; then
			tail -n 20 "$ES_LOGS/$name.log" >&2 || true
			die "$name exited during start-up; see $ES_LOGS/$name.log"
		fi
		((SECONDS < deadline)) || die "$name not ready after ${READY_TIMEOUT}s; see $ES_LOGS/$name.log"
		sleep 0.3
	done
	log "$name ready (pid $pid)"
}

cmd_start() {
	ensure_work_dirs
	command -v curl >/dev/null 2>&1 || die "curl not found. Fix: apt-get install -y curl"
	local s
	for s in "${SERVICES[@]}"; do
		# shellcheck disable=SC2086 # split the record on purpose
		start_one $s
	done
	for s in "${SERVICES[@]}"; do
		# shellcheck disable=SC2086
		set -- $s
		wait_ready "$1" "$2"
	done
}

cmd_stop() {
	local i name pid
	for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
		read -r name _ <<<"${SERVICES[$i]}"
		if pid="$(ours_pid "$(pidfile "$name")" "$BIN/$name")"; then
			log "stopping $name (pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			local deadline=$((SECONDS + 30))
			while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
			if pid_alive "$pid"; then
				warn "$name did not stop within 30s; SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
		rm -f "$(pidfile "$name")"
	done
}

cmd_status() {
	local s rc=0 name hport pid
	for s in "${SERVICES[@]}"; do
		read -r name hport _ <<<"$s"
		[[ -x $BIN/$name ]] || continue
		if pid="$(ours_pid "$(pidfile "$name")" "$BIN/$name")" && ready "$hport"; then
			log "$name running and ready (pid $pid, http 127.0.0.1:$hport)"
		else
			log "$name not running"
			rc=3
		fi
	done
	return "$rc"
}

cmd_endpoints() {
	local s name hport gport token
	printf '\n%-10s %-28s %-18s %s\n' service HTTP gRPC metrics
	for s in "${SERVICES[@]}"; do
		read -r name hport gport _ <<<"$s"
		[[ -x $BIN/$name ]] || continue
		printf '%-10s %-28s %-18s %s\n' "$name" "http://127.0.0.1:$hport/v1/" "127.0.0.1:$gport" "http://127.0.0.1:$hport/metrics"
	done
	if [[ -x $BIN/devtoken ]]; then
		token="$("$BIN/devtoken" -sub alice 2>/dev/null)"
		printf '\ndev token for user alice (24h):\n  export TOKEN=%s\n' "$token"
		# shellcheck disable=SC2016 # $TOKEN is for the reader's shell
		printf '\ntry:\n  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8082/v1/products\n'
		# shellcheck disable=SC2016
		printf '  curl -s -H "Authorization: Bearer $TOKEN" -d %s http://127.0.0.1:8081/v1/cart/items\n' "'{\"product_id\":\"mug\",\"quantity\":1}'"
		# shellcheck disable=SC2016
		printf '  grpcurl -plaintext -H "authorization: Bearer $TOKEN" 127.0.0.1:9081 eventshop.cart.v1.CartService/GetCart\n'
	fi
	printf '\nlogs: %s/*.log   stop: make down\n' "$ES_LOGS"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
endpoints) cmd_endpoints ;;
*)
	echo "usage: $0 start|stop|status|endpoints" >&2
	exit 2
	;;
esac
