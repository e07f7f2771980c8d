package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
)

// Exchange is the state of one generation request as it moves through the
// gateway's handlers. llm_route creates it; llm_translate fills in what
// the upstream reported; llm_route records it when the answer ends.
type Exchange struct {
	Start    time.Time
	Endpoint dialects.Endpoint
	// Body is the request body as the client sent it. Handlers that
	// change it work on copies, so a fallback starts from the original.
	Body    []byte
	Request dialects.Request
	// Chat is the body decoded to the neutral model when routing needed
	// its content (nil otherwise); translation reuses it.
	Chat *dialects.ChatRequest
	// Decision is the target of the current attempt.
	Decision *routing.Decision
	// Plan is the router's plan (tier, reasons, candidates in order).
	Plan *routing.Plan
	// Attempts counts the upstream attempts so far; Fallback is the
	// current target's place in the plan (its Rank; 0: first choice,
	// more: a fallback, also when earlier targets were skipped for an
	// open circuit).
	Attempts int
	Fallback int
	// UpstreamStatus is the status the provider answered the current
	// attempt with, before any translation (0 until it answers).
	UpstreamStatus int

	// Usage is what the upstream reported, filled by llm_translate.
	Usage dialects.Usage

	// Account is who the request is charged to (nil without
	// llm_budget); Hold is its reservation, settled when it ends.
	Account *Account
	Hold    *ledger.Hold
}

type exchangeKey struct{}

// WithExchange returns r carrying ex for the handlers further down.
func WithExchange(r *http.Request, ex *Exchange) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
}

// ExchangeFrom returns the exchange llm_route attached to r, or nil.
func ExchangeFrom(r *http.Request) *Exchange {
	ex, _ := r.Context().Value(exchangeKey{}).(*Exchange)
	return ex
}
