package handlers

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dgraph-io/badger/v4"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
)

// pathGateway is a gateway whose one model "m" (upstream id upstream)
// is served by a provider of dialect d through up, with a ledger.
func pathGateway(t *testing.T, d dialects.Dialect, upstream string, up caddyhttp.MiddlewareHandler) (*Gateway, *ledger.Ledger) {
	t.Helper()
	base, _ := url.Parse("https://provider.example.test")
	c, err := routing.NewCatalog(
		[]*routing.Provider{{Name: "p", Dialect: string(d), URLs: []*url.URL{base}, KeySource: "k", APIKey: "sk-up"}},
		[]*routing.Model{{ID: "m", Provider: "p", UpstreamID: upstream, Prices: routing.Prices{Input: 1, Output: 1}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGateway(c, map[string]caddyhttp.MiddlewareHandler{"p": up}, 0, nil)
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(db)
	t.Cleanup(func() { l.Close(); db.Close() })
	g.AttachLedger(l)
	return g, l
}

func servePath(t *testing.T, g *Gateway, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
	route, tr := &Route{GW: g}, &Translate{GW: g}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	})
	if err := route.ServeHTTP(rec, req, next); err != nil {
		t.Fatal(err)
	}
	return rec
}

func lastEntry(t *testing.T, l *ledger.Ledger) ledger.Entry {
	t.Helper()
	var last ledger.Entry
	n := 0
	if err := l.Each(time.Time{}, time.Time{}, func(e ledger.Entry) error { last = e; n++; return nil }); err != nil || n == 0 {
		t.Fatalf("no ledger entry (%v)", err)
	}
	return last
}

func frame(t *testing.T, out []byte, typ, payload string) []byte {
	t.Helper()
	out, err := dialects.AppendEventStreamEvent(out, typ, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// converseStream is a ConverseStream answer as Bedrock sends it: usage
// in the metadata event after messageStop.
func converseStream(t *testing.T, stop bool) []byte {
	var b []byte
	b = frame(t, b, "messageStart", `{"role":"assistant"}`)
	b = frame(t, b, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hel"}}`)
	b = frame(t, b, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"lo"}}`)
	if !stop {
		return b
	}
	b = frame(t, b, "contentBlockStop", `{"contentBlockIndex":0}`)
	b = frame(t, b, "messageStop", `{"stopReason":"end_turn"}`)
	return frame(t, b, "metadata", `{"usage":{"inputTokens":9,"outputTokens":4,"totalTokens":13},"metrics":{"latencyMs":5}}`)
}

// TestBedrockClientPassThrough: a Bedrock client's converse-stream to a
// Bedrock provider passes through unchanged (model in the path, none in
// the body) and the ledger gets the usage of the metadata event.
func TestBedrockClientPassThrough(t *testing.T) {
	stream := converseStream(t, true)
	up := &fakeUpstream{}
	up.respond = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		_, _ = w.Write(stream)
	}
	g, l := pathGateway(t, dialects.Bedrock, "anthropic.claude-3-haiku-20240307-v1:0", up)
	body := `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":50}}`
	rec := servePath(t, g, "/model/m/converse-stream", body, map[string]string{"X-Amz-Security-Token": "client-session", "Authorization": "AWS4-HMAC-SHA256 Credential=x"})
	if rec.Code != 200 || rec.Body.String() != string(stream) {
		t.Fatalf("%d %q", rec.Code, rec.Body)
	}
	r := up.got
	if r.URL.Path != "/model/anthropic.claude-3-haiku-20240307-v1:0/converse-stream" || r.URL.RawQuery != "" {
		t.Errorf("upstream path %q %q", r.URL.Path, r.URL.RawQuery)
	}
	if string(up.body) != body {
		t.Errorf("body changed: %s", up.body)
	}
	if r.Header.Get("X-Amz-Security-Token") != "" || r.Header.Get("Authorization") != "Bearer sk-up" {
		t.Errorf("credentials: %v", r.Header)
	}
	if e := lastEntry(t, l); e.Input != 9 || e.Output != 4 || !e.Stream || e.Status != 200 {
		t.Errorf("ledger: %+v", e)
	}
}

// TestBedrockStreamCutShort: a Bedrock stream that stops before its end
// gets an exception frame, never a clean-looking end.
func TestBedrockStreamCutShort(t *testing.T) {
	stream := converseStream(t, false)
	up := &fakeUpstream{}
	up.respond = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		_, _ = w.Write(stream)
	}
	g, _ := pathGateway(t, dialects.Bedrock, "m-up", up)
	rec := servePath(t, g, "/model/m/converse-stream", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`, nil)
	var names []string
	var rd dialects.EventStreamReader
	if err := rd.Feed(rec.Body.Bytes(), func(m dialects.EventStreamMessage) { names = append(names, m.Name()) }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 4 || !strings.HasPrefix(names[3], "exception:") {
		t.Errorf("frames: %v", names)
	}
}

// TestOpenAIClientToBedrock: an OpenAI client's streamed request reaches
// a Bedrock provider as a Converse request at converse-stream, and the
// eventstream answer comes back as OpenAI chunks with usage.
func TestOpenAIClientToBedrock(t *testing.T) {
	stream := converseStream(t, true)
	up := &fakeUpstream{}
	up.respond = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		_, _ = w.Write(stream)
	}
	g, l := pathGateway(t, dialects.Bedrock, "arn:aws:bedrock:us-east-1:1:inference-profile/us.m", up)
	rec := servePath(t, g, "/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, nil)
	out := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(out, `"content":"Hel"`) || !strings.Contains(out, `"prompt_tokens":9`) || !strings.HasSuffix(out, "data: [DONE]\n\n") {
		t.Fatalf("%d %s", rec.Code, out)
	}
	r := up.got
	if r.URL.Path != "/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.m/converse-stream" ||
		r.URL.RawPath != "/model/arn:aws:bedrock:us-east-1:1:inference-profile%2Fus.m/converse-stream" {
		t.Errorf("upstream path %q raw %q", r.URL.Path, r.URL.RawPath)
	}
	if gjson.GetBytes(up.body, "messages.0.content.0.text").Str != "hi" || gjson.GetBytes(up.body, "model").Exists() {
		t.Errorf("converse body: %s", up.body)
	}
	if e := lastEntry(t, l); e.Input != 9 || e.Output != 4 {
		t.Errorf("ledger: %+v", e)
	}
}

// TestBedrockClientToOpenAI: a Bedrock client's converse request is
// answered by an OpenAI provider, in Converse's shape.
func TestBedrockClientToOpenAI(t *testing.T) {
	up := &fakeUpstream{}
	up.respond = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"c1","object":"chat.completion","model":"m-up","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}`))
	}
	g, _ := pathGateway(t, dialects.OpenAI, "m-up", up)
	rec := servePath(t, g, "/model/m/converse", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`, nil)
	out := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(out, `"text":"Hello"`) || !strings.Contains(out, `"stopReason":"end_turn"`) || !strings.Contains(out, `"inputTokens":5`) {
		t.Fatalf("%d %s", rec.Code, out)
	}
	if got := string(up.body); !strings.Contains(got, `"model":"m-up"`) || strings.Contains(got, `"stream":true`) {
		t.Errorf("openai body: %s", got)
	}
	// An unknown model is a 404 in Bedrock's terms.
	rec = servePath(t, g, "/model/nope/converse", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`, nil)
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"message"`) {
		t.Errorf("unknown model: %d %s", rec.Code, rec.Body)
	}
}

// TestBedrockErrorTypeHeader: Bedrock names its exception only in the
// X-Amzn-Errortype header; a ModelErrorException (424) reaches an OpenAI
// client as a 502 that names it, and counts as the target's failure.
func TestBedrockErrorTypeHeader(t *testing.T) {
	up := &fakeUpstream{}
	up.respond = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-Errortype", "ModelErrorException:http://internal.amazon.com/coral/com.amazon.bedrock/")
		w.WriteHeader(http.StatusFailedDependency)
		_, _ = w.Write([]byte(`{"message":"Model failed to process the request"}`))
	}
	g, _ := pathGateway(t, dialects.Bedrock, "m-up", up)
	rec := servePath(t, g, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil)
	msg := gjson.Get(rec.Body.String(), "error.message").Str
	if rec.Code != http.StatusBadGateway || !strings.Contains(msg, "ModelErrorException") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	if failureOf(http.StatusFailedDependency) != failTarget {
		t.Error("a 424 does not move on to the next target")
	}
}

// TestGeminiStreamNeedsAltSSE: streamGenerateContent without alt=sse (a
// JSON array stream, which the gateway does not serve) is a clear 400 in
// Gemini's envelope; with it, the client is served.
func TestGeminiStreamNeedsAltSSE(t *testing.T) {
	up := &fakeUpstream{}
	up.respond = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hi\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1}}\r\n\r\n"))
	}
	g, l := pathGateway(t, dialects.Gemini, "gemini-up", up)
	body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	rec := servePath(t, g, "/v1beta/models/m:streamGenerateContent", body, nil)
	if rec.Code != 400 || gjson.Get(rec.Body.String(), "error.status").Str != "INVALID_ARGUMENT" {
		t.Errorf("without alt=sse: %d %s", rec.Code, rec.Body)
	}
	rec = servePath(t, g, "/v1beta/models/m:streamGenerateContent?alt=sse", body, map[string]string{"X-Goog-Api-Key": "client-key"})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"text":"Hi"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	r := up.got
	if r.URL.Path != "/v1beta/models/gemini-up:streamGenerateContent" || r.URL.RawQuery != "alt=sse" || r.Header.Get("X-Goog-Api-Key") != "sk-up" {
		t.Errorf("upstream %s?%s key %q", r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Goog-Api-Key"))
	}
	if e := lastEntry(t, l); e.Input != 3 || e.Output != 1 || !e.Stream {
		t.Errorf("ledger %+v", e)
	}
}
