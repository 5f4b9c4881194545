#!/bin/sh
# Creates the event catalog's topics on the Compose stack's broker (the kafka-init service of
# docker-compose.yml runs it once with the apache/kafka image, after the broker is healthy).
# Safe to run again: existing topics are left as they are.
#
# One `create <topic> <partitions> [key=value...]` line per topic of pkg/envelope.DefaultTopics;
# the e2e Compose test reads these lines and compares them with the catalog.
set -eu

bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"

create() {
	topic=$1 partitions=$2
	shift 2
	echo "kafka-init: topic $topic ($partitions partitions${*:+, $*})"
	configs=""
	for c in "$@"; do configs="$configs --config $c"; done
	# shellcheck disable=SC2086 # one --config flag per key=value, none contains a space
	/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --create --if-not-exists \
		--topic "$topic" --partitions "$partitions" --replication-factor 1 $configs
}

create cart.events.v1 6
create inventory.events.v1 6
create inventory.products.v1 3 cleanup.policy=compact
create discount.events.v1 6
create order.events.v1 6

/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --describe --exclude-internal
