package handlers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/routing"
)

// Review finding 1: model "local" (or "free", or a tier name) with a body the neutral
// decoder refuses is routed to the default tier's (cloud) models.
func TestRegressLocalAliasUndecodable(t *testing.T) {
	cloud := always(200, nil, openAIAnswer("from cloud", 1, 1))
	local := always(200, nil, `{"model":"llama","message":{"role":"assistant","content":"hi"},"done":true,"done_reason":"stop"}`)
	e := newFBEnv(t, []fbTarget{
		{provider: "cloud", dialect: "openai", model: "big", tiers: []routing.Tier{routing.TierStandard}, prices: routing.Prices{Input: 5, Output: 10}, up: cloud},
		{provider: "lan", dialect: "ollama", model: "llama", tiers: []routing.Tier{routing.TierTrivial}, up: local},
	}, nil)
	body := `{"model":"local","messages":[{"role":"user","content":"secret stuff"},{"role":"function","name":"f","content":"x"}]}`
	rec := e.serve(t, body)
	t.Logf("status %d provider=%s reason=%q cloud=%d local=%d", rec.Code, rec.Header().Get("X-Llm-Provider"), rec.Header().Get("X-Llm-Route-Reason"), cloud.calls(), local.calls())
	if cloud.calls() > 0 {
		t.Errorf("model local was sent to a cloud provider")
	}
}

// Review finding 2: an explicit model's fallbacks are not checked for capability.
func TestRegressExplicitFallbackNotCapabilityChecked(t *testing.T) {
	pa := always(503, nil, `{"error":{"message":"busy"}}`)
	pb := always(400, nil, `{"error":{"message":"tools are not supported by this model"}}`)
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "openai", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	e.g.Catalog.Model("a").Capabilities = []routing.Capability{routing.CapTools}
	e.g.Retries = 0
	body := `{"model":"a","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"messages":[{"role":"user","content":"hi"}]}`
	rec := e.serve(t, body)
	t.Logf("status %d body %s pb calls %d", rec.Code, rec.Body, pb.calls())
	if pb.calls() > 0 {
		t.Errorf("fallback b without tools capability was tried for a tools request; client got %d", rec.Code)
	}
}

// Review finding 3: a gateway shaping error on the last target discards the held
// transient failure of an earlier one.
func TestRegressShapingErrorHidesHeldFailure(t *testing.T) {
	pa := always(429, map[string]string{"Retry-After": "1"}, `{"error":{"message":"rate limited"}}`)
	pb := always(200, nil, `{}`)
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "ollama", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	e.g.Retries = 0
	body := `{"model":"a","messages":[{"role":"user","content":[{"type":"text","text":"what"},{"type":"image_url","image_url":{"url":"https://x.test/a.png"}}]}]}`
	rec := e.serve(t, body)
	t.Logf("status %d retry-after %q body %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	if rec.Code != 429 {
		t.Errorf("client got %d instead of the provider's 429", rec.Code)
	}
}

// Review finding 4: a short Retry-After (within max_retry_wait) makes every concurrent
// request skip the target: a 503 instead of a retry.
func TestRegressShortRetryAfterBlocksOthers(t *testing.T) {
	var n int
	pa := upstream(func(w http.ResponseWriter, _ *http.Request, c int) error {
		n = c
		if c == 1 {
			return reply(w, 429, map[string]string{"Retry-After-Ms": "50"}, `{"error":{"message":"slow down"}}`)
		}
		return reply(w, 200, nil, openAIAnswer("ok", 1, 1))
	})
	e := newFBEnv(t, []fbTarget{{provider: "pa", dialect: "openai", model: "a", up: pa}}, nil)
	var other int
	var otherBody string
	sleeps := 0
	e.onSleep = func(ctx context.Context, d time.Duration) error {
		// While the first request waits, a second one arrives (it waits
		// too: its own sleep only moves the clock).
		if sleeps++; sleeps == 1 {
			rec := e.serve(t, chat("a"))
			other, otherBody = rec.Code, rec.Body.String()
		}
		e.clk.Advance(d)
		return nil
	}
	rec := e.serve(t, chat("a"))
	t.Logf("first %d, concurrent %d %s, calls %d", rec.Code, other, otherBody, n)
	if other != 200 || rec.Code != 200 {
		t.Errorf("a 50ms retry-after-ms made a concurrent request fail: %d %s", other, otherBody)
	}
	// The provider was left alone until then: the second request waited
	// rather than call it during the wait, and no call failed again.
	if n != 3 {
		t.Errorf("%d provider calls, want 3 (the 429, then one answer each)", n)
	}
	if got := e.slept(); len(got) != 2 || got[0] != 50*time.Millisecond || got[1] != 50*time.Millisecond {
		t.Errorf("slept %v, want the 50ms wait once per request", got)
	}
}

// Audit finding: a provider told to wait by Retry-After is skipped by
// every request until then, also while the request that was told waits
// to retry it: a concurrent request goes to the fallback at once.
func TestRetryAfterSkippedByOthersDuringRetry(t *testing.T) {
	pa := upstream(func(w http.ResponseWriter, _ *http.Request, c int) error {
		if c == 1 {
			return reply(w, 429, map[string]string{"Retry-After-Ms": "800"}, `{"error":{"message":"slow down"}}`)
		}
		return reply(w, 200, nil, openAIAnswer("from a", 1, 1))
	})
	pb := always(200, nil, openAIAnswer("from b", 1, 1))
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "a", up: pa},
		{provider: "pb", dialect: "openai", model: "b", up: pb},
	}, map[string][]string{"a": {"b"}})
	var other *httptest.ResponseRecorder
	sleeps := 0
	e.onSleep = func(ctx context.Context, d time.Duration) error {
		if sleeps++; sleeps == 1 {
			other = e.serve(t, chat("a"))
		}
		e.clk.Advance(d)
		return nil
	}
	rec := e.serve(t, chat("a"))
	checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "X-Llm-Attempts": "2"})
	checkHeaders(t, other, map[string]string{"X-Llm-Provider": "pb", "X-Llm-Attempts": "1", "X-Llm-Fallback": "1"})
	checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 2, "pb": 1})
	if got := e.slept(); len(got) != 1 || got[0] != 800*time.Millisecond {
		t.Errorf("slept %v: only the told request waits", got)
	}
}

// Audit finding: when the last target fails only because the gateway
// cannot shape the request for it, the failure the client gets (an
// earlier target's) is reported as that target's: headers, ledger.
func TestHeldFailureKeepsItsTarget(t *testing.T) {
	img := `{"model":"a","messages":[{"role":"user","content":[{"type":"text","text":"what"},{"type":"image_url","image_url":{"url":"https://x.test/a.png"}}]}]}`
	// b, an Ollama model with vision, cannot take an image URL: the
	// gateway's own 400, after a's failure.
	env := func(pa, pb *scripted) *fbEnv {
		e := newFBEnv(t, []fbTarget{
			{provider: "pa", dialect: "openai", model: "a", up: pa},
			{provider: "pb", dialect: "ollama", model: "b", caps: []routing.Capability{routing.CapVision}, up: pb},
		}, map[string][]string{"a": {"b"}})
		e.g.Retries = 0
		return e
	}
	t.Run("held answer", func(t *testing.T) {
		pa := always(429, map[string]string{"Retry-After": "100"}, `{"error":{"message":"rate limited"}}`)
		pb := always(200, nil, `{}`)
		e := env(pa, pb)
		rec := e.serve(t, img)
		if rec.Code != 429 {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "X-Llm-Model": "a", "X-Llm-Fallback": "0", "X-Llm-Attempts": "2"})
		if en := e.lastEntry(t); en.Provider != "pa" || en.Model != "a" || en.Status != 429 {
			t.Errorf("ledger %+v", en)
		}
		checkCalls(t, map[string]*scripted{"pa": pa, "pb": pb}, map[string]int{"pa": 1, "pb": 0})
	})
	t.Run("unreachable", func(t *testing.T) {
		pa := upstream(func(http.ResponseWriter, *http.Request, int) error { return refused() })
		e := env(pa, always(200, nil, `{}`))
		rec := e.serve(t, img)
		msg := gjson.Get(rec.Body.String(), "error.message").Str
		if rec.Code != 502 || !strings.Contains(msg, "pa") || strings.Contains(msg, "pb") {
			t.Errorf("%d %q", rec.Code, msg)
		}
		checkHeaders(t, rec, map[string]string{"X-Llm-Provider": "pa", "X-Llm-Model": "a", "X-Llm-Fallback": "0"})
	})
}

// Audit finding: refusals carry what routing decided too. A request no
// model can serve is a 400 in the client's dialect that says why for
// each model, with its tier, reason and 0 attempts.
func TestRefusalCarriesDecision(t *testing.T) {
	pa := always(200, nil, openAIAnswer("x", 1, 1))
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "openai", model: "small", tiers: []routing.Tier{routing.TierTrivial}, up: pa},
		{provider: "pa", dialect: "openai", model: "big", tiers: []routing.Tier{routing.TierDeep}, up: pa},
	}, nil)
	img := `{"messages":[{"role":"user","content":[{"type":"text","text":"what is this"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`
	rec, _ := e.serveCtx(t, nil, "/v1/chat/completions", img, map[string]string{"X-Task-Tier": "trivial"})
	msg := gjson.Get(rec.Body.String(), "error.message").Str
	if rec.Code != 400 || gjson.Get(rec.Body.String(), "error.code").Str != "no_capable_model" ||
		!strings.Contains(msg, "small: does not support images") || !strings.Contains(msg, "big: does not support images") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	checkHeaders(t, rec, map[string]string{"X-Llm-Tier": "trivial", "X-Llm-Route-Reason": "X-Task-Tier: trivial", "X-Llm-Attempts": "0", "X-Llm-Provider": ""})
	checkCalls(t, map[string]*scripted{"pa": pa}, map[string]int{"pa": 0})

	// The same in Anthropic's envelope for an Anthropic client.
	rec, _ = e.serveCtx(t, nil, "/v1/messages", `{"max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}]}`,
		map[string]string{"X-Task-Tier": "trivial"})
	if rec.Code != 400 || gjson.Get(rec.Body.String(), "error.type").Str != "invalid_request_error" {
		t.Errorf("anthropic: %d %s", rec.Code, rec.Body)
	}
	checkHeaders(t, rec, map[string]string{"X-Llm-Tier": "trivial", "X-Llm-Attempts": "0"})
}

// Audit finding: Gemini and Bedrock requests (model in the URL path)
// can be explained, with the path's model given as the default model.
func TestExplainPathDialects(t *testing.T) {
	e := newFBEnv(t, []fbTarget{
		{provider: "pa", dialect: "gemini", model: "a", up: always(200, nil, `{}`)},
		{provider: "pb", dialect: "openai", model: "b", up: always(200, nil, `{}`)},
	}, map[string][]string{"a": {"b"}})
	for _, c := range []struct {
		d    dialects.Dialect
		body string
	}{
		{dialects.Gemini, `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`},
		{dialects.Bedrock, `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`},
	} {
		x, derr := e.g.Explain(c.d, []byte(c.body), "a", "")
		if derr != nil || x.Error != nil || len(x.Candidates) != 2 || x.Candidates[0].Model != "a" || x.Candidates[1].Model != "b" || x.Requested != "a" {
			t.Errorf("%s: %+v %+v", c.d, x, derr)
		}
	}
}

// Review: a client that leaves while its request waits out a provider's
// Retry-After is recorded as gone (499), and the wait is not the
// gateway's time.
func TestPlanWaitClientGone(t *testing.T) {
	pa := always(200, nil, openAIAnswer("ok", 1, 1))
	e := newFBEnv(t, []fbTarget{{provider: "pa", dialect: "openai", model: "a", up: pa}}, nil)
	e.g.OverheadHeader = true
	e.g.Router.Breakers.Wait("pa", "a", e.clk.Now().Add(2*time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	e.onSleep = func(_ context.Context, d time.Duration) error {
		e.clk.Advance(d / 2)
		cancel()
		return context.Canceled
	}
	rec, _ := e.serveCtx(t, ctx, "/v1/chat/completions", chat("a"), nil)
	if rec.Body.Len() != 0 {
		t.Errorf("an answer for a client that left: %d %s", rec.Code, rec.Body)
	}
	if en := e.lastEntry(t); en.Status != 499 || en.ErrorKind != "client_closed" {
		t.Errorf("ledger %+v", en)
	}
	checkCalls(t, map[string]*scripted{"pa": pa}, map[string]int{"pa": 0})
}

// Review: requests do not wait for a breaker's cooldown to end (only one
// of them could probe): they get the 503 with Retry-After at once.
func TestPlanNoWaitForBreaker(t *testing.T) {
	pa := always(200, nil, openAIAnswer("ok", 1, 1))
	e := newFBEnv(t, []fbTarget{{provider: "pa", dialect: "openai", model: "a", up: pa}}, nil)
	e.g.Router.BreakerThreshold, e.g.Router.BreakerCooldown = 1, 3*time.Second
	e.g.Router.Breakers.Failure("pa", "a", 1, 3*time.Second)
	rec := e.serve(t, chat("a"))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "3" || len(e.slept()) != 0 {
		t.Errorf("%d Retry-After %q slept %v: %s", rec.Code, rec.Header().Get("Retry-After"), e.slept(), rec.Body)
	}
}
