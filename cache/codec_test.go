package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
	"math"
	"runtime"
	"testing"
	"time"
)

// corruptions of a valid stored value.
func corruptions(v []byte) map[string][]byte {
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), v...)) }
	return map[string][]byte{
		"empty":         {},
		"one byte":      {FormatVersion},
		"header only":   v[:2],
		"truncated":     v[:len(v)/2],
		"truncated -1":  v[:len(v)-1],
		"version 0":     mod(func(b []byte) []byte { b[0] = 0; return b }),
		"version 2":     mod(func(b []byte) []byte { b[0] = 2; return b }),
		"unknown flag":  mod(func(b []byte) []byte { b[1] |= 0x80; return b }),
		"flip last":     mod(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"flip middle":   mod(func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }),
		"trailing junk": append(append([]byte(nil), v...), 0, 1, 2),
		"garbage":       randomBytes(300, 5),
		"garbage hdr":   append([]byte{FormatVersion, flagCompressed}, randomBytes(300, 6)...),
		"zstd bomb":     append([]byte{FormatVersion, flagCompressed}, zstdBomb()...),
	}
}

// forge builds a value that passes the integrity check of c (CRC or
// GCM) around arbitrary data, so tests reach the decoding behind it.
func forge(c *Cache, k *Key, flags byte, data []byte) []byte {
	flags &^= flagEncrypted
	if c.aead != nil {
		flags |= flagEncrypted
		var ad [headerLen + len(Key{})]byte
		return c.aead.Seal([]byte{FormatVersion, flags}, nil, data, additionalData(&ad, FormatVersion, flags, k))
	}
	v := append([]byte{FormatVersion, flags}, data...)
	return binary.BigEndian.AppendUint32(v, valueCRC(k, v))
}

// zstdBomb is a valid zstd frame that decodes to far more than any
// entry may be: 40 × (128 KiB - 1) bytes of zeros in RLE blocks, without
// a declared content size.
func zstdBomb() []byte {
	var b []byte
	// Frame header: magic, descriptor with single segment off, no FCS;
	// window descriptor for a 128 KiB window.
	b = append(b, 0x28, 0xb5, 0x2f, 0xfd)
	b = append(b, 0x00) // FHD: no FCS, no checksum, not single segment
	b = append(b, 0x38) // window descriptor: exponent 7 → 2^(10+7) = 128 KiB
	const blocks = 40
	for i := range blocks {
		// RLE block of 128 KiB - 1 bytes: header = last | type<<1 | size<<3.
		size := uint32(128<<10 - 1)
		h := size<<3 | 1<<1
		if i == blocks-1 {
			h |= 1
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return b
}

func TestCorruptValues(t *testing.T) {
	for _, o := range []Options{{}, {Key: key1}} {
		db := memDB(t)
		c := newCache(t, db, o)
		k := testKey("k")
		for _, p := range [][]byte{[]byte("tiny"), jsonPayload(4000), randomBytes(2000, 2)} {
			if err := c.Put(k, Entry{Provider: "p", Payload: p}); err != nil {
				t.Fatal(err)
			}
			valid := rawValue(t, db, k)
			for name, v := range corruptions(valid) {
				if _, err := c.open(&k, v); err == nil {
					t.Errorf("enc=%v %s: opened", o.Key != nil, name)
				}
				setRaw(t, db, dbKey(&k), v)
				before := c.Counters().Errors
				e, ok, err := c.Get(k)
				if err != nil {
					t.Fatalf("%s: Get error %v", name, err)
				}
				if ok {
					t.Fatalf("enc=%v %s: hit %.20q", o.Key != nil, name, e.Payload)
				}
				if c.Counters().Errors != before+1 {
					t.Errorf("%s: error not counted", name)
				}
				if rawValue(t, db, k) != nil {
					t.Errorf("%s: not removed", name)
				}
			}
		}
	}
}

func TestDecompressionBomb(t *testing.T) {
	bomb := zstdBomb()
	// It is a real zstd frame: an unlimited decoder inflates it.
	d, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out, err := d.DecodeAll(bomb, nil)
	if err != nil || len(out) != 40*(128<<10-1) {
		t.Fatalf("bomb decodes to %d bytes, %v", len(out), err)
	}
	for _, o := range []Options{{}, {Key: key1}} {
		c := newCache(t, memDB(t), o)
		k := testKey("bomb")
		v := forge(c, &k, flagCompressed, bomb)
		// Warm the decoder up (its buffers are made on first use).
		c.open(&k, forge(c, &k, flagCompressed, c.enc.EncodeAll(appendBody(nil, &Entry{Payload: jsonPayload(100 << 10)}), nil)))
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		_, err := c.open(&k, v)
		runtime.ReadMemStats(&m1)
		if !errors.Is(err, errDecompress) {
			t.Errorf("enc=%v: bomb: %v", o.Key != nil, err)
		}
		t.Logf("bomb: %d bytes allocated", m1.TotalAlloc-m0.TotalAlloc)
		if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 64<<10 {
			t.Errorf("enc=%v: bomb allocated %d bytes", o.Key != nil, alloc)
		}
		// The same declaring its real size, or a size within the limit.
		for _, fcs := range []uint64{40 * (128<<10 - 1), 1000} {
			h := append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x80}, binary.LittleEndian.AppendUint32(nil, uint32(fcs))...) // FHD: 4-byte FCS, not single segment
			h = append(h, 0x38)
			b := append(h, bomb[6:]...)
			runtime.ReadMemStats(&m0)
			_, err := c.open(&k, forge(c, &k, flagCompressed, b))
			runtime.ReadMemStats(&m1)
			if !errors.Is(err, errDecompress) {
				t.Errorf("fcs %d: %v", fcs, err)
			}
			if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 64<<10 {
				t.Errorf("fcs %d: allocated %d bytes", fcs, alloc)
			}
		}
		// Two frames, each within the limit, together above it; and
		// two small ones (only one is ever written).
		half := make([]byte, DefaultMaxEntryBytes/2+maxMetaOverhead)
		two := c.enc.EncodeAll(half, c.enc.EncodeAll(half, nil))
		if _, err := c.open(&k, forge(c, &k, flagCompressed, two)); err == nil {
			t.Error("two frames above the limit accepted")
		}
		body := appendBody(nil, &Entry{Payload: []byte("x")})
		two = c.enc.EncodeAll(body, c.enc.EncodeAll(body, nil))
		if _, err := c.open(&k, forge(c, &k, flagCompressed, two)); err == nil {
			t.Error("two frames accepted")
		}
	}
}

func TestForgedBodies(t *testing.T) {
	for _, o := range []Options{{}, {Key: key1}} {
		c := newCache(t, memDB(t), o)
		k := testKey("x")
		good := appendBody(nil, &Entry{Provider: "p", Payload: []byte("payload")})
		if e, err := c.open(&k, forge(c, &k, 0, good)); err != nil || string(e.Payload) != "payload" {
			t.Fatalf("forge itself is broken: %v", err)
		}
		for name, data := range map[string][]byte{
			"empty body":      {},
			"cut metadata":    good[:5],
			"not zstd":        good,
			"zstd of garbage": c.enc.EncodeAll([]byte{0xff, 0xff, 0xff}, nil),
			"truncated zstd":  c.enc.EncodeAll(jsonPayload(3000), nil)[:100],
		} {
			flags := byte(0)
			if name != "empty body" && name != "cut metadata" {
				flags = flagCompressed
			}
			if _, err := c.open(&k, forge(c, &k, flags, data)); err == nil {
				t.Errorf("enc=%v %s: opened", o.Key != nil, name)
			}
		}
	}
}

func TestDropKeepsNewerValue(t *testing.T) {
	db := memDB(t)
	c := newCache(t, db, Options{})
	k := testKey("k")
	setRaw(t, db, dbKey(&k), []byte{9, 9, 9})
	var version uint64
	db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(dbKey(&k))
		if err == nil {
			version = item.Version()
		}
		return err
	})
	if err := c.Put(k, Entry{Payload: []byte("fresh")}); err != nil {
		t.Fatal(err)
	}
	c.drop(dbKey(&k), version, errShort)
	if e, ok, _ := c.Get(k); !ok || string(e.Payload) != "fresh" {
		t.Error("drop removed a newer value")
	}
}

func TestParseBody(t *testing.T) {
	e := Entry{Created: time.Unix(-62135596800, 0), Provider: "a", Model: "b", CostUSD: 1, Payload: []byte("xyz")}
	b := appendBody(nil, &e)
	got, err := parseBody(b, 10)
	if err != nil || !got.Created.Equal(e.Created) || string(got.Payload) != "xyz" {
		t.Fatal(got, err)
	}
	if _, err := parseBody(b, 2); err == nil {
		t.Error("payload above max accepted")
	}
	for i := range len(b) - 3 { // every strict prefix that cuts metadata
		if _, err := parseBody(b[:i], 10); err == nil {
			t.Errorf("prefix %d accepted", i)
		}
	}
	// Nanoseconds out of range, names longer than allowed.
	bad := binary.AppendVarint(nil, 0)
	bad = binary.AppendUvarint(bad, 1e9)
	if _, err := parseBody(append(bad, make([]byte, 10)...), 10); err == nil {
		t.Error("nanoseconds 1e9 accepted")
	}
	long := binary.AppendVarint(nil, 0)
	long = binary.AppendUvarint(long, 0)
	long = append(long, make([]byte, 8)...)
	long = binary.AppendUvarint(long, MaxNameBytes+1)
	long = append(long, bytes.Repeat([]byte("p"), MaxNameBytes+1)...)
	long = append(long, 0)
	if _, err := parseBody(long, 10); err == nil {
		t.Error("long provider accepted")
	}
}

// FuzzOpen: whatever a stored value holds, open returns an entry or an
// error without panicking, and never a payload above the limit.
func FuzzOpen(f *testing.F) {
	const maxEntry = 64 << 10
	plain, err := New(memDB(f), Options{MaxEntryBytes: maxEntry})
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := New(memDB(f), Options{MaxEntryBytes: maxEntry, Key: key1})
	if err != nil {
		f.Fatal(err)
	}
	k := testKey("fuzz")
	for _, c := range []*Cache{plain, sealed} {
		for _, p := range [][]byte{nil, []byte("x"), jsonPayload(3000), randomBytes(200, 4)} {
			e := Entry{Created: time.Unix(1700000000, 5), Provider: "openai", Model: "m", CostUSD: 0.1, Payload: p}
			f.Add(c.seal(&k, &e))
		}
	}
	f.Add([]byte{FormatVersion, flagCompressed, 0x28, 0xb5, 0x2f, 0xfd})
	f.Add(append([]byte{FormatVersion, flagCompressed}, zstdBomb()...))
	f.Fuzz(func(t *testing.T, v []byte) {
		for _, c := range []*Cache{plain, sealed} {
			// The value as stored, and its tail behind a valid CRC or
			// GCM tag (compressed or not, by the first byte), which
			// random bytes would almost never get past.
			var flags byte
			var data []byte
			if len(v) > 0 {
				flags, data = v[0]&flagCompressed, v[1:]
			}
			for _, v := range [][]byte{v, forge(c, &k, flags, data)} {
				check(t, c, &k, v, maxEntry)
			}
		}
	})
}

func check(t *testing.T, c *Cache, k *Key, v []byte, maxEntry int) {
	{
		{
			e, err := c.open(k, v)
			if err != nil {
				return
			}
			if len(e.Payload) > maxEntry || len(e.Provider) > MaxNameBytes || len(e.Model) > MaxNameBytes {
				t.Fatalf("entry above limits: %d %d %d", len(e.Payload), len(e.Provider), len(e.Model))
			}
			// What opens re-seals and opens to the same entry.
			v2 := c.seal(k, &e)
			e2, err := c.open(k, v2)
			if err != nil || !bytes.Equal(e2.Payload, e.Payload) || !e2.Created.Equal(e.Created) || e2.Provider != e.Provider || e2.Model != e.Model ||
				math.Float64bits(e2.CostUSD) != math.Float64bits(e.CostUSD) {
				t.Fatalf("re-seal: %v", err)
			}
		}
	}
}
