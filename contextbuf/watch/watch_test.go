package watch

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmgate/caddy-llmgate/contextbuf"
)

// runner is a Run in the background.
type runner struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	log    *logRecorder

	mu   sync.Mutex
	last contextbuf.Files // the last rescan's result
}

// waitScanned waits until a rescan saw want.
func (r *runner) waitScanned(want contextbuf.Files) {
	r.t.Helper()
	eventually(r.t, "a rescan to see the changes", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return maps.Equal(r.last, want)
	})
}

// startRun starts Run with fast timings; o.Dir and o.Proxy must be set.
func startRun(t *testing.T, o Options) *runner {
	t.Helper()
	r := &runner{t: t, done: make(chan error, 1), log: &logRecorder{}}
	o.scanned = func(f contextbuf.Files) {
		r.mu.Lock()
		r.last = f
		r.mu.Unlock()
	}
	if o.Debounce == 0 {
		o.Debounce = 20 * time.Millisecond
	}
	if o.RetryMin == 0 {
		o.RetryMin = 5 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 50 * time.Millisecond
	}
	o.Logf = r.log.logf
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- Run(ctx, o) }()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() || os.Getenv("WATCH_TEST_LOG") != "" {
			for _, l := range r.log.all() {
				t.Log(l)
			}
		}
	})
	return r
}

// stop ends Run and returns its error.
func (r *runner) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(5 * time.Second):
		r.t.Error("Run did not return after its context ended")
		return nil
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSynced waits until the gateway's copy of id equals want.
func waitSynced(t *testing.T, g *fakeGateway, id string, want contextbuf.Files, r *runner) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := g.files(id)
		if got != nil && maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway's copy never matched the directory\n got: %v\nwant: %v\nrequests: %v\nlog: %q",
				sortedKeys(got), sortedKeys(want), g.log(), r.log.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sortedKeys(f contextbuf.Files) []string {
	ks := keys(f)
	slices.Sort(ks)
	return ks
}

func mustRename(t *testing.T, dir, from, to string) {
	t.Helper()
	if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, dir, rel string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dir, rel)); err != nil {
		t.Fatal(err)
	}
}

func TestRunEndToEnd(t *testing.T) {
	g := newFakeGateway(t)
	g.key = "k-0123456789"
	srv := httptest.NewServer(g)
	defer srv.Close()

	dir := filepath.Join(t.TempDir(), "proj")
	want := contextbuf.Files{
		"a.txt":     "alpha\nbeta\ngamma\n",
		"sub/b.txt": "bravo\n",
		"keep.md":   "# keep\n",
	}
	for p, c := range want {
		writeFile(t, dir, p, c)
	}
	writeFile(t, dir, "image.png", "\x89PNG\x00\x00")        // binary: never sent
	writeFile(t, dir, ".git/HEAD", "ref: refs/heads/main\n") // never sent

	r := startRun(t, Options{Dir: dir, Proxy: srv.URL, Key: g.key})
	// The id defaults to the directory's name.
	waitSynced(t, g, "proj", want, r)
	if log := g.log(); !slices.Equal(log, []string{"snapshot"}) {
		t.Fatalf("first sync: requests %v, want one snapshot without base_version", log)
	}

	steps := []struct {
		name   string
		change func()
	}{
		{"create a file", func() {
			writeFile(t, dir, "c.txt", "charlie\n")
			want["c.txt"] = "charlie\n"
		}},
		{"modify a file", func() {
			writeFile(t, dir, "a.txt", "alpha\nBETA\ngamma\ndelta\n")
			want["a.txt"] = "alpha\nBETA\ngamma\ndelta\n"
		}},
		{"delete a file", func() {
			mustRemove(t, dir, "sub/b.txt")
			delete(want, "sub/b.txt")
		}},
		{"rename a file", func() {
			mustRename(t, dir, "keep.md", "kept.md")
			want["kept.md"] = want["keep.md"]
			delete(want, "keep.md")
		}},
		{"create a directory with files", func() {
			writeFile(t, dir, "newdir/one.txt", "one\n")
			writeFile(t, dir, "newdir/deep/two.txt", "two\n")
			want["newdir/one.txt"] = "one\n"
			want["newdir/deep/two.txt"] = "two\n"
		}},
		{"rename a directory", func() {
			mustRename(t, dir, "newdir", "moved")
			for _, p := range []string{"one.txt", "deep/two.txt"} {
				want["moved/"+p] = want["newdir/"+p]
				delete(want, "newdir/"+p)
			}
		}},
		{"write inside the renamed directory", func() {
			writeFile(t, dir, "moved/deep/two.txt", "two\nand more\n")
			writeFile(t, dir, "moved/deep/three.txt", "three\n")
			want["moved/deep/two.txt"] = "two\nand more\n"
			want["moved/deep/three.txt"] = "three\n"
		}},
		{"add a .gitignore that hides a file", func() {
			writeFile(t, dir, ".gitignore", "c.txt\n")
			want[".gitignore"] = "c.txt\n"
			delete(want, "c.txt")
		}},
		{"ignored files do not travel", func() {
			writeFile(t, dir, "c.txt", "changed but ignored\n")
			writeFile(t, dir, "d.txt", "delta\n")
			want["d.txt"] = "delta\n"
		}},
		{"remove a directory", func() {
			mustRemove(t, dir, "moved")
			for p := range want {
				if strings.HasPrefix(p, "moved/") {
					delete(want, p)
				}
			}
		}},
		{"empty file", func() {
			writeFile(t, dir, "empty.txt", "")
			want["empty.txt"] = ""
		}},
	}
	for i, step := range steps {
		before := len(g.log())
		step.change()
		waitSynced(t, g, "proj", want, r)
		log := g.log()
		if len(log) == before {
			t.Fatalf("step %q: nothing was sent", step.name)
		}
		for _, e := range log[before:] {
			if !strings.HasPrefix(e, "diff@") {
				t.Fatalf("step %d %q: sent %v, want only diffs with a base_version (all: %v)", i, step.name, log[before:], log)
			}
		}
	}
	if n := count(g.log(), "snapshot"); n != 1 {
		t.Errorf("%d snapshots, want 1: %v", n, g.log())
	}

	// Every request carried the key.
	g.mu.Lock()
	for _, a := range g.authSeen {
		if a != "Bearer "+g.key {
			t.Errorf("Authorization %q", a)
		}
	}
	g.mu.Unlock()

	lines := r.log.all()
	if !slices.ContainsFunc(lines, regexp.MustCompile(`^synced proj v1: snapshot of 3 files \(\d+(\.\d)? (B|KB)`).MatchString) {
		t.Errorf("no snapshot line in the log: %q", lines)
	}
	if !slices.ContainsFunc(lines, regexp.MustCompile(`^synced proj v2: 1 file changed \(\+1 -0 lines, \d+ B\)$`).MatchString) {
		t.Errorf("no line for the first diff in the log: %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, g.key) {
			t.Errorf("the key is in the log: %q", l)
		}
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}

func TestRunGatewayDown(t *testing.T) {
	// A port with nothing listening yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	dir := t.TempDir()
	want := contextbuf.Files{"a.txt": "a\n", "b/b.txt": "b\n"}
	for p, c := range want {
		writeFile(t, dir, p, c)
	}
	r := startRun(t, Options{Dir: dir, Proxy: "http://" + addr, ID: "down"})
	eventually(t, "a retry", func() bool { return r.log.count("gateway unreachable (") > 0 })
	if l := r.log.all(); !slices.ContainsFunc(l, regexp.MustCompile(`^gateway unreachable \(.*refused.*\), retrying in \d+(\.\d+)?m?s$`).MatchString) {
		t.Errorf("retry line: %q", l)
	}

	// Changes while the gateway is down.
	writeFile(t, dir, "a.txt", "a changed\n")
	writeFile(t, dir, "c/c.txt", "c\n")
	mustRemove(t, dir, "b")
	want = contextbuf.Files{"a.txt": "a changed\n", "c/c.txt": "c\n"}
	r.waitScanned(want)

	g := newFakeGateway(t)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := httptest.NewUnstartedServer(g)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	waitSynced(t, g, "down", want, r)
	if log := g.log(); !slices.Equal(log, []string{"snapshot"}) {
		t.Errorf("requests %v, want one snapshot", log)
	}

	// A 503 phase: nothing is accepted, then everything is.
	g.setFail(http.StatusServiceUnavailable)
	writeFile(t, dir, "c/c.txt", "c v2\n")
	writeFile(t, dir, "d.txt", "d\n")
	want["c/c.txt"], want["d.txt"] = "c v2\n", "d\n"
	eventually(t, "a 503 retry", func() bool {
		return r.log.count("gateway unavailable (503 Service Unavailable: failing on purpose)") > 1
	})
	writeFile(t, dir, "e.txt", "e\n")
	want["e.txt"] = "e\n"
	r.waitScanned(want)
	eventually(t, "more retries", func() bool { return r.log.count("gateway unavailable (503") > 3 })
	g.setFail(0)
	waitSynced(t, g, "down", want, r)
	log := g.log()
	if !slices.Equal(log, []string{"snapshot", "diff@1"}) {
		t.Errorf("after the 503 phase: requests %v, want a diff against v1", log)
	}
}

func TestRunRecoversFromConflicts(t *testing.T) {
	g := newFakeGateway(t)
	srv := httptest.NewServer(g)
	defer srv.Close()
	dir := t.TempDir()
	want := contextbuf.Files{"a.txt": "one\ntwo\nthree\n", "b.txt": "b\n"}
	for p, c := range want {
		writeFile(t, dir, p, c)
	}
	r := startRun(t, Options{Dir: dir, Proxy: srv.URL, ID: "conflict"})
	waitSynced(t, g, "conflict", want, r)

	// Someone else changes the context: its version moves on.
	g.edit("conflict", true, func(f contextbuf.Files) { f["other.txt"] = "not ours\n" })
	writeFile(t, dir, "b.txt", "b2\n")
	want["b.txt"] = "b2\n"
	waitSynced(t, g, "conflict", want, r)
	if log := g.log(); !slices.Equal(log, []string{"snapshot", "rejected:" + CodeVersionConflict, "snapshot@2"}) {
		t.Errorf("requests %v", log)
	}
	if r.log.count("conflict changed on the gateway (now v2, expected v1); sending a full snapshot") != 1 {
		t.Errorf("log: %q", r.log.all())
	}

	// The same version with other content: the diff does not apply.
	g.edit("conflict", false, func(f contextbuf.Files) { f["a.txt"] = "uno\ndos\ntres\n" })
	writeFile(t, dir, "a.txt", "one\n2\nthree\n")
	want["a.txt"] = "one\n2\nthree\n"
	waitSynced(t, g, "conflict", want, r)
	log := g.log()
	if tail := log[3:]; !slices.Equal(tail, []string{"rejected:" + CodeNotApplicable, "snapshot@3"}) {
		t.Errorf("requests %v", log)
	}
	if r.log.count("the gateway could not apply the diff") != 1 {
		t.Errorf("log: %q", r.log.all())
	}

	// The gateway forgets the context (restarted without storage).
	g.forget("conflict")
	writeFile(t, dir, "c.txt", "c\n")
	want["c.txt"] = "c\n"
	waitSynced(t, g, "conflict", want, r)
	log = g.log()
	if tail := log[5:]; !slices.Equal(tail, []string{"rejected:" + CodeNotFound, "snapshot"}) {
		t.Errorf("requests %v", log)
	}
	// And the watcher goes on with diffs.
	writeFile(t, dir, "c.txt", "c2\n")
	want["c.txt"] = "c2\n"
	waitSynced(t, g, "conflict", want, r)
	if log := g.log(); log[len(log)-1] != "diff@1" {
		t.Errorf("requests %v", log)
	}
}

func TestRunConflictWithoutCurrentVersion(t *testing.T) {
	g := newFakeGateway(t)
	g.omitCurrent = true
	srv := httptest.NewServer(g)
	defer srv.Close()
	dir := t.TempDir()
	want := contextbuf.Files{"a.txt": "a\n"}
	writeFile(t, dir, "a.txt", "a\n")
	r := startRun(t, Options{Dir: dir, Proxy: srv.URL, ID: "nc"})
	waitSynced(t, g, "nc", want, r)
	g.edit("nc", true, func(f contextbuf.Files) { f["x.txt"] = "x\n" })
	g.edit("nc", true, func(f contextbuf.Files) {})
	writeFile(t, dir, "b.txt", "b\n")
	want["b.txt"] = "b\n"
	waitSynced(t, g, "nc", want, r)
	// The base of the recovering snapshot came from the stats endpoint.
	if log := g.log(); !slices.Equal(log, []string{"snapshot", "rejected:" + CodeVersionConflict, "snapshot@3"}) {
		t.Errorf("requests %v", log)
	}
}

func TestRunFallsBackToSnapshotsWhenDiffsAreRefused(t *testing.T) {
	g := newFakeGateway(t)
	g.rejectDiffs = true
	srv := httptest.NewServer(g)
	defer srv.Close()
	dir := t.TempDir()
	want := contextbuf.Files{"a.txt": "a\n"}
	writeFile(t, dir, "a.txt", "a\n")
	r := startRun(t, Options{Dir: dir, Proxy: srv.URL, ID: "bad"})
	waitSynced(t, g, "bad", want, r)
	writeFile(t, dir, "a.txt", "a2\n")
	want["a.txt"] = "a2\n"
	waitSynced(t, g, "bad", want, r)
	if log := g.log(); !slices.Equal(log, []string{"snapshot", "rejected:parse", "snapshot@1"}) {
		t.Errorf("requests %v", log)
	}
	if r.log.count("the gateway refused the diff (400 Bad Request (invalid_diff): line 1: not a diff); sending a full snapshot") != 1 {
		t.Errorf("log %q", r.log.all())
	}
}

func TestRunExistingContextIsReplaced(t *testing.T) {
	g := newFakeGateway(t)
	srv := httptest.NewServer(g)
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", "a\n")
	r1 := startRun(t, Options{Dir: dir, Proxy: srv.URL, ID: "x"})
	waitSynced(t, g, "x", contextbuf.Files{"a.txt": "a\n"}, r1)
	if err := r1.stop(); err != nil {
		t.Fatal(err)
	}

	// A second watcher, of another directory under the same id, replaces
	// the context with its snapshot, also when the gateway insists on a
	// base_version for an existing context.
	g.mu.Lock()
	g.requireBase = true
	g.mu.Unlock()
	dir2 := t.TempDir()
	writeFile(t, dir2, "z.txt", "z\n")
	r2 := startRun(t, Options{Dir: dir2, Proxy: srv.URL, ID: "x"})
	waitSynced(t, g, "x", contextbuf.Files{"z.txt": "z\n"}, r2)
	if log := g.log(); !slices.Equal(log, []string{"snapshot", "rejected:" + CodeVersionConflict, "snapshot@1"}) {
		t.Errorf("requests %v", log)
	}
	if r2.log.count("x already exists on the gateway; replacing it") != 1 {
		t.Errorf("log: %q", r2.log.all())
	}
}

func TestRunStopsOnUnauthorized(t *testing.T) {
	g := newFakeGateway(t)
	g.key = "the-right-key"
	srv := httptest.NewServer(g)
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", "a\n")

	for _, key := range []string{"wrong-key-4567", ""} {
		r := startRun(t, Options{Dir: dir, Proxy: srv.URL, Key: key})
		var err error
		select {
		case err = <-r.done:
			r.done <- err
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not stop on a 401")
		}
		if err == nil {
			t.Fatal("Run returned nil on a 401")
		}
		msg := err.Error()
		if !strings.Contains(msg, "401") {
			t.Errorf("error %q does not name the status", msg)
		}
		if key != "" {
			if !strings.Contains(msg, "refused the key") {
				t.Errorf("error %q does not say the key was refused", msg)
			}
			if strings.Contains(msg, key) {
				t.Errorf("the key is in the error: %q", msg)
			}
			for _, l := range r.log.all() {
				if strings.Contains(l, key) {
					t.Errorf("the key is in the log: %q", l)
				}
			}
		} else if !strings.Contains(msg, "requires a key and none was given") {
			t.Errorf("error %q does not say a key is needed", msg)
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Errorf("error %v does not wrap the 401 APIError", err)
		}
	}
}

func TestRunStopsOnTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		w.Write([]byte(`{"error":{"message":"context over 8 MB","type":"invalid_request_error","code":"context_too_large"}}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", "a\n")
	err := Run(context.Background(), Options{Dir: dir, Proxy: srv.URL, Logf: func(string, ...any) {}})
	if err == nil || !strings.Contains(err.Error(), "too large") || !strings.Contains(err.Error(), "context over 8 MB") {
		t.Errorf("Run = %v, want a too-large error", err)
	}
}

func TestRunOptions(t *testing.T) {
	dir := t.TempDir()
	bad := []Options{
		{Proxy: "http://localhost:1"},
		{Dir: dir},
		{Dir: dir, Proxy: "localhost:8080"},
		{Dir: dir, Proxy: "ftp://x"},
		{Dir: dir, Proxy: "http://localhost:1", ID: "has space"},
		{Dir: filepath.Join(dir, "missing"), Proxy: "http://localhost:1"},
	}
	for _, o := range bad {
		o.Logf = func(string, ...any) {}
		if err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) = nil, want an error", o)
		}
	}
	for name, want := range map[string]string{
		"proj":        "proj",
		"my project!": "my-project",
		"a.b_c-d":     "a.b_c-d",
		"日本":          "",
		"..":          "",
	} {
		if got := idFromName(name); got != want {
			t.Errorf("idFromName(%q) = %q, want %q", name, got, want)
		}
	}
}
