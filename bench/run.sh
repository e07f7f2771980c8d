#!/usr/bin/env bash
# Runs the benchmark harness (see bench/main.go and the README's
# "Speed" section): builds the gateway into bin/caddy, installs the peer
# gateway (Portkey, from npm, pinned in bench/portkey), then measures
# every scenario in one run and writes bench/results/latest.json and
# latest.md, and the README's table.
#
#   bench/run.sh                  the full run (about 5 minutes)
#   bench/run.sh -quick           1-second runs: checks that it all works
#   bench/run.sh -run 'gateway'   only matching scenarios
#   bench/run.sh -profile         also CPU and allocation profiles
#
# Flags after the script name go to the harness (go run . -h lists
# them); later flags win over the defaults set here.
set -euo pipefail
cd "$(dirname "$0")"

(cd .. && go build -trimpath -o bin/caddy ./cmd/caddy)
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	(cd portkey && npm ci --no-audit --no-fund --loglevel=error)
	peer=portkey
else
	echo "Node.js is not installed: running without the peer gateway." >&2
	peer=
fi
go build -o results/.llmbench .
exec results/.llmbench -caddy ../bin/caddy -portkey "$peer" -out results -readme ../README.md "$@"
