// Package handlers holds the gateway's HTTP middleware: llm_route reads a
// request and decides where it goes, llm_translate shapes it for the
// chosen provider and sends it through that provider's reverse proxy, and
// the endpoints the gateway answers itself (/v1/models, /health).
//
// The handlers work on plain net/http types plus caddyhttp's Handler
// interface, so they are tested without starting Caddy; the root package
// wires them into Caddy modules.
package handlers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/llmgate/caddy-llmgate/cache"
	"github.com/llmgate/caddy-llmgate/contextbuf"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
	"github.com/llmgate/caddy-llmgate/telemetry"
)

// Gateway is the state one config's handlers share: the catalog, one
// reverse proxy per provider, and the ledger once storage is open.
type Gateway struct {
	// Catalog of providers, models and aliases.
	Catalog *routing.Catalog
	// Upstreams maps a provider name to the handler that proxies to it
	// (Caddy's reverse_proxy, provisioned from the provider's URLs).
	Upstreams map[string]caddyhttp.MiddlewareHandler
	// MaxBody is the largest request body accepted, in bytes.
	MaxBody int64
	// Logger for request-path events; metadata only, never content.
	Logger *zap.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time

	// Router plans each request: tiers, aliases, capability filters,
	// cost order, fallbacks and circuit breakers.
	Router *routing.Router
	// Retries is how many times one target is tried again after a
	// transient failure before the next target of the plan.
	Retries int
	// RetryBackoff is the wait before the first retry (doubled for each
	// further one, with jitter) when the provider gave no Retry-After.
	RetryBackoff time.Duration
	// MaxRetryWait is the longest the gateway waits at a time: before a
	// retry, or for a provider's Retry-After when nothing else can
	// serve. A provider that asked to wait is skipped by every request
	// until then.
	MaxRetryWait time.Duration
	// ProxyInfo adds a _proxy object (model, provider, tier, cost,
	// reason, elapsed time, fallback index) to non-streamed answers of
	// OpenAI-dialect clients.
	ProxyInfo bool
	// Sleep waits d or until ctx ends; tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error

	// Metrics receives each request's metrics (Prometheus); nil records
	// none.
	Metrics *telemetry.Metrics
	// OverheadHeader adds X-Llm-Overhead-Ms to generation answers: the
	// gateway's own time in milliseconds up to the moment the answer's
	// headers are sent (see Exchange.Overhead).
	OverheadHeader bool

	// CacheEnabled says a response cache is configured; the cache
	// itself is attached once storage is open (AttachCache).
	CacheEnabled bool
	// CacheMaxTemperature is the highest temperature a request may ask
	// for and be cached (nil: DefaultCacheMaxTemperature).
	CacheMaxTemperature *float64
	// DefaultContextID is the context X-Inject-Context injects when the
	// request names none with X-Context-Id (default "default").
	DefaultContextID string

	ledger   atomic.Pointer[ledger.Ledger]
	cache    atomic.Pointer[cache.Cache]
	contexts atomic.Pointer[contextbuf.Buffer]
	ready    chan struct{}
	closed   atomic.Bool
}

// Defaults of the retry policy and the breakers.
const (
	DefaultRetries          = 1
	DefaultRetryBackoff     = 250 * time.Millisecond
	DefaultMaxRetryWait     = 5 * time.Second
	DefaultBreakerThreshold = 5
	DefaultBreakerCooldown  = 30 * time.Second
)

// NewGateway returns a gateway whose ledger is not yet attached, with a
// router over c (built-in analyzer, breakers of its own) and the default
// retry policy; callers adjust the fields before serving.
func NewGateway(c *routing.Catalog, upstreams map[string]caddyhttp.MiddlewareHandler, maxBody int64, logger *zap.Logger) *Gateway {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &Gateway{Catalog: c, Upstreams: upstreams, MaxBody: maxBody, Logger: logger, Now: time.Now, ready: make(chan struct{}),
		Router: &routing.Router{Catalog: c, Analyzer: routing.NewAnalyzer("", nil), Breakers: routing.NewBreakers(nil),
			BreakerThreshold: DefaultBreakerThreshold, BreakerCooldown: DefaultBreakerCooldown},
		Retries: DefaultRetries, RetryBackoff: DefaultRetryBackoff, MaxRetryWait: DefaultMaxRetryWait, ProxyInfo: true,
		Sleep: sleep}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AttachLedger makes l the ledger requests are recorded in. Requests
// that finished before it was attached wait for it (see ledgerWait).
func (g *Gateway) AttachLedger(l *ledger.Ledger) {
	g.ledger.Store(l)
	if g.closed.CompareAndSwap(false, true) {
		close(g.ready)
	}
}

// AttachCache makes c the response cache (nil: none). Call it before
// AttachLedger, which lets waiting requests go.
func (g *Gateway) AttachCache(c *cache.Cache) { g.cache.Store(c) }

// AttachContexts makes b the context buffer served at /v1/context/* and
// injected with X-Inject-Context. Call it before AttachLedger.
func (g *Gateway) AttachContexts(b *contextbuf.Buffer) { g.contexts.Store(b) }

// ResponseCache returns the response cache, or nil when there is none
// (or storage is not open yet).
func (g *Gateway) ResponseCache() *cache.Cache { return g.cache.Load() }

// Contexts returns the context buffer, or nil while storage is not open.
func (g *Gateway) Contexts() *contextbuf.Buffer { return g.contexts.Load() }

// ledgerWait is how long a finished request waits for storage to open
// before its ledger entry is given up (and logged as lost).
const ledgerWait = 10 * time.Second

// record writes e to the ledger, waiting briefly if storage is still
// opening (Caddy may start serving before the llm app has started).
func (g *Gateway) record(ctx context.Context, e ledger.Entry) {
	l := g.waitLedger()
	if l == nil {
		g.Logger.Error("ledger entry lost: storage not open", zap.String("model", e.Model), zap.String("provider", e.Provider))
		return
	}
	if err := l.Record(e); err != nil {
		g.Logger.Error("ledger entry lost", zap.String("model", e.Model), zap.String("provider", e.Provider), zap.Error(err))
	}
}
