package handlers

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmgate/caddy-llmgate/routing"
	"github.com/llmgate/caddy-llmgate/telemetry"
)

// withMetrics gives the gateway metrics on a registry of their own.
func withMetrics(tb testing.TB, g *Gateway) *prometheus.Registry {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := telemetry.New(reg)
	if err != nil {
		tb.Fatal(err)
	}
	g.Metrics = m
	return reg
}

// series sums the value of the series of a counter or gauge whose labels
// include want, and for a histogram returns its sample count and sum.
func series(tb testing.TB, reg *prometheus.Registry, name string, want map[string]string) (value float64, count uint64, sum float64) {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				value += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				value += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				count += m.GetHistogram().GetSampleCount()
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return value, count, sum
}

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// serveWork serves one request as serve does, the gateway's own work
// before each upstream call taking `work` on the fake clock.
func (e *fbEnv) serveWork(tb testing.TB, path, body string, work time.Duration) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
	route := &Route{GW: e.g}
	tr := &Translate{GW: e.g}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		e.clk.Advance(work)
		return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	})
	if err := route.ServeHTTP(rec, req, next); err != nil {
		tb.Errorf("Route.ServeHTTP returned %v", err)
	}
	return rec
}

// slow answers after `headers` on the clock, and ends the body `body`
// later.
func slow(clk *fakeClock, headers, body time.Duration, status int, hdr map[string]string, parts ...string) *scripted {
	return upstream(func(w http.ResponseWriter, _ *http.Request, _ int) error {
		clk.Advance(headers)
		if _, ok := hdr["Content-Type"]; !ok {
			w.Header().Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		for i, p := range parts {
			if i == len(parts)-1 {
				clk.Advance(body)
			}
			_, _ = io.WriteString(w, p)
			_ = http.NewResponseController(w).Flush()
		}
		return nil
	})
}

// TestMetricsFallbackAndOverhead: a target that fails twice (a retry
// with backoff), then its fallback answers. The metrics count the
// request once, for the target that answered, with its tokens, cost and
// the fallback; each attempt's wait for headers is a latency sample; the
// overhead leaves out the upstream calls and the backoff and is in the
// header when enabled.
func TestMetricsFallbackAndOverhead(t *testing.T) {
	clk := newFakeClock()
	pa := slow(clk, 100*time.Millisecond, 0, 503, nil, `{"error":{"message":"overloaded"}}`)
	pb := slow(clk, 200*time.Millisecond, 300*time.Millisecond, 200, nil, openAIAnswer("hi", 1000, 500))
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "openai", model: "b", up: pb, prices: routing.Prices{Input: 1, Output: 2}},
	}, map[string][]string{"a": {"b"}})
	e.clk = clk
	e.g.Now = clk.Now
	e.g.Router.Breakers = routing.NewBreakers(clk.Now)
	e.g.OverheadHeader = true
	reg := withMetrics(t, e.g)

	start := clk.Now()
	rec := e.serveWork(t, "/v1/chat/completions", chat("a"), 5*time.Millisecond)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	total := clk.Now().Sub(start)
	slept := e.slept()
	if len(slept) != 1 {
		t.Fatalf("sleeps %v, want one retry wait", slept)
	}
	// Three attempts of 5ms of the gateway's own work each.
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Attempts": "3", "X-Llm-Overhead-Ms": "15.000"})

	if v, _, _ := series(t, reg, "llmgate_requests_total", map[string]string{"provider": "pb", "model": "b", "status_class": "2xx", "cache": "none"}); v != 1 {
		t.Errorf("requests_total{pb,b,2xx} = %v", v)
	}
	if v, _, _ := series(t, reg, "llmgate_requests_total", nil); v != 1 {
		t.Errorf("requests_total = %v, want one request", v)
	}
	if v, _, _ := series(t, reg, "llmgate_fallbacks_total", map[string]string{"provider": "pb", "model": "b"}); v != 1 {
		t.Errorf("fallbacks_total = %v", v)
	}
	if v, _, _ := series(t, reg, "llmgate_tokens_total", map[string]string{"provider": "pb", "kind": "input"}); v != 1000 {
		t.Errorf("input tokens %v", v)
	}
	if v, _, _ := series(t, reg, "llmgate_tokens_total", map[string]string{"provider": "pb", "kind": "output"}); v != 500 {
		t.Errorf("output tokens %v", v)
	}
	if v, _, _ := series(t, reg, "llmgate_cost_usd_total", map[string]string{"provider": "pb", "key": ""}); !approx(v, 0.002) {
		t.Errorf("cost %v, want 0.002", v)
	}
	if _, n, sum := series(t, reg, "llmgate_upstream_latency_seconds", map[string]string{"provider": "pa"}); n != 2 || !approx(sum, 0.2) {
		t.Errorf("pa latency: %d samples, sum %v", n, sum)
	}
	if _, n, sum := series(t, reg, "llmgate_upstream_latency_seconds", map[string]string{"provider": "pb"}); n != 1 || !approx(sum, 0.2) {
		t.Errorf("pb latency: %d samples, sum %v", n, sum)
	}
	if _, n, sum := series(t, reg, "llmgate_overhead_seconds", map[string]string{"provider": "pb", "endpoint": "chat_completions"}); n != 1 || !approx(sum, 0.015) {
		t.Errorf("overhead: %d samples, sum %v, want 15ms", n, sum)
	}
	if _, n, sum := series(t, reg, "llmgate_request_duration_seconds", map[string]string{"provider": "pb", "stream": "false"}); n != 1 || !approx(sum, total.Seconds()) {
		t.Errorf("duration: %d samples, sum %v, want %v", n, sum, total.Seconds())
	}
	if want := 15*time.Millisecond + 100*time.Millisecond*2 + 500*time.Millisecond + slept[0]; total != want {
		t.Errorf("total %v, want %v", total, want)
	}
	if n := testutil.CollectAndCount(reg, "llmgate_errors_total"); n != 0 {
		t.Errorf("%d error series for an answered request", n)
	}
}

// TestMetricsStreamAndTranslation: the header of a stream measures the
// gateway's time to the first byte (the call counts to the provider's
// headers); the metric covers the whole request. A translated answer's
// wait for headers is measured too.
func TestMetricsStreamAndTranslation(t *testing.T) {
	clk := newFakeClock()
	sse := slow(clk, 2*time.Second, 10*time.Second, 200, map[string]string{"Content-Type": "text/event-stream"}, sseChunk, "data: [DONE]\n\n")
	e := newFBEnv(t, []fbTarget{{provider: "p", dialect: "openai", model: "m", up: sse}}, nil)
	e.clk = clk
	e.g.Now = clk.Now
	e.g.Router.Breakers = routing.NewBreakers(clk.Now)
	reg := withMetrics(t, e.g)

	// Off by default.
	rec := e.serveWork(t, "/v1/chat/completions", chatStream("m"), 3*time.Millisecond)
	if rec.Code != 200 || rec.Header().Get("X-Llm-Overhead-Ms") != "" {
		t.Fatalf("%d, overhead header %q without the option", rec.Code, rec.Header().Get("X-Llm-Overhead-Ms"))
	}
	e.g.OverheadHeader = true
	rec = e.serveWork(t, "/v1/chat/completions", chatStream("m"), 3*time.Millisecond)
	checkHeaders(t, rec, map[string]string{"Content-Type": "text/event-stream", "X-Llm-Overhead-Ms": "3.000"})
	if _, n, sum := series(t, reg, "llmgate_overhead_seconds", nil); n != 2 || !approx(sum, 0.006) {
		t.Errorf("overhead: %d samples, sum %v", n, sum)
	}
	if _, n, sum := series(t, reg, "llmgate_request_duration_seconds", map[string]string{"stream": "true"}); n != 2 || !approx(sum, 2*12.003) {
		t.Errorf("duration: %d samples, sum %v", n, sum)
	}
	if _, n, sum := series(t, reg, "llmgate_upstream_latency_seconds", nil); n != 2 || !approx(sum, 4) {
		t.Errorf("latency: %d samples, sum %v", n, sum)
	}

	// An Anthropic client on an OpenAI provider: the translating writer
	// sees the headers.
	json := slow(clk, 1500*time.Millisecond, 0, 200, nil, openAIAnswer("hi", 3, 4))
	e2 := newFBEnv(t, []fbTarget{{provider: "q", dialect: "openai", model: "n", up: json}}, nil)
	e2.clk = clk
	e2.g.Now = clk.Now
	e2.g.OverheadHeader = true
	reg2 := withMetrics(t, e2.g)
	rec = e2.serveWork(t, "/v1/messages", `{"model":"n","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, time.Millisecond)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	checkHeaders(t, rec, map[string]string{"X-Llm-Overhead-Ms": "1.000"})
	if _, n, sum := series(t, reg2, "llmgate_upstream_latency_seconds", map[string]string{"provider": "q", "model": "n"}); n != 1 || !approx(sum, 1.5) {
		t.Errorf("translated latency: %d samples, sum %v", n, sum)
	}
	if v, _, _ := series(t, reg2, "llmgate_tokens_total", map[string]string{"kind": "output"}); v != 4 {
		t.Errorf("translated output tokens %v", v)
	}
}

// TestMetricsBudget: the budget gauges follow each settled request, a
// refusal is counted by the limit that made it, and refused requests
// are counted (status 4xx, error kind budget) with the header.
func TestMetricsBudget(t *testing.T) {
	up := always(200, nil, openAIAnswer("hi", 1000, 1000))
	e := newBudgetEnv(t, up, routing.Prices{Input: 100, Output: 100}) // $0.2 per answer
	e.b.Global = Limits{Monthly: 100}
	e.b.KeyDefault = Limits{Daily: 0.3}
	e.g.OverheadHeader = true
	reg := withMetrics(t, e.g)
	body := `{"model":"m1","max_tokens":1000,"messages":[{"role":"user","content":"say hello"}]}`

	rec := e.do(t, "POST", "/v1/chat/completions", body, bearer(aliceKey))
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if v, _, _ := series(t, reg, "llmgate_budget_remaining_usd", map[string]string{"scope": "key", "key": "alice", "window": "daily"}); !approx(v, 0.1) {
		t.Errorf("key daily remaining %v, want 0.1", v)
	}
	if v, _, _ := series(t, reg, "llmgate_budget_limit_usd", map[string]string{"scope": "key", "key": "alice", "window": "daily"}); !approx(v, 0.3) {
		t.Errorf("key daily limit %v", v)
	}
	if v, _, _ := series(t, reg, "llmgate_budget_remaining_usd", map[string]string{"scope": "global", "key": "", "window": "monthly"}); !approx(v, 99.8) {
		t.Errorf("global monthly remaining %v, want 99.8", v)
	}
	if v, _, _ := series(t, reg, "llmgate_cost_usd_total", map[string]string{"key": "alice"}); !approx(v, 0.2) {
		t.Errorf("alice's cost %v", v)
	}

	// The next reservation does not fit the key's daily limit.
	rec = e.do(t, "POST", "/v1/chat/completions", body, bearer(aliceKey))
	if rec.Code != 429 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("X-Llm-Overhead-Ms") != "0.000" {
		t.Errorf("refusal overhead header %q", rec.Header().Get("X-Llm-Overhead-Ms"))
	}
	if v, _, _ := series(t, reg, "llmgate_budget_refusals_total", map[string]string{"scope": "key", "window": "daily"}); v != 1 {
		t.Errorf("key daily refusals %v", v)
	}
	if v, _, _ := series(t, reg, "llmgate_requests_total", map[string]string{"provider": "", "status_class": "4xx"}); v != 1 {
		t.Errorf("refused requests %v", v)
	}
	if v, _, _ := series(t, reg, "llmgate_errors_total", map[string]string{"kind": "budget"}); v != 1 {
		t.Errorf("budget errors %v", v)
	}
	if v, _, _ := series(t, reg, "llmgate_budget_remaining_usd", map[string]string{"scope": "key", "key": "alice", "window": "daily"}); !approx(v, 0.1) {
		t.Errorf("key daily remaining after a refusal %v, want 0.1", v)
	}

	// The per-request cap.
	e.b.PerRequest = 0.01
	if rec = e.do(t, "POST", "/v1/chat/completions", body, bearer(aliceKey)); rec.Code != 400 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if v, _, _ := series(t, reg, "llmgate_budget_refusals_total", map[string]string{"scope": "request", "window": "request"}); v != 1 {
		t.Errorf("per-request refusals %v", v)
	}
	if up.calls() != 1 {
		t.Errorf("%d upstream calls, want 1", up.calls())
	}
	// Sessions are client-chosen: never a label.
	rec = e.do(t, "POST", "/v1/chat/completions", body, map[string]string{"Authorization": "Bearer " + aliceKey, "X-Session-Id": "sess-xyz"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if strings.Contains(lp.GetValue(), "sess-xyz") || strings.Contains(lp.GetValue(), aliceKey) {
					t.Errorf("%s carries %s=%q", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

// TestMetricsNilGateway: a gateway without metrics serves as before.
func TestMetricsNilGateway(t *testing.T) {
	e := newFBEnv(t, []fbTarget{{provider: "p", dialect: "openai", model: "m", up: always(200, nil, openAIAnswer("hi", 1, 1))}}, nil)
	if rec := e.serve(t, chat("m")); rec.Code != 200 || rec.Header().Get("X-Llm-Overhead-Ms") != "" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("X-Llm-Overhead-Ms"))
	}
}
