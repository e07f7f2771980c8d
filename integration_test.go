package llmgate

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
	"github.com/llmgate/caddy-llmgate/ledger"
)

// These tests run Caddy in-process (caddytest) from a Caddyfile against
// the mock provider. caddytest runs one Caddy per test binary, so they
// must not run in parallel.

const base = "http://127.0.0.1:9080"

func gatewayConfig(t *testing.T, mockURL, storage, extraGlobal, site string) string {
	t.Helper()
	if site == "" {
		site = "llm_route\n\t\tllm_translate"
	}
	return fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 10s
	llm {
		storage %s
		%s
		provider mock {
			url %s
			api_key sk-provider-secret
		}
		provider mockant {
			dialect anthropic
			url %s
			api_key sk-ant-provider
		}
		provider mockollama {
			dialect ollama
			url %s
		}
		provider mockresp {
			dialect responses
			url %s
			api_key sk-resp-provider
		}
		provider nokey {
			url %s
			api_key {env.LLMGATE_TEST_SURELY_UNSET_KEY}
		}
		provider down {
			url http://127.0.0.1:%d
			dial_timeout 2s
		}
		model small mock upstream-small {
			price 1 2 0.5
			context 8k
			capabilities tools
		}
		model failing mock mock-status-500
		model limited mock mock-status-429
		model claude mockant claude-up
		model llama mockollama llama3
		model resp mockresp resp-up
		model keyless nokey
		model gone down
		alias cheap small
		# Tests that are not about fallbacks see every failure as it
		# comes; breakers are process-wide, so they must not open here.
		router {
			retries 0
			breaker_threshold 1000000
		}
	}
}
:9080 {
	%s
}
`, storage, extraGlobal, mockURL, mockURL, mockURL, mockURL, mockURL, closedPort(t), site)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func startMock(t *testing.T) (*mockllm.Server, *httptest.Server) {
	m := &mockllm.Server{}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

func post(t *testing.T, path string, hdr map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// storageDir is shared by every test of the package: caddytest keeps the
// last config (and its open database) running after a test ends, so a
// per-test temporary directory would vanish under an open database.
var storageDir = func() string {
	dir, err := os.MkdirTemp("", "llmgate-integration-*")
	if err != nil {
		panic(err)
	}
	return dir
}()

// waitLedger returns the entries recorded since the test began once there
// are at least n. An entry is committed when its request's handler
// returns, which is just after the client has the whole answer.
func waitLedger(t *testing.T, since time.Time, n int) []ledger.Entry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries := ledgerEntries(t, since)
		if len(entries) >= n || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

func activeLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	v, err := caddy.ActiveContext().App("llm")
	if err != nil {
		t.Fatal(err)
	}
	l := v.(*App).Ledger()
	if l == nil {
		t.Fatal("ledger not open")
	}
	return l
}

// ledgerEntries returns the entries recorded since the test began.
func ledgerEntries(t *testing.T, since time.Time) []ledger.Entry {
	var out []ledger.Entry
	if err := activeLedger(t).Each(since, time.Time{}, func(e ledger.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

const chatBody = `{"model":"cheap","messages":[{"role":"user","content":"hi"}]}`

func TestChatCompletionJSON(t *testing.T) {
	start := time.Now()
	mock, srv := startMock(t)
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(t, srv.URL, storageDir, "", ""), "caddyfile")

	resp, body := post(t, "/v1/chat/completions", map[string]string{"Authorization": "Bearer client-gateway-key", "Accept-Encoding": "gzip"}, chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := gjson.GetBytes(body, "choices.0.message.content").Str; got != mockllm.Text {
		t.Errorf("content = %q", got)
	}
	if got := resp.Header.Get("X-Llm-Provider"); got != "mock" {
		t.Errorf("x-llm-provider = %q", got)
	}
	if got := resp.Header.Get("X-Llm-Model"); got != "small" {
		t.Errorf("x-llm-model = %q", got)
	}
	reqs := mock.Requests()
	if len(reqs) != 1 {
		t.Fatalf("mock got %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/v1/chat/completions" {
		t.Errorf("upstream path = %q", r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer sk-provider-secret" {
		t.Errorf("upstream Authorization = %q (the client's key must be replaced by the provider's)", got)
	}
	if bytes.Contains(bytes.Join([][]byte{[]byte(fmt.Sprint(r.Header)), r.Body}, nil), []byte("client-gateway-key")) {
		t.Error("the client's gateway key reached the provider")
	}
	if r.Header.Get("X-Forwarded-For") != "" {
		t.Error("X-Forwarded-For reached the provider")
	}
	if want := strings.TrimPrefix(srv.URL, "http://"); r.Host != want {
		t.Errorf("upstream Host = %q, want the provider's own %q", r.Host, want)
	}
	if got := gjson.GetBytes(r.Body, "model").Str; got != "upstream-small" {
		t.Errorf("upstream model = %q", got)
	}
	entries := waitLedger(t, start, 1)
	if len(entries) != 1 {
		t.Fatalf("ledger has %d entries", len(entries))
	}
	e := entries[0]
	if e.Provider != "mock" || e.Model != "small" || e.Status != 200 || e.Input != mockllm.InputTokens ||
		e.Output != mockllm.OutputTokens || e.CachedInput != mockllm.CachedTokens {
		t.Errorf("ledger entry = %+v", e)
	}
	want := ledger.Cost(ledger.Prices{Input: 1, Output: 2, CachedInput: 0.5}, e.Tokens)
	if e.CostUSD != want || want == 0 {
		t.Errorf("cost = %v, want %v", e.CostUSD, want)
	}
}

// readSSE returns the data payloads of a stream and the times they came.
func readSSE(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestChatCompletionStream(t *testing.T) {
	start := time.Now()
	mock, srv := startMock(t)
	mock.ChunkDelay = 150 * time.Millisecond
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(t, srv.URL, storageDir, "", ""), "caddyfile")

	for _, include := range []bool{false, true} {
		body := `{"model":"small","stream":true,"messages":[{"role":"user","content":"hi"}]}`
		if include {
			body = `{"model":"small","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
		}
		req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("content-type %q", ct)
		}
		// The first event must arrive before the stream ends: nothing
		// may buffer the stream whole.
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		first := time.Since(start)
		events := readSSE(t, br)
		total := time.Since(start)
		resp.Body.Close()
		if total-first < 4*mock.ChunkDelay {
			t.Errorf("first event after %v, stream done after %v: the stream was buffered", first, total)
		}
		var text strings.Builder
		usageChunks := 0
		for _, e := range events {
			text.WriteString(gjson.Get(e, "choices.0.delta.content").Str)
			if gjson.Get(e, "usage.prompt_tokens").Exists() {
				usageChunks++
			}
		}
		if text.String() != mockllm.Text[len(strings.SplitN(mockllm.Text, "", 2)[0]):] && !strings.HasSuffix(mockllm.Text, text.String()) {
			t.Errorf("text = %q", text.String())
		}
		if events[len(events)-1] != "[DONE]" {
			t.Errorf("last event %q", events[len(events)-1])
		}
		if include && usageChunks != 1 || !include && usageChunks != 0 {
			t.Errorf("include_usage=%v: %d usage chunks", include, usageChunks)
		}
		// The gateway asked for usage on its own account either way.
		last := mock.Requests()[len(mock.Requests())-1]
		if !gjson.GetBytes(last.Body, "stream_options.include_usage").Bool() {
			t.Error("gateway did not ask the upstream for stream usage")
		}
	}
	for _, e := range waitLedger(t, start, 2) {
		if !e.Stream || e.Output != mockllm.OutputTokens || e.Input != mockllm.InputTokens {
			t.Errorf("stream ledger entry = %+v", e)
		}
	}
}

func TestErrors(t *testing.T) {
	_, srv := startMock(t)
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(t, srv.URL, storageDir, "max_body 2KB", ""), "caddyfile")

	cases := []struct {
		name, path, body string
		hdr              map[string]string
		status           int
		contains         string
	}{
		{"malformed", "/v1/chat/completions", `{"model":`, nil, 400, "not valid JSON"},
		{"not an object", "/v1/chat/completions", `[1,2]`, nil, 400, "not valid JSON"},
		{"missing messages", "/v1/chat/completions", `{"model":"small"}`, nil, 400, "messages"},
		{"bad tier", "/v1/chat/completions", `{"messages":[]}`, map[string]string{"X-Task-Tier": "huge"}, 400, "valid: trivial, operational, standard, complex, deep"},
		{"unknown model", "/v1/chat/completions", `{"model":"nope","messages":[]}`, nil, 404, "nope"},
		{"too large", "/v1/chat/completions", `{"model":"small","messages":[{"role":"user","content":"` + strings.Repeat("x", 4000) + `"}]}`, nil, 413, "limit"},
		{"unreachable", "/v1/chat/completions", `{"model":"gone","messages":[]}`, nil, 502, "could not be reached"},
		{"upstream 500", "/v1/chat/completions", `{"model":"failing","messages":[]}`, nil, 500, "mock: status 500"},
		{"upstream 429", "/v1/chat/completions", `{"model":"limited","messages":[]}`, nil, 429, "mock: status 429"},
		{"no key", "/v1/chat/completions", `{"model":"keyless","messages":[]}`, nil, 503, "LLMGATE_TEST_SURELY_UNSET_KEY"},
		{"unknown path", "/v1/nothing", `{}`, nil, 404, "unknown endpoint"},
		{"anthropic bad json", "/v1/messages", `{`, nil, 400, `"type":"error"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, c.path, c.hdr, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if !bytes.Contains(body, []byte(c.contains)) {
				t.Errorf("body %s does not mention %q", body, c.contains)
			}
			if c.path == "/v1/chat/completions" && !gjson.GetBytes(body, "error.message").Exists() {
				t.Errorf("not an OpenAI error envelope: %s", body)
			}
			if c.name == "upstream 429" && resp.Header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
			}
		})
	}
	resp, err := http.Get(base + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("GET chat: %d", resp.StatusCode)
	}
}

func TestModelsAndHealth(t *testing.T) {
	_, srv := startMock(t)
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(t, srv.URL, storageDir, "", ""), "caddyfile")

	body := get(t, "/v1/models")
	if gjson.Get(body, "object").Str != "list" {
		t.Errorf("models: %s", body)
	}
	small := gjson.Get(body, `data.#(id=="small")`)
	if small.Get("pricing.input_per_1m").Float() != 1 || small.Get("context_window").Int() != 8000 || small.Get("capabilities.0").Str != "tools" {
		t.Errorf("small = %s", small.Raw)
	}
	if gjson.Get(body, `data.#(id=="cheap").alias_for`).Str != "small" {
		t.Errorf("alias missing: %s", body)
	}
	if gjson.Get(body, `data.#(id=="keyless").available`).Bool() {
		t.Error("keyless model reported available")
	}
	tags := get(t, "/api/tags")
	if gjson.Get(tags, `models.#(name=="llama").model`).Str != "llama" || gjson.Get(tags, `models.#(name=="cheap")`).Raw == "" {
		t.Errorf("/api/tags: %s", tags)
	}
	// The router's own names too, once each (cheap is the config's).
	for _, name := range []string{"auto", "trivial", "deep", "premium", "local"} {
		if gjson.Get(tags, `models.#(name=="`+name+`").details.family`).Str != "router" {
			t.Errorf("/api/tags lacks %s: %s", name, tags)
		}
	}
	if n := gjson.Get(tags, `models.#(name=="cheap")#`).Array(); len(n) != 1 {
		t.Errorf("cheap listed %d times", len(n))
	}
	body = get(t, "/health")
	if gjson.Get(body, "status").Str != "ok" || gjson.Get(body, `providers.#(name=="nokey").available`).Bool() {
		t.Errorf("health: %s", body)
	}
}

func TestPassThroughOtherDialects(t *testing.T) {
	start := time.Now()
	mock, srv := startMock(t)
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(t, srv.URL, storageDir, "", ""), "caddyfile")

	resp, body := post(t, "/v1/messages", map[string]string{"X-Api-Key": "client-key"},
		`{"model":"claude","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || gjson.GetBytes(body, "content.0.text").Str != mockllm.Text {
		t.Fatalf("anthropic: %d %s", resp.StatusCode, body)
	}
	last := mock.Requests()[len(mock.Requests())-1]
	if last.Header.Get("X-Api-Key") != "sk-ant-provider" || last.Header.Get("Anthropic-Version") == "" || last.Path != "/v1/messages" {
		t.Errorf("anthropic upstream request: %s %v", last.Path, last.Header)
	}
	resp, body = post(t, "/v1/messages", nil, `{"model":"claude","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("event: message_stop")) {
		t.Fatalf("anthropic stream: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, "/api/chat", nil, `{"model":"llama","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"done":true`)) {
		t.Fatalf("ollama: %d %s", resp.StatusCode, body)
	}
	if got := gjson.GetBytes(mock.Requests()[len(mock.Requests())-1].Body, "model").Str; got != "llama3" {
		t.Errorf("ollama upstream model %q", got)
	}
	for _, e := range waitLedger(t, start, 3) {
		if e.Input != mockllm.InputTokens || e.Output != mockllm.OutputTokens {
			t.Errorf("%s usage not recorded: %+v", e.Endpoint, e)
		}
	}
}

// TestClientAbortKeepsUsage: a client that goes away mid-stream still
// leaves a ledger entry with the input tokens the provider reported (and
// bills) at the start of the stream.
func TestClientAbortKeepsUsage(t *testing.T) {
	start := time.Now()
	mock, srv := startMock(t)
	mock.ChunkDelay = 200 * time.Millisecond
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(t, srv.URL, storageDir, "", ""), "caddyfile")

	req, _ := http.NewRequest("POST", base+"/v1/messages",
		strings.NewReader(`{"model":"claude","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, "message_start") && strings.HasPrefix(line, "data:") {
			break
		}
	}
	resp.Body.Close() // the user pressed Stop
	entries := waitLedger(t, start, 1)
	if len(entries) != 1 {
		t.Fatalf("%d ledger entries", len(entries))
	}
	if e := entries[0]; e.Input != mockllm.InputTokens || e.ErrorKind == "" {
		t.Errorf("aborted stream entry: %+v", e)
	}
}

// TestReloadUnderLoad reloads the config 20 times while clients send a
// steady stream of requests: every request must succeed and every one
// must be in the ledger afterwards.
func TestReloadUnderLoad(t *testing.T) {
	start := time.Now()
	if testing.Short() {
		t.Skip("slow")
	}
	mock, srv := startMock(t)
	mock.Delay = 20 * time.Millisecond
	storage := storageDir
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(t, srv.URL, storage, "", ""), "caddyfile")
	before := len(ledgerEntries(t, start))

	var ok, failed, retried atomic.Int64
	mockBefore := mock.Count()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				body := chatBody
				if n%2 == 1 {
					body = `{"model":"small","stream":true,"messages":[{"role":"user","content":"hi"}]}`
				}
				// A reload closes the old server's idle keep-alive
				// connections; a request written onto one at that
				// moment is never read and the client sees EOF. HTTP
				// clients (the official SDKs among them) retry that,
				// and so does this one. The counts below prove no
				// request the gateway accepted went unanswered.
				var resp *http.Response
				var err error
				for try := 0; try < 3; try++ {
					resp, err = client.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
					if err == nil {
						break
					}
					retried.Add(1)
				}
				if err != nil {
					failed.Add(1)
					t.Logf("request error: %v", err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !bytes.Contains(b, []byte("Hel")) {
					failed.Add(1)
					t.Logf("status %d: %s", resp.StatusCode, b)
					continue
				}
				ok.Add(1)
			}
		}(i)
	}
	for i := 0; i < 20; i++ {
		time.Sleep(100 * time.Millisecond)
		// Each reload changes the config (a different price), as a
		// real edit would.
		cfg := strings.Replace(gatewayConfig(t, srv.URL, storage, "", ""), "price 1 2 0.5", fmt.Sprintf("price %d 2 0.5", i+2), 1)
		tester.InitServer(cfg, "caddyfile")
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across reloads", failed.Load(), failed.Load()+ok.Load())
	}
	got := len(waitLedger(t, start, before+int(ok.Load()))) - before
	if int64(got) != ok.Load() {
		t.Fatalf("ledger holds %d new entries for %d requests", got, ok.Load())
	}
	if got := int64(mock.Count() - mockBefore); got != ok.Load() {
		t.Fatalf("the provider got %d requests for %d answers", got, ok.Load())
	}
	t.Logf("%d requests across 20 reloads, all answered and recorded (%d connection retries)", ok.Load(), retried.Load())
}
