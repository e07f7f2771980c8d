// Package conformance checks the gateway against official SDKs of the
// client dialects it serves: OpenAI Chat Completions, OpenAI Responses,
// Anthropic Messages, Ollama's native chat, Google Gemini
// (generateContent, streamGenerateContent) and AWS Bedrock Converse
// (Converse, ConverseStream).
//
// The tests use the SDKs exactly as an application would: as clients of
// the built gateway binary (Caddy with the llmgate modules), which runs as
// a separate process in front of the mock provider from
// internal/mockllm. The gateway serves six models from that one mock,
// each through a provider of another dialect: gpt-test (OpenAI),
// claude-test (Anthropic), llama-test (Ollama), resp-test (OpenAI
// Responses), gemini-test (Gemini, its key sent as x-goog-api-key) and
// bedrock-test (Bedrock, signed with AWS SigV4 from credentials in the
// gateway's environment; the mock verifies every signature and answers a
// bad one with 403). Every client test runs against all six, streamed and
// not, so that together the tests cover each pair of client dialect and
// provider dialect, and checks what reached the provider (path, key or
// signature, upstream model name, store: false for the Responses
// provider, and never the client's key or AWS credentials).
//
// The clients, each pinned to one version (go.mod, js/package.json):
//   - Go: openai-go, for Chat Completions (TestOpenAIGo) and Responses
//     (TestResponsesGo, TestResponsesPreviousResponseID),
//     anthropic-sdk-go (TestAnthropicGo), google.golang.org/genai for
//     Gemini (TestGenAIGo, TestGenAIGoError) and aws-sdk-go-v2's
//     bedrockruntime for Bedrock (TestBedrockGo, TestBedrockGoError);
//   - Node, through the scripts under js/: openai, for Chat Completions
//     (TestOpenAINode) and Responses (TestResponsesNode),
//     @anthropic-ai/sdk in its classic 0.x and its newest 1.x version
//     (TestAnthropicNode), ollama (TestOllamaNode) and @google/genai
//     (TestGenAINode). The scripts take the gateway's URL in GATEWAY_URL
//     and the models in LLMGATE_MODELS (see js/harness.mjs).
//
// The Bedrock client sends the gateway key as a Bedrock API key
// (Authorization: Bearer), which the AWS SDK sends only over HTTPS: the
// gateway also serves its routes on an HTTPS site with a certificate of
// Caddy's local CA, whose root the tests trust. A second Bedrock client
// signs with SigV4 credentials of its own, over HTTP.
//
// The error tests of the Gemini and Bedrock clients use models whose
// upstream name makes the mock answer 429 (see rateLimited) or break a
// stream off half-way (see broken), one model for each client, provider
// dialect and case: every client must see its SDK's own error
// (genai.APIError with code 429, types.ThrottlingException; for a
// broken stream a genai.APIError after the text that came,
// types.ModelStreamErrorException), never a clean end.
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
