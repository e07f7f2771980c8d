package contextbuf

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// FuzzApply: any base content and diff text. Apply never panics, fails
// only with *ParseError or *ApplyError, leaves base alone, and a result
// holds only valid paths and is reproduced by Apply(base, Diff(base, result)).
func FuzzApply(f *testing.F) {
	for _, name := range []string{"git.patch", "ruN.patch", "ruN-dirs.patch", "u.patch", "u-orig.patch"} {
		b, err := os.ReadFile(filepath.Join("testdata", "real", name))
		if err != nil {
			f.Fatal(err)
		}
		main, _ := os.ReadFile(filepath.Join("testdata", "real", "a", "src", "main.txt"))
		f.Add(string(main), string(b))
	}
	f.Add("a\nb\nc\n", "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n")
	f.Add("a\nb", "--- a/f\n+++ b/f\n@@ -2 +2 @@\n-b\n\\ No newline at end of file\n+b\n")
	f.Add("", "diff --git a/n b/n\nnew file mode 100644\n--- /dev/null\n+++ b/n\n@@ -0,0 +1 @@\n+x\n")
	f.Add("x\n", "diff --git a/f b/g\nrename from f\nrename to g\n")
	f.Add("x\n", "diff --git \"a/f\" \"b/\\303\\274\"\ncopy from f\ncopy to \"\\303\\274\"\n")
	f.Fuzz(func(t *testing.T, content, diff string) {
		base := Files{"f": content, "dir/g": content}
		before := maps.Clone(base)
		got, err := Apply(base, diff)
		if !maps.Equal(base, before) {
			t.Fatal("base modified")
		}
		if err != nil {
			var pe *ParseError
			var ae *ApplyError
			if !errors.As(err, &pe) && !errors.As(err, &ae) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if got != nil {
				t.Fatal("result with an error")
			}
			_ = err.Error()
			return
		}
		for p := range got {
			if r := checkPath(p); r != "" {
				t.Fatalf("result has path %q: %s", p, r)
			}
		}
		again, err := Apply(base, Diff(base, got))
		if err != nil || !maps.Equal(again, got) {
			t.Fatalf("Diff of the result does not reproduce it: %v", err)
		}
	})
}

// FuzzDiffApply: Apply(old, Diff(old, new)) == new, for a modified file,
// a created and a deleted one, and a possible rename.
func FuzzDiffApply(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nB\nc\n")
	f.Add("", "x")
	f.Add("x", "")
	f.Add("same\n", "same\n")
	f.Add("a\r\nb\r\n", "a\r\nc\r\n")
	f.Add("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "1\n2\nx\n4\n5\n6\n7\n8\ny\n10")
	f.Fuzz(func(t *testing.T, a, b string) {
		old := Files{"m": a, "gone": a, "stay": b}
		new := Files{"m": b, "born": b, "stay": b, "moved": a}
		for _, pair := range [][2]Files{{old, new}, {new, old}, {{"x": a}, {"x": b}}} {
			d := Diff(pair[0], pair[1])
			got, err := Apply(pair[0], d)
			if err != nil {
				t.Fatalf("%v\ndiff:\n%s", err, d)
			}
			if !maps.Equal(got, pair[1]) {
				t.Fatalf("got %q, want %q\ndiff:\n%s", got, pair[1], d)
			}
		}
	})
}
