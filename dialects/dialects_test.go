package dialects

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestReadRequest(t *testing.T) {
	cases := []struct {
		d       Dialect
		body    string
		want    Request
		wantErr string
	}{
		{OpenAI, `{"model":"m","messages":[]}`, Request{Model: "m"}, ""},
		{OpenAI, `{"model":"m","messages":[],"stream":true}`, Request{Model: "m", Stream: true}, ""},
		{OpenAI, `{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}`, Request{Model: "m", Stream: true, StreamUsage: true}, ""},
		{Ollama, `{"model":"m","messages":[]}`, Request{Model: "m", Stream: true}, ""},
		{Ollama, `{"model":"m","messages":[],"stream":false}`, Request{Model: "m"}, ""},
		{OpenAI, `{"messages":[]}`, Request{}, ""},
		{OpenAI, ``, Request{}, "empty"},
		{OpenAI, `{"model":`, Request{}, "not valid JSON"},
		{OpenAI, `"x"`, Request{}, "not valid JSON"},
		{OpenAI, `{"model":5,"messages":[]}`, Request{}, "model must be a string"},
		{OpenAI, `{"model":"m"}`, Request{}, "missing required field messages"},
		{OpenAI, `{"model":"m","messages":{}}`, Request{}, "messages must be an array"},
		{OpenAI, `{"model":"m","messages":[],"stream":"yes"}`, Request{}, "stream must be a boolean"},
		{Anthropic, `{"model":"m","messages":[],"max_tokens":"9"}`, Request{}, "max_tokens"},
		{OpenAI, `{"model":"cheap","messages":[],"model":"o1-pro"}`, Request{}, "model appears more than once"},
		{OpenAI, `{"model":"m","stream":false,"messages":[],"stream":true}`, Request{}, "stream appears more than once"},
	}
	for _, c := range cases {
		got, err := ReadRequest(c.d, []byte(c.body))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Message, c.wantErr) || err.Status != 400 {
				t.Errorf("%s %q: err = %v, want 400 containing %q", c.d, c.body, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s %q: got %+v, %v; want %+v", c.d, c.body, got, err, c.want)
		}
	}
}

func TestRequestStreamUsage(t *testing.T) {
	body := []byte(`{"model":"m","stream":true,"messages":[]}`)
	req, _ := ReadRequest(OpenAI, body)
	out, err := RequestStreamUsage(OpenAI, body, req)
	if err != nil || !gjson.GetBytes(out, "stream_options.include_usage").Bool() {
		t.Fatalf("include_usage not set: %s %v", out, err)
	}
	same, _ := RequestStreamUsage(Anthropic, body, req)
	if string(same) != string(body) {
		t.Error("anthropic body changed")
	}
}

func TestErrorBodies(t *testing.T) {
	e := &Error{Status: 404, Message: `no "x"`, Code: "model_not_found", Param: "model"}
	o := ErrorBody(OpenAI, e)
	if gjson.GetBytes(o, "error.message").Str != `no "x"` || gjson.GetBytes(o, "error.type").Str != "not_found_error" ||
		gjson.GetBytes(o, "error.code").Str != "model_not_found" || gjson.GetBytes(o, "error.param").Str != "model" {
		t.Errorf("openai: %s", o)
	}
	a := ErrorBody(Anthropic, &Error{Status: 529, Message: "busy"})
	if gjson.GetBytes(a, "type").Str != "error" || gjson.GetBytes(a, "error.type").Str != "overloaded_error" {
		t.Errorf("anthropic: %s", a)
	}
	ol := ErrorBody(Ollama, &Error{Status: 400, Message: "bad"})
	if gjson.GetBytes(ol, "error").Str != "bad" {
		t.Errorf("ollama: %s", ol)
	}
	rec := httptest.NewRecorder()
	WriteError(rec, OpenAI, &Error{Status: 429, Message: "slow down", RetryAfter: 3})
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "3" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("WriteError: %d %v", rec.Code, rec.Header())
	}
}

func TestClientEndpoint(t *testing.T) {
	for _, c := range []struct {
		method, path string
		name         string
		ok           bool
	}{
		{"POST", "/v1/chat/completions", "chat_completions", true},
		{"GET", "/v1/chat/completions", "chat_completions", false},
		{"POST", "/v1/messages", "messages", true},
		{"POST", "/v1/responses", "responses", true},
		{"GET", "/api/tags", "ollama_tags", true},
		{"POST", "/api/chat", "ollama_chat", true},
		{"GET", "/v1/models", "models", true},
		{"GET", "/health", "health", true},
		{"GET", "/nope", "", false},
	} {
		ep, ok := ClientEndpoint(c.method, c.path)
		if ep.Name != c.name || ok != c.ok {
			t.Errorf("%s %s: %+v %v", c.method, c.path, ep, ok)
		}
	}
}

func TestUpstreamPath(t *testing.T) {
	for _, c := range []struct {
		d          Dialect
		base, want string
	}{
		{OpenAI, "", "/v1/chat/completions"},
		{OpenAI, "/api/v1", "/api/v1/chat/completions"},
		{OpenAI, "/v1/", "/v1/chat/completions"},
		{Anthropic, "", "/v1/messages"},
		{Ollama, "", "/api/chat"},
	} {
		if got, raw, q := UpstreamPath(c.d, c.base, "m", false); got != c.want || raw != "" || q != "" {
			t.Errorf("%s %q: %q %q %q, want %q", c.d, c.base, got, raw, q, c.want)
		}
	}
	for _, c := range []struct {
		d                    Dialect
		base, model          string
		stream               bool
		path, rawPath, query string
	}{
		{Gemini, "", "gemini-2.5-flash", false, "/v1beta/models/gemini-2.5-flash:generateContent", "", ""},
		{Gemini, "/v1", "models/gemini-2.5-pro", true, "/v1/models/gemini-2.5-pro:streamGenerateContent", "", "alt=sse"},
		{Bedrock, "", "anthropic.claude-3-haiku-20240307-v1:0", false, "/model/anthropic.claude-3-haiku-20240307-v1:0/converse", "", ""},
		{Bedrock, "", "arn:aws:bedrock:us-east-1:1:inference-profile/us.x", true,
			"/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.x/converse-stream",
			"/model/arn:aws:bedrock:us-east-1:1:inference-profile%2Fus.x/converse-stream", ""},
	} {
		p, raw, q := UpstreamPath(c.d, c.base, c.model, c.stream)
		if p != c.path || raw != c.rawPath || q != c.query {
			t.Errorf("%s %q %q: %q %q %q", c.d, c.base, c.model, p, raw, q)
		}
	}
}

func TestClientEndpointInPath(t *testing.T) {
	for _, c := range []struct {
		path   string
		ok     bool
		d      Dialect
		model  string
		stream bool
	}{
		{"/v1beta/models/gemini-2.5-flash:generateContent", true, Gemini, "gemini-2.5-flash", false},
		{"/v1/models/gemini-2.5-flash:streamGenerateContent", true, Gemini, "gemini-2.5-flash", true},
		{"/v1beta/models/gemini-2.5-flash:countTokens", false, "", "", false},
		{"/v1beta/models/:generateContent", false, "", "", false},
		{"/model/anthropic.claude-3-haiku-20240307-v1:0/converse", true, Bedrock, "anthropic.claude-3-haiku-20240307-v1:0", false},
		{"/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.x/converse-stream", true, Bedrock, "arn:aws:bedrock:us-east-1:1:inference-profile/us.x", true},
		{"/model//converse", false, "", "", false},
		{"/model/x/invoke", false, "", "", false},
	} {
		ep, ok := ClientEndpoint("POST", c.path)
		if ok != c.ok || ep.Dialect != c.d || ep.Model != c.model || ep.Stream != c.stream || (ok && !ep.Generate) {
			t.Errorf("%s: %+v %v", c.path, ep, ok)
		}
	}
	if ep, ok := ClientEndpoint("GET", "/v1beta/models/g:generateContent"); ok || ep.Name == "" {
		t.Errorf("GET: %+v %v", ep, ok)
	}
}

func TestUsage(t *testing.T) {
	u, ok := UsageFromBody(OpenAI, []byte(`{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}`))
	if !ok || u != (Usage{Input: 10, CachedInput: 4, Output: 5, Reasoning: 2}) {
		t.Errorf("openai: %+v", u)
	}
	// Anthropic input excludes cache reads and writes; ours includes them.
	u, ok = UsageFromBody(Anthropic, []byte(`{"usage":{"input_tokens":10,"cache_read_input_tokens":20,"cache_creation_input_tokens":5,"output_tokens":7}}`))
	if !ok || u != (Usage{Input: 35, CachedInput: 20, CacheWrite: 5, Output: 7}) {
		t.Errorf("anthropic: %+v", u)
	}
	u, ok = UsageFromBody(Ollama, []byte(`{"done":true,"prompt_eval_count":9,"eval_count":3}`))
	if !ok || u != (Usage{Input: 9, Output: 3}) {
		t.Errorf("ollama: %+v", u)
	}
	if _, ok := UsageFromBody(OpenAI, []byte(`{"id":"x"}`)); ok {
		t.Error("usage found where there is none")
	}
}

func TestStreamUsage(t *testing.T) {
	s := StreamUsage{Dialect: Anthropic}
	s.Event([]byte(`{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":2,"output_tokens":1}}}`))
	s.Event([]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\"usage\""}}`))
	s.Event([]byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}`))
	if u, ok := s.Usage(); !ok || u != (Usage{Input: 12, CachedInput: 2, Output: 42}) {
		t.Errorf("anthropic stream: %+v", u)
	}
	o := StreamUsage{Dialect: OpenAI}
	if o.Event([]byte(`{"choices":[{"delta":{"content":"hi"}}],"usage":null}`)) {
		t.Error("content chunk taken for a usage chunk")
	}
	if !o.Event([]byte(`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}`)) {
		t.Error("usage chunk not recognised")
	}
	if u, _ := o.Usage(); u.Input != 3 || u.Output != 4 {
		t.Errorf("openai stream: %+v", u)
	}
}

func BenchmarkStreamUsageEvent(b *testing.B) {
	ev := []byte(`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":null}],"usage":null}`)
	s := StreamUsage{Dialect: OpenAI}
	b.ReportAllocs()
	for b.Loop() {
		s.Event(ev)
	}
}

func TestReadResponsesRequest(t *testing.T) {
	if _, err := ReadRequest(Responses, []byte(`{"model":"m","input":"hi"}`)); err != nil {
		t.Error(err)
	}
	if _, err := ReadRequest(Responses, []byte(`{"model":"m","messages":[]}`)); err == nil || err.Param != "input" {
		t.Errorf("missing input: %v", err)
	}
	if _, err := DecodeResponsesRequest([]byte(`{"model":"m","input":"hi","previous_response_id":"resp_1"}`)); err == nil || err.Status != 400 {
		t.Errorf("previous_response_id: %v", err)
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ back`, "line\nfeed\ttab\r", "\x00\x1f ctl", "héllo wörld ✓ 😀", "bad \xff utf8", "sep \u2028 \u2029", "<html>&"} {
		got := string(AppendJSONString(nil, s))
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Fatalf("%q → %s: %v", s, got, err)
		}
		want, _ := json.Marshal(s)
		if !strings.Contains(s, "<") && got != string(want) {
			t.Errorf("%q: got %s, encoding/json gives %s", s, got, want)
		}
	}
}

// BenchmarkReadRequest: what llm_route pays per request to validate and
// read a 20-message body with tools.
func BenchmarkReadRequest(b *testing.B) {
	body := request20(OpenAI)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ReadRequest(OpenAI, body); err != nil {
			b.Fatal(err)
		}
	}
}
