package watch

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/caddy-llmgate/contextbuf"
)

// fakeGateway implements the gateway's context endpoints over one
// in-memory context per id, applying diffs with contextbuf.Apply.
type fakeGateway struct {
	t   *testing.T
	key string // required bearer key, when not empty

	// requireBase refuses a snapshot without base_version for an
	// existing context (409, as for a stale base).
	requireBase bool
	// omitCurrent leaves current_version out of 409 answers (the watcher
	// must ask the stats endpoint).
	omitCurrent bool
	// rejectDiffs answers every diff with a 400 invalid_diff.
	rejectDiffs bool

	mu       sync.Mutex
	ctxs     map[string]*fakeContext
	fail     int      // when not 0, every request is answered with this status
	requests []string // "snapshot", "snapshot@N", "diff@N" per accepted request; "rejected:..." per refused one
	authSeen []string // Authorization headers received
}

type fakeContext struct {
	files             contextbuf.Files
	version           int64
	deltas, snapshots int64
	updated           time.Time
}

func newFakeGateway(t *testing.T) *fakeGateway {
	return &fakeGateway{t: t, ctxs: map[string]*fakeContext{}}
}

type fakeErr struct {
	status  int
	code    string
	message string
	current *int64
}

func (g *fakeGateway) writeErr(w http.ResponseWriter, e fakeErr) {
	body := map[string]any{"message": e.message, "type": "invalid_request_error"}
	if e.code != "" {
		body["code"] = e.code
	}
	if e.current != nil {
		body["current_version"] = *e.current
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]any{"error": body})
}

func (c *fakeContext) stats(id string) Stats {
	var n int64
	for _, v := range c.files {
		n += int64(len(v))
	}
	return Stats{ID: id, Version: c.version, Files: len(c.files), Bytes: n, EstimatedTokens: n / 4,
		UpdatedAt: c.updated, DeltasApplied: c.deltas, Snapshots: c.snapshots}
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.authSeen = append(g.authSeen, r.Header.Get("Authorization"))
	if g.fail != 0 {
		w.Header().Set("Retry-After", "0")
		g.writeErr(w, fakeErr{status: g.fail, message: "failing on purpose"})
		return
	}
	if g.key != "" && r.Header.Get("Authorization") != "Bearer "+g.key {
		// A careless gateway that echoes what it got.
		g.writeErr(w, fakeErr{status: http.StatusUnauthorized, code: "invalid_api_key", message: "bad key: " + r.Header.Get("Authorization")})
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == StatsPath:
		c := g.ctxs[r.URL.Query().Get("id")]
		if c == nil {
			g.writeErr(w, fakeErr{status: http.StatusNotFound, code: CodeNotFound, message: "no such context"})
			return
		}
		json.NewEncoder(w).Encode(c.stats(r.URL.Query().Get("id")))
	case r.Method == http.MethodPost && r.URL.Path == DeltaPath:
		g.delta(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (g *fakeGateway) delta(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		g.writeErr(w, fakeErr{status: http.StatusUnsupportedMediaType, message: "content type " + ct})
		return
	}
	var in struct {
		ID          string            `json:"id"`
		Diff        *string           `json:"diff"`
		Snapshot    map[string]string `json:"snapshot"`
		BaseVersion *int64            `json:"base_version"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.ID == "" || (in.Diff == nil) == (in.Snapshot == nil) {
		g.requests = append(g.requests, "rejected:bad")
		g.writeErr(w, fakeErr{status: http.StatusBadRequest, message: "bad body"})
		return
	}
	c := g.ctxs[in.ID]
	var current *int64
	if c != nil {
		v := c.version
		current = &v
	}
	if g.omitCurrent {
		current = nil
	}
	conflict := func(code, msg string) {
		g.requests = append(g.requests, "rejected:"+code)
		g.writeErr(w, fakeErr{status: http.StatusConflict, code: code, message: msg, current: current})
	}
	var next contextbuf.Files
	kind := "snapshot"
	if in.Snapshot != nil {
		if in.BaseVersion != nil && (c == nil || c.version != *in.BaseVersion) || in.BaseVersion == nil && c != nil && g.requireBase {
			conflict(CodeVersionConflict, "base_version is not the current version")
			return
		}
		next = in.Snapshot
	} else {
		if c == nil {
			g.requests = append(g.requests, "rejected:"+CodeNotFound)
			g.writeErr(w, fakeErr{status: http.StatusNotFound, code: CodeNotFound, message: "no such context"})
			return
		}
		if in.BaseVersion != nil && c.version != *in.BaseVersion {
			conflict(CodeVersionConflict, "base_version is not the current version")
			return
		}
		if g.rejectDiffs {
			g.requests = append(g.requests, "rejected:parse")
			g.writeErr(w, fakeErr{status: http.StatusBadRequest, code: "invalid_diff", message: "line 1: not a diff"})
			return
		}
		f, err := contextbuf.Apply(c.files, *in.Diff)
		if err != nil {
			var pe *contextbuf.ParseError
			if errors.As(err, &pe) {
				g.requests = append(g.requests, "rejected:parse")
				g.writeErr(w, fakeErr{status: http.StatusBadRequest, code: "invalid_diff", message: err.Error()})
				return
			}
			conflict(CodeNotApplicable, err.Error())
			return
		}
		next = f
		kind = "diff"
	}
	if in.BaseVersion != nil {
		kind += "@" + itoa(*in.BaseVersion)
	}
	if c == nil {
		c = &fakeContext{}
		g.ctxs[in.ID] = c
	}
	c.files = next
	c.version++
	c.updated = time.Now()
	if in.Snapshot != nil {
		c.snapshots++
	} else {
		c.deltas++
	}
	g.requests = append(g.requests, kind)
	json.NewEncoder(w).Encode(c.stats(in.ID))
}

func itoa(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// files returns a copy of the context id (nil when unknown).
func (g *fakeGateway) files(id string) contextbuf.Files {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.ctxs[id]
	if c == nil {
		return nil
	}
	return maps.Clone(c.files)
}

func (g *fakeGateway) version(id string) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.ctxs[id]; c != nil {
		return c.version
	}
	return 0
}

// log returns the requests so far.
func (g *fakeGateway) log() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

func (g *fakeGateway) setFail(status int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail = status
}

// edit changes the context behind the watcher's back.
func (g *fakeGateway) edit(id string, bump bool, f func(contextbuf.Files)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.ctxs[id]
	f(c.files)
	if bump {
		c.version++
	}
}

// forget drops a context, as a gateway restarted without storage would.
func (g *fakeGateway) forget(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.ctxs, id)
}

// count counts the requests whose log entry starts with prefix.
func count(log []string, prefix string) int {
	n := 0
	for _, e := range log {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}
