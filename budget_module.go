package llmgate

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/llmgate/caddy-llmgate/handlers"
	"github.com/llmgate/caddy-llmgate/keys"
)

func init() {
	caddy.RegisterModule(Budget{})
}

// Budget is the llm_budget handler: client keys for team access and USD
// budgets. It identifies the caller by its gateway key (Authorization:
// Bearer, x-api-key, api-key, x-goog-api-key or ?key=), which it removes
// from the request, or lets it in without one from the Anonymous
// networks; answers GET /v1/budget with the caller's spend and limits;
// and has llm_route reserve each request's largest possible cost against
// the limits before it goes upstream, replacing the reservation with the
// actual cost when the answer ends. A request that would overrun a
// limit gets a 429 in the client's dialect saying which limit, what is
// spent and when it resets; answers carry x-llm-budget-* headers with
// what is left. It must come before llm_route.
type Budget struct {
	// Global limits the spend of the whole gateway (every key and
	// anonymous use together).
	Global *LimitsConfig `json:"global,omitempty"`

	// PerKey limits each key that declares no limits of its own, and
	// anonymous use (counted as the key "anonymous").
	PerKey *LimitsConfig `json:"per_key,omitempty"`

	// SessionUSD limits the spend of one session (X-Session-Id) of a
	// key; a session is forgotten after 24 hours without requests.
	SessionUSD float64 `json:"session_usd,omitempty"`

	// PerRequestUSD caps the largest possible cost of one request (its
	// estimated input plus its max_tokens at the dearest candidate's
	// prices); a request over it gets a 400.
	PerRequestUSD float64 `json:"per_request_usd,omitempty"`

	// Keys are client keys declared in the config, by the SHA-256 of the
	// secret (`caddy llm key hash` prints one). Keys created with
	// `caddy llm key create` live in storage and need no declaration.
	Keys []KeyConfig `json:"keys,omitempty"`

	// Anonymous lists the client networks (CIDR or single addresses;
	// "loopback", "private_ranges" and "any" are shortcuts) that may send
	// requests without a key (counted as the key "anonymous"), judged by
	// the client address Caddy resolves (see the server's
	// trusted_proxies); from them
	// an unknown key counts as none, since many tools insist on sending
	// one. Default: none; every request needs a key.
	Anonymous []string `json:"anonymous,omitempty"`

	// DefaultMaxTokens is the output, in tokens, reserved for a request
	// that sets no output limit when the model's max output is unknown
	// (when it is known, that is what such a request may cost).
	// Default: 4096.
	DefaultMaxTokens int `json:"default_max_tokens,omitempty"`

	h *handlers.Budget
}

// LimitsConfig is a daily and a monthly USD limit; 0 or absent: none.
type LimitsConfig struct {
	// DailyUSD resets at midnight in the llm app's time zone.
	DailyUSD float64 `json:"daily_usd,omitempty"`
	// MonthlyUSD resets on the first of the month.
	MonthlyUSD float64 `json:"monthly_usd,omitempty"`
}

// KeyConfig declares one client key.
type KeyConfig struct {
	// Name identifies the key in the ledger and in stats.
	Name string `json:"name"`
	// Hash is "sha256:" and the hex SHA-256 of the key.
	Hash string `json:"hash"`
	// DailyUSD and MonthlyUSD are the key's own limits, replacing the
	// per_key limits.
	DailyUSD   float64 `json:"daily_usd,omitempty"`
	MonthlyUSD float64 `json:"monthly_usd,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Budget) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.llm_budget", New: func() caddy.Module { return new(Budget) }}
}

// anonymousShortcuts expand to networks.
var anonymousShortcuts = map[string][]string{
	"loopback":       {"127.0.0.0/8", "::1/128"},
	"private_ranges": caddyhttp.PrivateRangesCIDR(),
	"any":            {"0.0.0.0/0", "::/0"},
}

// Provision checks the config and connects the handler to the llm app.
func (m *Budget) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	h := &handlers.Budget{GW: app.gw, Session: m.SessionUSD, PerRequest: m.PerRequestUSD, DefaultMaxTokens: m.DefaultMaxTokens,
		Store: app.KeyStore}
	if m.Global != nil {
		h.Global = handlers.Limits{Daily: m.Global.DailyUSD, Monthly: m.Global.MonthlyUSD}
	}
	if m.PerKey != nil {
		h.KeyDefault = handlers.Limits{Daily: m.PerKey.DailyUSD, Monthly: m.PerKey.MonthlyUSD}
	}
	var ks []keys.Key
	names := map[string]bool{}
	for _, k := range m.Keys {
		if err := keys.CheckName(k.Name); err != nil {
			return fmt.Errorf("llm_budget: %w", err)
		}
		if names[k.Name] {
			return fmt.Errorf("llm_budget: key %s declared twice", k.Name)
		}
		names[k.Name] = true
		if k.DailyUSD < 0 || k.MonthlyUSD < 0 {
			return fmt.Errorf("llm_budget: key %s: limits must not be negative", k.Name)
		}
		ks = append(ks, keys.Key{Name: k.Name, Hash: k.Hash, DailyUSD: k.DailyUSD, MonthlyUSD: k.MonthlyUSD, Source: "config"})
	}
	if h.Keys, err = keys.NewSet(ks); err != nil {
		return fmt.Errorf("llm_budget: %w", err)
	}
	for _, a := range m.Anonymous {
		nets, ok := anonymousShortcuts[a]
		if !ok {
			nets = []string{a}
		}
		for _, n := range nets {
			p, err := parsePrefix(n)
			if err != nil {
				return fmt.Errorf("llm_budget: anonymous: %v", err)
			}
			h.Anonymous = append(h.Anonymous, p)
		}
	}
	m.h = h
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("invalid network %q (want a CIDR such as 10.0.0.0/8, an address, loopback, private_ranges or any)", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid network %q (want a CIDR such as 10.0.0.0/8, an address, loopback, private_ranges or any)", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Validate checks values Provision does not already reject.
func (m *Budget) Validate() error {
	for _, l := range []*LimitsConfig{m.Global, m.PerKey} {
		if l != nil && (l.DailyUSD < 0 || l.MonthlyUSD < 0) {
			return errors.New("llm_budget: limits must not be negative")
		}
	}
	if m.SessionUSD < 0 || m.PerRequestUSD < 0 || m.DefaultMaxTokens < 0 {
		return errors.New("llm_budget: limits must not be negative")
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (m *Budget) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return m.h.ServeHTTP(w, r, next)
}

// parseBudget sets up llm_budget:
//
//	llm_budget [<matcher>] {
//		global             [daily <usd>] [monthly <usd>]
//		per_key            [daily <usd>] [monthly <usd>]
//		session            <usd>
//		per_request        <usd>
//		key                <name> <sha256:hex> [daily <usd>] [monthly <usd>]
//		anonymous          <cidr|address|loopback|private_ranges|any>...
//		default_max_tokens <tokens>
//	}
//
// Amounts are USD and may start with "$". Days and months begin in the
// llm app's time zone (option timezone). key may repeat; a key's own
// limits replace per_key. Without anonymous, every request needs a key.
func parseBudget(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Budget)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile reads the llm_budget directive; see parseBudget for
// its syntax.
func (m *Budget) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "global", "per_key":
			args := d.RemainingArgs()
			l, err := parseLimits(d, args)
			if err != nil {
				return err
			}
			if opt == "global" {
				m.Global = l
			} else {
				m.PerKey = l
			}
		case "session", "per_request":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			f, err := parseUSD(v)
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			if opt == "session" {
				m.SessionUSD = f
			} else {
				m.PerRequestUSD = f
			}
		case "key":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("key needs a name and a hash: key <name> <sha256:hex> [daily <usd>] [monthly <usd>]")
			}
			if err := keys.CheckName(args[0]); err != nil {
				return d.Err(err.Error())
			}
			if _, err := keys.ParseHash(args[1]); err != nil {
				return d.Errf("key %s: %v", args[0], err)
			}
			k := KeyConfig{Name: args[0], Hash: args[1]}
			if len(args) > 2 {
				l, err := parseLimits(d, args[2:])
				if err != nil {
					return err
				}
				k.DailyUSD, k.MonthlyUSD = l.DailyUSD, l.MonthlyUSD
			}
			for _, old := range m.Keys {
				if old.Name == k.Name {
					return d.Errf("key %s declared twice", k.Name)
				}
			}
			m.Keys = append(m.Keys, k)
		case "anonymous":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("anonymous needs networks: a CIDR, an address, loopback, private_ranges or any")
			}
			for _, a := range args {
				if _, ok := anonymousShortcuts[a]; !ok {
					if _, err := parsePrefix(a); err != nil {
						return d.Err(err.Error())
					}
				}
			}
			m.Anonymous = append(m.Anonymous, args...)
		case "default_max_tokens":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			n, err := parseTokens(v)
			if err != nil || n <= 0 {
				return d.Errf("default_max_tokens: invalid token count %q", v)
			}
			m.DefaultMaxTokens = n
		default:
			return d.Errf("llm_budget: unrecognized option %q (valid: global, per_key, session, per_request, key, anonymous, default_max_tokens)", opt)
		}
	}
	return nil
}

// parseLimits reads "[daily <usd>] [monthly <usd>]".
func parseLimits(d *caddyfile.Dispenser, args []string) (*LimitsConfig, error) {
	if len(args) == 0 || len(args)%2 != 0 {
		return nil, d.Errf("%s needs limits: daily <usd> and/or monthly <usd>", d.Val())
	}
	l := &LimitsConfig{}
	for i := 0; i < len(args); i += 2 {
		f, err := parseUSD(args[i+1])
		if err != nil {
			return nil, d.Errf("%s: %v", args[i], err)
		}
		switch args[i] {
		case "daily":
			l.DailyUSD = f
		case "monthly":
			l.MonthlyUSD = f
		default:
			return nil, d.Errf("unknown limit window %q (valid: daily, monthly)", args[i])
		}
	}
	return l, nil
}

// parseUSD reads an amount such as 5, 0.25 or $60.
func parseUSD(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimPrefix(s, "$"), 64)
	if err != nil || f < 0 || f != f || f > 1e9 {
		return 0, fmt.Errorf("invalid amount %q (USD, e.g. 5 or 0.25)", s)
	}
	return f, nil
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler = (*Budget)(nil)
	_ caddy.Provisioner           = (*Budget)(nil)
	_ caddy.Validator             = (*Budget)(nil)
	_ caddyfile.Unmarshaler       = (*Budget)(nil)
)
