package handlers

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/routing"
)

// Translate is the llm_translate middleware. For the decision llm_route
// made, it rewrites the request for the provider (model name, path,
// credentials) and sends it through the provider's reverse proxy,
// watching the answer for token usage as it streams past.
//
// When client and provider speak the same dialect the body is edited in
// place with sjson (the pass-through path), never decoded whole.
type Translate struct {
	GW *Gateway
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Translate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	ex := ExchangeFrom(r)
	if ex == nil || ex.Decision == nil {
		dialects.WriteError(w, dialects.OpenAI, dialects.Errorf(http.StatusInternalServerError,
			"llm_translate found no routing decision: put llm_route before it in the same route"))
		return nil
	}
	d := ex.Decision
	client := ex.Endpoint.Dialect
	target := dialects.Dialect(d.Provider.Dialect)
	upstream := h.GW.Upstreams[d.Provider.Name]
	if upstream == nil {
		return &dialects.Error{Status: http.StatusInternalServerError, Message: "no upstream configured for provider " + d.Provider.Name}
	}

	if client != target {
		return h.translate(w, r, next, ex, upstream, client, target)
	}
	body := ex.Body
	var err error
	if !dialects.PathStream(target) {
		// Gemini and Bedrock name the model in the path (prepareUpstream).
		body, err = dialects.SetModel(body, d.Model.UpstreamID)
	}
	if err == nil {
		body, err = dialects.RequestStreamUsage(target, body, ex.Request)
	}
	if err != nil {
		return &dialects.Error{Status: http.StatusBadRequest, Message: "rewriting request body: " + err.Error()}
	}
	prepareUpstream(r, d.Provider, target, d.Model.UpstreamID, body, ex.Request.Stream)

	tap := newUsageTap(w, target, target == dialects.OpenAI && ex.Request.Stream && !ex.Request.StreamUsage)
	tap.upstreamStatus = &ex.UpstreamStatus
	tap.onHeaders = func() { ex.headersArrived(h.GW.Now()) }
	tap.now = h.GW.Now // hold a stream until its answer begins (startHold)
	tap.start.onRelease = func() { ex.streamBegan(h.GW.Now()) }
	aborted := true
	// Deferred so that a stream aborted half-way (reverse_proxy panics
	// with http.ErrAbortHandler) still hands the usage read so far to
	// the ledger (the provider bills the input of an aborted stream) and
	// the client an error event.
	defer func() {
		tap.finish(aborted)
		if u, ok := tap.usage(); ok {
			ex.Usage = u
		}
	}()
	ex.beginCall(h.GW.Now())
	defer h.endCall(ex)
	err = upstream.ServeHTTP(tap, r, next)
	aborted = err != nil
	return err
}

// translate serves a request whose client and provider speak different
// dialects: the request is decoded to the neutral model and encoded for
// the provider, the answer translated back (streams event by event).
func (h *Translate) translate(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, ex *Exchange,
	upstream caddyhttp.MiddlewareHandler, client, target dialects.Dialect) (err error) {
	d := ex.Decision
	chat := ex.Chat // decoded once for routing, kept for every attempt
	if chat == nil {
		var derr *dialects.Error
		if chat, derr = decodeChat(client, ex.Body, ex.Request); derr != nil {
			return derr
		}
		ex.Chat = chat
	}
	body, derr := dialects.EncodeRequestFor(target, chat, dialects.EncodeOptions{
		Model:            d.Model.UpstreamID,
		DefaultMaxTokens: d.Model.MaxOutput,
		Reasoning:        d.Model.Has(routing.CapReasoning),
	})
	if derr != nil {
		return derr
	}
	// Headers that describe the client's wire format do not describe the
	// translated body: the Anthropic encoder writes the classic
	// (2023-06-01) shape whatever version the client spoke.
	for k := range r.Header {
		switch {
		case k == "Anthropic-Version", k == "Anthropic-Beta", k == "Openai-Beta", strings.HasPrefix(k, "X-Stainless-"):
			r.Header.Del(k)
		}
	}
	prepareUpstream(r, d.Provider, target, d.Model.UpstreamID, body, ex.Request.Stream)
	tw := newTranslateWriter(w, target, client, ex.Request.Stream, dialects.StreamOptions{
		Model: d.Model.ID, IncludeUsage: ex.Request.StreamUsage, Created: h.GW.Now().Unix(),
	})
	tw.upstreamStatus = &ex.UpstreamStatus
	tw.onHeaders = func() { ex.headersArrived(h.GW.Now()) }
	tw.now = h.GW.Now
	tw.start.onRelease = func() { ex.streamBegan(h.GW.Now()) }
	aborted := true
	defer func() {
		tw.finish(aborted)
		if tw.usageOK {
			ex.Usage = tw.usage
		}
	}()
	ex.beginCall(h.GW.Now())
	defer h.endCall(ex)
	err = upstream.ServeHTTP(tw, r, next)
	aborted = err != nil && tw.wroteHeader
	return err
}

// endCall ends the time of the current upstream call (the provider's
// reverse proxy returned or panicked) and records how long the provider
// took to send its headers, when it sent them. A whole answer the
// gateway rewrites after the call (translation, the error event of a
// broken stream) is the gateway's time, not the call's.
func (h *Translate) endCall(ex *Exchange) {
	ex.endCall(h.GW.Now())
	if ex.gotHeaders {
		d := ex.Decision
		h.GW.Metrics.ObserveUpstream(d.Provider.Name, d.Model.ID, ex.UpstreamHeaders)
	}
}

// clientOnlyHeaders are never forwarded upstream: the headers a client
// may carry its gateway key in, its cookies, the OpenAI organization and
// project of the client's own account (they would clash with the
// provider key's), and headers that reveal the client's address.
var clientOnlyHeaders = append([]string{"Authorization", "Proxy-Authorization",
	"Cookie", "Openai-Organization", "Openai-Project", "Forwarded", "X-Real-Ip", "Cf-Connecting-Ip", "True-Client-Ip",
	// An AWS SDK client's own SigV4 signature, session token and date.
	"X-Amz-Security-Token", "X-Amz-Date", "X-Amz-Content-Sha256"}, keyHeaders...)

// prepareUpstream points r at the provider: body, path (with the model
// for the dialects that name it there), credentials.
func prepareUpstream(r *http.Request, p *routing.Provider, d dialects.Dialect, model string, body []byte, stream bool) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	h := r.Header
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Content-Type", "application/json")
	// The gateway reads the answer as it passes; let the transport
	// negotiate (and undo) compression itself.
	h.Del("Accept-Encoding")
	for _, k := range clientOnlyHeaders {
		h.Del(k)
	}
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery = dialects.UpstreamPath(d, p.BasePath(), model, stream)
	r.RequestURI = ""
	switch d {
	case dialects.Anthropic:
		if p.APIKey != "" {
			h.Set("X-Api-Key", p.APIKey)
		}
		if h.Get("Anthropic-Version") == "" {
			h.Set("Anthropic-Version", "2023-06-01")
		}
	case dialects.Gemini:
		if p.APIKey != "" {
			h.Set("X-Goog-Api-Key", p.APIKey)
		}
	case dialects.Bedrock:
		// With an API key, Bedrock takes it as a bearer token; without,
		// the provider's transport signs the request (SigV4).
		if p.APIKey != "" {
			h.Set("Authorization", "Bearer "+p.APIKey)
		}
	default:
		if p.APIKey != "" {
			h.Set("Authorization", "Bearer "+p.APIKey)
		}
	}
	for k, v := range p.Headers {
		h.Set(k, v)
	}
}
