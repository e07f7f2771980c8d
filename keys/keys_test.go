package keys

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestGenerateAndHash(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		k, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k, Prefix) || len(k) != len(Prefix)+43 || seen[k] {
			t.Fatalf("bad or repeated key %q", k)
		}
		seen[k] = true
		h := Hash(k)
		sum, err := ParseHash(h)
		if err != nil || sum != Sum(k) {
			t.Fatalf("hash %q does not parse back: %v", h, err)
		}
	}
	for _, bad := range []string{"", "abc", "sha256:xyz", "sha256:" + strings.Repeat("a", 63), "md5:" + strings.Repeat("a", 64)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
	for _, name := range []string{"", "anonymous", "a b", strings.Repeat("x", 65), "ünï"} {
		if CheckName(name) == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if CheckName("alice@team.dev") != nil {
		t.Error("a plain name refused")
	}
}

func TestSetMatch(t *testing.T) {
	s, err := NewSet([]Key{{Name: "a", Hash: Hash("one")}, {Name: "b", Hash: Hash("two")}})
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := s.Match(Sum("two")); !ok || k.Name != "b" {
		t.Errorf("match: %v %v", k, ok)
	}
	if _, ok := s.Match(Sum("three")); ok {
		t.Error("unknown secret matched")
	}
	if _, err := NewSet([]Key{{Name: "c", Hash: "plain"}}); err == nil {
		t.Error("a bad hash accepted")
	}
	var none *Set
	if _, ok := none.Match(Sum("x")); ok {
		t.Error("nil set matched")
	}
}

func TestStore(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	secret, k, err := s.Create("alice", 5, 60, now)
	if err != nil {
		t.Fatal(err)
	}
	if k.Hash != Hash(secret) || k.DailyUSD != 5 || k.MonthlyUSD != 60 || strings.Contains(k.Hash, secret) {
		t.Errorf("record %+v", k)
	}
	if _, _, err := s.Create("alice", 1, 1, now); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate name: %v", err)
	}
	if _, _, err := s.Create("bad name", 1, 1, now); !errors.Is(err, ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := s.Revoke("nobody", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	if _, err := s.Revoke("alice", now); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	// Records survive a restart; the secret is nowhere in the database.
	db, err = badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err = OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := s.Match(Sum(secret))
	if !ok || k.Revoked == nil || !k.Revoked.Equal(now) {
		t.Fatalf("after reopen: %+v %v", k, ok)
	}
	_ = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			_ = it.Item().Value(func(v []byte) error {
				if strings.Contains(string(v), secret) {
					t.Error("the secret is stored")
				}
				return nil
			})
		}
		return nil
	})
	// A revoked name can be given a new key.
	secret2, _, err := s.Create("alice", 0, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := s.Match(Sum(secret2)); !ok || k.Revoked != nil {
		t.Errorf("new key: %+v %v", k, ok)
	}
	if k, ok := s.Match(Sum(secret)); !ok || k.Revoked == nil {
		t.Error("the old secret is no longer known as revoked after its name was reissued")
	}
	if l := s.List(); len(l) != 1 || l[0].Name != "alice" || l[0].Source != "store" || l[0].Revoked != nil {
		t.Errorf("list %+v", l)
	}
	// And after a restart.
	s, err = OpenStore(db)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := s.Match(Sum(secret)); !ok || k.Revoked == nil {
		t.Errorf("old secret after reopen: %+v %v", k, ok)
	}
	if k, ok := s.Match(Sum(secret2)); !ok || k.Revoked != nil {
		t.Errorf("new secret after reopen: %+v %v", k, ok)
	}
	if l := s.List(); len(l) != 1 {
		t.Errorf("list after reopen %+v", l)
	}
}
