package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// result is what one scenario measured.
type result struct {
	ID         string     `json:"id"`
	Title      string     `json:"title"`
	Saturation point      `json:"saturation"`
	Rates      []point    `json:"rates,omitempty"`
	PeakRSS    int64      `json:"peak_rss_bytes,omitempty"`
	Big        *bigResult `json:"long_stream,omitempty"`
	Err        string     `json:"error,omitempty"`
}

// bigResult is the memory run: one long stream read at full speed.
type bigResult struct {
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	RSSBefore int64   `json:"rss_before_bytes"`
	RSSPeak   int64   `json:"rss_peak_bytes"`
	GrowthMB  float64 `json:"rss_growth_mib"`
}

// machine describes where the numbers were taken.
type machine struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	Memory  string `json:"memory"`
	Kernel  string `json:"kernel"`
	Go      string `json:"go"`
	Caddy   string `json:"caddy"`
	Node    string `json:"node,omitempty"`
	Sharing string `json:"sharing"`
}

// check is one speed target and whether the run met it.
type check struct {
	Target string `json:"target"`
	Got    string `json:"got"`
	Met    bool   `json:"met"`
}

// report is a whole run.
type report struct {
	Started  time.Time `json:"started"`
	Machine  machine   `json:"machine"`
	Duration string    `json:"duration_per_run"`
	Workers  int       `json:"saturation_connections"`
	Rates    []int     `json:"rates"`
	BigBytes int64     `json:"long_stream_bytes"`
	Results  []result  `json:"results"`
	Checks   []check   `json:"targets"`
}

func describeMachine(o *options) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(),
		Sharing: "load driver, mock provider and server share all cores"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%d", &kb); err == nil {
			m.Memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(o.caddy, "version").Output(); err == nil {
		m.Caddy, _, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
	}
	if o.portkey != "" {
		if out, err := exec.Command("node", "--version").Output(); err == nil {
			m.Node = strings.TrimSpace(string(out))
		}
	}
	return m
}

func (r *report) find(id string) *result {
	for i := range r.Results {
		if r.Results[i].ID == id && r.Results[i].Err == "" {
			return &r.Results[i]
		}
	}
	return nil
}

// at returns the fixed-rate point of a result at rate, if it ran.
func (r *result) at(rate int) *point {
	for i := range r.Rates {
		if r.Rates[i].Rate == rate {
			return &r.Rates[i]
		}
	}
	return nil
}

// commonRates are the fixed rates both results ran at.
func commonRates(a, b *result) []int {
	var out []int
	for _, p := range a.Rates {
		if b.at(p.Rate) != nil {
			out = append(out, p.Rate)
		}
	}
	return out
}

// check compares the run with the targets, all as ratios or
// differences within this run.
func (r *report) check() {
	r.Checks = nil
	add := func(target, got string, met bool) { r.Checks = append(r.Checks, check{target, got, met}) }
	bare, gw, tr := r.find("caddy"), r.find("gateway"), r.find("translate")
	// perRate checks a difference of a, against base, at each rate
	// both ran.
	perRate := func(target string, a, base *result, diff func(p, q *point) float64, limit float64) {
		var got []string
		met := true
		for _, rate := range commonRates(a, base) {
			d := diff(a.at(rate), base.at(rate))
			got = append(got, fmt.Sprintf("%+.0f µs at %d/s", d, rate))
			met = met && d <= limit
		}
		if len(got) > 0 {
			add(target, strings.Join(got, ", "), met)
		}
	}
	if bare != nil && gw != nil {
		perRate("pass-through p50 added latency ≤ bare reverse_proxy + 50 µs", gw, bare,
			func(p, q *point) float64 { return p.P50 - q.P50 }, 50)
		ratio := gw.Saturation.Throughput / bare.Saturation.Throughput
		add("pass-through throughput ≥ 85 % of bare reverse_proxy", fmt.Sprintf("%.0f %%", 100*ratio), ratio >= 0.85)
	}
	if bare != nil && tr != nil {
		ratio := tr.Saturation.Throughput / bare.Saturation.Throughput
		add("translation throughput ≥ 70 % of bare reverse_proxy", fmt.Sprintf("%.0f %%", 100*ratio), ratio >= 0.70)
	}
	bs, gs := r.find("caddy-stream"), r.find("gateway-stream")
	if bs != nil && gs != nil {
		perRate("stream time to first byte within 1 ms of bare reverse_proxy", gs, bs,
			func(p, q *point) float64 { return p.TTFB50 - q.TTFB50 }, 1000)
	}
	for _, id := range []string{"gateway-big", "translate-big"} {
		if b := r.find(id); b != nil && b.Big != nil {
			add(fmt.Sprintf("RSS growth < 10 MB while %d MB stream through (%s)", r.BigBytes/1e6, id),
				fmt.Sprintf("%.1f MiB", b.Big.GrowthMB), b.Big.GrowthMB*(1<<20) < 10e6)
		}
	}
	if c := r.find("cache"); c != nil && len(c.Rates) > 0 {
		// A hit has no upstream call: the gateway's own time (its
		// overhead header, taken as the answer's headers go out) is
		// the hit's whole time in the gateway. The end-to-end p50 adds
		// the client's and the kernel's share, which on loopback is
		// already more than 200 µs for the mock alone (scenario 1).
		var got []string
		met := true
		for _, p := range c.Rates {
			got = append(got, fmt.Sprintf("%.0f µs at %d/s", p.Overhead50, p.Rate))
			met = met && p.Overhead50 > 0 && p.Overhead50 <= 200 && p.CacheHits > 0.99
		}
		p := c.Rates[0]
		add("cache hit p50 ≤ 200 µs (the gateway's time for a hit)", fmt.Sprintf("%s; end to end %.0f µs at %d/s, hits %.0f %%",
			strings.Join(got, ", "), p.P50, p.Rate, 100*p.CacheHits), met)
	}
	for _, pair := range [][2]string{{"gateway", "portkey"}, {"gateway-stream", "portkey-stream"}} {
		g, p := r.find(pair[0]), r.find(pair[1])
		if g != nil && p != nil && p.Saturation.Throughput > 0 {
			ratio := g.Saturation.Throughput / p.Saturation.Throughput
			add(fmt.Sprintf("≥ 10× Portkey's saturation throughput (%s)", pair[0]), fmt.Sprintf("%.1f×", ratio), ratio >= 10)
		}
	}
}

func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.md"), r.markdown(), 0o644)
}

func us(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v >= 10000:
		return fmt.Sprintf("%.1f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func mib(b int64) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// markdown renders the run as the tables the README shows.
func (r *report) markdown() []byte {
	var b bytes.Buffer
	m := r.Machine
	fmt.Fprintf(&b, "Run of %s on %s (%d cores, %s, %s); %s; %s, Go %s",
		r.Started.Format("2006-01-02"), m.CPU, m.Cores, m.Memory, m.Kernel, m.Sharing, m.Caddy, strings.TrimPrefix(m.Go, "go"))
	if m.Node != "" {
		fmt.Fprintf(&b, ", Node %s", m.Node)
	}
	fmt.Fprintf(&b, ". Each run lasts %s; saturation uses %d connections; latencies are end to end at fixed open-loop rates (vegeta).\n\n", r.Duration, r.Workers)

	bare, bareStream := r.find("caddy"), r.find("caddy-stream")
	b.WriteString("| Scenario | Saturation | vs bare proxy | p50 / p99 at fixed rates | vs bare p50 | Time to first byte p50 | Gateway overhead p50 | Allocs/req | Peak RSS |\n")
	b.WriteString("|---|---:|---:|---|---|---:|---:|---:|---:|\n")
	for i := range r.Results {
		res := &r.Results[i]
		if res.Big != nil {
			continue
		}
		if res.Err != "" {
			fmt.Fprintf(&b, "| %s | failed: %s |||||||\n", res.Title, strings.ReplaceAll(res.Err, "|", "/"))
			continue
		}
		base := bare
		if strings.HasSuffix(res.ID, "-stream") {
			base = bareStream
		}
		vs := "–"
		if base != nil && base != res && base.Saturation.Throughput > 0 {
			vs = fmt.Sprintf("%.2f×", res.Saturation.Throughput/base.Saturation.Throughput)
		}
		var lat, delta, ttfb, over []string
		for _, p := range res.Rates {
			lat = append(lat, fmt.Sprintf("%d/s: %s / %s", p.Rate, us(p.P50), us(p.P99)))
			if base != nil && base != res {
				if q := base.at(p.Rate); q != nil {
					delta = append(delta, fmt.Sprintf("%+.0f µs", p.P50-q.P50))
				}
			}
			if p.TTFB50 > 0 {
				ttfb = append(ttfb, us(p.TTFB50))
			}
			if p.Overhead50 > 0 {
				over = append(over, us(p.Overhead50))
			}
		}
		allocs := "–"
		if a := res.Saturation.AllocsPerRq; a > 0 {
			allocs = fmt.Sprintf("%.0f", a)
		}
		fmt.Fprintf(&b, "| %s | %.0f/s | %s | %s | %s | %s | %s | %s | %s |\n", res.Title, res.Saturation.Throughput, vs,
			orDash(strings.Join(lat, "; ")), orDash(strings.Join(delta, ", ")), orDash(strings.Join(ttfb, ", ")),
			orDash(strings.Join(over, ", ")), allocs, mib(res.PeakRSS))
	}
	var big []*result
	for i := range r.Results {
		if r.Results[i].Big != nil || (r.Results[i].Err != "" && strings.HasSuffix(r.Results[i].ID, "-big")) {
			big = append(big, &r.Results[i])
		}
	}
	if len(big) > 0 {
		fmt.Fprintf(&b, "\nMemory while one %d MB answer streams through, read at full speed:\n\n", r.BigBytes/1e6)
		b.WriteString("| Scenario | RSS before | RSS peak | Growth | Rate |\n|---|---:|---:|---:|---:|\n")
		for _, res := range big {
			if res.Big == nil || res.Err != "" {
				fmt.Fprintf(&b, "| %s | failed: %s ||||\n", res.Title, strings.ReplaceAll(res.Err, "|", "/"))
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.1f MiB | %.0f MB/s |\n", res.Title, mib(res.Big.RSSBefore), mib(res.Big.RSSPeak),
				res.Big.GrowthMB, float64(res.Big.Bytes)/1e6/res.Big.Seconds)
		}
	}
	if len(r.Checks) > 0 {
		b.WriteString("\nTargets (ratios and differences within this run):\n\n| Target | This run | Met |\n|---|---|---|\n")
		for _, c := range r.Checks {
			met := "no"
			if c.Met {
				met = "yes"
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Target, c.Got, met)
		}
	}
	return b.Bytes()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// The README keeps the latest tables between these markers.
const (
	readmeBegin = "<!-- bench:begin -->"
	readmeEnd   = "<!-- bench:end -->"
)

func (r *report) updateReadme(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, readmeBegin), strings.Index(s, readmeEnd)
	if i < 0 || j < i {
		return errors.New(path + " has no " + readmeBegin + " … " + readmeEnd + " section")
	}
	s = s[:i+len(readmeBegin)] + "\n" + string(r.markdown()) + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
