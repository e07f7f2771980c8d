package telemetry

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmgate/caddy-llmgate/ledger"
)

func newMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	// Caddy's registry of a config is a pedantic one.
	reg := prometheus.NewPedanticRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// histogram returns the sample count and sum of one histogram series.
func histogram(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
		}
	}
	return 0, 0
}

func TestObserve(t *testing.T) {
	m, reg := newMetrics(t)
	e := ledger.Entry{
		KeyID: "alice", Session: "s-123", Endpoint: "chat_completions", Provider: "openai", Model: "gpt", Tier: "standard",
		Status: 200, Tokens: ledger.Tokens{Input: 100, CachedInput: 40, CacheWrite: 10, Output: 20, Reasoning: 5},
		CostUSD: 0.25, LatencyMS: 1500, Attempts: 2, Fallback: true,
	}
	m.Observe(e, 3*time.Millisecond)
	e.Stream = true
	e.Cache = "hit"
	m.Observe(e, 1*time.Millisecond)
	m.Observe(ledger.Entry{Endpoint: "messages", Tier: "standard", Status: 429, KeyID: "bob", ErrorKind: "budget"}, time.Millisecond)

	for _, c := range []struct {
		got, want float64
		what      string
	}{
		{testutil.ToFloat64(m.requests.WithLabelValues("openai", "gpt", "standard", "2xx", "none")), 1, "2xx without cache"},
		{testutil.ToFloat64(m.requests.WithLabelValues("openai", "gpt", "standard", "2xx", "hit")), 1, "cache hit"},
		{testutil.ToFloat64(m.requests.WithLabelValues("", "", "standard", "4xx", "none")), 1, "refusal"},
		{testutil.ToFloat64(m.errors.WithLabelValues("", "", "budget")), 1, "budget error"},
		{testutil.ToFloat64(m.tokens.WithLabelValues("openai", "gpt", "input")), 200, "input"},
		{testutil.ToFloat64(m.tokens.WithLabelValues("openai", "gpt", "cached_input")), 80, "cached input"},
		{testutil.ToFloat64(m.tokens.WithLabelValues("openai", "gpt", "cache_write")), 20, "cache write"},
		{testutil.ToFloat64(m.tokens.WithLabelValues("openai", "gpt", "output")), 40, "output"},
		{testutil.ToFloat64(m.tokens.WithLabelValues("openai", "gpt", "reasoning")), 10, "reasoning"},
		{testutil.ToFloat64(m.cost.WithLabelValues("openai", "gpt", "alice")), 0.5, "cost"},
		{testutil.ToFloat64(m.fallbacks.WithLabelValues("openai", "gpt")), 2, "fallbacks"},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	// No token or cost series for a request without any.
	if n := testutil.CollectAndCount(m.tokens); n != 5 {
		t.Errorf("token series: %d, want 5", n)
	}
	if n := testutil.CollectAndCount(m.cost); n != 1 {
		t.Errorf("cost series: %d, want 1", n)
	}
	if n, sum := histogram(t, reg, "llmgate_request_duration_seconds", map[string]string{"provider": "openai", "stream": "false"}); n != 1 || !near(sum, 1.5) {
		t.Errorf("request duration: %d samples, sum %v", n, sum)
	}
	if n, sum := histogram(t, reg, "llmgate_overhead_seconds", map[string]string{"endpoint": "chat_completions", "provider": "openai"}); n != 2 || !near(sum, 0.004) {
		t.Errorf("overhead: %d samples, sum %v", n, sum)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(""), "llmgate_upstream_latency_seconds"); err != nil {
		t.Errorf("no upstream latency without attempts: %v", err)
	}
	m.ObserveUpstream("openai", "gpt", 250*time.Millisecond)
	if n, sum := histogram(t, reg, "llmgate_upstream_latency_seconds", map[string]string{"provider": "openai", "model": "gpt"}); n != 1 || !near(sum, 0.25) {
		t.Errorf("upstream latency: %d samples, sum %v", n, sum)
	}
}

// TestNoSessionsOrSecretsInLabels: session ids are chosen by clients and
// never become label values; neither does anything but names.
func TestNoSessionsOrSecretsInLabels(t *testing.T) {
	m, reg := newMetrics(t)
	m.Observe(ledger.Entry{KeyID: "alice", Session: "session-secret-42", Provider: "p", Model: "m", Status: 200, CostUSD: 1}, 0)
	m.BudgetRemaining("alice", []ledger.Remaining{
		{Limit: ledger.Limit{Scope: ledger.ScopeSession, Window: ledger.Lifetime, USD: 5}, Window: "session", LeftUSD: 4},
	})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if strings.Contains(lp.GetValue(), "session-secret") || lp.GetName() == "session" {
					t.Errorf("%s carries the session: %v", mf.GetName(), lp)
				}
			}
		}
	}
	if n := testutil.CollectAndCount(m.budgetRemaining); n != 0 {
		t.Errorf("session limits make %d budget series", n)
	}
}

func TestBudget(t *testing.T) {
	m, _ := newMetrics(t)
	m.BudgetRemaining("alice", []ledger.Remaining{
		{Limit: ledger.Limit{Scope: ledger.ScopeKey, Window: ledger.Daily, USD: 10}, Window: "daily", LeftUSD: 2.5},
		{Limit: ledger.Limit{Scope: ledger.ScopeGlobal, Window: ledger.Monthly, USD: 100}, Window: "monthly", LeftUSD: 70},
	})
	m.BudgetRemaining("alice", []ledger.Remaining{
		{Limit: ledger.Limit{Scope: ledger.ScopeKey, Window: ledger.Daily, USD: 10}, Window: "daily", LeftUSD: 1.5},
	})
	if v := testutil.ToFloat64(m.budgetRemaining.WithLabelValues("key", "alice", "daily")); !near(v, 1.5) {
		t.Errorf("key daily remaining %v, want the latest 1.5", v)
	}
	if v := testutil.ToFloat64(m.budgetLimit.WithLabelValues("key", "alice", "daily")); !near(v, 10) {
		t.Errorf("key daily limit %v", v)
	}
	if v := testutil.ToFloat64(m.budgetRemaining.WithLabelValues("global", "", "monthly")); !near(v, 70) {
		t.Errorf("global monthly remaining %v", v)
	}
	m.BudgetRefused(ledger.ScopeKey, "daily")
	m.BudgetRefused(ScopeRequest, WindowRequest)
	m.BudgetRefused(ledger.ScopeKey, "daily")
	if v := testutil.ToFloat64(m.budgetRefusals.WithLabelValues("key", "daily")); v != 2 {
		t.Errorf("key daily refusals %v", v)
	}
	if v := testutil.ToFloat64(m.budgetRefusals.WithLabelValues("request", "request")); v != 1 {
		t.Errorf("per-request refusals %v", v)
	}
}

// TestNil: a nil *Metrics records nothing and does not panic.
func TestNil(t *testing.T) {
	var m *Metrics
	m.Observe(ledger.Entry{Status: 200}, time.Second)
	m.ObserveUpstream("p", "m", time.Second)
	m.BudgetRemaining("k", []ledger.Remaining{{Limit: ledger.Limit{Scope: ledger.ScopeGlobal}}})
	m.BudgetRefused("global", "daily")
}

// TestRegisterTwice: one registry holds one set (Caddy gives every
// config a registry of its own, so each config registers afresh).
func TestRegisterTwice(t *testing.T) {
	_, reg := newMetrics(t)
	_, err := New(reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("second New on one registry: %v, want AlreadyRegisteredError", err)
	}
	if _, err := New(prometheus.NewRegistry()); err != nil {
		t.Fatalf("New on a fresh registry: %v", err)
	}
}

func TestLint(t *testing.T) {
	m, reg := newMetrics(t)
	m.Observe(ledger.Entry{Provider: "p", Model: "m", Status: 200, Tokens: ledger.Tokens{Input: 1}, CostUSD: 1, Fallback: true, ErrorKind: "x"}, time.Millisecond)
	m.ObserveUpstream("p", "m", time.Millisecond)
	m.BudgetRemaining("k", []ledger.Remaining{{Limit: ledger.Limit{Scope: ledger.ScopeGlobal, Window: ledger.Daily, USD: 1}}})
	m.BudgetRefused("global", "daily")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestStatusClass(t *testing.T) {
	for status, want := range map[int]string{0: "none", 99: "none", 200: "2xx", 299: "2xx", 429: "4xx", 499: "4xx", 503: "5xx", 600: "none"} {
		if got := StatusClass(status); got != want {
			t.Errorf("StatusClass(%d) = %q, want %q", status, got, want)
		}
	}
}
