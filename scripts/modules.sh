#!/usr/bin/env bash
# Prints the workspace modules (the `use` directives of go.work), one per line, e.g. ./pkg.
# Handles both `use ./x` and `use ( ... )` blocks, and // comments.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
awk '
	{ sub(/\/\/.*/, "") }
	/^[ \t]*use[ \t]*\(/ { inblock = 1; next }
	inblock && /^[ \t]*\)/ { inblock = 0; next }
	inblock && NF { print $1; next }
	/^[ \t]*use[ \t]+[^( \t]/ { print $2 }
' "$repo/go.work" | tr -d '"'
