package handlers

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dgraph-io/badger/v4"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
)

const usageStream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n" +
	"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n" +
	"data: [DONE]\n\n"

// TestTapStripsUsageChunk writes a stream in every split of two pieces:
// the usage chunk the client did not ask for must vanish exactly, and the
// usage must be read whatever the split.
func TestTapStripsUsageChunk(t *testing.T) {
	want := strings.Replace(usageStream, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n", "", 1)
	for cut := 0; cut <= len(usageStream); cut++ {
		for _, strip := range []bool{true, false} {
			rec := httptest.NewRecorder()
			rec.Header().Set("Content-Type", "text/event-stream")
			tap := newUsageTap(rec, dialects.OpenAI, strip)
			tap.WriteHeader(200)
			_, _ = tap.Write([]byte(usageStream[:cut]))
			_, _ = tap.Write([]byte(usageStream[cut:]))
			tap.finish(false)
			expect := usageStream
			if strip {
				expect = want
			}
			if got := rec.Body.String(); got != expect {
				t.Fatalf("cut %d strip %v: client got\n%q\nwant\n%q", cut, strip, got, expect)
			}
			if u, ok := tap.usage(); !ok || u.Input != 5 || u.Output != 2 {
				t.Fatalf("cut %d: usage %+v %v", cut, u, ok)
			}
		}
	}
}

func TestTapJSONAndNDJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	tap := newUsageTap(rec, dialects.Anthropic, false)
	body := `{"content":[],"usage":{"input_tokens":4,"cache_read_input_tokens":6,"output_tokens":9}}`
	_, _ = io.Copy(tap, strings.NewReader(body)) // through ReadFrom
	tap.finish(false)
	if u, ok := tap.usage(); !ok || u.Input != 10 || u.Output != 9 || rec.Body.String() != body {
		t.Errorf("json: %+v %v %q", u, ok, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/x-ndjson")
	tap = newUsageTap(rec, dialects.Ollama, false)
	_, _ = tap.Write([]byte("{\"message\":{\"content\":\"a\"},\"done\":false}\n{\"done\":true,\"prompt_eval_count\":3,"))
	_, _ = tap.Write([]byte("\"eval_count\":4}")) // no final newline
	tap.finish(false)
	if u, ok := tap.usage(); !ok || u.Input != 3 || u.Output != 4 {
		t.Errorf("ndjson: %+v %v", u, ok)
	}
}

type fakeUpstream struct {
	got     *http.Request
	body    []byte
	respond func(w http.ResponseWriter)
}

func (f *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	f.got = r
	f.body, _ = io.ReadAll(r.Body)
	f.respond(w)
	return nil
}

func testGateway(t *testing.T, up caddyhttp.MiddlewareHandler) *Gateway {
	t.Helper()
	base, _ := url.Parse("https://api.example.test/v1")
	c, err := routing.NewCatalog(
		[]*routing.Provider{{Name: "p", Dialect: "openai", URLs: []*url.URL{base}, KeySource: "k", APIKey: "sk-up"}},
		[]*routing.Model{{ID: "m", Provider: "p", UpstreamID: "m-up", Prices: routing.Prices{Input: 1, Output: 1}}},
		map[string]string{"cheap": "m"})
	if err != nil {
		t.Fatal(err)
	}
	return NewGateway(c, map[string]caddyhttp.MiddlewareHandler{"p": up}, 0, nil)
}

func serve(t *testing.T, g *Gateway, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), rec, &caddyhttp.Server{})
	route := &Route{GW: g}
	tr := &Translate{GW: g}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return tr.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	})
	if err := route.ServeHTTP(rec, req, next); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestRouteAndTranslatePassThrough(t *testing.T) {
	up := &fakeUpstream{respond: func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`))
	}}
	g := testGateway(t, up)
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := ledger.New(db)
	g.AttachLedger(l)
	body := `{"messages":[{"role":"user","content":"hi"}],"model":"cheap","temperature":0.2}`
	rec := serve(t, g, body, map[string]string{"Authorization": "Bearer gw-key", "X-Api-Key": "gw-key2", "Accept-Encoding": "gzip"})
	if rec.Code != 200 || rec.Header().Get("X-Llm-Model") != "m" || rec.Header().Get("X-Llm-Provider") != "p" {
		t.Fatalf("%d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	r := up.got
	if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer sk-up" || r.Header.Get("X-Api-Key") != "" || r.Header.Get("Accept-Encoding") != "" {
		t.Errorf("upstream request: %s %v", r.URL.Path, r.Header)
	}
	// Pass-through: only the model changed, byte for byte.
	if want := strings.Replace(body, `"cheap"`, `"m-up"`, 1); string(up.body) != want {
		t.Errorf("upstream body\n%s\nwant\n%s", up.body, want)
	}
	if r.ContentLength != int64(len(up.body)) {
		t.Errorf("ContentLength %d for %d bytes", r.ContentLength, len(up.body))
	}
	var entries []ledger.Entry
	_ = l.Each(time.Time{}, time.Time{}, func(e ledger.Entry) error { entries = append(entries, e); return nil })
	if len(entries) != 1 || entries[0].Model != "m" || entries[0].Input != 1 || entries[0].CostUSD != 2e-6 {
		t.Errorf("ledger: %+v", entries)
	}
}

func TestRouteErrorsWithoutUpstream(t *testing.T) {
	up := &fakeUpstream{respond: func(w http.ResponseWriter) { t.Error("upstream reached") }}
	g := testGateway(t, up)
	for _, c := range []struct {
		body   string
		tier   string
		status int
	}{
		{`{"model":"x","messages":[]}`, "", 404},
		{`{"messages":[{"role":"user","content":"hi"}]}`, "huge", 400},
		{`nope`, "", 400},
	} {
		rec := serve(t, g, c.body, map[string]string{"X-Task-Tier": c.tier})
		if rec.Code != c.status || !gjson.Get(rec.Body.String(), "error.message").Exists() {
			t.Errorf("%s: %d %s", c.body, rec.Code, rec.Body)
		}
		if c.tier != "" && !strings.Contains(rec.Body.String(), "trivial, operational, standard, complex, deep") {
			t.Errorf("bad tier does not list the tiers: %s", rec.Body)
		}
	}
}

// BenchmarkTapPassThroughEvent measures the tap on the pass-through path:
// per stream event it must allocate nothing.
func BenchmarkTapPassThroughEvent(b *testing.B) {
	ev := []byte("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"},\"finish_reason\":null}],\"usage\":null}\n\n")
	w := discardWriter{h: http.Header{"Content-Type": {"text/event-stream"}}}
	tap := newUsageTap(w, dialects.OpenAI, false)
	tap.WriteHeader(200)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		_, _ = tap.Write(ev)
	}
}

// BenchmarkTapStripEvent is the same with the usage chunk being stripped.
func BenchmarkTapStripEvent(b *testing.B) {
	ev := []byte("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"},\"finish_reason\":null}],\"usage\":null}\n\n")
	w := discardWriter{h: http.Header{"Content-Type": {"text/event-stream"}}}
	tap := newUsageTap(w, dialects.OpenAI, true)
	tap.WriteHeader(200)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		_, _ = tap.Write(ev)
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

// TestTapEndsTruncatedStream: a pass-through stream that stops before its
// end event gets an error event in its dialect; a complete one does not.
func TestTapEndsTruncatedStream(t *testing.T) {
	cases := []struct {
		d           dialects.Dialect
		ct, stream  string
		complete    bool
		errorMarker string
	}{
		{dialects.OpenAI, "text/event-stream", "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n", false, `data: {"error"`},
		{dialects.OpenAI, "text/event-stream", "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n", true, ""},
		{dialects.Anthropic, "text/event-stream", "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n", false, "event: error"},
		{dialects.Anthropic, "text/event-stream", "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", true, ""},
		{dialects.Responses, "text/event-stream", "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0}\n\n", false, "event: response.failed"},
		{dialects.Ollama, "application/x-ndjson", "{\"message\":{\"content\":\"a\"},\"done\":false}\n", false, `{"error"`},
		{dialects.Ollama, "application/x-ndjson", "{\"done\":true,\"eval_count\":1}", true, ""},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", c.ct)
		tap := newUsageTap(rec, c.d, false)
		tap.WriteHeader(200)
		_, _ = tap.Write([]byte(c.stream))
		tap.finish(false)
		got := rec.Body.String()
		extra := strings.TrimPrefix(got, c.stream)
		if c.complete && extra != "" {
			t.Errorf("%s complete stream got %q appended", c.d, extra)
		}
		if !c.complete && !strings.Contains(extra, c.errorMarker) {
			t.Errorf("%s truncated stream: appended %q, want %s", c.d, extra, c.errorMarker)
		}
	}
}

// BenchmarkTapAnthropicEvent: the tap on an Anthropic pass-through stream
// (named events), per event.
func BenchmarkTapAnthropicEvent(b *testing.B) {
	ev := []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello\"}}\n\n")
	w := discardWriter{h: http.Header{"Content-Type": {"text/event-stream"}}}
	tap := newUsageTap(w, dialects.Anthropic, false)
	tap.WriteHeader(200)
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		_, _ = tap.Write(ev)
	}
}

// TestPublishPlaceholders: the decision reaches the rest of the chain as
// {llm.*} placeholders and llm_* vars, as the README documents.
func TestPublishPlaceholders(t *testing.T) {
	var got map[string]string
	var vars map[string]any
	up := &fakeUpstream{}
	up.respond = func(w http.ResponseWriter) {
		repl := up.got.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		got = map[string]string{}
		for _, k := range []string{"provider", "model", "upstream_model", "dialect", "upstream", "route_reason", "tier", "nope"} {
			got[k] = repl.ReplaceAll("{llm."+k+"}", "<none>")
		}
		vars = maps.Clone(up.got.Context().Value(caddyhttp.VarsCtxKey).(map[string]any))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[{"message":{"content":"ok"}}]}`))
	}
	g := testGateway(t, up)
	rec := serve(t, g, `{"messages":[{"role":"user","content":"hi"}],"model":"cheap"}`, nil)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	want := map[string]string{"provider": "p", "model": "m", "upstream_model": "m-up", "dialect": "openai",
		"upstream": "api.example.test", "nope": "<none>"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("{llm.%s} = %q, want %q", k, got[k], v)
		}
	}
	if got["route_reason"] == "" || got["route_reason"] == "<none>" {
		t.Errorf("{llm.route_reason} = %q", got["route_reason"])
	}
	if vars["llm_provider"] != "p" || vars["llm_model"] != "m" || vars["llm_upstream_model"] != "m-up" {
		t.Errorf("vars: %v", vars)
	}
}

// TestSetProxyMember: the _proxy object is added to any JSON object
// answer, replacing one that is there already (a gateway behind this
// one), and the result is valid JSON.
func TestSetProxyMember(t *testing.T) {
	obj := []byte(`{"model":"m"}`)
	for in, want := range map[string]string{
		`{"id":"x","usage":{"a":1}}`:            `{"id":"x","usage":{"a":1},"_proxy":{"model":"m"}}`,
		"{\"id\":\"x\"}\n":                      "{\"id\":\"x\",\"_proxy\":{\"model\":\"m\"}}\n",
		`{}`:                                    `{"_proxy":{"model":"m"}}`,
		`{ }`:                                   `{ "_proxy":{"model":"m"}}`,
		`{"_proxy":{"model":"old"},"id":"x"}`:   `{"_proxy":{"model":"m"},"id":"x"}`,
		`{"text":"a \"_proxy\" in the answer"}`: `{"text":"a \"_proxy\" in the answer","_proxy":{"model":"m"}}`,
	} {
		got := setProxyMember([]byte(in), obj)
		if string(got) != want || !gjson.ValidBytes(got) {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
