package handlers

import (
	"context"
	"net/http"
	"testing"
	"time"

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
	e.onSleep = func(ctx context.Context, d time.Duration) error {
		rec := e.serve(t, chat("a"))
		other, otherBody = rec.Code, rec.Body.String()
		e.clk.Advance(d)
		return nil
	}
	rec := e.serve(t, chat("a"))
	t.Logf("first %d, concurrent %d %s, calls %d", rec.Code, other, otherBody, n)
	if other == 503 {
		t.Errorf("a 50ms retry-after-ms made a concurrent request fail with 503")
	}
}
