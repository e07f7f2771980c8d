package contextbuf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Defaults for Options.
const (
	DefaultMaxBytes   = 32 << 20
	DefaultSessionTTL = 24 * time.Hour
	DefaultLogKeep    = 256
)

// Options configure a Buffer. Zero (or negative) values take the defaults.
type Options struct {
	// MaxBytes is the largest total size of one context's files
	// (sum of the contents' lengths). Default DefaultMaxBytes (32 MiB).
	MaxBytes int64
	// SessionTTL is how long a session's injection state is kept after its
	// last use. Default DefaultSessionTTL (24h).
	SessionTTL time.Duration
	// LogKeep is how many versions of the change log are kept per context.
	// Default DefaultLogKeep (256).
	LogKeep int
}

// Stats describe one context.
type Stats struct {
	ID string `json:"id"`
	// Version increases with every change (0: never written).
	Version uint64 `json:"version"`
	Files   int    `json:"files"`
	// Bytes is the total size of the files' contents.
	Bytes int64 `json:"bytes"`
	// Tokens is (bytes+3)/4 of the rendered full snapshot block (0 at
	// version 0).
	Tokens int `json:"estimated_tokens"`
	// Updated is when the context was last written (ApplyDelta or
	// PutSnapshot accepted, even when it changed nothing).
	Updated time.Time `json:"updated_at"`
	// Deltas counts the diffs applied (including those that changed
	// nothing).
	Deltas uint64 `json:"deltas_applied"`
	// Snapshots counts the full snapshots stored (including those equal
	// to the current content).
	Snapshots uint64 `json:"snapshots"`
}

// ErrTooLarge is returned (wrapped, with the sizes) when a change would
// make a context exceed Options.MaxBytes, or when it does not fit in one
// storage transaction (then badger.ErrTxnTooBig is wrapped too). Nothing
// changes.
var ErrTooLarge = errors.New("context too large")

// ErrNoContext is returned (wrapped, with the id) by Inject on a context
// that does not exist or has version 0, and by Delete on a context that
// does not exist.
var ErrNoContext = errors.New("no such context")

// ConflictError is returned when a change names the version it was made
// against (base) and the context is at another one. Nothing changes.
type ConflictError struct {
	ID      string
	Current uint64 // the context's version
	Base    uint64 // the version the change was made against
	what    string // "delta" or "snapshot"
}

// Error implements error: "context X is at version 7, the delta was made
// against version 5".
func (e *ConflictError) Error() string {
	what := e.what
	if what == "" {
		what = "delta"
	}
	return fmt.Sprintf("context %s is at version %d, the %s was made against version %d", e.ID, e.Current, what, e.Base)
}

// Buffer keeps named contexts in a Badger database. It is safe for
// concurrent use, and several Buffers may share one database (changes
// are then serialized by Badger's transaction conflict detection).
type Buffer struct {
	db *badger.DB
	o  Options

	idLocks   [64]sync.Mutex  // writers of one context
	sessLocks [256]sync.Mutex // Injects of one session

	now func() time.Time
}

// New returns a Buffer storing its data in db under the key prefix "ctx/".
func New(db *badger.DB, o Options) *Buffer {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.LogKeep <= 0 {
		o.LogKeep = DefaultLogKeep
	}
	return &Buffer{db: db, o: o, now: time.Now}
}

// Options returns the options in effect (defaults filled in).
func (b *Buffer) Options() Options { return b.o }

// ---------------------------------------------------------------------
// Keys

func keyPrefix(id string) []byte     { return []byte("ctx/" + id + "/") }
func keyMeta(id string) []byte       { return []byte("ctx/" + id + "/meta") }
func keyFilePrefix(id string) []byte { return []byte("ctx/" + id + "/f/") }
func keyFile(id, p string) []byte    { return []byte("ctx/" + id + "/f/" + p) }
func keyLog(id string, v uint64) []byte {
	return fmt.Appendf(nil, "ctx/%s/log/%020d", id, v)
}
func keySession(id, session string) []byte {
	h := sha256.Sum256([]byte(session))
	return []byte("ctx/" + id + "/s/" + hex.EncodeToString(h[:]))
}

func fnv(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (b *Buffer) lockID(id string) func() {
	m := &b.idLocks[fnv(id)%uint32(len(b.idLocks))]
	m.Lock()
	return m.Unlock
}

func (b *Buffer) lockSession(id, session string) func() {
	m := &b.sessLocks[fnv(id+"\x00"+session)%uint32(len(b.sessLocks))]
	m.Lock()
	return m.Unlock
}

// ---------------------------------------------------------------------
// Meta

// meta is the stored form of a context's description.
type meta struct {
	Stats
	// LogFirst is the oldest version whose log entry is kept (0: none).
	LogFirst uint64 `json:"log_first"`
	// FileBytes is the total size of the rendered <file> elements.
	FileBytes int64 `json:"rendered_file_bytes"`
}

func readMeta(txn *badger.Txn, id string) (meta, bool, error) {
	m := meta{Stats: Stats{ID: id}}
	item, err := txn.Get(keyMeta(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &m) })
	if err != nil {
		return m, false, fmt.Errorf("context %s: reading its description: %w", id, err)
	}
	m.ID = id
	return m, true, nil
}

// snapshotSize is the length of the rendered snapshot block.
func (m *meta) snapshotSize() int64 {
	return int64(len(snapshotHeader(m.ID, m.Version, m.Files))+len(snapshotFooter)) + m.FileBytes
}

func (m *meta) setTokens() {
	if m.Version == 0 {
		m.Tokens = 0
		return
	}
	m.Tokens = tokens(m.snapshotSize())
}

func tokens(n int64) int { return int((n + 3) / 4) }

// ---------------------------------------------------------------------
// Files

func getFile(txn *badger.Txn, id, p string) (string, bool, error) {
	item, err := txn.Get(keyFile(id, p))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	var raw []byte
	err = item.Value(func(v []byte) error {
		var err error
		raw, err = decodeValue(v)
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("context %s: reading %s: %w", id, p, err)
	}
	return string(raw), true, nil
}

// eachFile calls fn for every file of the context, in path order.
func eachFile(txn *badger.Txn, id string, fn func(p, content string) error) error {
	prefix := keyFilePrefix(id)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		p := string(item.Key()[len(prefix):])
		var raw []byte
		err := item.Value(func(v []byte) error {
			var err error
			raw, err = decodeValue(v)
			return err
		})
		if err != nil {
			return fmt.Errorf("context %s: reading %s: %w", id, p, err)
		}
		if err := fn(p, string(raw)); err != nil {
			return err
		}
	}
	return nil
}

func readFiles(txn *badger.Txn, id string) (Files, error) {
	files := Files{}
	err := eachFile(txn, id, func(p, c string) error {
		files[p] = c
		return nil
	})
	return files, err
}

// ---------------------------------------------------------------------
// Writing

// errLeftovers: the context has no description but keys under its prefix
// (a Delete interrupted by a crash); they are removed before writing.
var errLeftovers = errors.New("leftover keys")

const maxRetries = 20

// write runs change on the context's description in one transaction,
// after the base version check, then stores the description. It retries
// on transaction conflicts.
func (b *Buffer) write(id string, base *uint64, what string, change func(txn *badger.Txn, m *meta) error) (Stats, error) {
	if b.db == nil {
		return Stats{}, errors.New("contextbuf: no database")
	}
	defer b.lockID(id)()
	for attempt := 0; ; attempt++ {
		var st Stats
		err := b.db.Update(func(txn *badger.Txn) error {
			m, exists, err := readMeta(txn, id)
			if err != nil {
				return err
			}
			if !exists {
				if found, err := hasKeys(txn, keyPrefix(id)); err != nil {
					return err
				} else if found {
					return errLeftovers
				}
			}
			if base != nil && *base != m.Version {
				return &ConflictError{ID: id, Current: m.Version, Base: *base, what: what}
			}
			if err := change(txn, &m); err != nil {
				return err
			}
			m.Updated = b.now().UTC().Round(0)
			m.setTokens()
			v, err := json.Marshal(&m)
			if err != nil {
				return err
			}
			if err := txn.Set(keyMeta(id), v); err != nil {
				return err
			}
			st = m.Stats
			return nil
		})
		switch {
		case err == nil:
			return st, nil
		case errors.Is(err, badger.ErrConflict) && attempt < maxRetries:
			continue
		case errors.Is(err, errLeftovers) && attempt < maxRetries:
			if err := b.purge(id); err != nil {
				return Stats{}, err
			}
			continue
		case errors.Is(err, badger.ErrTxnTooBig):
			return Stats{}, fmt.Errorf("%w: context %s: the change does not fit in one storage transaction; send it as smaller deltas: %w", ErrTooLarge, id, err)
		}
		return Stats{}, err
	}
}

func hasKeys(txn *badger.Txn, prefix []byte) (bool, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Seek(prefix)
	return it.ValidForPrefix(prefix), nil
}

// writeLog stores the log entry of m.Version (already incremented) and
// drops the entries beyond LogKeep.
func (b *Buffer) writeLog(txn *badger.Txn, m *meta, diff string) error {
	if err := txn.Set(keyLog(m.ID, m.Version), encodeValue(diff)); err != nil {
		return err
	}
	if m.LogFirst == 0 {
		m.LogFirst = m.Version
	}
	for m.LogFirst+uint64(b.o.LogKeep) <= m.Version {
		if err := txn.Delete(keyLog(m.ID, m.LogFirst)); err != nil {
			return err
		}
		m.LogFirst++
	}
	return nil
}

func (b *Buffer) tooLarge(id string, n int64) error {
	return fmt.Errorf("%w: context %s would hold %d bytes of files, the limit is %d", ErrTooLarge, id, n, b.o.MaxBytes)
}

// ApplyDelta applies a unified diff (see Apply) to the stored context id,
// an empty context when absent.
//
// base, when non-nil, is the version the sender diffed against: when the
// context is at another version the result is a *ConflictError and
// nothing changes. A diff that does not parse is a *ParseError, one that
// does not apply an *ApplyError; a result larger than MaxBytes is
// ErrTooLarge (a change that shrinks an oversized context is accepted).
// The diff, the changed files, the log entry and the new stats are
// written in one transaction. The log keeps the diff normalized (as Diff
// writes it, for the files that changed). A diff that changes nothing
// still counts as applied but keeps the version. Returns the new stats.
func (b *Buffer) ApplyDelta(id, diff string, base *uint64) (Stats, error) {
	if r := checkID(id); r != "" {
		return Stats{}, &InvalidError{Reason: r}
	}
	patches, err := parseDiff(diff)
	if err != nil {
		return Stats{}, err
	}
	names := map[string]bool{}
	for _, fp := range patches {
		if fp.old != "" {
			names[fp.old] = true
		}
		if fp.new != "" {
			names[fp.new] = true
		}
	}
	return b.write(id, base, "delta", func(txn *badger.Txn, m *meta) error {
		partial := Files{}
		for p := range names {
			c, ok, err := getFile(txn, id, p)
			if err != nil {
				return err
			}
			if ok {
				partial[p] = c
			}
		}
		w := newWorkset(partial)
		if err := w.applyAll(patches); err != nil {
			return err
		}
		oldSub, newSub := Files{}, Files{}
		bytesAfter, fileBytes, nfiles := m.Bytes, m.FileBytes, m.Files
		for p, c := range w.over {
			oc, had := partial[p]
			switch {
			case c == nil && !had, c != nil && had && oc == *c:
				continue
			}
			if had {
				oldSub[p] = oc
				bytesAfter -= int64(len(oc))
				fileBytes -= fileElemSize(p, oc)
				nfiles--
			}
			if c != nil {
				newSub[p] = *c
				bytesAfter += int64(len(*c))
				fileBytes += fileElemSize(p, *c)
				nfiles++
			}
		}
		if bytesAfter > b.o.MaxBytes && bytesAfter > m.Bytes {
			return b.tooLarge(id, bytesAfter)
		}
		m.Deltas++
		norm := Diff(oldSub, newSub)
		if norm == "" {
			return nil
		}
		for p := range oldSub {
			if _, ok := newSub[p]; !ok {
				if err := txn.Delete(keyFile(id, p)); err != nil {
					return err
				}
			}
		}
		for p, c := range newSub {
			if err := txn.Set(keyFile(id, p), encodeValue(c)); err != nil {
				return err
			}
		}
		m.Bytes, m.FileBytes, m.Files = bytesAfter, fileBytes, nfiles
		m.Version++
		return b.writeLog(txn, m, norm)
	})
}

// PutSnapshot replaces the context's files by files (same base rule as
// ApplyDelta). Paths must be valid (*InvalidError otherwise); the total
// size must not exceed MaxBytes (ErrTooLarge). The change log gets
// Diff(old, files). A snapshot equal to the current content is counted
// but keeps the version. files is not retained.
func (b *Buffer) PutSnapshot(id string, files Files, base *uint64) (Stats, error) {
	if r := checkID(id); r != "" {
		return Stats{}, &InvalidError{Reason: r}
	}
	var total int64
	paths := make([]string, 0, len(files))
	for p, c := range files {
		if r := checkPath(p); r != "" {
			return Stats{}, &InvalidError{Reason: r}
		}
		total += int64(len(c))
		paths = append(paths, p)
	}
	sort.Strings(paths) // for a deterministic first error and write order
	if total > b.o.MaxBytes {
		return Stats{}, b.tooLarge(id, total)
	}
	return b.write(id, base, "snapshot", func(txn *badger.Txn, m *meta) error {
		old, err := readFiles(txn, id)
		if err != nil {
			return err
		}
		m.Snapshots++
		norm := Diff(old, files)
		if norm == "" {
			return nil
		}
		for p := range old {
			if _, ok := files[p]; !ok {
				if err := txn.Delete(keyFile(id, p)); err != nil {
					return err
				}
			}
		}
		var fileBytes int64
		for _, p := range paths {
			c := files[p]
			fileBytes += fileElemSize(p, c)
			if oc, ok := old[p]; ok && oc == c {
				continue
			}
			if err := txn.Set(keyFile(id, p), encodeValue(c)); err != nil {
				return err
			}
		}
		m.Files, m.Bytes, m.FileBytes = len(files), total, fileBytes
		m.Version++
		return b.writeLog(txn, m, norm)
	})
}

// ---------------------------------------------------------------------
// Reading, listing, deleting

// Stats returns the context's stats and whether it exists.
func (b *Buffer) Stats(id string) (Stats, bool, error) {
	if r := checkID(id); r != "" {
		return Stats{}, false, &InvalidError{Reason: r}
	}
	if b.db == nil {
		return Stats{}, false, errors.New("contextbuf: no database")
	}
	var m meta
	var ok bool
	err := b.db.View(func(txn *badger.Txn) error {
		var err error
		m, ok, err = readMeta(txn, id)
		return err
	})
	if err != nil || !ok {
		return Stats{}, false, err
	}
	return m.Stats, true, nil
}

// List returns the stats of every context, sorted by id.
func (b *Buffer) List() ([]Stats, error) {
	if b.db == nil {
		return nil, errors.New("contextbuf: no database")
	}
	out := []Stats{}
	err := b.db.View(func(txn *badger.Txn) error {
		prefix := []byte("ctx/")
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = prefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); {
			rest := it.Item().Key()[len(prefix):]
			i := bytes.IndexByte(rest, '/')
			if i < 0 {
				it.Next()
				continue
			}
			id := string(rest[:i])
			m, ok, err := readMeta(txn, id)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, m.Stats)
			}
			// Skip the rest of this context: '0' follows '/'.
			it.Seek([]byte("ctx/" + id + "0"))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Files returns the context's current files and version. A context that
// does not exist has no files and version 0 (no error).
func (b *Buffer) Files(id string) (Files, uint64, error) {
	if r := checkID(id); r != "" {
		return nil, 0, &InvalidError{Reason: r}
	}
	if b.db == nil {
		return nil, 0, errors.New("contextbuf: no database")
	}
	var files Files
	var version uint64
	err := b.db.View(func(txn *badger.Txn) error {
		m, ok, err := readMeta(txn, id)
		if err != nil {
			return err
		}
		files = Files{}
		if !ok {
			return nil
		}
		version = m.Version
		files, err = readFiles(txn, id)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return files, version, nil
}

// Delete removes the context: its files, log, sessions and stats. A
// context that does not exist gives ErrNoContext (wrapped).
func (b *Buffer) Delete(id string) error {
	if r := checkID(id); r != "" {
		return &InvalidError{Reason: r}
	}
	if b.db == nil {
		return errors.New("contextbuf: no database")
	}
	defer b.lockID(id)()
	for attempt := 0; ; attempt++ {
		err := b.db.Update(func(txn *badger.Txn) error {
			if _, ok, err := readMeta(txn, id); err != nil {
				return err
			} else if !ok {
				return fmt.Errorf("context %s: %w", id, ErrNoContext)
			}
			keys, err := listKeys(txn, keyPrefix(id), 0)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		switch {
		case errors.Is(err, badger.ErrConflict) && attempt < maxRetries:
			continue
		case errors.Is(err, badger.ErrTxnTooBig):
			// Too many keys for one transaction: remove the description
			// first (the context is then gone), then the rest in batches.
			// Leftovers of a crash in between are removed before the id
			// is written again.
			err = b.db.Update(func(txn *badger.Txn) error { return txn.Delete(keyMeta(id)) })
			if err != nil {
				return err
			}
			return b.purge(id)
		}
		return err
	}
}

// purge removes every key of the context, in batches.
func (b *Buffer) purge(id string) error {
	for {
		var keys [][]byte
		err := b.db.View(func(txn *badger.Txn) error {
			var err error
			keys, err = listKeys(txn, keyPrefix(id), 10000)
			return err
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		wb := b.db.NewWriteBatch()
		for _, k := range keys {
			if err := wb.Delete(k); err != nil {
				wb.Cancel()
				return err
			}
		}
		if err := wb.Flush(); err != nil {
			return err
		}
	}
}

// listKeys returns up to limit (0: all) keys under prefix.
func listKeys(txn *badger.Txn, prefix []byte, limit int) ([][]byte, error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	var keys [][]byte
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
		if limit > 0 && len(keys) >= limit {
			break
		}
	}
	return keys, nil
}

// ---------------------------------------------------------------------
// Rendering

// escapeAttr escapes '"', '<', '>' and '&' for an attribute value.
func escapeAttr(s string) string {
	if !needsEscape(s) {
		return s
	}
	var sb bytes.Buffer
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			sb.WriteString("&quot;")
		case '<':
			sb.WriteString("&lt;")
		case '>':
			sb.WriteString("&gt;")
		case '&':
			sb.WriteString("&amp;")
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"', '<', '>', '&':
			return true
		}
	}
	return false
}

const (
	fileOpen1      = `<file path="`
	fileOpen2      = "\">\n"
	fileClose      = "</file>\n"
	snapshotFooter = "</context_delta>\n"
)

func snapshotHeader(id string, version uint64, files int) string {
	return `<context_delta id="` + escapeAttr(id) + `" version="` + strconv.FormatUint(version, 10) +
		`" kind="snapshot" files="` + strconv.Itoa(files) + "\">\n"
}

func deltaHeader(id string, from, to uint64) string {
	return `<context_delta id="` + escapeAttr(id) + `" from="` + strconv.FormatUint(from, 10) +
		`" version="` + strconv.FormatUint(to, 10) + "\" kind=\"diff\">\n"
}

// fileElemSize is the length of the rendered <file> element.
func fileElemSize(p, c string) int64 {
	n := len(fileOpen1) + len(escapeAttr(p)) + len(fileOpen2) + len(c) + len(fileClose)
	if c != "" && c[len(c)-1] != '\n' {
		n++
	}
	return int64(n)
}

func writeFileElem(sb *bytes.Buffer, p, c string) {
	sb.WriteString(fileOpen1)
	sb.WriteString(escapeAttr(p))
	sb.WriteString(fileOpen2)
	sb.WriteString(c)
	if c != "" && c[len(c)-1] != '\n' {
		sb.WriteByte('\n')
	}
	sb.WriteString(fileClose)
}

// renderSnapshot renders the context's snapshot block from the database.
func renderSnapshot(txn *badger.Txn, m *meta) ([]byte, error) {
	var sb bytes.Buffer
	sb.Grow(int(m.snapshotSize()))
	sb.WriteString(snapshotHeader(m.ID, m.Version, m.Files))
	err := eachFile(txn, m.ID, func(p, c string) error {
		writeFileElem(&sb, p, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sb.WriteString(snapshotFooter)
	return sb.Bytes(), nil
}

// RenderSnapshot returns the snapshot block of files as Inject renders it
// for context id at version.
func RenderSnapshot(id string, version uint64, files Files) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var sb bytes.Buffer
	sb.WriteString(snapshotHeader(id, version, len(files)))
	for _, p := range paths {
		writeFileElem(&sb, p, files[p])
	}
	sb.WriteString(snapshotFooter)
	return sb.String()
}
