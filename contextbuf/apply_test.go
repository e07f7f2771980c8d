package contextbuf

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readPatch(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "real", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The patches in testdata/real were made by GNU diff and git from the
// trees a and b there.
func TestApplyRealDiffs(t *testing.T) {
	a := readTree(t, filepath.Join("testdata", "real", "a"))
	b := readTree(t, filepath.Join("testdata", "real", "b"))
	onlyMain := maps.Clone(a)
	onlyMain["src/main.txt"] = b["src/main.txt"]
	for _, tc := range []struct {
		patch string
		want  Files
	}{
		{"git.patch", b},      // git diff -M: rename, new, deleted, no newline
		{"ruN.patch", b},      // diff -ruN a b: epoch timestamps for created and deleted files
		{"ruN-dirs.patch", b}, // diff -ruN old new
		{"u.patch", onlyMain}, // diff -u a/src/main.txt b/src/main.txt
		{"u-orig.patch", onlyMain},
	} {
		t.Run(tc.patch, func(t *testing.T) {
			d := readPatch(t, tc.patch)
			for _, variant := range []string{"LF", "CRLF"} {
				if variant == "CRLF" {
					d = strings.ReplaceAll(d, "\n", "\r\n")
				}
				base := maps.Clone(a)
				got, err := Apply(base, d)
				if err != nil {
					t.Fatalf("%s: %v", variant, err)
				}
				if !maps.Equal(got, tc.want) {
					t.Fatalf("%s: got %q\nwant %q", variant, got, tc.want)
				}
				if !maps.Equal(base, a) {
					t.Fatalf("%s: base modified", variant)
				}
			}
		})
	}
}

func TestApplyOffsets(t *testing.T) {
	a := readTree(t, filepath.Join("testdata", "real", "a"))
	b := readTree(t, filepath.Join("testdata", "real", "b"))
	d := readPatch(t, "u.patch") // hunks at lines 2 and 22
	main, want := a["src/main.txt"], b["src/main.txt"]
	lines := func(s string) []string { return splitLines(s) }
	join := func(l []string) string { return strings.Join(l, "") }
	ml, wl := lines(main), lines(want)

	for _, tc := range []struct {
		name       string
		base, want string
	}{
		{"3 lines added at the top", "x\ny\nz\n" + main, "x\ny\nz\n" + want},
		{"1 line removed at the top", join(ml[1:]), join(wl[1:])},
		{"lines added between the hunks", join(ml[:15]) + "p\nq\nr\ns\n" + join(ml[15:]), join(wl[:15]) + "p\nq\nr\ns\n" + join(wl[15:])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Apply(Files{"src/main.txt": tc.base}, d)
			if err != nil {
				t.Fatal(err)
			}
			if got["src/main.txt"] != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got["src/main.txt"], tc.want)
			}
		})
	}
}

func TestApplyUnifiedZeroAndDefaults(t *testing.T) {
	base := Files{"f": "1\n2\n3\n"}
	for _, tc := range []struct {
		name, diff, want string
	}{
		{"insert without context", "--- a/f\n+++ b/f\n@@ -2,0 +3 @@\n+new\n", "1\n2\nnew\n3\n"},
		{"insert at the top", "--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+top\n", "top\n1\n2\n3\n"},
		{"delete without context", "--- a/f\n+++ b/f\n@@ -2 +1,0 @@\n-2\n", "1\n3\n"},
		{"omitted counts are 1", "--- f\n+++ f\n@@ -3 +3 @@\n-3\n+three\n", "1\n2\nthree\n"},
		{"empty context line without its space", "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3\n", "1\ntwo\n3\n"},
		{"leading garbage and trailing signature", "From 123\nSubject: x\n\n---\n f | 2 +-\n\ndiff --git a/f b/f\nindex 1..2 100644\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n 1\n-2\n+two\n 3\n-- \n2.40.0\n", "1\ntwo\n3\n"},
		{"section heading after @@", "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@ func x() {\n 1\n-2\n+two\n 3\n", "1\ntwo\n3\n"},
		{"empty diff", "", "1\n2\n3\n"},
		{"blank diff", "\n\n  \n", "1\n2\n3\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Apply(base, tc.diff)
			if err != nil {
				t.Fatal(err)
			}
			if got["f"] != tc.want {
				t.Fatalf("got %q, want %q", got["f"], tc.want)
			}
		})
	}
}

func TestApplyGitForms(t *testing.T) {
	base := Files{"dir/a b.txt": "x\n", "keep": "k\n", "empty": ""}
	for _, tc := range []struct {
		name, diff string
		want       Files
	}{
		{"create an empty file", "diff --git a/e2 b/e2\nnew file mode 100644\nindex 0000000..e69de29\n",
			Files{"dir/a b.txt": "x\n", "keep": "k\n", "empty": "", "e2": ""}},
		{"delete an empty file", "diff --git a/empty b/empty\ndeleted file mode 100644\nindex e69de29..0000000\n",
			Files{"dir/a b.txt": "x\n", "keep": "k\n"}},
		{"rename with spaces and a change", "diff --git a/dir/a b.txt b/c d.txt\nsimilarity index 50%\nrename from dir/a b.txt\nrename to c d.txt\n--- a/dir/a b.txt\n+++ b/c d.txt\n@@ -1 +1 @@\n-x\n+y\n",
			Files{"c d.txt": "y\n", "keep": "k\n", "empty": ""}},
		{"copy", "diff --git a/keep b/kept\ncopy from keep\ncopy to kept\n",
			Files{"dir/a b.txt": "x\n", "keep": "k\n", "kept": "k\n", "empty": ""}},
		{"no prefixes", "diff --git keep keep\n--- keep\n+++ keep\n@@ -1 +1 @@\n-k\n+K\n",
			Files{"dir/a b.txt": "x\n", "keep": "K\n", "empty": ""}},
		{"quoted names", "diff --git \"a/q\\\"x\" \"b/q\\\"x\"\nnew file mode 100644\n--- /dev/null\n+++ \"b/q\\\"x\"\n@@ -0,0 +1 @@\n+\\303\\274\n",
			Files{"dir/a b.txt": "x\n", "keep": "k\n", "empty": "", `q"x`: "\\303\\274\n"}},
		{"mode change only", "diff --git a/keep b/keep\nold mode 100644\nnew mode 100755\n",
			base},
		{"a literal b/ directory in a plain diff with /dev/null", "--- /dev/null\n+++ b/new\n@@ -0,0 +1 @@\n+n\n",
			Files{"dir/a b.txt": "x\n", "keep": "k\n", "empty": "", "b/new": "n\n"}},
		{"plain /dev/null follows the diff's a/ b/ convention", "--- a/keep\n+++ b/keep\n@@ -1 +1 @@\n-k\n+K\n--- /dev/null\n+++ b/new\n@@ -0,0 +1 @@\n+n\n",
			Files{"dir/a b.txt": "x\n", "keep": "K\n", "empty": "", "new": "n\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Apply(base, tc.diff)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	a := readTree(t, filepath.Join("testdata", "real", "a"))
	gitPatch := readPatch(t, "git.patch")
	uPatch := readPatch(t, "u.patch")
	with := func(f func(Files)) Files {
		c := maps.Clone(a)
		f(c)
		return c
	}
	for _, tc := range []struct {
		name  string
		base  Files
		diff  string
		file  string
		hunk  int
		line  int
		inMsg string
	}{
		{"context differs in hunk 2", with(func(f Files) { f["src/main.txt"] = strings.Replace(f["src/main.txt"], "line 23\n", "line XXIII\n", 1) }),
			uPatch, "src/main.txt", 2, 22, `src/main.txt: hunk 2 (@@ -22,7 +22,8 @@) does not apply at line 22: context does not match: line 23 is "line XXIII\n", the diff expects "line 23\n"`},
		{"removed line differs in hunk 1", with(func(f Files) { f["src/main.txt"] = strings.Replace(f["src/main.txt"], "line 5\n", "line V\n", 1) }),
			uPatch, "src/main.txt", 1, 2, `src/main.txt: hunk 1 (@@ -2,7 +2,7 @@) does not apply at line 2: removed lines do not match: line 5 is "line V\n"`},
		{"patching a missing file", with(func(f Files) { delete(f, "README.md") }),
			gitPatch, "README.md", 0, 0, "README.md: cannot patch the file: no such file"},
		{"creating an existing file", with(func(f Files) { f["new.txt"] = "already\n" }),
			gitPatch, "new.txt", 0, 0, "new.txt: cannot create the file: it already exists"},
		{"deleting a file whose content differs", with(func(f Files) { f["old.txt"] += "more\n" }),
			gitPatch, "old.txt", 0, 0, "old.txt: cannot delete the file: its content differs"},
		{"rename from a missing file", with(func(f Files) { delete(f, "moved.txt") }),
			gitPatch, "moved.txt", 0, 0, "moved.txt: cannot rename the file to docs/moved.txt: no such file"},
		{"rename onto an existing file", with(func(f Files) { f["docs/moved.txt"] = "x\n" }),
			gitPatch, "docs/moved.txt", 0, 0, "already exists"},
		{"file shorter than the hunk", Files{"src/main.txt": "line 1\nline 2\n"},
			uPatch, "src/main.txt", 1, 2, "the file has only 2 lines"},
		{"hunk at the start must match there", Files{"f": "z\na\nb\nc\n"},
			"--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n-a\n+A\n b\n c\n", "f", 1, 1, "must match at the start of the file"},
		{"new lines after a line without newline", Files{"f": "a\nb"},
			"--- a/f\n+++ b/f\n@@ -2,0 +3 @@\n+c\n", "f", 1, 3, "would not be the last line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.base)
			got, err := Apply(tc.base, tc.diff)
			var ae *ApplyError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want *ApplyError", err, err)
			}
			if got != nil {
				t.Fatalf("result %q on error", got)
			}
			if ae.File != tc.file || ae.Hunk != tc.hunk || ae.Line != tc.line {
				t.Fatalf("error %+v, want file %s hunk %d line %d", ae, tc.file, tc.hunk, tc.line)
			}
			if !strings.Contains(err.Error(), tc.inMsg) {
				t.Fatalf("message %q lacks %q", err, tc.inMsg)
			}
			if !maps.Equal(tc.base, before) {
				t.Fatal("base modified")
			}
		})
	}
}

func TestApplyParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		diff  string
		line  int
		inMsg string
	}{
		{"prose", "hello world\nthis is not a diff\n", 1, "not a unified diff"},
		{"hunk without headers", "@@ -1 +1 @@\n-a\n+b\n", 1, "outside a file section"},
		{"cut short", "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n", 5, "cut short"},
		{"too many lines", "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n", 6, "more lines than its header counts"},
		{"too many context lines", "--- a/x\n+++ b/x\n@@ -1 +1,3 @@\n a\n a\n+b\n", 5, "more context lines"},
		{"bad hunk header", "--- a/x\n+++ b/x\n@@ -x +1 @@\n-a\n", 3, "malformed hunk header"},
		{"huge number", "--- a/x\n+++ b/x\n@@ -1,99999999999 +1 @@\n-a\n", 3, "malformed hunk header"},
		{"line 0", "--- a/x\n+++ b/x\n@@ -0,1 +1 @@\n-a\n", 3, "start at 1"},
		{"unexpected line", "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n*b\n", 5, "unexpected line"},
		{"overlapping hunks", "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n@@ -2,2 +2,2 @@\n-B\n+b\n c\n", 8, "overlaps"},
		{"marker first", "--- a/x\n+++ b/x\n@@ -1 +1 @@\n\\ No newline at end of file\n-a\n+b\n", 4, "without a line before it"},
		{"line after marker", "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n\\ No newline at end of file\n-b\n+c\n+d\n", 6, "after a"},
		{"binary", "diff --git a/x b/x\nindex 1..2 100644\nBinary files a/x and b/x differ\n", 3, "binary"},
		{"git hunk without ---", "diff --git a/x b/x\n@@ -1 +1 @@\n-a\n+b\n", 2, "without"},
		{"--- without +++", "diff --git a/x b/x\n--- a/x\n@@ -1 +1 @@\n", 2, "not followed"},
		{"parent directory", "--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n", 1, `"../x" leaves its directory`},
		{"absolute path", "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", 1, "is absolute"},
		{"git parent directory", "diff --git a/../x b/../x\nnew file mode 100644\n", 1, "leaves its directory"},
		{"rename to a parent directory", "diff --git a/x b/y\nrename from x\nrename to ../y\n", 3, "leaves its directory"},
		{"unclean path", "--- a/x//y\n+++ b/x//y\n@@ -1 +1 @@\n-a\n+b\n", 1, "not clean"},
		{"NUL in a path", "--- a/x\x00y\n+++ b/x\x00y\n@@ -1 +1 @@\n-a\n+b\n", 1, "NUL"},
		{"bad quoting", "--- \"a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", 1, "quoted"},
		{"names differ without rename", "diff --git a/x b/y\n--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n", 1, "without a rename"},
		{"empty names", "--- \n+++ \n@@ -0,0 +1 @@\n+x\n", 1, "empty file path"},
		{"names empty without their prefixes", "--- a/\n+++ b/\n@@ -0,0 +1 @@\n+x\n", 1, "empty file path"},
		{"git names empty", "diff --git a/ b/\nnew file mode 100644\n", 1, "empty file path"},
		{"rename without to", "diff --git a/x b/y\nrename from x\n", 1, "rename or copy without"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := Files{"x": "a\nb\nc\n"}
			_, err := Apply(base, tc.diff)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want *ParseError", err, err)
			}
			if pe.Line != tc.line || !strings.Contains(pe.Error(), tc.inMsg) {
				t.Fatalf("error %q (line %d), want line %d containing %q", pe, pe.Line, tc.line, tc.inMsg)
			}
		})
	}
}

func TestCheckPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"a": true, "a/b.go": true, ".hidden": true, "a/..b": true, "...": true, "x y": true,
		"": false, "/a": false, "..": false, ".": false, "../a": false, "a/..": false, "a/../b": false,
		"a//b": false, "a/": false, "./a": false, "a/./b": false, "a\x00b": false, strings.Repeat("x", 1025): false,
		strings.Repeat("x", 1024): true,
	} {
		if got := checkPath(p) == ""; got != ok {
			t.Errorf("checkPath(%q) ok = %v, want %v (%s)", p, got, ok, checkPath(p))
		}
	}
}

// A long hunk that almost matches everywhere in a long file of identical
// lines must not make Apply quadratic.
func TestApplySearchIsBounded(t *testing.T) {
	file := strings.Repeat("a\n", 200_000)
	var d strings.Builder
	d.WriteString("--- a/f\n+++ b/f\n@@ -90000,20001 +90000,20001 @@\n")
	for i := 0; i < 10000; i++ {
		d.WriteString(" a\n")
	}
	d.WriteString("-b\n+c\n")
	for i := 0; i < 10000; i++ {
		d.WriteString(" a\n")
	}
	start := time.Now()
	_, err := Apply(Files{"f": file}, d.String())
	var ae *ApplyError
	if !errors.As(err, &ae) || ae.Hunk != 1 || !strings.Contains(ae.Reason, "abandoned") {
		t.Fatalf("error %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("took %v", el)
	}
}
