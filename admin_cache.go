package llmgate

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// The admin endpoints of the response cache and the context buffer:
//
//	GET  /llm/cache          cache.Stats: entries, stored bytes, hits, misses,
//	                         bypasses, stores, errors and USD saved since start
//	POST /llm/cache/clear    removes every cached answer: {"removed": n}
//	GET  /llm/context        the stats of every context (contextbuf.Stats)
//	DELETE /llm/context/<id> deletes a context and what sessions received of it
//
// A config without a cache answers 404 on the cache endpoints.

func (a *adminAPI) cache(w http.ResponseWriter, r *http.Request) error {
	app, err := a.app()
	if err != nil {
		return err
	}
	c := app.Gateway().ResponseCache()
	if c == nil {
		if app.Cache == nil {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("the response cache is off (llm { cache } turns it on)")}
		}
		if !app.cacheOn {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("the response cache is off: the variable of its encryption_key_env is not set")}
		}
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("the llm storage is not open")}
	}
	var out any
	switch sub := strings.Trim(strings.TrimPrefix(r.URL.Path, "/llm/cache"), "/"); {
	case sub == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		st, err := c.Stats()
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		out = st
	case sub == "clear" && r.Method == http.MethodPost:
		n, err := c.Clear()
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		out = map[string]int{"removed": n}
	default:
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("use GET /llm/cache or POST /llm/cache/clear")}
	}
	return writeAdminJSON(w, http.StatusOK, out)
}

func (a *adminAPI) contexts(w http.ResponseWriter, r *http.Request) error {
	app, err := a.app()
	if err != nil {
		return err
	}
	b := app.Gateway().Contexts()
	if b == nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("the llm storage is not open")}
	}
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, "/llm/context"), "/")
	var out any
	switch {
	case id == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		list, err := b.List()
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		out = map[string]any{"contexts": list}
	case id != "" && r.Method == http.MethodDelete:
		if _, ok, err := b.Stats(id); err != nil || !ok {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no context " + id)}
		}
		if err := b.Delete(id); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		out = map[string]string{"deleted": id}
	default:
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("use GET /llm/context or DELETE /llm/context/<id>")}
	}
	return writeAdminJSON(w, http.StatusOK, out)
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
