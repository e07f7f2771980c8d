// Package ledger prices requests and records what each one cost.
//
// An entry holds metadata only: when, who (a key id, never the key), which
// provider and model, tokens, cost, latency and outcome. Prompt text,
// answers and tool arguments never reach it.
//
// The ledger knows nothing of HTTP or of wire formats: callers hand it
// token counts and prices.
package ledger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Prices are USD per one million tokens.
type Prices struct {
	Input  float64 `json:"input,omitempty"`
	Output float64 `json:"output,omitempty"`
	// CachedInput is the price of input read from the provider's prompt
	// cache; 0 means the input price.
	CachedInput float64 `json:"cached_input,omitempty"`
	// CacheWrite is the price of input written to the provider's prompt
	// cache (Anthropic charges a premium); 0 means the input price.
	CacheWrite float64 `json:"cache_write,omitempty"`
}

// Tokens counts the tokens of one request. Input includes CachedInput and
// CacheWrite; Output includes Reasoning.
type Tokens struct {
	Input       int `json:"input_tokens,omitempty"`
	CachedInput int `json:"cached_input_tokens,omitempty"`
	CacheWrite  int `json:"cache_write_tokens,omitempty"`
	Output      int `json:"output_tokens,omitempty"`
	Reasoning   int `json:"reasoning_tokens,omitempty"`
}

// Cost is the USD cost of t at prices p. Cached input is charged at the
// cached price and cache writes at the cache-write price when those are
// set, else at the input price. Reasoning tokens are part of Output and
// charged at the output price.
func Cost(p Prices, t Tokens) float64 {
	cached := min(max(t.CachedInput, 0), max(t.Input, 0))
	written := min(max(t.CacheWrite, 0), max(t.Input, 0)-cached)
	plain := max(t.Input, 0) - cached - written
	cachedPrice := p.CachedInput
	if cachedPrice == 0 {
		cachedPrice = p.Input
	}
	writePrice := p.CacheWrite
	if writePrice == 0 {
		writePrice = p.Input
	}
	usd := (float64(plain)*p.Input + float64(cached)*cachedPrice + float64(written)*writePrice + float64(max(t.Output, 0))*p.Output) / 1e6
	// Round to a billionth of a dollar so sums stay readable.
	return math.Round(usd*1e9) / 1e9
}

// Entry is one request in the ledger.
type Entry struct {
	Time          time.Time `json:"time"`
	KeyID         string    `json:"key_id,omitempty"`
	Session       string    `json:"session,omitempty"`
	Endpoint      string    `json:"endpoint,omitempty"`
	Provider      string    `json:"provider,omitempty"`
	Model         string    `json:"model,omitempty"`
	UpstreamModel string    `json:"upstream_model,omitempty"`
	Tier          string    `json:"tier,omitempty"`
	Stream        bool      `json:"stream,omitempty"`
	Status        int       `json:"status"`
	Tokens
	CostUSD   float64 `json:"cost_usd"`
	LatencyMS float64 `json:"latency_ms"`
	Attempts  int     `json:"attempts,omitempty"`
	Fallback  bool    `json:"fallback,omitempty"`
	Cache     string  `json:"cache,omitempty"`
	// ErrorKind classifies a failure: upstream_unreachable,
	// upstream_status, upstream_broken, client_closed, aborted or
	// gateway; never an error text that could quote the request.
	ErrorKind string `json:"error_kind,omitempty"`
	// SavedUSD is, for an answer served from the response cache, what
	// the original answer cost (the hit itself costs nothing). Fields
	// added later come last: the CSV export's columns follow this order.
	SavedUSD float64 `json:"saved_usd,omitempty"`
}

// prefix is the ledger's key space in the store.
var prefix = []byte("ledger/e/")

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("ledger closed")

// Errors of misused holds.
var (
	errNilHold = errors.New("ledger: settling a nil hold")
	errSettled = errors.New("ledger: hold already settled or released")
)

// Ledger records entries in a Badger database and keeps the spend
// counters budgets are checked against (see Reserve).
type Ledger struct {
	db  *badger.DB
	seq atomic.Uint64
	now func() time.Time

	// mu lets Close wait for writes in progress, so the database is
	// never closed under one.
	mu     sync.RWMutex
	closed bool

	// applyMu is held (shared) from an entry's commit until it is
	// counted, and exclusively while the counters are rebuilt.
	applyMu sync.RWMutex
	// bmu guards ctr.
	bmu sync.Mutex
	ctr counters

	// gc groups the commits of concurrent records into one transaction.
	gc groupCommit
}

// maxGroup bounds the entries of one grouped commit (a few hundred
// bytes each: far below Badger's transaction limit).
const maxGroup = 512

// groupCommit commits the entries of concurrent Record calls together:
// each caller adds its entry to the open group and waits for that
// group's commit, which one writer goroutine does in a single Badger
// transaction. Under load one transaction serves many requests (a
// transaction's fixed cost, and its wait for Badger's write loop, is
// most of the cost of a small entry); alone, a group is one entry, as
// before. Record still returns only once its entry is committed.
type groupCommit struct {
	mu      sync.Mutex
	groups  []*group
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	start   sync.Once
}

// group is one transaction's worth of entries.
type group struct {
	keys, vals [][]byte
	done       chan struct{}
	err        error
}

// commit adds one entry to the open group and waits for its commit.
func (l *Ledger) commit(k, v []byte) error {
	g := &l.gc
	g.start.Do(func() {
		g.wake = make(chan struct{}, 1)
		g.stop = make(chan struct{})
		g.stopped = make(chan struct{})
		go l.writeGroups()
	})
	g.mu.Lock()
	var cur *group
	if n := len(g.groups); n > 0 && len(g.groups[n-1].keys) < maxGroup {
		cur = g.groups[n-1]
	} else {
		cur = &group{done: make(chan struct{})}
		g.groups = append(g.groups, cur)
	}
	cur.keys = append(cur.keys, k)
	cur.vals = append(cur.vals, v)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default: // the writer is awake already
	}
	<-cur.done
	return cur.err
}

// writeGroups is the writer: it commits the waiting groups, oldest
// first, until stopGroups. Callers hold l.mu (shared) while they wait,
// so Close's exclusive lock is taken only once every group is written.
func (l *Ledger) writeGroups() {
	g := &l.gc
	defer close(g.stopped)
	for {
		select {
		case <-g.stop:
			return
		case <-g.wake:
		}
		for {
			g.mu.Lock()
			if len(g.groups) == 0 {
				g.mu.Unlock()
				break
			}
			cur := g.groups[0]
			g.groups[0] = nil
			g.groups = g.groups[1:]
			g.mu.Unlock()
			cur.err = l.db.Update(func(txn *badger.Txn) error {
				for i, k := range cur.keys {
					if err := txn.Set(k, cur.vals[i]); err != nil {
						return err
					}
				}
				return nil
			})
			close(cur.done)
		}
	}
}

// stopGroups ends the writer (after Close has waited for the records in
// progress, so no group is left).
func (l *Ledger) stopGroups() {
	g := &l.gc
	g.start.Do(func() {}) // from here on, g.stop is set iff a writer runs
	if g.stop != nil {
		close(g.stop)
		<-g.stopped
	}
}

// Close waits for writes in progress and makes later ones fail with
// ErrClosed. Call it before closing the database.
func (l *Ledger) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	l.stopGroups()
}

// New returns a ledger over db. Its spend counters start empty: call
// SetLocation before enforcing budgets, which loads them from the stored
// entries.
func New(db *badger.DB) *Ledger {
	l := &Ledger{db: db, now: time.Now, ctr: counters{loc: time.UTC, scopes: map[string]*spend{}}}
	// Seed the sequence from the clock so keys stay unique across
	// restarts even within one nanosecond.
	l.seq.Store(uint64(time.Now().UnixNano()))
	return l
}

func (l *Ledger) key(t time.Time) []byte {
	k := make([]byte, len(prefix)+16)
	copy(k, prefix)
	putTime(k[len(prefix):], t)
	binary.BigEndian.PutUint64(k[len(prefix)+8:], l.seq.Add(1))
	return k
}

// putTime writes t as the 8-byte big-endian UnixNano that starts an
// entry's key; times before 1970 sort as 1970.
func putTime(b []byte, t time.Time) {
	n := t.UnixNano()
	if n < 0 {
		n = 0
	}
	binary.BigEndian.PutUint64(b, uint64(n))
}

// keyTime reads the time putTime wrote.
func keyTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)))
}

// Record writes e and counts its cost against the budgets. Once it
// returns nil the entry is committed.
func (l *Ledger) Record(e Entry) error { return l.record(e, nil) }

// record commits e and then, in one step, drops the hold h (if any) and
// counts e's cost. The cost is counted even when the commit fails: the
// provider has charged it either way.
func (l *Ledger) record(e Entry, h *Hold) error {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	v, ok := appendEntry(make([]byte, 0, 384), &e)
	var err error
	if !ok {
		err = errors.New("encoding ledger entry: a cost or latency that is not a finite number, or a time beyond year 9999")
	} else {
		k := l.key(e.Time)
		l.applyMu.RLock()
		defer l.applyMu.RUnlock()
		l.mu.RLock()
		if l.closed {
			err = ErrClosed
		} else {
			err = l.commit(k, v)
		}
		l.mu.RUnlock()
	}
	l.bmu.Lock()
	l.apply(&e, h)
	l.bmu.Unlock()
	return err
}

// Each calls fn for every entry with from <= Time < to, oldest first. A
// zero to means no upper bound.
func (l *Ledger) Each(from, to time.Time, fn func(Entry) error) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	return l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		start := make([]byte, len(prefix)+8)
		copy(start, prefix)
		if !from.IsZero() {
			putTime(start[len(prefix):], from)
		}
		for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
			k := it.Item().Key()
			if len(k) < len(prefix)+8 {
				continue
			}
			if !to.IsZero() && int64(binary.BigEndian.Uint64(k[len(prefix):])) >= to.UnixNano() {
				return nil
			}
			var e Entry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("reading ledger entry: %w", err)
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}
