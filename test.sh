#!/usr/bin/env bash
# Runs the whole test suite: formatting and vet, unit and integration
# tests (Caddy in-process against a mock provider, reloads under load,
# Caddyfile golden tests), then the conformance suite: the built gateway
# binary with the official SDKs as clients (Go openai-go, Chat and
# Responses, anthropic-sdk-go, genai and aws-sdk-go-v2 bedrockruntime;
# npm openai, @anthropic-ai/sdk 0.x and 1.x, ollama, @google/genai)
# against providers of all six dialects; last, the
# benchmark harness in its quick mode (bench/run.sh -quick), so that it
# keeps working (the numbers of a quick run are not reported).
#
#   ./test.sh            everything
#   ./test.sh -short     skip the slow integration tests and conformance
#
# Needs Go; installs the npm packages of conformance/js itself (and
# Node.js through apt-get when it is missing and apt-get is usable).
set -euo pipefail
cd "$(dirname "$0")"
root="$(pwd)"

short=0
[ "${1:-}" = "-short" ] && short=1

step() { printf '\n=== %s\n' "$*"; }

step "gofmt and go vet"
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './conformance/js/*'))"
if [ -n "$unformatted" ]; then
	echo "not gofmt-clean:"; echo "$unformatted"; exit 1
fi
go vet ./...
(cd conformance && go vet ./...)
(cd bench && go vet ./...)

step "unit and integration tests"
if [ $short = 1 ]; then
	go test -short -count=1 ./...
	exit 0
fi
go test -count=1 ./...

step "build the gateway binary"
mkdir -p bin
go build -trimpath -o bin/caddy ./cmd/caddy
bin/caddy list-modules | grep -E '^(llm|http\.handlers\.llm_route|http\.handlers\.llm_translate)$'

step "npm packages for the SDK conformance tests"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
		apt-get update -qq && apt-get install -y -qq nodejs npm
	else
		echo "Node.js and npm are needed for the SDK conformance tests; install them and run again." >&2
		exit 1
	fi
fi
(cd conformance/js && npm ci --no-audit --no-fund --loglevel=error)

step "SDK conformance (built binary, official clients, mock provider)"
(cd conformance && LLMGATE_CADDY="$root/bin/caddy" LLMGATE_REQUIRE_NODE=1 go test -count=1 -v ./... 2>&1 | grep -v '^{"level"')

step "benchmark harness: its tests, then every scenario in 1-second runs"
(cd bench && go test -count=1 ./...)
bench/run.sh -quick -out "$(mktemp -d)" -readme '' >/dev/null
