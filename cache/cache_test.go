package cache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/llmgate/caddy-llmgate/store"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func testKey(s string) Key { return sha256.Sum256([]byte(s)) }

var (
	key1 = bytes.Repeat([]byte{0x11}, 32)
	key2 = bytes.Repeat([]byte{0x22}, 32)
)

func memDB(t testing.TB) *badger.DB {
	t.Helper()
	s, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.DB()
}

func newCache(t testing.TB, db *badger.DB, o Options) *Cache {
	t.Helper()
	c, err := New(db, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawValue reads the stored value of k straight from Badger; nil if
// absent.
func rawValue(t testing.TB, db *badger.DB, k Key) []byte {
	t.Helper()
	var v []byte
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(dbKey(&k))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func setRaw(t testing.TB, db *badger.DB, key, v []byte) {
	t.Helper()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key, v) }); err != nil {
		t.Fatal(err)
	}
}

func jsonPayload(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":"chatcmpl-123","object":"chat.completion","choices":[`)
	for i := 0; b.Len() < n-40; i++ {
		fmt.Fprintf(&b, `{"index":%d,"message":{"role":"assistant","content":"The answer number %d is %d."}},`, i, i, i*i)
	}
	b.WriteString(`{"index":-1}]}`)
	return b.Bytes()
}

func sameEntry(t *testing.T, got, want Entry) {
	t.Helper()
	if !got.Created.Equal(want.Created) {
		t.Errorf("Created %v, want %v", got.Created, want.Created)
	}
	if got.Created.Location() != time.UTC {
		t.Errorf("Created location %v, want UTC", got.Created.Location())
	}
	if got.Provider != want.Provider || got.Model != want.Model {
		t.Errorf("provider/model %q/%q, want %q/%q", got.Provider, got.Model, want.Provider, want.Model)
	}
	if math.Float64bits(got.CostUSD) != math.Float64bits(want.CostUSD) {
		t.Errorf("CostUSD %v, want %v", got.CostUSD, want.CostUSD)
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("payload differs: %d bytes, want %d", len(got.Payload), len(want.Payload))
	}
}

func TestRoundTrip(t *testing.T) {
	created := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("X", 3600))
	payloads := map[string][]byte{
		"empty":  {},
		"small":  []byte(`{"ok":true}`),
		"json":   jsonPayload(10 << 10),
		"random": randomBytes(5000, 1),
		"max":    bytes.Repeat([]byte("a"), DefaultMaxEntryBytes),
	}
	for _, enc := range []bool{false, true} {
		for name, p := range payloads {
			t.Run(fmt.Sprintf("enc=%v/%s", enc, name), func(t *testing.T) {
				o := Options{}
				if enc {
					o.Key = key1
				}
				c := newCache(t, memDB(t), o)
				want := Entry{Created: created, Provider: "openai", Model: "gpt-4o-mini", CostUSD: 0.0012345, Payload: p}
				orig := append([]byte(nil), p...)
				k := testKey(name)
				if err := c.Put(k, want); err != nil {
					t.Fatal(err)
				}
				got, ok, err := c.Get(k)
				if err != nil || !ok {
					t.Fatalf("Get: %v %v", ok, err)
				}
				want.Payload = orig
				sameEntry(t, got, want)
				// The returned payload is the caller's: writing to it
				// does not change what is stored.
				if len(got.Payload) > 0 {
					got.Payload[0] ^= 0xff
					again, ok, _ := c.Get(k)
					if !ok || !bytes.Equal(again.Payload, orig) {
						t.Error("payload shared between Gets")
					}
				}
				if _, ok, err := c.Get(testKey("other")); ok || err != nil {
					t.Errorf("Get of absent key: %v %v", ok, err)
				}
				s, err := c.Stats()
				if err != nil {
					t.Fatal(err)
				}
				if s.Entries != 1 || s.Stores != 1 || s.Misses != 1 || s.Errors != 0 || s.Encrypted != enc {
					t.Errorf("stats %+v", s)
				}
			})
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func TestCreatedDefaultsToNow(t *testing.T) {
	c := newCache(t, memDB(t), Options{})
	before := time.Now()
	k := testKey("x")
	if err := c.Put(k, Entry{Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	e, ok, err := c.Get(k)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if e.Created.Before(before.Truncate(time.Second)) || e.Created.After(time.Now()) {
		t.Errorf("Created %v, want about %v", e.Created, before)
	}
}

func TestCompressionShrinks(t *testing.T) {
	db := memDB(t)
	c := newCache(t, db, Options{})
	p := bytes.Repeat([]byte(`{"role":"assistant","content":"hello world, hello cache"},`), 100<<10/56)
	k := testKey("big")
	if err := c.Put(k, Entry{Payload: p}); err != nil {
		t.Fatal(err)
	}
	v := rawValue(t, db, k)
	if v[0] != FormatVersion || v[1] != flagCompressed {
		t.Errorf("header %x", v[:2])
	}
	if len(v) > len(p)/10 {
		t.Errorf("stored %d bytes for a %d-byte repetitive payload", len(v), len(p))
	}
	s, _ := c.Stats()
	if s.Bytes <= 0 || s.Bytes > int64(len(p)/10) {
		t.Errorf("Stats.Bytes %d", s.Bytes)
	}
	// Incompressible data is stored as is.
	k2 := testKey("random")
	r := randomBytes(4096, 7)
	if err := c.Put(k2, Entry{Payload: r}); err != nil {
		t.Fatal(err)
	}
	if v := rawValue(t, db, k2); v[1] != 0 || !bytes.Contains(v, r) {
		t.Errorf("incompressible payload: flags %x", v[1])
	}
}

func TestEncryption(t *testing.T) {
	db := memDB(t)
	c := newCache(t, db, Options{Key: key1})
	marker := []byte("SECRET-MARKER-4242")
	for _, p := range [][]byte{
		marker,                                  // too small to compress
		append(jsonPayload(20<<10), marker...),  // compressed
		append(randomBytes(3000, 3), marker...), // incompressible
	} {
		k := testKey(string(p))
		if err := c.Put(k, Entry{Provider: "anthropic", Model: "claude-x", Payload: p}); err != nil {
			t.Fatal(err)
		}
		v := rawValue(t, db, k)
		if v[1]&flagEncrypted == 0 {
			t.Fatalf("flags %x", v[1])
		}
		for _, plain := range [][]byte{marker, []byte("anthropic"), []byte("claude-x")} {
			if bytes.Contains(v, plain) {
				t.Errorf("stored value contains %q", plain)
			}
		}
		if e, ok, err := c.Get(k); !ok || err != nil || !bytes.Equal(e.Payload, p) {
			t.Fatalf("Get: %v %v", ok, err)
		}
	}
	// Two writes of the same entry differ (fresh nonce).
	k := testKey("nonce")
	e := Entry{Created: time.Unix(1, 0), Payload: marker}
	c.Put(k, e)
	v1 := rawValue(t, db, k)
	c.Put(k, e)
	if bytes.Equal(v1, rawValue(t, db, k)) {
		t.Error("same ciphertext twice")
	}
}

func TestWrongKeyIsMissAndRemoved(t *testing.T) {
	db := memDB(t)
	c1 := newCache(t, db, Options{Key: key1})
	k := testKey("a")
	if err := c1.Put(k, Entry{Payload: jsonPayload(2000)}); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]Options{"other key": {Key: key2}, "no key": {}} {
		c1.Put(k, Entry{Payload: jsonPayload(2000)})
		core, logs := observer.New(zap.DebugLevel)
		o.Logger = zap.New(core)
		c2 := newCache(t, db, o)
		e, ok, err := c2.Get(k)
		if ok || err != nil || e.Payload != nil {
			t.Fatalf("%s: Get = %v, %v", name, ok, err)
		}
		if rawValue(t, db, k) != nil {
			t.Errorf("%s: unreadable entry not removed", name)
		}
		s, _ := c2.Stats()
		if s.Errors != 1 || s.Misses != 1 || s.Hits != 0 || s.Entries != 0 {
			t.Errorf("%s: stats %+v", name, s)
		}
		if logs.Len() != 1 || logs.All()[0].Level != zap.WarnLevel || logs.All()[0].ContextMap()["key"] != k.String() {
			t.Errorf("%s: logged %+v", name, logs.All())
		}
	}
	// A plain entry is not accepted by an encrypted cache.
	plain := newCache(t, db, Options{})
	plain.Put(k, Entry{Payload: []byte("planted")})
	if _, ok, _ := c1.Get(k); ok {
		t.Error("encrypted cache read a plain entry")
	}
	if rawValue(t, db, k) != nil {
		t.Error("plain entry not removed")
	}
}

func TestMovedValueIsMiss(t *testing.T) {
	db := memDB(t)
	for _, o := range []Options{{Key: key1}, {}} {
		c := newCache(t, db, o)
		a, b := testKey("a"), testKey("b")
		if err := c.Put(a, Entry{Payload: []byte("answer for a")}); err != nil {
			t.Fatal(err)
		}
		v := rawValue(t, db, a)
		setRaw(t, db, dbKey(&b), v)
		if _, ok, err := c.Get(b); ok || err != nil {
			t.Fatalf("moved value: %v %v", ok, err)
		}
		if _, ok, _ := c.Get(a); !ok {
			t.Error("original lost")
		}
		// Flipping the compressed flag is detected too.
		v2 := append([]byte(nil), v...)
		v2[1] ^= flagCompressed
		setRaw(t, db, dbKey(&a), v2)
		if _, ok, _ := c.Get(a); ok {
			t.Error("altered flags accepted")
		}
		if s := c.Counters(); s.Errors != 2 || s.Hits != 1 {
			t.Errorf("enc=%v: counters %+v", o.Key != nil, s)
		}
	}
}

func TestTTL(t *testing.T) {
	db := memDB(t)
	c := newCache(t, db, Options{TTL: time.Second})
	k := testKey("short")
	put := time.Now().Unix()
	if err := c.Put(k, Entry{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// Badger's expiry is in whole seconds: a 1s entry lives until the
	// end of the next second at most, and is certainly there within
	// the second it was stored in.
	if _, ok, _ := c.Get(k); !ok && time.Now().Unix() == put {
		t.Fatal("fresh entry missing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ok, err := c.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry still there after 5s with a 1s TTL")
		}
		time.Sleep(100 * time.Millisecond)
	}
	s, _ := c.Stats()
	if s.Entries != 0 || s.Errors != 0 {
		t.Errorf("stats after expiry %+v", s)
	}
	if n, err := c.Clear(); n != 0 || err != nil {
		t.Errorf("Clear after expiry: %d %v", n, err)
	}
}

func TestMaxEntryBytes(t *testing.T) {
	db := memDB(t)
	c := newCache(t, db, Options{MaxEntryBytes: 1000})
	k := testKey("k")
	if err := c.Put(k, Entry{Payload: make([]byte, 1000)}); err != nil {
		t.Fatal("payload at the limit:", err)
	}
	if err := c.Delete(k); err != nil {
		t.Fatal(err)
	}
	err := c.Put(k, Entry{Payload: make([]byte, 1001)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put: %v, want ErrTooLarge", err)
	}
	err = c.Put(k, Entry{Model: strings.Repeat("m", MaxNameBytes+1)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("long model: %v, want ErrTooLarge", err)
	}
	if rawValue(t, db, k) != nil {
		t.Fatal("something stored")
	}
	s, _ := c.Stats()
	if s.Entries != 0 || s.Stores != 1 || s.TooLarge != 2 || s.MaxEntryBytes != 1000 {
		t.Errorf("stats %+v", s)
	}

	// An entry stored under a larger limit reads as a miss once the
	// limit is lowered, whether it was compressed or not.
	big := newCache(t, db, Options{MaxEntryBytes: 1 << 20})
	for i, p := range [][]byte{jsonPayload(5000), randomBytes(5000, 9)} {
		k := testKey(fmt.Sprint("big", i))
		if err := big.Put(k, Entry{Payload: p}); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := c.Get(k); ok || err != nil {
			t.Errorf("%d: entry above the limit: %v %v", i, ok, err)
		}
	}
}

func TestOptions(t *testing.T) {
	db := memDB(t)
	for _, o := range []Options{
		{Key: make([]byte, 16)},
		{Key: make([]byte, 33)},
		{Key: []byte{}},
		{TTL: -time.Second},
		{TTL: time.Millisecond},
		{MaxEntryBytes: -1},
		{MaxEntryBytes: 1 << 30},
	} {
		if _, err := New(db, o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("nil db accepted")
	}
	c := newCache(t, db, Options{})
	s := c.Counters()
	if s.TTLSeconds != 3600 || s.MaxEntryBytes != 1<<20 || s.Encrypted {
		t.Errorf("defaults %+v", s)
	}
}

func TestClearAndStats(t *testing.T) {
	db := memDB(t)
	c := newCache(t, db, Options{})
	setRaw(t, db, []byte("ledger/x"), []byte("keep me"))
	setRaw(t, db, []byte("cache/other"), []byte("not an entry"))
	for i := range 10 {
		if err := c.Put(testKey(fmt.Sprint(i)), Entry{CostUSD: 0.5, Payload: jsonPayload(1000 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	c.Delete(testKey("9"))
	c.Delete(testKey("absent"))
	for i := range 3 {
		if _, ok, _ := c.Get(testKey(fmt.Sprint(i))); !ok {
			t.Fatal("miss")
		}
	}
	c.Get(testKey("9"))
	c.CountBypass()
	c.CountBypass()
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Entries != 9 || s.Hits != 3 || s.Misses != 1 || s.Bypasses != 2 || s.Stores != 10 || s.SavedUSD != 1.5 || s.Bytes <= 0 {
		t.Errorf("stats %+v", s)
	}
	n, err := c.Clear()
	if err != nil || n != 9 {
		t.Fatalf("Clear = %d, %v; want 9", n, err)
	}
	s, _ = c.Stats()
	if s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("after Clear %+v", s)
	}
	for i := range 9 {
		if _, ok, _ := c.Get(testKey(fmt.Sprint(i))); ok {
			t.Error("entry survived Clear")
		}
	}
	for _, k := range []string{"ledger/x", "cache/other"} {
		err := db.View(func(txn *badger.Txn) error { _, err := txn.Get([]byte(k)); return err })
		if err != nil {
			t.Errorf("%s removed by Clear: %v", k, err)
		}
	}
	// The cache works after Clear.
	if err := c.Put(testKey("new"), Entry{Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get(testKey("new")); !ok {
		t.Error("Put after Clear lost")
	}
}

func TestSavedUSDIgnoresNonsense(t *testing.T) {
	c := newCache(t, memDB(t), Options{})
	for i, cost := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -3, 0, 1e-9, 2e9} {
		k := testKey(fmt.Sprint(i))
		if err := c.Put(k, Entry{CostUSD: cost, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		e, ok, _ := c.Get(k)
		if !ok || math.Float64bits(e.CostUSD) != math.Float64bits(cost) {
			t.Errorf("cost %v came back as %v", cost, e.CostUSD)
		}
	}
	if got := c.Counters().SavedUSD; math.Abs(got-(1e6+1e-9)) > 1e-12 || got <= 1e6 {
		t.Errorf("SavedUSD %v", got)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	k := testKey("persist")
	want := Entry{Created: time.Now(), Provider: "p", Model: "m", CostUSD: 0.25, Payload: jsonPayload(30 << 10)}
	if err := newCache(t, s.DB(), Options{Key: key1}).Put(k, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newCache(t, s.DB(), Options{Key: key1})
	got, ok, err := c.Get(k)
	if err != nil || !ok {
		t.Fatalf("after restart: %v %v", ok, err)
	}
	sameEntry(t, got, want)
	if st, _ := c.Stats(); st.Entries != 1 || st.Hits != 1 || st.SavedUSD != 0.25 {
		t.Errorf("stats after restart %+v", st)
	}
}

func TestConcurrent(t *testing.T) {
	for _, o := range []Options{{}, {Key: key1}} {
		c := newCache(t, memDB(t), o)
		shared := testKey("shared")
		var wg sync.WaitGroup
		errc := make(chan error, 64)
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				own := testKey(fmt.Sprint("own", g))
				for i := range 50 {
					p := []byte(fmt.Sprintf("g%d-i%d-%s", g, i, jsonPayload(2000+g)))
					if err := c.Put(own, Entry{Payload: p, CostUSD: 0.001}); err != nil {
						errc <- err
						return
					}
					e, ok, err := c.Get(own)
					if err != nil || !ok || !bytes.Equal(e.Payload, p) {
						errc <- fmt.Errorf("g%d: own key: %v %v", g, ok, err)
						return
					}
					if err := c.Put(shared, Entry{Provider: fmt.Sprint(g), Payload: p}); err != nil {
						errc <- err
						return
					}
					e, ok, err = c.Get(shared)
					if err != nil || !ok {
						errc <- fmt.Errorf("g%d: shared key: %v %v", g, ok, err)
						return
					}
					if !bytes.HasPrefix(e.Payload, []byte("g"+e.Provider+"-")) {
						errc <- fmt.Errorf("torn entry: provider %s payload %.10q", e.Provider, e.Payload)
						return
					}
					if i%10 == 0 {
						if _, err := c.Stats(); err != nil {
							errc <- err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
		s, _ := c.Stats()
		if s.Entries != 33 || s.Hits != 32*100 || s.Errors != 0 || s.Stores != 32*100 {
			t.Errorf("stats %+v", s)
		}
	}
}

func TestKeyString(t *testing.T) {
	var k Key
	k[0], k[31] = 0xab, 0x01
	if s := k.String(); len(s) != 64 || !strings.HasPrefix(s, "ab") || !strings.HasSuffix(s, "01") {
		t.Error(s)
	}
}

func TestClearWhileWriting(t *testing.T) {
	c := newCache(t, memDB(t), Options{Key: key1})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := testKey(fmt.Sprint(g, i%20))
				if err := c.Put(k, Entry{Payload: jsonPayload(500)}); err != nil {
					t.Error(err)
					return
				}
				if e, ok, err := c.Get(k); err != nil || (ok && len(e.Payload) == 0) {
					t.Error(ok, err)
					return
				}
			}
		}()
	}
	for range 5 {
		time.Sleep(20 * time.Millisecond)
		if _, err := c.Clear(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	if s := c.Counters(); s.Errors != 0 {
		t.Errorf("errors during Clear: %+v", s)
	}
}

func TestClearMany(t *testing.T) {
	db := memDB(t)
	c := newCache(t, db, Options{})
	const n = 5000
	wb := db.NewWriteBatch()
	for i := range n {
		k := testKey(fmt.Sprint(i))
		e := Entry{Payload: []byte(fmt.Sprint(i))}
		if err := wb.SetEntry(badger.NewEntry(dbKey(&k), c.seal(&k, &e)).WithTTL(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.Stats(); s.Entries != n {
		t.Fatalf("%d entries", s.Entries)
	}
	if removed, err := c.Clear(); removed != n || err != nil {
		t.Fatalf("Clear = %d, %v", removed, err)
	}
	if s, _ := c.Stats(); s.Entries != 0 {
		t.Fatalf("%d entries after Clear", s.Entries)
	}
	if removed, err := c.Clear(); removed != 0 || err != nil {
		t.Fatalf("second Clear = %d, %v", removed, err)
	}
}

// TestAllSizes: every body size around the zstd frame format's
// boundaries (FCS field widths at 256 and 65792 bytes, 1 KiB minimum
// window, 128 KiB blocks) round-trips, compressible or not.
func TestAllSizes(t *testing.T) {
	for _, o := range []Options{{}, {Key: key1}} {
		c := newCache(t, memDB(t), o)
		sizes := []int{}
		for n := 0; n <= 1100; n += 7 {
			sizes = append(sizes, n)
		}
		for _, b := range []int{256, 1024, 65792, 128 << 10} {
			for d := -40; d <= 40; d++ {
				sizes = append(sizes, b+d)
			}
		}
		for _, n := range sizes {
			for _, p := range [][]byte{bytes.Repeat([]byte("ab"), n)[:n], randomBytes(n, uint64(n))} {
				k := testKey(fmt.Sprint(n))
				if err := c.Put(k, Entry{Payload: p}); err != nil {
					t.Fatal(err)
				}
				e, ok, err := c.Get(k)
				if !ok || err != nil || !bytes.Equal(e.Payload, p) {
					t.Fatalf("enc=%v size %d: %v %v", o.Key != nil, n, ok, err)
				}
			}
		}
		if s := c.Counters(); s.Errors != 0 {
			t.Errorf("errors %+v", s)
		}
	}
}
