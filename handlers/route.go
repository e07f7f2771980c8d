package handlers

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
	"github.com/llmgate/caddy-llmgate/telemetry"
)

// Route is the llm_route middleware. It answers the gateway's own
// endpoints, and for a generation request reads the body (bounded),
// resolves the model to a provider, publishes the decision and calls the
// rest of the chain (llm_translate) with it. Every request it sees is
// answered: paths it does not serve get a 404 in OpenAI's error shape, so
// scope it with a matcher when a site serves other things too.
type Route struct {
	GW *Gateway
	// DefaultModel is used when a request names no model ("": the
	// router chooses, as for "auto").
	DefaultModel string
	// MaxBody overrides the gateway's body limit when positive.
	MaxBody int64
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Route) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	ep, ok := dialects.ClientEndpoint(r.Method, r.URL.Path)
	if !ok {
		if ep.Name != "" {
			w.Header().Set("Allow", allowFor(ep))
			dialects.WriteError(w, ep.Dialect, dialects.Errorf(http.StatusMethodNotAllowed, "method %s is not allowed on %s", r.Method, r.URL.Path))
			return nil
		}
		dialects.WriteError(w, dialects.OpenAI, &dialects.Error{Status: http.StatusNotFound, Code: "unknown_url",
			Message: "unknown endpoint " + r.Method + " " + r.URL.Path + " (served: POST /v1/chat/completions, POST /v1/responses, POST /v1/messages, POST /api/chat, GET /v1/models, GET /api/tags, POST /v1/context/delta, GET /v1/context/stats, GET /health)"})
		return nil
	}
	if ep.Name == "gemini_stream" && r.URL.Query().Get("alt") != "sse" {
		// Without alt=sse Gemini streams a JSON array; the gateway
		// serves the SSE framing (what the SDKs ask for) only.
		dialects.WriteError(w, dialects.Gemini, dialects.Errorf(http.StatusBadRequest,
			"streamGenerateContent is served with alt=sse only (add ?alt=sse)"))
		return nil
	}
	switch ep.Name {
	case "models":
		return h.GW.serveModels(w, r)
	case "health":
		return h.GW.serveHealth(w, r)
	case "ollama_tags":
		return h.GW.serveTags(w, r)
	case "context_delta":
		return h.GW.serveContextDelta(w, r)
	case "context_stats":
		return h.GW.serveContextStats(w, r)
	}
	return h.serveGenerate(w, r, next, ep)
}

func allowFor(ep dialects.Endpoint) string {
	if ep.Generate || ep.Name == "context_delta" {
		return "POST"
	}
	return "GET, HEAD"
}

func (h *Route) maxBody() int64 {
	if h.MaxBody > 0 {
		return h.MaxBody
	}
	if h.GW.MaxBody > 0 {
		return h.GW.MaxBody
	}
	return DefaultMaxBody
}

// DefaultMaxBody is the request body limit when none is configured.
const DefaultMaxBody = 10 << 20

func (h *Route) serveGenerate(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, ep dialects.Endpoint) error {
	g := h.GW
	ex := &Exchange{Start: g.Now(), Endpoint: ep}

	body, berr := readBody(w, r, h.maxBody())
	if berr != nil {
		dialects.WriteError(w, ep.Dialect, berr)
		return nil
	}
	ex.Body = body
	req, derr := dialects.ReadRequest(ep.Dialect, body)
	if derr != nil {
		dialects.WriteError(w, ep.Dialect, derr)
		return nil
	}
	if dialects.PathStream(ep.Dialect) {
		req.Model, req.Stream = ep.Model, ep.Stream
	}
	ex.Request = req
	ex.Account = AccountFrom(r.Context())
	if !h.injectContext(w, r, ex) {
		return nil
	}
	body = ex.Body
	tierHeader := strings.TrimSpace(r.Header.Get("X-Task-Tier"))
	plan, a, perr := g.plan(ep.Dialect, req, body, h.DefaultModel, tierHeader)
	if perr != nil && perr.Code == "provider_unavailable" && onlyWaiting(plan) && plan.RetryAt.Sub(g.Now()) <= g.MaxRetryWait {
		// Every target that could serve it is kept out for a short
		// while by a provider's Retry-After: wait, as the request that
		// was told to wait does, and plan again. (Not for a breaker's
		// cooldown: only one request may probe when it ends.)
		slept := g.Now()
		var serr error
		if d := plan.RetryAt.Sub(slept); d > 0 {
			serr = g.Sleep(r.Context(), d)
		}
		ex.RetryWait += g.Now().Sub(slept)
		if serr != nil {
			ex.Plan = plan
			entry := ledger.Entry{Endpoint: ep.Name, Stream: req.Stream, Tier: string(plan.Tier), ErrorKind: "client_closed"}
			h.finish(r, ex, &entry, 499)
			return nil
		}
		plan, a, perr = g.plan(ep.Dialect, req, body, h.DefaultModel, tierHeader)
	}
	ex.Plan = plan
	if perr != nil {
		if plan != nil && !plan.RetryAt.IsZero() {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(plan.RetryAt.Sub(g.Now()).Seconds()+0.999))))
		}
		h.refuse(w, r, ex, perr, "refused")
		return nil
	}
	if a != nil {
		ex.Chat = a.Chat
	}
	hit, cst := g.cacheLookup(r, ex)
	ex.cache = cst
	if hit != nil {
		if acct := ex.Account; acct != nil {
			g.setBudgetHeaders(w.Header(), acct, ex, nil)
		}
		if h.serveCached(w, r, ex, hit) {
			return nil
		}
		// An entry that cannot be replayed is a miss.
		cst.status, cst.store = CacheMiss, true
	}
	if cst != nil {
		w.Header().Set("X-Llm-Cache", cst.status)
	}
	if acct := ex.Account; acct != nil {
		if a == nil && ex.Chat != nil {
			a = &analysis{featuresOf(ex.Chat), ex.Chat}
		}
		if a == nil {
			// The reservation needs the input's size and the output
			// limit; translation reuses the decoded request.
			if f, chat, ferr := RequestFeatures(ep.Dialect, body, req); ferr == nil {
				a = &analysis{f, chat}
				ex.Chat = chat
			}
		}
		hold, ref, berr := g.reserve(acct, ex, a)
		if berr != nil {
			// Asking again does not help until the limit resets or the
			// request changes: tell SDKs not to retry on their own.
			w.Header().Set("X-Should-Retry", "false")
			g.countRefusal(ref, berr)
			h.refuse(w, r, ex, berr, "budget")
			return nil
		}
		ex.Hold = hold
		g.setBudgetHeaders(w.Header(), acct, ex, hold)
	}
	return h.attempts(w, r, next, ex)
}

// onlyWaiting reports whether a plan's targets are all kept out by
// providers' Retry-After (none by an open breaker), with a time when one
// may be tried.
func onlyWaiting(p *routing.Plan) bool {
	if p == nil || p.RetryAt.IsZero() {
		return false
	}
	waiting := false
	for _, s := range p.Skipped {
		switch s.Kind {
		case routing.SkipBroken:
			return false
		case routing.SkipWaiting:
			waiting = true
		}
	}
	return waiting
}

// readBody reads a request body of at most limit bytes: a larger one is
// a 413, a broken one a 400.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *dialects.Error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, dialects.Errorf(http.StatusRequestEntityTooLarge, "request body is larger than the gateway's limit of %d bytes", limit)
		}
		return nil, dialects.Errorf(http.StatusBadRequest, "reading request body: %v", err)
	}
	return body, nil
}

// refuse answers a request the gateway will not send upstream, and
// records it.
func (h *Route) refuse(w http.ResponseWriter, r *http.Request, ex *Exchange, e *dialects.Error, kind string) {
	h.GW.answerHeaders(w.Header(), ex)
	dialects.WriteError(w, ex.Endpoint.Dialect, e)
	entry := ledger.Entry{Endpoint: ex.Endpoint.Name, Stream: ex.Request.Stream, ErrorKind: kind, Cache: ex.cacheStatus()}
	if ex.Plan != nil {
		entry.Tier = string(ex.Plan.Tier)
	}
	h.finish(r, ex, &entry, e.Status)
}

// analysis is what routing read of a request's content: the features
// the router looked at and the decoded request they came from.
type analysis struct {
	routing.Features
	Chat *dialects.ChatRequest
}

// plan asks the router where the request may go. The analysis is nil
// when the router needed no content (or could not read it). The error is
// ready for the client: 400 for a bad X-Task-Tier or a request nothing
// can serve, 404 for an unknown model, 503 when capable targets exist but
// none can be used now (the plan then says when one may be: RetryAt).
func (g *Gateway) plan(d dialects.Dialect, req dialects.Request, body []byte, defaultModel, tierHeader string) (*routing.Plan, *analysis, *dialects.Error) {
	rt := g.Router
	model := req.Model
	if model == "" {
		model = defaultModel
	}
	var a *analysis
	var f routing.Features
	var note string
	if rt.NeedsFeatures(model, tierHeader) {
		feat, chat, ferr := RequestFeatures(d, body, req)
		if ferr == nil {
			f, a = feat, &analysis{feat, chat}
		} else if tierHeader == "" && routing.IsAuto(model) {
			// The content cannot be read the neutral way (e.g. a
			// Responses request that continues a stored one): plan
			// without it rather than refuse what the provider may accept
			// as it is; an auto request goes to the default tier.
			tierHeader = string(rt.Analyzer.DefaultTier)
			note = " (request not analyzed: " + ferr.Message + ")"
		}
	}
	plan, err := rt.Plan(model, tierHeader, f)
	if plan != nil && note != "" {
		plan.Reason = "auto: default tier " + tierHeader + note
	}
	switch {
	case err == nil:
		return plan, a, nil
	case errors.Is(err, routing.ErrBadTier):
		return nil, a, &dialects.Error{Status: http.StatusBadRequest, Code: "invalid_task_tier", Param: "X-Task-Tier", Message: err.Error()}
	case errors.Is(err, routing.ErrUnknownModel):
		return nil, a, &dialects.Error{Status: http.StatusNotFound, Code: "model_not_found", Param: "model", Message: err.Error()}
	case errors.Is(err, routing.ErrNoneAvailable):
		return plan, a, &dialects.Error{Status: http.StatusServiceUnavailable, Code: "provider_unavailable", Message: err.Error()}
	case errors.Is(err, routing.ErrNoCandidate):
		return plan, a, &dialects.Error{Status: http.StatusBadRequest, Code: "no_capable_model", Message: err.Error()}
	}
	return nil, a, &dialects.Error{Status: http.StatusInternalServerError, Message: err.Error()}
}

// attempts sends the request to the plan's candidates in order until one
// answers. A transient failure (no connection, timeout, 408, 409, 429,
// 5xx, 529) is retried on the same target with backoff, honouring
// Retry-After and retry-after-ms, then the next target is tried; 401,
// 403 and 404 go to the next target at once. Failures are held back from
// the client (attemptWriter), so the client sees one answer: the first
// success, or the last failure when every target failed. A stream that
// fails before its content begins is such a failure (llm_translate holds
// it back: startHold). Once a byte of an answer has reached the client
// nothing falls back.
func (h *Route) attempts(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, ex *Exchange) error {
	g := h.GW
	rt := g.Router
	ep := ex.Endpoint
	plan := ex.Plan
	entry := ledger.Entry{Endpoint: ep.Name, Stream: ex.Request.Stream, Tier: string(plan.Tier), Cache: ex.cacheStatus()}
	base := w.Header().Clone()
	proxyInfo := g.ProxyInfo && isOpenAIClient(ep.Dialect) && !ex.Request.Stream

	var aw *attemptWriter
	// A panic from further down still gets its ledger entry; reverse_proxy
	// aborts a stream that broke mid-way with http.ErrAbortHandler.
	defer func() {
		if p := recover(); p != nil {
			entry.ErrorKind = "aborted"
			status := 0
			if aw != nil {
				status = aw.status
			}
			// Settle the breaker (a half-open probe must not stay taken):
			// a stream the provider broke off is its failure; one the
			// client left, or a panic of ours, teaches nothing.
			if d := ex.Decision; d != nil {
				if p == http.ErrAbortHandler && r.Context().Err() == nil {
					rt.Breakers.Failure(d.Provider.Name, d.Model.ID, rt.BreakerThreshold, rt.BreakerCooldown)
				} else {
					rt.Breakers.Release(d.Provider.Name, d.Model.ID)
				}
			}
			h.finish(r, ex, &entry, status)
			panic(p)
		}
	}()

	var lastHeld *attemptWriter
	var lastErr error
	// lastFailed is the attempt that lastHeld or lastErr came from: a
	// later target the gateway could not shape the request for must
	// not be named as the one that failed.
	var lastFailed failedAttempt
	// gwErr is the gateway's own refusal to shape the request for a
	// target; it is answered only when no provider answered at all.
	var gwErr *dialects.Error
	for i := range plan.Candidates {
		c := &plan.Candidates[i]
		waited := false
		for try := 0; ; try++ {
			if why, kind, until := rt.Breakers.Try(c.Provider.Name, c.Model.ID); why != "" {
				// The last target, kept out for a short while by the
				// provider's Retry-After (another request's): wait it
				// out, as the request that got it does, rather than
				// answer that nothing can serve.
				if kind == routing.SkipWaiting && !waited && i == len(plan.Candidates)-1 && until.Sub(g.Now()) <= g.MaxRetryWait {
					waited = true
					slept := g.Now()
					var serr error
					if d := until.Sub(slept); d > 0 {
						serr = g.Sleep(r.Context(), d)
					}
					ex.RetryWait += g.Now().Sub(slept)
					if serr != nil {
						entry.ErrorKind = "client_closed"
						h.finish(r, ex, &entry, 499)
						return nil
					}
					try--
					continue
				}
				plan.Skipped = append(plan.Skipped, routing.Skipped{Model: c.Model.ID, Provider: c.Provider.Name, Kind: routing.SkipBroken, Reason: why})
				break
			}
			ex.Decision = &routing.Decision{Requested: ex.Request.Model, Model: c.Model, Provider: c.Provider, Reason: plan.Reason}
			ex.Fallback = c.Rank
			ex.Attempts++
			ex.Usage = dialects.Usage{}
			ex.UpstreamStatus = 0
			publish(r, ex)
			aw = newAttemptWriter(w, base, ex, proxyInfo, func(hd http.Header) { g.answerHeaders(hd, ex) })
			if ex.cache != nil && ex.cache.store {
				aw.tee = &cacheTee{limit: g.teeLimit()}
			}
			err := h.attempt(aw, r, next, ex)

			// The attempt answered: a success or an error that is the
			// client's (or a kept answer to complete). A kept answer the
			// provider broke off is a failure: nothing of it has left.
			if aw.wrote && !aw.held && (err == nil || aw.committed) {
				if aw.committed && err != nil {
					// Broke off after the answer began: too late to
					// fall back.
					rt.Breakers.Failure(c.Provider.Name, c.Model.ID, rt.BreakerThreshold, rt.BreakerCooldown)
					entry.ErrorKind = "upstream_broken"
					g.Logger.Warn("upstream failed after the answer began", zap.String("provider", c.Provider.Name), zap.String("model", c.Model.ID), zap.Error(err))
				} else {
					rt.Breakers.Success(c.Provider.Name, c.Model.ID)
				}
				aw.release(func(b []byte) []byte { return h.proxyObject(b, ex) })
				// The answer is complete: let it leave now rather than
				// when the handler returns, so that the bookkeeping below
				// (cache, ledger, metrics) is not the client's wait.
				_ = flush(w)
				status := aw.status
				switch {
				case entry.ErrorKind != "":
				case status == 499:
					entry.ErrorKind = "client_closed"
				case status >= 400:
					entry.ErrorKind = "upstream_status"
				}
				if status == http.StatusOK && entry.ErrorKind == "" {
					g.cacheStore(ex, aw.tee, h.cost(ex))
				}
				h.finish(r, ex, &entry, status)
				return nil
			}
			if r.Context().Err() != nil {
				// The client went away: nobody to answer, nothing
				// learned about the provider.
				rt.Breakers.Release(c.Provider.Name, c.Model.ID)
				entry.ErrorKind = "client_closed"
				h.finish(r, ex, &entry, 499)
				return nil
			}
			// A failure: held back from the client.
			kind := failTransient
			var wait time.Duration
			var de *dialects.Error
			if !aw.wrote && errors.As(err, &de) && de.Status < 500 {
				// The gateway could not shape the request for this
				// target (e.g. an image URL for Ollama): not the
				// provider's failure; another target may take it.
				rt.Breakers.Release(c.Provider.Name, c.Model.ID)
				if gwErr == nil {
					gwErr = de
				}
				break
			}
			rt.Breakers.Failure(c.Provider.Name, c.Model.ID, rt.BreakerThreshold, rt.BreakerCooldown)
			lastFailed = failedAttempt{decision: ex.Decision, fallback: ex.Fallback, usage: ex.Usage, status: ex.UpstreamStatus}
			if aw.held {
				lastHeld, lastErr = aw, nil
				kind = failureOf(statusOf(aw))
				wait = retryAfter(aw.header, g.Now())
				g.Logger.Warn("upstream answered with an error", zap.String("provider", c.Provider.Name), zap.String("model", c.Model.ID),
					zap.Int("status", statusOf(aw)), zap.Int("attempt", ex.Attempts))
			} else {
				lastHeld, lastErr = nil, err
				if err == nil {
					lastErr = errors.New("the provider sent no answer")
				}
				g.Logger.Warn("upstream failed", zap.String("provider", c.Provider.Name), zap.String("model", c.Model.ID),
					zap.Int("attempt", ex.Attempts), zap.Error(lastErr))
			}
			if wait > 0 {
				// A provider that asked for time gets it from every
				// request until then, this one's retry included.
				rt.Breakers.Wait(c.Provider.Name, c.Model.ID, g.Now().Add(wait))
			}
			if kind != failTransient || try >= g.Retries || wait > g.MaxRetryWait {
				break
			}
			if wait == 0 {
				wait = min(backoff(g.RetryBackoff, try), g.MaxRetryWait)
			}
			slept := g.Now()
			serr := g.Sleep(r.Context(), wait)
			ex.RetryWait += g.Now().Sub(slept)
			if serr != nil {
				entry.ErrorKind = "client_closed"
				h.finish(r, ex, &entry, 499)
				return nil
			}
		}
	}

	// Every target failed (or none could be tried): the client gets the
	// last failure as it came, or an error that says what happened.
	switch {
	case lastHeld == nil && lastErr == nil && gwErr != nil:
		resetHeader(w.Header(), base)
		g.answerHeaders(w.Header(), ex)
		dialects.WriteError(w, ep.Dialect, gwErr)
		entry.ErrorKind = "gateway"
		h.finish(r, ex, &entry, gwErr.Status)
	case lastHeld != nil:
		lastFailed.restore(r, ex)
		aw = lastHeld
		aw.commitHeaders = func(hd http.Header) { g.answerHeaders(hd, ex) }
		aw.replay()
		entry.ErrorKind = "upstream_status"
		h.finish(r, ex, &entry, aw.status)
	case lastErr != nil:
		lastFailed.restore(r, ex)
		e := upstreamError(ex.Decision, lastErr)
		entry.ErrorKind = "upstream_unreachable"
		if e.Status < 500 || e.Status == http.StatusNotImplemented {
			entry.ErrorKind = "gateway"
		}
		resetHeader(w.Header(), base)
		g.answerHeaders(w.Header(), ex)
		dialects.WriteError(w, ep.Dialect, e)
		h.finish(r, ex, &entry, e.Status)
	default:
		// Breakers opened between planning and trying: no attempt.
		var why []string
		for _, s := range plan.Skipped {
			why = append(why, s.Model+": "+s.Reason)
		}
		ex.Decision = nil
		g.answerHeaders(w.Header(), ex)
		dialects.WriteError(w, ep.Dialect, &dialects.Error{Status: http.StatusServiceUnavailable, Code: "provider_unavailable",
			Message: routing.ErrNoneAvailable.Error() + ": " + strings.Join(why, "; ")})
		entry.ErrorKind = "unavailable"
		h.finish(r, ex, &entry, http.StatusServiceUnavailable)
	}
	return nil
}

// failedAttempt is what the exchange said of a failed attempt, to be
// put back when that failure is the answer.
type failedAttempt struct {
	decision *routing.Decision
	fallback int
	usage    dialects.Usage
	status   int
}

func (f failedAttempt) restore(r *http.Request, ex *Exchange) {
	if f.decision == nil || f.decision == ex.Decision {
		return
	}
	ex.Decision, ex.Fallback, ex.Usage, ex.UpstreamStatus = f.decision, f.fallback, f.usage, f.status
	publish(r, ex)
}

// attempt runs one upstream attempt on a copy of the request. A stream
// aborted before anything was committed (reverse_proxy's
// http.ErrAbortHandler) is an ordinary failure; after, the panic goes on.
func (h *Route) attempt(aw *attemptWriter, r *http.Request, next caddyhttp.Handler, ex *Exchange) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler && !aw.committed {
				err = errors.New("the provider's answer broke off")
				return
			}
			panic(p)
		}
	}()
	attempt := WithExchange(r.Clone(r.Context()), ex)
	return next.ServeHTTP(aw, attempt)
}

// statusOf is the provider's own status for a held failure.
func statusOf(aw *attemptWriter) int {
	if aw.ex.UpstreamStatus != 0 {
		return aw.ex.UpstreamStatus
	}
	return aw.status
}

// resetHeader makes h equal to base again.
func resetHeader(h, base http.Header) {
	for k := range h {
		delete(h, k)
	}
	for k, v := range base {
		h[k] = v
	}
}

// proxyObject adds the _proxy object to a whole JSON answer.
func (h *Route) proxyObject(body []byte, ex *Exchange) []byte {
	if len(body) == 0 || body[0] != '{' {
		return body
	}
	d := ex.Decision
	b := make([]byte, 0, 256)
	b = append(b, `{"model":`...)
	b = dialects.AppendJSONString(b, d.Model.ID)
	b = append(b, `,"provider":`...)
	b = dialects.AppendJSONString(b, d.Provider.Name)
	b = append(b, `,"tier":`...)
	b = dialects.AppendJSONString(b, tierLabel(ex.Plan))
	b = append(b, `,"cost_usd":`...)
	b = strconv.AppendFloat(b, h.cost(ex), 'f', -1, 64)
	b = append(b, `,"routing_reason":`...)
	b = dialects.AppendJSONString(b, ex.Plan.Reason)
	b = append(b, `,"elapsed_ms":`...)
	b = strconv.AppendFloat(b, float64(h.GW.Now().Sub(ex.Start).Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"fallback_index":`...)
	b = strconv.AppendInt(b, int64(ex.Fallback), 10)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(ex.Attempts), 10)
	if s := ex.cacheStatus(); s != "" {
		b = append(b, `,"cache":`...)
		b = dialects.AppendJSONString(b, s)
	}
	b = append(b, '}')
	return setProxyMember(body, b)
}

// setProxyMember adds "_proxy":obj to the JSON object body. The usual
// answer has no _proxy (unless a gateway stands behind this one): obj is
// spliced in before the closing brace, one copy and no parse; otherwise
// sjson replaces the member.
func setProxyMember(body, obj []byte) []byte {
	end := len(body) - 1
	for end > 0 && (body[end] == ' ' || body[end] == '\n' || body[end] == '\r' || body[end] == '\t') {
		end--
	}
	if end <= 0 || body[0] != '{' || body[end] != '}' || bytes.Contains(body, []byte(`"_proxy"`)) {
		out, err := sjson.SetRawBytes(body, "_proxy", obj)
		if err != nil {
			return body
		}
		return out
	}
	out := make([]byte, 0, len(body)+len(obj)+12)
	out = append(out, body[:end]...)
	if len(bytes.TrimSpace(body[1:end])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"_proxy":`...)
	out = append(out, obj...)
	return append(out, body[end:]...)
}

// cost is the exchange's cost so far at the current target's prices.
func (h *Route) cost(ex *Exchange) float64 {
	p := ex.Decision.Model.Prices
	return ledger.Cost(ledger.Prices{Input: p.Input, Output: p.Output, CachedInput: p.CachedInput, CacheWrite: p.CacheWrite}, tokens(ex.Usage))
}

// tokens is usage in the ledger's terms.
func tokens(u dialects.Usage) ledger.Tokens {
	return ledger.Tokens{Input: u.Input, CachedInput: u.CachedInput, CacheWrite: u.CacheWrite, Output: u.Output, Reasoning: u.Reasoning}
}

// finish fills the ledger entry from the exchange and records it.
func (h *Route) finish(r *http.Request, ex *Exchange, e *ledger.Entry, status int) {
	if ex.finished {
		// A panic out of a first finish reaches the recover in
		// attempts: the request is recorded once.
		return
	}
	ex.finished = true
	g := h.GW
	now := g.Now()
	overhead := ex.Overhead(now)
	e.Time = ex.Start
	e.Status = status
	e.Attempts = ex.Attempts
	e.Fallback = ex.Fallback > 0
	e.LatencyMS = float64(now.Sub(ex.Start).Microseconds()) / 1000
	if d := ex.Decision; d != nil {
		e.Provider = d.Provider.Name
		e.Model = d.Model.ID
		e.UpstreamModel = d.Model.UpstreamID
		e.Tokens = tokens(ex.Usage)
		e.CostUSD = h.cost(ex)
	}
	if a := ex.Account; a != nil {
		e.KeyID = a.KeyID
		e.Session = a.Session
	}
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok && accessLogged(r) {
		extra.Add(zap.String("llm_provider", e.Provider))
		extra.Add(zap.String("llm_model", e.Model))
		extra.Add(zap.String("llm_tier", e.Tier))
		extra.Add(zap.Int("llm_attempts", e.Attempts))
		extra.Add(zap.Int("llm_input_tokens", e.Input))
		extra.Add(zap.Int("llm_output_tokens", e.Output))
		extra.Add(zap.Float64("llm_cost_usd", e.CostUSD))
		if e.KeyID != "" {
			extra.Add(zap.String("llm_key", e.KeyID))
		}
		extra.Add(zap.Float64("llm_overhead_ms", float64(overhead.Microseconds())/1000))
	}
	if ex.Hold != nil {
		// Replace the reservation by the actual cost, in one step with
		// recording the entry.
		if err := ex.Hold.Settle(*e); err != nil {
			g.Logger.Error("ledger entry lost", zap.String("model", e.Model), zap.String("provider", e.Provider), zap.Error(err))
		}
	} else {
		g.record(r.Context(), *e)
	}
	g.observe(ex, e, overhead)
}

// accessLogged reports whether the request's server writes access logs
// (a log directive), the only reader of the extra log fields: without
// one, the fields would be built for nobody on every request.
func accessLogged(r *http.Request) bool {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return !ok || srv.Logs != nil
}

// observe hands a finished request to the metrics, and what its
// account's limits have left now that it is settled.
func (g *Gateway) observe(ex *Exchange, e *ledger.Entry, overhead time.Duration) {
	m := g.Metrics
	if m == nil {
		return
	}
	m.Observe(*e, overhead)
	if a := ex.Account; a != nil && len(a.Limits) > 0 {
		if l := g.ledger.Load(); l != nil {
			m.BudgetRemaining(a.KeyID, l.Remaining(g.Now(), a.KeyID, a.Session, a.Limits))
		}
	}
}

// countRefusal counts a budget refusal (see reserve) by the limit that
// made it: the per-request cap (400) or the limit the refusal names.
func (g *Gateway) countRefusal(ref *ledger.Refusal, e *dialects.Error) {
	m := g.Metrics
	if m == nil {
		return
	}
	switch {
	case e.Status == http.StatusBadRequest:
		m.BudgetRefused(telemetry.ScopeRequest, telemetry.WindowRequest)
	case ref != nil:
		m.BudgetRefused(ref.Limit.Scope, ref.Limit.Window.String())
	}
}

// answerHeaders sets what every answer of an exchange carries, just
// before its headers are sent: the decision's x-llm-* headers and, when
// enabled, X-Llm-Overhead-Ms.
func (g *Gateway) answerHeaders(h http.Header, ex *Exchange) {
	setDecisionHeaders(h, ex)
	g.setOverheadHeader(h, ex)
}

// setOverheadHeader sets X-Llm-Overhead-Ms when enabled: the gateway's
// own time in milliseconds until now, the moment the headers are sent,
// so it covers the time to the first byte (a stream's later events pass
// after it).
func (g *Gateway) setOverheadHeader(h http.Header, ex *Exchange) {
	if !g.OverheadHeader {
		return
	}
	h.Set("X-Llm-Overhead-Ms", strconv.FormatFloat(float64(ex.Overhead(g.Now()).Microseconds())/1000, 'f', 3, 64))
}

// publish makes the decision visible to the rest of the chain and to the
// client: placeholders {llm.*} and vars llm_*. The placeholders are
// served by one replacer function over the exchange, registered once per
// request, which always reads the current decision (a fallback changes
// it); the vars are set in place.
func publish(r *http.Request, ex *Exchange) {
	d, p := ex.Decision, ex.Plan
	if !ex.published {
		ex.published = true
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Map(ex.placeholder)
		}
	}
	if vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		vars["llm_provider"] = d.Provider.Name
		vars["llm_model"] = d.Model.ID
		vars["llm_upstream_model"] = d.Model.UpstreamID
		vars["llm_tier"] = string(p.Tier)
	}
}

// placeholder resolves the {llm.*} placeholders of the exchange's
// current decision.
func (ex *Exchange) placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "llm.")
	d := ex.Decision
	if !ok || d == nil {
		return nil, false
	}
	switch name {
	case "provider":
		return d.Provider.Name, true
	case "model":
		return d.Model.ID, true
	case "upstream_model":
		return d.Model.UpstreamID, true
	case "dialect":
		return d.Provider.Dialect, true
	case "route_reason":
		return d.Reason, true
	case "tier":
		if ex.Plan != nil {
			return string(ex.Plan.Tier), true
		}
		return "", true
	case "upstream":
		if len(d.Provider.URLs) > 0 {
			return d.Provider.URLs[0].Host, true
		}
		return "", true
	}
	return nil, false
}

// tierLabel is the tier a plan chose, as the client is told it (header,
// _proxy): "none" when no tier chose the model.
func tierLabel(p *routing.Plan) string {
	if p == nil || p.Tier == "" {
		return "none"
	}
	return string(p.Tier)
}

// setDecisionHeaders writes the x-llm-* headers of the exchange's
// current decision. X-Llm-Tier is "none" when no tier chose the model (a
// model or alias asked for by name). An answer no target was tried for
// (a refusal) still says what routing decided: its tier and reason, and
// 0 attempts.
func setDecisionHeaders(h http.Header, ex *Exchange) {
	p := ex.Plan
	tier := tierLabel(p)
	d := ex.Decision
	if d == nil {
		if p != nil {
			h.Set("X-Llm-Tier", tier)
			h.Set("X-Llm-Route-Reason", headerSafe(p.Reason))
			h.Set("X-Llm-Attempts", strconv.Itoa(ex.Attempts))
		}
		return
	}
	h.Set("X-Llm-Provider", d.Provider.Name)
	h.Set("X-Llm-Model", d.Model.ID)
	h.Set("X-Llm-Tier", tier)
	h.Set("X-Llm-Route-Reason", headerSafe(d.Reason))
	h.Set("X-Llm-Attempts", strconv.Itoa(ex.Attempts))
	h.Set("X-Llm-Fallback", strconv.Itoa(ex.Fallback))
}

// upstreamError turns an error returned by the rest of the chain before
// anything was written into a client-facing error.
func upstreamError(d *routing.Decision, err error) *dialects.Error {
	var de *dialects.Error
	if errors.As(err, &de) {
		return de
	}
	status := http.StatusBadGateway
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		status = he.StatusCode
		if he.Err != nil {
			err = he.Err
		}
	}
	if status < 500 {
		status = http.StatusBadGateway
	}
	// The cause (dial addresses of internal hosts) goes to the log, not
	// to the client.
	msg := "provider " + d.Provider.Name + " could not be reached"
	if status == http.StatusGatewayTimeout {
		msg = "provider " + d.Provider.Name + " timed out"
	}
	return &dialects.Error{Status: status, Code: "upstream_error", Message: msg}
}

// writerOnly hides every method but Write, so io.Copy cannot take a
// shortcut around a wrapper's Write.
type writerOnly struct{ io.Writer }
