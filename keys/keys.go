// Package keys manages the client keys of a team gateway: generating
// them, hashing them, and keeping their records (name, hash, limits) in
// the gateway's Badger store.
//
// A key's secret is shown once, when it is created, and never stored:
// only its SHA-256 hash is. Keys are long random strings, so a fast hash
// is the right one (a password hash buys nothing against 256 bits of
// entropy); lookups compare hashes in constant time.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Prefix starts every generated key, so leaked keys are easy to spot
// (secret scanners, logs) and to tell from provider keys.
const Prefix = "sk-llm-"

// HashPrefix starts the text form of a hash.
const HashPrefix = "sha256:"

// Key is the record of one client key. It never holds the secret.
type Key struct {
	// Name identifies the key in the ledger, stats and budgets.
	Name string `json:"name"`
	// Hash is "sha256:" and the hex SHA-256 of the secret.
	Hash string `json:"hash"`
	// DailyUSD and MonthlyUSD are the key's own limits; 0: the defaults
	// of llm_budget.
	DailyUSD   float64 `json:"daily_usd,omitempty"`
	MonthlyUSD float64 `json:"monthly_usd,omitempty"`
	// Created is when the key was created (zero for keys declared in
	// the config).
	Created time.Time `json:"created,omitempty"`
	// Revoked is when the key was revoked; a revoked key is refused.
	Revoked *time.Time `json:"revoked,omitempty"`
	// Source is "config" or "store".
	Source string `json:"source,omitempty"`
}

// Errors of the store.
var (
	ErrExists   = errors.New("a key with this name exists")
	ErrNotFound = errors.New("no key with this name")
	ErrBadName  = errors.New("key names are 1 to 64 letters, digits, dots, dashes, underscores or @")
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// CheckName returns ErrBadName (wrapped, with the name) for a name that
// cannot identify a key. "anonymous" is taken by keyless requests.
func CheckName(name string) error {
	if !nameRE.MatchString(name) || name == "anonymous" {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Generate returns a new random key: Prefix and 43 base62 characters
// (256 bits).
func Generate() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating a key: %w", err)
	}
	n := new(big.Int).SetBytes(b[:])
	out := make([]byte, 43)
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := len(out) - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = alphabet[mod.Int64()]
	}
	return Prefix + string(out), nil
}

// Sum is the raw SHA-256 of a secret.
func Sum(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// Hash returns the text form of a secret's hash, as the Caddyfile and
// the store keep it.
func Hash(secret string) string {
	s := Sum(secret)
	return HashPrefix + hex.EncodeToString(s[:])
}

// ParseHash reads the text form of a hash.
func ParseHash(s string) ([32]byte, error) {
	var h [32]byte
	hx, ok := strings.CutPrefix(strings.TrimSpace(s), HashPrefix)
	if !ok {
		return h, fmt.Errorf("key hash must start with %q (caddy llm key hash prints one)", HashPrefix)
	}
	b, err := hex.DecodeString(hx)
	if err != nil || len(b) != 32 {
		return h, errors.New("key hash must be sha256: followed by 64 hex digits (caddy llm key hash prints one)")
	}
	copy(h[:], b)
	return h, nil
}

// Set is a read-only set of keys, looked up by a presented secret.
type Set struct {
	byHash map[[32]byte]Key
}

// NewSet builds a set from key records; their hashes must parse.
func NewSet(ks []Key) (*Set, error) {
	s := &Set{byHash: make(map[[32]byte]Key, len(ks))}
	for _, k := range ks {
		h, err := ParseHash(k.Hash)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k.Name, err)
		}
		s.byHash[h] = k
	}
	return s, nil
}

// Match returns the key whose hash is sum. The map finds the candidate;
// the final comparison is constant-time.
func (s *Set) Match(sum [32]byte) (Key, bool) {
	if s == nil {
		return Key{}, false
	}
	return match(s.byHash, sum)
}

func match(m map[[32]byte]Key, sum [32]byte) (Key, bool) {
	k, ok := m[sum]
	if !ok {
		return Key{}, false
	}
	want, err := ParseHash(k.Hash)
	if err != nil || subtle.ConstantTimeCompare(want[:], sum[:]) != 1 {
		return Key{}, false
	}
	return k, true
}

// storePrefix is the key space of key records in the database: the
// current record of each name under keys/<name>, and the revoked records
// of names given a new key under keys/!revoked/<hash> ("!" is never in a
// name), so their secrets stay refused as revoked.
var (
	storePrefix   = []byte("keys/")
	revokedPrefix = "!revoked/"
)

// Store keeps key records in Badger, with an in-memory index. One store
// serves every config of a process (the database is shared), so keys
// created through the admin API are seen by every llm_budget at once.
type Store struct {
	db     *badger.DB
	mu     sync.RWMutex
	byName map[string]Key
	byHash map[[32]byte]Key
}

// OpenStore loads the key records of db.
func OpenStore(db *badger.DB) (*Store, error) {
	s := &Store{db: db, byName: map[string]Key{}, byHash: map[[32]byte]Key{}}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: storePrefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var k Key
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &k) }); err != nil {
				return fmt.Errorf("reading key record %s: %w", it.Item().Key(), err)
			}
			if strings.HasPrefix(string(it.Item().Key()[len(storePrefix):]), revokedPrefix) {
				s.indexHash(k)
				continue
			}
			s.index(k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) index(k Key) {
	k.Source = "store"
	s.byName[k.Name] = k
	s.indexHash(k)
}

func (s *Store) indexHash(k Key) {
	k.Source = "store"
	if h, err := ParseHash(k.Hash); err == nil {
		s.byHash[h] = k
	}
}

// put stores k as its name's record and, when k replaces a revoked
// record, archives that one in the same transaction.
func (s *Store) put(k Key, archive *Key) error {
	v, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		if archive != nil {
			av, err := json.Marshal(archive)
			if err != nil {
				return err
			}
			if err := txn.Set([]byte(string(storePrefix)+revokedPrefix+archive.Hash), av); err != nil {
				return err
			}
		}
		return txn.Set(append(append([]byte{}, storePrefix...), k.Name...), v)
	})
}

// Create makes a key named name with the given limits (0: defaults),
// stores its record and returns the secret, which exists nowhere else.
func (s *Store) Create(name string, dailyUSD, monthlyUSD float64, now time.Time) (string, Key, error) {
	if err := CheckName(name); err != nil {
		return "", Key{}, err
	}
	if dailyUSD < 0 || monthlyUSD < 0 {
		return "", Key{}, errors.New("limits must not be negative")
	}
	secret, err := Generate()
	if err != nil {
		return "", Key{}, err
	}
	k := Key{Name: name, Hash: Hash(secret), DailyUSD: dailyUSD, MonthlyUSD: monthlyUSD, Created: now.UTC(), Source: "store"}
	s.mu.Lock()
	defer s.mu.Unlock()
	var archive *Key
	if old, ok := s.byName[name]; ok {
		if old.Revoked == nil {
			return "", Key{}, fmt.Errorf("%w: %s (revoke it first)", ErrExists, name)
		}
		// The old secret stays known, as revoked.
		archive = &old
	}
	if err := s.put(k, archive); err != nil {
		return "", Key{}, fmt.Errorf("storing key %s: %w", name, err)
	}
	s.index(k)
	return secret, k, nil
}

// Revoke marks the named key revoked; requests with it are refused from
// then on. Revoking twice is not an error.
func (s *Store) Revoke(name string, now time.Time) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.byName[name]
	if !ok {
		return Key{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if k.Revoked != nil {
		return k, nil
	}
	t := now.UTC()
	k.Revoked = &t
	if err := s.put(k, nil); err != nil {
		return Key{}, fmt.Errorf("storing key %s: %w", name, err)
	}
	s.index(k)
	return k, nil
}

// List returns every stored key record, sorted by name.
func (s *Store) List() []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Key, 0, len(s.byName))
	for _, k := range s.byName {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Match returns the stored key whose hash is sum (revoked ones too:
// the caller refuses those with a clear message).
func (s *Store) Match(sum [32]byte) (Key, bool) {
	if s == nil {
		return Key{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return match(s.byHash, sum)
}
