package llmgate

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
	"github.com/llmgate/caddy-llmgate/routing"
)

// fallbackConfig declares one model per way a provider can fail, each
// with a fallback to a model that works.
func fallbackConfig(t *testing.T, mockURL, slowURL string) string {
	return fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 10s
	llm {
		storage %s
		provider fbmock {
			url %[2]s
			api_key sk-fb
		}
		provider fbant {
			dialect anthropic
			url %[2]s
			api_key sk-fb-ant
		}
		provider fbdown {
			url http://127.0.0.1:%[3]d
			dial_timeout 1s
		}
		provider fbslow {
			url %[4]s
			response_header_timeout 300ms
		}
		model fb-ok fbmock fb-ok-up
		model fb-ok-ant fbant fb-ant-up
		model fb-refused fbdown
		model fb-429 fbmock mock-status-429
		model fb-500 fbmock mock-status-500
		model fb-529 fbant mock-status-529
		model fb-529-alone fbant mock-status-529
		model fb-529-ant fbant mock-status-529
		model fb-slow fbslow
		model fb-break fbmock mock-break
		model fb-stream-error fbant mock-stream-error
		router {
			retries 1
			retry_backoff 20ms
			max_retry_wait 3s
			breaker_threshold 4
			breaker_cooldown 1h
			fallback fb-refused fb-ok-ant
			fallback fb-429 fb-ok
			fallback fb-500 fb-ok
			fallback fb-529 fb-ok
			fallback fb-slow fb-ok
			fallback fb-break fb-ok
			fallback fb-stream-error fb-ok
		}
	}
}
:9080 {
	llm_route
	llm_translate
}
`, storageDir, mockURL, closedPort(t), slowURL)
}

// upstreamCalls counts the requests m received for an upstream model.
func upstreamCalls(m *mockllm.Server, model string) int {
	n := 0
	for _, r := range m.Requests() {
		if gjson.GetBytes(r.Body, "model").String() == model {
			n++
		}
	}
	return n
}

func TestFallbacks(t *testing.T) {
	// Breakers are process-wide (they survive reloads): start clean.
	breakers = routing.NewBreakers(nil)
	m, srv := startMock(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	cfg := fallbackConfig(t, srv.URL, slow.URL)
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg, "caddyfile")

	chat := func(model string, stream bool) string {
		return fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"Say hello."}]}`, model, stream)
	}
	// expect checks the decision headers of an answer that came from
	// the fallback after the given number of attempts.
	expect := func(t *testing.T, resp *http.Response, body []byte, model, fallback, attempts string) {
		t.Helper()
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("X-Llm-Model") != model || h.Get("X-Llm-Fallback") != fallback || h.Get("X-Llm-Attempts") != attempts {
			t.Fatalf("status %d model %q fallback %q attempts %q (want 200 %s %s %s): %s", resp.StatusCode,
				h.Get("X-Llm-Model"), h.Get("X-Llm-Fallback"), h.Get("X-Llm-Attempts"), model, fallback, attempts, body)
		}
	}

	t.Run("refused connection", func(t *testing.T) {
		since := time.Now()
		before := upstreamCalls(m, "fb-ant-up")
		resp, body := post(t, "/v1/chat/completions", nil, chat("fb-refused", false))
		expect(t, resp, body, "fb-ok-ant", "1", "3")
		if gjson.GetBytes(body, "object").String() != "chat.completion" || gjson.GetBytes(body, "choices.0.message.content").String() != mockllm.Text {
			t.Errorf("not one clean OpenAI answer: %s", body)
		}
		p := gjson.GetBytes(body, "_proxy")
		if p.Get("fallback_index").Int() != 1 || p.Get("model").String() != "fb-ok-ant" || p.Get("provider").String() != "fbant" || p.Get("cost_usd").Float() != 0 {
			t.Errorf("_proxy = %s", p.Raw)
		}
		if n := upstreamCalls(m, "fb-ant-up") - before; n != 1 {
			t.Errorf("fallback provider got %d requests, want 1", n)
		}
		entries := waitLedger(t, since, 1)
		if len(entries) != 1 || entries[0].Attempts != 3 || !entries[0].Fallback || entries[0].Model != "fb-ok-ant" || entries[0].Status != 200 {
			t.Errorf("ledger: %+v", entries)
		}
	})

	t.Run("429 with Retry-After", func(t *testing.T) {
		start := time.Now()
		resp, body := post(t, "/v1/chat/completions", nil, chat("fb-429", false))
		expect(t, resp, body, "fb-ok", "1", "3")
		if d := time.Since(start); d < time.Second {
			t.Errorf("answered after %v: the retry did not wait the second Retry-After asked for", d)
		}
		if n := upstreamCalls(m, "mock-status-429"); n != 2 {
			t.Errorf("rate-limited target got %d requests, want 2", n)
		}
		// The provider asked to be left alone for a second: the next
		// request goes straight to the fallback.
		resp, body = post(t, "/v1/chat/completions", nil, chat("fb-429", false))
		expect(t, resp, body, "fb-ok", "1", "1")
		if n := upstreamCalls(m, "mock-status-429"); n != 2 {
			t.Errorf("rate-limited target got %d requests during its Retry-After, want 2", n)
		}
	})

	t.Run("500", func(t *testing.T) {
		resp, body := post(t, "/v1/chat/completions", nil, chat("fb-500", false))
		expect(t, resp, body, "fb-ok", "1", "3")
		if n := upstreamCalls(m, "mock-status-500"); n != 2 {
			t.Errorf("failing target got %d requests, want 2", n)
		}
	})

	t.Run("529 streamed", func(t *testing.T) {
		resp, body := post(t, "/v1/chat/completions", nil, chat("fb-529", true))
		expect(t, resp, body, "fb-ok", "1", "3")
		events := readSSE(t, strings.NewReader(string(body)))
		if len(events) == 0 || events[len(events)-1] != "[DONE]" || strings.Contains(string(body), "error") {
			t.Errorf("not one clean stream: %s", body)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		resp, body := post(t, "/v1/chat/completions", nil, chat("fb-slow", false))
		expect(t, resp, body, "fb-ok", "1", "3")
	})

	t.Run("failure mid-stream", func(t *testing.T) {
		before := upstreamCalls(m, "fb-ok-up")
		resp, body := post(t, "/v1/chat/completions", nil, chat("fb-break", true))
		if resp.StatusCode != 200 || resp.Header.Get("X-Llm-Fallback") != "0" || resp.Header.Get("X-Llm-Model") != "fb-break" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		if !strings.Contains(string(body), "Hell") || !strings.Contains(string(body), `"error"`) {
			t.Errorf("want the first chunks then an error event: %s", body)
		}
		if n := upstreamCalls(m, "fb-ok-up") - before; n != 0 {
			t.Errorf("fell back after the first byte (%d requests)", n)
		}
	})

	t.Run("error event before any content", func(t *testing.T) {
		// A 200 stream whose first event after its preamble is
		// overloaded_error: nothing has reached the client yet, so it
		// is retried and falls back like a 529.
		resp, body := post(t, "/v1/chat/completions", nil, chat("fb-stream-error", true))
		expect(t, resp, body, "fb-ok", "1", "3")
		events := readSSE(t, strings.NewReader(string(body)))
		if len(events) == 0 || events[len(events)-1] != "[DONE]" || strings.Contains(string(body), "error") || !strings.Contains(string(body), "Hell") {
			t.Errorf("not one clean stream: %s", body)
		}
		// An Anthropic client, whose first target passes through.
		resp, body = post(t, "/v1/messages", nil, `{"model":"fb-stream-error","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		expect(t, resp, body, "fb-ok", "1", "3")
		if strings.Count(string(body), "event: message_start") != 1 || !strings.Contains(string(body), "event: message_stop") || strings.Contains(string(body), "overloaded") {
			t.Errorf("not one clean stream: %s", body)
		}
		if n := upstreamCalls(m, "mock-stream-error"); n != 4 {
			t.Errorf("failing target got %d requests, want 4", n)
		}
	})

	t.Run("every target fails", func(t *testing.T) {
		resp, body := post(t, "/v1/chat/completions", nil, chat("fb-529-alone", false))
		// Anthropic's 529 reaches an OpenAI client as a 503 in its own
		// envelope, once, after the retry.
		if resp.StatusCode != 503 || resp.Header.Get("X-Llm-Attempts") != "2" || !gjson.GetBytes(body, "error.message").Exists() {
			t.Errorf("%d attempts %q: %s", resp.StatusCode, resp.Header.Get("X-Llm-Attempts"), body)
		}
		// The provider asked to wait (Retry-After: 1): until then the
		// model is not tried. With nothing else to serve it, a request
		// in that second waits it out (it is within max_retry_wait) and
		// then tries: the provider's next two calls, not a 503 at once.
		calls := upstreamCalls(m, "mock-status-529")
		resp, body = post(t, "/v1/chat/completions", nil, chat("fb-529-alone", false))
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-Llm-Attempts") != "2" ||
			upstreamCalls(m, "mock-status-529") != calls+2 {
			t.Errorf("during Retry-After: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		// An Anthropic client gets Anthropic's own status and envelope.
		resp, body = post(t, "/v1/messages", nil, `{"model":"fb-529-ant","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
		if resp.StatusCode != 529 || gjson.GetBytes(body, "type").String() != "error" || resp.Header.Get("X-Llm-Attempts") != "2" {
			t.Errorf("anthropic client: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("breaker opens and survives a reload", func(t *testing.T) {
		// Two more failures reach the threshold of four.
		resp, body := post(t, "/v1/chat/completions", nil, chat("fb-500", false))
		expect(t, resp, body, "fb-ok", "1", "3")
		if s, _ := breakers.State("fbmock", "fb-500"); s != routing.BreakerOpen {
			t.Fatalf("breaker %s after 4 failures", s)
		}
		tester.InitServer(cfg, "caddyfile") // same as caddy reload
		calls := upstreamCalls(m, "mock-status-500")
		resp, body = post(t, "/v1/chat/completions", nil, chat("fb-500", false))
		expect(t, resp, body, "fb-ok", "1", "1")
		if upstreamCalls(m, "mock-status-500") != calls {
			t.Error("the open circuit was tried")
		}
		// The admin API explains it.
		r, err := http.Post("http://localhost:2999/llm/route/explain", "application/json", strings.NewReader(chat("fb-500", false)))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		raw, _ := io.ReadAll(r.Body)
		var x struct {
			Candidates []struct{ Model string }
			Skipped    []routing.Skipped
		}
		if err := json.Unmarshal(raw, &x); err != nil || r.StatusCode != 200 {
			t.Fatalf("explain: %d %v %s", r.StatusCode, err, raw)
		}
		if len(x.Candidates) != 1 || x.Candidates[0].Model != "fb-ok" || len(x.Skipped) != 1 || x.Skipped[0].Kind != routing.SkipBroken {
			t.Errorf("explain: %s", raw)
		}
	})
}

// TestAutoRouting: requests without a model go to the cheapest capable
// model of the tier their content points to; explicit choices win.
func TestAutoRouting(t *testing.T) {
	_, srv := startMock(t)
	cfg := fmt.Sprintf(`{
	skip_install_trust
	admin localhost:2999
	http_port 9080
	https_port 9443
	llm {
		storage %s
		provider ar {
			url %[2]s
		}
		provider arlocal {
			dialect ollama
			url %[2]s
		}
		model ar-local arlocal {
			context 8k
			tiers trivial operational
		}
		model ar-small ar {
			price 0.1 0.4
			capabilities tools
			tiers trivial operational standard
		}
		model ar-mid ar {
			price 1 4
			capabilities tools json
			tiers standard complex
		}
		model ar-big ar {
			price 3 15
			capabilities tools vision json reasoning
			tiers complex deep
		}
		router {
			keywords deep "flaky test"
		}
	}
}
:9080 {
	llm_route
	llm_translate
}
`, storageDir, srv.URL)
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg, "caddyfile")

	cases := []struct {
		name, body, tierHeader string
		tier, model, reason    string
	}{
		{"typo", `{"messages":[{"role":"user","content":"fix this typo: recieve"}]}`, "", "trivial", "ar-local", `"typo" suggests trivial work`},
		{"typo with tools", `{"model":"auto","messages":[{"role":"user","content":"fix this typo: recieve"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}`, "", "trivial", "ar-small", "auto: trivial"},
		{"race condition", `{"model":"auto","messages":[{"role":"user","content":"debug this race condition step by step"}]}`, "", "deep", "ar-big", "race condition"},
		{"french", `{"messages":[{"role":"user","content":"trouve la cause racine de cette fuite mémoire, étape par étape"}]}`, "", "deep", "ar-big", "cause racine"},
		{"user keyword", `{"messages":[{"role":"user","content":"look at this flaky test please"}]}`, "", "deep", "ar-big", "flaky test"},
		{"header", `{"messages":[{"role":"user","content":"hello"}]}`, "complex", "complex", "ar-mid", "X-Task-Tier: complex"},
		{"tier as model", `{"model":"deep","messages":[{"role":"user","content":"hello"}]}`, "", "deep", "ar-big", "tier deep"},
		{"builtin alias", `{"model":"cheap","messages":[{"role":"user","content":"hello"}]}`, "", "", "ar-local", "alias cheap"},
		{"explicit model", `{"model":"ar-mid","messages":[{"role":"user","content":"debug this race condition step by step"}]}`, "", "", "ar-mid", "model ar-mid requested"},
		{"image escalates", `{"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`, "", "operational", "ar-big", "escalated to complex"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, "/v1/chat/completions", map[string]string{"X-Task-Tier": c.tierHeader}, c.body)
			h := resp.Header
			tier := c.tier
			if tier == "" {
				tier = "none" // chosen by name, not by a tier
			}
			if resp.StatusCode != 200 || h.Get("X-Llm-Model") != c.model || h.Get("X-Llm-Tier") != tier || !strings.Contains(h.Get("X-Llm-Route-Reason"), c.reason) {
				t.Fatalf("%d model %q tier %q reason %q, want %s %s %q: %s", resp.StatusCode, h.Get("X-Llm-Model"), h.Get("X-Llm-Tier"),
					h.Get("X-Llm-Route-Reason"), c.model, c.tier, c.reason, body)
			}
			if p := gjson.GetBytes(body, "_proxy"); p.Get("tier").String() != tier || p.Get("model").String() != c.model || p.Get("routing_reason").String() == "" {
				t.Errorf("_proxy = %s", p.Raw)
			}
		})
	}
	// The reason header stays ASCII whatever the prompt's language.
	resp, _ := post(t, "/v1/chat/completions", nil, cases[3].body)
	for _, c := range resp.Header.Get("X-Llm-Route-Reason") {
		if c > 0x7e {
			t.Fatalf("non-ASCII reason header %q", resp.Header.Get("X-Llm-Route-Reason"))
		}
	}
	// A JSON schema asked of the trivial tier escalates to the cheapest
	// model that supports it.
	resp, body := post(t, "/v1/chat/completions", map[string]string{"X-Task-Tier": "trivial"},
		`{"messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}`)
	if resp.StatusCode != 200 || resp.Header.Get("X-Llm-Model") != "ar-mid" {
		t.Errorf("json schema: %d %s %s", resp.StatusCode, resp.Header.Get("X-Llm-Model"), body)
	}

	// /v1/models lists auto, the tiers with their models, and the
	// built-in aliases.
	models := get(t, "/v1/models")
	if got := gjson.Get(models, "tiers.deep").String(); got != `["ar-big"]` {
		t.Errorf("tiers.deep = %s", got)
	}
	for _, id := range []string{"auto", "trivial", "deep", "cheap", "premium", "local"} {
		if !gjson.Get(models, `data.#(id=="`+id+`")`).Exists() {
			t.Errorf("/v1/models lacks %s", id)
		}
	}
	if got := gjson.Get(models, `data.#(id=="trivial").routes_to`).String(); got != `["ar-local","ar-small"]` {
		t.Errorf("trivial routes_to = %s", got)
	}
	// Every provider here is on loopback: all local.
	if got := gjson.Get(models, `data.#(id=="local").routes_to`).String(); got != `["ar-local","ar-small","ar-mid","ar-big"]` {
		t.Errorf("local routes_to = %s", got)
	}
	if got := gjson.Get(models, `data.#(id=="premium").routes_to`).String(); got != `["ar-big","ar-mid","ar-small","ar-local"]` {
		t.Errorf("premium routes_to = %s", got)
	}

	// The router block's other options, from the Caddyfile to their
	// effect: default_tier, a tier's own model list, proxy_info off.
	tuned := strings.Replace(cfg, `keywords deep "flaky test"`, "keywords deep \"flaky test\"\n\t\t\tdefault_tier complex\n\t\t\ttier complex ar-small ar-big\n\t\t\tproxy_info off", 1)
	if tuned == cfg {
		t.Fatal("router block not found")
	}
	tester.InitServer(tuned, "caddyfile")
	// Nothing in it points anywhere: the default tier, whose models are
	// now ar-small then ar-big (ar-mid, which declares complex, is out).
	resp, body = post(t, "/v1/chat/completions", nil, `{"messages":[{"role":"user","content":"`+neutralPrompt+`"}]}`)
	if h := resp.Header; resp.StatusCode != 200 || h.Get("X-Llm-Tier") != "complex" || h.Get("X-Llm-Model") != "ar-small" ||
		!strings.Contains(h.Get("X-Llm-Route-Reason"), "default tier complex") {
		t.Errorf("default_tier/tier: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if gjson.GetBytes(body, "_proxy").Exists() {
		t.Errorf("proxy_info off: %s", body)
	}
	if got := gjson.Get(get(t, "/v1/models"), "tiers.complex").String(); got != `["ar-small","ar-big"]` {
		t.Errorf("tiers.complex = %s", got)
	}
}

// neutralPrompt is a request in which the analyzer finds nothing that
// points to a tier.
const neutralPrompt = "Please write two sentences about the weather in spring for our newsletter, in a friendly tone."
