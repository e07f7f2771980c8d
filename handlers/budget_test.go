package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dgraph-io/badger/v4"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/keys"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
)

const aliceKey = "sk-llm-alice-secret-0123456789"

// budgetEnv is an fbEnv with llm_budget in front of llm_route.
type budgetEnv struct {
	*fbEnv
	b *Budget
}

func newBudgetEnv(tb testing.TB, up *scripted, prices routing.Prices) *budgetEnv {
	tb.Helper()
	e := newFBEnv(tb, []fbTarget{{provider: "prov", dialect: "openai", model: "m1", prices: prices, up: up}}, nil)
	if err := e.led.SetLocation(time.UTC); err != nil {
		tb.Fatal(err)
	}
	set, err := keys.NewSet([]keys.Key{{Name: "alice", Hash: keys.Hash(aliceKey)}})
	if err != nil {
		tb.Fatal(err)
	}
	return &budgetEnv{fbEnv: e, b: &Budget{GW: e.g, Keys: set}}
}

// do sends one request through llm_budget → llm_route → llm_translate.
func (e *budgetEnv) do(tb testing.TB, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.7:40000"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
	route := &Route{GW: e.g}
	tr := &Translate{GW: e.g}
	chain := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return route.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
		}))
	})
	if err := e.b.ServeHTTP(rec, req, chain); err != nil {
		tb.Errorf("ServeHTTP: %v", err)
	}
	return rec
}

func bearer(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }

// TestBudgetHoldsUnderConcurrency sends 200 requests at once against a
// key budget that allows 50: the spend never passes the budget by more
// than one request's reservation, every request is answered (200 or a
// 429 in the client's dialect) and every one is in the ledger.
func TestBudgetHoldsUnderConcurrency(t *testing.T) {
	body := `{"model":"m1","max_tokens":10,"messages":[{"role":"user","content":"say hello"}]}`
	f, _, derr := RequestFeatures(dialects.OpenAI, []byte(body), dialects.Request{})
	if derr != nil {
		t.Fatal(derr)
	}
	in := f.EstimatedInputTokens()
	// $1000 per 1M tokens: a token costs a tenth of a cent.
	prices := routing.Prices{Input: 1000, Output: 1000}
	reservation := float64(in+10) * 0.001
	release := make(chan struct{})
	up := upstream(func(w http.ResponseWriter, r *http.Request, n int) error {
		<-release // every admitted request is in flight at once
		return reply(w, 200, nil, openAIAnswer("hello", in, 10))
	})
	e := newBudgetEnv(t, up, prices)
	e.b.KeyDefault = Limits{Daily: 50 * reservation}
	var wg sync.WaitGroup
	var mu sync.Mutex
	status := map[int]int{}
	var answered sync.WaitGroup
	answered.Add(200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			path, b := "/v1/chat/completions", body
			if i%2 == 1 {
				path = "/v1/messages"
			}
			rec := e.do(t, "POST", path, b, bearer(aliceKey))
			mu.Lock()
			status[rec.Code]++
			mu.Unlock()
			if rec.Code == 429 {
				msg := gjson.Get(rec.Body.String(), "error.message").String()
				if path == "/v1/messages" && gjson.Get(rec.Body.String(), "type").String() != "error" {
					t.Errorf("429 not in Anthropic's shape: %s", rec.Body)
				}
				if !strings.Contains(msg, "daily limit of this key") || !strings.Contains(msg, "resets at") || rec.Header().Get("Retry-After") == "" ||
					rec.Header().Get("X-Should-Retry") != "false" {
					t.Errorf("429: %v %s", rec.Header(), rec.Body)
				}
			}
		}(i)
	}
	// Let the refusals come back, then the admitted requests finish.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		refused := status[429]
		mu.Unlock()
		if refused+up.calls() >= 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	spent := e.led.Spent(e.clk.Now(), ledger.ScopeKey, "alice", "", ledger.Daily)
	t.Logf("statuses %v, spent $%.4f of $%.4f (one reservation $%.4f)", status, spent, 50*reservation, reservation)
	if spent > 50*reservation+reservation+1e-9 {
		t.Fatalf("spend $%v passed the budget $%v by more than one reservation", spent, 50*reservation)
	}
	if status[200] != 50 || status[429] != 150 {
		t.Errorf("statuses %v, want 50 answered and 150 refused", status)
	}
	es := e.entries(t)
	if len(es) != 200 {
		t.Fatalf("%d ledger entries, want 200", len(es))
	}
	var sum float64
	for _, en := range es {
		sum += en.CostUSD
		if en.KeyID != "alice" {
			t.Errorf("entry without the key id: %+v", en)
		}
		if en.Status == 429 && (en.ErrorKind != "budget" || en.CostUSD != 0) {
			t.Errorf("refusal entry %+v", en)
		}
	}
	if d := sum - spent; d > 1e-9 || d < -1e-9 {
		t.Errorf("ledger sum %v != counted spend %v", sum, spent)
	}
}

func TestBudgetKeys(t *testing.T) {
	up := always(200, nil, openAIAnswer("hi", 5, 5))
	e := newBudgetEnv(t, up, routing.Prices{Input: 1, Output: 2})
	ks := keysStore(t, e)
	bobKey, _, err := ks.Create("bob", 1, 10, e.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.b.Store = func() *keys.Store { return ks }

	// No key: 401 in the client's dialect.
	rec := e.do(t, "POST", "/v1/messages", `{"model":"m1","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, nil)
	if rec.Code != 401 || gjson.Get(rec.Body.String(), "error.type").String() != "authentication_error" || rec.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("no key: %d %s", rec.Code, rec.Body)
	}
	rec = e.do(t, "POST", "/v1/chat/completions", chat("m1"), bearer("sk-llm-wrong"))
	if rec.Code != 401 || gjson.Get(rec.Body.String(), "error.code").String() != "invalid_api_key" {
		t.Errorf("wrong key: %d %s", rec.Code, rec.Body)
	}
	if up.calls() != 0 {
		t.Fatal("a request without a valid key reached the provider")
	}
	// Config key as bearer, store key as x-api-key and as ?key=.
	for i, hdr := range []map[string]string{bearer(aliceKey), {"X-Api-Key": bobKey}, {"X-Goog-Api-Key": bobKey}} {
		rec = e.do(t, "POST", "/v1/chat/completions", chat("m1"), hdr)
		if rec.Code != 200 {
			t.Errorf("key %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec = e.do(t, "POST", "/v1/chat/completions?key="+bobKey, chat("m1"), nil)
	if rec.Code != 200 {
		t.Errorf("?key=: %d %s", rec.Code, rec.Body)
	}
	// The client's key never reaches the provider; the provider's does.
	for i, h := range up.hdrs {
		for k, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, aliceKey) || strings.Contains(v, bobKey) {
					t.Errorf("call %d: client key forwarded in %s", i, k)
				}
			}
		}
		if h.Get("Authorization") != "Bearer sk-prov" {
			t.Errorf("call %d: provider key not set: %q", i, h.Get("Authorization"))
		}
	}
	es := e.entries(t)
	if es[len(es)-1].KeyID != "bob" || es[0].KeyID != "alice" {
		t.Errorf("key ids %q .. %q", es[0].KeyID, es[len(es)-1].KeyID)
	}
	// A revoked key is refused.
	if _, err := ks.Revoke("bob", e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	rec = e.do(t, "POST", "/v1/chat/completions", chat("m1"), bearer(bobKey))
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), "revoked") {
		t.Errorf("revoked key: %d %s", rec.Code, rec.Body)
	}
	// Anonymous use from an allowed network only.
	e.b.Anonymous = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	rec = e.do(t, "POST", "/v1/chat/completions", chat("m1"), nil)
	if rec.Code != 200 {
		t.Errorf("anonymous from an allowed network: %d %s", rec.Code, rec.Body)
	}
	if en := e.lastEntry(t); en.KeyID != ledger.Anonymous {
		t.Errorf("anonymous entry key id %q", en.KeyID)
	}
	// From there, an unknown key counts as none; a revoked one does not.
	if rec = e.do(t, "POST", "/v1/chat/completions", chat("m1"), bearer("sk-dummy")); rec.Code != 200 || e.lastEntry(t).KeyID != ledger.Anonymous {
		t.Errorf("unknown key from an allowed network: %d %s", rec.Code, rec.Body)
	}
	if rec = e.do(t, "POST", "/v1/chat/completions", chat("m1"), bearer(bobKey)); rec.Code != 401 {
		t.Errorf("revoked key from an allowed network: %d", rec.Code)
	}
	e.b.Anonymous = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if rec = e.do(t, "POST", "/v1/chat/completions", chat("m1"), nil); rec.Code != 401 {
		t.Errorf("anonymous from another network: %d", rec.Code)
	}
}

func keysStore(tb testing.TB, e *budgetEnv) *keys.Store {
	tb.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	ks, err := keys.OpenStore(db)
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

func TestBudgetLimitsAndReport(t *testing.T) {
	up := always(200, nil, openAIAnswer("hi", 1000, 1000))
	e := newBudgetEnv(t, up, routing.Prices{Input: 100, Output: 100}) // $0.2 per answer
	e.b.Global = Limits{Daily: 100, Monthly: 1000}
	e.b.KeyDefault = Limits{Daily: 1}
	e.b.Session = 0.45
	e.b.PerRequest = 0.5
	sess := map[string]string{"Authorization": "Bearer " + aliceKey, "X-Session-Id": "task-1"}
	body := `{"model":"m1","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`
	rec := e.do(t, "POST", "/v1/chat/completions", body, sess)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("X-Llm-Budget-Remaining-Usd"); got != "0.450000" || rec.Header().Get("X-Llm-Budget-Window") != "session" {
		t.Errorf("budget headers: %v", rec.Header())
	}
	rec = e.do(t, "POST", "/v1/chat/completions", body, sess)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	// The session has $0.05 left: a third request does not fit.
	rec = e.do(t, "POST", "/v1/chat/completions", body, sess)
	if rec.Code != 429 || !strings.Contains(rec.Body.String(), "limit of this session") {
		t.Errorf("session over budget: %d %s", rec.Code, rec.Body)
	}
	// Another session of the key still may.
	sess["X-Session-Id"] = "task-2"
	if rec = e.do(t, "POST", "/v1/chat/completions", body, sess); rec.Code != 200 {
		t.Errorf("second session: %d %s", rec.Code, rec.Body)
	}
	// Per-request cap: 10k output tokens may cost $1.
	rec = e.do(t, "POST", "/v1/chat/completions", `{"model":"m1","max_tokens":10000,"messages":[{"role":"user","content":"hi"}]}`, bearer(aliceKey))
	if rec.Code != 400 || gjson.Get(rec.Body.String(), "error.code").String() != "request_over_cap" {
		t.Errorf("per-request cap: %d %s", rec.Code, rec.Body)
	}
	// GET /v1/budget reports the key's spend and limits.
	rec = e.do(t, "GET", "/v1/budget", "", bearer(aliceKey))
	if rec.Code != 200 {
		t.Fatalf("budget: %d %s", rec.Code, rec.Body)
	}
	var rep BudgetReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Key != "alice" || rep.TodayUSD < 0.599 || rep.TodayUSD > 0.601 || len(rep.Limits) != 3 || rep.Limits[0].Window != "daily" ||
		rep.Limits[0].Scope != ledger.ScopeKey || rep.PerRequestUSD != 0.5 || rep.TimeZone != "UTC" {
		t.Errorf("report %+v", rep)
	}
	if rec = e.do(t, "POST", "/v1/budget", "", bearer(aliceKey)); rec.Code != 405 {
		t.Errorf("POST /v1/budget: %d", rec.Code)
	}
}

// TestBudgetReleasedOnFailure: a request that fails everywhere costs
// nothing and leaves nothing reserved.
func TestBudgetReleasedOnFailure(t *testing.T) {
	up := always(500, nil, `{"error":{"message":"boom"}}`)
	e := newBudgetEnv(t, up, routing.Prices{Input: 100, Output: 100})
	e.g.Retries = 0
	e.b.KeyDefault = Limits{Daily: 0.15}
	for i := 0; i < 3; i++ {
		rec := e.do(t, "POST", "/v1/chat/completions", `{"model":"m1","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`, bearer(aliceKey))
		if rec.Code != 500 {
			t.Fatalf("attempt %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rem := e.led.Remaining(e.clk.Now(), "alice", "", []ledger.Limit{{Scope: ledger.ScopeKey, Window: ledger.Daily, USD: 0.15}})
	if rem[0].SpentUSD != 0 {
		t.Errorf("failed requests left $%v spent or reserved", rem[0].SpentUSD)
	}
}

// TestLedgerHoldsNoContent sends a request whose prompt, answer, tool
// arguments and key carry a marker, then reads every field of every
// ledger entry: none may hold the marker.
func TestLedgerHoldsNoContent(t *testing.T) {
	const marker = "ZEBRA-CANARY-7731"
	answer := fmt.Sprintf(`{"id":"c","object":"chat.completion","created":1,"model":"m1-up","choices":[{"index":0,"message":{"role":"assistant","content":"%s says hi","tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"%s\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":9,"completion_tokens":9}}`, marker, marker)
	up := always(200, nil, answer)
	e := newBudgetEnv(t, up, routing.Prices{Input: 1, Output: 1})
	set, _ := keys.NewSet([]keys.Key{{Name: "carol", Hash: keys.Hash("sk-" + marker)}})
	e.b.Keys = set
	body := `{"model":"m1","messages":[{"role":"system","content":"` + marker + `"},{"role":"user","content":"tell me ` + marker + `"}],` +
		`"tools":[{"type":"function","function":{"name":"lookup","description":"` + marker + `","parameters":{"type":"object"}}}]}`
	for _, path := range []string{"/v1/chat/completions", "/v1/messages"} {
		b := body
		if path == "/v1/messages" {
			b = `{"model":"m1","max_tokens":50,"system":"` + marker + `","messages":[{"role":"user","content":"tell me ` + marker + `"}]}`
		}
		rec := e.do(t, "POST", path, b, map[string]string{"Authorization": "Bearer sk-" + marker, "X-Session-Id": "s1"})
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), marker) {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
	es := e.entries(t)
	if len(es) != 2 {
		t.Fatalf("%d entries", len(es))
	}
	for _, en := range es {
		v := reflect.ValueOf(en)
		var walk func(v reflect.Value, name string)
		walk = func(v reflect.Value, name string) {
			switch v.Kind() {
			case reflect.Struct:
				for i := 0; i < v.NumField(); i++ {
					walk(v.Field(i), name+"."+v.Type().Field(i).Name)
				}
			case reflect.String:
				if strings.Contains(v.String(), marker) {
					t.Errorf("ledger field %s holds content: %q", name, v.String())
				}
			}
		}
		walk(v, "Entry")
		raw, _ := json.Marshal(en)
		if strings.Contains(string(raw), marker) {
			t.Errorf("ledger entry holds content: %s", raw)
		}
		if en.KeyID != "carol" || en.Session != "s1" || en.CostUSD == 0 {
			t.Errorf("entry %+v", en)
		}
	}
}

// TestReservationWithoutMaxTokens: a request without an output limit may
// run to the model's own limit, and is reserved (and capped) as such.
func TestReservationWithoutMaxTokens(t *testing.T) {
	up := always(200, nil, openAIAnswer("hi", 5, 5))
	e := newBudgetEnv(t, up, routing.Prices{Input: 100, Output: 100})
	e.g.Catalog.Model("m1").MaxOutput = 50_000 // up to $5 of output
	e.b.PerRequest = 1
	rec := e.do(t, "POST", "/v1/chat/completions", chat("m1"), bearer(aliceKey))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "per-request cap") {
		t.Errorf("no max_tokens on a 50k-output model under a $1 cap: %d %s", rec.Code, rec.Body)
	}
	rec = e.do(t, "POST", "/v1/chat/completions", `{"model":"m1","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, bearer(aliceKey))
	if rec.Code != 200 {
		t.Errorf("with max_tokens: %d %s", rec.Code, rec.Body)
	}
	// A max_tokens beyond the model's limit is reserved at the limit.
	e.b.PerRequest = 6
	rec = e.do(t, "POST", "/v1/chat/completions", `{"model":"m1","max_tokens":1000000000000,"messages":[{"role":"user","content":"hi"}]}`, bearer(aliceKey))
	if rec.Code != 200 {
		t.Errorf("huge max_tokens: %d %s", rec.Code, rec.Body)
	}
}
