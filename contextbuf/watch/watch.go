package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/llmgate/caddy-llmgate/contextbuf"
)

// Defaults of [Options].
const (
	DefaultDebounce = 300 * time.Millisecond
	DefaultRetryMin = 250 * time.Millisecond
	DefaultRetryMax = 30 * time.Second
)

// Options configures [Run].
type Options struct {
	// Dir is the directory to watch (required).
	Dir string
	// Proxy is the gateway's base URL, e.g. https://gateway.example.com
	// or http://localhost:8080 (required).
	Proxy string
	// ID names the context in the gateway (A-Z a-z 0-9 . _ -, at most
	// contextbuf.MaxIDLen characters); default: the base name of the
	// absolute Dir, other characters replaced by "-".
	ID string
	// Key, when not empty, is sent as a bearer token. It is never logged
	// and never part of a returned error.
	Key string
	// Ignore holds extra gitignore-style patterns, anchored at Dir and
	// taking precedence over the .gitignore files (see [Ignorer]).
	Ignore []string
	// Debounce is how long the tree must stay quiet after a change before
	// it is rescanned and sent; default DefaultDebounce. A tree that never
	// stays quiet is still rescanned every 10 × Debounce.
	Debounce time.Duration
	// MaxFileSize is the size above which a file is left out (with one
	// warning); default DefaultMaxFileSize.
	MaxFileSize int64
	// HTTPClient sends the requests; nil means a client with a 2 minute
	// timeout.
	HTTPClient *http.Client
	// Logf receives one human-readable line per event worth telling (a
	// sync, a retry, a skipped file), without a trailing newline; nil
	// writes them to standard error. Calls never overlap.
	Logf func(format string, args ...any)
	// RetryMin and RetryMax bound the exponential backoff between attempts
	// while the gateway is unreachable or busy (with jitter); defaults
	// DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration

	// scanned, in tests, sees each scanned state handed to the sender.
	scanned func(contextbuf.Files)
}

// config is Options checked and completed.
type config struct {
	Options
	root     string // absolute Dir
	proxyURL string // Proxy without user info, for messages
}

func (o Options) check() (*config, error) {
	if o.Dir == "" {
		return nil, errors.New("no directory to watch")
	}
	root, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	info, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", root)
	}
	if o.ID == "" {
		o.ID = idFromName(filepath.Base(root))
		if o.ID == "" {
			return nil, fmt.Errorf("cannot name the context after %s: give an id", root)
		}
	} else if err := contextbuf.CheckID(o.ID); err != nil {
		return nil, err
	}
	if o.Proxy == "" {
		return nil, errors.New("no gateway URL (proxy) given")
	}
	u, err := url.Parse(o.Proxy)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the gateway URL must be like https://gateway.example.com or http://localhost:8080, not %q", redactURL(o.Proxy))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("the gateway URL must not have a query or a fragment")
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	user := o.Logf
	if user == nil {
		user = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	key := o.Key
	var mu sync.Mutex
	o.Logf = func(format string, args ...any) {
		msg := redact(fmt.Sprintf(format, args...), key)
		mu.Lock()
		defer mu.Unlock()
		user("%s", msg)
	}
	return &config{Options: o, root: root, proxyURL: redactURL(o.Proxy)}, nil
}

func idChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-'
}

// idFromName turns a directory name into a valid context id: other
// characters become "-", runs of them one "-"; "" when nothing is left.
func idFromName(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range name {
		if idChar(r) {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	id := strings.Trim(b.String(), "-")
	if len(id) > contextbuf.MaxIDLen {
		id = id[:contextbuf.MaxIDLen]
	}
	if id == "." || id == ".." || strings.Trim(id, ".") == "" {
		return ""
	}
	return id
}

// redactURL hides a password in a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// Run watches o.Dir and keeps the gateway's copy of its text files up to
// date until ctx ends: a full snapshot first (retried while the gateway
// is unreachable), then a unified diff after each burst of changes,
// against the last state the gateway accepted. It returns nil when ctx
// ends, and an error when it cannot go on: bad options, the directory
// cannot be read or watched, or the gateway refuses in a way retrying
// cannot fix (401/403: the key; 413: the context is too large; other
// 4xx). Changes not yet sent when ctx ends are not sent.
func Run(ctx context.Context, o Options) error {
	cfg, err := o.check()
	if err != nil {
		return err
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", cfg.root, err)
	}
	defer fw.Close()
	sc, err := NewScanner(cfg.root, NewIgnorer(cfg.Ignore...), cfg.MaxFileSize, cfg.Logf)
	if err != nil {
		return err
	}
	w := &watcher{cfg: cfg, fw: fw, sc: sc, added: map[string]os.FileInfo{}, warned: map[string]bool{}}
	files, err := w.scanAndWatch()
	if err != nil {
		return err
	}
	cfg.Logf("watching %s as %q on %s: %s, %s", cfg.root, cfg.ID, cfg.proxyURL, plural(len(files), "file"), formatBytes(totalBytes(files)))

	s := newSender(cfg)
	s.publish(files)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.run(sctx) }()
	stop := func(err error) error {
		cancel()
		if serr := <-done; err == nil {
			err = serr
		}
		return err
	}

	maxWait := 10 * cfg.Debounce
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var first time.Time // first event of the pending burst; zero when none
	arm := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		d := cfg.Debounce
		if left := maxWait - now.Sub(first); left < d {
			d = max(left, 0)
		}
		timer.Reset(d)
	}
	for {
		select {
		case <-ctx.Done():
			return stop(nil)
		case err := <-done:
			cancel()
			return err
		case ev, ok := <-fw.Events:
			if !ok {
				return stop(errors.New("the file system watcher stopped"))
			}
			if w.relevant(ev) {
				arm()
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return stop(errors.New("the file system watcher stopped"))
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				cfg.Logf("too many changes at once for the file system watcher; rescanning")
			} else {
				cfg.Logf("file system watcher: %v; rescanning", err)
			}
			arm()
		case <-timer.C:
			first = time.Time{}
			files, err := w.scanAndWatch()
			if err != nil {
				return stop(fmt.Errorf("scanning %s: %w", cfg.root, err))
			}
			s.publish(files)
			if cfg.scanned != nil {
				cfg.scanned(files)
			}
		}
	}
}

func totalBytes(f contextbuf.Files) int64 {
	var n int64
	for _, c := range f {
		n += int64(len(c))
	}
	return n
}

// watcher keeps the fsnotify watches in step with the scanned tree.
type watcher struct {
	cfg    *config
	fw     *fsnotify.Watcher
	sc     *Scanner
	added  map[string]os.FileInfo // watched directory (absolute) -> what it was when added
	warned map[string]bool        // directories that could not be watched, warned about
}

// scanAndWatch scans the tree and watches its directories. When new
// directories had to be watched, it scans again: files written into them
// before their watch existed are then seen.
func (w *watcher) scanAndWatch() (contextbuf.Files, error) {
	for i := 0; ; i++ {
		files, err := w.sc.Scan()
		if err != nil {
			return nil, err
		}
		added, err := w.reconcile()
		if err != nil {
			return nil, err
		}
		if added == 0 || i == 4 {
			return files, nil
		}
	}
}

// reconcile adds watches for the directories of the last scan that have
// none (or whose watch is for a directory since replaced) and removes the
// others. It returns how many watches it added.
func (w *watcher) reconcile() (int, error) {
	want := map[string]os.FileInfo{}
	for rel, info := range w.sc.dirs {
		want[w.abs(rel)] = info
	}
	have := map[string]bool{}
	for _, p := range w.fw.WatchList() {
		p = filepath.Clean(p)
		have[p] = true
		if _, ok := want[p]; !ok {
			_ = w.fw.Remove(p) // may be gone already
			delete(w.added, p)
		}
	}
	for p := range w.added {
		if !have[p] {
			delete(w.added, p) // fsnotify dropped it (directory moved or deleted)
		}
	}
	added := 0
	for p, info := range want {
		if prev, ok := w.added[p]; ok && have[p] && os.SameFile(prev, info) {
			continue
		}
		if err := w.fw.Add(p); err != nil {
			if p == w.cfg.root {
				return 0, fmt.Errorf("watching %s: %w", p, err)
			}
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if !w.warned[p] {
				w.warned[p] = true
				w.cfg.Logf("cannot watch %s (%v): changes there are seen only with other changes", p, err)
			}
			continue
		}
		delete(w.warned, p)
		w.added[p] = info
		added++
	}
	return added, nil
}

func (w *watcher) abs(rel string) string {
	if rel == "" {
		return w.cfg.root
	}
	return filepath.Join(w.cfg.root, filepath.FromSlash(rel))
}

// relevant reports whether an event may change what is sent: not a mere
// change of permissions or times, not inside an ignored path.
func (w *watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	rel, err := filepath.Rel(w.cfg.root, ev.Name)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return true
	}
	rel = filepath.ToSlash(rel)
	if rel == "." || path.Base(rel) == ".gitignore" {
		return true
	}
	ig := w.sc.Ignorer()
	return !(ig.Ignored(rel, false) && ig.Ignored(rel, true))
}
