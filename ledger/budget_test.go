package ledger

import (
	"math"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func memLedger(t testing.TB) *Ledger {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l := New(db)
	if err := l.SetLocation(time.UTC); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestReserveUnderConcurrency is the budget leak test: 200 requests at
// once against a budget that allows 50 of them. Whatever the
// interleaving, committed spend never passes the limit by more than one
// reservation, and exactly the admitted requests are recorded.
func TestReserveUnderConcurrency(t *testing.T) {
	l := memLedger(t)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	const reserve = 0.01
	limits := []Limit{{Scope: ScopeGlobal, Window: Daily, USD: 5}, {Scope: ScopeKey, Window: Daily, USD: 50 * reserve}}
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			h, ref := l.Reserve(Reservation{Time: now, KeyID: "alice", USD: reserve, Limits: limits})
			if ref != nil {
				refused.Add(1)
				if !strings.Contains(ref.Error(), "the daily limit of this key is $0.50") {
					t.Errorf("refusal: %s", ref.Error())
				}
				return
			}
			admitted.Add(1)
			time.Sleep(time.Duration(rand.Intn(200)) * time.Microsecond)
			if i%7 == 0 {
				h.Release() // a failed request
				return
			}
			// Actual cost at most the reservation.
			if err := h.Settle(Entry{Time: now, KeyID: "alice", Model: "m", Status: 200, CostUSD: reserve * float64(80+rand.Intn(21)) / 100}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	spent := l.Spent(now, ScopeKey, "alice", "", Daily)
	var sum float64
	n := 0
	_ = l.Each(time.Time{}, time.Time{}, func(e Entry) error { sum += e.CostUSD; n++; return nil })
	if spent > 50*reserve+reserve+1e-9 {
		t.Fatalf("spend %v exceeds the budget %v by more than one reservation", spent, 50*reserve)
	}
	if diff := spent - sum; diff > 1e-9 || diff < -1e-9 {
		t.Errorf("counter %v != ledger sum %v", spent, sum)
	}
	if admitted.Load() < 50 || admitted.Load()+refused.Load() != 200 {
		t.Errorf("admitted %d refused %d", admitted.Load(), refused.Load())
	}
	t.Logf("admitted %d (of which %d recorded), refused %d, spent $%.4f of $%.2f", admitted.Load(), n, refused.Load(), spent, 50*reserve)
	// Nothing stays reserved.
	rem := l.Remaining(now, "alice", "", limits)
	for _, r := range rem {
		if r.Scope == ScopeKey && r.SpentUSD != spent {
			t.Errorf("reservations left behind: %+v", r)
		}
	}
}

func TestWindowsAndSessions(t *testing.T) {
	l := memLedger(t)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if err := l.SetLocation(berlin); err != nil {
		t.Fatal(err)
	}
	// 23:30 in Berlin on Nov 30 is 22:30 UTC; the next entry is on Dec 1.
	t1 := time.Date(2026, 11, 30, 22, 30, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	for _, e := range []Entry{
		{Time: t1, KeyID: "bob", Session: "s1", CostUSD: 1},
		{Time: t2, KeyID: "bob", Session: "s1", CostUSD: 2},
		{Time: t2, KeyID: "carol", Session: "s1", CostUSD: 4},
	} {
		if err := l.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.Spent(t2, ScopeKey, "bob", "", Daily); got != 2 {
		t.Errorf("bob daily on Dec 1 = %v, want 2", got)
	}
	if got := l.Spent(t2, ScopeKey, "bob", "", Monthly); got != 2 {
		t.Errorf("bob monthly in December = %v, want 2", got)
	}
	if got := l.Spent(t2, ScopeSession, "bob", "s1", Lifetime); got != 3 {
		t.Errorf("bob's session = %v, want 3 (sessions span windows)", got)
	}
	if got := l.Spent(t2, ScopeGlobal, "", "", Daily); got != 6 {
		t.Errorf("global daily = %v, want 6", got)
	}
	// Session ids are per key: carol's s1 is not bob's.
	if got := l.Spent(t2, ScopeSession, "carol", "s1", Lifetime); got != 4 {
		t.Errorf("carol's session = %v", got)
	}
	// An idle session starts over.
	if got := l.Spent(t2.Add(SessionIdle+time.Minute), ScopeSession, "bob", "s1", Lifetime); got != 0 {
		t.Errorf("idle session still counts %v", got)
	}
	// The refusal names the reset time in the zone.
	_, ref := l.Reserve(Reservation{Time: t2, KeyID: "bob", USD: 1, Limits: []Limit{{Scope: ScopeKey, Window: Daily, USD: 2.5}}})
	if ref == nil {
		t.Fatal("reservation over the daily limit admitted")
	}
	if want := time.Date(2026, 12, 2, 0, 0, 0, 0, berlin); !ref.Resets.Equal(want) {
		t.Errorf("resets %v, want %v", ref.Resets, want)
	}
	if msg := ref.Error(); !strings.Contains(msg, "$2.50") || !strings.Contains(msg, "$2.00") || !strings.Contains(msg, "2026-12-02T00:00:00+01:00") {
		t.Errorf("refusal message: %s", msg)
	}
	// A zero-cost request passes even a zero limit.
	if _, ref := l.Reserve(Reservation{Time: t2, KeyID: "bob", USD: 0, Limits: []Limit{{Scope: ScopeKey, Window: Daily, USD: 0}}}); ref != nil {
		t.Errorf("free request refused: %v", ref)
	}
}

// TestCountersSurviveReopen rebuilds the counters from the entries on
// disk, as a restart (or a crash) does.
func TestCountersSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	open := func() (*badger.DB, *Ledger) {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		l := New(db)
		return db, l
	}
	now := time.Now()
	db, l := open()
	l.now = func() time.Time { return now }
	_ = l.SetLocation(time.UTC)
	h, ref := l.Reserve(Reservation{Time: now, KeyID: "dave", Session: "x", USD: 1, Limits: []Limit{{Scope: ScopeKey, Window: Monthly, USD: 10}}})
	if ref != nil {
		t.Fatal(ref)
	}
	if err := h.Settle(Entry{Time: now, KeyID: "dave", Session: "x", CostUSD: 0.75}); err != nil {
		t.Fatal(err)
	}
	if err := h.Settle(Entry{Time: now, CostUSD: 1}); err == nil {
		t.Error("a hold settled twice")
	}
	// An entry from two months ago counts for nothing now.
	_ = l.Record(Entry{Time: now.AddDate(0, -2, 0), KeyID: "dave", CostUSD: 100})
	l.Close()
	db.Close()

	db, l = open()
	defer db.Close()
	l.now = func() time.Time { return now }
	if got := l.Spent(now, ScopeKey, "dave", "", Monthly); got != 0 {
		t.Errorf("counters before SetLocation = %v", got)
	}
	if err := l.SetLocation(time.UTC); err != nil {
		t.Fatal(err)
	}
	if got := l.Spent(now, ScopeKey, "dave", "", Monthly); got != 0.75 {
		t.Errorf("monthly after reopen = %v, want 0.75", got)
	}
	if got := l.Spent(now, ScopeSession, "dave", "x", Lifetime); got != 0.75 {
		t.Errorf("session after reopen = %v, want 0.75", got)
	}
}

func TestCostWithCacheWrites(t *testing.T) {
	p := Prices{Input: 3, Output: 15, CachedInput: 0.3, CacheWrite: 3.75}
	got := Cost(p, Tokens{Input: 1_000_000, CachedInput: 500_000, CacheWrite: 200_000, Output: 10_000, Reasoning: 5000})
	want := 0.3*3 + 0.5*0.3 + 0.2*3.75 + 0.01*15
	if d := got - want; d > 1e-9 || d < -1e-9 {
		t.Errorf("cost = %v, want %v", got, want)
	}
	// Counts that do not add up never make a negative cost.
	if c := Cost(p, Tokens{Input: 10, CachedInput: 8, CacheWrite: 8}); c < 0 {
		t.Errorf("negative cost %v", c)
	}
}

// BenchmarkReserveSettle is the budget check plus the ledger write of one
// request, at 1 and 64 concurrent requests (b.SetParallelism).
func BenchmarkReserveSettle(b *testing.B) {
	for _, par := range []int{1, 64} {
		b.Run(map[int]string{1: "serial", 64: "parallel64"}[par], func(b *testing.B) {
			l := memLedger(b)
			limits := []Limit{{Scope: ScopeGlobal, Window: Daily, USD: 1e9}, {Scope: ScopeKey, Window: Monthly, USD: 1e9}, {Scope: ScopeSession, Window: Lifetime, USD: 1e9}}
			e := Entry{KeyID: "bench", Session: "s", Provider: "p", Model: "m", Status: 200, Tokens: Tokens{Input: 1000, Output: 200}, CostUSD: 0.0042}
			b.ReportAllocs()
			if par == 1 {
				for i := 0; i < b.N; i++ {
					now := time.Now()
					h, ref := l.Reserve(Reservation{Time: now, KeyID: "bench", Session: "s", USD: 0.01, Limits: limits})
					if ref != nil {
						b.Fatal(ref)
					}
					e.Time = now
					if err := h.Settle(e); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(32) // 2 cores x 32 = 64 goroutines
			b.RunParallel(func(pb *testing.PB) {
				e := e
				for pb.Next() {
					now := time.Now()
					h, ref := l.Reserve(Reservation{Time: now, KeyID: "bench", Session: "s", USD: 0.01, Limits: limits})
					if ref != nil {
						b.Error(ref)
						return
					}
					e.Time = now
					if err := h.Settle(e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkReserveRelease is the budget check alone (reserve and release,
// no ledger write), the baseline BenchmarkReserveSettle adds the write to.
func BenchmarkReserveRelease(b *testing.B) {
	l := memLedger(b)
	limits := []Limit{{Scope: ScopeGlobal, Window: Daily, USD: 1e9}, {Scope: ScopeKey, Window: Monthly, USD: 1e9}, {Scope: ScopeSession, Window: Lifetime, USD: 1e9}}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h, ref := l.Reserve(Reservation{Time: time.Now(), KeyID: "bench", Session: "s", USD: 0.01, Limits: limits})
			if ref != nil {
				b.Error(ref)
				return
			}
			h.Release()
		}
	})
}

// TestReserveBounds: an absurd reservation (overflowing the counters'
// unit, or NaN) is refused, never wrapped around to nothing.
func TestReserveBounds(t *testing.T) {
	l := memLedger(t)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	limits := []Limit{{Scope: ScopeKey, Window: Daily, USD: 1}}
	for _, usd := range []float64{1e12, Cost(Prices{Output: 15}, Tokens{Output: 1e15}), math.NaN(), math.Inf(1)} {
		if h, ref := l.Reserve(Reservation{Time: now, KeyID: "k", USD: usd, Limits: limits}); ref == nil {
			h.Release()
			t.Errorf("reservation of $%v admitted under a $1 limit", usd)
		}
	}
}

// TestSessionStartsOverAfterIdle: a session idle for longer than
// SessionIdle has nothing spent, also after a reservation brings it
// back.
func TestSessionStartsOverAfterIdle(t *testing.T) {
	l := memLedger(t)
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	limits := []Limit{{Scope: ScopeSession, Window: Lifetime, USD: 3}}
	if err := l.Record(Entry{Time: t0, KeyID: "k", Session: "s", CostUSD: 3}); err != nil {
		t.Fatal(err)
	}
	if _, ref := l.Reserve(Reservation{Time: t0.Add(time.Hour), KeyID: "k", Session: "s", USD: 0.1, Limits: limits}); ref == nil {
		t.Fatal("a spent session admitted more")
	}
	later := t0.Add(30 * time.Hour)
	for i := 0; i < 2; i++ {
		h, ref := l.Reserve(Reservation{Time: later, KeyID: "k", Session: "s", USD: 0.1, Limits: limits})
		if ref != nil {
			t.Fatalf("request %d after the idle time refused: %v", i, ref)
		}
		if err := h.Settle(Entry{Time: later, KeyID: "k", Session: "s", CostUSD: 0.1}); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.Spent(later, ScopeSession, "k", "s", Lifetime); got < 0.199 || got > 0.201 {
		t.Errorf("session spend after starting over = %v, want 0.2", got)
	}
	// The rebuild agrees.
	if err := l.SetLocation(time.FixedZone("X", 3600)); err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return later }
	if err := l.SetLocation(time.UTC); err != nil {
		t.Fatal(err)
	}
	if got := l.Spent(later, ScopeSession, "k", "s", Lifetime); got < 0.199 || got > 0.201 {
		t.Errorf("session spend after a rebuild = %v, want 0.2", got)
	}
}
