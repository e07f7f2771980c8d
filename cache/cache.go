package cache

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"
)

// KeyPrefix is the Badger key prefix of every cache entry; an entry's
// Badger key is KeyPrefix followed by the 32 bytes of its Key.
const KeyPrefix = "cache/e/"

// Defaults for Options.
const (
	DefaultTTL           = time.Hour
	DefaultMaxEntryBytes = 1 << 20
)

// ErrTooLarge is returned (possibly wrapped; test with errors.Is) by Put
// for an entry whose payload is larger than Options.MaxEntryBytes, or
// whose Provider or Model is longer than MaxNameBytes. Nothing is stored.
var ErrTooLarge = errors.New("cache: entry too large")

// Options configure New. The zero value is usable: a one-hour TTL, 1 MiB
// entries, no encryption.
type Options struct {
	// TTL is how long an entry lives after it is stored: Badger's TTL
	// on the key, which expires at a whole second, so an entry lives
	// between TTL-1s and TTL. Zero means DefaultTTL; a negative TTL or
	// one below a second is an error. Changing it affects entries
	// stored from then on.
	TTL time.Duration
	// MaxEntryBytes is the largest payload stored, before compression.
	// Zero means DefaultMaxEntryBytes; negative is an error. A larger
	// Put returns ErrTooLarge. Stored entries with a larger payload (the
	// limit was lowered since) read as misses and are removed.
	MaxEntryBytes int
	// Key, when set, must be 32 bytes: an AES-256 key under which every
	// entry is sealed with AES-GCM. With a key, only entries sealed
	// with it can be read; without one, only plain entries can. Any
	// other entry reads as a miss and is removed.
	Key []byte
	// Logger, optional, receives a warning for each stored value that
	// could not be read (and was removed). Each such value is logged at
	// most once, since it is removed on first read.
	Logger *zap.Logger
}

// Key is a cache key: the SHA-256 the caller computed over the
// normalized request.
type Key [32]byte

// String returns k in hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Entry is what is stored for one request.
type Entry struct {
	// Created is when the answer was made. Put sets it to the current
	// time when zero. It is stored to the nanosecond and comes back in
	// UTC without a monotonic clock reading: compare with Time.Equal.
	Created time.Time
	// Provider and Model name what answered; each at most
	// MaxNameBytes long.
	Provider string
	Model    string
	// CostUSD is what the original answer cost; a hit saves this much.
	CostUSD float64
	// Payload is the answer, opaque to this package. The slice Get
	// returns belongs to the caller.
	Payload []byte
}

// Cache stores entries in a Badger database under KeyPrefix. It is safe
// for concurrent use. It does not own the database: closing the
// database is the caller's business, and a Cache needs no closing.
type Cache struct {
	db       *badger.DB
	ttl      time.Duration
	maxEntry int
	aead     cipher.AEAD // nil without a key
	enc      *zstd.Encoder
	dec      *zstd.Decoder
	log      *zap.Logger

	hits, misses, bypasses, stores, errs, tooLarge atomic.Uint64
	savedNano                                      atomic.Int64 // SavedUSD in nano-dollars
}

// maxValueBytes caps MaxEntryBytes so that a stored value stays well
// inside what Badger accepts.
const maxValueBytes = 256 << 20

// New returns a Cache storing into db. It fails for a Key that is not
// 32 bytes and for out-of-range options.
func New(db *badger.DB, o Options) (*Cache, error) {
	if db == nil {
		return nil, errors.New("cache: no database")
	}
	switch {
	case o.TTL == 0:
		o.TTL = DefaultTTL
	case o.TTL < time.Second:
		return nil, fmt.Errorf("cache: TTL %v: must be at least 1s", o.TTL)
	}
	switch {
	case o.MaxEntryBytes == 0:
		o.MaxEntryBytes = DefaultMaxEntryBytes
	case o.MaxEntryBytes < 0:
		return nil, fmt.Errorf("cache: max entry size %d is negative", o.MaxEntryBytes)
	}
	limit := int64(maxValueBytes)
	if vl := db.Opts().ValueLogFileSize; vl > 0 && vl/2 < limit {
		limit = vl / 2
	}
	if int64(o.MaxEntryBytes) > limit {
		return nil, fmt.Errorf("cache: max entry size %d is above the limit of %d bytes", o.MaxEntryBytes, limit)
	}
	c := &Cache{db: db, ttl: o.TTL, maxEntry: o.MaxEntryBytes, log: o.Logger}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if o.Key != nil {
		if len(o.Key) != 32 {
			return nil, fmt.Errorf("cache: encryption key is %d bytes, need 32 (AES-256)", len(o.Key))
		}
		block, err := aes.NewCipher(o.Key)
		if err != nil {
			return nil, fmt.Errorf("cache: encryption key: %w", err)
		}
		if c.aead, err = cipher.NewGCMWithRandomNonce(block); err != nil {
			return nil, fmt.Errorf("cache: encryption key: %w", err)
		}
	}
	var err error
	c.enc, err = zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderConcurrency(0), // GOMAXPROCS encoders for EncodeAll
		// Values carry their own CRC or GCM tag; zstd's would be a
		// second check of the same bytes.
		zstd.WithEncoderCRC(false),
		// Single-segment frames always declare their content size
		// (otherwise frames under 256 bytes do not), which open
		// requires to bound and size its output.
		zstd.WithSingleSegment(true),
	)
	if err != nil {
		return nil, fmt.Errorf("cache: zstd encoder: %w", err)
	}
	c.dec, err = zstd.NewReader(nil,
		// A body never decodes to more than this; a value claiming
		// more (or a larger window) is rejected before allocating.
		zstd.WithDecoderMaxMemory(uint64(o.MaxEntryBytes)+maxMetaOverhead),
		// DecodeAll writes at most cap(dst): open sizes dst from the
		// frame's declared (and checked) content size.
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderConcurrency(0), // GOMAXPROCS decoders for DecodeAll
	)
	if err != nil {
		return nil, fmt.Errorf("cache: zstd decoder: %w", err)
	}
	return c, nil
}

func dbKey(k *Key) []byte {
	b := make([]byte, len(KeyPrefix)+len(k))
	copy(b, KeyPrefix)
	copy(b[len(KeyPrefix):], k[:])
	return b
}

// Get returns the entry stored under k. A missing or expired entry is a
// miss: false and a nil error. A stored value that cannot be read
// (corrupt, sealed with another key or under another cache key, plain
// while the cache has a key or the reverse, unknown format version,
// larger than MaxEntryBytes) is also a miss with a nil error: it is
// removed and counted in Stats.Errors. Only a failure of the database
// is returned as an error (also counted as a miss and an error).
//
// Every call counts exactly one hit or one miss; a hit adds the entry's
// CostUSD to Stats.SavedUSD.
func (c *Cache) Get(k Key) (Entry, bool, error) {
	key := dbKey(&k)
	var (
		e       Entry
		version uint64
		openErr error
	)
	err := c.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		version = item.Version()
		return item.Value(func(v []byte) error {
			e, openErr = c.open(&k, v)
			return nil
		})
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		c.misses.Add(1)
		return Entry{}, false, nil
	case err != nil:
		c.misses.Add(1)
		c.errs.Add(1)
		return Entry{}, false, fmt.Errorf("cache: reading entry: %w", err)
	case openErr != nil:
		c.misses.Add(1)
		c.errs.Add(1)
		c.drop(key, version, openErr)
		return Entry{}, false, nil
	}
	c.hits.Add(1)
	if n := nanoUSD(e.CostUSD); n > 0 {
		c.savedNano.Add(n)
	}
	return e, true, nil
}

// drop removes an unreadable value, unless the key was written again
// since it was read (then the new value is left alone).
func (c *Cache) drop(key []byte, version uint64, why error) {
	err := c.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		if item.Version() != version {
			return nil
		}
		return txn.Delete(key)
	})
	if errors.Is(err, badger.ErrKeyNotFound) || errors.Is(err, badger.ErrConflict) {
		err = nil
	}
	fields := []zap.Field{zap.String("key", fmt.Sprintf("%x", key[len(KeyPrefix):])), zap.NamedError("reason", why)}
	if err != nil {
		fields = append(fields, zap.NamedError("remove_error", err))
	}
	c.log.Warn("dropped unreadable cache entry", fields...)
}

// nanoUSD converts a cost to nano-dollars for the SavedUSD counter.
// Costs that are not finite and positive count as nothing; a single
// cost is capped at a million dollars so the sum cannot overflow in any
// realistic lifetime.
func nanoUSD(usd float64) int64 {
	if !(usd > 0) || math.IsInf(usd, 0) {
		return 0
	}
	if usd > 1e6 {
		usd = 1e6
	}
	return int64(math.Round(usd * 1e9))
}

// Put stores e under k for the cache's TTL, replacing any entry there.
// A payload larger than MaxEntryBytes, or a Provider or Model longer
// than MaxNameBytes, is refused with ErrTooLarge (wrapped) and nothing
// is stored. Put does not keep e or its Payload.
func (c *Cache) Put(k Key, e Entry) error {
	if len(e.Payload) > c.maxEntry {
		c.tooLarge.Add(1)
		return fmt.Errorf("%w: payload is %d bytes, max %d", ErrTooLarge, len(e.Payload), c.maxEntry)
	}
	if len(e.Provider) > MaxNameBytes || len(e.Model) > MaxNameBytes {
		c.tooLarge.Add(1)
		return fmt.Errorf("%w: provider or model name longer than %d bytes", ErrTooLarge, MaxNameBytes)
	}
	if e.Created.IsZero() {
		e.Created = time.Now()
	}
	v := c.seal(&k, &e)
	err := c.db.Update(func(txn *badger.Txn) error {
		return txn.SetEntry(badger.NewEntry(dbKey(&k), v).WithTTL(c.ttl))
	})
	if err != nil {
		c.errs.Add(1)
		return fmt.Errorf("cache: storing entry: %w", err)
	}
	c.stores.Add(1)
	return nil
}

// Delete removes the entry under k, if any. Deleting a missing entry is
// not an error.
func (c *Cache) Delete(k Key) error {
	err := c.db.Update(func(txn *badger.Txn) error {
		return txn.Delete(dbKey(&k))
	})
	if err != nil {
		return fmt.Errorf("cache: deleting entry: %w", err)
	}
	return nil
}

// Clear removes every cache entry (every key under KeyPrefix; nothing
// else in the database) and returns how many live entries it removed.
// Entries stored while Clear runs may or may not be removed.
//
// Clear deletes the keys it finds (in write batches) rather than using
// Badger's DropPrefix: DropPrefix makes every concurrent write to the
// whole database fail with badger.ErrBlockedWrites while it runs, and
// the database is shared with the ledger. The space is reclaimed by
// compaction and value-log GC.
func (c *Cache) Clear() (removed int, err error) {
	wb := c.db.NewWriteBatch()
	defer wb.Cancel()
	err = c.eachLive(func(item *badger.Item) error {
		removed++
		return wb.Delete(item.KeyCopy(nil))
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return 0, fmt.Errorf("cache: clearing: %w", err)
	}
	return removed, nil
}

// eachLive calls fn for every live (not deleted, not expired) key under
// KeyPrefix, without reading values, until fn fails.
func (c *Cache) eachLive(fn func(*badger.Item) error) error {
	return c.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(KeyPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if item := it.Item(); !item.IsDeletedOrExpired() {
				if err := fn(item); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// scan counts the live (not deleted, not expired) keys under KeyPrefix
// and sums the stored sizes of their values, without reading values.
func (c *Cache) scan() (n int, size int64, err error) {
	err = c.eachLive(func(item *badger.Item) error {
		n++
		size += item.ValueSize()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("cache: counting entries: %w", err)
	}
	return n, size, nil
}

// Stats describes the cache. Entries and Bytes are read from the
// database; the counters count since the Cache was created (the
// process started), not across restarts.
type Stats struct {
	// Entries is the number of live entries.
	Entries int `json:"entries"`
	// Bytes is the stored size (compressed, sealed; Badger's estimate
	// for large values) of the live entries' values.
	Bytes int64 `json:"bytes"`
	// Hits counts Get calls that returned an entry.
	Hits uint64 `json:"hits"`
	// Misses counts Get calls that did not, for whatever reason.
	Misses uint64 `json:"misses"`
	// Bypasses counts requests the caller did not look up (CountBypass).
	Bypasses uint64 `json:"bypasses"`
	// Stores counts successful Puts.
	Stores uint64 `json:"stores"`
	// TooLarge counts Puts refused with ErrTooLarge.
	TooLarge uint64 `json:"too_large"`
	// Errors counts stored values that could not be read (and were
	// removed) plus database failures in Get and Put.
	Errors uint64 `json:"errors"`
	// SavedUSD is the sum of CostUSD over hits, to the nano-dollar.
	// Costs that are not finite and positive add nothing; one hit adds
	// at most a million dollars.
	SavedUSD float64 `json:"saved_usd"`
	// TTLSeconds, MaxEntryBytes and Encrypted echo the configuration.
	TTLSeconds    float64 `json:"ttl_seconds"`
	MaxEntryBytes int     `json:"max_entry_bytes"`
	Encrypted     bool    `json:"encrypted"`
}

// Stats returns the counters and counts the live entries, iterating over
// keys only (values are not read).
func (c *Cache) Stats() (Stats, error) {
	s := c.Counters()
	n, size, err := c.scan()
	if err != nil {
		return s, err
	}
	s.Entries, s.Bytes = n, size
	return s, nil
}

// Counters returns the Stats that need no database access: everything
// but Entries and Bytes, which are zero. Cheap enough for every scrape.
func (c *Cache) Counters() Stats {
	return Stats{
		Hits:          c.hits.Load(),
		Misses:        c.misses.Load(),
		Bypasses:      c.bypasses.Load(),
		Stores:        c.stores.Load(),
		TooLarge:      c.tooLarge.Load(),
		Errors:        c.errs.Load(),
		SavedUSD:      float64(c.savedNano.Load()) / 1e9,
		TTLSeconds:    c.ttl.Seconds(),
		MaxEntryBytes: c.maxEntry,
		Encrypted:     c.aead != nil,
	}
}

// CountBypass counts a request the caller chose not to look up (not
// cacheable, or the client asked for no cache). Get counts hits and
// misses itself.
func (c *Cache) CountBypass() { c.bypasses.Add(1) }

// MaxEntryBytes is the largest payload Put stores.
func (c *Cache) MaxEntryBytes() int { return c.maxEntry }
