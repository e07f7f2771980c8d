package handlers

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dgraph-io/badger/v4"

	"github.com/llmgate/caddy-llmgate/keys"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
)

// BenchmarkRouteExplicit measures llm_route + llm_translate on the
// pass-through path for a request that names its model (no content
// analysis), with the _proxy object on and off: the cost of planning,
// the attempt writer and the ledger entry around a fake upstream.
func BenchmarkRouteExplicit(b *testing.B) {
	c, up := benchTarget(b)
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	body := `{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("word ", 200) + `"}]}`
	for _, proxyInfo := range []bool{false, true} {
		name := "proxy_info=off"
		if proxyInfo {
			name = "proxy_info=on"
		}
		b.Run(name, func(b *testing.B) {
			g := NewGateway(c, map[string]caddyhttp.MiddlewareHandler{"p": fakeProxy{up}}, 0, nil)
			g.ProxyInfo = proxyInfo
			l := ledger.New(db)
			g.AttachLedger(l)
			route, tr := &Route{GW: g}, &Translate{GW: g}
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
			})
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
				rec := httptest.NewRecorder()
				req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
				if err := route.ServeHTTP(rec, req, next); err != nil || rec.Code != 200 {
					b.Fatal(err, rec.Code)
				}
			}
		})
	}
}

// benchTarget is the catalog of the route benchmarks (one OpenAI-dialect
// provider p, one model m) and a fake upstream with a fixed answer.
func benchTarget(b *testing.B) (*routing.Catalog, caddyhttp.Handler) {
	answer := []byte(`{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the fake"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7}}`)
	up := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		_, _ = w.Write(answer)
		return nil
	})
	base, _ := url.Parse("https://api.example.test/v1")
	c, err := routing.NewCatalog(
		[]*routing.Provider{{Name: "p", Dialect: "openai", URLs: []*url.URL{base}, KeySource: "k", APIKey: "sk-up"}},
		[]*routing.Model{{ID: "m", Provider: "p", UpstreamID: "m-up", Prices: routing.Prices{Input: 1, Output: 1}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return c, up
}

// fakeProxy adapts a handler to the upstream (middleware) interface.
type fakeProxy struct{ h caddyhttp.Handler }

func (f fakeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	return f.h.ServeHTTP(w, r)
}

// BenchmarkRouteBudget is BenchmarkRouteExplicit's request with and
// without llm_budget in front (key lookup, content estimate, reservation,
// settlement with the ledger entry), serially and with 64 requests in
// flight: the ratio between the two is the budget's cost per request.
func BenchmarkRouteBudget(b *testing.B) {
	c, up := benchTarget(b)
	body := `{"model":"m","max_tokens":256,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 200) + `"}]}`
	const secret = "sk-llm-bench-key"
	set, _ := keys.NewSet([]keys.Key{{Name: "bench", Hash: keys.Hash(secret)}})
	for _, budget := range []bool{false, true} {
		for _, par := range []int{1, 64} {
			name := fmt.Sprintf("budget=%v/inflight=%d", budget, par)
			b.Run(name, func(b *testing.B) {
				db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				g := NewGateway(c, map[string]caddyhttp.MiddlewareHandler{"p": fakeProxy{up}}, 0, nil)
				g.ProxyInfo = false
				l := ledger.New(db)
				_ = l.SetLocation(time.UTC)
				g.AttachLedger(l)
				route, tr := &Route{GW: g}, &Translate{GW: g}
				bud := &Budget{GW: g, Keys: set, Global: Limits{Daily: 1e9}, KeyDefault: Limits{Daily: 1e9, Monthly: 1e9}}
				next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
					return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
				})
				chain := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return route.ServeHTTP(w, r, next) })
				one := func() {
					req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+secret)
					rec := httptest.NewRecorder()
					req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
					var err error
					if budget {
						err = bud.ServeHTTP(rec, req, chain)
					} else {
						err = chain.ServeHTTP(rec, req)
					}
					if err != nil || rec.Code != 200 {
						b.Error(err, rec.Code, rec.Body.String())
					}
				}
				b.ReportAllocs()
				if par == 1 {
					for b.Loop() {
						one()
					}
					return
				}
				b.SetParallelism(par / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						one()
					}
				})
			})
		}
	}
}
