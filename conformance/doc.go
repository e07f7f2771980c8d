// Package conformance checks the gateway against official SDKs of the
// four client dialects it serves: OpenAI Chat Completions, OpenAI
// Responses, Anthropic Messages and Ollama's native chat.
//
// The tests use the SDKs exactly as an application would: as clients of
// the built gateway binary (Caddy with the llmgate modules), which runs as
// a separate process in front of the mock provider from
// internal/mockllm. The gateway serves four models from that one mock,
// each through a provider of another dialect: gpt-test (OpenAI),
// claude-test (Anthropic), llama-test (Ollama) and resp-test (OpenAI
// Responses). Every client test runs against all four, streamed and not,
// so that together the tests cover each pair of client dialect and
// provider dialect, and checks what reached the provider (path, key,
// upstream model name, store: false for the Responses provider, and never
// the client's key).
//
// The clients, each pinned to one version (go.mod, js/package.json):
//   - Go: openai-go, for Chat Completions (TestOpenAIGo) and Responses
//     (TestResponsesGo, TestResponsesPreviousResponseID), and
//     anthropic-sdk-go (TestAnthropicGo);
//   - Node, through the scripts under js/: openai, for Chat Completions
//     (TestOpenAINode) and Responses (TestResponsesNode),
//     @anthropic-ai/sdk in its classic 0.x and its newest 1.x version
//     (TestAnthropicNode), and ollama (TestOllamaNode). The scripts take
//     the gateway's URL in GATEWAY_URL and the models in LLMGATE_MODELS
//     (see js/harness.mjs).
//
// The gateway keeps no conversation state: a Responses request with
// previous_response_id must get a 400 and never reach a provider.
//
// Every request stays on the loopback interface.
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
// The Node tests are skipped when node is not on PATH or a package they
// need is missing from js/node_modules, unless LLMGATE_REQUIRE_NODE=1,
// which makes them fail instead.
package conformance
