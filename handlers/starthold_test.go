package handlers

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/routing"
)

// Streams that fail after their 200, before any content: the failure
// stays with the gateway (startHold), which retries and falls back as
// for an error status; the client sees one clean answer.

const (
	antStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"x-up\",\"content\":[],\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n"
	antPing  = "event: ping\ndata: {\"type\": \"ping\"}\n\n"
	antBlock = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
	antText  = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"
	antEnd   = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	antOverloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
)

// sseUpstream answers 200 with a stream written event by event, each
// flushed, then returns end's result.
func sseUpstream(ct string, events []string, end func() error) *scripted {
	return upstream(func(w http.ResponseWriter, _ *http.Request, _ int) error {
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(200)
		for _, ev := range events {
			_, _ = io.WriteString(w, ev)
			_ = http.NewResponseController(w).Flush()
		}
		if end != nil {
			return end()
		}
		return nil
	})
}

func antMessages(model string) string {
	return `{"model":"` + model + `","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"say hello"}]}`
}

func TestStreamFailingFirstFallsBack(t *testing.T) {
	good := func() *scripted {
		return sseUpstream("text/event-stream", []string{antStart, antBlock, antPing, antText, antEnd}, nil)
	}
	cases := []struct {
		name   string
		pa     *scripted
		path   string
		body   string
		client dialects.Dialect
	}{
		{"anthropic overloaded after its preamble, pass-through",
			sseUpstream("text/event-stream", []string{antStart, antBlock, antPing, antOverloaded}, nil),
			"/v1/messages", antMessages("a"), dialects.Anthropic},
		{"anthropic overloaded, translated for an OpenAI client",
			sseUpstream("text/event-stream", []string{antStart, antOverloaded}, nil),
			"/v1/chat/completions", chatStream("a"), dialects.OpenAI},
		{"preamble then the stream ends",
			sseUpstream("text/event-stream", []string{antStart, antPing}, nil),
			"/v1/messages", antMessages("a"), dialects.Anthropic},
		{"preamble then the connection breaks (reverse_proxy's abort)",
			sseUpstream("text/event-stream", []string{antStart, antPing}, func() error { panic(http.ErrAbortHandler) }),
			"/v1/messages", antMessages("a"), dialects.Anthropic},
		{"preamble then the connection breaks, translated",
			sseUpstream("text/event-stream", []string{antStart}, func() error { return caddyhttp.Error(502, io.ErrUnexpectedEOF) }),
			"/v1/chat/completions", chatStream("a"), dialects.OpenAI},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pb := good()
			e := newFBEnv(t, []fbTarget{
				{provider: "pa", dialect: "anthropic", model: "a", up: c.pa},
				{provider: "pb", dialect: "anthropic", model: "b", up: pb},
			}, map[string][]string{"a": {"b"}})
			rec, p := e.serveCtx(t, nil, c.path, c.body, nil)
			if p != nil {
				t.Fatalf("panicked: %v", p)
			}
			body := rec.Body.String()
			if rec.Code != 200 || strings.Contains(body, "verloaded") || strings.Contains(body, "error") || !strings.Contains(body, "Hello") {
				t.Fatalf("not one clean answer: %d %q", rec.Code, body)
			}
			if c.client == dialects.Anthropic && (strings.Count(body, "event: message_start") != 1 || !strings.HasSuffix(body, antEnd)) {
				t.Errorf("preamble of the failed attempt reached the client, or the answer is not whole: %q", body)
			}
			if c.client == dialects.OpenAI && !strings.HasSuffix(body, "data: [DONE]\n\n") {
				t.Errorf("OpenAI stream not whole: %q", body)
			}
			// Retried once (transient), then the fallback.
			checkCalls(t, map[string]*scripted{"pa": c.pa, "pb": pb}, map[string]int{"pa": 2, "pb": 1})
			checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Attempts": "3", "X-Llm-Fallback": "1", "Content-Type": "text/event-stream"})
			if en := e.lastEntry(t); en.Status != 200 || en.ErrorKind != "" || en.Provider != "pb" || en.Attempts != 3 || en.Output != 4 {
				t.Errorf("ledger %+v", en)
			}
		})
	}
}

// TestStreamFailingFirstOnlyTarget: with nowhere else to go, the client
// gets the failure as an error answer in its own dialect and status
// (which SDKs retry), never a 200 stream holding only an error.
func TestStreamFailingFirstOnlyTarget(t *testing.T) {
	pa := sseUpstream("text/event-stream", []string{antStart, antPing, antOverloaded}, nil)
	e := newFBEnv(t, []fbTarget{{provider: "pa", dialect: "anthropic", model: "a", up: pa}}, nil)
	e.g.Router.BreakerThreshold = 2

	rec, _ := e.serveCtx(t, nil, "/v1/messages", antMessages("a"), nil)
	if rec.Code != 529 || gjson.Get(rec.Body.String(), "error.type").Str != "overloaded_error" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("anthropic client: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
	checkContentLength(t, rec)
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "X-Llm-Attempts": "2"})
	if en := e.lastEntry(t); en.Status != 529 || en.ErrorKind != "upstream_status" {
		t.Errorf("ledger %+v", en)
	}
	if st, _ := e.g.Router.Breakers.State("pa", "a"); st != routing.BreakerOpen {
		t.Errorf("failed starts are not counted against the provider: breaker %s", st)
	}

	// An OpenAI client, translated: 503 (Anthropic's 529 restated) in
	// OpenAI's envelope.
	pa2 := sseUpstream("text/event-stream", []string{antStart, antOverloaded}, nil)
	e = newFBEnv(t, []fbTarget{{provider: "pa", dialect: "anthropic", model: "a", up: pa2}}, nil)
	e.g.Retries = 0
	rec = e.serve(t, chatStream("a"))
	if rec.Code != 503 || gjson.Get(rec.Body.String(), "error.message").Str != "provider error: Overloaded" {
		t.Errorf("openai client: %d %q", rec.Code, rec.Body)
	}
	checkContentLength(t, rec)

	// Pass-through OpenAI whose first event is an error.
	pa3 := sseUpstream("text/event-stream", []string{"data: {\"error\":{\"message\":\"rate limited\",\"type\":\"rate_limit_error\"}}\n\n"}, nil)
	e = newFBEnv(t, []fbTarget{{provider: "pa", dialect: "openai", model: "a", up: pa3}}, nil)
	e.g.Retries = 0
	rec = e.serve(t, chatStream("a"))
	if rec.Code != 429 || gjson.Get(rec.Body.String(), "error.type").Str != "rate_limit_error" {
		t.Errorf("openai pass-through: %d %q", rec.Code, rec.Body)
	}
}

// TestStreamFailingAfterContent: once content has reached the client, an
// error event passes to it as it came and nothing falls back.
func TestStreamFailingAfterContent(t *testing.T) {
	pa := sseUpstream("text/event-stream", []string{antStart, antBlock, antText, antOverloaded}, nil)
	pb := sseUpstream("text/event-stream", []string{antStart, antBlock, antText, antEnd}, nil)
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "anthropic", model: "a", up: pa},
		{provider: "pb", dialect: "anthropic", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	rec, _ := e.serveCtx(t, nil, "/v1/messages", antMessages("a"), nil)
	if want := antStart + antBlock + antText + antOverloaded; rec.Code != 200 || rec.Body.String() != want {
		t.Errorf("%d %q, want %q", rec.Code, rec.Body, want)
	}
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 0})
}

// TestStreamFailingFirstBedrock: Bedrock's exception frame after
// messageStart, on the pass-through path (binary eventstream).
func TestStreamFailingFirstBedrock(t *testing.T) {
	frame := func(typ, payload string, exception bool) string {
		var b []byte
		var err error
		if exception {
			b, err = dialects.AppendEventStreamException(nil, typ, []byte(payload))
		} else {
			b, err = dialects.AppendEventStreamEvent(nil, typ, []byte(payload))
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	start := frame("messageStart", `{"role":"assistant"}`, false)
	pa := sseUpstream("application/vnd.amazon.eventstream", []string{start, frame("throttlingException", `{"message":"Too many requests"}`, true)}, nil)
	okStream := []string{start, frame("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hello"}}`, false),
		frame("contentBlockStop", `{"contentBlockIndex":0}`, false), frame("messageStop", `{"stopReason":"end_turn"}`, false),
		frame("metadata", `{"usage":{"inputTokens":9,"outputTokens":4,"totalTokens":13},"metrics":{"latencyMs":5}}`, false)}
	pb := sseUpstream("application/vnd.amazon.eventstream", okStream, nil)
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "bedrock", model: "a", up: pa},
		{provider: "pb", dialect: "bedrock", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	e.g.Retries = 0
	rec, p := e.serveCtx(t, nil, "/model/a/converse-stream", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`, nil)
	if p != nil {
		t.Fatal(p)
	}
	if rec.Code != 200 || rec.Body.String() != strings.Join(okStream, "") {
		t.Errorf("%d %q", rec.Code, rec.Body)
	}
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 1})
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Fallback": "1"})

	// Alone: the AWS SDK's own exception, from the header and __type.
	pa = sseUpstream("application/vnd.amazon.eventstream", []string{start, frame("throttlingException", `{"message":"Too many requests"}`, true)}, nil)
	e = newFBEnv(t, []fbTarget{{provider: "pa", dialect: "bedrock", model: "a", up: pa}}, nil)
	e.g.Retries = 0
	rec, _ = e.serveCtx(t, nil, "/model/a/converse-stream", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`, nil)
	if rec.Code != 429 || gjson.Get(rec.Body.String(), "__type").Str != "ThrottlingException" {
		t.Errorf("%d %v %q", rec.Code, rec.Header(), rec.Body)
	}
}

// TestStreamHoldBounds: a preamble is held only so long: past its size or
// time bound the stream passes as it comes (and can no longer fall back).
func TestStreamHoldBounds(t *testing.T) {
	serveWith := func(e *fbEnv, rec *httptest.ResponseRecorder, body string) {
		t.Helper()
		req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(body))
		req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
		tr := &Translate{GW: e.g}
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
		})
		if err := (&Route{GW: e.g}).ServeHTTP(rec, req, next); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("time", func(t *testing.T) {
		rec := httptest.NewRecorder()
		var e *fbEnv
		var sentBeforeContent bool
		pa := upstream(func(w http.ResponseWriter, _ *http.Request, _ int) error {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, antStart)
			_ = http.NewResponseController(w).Flush()
			if rec.Body.Len() != 0 {
				t.Error("preamble sent at once")
			}
			e.clk.Advance(startHoldTime + time.Second)
			_, _ = io.WriteString(w, antPing)
			_ = http.NewResponseController(w).Flush()
			sentBeforeContent = rec.Body.String() == antStart+antPing
			_, _ = io.WriteString(w, antBlock+antText+antEnd)
			return nil
		})
		e = newFBEnv(t, []fbTarget{{provider: "pa", dialect: "anthropic", model: "a", up: pa}}, nil)
		serveWith(e, rec, antMessages("a"))
		if !sentBeforeContent {
			t.Error("a preamble held past the time bound was not sent")
		}
		if rec.Code != 200 || rec.Body.String() != antStart+antPing+antBlock+antText+antEnd {
			t.Errorf("%d %q", rec.Code, rec.Body)
		}
	})
	t.Run("size", func(t *testing.T) {
		rec := httptest.NewRecorder()
		pings := strings.Repeat(antPing, startHoldBytes/len(antPing)+1)
		var sent int
		pa := upstream(func(w http.ResponseWriter, _ *http.Request, _ int) error {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, antStart+pings)
			_ = http.NewResponseController(w).Flush()
			sent = rec.Body.Len()
			_, _ = io.WriteString(w, antOverloaded)
			return nil
		})
		pb := sseUpstream("text/event-stream", []string{antStart, antText, antEnd}, nil)
		e := newFBEnv(t, []fbTarget{
			{provider: "pa", dialect: "anthropic", model: "a", up: pa},
			{provider: "pb", dialect: "anthropic", model: "b", up: pb},
		}, map[string][]string{"a": {"b"}})
		serveWith(e, rec, antMessages("a"))
		if sent != len(antStart+pings) {
			t.Errorf("sent %d bytes before the error, want the whole %d of preamble", sent, len(antStart+pings))
		}
		if rec.Code != 200 || !bytes.HasSuffix(rec.Body.Bytes(), []byte(antOverloaded)) {
			t.Errorf("%d %q", rec.Code, rec.Body.Bytes()[max(0, rec.Body.Len()-200):])
		}
		checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 0})
	})
}

// TestStreamHoldOverhead: the wait for a held stream's first content is
// the provider's time, not the gateway's: X-Llm-Overhead-Ms stays the
// gateway's own work, and the upstream latency metric stays the wait
// for headers.
func TestStreamHoldOverhead(t *testing.T) {
	clk := newFakeClock()
	up := slow(clk, 2*time.Second, 1500*time.Millisecond, 200, map[string]string{"Content-Type": "text/event-stream"}, antStart+antPing, antBlock+antText+antEnd)
	e := newFBEnv(t, []fbTarget{{provider: "p", dialect: "anthropic", model: "m", up: up}}, nil)
	e.clk = clk
	e.g.Now = clk.Now
	e.g.Router.Breakers = routing.NewBreakers(clk.Now)
	e.g.OverheadHeader = true
	reg := withMetrics(t, e.g)
	for _, c := range []struct{ path, body string }{
		{"/v1/messages", antMessages("m")}, // pass-through
		{"/v1/chat/completions", chatStream("m")},
	} {
		rec := e.serveWork(t, c.path, c.body, 3*time.Millisecond)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "Hello") {
			t.Fatalf("%s: %d %q", c.path, rec.Code, rec.Body)
		}
		checkHeaders(t, rec, map[string]string{"X-Llm-Overhead-Ms": "3.000"})
	}
	if _, n, sum := series(t, reg, "llmgate_upstream_latency_seconds", nil); n != 2 || !approx(sum, 4) {
		t.Errorf("latency: %d samples, sum %v", n, sum)
	}
}

// syncRecorder is a ResponseWriter the hold's timer may write to while
// the test reads it; flushes are signalled on flushed.
type syncRecorder struct {
	mu      sync.Mutex
	h       http.Header
	code    int
	body    bytes.Buffer
	flushed chan struct{}
}

func (r *syncRecorder) Header() http.Header { return r.h }
func (r *syncRecorder) WriteHeader(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.code == 0 {
		r.code = code
	}
}
func (r *syncRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(p)
}
func (r *syncRecorder) Flush() {
	select {
	case r.flushed <- struct{}{}:
	default:
	}
}
func (r *syncRecorder) snapshot() (int, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.code, r.body.String()
}

// TestStreamHoldTimer: a provider that sends its preamble and then
// stays silent (a reasoning model thinking) has its headers and
// preamble reach the client when the hold's time is up, without
// waiting for its next write.
func TestStreamHoldTimer(t *testing.T) {
	defer func(d time.Duration) { startHoldTime = d }(startHoldTime)
	startHoldTime = 50 * time.Millisecond
	rec := &syncRecorder{h: http.Header{}, flushed: make(chan struct{}, 1)}
	var code int
	var early string
	pa := upstream(func(w http.ResponseWriter, _ *http.Request, _ int) error {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, antStart+antPing)
		_ = http.NewResponseController(w).Flush()
		select {
		case <-rec.flushed:
		case <-time.After(10 * time.Second):
			t.Error("the held preamble was not released by the timer")
		}
		code, early = rec.snapshot()
		_, _ = io.WriteString(w, antBlock+antText+antEnd)
		return nil
	})
	e := newFBEnv(t, []fbTarget{{provider: "pa", dialect: "anthropic", model: "a", up: pa}}, nil)
	req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(antMessages("a")))
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
	tr := &Translate{GW: e.g}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	})
	if err := (&Route{GW: e.g}).ServeHTTP(rec, req, next); err != nil {
		t.Fatal(err)
	}
	if code != 200 || early != antStart+antPing {
		t.Errorf("before the content: %d %q", code, early)
	}
	if c, body := rec.snapshot(); c != 200 || body != antStart+antPing+antBlock+antText+antEnd {
		t.Errorf("%d %q", c, body)
	}
	if rec.Header().Get("X-Llm-Provider") != "pa" || rec.Header().Get("Content-Type") != "text/event-stream" {
		t.Errorf("headers %v", rec.Header())
	}
}
