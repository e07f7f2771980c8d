package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func res(id string, sat float64, rates map[int][2]float64) result {
	r := result{ID: id, Title: id, Saturation: point{Throughput: sat}}
	for rate, v := range rates {
		r.Rates = append(r.Rates, point{Rate: rate, P50: v[0], TTFB50: v[1], CacheHits: 1, Overhead50: v[0] / 3})
	}
	return r
}

func TestChecks(t *testing.T) {
	r := &report{BigBytes: 100e6, Results: []result{
		res("caddy", 10000, map[int][2]float64{100: {500, 0}}),
		res("gateway", 9000, map[int][2]float64{100: {540, 0}}),
		res("translate", 6500, nil),
		res("caddy-stream", 3000, map[int][2]float64{100: {2000, 300}}),
		res("gateway-stream", 2900, map[int][2]float64{100: {2100, 1400}}),
		res("cache", 12000, map[int][2]float64{100: {150, 0}}),
		res("portkey", 800, nil),
		{ID: "gateway-big", Big: &bigResult{GrowthMB: 3}},
		{ID: "translate-big", Big: &bigResult{GrowthMB: 12}},
		{ID: "portkey-stream", Title: "portkey-stream", Err: "failed"},
	}}
	r.check()
	want := map[string]bool{
		"pass-through p50 added latency":            true,  // +40 µs
		"pass-through throughput":                   true,  // 90 %
		"translation throughput":                    false, // 65 %
		"stream time to first byte":                 false, // +1100 µs
		"(gateway-big)":                             true,
		"(translate-big)":                           false,
		"cache hit p50":                             true,
		"Portkey's saturation throughput (gateway)": true, // 11.25×
	}
	if len(r.Checks) != len(want) {
		t.Fatalf("%d checks: %+v", len(r.Checks), r.Checks)
	}
	for _, c := range r.Checks {
		found := false
		for k, met := range want {
			if strings.Contains(c.Target, k) {
				found = true
				if c.Met != met {
					t.Errorf("%s: met=%v (%s), want %v", c.Target, c.Met, c.Got, met)
				}
			}
		}
		if !found {
			t.Errorf("unexpected check %q", c.Target)
		}
	}
	md := string(r.markdown())
	for _, s := range []string{"| gateway | 9000/s | 0.90× |", "+40 µs", "| portkey-stream | failed: failed", "| translation throughput ≥ 70 % of bare reverse_proxy | 65 % | no |"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestUpdateReadme(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	orig := "# Title\n\n" + readmeBegin + "\nold table\n" + readmeEnd + "\n\nAfter.\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &report{Results: []result{res("caddy", 10, nil)}}
	if err := r.updateReadme(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	s := string(b)
	if strings.Contains(s, "old table") || !strings.HasPrefix(s, "# Title\n\n"+readmeBegin+"\nRun of") ||
		!strings.HasSuffix(s, readmeEnd+"\n\nAfter.\n") || !strings.Contains(s, "| caddy | 10/s |") {
		t.Errorf("%s", s)
	}
	if err := os.WriteFile(path, []byte("no markers"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.updateReadme(path); err == nil {
		t.Error("no error without markers")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100MB": 100e6, "64KiB": 64 << 10, "1000": 1000, " 2 gb ": 2e9} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "MB", "-1MB", "ten"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
