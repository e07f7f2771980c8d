package llmgate

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/llmgate/caddy-llmgate/handlers"
)

// Route is the llm_route handler: it plans where a request goes (model,
// alias, tier or content; capability filters, cost order, fallbacks),
// runs the attempts through the rest of the chain with retries and
// fallbacks, and publishes the decision ({llm.provider}, {llm.model},
// {llm.upstream_model}, {llm.tier}, vars llm_*, x-llm-* response
// headers). It also answers GET /v1/models, GET /api/tags and
// GET /health.
type Route struct {
	// DefaultModel is used for requests that name no model: a model,
	// an alias, a tier or "auto". Default: auto (the router picks the
	// tier from the request's content).
	DefaultModel string `json:"default_model,omitempty"`

	// MaxBodyBytes overrides the llm app's request body limit.
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`

	h *handlers.Route
}

// CaddyModule returns the Caddy module information.
func (Route) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.llm_route", New: func() caddy.Module { return new(Route) }}
}

// Provision connects the handler to the llm app.
func (m *Route) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	if m.DefaultModel != "" && !app.gw.Router.Routable(m.DefaultModel) {
		return fmt.Errorf("llm_route: default_model %s is neither a model, an alias, a tier nor auto", m.DefaultModel)
	}
	m.h = &handlers.Route{GW: app.gw, DefaultModel: m.DefaultModel, MaxBody: m.MaxBodyBytes}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (m *Route) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return m.h.ServeHTTP(w, r, next)
}

// Translate is the llm_translate handler: it shapes the request for the
// provider llm_route chose (model name, path, credentials; the client's
// gateway key is removed) and sends it through that provider's reverse
// proxy. It must follow llm_route.
type Translate struct {
	h *handlers.Translate
}

// CaddyModule returns the Caddy module information.
func (Translate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.llm_translate", New: func() caddy.Module { return new(Translate) }}
}

// Provision connects the handler to the llm app.
func (m *Translate) Provision(ctx caddy.Context) error {
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	m.h = &handlers.Translate{GW: app.gw}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (m *Translate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return m.h.ServeHTTP(w, r, next)
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler = (*Route)(nil)
	_ caddy.Provisioner           = (*Route)(nil)
	_ caddyhttp.MiddlewareHandler = (*Translate)(nil)
	_ caddy.Provisioner           = (*Translate)(nil)
)
