package llmgate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/llmgate/caddy-llmgate/contextbuf"
	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/routing"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("llm", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("llm_budget", parseBudget)
	httpcaddyfile.RegisterHandlerDirective("llm_route", parseRoute)
	httpcaddyfile.RegisterHandlerDirective("llm_translate", parseTranslate)
	// Each lands directly before reverse_proxy (an order may only refer
	// to a standard directive), so this order gives
	// ... llm_budget, llm_route, llm_translate, reverse_proxy.
	httpcaddyfile.RegisterDirectiveOrder("llm_budget", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterDirectiveOrder("llm_route", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterDirectiveOrder("llm_translate", httpcaddyfile.Before, "reverse_proxy")
}

// parseGlobalOption sets up the llm app from the `llm` global option:
//
//	llm {
//		storage  <dir>
//		max_body <size>
//		sync_writes
//		overhead_header
//		timezone <IANA zone>
//		prices   <file>
//
//		cache {
//			ttl             <duration>
//			max_entry_size  <size>
//			max_temperature <number>
//			encryption_key_env <ENV_NAME>
//		}
//
//		context {
//			max_size    <size>
//			session_ttl <duration>
//			default_id  <name>
//		}
//
//		provider <name> {
//			dialect  openai|responses|anthropic|ollama|gemini|bedrock
//			url      <base-url> [<base-url>...]
//			api_key  <key>
//			region   <aws-region>
//			aws_profile <profile>
//			header   <field> <value>
//			dial_timeout            <duration>
//			response_header_timeout <duration>
//			health_uri      <path>
//			health_interval <duration>
//			fail_duration   <duration>
//			lb_policy       <policy>
//			tls_server_name <name>
//		}
//
//		model <id> [<provider> [<upstream-model>]] {
//			provider     <name>
//			upstream     <upstream-model>
//			price        <input> <output> [<cached-input> [<cache-write>]]
//			context      <tokens>
//			max_output   <tokens>
//			capabilities <tools|vision|json|reasoning>...
//			tiers        <trivial|operational|standard|complex|deep>...
//		}
//
//		alias <name> <model>
//
//		router {
//			default_tier      <tier>
//			keywords          <tier> <phrase>...
//			tier              <tier> <model>...
//			fallback          <model|alias|tier> <model>...
//			retries           <n>
//			retry_backoff     <duration>
//			max_retry_wait    <duration>
//			breaker_threshold <n>
//			breaker_cooldown  <duration>
//			proxy_info        on|off
//		}
//	}
//
// Prices are USD per million tokens: input, output, input read from the
// provider's prompt cache and input written to it (the last two default
// to the input price). A model without a price line takes its prices,
// and its context window, output limit and capabilities where it
// declares none, from the price tables by its upstream model id and
// provider name: first the file of `prices` (LiteLLM's
// model_prices_and_context_window.json format), then the built-in table
// of common models. A price line always wins, `price 0 0` included.
// Models of a local Ollama provider cost 0 unless priced; any other model
// found in no table costs 0 and is reported in a warning.
//
// cache turns on the response cache (a bare `cache` takes the defaults:
// ttl 1h, entries up to 1MiB, temperatures up to 1.0, compressed but not
// encrypted); encryption_key_env names the environment variable holding
// a 32-byte AES key in hex or base64. context tunes the delta context
// buffer, which is always served (defaults: 32MiB per context, sessions
// remembered 24h, context "default").
//
// overhead_header adds X-Llm-Overhead-Ms (the gateway's own time until
// the answer's headers are sent) to generation answers; the metric
// llmgate_overhead_seconds and the access-log field llm_overhead_ms are
// there either way.
//
// Token counts accept k and M suffixes (128k, 1M). api_key is normally
// "{env.NAME}": an empty value makes the provider unavailable rather than
// failing the config. The option may appear more than once; the blocks
// are merged.
//
// In the router block, keywords, tier and fallback may repeat; tier
// names are trivial, operational, standard, complex and deep, and a
// phrase with spaces is quoted. A keyword phrase matches whole words; a
// trailing * makes it a stem ("flaky test*" also matches "flaky tests").
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if existing != nil {
		prev, ok := existing.(httpcaddyfile.App)
		if !ok {
			return nil, d.Errf("unexpected existing llm option value %T", existing)
		}
		if err := caddyconfigUnmarshal(prev.Value, app); err != nil {
			return nil, err
		}
	}
	// Lines of references, so cross-reference errors name their line.
	type ref struct {
		name string
		file string
		line int
	}
	modelProvider := map[string]ref{}
	var aliasRefs []ref
	var aliasNames []string
	var routerRefs []routerRef
	providers := map[string]bool{}
	models := map[string]bool{}
	for _, p := range app.Providers {
		providers[p.Name] = true
	}
	for _, m := range app.Models {
		models[m.ID] = true
	}

	d.Next() // the option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "storage":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			app.Storage = d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		case "timezone":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if _, err := time.LoadLocation(v); err != nil {
				return nil, d.Errf("timezone: %v", err)
			}
			app.Timezone = v
		case "prices":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			app.PricesFile = v
		case "max_body":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			n, err := humanize.ParseBytes(d.Val())
			if err != nil || n == 0 {
				return nil, d.Errf("max_body: invalid size %q", d.Val())
			}
			app.MaxBodyBytes = int64(n)
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		case "sync_writes":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			app.SyncWrites = true
		case "overhead_header":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			app.OverheadHeader = true
		case "provider":
			p, err := parseProvider(d)
			if err != nil {
				return nil, err
			}
			if providers[p.Name] {
				return nil, d.Errf("provider %s declared twice", p.Name)
			}
			providers[p.Name] = true
			app.Providers = append(app.Providers, p)
		case "model":
			m, line, err := parseModel(d)
			if err != nil {
				return nil, err
			}
			if models[m.ID] {
				return nil, d.Errf("model %s declared twice", m.ID)
			}
			models[m.ID] = true
			modelProvider[m.ID] = ref{m.Provider, d.File(), line}
			app.Models = append(app.Models, m)
		case "alias":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Errf("alias needs a name and a model: alias <name> <model>")
			}
			if app.Aliases == nil {
				app.Aliases = map[string]string{}
			}
			if _, dup := app.Aliases[args[0]]; dup {
				return nil, d.Errf("alias %s declared twice", args[0])
			}
			app.Aliases[args[0]] = args[1]
			aliasNames = append(aliasNames, args[0])
			aliasRefs = append(aliasRefs, ref{args[1], d.File(), d.Line()})
		case "cache", "context":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			var err error
			if d.Val() == "cache" {
				if app.Cache == nil {
					app.Cache = &CacheConfig{}
				}
				err = parseCache(d, app.Cache)
			} else {
				if app.Context == nil {
					app.Context = &ContextConfig{}
				}
				err = parseContext(d, app.Context)
			}
			if err != nil {
				return nil, err
			}
		case "router":
			if app.Router == nil {
				app.Router = &RouterConfig{}
			}
			refs, err := parseRouter(d, app.Router)
			if err != nil {
				return nil, err
			}
			routerRefs = append(routerRefs, refs...)
		default:
			return nil, d.Errf("unrecognized llm option %q (valid: storage, max_body, sync_writes, overhead_header, timezone, prices, cache, context, provider, model, alias, router)", d.Val())
		}
	}
	for _, m := range app.Models {
		r, ok := modelProvider[m.ID]
		if !ok {
			continue
		}
		if r.name == "" {
			return nil, fmt.Errorf("%s:%d - model %s: no provider (give it as `model %s <provider>` or a `provider` line)", r.file, r.line, m.ID, m.ID)
		}
		if !providers[r.name] {
			return nil, fmt.Errorf("%s:%d - model %s: unknown provider %s", r.file, r.line, m.ID, r.name)
		}
	}
	for i, r := range aliasRefs {
		if models[aliasNames[i]] {
			return nil, fmt.Errorf("%s:%d - alias %s has the name of a model", r.file, r.line, aliasNames[i])
		}
		if !models[r.name] {
			return nil, fmt.Errorf("%s:%d - alias %s: unknown model %s", r.file, r.line, aliasNames[i], r.name)
		}
	}
	known := func(name string) bool {
		_, alias := app.Aliases[name]
		return models[name] || alias
	}
	for _, r := range routerRefs {
		switch {
		case r.key:
			_, tierErr := routing.ParseTier(r.name)
			builtin := false
			for _, a := range routing.BuiltinAliases() {
				builtin = builtin || a == r.name
			}
			if !known(r.name) && tierErr != nil && !builtin {
				return nil, fmt.Errorf("%s:%d - router: fallback %s: neither a model, an alias nor a tier", r.file, r.line, r.name)
			}
		case !known(r.name):
			return nil, fmt.Errorf("%s:%d - router: %s: unknown model %s", r.file, r.line, r.opt, r.name)
		}
	}
	return httpcaddyfile.App{Name: "llm", Value: caddyconfig.JSON(app, nil)}, nil
}

// routerRef is a name a router option refers to, with its line: a model
// (or alias) of a tier or fallback list, or the key of a fallback.
type routerRef struct {
	opt, name, file string
	line            int
	key             bool
}

func parseProvider(d *caddyfile.Dispenser) (ProviderConfig, error) {
	var p ProviderConfig
	if !d.NextArg() {
		return p, d.Errf("provider needs a name: provider <name> { ... }")
	}
	p.Name = d.Val()
	if d.NextArg() {
		return p, d.ArgErr()
	}
	// Options that take one string, by name.
	strOpts := map[string]*string{"api_key": &p.APIKey, "health_uri": &p.HealthURI, "lb_policy": &p.LBPolicy,
		"tls_server_name": &p.TLSServerName, "region": &p.Region, "aws_profile": &p.AWSProfile}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if dst, ok := strOpts[key]; ok {
			v, err := oneArg(d)
			if err != nil {
				return p, err
			}
			*dst = v
			continue
		}
		switch key {
		case "dialect":
			v, err := oneArg(d)
			if err != nil {
				return p, err
			}
			if _, err := dialects.ParseProvider(v); err != nil {
				return p, d.Errf("provider %s: %v", p.Name, err)
			}
			p.Dialect = v
		case "url":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return p, d.ArgErr()
			}
			for _, a := range args {
				if !strings.Contains(a, "{") {
					if _, err := parseProviderURL(a); err != nil {
						return p, d.Errf("provider %s: %v", p.Name, err)
					}
				}
			}
			p.URLs = append(p.URLs, args...)
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return p, d.Errf("header needs a field and a value: header <field> <value>")
			}
			if p.Headers == nil {
				p.Headers = map[string]string{}
			}
			p.Headers[args[0]] = args[1]
		case "dial_timeout", "response_header_timeout", "health_interval", "fail_duration":
			dur, err := durationArg(d, key)
			if err != nil {
				return p, err
			}
			switch key {
			case "dial_timeout":
				p.DialTimeout = dur
			case "response_header_timeout":
				p.ResponseHeaderTimeout = dur
			case "health_interval":
				p.HealthInterval = dur
			case "fail_duration":
				p.FailDuration = dur
			}
		default:
			return p, d.Errf("provider %s: unrecognized option %q (valid: dialect, url, api_key, region, aws_profile, header, dial_timeout, response_header_timeout, health_uri, health_interval, fail_duration, lb_policy, tls_server_name)", p.Name, key)
		}
	}
	if len(p.URLs) == 0 {
		return p, d.Errf("provider %s: missing url", p.Name)
	}
	return p, nil
}

// parseModel parses one model declaration and returns it with the line
// its provider was named on.
func parseModel(d *caddyfile.Dispenser) (ModelConfig, int, error) {
	var m ModelConfig
	line := d.Line()
	args := d.RemainingArgs()
	if len(args) == 0 || len(args) > 3 {
		return m, line, d.Errf("model needs an id: model <id> [<provider> [<upstream-model>]]")
	}
	m.ID = args[0]
	if len(args) > 1 {
		m.Provider = args[1]
	}
	if len(args) > 2 {
		m.UpstreamModel = args[2]
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		switch key {
		case "provider":
			v, err := oneArg(d)
			if err != nil {
				return m, line, err
			}
			m.Provider, line = v, d.Line()
		case "upstream":
			v, err := oneArg(d)
			if err != nil {
				return m, line, err
			}
			m.UpstreamModel = v
		case "price":
			args := d.RemainingArgs()
			if len(args) < 2 || len(args) > 4 {
				return m, line, d.Errf("price needs input and output prices per 1M tokens: price <input> <output> [<cached-input> [<cache-write>]]")
			}
			// A price line replaces an earlier one whole; the values it
			// leaves out stay unset (they default to the input price).
			var prices [4]*float64
			for i, a := range args {
				f, err := parseUSD(a)
				if err != nil {
					return m, line, d.Errf("price: %v", err)
				}
				prices[i] = &f
			}
			m.InputPrice, m.OutputPrice, m.CachedInputPrice, m.CacheWritePrice = prices[0], prices[1], prices[2], prices[3]
		case "context", "max_output":
			v, err := oneArg(d)
			if err != nil {
				return m, line, err
			}
			n, err := parseTokens(v)
			if err != nil {
				return m, line, d.Errf("%s: %v", key, err)
			}
			if key == "context" {
				m.ContextWindow = n
			} else {
				m.MaxOutputTokens = n
			}
		case "capabilities":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return m, line, d.ArgErr()
			}
			for _, a := range args {
				if _, err := routing.ParseCapability(a); err != nil {
					return m, line, d.Errf("model %s: %v", m.ID, err)
				}
			}
			m.Capabilities = append(m.Capabilities, args...)
		case "tiers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return m, line, d.ArgErr()
			}
			for _, a := range args {
				if _, err := routing.ParseTier(a); err != nil {
					return m, line, d.Errf("model %s: %v", m.ID, err)
				}
			}
			m.Tiers = append(m.Tiers, args...)
		default:
			return m, line, d.Errf("model %s: unrecognized option %q (valid: provider, upstream, price, context, max_output, capabilities, tiers)", m.ID, key)
		}
	}
	return m, line, nil
}

// parseRouter reads the router block of the llm option (see
// parseGlobalOption for its syntax) into rc. It returns the models the
// block refers to, checked once every model is known.
func parseRouter(d *caddyfile.Dispenser, rc *RouterConfig) ([]routerRef, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var refs []routerRef
	listOf := func(m *map[string][]string, what, key string) error {
		args := d.RemainingArgs()
		if len(args) < 2 {
			return d.Errf("%s needs a name and at least one value", what)
		}
		if key != "" {
			args[0] = key
		}
		if *m == nil {
			*m = map[string][]string{}
		}
		(*m)[args[0]] = append((*m)[args[0]], args[1:]...)
		if what != "keywords" {
			if what == "fallback" {
				refs = append(refs, routerRef{opt: what, name: args[0], file: d.File(), line: d.Line(), key: true})
			}
			for _, a := range args[1:] {
				refs = append(refs, routerRef{opt: what + " " + args[0], name: a, file: d.File(), line: d.Line()})
			}
		}
		return nil
	}
	tier := func(s string) error {
		if _, err := routing.ParseTier(s); err != nil {
			return d.Err(err.Error())
		}
		return nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "default_tier":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if err := tier(v); err != nil {
				return nil, err
			}
			rc.DefaultTier = v
		case "keywords", "tier":
			m := &rc.Keywords
			if opt == "tier" {
				m = &rc.Tiers
			}
			if d.NextArg() {
				t, err := routing.ParseTier(d.Val())
				if err != nil {
					return nil, d.Err(err.Error())
				}
				d.Prev()
				// One key per tier, whatever its case.
				if err := listOf(m, opt, string(t)); err != nil {
					return nil, err
				}
			} else if err := listOf(m, opt, ""); err != nil {
				return nil, err
			}
		case "fallback":
			if err := listOf(&rc.Fallbacks, "fallback", ""); err != nil {
				return nil, err
			}
		case "retries", "breaker_threshold":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || opt == "breaker_threshold" && n == 0 {
				return nil, d.Errf("%s: invalid number %q", opt, v)
			}
			if opt == "retries" {
				rc.Retries = &n
			} else {
				rc.BreakerThreshold = n
			}
		case "retry_backoff", "max_retry_wait", "breaker_cooldown":
			dur, err := durationArg(d, opt)
			if err != nil {
				return nil, err
			}
			switch opt {
			case "retry_backoff":
				rc.RetryBackoff = dur
			case "max_retry_wait":
				rc.MaxRetryWait = dur
			default:
				rc.BreakerCooldown = dur
			}
		case "proxy_info":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			switch v {
			case "on":
				rc.DisableProxyInfo = false
			case "off":
				rc.DisableProxyInfo = true
			default:
				return nil, d.Errf("proxy_info: expected on or off, got %q", v)
			}
		default:
			return nil, d.Errf("unrecognized router option %q (valid: default_tier, keywords, tier, fallback, retries, retry_backoff, max_retry_wait, breaker_threshold, breaker_cooldown, proxy_info)", opt)
		}
	}
	return refs, nil
}

// parseTokens reads a token count such as 8192, 128k or 1M.
func parseTokens(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1000, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1000000, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid token count %q", s)
	}
	return n * mult, nil
}

// parseCache reads the cache block of the llm option:
//
//	cache {
//		ttl                <duration>
//		max_entry_size     <size>
//		max_temperature    <number>
//		encryption_key_env <ENV_NAME>
//	}
func parseCache(d *caddyfile.Dispenser, c *CacheConfig) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		switch name {
		case "ttl":
			t, err := caddy.ParseDuration(v)
			if err != nil || t < time.Second {
				return d.Errf("cache: ttl: want a duration of at least 1s, got %q", v)
			}
			c.TTL = caddy.Duration(t)
		case "max_entry_size":
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 256<<20 {
				return d.Errf("cache: max_entry_size: invalid size %q (at most 256MiB)", v)
			}
			c.MaxEntryBytes = int(n)
		case "max_temperature":
			t, err := strconv.ParseFloat(v, 64)
			if err != nil || t < 0 {
				return d.Errf("cache: max_temperature: want a number of 0 or more, got %q", v)
			}
			c.MaxTemperature = &t
		case "encryption_key_env":
			c.EncryptionKeyEnv = v
		default:
			return d.Errf("unrecognized cache option %q (valid: ttl, max_entry_size, max_temperature, encryption_key_env)", name)
		}
	}
	return nil
}

// parseContext reads the context block of the llm option:
//
//	context {
//		max_size    <size>
//		session_ttl <duration>
//		default_id  <name>
//	}
func parseContext(d *caddyfile.Dispenser, c *ContextConfig) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		switch name {
		case "max_size":
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 || n > 1<<34 {
				return d.Errf("context: max_size: invalid size %q", v)
			}
			c.MaxBytes = int64(n)
		case "session_ttl":
			t, err := caddy.ParseDuration(v)
			if err != nil || t <= 0 {
				return d.Errf("context: session_ttl: want a positive duration, got %q", v)
			}
			c.SessionTTL = caddy.Duration(t)
		case "default_id":
			if err := contextbuf.CheckID(v); err != nil {
				return d.Errf("context: default_id: %v", err)
			}
			c.DefaultID = v
		default:
			return d.Errf("unrecognized context option %q (valid: max_size, session_ttl, default_id)", name)
		}
	}
	return nil
}

// durationArg reads the one argument of option name, a positive
// duration.
func durationArg(d *caddyfile.Dispenser, name string) (caddy.Duration, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: invalid duration %q", name, v)
	}
	return caddy.Duration(dur), nil
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

// parseRoute sets up llm_route:
//
//	llm_route [<matcher>] {
//		default_model <model|alias|tier|auto>
//		max_body      <size>
//	}
//
// default_model is used for requests that name no model; without it the
// router chooses from the request's content (as for "auto").
func parseRoute(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Route)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile reads the llm_route directive; see parseRoute for
// its syntax.
func (m *Route) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "default_model":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			m.DefaultModel = v
		case "max_body":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 {
				return d.Errf("max_body: invalid size %q", v)
			}
			m.MaxBodyBytes = int64(n)
		default:
			return d.Errf("unrecognized llm_route option %q (valid: default_model, max_body)", d.Val())
		}
	}
	return nil
}

// parseTranslate sets up llm_translate, which takes no options:
//
//	llm_translate [<matcher>]
func parseTranslate(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Translate)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile reads the llm_translate directive; see
// parseTranslate for its syntax.
func (m *Translate) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("llm_translate takes no options, found %q", d.Val())
	}
	return nil
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*Route)(nil)
	_ caddyfile.Unmarshaler = (*Translate)(nil)
)

// caddyconfigUnmarshal decodes a JSON app value produced earlier by this
// parser (a repeated global option).
func caddyconfigUnmarshal(raw []byte, app *App) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, app)
}
