package handlers

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dgraph-io/badger/v4"

	"github.com/llmgate/caddy-llmgate/cache"
	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/ledger"
)

// BenchmarkCacheHit measures a whole request answered from the response
// cache (llm_route: read, plan, key, lookup, replay, ledger entry) for a
// 10 KB answer, whole and streamed, plain and encrypted; "miss" is the
// same request through the cache to an upstream that answers at once
// (lookup, the call, keeping the answer) and "no_cache" the request
// without a cache at all, the baseline of the same run.
func BenchmarkCacheHit(b *testing.B) {
	c, _ := benchTarget(b)
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 228) // ~10 KB
	answer, err := dialects.EncodeResponse(dialects.OpenAI, &dialects.ChatResponse{ID: "c", Model: "m-up", Stop: dialects.StopEnd,
		NativeStop: "stop", Parts: []dialects.Part{{Type: dialects.PartText, Text: text}}, Usage: dialects.Usage{Input: 11, Output: 2500}}, "m-up")
	if err != nil {
		b.Fatal(err)
	}
	up := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		_, _ = w.Write(answer)
		return nil
	})
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	body := `{"model":"m","max_tokens":3000,"messages":[{"role":"user","content":"` + strings.Repeat("word ", 200) + `"}]}`
	stream := strings.Replace(body, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)
	key := []byte(strings.Repeat("k", 32))
	for _, bc := range []struct {
		name, body, cc string
		cache          bool
		key            []byte
	}{
		{"no_cache", body, "", false, nil},
		{"miss", body, "no-cache", true, nil},
		{"hit", body, "", true, nil},
		{"hit_stream", stream, "", true, nil},
		{"hit_encrypted", body, "", true, key},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := NewGateway(c, map[string]caddyhttp.MiddlewareHandler{"p": fakeProxy{up}}, 0, nil)
			l := ledger.New(db)
			if bc.cache {
				rc, err := cache.New(db, cache.Options{Key: bc.key})
				if err != nil {
					b.Fatal(err)
				}
				g.CacheEnabled = true
				g.AttachCache(rc)
			}
			g.AttachLedger(l)
			route, tr := &Route{GW: g}, &Translate{GW: g}
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
			})
			serve := func() *httptest.ResponseRecorder {
				req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(bc.body))
				if bc.cc != "" {
					req.Header.Set("Cache-Control", bc.cc)
				}
				rec := httptest.NewRecorder()
				req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
				if err := route.ServeHTTP(rec, req, next); err != nil || rec.Code != 200 {
					b.Fatal(err, rec.Code)
				}
				return rec
			}
			if rec := serve(); bc.cache && bc.cc == "" && rec.Header().Get("X-Llm-Cache") != "miss" && rec.Header().Get("X-Llm-Cache") != "hit" {
				b.Fatalf("warm-up: %v", rec.Header())
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := serve()
				if strings.HasPrefix(bc.name, "hit") && rec.Header().Get("X-Llm-Cache") != "hit" {
					b.Fatalf("not a hit: %v", rec.Header())
				}
			}
		})
	}
}
