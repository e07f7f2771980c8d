package watch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/llmgate/caddy-llmgate/contextbuf"
)

// DefaultMaxFileSize is the size above which a file is left out when no
// other limit is given: 1 MiB.
const DefaultMaxFileSize int64 = 1 << 20

// binarySniffLen is how much of a file is searched for a NUL byte.
const binarySniffLen = 8000

// racyWindow: a file whose modification time is this close to (or after)
// the moment it was read may change again without its size or time
// changing (coarse file system clocks), so it is read again next time.
const racyWindow = 2 * time.Second

// Scanner reads the text files of a directory tree into
// [contextbuf.Files]. It remembers each file's size, modification time and
// identity, so a rescan reads only the files that changed. A Scanner is
// not safe for concurrent use.
type Scanner struct {
	root    string   // absolute directory
	base    *Ignorer // the extra patterns; .gitignore files are added per scan
	maxSize int64
	logf    func(format string, args ...any)

	cache  map[string]cacheEntry  // by relative path
	warned map[string]string      // relative path -> reason already warned about
	dirs   map[string]os.FileInfo // directories of the last scan ("" = root)
	ig     *Ignorer               // effective rules of the last scan
	now    func() time.Time
}

// cacheEntry is what a scan remembers of one regular file.
type cacheEntry struct {
	info    os.FileInfo
	readAt  time.Time
	content string
	text    bool // false: binary or not UTF-8, left out
}

// NewScanner returns a Scanner of the tree at dir. ig holds extra ignore
// patterns (nil for none; the Scanner does not modify it); maxSize is the
// largest file kept, DefaultMaxFileSize when <= 0. logf, if not nil,
// receives one warning per file left out for its size or because it
// cannot be read (again only after the situation changed).
func NewScanner(dir string, ig *Ignorer, maxSize int64, logf func(format string, args ...any)) (*Scanner, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxFileSize
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Scanner{
		root:    abs,
		base:    ig.Clone(),
		maxSize: maxSize,
		logf:    logf,
		cache:   map[string]cacheEntry{},
		warned:  map[string]string{},
		now:     time.Now,
	}, nil
}

// Scan reads the tree of dir once: every regular text file up to maxSize
// bytes (DefaultMaxFileSize when <= 0) that the .gitignore files of the
// tree and ig (may be nil) do not ignore, by slash-separated path relative
// to dir. Binary files (a NUL byte in the first 8000 bytes, or not valid
// UTF-8), symbolic links, special files and anything under .git are left
// out.
func Scan(dir string, ig *Ignorer, maxSize int64) (contextbuf.Files, error) {
	s, err := NewScanner(dir, ig, maxSize, nil)
	if err != nil {
		return nil, err
	}
	return s.Scan()
}

// Root returns the absolute path of the scanned directory.
func (s *Scanner) Root() string { return s.root }

// Dirs returns the directories (slash-separated, relative; "" is the root)
// that the last scan entered, sorted.
func (s *Scanner) Dirs() []string {
	out := make([]string, 0, len(s.dirs))
	for d := range s.dirs {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// Ignorer returns the rules the last scan applied: the extra patterns and
// every .gitignore it read. Do not modify it.
func (s *Scanner) Ignorer() *Ignorer {
	if s.ig == nil {
		return s.base
	}
	return s.ig
}

// Scan reads the tree again and returns its files. Only files whose size,
// modification time or identity changed since the previous scan (or whose
// previous read was too close to their modification) are read. The
// returned map is new; the caller may keep it. An error means the root
// itself could not be read; other problems leave files out with a
// warning.
func (s *Scanner) Scan() (contextbuf.Files, error) {
	st := &scanState{
		s:      s,
		start:  s.now(),
		files:  contextbuf.Files{},
		cache:  make(map[string]cacheEntry, len(s.cache)),
		warned: map[string]string{},
		dirs:   map[string]os.FileInfo{},
		ig:     s.base.Clone(),
	}
	info, err := os.Stat(s.root)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", s.root)
	}
	st.dirs[""] = info
	if err := st.walk(s.root, ""); err != nil {
		return nil, err
	}
	s.cache, s.warned, s.dirs, s.ig = st.cache, st.warned, st.dirs, st.ig
	return st.files, nil
}

// scanState is one scan in progress.
type scanState struct {
	s      *Scanner
	start  time.Time
	files  contextbuf.Files
	cache  map[string]cacheEntry
	warned map[string]string
	dirs   map[string]os.FileInfo
	ig     *Ignorer
}

// warn logs a warning about rel once, until the reason changes or goes
// away.
func (st *scanState) warn(rel, reason, format string, args ...any) {
	st.warned[rel] = reason
	if st.s.warned[rel] != reason {
		st.s.logf(format, args...)
	}
}

func (st *scanState) walk(abs, rel string) error {
	entries, err := os.ReadDir(abs)
	if err != nil {
		if rel == "" {
			return err
		}
		if !errors.Is(err, fs.ErrNotExist) {
			st.warn(rel, "unreadable", "skipping directory %s: %v", rel, err)
		}
		return nil
	}
	// The directory's own .gitignore applies to everything in it.
	for _, e := range entries {
		if e.Name() == ".gitignore" && e.Type().IsRegular() {
			if b, err := readLimited(filepath.Join(abs, ".gitignore"), st.s.maxSize); err == nil {
				st.ig.AddGitignore(rel, string(b))
			}
			break
		}
	}
	for _, e := range entries {
		name := e.Name()
		childRel := name
		if rel != "" {
			childRel = rel + "/" + name
		}
		childAbs := filepath.Join(abs, name)
		t := e.Type()
		switch {
		case t&fs.ModeSymlink != 0:
			continue // never followed, never sent
		case e.IsDir():
			if st.ig.Match(childRel, true) {
				continue
			}
			if !nameOK(name) {
				st.warn(childRel, "name", "skipping directory %q: its name is not printable UTF-8", childRel)
				continue
			}
			if len(childRel) >= contextbuf.MaxPathLen {
				st.warn(childRel, "long", "skipping directory %s: its path is too long for the gateway", childRel)
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // gone meanwhile
			}
			st.dirs[childRel] = info
			if err := st.walk(childAbs, childRel); err != nil {
				return err
			}
		case t.IsRegular():
			if st.ig.Match(childRel, false) {
				continue
			}
			if !nameOK(name) {
				st.warn(childRel, "name", "skipping %q: its name is not printable UTF-8", childRel)
				continue
			}
			if len(childRel) > contextbuf.MaxPathLen {
				st.warn(childRel, "long", "skipping %s: its path is longer than the gateway's limit of %d bytes", childRel, contextbuf.MaxPathLen)
				continue
			}
			st.file(childAbs, childRel, e)
		}
		// Sockets, pipes and devices are left out.
	}
	return nil
}

// file handles one regular file.
func (st *scanState) file(abs, rel string, e fs.DirEntry) {
	info, err := e.Info()
	if err != nil {
		return // gone meanwhile
	}
	if info.Size() > st.s.maxSize {
		st.warn(rel, "size", "skipping %s: %s is over the %s limit", rel, formatBytes(info.Size()), formatBytes(st.s.maxSize))
		return
	}
	if prev, ok := st.s.cache[rel]; ok && prev.info.Size() == info.Size() &&
		prev.info.ModTime().Equal(info.ModTime()) && os.SameFile(prev.info, info) &&
		prev.info.ModTime().Before(prev.readAt.Add(-racyWindow)) {
		st.keep(rel, prev)
		return
	}
	b, err := readLimited(abs, st.s.maxSize)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			st.warn(rel, "size", "skipping %s: it is over the %s limit", rel, formatBytes(st.s.maxSize))
		} else if !errors.Is(err, fs.ErrNotExist) {
			st.warn(rel, "unreadable", "skipping %s: %v", rel, err)
		}
		return
	}
	ce := cacheEntry{info: info, readAt: st.start, text: isText(b)}
	if ce.text {
		ce.content = string(b)
	}
	st.keep(rel, ce)
}

func (st *scanState) keep(rel string, ce cacheEntry) {
	st.cache[rel] = ce
	if ce.text {
		st.files[rel] = ce.content
	}
}

var errTooLarge = errors.New("file too large")

// readLimited reads a regular file of at most max bytes.
func readLimited(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errTooLarge
	}
	return b, nil
}

// isText reports whether b looks like text: no NUL byte in the first 8000
// bytes, and valid UTF-8.
func isText(b []byte) bool {
	head := b
	if len(head) > binarySniffLen {
		head = head[:binarySniffLen]
	}
	return bytes.IndexByte(head, 0) < 0 && utf8.Valid(b)
}

// nameOK reports whether a file name can travel in a diff header and in
// JSON unchanged: valid UTF-8 without control characters.
func nameOK(name string) bool {
	if !utf8.ValidString(name) {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
