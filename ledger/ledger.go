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
	Input       float64 `json:"input,omitempty"`
	Output      float64 `json:"output,omitempty"`
	CachedInput float64 `json:"cached_input,omitempty"`
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
// cached price when one is set, else at the input price; cache writes are
// charged as input.
func Cost(p Prices, t Tokens) float64 {
	cached := t.CachedInput
	if cached > t.Input {
		cached = t.Input
	}
	cachedPrice := p.CachedInput
	if cachedPrice == 0 {
		cachedPrice = p.Input
	}
	usd := (float64(t.Input-cached)*p.Input + float64(cached)*cachedPrice + float64(t.Output)*p.Output) / 1e6
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
}

// prefix is the ledger's key space in the store.
var prefix = []byte("ledger/e/")

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("ledger closed")

// Ledger records entries in a Badger database.
type Ledger struct {
	db  *badger.DB
	seq atomic.Uint64

	// mu lets Close wait for writes in progress, so the database is
	// never closed under one.
	mu     sync.RWMutex
	closed bool
}

// Close waits for writes in progress and makes later ones fail with
// ErrClosed. Call it before closing the database.
func (l *Ledger) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

// New returns a ledger over db.
func New(db *badger.DB) *Ledger {
	l := &Ledger{db: db}
	// Seed the sequence from the clock so keys stay unique across
	// restarts even within one nanosecond.
	l.seq.Store(uint64(time.Now().UnixNano()))
	return l
}

func (l *Ledger) key(t time.Time) []byte {
	k := make([]byte, len(prefix)+16)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(k[len(prefix)+8:], l.seq.Add(1))
	return k
}

// Record writes e. Once it returns nil the entry is committed.
func (l *Ledger) Record(e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding ledger entry: %w", err)
	}
	k := l.key(e.Time)
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	return l.db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) })
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
			binary.BigEndian.PutUint64(start[len(prefix):], uint64(from.UnixNano()))
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
