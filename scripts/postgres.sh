#!/usr/bin/env bash
# Throwaway local PostgreSQL cluster for eventshop (tests and the native dev stack).
#
#   scripts/postgres.sh start|stop|status|env|install
#
# Cluster: $EVENTSHOP_WORK/postgres/data, listening on 127.0.0.1:$EVENTSHOP_PG_PORT (default 15432)
# with the unix socket in $EVENTSHOP_WORK/postgres/run, superuser `postgres`, trust auth on
# loopback only. Creates the databases cart, inventory, orders and discount if missing.
# Log: $EVENTSHOP_WORK/logs/postgres.log. PostgreSQL refuses to run as root, so as root the
# server runs as the `postgres` system user.
set -euo pipefail
ES_TAG=postgres
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT="${EVENTSHOP_PG_PORT:-15432}"
PG_HOST=127.0.0.1
PG_DIR="$EVENTSHOP_WORK/postgres"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
PG_LOG="$ES_LOGS/postgres.log"
PG_PIDFILE="$ES_PIDS/postgres.pid"
PG_DATABASES=(cart inventory orders discount)
PG_URL="postgres://postgres@$PG_HOST:$PG_PORT/postgres?sslmode=disable"
PG_OS_USER=postgres

usage() {
	cat >&2 <<USAGE
usage: $0 start|stop|status|env|install
  start    create (first time) and start the cluster, create the service databases; no-op if running
  stop     stop the cluster this script started (nothing else)
  status   exit 0 when our cluster is running, 3 when not
  env      print export lines for the tests (EVENTSHOP_POSTGRES_URL)
  install  install the Debian postgresql package if the server binaries are missing (root)
env: EVENTSHOP_WORK=$EVENTSHOP_WORK EVENTSHOP_PG_PORT=$PG_PORT EVENTSHOP_PG_BIN=${EVENTSHOP_PG_BIN:-<auto>}
     EVENTSHOP_PG_STOP_MODE=${EVENTSHOP_PG_STOP_MODE:-fast} (pg_ctl stop mode: fast, or immediate = crash, recovery at next start)
USAGE
}

# find_pg_bin: print the directory holding initdb/pg_ctl/postgres, newest version first.
find_pg_bin() {
	local d
	if [[ -n ${EVENTSHOP_PG_BIN:-} ]]; then
		[[ -x $EVENTSHOP_PG_BIN/initdb ]] && { printf '%s\n' "$EVENTSHOP_PG_BIN"; return 0; }
		die "EVENTSHOP_PG_BIN=$EVENTSHOP_PG_BIN has no initdb. Fix: point it at the PostgreSQL bin directory or unset it."
	fi
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k4,4 -rn); do
		[[ -x $d/initdb && -x $d/pg_ctl ]] && { printf '%s\n' "$d"; return 0; }
	done
	if command -v pg_config >/dev/null 2>&1; then
		d="$(pg_config --bindir 2>/dev/null || true)"
		[[ -n $d && -x $d/initdb ]] && { printf '%s\n' "$d"; return 0; }
	fi
	if command -v initdb >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return 0
	fi
	return 1
}

cmd_install() {
	if PG_BIN="$(find_pg_bin)"; then
		log "PostgreSQL server binaries found in $PG_BIN"
		return 0
	fi
	if ! is_root; then
		die "PostgreSQL server binaries (initdb, pg_ctl) not found. Fix: sudo apt-get install -y postgresql (or set EVENTSHOP_PG_BIN to their directory)."
	fi
	apt_install postgresql
	PG_BIN="$(find_pg_bin)" || die "installed postgresql but still cannot find initdb under /usr/lib/postgresql/*/bin. Fix: set EVENTSHOP_PG_BIN."
	log "PostgreSQL server binaries installed in $PG_BIN"
}

# as_pg CMD...: run CMD as the PostgreSQL OS user (postgres when we are root, else ourselves).
as_pg() {
	if is_root; then
		runuser -u "$PG_OS_USER" -- "$@"
	else
		"$@"
	fi
}

ensure_pg_user() {
	is_root || return 0
	if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
		log "creating system user $PG_OS_USER (PostgreSQL refuses to run as root)"
		useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
			--shell /usr/sbin/nologin "$PG_OS_USER"
	fi
}

our_pid() { ours_pid "$PG_PIDFILE" postgres "$PG_DATA"; }

# Settings we own, rewritten at every start so a port change applies.
write_conf() {
	local conf="$PG_DATA/eventshop.conf"
	cat >"$conf" <<CONF
# Written by scripts/postgres.sh at every start; edits are lost.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_connections = 300
shared_buffers = 128MB
# A throwaway cluster: fsync only matters for OS crashes. Commits still wait for the WAL
# write (synchronous_commit stays on), so a crashed server loses nothing it acknowledged.
fsync = off
full_page_writes = off
synchronous_commit = on
log_min_messages = warning
# Per-statement counters for profiling (CREATE EXTENSION pg_stat_statements in a database).
shared_preload_libraries = 'pg_stat_statements'
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
CONF
	is_root && chown "$PG_OS_USER:" "$conf"
	return 0
}

write_hba() {
	local hba="$PG_DATA/pg_hba.conf"
	cat >"$hba" <<HBA
# Written by scripts/postgres.sh: trust, loopback and our unix socket only.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
host    all       all   ::1/128       trust
local   replication all               trust
host    replication all 127.0.0.1/32  trust
HBA
	is_root && chown "$PG_OS_USER:" "$hba"
	return 0
}

init_cluster() {
	log "initdb: new cluster in $PG_DATA (superuser postgres, trust auth, UTF8)"
	mkdir -p "$PG_DATA"
	chmod 700 "$PG_DATA"
	is_root && chown "$PG_OS_USER:" "$PG_DATA"
	as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C \
		--no-instructions >>"$PG_LOG" 2>&1 ||
		die "initdb failed; see $PG_LOG"
	printf "\n# eventshop settings (scripts/postgres.sh)\ninclude_if_exists = 'eventshop.conf'\n" >>"$PG_DATA/postgresql.conf"
}

ensure_databases() {
	local db
	for db in "${PG_DATABASES[@]}"; do
		if [[ "$("$PG_BIN/psql" "$PG_URL" -XtAc "select 1 from pg_database where datname = '$db'")" != 1 ]]; then
			log "creating database $db"
			"$PG_BIN/psql" "$PG_URL" -Xq -v ON_ERROR_STOP=1 -c "create database \"$db\"" >&2
		fi
	done
}

cmd_start() {
	local pid t0 t1
	t0=$(date +%s)
	ensure_work_dirs
	cmd_install
	if pid="$(our_pid)"; then
		log "already running (pid $pid, data $PG_DATA) on $PG_HOST:$PG_PORT"
		ensure_databases
		return 0
	fi
	rm -f "$PG_PIDFILE"
	if port_open "$PG_HOST" "$PG_PORT"; then
		port_taken_die "$PG_PORT" PostgreSQL EVENTSHOP_PG_PORT
	fi
	local sock="$PG_RUN/.s.PGSQL.$PG_PORT"
	((${#sock} < 100)) || die "unix socket path $sock is too long (max ~100 chars). Fix: use a shorter EVENTSHOP_WORK."

	ensure_pg_user
	mkdir -p "$PG_DIR" "$PG_RUN"
	touch "$PG_LOG"
	if is_root; then
		chown "$PG_OS_USER:" "$PG_DIR" "$PG_RUN" "$PG_LOG"
		as_pg test -x "$PG_DIR" ||
			die "user $PG_OS_USER cannot reach $PG_DIR (a parent directory is not searchable). Fix: chmod o+x on the parents of $EVENTSHOP_WORK, or set EVENTSHOP_WORK to a reachable path."
	fi
	if [[ ! -s $PG_DATA/PG_VERSION ]]; then
		init_cluster
	else
		is_root && chown -R "$PG_OS_USER:" "$PG_DATA"
		log "using existing cluster in $PG_DATA"
	fi
	write_conf
	write_hba

	log "starting PostgreSQL on $PG_HOST:$PG_PORT (log $PG_LOG)"
	if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >&2; then
		tail -n 20 "$PG_LOG" >&2 || true
		die "PostgreSQL did not start; see $PG_LOG"
	fi
	pid="$(head -n 1 "$PG_DATA/postmaster.pid")"
	printf '%s\n' "$pid" >"$PG_PIDFILE"
	our_pid >/dev/null || die "PostgreSQL started but pid $pid does not look like our server; see $PG_LOG"
	ensure_databases
	t1=$(date +%s)
	log "ready in $((t1 - t0))s: pid $pid, $PG_URL (databases: ${PG_DATABASES[*]})"
}

cmd_stop() {
	local pid
	if ! pid="$(our_pid)"; then
		rm -f "$PG_PIDFILE"
		log "not running (nothing of ours to stop)"
		return 0
	fi
	PG_BIN="$(find_pg_bin)" || die "cannot find pg_ctl to stop pid $pid"
	local mode="${EVENTSHOP_PG_STOP_MODE:-fast}"
	[[ $mode == fast || $mode == immediate ]] || die "EVENTSHOP_PG_STOP_MODE=$mode; want fast or immediate"
	log "stopping PostgreSQL (pid $pid, data $PG_DATA, mode $mode)"
	as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m "$mode" -w -t 60 stop >&2 ||
		die "pg_ctl stop failed; see $PG_LOG"
	rm -f "$PG_PIDFILE"
	log "stopped"
}

cmd_status() {
	local pid
	if pid="$(our_pid)"; then
		log "running: pid $pid, $PG_URL, data $PG_DATA, log $PG_LOG"
		return 0
	fi
	log "not running (data $PG_DATA)"
	return 3
}

cmd_env() {
	printf "export EVENTSHOP_POSTGRES_URL='%s'\n" "$PG_URL"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
install) cmd_install ;;
-h | --help | help) usage ;;
*)
	usage
	exit 2
	;;
esac
