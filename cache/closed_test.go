package cache

import (
	"testing"

	"github.com/llmgate/caddy-llmgate/store"
)

func TestClosedDatabase(t *testing.T) {
	s, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	c := newCache(t, s.DB(), Options{})
	k := testKey("k")
	if err := c.Put(k, Entry{Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, ok, err := c.Get(k); ok || err == nil {
		t.Errorf("Get on a closed database: %v %v", ok, err)
	}
	if err := c.Put(k, Entry{Payload: []byte("x")}); err == nil {
		t.Error("Put on a closed database succeeded")
	}
	if err := c.Delete(k); err == nil {
		t.Error("Delete on a closed database succeeded")
	}
	if _, err := c.Stats(); err == nil {
		t.Error("Stats on a closed database succeeded")
	}
	if _, err := c.Clear(); err == nil {
		t.Error("Clear on a closed database succeeded")
	}
	if s := c.Counters(); s.Errors != 2 || s.Misses != 1 || s.Stores != 1 {
		t.Errorf("counters %+v", s)
	}
}
