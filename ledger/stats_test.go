package ledger

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests need America/New_York wherever they run

	"github.com/dgraph-io/badger/v4"
)

func newTestLedger(t *testing.T) *Ledger {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	l := New(db)
	t.Cleanup(func() {
		l.Close()
		db.Close()
	})
	return l
}

func record(t *testing.T, l *Ledger, es ...Entry) {
	t.Helper()
	for _, e := range es {
		if err := l.Record(e); err != nil {
			t.Fatal(err)
		}
	}
}

func groupOf(t *testing.T, r Report, key string) Group {
	t.Helper()
	for _, g := range r.Groups {
		if g.Key == key {
			return g
		}
	}
	t.Fatalf("no group %q in %+v", key, r.Groups)
	return Group{}
}

func TestStatsGrouping(t *testing.T) {
	l := newTestLedger(t)
	t0 := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	record(t, l,
		Entry{Time: at(0), KeyID: "alice", Provider: "openai", Model: "gpt", Tier: "hard", Status: 200,
			Tokens: Tokens{Input: 100, CachedInput: 40, Output: 10, Reasoning: 4}, CostUSD: 0.5, LatencyMS: 100},
		Entry{Time: at(1), KeyID: "alice", Provider: "openai", Model: "gpt", Tier: "hard", Status: 200,
			Tokens: Tokens{Input: 200, CacheWrite: 50, Output: 20}, CostUSD: 0.25, LatencyMS: 300, Fallback: true},
		Entry{Time: at(2), Provider: "ollama", Model: "llama", Tier: "easy", Status: 200,
			Tokens: Tokens{Input: 10, Output: 1}, LatencyMS: 50, Cache: "hit"},
		Entry{Time: at(3), KeyID: "bob", Provider: "anthropic", Model: "claude", Status: 502, ErrorKind: "upstream_status", LatencyMS: 1000},
		Entry{Time: at(4), KeyID: "bob", Provider: "anthropic", Model: "claude", Status: 0, ErrorKind: "client_closed", LatencyMS: 10, CostUSD: 0.1},
		Entry{Time: at(5), KeyID: "bob", Status: 401, LatencyMS: 1},
	)

	r, err := l.Stats(time.Time{}, time.Time{}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tot := r.Total
	if len(r.Groups) != 0 || tot.Key != "total" || tot.Requests != 6 || tot.Errors != 3 || tot.Fallbacks != 1 || tot.CacheHits != 1 {
		t.Errorf("totals: %+v groups %d", tot, len(r.Groups))
	}
	if tot.Tokens != (Tokens{Input: 310, CachedInput: 40, CacheWrite: 50, Output: 31, Reasoning: 4}) {
		t.Errorf("tokens: %+v", tot.Tokens)
	}
	if tot.CostUSD != 0.85 {
		t.Errorf("cost %v", tot.CostUSD)
	}
	// Latencies 1 10 50 100 300 1000: mean 243.5, p95 nearest rank 6.
	if tot.AvgLatencyMS != 243.5 || tot.P95LatencyMS != 1000 {
		t.Errorf("latency avg %v p95 %v", tot.AvgLatencyMS, tot.P95LatencyMS)
	}
	if r.TimeZone != "UTC" {
		t.Errorf("zone %q", r.TimeZone)
	}

	r, err = l.Stats(time.Time{}, time.Time{}, "model", nil)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, g := range r.Groups {
		keys = append(keys, g.Key)
	}
	// By cost, then requests, then name.
	if got := strings.Join(keys, ","); got != "gpt,claude,(none),llama" {
		t.Errorf("model order %s", got)
	}
	gpt := groupOf(t, r, "gpt")
	if gpt.Requests != 2 || gpt.Errors != 0 || gpt.Fallbacks != 1 || gpt.CostUSD != 0.75 || gpt.Input != 300 || gpt.AvgLatencyMS != 200 || gpt.P95LatencyMS != 300 {
		t.Errorf("gpt: %+v", gpt)
	}
	if c := groupOf(t, r, "claude"); c.Requests != 2 || c.Errors != 2 {
		t.Errorf("claude: %+v", c)
	}
	if r.Total.Requests != 6 {
		t.Errorf("total with groups: %+v", r.Total)
	}

	r, _ = l.Stats(time.Time{}, time.Time{}, "key", nil)
	if a := groupOf(t, r, "anonymous"); a.Requests != 1 || a.CacheHits != 1 {
		t.Errorf("anonymous: %+v", a)
	}
	if b := groupOf(t, r, "bob"); b.Requests != 3 || b.Errors != 3 {
		t.Errorf("bob: %+v", b)
	}
	r, _ = l.Stats(time.Time{}, time.Time{}, "provider", nil)
	if o := groupOf(t, r, "openai"); o.Requests != 2 {
		t.Errorf("openai: %+v", o)
	}
	r, _ = l.Stats(time.Time{}, time.Time{}, "tier", nil)
	if n := groupOf(t, r, "(none)"); n.Requests != 3 {
		t.Errorf("no tier: %+v", n)
	}

	// The window is half-open.
	r, _ = l.Stats(at(1), at(3), "", nil)
	if r.Total.Requests != 2 || r.Total.CostUSD != 0.25 {
		t.Errorf("window: %+v", r.Total)
	}

	if _, err := l.Stats(time.Time{}, time.Time{}, "colour", nil); !errors.Is(err, ErrUnknownGrouping) {
		t.Errorf("unknown grouping: %v", err)
	}
	l.Close()
	if _, err := l.Stats(time.Time{}, time.Time{}, "", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

func TestStatsEmpty(t *testing.T) {
	l := newTestLedger(t)
	r, err := l.Stats(time.Time{}, time.Time{}, "model", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Total.Requests != 0 || len(r.Groups) != 0 || r.Total.P95LatencyMS != 0 {
		t.Errorf("%+v", r)
	}
}

func TestStatsByDayInZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	l := newTestLedger(t)
	// 2026-03-08 is the day New York springs forward (23 hours long).
	record(t, l,
		Entry{Time: time.Date(2026, 3, 8, 4, 59, 0, 0, time.UTC), Status: 200}, // Mar 7 23:59 EST
		Entry{Time: time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC), Status: 200},  // Mar 8 00:00 EST
		Entry{Time: time.Date(2026, 3, 9, 3, 59, 0, 0, time.UTC), Status: 200}, // Mar 8 23:59 EDT
		Entry{Time: time.Date(2026, 3, 9, 4, 0, 0, 0, time.UTC), Status: 200},  // Mar 9 00:00 EDT
	)
	r, err := l.Stats(time.Time{}, time.Time{}, "day", ny)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range r.Groups {
		got = append(got, fmt.Sprintf("%s=%d", g.Key, g.Requests))
	}
	if s := strings.Join(got, " "); s != "2026-03-07=1 2026-03-08=2 2026-03-09=1" {
		t.Errorf("days in New York: %s", s)
	}
	if r.TimeZone != "America/New_York" {
		t.Errorf("zone %q", r.TimeZone)
	}
	// In UTC the same entries fall on other days.
	r, _ = l.Stats(time.Time{}, time.Time{}, "day", time.UTC)
	if len(r.Groups) != 2 || r.Groups[0].Key != "2026-03-08" || r.Groups[0].Requests != 2 {
		t.Errorf("days in UTC: %+v", r.Groups)
	}
	// The local day as a window.
	noon := time.Date(2026, 3, 8, 12, 0, 0, 0, ny)
	r, _ = l.Stats(DayStart(noon, ny), NextDayStart(noon, ny), "", ny)
	if r.Total.Requests != 2 {
		t.Errorf("the DST day holds %d requests, want 2", r.Total.Requests)
	}
}

func TestWindowsDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		t     time.Time
		start string
		hours float64
	}{
		{time.Date(2026, 3, 8, 15, 0, 0, 0, ny), "2026-03-08T00:00:00-05:00", 23},
		{time.Date(2026, 11, 1, 23, 30, 0, 0, ny), "2026-11-01T00:00:00-04:00", 25},
		{time.Date(2026, 7, 4, 0, 0, 0, 0, ny), "2026-07-04T00:00:00-04:00", 24},
		// A UTC instant that is still the previous day in New York.
		{time.Date(2026, 7, 4, 2, 0, 0, 0, time.UTC), "2026-07-03T00:00:00-04:00", 24},
	}
	for _, c := range cases {
		s, e := DayStart(c.t, ny), NextDayStart(c.t, ny)
		if got := s.Format(time.RFC3339); got != c.start {
			t.Errorf("DayStart(%v) = %s, want %s", c.t, got, c.start)
		}
		if h := e.Sub(s).Hours(); h != c.hours {
			t.Errorf("day of %v lasts %vh, want %v", c.t, h, c.hours)
		}
		if c.t.Before(s) || !c.t.Before(e) {
			t.Errorf("%v not in [%v, %v)", c.t, s, e)
		}
	}
	if got := MonthStart(time.Date(2026, 3, 31, 23, 0, 0, 0, ny), ny).Format(time.RFC3339); got != "2026-03-01T00:00:00-05:00" {
		t.Errorf("MonthStart = %s", got)
	}
	// Midnight UTC on April 1st is still March in New York.
	if got := MonthStart(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), ny).Format(time.RFC3339); got != "2026-03-01T00:00:00-05:00" {
		t.Errorf("MonthStart across zones = %s", got)
	}
	if got := MonthStart(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), nil).Format(time.RFC3339); got != "2026-04-01T00:00:00Z" {
		t.Errorf("MonthStart nil zone = %s", got)
	}
}

func TestPrune(t *testing.T) {
	l := newTestLedger(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const old, fresh = pruneChunkSize + 300, 200 // more than a chunk
	for i := 0; i < old+fresh; i++ {
		record(t, l, Entry{Time: t0.Add(time.Duration(i) * time.Second), Status: 200})
	}
	before := t0.Add(old * time.Second)
	if _, err := l.Prune(time.Time{}); err == nil {
		t.Error("prune without a time accepted")
	}
	n, err := l.Prune(before)
	if err != nil || n != old {
		t.Fatalf("pruned %d (%v), want %d", n, err, old)
	}
	left := 0
	if err := l.Each(time.Time{}, time.Time{}, func(e Entry) error {
		if e.Time.Before(before) {
			t.Errorf("entry of %v survived", e.Time)
		}
		left++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if left != fresh {
		t.Errorf("%d entries left, want %d", left, fresh)
	}
	if n, err := l.Prune(before); n != 0 || err != nil {
		t.Errorf("second prune: %d, %v", n, err)
	}
	l.Close()
	if _, err := l.Prune(t0.Add(time.Hour * 24)); !errors.Is(err, ErrClosed) {
		t.Errorf("prune after close: %v", err)
	}
}

// jsonFields lists the JSON names of a struct's fields in declaration
// order, descending into embedded structs as encoding/json does, with
// each field's index path.
func jsonFields(t reflect.Type, path []int) (names []string, paths [][]int) {
	for i := range t.NumField() {
		f := t.Field(i)
		p := append(append([]int(nil), path...), i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			n, ps := jsonFields(f.Type, p)
			names, paths = append(names, n...), append(paths, ps...)
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		names, paths = append(names, tag), append(paths, p)
	}
	return names, paths
}

// fullEntry sets every field of an Entry to a distinct non-zero value
// and returns the entry and the CSV text expected for each field.
func fullEntry(t *testing.T, seed int) (Entry, map[string]string) {
	var e Entry
	v := reflect.ValueOf(&e).Elem()
	names, paths := jsonFields(v.Type(), nil)
	want := map[string]string{}
	for i, p := range paths {
		f := v.FieldByIndex(p)
		n := seed*100 + i + 1
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			tm := time.Date(2026, 2, 3, 4, 5, 6, 789, time.UTC).Add(time.Duration(seed) * time.Minute)
			f.Set(reflect.ValueOf(tm))
			want[names[i]] = tm.Format(time.RFC3339Nano)
		case f.Kind() == reflect.String:
			f.SetString(fmt.Sprintf("%s-%d", names[i], n))
			want[names[i]] = f.String()
		case f.Kind() == reflect.Int:
			f.SetInt(int64(n))
			want[names[i]] = strconv.Itoa(n)
		case f.Kind() == reflect.Float64:
			f.SetFloat(float64(n) + 0.125)
			want[names[i]] = strconv.FormatFloat(float64(n)+0.125, 'f', -1, 64)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
			want[names[i]] = "true"
		default:
			t.Fatalf("Entry field %s has kind %s: teach this test (and the CSV export) about it", names[i], f.Kind())
		}
	}
	return e, want
}

func TestCSVCoversEveryField(t *testing.T) {
	names, _ := jsonFields(reflect.TypeFor[Entry](), nil)
	if got, want := strings.Join(CSVHeader(), ","), strings.Join(names, ","); got != want {
		t.Fatalf("CSV header\n %s\nwant every Entry field in declaration order\n %s", got, want)
	}
	l := newTestLedger(t)
	e, want := fullEntry(t, 1)
	record(t, l, e)
	var buf bytes.Buffer
	if err := l.Export(&buf, time.Time{}, time.Time{}, FormatCSV); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %v, %v", rows, err)
	}
	for i, name := range rows[0] {
		if rows[1][i] != want[name] {
			t.Errorf("column %s = %q, want %q", name, rows[1][i], want[name])
		}
	}
}

func TestExport(t *testing.T) {
	l := newTestLedger(t)
	var es []Entry
	const n = scanChunkSize*2 + 17 // several chunks
	for i := range n {
		e, _ := fullEntry(t, i)
		if i%3 == 0 {
			e.KeyID, e.Stream, e.Cache = "", false, "" // omitted fields too
		}
		es = append(es, e)
	}
	record(t, l, es...)

	var buf bytes.Buffer
	if err := l.Export(&buf, time.Time{}, time.Time{}, FormatJSON); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	i := 0
	for sc.Scan() {
		var got Entry
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, sc.Bytes())
		}
		if i >= n {
			t.Fatal("too many lines")
		}
		if !got.Time.Equal(es[i].Time) {
			t.Errorf("line %d time %v, want %v", i+1, got.Time, es[i].Time)
		}
		got.Time = es[i].Time
		if !reflect.DeepEqual(got, es[i]) {
			t.Errorf("line %d:\n got %+v\nwant %+v", i+1, got, es[i])
		}
		i++
	}
	if i != n {
		t.Errorf("%d lines, want %d", i, n)
	}

	// A window, in CSV.
	buf.Reset()
	if err := l.Export(&buf, es[10].Time, es[20].Time, FormatCSV); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 11 || rows[1][0] != es[10].Time.Format(time.RFC3339Nano) || rows[10][0] != es[19].Time.Format(time.RFC3339Nano) {
		t.Errorf("window rows: %d, first %v", len(rows), rows[1][0])
	}

	buf.Reset()
	if err := l.Export(&buf, time.Time{}, time.Time{}, "xml"); !errors.Is(err, ErrUnknownFormat) || buf.Len() != 0 {
		t.Errorf("xml: %v, wrote %d bytes", err, buf.Len())
	}
	// An empty window still gets its CSV header.
	buf.Reset()
	if err := l.Export(&buf, time.Time{}, es[0].Time, FormatCSV); err != nil || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("empty CSV: %v %q", err, buf.String())
	}
}
