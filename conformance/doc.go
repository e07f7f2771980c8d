// Package conformance checks the gateway against the official OpenAI SDKs.
//
// The tests use the SDKs exactly as an application would: as clients of
// the built gateway binary (Caddy with the llmgate modules), which runs as
// a separate process in front of the mock provider from
// internal/mockllm. The Go tests drive openai-go; a Node script under js/
// drives the official openai package for JavaScript. Every request stays
// on the loopback interface.
//
// To run the suite from this directory with a binary built beforehand:
//
//	LLMGATE_CADDY=/path/to/caddy go test ./...
//
// Without LLMGATE_CADDY the tests build ../cmd/caddy themselves into a
// temporary directory first (go build -o <tmp>/caddy ./cmd/caddy, run from
// the repository root).
//
// The Node scripts under js/ need their dependencies installed first:
//
//	(cd js && npm ci)
//
// TestOpenAINode is skipped when node is not on PATH or js/node_modules is
// missing, unless LLMGATE_REQUIRE_NODE=1, which makes it fail instead.
package conformance
