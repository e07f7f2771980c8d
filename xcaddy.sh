#!/usr/bin/env bash
# Builds Caddy with caddy-llmgate from this checkout, using xcaddy.
#
#   ./xcaddy.sh          build ./caddy
#   ./xcaddy.sh run      build, then run it with Caddyfile.example
#                        (or the Caddyfile given by CADDYFILE=...)
#
# xcaddy is installed with `go install` when it is missing. The module is
# replaced by this directory at version v0.0.0 (`--with mod@v0.0.0=.`),
# which works even where the module proxy refuses unknown modules.
set -euo pipefail
cd "$(dirname "$0")"

CADDY_VERSION="${CADDY_VERSION:-v2.11.9}"
XCADDY_VERSION="${XCADDY_VERSION:-v0.4.5}"
OUT="${OUT:-./caddy}"

if ! command -v xcaddy >/dev/null 2>&1; then
	gobin="$(go env GOBIN)"
	[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
	if [ ! -x "$gobin/xcaddy" ]; then
		echo "installing xcaddy $XCADDY_VERSION into $gobin" >&2
		go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
	fi
	export PATH="$gobin:$PATH"
fi

xcaddy build "$CADDY_VERSION" --output "$OUT" \
	--with "github.com/llmgate/caddy-llmgate@v0.0.0=$(pwd)"

if [ "${1:-}" = "run" ]; then
	shift
	exec "$OUT" run --config "${CADDYFILE:-Caddyfile.example}" --adapter caddyfile "$@"
fi
