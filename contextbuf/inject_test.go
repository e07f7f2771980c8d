package contextbuf

import (
	"errors"
	"fmt"
	"html"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/caddy-llmgate/store"
)

// reconstruct rebuilds what a model sees from an injection text: the
// snapshot block's files with every diff block applied. Contents must end
// in a newline (the rendering adds a missing one).
func reconstruct(t testing.TB, text string) (Files, uint64) {
	t.Helper()
	lines := strings.SplitAfter(text, "\n")
	attr := func(l, name string) string {
		_, rest, ok := strings.Cut(l, " "+name+`="`)
		if !ok {
			t.Fatalf("no %s in %q", name, l)
		}
		v, _, _ := strings.Cut(rest, `"`)
		return html.UnescapeString(v)
	}
	var files Files
	var version uint64
	for i := 0; i < len(lines) && lines[i] != ""; {
		h := lines[i]
		if !strings.HasPrefix(h, "<context_delta ") {
			t.Fatalf("line %d: %q is not a block header", i, h)
		}
		v, _ := strconv.ParseUint(attr(h, "version"), 10, 64)
		i++
		switch attr(h, "kind") {
		case "snapshot":
			if files != nil {
				t.Fatal("snapshot block after the first")
			}
			files = Files{}
			for lines[i] != "</context_delta>\n" {
				p := attr(lines[i], "path")
				i++
				var sb strings.Builder
				for lines[i] != "</file>\n" {
					sb.WriteString(lines[i])
					i++
				}
				files[p] = sb.String()
				i++
			}
		case "diff":
			from, _ := strconv.ParseUint(attr(h, "from"), 10, 64)
			if from != version {
				t.Fatalf("diff block from %d after version %d", from, version)
			}
			var sb strings.Builder
			for lines[i] != "</context_delta>\n" {
				sb.WriteString(lines[i])
				i++
			}
			var err error
			if files, err = Apply(files, sb.String()); err != nil {
				t.Fatalf("diff block %d..%d does not apply: %v", from, v, err)
			}
		default:
			t.Fatalf("kind in %q", h)
		}
		version = v
		i++
	}
	return files, version
}

func TestInjectNoSession(t *testing.T) {
	b := memBuffer(t, Options{})
	files := Files{"b.txt": "hello\n", "a/x.go": "package x", "e": "", `q"<&>.txt`: "<tag>\n"}
	if _, err := b.PutSnapshot("demo", files, nil); err != nil {
		t.Fatal(err)
	}
	want := `<context_delta id="demo" version="1" kind="snapshot" files="4">
<file path="a/x.go">
package x
</file>
<file path="b.txt">
hello
</file>
<file path="e">
</file>
<file path="q&quot;&lt;&amp;&gt;.txt">
<tag>
</file>
</context_delta>
`
	inj, err := b.Inject("demo", "")
	if err != nil {
		t.Fatal(err)
	}
	tok := (len(want) + 3) / 4
	if inj.Text != want || inj.Kind != KindSnapshot || inj.Version != 1 || inj.NewTokens != tok || inj.TotalTokens != tok {
		t.Fatalf("Inject = %+v\nwant text\n%s", inj, want)
	}
	if RenderSnapshot("demo", 1, files) != want {
		t.Fatal("RenderSnapshot differs")
	}
	if st, _, _ := b.Stats("demo"); st.Tokens != tok {
		t.Fatalf("stats tokens %d, want %d", st.Tokens, tok)
	}
	if keys := keysUnder(t, b.db, "ctx/demo/s/"); len(keys) != 0 {
		t.Fatalf("no-session Inject stored %q", keys)
	}
	// Missing and version-0 contexts.
	if _, err := b.Inject("missing", ""); !errors.Is(err, ErrNoContext) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := b.ApplyDelta("zero", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Inject("zero", "s"); !errors.Is(err, ErrNoContext) {
		t.Fatalf("version 0: %v", err)
	}
}

func TestInjectSessionSequence(t *testing.T) {
	b := memBuffer(t, Options{})
	var lines []string
	for i := 1; i <= 60; i++ {
		lines = append(lines, fmt.Sprintf("line %d of a file long enough for a few small diffs", i))
	}
	v1 := Files{"main.go": strings.Join(lines, "\n") + "\n", "b.txt": "b\n"}
	if _, err := b.PutSnapshot("s", v1, nil); err != nil {
		t.Fatal(err)
	}
	snap1 := RenderSnapshot("s", 1, v1)

	inj, err := b.Inject("s", "session-1")
	if err != nil {
		t.Fatal(err)
	}
	if inj.Kind != KindSnapshot || inj.Text != snap1 || inj.Version != 1 || inj.NewTokens != (len(snap1)+3)/4 || inj.TotalTokens != inj.NewTokens {
		t.Fatalf("first: %+v", inj)
	}
	inj, err = b.Inject("s", "session-1")
	if err != nil || inj.Kind != KindUnchanged || inj.Text != snap1 || inj.NewTokens != 0 || inj.TotalTokens != (len(snap1)+3)/4 {
		t.Fatalf("second: %+v %v", inj, err)
	}

	// One change.
	v2 := maps.Clone(v1)
	v2["b.txt"] = "B\n"
	d12 := Diff(v1, v2)
	if _, err := b.ApplyDelta("s", d12, u64(1)); err != nil {
		t.Fatal(err)
	}
	block2 := `<context_delta id="s" from="1" version="2" kind="diff">` + "\n" + d12 + "</context_delta>\n"
	inj, err = b.Inject("s", "session-1")
	if err != nil || inj.Kind != KindDelta || inj.Version != 2 || inj.Text != snap1+block2 ||
		inj.NewTokens != (len(block2)+3)/4 || inj.TotalTokens != (len(snap1+block2)+3)/4 {
		t.Fatalf("delta: %+v %v\n%s", inj, err, inj.Text)
	}
	if want := "diff --git a/b.txt b/b.txt\n--- a/b.txt\n+++ b/b.txt\n@@ -1 +1 @@\n-b\n+B\n"; d12 != want {
		t.Fatalf("d12 = %q", d12)
	}

	// Two changes between requests: one block with both log entries.
	v3 := maps.Clone(v2)
	v3["main.go"] = strings.Replace(v2["main.go"], "line 10 ", "line ten ", 1)
	v4 := maps.Clone(v3)
	v4["c.txt"] = "new\n"
	d23, d34 := Diff(v2, v3), Diff(v3, v4)
	if _, err := b.ApplyDelta("s", d23, u64(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutSnapshot("s", v4, u64(3)); err != nil {
		t.Fatal(err)
	}
	block4 := `<context_delta id="s" from="2" version="4" kind="diff">` + "\n" + d23 + d34 + "</context_delta>\n"
	inj, err = b.Inject("s", "session-1")
	if err != nil || inj.Kind != KindDelta || inj.Version != 4 || inj.Text != snap1+block2+block4 {
		t.Fatalf("delta 2..4: %+v %v\n%s", inj, err, inj.Text)
	}
	if got, v := reconstruct(t, inj.Text); v != 4 || !maps.Equal(got, v4) {
		t.Fatalf("reconstructed v%d %q", v, got)
	}

	// Another session starts from a snapshot of the current version.
	inj2, err := b.Inject("s", "session-2")
	if err != nil || inj2.Kind != KindSnapshot || inj2.Text != RenderSnapshot("s", 4, v4) {
		t.Fatalf("session-2: %+v %v", inj2, err)
	}

	// A change larger than half the snapshot: rebase.
	v5 := maps.Clone(v4)
	v5["main.go"] = strings.ReplaceAll(v4["main.go"], "line", "LINE")
	if _, err := b.PutSnapshot("s", v5, nil); err != nil {
		t.Fatal(err)
	}
	inj, err = b.Inject("s", "session-1")
	snap5 := RenderSnapshot("s", 5, v5)
	if err != nil || inj.Kind != KindSnapshot || inj.Version != 5 || inj.Text != snap5 || inj.NewTokens != (len(snap5)+3)/4 {
		t.Fatalf("rebase: %+v %v", inj, err)
	}
	inj, err = b.Inject("s", "session-1")
	if err != nil || inj.Kind != KindUnchanged || inj.Text != snap5 {
		t.Fatalf("after rebase: %+v %v", inj, err)
	}
}

func TestInjectRebaseWhenLogPruned(t *testing.T) {
	b := memBuffer(t, Options{LogKeep: 2})
	big := strings.Repeat("padding line\n", 100)
	put := func(i int) Files {
		f := Files{"pad": big, "f": fmt.Sprintf("%d\n", i)}
		if _, err := b.PutSnapshot("p", f, nil); err != nil {
			t.Fatal(err)
		}
		return f
	}
	put(1)
	if inj, err := b.Inject("p", "s"); err != nil || inj.Kind != KindSnapshot {
		t.Fatalf("%+v %v", inj, err)
	}
	put(2)
	put(3)
	// Log keeps versions 2 and 3: still a delta.
	if inj, err := b.Inject("p", "s"); err != nil || inj.Kind != KindDelta {
		t.Fatalf("%+v %v", inj, err)
	}
	put(4)
	put(5)
	put(6)
	// Needs 4..6, only 5 and 6 are kept: rebase.
	f6 := Files{"pad": big, "f": "6\n"}
	inj, err := b.Inject("p", "s")
	if err != nil || inj.Kind != KindSnapshot || inj.Text != RenderSnapshot("p", 6, f6) {
		t.Fatalf("%+v %v", inj, err)
	}
}

func TestInjectSessionSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b := New(s.DB(), Options{})
	v1 := Files{"a": strings.Repeat("a line\n", 50)}
	v2 := Files{"a": strings.Repeat("a line\n", 49) + "last\n"}
	b.PutSnapshot("r", v1, nil)
	first, err := b.Inject("r", "sess")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ApplyDelta("r", Diff(v1, v2), u64(1)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b = New(s.DB(), Options{})
	inj, err := b.Inject("r", "sess")
	if err != nil || inj.Kind != KindDelta || !strings.HasPrefix(inj.Text, first.Text) || inj.Version != 2 {
		t.Fatalf("%+v %v", inj, err)
	}
	if got, _ := reconstruct(t, inj.Text); !maps.Equal(got, v2) {
		t.Fatalf("reconstructed %q", got)
	}
}

func TestInjectSessionTTL(t *testing.T) {
	b := memBuffer(t, Options{SessionTTL: time.Second})
	b.PutSnapshot("t", Files{"a": "1\n"}, nil)
	if inj, err := b.Inject("t", "s"); err != nil || inj.Kind != KindSnapshot {
		t.Fatalf("%+v %v", inj, err)
	}
	if inj, err := b.Inject("t", "s"); err != nil || inj.Kind != KindUnchanged {
		t.Fatalf("%+v %v", inj, err)
	}
	time.Sleep(2100 * time.Millisecond)
	if inj, err := b.Inject("t", "s"); err != nil || inj.Kind != KindSnapshot {
		t.Fatalf("after expiry: %+v %v", inj, err)
	}

	// Refresh policy, on a fake clock.
	now := time.Unix(1_000_000, 0)
	b2 := &Buffer{o: Options{SessionTTL: 16 * time.Hour}, now: func() time.Time { return now }}
	exp := uint64(now.Add(16 * time.Hour).Unix())
	if !b2.fresh(exp) {
		t.Error("just written: not fresh")
	}
	now = now.Add(59 * time.Minute)
	if !b2.fresh(exp) {
		t.Error("59 minutes old (a sixteenth of 16h is 1h): not fresh")
	}
	now = now.Add(2 * time.Minute)
	if b2.fresh(exp) {
		t.Error("61 minutes old: fresh")
	}
}

// TestInjectConcurrent injects for a few sessions while deltas land; every
// injection must rebuild exactly the files of the version it claims.
func TestInjectConcurrent(t *testing.T) {
	b := memBuffer(t, Options{})
	var lines []string
	for i := 0; i < 400; i++ {
		lines = append(lines, fmt.Sprintf("line %d\n", i))
	}
	cur := Files{"f": strings.Join(lines, "")}
	if _, err := b.PutSnapshot("c", cur, nil); err != nil {
		t.Fatal(err)
	}
	var versions sync.Map // version -> Files
	versions.Store(uint64(1), cur)

	type result struct {
		inj Injection
		err error
	}
	results := make(chan result, 1000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 12; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			session := fmt.Sprintf("s%d", g%4)
			for {
				select {
				case <-stop:
					return
				default:
				}
				inj, err := b.Inject("c", session)
				results <- result{inj, err}
				if err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for v := 2; v <= 40; v++ {
		next := maps.Clone(cur)
		l := splitLines(cur["f"])
		l[(v*37)%len(l)] = fmt.Sprintf("edit %d\n", v)
		next["f"] = strings.Join(l, "")
		if _, err := b.ApplyDelta("c", Diff(cur, next), u64(uint64(v-1))); err != nil {
			t.Fatal(err)
		}
		versions.Store(uint64(v), next)
		cur = next
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		got, v := reconstruct(t, r.inj.Text)
		want, ok := versions.Load(v)
		if !ok || v != r.inj.Version || !maps.Equal(got, want.(Files)) {
			t.Fatalf("injection at v%d (claims %d) rebuilds wrong files", v, r.inj.Version)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no injections")
	}
	inj, err := b.Inject("c", "s0")
	if err != nil {
		t.Fatal(err)
	}
	if got, v := reconstruct(t, inj.Text); v != 40 || !maps.Equal(got, cur) {
		t.Fatalf("final injection v%d", v)
	}
}
