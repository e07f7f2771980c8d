// Package dialects knows the wire formats of the LLM APIs the gateway
// speaks: which endpoint belongs to which dialect, where each dialect keeps
// its model name, stream flag and token usage, how it frames streams, and
// what its error envelope looks like.
//
// It knows nothing of routing, money or Caddy. Reads and edits on the
// pass-through path use gjson and sjson on the raw bytes; nothing here
// decodes a whole body when a field will do.
package dialects

import (
	"fmt"
	"strings"
)

// Dialect names an API wire format.
type Dialect string

// The dialects the gateway knows.
const (
	// OpenAI is OpenAI Chat Completions (and every OpenAI-compatible
	// host: Ollama's /v1, Groq, DeepSeek, OpenRouter, vLLM...).
	OpenAI Dialect = "openai"
	// Anthropic is Anthropic Messages.
	Anthropic Dialect = "anthropic"
	// Ollama is Ollama's native /api/chat with NDJSON streams.
	Ollama Dialect = "ollama"
	// Responses is the OpenAI Responses API (/v1/responses).
	Responses Dialect = "responses"
	// Gemini is Google's Gemini API (generateContent and
	// streamGenerateContent with alt=sse).
	Gemini Dialect = "gemini"
	// Bedrock is AWS Bedrock's Converse API (converse and
	// converse-stream, whose stream is binary AWS eventstream).
	Bedrock Dialect = "bedrock"
)

// ProviderDialects are the dialects a provider may be declared with.
var ProviderDialects = []Dialect{OpenAI, Anthropic, Ollama, Responses}

// ParseProvider returns the provider dialect named s, or an error listing
// the valid names.
func ParseProvider(s string) (Dialect, error) {
	for _, d := range ProviderDialects {
		if strings.EqualFold(s, string(d)) {
			return d, nil
		}
	}
	names := make([]string, len(ProviderDialects))
	for i, d := range ProviderDialects {
		names[i] = string(d)
	}
	return "", fmt.Errorf("unknown dialect %q (valid: %s)", s, strings.Join(names, ", "))
}

// Endpoint is a client-facing API operation the gateway serves.
type Endpoint struct {
	Dialect Dialect
	// Generate is true for operations that produce a model answer
	// (routed and proxied), false for catalog/informational ones.
	Generate bool
	// Name is a short label for logs and metrics.
	Name string
}

// ClientEndpoint maps a request's method and path to the endpoint it
// addresses. ok is false for paths the gateway does not serve.
func ClientEndpoint(method, path string) (Endpoint, bool) {
	path = strings.TrimSuffix(path, "/")
	switch path {
	case "/v1/chat/completions", "/chat/completions":
		return Endpoint{OpenAI, true, "chat_completions"}, method == "POST"
	case "/v1/responses", "/responses":
		return Endpoint{Responses, true, "responses"}, method == "POST"
	case "/v1/messages":
		return Endpoint{Anthropic, true, "messages"}, method == "POST"
	case "/api/chat":
		return Endpoint{Ollama, true, "ollama_chat"}, method == "POST"
	case "/api/tags":
		return Endpoint{Ollama, false, "ollama_tags"}, method == "GET" || method == "HEAD"
	case "/v1/models", "/models":
		return Endpoint{OpenAI, false, "models"}, method == "GET" || method == "HEAD"
	case "/v1/context/delta":
		return Endpoint{OpenAI, false, "context_delta"}, method == "POST"
	case "/v1/context/stats":
		return Endpoint{OpenAI, false, "context_stats"}, method == "GET" || method == "HEAD"
	case "/health", "/healthz":
		return Endpoint{OpenAI, false, "health"}, method == "GET" || method == "HEAD"
	}
	return Endpoint{}, false
}

// UpstreamPath is the request path for a generation request to a provider
// of dialect d whose configured base URL path is base. An empty base
// means the provider's usual root: "/v1" for OpenAI and Anthropic, "" for
// Ollama's native API. stream matters for dialects that put it in the
// path (none of the current ones).
func UpstreamPath(d Dialect, base string, stream bool) string {
	base = strings.TrimSuffix(base, "/")
	switch d {
	case OpenAI:
		if base == "" {
			base = "/v1"
		}
		return base + "/chat/completions"
	case Anthropic:
		if base == "" {
			base = "/v1"
		}
		return base + "/messages"
	case Ollama:
		return base + "/api/chat"
	case Responses:
		if base == "" {
			base = "/v1"
		}
		return base + "/responses"
	}
	return base
}

// IsStreamDefault reports whether a request of dialect d streams when it
// does not say: Ollama's native API streams by default, the others do not.
func IsStreamDefault(d Dialect) bool { return d == Ollama }
