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
	// published: the {llm.*} placeholders are registered (publish).
	published bool
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

	// finished is set by the first finish.
	finished bool

	// cache is what the response cache decided (nil: no cache).
	cache *cacheState
	// Context is the context injected into the request (nil: none).
	Context *ContextInjection

	// UpstreamTime is the time spent inside upstream calls, summed over
	// the attempts: each lasts from handing the request to the
	// provider's reverse proxy until it returns (a stream passing
	// through the gateway's writers included). RetryWait is the time
	// spent waiting before retries. Neither counts as the gateway's
	// overhead (see Overhead).
	UpstreamTime time.Duration
	RetryWait    time.Duration
	// UpstreamHeaders is how long the current attempt waited for the
	// provider's response headers; gotHeaders says they came.
	UpstreamHeaders time.Duration
	gotHeaders      bool
	// upstreamBegan is how long the current attempt waited for its
	// stream's content to begin, when the stream was held until then
	// (startHold): the provider's time too.
	upstreamBegan time.Duration
	// callStart is when the current upstream call began (zero outside
	// of one).
	callStart time.Time
}

// beginCall marks the start of an upstream call at now.
func (ex *Exchange) beginCall(now time.Time) {
	ex.callStart = now
	ex.UpstreamHeaders, ex.gotHeaders, ex.upstreamBegan = 0, false, 0
}

// streamBegan marks the current call's held stream beginning at now (its
// first content arrived and the answer left for the client).
func (ex *Exchange) streamBegan(now time.Time) {
	if !ex.callStart.IsZero() {
		ex.upstreamBegan = now.Sub(ex.callStart)
	}
}

// headersArrived marks the provider's response headers of the current
// call arriving at now.
func (ex *Exchange) headersArrived(now time.Time) {
	if ex.callStart.IsZero() || ex.gotHeaders {
		return
	}
	ex.UpstreamHeaders, ex.gotHeaders = now.Sub(ex.callStart), true
}

// endCall marks the end of the current upstream call at now.
func (ex *Exchange) endCall(now time.Time) {
	if ex.callStart.IsZero() {
		return
	}
	ex.UpstreamTime += now.Sub(ex.callStart)
	ex.callStart = time.Time{}
}

// Overhead is the gateway's own time in the exchange up to now: the time
// since it started minus the time inside upstream calls and minus retry
// waits. Inside a call (when the answer's headers are committed while
// the provider streams) the call counts up to the provider's headers, or
// for a stream held until its content began up to that, so the overhead
// is the gateway's share of the time to first byte.
func (ex *Exchange) Overhead(now time.Time) time.Duration {
	up := ex.UpstreamTime
	if !ex.callStart.IsZero() {
		if ex.gotHeaders {
			up += max(ex.UpstreamHeaders, ex.upstreamBegan)
		} else {
			up += now.Sub(ex.callStart)
		}
	}
	return max(now.Sub(ex.Start)-up-ex.RetryWait, 0)
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
