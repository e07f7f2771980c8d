// Package llmgate is caddy-llmgate: an LLM gateway as Caddy modules.
//
// This root package is the Caddy glue only. It registers
//
//   - the app "llm" (global option `llm { ... }`): the catalog of providers
//     and models, one reverse proxy per provider, and the embedded Badger
//     storage shared by every config that is alive during a reload;
//   - the handlers http.handlers.llm_route and http.handlers.llm_translate
//     (directives `llm_route` and `llm_translate`, ordered before
//     reverse_proxy).
//
// The logic lives in the subpackages: routing (catalog, decisions),
// dialects (wire formats), handlers (the middleware), ledger (cost and
// usage records), telemetry (Prometheus metrics) and store (Badger).
//
// # How requests reach providers
//
// Each provider declared in the llm app gets its own instance of Caddy's
// reverse_proxy, provisioned from the provider's URLs: TLS for https URLs,
// plain HTTP for a LAN Ollama host, connection reuse, timeouts, several
// upstream hosts with load balancing, active and passive health checks.
// llm_translate hands each request to the proxy of the provider chosen by
// llm_route. This avoids the pitfalls of a user-written `reverse_proxy
// {placeholder}`: a placeholder upstream cannot carry a scheme (so https
// and http providers cannot share one proxy), `handle` groups are
// satisfied once per request (so a fallback that re-enters the chain would
// skip them), and one placeholder upstream shares one health counter for
// every provider. A site block therefore needs only `llm_route` and
// `llm_translate`.
package llmgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/llmgate/caddy-llmgate/cache"
	"github.com/llmgate/caddy-llmgate/contextbuf"
	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/handlers"
	"github.com/llmgate/caddy-llmgate/keys"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
	"github.com/llmgate/caddy-llmgate/store"
	"github.com/llmgate/caddy-llmgate/telemetry"
)

func init() {
	caddy.RegisterModule(App{})
	caddy.RegisterModule(Route{})
	caddy.RegisterModule(Translate{})
}

// App is the `llm` app: the gateway's catalog and storage.
//
// Storage is opened in Start and closed in Cleanup through a pool keyed
// by directory, so during `caddy reload` the old and the new config share
// one open database, and `caddy validate` (which only provisions) never
// touches it. Storage options other than the directory take effect on the
// next process start, not on a reload.
type App struct {
	// Storage is the directory of the embedded Badger database. Default:
	// "llm" in Caddy's data directory.
	Storage string `json:"storage,omitempty"`

	// MaxBodyBytes is the largest request body the gateway accepts; a
	// larger one is answered with 413. Default: 10 MiB.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`

	// SyncWrites makes every storage commit wait for the disk (fsync).
	// Default: off; committed entries then survive a crash of the
	// process but not of the machine.
	SyncWrites bool `json:"sync_writes,omitempty"`

	// Timezone is the IANA time zone (e.g. "Europe/Berlin") in which
	// budget days and months begin and stats count "today" and "this
	// month". Default: UTC.
	Timezone string `json:"timezone,omitempty"`

	// PricesFile is a price file in the format of LiteLLM's
	// model_prices_and_context_window.json, read at provisioning. A
	// model declared without prices takes its prices (and its context
	// window, output limit and capabilities where it declares none) from
	// this file, else from the built-in table of common models (see
	// ledger.BuiltinPrices), looked up by its upstream model id and
	// provider name. A relative path is relative to Caddy's working
	// directory. Default: the built-in table only.
	PricesFile string `json:"prices_file,omitempty"`

	// Providers are the upstream APIs, in declaration order.
	Providers []ProviderConfig `json:"providers,omitempty"`

	// Models are the models clients can ask for, in declaration order.
	Models []ModelConfig `json:"models,omitempty"`

	// Aliases map a name clients can use (e.g. "cheap") to a model id.
	Aliases map[string]string `json:"aliases,omitempty"`

	// Router tunes content-based routing, fallbacks, retries and
	// circuit breakers. Default: the built-in analyzer, tiers from the
	// models' declarations, no configured fallbacks, one retry.
	Router *RouterConfig `json:"router,omitempty"`

	// OverheadHeader adds the response header X-Llm-Overhead-Ms to
	// every generation answer: the gateway's own time in milliseconds
	// (the time since the request arrived minus the time spent in
	// upstream calls and retry waits) up to the moment the answer's
	// headers are sent, so for a stream it covers the time to the first
	// byte. The same measure over whole requests is always exported as
	// the llmgate_overhead_seconds metric and the llm_overhead_ms
	// access-log field. Default: off.
	OverheadHeader bool `json:"overhead_header,omitempty"`

	// Cache turns on the exact-match response cache when set (see
	// CacheConfig). Default: off.
	Cache *CacheConfig `json:"cache,omitempty"`

	// Context configures the delta context buffer (POST
	// /v1/context/delta, GET /v1/context/stats, X-Inject-Context).
	// The buffer is always available; this only tunes it.
	Context *ContextConfig `json:"context,omitempty"`

	gw       *handlers.Gateway
	keyStore *atomic.Pointer[keys.Store]
	loc      *time.Location
	dir      string
	held     bool
	handle   *dbHandle
	logger   *zap.Logger
	catalog  *routing.Catalog
	cacheKey []byte
	cacheOn  bool
}

// ProviderConfig declares one provider.
type ProviderConfig struct {
	// Name identifies the provider; models refer to it.
	Name string `json:"name"`

	// Dialect is the provider's wire format: openai (Chat Completions;
	// also every OpenAI-compatible host such as Ollama's /v1), responses
	// (OpenAI Responses), anthropic or ollama (native /api/chat).
	// Default: openai.
	Dialect string `json:"dialect,omitempty"`

	// URLs are the provider's base URLs: scheme, host, optional port and
	// the path the API hangs off. For openai and anthropic an empty path
	// means "/v1" (so https://api.openai.com is enough); OpenAI-compatible
	// hosts give theirs (https://openrouter.ai/api/v1,
	// http://jetson:11434/v1). Several URLs are load-balanced; they must
	// share scheme and path.
	URLs []string `json:"urls,omitempty"`

	// APIKey is the provider's key, normally a placeholder such as
	// "{env.OPENAI_API_KEY}" resolved at load time. When it resolves to
	// an empty value the provider is reported unavailable (not a config
	// error). Omit it for providers that need no key.
	APIKey string `json:"api_key,omitempty"`

	// Headers are extra request headers sent to this provider.
	Headers map[string]string `json:"headers,omitempty"`

	// DialTimeout bounds connecting to the provider. Default: 10s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// ResponseHeaderTimeout bounds the wait for the provider's response
	// headers (time to first byte for streams). Default: none, because a
	// long prompt can legitimately take minutes.
	ResponseHeaderTimeout caddy.Duration `json:"response_header_timeout,omitempty"`

	// HealthURI, when set, enables active health checks: a GET of this
	// path on every upstream host every HealthInterval.
	HealthURI string `json:"health_uri,omitempty"`

	// HealthInterval is the active health check period. Default: 30s.
	HealthInterval caddy.Duration `json:"health_interval,omitempty"`

	// FailDuration enables passive health checks: a host that failed is
	// avoided for this long. Default: 0 (off).
	FailDuration caddy.Duration `json:"fail_duration,omitempty"`

	// LBPolicy selects among several URLs (any policy of reverse_proxy,
	// e.g. round_robin, least_conn, first). Default: round_robin.
	LBPolicy string `json:"lb_policy,omitempty"`

	// TLSServerName overrides the TLS server name (SNI) sent upstream.
	TLSServerName string `json:"tls_server_name,omitempty"`

	// Region is the AWS region a bedrock provider signs its requests
	// for (SigV4). Default: the AWS configuration's (AWS_REGION, the
	// profile). Ignored by other dialects and when APIKey is set (a
	// Bedrock API key is sent as a bearer token instead).
	Region string `json:"region,omitempty"`

	// AWSProfile names the shared-config profile a bedrock provider
	// takes its credentials from. Default: AWS_PROFILE, else the usual
	// chain (environment, default profile, SSO, instance role).
	AWSProfile string `json:"aws_profile,omitempty"`
}

// ModelConfig declares one model.
type ModelConfig struct {
	// ID is the model name clients use.
	ID string `json:"id"`

	// Provider is the name of the provider serving the model.
	Provider string `json:"provider"`

	// UpstreamModel is the model id sent to the provider. Default: ID.
	UpstreamModel string `json:"upstream_model,omitempty"`

	// InputPrice is USD per 1M input tokens.
	//
	// The four prices are pointers so that "not given" differs from 0: a
	// model that gives any of them (even `price 0 0`) is priced by its
	// declaration alone, the others counting 0. A model that gives none
	// is priced from the price tables (App.PricesFile, then the built-in
	// table); a model of a local Ollama provider (dialect ollama, or a
	// URL on Ollama's port 11434) costs 0; a model found nowhere costs 0
	// and provisioning logs a warning naming it.
	InputPrice *float64 `json:"input_price,omitempty"`

	// OutputPrice is USD per 1M output tokens.
	OutputPrice *float64 `json:"output_price,omitempty"`

	// CachedInputPrice is USD per 1M input tokens read from the
	// provider's prompt cache. Default: the input price.
	CachedInputPrice *float64 `json:"cached_input_price,omitempty"`

	// CacheWritePrice is USD per 1M input tokens written to the
	// provider's prompt cache (Anthropic charges a premium). Default: the
	// input price.
	CacheWritePrice *float64 `json:"cache_write_price,omitempty"`

	// ContextWindow is the model's context size in tokens.
	ContextWindow int `json:"context_window,omitempty"`

	// MaxOutputTokens is the most the model can write in one answer.
	MaxOutputTokens int `json:"max_output_tokens,omitempty"`

	// Capabilities: any of tools, vision, json, reasoning.
	Capabilities []string `json:"capabilities,omitempty"`

	// Tiers: any of trivial, operational, standard, complex, deep.
	Tiers []string `json:"tiers,omitempty"`
}

// RouterConfig tunes how requests are routed when they do not name a
// model (or name "auto", a tier, or an alias such as cheap), and what
// happens when a target fails.
type RouterConfig struct {
	// DefaultTier is the tier of a request in which nothing stands out.
	// Default: standard.
	DefaultTier string `json:"default_tier,omitempty"`

	// Keywords are extra phrases per tier (tier name → phrases) that
	// pull a request toward that tier; they weigh twice the built-in
	// ones. A phrase matches whole words, case-insensitively; one that
	// ends in "*" is a stem that also matches longer words ("bisect*"
	// matches "bisecting").
	Keywords map[string][]string `json:"keywords,omitempty"`

	// Tiers lists the models of a tier (tier name → model ids or
	// aliases, in preference order), replacing the models that declare
	// the tier themselves.
	Tiers map[string][]string `json:"tiers,omitempty"`

	// Fallbacks are the models tried, in order, after the models chosen
	// for a model id, an alias or a tier (the key) have failed; they
	// may speak other dialects than the first choice.
	Fallbacks map[string][]string `json:"fallbacks,omitempty"`

	// Retries is how many more times a target is tried after a
	// transient failure (no connection, timeout, 408, 409, 429, 5xx,
	// 529) before the next target. Default: 1.
	Retries *int `json:"retries,omitempty"`

	// RetryBackoff is the wait before the first retry when the provider
	// gave no Retry-After; it doubles for each further retry.
	// Default: 250ms.
	RetryBackoff caddy.Duration `json:"retry_backoff,omitempty"`

	// MaxRetryWait is the longest wait before a retry. A provider that
	// asks for time (Retry-After, retry-after-ms) is skipped by every
	// request until then; a request with no other target waits up to
	// this long for it. Default: 5s.
	MaxRetryWait caddy.Duration `json:"max_retry_wait,omitempty"`

	// BreakerThreshold is the number of failures in a row after which a
	// provider's model is left alone for BreakerCooldown; then one
	// request probes it. Default (and 0): 5.
	BreakerThreshold int `json:"breaker_threshold,omitempty"`

	// BreakerCooldown is how long an open circuit stays open.
	// Default: 30s.
	BreakerCooldown caddy.Duration `json:"breaker_cooldown,omitempty"`

	// DisableProxyInfo leaves out the _proxy object that non-streamed
	// answers to OpenAI-dialect clients otherwise carry.
	DisableProxyInfo bool `json:"disable_proxy_info,omitempty"`
}

// breakers are the circuit breakers of every config of the process:
// package state, so that what was learned about a provider survives
// `caddy reload`. Each config brings its own thresholds.
var breakers = routing.NewBreakers(nil)

// buildRouter applies the router config to the gateway g.
func buildRouter(rc *RouterConfig, g *handlers.Gateway, cat *routing.Catalog) error {
	rt := g.Router
	rt.Breakers = breakers
	if rc == nil {
		return nil
	}
	var def routing.Tier
	if rc.DefaultTier != "" {
		t, err := routing.ParseTier(rc.DefaultTier)
		if err != nil {
			return fmt.Errorf("router: default_tier: %w", err)
		}
		def = t
	}
	extra := map[routing.Tier][]string{}
	for name, phrases := range rc.Keywords {
		t, err := routing.ParseTier(name)
		if err != nil {
			return fmt.Errorf("router: keywords: %w", err)
		}
		for _, p := range phrases {
			if utf8.RuneCountInString(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p), "*"))) < 2 {
				return fmt.Errorf("router: keywords %s: phrase %q is too short", name, p)
			}
		}
		extra[t] = append(extra[t], phrases...)
	}
	rt.Analyzer = routing.NewAnalyzer(def, extra)
	if len(rc.Tiers) > 0 {
		rt.TierModels = map[routing.Tier][]string{}
		for name, ids := range rc.Tiers {
			t, err := routing.ParseTier(name)
			if err != nil {
				return fmt.Errorf("router: tier: %w", err)
			}
			for _, id := range ids {
				if !cat.Known(id) {
					return fmt.Errorf("router: tier %s: unknown model %s", name, id)
				}
			}
			rt.TierModels[t] = append(rt.TierModels[t], ids...)
		}
	}
	if len(rc.Fallbacks) > 0 {
		rt.Fallbacks = map[string][]string{}
		for from, ids := range rc.Fallbacks {
			key := from
			if t, err := routing.ParseTier(from); err == nil && !cat.Known(from) {
				key = string(t)
			} else if !rt.Routable(from) {
				return fmt.Errorf("router: fallback: %s is neither a model, an alias nor a tier", from)
			}
			for _, id := range ids {
				if !cat.Known(id) {
					return fmt.Errorf("router: fallback %s: unknown model %s", from, id)
				}
			}
			rt.Fallbacks[key] = append(rt.Fallbacks[key], ids...)
		}
	}
	if rc.Retries != nil {
		if *rc.Retries < 0 || *rc.Retries > 10 {
			return fmt.Errorf("router: retries must be between 0 and 10, got %d", *rc.Retries)
		}
		g.Retries = *rc.Retries
	}
	if rc.RetryBackoff < 0 || rc.MaxRetryWait < 0 || rc.BreakerCooldown < 0 || rc.BreakerThreshold < 0 {
		return errors.New("router: durations and thresholds must not be negative")
	}
	if rc.RetryBackoff > 0 {
		g.RetryBackoff = time.Duration(rc.RetryBackoff)
	}
	if rc.MaxRetryWait > 0 {
		g.MaxRetryWait = time.Duration(rc.MaxRetryWait)
	}
	if rc.BreakerThreshold > 0 {
		rt.BreakerThreshold = rc.BreakerThreshold
	}
	if rc.BreakerCooldown > 0 {
		rt.BreakerCooldown = time.Duration(rc.BreakerCooldown)
	}
	g.ProxyInfo = !rc.DisableProxyInfo
	return nil
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "llm", New: func() caddy.Module { return new(App) }}
}

// Provision builds the catalog and one reverse proxy per provider.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	dir := a.Storage
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "llm")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("storage directory %s: %w", dir, err)
	}
	a.dir = abs
	a.keyStore = new(atomic.Pointer[keys.Store])
	a.loc = time.UTC
	if a.Timezone != "" {
		loc, err := time.LoadLocation(a.Timezone)
		if err != nil {
			return fmt.Errorf("timezone %q: %v", a.Timezone, err)
		}
		a.loc = loc
	}

	repl := caddy.NewReplacer()
	var providers []*routing.Provider
	for i := range a.Providers {
		p, err := buildProvider(&a.Providers[i], repl)
		if err != nil {
			return err
		}
		providers = append(providers, p)
		if !p.Available() {
			a.logger.Warn("provider unavailable", zap.String("provider", p.Name), zap.String("reason", p.Unavailable()))
		}
	}
	prices, err := loadPrices(a.PricesFile)
	if err != nil {
		return err
	}
	if a.PricesFile != "" {
		a.logger.Info("prices loaded", zap.String("file", a.PricesFile), zap.Int("models", prices.Len()))
	}
	models, err := buildModels(a.Models, providers, prices.Over(ledger.BuiltinPrices()), a.logger)
	if err != nil {
		return err
	}
	cat, err := routing.NewCatalog(providers, models, a.Aliases)
	if err != nil {
		return err
	}
	a.catalog = cat

	upstreams := make(map[string]caddyhttp.MiddlewareHandler, len(providers))
	for i, p := range providers {
		raw, err := proxyConfig(&a.Providers[i], p)
		if err != nil {
			return err
		}
		mod, err := ctx.LoadModuleByID("http.handlers.reverse_proxy", raw)
		if err != nil {
			return fmt.Errorf("provider %s: setting up its reverse proxy: %w", p.Name, err)
		}
		upstreams[p.Name] = mod.(caddyhttp.MiddlewareHandler)
	}
	a.gw = handlers.NewGateway(cat, upstreams, a.MaxBodyBytes, a.logger)
	a.gw.OverheadHeader = a.OverheadHeader
	if c := a.Cache; c != nil {
		a.cacheOn = true
		if c.EncryptionKeyEnv != "" {
			// Read now, so that a malformed key fails the config (caddy
			// validate, caddy reload) instead of the first request. An
			// unset one turns the cache off, as an unset provider key
			// makes its provider unavailable: nothing is stored
			// unencrypted, and the gateway still serves.
			if strings.TrimSpace(os.Getenv(c.EncryptionKeyEnv)) == "" {
				a.cacheOn = false
				a.logger.Error("response cache off: its encryption key variable is not set", zap.String("variable", c.EncryptionKeyEnv))
			} else if a.cacheKey, err = cache.KeyFromEnv(c.EncryptionKeyEnv); err != nil {
				return err
			}
		}
		a.gw.CacheEnabled = a.cacheOn
		a.gw.CacheMaxTemperature = c.MaxTemperature
	}
	if c := a.Context; c != nil {
		a.gw.DefaultContextID = c.DefaultID
	}
	// Caddy makes a registry per config (Context.GetMetricsRegistry) and
	// serves the running config's on /metrics: fresh collectors for
	// every config, as Caddy's own HTTP metrics do.
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		m, err := telemetry.New(reg)
		if err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		a.gw.Metrics = m
	}
	return buildRouter(a.Router, a.gw, cat)
}

// CacheConfig configures the response cache: identical requests (the
// same target and normalized request, whatever the client's dialect and
// whether it streams) are answered from storage, at no cost.
type CacheConfig struct {
	// TTL is how long an answer is kept, as a Go duration ("1h",
	// "30m"). Default: 1h.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// MaxEntryBytes is the largest answer kept (its neutral form,
	// before compression). Default: 1 MiB.
	MaxEntryBytes int `json:"max_entry_bytes,omitempty"`
	// MaxTemperature is the highest sampling temperature a request may
	// ask for and be cached; a request that gives none is cached.
	// Default: 1.0.
	MaxTemperature *float64 `json:"max_temperature,omitempty"`
	// EncryptionKeyEnv names an environment variable holding a 32-byte
	// key (64 hex characters or base64): entries are then sealed with
	// AES-256-GCM at rest. A malformed key fails the config; an unset
	// or empty variable turns the cache off (logged), so nothing is
	// stored unencrypted. Default: entries are compressed, not
	// encrypted.
	EncryptionKeyEnv string `json:"encryption_key_env,omitempty"`
}

// ContextConfig tunes the delta context buffer.
type ContextConfig struct {
	// MaxBytes is the largest total size of one context's files.
	// Default: 32 MiB.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// SessionTTL is how long the gateway remembers what a session has
	// received after its last request. Default: 24h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`
	// DefaultID is the context injected when a request sends
	// X-Inject-Context without X-Context-Id. Default: "default".
	DefaultID string `json:"default_id,omitempty"`
}

// Validate checks values Provision does not already reject.
func (a *App) Validate() error {
	if a.MaxBodyBytes < 0 {
		return errors.New("max_body_bytes must not be negative")
	}
	if c := a.Cache; c != nil {
		if c.TTL < 0 || c.TTL > 0 && time.Duration(c.TTL) < time.Second {
			return errors.New("cache: ttl must be at least 1s")
		}
		if c.MaxEntryBytes < 0 {
			return errors.New("cache: max_entry_bytes must not be negative")
		}
		if c.MaxTemperature != nil && *c.MaxTemperature < 0 {
			return errors.New("cache: max_temperature must not be negative")
		}
	}
	if c := a.Context; c != nil {
		if c.MaxBytes < 0 || c.SessionTTL < 0 {
			return errors.New("context: max_bytes and session_ttl must not be negative")
		}
		if c.DefaultID != "" {
			if err := contextbuf.CheckID(c.DefaultID); err != nil {
				return fmt.Errorf("context: default_id: %w", err)
			}
		}
	}
	return nil
}

// dbPool holds the open storage per directory. A reload runs the old and
// the new config at once and Badger allows one opener per directory, so
// both configs share one handle, closed when the last releases it.
var dbPool = caddy.NewUsagePool()

type dbHandle struct {
	store  *store.Store
	ledger *ledger.Ledger
	keys   *keys.Store
}

// Destruct closes the ledger first (waiting for writes in progress) and
// then the database.
func (h *dbHandle) Destruct() error {
	h.ledger.Close()
	return h.store.Close()
}

// Start opens (or joins) the storage.
func (a *App) Start() error {
	val, loaded, err := dbPool.LoadOrNew(a.dir, func() (caddy.Destructor, error) {
		s, err := store.Open(store.Options{Dir: a.dir, SyncWrites: a.SyncWrites, Logger: a.logger.Named("badger")})
		if err != nil {
			return nil, err
		}
		ks, err := keys.OpenStore(s.DB())
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		return &dbHandle{store: s, ledger: ledger.New(s.DB()), keys: ks}, nil
	})
	if err != nil {
		return fmt.Errorf("llm storage: %w", err)
	}
	a.held = true
	a.handle = val.(*dbHandle)
	// Budget counters are rebuilt from the stored entries the first
	// time, and again when the time zone changes.
	if err := a.handle.ledger.SetLocation(a.Location()); err != nil {
		a.held = false
		_, _ = dbPool.Delete(a.dir)
		return fmt.Errorf("llm storage: %w", err)
	}
	a.keyStore.Store(a.handle.keys)
	if c := a.Cache; c != nil && a.cacheOn {
		rc, err := cache.New(a.handle.store.DB(), cache.Options{TTL: time.Duration(c.TTL), MaxEntryBytes: c.MaxEntryBytes,
			Key: a.cacheKey, Logger: a.logger.Named("cache")})
		if err != nil {
			a.held = false
			_, _ = dbPool.Delete(a.dir)
			return fmt.Errorf("llm cache: %w", err)
		}
		a.gw.AttachCache(rc)
	}
	// Each config has a context buffer of its own; the two alive during
	// a reload write to one database, where Badger's conflict detection
	// orders their changes to a context (contextbuf.Buffer).
	var co contextbuf.Options
	if c := a.Context; c != nil {
		co.MaxBytes, co.SessionTTL = c.MaxBytes, time.Duration(c.SessionTTL)
	}
	a.gw.AttachContexts(contextbuf.New(a.handle.store.DB(), co))
	currentApp.Store(a)
	a.gw.AttachLedger(a.handle.ledger)
	a.logger.Info("storage open", zap.String("dir", a.dir), zap.Bool("reused", loaded))
	return nil
}

// Stop does nothing: storage stays open until Cleanup, which Caddy runs
// only after every app (the HTTP servers included) has stopped, so
// requests still draining can record their ledger entries.
func (a *App) Stop() error { return nil }

// Cleanup releases the storage; the last config to release it closes it.
func (a *App) Cleanup() error {
	currentApp.CompareAndSwap(a, nil)
	if !a.held {
		return nil
	}
	a.held = false
	_, err := dbPool.Delete(a.dir)
	return err
}

// Location is the time zone of budget windows and stats (UTC unless
// configured).
func (a *App) Location() *time.Location {
	if a.loc == nil {
		return time.UTC
	}
	return a.loc
}

// KeyStore returns the client keys kept in storage, or nil while
// storage is not open. Safe for concurrent use.
func (a *App) KeyStore() *keys.Store {
	if a.keyStore == nil {
		return nil
	}
	return a.keyStore.Load()
}

// Gateway returns the state the handlers share.
func (a *App) Gateway() *handlers.Gateway { return a.gw }

// Ledger returns the ledger once storage is open, else nil.
func (a *App) Ledger() *ledger.Ledger {
	if a.handle == nil {
		return nil
	}
	return a.handle.ledger
}

// buildProvider turns a provider declaration into a catalog provider,
// resolving placeholders in its URLs, key and headers.
func buildProvider(pc *ProviderConfig, repl *caddy.Replacer) (*routing.Provider, error) {
	if pc.Name == "" {
		return nil, errors.New("provider without a name")
	}
	dialect := dialects.OpenAI
	if pc.Dialect != "" {
		d, err := dialects.ParseProvider(pc.Dialect)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", pc.Name, err)
		}
		dialect = d
	}
	if len(pc.URLs) == 0 {
		return nil, fmt.Errorf("provider %s: no url", pc.Name)
	}
	p := &routing.Provider{Name: pc.Name, Dialect: string(dialect), KeySource: pc.APIKey, Headers: map[string]string{}}
	for _, raw := range pc.URLs {
		u, err := parseProviderURL(repl.ReplaceAll(raw, ""))
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", pc.Name, err)
		}
		p.URLs = append(p.URLs, u)
	}
	if pc.APIKey != "" {
		p.APIKey = strings.TrimSpace(repl.ReplaceAll(pc.APIKey, ""))
	}
	for k, v := range pc.Headers {
		p.Headers[k] = repl.ReplaceAll(v, "")
	}
	return p, nil
}

func parseProviderURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("url %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("url %q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("url %q: must not carry a query, fragment or credentials", raw)
	}
	return u, nil
}

// loadPrices reads the LiteLLM-format price file, or returns nil (no
// table) when file is empty.
func loadPrices(file string) (*ledger.PriceTable, error) {
	if file == "" {
		return nil, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("prices file %s: %w", file, err)
	}
	defer f.Close()
	t, err := ledger.LoadLiteLLM(f)
	if err != nil {
		return nil, fmt.Errorf("prices file %s: %w", file, err)
	}
	return t, nil
}

// buildModels builds the catalog models of the declarations mcs, served
// by providers, with prices from the declarations or else from prices.
// It logs one warning for each model of a paid provider that has no
// price anywhere (metadata only: model, provider, upstream model).
func buildModels(mcs []ModelConfig, providers []*routing.Provider, prices *ledger.PriceTable, log *zap.Logger) ([]*routing.Model, error) {
	byName := make(map[string]*routing.Provider, len(providers))
	for _, p := range providers {
		byName[p.Name] = p
	}
	models := make([]*routing.Model, 0, len(mcs))
	for i := range mcs {
		mc := &mcs[i]
		m, unpriced, err := buildModel(mc, byName[mc.Provider], prices)
		if err != nil {
			return nil, err
		}
		if unpriced {
			upstream := m.UpstreamID
			if upstream == "" {
				upstream = m.ID
			}
			log.Warn("model has no price: its requests are counted as free; give it a price line or a prices file",
				zap.String("model", m.ID), zap.String("provider", m.Provider), zap.String("upstream_model", upstream))
		}
		models = append(models, m)
	}
	return models, nil
}

// priced reports whether the declaration gives prices of its own.
func (mc *ModelConfig) priced() bool {
	return mc.InputPrice != nil || mc.OutputPrice != nil || mc.CachedInputPrice != nil || mc.CacheWritePrice != nil
}

// localProvider reports whether p is a local Ollama host, whose models
// cost nothing: it speaks Ollama's native API or listens on Ollama's
// default port (its OpenAI-compatible /v1).
func localProvider(p *routing.Provider) bool {
	if p == nil {
		return false
	}
	if p.Dialect == string(dialects.Ollama) {
		return true
	}
	for _, u := range p.URLs {
		if u.Port() == "11434" {
			return true
		}
	}
	return false
}

// buildModel turns a model declaration into a catalog model served by
// provider p (nil when unknown; the catalog rejects it later). A model
// without prices of its own is looked up in prices by its upstream id
// and p's name, which also fills the context window, output limit and
// capabilities it does not declare. unpriced is true when such a model
// of a paid provider was found nowhere: it costs 0.
func buildModel(mc *ModelConfig, p *routing.Provider, prices *ledger.PriceTable) (m *routing.Model, unpriced bool, err error) {
	m = &routing.Model{
		ID: mc.ID, Provider: mc.Provider, UpstreamID: mc.UpstreamModel,
		ContextWindow: mc.ContextWindow, MaxOutput: mc.MaxOutputTokens,
	}
	for _, c := range mc.Capabilities {
		cap, err := routing.ParseCapability(c)
		if err != nil {
			return nil, false, fmt.Errorf("model %s: %w", mc.ID, err)
		}
		m.Capabilities = append(m.Capabilities, cap)
	}
	for _, t := range mc.Tiers {
		tier, err := routing.ParseTier(t)
		if err != nil {
			return nil, false, fmt.Errorf("model %s: %w", mc.ID, err)
		}
		m.Tiers = append(m.Tiers, tier)
	}
	if mc.ContextWindow < 0 || mc.MaxOutputTokens < 0 {
		return nil, false, fmt.Errorf("model %s: token limits must not be negative", mc.ID)
	}
	if mc.priced() {
		price := func(v *float64) float64 {
			if v == nil {
				return 0
			}
			return *v
		}
		m.Prices = routing.Prices{
			Input: price(mc.InputPrice), Output: price(mc.OutputPrice),
			CachedInput: price(mc.CachedInputPrice), CacheWrite: price(mc.CacheWritePrice),
		}
		if m.Prices.Input < 0 || m.Prices.Output < 0 || m.Prices.CachedInput < 0 || m.Prices.CacheWrite < 0 {
			return nil, false, fmt.Errorf("model %s: negative price", mc.ID)
		}
		return m, false, nil
	}
	upstream := mc.UpstreamModel
	if upstream == "" {
		upstream = mc.ID
	}
	providerName := mc.Provider
	if p != nil {
		providerName = p.Name
	}
	local := localProvider(p)
	info, found := prices.Lookup(providerName, upstream)
	if !found && local {
		info, found = prices.Lookup("ollama", upstream)
	}
	if !found {
		return m, !local, nil
	}
	if !local {
		m.Prices = routing.Prices{Input: info.Input, Output: info.Output, CachedInput: info.CachedInput, CacheWrite: info.CacheWrite}
	}
	if m.ContextWindow == 0 {
		m.ContextWindow = info.ContextWindow
	}
	if m.MaxOutput == 0 {
		m.MaxOutput = info.MaxOutput
	}
	if len(mc.Capabilities) == 0 {
		for _, c := range []struct {
			has bool
			cap routing.Capability
		}{{info.Tools, routing.CapTools}, {info.Vision, routing.CapVision}, {info.JSON, routing.CapJSON}, {info.Reasoning, routing.CapReasoning}} {
			if c.has {
				m.Capabilities = append(m.Capabilities, c.cap)
			}
		}
	}
	return m, false, nil
}

// proxyConfig is the JSON config of the reverse_proxy for one provider.
func proxyConfig(pc *ProviderConfig, p *routing.Provider) (json.RawMessage, error) {
	tls := p.URLs[0].Scheme == "https"
	var ups []map[string]any
	for _, u := range p.URLs {
		port := u.Port()
		if port == "" {
			port = "80"
			if tls {
				port = "443"
			}
		}
		ups = append(ups, map[string]any{"dial": net.JoinHostPort(u.Hostname(), port)})
	}
	transport := map[string]any{"protocol": "http"}
	if p.Dialect == string(dialects.Bedrock) && p.APIKey == "" && p.KeySource == "" {
		// Bedrock without an API key: AWS SigV4, signed as the request
		// leaves (see SigV4Transport).
		transport["protocol"] = "llm_sigv4"
		if pc.Region != "" {
			transport["region"] = pc.Region
		}
		if pc.AWSProfile != "" {
			transport["profile"] = pc.AWSProfile
		}
	}
	dial := pc.DialTimeout
	if dial == 0 {
		dial = caddy.Duration(10e9)
	}
	transport["dial_timeout"] = dial
	if pc.ResponseHeaderTimeout > 0 {
		transport["response_header_timeout"] = pc.ResponseHeaderTimeout
	}
	if tls {
		t := map[string]any{}
		if pc.TLSServerName != "" {
			t["server_name"] = pc.TLSServerName
		}
		transport["tls"] = t
	}
	policy := pc.LBPolicy
	if policy == "" {
		policy = "round_robin"
	}
	cfg := map[string]any{
		"upstreams":      ups,
		"transport":      transport,
		"flush_interval": -1,
		"load_balancing": map[string]any{"selection_policy": map[string]any{"policy": policy}},
		// Team members' addresses are none of the provider's business.
		// The provider sees its own host name (Caddy sets it only for
		// TLS upstreams; Ollama rejects foreign hosts).
		"headers": map[string]any{"request": map[string]any{
			"set":    map[string][]string{"Host": {"{http.reverse_proxy.upstream.hostport}"}},
			"delete": []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Via"},
		}},
	}
	hc := map[string]any{}
	if pc.HealthURI != "" {
		interval := pc.HealthInterval
		if interval == 0 {
			interval = caddy.Duration(30e9)
		}
		hc["active"] = map[string]any{"uri": pc.HealthURI, "interval": interval}
	}
	if pc.FailDuration > 0 {
		hc["passive"] = map[string]any{"fail_duration": pc.FailDuration}
	}
	if len(hc) > 0 {
		cfg["health_checks"] = hc
	}
	return json.Marshal(cfg)
}

// appFrom returns the llm app of ctx's config.
func appFrom(ctx caddy.Context) (*App, error) {
	v, err := ctx.App("llm")
	if err != nil {
		return nil, fmt.Errorf("getting the llm app: %w", err)
	}
	a, ok := v.(*App)
	if !ok {
		return nil, fmt.Errorf("llm app has unexpected type %T", v)
	}
	return a, nil
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
