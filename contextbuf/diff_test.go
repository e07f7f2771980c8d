package contextbuf

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDiffFormat(t *testing.T) {
	old := Files{
		"a.txt": "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n",
		"b":     "x",
		"c":     "same\n",
		"e":     "",
		"gone":  "bye\n",
	}
	new := Files{
		"a.txt": "1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\nfourteen\n15\n",
		"b":     "x\n",
		"d":     "same\n",
		"f":     "",
		"g":     "new\nfile",
	}
	// The same as git diff -M prints (without its "index" lines).
	want := `diff --git a/a.txt b/a.txt
--- a/a.txt
+++ b/a.txt
@@ -1,6 +1,6 @@
 1
 2
-3
+three
 4
 5
 6
@@ -11,5 +11,5 @@
 11
 12
 13
-14
+fourteen
 15
diff --git a/b b/b
--- a/b
+++ b/b
@@ -1 +1 @@
-x
\ No newline at end of file
+x
diff --git a/c b/d
similarity index 100%
rename from c
rename to d
diff --git a/e b/e
deleted file mode 100644
diff --git a/f b/f
new file mode 100644
diff --git a/g b/g
new file mode 100644
--- /dev/null
+++ b/g
@@ -0,0 +1,2 @@
+new
+file
\ No newline at end of file
diff --git a/gone b/gone
deleted file mode 100644
--- a/gone
+++ /dev/null
@@ -1 +0,0 @@
-bye
`
	if got := Diff(old, new); got != want {
		t.Fatalf("Diff:\n%s\nwant:\n%s", got, want)
	}
	if got := Diff(old, old); got != "" {
		t.Fatalf("Diff of equal snapshots = %q", got)
	}
	if got := Diff(nil, Files{}); got != "" {
		t.Fatalf("Diff(nil, {}) = %q", got)
	}
}

func TestDiffHunkMerging(t *testing.T) {
	var lines []string
	for i := 1; i <= 30; i++ {
		lines = append(lines, fmt.Sprint(i))
	}
	base := strings.Join(lines, "\n") + "\n"
	change := func(at ...int) string {
		l := append([]string(nil), lines...)
		for _, n := range at {
			l[n-1] = "changed"
		}
		return strings.Join(l, "\n") + "\n"
	}
	for _, tc := range []struct {
		name  string
		lines []int
		hunks int
		first string
	}{
		{"gap of 6 lines merges", []int{10, 17}, 1, "@@ -7,14 +7,14 @@"},
		{"gap of 7 lines splits", []int{10, 18}, 2, "@@ -7,7 +7,7 @@"},
		{"first line", []int{1}, 1, "@@ -1,4 +1,4 @@"},
		{"last line", []int{30}, 1, "@@ -27,4 +27,4 @@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Diff(Files{"f": base}, Files{"f": change(tc.lines...)})
			var hunks []string
			for _, l := range strings.Split(d, "\n") {
				if strings.HasPrefix(l, "@@") {
					hunks = append(hunks, l)
				}
			}
			if len(hunks) != tc.hunks || hunks[0] != tc.first {
				t.Fatalf("hunks %q, want %d starting with %q\n%s", hunks, tc.hunks, tc.first, d)
			}
		})
	}
}

func TestDiffQuotedNames(t *testing.T) {
	old := Files{"dir/tab\there": "1\n", `q"uote`: "2\n", `back\slash`: "3\n", "nl\nname": "4\n", "spa ce/ü.txt": "5\n"}
	new := Files{"dir/tab\there": "1!\n", `q"uote`: "2!\n", `back\slash`: "3!\n", "nl\nname": "4!\n", "spa ce/ü.txt": "5!\n"}
	d := Diff(old, new)
	for _, want := range []string{`--- "a/dir/tab\there"`, `+++ "b/q\"uote"`, `diff --git "a/back\\slash" "b/back\\slash"`, `--- "a/nl\nname"`, "--- a/spa ce/ü.txt"} {
		if !strings.Contains(d, want+"\n") {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	got, err := Apply(old, d)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, new) {
		t.Fatalf("round trip: %q", got)
	}
}

func TestDiffLargeFileFewChanges(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&sb, "line %d: %s\n", i, strings.Repeat("x", i%40))
	}
	old := sb.String()
	lines := splitLines(old)
	for _, n := range []int{17, 2500, 2503, 7000, 9999} {
		lines[n] = "edited\n"
	}
	lines = append(lines[:5000], append([]string{"inserted\n", "inserted 2\n"}, lines[5000:]...)...)
	new := strings.Join(lines, "")
	start := time.Now()
	d := Diff(Files{"big": old}, Files{"big": new})
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Diff of 10k lines took %v", el)
	}
	if n := strings.Count(d, "\n@@ "); n != 5 {
		t.Fatalf("%d hunks, want 5:\n%s", n, d)
	}
	got, err := Apply(Files{"big": old}, d)
	if err != nil || got["big"] != new {
		t.Fatalf("round trip failed: %v", err)
	}
}

func TestDiffUnrelatedLargeFiles(t *testing.T) {
	var a, b strings.Builder
	for i := 0; i < 8000; i++ {
		fmt.Fprintf(&a, "a%d\n", i)
		fmt.Fprintf(&b, "b%d\n", i)
		if i%97 == 0 {
			fmt.Fprintf(&a, "common%d\n", i)
			fmt.Fprintf(&b, "common%d\n", i)
		}
	}
	start := time.Now()
	d := Diff(Files{"f": a.String()}, Files{"f": b.String()})
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("Diff took %v", el)
	}
	got, err := Apply(Files{"f": a.String()}, d)
	if err != nil || got["f"] != b.String() {
		t.Fatalf("round trip failed: %v", err)
	}
}

// TestDiffReorderedLargeFile: every line occurs on both sides, in another
// order, so the edit distance is huge; the "too expensive" cut-off keeps
// Diff fast (the diff is then valid but not minimal).
func TestDiffReorderedLargeFile(t *testing.T) {
	var a, b strings.Builder
	const n = 10000
	r := rand.New(rand.NewPCG(7, 8))
	perm := r.Perm(n)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&a, "line %d\n", i)
		fmt.Fprintf(&b, "line %d\n", perm[i])
	}
	start := time.Now()
	d := Diff(Files{"f": a.String()}, Files{"f": b.String()})
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("Diff took %v", el)
	}
	t.Logf("Diff of 10k shuffled lines: %v, %d bytes", time.Since(start), len(d))
	got, err := Apply(Files{"f": a.String()}, d)
	if err != nil || got["f"] != b.String() {
		t.Fatalf("round trip failed: %v", err)
	}
}

// randomSnapshots returns a random old snapshot and an edited new one.
func randomSnapshots(r *rand.Rand) (Files, Files) {
	vocab := []string{"a", "b", "c", "func main() {", "}", "", "\treturn nil", "x := 1", "// comment", "a"}
	names := []string{"a.txt", "b.go", "dir/c.md", "dir/sub/d", "x y.txt", "b/lit", "a/lit", "ünï.txt", "e", "f/g/h", "renamed/one", "renamed/two"}
	randContent := func() string {
		switch r.IntN(8) {
		case 0:
			return ""
		case 1:
			return vocab[r.IntN(len(vocab))] // one line, no newline
		}
		n := r.IntN(40)
		var sb strings.Builder
		for i := 0; i < n; i++ {
			sb.WriteString(vocab[r.IntN(len(vocab))])
			if r.IntN(15) == 0 {
				sb.WriteString("\r")
			}
			sb.WriteByte('\n')
		}
		s := sb.String()
		if s != "" && r.IntN(4) == 0 {
			s = s[:len(s)-1] // no final newline
		}
		return s
	}
	edit := func(s string) string {
		lines := splitLines(s)
		for k := r.IntN(5); k >= 0; k-- {
			pos := 0
			if len(lines) > 0 {
				pos = r.IntN(len(lines) + 1)
			}
			switch r.IntN(4) {
			case 0: // insert
				ins := []string{}
				for j := r.IntN(4) + 1; j > 0; j-- {
					ins = append(ins, vocab[r.IntN(len(vocab))]+"\n")
				}
				lines = append(lines[:pos], append(ins, lines[pos:]...)...)
			case 1: // delete
				if pos < len(lines) {
					end := min(len(lines), pos+r.IntN(4)+1)
					lines = append(lines[:pos], lines[end:]...)
				}
			case 2: // replace
				if pos < len(lines) {
					lines[pos] = "replaced " + vocab[r.IntN(len(vocab))] + "\n"
				}
			case 3: // toggle the final newline
				if len(lines) > 0 {
					l := lines[len(lines)-1]
					if strings.HasSuffix(l, "\n") {
						lines[len(lines)-1] = strings.TrimSuffix(l, "\n")
					} else {
						lines[len(lines)-1] = l + "\n"
					}
				}
			}
			// Only the last line may lack its newline.
			for i := 0; i < len(lines)-1; i++ {
				if !strings.HasSuffix(lines[i], "\n") {
					lines[i] += "\n"
				}
			}
		}
		return strings.Join(lines, "")
	}
	old := Files{}
	for _, n := range names {
		if r.IntN(2) == 0 {
			old[n] = randContent()
		}
	}
	new := Files{}
	for p, c := range old {
		switch r.IntN(6) {
		case 0: // delete
		case 1: // rename
			new["renamed/"+strings.ReplaceAll(p, "/", "_")] = c
		case 2, 3:
			new[p] = edit(c)
		default:
			new[p] = c
		}
	}
	for _, n := range names {
		if _, ok := new[n]; !ok && r.IntN(4) == 0 {
			new[n] = randContent()
		}
	}
	return old, new
}

func TestDiffApplyRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 600; i++ {
		old, new := randomSnapshots(r)
		oldCopy := maps.Clone(old)
		d := Diff(old, new)
		got, err := Apply(old, d)
		if err != nil {
			t.Fatalf("case %d: %v\nold %q\nnew %q\ndiff:\n%s", i, err, old, new, d)
		}
		if !maps.Equal(got, new) {
			t.Fatalf("case %d: got %q\nwant %q\ndiff:\n%s", i, got, new, d)
		}
		if !maps.Equal(old, oldCopy) {
			t.Fatalf("case %d: Apply modified its base", i)
		}
		// The same diff with CRLF line ends.
		got, err = Apply(old, strings.ReplaceAll(d, "\n", "\r\n"))
		if err != nil || !maps.Equal(got, new) {
			t.Fatalf("case %d: CRLF diff: %v", i, err)
		}
		if d2 := Diff(new, got); d2 != "" {
			t.Fatalf("case %d: Diff of equal snapshots is not empty", i)
		}
	}
}

// TestDiffGitApply checks that git apply accepts what Diff writes.
func TestDiffGitApply(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 25; i++ {
		old, new := randomSnapshots(r)
		for p := range new { // git and the file system: no \r in names
			if strings.ContainsAny(p, "\r") {
				delete(new, p)
			}
		}
		d := Diff(old, new)
		if d == "" {
			continue
		}
		dir := t.TempDir()
		writeTree(t, dir, old)
		patch := filepath.Join(t.TempDir(), "p.diff")
		if err := os.WriteFile(patch, []byte(d), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(git, "apply", patch)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("case %d: git apply: %v\n%s\ndiff:\n%s", i, err, out, d)
		}
		if got := readTree(t, dir); !maps.Equal(got, new) {
			t.Fatalf("case %d: git apply gave %q, want %q", i, got, new)
		}
	}
}

func writeTree(t testing.TB, dir string, files Files) {
	t.Helper()
	for p, c := range files {
		fp := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t testing.TB, dir string) Files {
	t.Helper()
	files := Files{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
