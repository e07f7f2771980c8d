// Package mockllm is a small LLM provider for tests and benchmarks. It
// speaks OpenAI Chat Completions, OpenAI Responses, Anthropic Messages,
// Ollama's native chat, Google Gemini (generateContent and
// streamGenerateContent, as SSE with alt=sse or as a JSON array) and AWS
// Bedrock Converse (converse and converse-stream, the latter as a binary
// AWS eventstream), streamed and not, and records what it was sent so
// tests can check what reached the provider.
//
// Its answer is deterministic: the text "Hello from mock" (split into
// Chunks stream events), or, when the request declares tools, one call of
// the first tool with arguments {"city":"Paris"}. A model named
// "mock-status-NNN" makes it answer with that HTTP status and the
// dialect's error body (429 and 503 carry Retry-After: 1). A model named
// "mock-break" makes a stream stop half-way without its end. A model named
// "mock-stream-error" makes a stream answer 200, send the dialect's
// preamble without any text and then its in-stream error event for an
// overloaded provider, with no end (unstreamed, it answers 529 for
// Anthropic and 503 otherwise, without Retry-After). Gemini
// and Bedrock take the model from the request path, the others from the
// body.
//
// With AWSCredentials set, Bedrock requests must be signed with AWS
// Signature Version 4 for the service "bedrock" in AWSRegion (or carry a
// Bedrock API key as Authorization: Bearer).
package mockllm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/tidwall/gjson"
)

// Text is the answer the mock gives when no tool is declared.
const Text = "Hello from mock"

// Usage the mock reports for every answer.
const (
	InputTokens  = 11
	CachedTokens = 3
	OutputTokens = 7
)

// Received is one request as the mock saw it.
type Received struct {
	Method string
	Host   string
	Path   string
	Header http.Header
	Body   []byte
	// Query is the raw query string (e.g. Gemini's "alt=sse").
	Query string
}

// Server is the mock provider; it implements http.Handler.
type Server struct {
	// Chunks is how many stream events carry the text. Default: 4.
	Chunks int
	// Delay is waited before answering; ChunkDelay between stream events.
	Delay, ChunkDelay time.Duration
	// AWSCredentials, when set, makes Bedrock requests need a valid AWS
	// Signature Version 4 made with them for the service "bedrock" in
	// AWSRegion (see VerifySigV4); a request with Authorization: Bearer
	// is taken as a Bedrock API key and accepted. Without it Bedrock
	// requests are not checked.
	AWSCredentials *aws.Credentials
	// AWSRegion is the region Bedrock signatures must be scoped to.
	AWSRegion string

	mu       sync.Mutex
	received []Received
	count    int
}

// Requests returns a copy of what the mock received.
func (s *Server) Requests() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// Count returns how many requests the mock received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Keep at most this many requests for inspection.
const keep = 1000

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.count++
	if len(s.received) < keep {
		s.received = append(s.received, Received{r.Method, r.Host, r.URL.Path, r.Header.Clone(), body, r.URL.RawQuery})
	}
	s.mu.Unlock()
	if s.Delay > 0 {
		time.Sleep(s.Delay)
	}
	var dialect, model string
	var isStream bool
	switch {
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		dialect = "openai"
	case strings.HasSuffix(r.URL.Path, "/messages"):
		dialect = "anthropic"
	case strings.HasSuffix(r.URL.Path, "/responses"):
		dialect = "responses"
	case strings.HasSuffix(r.URL.Path, "/api/chat"):
		dialect = "ollama"
	case geminiRoute(r.URL.Path, &model, &isStream):
		dialect = "gemini"
	case bedrockRoute(r.URL.EscapedPath(), &model, &isStream):
		dialect = "bedrock"
	case r.URL.Path == "/health" || r.URL.Path == "/":
		w.WriteHeader(http.StatusOK)
		return
	default:
		http.Error(w, `{"error":{"message":"mock: no such path","type":"invalid_request_error"}}`, http.StatusNotFound)
		return
	}
	if dialect == "bedrock" && s.AWSCredentials != nil && !s.bedrockAuthorized(w, r, body) {
		return
	}
	if !gjson.ValidBytes(body) {
		writeError(w, dialect, http.StatusBadRequest, "mock: invalid JSON")
		return
	}
	if dialect != "gemini" && dialect != "bedrock" {
		model = gjson.GetBytes(body, "model").Str
	}
	if code, ok := strings.CutPrefix(model, "mock-status-"); ok {
		n, _ := strconv.Atoi(code)
		statusError(w, dialect, n, code)
		return
	}
	var toolName string
	switch dialect {
	case "gemini":
		toolName = firstString(gjson.GetBytes(body, "tools.#.functionDeclarations.0.name"))
	case "bedrock":
		toolName = firstString(gjson.GetBytes(body, "toolConfig.tools.#.toolSpec.name"))
	default:
		stream := gjson.GetBytes(body, "stream")
		isStream = stream.Type == gjson.True || (dialect == "ollama" && !stream.Exists())
		tool := gjson.GetBytes(body, "tools.0")
		toolName = tool.Get("function.name").Str
		if dialect == "anthropic" || dialect == "responses" {
			toolName = tool.Get("name").Str
		}
	}
	if model == streamErrorModel && !isStream {
		// Overloaded, without a Retry-After (a stream's error has none).
		if dialect == "anthropic" {
			writeError(w, dialect, 529, "mock: status 529")
		} else {
			writeError(w, dialect, http.StatusServiceUnavailable, "mock: status 503")
		}
		return
	}
	a := answer{model: model, tool: toolName, chunks: s.chunks(), delay: s.ChunkDelay, brk: model == "mock-break",
		streamErr: model == streamErrorModel}
	switch dialect {
	case "openai":
		if isStream {
			a.openAIStream(w, gjson.GetBytes(body, "stream_options.include_usage").Bool())
		} else {
			a.openAIJSON(w)
		}
	case "anthropic":
		if isStream {
			a.anthropicStream(w)
		} else {
			a.anthropicJSON(w)
		}
	case "ollama":
		if isStream {
			a.ollamaStream(w)
		} else {
			a.ollamaJSON(w)
		}
	case "responses":
		if isStream {
			a.responsesStream(w)
		} else {
			writeJSON(w, a.responsesObject("completed"))
		}
	case "gemini":
		switch {
		case !isStream:
			writeJSON(w, a.geminiChunk(a.geminiParts(Text), "STOP", OutputTokens))
		case r.URL.Query().Get("alt") == "sse":
			a.geminiSSE(w)
		default:
			a.geminiArray(w)
		}
	case "bedrock":
		w.Header().Set("X-Amzn-Requestid", bedrockRequestID)
		if isStream {
			a.bedrockStream(w)
		} else {
			a.bedrockJSON(w)
		}
	}
}

// firstString is the first non-empty string of a gjson array result.
func firstString(r gjson.Result) string {
	for _, v := range r.Array() {
		if v.Str != "" {
			return v.Str
		}
	}
	return ""
}

func (s *Server) chunks() int {
	if s.Chunks > 0 {
		return s.Chunks
	}
	return 4
}

// streamErrorModel is the model whose streams fail after their preamble.
const streamErrorModel = "mock-stream-error"

// streamErrorMessage is the message of a mock-stream-error stream's error.
const streamErrorMessage = "mock: overloaded"

// statusError answers as the model "mock-status-"+code: status n (500
// below 400) with the dialect's error body, and Retry-After: 1 for 429,
// 503 and 529.
func statusError(w http.ResponseWriter, dialect string, n int, code string) {
	if n < 400 {
		n = 500
	}
	if n == 429 || n == 503 || n == 529 {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, dialect, n, "mock: status "+code)
}

func writeError(w http.ResponseWriter, dialect string, status int, msg string) {
	var b []byte
	switch dialect {
	case "anthropic":
		b, _ = json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": "api_error", "message": msg}})
	case "ollama":
		b, _ = json.Marshal(map[string]any{"error": msg})
	case "gemini":
		b, _ = json.Marshal(geminiError(status, msg))
	case "bedrock":
		bedrockError(w, status, bedrockErrorType(status), msg)
		return
	default:
		b, _ = json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "api_error", "param": nil, "code": nil}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

type answer struct {
	model  string
	tool   string
	chunks int
	delay  time.Duration
	brk    bool
	// streamErr makes a stream end after its preamble with the dialect's
	// in-stream error event (the model "mock-stream-error").
	streamErr bool
}

// pieces splits Text into n parts.
func (a answer) pieces() []string {
	n := a.chunks
	if n > len(Text) {
		n = len(Text)
	}
	out := make([]string, 0, n)
	size := (len(Text) + n - 1) / n
	for i := 0; i < len(Text); i += size {
		end := i + size
		if end > len(Text) {
			end = len(Text)
		}
		out = append(out, Text[i:end])
	}
	return out
}

const toolArgs = `{"city":"Paris"}`

func (a answer) openAIJSON(w http.ResponseWriter) {
	msg := map[string]any{"role": "assistant", "content": Text, "refusal": nil}
	finish := "stop"
	if a.tool != "" {
		msg["content"] = nil
		msg["tool_calls"] = []any{map[string]any{"id": "call_mock1", "type": "function", "function": map[string]any{"name": a.tool, "arguments": toolArgs}}}
		finish = "tool_calls"
	}
	writeJSON(w, map[string]any{
		"id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000, "model": a.model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish, "logprobs": nil}},
		"usage":   openAIUsage(),
	})
}

func openAIUsage() map[string]any {
	return map[string]any{"prompt_tokens": InputTokens, "completion_tokens": OutputTokens, "total_tokens": InputTokens + OutputTokens,
		"prompt_tokens_details": map[string]any{"cached_tokens": CachedTokens}}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

type flushWriter struct {
	w     http.ResponseWriter
	delay time.Duration
}

func (f flushWriter) event(format string, args ...any) {
	f.write(fmt.Appendf(nil, format, args...))
}

// write sends b as one stream event and flushes it.
func (f flushWriter) write(b []byte) {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	_, _ = f.w.Write(b)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (a answer) openAIStream(w http.ResponseWriter, includeUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	f := flushWriter{w, a.delay}
	chunk := func(delta map[string]any, finish any) string {
		return mustJSON(map[string]any{"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": a.model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}})
	}
	f.event("data: %s\n\n", chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	if a.streamErr {
		f.event("data: %s\n\n", `{"error":{"message":"`+streamErrorMessage+`","type":"server_error","param":null,"code":null}}`)
		return
	}
	finish := "stop"
	if a.tool != "" {
		finish = "tool_calls"
		f.event("data: %s\n\n", chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "id": "call_mock1", "type": "function",
			"function": map[string]any{"name": a.tool, "arguments": ""}}}}, nil))
		half := len(toolArgs) / 2
		for _, part := range []string{toolArgs[:half], toolArgs[half:]} {
			f.event("data: %s\n\n", chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": part}}}}, nil))
		}
	} else {
		for i, p := range a.pieces() {
			if a.brk && i == 1 {
				return
			}
			f.event("data: %s\n\n", chunk(map[string]any{"content": p}, nil))
		}
	}
	f.event("data: %s\n\n", chunk(map[string]any{}, finish))
	if includeUsage {
		f.event("data: %s\n\n", mustJSON(map[string]any{"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000,
			"model": a.model, "choices": []any{}, "usage": openAIUsage()}))
	}
	f.event("data: [DONE]\n\n")
}

func anthropicUsage(output int) map[string]any {
	return map[string]any{"input_tokens": InputTokens - CachedTokens, "cache_read_input_tokens": CachedTokens,
		"cache_creation_input_tokens": 0, "output_tokens": output}
}

func (a answer) anthropicJSON(w http.ResponseWriter) {
	content := []any{map[string]any{"type": "text", "text": Text}}
	stop := "end_turn"
	if a.tool != "" {
		content = []any{map[string]any{"type": "tool_use", "id": "toolu_mock1", "name": a.tool, "input": map[string]any{"city": "Paris"}}}
		stop = "tool_use"
	}
	writeJSON(w, map[string]any{"id": "msg_mock", "type": "message", "role": "assistant", "model": a.model,
		"content": content, "stop_reason": stop, "stop_sequence": nil, "usage": anthropicUsage(OutputTokens)})
}

func (a answer) anthropicStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	f := flushWriter{w, a.delay}
	ev := func(v map[string]any) { f.event("event: %s\ndata: %s\n\n", v["type"], mustJSON(v)) }
	ev(map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_mock", "type": "message", "role": "assistant",
		"model": a.model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": anthropicUsage(1)}})
	if a.streamErr {
		ev(map[string]any{"type": "ping"})
		f.event("event: error\ndata: %s\n\n", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
		return
	}
	stop := "end_turn"
	if a.tool != "" {
		stop = "tool_use"
		ev(map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "tool_use", "id": "toolu_mock1", "name": a.tool, "input": map[string]any{}}})
		half := len(toolArgs) / 2
		for _, part := range []string{"", toolArgs[:half], toolArgs[half:]} {
			ev(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "input_json_delta", "partial_json": part}})
		}
	} else {
		ev(map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
		ev(map[string]any{"type": "ping"})
		for i, p := range a.pieces() {
			if a.brk && i == 1 {
				return
			}
			ev(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": p}})
		}
	}
	ev(map[string]any{"type": "content_block_stop", "index": 0})
	ev(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": OutputTokens}})
	ev(map[string]any{"type": "message_stop"})
}

func (a answer) ollamaMessage(content string, withTool bool) map[string]any {
	m := map[string]any{"role": "assistant", "content": content}
	if withTool {
		m["tool_calls"] = []any{map[string]any{"function": map[string]any{"name": a.tool, "arguments": map[string]any{"city": "Paris"}}}}
	}
	return m
}

func (a answer) ollamaDone() map[string]any {
	return map[string]any{"model": a.model, "created_at": "2026-01-01T00:00:00Z", "message": a.ollamaMessage("", false), "done": true, "done_reason": "stop",
		"total_duration": 1000, "prompt_eval_count": InputTokens, "eval_count": OutputTokens}
}

func (a answer) ollamaJSON(w http.ResponseWriter) {
	d := a.ollamaDone()
	d["message"] = a.ollamaMessage(Text, false)
	if a.tool != "" {
		d["message"] = a.ollamaMessage("", true)
	}
	writeJSON(w, d)
}

func (a answer) ollamaStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	f := flushWriter{w, a.delay}
	if a.streamErr {
		f.event("%s\n", mustJSON(map[string]any{"error": streamErrorMessage}))
		return
	}
	if a.tool != "" {
		f.event("%s\n", mustJSON(map[string]any{"model": a.model, "created_at": "2026-01-01T00:00:00Z", "message": a.ollamaMessage("", true), "done": false}))
	} else {
		for i, p := range a.pieces() {
			if a.brk && i == 1 {
				return
			}
			f.event("%s\n", mustJSON(map[string]any{"model": a.model, "created_at": "2026-01-01T00:00:00Z", "message": a.ollamaMessage(p, false), "done": false}))
		}
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(a.ollamaDone())
	f.event("%s", buf.String())
}

func (a answer) responsesOutput() []any {
	if a.tool != "" {
		return []any{map[string]any{"id": "fc_mock1", "type": "function_call", "status": "completed", "call_id": "call_mock1", "name": a.tool, "arguments": toolArgs}}
	}
	return []any{map[string]any{"id": "msg_mock1", "type": "message", "status": "completed", "role": "assistant",
		"content": []any{map[string]any{"type": "output_text", "text": Text, "annotations": []any{}}}}}
}

func (a answer) responsesObject(status string) map[string]any {
	obj := map[string]any{"id": "resp_mock", "object": "response", "created_at": 1700000000, "status": status, "model": a.model,
		"output": []any{}, "usage": nil, "error": nil, "incomplete_details": nil}
	if status == "completed" {
		obj["output"] = a.responsesOutput()
		obj["usage"] = map[string]any{"input_tokens": InputTokens, "input_tokens_details": map[string]any{"cached_tokens": CachedTokens},
			"output_tokens": OutputTokens, "output_tokens_details": map[string]any{"reasoning_tokens": 0}, "total_tokens": InputTokens + OutputTokens}
	}
	return obj
}

func (a answer) responsesStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	f := flushWriter{w, a.delay}
	seq := 0
	ev := func(v map[string]any) {
		v["sequence_number"] = seq
		seq++
		f.event("event: %s\ndata: %s\n\n", v["type"], mustJSON(v))
	}
	ev(map[string]any{"type": "response.created", "response": a.responsesObject("in_progress")})
	ev(map[string]any{"type": "response.in_progress", "response": a.responsesObject("in_progress")})
	if a.streamErr {
		f.event("event: error\ndata: %s%d}\n\n", `{"type":"error","code":"server_error","message":"`+streamErrorMessage+`","param":null,"sequence_number":`, seq)
		return
	}
	if a.tool != "" {
		item := map[string]any{"id": "fc_mock1", "type": "function_call", "status": "in_progress", "call_id": "call_mock1", "name": a.tool, "arguments": ""}
		ev(map[string]any{"type": "response.output_item.added", "output_index": 0, "item": item})
		half := len(toolArgs) / 2
		for _, part := range []string{toolArgs[:half], toolArgs[half:]} {
			ev(map[string]any{"type": "response.function_call_arguments.delta", "item_id": "fc_mock1", "output_index": 0, "delta": part})
		}
		ev(map[string]any{"type": "response.function_call_arguments.done", "item_id": "fc_mock1", "output_index": 0, "name": a.tool, "arguments": toolArgs})
		ev(map[string]any{"type": "response.output_item.done", "output_index": 0, "item": a.responsesOutput()[0]})
	} else {
		ev(map[string]any{"type": "response.output_item.added", "output_index": 0,
			"item": map[string]any{"id": "msg_mock1", "type": "message", "status": "in_progress", "role": "assistant", "content": []any{}}})
		ev(map[string]any{"type": "response.content_part.added", "item_id": "msg_mock1", "output_index": 0, "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
		for i, p := range a.pieces() {
			if a.brk && i == 1 {
				return
			}
			ev(map[string]any{"type": "response.output_text.delta", "item_id": "msg_mock1", "output_index": 0, "content_index": 0, "delta": p})
		}
		ev(map[string]any{"type": "response.output_text.done", "item_id": "msg_mock1", "output_index": 0, "content_index": 0, "text": Text})
		ev(map[string]any{"type": "response.content_part.done", "item_id": "msg_mock1", "output_index": 0, "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": Text, "annotations": []any{}}})
		ev(map[string]any{"type": "response.output_item.done", "output_index": 0, "item": a.responsesOutput()[0]})
	}
	ev(map[string]any{"type": "response.completed", "response": a.responsesObject("completed")})
}
