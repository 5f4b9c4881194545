#!/usr/bin/env bash
# The local infrastructure for eventshop: PostgreSQL + Kafka.
#
#   scripts/infra.sh up|down|status|env
#
# up     start both (each is a no-op when ours is already running), then print the env lines
# down   stop both (only what these scripts started)
# status exit 0 when both are running
# env    print `export EVENTSHOP_POSTGRES_URL=...` and `export EVENTSHOP_KAFKA_BROKERS=...`
#        use: eval "$(scripts/infra.sh env)"
set -euo pipefail
ES_TAG=infra
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

cmd_env() {
	"$here/postgres.sh" env
	"$here/kafka.sh" env
}

case "${1:-}" in
up)
	log "starting PostgreSQL and Kafka (work folder $EVENTSHOP_WORK)"
	"$here/postgres.sh" start
	"$here/kafka.sh" start
	log "up; logs in $ES_LOGS; for tests: eval \"\$(scripts/infra.sh env)\""
	cmd_env
	;;
down)
	log "stopping Kafka and PostgreSQL"
	rc=0
	"$here/kafka.sh" stop || rc=$?
	"$here/postgres.sh" stop || rc=$?
	exit "$rc"
	;;
status)
	rc=0
	"$here/postgres.sh" status || rc=$?
	"$here/kafka.sh" status || rc=$?
	exit "$rc"
	;;
env) cmd_env ;;
*)
	echo "usage: $0 up|down|status|env" >&2
	exit 2
	;;
esac
