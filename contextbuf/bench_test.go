package contextbuf

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

// benchContext returns a 100-file context (~4 KB each) and a version of it
// with 20 lines changed (4 lines in each of 5 files).
func benchContext() (Files, Files) {
	old := Files{}
	for f := 0; f < 100; f++ {
		var sb strings.Builder
		for l := 0; sb.Len() < 4000; l++ {
			fmt.Fprintf(&sb, "\tx%d := compute(%d, \"file %d line %d\")\n", l, l*f, f, l)
		}
		old[fmt.Sprintf("pkg%d/file%03d.go", f%10, f)] = sb.String()
	}
	new := maps.Clone(old)
	for f := 0; f < 100; f += 20 {
		p := fmt.Sprintf("pkg%d/file%03d.go", f%10, f)
		lines := splitLines(old[p])
		for _, l := range []int{5, 30, 31, 70} {
			lines[l] = "\t// changed\n"
		}
		new[p] = strings.Join(lines, "")
	}
	return old, new
}

func BenchmarkApply(b *testing.B) {
	old, new := benchContext()
	d := Diff(old, new)
	b.SetBytes(int64(len(d)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Apply(old, d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDiff(b *testing.B) {
	old, new := benchContext()
	b.ReportAllocs()
	for b.Loop() {
		if Diff(old, new) == "" {
			b.Fatal("empty diff")
		}
	}
}

// BenchmarkApplyDelta: the same delta through the Buffer (in-memory
// Badger), alternating forward and back so every call changes the files.
func BenchmarkApplyDelta(b *testing.B) {
	old, new := benchContext()
	buf := memBuffer(b, Options{})
	if _, err := buf.PutSnapshot("bench", old, nil); err != nil {
		b.Fatal(err)
	}
	fwd, back := Diff(old, new), Diff(new, old)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d := fwd
		if i%2 == 1 {
			d = back
		}
		i++
		if _, err := buf.ApplyDelta("bench", d, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInjectUnchanged: a session's repeated request, nothing changed.
func BenchmarkInjectUnchanged(b *testing.B) {
	old, _ := benchContext()
	buf := memBuffer(b, Options{})
	if _, err := buf.PutSnapshot("bench", old, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := buf.Inject("bench", "s"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if inj, err := buf.Inject("bench", "s"); err != nil || inj.Kind != KindUnchanged {
			b.Fatal(inj.Kind, err)
		}
	}
}

// BenchmarkInjectNoSession: rendering the whole snapshot block.
func BenchmarkInjectNoSession(b *testing.B) {
	old, _ := benchContext()
	buf := memBuffer(b, Options{})
	if _, err := buf.PutSnapshot("bench", old, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buf.Inject("bench", ""); err != nil {
			b.Fatal(err)
		}
	}
}
