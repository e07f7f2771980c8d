package ledger

// Reports over the ledger: grouped stats, export and pruning.
//
// All three read the ledger in chunks of a few hundred entries, each chunk
// in its own read transaction under the read lock, which is released
// before the chunk is handed on. A slow consumer (an export streamed to a
// slow client) therefore never holds up Close or keeps a Badger read
// transaction open for long, and memory stays bounded by a chunk. The
// price is that a report is not one snapshot: an entry recorded while a
// report runs appears in it when its time lies in the part of the window
// not yet read.

import (
	"bufio"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Groupings Stats accepts for its by argument: "" (totals only), "model",
// "provider", "key" (the key id; requests without one are grouped as
// "anonymous"), "tier" (entries without a model, provider or tier are
// grouped as "(none)") and "day" (the calendar day in the report's time
// zone, as YYYY-MM-DD).
var Groupings = []string{"", "model", "provider", "key", "tier", "day"}

// ErrUnknownGrouping is returned (wrapped) by Stats for a by argument not
// in Groupings.
var ErrUnknownGrouping = errors.New("unknown grouping")

// Export formats.
const (
	// FormatCSV is comma-separated values with a header row naming
	// every Entry field by its JSON name, in a fixed order.
	FormatCSV = "csv"
	// FormatJSON is JSON Lines: one Entry as JSON per line.
	FormatJSON = "json"
)

// ErrUnknownFormat is returned (wrapped) by Export for a format other
// than FormatCSV and FormatJSON, before anything is written.
var ErrUnknownFormat = errors.New("unknown export format")

// Group names for entries without a value: requests without a key id
// are grouped as "anonymous" in stats by key, and those without a model,
// provider or tier (a request refused before routing, say) as "(none)".
const (
	noKey   = "anonymous"
	noValue = "(none)"
)

// Report is the result of Stats.
type Report struct {
	// From and To are the window, From inclusive, To exclusive; a
	// zero time means no bound.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// By is the grouping ("" for totals only).
	By string `json:"by,omitempty"`
	// TimeZone is the zone days are counted in.
	TimeZone string `json:"time_zone,omitempty"`
	// Groups are the groups: by day in calendar order, otherwise by
	// cost (highest first), then requests (most first), then name.
	Groups []Group `json:"groups,omitempty"`
	// Total sums every entry in the window; its Key is "total".
	Total Group `json:"total"`
}

// Group sums the entries that share a grouping value.
type Group struct {
	// Key is the grouping value: a model, provider, key id, tier or
	// YYYY-MM-DD day.
	Key string `json:"key"`
	// Requests counts entries; Errors those with a status of 400 or
	// more or an error kind.
	Requests int `json:"requests"`
	Errors   int `json:"errors"`
	// Tokens sums the entries' tokens.
	Tokens
	// CostUSD sums the entries' cost, rounded to a billionth of a
	// dollar.
	CostUSD float64 `json:"cost_usd"`
	// Fallbacks counts entries served by a fallback candidate; CacheHits
	// those answered from the response cache.
	Fallbacks int `json:"fallbacks"`
	CacheHits int `json:"cache_hits"`
	// SavedUSD sums what the cache hits' original answers cost.
	SavedUSD float64 `json:"saved_usd"`
	// AvgLatencyMS and P95LatencyMS describe the entries' latency in
	// milliseconds. The 95th percentile is exact (nearest rank): each
	// group keeps its latencies while the report runs, 8 bytes per
	// entry, which is a few MB for a million requests.
	AvgLatencyMS float64 `json:"avg_latency_ms"`
	P95LatencyMS float64 `json:"p95_latency_ms"`

	latencies []float64
}

// add counts e into g.
func (g *Group) add(e *Entry) {
	g.Requests++
	if e.Status >= 400 || e.ErrorKind != "" {
		g.Errors++
	}
	g.Input += e.Input
	g.CachedInput += e.CachedInput
	g.CacheWrite += e.CacheWrite
	g.Output += e.Output
	g.Reasoning += e.Reasoning
	g.CostUSD += e.CostUSD
	if e.Fallback {
		g.Fallbacks++
	}
	if e.Cache == "hit" {
		g.CacheHits++
		g.SavedUSD += e.SavedUSD
	}
	g.latencies = append(g.latencies, e.LatencyMS)
}

// finish computes the latency figures and rounds the sums.
func (g *Group) finish() {
	g.CostUSD = math.Round(g.CostUSD*1e9) / 1e9
	g.SavedUSD = math.Round(g.SavedUSD*1e9) / 1e9
	n := len(g.latencies)
	if n == 0 {
		return
	}
	sum := 0.0
	for _, v := range g.latencies {
		sum += v
	}
	slices.Sort(g.latencies)
	g.AvgLatencyMS = math.Round(sum/float64(n)*1000) / 1000
	g.P95LatencyMS = g.latencies[int(math.Ceil(0.95*float64(n)))-1]
	g.latencies = nil
}

// groupKey is e's group under grouping by.
func groupKey(by string, e *Entry, loc *time.Location) string {
	var v string
	switch by {
	case "model":
		v = e.Model
	case "provider":
		v = e.Provider
	case "tier":
		v = e.Tier
	case "key":
		if e.KeyID == "" {
			return noKey
		}
		return e.KeyID
	case "day":
		return e.Time.In(loc).Format(time.DateOnly)
	}
	if v == "" {
		return noValue
	}
	return v
}

// Stats sums the entries with from <= Time < to (a zero time means no
// bound), grouped by one of Groupings, with days counted in loc (UTC when
// nil). Every entry counts in Total.
func (l *Ledger) Stats(from, to time.Time, by string, loc *time.Location) (Report, error) {
	if !slices.Contains(Groupings, by) {
		return Report{}, fmt.Errorf("%w %q (valid: model, provider, key, tier, day, or none)", ErrUnknownGrouping, by)
	}
	if loc == nil {
		loc = time.UTC
	}
	r := Report{From: from, To: to, By: by, TimeZone: loc.String(), Total: Group{Key: "total"}}
	groups := map[string]*Group{}
	err := l.scan(from, to, func(batch []Entry) error {
		for i := range batch {
			e := &batch[i]
			r.Total.add(e)
			if by == "" {
				continue
			}
			k := groupKey(by, e, loc)
			g := groups[k]
			if g == nil {
				g = &Group{Key: k}
				groups[k] = g
			}
			g.add(e)
		}
		return nil
	})
	if err != nil {
		return Report{}, err
	}
	r.Total.finish()
	for _, g := range groups {
		g.finish()
		r.Groups = append(r.Groups, *g)
	}
	slices.SortFunc(r.Groups, func(a, b Group) int {
		if by != "day" {
			if c := -compareFloat(a.CostUSD, b.CostUSD); c != 0 {
				return c
			}
			if c := b.Requests - a.Requests; c != 0 {
				return c
			}
		}
		return strings.Compare(a.Key, b.Key)
	})
	return r, nil
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// csvColumns are the CSV export's columns: every Entry field under its
// JSON name, in declaration order (the tokens where Tokens is embedded).
// A new Entry field must be added here; a test checks that.
var csvColumns = []struct {
	name string
	get  func(*Entry) string
}{
	{"time", func(e *Entry) string { return e.Time.Format(time.RFC3339Nano) }},
	{"key_id", func(e *Entry) string { return e.KeyID }},
	{"session", func(e *Entry) string { return e.Session }},
	{"endpoint", func(e *Entry) string { return e.Endpoint }},
	{"provider", func(e *Entry) string { return e.Provider }},
	{"model", func(e *Entry) string { return e.Model }},
	{"upstream_model", func(e *Entry) string { return e.UpstreamModel }},
	{"tier", func(e *Entry) string { return e.Tier }},
	{"stream", func(e *Entry) string { return strconv.FormatBool(e.Stream) }},
	{"status", func(e *Entry) string { return strconv.Itoa(e.Status) }},
	{"input_tokens", func(e *Entry) string { return strconv.Itoa(e.Input) }},
	{"cached_input_tokens", func(e *Entry) string { return strconv.Itoa(e.CachedInput) }},
	{"cache_write_tokens", func(e *Entry) string { return strconv.Itoa(e.CacheWrite) }},
	{"output_tokens", func(e *Entry) string { return strconv.Itoa(e.Output) }},
	{"reasoning_tokens", func(e *Entry) string { return strconv.Itoa(e.Reasoning) }},
	{"cost_usd", func(e *Entry) string { return strconv.FormatFloat(e.CostUSD, 'f', -1, 64) }},
	{"latency_ms", func(e *Entry) string { return strconv.FormatFloat(e.LatencyMS, 'f', -1, 64) }},
	{"attempts", func(e *Entry) string { return strconv.Itoa(e.Attempts) }},
	{"fallback", func(e *Entry) string { return strconv.FormatBool(e.Fallback) }},
	{"cache", func(e *Entry) string { return e.Cache }},
	{"error_kind", func(e *Entry) string { return e.ErrorKind }},
	// Columns added later come last, so readers by position keep working.
	{"saved_usd", func(e *Entry) string { return strconv.FormatFloat(e.SavedUSD, 'f', -1, 64) }},
}

// CSVHeader returns the names of the CSV export's columns, in order.
func CSVHeader() []string {
	h := make([]string, len(csvColumns))
	for i, c := range csvColumns {
		h[i] = c.name
	}
	return h
}

// Export writes the entries with from <= Time < to (a zero time means no
// bound), oldest first, to w in format FormatCSV or FormatJSON. It
// streams: entries are read and written a chunk at a time and w is
// flushed (when it buffers through a bufio.Writer of Export's own) after
// each chunk. Times are written as RFC 3339 with nanoseconds, as
// recorded. CSV fields are written as recorded too: a spreadsheet may
// treat one beginning with "=" as a formula. An error from reading or
// writing ends the export where it stands; the caller decides how to
// tell its reader the output is incomplete.
func (l *Ledger) Export(w io.Writer, from, to time.Time, format string) error {
	switch format {
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(CSVHeader()); err != nil {
			return err
		}
		row := make([]string, len(csvColumns))
		err := l.scan(from, to, func(batch []Entry) error {
			for i := range batch {
				for j, c := range csvColumns {
					row[j] = c.get(&batch[i])
				}
				if err := cw.Write(row); err != nil {
					return err
				}
			}
			cw.Flush()
			return cw.Error()
		})
		if err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	case FormatJSON:
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		err := l.scan(from, to, func(batch []Entry) error {
			for i := range batch {
				if err := enc.Encode(&batch[i]); err != nil {
					return err
				}
			}
			return bw.Flush()
		})
		if err != nil {
			return err
		}
		return bw.Flush()
	}
	return fmt.Errorf("%w %q (valid: %s, %s)", ErrUnknownFormat, format, FormatCSV, FormatJSON)
}

// Prune deletes the entries older than before, a chunk at a time, each
// chunk deleted through a Badger WriteBatch (which commits as often as
// Badger's transaction limits require). It returns how many it deleted,
// also when it fails part-way (after Close, for instance), in which case
// the entries counted are gone and the rest remain. The space is
// reclaimed by Badger's compaction and value-log GC later.
//
// The budget counters are rebuilt from the stored entries of the current
// month (and week, for sessions) when the ledger's location is set: prune
// entries from inside that span and, after the next restart, budgets no
// longer count their spend. The counters in memory are left as they are.
func (l *Ledger) Prune(before time.Time) (int, error) {
	if before.IsZero() {
		return 0, errors.New("ledger: prune needs a time before which to delete")
	}
	total := 0
	seek := startKey(time.Time{})
	for seek != nil {
		n, next, err := l.pruneChunk(seek, before)
		total += n
		if err != nil {
			return total, err
		}
		seek = next
	}
	return total, nil
}

// pruneChunkSize is how many entries Prune deletes per chunk.
const pruneChunkSize = 4096

// pruneChunk deletes up to pruneChunkSize entries older than before,
// starting at seek, and returns how many it deleted and the key to go on
// from (nil when done).
func (l *Ledger) pruneChunk(seek []byte, before time.Time) (int, []byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, nil, ErrClosed
	}
	var keys [][]byte
	var next []byte
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
			k := it.Item().Key()
			if len(k) < len(prefix)+8 {
				continue
			}
			if keyNano(k) >= before.UnixNano() {
				return nil
			}
			if len(keys) == pruneChunkSize {
				next = it.Item().KeyCopy(nil)
				return nil
			}
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("reading the ledger: %w", err)
	}
	if len(keys) == 0 {
		return 0, nil, nil
	}
	wb := l.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return 0, nil, fmt.Errorf("pruning the ledger: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, nil, fmt.Errorf("pruning the ledger: %w", err)
	}
	return len(keys), next, nil
}

// scanChunkSize is how many entries scan reads per chunk.
const scanChunkSize = 512

// scan calls fn with the entries with from <= Time < to (a zero time
// means no bound), oldest first, a chunk at a time, each chunk read in a
// transaction of its own under the read lock, released before fn runs.
// fn must not keep the slice.
func (l *Ledger) scan(from, to time.Time, fn func([]Entry) error) error {
	seek := startKey(from)
	var batch []Entry
	for seek != nil {
		var err error
		batch, seek, err = l.readChunk(batch[:0], seek, to)
		if err != nil {
			return err
		}
		if len(batch) > 0 {
			if err := fn(batch); err != nil {
				return err
			}
		}
	}
	return nil
}

// readChunk appends to dst up to scanChunkSize entries from seek on,
// stopping before to, and returns the key to go on from (nil when done).
func (l *Ledger) readChunk(dst []Entry, seek []byte, to time.Time) ([]Entry, []byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return dst, nil, ErrClosed
	}
	var next []byte
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
			k := it.Item().Key()
			if len(k) < len(prefix)+8 {
				continue
			}
			if !to.IsZero() && keyNano(k) >= to.UnixNano() {
				return nil
			}
			if len(dst) == scanChunkSize {
				next = it.Item().KeyCopy(nil)
				return nil
			}
			var e Entry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("reading ledger entry: %w", err)
			}
			dst = append(dst, e)
		}
		return nil
	})
	return dst, next, err
}

// startKey is the first key of entries at or after from (the first
// entry of all for a zero from).
func startKey(from time.Time) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	if n := from.UnixNano(); !from.IsZero() && n > 0 {
		// Keys hold times before 1970 as 1970.
		binary.BigEndian.PutUint64(k[len(prefix):], uint64(n))
	}
	return k
}

// keyNano is the time, in Unix nanoseconds, of an entry key.
func keyNano(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k[len(prefix):]))
}

// DayStart returns the midnight that begins t's calendar day in loc (UTC
// when loc is nil). It is built with time.Date, so it is right on the
// days clocks change: such a day is 23 or 25 hours long and still starts
// at its own midnight (or, where a change skips midnight itself, at the
// first instant of the day). NextDayStart gives the end of the day.
func DayStart(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}

// NextDayStart returns the midnight that begins the calendar day after
// t's in loc (UTC when loc is nil), built with time.Date like DayStart;
// DayStart(t, loc) and NextDayStart(t, loc) bound t's day.
func NextDayStart(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
}

// MonthStart returns the midnight that begins t's calendar month in loc
// (UTC when loc is nil), built with time.Date like DayStart.
func MonthStart(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	y, m, _ := t.In(loc).Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, loc)
}
