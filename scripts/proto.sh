#!/usr/bin/env bash
# proto.sh: lint the protobuf contracts and (re)generate their committed code.
#
#   scripts/proto.sh            buf format check + buf lint, then regenerate the Go
#                               code (messages, gRPC, grpc-gateway) next to the .proto
#                               files and the OpenAPI document in proto/openapi/
#   scripts/proto.sh check      buf format check + buf lint, regenerate into a temp
#   scripts/proto.sh --check    dir and compare with the committed files; exit 1
#                               naming every stale, missing or extra file
#   scripts/proto.sh breaking   buf breaking (FILE) against proto/ on the main branch
#
# The tools (buf and the protoc plugins) are the versions pinned in tools/go.mod.
# They are built with the Go toolchain into a temporary directory that is put first
# on PATH, where buf.gen.yaml's `local:` plugins are found. No network to buf.build
# is needed. The first build of buf takes a few minutes; later ones hit the Go build
# cache and take seconds.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
proto_dir="$root/proto"

mode=generate
case "${1:-}" in
"") ;;
check | --check) mode=check ;;
breaking | --breaking) mode=breaking ;;
-h | --help)
	sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "proto.sh: unknown argument: $1 (want: check, breaking or nothing)" >&2
	exit 2
	;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/eventshop-proto.XXXXXX")
trap 'rm -rf "$work"' EXIT

run() {
	echo "+ $*" >&2
	"$@"
}

# Generated files: everything the buf.gen.yaml plugins write. Anything else
# (.proto sources, hand-written .go, buf config) is never touched.
list_generated() { # dir
	(cd "$1" && find . -type f \( -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' \) \
		-not -path './third_party/*' | sed 's|^\./||' | LC_ALL=C sort)
}

echo "== build tools (tools/go.mod) into $work/bin" >&2
(
	cd "$root/tools"
	run env GOWORK=off go build -o "$work/bin/" \
		github.com/bufbuild/buf/cmd/buf \
		google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
		github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2
)
export PATH="$work/bin:$PATH"
run buf --version >&2

cd "$proto_dir"

if [[ $mode == breaking ]]; then
	if ! git -C "$root" ls-tree -r --name-only refs/heads/main -- proto 2>/dev/null | grep -q '\.proto$'; then
		echo "proto.sh: branch main has no .proto files under proto/ yet; nothing to compare against" >&2
		exit 0
	fi
	echo "== buf breaking against main" >&2
	run buf breaking --against "$root/.git#branch=main,subdir=proto"
	exit 0
fi

echo "== buf format (check) and buf lint" >&2
if ! run buf format --diff --exit-code; then
	echo "proto.sh: .proto files are not buf-formatted; run: (cd proto && buf format -w)" >&2
	exit 1
fi
run buf lint

echo "== buf generate" >&2
run buf generate -o "$work/gen"

if [[ $mode == check ]]; then
	echo "== compare with the committed generated files" >&2
	stale=0
	while read -r f; do
		if [[ ! -f $f ]]; then
			echo "missing: proto/$f" >&2
			stale=1
		elif ! cmp -s "$work/gen/$f" "$f"; then
			echo "stale:   proto/$f" >&2
			diff -u "$f" "$work/gen/$f" | head -n 20 >&2 || true
			stale=1
		fi
	done < <(list_generated "$work/gen")
	while read -r f; do
		if [[ ! -f $work/gen/$f ]]; then
			echo "extra:   proto/$f (no .proto generates it)" >&2
			stale=1
		fi
	done < <(list_generated .)
	if ((stale)); then
		echo "proto.sh: generated code is out of date; run make proto (scripts/proto.sh)" >&2
		exit 1
	fi
	echo "generated code is up to date" >&2
	exit 0
fi

echo "== replace the generated files in proto/" >&2
# Remove first so that code of deleted .proto files does not linger.
list_generated . | while read -r f; do rm -f "$f"; done
list_generated "$work/gen" | while read -r f; do
	mkdir -p "$(dirname "$f")"
	cp "$work/gen/$f" "$f"
	echo "  proto/$f" >&2
done
echo "done" >&2
