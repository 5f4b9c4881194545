#!/usr/bin/env bash
# Runs every test of the workspace against the real local infrastructure.
#
#   scripts/test.sh            (what `make test` runs)
#   TEST_FLAGS='-race -run Foo' scripts/test.sh
#
# 1. scripts/infra.sh up and export EVENTSHOP_POSTGRES_URL / EVENTSHOP_KAFKA_BROKERS;
# 2. for each module listed in go.work (`use` lines): go vet ./... and
#    go test -count=1 -timeout 20m $TEST_FLAGS ./... ; keeps going, exits non-zero if any failed;
# 3. leaves the infrastructure running, except under CI=true where it stops it at the end.
set -euo pipefail
ES_TAG="test"
here="$(dirname "${BASH_SOURCE[0]}")"
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"
cd "$ES_REPO"

command -v go >/dev/null 2>&1 || die "go not found. Fix: install the Go toolchain named in go.work (https://go.dev/dl/)."

if [[ ${CI:-} == true ]]; then
	trap 'log "CI=true: stopping the infrastructure"; "$here/infra.sh" down || true' EXIT
fi

"$here/infra.sh" up >/dev/null
eval "$("$here/infra.sh" env)"
export EVENTSHOP_POSTGRES_URL EVENTSHOP_KAFKA_BROKERS
log "EVENTSHOP_POSTGRES_URL=$EVENTSHOP_POSTGRES_URL"
log "EVENTSHOP_KAFKA_BROKERS=$EVENTSHOP_KAFKA_BROKERS"

mapfile -t modules < <("$here/modules.sh")
((${#modules[@]} > 0)) || die "no modules found in go.work"

# shellcheck disable=SC2206 # TEST_FLAGS is a list of flags on purpose
flags=(${TEST_FLAGS:-})
failed=()
skipped=()
for mod in "${modules[@]}"; do
	printf '\n==> %s\n' "$mod" >&2
	if pkgs="$(cd "$mod" && go list ./... 2>/dev/null)" && [[ -z $pkgs ]]; then
		log "$mod: no Go packages yet, skipped"
		skipped+=("$mod")
		continue
	fi
	ok=1
	log "$mod: go vet ./..."
	(cd "$mod" && go vet ./...) || ok=0
	log "$mod: go test -count=1 -timeout 20m ${flags[*]} ./..."
	(cd "$mod" && go test -count=1 -timeout 20m "${flags[@]}" ./...) || ok=0
	((ok)) || failed+=("$mod")
done

echo >&2
tested=$((${#modules[@]} - ${#skipped[@]}))
# A plain closing line that CI reads: modules whose vet and tests passed / failed.
echo "modules: $((tested - ${#failed[@]})) passed, ${#failed[@]} failed"
if ((${#failed[@]} > 0)); then
	log "FAILED modules: ${failed[*]}"
	exit 1
fi
log "passed: all $((${#modules[@]} - ${#skipped[@]})) modules with Go packages${skipped[*]:+ (skipped, no packages yet: ${skipped[*]})}"
