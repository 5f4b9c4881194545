# shellcheck shell=bash
# Shared helpers for the local-infrastructure scripts. Source it; do not run it.
#
# Contract (other code depends on these names):
#   EVENTSHOP_WORK        work folder, default <repo>/.work (gitignored); everything the scripts
#                         create lives there: pg data, kafka logs, pid files, classpath cache, logs/.
#   EVENTSHOP_PG_PORT     PostgreSQL port on 127.0.0.1, default 15432
#   EVENTSHOP_KAFKA_PORT  Kafka PLAINTEXT port on 127.0.0.1, default 19092

ES_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
EVENTSHOP_WORK="${EVENTSHOP_WORK:-$ES_REPO/.work}"
case "$EVENTSHOP_WORK" in /*) ;; *) EVENTSHOP_WORK="$PWD/$EVENTSHOP_WORK" ;; esac
export EVENTSHOP_WORK
ES_LOGS="$EVENTSHOP_WORK/logs"
ES_PIDS="$EVENTSHOP_WORK/pids"

# ES_TAG prefixes every message; each script sets it.
ES_TAG="${ES_TAG:-eventshop}"

# Messages go to stderr so that `env` output on stdout stays eval-able.
log() { printf '[%s] %s\n' "$ES_TAG" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$ES_TAG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$ES_TAG" "$*" >&2; exit 1; }

ensure_work_dirs() {
	mkdir -p "$EVENTSHOP_WORK" "$ES_LOGS" "$ES_PIDS"
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# who_listens PORT: best-effort description of the process listening on PORT.
who_listens() {
	if command -v ss >/dev/null 2>&1; then
		ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/  */ /g' | head -n 3
	fi
}

# port_taken_die PORT WHAT [VAR]: fail, naming the fix, because PORT is held by someone
# else; VAR is the variable that moves the port, if there is one.
port_taken_die() {
	local port=$1 what=$2 var=${3:-} who fix
	who="$(who_listens "$port")"
	fix="stop that process, or choose another port, e.g. export $var=<free port> (and use the same value for tests)"
	[[ -n $var ]] || fix="stop that process (this port is fixed)"
	die "port 127.0.0.1:$port (for $what) is already in use by a process this script did not start${who:+: $who}.
    Fix: $fix."
}

# pid_alive PID
pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# pid_cmdline PID: the process command line with NULs turned into spaces.
pid_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# read_pidfile FILE: print the pid stored in FILE (first line) or nothing.
read_pidfile() {
	[[ -f $1 ]] || return 0
	local pid
	pid="$(head -n 1 "$1" 2>/dev/null || true)"
	[[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
	return 0
}

# ours_pid PIDFILE MARKER...: print the pid from PIDFILE when that process is alive and its
# command line contains every MARKER (so a recycled pid is never mistaken for ours).
ours_pid() {
	local file=$1 pid cmd m
	shift
	pid="$(read_pidfile "$file")"
	pid_alive "$pid" || return 1
	cmd="$(pid_cmdline "$pid")"
	for m in "$@"; do
		[[ $cmd == *"$m"* ]] || return 1
	done
	printf '%s\n' "$pid"
}

# apt_install PKG...: install Debian packages when root; otherwise fail naming the fix.
apt_install() {
	if ! is_root; then
		die "missing: $*. Fix: sudo apt-get update && sudo apt-get install -y $*"
	fi
	command -v apt-get >/dev/null 2>&1 || die "missing: $* and no apt-get here. Fix: install $* with your package manager."
	log "installing $* with apt-get (needs network access to the Debian mirrors)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2
	apt-get install -y -q --no-install-recommends "$@" >&2
}
