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
	"net/url"
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
var ProviderDialects = []Dialect{OpenAI, Anthropic, Ollama, Responses, Gemini, Bedrock}

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
	// Model is the model the path names (Gemini's
	// /models/{model}:generateContent, Bedrock's /model/{id}/converse);
	// "" where the body names it.
	Model string
	// Stream is what the path says of streaming, for the dialects whose
	// path says it (Gemini, Bedrock: see PathStream).
	Stream bool
}

// PathStream reports whether the stream flag of dialect d's requests is
// in the path (the endpoint) rather than in the body.
func PathStream(d Dialect) bool { return d == Gemini || d == Bedrock }

// ClientEndpoint maps a request's method and path to the endpoint it
// addresses. ok is false for paths the gateway does not serve (and for a
// known path with the wrong method, where the endpoint is still
// returned so the caller can say which methods are allowed).
func ClientEndpoint(method, path string) (Endpoint, bool) {
	path = strings.TrimSuffix(path, "/")
	post := method == "POST"
	get := method == "GET" || method == "HEAD"
	switch path {
	case "/v1/chat/completions", "/chat/completions":
		return Endpoint{Dialect: OpenAI, Generate: true, Name: "chat_completions"}, post
	case "/v1/responses", "/responses":
		return Endpoint{Dialect: Responses, Generate: true, Name: "responses"}, post
	case "/v1/messages":
		return Endpoint{Dialect: Anthropic, Generate: true, Name: "messages"}, post
	case "/api/chat":
		return Endpoint{Dialect: Ollama, Generate: true, Name: "ollama_chat"}, post
	case "/api/tags":
		return Endpoint{Dialect: Ollama, Name: "ollama_tags"}, get
	case "/v1/models", "/models":
		return Endpoint{Dialect: OpenAI, Name: "models"}, get
	case "/v1/context/delta":
		return Endpoint{Dialect: OpenAI, Name: "context_delta"}, post
	case "/v1/context/stats":
		return Endpoint{Dialect: OpenAI, Name: "context_stats"}, get
	case "/health", "/healthz":
		return Endpoint{Dialect: OpenAI, Name: "health"}, get
	}
	// Gemini: /v1beta/models/{model}:generateContent and
	// :streamGenerateContent (the newest SDKs call /v1/).
	for _, prefix := range [...]string{"/v1beta/models/", "/v1/models/"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			model, op, found := strings.Cut(rest, ":")
			if !found || model == "" || strings.Contains(model, "/") {
				break
			}
			switch op {
			case "generateContent":
				return Endpoint{Dialect: Gemini, Generate: true, Name: "gemini_generate", Model: model}, post
			case "streamGenerateContent":
				return Endpoint{Dialect: Gemini, Generate: true, Name: "gemini_stream", Model: model, Stream: true}, post
			}
		}
	}
	// Bedrock: /model/{modelId}/converse and /converse-stream. An id
	// may be an ARN, whose "/" arrives escaped but reads decoded here:
	// the id is everything between the prefix and the operation.
	if rest, ok := strings.CutPrefix(path, "/model/"); ok {
		if model, ok := strings.CutSuffix(rest, "/converse-stream"); ok && model != "" {
			return Endpoint{Dialect: Bedrock, Generate: true, Name: "bedrock_converse_stream", Model: model, Stream: true}, post
		}
		if model, ok := strings.CutSuffix(rest, "/converse"); ok && model != "" {
			return Endpoint{Dialect: Bedrock, Generate: true, Name: "bedrock_converse", Model: model}, post
		}
	}
	return Endpoint{}, false
}

// UpstreamPath is the request path and query for a generation request to
// a provider of dialect d whose configured base URL path is base. An
// empty base means the provider's usual root: "/v1" for OpenAI and
// Anthropic, "/v1beta" for Gemini, "" for Ollama's native API and
// Bedrock. model (the provider's model id) and stream matter for the
// dialects that put them in the path: Gemini and Bedrock. rawPath is
// the escaped form of path when they differ (a Bedrock ARN), else "".
func UpstreamPath(d Dialect, base, model string, stream bool) (path, rawPath, query string) {
	base = strings.TrimSuffix(base, "/")
	switch d {
	case OpenAI:
		if base == "" {
			base = "/v1"
		}
		return base + "/chat/completions", "", ""
	case Anthropic:
		if base == "" {
			base = "/v1"
		}
		return base + "/messages", "", ""
	case Ollama:
		return base + "/api/chat", "", ""
	case Responses:
		if base == "" {
			base = "/v1"
		}
		return base + "/responses", "", ""
	case Gemini:
		if base == "" {
			base = "/v1beta"
		}
		model = strings.TrimPrefix(model, "models/")
		if stream {
			return base + "/models/" + model + ":streamGenerateContent", "", "alt=sse"
		}
		return base + "/models/" + model + ":generateContent", "", ""
	case Bedrock:
		op := "/converse"
		if stream {
			op = "/converse-stream"
		}
		path = base + "/model/" + model + op
		if esc := base + "/model/" + url.PathEscape(model) + op; esc != path {
			rawPath = esc
		}
		return path, rawPath, ""
	}
	return base, "", ""
}

// IsStreamDefault reports whether a request of dialect d streams when it
// does not say: Ollama's native API streams by default, the others do not.
func IsStreamDefault(d Dialect) bool { return d == Ollama }
