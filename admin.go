package llmgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"

	"github.com/llmgate/caddy-llmgate/dialects"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the admin.api.llm module: the gateway's endpoints on
// Caddy's admin API (localhost:2019 by default).
//
//	POST /llm/route/explain[?dialect=openai|responses|anthropic|ollama][&tier=<tier>][&default_model=<model>]
//
// plans the request in the body as llm_route would and answers the
// explanation (tier, reasons, candidates in order, skipped targets with
// why) without sending anything upstream. The X-Task-Tier header may
// stand in for the tier parameter.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.llm", New: func() caddy.Module { return new(adminAPI) }}
}

// Routes returns the admin routes of the llm app.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/llm/route/explain", Handler: caddy.AdminHandlerFunc(a.explain)}}
}

// explainDialects maps the names the endpoint accepts to client dialects.
var explainDialects = map[string]dialects.Dialect{
	"": dialects.OpenAI, "openai": dialects.OpenAI, "chat": dialects.OpenAI,
	"responses": dialects.Responses,
	"anthropic": dialects.Anthropic, "messages": dialects.Anthropic,
	"ollama": dialects.Ollama,
}

func (a *adminAPI) explain(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("POST a generation request body to explain its route")}
	}
	app, err := a.app()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	d, ok := explainDialects[strings.ToLower(q.Get("dialect"))]
	if !ok {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest,
			Err: fmt.Errorf("unknown dialect %q (valid: openai, responses, anthropic, ollama)", q.Get("dialect"))}
	}
	tier := q.Get("tier")
	if tier == "" {
		tier = r.Header.Get("X-Task-Tier")
	}
	limit := app.gw.MaxBody
	if limit <= 0 {
		limit = 10 << 20
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading the request: %v", err)}
	}
	x, derr := app.gw.Explain(d, body, q.Get("default_model"), strings.TrimSpace(tier))
	if derr != nil {
		return caddy.APIError{HTTPStatus: derr.Status, Err: errors.New(derr.Message)}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(x)
}

// currentApp is the llm app of the running config: set when an app
// starts, cleared when it is cleaned up unless a newer one took over. The
// admin endpoints read it; they never provision an app of their own.
var currentApp atomic.Pointer[App]

// app returns the llm app of the running config.
func (a *adminAPI) app() (*App, error) {
	app := currentApp.Load()
	if app == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("the running config has no llm app")}
	}
	return app, nil
}

// Interface guard.
var _ caddy.AdminRouter = (*adminAPI)(nil)
