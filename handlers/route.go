package handlers

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
)

// Route is the llm_route middleware. It answers the gateway's own
// endpoints, and for a generation request reads the body (bounded),
// resolves the model to a provider, publishes the decision and calls the
// rest of the chain (llm_translate) with it. Every request it sees is
// answered: paths it does not serve get a 404 in OpenAI's error shape, so
// scope it with a matcher when a site serves other things too.
type Route struct {
	GW *Gateway
	// DefaultModel is used when a request names no model ("" to reject
	// such requests with a 400).
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
			Message: "unknown endpoint " + r.Method + " " + r.URL.Path + " (served: POST /v1/chat/completions, POST /v1/responses, POST /v1/messages, POST /api/chat, GET /v1/models, GET /api/tags, GET /health)"})
		return nil
	}
	switch ep.Name {
	case "models":
		return h.GW.serveModels(w, r)
	case "health":
		return h.GW.serveHealth(w, r)
	case "ollama_tags":
		return h.GW.serveTags(w, r)
	}
	return h.serveGenerate(w, r, next, ep)
}

func allowFor(ep dialects.Endpoint) string {
	if ep.Generate {
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

	limit := h.maxBody()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			dialects.WriteError(w, ep.Dialect, dialects.Errorf(http.StatusRequestEntityTooLarge,
				"request body is larger than the gateway's limit of %d bytes", limit))
			return nil
		}
		dialects.WriteError(w, ep.Dialect, dialects.Errorf(http.StatusBadRequest, "reading request body: %v", err))
		return nil
	}
	ex.Body = body
	req, derr := dialects.ReadRequest(ep.Dialect, body)
	if derr != nil {
		dialects.WriteError(w, ep.Dialect, derr)
		return nil
	}
	ex.Request = req
	model := req.Model
	if model == "" {
		model = h.DefaultModel
	}
	if model == "" {
		dialects.WriteError(w, ep.Dialect, &dialects.Error{Status: http.StatusBadRequest, Param: "model",
			Message: "missing required field model (GET /v1/models lists the models and aliases of this gateway)"})
		return nil
	}
	dec, err := g.Catalog.Resolve(model)
	if err != nil {
		e := &dialects.Error{Status: http.StatusNotFound, Code: "model_not_found", Param: "model", Message: err.Error()}
		if errors.Is(err, routing.ErrUnavailable) {
			e = &dialects.Error{Status: http.StatusServiceUnavailable, Code: "provider_unavailable", Message: err.Error()}
		}
		dialects.WriteError(w, ep.Dialect, e)
		return nil
	}
	ex.Decision = dec
	publish(r, dec)

	tw := &commitWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	entry := ledger.Entry{Endpoint: ep.Name, Stream: req.Stream}
	// A panic from further down (reverse_proxy aborts a stream that broke
	// mid-way with http.ErrAbortHandler) still gets its ledger entry.
	defer func() {
		if p := recover(); p != nil {
			entry.ErrorKind = "aborted"
			h.finish(r, ex, &entry, tw.status)
			panic(p)
		}
	}()

	ex.Attempts++
	setDecisionHeaders(w.Header(), dec, ex.Attempts)
	attempt := r.Clone(r.Context())
	attempt = WithExchange(attempt, ex)
	err = next.ServeHTTP(tw, attempt)
	status := tw.status
	if err != nil && !tw.wrote {
		e := upstreamError(dec, err)
		if e.Code == "upstream_error" {
			g.Logger.Warn("upstream failed", zap.String("provider", dec.Provider.Name), zap.String("model", dec.Model.ID), zap.Error(err))
		}
		entry.ErrorKind = "upstream_unreachable"
		if e.Status < 500 || e.Status == http.StatusNotImplemented {
			entry.ErrorKind = "gateway"
		}
		dialects.WriteError(w, ep.Dialect, e)
		status = e.Status
	} else if err != nil {
		entry.ErrorKind = "upstream_broken"
		g.Logger.Warn("upstream failed after the answer began", zap.String("provider", dec.Provider.Name), zap.String("model", dec.Model.ID), zap.Error(err))
	} else if status == 499 {
		// reverse_proxy's status for a client that went away first.
		entry.ErrorKind = "client_closed"
	} else if status >= 400 {
		entry.ErrorKind = "upstream_status"
	}
	h.finish(r, ex, &entry, status)
	return nil
}

// finish fills the ledger entry from the exchange and records it.
func (h *Route) finish(r *http.Request, ex *Exchange, e *ledger.Entry, status int) {
	g := h.GW
	d := ex.Decision
	e.Time = ex.Start
	e.Provider = d.Provider.Name
	e.Model = d.Model.ID
	e.UpstreamModel = d.Model.UpstreamID
	e.Status = status
	e.Attempts = ex.Attempts
	e.LatencyMS = float64(g.Now().Sub(ex.Start).Microseconds()) / 1000
	u := ex.Usage
	e.Tokens = ledger.Tokens{Input: u.Input, CachedInput: u.CachedInput, CacheWrite: u.CacheWrite, Output: u.Output, Reasoning: u.Reasoning}
	p := d.Model.Prices
	e.CostUSD = ledger.Cost(ledger.Prices{Input: p.Input, Output: p.Output, CachedInput: p.CachedInput}, e.Tokens)
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Add(zap.String("llm_provider", e.Provider))
		extra.Add(zap.String("llm_model", e.Model))
		extra.Add(zap.Int("llm_input_tokens", e.Input))
		extra.Add(zap.Int("llm_output_tokens", e.Output))
		extra.Add(zap.Float64("llm_cost_usd", e.CostUSD))
	}
	g.record(r.Context(), *e)
}

// publish makes the decision visible to the rest of the chain and to the
// client: placeholders {llm.*}, vars llm_* and x-llm-* response headers.
func publish(r *http.Request, d *routing.Decision) {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("llm.provider", d.Provider.Name)
		repl.Set("llm.model", d.Model.ID)
		repl.Set("llm.upstream_model", d.Model.UpstreamID)
		repl.Set("llm.dialect", d.Provider.Dialect)
		repl.Set("llm.route_reason", d.Reason)
		if len(d.Provider.URLs) > 0 {
			repl.Set("llm.upstream", d.Provider.URLs[0].Host)
		}
	}
	caddyhttp.SetVar(r.Context(), "llm_provider", d.Provider.Name)
	caddyhttp.SetVar(r.Context(), "llm_model", d.Model.ID)
	caddyhttp.SetVar(r.Context(), "llm_upstream_model", d.Model.UpstreamID)
}

// setDecisionHeaders writes the x-llm-* headers of a decision.
func setDecisionHeaders(h http.Header, d *routing.Decision, attempts int) {
	h.Set("X-Llm-Provider", d.Provider.Name)
	h.Set("X-Llm-Model", d.Model.ID)
	h.Set("X-Llm-Route-Reason", d.Reason)
	h.Set("X-Llm-Attempts", strconv.Itoa(attempts))
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

// commitWriter notes whether anything reached the client and with which
// status. It forwards flushes (Unwrap) and keeps ReadFrom on its Write.
type commitWriter struct {
	*caddyhttp.ResponseWriterWrapper
	status int
	wrote  bool
}

func (c *commitWriter) WriteHeader(code int) {
	if !c.wrote && code >= 200 {
		c.status, c.wrote = code, true
	}
	c.ResponseWriterWrapper.WriteHeader(code)
}

func (c *commitWriter) Write(p []byte) (int, error) {
	if !c.wrote {
		c.status, c.wrote = http.StatusOK, true
	}
	return c.ResponseWriterWrapper.Write(p)
}

func (c *commitWriter) ReadFrom(src io.Reader) (int64, error) {
	return io.Copy(writerOnly{c}, src)
}

// writerOnly hides every method but Write, so io.Copy cannot take a
// shortcut around a wrapper's Write.
type writerOnly struct{ io.Writer }
