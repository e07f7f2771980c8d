package watch

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/caddy-llmgate/contextbuf"
)

// writeFile writes a file below dir (slash path), creating directories.
func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// logRecorder collects log lines, safely for concurrent use.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logRecorder) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *logRecorder) count(sub string) int {
	n := 0
	for _, s := range l.all() {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", "alpha\n")
	writeFile(t, dir, "sub/b.md", "# b\n")
	writeFile(t, dir, "sub/deeper/c.go", "package c\n")
	writeFile(t, dir, "empty.txt", "")
	writeFile(t, dir, "bin.dat", "abc\x00def")
	writeFile(t, dir, "latin1.txt", "caf\xe9\n") // not UTF-8
	writeFile(t, dir, "utf8.txt", "café ✓\n")
	writeFile(t, dir, "big.txt", strings.Repeat("x", 101))
	writeFile(t, dir, "exact.txt", strings.Repeat("y", 100))
	writeFile(t, dir, "app.log", "log\n")
	writeFile(t, dir, ".gitignore", "*.log\n/build/\n")
	writeFile(t, dir, "build/out.txt", "built\n")
	writeFile(t, dir, "sub/build/kept.txt", "anchored /build/ is only the root's\n")
	writeFile(t, dir, "sub/.gitignore", "local/\n!keep.log\n")
	writeFile(t, dir, "sub/local/x.txt", "local\n")
	writeFile(t, dir, "sub/keep.log", "re-included\n")
	writeFile(t, dir, ".git/config", "[core]\n")
	writeFile(t, dir, "sub/.git", "gitdir: ../x\n")
	writeFile(t, dir, "secret.env", "TOKEN=1\n")
	if err := os.Symlink(filepath.Join(dir, "a.txt"), filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}

	got, err := Scan(dir, NewIgnorer("*.env"), 100)
	if err != nil {
		t.Fatal(err)
	}
	want := contextbuf.Files{
		"a.txt":              "alpha\n",
		"sub/b.md":           "# b\n",
		"sub/deeper/c.go":    "package c\n",
		"empty.txt":          "",
		"utf8.txt":           "café ✓\n",
		"exact.txt":          strings.Repeat("y", 100),
		".gitignore":         "*.log\n/build/\n",
		"sub/.gitignore":     "local/\n!keep.log\n",
		"sub/build/kept.txt": "anchored /build/ is only the root's\n",
		"sub/keep.log":       "re-included\n",
	}
	if !maps.Equal(got, want) {
		t.Errorf("Scan:\n got %v\nwant %v", keys(got), keys(want))
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: got %q, want %q", k, got[k], v)
			}
		}
	}
}

func keys(f contextbuf.Files) []string {
	var ks []string
	for k := range f {
		ks = append(ks, k)
	}
	return ks
}

func TestScanNotADirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "f", "x")
	if _, err := Scan(filepath.Join(dir, "f"), nil, 0); err == nil {
		t.Error("scanning a file: want an error")
	}
	if _, err := Scan(filepath.Join(dir, "missing"), nil, 0); err == nil {
		t.Error("scanning a missing directory: want an error")
	}
}

func TestScannerRereadsOnlyChangedFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "same.txt", "same\n")
	writeFile(t, dir, "grow.txt", "v1\n")
	writeFile(t, dir, "gone.txt", "bye\n")
	var log logRecorder
	s, err := NewScanner(dir, nil, 0, log.logf)
	if err != nil {
		t.Fatal(err)
	}
	// Pretend the scan happens well after the files were written, so
	// their times can be trusted.
	s.now = func() time.Time { return time.Now().Add(time.Hour) }
	if _, err := s.Scan(); err != nil {
		t.Fatal(err)
	}
	// Mark the cached contents: a file that is not read again keeps the
	// mark.
	for rel, ce := range s.cache {
		ce.content = "cached:" + ce.content
		s.cache[rel] = ce
	}
	writeFile(t, dir, "grow.txt", "v2 longer\n")
	os.Remove(filepath.Join(dir, "gone.txt"))
	writeFile(t, dir, "new.txt", "new\n")
	got, err := s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	want := contextbuf.Files{"same.txt": "cached:same\n", "grow.txt": "v2 longer\n", "new.txt": "new\n"}
	if !maps.Equal(got, want) {
		t.Errorf("rescan = %v, want %v", got, want)
	}

	// A file modified around the time it was read is read again even
	// when its size and time look unchanged.
	s.now = time.Now
	s.cache = map[string]cacheEntry{}
	if _, err := s.Scan(); err != nil {
		t.Fatal(err)
	}
	ce := s.cache["same.txt"]
	ce.content = "stale"
	s.cache["same.txt"] = ce
	got, err = s.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if got["same.txt"] != "same\n" {
		t.Errorf("a recently modified file was not read again: %q", got["same.txt"])
	}
}

func TestScannerWarnsOncePerOversizedFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "big.txt", strings.Repeat("x", 50))
	var log logRecorder
	s, err := NewScanner(dir, nil, 10, log.logf)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		got, err := s.Scan()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got["big.txt"]; ok {
			t.Fatal("an oversized file was kept")
		}
	}
	if n := log.count("big.txt"); n != 1 {
		t.Errorf("%d warnings about big.txt, want 1: %q", n, log.all())
	}
	// Once it fits, it is kept; when it grows again, a new warning.
	writeFile(t, dir, "big.txt", "small")
	if got, _ := s.Scan(); got["big.txt"] != "small" {
		t.Errorf("shrunk file: %q", got["big.txt"])
	}
	writeFile(t, dir, "big.txt", strings.Repeat("x", 50))
	s.Scan()
	if n := log.count("big.txt"); n != 2 {
		t.Errorf("%d warnings about big.txt, want 2", n)
	}
	if n := log.count("50 B is over the 10 B limit"); n != 2 {
		t.Errorf("warning text: %q", log.all())
	}
}

func TestScannerDirsAndIgnorer(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a/b/c.txt", "c")
	writeFile(t, dir, "node_modules/x/y.js", "y")
	writeFile(t, dir, ".gitignore", "node_modules/\n")
	s, err := NewScanner(dir, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Scan(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Dirs(), ","); got != ",a,a/b" {
		t.Errorf("Dirs = %q, want \",a,a/b\"", got)
	}
	if !s.Ignorer().Ignored("node_modules/x/y.js", false) {
		t.Error("the scan's Ignorer does not hold the .gitignore rules")
	}
}
