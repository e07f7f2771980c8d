package handlers

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/cache"
	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/routing"
)

// provider answers like a real provider of dialect d: the text given,
// as a whole answer or a stream as the request asks, with usage.
func provider(d dialects.Dialect, text string, calls *atomic.Int32) *scripted {
	return upstream(func(w http.ResponseWriter, r *http.Request, n int) error {
		calls.Add(1)
		stream := gjson.Get(upstreamBody(r), "stream").Bool()
		resp := &dialects.ChatResponse{ID: "up-1", Model: "x-up", Stop: dialects.StopEnd, NativeStop: "stop",
			Parts: []dialects.Part{{Type: dialects.PartText, Text: text}}, Usage: dialects.Usage{Input: 1000, Output: 500}}
		if stream {
			out, err := dialects.ResponseStream(d, resp, dialects.StreamOptions{Model: "x-up", IncludeUsage: true, Created: 1})
			if err != nil {
				return err
			}
			return reply(w, 200, map[string]string{"Content-Type": "text/event-stream"}, string(out))
		}
		out, err := dialects.EncodeResponse(d, resp, "x-up")
		if err != nil {
			return err
		}
		return reply(w, 200, nil, string(out))
	})
}

// upstreamBody reads again the body the gateway sent upstream.
func upstreamBody(r *http.Request) string {
	if r.GetBody == nil {
		return ""
	}
	rc, err := r.GetBody()
	if err != nil {
		return ""
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// withCache attaches a response cache on its own in-memory database.
func withCache(tb testing.TB, g *Gateway, o cache.Options) *cache.Cache {
	tb.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	c, err := cache.New(db, o)
	if err != nil {
		tb.Fatal(err)
	}
	g.CacheEnabled = true
	g.AttachCache(c)
	return c
}

func cacheEnv(tb testing.TB, d string, calls *atomic.Int32) (*fbEnv, *cache.Cache) {
	e := newFBEnv(tb, []fbTarget{{provider: "p", dialect: d, model: "m1", prices: routing.Prices{Input: 3, Output: 15},
		up: provider(dialects.Dialect(d), "The answer is 42.", calls)}}, nil)
	return e, withCache(tb, e.g, cache.Options{})
}

const (
	chatReq       = `{"model":"m1","max_tokens":50,"messages":[{"role":"user","content":"What is the answer?"}]}`
	chatStreamReq = `{"model":"m1","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"What is the answer?"}]}`
	messagesReq   = `{"model":"m1","max_tokens":50,"messages":[{"role":"user","content":"What is the answer?"}]}`
	messagesStrm  = `{"model":"m1","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"What is the answer?"}]}`
	responsesReq  = `{"model":"m1","max_output_tokens":50,"input":[{"role":"user","content":"What is the answer?"}]}`
)

func (e *fbEnv) post(tb testing.TB, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	tb.Helper()
	return e.call(tb, "POST", path, "", body, hdr)
}

// An identical request is answered from the cache in every client
// dialect, streamed or not, whichever form the first answer had, at no
// cost; the ledger records the hit and what it saved.
func TestCacheHitAnyDialectAndStream(t *testing.T) {
	for _, prov := range []string{"openai", "anthropic"} {
		t.Run(prov, func(t *testing.T) {
			var calls atomic.Int32
			e, c := cacheEnv(t, prov, &calls)
			first := e.post(t, "/v1/chat/completions", chatReq, nil)
			if first.Code != 200 || first.Header().Get("X-Llm-Cache") != "miss" {
				t.Fatalf("first: %d %q %s", first.Code, first.Header().Get("X-Llm-Cache"), first.Body)
			}
			missCost := e.lastEntry(t).CostUSD
			if missCost <= 0 || e.lastEntry(t).Cache != "miss" {
				t.Fatalf("miss entry %+v", e.lastEntry(t))
			}
			cases := []struct {
				path, body string
				stream     bool
				text       func(string) string
			}{
				{"/v1/chat/completions", chatReq, false, func(b string) string { return gjson.Get(b, "choices.0.message.content").Str }},
				{"/v1/chat/completions", chatStreamReq, true, sseText(dialects.OpenAI)},
				{"/v1/messages", messagesReq, false, func(b string) string { return gjson.Get(b, "content.0.text").Str }},
				{"/v1/messages", messagesStrm, true, sseText(dialects.Anthropic)},
				{"/v1/responses", responsesReq, false, func(b string) string { return gjson.Get(b, "output.0.content.0.text").Str }},
			}
			for _, cs := range cases {
				rec := e.post(t, cs.path, cs.body, nil)
				if rec.Code != 200 || rec.Header().Get("X-Llm-Cache") != "hit" {
					t.Errorf("%s %s: %d cache %q %s", cs.path, cs.body, rec.Code, rec.Header().Get("X-Llm-Cache"), rec.Body)
					continue
				}
				if got := cs.text(rec.Body.String()); got != "The answer is 42." {
					t.Errorf("%s stream=%v: text %q in %s", cs.path, cs.stream, got, rec.Body)
				}
				ct := rec.Header().Get("Content-Type")
				if cs.stream != (ct == "text/event-stream") {
					t.Errorf("%s stream=%v: content type %q", cs.path, cs.stream, ct)
				}
				if rec.Header().Get("X-Llm-Model") != "m1" || rec.Header().Get("Age") == "" {
					t.Errorf("%s: headers %v", cs.path, rec.Header())
				}
				en := e.lastEntry(t)
				if en.Cache != "hit" || en.CostUSD != 0 || en.SavedUSD != missCost || en.Status != 200 || en.Model != "m1" {
					t.Errorf("%s: hit entry %+v (miss cost %v)", cs.path, en, missCost)
				}
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("upstream called %d times, want 1", n)
			}
			if cs := first.Body.String(); gjson.Get(cs, "_proxy.cache").Str != "miss" {
				t.Errorf("_proxy of the miss: %s", gjson.Get(cs, "_proxy").Raw)
			}
			hit := e.post(t, "/v1/chat/completions", chatReq, nil)
			if p := gjson.Get(hit.Body.String(), "_proxy"); p.Get("cache").Str != "hit" || p.Get("cost_usd").Float() != 0 {
				t.Errorf("_proxy of a hit: %s", p.Raw)
			}
			st := c.Counters()
			if st.Hits != 6 || st.Misses != 1 || st.Stores != 1 {
				t.Errorf("counters %+v", st)
			}
		})
	}
}

// sseText gathers the text of an SSE answer of dialect d.
func sseText(d dialects.Dialect) func(string) string {
	return func(b string) string {
		r, err := dialects.CollectStream(d, []byte(b))
		if err != nil {
			return "error: " + err.Error()
		}
		return dialects.JoinText(r.Parts, "")
	}
}

// A streamed first answer is kept and served to a later request that
// does not stream, and the other way round.
func TestCacheStreamedAnswerServesWhole(t *testing.T) {
	var calls atomic.Int32
	e, _ := cacheEnv(t, "openai", &calls)
	if rec := e.post(t, "/v1/chat/completions", chatStreamReq, nil); rec.Code != 200 || rec.Header().Get("X-Llm-Cache") != "miss" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	rec := e.post(t, "/v1/messages", messagesReq, nil)
	if rec.Header().Get("X-Llm-Cache") != "hit" || gjson.Get(rec.Body.String(), "content.0.text").Str != "The answer is 42." {
		t.Fatalf("%v %s", rec.Header(), rec.Body)
	}
	// The usage the provider reported (taken out of the client's
	// stream, which did not ask for it) comes back with the answer.
	if gjson.Get(rec.Body.String(), "usage.output_tokens").Int() != 500 {
		t.Errorf("usage %s", gjson.Get(rec.Body.String(), "usage").Raw)
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls", calls.Load())
	}
}

func TestCacheBypassAndRefresh(t *testing.T) {
	var calls atomic.Int32
	e, c := cacheEnv(t, "openai", &calls)
	status := func(body string, hdr map[string]string) string {
		t.Helper()
		rec := e.post(t, "/v1/chat/completions", body, hdr)
		if rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if got, en := rec.Header().Get("X-Llm-Cache"), e.lastEntry(t); en.Cache != got {
			t.Errorf("ledger says %q, header %q", en.Cache, got)
		}
		return rec.Header().Get("X-Llm-Cache")
	}
	steps := []struct {
		name, body string
		hdr        map[string]string
		want       string
		calls      int32
	}{
		{"no-store: not looked up, not kept", chatReq, map[string]string{"Cache-Control": "no-store"}, "bypass", 1},
		{"so the first plain request misses", chatReq, nil, "miss", 2},
		{"then hits", chatReq, nil, "hit", 2},
		{"no-cache asks the provider again", chatReq, map[string]string{"Cache-Control": "no-cache"}, "bypass", 3},
		{"and keeps the fresh answer", chatReq, nil, "hit", 3},
		{"a hot temperature is not cached", strings.Replace(chatReq, `"max_tokens"`, `"temperature":1.5,"max_tokens"`, 1), nil, "bypass", 4},
		{"a cool one is", strings.Replace(chatReq, `"max_tokens"`, `"temperature":0.2,"max_tokens"`, 1), nil, "miss", 5},
		{"and differs from no temperature", strings.Replace(chatReq, `"max_tokens"`, `"temperature":0.2,"max_tokens"`, 1), nil, "hit", 5},
		{"a seed is part of the key", strings.Replace(chatReq, `"max_tokens"`, `"seed":7,"max_tokens"`, 1), nil, "miss", 6},
		{"n>1 is not cached", strings.Replace(chatReq, `"max_tokens"`, `"n":2,"max_tokens"`, 1), nil, "bypass", 7},
		{"another user id shares the entry", strings.Replace(chatReq, `"max_tokens"`, `"user":"bob","max_tokens"`, 1), nil, "hit", 7},
	}
	for _, s := range steps {
		if got := status(s.body, s.hdr); got != s.want || calls.Load() != s.calls {
			t.Errorf("%s: cache %q (want %q), %d calls (want %d)", s.name, got, s.want, calls.Load(), s.calls)
		}
	}
	// no-store, no-cache, the hot temperature and n=2.
	if st := c.Counters(); st.Bypasses != 4 {
		t.Errorf("bypasses %d, want 4", st.Bypasses)
	}
	// A hotter limit lets the hot request in.
	hot := 2.0
	e.g.CacheMaxTemperature = &hot
	if got := status(strings.Replace(chatReq, `"max_tokens"`, `"temperature":1.5,"max_tokens"`, 1), nil); got != "miss" {
		t.Errorf("with max_temperature 2: %q", got)
	}
}

// Failures are never cached; without a cache there is no header.
func TestCacheKeepsOnlySuccess(t *testing.T) {
	var calls atomic.Int32
	up := upstream(func(w http.ResponseWriter, r *http.Request, n int) error {
		calls.Add(1)
		if n == 1 {
			return reply(w, 400, nil, `{"error":{"message":"bad","type":"invalid_request_error"}}`)
		}
		return reply(w, 200, nil, openAIAnswer("ok", 10, 2))
	})
	e := newFBEnv(t, []fbTarget{{provider: "p", dialect: "openai", model: "m1", up: up}}, nil)
	if rec := e.post(t, "/v1/chat/completions", chatReq, nil); rec.Header().Get("X-Llm-Cache") != "" {
		t.Errorf("no cache configured, header %q", rec.Header().Get("X-Llm-Cache"))
	}
	withCache(t, e.g, cache.Options{})
	if rec := e.post(t, "/v1/chat/completions", chatReq, nil); rec.Code != 200 || rec.Header().Get("X-Llm-Cache") != "miss" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	if rec := e.post(t, "/v1/chat/completions", chatReq, nil); rec.Header().Get("X-Llm-Cache") != "hit" {
		t.Errorf("%v", rec.Header())
	}
	_ = calls.Load()
	e2 := newFBEnv(t, []fbTarget{{provider: "p", dialect: "openai", model: "m1", up: always(400, nil, `{"error":{"message":"bad"}}`)}}, nil)
	withCache(t, e2.g, cache.Options{})
	for i := 0; i < 2; i++ {
		if rec := e2.post(t, "/v1/chat/completions", chatReq, nil); rec.Code != 400 || rec.Header().Get("X-Llm-Cache") != "miss" {
			t.Errorf("error answer %d: %d %q", i, rec.Code, rec.Header().Get("X-Llm-Cache"))
		}
	}
}

func TestAnswerCodec(t *testing.T) {
	r := &dialects.ChatResponse{ID: "id", Model: "m", Stop: dialects.StopToolUse, NativeStop: "tool_calls", StopSequence: "",
		Usage: dialects.Usage{Input: 1, CachedInput: 2, CacheWrite: 3, Output: 4, Reasoning: 5},
		Parts: []dialects.Part{{Type: dialects.PartThinking, Text: "hmm", Signature: "sig"}, {Type: dialects.PartText, Text: "héllo\x00"},
			{Type: dialects.PartToolCall, ID: "c1", Name: "f", Args: `{"a":1}`},
			{Type: dialects.PartToolResult, ID: "c1", IsError: true, Content: []dialects.Part{{Type: dialects.PartImage, MediaType: "image/png", Data: "AAAA"}}}}}
	b := encodeAnswer(r)
	got, err := decodeAnswer(b)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("%v\n%+v\n%+v", err, got, r)
	}
	for i := 0; i < len(b); i++ {
		if _, err := decodeAnswer(b[:i]); err == nil {
			t.Errorf("truncated at %d accepted", i)
		}
	}
	if _, err := decodeAnswer(append(b, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add(encodeAnswer(&dialects.ChatResponse{ID: "x", Parts: []dialects.Part{{Type: dialects.PartText, Text: "t"}}}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeAnswer(b)
		if err != nil {
			return
		}
		// What decodes survives a round trip.
		again, err := decodeAnswer(encodeAnswer(r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Errorf("round trip: %v\n%+v\n%+v", err, again, r)
		}
	})
}
