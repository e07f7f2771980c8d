package ledger

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func entryCases() []Entry {
	t0 := time.Date(2026, 11, 25, 9, 10, 11, 123456789, time.UTC)
	return []Entry{
		{},
		{Time: t0, Status: 200},
		{Time: t0.In(time.FixedZone("x", 3600)), KeyID: "alice", Session: "s<1>&", Endpoint: "chat_completions", Provider: "p", Model: "m",
			UpstreamModel: "m-up", Tier: "standard", Stream: true, Status: 200,
			Tokens:  Tokens{Input: 11, CachedInput: 3, CacheWrite: 1, Output: 7, Reasoning: 2},
			CostUSD: 0.000018, LatencyMS: 12.345, Attempts: 2, Fallback: true, Cache: "hit", ErrorKind: "upstream_status", SavedUSD: 1e-9},
		{Time: t0, Status: 502, CostUSD: 1e21, LatencyMS: 1e-7, SavedUSD: -3.5, KeyID: "quote\" back\\ nl\n tab\t ctl\x01 \u2028 bad\xff é"},
	}
}

// TestAppendEntryMatchesJSON: the hand-written encoder writes what
// json.Marshal writes, byte for byte.
func TestAppendEntryMatchesJSON(t *testing.T) {
	for i, e := range entryCases() {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendEntry(nil, &e)
		if !ok || string(got) != string(want) {
			t.Errorf("%d:\n got %s\nwant %s", i, got, want)
		}
	}
	bad := Entry{CostUSD: math.NaN()}
	if _, ok := appendEntry(nil, &bad); ok {
		t.Error("NaN encoded")
	}
}

func FuzzEntryJSON(f *testing.F) {
	for _, e := range entryCases() {
		f.Add(e.KeyID, e.Model, e.Status, e.Input, e.CostUSD, e.LatencyMS, e.Time.UnixNano(), e.Stream)
	}
	f.Fuzz(func(t *testing.T, key, model string, status, input int, cost, lat float64, nanos int64, stream bool) {
		e := Entry{Time: time.Unix(0, nanos).UTC(), KeyID: key, Model: model, Status: status, Tokens: Tokens{Input: input},
			CostUSD: cost, LatencyMS: lat, Stream: stream, SavedUSD: cost / 3}
		want, err := json.Marshal(e)
		got, ok := appendEntry(nil, &e)
		if (err == nil) != ok {
			t.Fatalf("json.Marshal error %v, appendEntry ok %v", err, ok)
		}
		if ok && string(got) != string(want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}
