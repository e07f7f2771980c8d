package handlers

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dgraph-io/badger/v4"

	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
)

// BenchmarkRouteExplicit measures llm_route + llm_translate on the
// pass-through path for a request that names its model (no content
// analysis), with the _proxy object on and off: the cost of planning,
// the attempt writer and the ledger entry around a fake upstream.
func BenchmarkRouteExplicit(b *testing.B) {
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

// fakeProxy adapts a handler to the upstream (middleware) interface.
type fakeProxy struct{ h caddyhttp.Handler }

func (f fakeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	return f.h.ServeHTTP(w, r)
}
