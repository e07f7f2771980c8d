package contextbuf

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/llmgate/caddy-llmgate/store"
)

func memBuffer(t testing.TB, o Options) *Buffer {
	t.Helper()
	s, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return New(s.DB(), o)
}

func u64(v uint64) *uint64 { return &v }

// keysUnder lists the keys under prefix.
func keysUnder(t testing.TB, db *badger.DB, prefix string) []string {
	t.Helper()
	var keys []string
	err := db.View(func(txn *badger.Txn) error {
		ks, err := listKeys(txn, []byte(prefix), 0)
		for _, k := range ks {
			keys = append(keys, string(k))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func mustFiles(t testing.TB, b *Buffer, id string) (Files, uint64) {
	t.Helper()
	f, v, err := b.Files(id)
	if err != nil {
		t.Fatal(err)
	}
	return f, v
}

func TestBufferSnapshotThenDeltas(t *testing.T) {
	b := memBuffer(t, Options{})
	files := Files{"src/a.go": "package a\n\nfunc A() {}\n", "README.md": "# demo\n", "empty": ""}
	before := time.Now()
	st, err := b.PutSnapshot("demo", files, u64(0))
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	wantTokens := (len(RenderSnapshot("demo", 1, files)) + 3) / 4
	if st.ID != "demo" || st.Version != 1 || st.Files != 3 || st.Bytes != int64(len(files["src/a.go"])+len(files["README.md"])) ||
		st.Tokens != wantTokens || st.Snapshots != 1 || st.Deltas != 0 {
		t.Fatalf("stats %+v (want tokens %d)", st, wantTokens)
	}
	if st.Updated.Before(before.Add(-time.Millisecond)) || st.Updated.After(after.Add(time.Millisecond)) {
		t.Fatalf("updated %v not in [%v, %v]", st.Updated, before, after)
	}

	files2 := maps.Clone(files)
	files2["src/a.go"] = "package a\n\nfunc A() { println() }\n"
	files2["src/b.go"] = "package a\n"
	delete(files2, "empty")
	st, err = b.ApplyDelta("demo", Diff(files, files2), u64(1))
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 2 || st.Files != 3 || st.Deltas != 1 || st.Snapshots != 1 ||
		st.Tokens != (len(RenderSnapshot("demo", 2, files2))+3)/4 {
		t.Fatalf("stats after delta %+v", st)
	}
	if got, v := mustFiles(t, b, "demo"); v != 2 || !maps.Equal(got, files2) {
		t.Fatalf("files v%d %q", v, got)
	}

	// A plain diff -u delta with timestamps and an offset.
	plain := "--- src/b.go\t2024-01-01 00:00:00\n+++ src/b.go\t2024-01-01 00:00:01\n@@ -1 +1,2 @@\n package a\n+var X = 1\n"
	st, err = b.ApplyDelta("demo", plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	files3 := maps.Clone(files2)
	files3["src/b.go"] = "package a\nvar X = 1\n"
	if got, v := mustFiles(t, b, "demo"); v != 3 || !maps.Equal(got, files3) {
		t.Fatalf("files v%d %q", v, got)
	}
	// The log holds the normalized diff.
	if got := logEntry(t, b, "demo", 3); got != Diff(files2, files3) {
		t.Fatalf("log entry 3:\n%s\nwant\n%s", got, Diff(files2, files3))
	}

	// No-op delta and snapshot: counted, same version.
	if st, err = b.ApplyDelta("demo", "", u64(3)); err != nil || st.Version != 3 || st.Deltas != 3 {
		t.Fatalf("no-op delta: %+v %v", st, err)
	}
	if st, err = b.PutSnapshot("demo", files3, nil); err != nil || st.Version != 3 || st.Snapshots != 2 {
		t.Fatalf("no-op snapshot: %+v %v", st, err)
	}
	// A snapshot that changes things.
	files4 := Files{"only.txt": "x\n"}
	if st, err = b.PutSnapshot("demo", files4, u64(3)); err != nil || st.Version != 4 || st.Files != 1 || st.Bytes != 2 {
		t.Fatalf("snapshot: %+v %v", st, err)
	}
	if got, _ := mustFiles(t, b, "demo"); !maps.Equal(got, files4) {
		t.Fatalf("files %q", got)
	}
	if got := logEntry(t, b, "demo", 4); got != Diff(files3, files4) {
		t.Fatalf("log entry 4:\n%s", got)
	}
	st2, ok, err := b.Stats("demo")
	if err != nil || !ok || st2 != st {
		t.Fatalf("Stats = %+v %v %v, want %+v", st2, ok, err, st)
	}
	if _, ok, err := b.Stats("nope"); ok || err != nil {
		t.Fatalf("Stats of a missing context: %v %v", ok, err)
	}
	if f, v := mustFiles(t, b, "nope"); len(f) != 0 || v != 0 {
		t.Fatalf("Files of a missing context: %v %d", f, v)
	}
}

func logEntry(t testing.TB, b *Buffer, id string, v uint64) string {
	t.Helper()
	var out string
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyLog(id, v))
		if err != nil {
			return err
		}
		return item.Value(func(val []byte) error {
			raw, err := decodeValue(val)
			out = string(raw)
			return err
		})
	})
	if err != nil {
		t.Fatalf("log entry %d: %v", v, err)
	}
	return out
}

func TestBufferConflict(t *testing.T) {
	b := memBuffer(t, Options{})
	if _, err := b.PutSnapshot("c", Files{"f": "1\n"}, u64(0)); err != nil {
		t.Fatal(err)
	}
	d := Diff(Files{"f": "1\n"}, Files{"f": "2\n"})
	for i := 0; i < 6; i++ {
		if _, err := b.ApplyDelta("c", fmt.Sprintf("--- a/g%d\n+++ b/g%d\n@@ -0,0 +1 @@\n+x\n", i, i), nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.ApplyDelta("c", d, u64(5))
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.ID != "c" || ce.Current != 7 || ce.Base != 5 {
		t.Fatalf("error %v", err)
	}
	if want := "context c is at version 7, the delta was made against version 5"; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	_, err = b.PutSnapshot("c", Files{}, u64(6))
	if !errors.As(err, &ce) || ce.Current != 7 || ce.Base != 6 {
		t.Fatalf("snapshot conflict: %v", err)
	}
	if f, v := mustFiles(t, b, "c"); v != 7 || f["f"] != "1\n" {
		t.Fatalf("changed on conflict: v%d %q", v, f)
	}
	// base 0 on a missing context is fine; on an existing one a conflict.
	if _, err := b.ApplyDelta("new", d, u64(3)); !errors.As(err, &ce) || ce.Current != 0 {
		t.Fatalf("missing context, base 3: %v", err)
	}
}

func TestBufferRejectsAndKeepsVersion(t *testing.T) {
	b := memBuffer(t, Options{})
	files := Files{"f": "1\n2\n3\n"}
	if _, err := b.PutSnapshot("r", files, nil); err != nil {
		t.Fatal(err)
	}
	// Second file section does not apply: nothing at all is applied.
	bad := "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-nope\n+x\n"
	_, err := b.ApplyDelta("r", bad, nil)
	var ae *ApplyError
	if !errors.As(err, &ae) || ae.File != "f" || ae.Hunk != 1 {
		t.Fatalf("error %v", err)
	}
	_, err = b.ApplyDelta("r", "garbage", nil)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 1 {
		t.Fatalf("error %v", err)
	}
	st, _, _ := b.Stats("r")
	if f, v := mustFiles(t, b, "r"); v != 1 || !maps.Equal(f, files) || st.Deltas != 0 {
		t.Fatalf("changed on error: v%d %q %+v", v, f, st)
	}
}

func TestBufferInvalid(t *testing.T) {
	b := memBuffer(t, Options{})
	var ie *InvalidError
	for _, id := range []string{"", ".", "..", "a/b", "a b", "é", strings.Repeat("x", 129)} {
		if _, err := b.PutSnapshot(id, Files{}, nil); !errors.As(err, &ie) {
			t.Errorf("PutSnapshot(%q): %v", id, err)
		}
		if _, err := b.ApplyDelta(id, "", nil); !errors.As(err, &ie) {
			t.Errorf("ApplyDelta(%q): %v", id, err)
		}
		if _, _, err := b.Stats(id); !errors.As(err, &ie) {
			t.Errorf("Stats(%q): %v", id, err)
		}
		if _, err := b.Inject(id, ""); !errors.As(err, &ie) {
			t.Errorf("Inject(%q): %v", id, err)
		}
		if err := b.Delete(id); !errors.As(err, &ie) {
			t.Errorf("Delete(%q): %v", id, err)
		}
		if _, _, err := b.Files(id); !errors.As(err, &ie) {
			t.Errorf("Files(%q): %v", id, err)
		}
	}
	for _, ok := range []string{"a", "A-z_0.9", strings.Repeat("x", 128), "..."} {
		if _, err := b.PutSnapshot(ok, Files{}, nil); err != nil {
			t.Errorf("PutSnapshot(%q): %v", ok, err)
		}
	}
	for _, p := range []string{"../x", "/etc/passwd", "a//b", "", "a/", "x\x00"} {
		if _, err := b.PutSnapshot("a", Files{p: "x"}, nil); !errors.As(err, &ie) {
			t.Errorf("path %q: %v", p, err)
		}
	}
	if _, err := b.ApplyDelta("a", "--- a/../x\n+++ b/../x\n@@ -0,0 +1 @@\n+x\n", nil); !errors.As(err, new(*ParseError)) {
		t.Errorf("delta with ../x: %v", err)
	}
	for _, s := range []string{"tab\there", "é", strings.Repeat("s", 129)} {
		if _, err := b.Inject("a", s); !errors.As(err, &ie) {
			t.Errorf("session %q: %v", s, err)
		}
	}
}

func TestBufferTooLarge(t *testing.T) {
	b := memBuffer(t, Options{MaxBytes: 100})
	_, err := b.PutSnapshot("big", Files{"f": strings.Repeat("x", 101)}, nil)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "101") {
		t.Fatalf("error %v", err)
	}
	if _, ok, _ := b.Stats("big"); ok {
		t.Fatal("stored a too large snapshot")
	}
	if _, err := b.PutSnapshot("big", Files{"f": strings.Repeat("x\n", 45)}, nil); err != nil {
		t.Fatal(err)
	}
	grow := "--- a/g\n+++ b/g\n@@ -0,0 +1 @@\n+" + strings.Repeat("y", 20) + "\n"
	if _, err := b.ApplyDelta("big", grow, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v", err)
	}
	if st, _, _ := b.Stats("big"); st.Version != 1 || st.Bytes != 90 {
		t.Fatalf("changed: %+v", st)
	}
	// Over a lowered limit, shrinking is still accepted.
	b2 := New(b.db, Options{MaxBytes: 50})
	shrink := Diff(Files{"f": strings.Repeat("x\n", 45)}, Files{"f": strings.Repeat("x\n", 40)})
	if st, err := b2.ApplyDelta("big", shrink, nil); err != nil || st.Bytes != 80 {
		t.Fatalf("shrink: %+v %v", st, err)
	}
}

func TestBufferTxnTooBig(t *testing.T) {
	b := memBuffer(t, Options{})
	r := rand.New(rand.NewPCG(5, 6))
	files := Files{}
	for i := 0; i < 800; i++ {
		raw := make([]byte, 3000)
		for j := range raw {
			raw[j] = byte(r.Uint32())
		}
		files[fmt.Sprintf("f%03d", i)] = base64.StdEncoding.EncodeToString(raw)
	}
	_, err := b.PutSnapshot("huge", files, nil)
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("error %v", err)
	}
	if _, ok, _ := b.Stats("huge"); ok {
		t.Fatal("stored part of a too big snapshot")
	}
	if keys := keysUnder(t, b.db, "ctx/huge/"); len(keys) != 0 {
		t.Fatalf("%d keys left", len(keys))
	}
}

func TestBufferRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*store.Store, *Buffer) {
		s, err := store.Open(store.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s, New(s.DB(), Options{})
	}
	v1 := Files{"a.txt": "one\ntwo\nthree\n", "b.txt": "b\n"}
	v2 := Files{"a.txt": "one\n2\nthree\n", "b.txt": "b\n", "c.txt": "c"}
	v3 := Files{"a.txt": "one\n2\nthree\nfour\n", "c.txt": "c\n"}

	s, b := open()
	if _, err := b.PutSnapshot("r", v1, u64(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ApplyDelta("r", Diff(v1, v2), u64(1)); err != nil {
		t.Fatal(err)
	}
	st2, _, _ := b.Stats("r")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, b = open()
	if f, v := mustFiles(t, b, "r"); v != 2 || !maps.Equal(f, v2) {
		t.Fatalf("after reopen: v%d %q", v, f)
	}
	if st, ok, err := b.Stats("r"); !ok || err != nil || !st.Updated.Equal(st2.Updated) || st.Version != st2.Version || st.Tokens != st2.Tokens {
		t.Fatalf("stats after reopen %+v, before %+v", st, st2)
	}
	if _, err := b.ApplyDelta("r", Diff(v2, v3), u64(2)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, b = open()
	defer s.Close()
	if f, v := mustFiles(t, b, "r"); v != 3 || !maps.Equal(f, v3) {
		t.Fatalf("after second reopen: v%d %q", v, f)
	}
	if st, _, _ := b.Stats("r"); st.Deltas != 2 || st.Snapshots != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBufferConcurrentDeltas(t *testing.T) {
	b := memBuffer(t, Options{})
	const n = 50
	base := Files{}
	var shared []string
	for i := 0; i < n*10; i++ {
		shared = append(shared, fmt.Sprintf("shared line %d\n", i))
	}
	base["shared.txt"] = strings.Join(shared, "")
	for i := 0; i < n; i++ {
		base[fmt.Sprintf("f%02d.txt", i)] = fmt.Sprintf("file %d\nline 2\nline 3\n", i)
	}
	if _, err := b.PutSnapshot("conc", base, nil); err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(base)
	wantShared := append([]string(nil), shared...)
	diffs := make([]string, n)
	for i := 0; i < n; i++ {
		mine := maps.Clone(base)
		p := fmt.Sprintf("f%02d.txt", i)
		mine[p] = strings.Replace(base[p], "line 2", fmt.Sprintf("line 2 by %d", i), 1)
		want[p] = mine[p]
		l := append([]string(nil), shared...)
		l[10*i+5] = fmt.Sprintf("changed by %d\n", i)
		wantShared[10*i+5] = l[10*i+5]
		mine["shared.txt"] = strings.Join(l, "")
		diffs[i] = Diff(base, mine) // all made against the same version
	}
	want["shared.txt"] = strings.Join(wantShared, "")

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.ApplyDelta("conc", diffs[i], nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, v := mustFiles(t, b, "conc")
	if v != n+1 {
		t.Fatalf("version %d, want %d", v, n+1)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("final content lacks changes:\n%s", Diff(want, got))
	}
	if st, _, _ := b.Stats("conc"); st.Deltas != n {
		t.Fatalf("stats %+v", st)
	}
}

func TestBufferDeleteAndList(t *testing.T) {
	b := memBuffer(t, Options{})
	for _, id := range []string{"b", "a-b", "a", "a.c"} {
		if _, err := b.PutSnapshot(id, Files{"f": id + "\n"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Inject("a", "sess"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ApplyDelta("zero", "", nil); err != nil { // exists, version 0
		t.Fatal(err)
	}
	list, err := b.List()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "a,a-b,a.c,b,zero" {
		t.Fatalf("List ids %v", ids)
	}
	if list[0].Version != 1 || list[0].Files != 1 || list[4].Version != 0 || list[4].Deltas != 1 {
		t.Fatalf("List %+v", list)
	}

	if err := b.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if keys := keysUnder(t, b.db, "ctx/a/"); len(keys) != 0 {
		t.Fatalf("keys left: %q", keys)
	}
	if keys := keysUnder(t, b.db, "ctx/a-b/"); len(keys) == 0 {
		t.Fatal("deleted a neighbour")
	}
	if _, ok, _ := b.Stats("a"); ok {
		t.Fatal("still exists")
	}
	if err := b.Delete("a"); !errors.Is(err, ErrNoContext) {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := b.Inject("a", "sess"); !errors.Is(err, ErrNoContext) {
		t.Fatalf("Inject after Delete: %v", err)
	}
	list, _ = b.List()
	if len(list) != 4 || list[0].ID != "a-b" {
		t.Fatalf("List after Delete %+v", list)
	}
	// Recreated, it starts over.
	if st, err := b.PutSnapshot("a", Files{"g": "g\n"}, u64(0)); err != nil || st.Version != 1 || st.Snapshots != 1 {
		t.Fatalf("recreate: %+v %v", st, err)
	}
}

func TestBufferLeftoversPurged(t *testing.T) {
	b := memBuffer(t, Options{})
	// As if a Delete had been interrupted after removing the description.
	err := b.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(keyFile("x", "stale"), encodeValue("old")); err != nil {
			return err
		}
		return txn.Set(keyLog("x", 9), encodeValue("old"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if f, v := mustFiles(t, b, "x"); len(f) != 0 || v != 0 {
		t.Fatalf("leftovers visible: %q", f)
	}
	if _, err := b.PutSnapshot("x", Files{"a": "1\n"}, u64(0)); err != nil {
		t.Fatal(err)
	}
	if f, _ := mustFiles(t, b, "x"); !maps.Equal(f, Files{"a": "1\n"}) {
		t.Fatalf("files %q", f)
	}
	if keys := keysUnder(t, b.db, "ctx/x/log/"); len(keys) != 1 {
		t.Fatalf("log keys %q", keys)
	}
}

func TestBufferLogPruning(t *testing.T) {
	b := memBuffer(t, Options{LogKeep: 3})
	for i := 1; i <= 5; i++ {
		if _, err := b.PutSnapshot("p", Files{"f": fmt.Sprintf("%d\n", i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	keys := keysUnder(t, b.db, "ctx/p/log/")
	want := []string{"ctx/p/log/00000000000000000003", "ctx/p/log/00000000000000000004", "ctx/p/log/00000000000000000005"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("log keys %q", keys)
	}
	// A lower LogKeep prunes on the next change.
	b1 := New(b.db, Options{LogKeep: 1})
	if _, err := b1.PutSnapshot("p", Files{"f": "6\n"}, nil); err != nil {
		t.Fatal(err)
	}
	if keys := keysUnder(t, b.db, "ctx/p/log/"); len(keys) != 1 || keys[0] != "ctx/p/log/00000000000000000006" {
		t.Fatalf("log keys %q", keys)
	}
}

func TestBufferCompression(t *testing.T) {
	b := memBuffer(t, Options{})
	big := strings.Repeat("the same line again\n", 1000)
	if _, err := b.PutSnapshot("z", Files{"big": big, "small": "s\n"}, nil); err != nil {
		t.Fatal(err)
	}
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyFile("z", "big"))
		if err != nil {
			return err
		}
		if n := item.ValueSize(); n > int64(len(big)/10) || n == 0 {
			t.Errorf("stored size %d for %d bytes", n, len(big))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := mustFiles(t, b, "z"); f["big"] != big || f["small"] != "s\n" {
		t.Fatal("content changed through compression")
	}
}

func TestNilDatabase(t *testing.T) {
	b := New(nil, Options{})
	if _, err := b.PutSnapshot("a", Files{}, nil); err == nil {
		t.Error("PutSnapshot: no error")
	}
	if _, err := b.ApplyDelta("a", "", nil); err == nil {
		t.Error("ApplyDelta: no error")
	}
	if _, err := b.Inject("a", "s"); err == nil {
		t.Error("Inject: no error")
	}
	if _, err := b.List(); err == nil {
		t.Error("List: no error")
	}
	if err := b.Delete("a"); err == nil {
		t.Error("Delete: no error")
	}
}
