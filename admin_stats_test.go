package llmgate

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests use Europe/Berlin wherever they run

	"github.com/caddyserver/caddy/v2"

	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/store"
)

// testLedgerApp returns an App whose storage is an in-memory database,
// as Start would leave it, without starting anything, and makes it the
// running app until the test ends.
func testLedgerApp(t *testing.T, loc *time.Location) *App {
	t.Helper()
	s, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	h := &dbHandle{store: s, ledger: ledger.New(s.DB())}
	app := &App{loc: loc, handle: h}
	prev := currentApp.Swap(app)
	t.Cleanup(func() {
		currentApp.Store(prev)
		if err := h.Destruct(); err != nil {
			t.Error(err)
		}
	})
	return app
}

// setAdminNow fixes the clock of the ledger endpoints for the test.
func setAdminNow(t *testing.T, tm time.Time) {
	prev := adminNow
	adminNow = func() time.Time { return tm }
	t.Cleanup(func() { adminNow = prev })
}

// adminCall serves method target through the module's routes the way
// Caddy's admin server does: a returned error becomes its status and a
// JSON body with the message.
func adminCall(t *testing.T, method, target string) (*httptest.ResponseRecorder, string) {
	t.Helper()
	mux := http.NewServeMux()
	for _, r := range (&adminAPI{}).Routes() {
		mux.HandleFunc(r.Pattern, func(w http.ResponseWriter, req *http.Request) {
			if err := r.Handler.ServeHTTP(w, req); err != nil {
				var ae caddy.APIError
				if !errors.As(err, &ae) {
					ae = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(ae.HTTPStatus)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": ae.Err.Error()})
			}
		})
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	msg := ""
	if rec.Code >= 400 {
		var e struct{ Error string }
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		msg = e.Error
	}
	return rec, msg
}

func berlin(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// seedLedger records entries on 2026-03-30 and 31 (Berlin) and one in
// January, with "now" at 2026-03-31 12:00 Berlin.
func seedLedger(t *testing.T, app *App) {
	loc := app.Location()
	setAdminNow(t, time.Date(2026, 3, 31, 12, 0, 0, 0, loc))
	es := []ledger.Entry{
		{Time: time.Date(2026, 1, 15, 9, 0, 0, 0, loc), KeyID: "old", Model: "gpt", Provider: "openai", Status: 200, CostUSD: 1, LatencyMS: 10},
		// 23:30 Berlin on the 30th is 21:30 UTC: the 30th in Berlin.
		{Time: time.Date(2026, 3, 30, 23, 30, 0, 0, loc), KeyID: "alice", Model: "gpt", Provider: "openai", Status: 200, CostUSD: 0.5, LatencyMS: 100,
			Tokens: ledger.Tokens{Input: 1000, Output: 100}},
		{Time: time.Date(2026, 3, 31, 0, 30, 0, 0, loc), KeyID: "alice", Model: "claude", Provider: "anthropic", Status: 200, CostUSD: 0.25, LatencyMS: 300,
			Tokens: ledger.Tokens{Input: 500, Output: 50}, Fallback: true},
		{Time: time.Date(2026, 3, 31, 10, 0, 0, 0, loc), Model: "llama", Provider: "ollama", Status: 502, ErrorKind: "upstream_status", LatencyMS: 5},
	}
	for _, e := range es {
		if err := app.Ledger().Record(e); err != nil {
			t.Fatal(err)
		}
	}
}

// getReport GETs target and decodes the report it answers.
func getReport(t *testing.T, target string) ledger.Report {
	t.Helper()
	rec, _ := adminCall(t, "GET", target)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var r ledger.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAdminStats(t *testing.T) {
	app := testLedgerApp(t, berlin(t))
	seedLedger(t, app)

	r := getReport(t, "/llm/stats?by=model")
	if r.Total.Requests != 4 || r.Total.CostUSD != 1.75 || len(r.Groups) != 3 || r.Groups[0].Key != "gpt" || r.Groups[0].Requests != 2 {
		t.Errorf("all time by model: %+v", r)
	}
	if r.TimeZone != "Europe/Berlin" {
		t.Errorf("zone %q", r.TimeZone)
	}

	// Today in Berlin began at 2026-03-31 00:00 +02:00 (after the switch
	// to summer time on the 29th).
	r = getReport(t, "/llm/stats?window=today")
	if r.Total.Requests != 2 || r.Total.Errors != 1 || r.Total.Fallbacks != 1 || !r.From.Equal(time.Date(2026, 3, 30, 22, 0, 0, 0, time.UTC)) {
		t.Errorf("today: %+v", r)
	}
	r = getReport(t, "/llm/stats?window=month&by=day")
	if r.Total.Requests != 3 || len(r.Groups) != 2 || r.Groups[0].Key != "2026-03-30" || r.Groups[1].Key != "2026-03-31" || r.Groups[1].Requests != 2 {
		t.Errorf("month by day: %+v", r)
	}
	r = getReport(t, "/llm/stats?by=key&from=2026-03-01")
	if r.Total.Requests != 3 || len(r.Groups) != 2 {
		t.Errorf("by key from March: %+v", r.Groups)
	}
	// A date as to includes that day.
	r = getReport(t, "/llm/stats?from=2026-03-30&to=2026-03-30")
	if r.Total.Requests != 1 || r.Total.CostUSD != 0.5 {
		t.Errorf("the 30th: %+v", r.Total)
	}
	r = getReport(t, "/llm/stats?from=2026-03-30T21:00:00Z&to=2026-03-30T22:00:00Z")
	if r.Total.Requests != 1 {
		t.Errorf("RFC 3339 window: %+v", r.Total)
	}

	for _, c := range []struct {
		method, target string
		status         int
		msg            string
	}{
		{"POST", "/llm/stats", 405, "GET"},
		{"GET", "/llm/stats?by=colour", 400, "unknown grouping"},
		{"GET", "/llm/stats?window=week", 400, "unknown window"},
		{"GET", "/llm/stats?window=today&from=2026-03-01", 400, "not both"},
		{"GET", "/llm/stats?from=yesterday", 400, "from:"},
		{"GET", "/llm/stats?to=31.03.2026", 400, "to:"},
		{"GET", "/llm/stats?from=2026-03-31&to=2026-03-01", 400, "not after"},
	} {
		rec, msg := adminCall(t, c.method, c.target)
		if rec.Code != c.status || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %s: %d %q, want %d with %q", c.method, c.target, rec.Code, msg, c.status, c.msg)
		}
	}
}

func TestAdminLedgerUnavailable(t *testing.T) {
	prev := currentApp.Swap(nil)
	defer currentApp.Store(prev)
	for _, target := range []string{"/llm/stats", "/llm/export"} {
		if rec, _ := adminCall(t, "GET", target); rec.Code != http.StatusNotFound {
			t.Errorf("%s without an llm app: %d", target, rec.Code)
		}
	}
	// An app whose storage is not open.
	currentApp.Store(&App{})
	if rec, msg := adminCall(t, "GET", "/llm/stats"); rec.Code != http.StatusServiceUnavailable || !strings.Contains(msg, "not open") {
		t.Errorf("storage not open: %d %q", rec.Code, msg)
	}
	if rec, _ := adminCall(t, "POST", "/llm/prune?before=90d"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("prune, storage not open: %d", rec.Code)
	}
	// Storage closed under a running request (a reload).
	app := testLedgerApp(t, time.UTC)
	app.Ledger().Close()
	for _, c := range [][2]string{{"GET", "/llm/stats"}, {"GET", "/llm/export"}, {"POST", "/llm/prune?before=90d"}} {
		if rec, msg := adminCall(t, c[0], c[1]); rec.Code != http.StatusServiceUnavailable || !strings.Contains(msg, "closed") {
			t.Errorf("%s %s on closed storage: %d %q", c[0], c[1], rec.Code, msg)
		}
	}
}

func TestAdminExport(t *testing.T) {
	app := testLedgerApp(t, berlin(t))
	seedLedger(t, app)

	rec, _ := adminCall(t, "GET", "/llm/export")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %d %v", rec.Code, rec.Header())
	}
	rows, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || strings.Join(rows[0], ",") != strings.Join(ledger.CSVHeader(), ",") {
		t.Errorf("csv rows: %v", rows)
	}

	rec, _ = adminCall(t, "GET", "/llm/export?format=json&from=2026-03-31")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("json: %d %v", rec.Code, rec.Header())
	}
	lines := strings.Split(strings.TrimSuffix(rec.Body.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("json lines: %q", rec.Body)
	}
	var e ledger.Entry
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Model != "claude" || !e.Fallback {
		t.Errorf("first line %s: %+v %v", lines[0], e, err)
	}

	for _, c := range []struct {
		method, target string
		status         int
	}{
		{"POST", "/llm/export", 405},
		{"GET", "/llm/export?format=xml", 400},
		{"GET", "/llm/export?from=soon", 400},
	} {
		if rec, _ := adminCall(t, c.method, c.target); rec.Code != c.status || rec.Header().Get("Content-Disposition") != "" {
			t.Errorf("%s %s: %d, want %d (headers %v)", c.method, c.target, rec.Code, c.status, rec.Header())
		}
	}
}

func TestAdminPrune(t *testing.T) {
	app := testLedgerApp(t, berlin(t))
	seedLedger(t, app)

	for _, c := range []struct {
		method, target string
		status         int
		msg            string
	}{
		{"GET", "/llm/prune?before=90d", 405, "POST"},
		{"POST", "/llm/prune", 400, "required"},
		{"POST", "/llm/prune?before=soon", 400, "neither an age"},
		{"POST", "/llm/prune?before=-5d", 400, "not positive"},
		{"POST", "/llm/prune?before=2027-01-01", 400, "future"},
		{"POST", "/llm/prune?before=1d", 400, "budgets count their spend"},
	} {
		rec, msg := adminCall(t, c.method, c.target)
		if rec.Code != c.status || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %s: %d %q, want %d with %q", c.method, c.target, rec.Code, msg, c.status, c.msg)
		}
	}
	count := func() int {
		r, err := app.Ledger().Stats(time.Time{}, time.Time{}, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Total.Requests
	}
	if n := count(); n != 4 {
		t.Fatalf("refused prunes deleted entries: %d left", n)
	}

	// 31 days of 24 hours before 2026-03-31 12:00 +02:00 is February
	// 28th, 11:00 +01:00: only January goes.
	rec, _ := adminCall(t, "POST", "/llm/prune?before=31d")
	var ans pruneAnswer
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &ans) != nil || ans.Deleted != 1 ||
		!ans.Before.Equal(time.Date(2026, 2, 28, 11, 0, 0, 0, app.Location())) {
		t.Errorf("prune 30d: %d %s", rec.Code, rec.Body)
	}
	if n := count(); n != 3 {
		t.Errorf("%d left after pruning January", n)
	}
	// A date inside the month needs force; it means the midnight that
	// begins it in the app's time zone, so the entry of 00:30 stays.
	if rec, msg := adminCall(t, "POST", "/llm/prune?before=2026-03-31"); rec.Code != 400 || !strings.Contains(msg, "force=true") {
		t.Errorf("unforced prune inside the month: %d %q", rec.Code, msg)
	}
	rec, _ = adminCall(t, "POST", "/llm/prune?before=2026-03-31&force=true")
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &ans) != nil || ans.Deleted != 1 ||
		!ans.Before.Equal(time.Date(2026, 3, 30, 22, 0, 0, 0, time.UTC)) {
		t.Errorf("forced prune: %d %s", rec.Code, rec.Body)
	}
	if n := count(); n != 2 {
		t.Errorf("%d left after pruning the 30th", n)
	}
}

func TestFormatStats(t *testing.T) {
	r := &ledger.Report{
		From:     time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		By:       "model",
		TimeZone: "UTC",
		Groups: []ledger.Group{
			{Key: "claude-sonnet", Requests: 12, Errors: 1, Tokens: ledger.Tokens{Input: 120000, Output: 3400}, CostUSD: 0.4123, Fallbacks: 2, AvgLatencyMS: 1234.4, P95LatencyMS: 2500},
			{Key: "llama", Requests: 3, Tokens: ledger.Tokens{Input: 900, Output: 80}, CacheHits: 1, AvgLatencyMS: 80.6, P95LatencyMS: 120},
		},
		Total: ledger.Group{Key: "total", Requests: 15, Errors: 1, Tokens: ledger.Tokens{Input: 120900, Output: 3480}, CostUSD: 0.4123, Fallbacks: 2, CacheHits: 1, AvgLatencyMS: 1003.6, P95LatencyMS: 2500},
	}
	want := `from 2026-03-01T00:00:00Z to now (UTC)
MODEL          REQUESTS  ERRORS   INPUT  OUTPUT  COST_USD  FALLBACKS  CACHE_HITS  AVG_MS  P95_MS
claude-sonnet        12       1  120000    3400  0.412300          2           0    1234    2500
llama                 3       0     900      80  0.000000          0           1      81     120
------------------------------------------------------------------------------------------------
total                15       1  120900    3480  0.412300          2           1    1004    2500
`
	if got := FormatStats(r); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// Totals only: no rule, the first column named GROUP.
	r.By, r.Groups = "", nil
	got := FormatStats(r)
	if !strings.Contains(got, "\nGROUP ") || strings.Contains(got, "---") || !strings.Contains(got, "\ntotal ") {
		t.Errorf("totals only:\n%s", got)
	}
	if got := FormatStats(&ledger.Report{}); got != "from the beginning to now\nno requests\n" {
		t.Errorf("empty: %q", got)
	}
}
