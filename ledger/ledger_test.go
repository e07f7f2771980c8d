package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestCost(t *testing.T) {
	p := Prices{Input: 3, Output: 15, CachedInput: 0.3}
	// 1M input of which 400k cached, 100k output.
	got := Cost(p, Tokens{Input: 1_000_000, CachedInput: 400_000, Output: 100_000})
	want := 0.6*3 + 0.4*0.3 + 0.1*15
	if got != want {
		t.Errorf("cost = %v, want %v", got, want)
	}
	// Without a cached price, cached input costs full price.
	if got := Cost(Prices{Input: 2}, Tokens{Input: 1000, CachedInput: 1000}); got != 0.002 {
		t.Errorf("cost = %v", got)
	}
	if Cost(Prices{}, Tokens{Input: 5, Output: 5}) != 0 {
		t.Error("free model costs money")
	}
}

func TestRecordAndEach(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := New(db)
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Many entries share a timestamp: keys must still differ.
			if err := l.Record(Entry{Time: t0.Add(time.Duration(i%5) * time.Hour), Model: "m", Status: 200, CostUSD: 0.01}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	n := 0
	var last time.Time
	if err := l.Each(time.Time{}, time.Time{}, func(e Entry) error {
		if e.Time.Before(last) {
			t.Error("entries out of order")
		}
		last = e.Time
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 50 {
		t.Errorf("%d entries, want 50", n)
	}
	n = 0
	_ = l.Each(t0.Add(time.Hour), t0.Add(3*time.Hour), func(Entry) error { n++; return nil })
	if n != 20 {
		t.Errorf("window holds %d entries, want 20", n)
	}
	l.Close()
	if err := l.Record(Entry{Model: "late"}); err != ErrClosed {
		t.Errorf("Record after Close: %v", err)
	}
}

// TestEntryHoldsNoContent guards the promise that an entry has metadata
// fields only: any new field must be added here knowingly.
func TestEntryHoldsNoContent(t *testing.T) {
	b, _ := json.Marshal(Entry{Time: time.Unix(1, 0), KeyID: "k", Session: "s", Endpoint: "e", Provider: "p", Model: "m",
		UpstreamModel: "u", Tier: "t", Stream: true, Status: 200, Tokens: Tokens{1, 1, 1, 1, 1}, CostUSD: 1, LatencyMS: 1,
		Attempts: 1, Fallback: true, Cache: "hit", ErrorKind: "x"})
	var fields map[string]any
	_ = json.Unmarshal(b, &fields)
	allowed := map[string]bool{"time": true, "key_id": true, "session": true, "endpoint": true, "provider": true, "model": true,
		"upstream_model": true, "tier": true, "stream": true, "status": true, "input_tokens": true, "cached_input_tokens": true,
		"cache_write_tokens": true, "output_tokens": true, "reasoning_tokens": true, "cost_usd": true, "latency_ms": true,
		"attempts": true, "fallback": true, "cache": true, "error_kind": true}
	for k := range fields {
		if !allowed[k] {
			t.Errorf("ledger entry field %q is not on the metadata list", k)
		}
	}
}

// TestGroupCommit: concurrent records share transactions, yet each
// returns only once its entry is stored; every entry is stored once and
// counted once; Close waits for them and later records fail.
func TestGroupCommit(t *testing.T) {
	l := newTestLedger(t)
	if err := l.SetLocation(time.UTC); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := Entry{Time: start.Add(time.Duration(i) * time.Millisecond), KeyID: "k", Model: "m", Status: 200, CostUSD: 0.001}
			if err := l.Record(e); err != nil {
				errs <- err
				return
			}
			// Committed on return: visible to a reader at once.
			found := false
			if err := l.Each(e.Time, e.Time.Add(time.Nanosecond), func(got Entry) error {
				found = found || got.Time.Equal(e.Time)
				return nil
			}); err != nil || !found {
				errs <- fmt.Errorf("entry %d not readable after Record: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	count := 0
	if err := l.Each(time.Time{}, time.Time{}, func(Entry) error { count++; return nil }); err != nil || count != n {
		t.Fatalf("%d entries stored (%v), want %d", count, err, n)
	}
	if got := l.Spent(time.Now(), ScopeKey, "k", "", Daily); math.Abs(got-n*0.001) > 1e-9 {
		t.Errorf("spent %v, want %v", got, n*0.001)
	}
	l.Close()
	if err := l.Record(Entry{Time: time.Now(), Status: 200}); !errors.Is(err, ErrClosed) {
		t.Errorf("record after close: %v", err)
	}
	l.Close() // twice is fine
}

// BenchmarkRecord measures one entry's commit, alone and with
// concurrent callers (whose entries share transactions).
func BenchmarkRecord(b *testing.B) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l := New(db)
	defer l.Close()
	e := Entry{KeyID: "k", Endpoint: "chat_completions", Provider: "p", Model: "m", Status: 200, CostUSD: 0.001, LatencyMS: 12}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if err := l.Record(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.Record(e); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
