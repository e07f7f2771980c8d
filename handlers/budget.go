package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/keys"
	"github.com/llmgate/caddy-llmgate/ledger"
)

// Limits are a daily and a monthly USD limit; 0 means none.
type Limits struct {
	Daily   float64
	Monthly float64
}

// Budget is the llm_budget middleware: it identifies the client by its
// gateway key (or lets it in anonymously from configured networks),
// removes the key from the request so it never travels further, answers
// GET /v1/budget, and hands the limits that apply to llm_route, which
// reserves each request's largest possible cost before sending it
// upstream and settles the actual cost when the answer ends.
type Budget struct {
	GW *Gateway
	// Keys are the keys declared in the config.
	Keys *keys.Set
	// Store returns the keys created through the admin API (nil while
	// storage is not open).
	Store func() *keys.Store
	// Global limits the whole gateway; KeyDefault limits each key that
	// has no limits of its own (and anonymous use).
	Global, KeyDefault Limits
	// Session limits the spend of one X-Session-Id of a key; 0: none.
	Session float64
	// PerRequest caps the largest possible cost of one request; 0: none.
	PerRequest float64
	// Anonymous lists the networks whose clients may send requests
	// without a key; from them an unknown key counts as none (tools
	// often insist on sending one), a revoked key is still refused.
	Anonymous []netip.Prefix
	// DefaultMaxTokens is the output assumed for the reservation of a
	// request that sets no output limit, for a model whose own limit is
	// unknown.
	DefaultMaxTokens int
}

// DefaultAssumedOutput is Budget.DefaultMaxTokens when unset.
const DefaultAssumedOutput = 4096

// Account is who a request is charged to and what limits it has; the
// budget middleware puts it in the request context for llm_route.
type Account struct {
	// KeyID is the key's name (ledger.Anonymous without a key).
	KeyID string
	// Session is the client's X-Session-Id ("" when none).
	Session string
	// Limits are the limits that apply, all checked together.
	Limits []ledger.Limit
	// PerRequest caps one request's largest possible cost; 0: none.
	PerRequest float64
	// AssumedOutput is the output, in tokens, reserved for a request
	// without an output limit.
	AssumedOutput int
}

type accountKey struct{}

// WithAccount returns ctx carrying a.
func WithAccount(ctx context.Context, a *Account) context.Context {
	return context.WithValue(ctx, accountKey{}, a)
}

// AccountFrom returns the account llm_budget attached, or nil.
func AccountFrom(ctx context.Context) *Account {
	a, _ := ctx.Value(accountKey{}).(*Account)
	return a
}

// keyHeaders are the request headers a client may carry its gateway key
// in: OpenAI-style bearer tokens, Anthropic's x-api-key, Azure's api-key
// and Gemini's x-goog-api-key.
var keyHeaders = []string{"X-Api-Key", "Api-Key", "X-Goog-Api-Key"}

// credential takes the client's key out of r (headers and the key query
// parameter Gemini clients use), so nothing further down sees it.
func credential(r *http.Request) string {
	secret := ""
	if v := r.Header.Get("Authorization"); v != "" {
		if t, ok := cutPrefixFold(v, "Bearer "); ok {
			secret = strings.TrimSpace(t)
		}
	}
	for _, k := range keyHeaders {
		if v := strings.TrimSpace(r.Header.Get(k)); v != "" && secret == "" {
			secret = v
		}
	}
	if q := r.URL.Query(); q.Has("key") {
		if secret == "" {
			secret = q.Get("key")
		}
		q.Del("key")
		r.URL.RawQuery = q.Encode()
		r.RequestURI = r.URL.RequestURI()
	}
	r.Header.Del("Authorization")
	for _, k := range keyHeaders {
		r.Header.Del(k)
	}
	return secret
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}

// maxSessionID bounds X-Session-Id: it is stored in every ledger entry.
const maxSessionID = 128

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (b *Budget) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	d := dialects.OpenAI
	ep, ok := dialects.ClientEndpoint(r.Method, r.URL.Path)
	if ok || ep.Name != "" {
		d = ep.Dialect
	}
	if ep.Name == "health" {
		// Load balancers and uptime checks have no key; health tells
		// which providers are usable, never a secret.
		return next.ServeHTTP(w, r)
	}
	secret := credential(r)
	acct := &Account{PerRequest: b.PerRequest, AssumedOutput: b.DefaultMaxTokens}
	if acct.AssumedOutput <= 0 {
		acct.AssumedOutput = DefaultAssumedOutput
	}
	lim := b.KeyDefault
	if secret == "" {
		if !b.anonymousOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="llm gateway"`)
			dialects.WriteError(w, d, &dialects.Error{Status: http.StatusUnauthorized, Code: "missing_api_key",
				Message: "this gateway needs a key: send it as Authorization: Bearer <key> or x-api-key (ask the gateway's admin for one)"})
			return nil
		}
		acct.KeyID = ledger.Anonymous
	} else {
		sum := keys.Sum(secret)
		k, ok := b.Keys.Match(sum)
		if !ok && b.Store != nil {
			k, ok = b.Store().Match(sum)
		}
		switch {
		case !ok && b.anonymousOK(r):
			// Tools insist on sending some key; from a network allowed
			// in without one, an unknown key counts as none.
			acct.KeyID = ledger.Anonymous
		case !ok:
			w.Header().Set("WWW-Authenticate", `Bearer realm="llm gateway", error="invalid_token"`)
			dialects.WriteError(w, d, &dialects.Error{Status: http.StatusUnauthorized, Code: "invalid_api_key",
				Message: "the key is not valid for this gateway"})
			return nil
		case k.Revoked != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="llm gateway", error="invalid_token"`)
			dialects.WriteError(w, d, &dialects.Error{Status: http.StatusUnauthorized, Code: "revoked_api_key",
				Message: "the key " + k.Name + " was revoked"})
			return nil
		default:
			acct.KeyID = k.Name
		}
		if acct.KeyID != ledger.Anonymous && (k.DailyUSD > 0 || k.MonthlyUSD > 0) {
			lim = Limits{Daily: k.DailyUSD, Monthly: k.MonthlyUSD}
		}
	}
	s, serr := sessionID(r)
	if serr != nil {
		dialects.WriteError(w, d, serr)
		return nil
	}
	acct.Session = s
	acct.Limits = b.limits(lim, acct.Session != "")
	r = r.WithContext(WithAccount(r.Context(), acct))
	if strings.TrimSuffix(r.URL.Path, "/") == "/v1/budget" {
		return b.serveBudget(w, r, acct)
	}
	return next.ServeHTTP(w, r)
}

func (b *Budget) limits(key Limits, session bool) []ledger.Limit {
	var out []ledger.Limit
	add := func(scope string, w ledger.Window, usd float64) {
		if usd > 0 {
			out = append(out, ledger.Limit{Scope: scope, Window: w, USD: usd})
		}
	}
	add(ledger.ScopeGlobal, ledger.Daily, b.Global.Daily)
	add(ledger.ScopeGlobal, ledger.Monthly, b.Global.Monthly)
	add(ledger.ScopeKey, ledger.Daily, key.Daily)
	add(ledger.ScopeKey, ledger.Monthly, key.Monthly)
	if session {
		add(ledger.ScopeSession, ledger.Lifetime, b.Session)
	}
	return out
}

// anonymousOK reports whether r's client may go without a key.
func (b *Budget) anonymousOK(r *http.Request) bool {
	if len(b.Anonymous) == 0 {
		return false
	}
	// The client's address as Caddy resolved it (through the server's
	// trusted_proxies), else the connection's.
	addr := r.RemoteAddr
	if v, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && v != "" {
		addr = v
	}
	ap, err := netip.ParseAddrPort(addr)
	var ip netip.Addr
	if err == nil {
		ip = ap.Addr()
	} else if ip, err = netip.ParseAddr(addr); err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range b.Anonymous {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// sessionID reads X-Session-Id ("" when absent): at most maxSessionID
// printable ASCII characters, else a 400.
func sessionID(r *http.Request) (string, *dialects.Error) {
	s := r.Header.Get("X-Session-Id")
	if len(s) > maxSessionID || !printable(s) {
		return "", &dialects.Error{Status: http.StatusBadRequest, Param: "X-Session-Id",
			Message: "X-Session-Id must be at most 128 printable ASCII characters"}
	}
	return s, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// BudgetReport is the answer of GET /v1/budget.
type BudgetReport struct {
	Key     string `json:"key"`
	Session string `json:"session,omitempty"`
	// TodayUSD and MonthUSD are the key's spend in the current windows.
	TodayUSD float64 `json:"spent_today_usd"`
	MonthUSD float64 `json:"spent_month_usd"`
	// Limits are the limits that apply, tightest first.
	Limits []ledger.Remaining `json:"limits"`
	// PerRequestUSD caps one request's largest possible cost.
	PerRequestUSD float64 `json:"per_request_usd,omitempty"`
	TimeZone      string  `json:"time_zone"`
}

func (b *Budget) serveBudget(w http.ResponseWriter, r *http.Request, a *Account) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		dialects.WriteError(w, dialects.OpenAI, dialects.Errorf(http.StatusMethodNotAllowed, "method %s is not allowed on /v1/budget", r.Method))
		return nil
	}
	l := b.GW.waitLedger()
	if l == nil {
		dialects.WriteError(w, dialects.OpenAI, &dialects.Error{Status: http.StatusServiceUnavailable, Message: "the gateway's storage is not open yet"})
		return nil
	}
	now := b.GW.Now()
	rep := BudgetReport{Key: a.KeyID, Session: a.Session, PerRequestUSD: a.PerRequest, TimeZone: l.Location().String(),
		TodayUSD: l.Spent(now, ledger.ScopeKey, a.KeyID, "", ledger.Daily),
		MonthUSD: l.Spent(now, ledger.ScopeKey, a.KeyID, "", ledger.Monthly),
		Limits:   l.Remaining(now, a.KeyID, a.Session, a.Limits)}
	if rep.Limits == nil {
		rep.Limits = []ledger.Remaining{}
	}
	out, _ := json.Marshal(rep)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(out)
	}
	return nil
}

// reserve holds the request's largest possible cost for the account:
// its estimated input plus its output limit, priced at the dearest
// target of the plan (a fallback may land there). The error is ready for
// the client: 400 when one request may cost more than the per-request
// cap, 429 when a limit has no room (the refusal then says which), 503
// when storage is not open.
func (g *Gateway) reserve(a *Account, ex *Exchange, f *analysis) (*ledger.Hold, *ledger.Refusal, *dialects.Error) {
	in := len(ex.Body) / 4
	maxOut := 0
	if f != nil {
		in = f.EstimatedInputTokens()
		maxOut = f.MaxOutput
	}
	var worst float64
	for i := range ex.Plan.Candidates {
		m := ex.Plan.Candidates[i].Model
		// The most the model may write: the client's limit (never more
		// than the model's), else the model's own limit (what a request
		// without one may run to), else the assumed output.
		out := maxOut
		switch {
		case out > 0 && m.MaxOutput > 0:
			out = min(out, m.MaxOutput)
		case out <= 0 && m.MaxOutput > 0:
			out = m.MaxOutput
		case out <= 0:
			out = a.AssumedOutput
		}
		// Every input token at the dearer of the input and cache-write
		// prices.
		c := ledger.Cost(ledger.Prices{Input: max(m.Prices.Input, m.Prices.CacheWrite), Output: m.Prices.Output}, ledger.Tokens{Input: in, Output: out})
		worst = max(worst, c)
	}
	if a.PerRequest > 0 && worst > a.PerRequest {
		return nil, nil, &dialects.Error{Status: http.StatusBadRequest, Code: "request_over_cap", Param: "max_tokens",
			Message: "this request may cost up to $" + strconv.FormatFloat(worst, 'f', 4, 64) + ", more than the gateway's per-request cap of $" +
				strconv.FormatFloat(a.PerRequest, 'f', 2, 64) + ": lower max_tokens or shorten the input"}
	}
	l := g.waitLedger()
	if l == nil {
		return nil, nil, &dialects.Error{Status: http.StatusServiceUnavailable, Message: "the gateway's storage is not open yet"}
	}
	h, ref := l.Reserve(ledger.Reservation{Time: ex.Start, KeyID: a.KeyID, Session: a.Session, USD: worst, Limits: a.Limits})
	if ref != nil {
		e := &dialects.Error{Status: http.StatusTooManyRequests, Code: "budget_exceeded", Message: ref.Error()}
		if !ref.Resets.IsZero() {
			e.RetryAfter = max(1, int(ref.Resets.Sub(g.Now()).Seconds()+0.999))
		}
		return nil, ref, e
	}
	return h, nil, nil
}

// setBudgetHeaders tells the client what is left of its tightest limit
// before this request.
func (g *Gateway) setBudgetHeaders(h http.Header, a *Account, ex *Exchange, hold *ledger.Hold) {
	l := g.ledger.Load()
	if l == nil || len(a.Limits) == 0 {
		return
	}
	rem := l.Remaining(ex.Start, a.KeyID, a.Session, a.Limits)
	if len(rem) == 0 {
		return
	}
	t := rem[0]
	// Remaining counts this request's own reservation as spent: add it
	// back, so the header says what was left when it arrived.
	left := min(t.LeftUSD+hold.USD(), t.USD)
	h.Set("X-Llm-Budget-Remaining-Usd", strconv.FormatFloat(left, 'f', 6, 64))
	h.Set("X-Llm-Budget-Limit-Usd", strconv.FormatFloat(t.USD, 'f', -1, 64))
	window := t.Scope + " " + t.Window
	if t.Scope == ledger.ScopeSession {
		window = t.Scope
	}
	h.Set("X-Llm-Budget-Window", window)
	if !t.Resets.IsZero() {
		h.Set("X-Llm-Budget-Reset", t.Resets.UTC().Format(time.RFC3339))
	}
}

// waitLedger returns the ledger, waiting briefly while storage opens.
func (g *Gateway) waitLedger() *ledger.Ledger {
	if l := g.ledger.Load(); l != nil {
		return l
	}
	g.waitReady()
	return g.ledger.Load()
}

// waitReady waits until storage is open (AttachLedger), at most
// ledgerWait.
func (g *Gateway) waitReady() {
	t := time.NewTimer(ledgerWait)
	defer t.Stop()
	select {
	case <-g.ready:
	case <-t.C:
	}
}
