package handlers

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/contextbuf"
	"github.com/llmgate/caddy-llmgate/dialects"
)

// withContexts attaches a context buffer on its own in-memory database.
func withContexts(tb testing.TB, g *Gateway) *contextbuf.Buffer {
	tb.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	b := contextbuf.New(db, contextbuf.Options{})
	g.AttachContexts(b)
	return b
}

// call sends any request to llm_route (and on to the provider).
func (e *fbEnv) call(tb testing.TB, method, target, ctype, body string, hdr map[string]string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec, p := e.serveReq(tb, req)
	if p != nil {
		tb.Fatalf("panic: %v", p)
	}
	return rec
}

const projDiff = `diff --git a/src/a.go b/src/a.go
--- a/src/a.go
+++ b/src/a.go
@@ -1,3 +1,3 @@
 package a
-func A() int { return 1 }
+func A() int { return 2 }
 // end
`

// projFile is src/a.go before projDiff: long enough for a diff to be
// worth sending instead of a new snapshot.
var projFile = "package a\nfunc A() int { return 1 }\n// end\n" + strings.Repeat("// filler line of the file\n", 40)

func TestContextEndpoints(t *testing.T) {
	e := newFBEnv(t, []fbTarget{{provider: "p", dialect: "openai", model: "m1", up: always(200, nil, openAIAnswer("ok", 1, 1))}}, nil)
	withContexts(t, e.g)
	snap := `{"id":"proj","snapshot":{"src/a.go":"package a\nfunc A() int { return 1 }\n// end\n","README.md":"# proj\n"}}`
	rec := e.call(t, "POST", "/v1/context/delta", "application/json", snap, nil)
	if rec.Code != 200 || gjson.Get(rec.Body.String(), "version").Int() != 1 || gjson.Get(rec.Body.String(), "files").Int() != 2 {
		t.Fatalf("snapshot: %d %s", rec.Code, rec.Body)
	}
	// A diff as JSON, against the right version.
	body := `{"id":"proj","base_version":1,"diff":` + string(dialects.AppendJSONString(nil, projDiff)) + `}`
	rec = e.call(t, "POST", "/v1/context/delta", "application/json", body, nil)
	if rec.Code != 200 || gjson.Get(rec.Body.String(), "version").Int() != 2 || gjson.Get(rec.Body.String(), "deltas_applied").Int() != 1 {
		t.Fatalf("diff: %d %s", rec.Code, rec.Body)
	}
	// The same diff again does not apply: 409 naming file and hunk.
	rec = e.call(t, "POST", "/v1/context/delta?id=proj", "text/x-diff", projDiff, nil)
	msg := gjson.Get(rec.Body.String(), "error.message").Str
	if rec.Code != 409 || gjson.Get(rec.Body.String(), "error.code").Str != "delta_not_applicable" ||
		!strings.Contains(msg, "src/a.go") || !strings.Contains(msg, "hunk 1") || gjson.Get(rec.Body.String(), "error.current_version").Int() != 2 {
		t.Fatalf("stale diff: %d %s", rec.Code, rec.Body)
	}
	// Made against an old version: 409 with the current one.
	rec = e.call(t, "POST", "/v1/context/delta", "application/json", `{"id":"proj","base_version":1,"snapshot":{"x":"y"}}`, nil)
	if rec.Code != 409 || gjson.Get(rec.Body.String(), "error.code").Str != "context_version_conflict" || gjson.Get(rec.Body.String(), "error.current_version").Int() != 2 {
		t.Fatalf("conflict: %d %s", rec.Code, rec.Body)
	}
	for _, bad := range []struct{ ctype, body, want string }{
		{"application/json", `{"id":"proj"}`, "neither diff nor snapshot"},
		{"application/json", `{"id":"proj","diff":"x","snapshot":{}}`, "not both"},
		{"application/json", `{"id":"../etc","snapshot":{"a":"b"}}`, "id"},
		{"application/json", `{"id":"proj","snapshot":{"../a":"b"}}`, ".."},
		{"application/json", `[1]`, "JSON object"},
		{"text/x-diff", "@@ nonsense", "diff"},
	} {
		rec = e.call(t, "POST", "/v1/context/delta?id=proj", bad.ctype, bad.body, nil)
		if rec.Code != 400 || !strings.Contains(gjson.Get(rec.Body.String(), "error.message").Str, bad.want) {
			t.Errorf("%s: %d %s", bad.body, rec.Code, rec.Body)
		}
	}
	if rec = e.call(t, "POST", "/v1/context/delta", "application/xml", "<x/>", nil); rec.Code != 415 {
		t.Errorf("xml: %d", rec.Code)
	}
	if rec = e.call(t, "GET", "/v1/context/delta", "", "", nil); rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
		t.Errorf("GET delta: %d %v", rec.Code, rec.Header())
	}
	rec = e.call(t, "GET", "/v1/context/stats?id=proj", "", "", nil)
	st := rec.Body.String()
	if rec.Code != 200 || gjson.Get(st, "version").Int() != 2 || gjson.Get(st, "files").Int() != 2 ||
		gjson.Get(st, "bytes").Int() == 0 || gjson.Get(st, "estimated_tokens").Int() == 0 || gjson.Get(st, "updated_at").Str == "" {
		t.Errorf("stats: %d %s", rec.Code, st)
	}
	if rec = e.call(t, "GET", "/v1/context/stats?id=nope", "", "", nil); rec.Code != 404 || gjson.Get(rec.Body.String(), "error.code").Str != "context_not_found" {
		t.Errorf("unknown: %d %s", rec.Code, rec.Body)
	}
	// A JSON body without an id takes X-Context-Id; a base version on a
	// context that does not exist yet is a conflict at version 0.
	rec = e.call(t, "POST", "/v1/context/delta", "application/json", `{"snapshot":{"a":"b\n"}}`, map[string]string{"X-Context-Id": "other"})
	if rec.Code != 200 || gjson.Get(rec.Body.String(), "id").Str != "other" {
		t.Errorf("X-Context-Id: %d %s", rec.Code, rec.Body)
	}
	rec = e.call(t, "POST", "/v1/context/delta", "application/json", `{"id":"fresh","base_version":7,"snapshot":{"a":"b"}}`, nil)
	if rec.Code != 409 || !gjson.Get(rec.Body.String(), "error.current_version").Exists() || gjson.Get(rec.Body.String(), "error.current_version").Int() != 0 {
		t.Errorf("conflict on a new context: %d %s", rec.Code, rec.Body)
	}
	if rec = e.call(t, "GET", "/v1/context/stats", "", "", nil); rec.Code != 200 || gjson.Get(rec.Body.String(), "contexts.#").Int() != 2 {
		t.Errorf("list: %d %s", rec.Code, rec.Body)
	}
}

// Concurrent deltas to one context are all applied, one after another.
func TestContextConcurrentDeltas(t *testing.T) {
	e := newFBEnv(t, []fbTarget{{provider: "p", dialect: "openai", model: "m1", up: always(200, nil, openAIAnswer("ok", 1, 1))}}, nil)
	b := withContexts(t, e.g)
	const n = 30
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := fmt.Sprintf("diff --git a/f%02d.txt b/f%02d.txt\nnew file mode 100644\n--- /dev/null\n+++ b/f%02d.txt\n@@ -0,0 +1 @@\n+file %d\n", i, i, i, i)
			if rec := e.call(t, "POST", "/v1/context/delta", "text/x-diff", d, map[string]string{"X-Context-Id": "c"}); rec.Code != 200 {
				t.Errorf("delta %d: %d %s", i, rec.Code, rec.Body)
			}
		}(i)
	}
	wg.Wait()
	files, v, err := b.Files("c")
	if err != nil || v != n || len(files) != n {
		t.Fatalf("version %d, %d files, %v", v, len(files), err)
	}
	for i := 0; i < n; i++ {
		if files[fmt.Sprintf("f%02d.txt", i)] != fmt.Sprintf("file %d\n", i) {
			t.Errorf("f%02d: %q", i, files[fmt.Sprintf("f%02d.txt", i)])
		}
	}
}

// X-Inject-Context puts the context in front of the system prompt in
// the client's dialect: the whole snapshot for a session's first request,
// the same again while nothing changed, and the snapshot plus a diff
// block once something did.
func TestContextInjection(t *testing.T) {
	for _, tc := range []struct {
		provider, path, body string
		system               func(upstream string) string
	}{
		{"openai", "/v1/chat/completions", `{"model":"m1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`,
			func(u string) string {
				return gjson.Get(u, "messages.0.content").Str + "|" + gjson.Get(u, "messages.1.content").Str
			}},
		{"anthropic", "/v1/messages", `{"model":"m1","max_tokens":9,"system":"be brief","messages":[{"role":"user","content":"hi"}]}`,
			func(u string) string {
				return gjson.Get(u, "system.0.text").Str + "|" + gjson.Get(u, "system.1.text").Str
			}},
		// Translated: an OpenAI client to an Anthropic provider.
		{"anthropic", "/v1/chat/completions", `{"model":"m1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}`,
			func(u string) string {
				if s := gjson.Get(u, "system"); s.IsArray() {
					return s.Get("0.text").Str + "|" + s.Get("1.text").Str
				}
				return gjson.Get(u, "system").Str
			}},
	} {
		t.Run(tc.provider+tc.path, func(t *testing.T) {
			answer := openAIAnswer("ok", 1, 1)
			if tc.provider == "anthropic" {
				answer = anthropicAnswer("ok", 1, 1)
			}
			up := always(200, nil, answer)
			e := newFBEnv(t, []fbTarget{{provider: "p", dialect: tc.provider, model: "m1", up: up}}, nil)
			b := withContexts(t, e.g)
			if _, err := b.PutSnapshot("proj", contextbuf.Files{"src/a.go": projFile}, nil); err != nil {
				t.Fatal(err)
			}
			hdr := map[string]string{"X-Inject-Context": "true", "X-Context-Id": "proj", "X-Session-Id": "s1"}
			send := func(wantKind string) string {
				t.Helper()
				rec := e.call(t, "POST", tc.path, "application/json", tc.body, hdr)
				if rec.Code != 200 {
					t.Fatalf("%d %s", rec.Code, rec.Body)
				}
				if h := rec.Header().Get("X-Llm-Context"); !strings.HasPrefix(h, wantKind+"; id=proj; version=") {
					t.Errorf("X-Llm-Context %q, want kind %s", h, wantKind)
				}
				up.mu.Lock()
				last := up.bodies[len(up.bodies)-1]
				up.mu.Unlock()
				sys := tc.system(last)
				if !strings.Contains(sys, "be brief") {
					t.Errorf("the client's system prompt is gone: %q", sys)
				}
				return sys
			}
			first := send("snapshot")
			if !strings.HasPrefix(first, `<context_delta id="proj" version="1" kind="snapshot" files="1">`) || !strings.Contains(first, "return 1") {
				t.Errorf("first: %q", first)
			}
			if again := send("unchanged"); again != first {
				t.Errorf("unchanged context changed the prompt:\n%q\n%q", again, first)
			}
			if _, err := b.ApplyDelta("proj", projDiff, nil); err != nil {
				t.Fatal(err)
			}
			third := send("delta")
			snapBlock := first[:strings.Index(first, "</context_delta>")]
			if !strings.HasPrefix(third, snapBlock) || !strings.Contains(third, `kind="diff"`) || !strings.Contains(third, "+func A() int { return 2 }") {
				t.Errorf("after a delta: %q", third)
			}
			// Another session starts from the current snapshot.
			hdr["X-Session-Id"] = "s2"
			if s := send("snapshot"); !strings.Contains(s, "return 2") || strings.Contains(s, `kind="diff"`) {
				t.Errorf("new session: %q", s)
			}
		})
	}
}

func TestContextInjectionErrors(t *testing.T) {
	e := newFBEnv(t, []fbTarget{{provider: "p", dialect: "openai", model: "m1", up: always(200, nil, openAIAnswer("ok", 1, 1))}}, nil)
	withContexts(t, e.g)
	body := `{"model":"m1","max_tokens":9,"messages":[{"role":"user","content":"hi"}]}`
	// Unknown context: 404 in the client's own dialect.
	rec := e.call(t, "POST", "/v1/messages", "application/json", body, map[string]string{"X-Inject-Context": "true", "X-Context-Id": "ghost"})
	if rec.Code != 404 || gjson.Get(rec.Body.String(), "type").Str != "error" || !strings.Contains(gjson.Get(rec.Body.String(), "error.message").Str, "ghost") {
		t.Errorf("unknown context: %d %s", rec.Code, rec.Body)
	}
	if en := e.lastEntry(t); en.ErrorKind != "context" || en.Status != 404 {
		t.Errorf("ledger %+v", en)
	}
	rec = e.call(t, "POST", "/v1/chat/completions", "application/json", body, map[string]string{"X-Inject-Context": "maybe"})
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "X-Inject-Context") {
		t.Errorf("bad header: %d %s", rec.Code, rec.Body)
	}
	// The default context is "default".
	rec = e.call(t, "POST", "/v1/chat/completions", "application/json", body, map[string]string{"X-Inject-Context": "1"})
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), `\"default\"`) {
		t.Errorf("default context: %d %s", rec.Code, rec.Body)
	}
	// false and absent inject nothing.
	if rec = e.call(t, "POST", "/v1/chat/completions", "application/json", body, map[string]string{"X-Inject-Context": "false"}); rec.Code != 200 || rec.Header().Get("X-Llm-Context") != "" {
		t.Errorf("false: %d %v", rec.Code, rec.Header())
	}
}
