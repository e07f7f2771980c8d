// Package telemetry turns what the gateway records about each request
// into Prometheus metrics, served by Caddy on its /metrics endpoints (the
// admin API's and the metrics handler's).
//
// # Metrics
//
// Every name starts with llmgate_. Labels carry metadata only: provider,
// model and tier names from the config, key names (identifiers the admin
// chose, never the keys themselves), status classes and fixed words.
// Prompt text, client keys, session ids and anything else a client
// chooses freely never become labels: the set of series stays bounded by
// the config.
//
//	llmgate_requests_total{provider,model,tier,status_class,cache}
//	    generation requests answered, by the target that answered (empty
//	    provider and model when none was tried, e.g. a budget refusal),
//	    status class 2xx/3xx/4xx/5xx ("none" when no status was sent) and
//	    response cache status hit/miss/bypass ("none" while no cache was
//	    consulted). Cache hits are llmgate_requests_total{cache="hit"}.
//	llmgate_errors_total{provider,model,kind}
//	    requests that failed, by the ledger's error kind (budget, refused,
//	    unavailable, gateway, upstream_status, upstream_unreachable,
//	    upstream_broken, client_closed, aborted).
//	llmgate_tokens_total{provider,model,kind}
//	    tokens as the provider reported them; kind is input, cached_input,
//	    cache_write, output or reasoning. As in the ledger, input includes
//	    cached_input and cache_write, and output includes reasoning.
//	llmgate_cost_usd_total{provider,model,key}
//	    cost in USD as the ledger charged it; key is the key's name,
//	    "anonymous", or empty without llm_budget.
//	llmgate_fallbacks_total{provider,model}
//	    requests answered by a fallback target (not the plan's first
//	    choice), labelled with the target that answered.
//	llmgate_upstream_latency_seconds{provider,model}
//	    histogram of the time from handing an attempt to the provider's
//	    reverse proxy to the provider's response headers, one observation
//	    per attempt that got headers (failed attempts included).
//	llmgate_request_duration_seconds{provider,model,stream}
//	    histogram of the whole request as the gateway saw it, from reading
//	    the body to the end of the answer.
//	llmgate_overhead_seconds{endpoint,provider}
//	    histogram of the gateway's own time: the request's duration minus
//	    the time spent inside upstream calls and minus retry waits (see
//	    Overhead).
//	llmgate_budget_remaining_usd{scope,key,window}
//	llmgate_budget_limit_usd{scope,key,window}
//	    what is left of each global and key limit (reservations in flight
//	    count as spent), and the limit, as of the last request charged to
//	    it; scope is global (key empty) or key. Session limits are left
//	    out: session ids are chosen by clients.
//	llmgate_budget_refusals_total{scope,window}
//	    requests refused by a budget: scope global, key or session with
//	    window daily, monthly or session, or scope request (window
//	    request) for the per-request cap.
//
// # Overhead
//
// Time is measured from the moment llm_route takes a request (after
// llm_budget has identified the key, a hash lookup) to the end of its
// answer. The gateway's overhead is the part of that time spent outside
// of upstream calls and retry waits: reading and parsing the
// body, routing, the budget reservation, encoding for the provider,
// settling the ledger and, for answers that are held (a whole JSON answer
// to translate or to annotate, a failure to replay), their processing
// after the call. An upstream call lasts from handing the request to the
// provider's reverse proxy until it returns, so the reverse proxy's own
// work (connection reuse, TLS, header rules) and the gateway's work on a
// stream that passes event by event are counted as upstream time. Retry
// waits (backoff, Retry-After) are the gateway's choice but not its
// cost, so they are left out too.
//
// # Reloads
//
// Caddy creates a new Prometheus registry for every config it loads and
// serves the registry of the running config, so New is called in every
// provisioning with that config's registry and builds fresh collectors:
// like Caddy's own caddy_http_* metrics, the counters start from zero
// after `caddy reload` (Prometheus' rate and increase handle the reset)
// and the budget gauges reappear with the next request charged to them.
package telemetry

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llmgate/caddy-llmgate/ledger"
)

// Metrics holds the gateway's collectors for one config. A nil *Metrics
// records nothing, so code paths without metrics need no checks. Safe
// for concurrent use.
type Metrics struct {
	requests        *prometheus.CounterVec
	errors          *prometheus.CounterVec
	tokens          *prometheus.CounterVec
	cost            *prometheus.CounterVec
	fallbacks       *prometheus.CounterVec
	upstreamLatency *prometheus.HistogramVec
	duration        *prometheus.HistogramVec
	overhead        *prometheus.HistogramVec
	budgetRemaining *prometheus.GaugeVec
	budgetLimit     *prometheus.GaugeVec
	budgetRefusals  *prometheus.CounterVec
}

const namespace = "llmgate"

// Buckets of the histograms, in seconds.
var (
	// LatencyBuckets: time to a provider's headers, 25 ms to 2 minutes
	// (a long prompt on a slow model takes minutes).
	LatencyBuckets = []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 120}
	// DurationBuckets: whole requests, 50 ms to 10 minutes.
	DurationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 600}
	// OverheadBuckets: the gateway's own time, 50 µs to 1 s.
	OverheadBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}
)

// New creates the gateway's collectors and registers them with reg
// (Caddy's registry of the config being provisioned:
// caddy.Context.GetMetricsRegistry). It fails when reg already holds
// collectors of the same names.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Generation requests answered, by the provider and model that answered, tier, status class and response cache status.",
		}, []string{"provider", "model", "tier", "status_class", "cache"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "errors_total",
			Help: "Generation requests that failed, by kind of failure.",
		}, []string{"provider", "model", "kind"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tokens_total",
			Help: "Tokens reported by providers (input includes cached_input and cache_write; output includes reasoning).",
		}, []string{"provider", "model", "kind"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "cost_usd_total",
			Help: "Cost charged to the ledger, in USD, by key name.",
		}, []string{"provider", "model", "key"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "fallbacks_total",
			Help: "Requests answered by a fallback target, by the target that answered.",
		}, []string{"provider", "model"}),
		upstreamLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "upstream_latency_seconds",
			Help:    "Time from sending an attempt to the provider's response headers.",
			Buckets: LatencyBuckets,
		}, []string{"provider", "model"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "Duration of generation requests in the gateway, to the end of the answer.",
			Buckets: DurationBuckets,
		}, []string{"provider", "model", "stream"}),
		overhead: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "overhead_seconds",
			Help:    "The gateway's own time per request: duration minus upstream calls and retry waits.",
			Buckets: OverheadBuckets,
		}, []string{"endpoint", "provider"}),
		budgetRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "budget_remaining_usd",
			Help: "What is left of a budget limit, in USD, as of the last request charged to it.",
		}, []string{"scope", "key", "window"}),
		budgetLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "budget_limit_usd",
			Help: "A budget limit, in USD, as of the last request charged to it.",
		}, []string{"scope", "key", "window"}),
		budgetRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "budget_refusals_total",
			Help: "Requests refused by a budget limit.",
		}, []string{"scope", "window"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.errors, m.tokens, m.cost, m.fallbacks,
		m.upstreamLatency, m.duration, m.overhead, m.budgetRemaining, m.budgetLimit, m.budgetRefusals} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// StatusClass is the label of an HTTP status: "2xx" for 200 to 299 and
// so on, "none" when no valid status was sent.
func StatusClass(status int) string {
	if status >= 100 && status < 600 {
		return strconv.Itoa(status/100) + "xx"
	}
	return "none"
}

// Observe records one generation request from its ledger entry (filled
// as it is recorded) and the gateway's overhead for it.
func (m *Metrics) Observe(e ledger.Entry, overhead time.Duration) {
	if m == nil {
		return
	}
	cache := e.Cache
	if cache == "" {
		cache = "none"
	}
	m.requests.WithLabelValues(e.Provider, e.Model, e.Tier, StatusClass(e.Status), cache).Inc()
	if e.ErrorKind != "" {
		m.errors.WithLabelValues(e.Provider, e.Model, e.ErrorKind).Inc()
	}
	for _, t := range [...]struct {
		kind string
		n    int
	}{
		{"input", e.Input}, {"cached_input", e.CachedInput}, {"cache_write", e.CacheWrite},
		{"output", e.Output}, {"reasoning", e.Reasoning},
	} {
		if t.n > 0 {
			m.tokens.WithLabelValues(e.Provider, e.Model, t.kind).Add(float64(t.n))
		}
	}
	if e.CostUSD > 0 {
		m.cost.WithLabelValues(e.Provider, e.Model, e.KeyID).Add(e.CostUSD)
	}
	if e.Fallback {
		m.fallbacks.WithLabelValues(e.Provider, e.Model).Inc()
	}
	m.duration.WithLabelValues(e.Provider, e.Model, strconv.FormatBool(e.Stream)).Observe(e.LatencyMS / 1000)
	m.overhead.WithLabelValues(e.Endpoint, e.Provider).Observe(max(overhead, 0).Seconds())
}

// ObserveUpstream records how long one attempt waited for the provider's
// response headers.
func (m *Metrics) ObserveUpstream(provider, model string, headers time.Duration) {
	if m == nil {
		return
	}
	m.upstreamLatency.WithLabelValues(provider, model).Observe(max(headers, 0).Seconds())
}

// BudgetRemaining sets the budget gauges from what the limits of key
// have left (ledger.Ledger.Remaining). Session limits are skipped.
func (m *Metrics) BudgetRemaining(key string, rem []ledger.Remaining) {
	if m == nil {
		return
	}
	for _, r := range rem {
		k := ""
		switch r.Scope {
		case ledger.ScopeGlobal:
		case ledger.ScopeKey:
			k = key
		default:
			continue
		}
		w := r.Limit.Window.String()
		m.budgetRemaining.WithLabelValues(r.Scope, k, w).Set(r.LeftUSD)
		m.budgetLimit.WithLabelValues(r.Scope, k, w).Set(r.USD)
	}
}

// Refusal scope and window of the per-request cap.
const (
	ScopeRequest  = "request"
	WindowRequest = "request"
)

// BudgetRefused counts a request refused by the limit of scope
// (ledger.ScopeGlobal, ScopeKey, ScopeSession or ScopeRequest) and
// window ("daily", "monthly", "session" or WindowRequest).
func (m *Metrics) BudgetRefused(scope, window string) {
	if m == nil {
		return
	}
	m.budgetRefusals.WithLabelValues(scope, window).Inc()
}
