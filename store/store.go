// Package store opens and looks after the gateway's embedded Badger
// database: one directory per process, shared by the ledger, the cache
// and the context buffer, each in its own key space (a key prefix).
//
// The Caddy glue shares one *Store between the configs that are alive
// during a reload; this package knows nothing of Caddy.
package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// ErrLocked is returned (wrapped) by Open when another process holds the
// database directory.
var ErrLocked = errors.New("storage is locked by another process")

// Options configure Open.
type Options struct {
	// Dir is the database directory; created when missing.
	Dir string
	// InMemory keeps everything in memory (tests); Dir is ignored.
	InMemory bool
	// SyncWrites makes every commit wait for fsync. Off by default: a
	// commit is then durable once the OS writes it back (a process crash
	// loses nothing; a power cut may lose the last moments).
	SyncWrites bool
	// GCInterval is how often value-log garbage collection runs.
	// Default: 10m.
	GCInterval time.Duration
	// Logger receives Badger's own warnings and errors. Optional.
	Logger *zap.Logger
}

// Store is an open Badger database plus its maintenance goroutine.
type Store struct {
	db   *badger.DB
	dir  string
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Open opens (creating if needed) the database at opts.Dir.
func Open(opts Options) (*Store, error) {
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(opts.SyncWrites).
		// A gateway's data set is small; Badger's defaults are sized
		// for databases of hundreds of GB (64 MB memtables, 256 MB
		// block cache). Keep the resident size modest.
		WithMemTableSize(16 << 20).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueLogFileSize(256 << 20).
		WithNumVersionsToKeep(1).
		WithLogger(badgerLogger{opts.Logger})
	if opts.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	} else {
		if opts.Dir == "" {
			return nil, errors.New("store: no directory")
		}
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating storage directory %s: %w", opts.Dir, err)
		}
	}
	db, err := badger.Open(bo)
	if err != nil {
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("%w: %s is in use (another caddy process with the same llm storage is running; stop it or give this one another `storage` directory)", ErrLocked, opts.Dir)
		}
		return nil, fmt.Errorf("opening storage %s: %w", opts.Dir, err)
	}
	s := &Store{db: db, dir: opts.Dir, stop: make(chan struct{}), done: make(chan struct{})}
	interval := opts.GCInterval
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	go s.gcLoop(interval)
	return s, nil
}

// DB returns the underlying database.
func (s *Store) DB() *badger.DB { return s.db }

// Dir returns the directory the database lives in ("" in memory).
func (s *Store) Dir() string { return s.dir }

// Close stops maintenance and closes the database. It is safe to call
// more than once.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		err = s.db.Close()
	})
	return err
}

func (s *Store) gcLoop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// Collect until a run finds nothing worth rewriting.
			for s.db.RunValueLogGC(0.5) == nil {
				select {
				case <-s.stop:
					return
				default:
				}
			}
		}
	}
}

// badgerLogger sends Badger's warnings and errors to zap and drops its
// chatty info and debug lines.
type badgerLogger struct{ l *zap.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	if b.l != nil {
		b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
	}
}

func (b badgerLogger) Warningf(f string, a ...any) {
	if b.l != nil {
		b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)))
	}
}

func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
