package handlers

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/llmgate/caddy-llmgate/contextbuf"
	"github.com/llmgate/caddy-llmgate/dialects"
)

// ContextInjection is what X-Inject-Context put into a request.
type ContextInjection struct {
	ID      string
	Version uint64
	// Kind is "snapshot", "delta" or "unchanged" (see contextbuf.Injection).
	Kind        string
	NewTokens   int
	TotalTokens int
}

// DefaultContextID is the context injected when neither X-Context-Id
// nor the configuration names one.
const DefaultContextID = "default"

// injectContext puts the requested context in front of the request's
// system prompt when the client sent X-Inject-Context: true (see
// contextbuf for what a session receives). It answers the client itself
// and returns false when the request cannot go on.
func (h *Route) injectContext(w http.ResponseWriter, r *http.Request, ex *Exchange) bool {
	v := strings.TrimSpace(r.Header.Get("X-Inject-Context"))
	if v == "" {
		return true
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		h.refuse(w, r, ex, &dialects.Error{Status: http.StatusBadRequest, Code: "invalid_header", Param: "X-Inject-Context",
			Message: "X-Inject-Context must be true or false"}, "context")
		return false
	}
	if !on {
		return true
	}
	g := h.GW
	id := strings.TrimSpace(r.Header.Get("X-Context-Id"))
	if id == "" {
		id = g.defaultContextID()
	}
	// llm_budget has read (and checked) the session id already.
	var session string
	if a := ex.Account; a != nil {
		session = a.Session
	} else if s, serr := sessionID(r); serr != nil {
		h.refuse(w, r, ex, serr, "context")
		return false
	} else {
		session = s
	}
	buf := g.waitContexts()
	if buf == nil {
		h.refuse(w, r, ex, errStorageClosed, "context")
		return false
	}
	inj, err := buf.Inject(id, session)
	if err != nil {
		h.refuse(w, r, ex, contextError(g, id, err), "context")
		return false
	}
	body, derr := dialects.PrependSystem(ex.Endpoint.Dialect, ex.Body, inj.Text)
	if derr != nil {
		h.refuse(w, r, ex, derr, "context")
		return false
	}
	ex.Body = body
	ex.Context = &ContextInjection{ID: id, Version: inj.Version, Kind: inj.Kind, NewTokens: inj.NewTokens, TotalTokens: inj.TotalTokens}
	w.Header().Set("X-Llm-Context", inj.Kind+"; id="+id+"; version="+strconv.FormatUint(inj.Version, 10)+
		"; new_tokens="+strconv.Itoa(inj.NewTokens)+"; tokens="+strconv.Itoa(inj.TotalTokens))
	return true
}

func (g *Gateway) defaultContextID() string {
	if g.DefaultContextID != "" {
		return g.DefaultContextID
	}
	return DefaultContextID
}

// errStorageClosed answers what needs storage before it is open.
var errStorageClosed = &dialects.Error{Status: http.StatusServiceUnavailable, Code: "storage_unavailable",
	Message: "the gateway's storage is not open yet; try again"}

// waitContexts returns the context buffer, waiting briefly while
// storage opens.
func (g *Gateway) waitContexts() *contextbuf.Buffer {
	if b := g.contexts.Load(); b != nil {
		return b
	}
	g.waitReady()
	return g.contexts.Load()
}

// contextError turns an error of the context buffer into the client's
// error: 404 for an unknown context, 400 for bad input, 409 for a diff
// that does not apply or was made against another version, 413 for a
// context over its size limit.
func contextError(g *Gateway, id string, err error) *dialects.Error {
	var (
		pe *contextbuf.ParseError
		ae *contextbuf.ApplyError
		ce *contextbuf.ConflictError
		ie *contextbuf.InvalidError
	)
	switch {
	case errors.Is(err, contextbuf.ErrNoContext):
		return &dialects.Error{Status: http.StatusNotFound, Code: "context_not_found",
			Message: "context " + strconv.Quote(id) + " does not exist: send it first (caddy llm watch, or POST /v1/context/delta)"}
	case errors.As(err, &ie):
		return &dialects.Error{Status: http.StatusBadRequest, Code: "invalid_context", Message: err.Error()}
	case errors.As(err, &pe):
		return &dialects.Error{Status: http.StatusBadRequest, Code: "invalid_diff", Param: "diff", Message: err.Error()}
	case errors.As(err, &ae):
		return &dialects.Error{Status: http.StatusConflict, Code: "delta_not_applicable", Param: "diff", Message: err.Error()}
	case errors.As(err, &ce):
		return &dialects.Error{Status: http.StatusConflict, Code: "context_version_conflict", Param: "base_version", Message: err.Error()}
	case errors.Is(err, contextbuf.ErrTooLarge):
		return &dialects.Error{Status: http.StatusRequestEntityTooLarge, Code: "context_too_large", Message: err.Error()}
	}
	g.Logger.Error("context buffer failed", zap.String("context", id), zap.Error(err))
	return &dialects.Error{Status: http.StatusInternalServerError, Message: "the context buffer failed; see the gateway's log"}
}

// ContextDelta is the body of POST /v1/context/delta: a unified diff or
// a whole snapshot for the context named ID. BaseVersion, when set, is
// the version the sender made the diff against: if the context has
// changed since, nothing is applied and the answer is a 409 carrying the
// current version.
type ContextDelta struct {
	ID          string            `json:"id"`
	Diff        *string           `json:"diff,omitempty"`
	Snapshot    map[string]string `json:"snapshot,omitempty"`
	BaseVersion *uint64           `json:"base_version,omitempty"`
}

// serveContextDelta answers POST /v1/context/delta. The body is a
// ContextDelta as JSON, or (Content-Type text/x-diff, text/x-patch or
// text/plain) the diff itself with the context named by X-Context-Id or
// ?id= and the base version, when given, by ?base_version=.
func (g *Gateway) serveContextDelta(w http.ResponseWriter, r *http.Request) error {
	buf := g.waitContexts()
	if buf == nil {
		dialects.WriteError(w, dialects.OpenAI, errStorageClosed)
		return nil
	}
	raw, berr := readBody(w, r, contextBodyLimit(buf))
	if berr != nil {
		dialects.WriteError(w, dialects.OpenAI, berr)
		return nil
	}
	var in ContextDelta
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "text/x-diff", "text/x-patch", "text/plain":
		d := string(raw)
		in.Diff = &d
		in.ID = r.Header.Get("X-Context-Id")
		if in.ID == "" {
			in.ID = r.URL.Query().Get("id")
		}
		if v := r.URL.Query().Get("base_version"); v != "" {
			n, perr := strconv.ParseUint(v, 10, 64)
			if perr != nil {
				dialects.WriteError(w, dialects.OpenAI, &dialects.Error{Status: http.StatusBadRequest, Param: "base_version", Message: "base_version must be a whole number"})
				return nil
			}
			in.BaseVersion = &n
		}
	case "", "application/json":
		if err := json.Unmarshal(raw, &in); err != nil {
			dialects.WriteError(w, dialects.OpenAI, dialects.Errorf(http.StatusBadRequest,
				"the body must be a JSON object {\"id\", \"diff\" or \"snapshot\", \"base_version\"}: %v", err))
			return nil
		}
	default:
		dialects.WriteError(w, dialects.OpenAI, &dialects.Error{Status: http.StatusUnsupportedMediaType,
			Message: "send application/json, or a diff as text/x-diff"})
		return nil
	}
	if in.ID == "" {
		in.ID = r.Header.Get("X-Context-Id")
	}
	if in.ID == "" {
		in.ID = g.defaultContextID()
	}
	var st contextbuf.Stats
	var err error
	switch {
	case in.Diff != nil && in.Snapshot != nil:
		dialects.WriteError(w, dialects.OpenAI, &dialects.Error{Status: http.StatusBadRequest, Message: "send either diff or snapshot, not both"})
		return nil
	case in.Diff != nil:
		st, err = buf.ApplyDelta(in.ID, *in.Diff, in.BaseVersion)
	case in.Snapshot != nil:
		st, err = buf.PutSnapshot(in.ID, contextbuf.Files(in.Snapshot), in.BaseVersion)
	default:
		dialects.WriteError(w, dialects.OpenAI, &dialects.Error{Status: http.StatusBadRequest, Message: "the body has neither diff nor snapshot"})
		return nil
	}
	if err != nil {
		e := contextError(g, in.ID, err)
		body := dialects.ErrorBody(dialects.OpenAI, e)
		if e.Status == http.StatusConflict {
			// The sender needs the current version to start again from
			// a snapshot.
			var ce *contextbuf.ConflictError
			if errors.As(err, &ce) {
				body, _ = sjson.SetBytes(body, "error.current_version", ce.Current)
			} else if cur, ok, _ := buf.Stats(in.ID); ok {
				body, _ = sjson.SetBytes(body, "error.current_version", cur.Version)
			} else {
				body, _ = sjson.SetBytes(body, "error.current_version", 0)
			}
		}
		writeJSON(w, e.Status, body)
		return nil
	}
	g.Logger.Debug("context updated", zap.String("context", st.ID), zap.Uint64("version", st.Version), zap.Int("files", st.Files))
	return writeJSONValue(w, http.StatusOK, st)
}

// contextBodyLimit bounds a delta's body: a snapshot at the context's
// size limit, with room for JSON escaping.
func contextBodyLimit(b *contextbuf.Buffer) int64 {
	return 2*b.Options().MaxBytes + 1<<20
}

// serveContextStats answers GET /v1/context/stats: one context's
// statistics with ?id= (or X-Context-Id), else every context's.
func (g *Gateway) serveContextStats(w http.ResponseWriter, r *http.Request) error {
	buf := g.waitContexts()
	if buf == nil {
		dialects.WriteError(w, dialects.OpenAI, errStorageClosed)
		return nil
	}
	id := r.URL.Query().Get("id")
	if id == "" {
		id = r.Header.Get("X-Context-Id")
	}
	if id == "" {
		list, err := buf.List()
		if err != nil {
			dialects.WriteError(w, dialects.OpenAI, contextError(g, "", err))
			return nil
		}
		if list == nil {
			list = []contextbuf.Stats{}
		}
		return writeJSONValue(w, http.StatusOK, map[string]any{"contexts": list})
	}
	st, ok, err := buf.Stats(id)
	switch {
	case err != nil:
		dialects.WriteError(w, dialects.OpenAI, contextError(g, id, err))
	case !ok:
		dialects.WriteError(w, dialects.OpenAI, contextError(g, id, contextbuf.ErrNoContext))
	default:
		return writeJSONValue(w, http.StatusOK, st)
	}
	return nil
}

func writeJSONValue(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeJSON(w, status, b)
	return nil
}
