package handlers

import (
	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/routing"
)

// Explanation is what the router would do with a request, without
// sending anything upstream: the tier, the reasons, the targets in the
// order they would be tried and each target left out with why. It holds
// measurements of the request, never its text.
type Explanation struct {
	Dialect    string             `json:"dialect"`
	Requested  string             `json:"requested"`
	Tier       string             `json:"tier,omitempty"`
	Reason     string             `json:"reason"`
	Reasons    []string           `json:"reasons,omitempty"`
	Features   *ExplainedFeatures `json:"features,omitempty"`
	Candidates []ExplainedTarget  `json:"candidates"`
	Skipped    []routing.Skipped  `json:"skipped"`
	Policy     ExplainedPolicy    `json:"policy"`
	Error      *ExplainedError    `json:"error,omitempty"`
}

// ExplainedFeatures are the measurements the analyzer used.
type ExplainedFeatures struct {
	LastUserChars        int  `json:"last_user_chars"`
	ContextChars         int  `json:"context_chars"`
	EstimatedInputTokens int  `json:"estimated_input_tokens"`
	Messages             int  `json:"messages"`
	Tools                int  `json:"tools"`
	Images               bool `json:"images"`
	Reasoning            bool `json:"reasoning"`
	JSONSchema           bool `json:"json_schema"`
	MaxOutput            int  `json:"max_output"`
}

// ExplainedTarget is one target of the plan, in order.
type ExplainedTarget struct {
	Model            string  `json:"model"`
	Provider         string  `json:"provider"`
	Dialect          string  `json:"dialect"`
	UpstreamModel    string  `json:"upstream_model"`
	EstimatedCostUSD float64 `json:"estimated_cost_usd"`
	Breaker          string  `json:"breaker"`
}

// ExplainedPolicy is the retry policy attempts would follow.
type ExplainedPolicy struct {
	Retries          int    `json:"retries"`
	RetryBackoff     string `json:"retry_backoff"`
	MaxRetryWait     string `json:"max_retry_wait"`
	BreakerThreshold int    `json:"breaker_threshold"`
	BreakerCooldown  string `json:"breaker_cooldown"`
}

// ExplainedError is the error the client would get instead of an answer.
type ExplainedError struct {
	Status  int    `json:"status"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// Explain plans a request of dialect d as llm_route would (model,
// X-Task-Tier value, default model) and explains the plan. A request
// that cannot be read is an error; a request the router refuses is
// explained with the error the client would get.
func (g *Gateway) Explain(d dialects.Dialect, body []byte, defaultModel, tierHeader string) (*Explanation, *dialects.Error) {
	req, derr := dialects.ReadRequest(d, body)
	if derr != nil {
		return nil, derr
	}
	rt := g.Router
	plan, f, perr := g.plan(d, req, body, defaultModel, tierHeader) // f: nil when not read
	x := &Explanation{Dialect: string(d), Requested: req.Model, Candidates: []ExplainedTarget{}, Skipped: []routing.Skipped{},
		Policy: ExplainedPolicy{Retries: g.Retries, RetryBackoff: g.RetryBackoff.String(), MaxRetryWait: g.MaxRetryWait.String(),
			BreakerThreshold: rt.BreakerThreshold, BreakerCooldown: rt.BreakerCooldown.String()}}
	if x.Requested == "" {
		x.Requested = defaultModel
	}
	if f != nil {
		x.Features = &ExplainedFeatures{LastUserChars: len(f.LastUser), ContextChars: f.ContextChars, EstimatedInputTokens: f.EstimatedInputTokens(),
			Messages: f.Messages, Tools: f.Tools, Images: f.Images, Reasoning: f.Reasoning, JSONSchema: f.JSONSchema, MaxOutput: f.MaxOutput}
	}
	if perr != nil {
		x.Error = &ExplainedError{Status: perr.Status, Code: perr.Code, Message: perr.Message}
	}
	if plan == nil {
		return x, nil
	}
	x.Tier, x.Reason, x.Reasons = string(plan.Tier), plan.Reason, plan.Reasons
	for _, c := range plan.Candidates {
		state, _ := rt.Breakers.State(c.Provider.Name, c.Model.ID)
		x.Candidates = append(x.Candidates, ExplainedTarget{Model: c.Model.ID, Provider: c.Provider.Name, Dialect: c.Provider.Dialect,
			UpstreamModel: c.Model.UpstreamID, EstimatedCostUSD: c.EstimatedCost, Breaker: string(state)})
	}
	x.Skipped = append(x.Skipped, plan.Skipped...)
	return x, nil
}
