package llmgate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/ledger"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the admin.api.llm module: the gateway's endpoints on
// Caddy's admin API (localhost:2019 by default).
//
//	POST /llm/route/explain[?dialect=openai|responses|anthropic|ollama|gemini|bedrock][&tier=<tier>][&default_model=<model>]
//
// plans the request in the body as llm_route would and answers the
// explanation (tier, reasons, candidates in order, skipped targets with
// why) without sending anything upstream. The X-Task-Tier header may
// stand in for the tier parameter.
//
//	GET /llm/stats[?by=model|provider|key|tier|day][&window=today|month|all][&from=<t>][&to=<t>]
//
// answers a ledger.Report: requests, errors, tokens, cost, fallbacks,
// cache hits and latency (average and 95th percentile) per group, plus
// totals. Without by only the totals are given. window=today and
// window=month are the current day and month in the app's time zone
// (the timezone option, UTC by default), which also counts the days of
// by=day; the default is all time. Instead of a window, from and/or to
// bound the report: each an RFC 3339 time or a YYYY-MM-DD date in the
// app's time zone. from is inclusive; to is exclusive, but a date as to
// includes that whole day, so from=2026-03-01&to=2026-03-31 is March.
//
//	GET /llm/export[?format=csv|json][&window=today|month|all][&from=<t>][&to=<t>]
//
// streams the ledger entries in the window (window, from and to as for
// stats; default all), oldest first, as CSV with a header row (the
// default) or as JSON Lines. An export that fails part-way is cut off
// (the connection is aborted), so a reader never mistakes it for a
// complete one.
//
//	POST /llm/prune?before=<age or time>[&force=true]
//
// deletes the ledger entries older than before: an age such as 90d (days
// of 24 hours) or 720h, or an RFC 3339 time or YYYY-MM-DD date (midnight
// in the app's time zone). It answers {"deleted": n, "before": time}.
// There is no default; a time in the future is refused, and so is one
// after ledger.CountedSince (budgets count their spend from those
// entries: this month's, and the last week's for sessions) unless
// force=true.
//
//	GET    /llm/keys
//	POST   /llm/keys          {"name":"alice","daily_usd":5,"monthly_usd":60}
//	DELETE /llm/keys/<name>
//
// list the client keys kept in storage (records only: name, hash,
// limits, created, revoked), create one (the answer carries the key
// itself, shown this once) and revoke one. Keys declared in a Caddyfile
// live in the config and are not listed.
//
//	GET  /llm/cache, POST /llm/cache/clear
//	GET  /llm/context, DELETE /llm/context/<id>
//
// show and clear the response cache, and list and delete contexts of
// the context buffer (see admin_cache.go).
//
// Wrong methods get 405, bad parameters 400, a config without an llm app
// 404 and storage not (or no longer) open 503.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.llm", New: func() caddy.Module { return new(adminAPI) }}
}

// Routes returns the admin routes of the llm app.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/llm/route/explain", Handler: caddy.AdminHandlerFunc(a.explain)},
		{Pattern: "/llm/stats", Handler: caddy.AdminHandlerFunc(a.stats)},
		{Pattern: "/llm/export", Handler: caddy.AdminHandlerFunc(a.export)},
		{Pattern: "/llm/prune", Handler: caddy.AdminHandlerFunc(a.prune)},
		{Pattern: "/llm/keys", Handler: caddy.AdminHandlerFunc(a.keys)},
		{Pattern: "/llm/keys/", Handler: caddy.AdminHandlerFunc(a.keys)},
		{Pattern: "/llm/cache", Handler: caddy.AdminHandlerFunc(a.cache)},
		{Pattern: "/llm/cache/", Handler: caddy.AdminHandlerFunc(a.cache)},
		{Pattern: "/llm/context", Handler: caddy.AdminHandlerFunc(a.contexts)},
		{Pattern: "/llm/context/", Handler: caddy.AdminHandlerFunc(a.contexts)},
	}
}

// explainDialects maps the names the endpoint accepts to client dialects.
var explainDialects = map[string]dialects.Dialect{
	"": dialects.OpenAI, "openai": dialects.OpenAI, "chat": dialects.OpenAI,
	"responses": dialects.Responses,
	"anthropic": dialects.Anthropic, "messages": dialects.Anthropic,
	"ollama": dialects.Ollama,
	"gemini": dialects.Gemini, "bedrock": dialects.Bedrock, "converse": dialects.Bedrock,
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
			Err: fmt.Errorf("unknown dialect %q (valid: openai, responses, anthropic, ollama, gemini, bedrock)", q.Get("dialect"))}
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

// adminNow is the clock of the ledger endpoints (tests set it).
var adminNow = time.Now

// ledgerOf returns the ledger of the running llm app and its time zone.
func (a *adminAPI) ledgerOf() (*ledger.Ledger, *time.Location, *App, error) {
	app, err := a.app()
	if err != nil {
		return nil, nil, nil, err
	}
	l := app.Ledger()
	if l == nil {
		return nil, nil, nil, caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("the llm app's storage is not open")}
	}
	return l, app.Location(), app, nil
}

// ledgerError turns an error of the ledger into an API error.
func ledgerError(err error) error {
	switch {
	case errors.Is(err, ledger.ErrClosed):
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("the llm app's storage is closed (the config is being replaced); try again")}
	case errors.Is(err, ledger.ErrUnknownGrouping), errors.Is(err, ledger.ErrUnknownFormat):
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
}

// adminBadRequest is a 400 with the message of format and args.
func adminBadRequest(format string, args ...any) error {
	return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf(format, args...)}
}

// parseLedgerTime reads an RFC 3339 time or a YYYY-MM-DD date in loc: the
// midnight that begins the date, or with end the one that ends it.
func parseLedgerTime(s string, loc *time.Location, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseInLocation(time.DateOnly, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-03-01T15:04:05Z) nor a date (2026-03-01)", s)
	}
	if end {
		return ledger.NextDayStart(d, loc), nil
	}
	return ledger.DayStart(d, loc), nil
}

// ledgerWindow reads the window, from and to parameters.
func ledgerWindow(q url.Values, loc *time.Location, t time.Time) (from, to time.Time, err error) {
	w := strings.ToLower(q.Get("window"))
	if w != "" && w != "all" && (q.Get("from") != "" || q.Get("to") != "") {
		return from, to, adminBadRequest("give window or from/to, not both")
	}
	switch w {
	case "", "all":
	case "today", "day":
		return ledger.DayStart(t, loc), time.Time{}, nil
	case "month":
		return ledger.MonthStart(t, loc), time.Time{}, nil
	default:
		return from, to, adminBadRequest("unknown window %q (valid: today, month, all)", q.Get("window"))
	}
	if v := q.Get("from"); v != "" {
		if from, err = parseLedgerTime(v, loc, false); err != nil {
			return from, to, adminBadRequest("from: %v", err)
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = parseLedgerTime(v, loc, true); err != nil {
			return from, to, adminBadRequest("to: %v", err)
		}
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return from, to, adminBadRequest("to (%s) is not after from (%s)", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	return from, to, nil
}

func (a *adminAPI) stats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("GET the stats")}
	}
	l, loc, _, err := a.ledgerOf()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, to, err := ledgerWindow(q, loc, adminNow())
	if err != nil {
		return err
	}
	rep, err := l.Stats(from, to, strings.ToLower(q.Get("by")), loc)
	if err != nil {
		return ledgerError(err)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (a *adminAPI) export(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("GET the export")}
	}
	l, loc, _, err := a.ledgerOf()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	format := strings.ToLower(q.Get("format"))
	ctype := ""
	switch format {
	case "", ledger.FormatCSV:
		format, ctype = ledger.FormatCSV, "text/csv; charset=utf-8"
	case ledger.FormatJSON, "jsonl", "ndjson":
		format, ctype = ledger.FormatJSON, "application/x-ndjson"
	default:
		return adminBadRequest("unknown format %q (valid: csv, json)", q.Get("format"))
	}
	from, to, err := ledgerWindow(q, loc, adminNow())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", ctype)
	ext := map[string]string{ledger.FormatCSV: "csv", ledger.FormatJSON: "jsonl"}[format]
	w.Header().Set("Content-Disposition", `attachment; filename="llm-ledger.`+ext+`"`)
	cw := &countingWriter{w: w}
	if err := l.Export(cw, from, to, format); err != nil {
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			return ledgerError(err)
		}
		// Part of the export is out: cut the connection so the reader
		// sees a broken transfer rather than a clean short file.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// pruneAnswer is the answer of POST /llm/prune.
type pruneAnswer struct {
	Deleted int       `json:"deleted"`
	Before  time.Time `json:"before"`
}

func (a *adminAPI) prune(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("POST to prune, with before=<age or time>")}
	}
	l, loc, app, err := a.ledgerOf()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	t := adminNow()
	before, err := parseBefore(q.Get("before"), loc, t)
	if err != nil {
		return err
	}
	if before.After(t) {
		return adminBadRequest("before (%s) is in the future: that would delete every entry", before.Format(time.RFC3339))
	}
	force, _ := strconv.ParseBool(q.Get("force"))
	if since := ledger.CountedSince(t, loc); before.After(since) && !force {
		return adminBadRequest("before (%s) is after %s: budgets count their spend from those entries (this month's, and the last week's for sessions); add force=true (caddy llm prune --force) to prune anyway",
			before.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	n, err := l.Prune(before)
	if app.logger != nil && n > 0 {
		app.logger.Info("ledger pruned", zap.Int("deleted", n), zap.Time("before", before))
	}
	if err != nil {
		if n > 0 {
			err = fmt.Errorf("%w (after deleting %d entries)", err, n)
		}
		return ledgerError(err)
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(pruneAnswer{Deleted: n, Before: before})
}

// parseBefore reads the before parameter of prune: an age (90d, 720h) or
// a time.
func parseBefore(s string, loc *time.Location, t time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, adminBadRequest("before is required: an age such as 90d (entries older than 90 days), or an RFC 3339 time or YYYY-MM-DD date")
	}
	if d, err := caddy.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, adminBadRequest("before: the age %q is not positive", s)
		}
		return t.Add(-d).In(loc), nil
	}
	b, err := parseLedgerTime(s, loc, false)
	if err != nil {
		return time.Time{}, adminBadRequest("before: %q is neither an age (90d, 720h) nor a time (RFC 3339 or YYYY-MM-DD)", s)
	}
	return b, nil
}

// Interface guard.
var _ caddy.AdminRouter = (*adminAPI)(nil)
