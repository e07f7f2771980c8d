package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
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

// ---------------------------------------------------------------------
// Test harness: a movable clock shared by the gateway and its breakers,
// scripted upstreams that count their calls, a recording Sleep and an
// in-memory ledger.
// ---------------------------------------------------------------------

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// scripted is an upstream (a provider's reverse proxy) whose n-th call
// (1-based) is answered by fn.
type scripted struct {
	mu     sync.Mutex
	n      int
	paths  []string
	bodies []string
	hdrs   []http.Header
	fn     func(w http.ResponseWriter, r *http.Request, n int) error
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.n++
	n := s.n
	s.paths = append(s.paths, r.URL.Path)
	s.bodies = append(s.bodies, string(b))
	s.hdrs = append(s.hdrs, r.Header.Clone())
	s.mu.Unlock()
	return s.fn(w, r, n)
}

func (s *scripted) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func upstream(fn func(w http.ResponseWriter, r *http.Request, n int) error) *scripted {
	return &scripted{fn: fn}
}

// always answers every call the same way.
func always(status int, hdr map[string]string, body string) *scripted {
	return upstream(func(w http.ResponseWriter, _ *http.Request, _ int) error {
		return reply(w, status, hdr, body)
	})
}

func reply(w http.ResponseWriter, status int, hdr map[string]string, body string) error {
	if _, ok := hdr["Content-Type"]; !ok {
		w.Header().Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
	return nil
}

// refused is what reverse_proxy returns when it cannot connect: an error,
// nothing written.
func refused() error {
	return caddyhttp.Error(http.StatusBadGateway, errors.New("dial tcp 10.9.8.7:443: connect: connection refused"))
}

func openAIAnswer(content string, in, out int) string {
	return fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"x-up","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
		content, in, out, in+out)
}

func anthropicAnswer(text string, in, out int) string {
	return fmt.Sprintf(`{"id":"msg_01","type":"message","role":"assistant","model":"x-up","content":[{"type":"text","text":%q}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":%d}}`,
		text, in, out)
}

const sseChunk = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"

// fbTarget declares one model, its provider and the provider's upstream.
type fbTarget struct {
	provider, dialect, model string
	prices                   routing.Prices
	tiers                    []routing.Tier
	contextWindow            int
	caps                     []routing.Capability
	noKey                    bool
	up                       *scripted
}

type fbEnv struct {
	g   *Gateway
	clk *fakeClock
	led *ledger.Ledger

	mu      sync.Mutex
	sleeps  []time.Duration
	onSleep func(ctx context.Context, d time.Duration) error
}

func newFBEnv(tb testing.TB, targets []fbTarget, fallbacks map[string][]string) *fbEnv {
	tb.Helper()
	var provs []*routing.Provider
	var models []*routing.Model
	ups := map[string]caddyhttp.MiddlewareHandler{}
	seen := map[string]bool{}
	for _, tg := range targets {
		if !seen[tg.provider] {
			seen[tg.provider] = true
			u, _ := url.Parse("https://" + tg.provider + ".example.test/v1")
			p := &routing.Provider{Name: tg.provider, Dialect: tg.dialect, URLs: []*url.URL{u}, KeySource: "k", APIKey: "sk-" + tg.provider}
			if tg.noKey {
				p.KeySource, p.APIKey = "{env.LLMGATE_TEST_UNSET_KEY}", ""
			}
			provs = append(provs, p)
		}
		models = append(models, &routing.Model{ID: tg.model, Provider: tg.provider, UpstreamID: tg.model + "-up",
			Prices: tg.prices, Tiers: tg.tiers, ContextWindow: tg.contextWindow, Capabilities: tg.caps})
		if tg.up != nil {
			ups[tg.provider] = tg.up
		}
	}
	c, err := routing.NewCatalog(provs, models, nil)
	if err != nil {
		tb.Fatal(err)
	}
	e := &fbEnv{clk: newFakeClock()}
	g := NewGateway(c, ups, 0, nil)
	g.Now = e.clk.Now
	g.Router.Breakers = routing.NewBreakers(e.clk.Now)
	g.Router.Fallbacks = fallbacks
	g.Sleep = func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		e.sleeps = append(e.sleeps, d)
		hook := e.onSleep
		e.mu.Unlock()
		if hook != nil {
			return hook(ctx, d)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Sleeping moves the gateway's (and the breakers') clock.
		e.clk.Advance(d)
		return nil
	}
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		tb.Fatal(err)
	}
	e.led = ledger.New(db)
	tb.Cleanup(func() { e.led.Close(); _ = db.Close() })
	g.AttachLedger(e.led)
	e.g = g
	return e
}

func (e *fbEnv) slept() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Duration(nil), e.sleeps...)
}

func (e *fbEnv) entries(tb testing.TB) []ledger.Entry {
	tb.Helper()
	var out []ledger.Entry
	if err := e.led.Each(time.Time{}, time.Time{}, func(en ledger.Entry) error { out = append(out, en); return nil }); err != nil {
		tb.Fatal(err)
	}
	return out
}

func (e *fbEnv) lastEntry(tb testing.TB) ledger.Entry {
	tb.Helper()
	es := e.entries(tb)
	if len(es) == 0 {
		tb.Fatal("no ledger entry")
	}
	return es[len(es)-1]
}

// serveCtx sends one request through llm_route → llm_translate → the
// provider's upstream, as serve does, and returns what the client got and
// what Route.ServeHTTP panicked with (nil when it returned).
func (e *fbEnv) serveCtx(tb testing.TB, ctx context.Context, path, body string, hdr map[string]string) (rec *httptest.ResponseRecorder, panicked any) {
	tb.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	if ctx != nil {
		req = req.WithContext(ctx)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return e.serveReq(tb, req)
}

// serveReq sends req through llm_route → llm_translate → the provider's
// upstream.
func (e *fbEnv) serveReq(tb testing.TB, req *http.Request) (rec *httptest.ResponseRecorder, panicked any) {
	tb.Helper()
	rec = httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
	route := &Route{GW: e.g}
	tr := &Translate{GW: e.g}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	})
	func() {
		defer func() { panicked = recover() }()
		if err := route.ServeHTTP(rec, req, next); err != nil {
			tb.Errorf("Route.ServeHTTP returned %v", err)
		}
	}()
	return rec, panicked
}

func (e *fbEnv) serve(tb testing.TB, body string) *httptest.ResponseRecorder {
	tb.Helper()
	rec, p := e.serveCtx(tb, nil, "/v1/chat/completions", body, nil)
	if p != nil {
		tb.Fatalf("Route.ServeHTTP panicked: %v", p)
	}
	return rec
}

func chat(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":"say hello"}]}`
}

func chatStream(model string) string {
	return `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"say hello"}]}`
}

// checkHeaders compares the x-llm-* headers (and any other listed).
func checkHeaders(tb testing.TB, rec *httptest.ResponseRecorder, want map[string]string) {
	tb.Helper()
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			tb.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

func checkContentLength(tb testing.TB, rec *httptest.ResponseRecorder) {
	tb.Helper()
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
		tb.Errorf("Content-Length %q for a body of %d bytes", cl, rec.Body.Len())
	}
}

func checkCalls(tb testing.TB, ups map[string]*scripted, want map[string]int) {
	tb.Helper()
	for name, n := range want {
		if got := ups[name].calls(); got != n {
			tb.Errorf("upstream %s called %d times, want %d", name, got, n)
		}
	}
}

// regression fails a test that guards against a defect found in review
// (truncated answers released, probes left taken, aborts not counted,
// the gateway's own 400s blamed on providers, Retry-After overflow).
func regression(tb testing.TB, format string, args ...any) {
	tb.Helper()
	tb.Fatalf("regression: "+format, args...)
}

// ---------------------------------------------------------------------
// 1. Classification and helpers.
// ---------------------------------------------------------------------

func TestFailureOfTable(t *testing.T) {
	cases := map[int]failure{
		200: failNone, 201: failNone, 204: failNone, 301: failNone,
		408: failTransient, 409: failTransient, 429: failTransient,
		500: failTransient, 502: failTransient, 503: failTransient, 504: failTransient, 529: failTransient, 599: failTransient,
		501: failNone, 505: failNone,
		400: failNone, 402: failNone, 413: failNone, 422: failNone,
		401: failTarget, 403: failTarget, 404: failTarget,
	}
	for status, want := range cases {
		if got := failureOf(status); got != want {
			t.Errorf("failureOf(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		hdr  map[string]string
		want time.Duration
	}{
		{"absent", nil, 0},
		{"seconds", map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{"seconds with spaces", map[string]string{"Retry-After": "  3 "}, 3 * time.Second},
		{"fractional", map[string]string{"Retry-After": "1.5"}, 1500 * time.Millisecond},
		{"zero", map[string]string{"Retry-After": "0"}, 0},
		{"negative", map[string]string{"Retry-After": "-4"}, 0},
		{"http date", map[string]string{"Retry-After": "Sat, 01 Mar 2025 12:00:30 GMT"}, 30 * time.Second},
		{"http date past", map[string]string{"Retry-After": "Sat, 01 Mar 2025 11:59:00 GMT"}, 0},
		{"http date now", map[string]string{"Retry-After": "Sat, 01 Mar 2025 12:00:00 GMT"}, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"ms", map[string]string{"retry-after-ms": "250"}, 250 * time.Millisecond},
		{"fractional ms", map[string]string{"retry-after-ms": "1.5"}, 1500 * time.Microsecond},
		{"ms wins", map[string]string{"retry-after-ms": "1500", "Retry-After": "10"}, 1500 * time.Millisecond},
		{"ms wins over a date", map[string]string{"retry-after-ms": "20", "Retry-After": "Sat, 01 Mar 2025 12:00:30 GMT"}, 20 * time.Millisecond},
		{"bad ms falls back", map[string]string{"retry-after-ms": "abc", "Retry-After": "2"}, 2 * time.Second},
		{"zero ms falls back", map[string]string{"retry-after-ms": "0", "Retry-After": "2"}, 2 * time.Second},
		{"garbage both", map[string]string{"retry-after-ms": "x", "Retry-After": "y"}, 0},
	}
	for _, c := range cases {
		h := http.Header{}
		for k, v := range c.hdr {
			h.Set(k, v)
		}
		if got := retryAfter(h, now); got != c.want {
			t.Errorf("%s: retryAfter(%v) = %v, want %v", c.name, c.hdr, got, c.want)
		}
	}
}

// TestRetryAfterHugeValue: a Retry-After too large for a time.Duration
// must not turn into a negative wait (which would retry at once instead
// of skipping the target).
func TestRetryAfterHugeValue(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{"1e10", "99999999999", "1e300", "Inf"} {
		for _, name := range []string{"Retry-After", "Retry-After-Ms"} {
			h := http.Header{}
			h.Set(name, v)
			if name == "Retry-After-Ms" && v == "1e10" {
				continue // 1e10 ms fits a Duration
			}
			if got := retryAfter(h, now); got < 0 {
				regression(t, "retryAfter(%s: %s) = %v: the float→Duration conversion overflows to a negative wait (attempt.go retryAfter)", name, v, got)
			}
		}
	}
}

func TestRetryBackoffBounds(t *testing.T) {
	base := 250 * time.Millisecond
	for n := 0; n <= 12; n++ {
		d := base << min(n, 10)
		lo, hi := time.Duration(float64(d)*0.8), time.Duration(float64(d)*1.2)
		distinct := map[time.Duration]bool{}
		for range 300 {
			got := backoff(base, n)
			if got < lo || got > hi {
				t.Fatalf("backoff(%v, %d) = %v, want within [%v, %v]", base, n, got, lo, hi)
			}
			distinct[got] = true
		}
		if len(distinct) < 10 {
			t.Errorf("backoff(%v, %d): only %d distinct values in 300: no jitter?", base, n, len(distinct))
		}
	}
	// Capped at 2^10.
	if got := backoff(time.Millisecond, 50); got < 819*time.Millisecond || got > 1229*time.Millisecond {
		t.Errorf("backoff(1ms, 50) = %v, want ≈1.024s ±20%%", got)
	}
}

func TestHeaderSafe(t *testing.T) {
	cases := []struct{ in, want string }{
		{"model m requested", "model m requested"},
		{"alias cheap → m", "alias cheap -> m"},
		{`auto: standard ("implémente" suggests standard work)`, `auto: standard ("impl\u00e9mente" suggests standard work)`},
		{"«répare»", `\u00abr\u00e9pare\u00bb`},
		{"😀", `\U0001f600`},
		{"a\tb\nc\rd\x00e", "a b c d e"},
		{"", ""},
	}
	for _, c := range cases {
		if got := headerSafe(c.in); got != c.want {
			t.Errorf("headerSafe(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	exact := strings.Repeat("x", 512)
	if got := headerSafe(exact); got != exact {
		t.Errorf("512 bytes changed: %d bytes", len(got))
	}
	long := strings.Repeat("x", 600)
	if got := headerSafe(long); len(got) != 512 || got != strings.Repeat("x", 509)+"..." {
		t.Errorf("600 bytes → %d bytes %q...", len(got), got[len(got)-5:])
	}
	accents := strings.Repeat("é→", 200)
	got := headerSafe(accents)
	if len(got) != 512 || !strings.HasSuffix(got, "...") || !strings.HasPrefix(got, `\u00e9->\u00e9->`) {
		t.Errorf("long accented: %d bytes %q", len(got), got[:20])
	}
	for _, s := range []string{got, headerSafe("a\x1fb→ç"), headerSafe(long)} {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] >= 0x7f {
				t.Errorf("headerSafe output %q has byte %#x", s, s[i])
			}
		}
	}
}

// ---------------------------------------------------------------------
// 2. Fallback after a refused connection, across dialects.
// ---------------------------------------------------------------------

func TestFallbackRefusedConnectionTranslated(t *testing.T) {
	pa := upstream(func(http.ResponseWriter, *http.Request, int) error { return refused() })
	pb := always(200, nil, anthropicAnswer("hello from b", 10, 5))
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", prices: routing.Prices{Input: 1, Output: 2}, up: pa},
		{provider: "pb", dialect: "anthropic", model: "b", prices: routing.Prices{Input: 3, Output: 15}, up: pb},
	}, map[string][]string{"a": {"b"}})
	rec := e.serve(t, chat("a"))
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, body)
	}
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 2, "pb": 1})
	checkHeaders(t, rec, map[string]string{
		"X-Llm-Provider": "pb", "X-Llm-Model": "b", "X-Llm-Attempts": "3", "X-Llm-Fallback": "1",
		"X-Llm-Route-Reason": "model a requested", "X-Llm-Tier": "none", "Content-Type": "application/json",
	})
	checkContentLength(t, rec)
	// The client speaks OpenAI chat: the Anthropic answer is translated.
	if gjson.Get(body, "object").Str != "chat.completion" || gjson.Get(body, "choices.0.message.content").Str != "hello from b" ||
		gjson.Get(body, "choices.0.message.role").Str != "assistant" || gjson.Get(body, "model").Str != "b" ||
		gjson.Get(body, "usage.prompt_tokens").Int() != 10 || gjson.Get(body, "usage.completion_tokens").Int() != 5 {
		t.Errorf("not the translated answer of b: %s", body)
	}
	if gjson.Get(body, "content").Exists() || strings.Contains(body, "msg_01\",\"type\":\"message") {
		t.Errorf("Anthropic shape leaked: %s", body)
	}
	px := gjson.Get(body, "_proxy")
	if px.Get("model").Str != "b" || px.Get("provider").Str != "pb" || px.Get("fallback_index").Int() != 1 ||
		px.Get("attempts").Int() != 3 || px.Get("cost_usd").Float() != 0.000105 {
		t.Errorf("_proxy %s", px.Raw)
	}
	// Nothing of the refused attempts reaches the client.
	if strings.Contains(body, "10.9.8.7") || strings.Contains(body, "refused") {
		t.Errorf("failure leaked: %s", body)
	}
	// One backoff between the two tries of a (default 250ms ±20%), none
	// before the fallback.
	if s := e.slept(); len(s) != 1 || s[0] < 200*time.Millisecond || s[0] > 300*time.Millisecond {
		t.Errorf("sleeps %v, want one of 250ms±20%%", s)
	}
	// b got an Anthropic request for its upstream model, with its key.
	if pb.paths[0] != "/v1/messages" || gjson.Get(pb.bodies[0], "model").Str != "b-up" ||
		pb.hdrs[0].Get("X-Api-Key") != "sk-pb" || gjson.Get(pb.bodies[0], "messages.0.content").String() == "" {
		t.Errorf("b's request: %s %s %v", pb.paths[0], pb.bodies[0], pb.hdrs[0])
	}
	en := e.lastEntry(t)
	if en.Status != 200 || en.Provider != "pb" || en.Model != "b" || en.Attempts != 3 || !en.Fallback || en.ErrorKind != "" ||
		en.Input != 10 || en.Output != 5 || en.CostUSD != 0.000105 {
		t.Errorf("ledger %+v", en)
	}
	if st, _ := e.g.Router.Breakers.State("pa", "a"); st != routing.BreakerClosed {
		t.Errorf("breaker of a after 2 failures (threshold 5): %s", st)
	}
}

func TestFallbackAllUnreachable(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"refused", refused(), 502, "provider pb could not be reached"},
		{"timeout", caddyhttp.Error(http.StatusGatewayTimeout, errors.New("dial tcp 10.9.8.7:443: i/o timeout")), 504, "provider pb timed out"},
		{"plain error", errors.New("dial tcp 10.9.8.7:443: boom"), 502, "provider pb could not be reached"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fail := func(http.ResponseWriter, *http.Request, int) error { return c.err }
			pa, pb := upstream(fail), upstream(fail)
			e := newFBEnv(t, []fbTarget{
				{provider: "pa", dialect: "openai", model: "a", up: pa},
				{provider: "pb", dialect: "anthropic", model: "b", up: pb},
			}, map[string][]string{"a": {"b"}})
			e.g.Retries = 2
			rec := e.serve(t, chat("a"))
			body := rec.Body.String()
			if rec.Code != c.status || gjson.Get(body, "error.message").Str != c.msg || gjson.Get(body, "error.code").Str != "upstream_error" {
				t.Errorf("%d %s", rec.Code, body)
			}
			if strings.Contains(body, "10.9.8.7") {
				t.Errorf("internal address leaked: %s", body)
			}
			checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 3, "pb": 3})
			checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Model": "b", "X-Llm-Attempts": "6", "X-Llm-Fallback": "1"})
			checkContentLength(t, rec)
			if s := e.slept(); len(s) != 4 {
				t.Errorf("sleeps %v, want 2 per target", s)
			} else {
				for i, d := range s {
					base := 250 * time.Millisecond << (i % 2)
					if d < base*8/10 || d > base*12/10 {
						t.Errorf("sleep %d = %v, want %v ±20%%", i, d, base)
					}
				}
			}
			if en := e.lastEntry(t); en.Status != c.status || en.ErrorKind != "upstream_unreachable" || en.Attempts != 6 || !en.Fallback {
				t.Errorf("ledger %+v", en)
			}
		})
	}
}

// ---------------------------------------------------------------------
// 3. Retry-After.
// ---------------------------------------------------------------------

func TestRetryAfterWithinMaxWaitRetriesSameTarget(t *testing.T) {
	for _, c := range []struct {
		name string
		hdr  map[string]string
		want time.Duration
	}{
		{"Retry-After", map[string]string{"Retry-After": "1"}, time.Second},
		{"retry-after-ms", map[string]string{"retry-after-ms": "1500", "Retry-After": "2"}, 1500 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			pa := upstream(func(w http.ResponseWriter, _ *http.Request, n int) error {
				if n == 1 {
					return reply(w, 429, c.hdr, `{"error":{"message":"slow down","type":"rate_limit_error"}}`)
				}
				return reply(w, 200, nil, openAIAnswer("from a", 3, 4))
			})
			pb := always(200, nil, openAIAnswer("from b", 3, 4))
			e := newFBEnv(t, []fbTarget{
				{provider: "pa", dialect: "openai", model: "a", up: pa},
				{provider: "pb", dialect: "openai", model: "b", up: pb},
			}, map[string][]string{"a": {"b"}})
			e.g.Retries, e.g.MaxRetryWait = 1, 5*time.Second
			rec := e.serve(t, chat("a"))
			if rec.Code != 200 || gjson.Get(rec.Body.String(), "choices.0.message.content").Str != "from a" {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if s := e.slept(); len(s) != 1 || s[0] != c.want {
				t.Errorf("sleeps %v, want [%v]", s, c.want)
			}
			checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 2, "pb": 0})
			checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "X-Llm-Attempts": "2", "X-Llm-Fallback": "0", "Retry-After": "", "Retry-After-Ms": ""})
			if strings.Contains(rec.Body.String(), "slow down") {
				t.Errorf("429 body leaked: %s", rec.Body)
			}
			// The wait has passed and the success closed the breaker.
			if why, _, _ := e.g.Router.Breakers.Peek("pa", "a"); why != "" {
				t.Errorf("a still kept out: %s", why)
			}
		})
	}
}

func TestRetryAfterBeyondMaxWaitFallsBack(t *testing.T) {
	pa := upstream(func(w http.ResponseWriter, _ *http.Request, n int) error {
		if n == 1 {
			return reply(w, 429, map[string]string{"Retry-After": "60"}, `{"error":{"message":"rate limited"}}`)
		}
		return reply(w, 200, nil, openAIAnswer("from a", 1, 1))
	})
	pb := always(200, nil, openAIAnswer("from b", 1, 1))
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "openai", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	e.g.Retries, e.g.MaxRetryWait = 1, 5*time.Second
	start := e.clk.Now()

	rec := e.serve(t, chat("a"))
	if rec.Code != 200 || gjson.Get(rec.Body.String(), "choices.0.message.content").Str != "from b" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if s := e.slept(); len(s) != 0 {
		t.Errorf("slept %v for a Retry-After beyond MaxRetryWait", s)
	}
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 1})
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Model": "b", "X-Llm-Attempts": "2", "X-Llm-Fallback": "1", "Retry-After": ""})

	why, kind, until := e.g.Router.Breakers.Peek("pa", "a")
	if !strings.Contains(why, "Retry-After") || kind != routing.SkipWaiting || !until.Equal(start.Add(60*time.Second)) {
		t.Fatalf("Peek after Retry-After 60: %q %q %v", why, kind, until)
	}
	if st, _ := e.g.Router.Breakers.State("pa", "a"); st != routing.BreakerClosed {
		t.Errorf("one 429 opened the circuit: %s", st)
	}
	// The provider's other models are not concerned.
	if why, _, _ := e.g.Router.Breakers.Peek("pa", "other"); why != "" {
		t.Errorf("another model of pa kept out: %s", why)
	}

	// Within the minute a is left out of the plan.
	e.clk.Advance(60*time.Second - time.Millisecond)
	rec = e.serve(t, chat("a"))
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 2})
	// b is still reported as a fallback (its rank in the plan), though
	// it was the first target tried.
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Attempts": "1", "X-Llm-Fallback": "1"})
	plan, _, perr := e.g.plan(dialects.OpenAI, dialects.Request{Model: "a"}, []byte(chat("a")), "", "")
	if perr != nil || len(plan.Skipped) != 1 || plan.Skipped[0].Model != "a" || plan.Skipped[0].Kind != routing.SkipWaiting ||
		len(plan.Candidates) != 1 || plan.Candidates[0].Model.ID != "b" || plan.Candidates[0].Rank != 1 {
		t.Errorf("plan at 59.999s: %v %+v", perr, plan)
	}

	// Once the clock reaches the minute, a is tried again.
	e.clk.Advance(time.Millisecond)
	if why, _, _ := e.g.Router.Breakers.Peek("pa", "a"); why != "" {
		t.Errorf("a still kept out at 60s: %s", why)
	}
	rec = e.serve(t, chat("a"))
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 2, "pb": 2})
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "X-Llm-Fallback": "0"})
}

// TestRetryAfterOnlyTarget: with nowhere to fall back to the client gets
// the 429 as it came, then 503s that say when to come back.
func TestRetryAfterOnlyTarget(t *testing.T) {
	pa := always(429, map[string]string{"Retry-After": "60", "X-Ratelimit-Remaining-Requests": "0"}, `{"error":{"message":"rate limited","type":"rate_limit_error"}}`)
	e := newFBEnv(t, []fbTarget{{provider: "pa", dialect: "openai", model: "a", up: pa}}, nil)
	rec := e.serve(t, chat("a"))
	if rec.Code != 429 || rec.Body.String() != `{"error":{"message":"rate limited","type":"rate_limit_error"}}` {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	checkHeaders(t, rec, map[string]string{"Retry-After": "60", "X-Ratelimit-Remaining-Requests": "0", "X-Llm-Provider": "pa", "X-Llm-Attempts": "1"})
	checkContentLength(t, rec)
	if en := e.lastEntry(t); en.Status != 429 || en.ErrorKind != "upstream_status" {
		t.Errorf("ledger %+v", en)
	}

	e.clk.Advance(30 * time.Second)
	rec = e.serve(t, chat("a"))
	if rec.Code != 503 || gjson.Get(rec.Body.String(), "error.code").Str != "provider_unavailable" || rec.Header().Get("Retry-After") != "30" {
		t.Errorf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	if pa.calls() != 1 {
		t.Errorf("a called %d times while waiting", pa.calls())
	}
}

// ---------------------------------------------------------------------
// 4. Transient failures everywhere: the last one is replayed.
// ---------------------------------------------------------------------

func TestFallbackLastFailureReplayed(t *testing.T) {
	openai500 := func() *scripted {
		return always(500, map[string]string{"X-Secret-A": "a-header"}, `{"error":{"message":"pa exploded secret-A","type":"server_error"}}`)
	}
	anthropic529 := func() *scripted {
		return always(529, map[string]string{"X-Secret-B": "b-header"}, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded secret-B"}}`)
	}
	t.Run("anthropic 529 last", func(t *testing.T) {
		pa, pb := openai500(), anthropic529()
		e := newFBEnv(t, []fbTarget{
			{provider: "pa", dialect: "openai", model: "a", up: pa},
			{provider: "pb", dialect: "anthropic", model: "b", up: pb},
		}, map[string][]string{"a": {"b"}})
		rec := e.serve(t, chat("a"))
		body := rec.Body.String()
		// 529 is Anthropic's; an OpenAI client gets 503, in OpenAI's shape.
		if rec.Code != 503 || gjson.Get(body, "error.message").Str != "provider error: Overloaded secret-B" || gjson.Get(body, "error.type").Str != "api_error" {
			t.Errorf("%d %s", rec.Code, body)
		}
		if strings.Contains(body, "secret-A") || strings.Contains(body, "exploded") || rec.Header().Get("X-Secret-A") != "" {
			t.Errorf("earlier failure leaked: %v %s", rec.Header(), body)
		}
		checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 2, "pb": 2})
		checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Model": "b", "X-Llm-Attempts": "4", "X-Llm-Fallback": "1", "Content-Type": "application/json"})
		checkContentLength(t, rec)
		if s := e.slept(); len(s) != 2 {
			t.Errorf("sleeps %v, want one backoff per target", s)
		}
		if en := e.lastEntry(t); en.Status != 503 || en.ErrorKind != "upstream_status" || en.Attempts != 4 || !en.Fallback || en.Provider != "pb" {
			t.Errorf("ledger %+v", en)
		}
	})
	t.Run("openai 500 last", func(t *testing.T) {
		pa, pb := openai500(), anthropic529()
		e := newFBEnv(t, []fbTarget{
			{provider: "pa", dialect: "openai", model: "a", up: pa},
			{provider: "pb", dialect: "anthropic", model: "b", up: pb},
		}, map[string][]string{"b": {"a"}})
		rec := e.serve(t, chat("b"))
		body := rec.Body.String()
		// Same dialect: replayed byte for byte.
		if rec.Code != 500 || body != `{"error":{"message":"pa exploded secret-A","type":"server_error"}}` {
			t.Errorf("%d %s", rec.Code, body)
		}
		if strings.Contains(body, "secret-B") || strings.Contains(body, "Overloaded") || rec.Header().Get("X-Secret-B") != "" {
			t.Errorf("earlier failure leaked: %v %s", rec.Header(), body)
		}
		checkHeaders(t, rec, map[string]string{"X-Secret-A": "a-header", "X-Llm-Provider": "pa", "X-Llm-Attempts": "4", "X-Llm-Fallback": "1"})
		checkContentLength(t, rec)
		checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 2, "pb": 2})
	})
	t.Run("anthropic client keeps 529", func(t *testing.T) {
		pb := anthropic529()
		e := newFBEnv(t, []fbTarget{{provider: "pb", dialect: "anthropic", model: "b", up: pb}}, nil)
		rec, p := e.serveCtx(t, nil, "/v1/messages", `{"model":"b","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, nil)
		if p != nil || rec.Code != 529 || gjson.Get(rec.Body.String(), "error.type").Str != "overloaded_error" || gjson.Get(rec.Body.String(), "_proxy").Exists() {
			t.Errorf("%v %d %s", p, rec.Code, rec.Body)
		}
		checkCalls(t, map[string]*scripted{"pb": pb}, map[string]int{"pb": 2})
	})
}

// ---------------------------------------------------------------------
// 5. Client errors and target errors.
// ---------------------------------------------------------------------

func TestFailureClientErrorNotRetried(t *testing.T) {
	for _, status := range []int{400, 422} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			pa := always(status, nil, `{"error":{"message":"bad parameter temperature","type":"invalid_request_error"}}`)
			pb := always(200, nil, openAIAnswer("from b", 1, 1))
			e := newFBEnv(t, []fbTarget{
				{provider: "pa", dialect: "openai", model: "a", up: pa},
				{provider: "pb", dialect: "openai", model: "b", up: pb},
			}, map[string][]string{"a": {"b"}})
			e.g.Retries = 3
			rec := e.serve(t, chat("a"))
			if rec.Code != status || gjson.Get(rec.Body.String(), "error.message").Str != "bad parameter temperature" {
				t.Errorf("%d %s", rec.Code, rec.Body)
			}
			checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 0})
			checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "X-Llm-Attempts": "1", "X-Llm-Fallback": "0"})
			if s := e.slept(); len(s) != 0 {
				t.Errorf("slept %v", s)
			}
			if gjson.Get(rec.Body.String(), "_proxy").Exists() {
				t.Errorf("_proxy on an error: %s", rec.Body)
			}
			if en := e.lastEntry(t); en.Status != status || en.ErrorKind != "upstream_status" || en.Attempts != 1 {
				t.Errorf("ledger %+v", en)
			}
		})
	}
}

func TestFailureTargetErrorNextTarget(t *testing.T) {
	for _, status := range []int{401, 403, 404} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			pa := always(status, nil, `{"error":{"message":"invalid api key sk-pa"}}`)
			pb := always(200, nil, openAIAnswer("from b", 1, 1))
			e := newFBEnv(t, []fbTarget{
				{provider: "pa", dialect: "openai", model: "a", up: pa},
				{provider: "pb", dialect: "openai", model: "b", up: pb},
			}, map[string][]string{"a": {"b"}})
			e.g.Retries = 3
			rec := e.serve(t, chat("a"))
			if rec.Code != 200 || gjson.Get(rec.Body.String(), "choices.0.message.content").Str != "from b" || strings.Contains(rec.Body.String(), "sk-pa") {
				t.Errorf("%d %s", rec.Code, rec.Body)
			}
			checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 1})
			checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Attempts": "2", "X-Llm-Fallback": "1"})
			if s := e.slept(); len(s) != 0 {
				t.Errorf("slept %v before moving on from a %d", s, status)
			}
		})
	}
	// Translated: the provider's 401 is the gateway's key problem, never
	// the client's (502), but still only after every target failed.
	t.Run("translated 401 last", func(t *testing.T) {
		pb := always(401, nil, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`)
		e := newFBEnv(t, []fbTarget{{provider: "pb", dialect: "anthropic", model: "b", up: pb}}, nil)
		rec := e.serve(t, chat("b"))
		if rec.Code != 502 || !strings.Contains(gjson.Get(rec.Body.String(), "error.message").Str, "refused the gateway's credentials (status 401)") {
			t.Errorf("%d %s", rec.Code, rec.Body)
		}
		checkCalls(t, map[string]*scripted{"pb": pb}, map[string]int{"pb": 1})
	})
}

// ---------------------------------------------------------------------
// 6. Nothing falls back once the answer has begun.
// ---------------------------------------------------------------------

func TestFallbackNotAfterStreamStarted(t *testing.T) {
	streamThen := func(end func() error) *scripted {
		return upstream(func(w http.ResponseWriter, _ *http.Request, _ int) error {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, sseChunk)
			_ = http.NewResponseController(w).Flush()
			return end()
		})
	}
	newEnv := func(pa *scripted) (*fbEnv, *scripted) {
		pb := always(200, map[string]string{"Content-Type": "text/event-stream"}, sseChunk+"data: [DONE]\n\n")
		e := newFBEnv(t, []fbTarget{
			{provider: "pa", dialect: "openai", model: "a", up: pa},
			{provider: "pb", dialect: "openai", model: "b", up: pb},
		}, map[string][]string{"a": {"b"}})
		e.g.Router.BreakerThreshold = 1
		return e, pb
	}

	t.Run("error", func(t *testing.T) {
		pa := streamThen(func() error { return caddyhttp.Error(502, io.ErrUnexpectedEOF) })
		e, pb := newEnv(pa)
		rec := e.serve(t, chatStream("a"))
		body := rec.Body.String()
		if rec.Code != 200 || !strings.HasPrefix(body, sseChunk) || !strings.Contains(body[len(sseChunk):], `data: {"error"`) {
			t.Errorf("%d %q", rec.Code, body)
		}
		checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 0})
		checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "X-Llm-Attempts": "1", "X-Llm-Fallback": "0", "Content-Type": "text/event-stream"})
		if gjson.Get(body, "_proxy").Exists() || strings.Contains(body, "_proxy") {
			t.Errorf("_proxy in a stream: %q", body)
		}
		if st, _ := e.g.Router.Breakers.State("pa", "a"); st != routing.BreakerOpen {
			t.Errorf("a broken stream is not counted: breaker %s", st)
		}
		if en := e.lastEntry(t); en.Status != 200 || en.ErrorKind != "upstream_broken" || en.Attempts != 1 {
			t.Errorf("ledger %+v", en)
		}
	})
	t.Run("abort panic", func(t *testing.T) {
		// reverse_proxy's way: panic(http.ErrAbortHandler).
		pa := streamThen(func() error { panic(http.ErrAbortHandler) })
		e, pb := newEnv(pa)
		rec, p := e.serveCtx(t, nil, "/v1/chat/completions", chatStream("a"), nil)
		if p != http.ErrAbortHandler {
			t.Errorf("panic %v, want http.ErrAbortHandler to reach the server", p)
		}
		if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), sseChunk) {
			t.Errorf("%d %q", rec.Code, rec.Body)
		}
		checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 0})
		if en := e.lastEntry(t); en.Status != 200 || en.ErrorKind != "aborted" || en.Provider != "pa" {
			t.Errorf("ledger %+v", en)
		}
		// As with the error return above, the broken stream is the
		// provider's failure (threshold 1: the breaker opens).
		if st, _ := e.g.Router.Breakers.State("pa", "a"); st != routing.BreakerOpen {
			regression(t, "a stream aborted with http.ErrAbortHandler is not counted against the provider: breaker %s (route.go attempts' recover path skips Breakers.Failure)", st)
		}
	})
	t.Run("abort before any byte", func(t *testing.T) {
		// An abort before anything was committed is an ordinary failure.
		pa := upstream(func(http.ResponseWriter, *http.Request, int) error { panic(http.ErrAbortHandler) })
		e, pb := newEnv(pa)
		e.g.Router.BreakerThreshold = 5
		rec := e.serve(t, chatStream("a"))
		if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), sseChunk) || !strings.Contains(rec.Body.String(), "[DONE]") {
			t.Errorf("%d %q", rec.Code, rec.Body)
		}
		checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 2, "pb": 1})
		checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Attempts": "3", "X-Llm-Fallback": "1"})
	})
}

// TestFallbackTruncatedJSONAnswer: a whole JSON answer kept back for the
// _proxy object has not reached the client when the provider breaks off;
// the client must not get the truncated body as a 200.
func TestFallbackTruncatedJSONAnswer(t *testing.T) {
	partial := `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hel`
	for _, c := range []struct {
		name string
		end  func() error
	}{
		{"abort panic", func() error { panic(http.ErrAbortHandler) }}, // reverse_proxy: body copy failed
		{"error", func() error { return caddyhttp.Error(502, io.ErrUnexpectedEOF) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			pa := upstream(func(w http.ResponseWriter, _ *http.Request, _ int) error {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(200)
				_, _ = io.WriteString(w, partial)
				return c.end()
			})
			pb := always(200, nil, openAIAnswer("from b", 1, 1))
			e := newFBEnv(t, []fbTarget{
				{provider: "pa", dialect: "openai", model: "a", up: pa},
				{provider: "pb", dialect: "openai", model: "b", up: pb},
			}, map[string][]string{"a": {"b"}})
			e.g.Router.BreakerThreshold = 1
			rec, p := e.serveCtx(t, nil, "/v1/chat/completions", chat("a"), nil)
			if p != nil {
				t.Fatalf("panic %v", p)
			}
			if rec.Code == 200 && !json.Valid(rec.Body.Bytes()) {
				st, _ := e.g.Router.Breakers.State("pa", "a")
				regression(t, "truncated JSON answer released as a complete 200 (Content-Length %s, body %q), breaker of pa/a %s, ledger error_kind %q, fallback target called %d times (route.go attempts: aw.wrote && !aw.held while aw.keep)",
					rec.Header().Get("Content-Length"), rec.Body.String(), st, e.lastEntry(t).ErrorKind, pb.calls())
			}
			if rec.Code != 200 || gjson.Get(rec.Body.String(), "choices.0.message.content").Str != "from b" || pb.calls() != 1 {
				t.Errorf("%d %s (b called %d times)", rec.Code, rec.Body, pb.calls())
			}
		})
	}
}

// ---------------------------------------------------------------------
// 7. Breakers end to end.
// ---------------------------------------------------------------------

func TestBreakerEndToEnd(t *testing.T) {
	var probeSaw string
	var e *fbEnv
	pa := upstream(func(w http.ResponseWriter, _ *http.Request, n int) error {
		if n <= 2 {
			return reply(w, 500, nil, `{"error":{"message":"down"}}`)
		}
		// The probe: nobody else may probe meanwhile.
		probeSaw, _, _ = e.g.Router.Breakers.Peek("pa", "a")
		return reply(w, 200, nil, openAIAnswer("a is back", 1, 1))
	})
	pb := always(200, nil, openAIAnswer("from b", 1, 1))
	e = newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "openai", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	e.g.Retries = 0
	e.g.Router.BreakerThreshold, e.g.Router.BreakerCooldown = 2, 30*time.Second
	br := e.g.Router.Breakers
	ups := map[string]*scripted{"pa": pa, "pb": pb}

	rec := e.serve(t, chat("a"))
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Fallback": "1"})
	if st, _ := br.State("pa", "a"); st != routing.BreakerClosed {
		t.Fatalf("after 1 failure: %s", st)
	}
	rec = e.serve(t, chat("a"))
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Fallback": "1"})
	opened := e.clk.Now()
	st, until := br.State("pa", "a")
	if st != routing.BreakerOpen || !until.Equal(opened.Add(30*time.Second)) {
		t.Fatalf("after 2 failures: %s until %v", st, until)
	}
	checkCalls(t, ups, map[string]int{"pa": 2, "pb": 2})

	// Open: a is left out of the plan, b answers at once.
	plan, _, perr := e.g.plan(dialects.OpenAI, dialects.Request{Model: "a"}, []byte(chat("a")), "", "")
	if perr != nil || len(plan.Candidates) != 1 || plan.Candidates[0].Model.ID != "b" || plan.Candidates[0].Rank != 1 || len(plan.Skipped) != 1 ||
		plan.Skipped[0].Model != "a" || plan.Skipped[0].Provider != "pa" || plan.Skipped[0].Kind != routing.SkipBroken {
		t.Fatalf("plan while open: %v %+v", perr, plan)
	}
	rec = e.serve(t, chat("a"))
	if rec.Code != 200 || gjson.Get(rec.Body.String(), "choices.0.message.content").Str != "from b" {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Attempts": "1", "X-Llm-Fallback": "1"})
	if px := gjson.Get(rec.Body.String(), "_proxy"); px.Get("fallback_index").Int() != 1 || px.Get("attempts").Int() != 1 {
		t.Errorf("_proxy while open: %s", px.Raw)
	}
	if en := e.lastEntry(t); !en.Fallback || en.Attempts != 1 || en.Provider != "pb" {
		t.Errorf("ledger while open: %+v", en)
	}
	checkCalls(t, ups, map[string]int{"pa": 2, "pb": 3})

	// Still open one instant before the cooldown ends.
	e.clk.Advance(30*time.Second - time.Nanosecond)
	if st, _ := br.State("pa", "a"); st != routing.BreakerOpen {
		t.Errorf("before the cooldown ends: %s", st)
	}
	e.clk.Advance(time.Nanosecond)
	if st, _ := br.State("pa", "a"); st != routing.BreakerHalfOpen {
		t.Fatalf("after the cooldown: %s", st)
	}
	// One probe goes through and its success closes the breaker.
	rec = e.serve(t, chat("a"))
	if rec.Code != 200 || gjson.Get(rec.Body.String(), "choices.0.message.content").Str != "a is back" {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "X-Llm-Fallback": "0", "X-Llm-Attempts": "1"})
	if probeSaw != "circuit half-open, a probe is already running" {
		t.Errorf("during the probe Peek said %q", probeSaw)
	}
	if st, _ := br.State("pa", "a"); st != routing.BreakerClosed {
		t.Errorf("after a successful probe: %s", st)
	}
	checkCalls(t, ups, map[string]int{"pa": 3, "pb": 3})
	// Closed means the count starts again: one failure does not reopen.
	br.Failure("pa", "a", 2, 30*time.Second)
	if st, _ := br.State("pa", "a"); st != routing.BreakerClosed {
		t.Errorf("one failure after closing: %s", st)
	}
}

func TestBreakerFailedProbeReopens(t *testing.T) {
	pa := always(503, nil, `{"error":{"message":"still down"}}`)
	pb := always(200, nil, openAIAnswer("from b", 1, 1))
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "openai", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	e.g.Retries = 3
	e.g.Router.BreakerThreshold, e.g.Router.BreakerCooldown = 1, 10*time.Second
	br := e.g.Router.Breakers

	// The first failure opens the breaker: the retries are refused by it
	// and the request moves on to b.
	rec := e.serve(t, chat("a"))
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Attempts": "2", "X-Llm-Fallback": "1"})
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 1})
	if st, _ := br.State("pa", "a"); st != routing.BreakerOpen {
		t.Fatalf("%s", st)
	}
	e.clk.Advance(time.Minute)
	probeAt := e.clk.Now()
	rec = e.serve(t, chat("a"))
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Fallback": "1"})
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 2, "pb": 2})
	// The failed probe reopened it for a cooldown from then (the backoff
	// sleep after it moved the clock on a little).
	st, until := br.State("pa", "a")
	if st != routing.BreakerOpen || !until.Equal(probeAt.Add(10*time.Second)) {
		t.Errorf("after a failed probe: %s until %v (probe at %v)", st, until, probeAt)
	}
}

// TestBreakerProbeReleasedAfterAbortedStream: a half-open probe whose
// stream breaks off (reverse_proxy panics with http.ErrAbortHandler) must
// not leave the breaker waiting for a probe that will never report.
func TestBreakerProbeReleasedAfterAbortedStream(t *testing.T) {
	pa := upstream(func(w http.ResponseWriter, _ *http.Request, n int) error {
		if n == 1 {
			return reply(w, 500, nil, `{"error":{"message":"down"}}`)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, sseChunk)
		panic(http.ErrAbortHandler)
	})
	pb := always(200, nil, openAIAnswer("from b", 1, 1))
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "openai", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	e.g.Retries = 0
	e.g.Router.BreakerThreshold, e.g.Router.BreakerCooldown = 1, 10*time.Second
	br := e.g.Router.Breakers
	e.serve(t, chat("a"))
	if st, _ := br.State("pa", "a"); st != routing.BreakerOpen {
		t.Fatalf("%s", st)
	}
	e.clk.Advance(10 * time.Second)
	if _, p := e.serveCtx(t, nil, "/v1/chat/completions", chatStream("a"), nil); p != http.ErrAbortHandler {
		t.Fatalf("panic %v", p)
	}
	if pa.calls() != 2 {
		t.Fatalf("the probe did not run: a called %d times", pa.calls())
	}
	// Long after, a must be tried again (or be open with a deadline).
	e.clk.Advance(time.Hour)
	why, _, until := br.Peek("pa", "a")
	if why == "circuit half-open, a probe is already running" && until.IsZero() {
		regression(t, "the aborted probe is never released: breaker of pa/a stuck half-open (%q) an hour later; route.go attempts' recover path calls neither Breakers.Failure nor Release", why)
	}
	if why != "" {
		t.Errorf("an hour after the aborted probe: %q", why)
	}
}

// TestFailureTranslationErrorNotCountedAgainstProvider: a request the
// gateway cannot translate for a provider (a client error, 400) is not
// the provider's failure: no retry, no breaker count.
func TestFailureTranslationErrorNotCountedAgainstProvider(t *testing.T) {
	pb := always(200, nil, anthropicAnswer("never", 1, 1))
	e := newFBEnv(t, []fbTarget{{provider: "pb", dialect: "anthropic", model: "b", up: pb}}, nil)
	e.g.Retries = 1
	e.g.Router.BreakerThreshold = 2
	bad := `{"model":"b","messages":[{"role":"wizard","content":"hi"}]}`
	rec := e.serve(t, bad)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "unknown message role") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if pb.calls() != 0 {
		t.Errorf("untranslatable request reached the provider")
	}
	st, _ := e.g.Router.Breakers.State("pb", "b")
	if n := len(e.slept()); n > 0 || st != routing.BreakerClosed {
		regression(t, "a client's untranslatable request (400) is retried (%d backoff sleeps, X-Llm-Attempts %s) and counted as provider failures: breaker of pb/b is %s after one bad request (route.go attempts treats every error returned before a write as transient)",
			n, rec.Header().Get("X-Llm-Attempts"), st)
	}
}

// ---------------------------------------------------------------------
// 8. The client goes away.
// ---------------------------------------------------------------------

func TestRetryCancelledDuringSleep(t *testing.T) {
	pa := always(503, nil, `{"error":{"message":"busy"}}`)
	pb := always(200, nil, openAIAnswer("from b", 1, 1))
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "openai", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	e.g.Retries = 3
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.onSleep = func(c context.Context, d time.Duration) error {
		cancel() // the client hangs up while the gateway waits
		<-c.Done()
		return c.Err()
	}
	rec, p := e.serveCtx(t, ctx, "/v1/chat/completions", chat("a"), nil)
	if p != nil {
		t.Fatal(p)
	}
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 0})
	if len(e.slept()) != 1 {
		t.Errorf("sleeps %v", e.slept())
	}
	if rec.Body.Len() != 0 || rec.Header().Get("X-Llm-Provider") != "" || strings.Contains(rec.Body.String(), "busy") {
		t.Errorf("something was written to a gone client: %v %q", rec.Header(), rec.Body)
	}
	if en := e.lastEntry(t); en.Status != 499 || en.ErrorKind != "client_closed" || en.Attempts != 1 {
		t.Errorf("ledger %+v", en)
	}
}

func TestRetryClientGoneDuringAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pa := upstream(func(_ http.ResponseWriter, r *http.Request, _ int) error {
		cancel()
		<-r.Context().Done()
		return caddyhttp.Error(502, r.Context().Err())
	})
	pb := always(200, nil, openAIAnswer("from b", 1, 1))
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "openai", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	e.g.Router.BreakerThreshold = 1
	rec, p := e.serveCtx(t, ctx, "/v1/chat/completions", chat("a"), nil)
	if p != nil {
		t.Fatal(p)
	}
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 0})
	if len(e.slept()) != 0 || rec.Body.Len() != 0 {
		t.Errorf("sleeps %v body %q", e.slept(), rec.Body)
	}
	// Nothing was learned about a.
	if st, _ := e.g.Router.Breakers.State("pa", "a"); st != routing.BreakerClosed {
		t.Errorf("client hang-up counted against the provider: %s", st)
	}
	if en := e.lastEntry(t); en.Status != 499 || en.ErrorKind != "client_closed" {
		t.Errorf("ledger %+v", en)
	}
}

// ---------------------------------------------------------------------
// 9. The _proxy object.
// ---------------------------------------------------------------------

func TestProxyObjectOnOpenAIAnswers(t *testing.T) {
	answer := `{"id":"chatcmpl-9","object":"chat.completion","created":1,"model":"a-up","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":200}}}`
	var e *fbEnv
	pa := upstream(func(w http.ResponseWriter, _ *http.Request, _ int) error {
		e.clk.Advance(1500 * time.Microsecond)
		return reply(w, 200, map[string]string{"Content-Length": strconv.Itoa(len(answer))}, answer)
	})
	e = newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", prices: routing.Prices{Input: 2, Output: 8, CachedInput: 0.5}, tiers: []routing.Tier{routing.TierTrivial}, up: pa},
	}, nil)
	// (1000×2 + 200×0.5 + 300×8) / 1e6
	const wantCost = 0.0045

	t.Run("explicit model", func(t *testing.T) {
		rec := e.serve(t, chat("a"))
		body := rec.Body.String()
		checkContentLength(t, rec)
		if rec.Code != 200 || gjson.Get(body, "choices.0.message.content").Str != "ok" || gjson.Get(body, "usage.total_tokens").Int() != 1500 {
			t.Fatalf("%d %s", rec.Code, body)
		}
		px := gjson.Get(body, "_proxy")
		if px.Get("model").Str != "a" || px.Get("provider").Str != "pa" || px.Get("tier").Str != "none" ||
			px.Get("cost_usd").Float() != wantCost || px.Get("routing_reason").Str != "model a requested" ||
			px.Get("elapsed_ms").Float() != 1.5 || px.Get("fallback_index").Int() != 0 || px.Get("attempts").Int() != 1 {
			t.Errorf("_proxy %s", px.Raw)
		}
		// The rest of the answer is untouched.
		if without := strings.Replace(body, `,"_proxy":`+px.Raw, "", 1); without != answer {
			t.Errorf("answer changed beyond _proxy:\n%s\n%s", without, answer)
		}
		if en := e.lastEntry(t); en.CostUSD != wantCost || en.Input != 1200 || en.CachedInput != 200 || en.Output != 300 || en.LatencyMS != 1.5 {
			t.Errorf("ledger %+v", en)
		}
	})
	t.Run("auto", func(t *testing.T) {
		rec := e.serve(t, `{"model":"auto","messages":[{"role":"user","content":"fix this typo please"}]}`)
		body := rec.Body.String()
		checkContentLength(t, rec)
		px := gjson.Get(body, "_proxy")
		if px.Get("tier").Str != "trivial" || px.Get("routing_reason").Str != `auto: trivial ("typo" suggests trivial work)` ||
			px.Get("model").Str != "a" || px.Get("cost_usd").Float() != wantCost {
			t.Errorf("_proxy %s", px.Raw)
		}
		checkHeaders(t, rec, map[string]string{"X-Llm-Tier": "trivial", "X-Llm-Route-Reason": `auto: trivial ("typo" suggests trivial work)`})
	})
	t.Run("off", func(t *testing.T) {
		e.g.ProxyInfo = false
		defer func() { e.g.ProxyInfo = true }()
		rec := e.serve(t, chat("a"))
		if rec.Body.String() != answer || rec.Header().Get("Content-Length") != strconv.Itoa(len(answer)) {
			t.Errorf("%v %s", rec.Header(), rec.Body)
		}
	})
	t.Run("stream", func(t *testing.T) {
		stream := sseChunk + "data: [DONE]\n\n"
		ps := always(200, map[string]string{"Content-Type": "text/event-stream"}, stream)
		e.g.Upstreams["pa"] = ps
		defer func() { e.g.Upstreams["pa"] = pa }()
		rec := e.serve(t, chatStream("a"))
		if rec.Body.String() != stream || strings.Contains(rec.Body.String(), "_proxy") {
			t.Errorf("%q", rec.Body)
		}
		checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "Content-Type": "text/event-stream"})
	})
}

func TestProxyObjectTranslatedAndOtherClients(t *testing.T) {
	pb := always(200, nil, anthropicAnswer("bonjour", 40, 20))
	e := newFBEnv(t, []fbTarget{
		{provider: "pb", dialect: "anthropic", model: "b", prices: routing.Prices{Input: 3, Output: 15}, up: pb},
	}, nil)
	// OpenAI client, Anthropic provider: translated, with _proxy.
	rec := e.serve(t, chat("b"))
	checkContentLength(t, rec)
	if px := gjson.Get(rec.Body.String(), "_proxy"); px.Get("provider").Str != "pb" || px.Get("cost_usd").Float() != 0.00042 {
		t.Errorf("_proxy %s", rec.Body)
	}
	// Anthropic client: the answer as the provider sent it, no _proxy.
	msg := `{"model":"b","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	rec, p := e.serveCtx(t, nil, "/v1/messages", msg, nil)
	if p != nil || rec.Code != 200 || rec.Body.String() != anthropicAnswer("bonjour", 40, 20) {
		t.Errorf("%v %d %s", p, rec.Code, rec.Body)
	}
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Attempts": "1"})
	// Anthropic client of an OpenAI provider: translated, still no _proxy.
	pa := always(200, nil, openAIAnswer("salut", 1, 1))
	e2 := newFBEnv(t, []fbTarget{{provider: "pa", dialect: "openai", model: "a", up: pa}}, nil)
	rec, p = e2.serveCtx(t, nil, "/v1/messages", strings.Replace(msg, `"b"`, `"a"`, 1), nil)
	if p != nil || rec.Code != 200 || gjson.Get(rec.Body.String(), "content.0.text").Str != "salut" || gjson.Get(rec.Body.String(), "_proxy").Exists() {
		t.Errorf("%v %d %s", p, rec.Code, rec.Body)
	}
	checkContentLength(t, rec)
}

// ---------------------------------------------------------------------
// 10. Explain.
// ---------------------------------------------------------------------

func TestExplainAutoRequest(t *testing.T) {
	trivial := []routing.Tier{routing.TierTrivial}
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "mini", prices: routing.Prices{Input: 0.4, Output: 1.6}, tiers: trivial},
		{provider: "pa", dialect: "openai", model: "nano", prices: routing.Prices{Input: 0.1, Output: 0.4}, tiers: trivial},
		{provider: "pb", dialect: "anthropic", model: "haiku", prices: routing.Prices{Input: 1, Output: 5}, tiers: trivial},
		{provider: "pb", dialect: "anthropic", model: "broken", prices: routing.Prices{Input: 0.01, Output: 0.01}, tiers: trivial},
		{provider: "pa", dialect: "openai", model: "waiting", prices: routing.Prices{Input: 0.01, Output: 0.01}, tiers: trivial},
		{provider: "pc", dialect: "openai", model: "keyless", noKey: true, tiers: trivial},
		{provider: "pa", dialect: "openai", model: "tiny", contextWindow: 10, tiers: trivial},
		{provider: "pa", dialect: "openai", model: "big", prices: routing.Prices{Input: 5, Output: 20}, tiers: []routing.Tier{routing.TierDeep}},
	}, map[string][]string{"trivial": {"big"}})
	br := e.g.Router.Breakers
	br.Failure("pb", "broken", 1, time.Minute)
	br.Wait("pa", "waiting", e.clk.Now().Add(20*time.Second))
	br.Failure("pa", "mini", 5, time.Minute) // one failure: still closed

	const secret = "zebra-secret-4242"
	prompt := "fix this typo in " + secret
	body := `{"model":"auto","messages":[{"role":"system","content":"you are ` + secret + `-sys"},{"role":"user","content":"` + prompt + `"}]}`
	x, derr := e.g.Explain(dialects.OpenAI, []byte(body), "", "")
	if derr != nil {
		t.Fatal(derr)
	}
	if x.Tier != "trivial" || x.Requested != "auto" || x.Dialect != "openai" || x.Error != nil ||
		len(x.Reasons) != 1 || x.Reasons[0] != `"typo" suggests trivial work` || x.Reason != `auto: trivial ("typo" suggests trivial work)` {
		t.Errorf("%+v", x)
	}
	ctxChars := len(prompt) + len("you are "+secret+"-sys")
	// OpenAI's system message is the system prompt, not a message.
	if f := x.Features; f == nil || f.LastUserChars != len(prompt) || f.ContextChars != ctxChars || f.Messages != 1 ||
		f.EstimatedInputTokens != ctxChars/4+4 {
		t.Errorf("features %+v", x.Features)
	}
	var got []string
	for _, c := range x.Candidates {
		got = append(got, c.Model)
	}
	// Cost order within the tier, then the tier's fallback.
	if strings.Join(got, ",") != "nano,mini,haiku,big" {
		t.Errorf("candidates %v", got)
	}
	tok := float64(ctxChars/4 + 4)
	for i, want := range []float64{(tok*0.1 + 1000*0.4) / 1e6, (tok*0.4 + 1000*1.6) / 1e6, (tok*1 + 1000*5) / 1e6, (tok*5 + 1000*20) / 1e6} {
		if i < len(x.Candidates) && math.Abs(x.Candidates[i].EstimatedCostUSD-want) > 1e-15 {
			t.Errorf("candidate %s cost %v, want %v", x.Candidates[i].Model, x.Candidates[i].EstimatedCostUSD, want)
		}
	}
	if len(x.Candidates) == 4 {
		if c := x.Candidates[2]; c.Provider != "pb" || c.Dialect != "anthropic" || c.UpstreamModel != "haiku-up" || c.Breaker != "closed" {
			t.Errorf("haiku %+v", c)
		}
	}
	kinds := map[string]routing.SkipKind{}
	for _, s := range x.Skipped {
		kinds[s.Model] = s.Kind
	}
	wantKinds := map[string]routing.SkipKind{"broken": routing.SkipBroken, "waiting": routing.SkipWaiting, "keyless": routing.SkipUnavailable, "tiny": routing.SkipIncapable}
	if len(kinds) != len(wantKinds) {
		t.Errorf("skipped %+v", x.Skipped)
	}
	for m, k := range wantKinds {
		if kinds[m] != k {
			t.Errorf("skipped %s: kind %q, want %q (%+v)", m, kinds[m], k, x.Skipped)
		}
	}
	if x.Policy.Retries != DefaultRetries || x.Policy.RetryBackoff != "250ms" || x.Policy.MaxRetryWait != "5s" ||
		x.Policy.BreakerThreshold != DefaultBreakerThreshold || x.Policy.BreakerCooldown != "30s" {
		t.Errorf("policy %+v", x.Policy)
	}
	js, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{secret, "zebra", "fix this", "you are"} {
		if strings.Contains(string(js), leak) {
			t.Errorf("prompt text %q in the explanation: %s", leak, js)
		}
	}
	for _, key := range []string{`"kind":"circuit_open"`, `"kind":"retry_after"`, `"kind":"unavailable"`, `"kind":"incapable"`, `"tier":"trivial"`, `"candidates":[{"model":"nano"`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("%s missing from %s", key, js)
		}
	}
	// Explain takes no probe and sends nothing.
	if why, _, _ := br.Peek("pb", "broken"); !strings.Contains(why, "circuit open") {
		t.Errorf("broken: %q", why)
	}

	// A refused request is explained with the client's error.
	x, derr = e.g.Explain(dialects.OpenAI, []byte(body), "", "huge")
	if derr != nil || x.Error == nil || x.Error.Status != 400 || x.Error.Code != "invalid_task_tier" || len(x.Candidates) != 0 {
		t.Errorf("bad tier: %v %+v", derr, x)
	}
	if _, derr = e.g.Explain(dialects.OpenAI, []byte(`nope`), "", ""); derr == nil || derr.Status != 400 {
		t.Errorf("unreadable body: %v", derr)
	}
}

// ---------------------------------------------------------------------
// 11. Benchmarks.
// ---------------------------------------------------------------------

func benchGateway(b testing.TB) *Gateway {
	tiers := func(t ...routing.Tier) []routing.Tier { return t }
	e := newFBEnv(b, []fbTarget{
		{provider: "openai", dialect: "openai", model: "nano", prices: routing.Prices{Input: 0.1, Output: 0.4}, tiers: tiers(routing.TierTrivial, routing.TierOperational)},
		{provider: "openai", dialect: "openai", model: "mini", prices: routing.Prices{Input: 0.4, Output: 1.6}, tiers: tiers(routing.TierOperational, routing.TierStandard)},
		{provider: "openai", dialect: "openai", model: "gpt", prices: routing.Prices{Input: 2, Output: 8}, tiers: tiers(routing.TierStandard, routing.TierComplex)},
		{provider: "anthropic", dialect: "anthropic", model: "sonnet", prices: routing.Prices{Input: 3, Output: 15}, tiers: tiers(routing.TierComplex, routing.TierDeep)},
		{provider: "anthropic", dialect: "anthropic", model: "haiku", prices: routing.Prices{Input: 1, Output: 5}, tiers: tiers(routing.TierStandard)},
	}, map[string][]string{"standard": {"sonnet"}, "complex": {"gpt"}})
	return e.g
}

// benchBody is an OpenAI chat request with model auto of about size
// bytes: a system prompt and a few turns, the last user message long.
func benchBody(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"model":"auto","messages":[{"role":"system","content":"You are a careful coding assistant. Answer briefly."},`)
	b.WriteString(`{"role":"user","content":"Where is the config loaded?"},{"role":"assistant","content":"In config.go, function Load."},`)
	b.WriteString(`{"role":"user","content":"Please implement a unit test for the function Load in config.go and handle the error when the file is missing. `)
	filler := "The loader reads YAML, merges environment overrides and validates the result before returning it. "
	for b.Len() < size-40 {
		b.WriteString(filler)
	}
	b.WriteString(`"}],"temperature":0.2}`)
	return []byte(b.String())
}

func benchPlan(b *testing.B, size int) {
	g := benchGateway(b)
	body := benchBody(size)
	req, derr := dialects.ReadRequest(dialects.OpenAI, body)
	if derr != nil {
		b.Fatal(derr)
	}
	if p, _, perr := g.plan(dialects.OpenAI, req, body, "", ""); perr != nil || len(p.Candidates) == 0 {
		b.Fatalf("%v %+v", perr, p)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p, _, perr := g.plan(dialects.OpenAI, req, body, "", "")
		if perr != nil || len(p.Candidates) == 0 {
			b.Fatal(perr)
		}
	}
}

// BenchmarkPlanRequest: decoding the features of a ~1 KB auto request,
// analysing it and planning.
func BenchmarkPlanRequest(b *testing.B) { benchPlan(b, 1<<10) }

// BenchmarkPlanRequest50KB: the same on a ~50 KB request.
func BenchmarkPlanRequest50KB(b *testing.B) { benchPlan(b, 50<<10) }

// FuzzPlan: whatever the body, planning a request answers a plan or a
// client error, and never panics.
func FuzzPlan(f *testing.F) {
	f.Add([]byte(`{"messages":[{"role":"user","content":"fix this typo"}]}`), "")
	f.Add([]byte(`{"model":"auto","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}],"tools":[{"type":"function","function":{"name":"f"}}],"max_tokens":99999999}`), "deep")
	f.Add([]byte(`{"model":"cheap","messages":[{"role":"tool"}],"response_format":{"type":"json_schema"}}`), "x")
	f.Add([]byte(`{"messages":"nope","reasoning_effort":"high","stream":true}`), "")
	g := benchGateway(f)
	f.Fuzz(func(t *testing.T, body []byte, tier string) {
		for _, d := range []dialects.Dialect{dialects.OpenAI, dialects.Anthropic, dialects.Ollama, dialects.Responses} {
			req, derr := dialects.ReadRequest(d, body)
			if derr != nil {
				continue
			}
			p, _, perr := g.plan(d, req, body, "", tier)
			if perr == nil && (p == nil || len(p.Candidates) == 0) {
				t.Fatalf("no error and no candidate for %s %q", d, body)
			}
			if perr != nil && (perr.Status < 400 || perr.Message == "") {
				t.Fatalf("bad error %+v", perr)
			}
		}
	})
}
