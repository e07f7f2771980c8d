// Command bench measures the gateway's cost in the hot path: the same
// fast mock provider is reached straight, through a bare Caddy
// reverse_proxy, through the gateway (pass-through, translation, a
// 200-event stream, a cache hit, budgets with the ledger) and through a
// peer gateway (Portkey), under open-loop load from vegeta in the same
// run. Results are stated as ratios against the bare reverse proxy,
// because absolute times change from machine to machine.
//
// Run it with bench/run.sh, which builds the gateway and installs the
// peer first. It writes results/latest.json and results/latest.md and,
// with -readme, puts the Markdown tables into the README between the
// bench markers.
//
// Every server is started on loopback by the command itself and stopped
// before the next scenario, so each scenario's peak memory is its own.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// benchKey is the client key of the budget scenario.
const benchKey = "llmgate-bench-client-key"

// options are the command's flags.
type options struct {
	caddy, portkey, out, readme string
	profile                     bool
	duration, warmup            time.Duration
	rates                       []int
	workers                     int
	bigBytes                    int64
	only                        *regexp.Regexp
}

// scenario is one way of reaching the mock.
type scenario struct {
	ID    string
	Title string
	// Server is "direct", "caddy" (Caddyfile below) or "portkey".
	Server string
	// Caddyfile renders the server's config for Caddy scenarios.
	Caddyfile func(e env) string
	Mock      mockConfig
	// Path of the request; Body its body, Header extra headers.
	Path   string
	Body   string
	Header map[string]string
	Stream bool
	// Big: one very long stream, measuring memory instead of load.
	Big bool
}

// env is what a server's config is rendered from.
type env struct {
	Port    int
	Admin   string
	Mock    string
	Storage string
}

const (
	chatBody   = `{"model":"bench-model","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":64}`
	streamBody = `{"model":"bench-model","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":64,"stream":true}`
)

func bareCaddy(e env) string {
	return fmt.Sprintf(`{
	admin %s
	auto_https off
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	reverse_proxy %s {
		flush_interval -1
	}
}
`, e.Admin, e.Port, e.Mock)
}

// gateway renders a gateway config whose one provider (of dialect
// dialect) is the mock; llm adds lines to the llm app, site to the site.
func gateway(dialect, llm, site string) func(env) string {
	return func(e env) string {
		return fmt.Sprintf(`{
	admin %s
	auto_https off
	llm {
		storage %s
		overhead_header
		provider mock {
			dialect %s
			url http://%s
		}
		model bench-model mock bench-upstream {
			price 1 2
		}
%s	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
%s	llm_route
	llm_translate
}
`, e.Admin, e.Storage, dialect, e.Mock, llm, e.Port, site)
	}
}

func keyHash(k string) string {
	s := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(s[:])
}

func scenarios(bigBytes int64) []scenario {
	small := mockConfig{ChunkBytes: 16}
	stream := mockConfig{Chunks: 200, ChunkBytes: 16}
	big := mockConfig{ChunkBytes: 1024, TotalBytes: bigBytes}
	portkey := map[string]string{"X-Portkey-Provider": "openai", "Authorization": "Bearer sk-bench"}
	budget := fmt.Sprintf("\tllm_budget {\n\t\tkey bench %s daily 1000000 monthly 10000000\n\t}\n", keyHash(benchKey))
	return []scenario{
		{ID: "direct", Title: "(1) client straight to the mock", Server: "direct", Mock: small, Path: "/v1/chat/completions", Body: chatBody},
		{ID: "caddy", Title: "(2) bare Caddy reverse_proxy", Server: "caddy", Caddyfile: bareCaddy, Mock: small, Path: "/v1/chat/completions", Body: chatBody},
		{ID: "gateway", Title: "(3) gateway, pass-through (OpenAI → OpenAI)", Server: "caddy", Caddyfile: gateway("openai", "", ""), Mock: small, Path: "/v1/chat/completions", Body: chatBody},
		{ID: "translate", Title: "(4) gateway, translation (OpenAI → Anthropic)", Server: "caddy", Caddyfile: gateway("anthropic", "", ""), Mock: small, Path: "/v1/chat/completions", Body: chatBody},
		{ID: "cache", Title: "(6) gateway, cache hit", Server: "caddy", Caddyfile: gateway("openai", "\t\tcache {\n\t\t\tttl 1h\n\t\t}\n", ""), Mock: small, Path: "/v1/chat/completions", Body: chatBody},
		{ID: "budget", Title: "(7) gateway, budget and ledger", Server: "caddy", Caddyfile: gateway("openai", "", budget), Mock: small, Path: "/v1/chat/completions", Body: chatBody,
			Header: map[string]string{"Authorization": "Bearer " + benchKey}},
		{ID: "portkey", Title: "Portkey 1.15.2, pass-through", Server: "portkey", Mock: small, Path: "/v1/chat/completions", Body: chatBody, Header: portkey},

		{ID: "direct-stream", Title: "(1) straight to the mock, 200-event stream", Server: "direct", Mock: stream, Path: "/v1/chat/completions", Body: streamBody, Stream: true},
		{ID: "caddy-stream", Title: "(2) bare Caddy, 200-event stream", Server: "caddy", Caddyfile: bareCaddy, Mock: stream, Path: "/v1/chat/completions", Body: streamBody, Stream: true},
		{ID: "gateway-stream", Title: "(5) gateway, 200-event stream, pass-through", Server: "caddy", Caddyfile: gateway("openai", "", ""), Mock: stream, Path: "/v1/chat/completions", Body: streamBody, Stream: true},
		{ID: "translate-stream", Title: "(5) gateway, 200-event stream, Anthropic → OpenAI", Server: "caddy", Caddyfile: gateway("anthropic", "", ""), Mock: stream, Path: "/v1/chat/completions", Body: streamBody, Stream: true},
		{ID: "portkey-stream", Title: "Portkey 1.15.2, 200-event stream", Server: "portkey", Mock: stream, Path: "/v1/chat/completions", Body: streamBody, Stream: true, Header: portkey},

		{ID: "caddy-big", Title: "bare Caddy, one long stream", Server: "caddy", Caddyfile: bareCaddy, Mock: big, Path: "/v1/chat/completions", Body: streamBody, Stream: true, Big: true},
		{ID: "gateway-big", Title: "gateway, one long stream, pass-through", Server: "caddy", Caddyfile: gateway("openai", "", ""), Mock: big, Path: "/v1/chat/completions", Body: streamBody, Stream: true, Big: true},
		{ID: "translate-big", Title: "gateway, one long stream, Anthropic → OpenAI", Server: "caddy", Caddyfile: gateway("anthropic", "", ""), Mock: big, Path: "/v1/chat/completions", Body: streamBody, Stream: true, Big: true},
	}
}

// server is a running server under test.
type server struct {
	proc  *proc
	url   string
	admin string // Caddy's admin address, for allocation counts
}

func (s *server) stop() {
	if s.proc != nil {
		s.proc.stop()
	}
}

func startServer(o *options, sc scenario, mockAddr, dir string) (*server, error) {
	switch sc.Server {
	case "direct":
		return &server{url: "http://" + mockAddr}, nil
	case "caddy":
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		aport, err := freePort()
		if err != nil {
			return nil, err
		}
		e := env{Port: port, Admin: "127.0.0.1:" + strconv.Itoa(aport), Mock: mockAddr, Storage: filepath.Join(dir, "llm")}
		conf := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(conf, []byte(sc.Caddyfile(e)), 0o600); err != nil {
			return nil, err
		}
		cmd := exec.Command(o.caddy, "run", "--config", conf, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
		s, err := serve("caddy", cmd, port)
		if err == nil {
			s.admin = e.Admin
		}
		return s, err
	case "portkey":
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		loopback, _ := filepath.Abs(filepath.Join(o.portkey, "loopback.mjs"))
		cmd := exec.Command("node", "--import", "file://"+loopback,
			filepath.Join(o.portkey, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js"),
			"--port="+strconv.Itoa(port), "--headless")
		cmd.Env = append(os.Environ(), "NODE_ENV=production")
		return serve("portkey", cmd, port)
	}
	return nil, fmt.Errorf("unknown server kind %q", sc.Server)
}

// serve starts a server process and waits until it listens on port.
func serve(name string, cmd *exec.Cmd, port int) (*server, error) {
	p, err := start(name, cmd)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitListening(p, addr, 30*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return &server{proc: p, url: "http://" + addr}, nil
}

func (sc scenario) target(s *server, mockAddr string) target {
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range sc.Header {
		h.Set(k, v)
	}
	if sc.Server == "portkey" {
		h.Set("X-Portkey-Custom-Host", "http://"+mockAddr+"/v1")
	}
	return target{URL: s.url + sc.Path, Body: []byte(sc.Body), Header: h, Stream: sc.Stream}
}

// run measures one scenario.
func run(o *options, sc scenario) result {
	r := result{ID: sc.ID, Title: sc.Title}
	dir, err := os.MkdirTemp("", "llmbench-"+sc.ID+"-")
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer os.RemoveAll(dir)
	mp, mockAddr, err := startMock(sc.Mock)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer mp.stop()
	srv, err := startServer(o, sc, mockAddr, dir)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer srv.stop()
	t := sc.target(srv, mockAddr)
	pid := mp.pid()
	if srv.proc != nil {
		pid = srv.proc.pid()
	}

	if sc.Big {
		// One short stream first, so that what is measured is the
		// growth an answer causes, not the first request's setup.
		warm := t
		warm.Header = t.Header.Clone()
		warm.Header.Set("X-Mock-Chunks", "10")
		if w := attack(warm, 20, 0, 500*time.Millisecond, ""); w.Success < 1 {
			r.Err = "warm-up failed: " + strings.Join(w.Errors, "; ")
			return r
		}
		n, took, before, peak, err := bigStream(t, pid)
		r.Big = &bigResult{Bytes: n, Seconds: took.Seconds(), RSSBefore: before, RSSPeak: peak,
			GrowthMB: float64(peak-before) / (1 << 20)}
		if err != nil {
			r.Err = err.Error()
		}
		return r
	}

	fmt.Fprintf(os.Stderr, "  %-18s warm-up", sc.ID)
	w := attack(t, 200, 0, o.warmup, "")
	if w.Success < 1 {
		r.Err = "warm-up failed: " + strings.Join(w.Errors, "; ")
		fmt.Fprintln(os.Stderr, " failed:", r.Err)
		return r
	}
	fmt.Fprintf(os.Stderr, ", saturation")
	var prof chan error
	if o.profile && srv.admin != "" {
		// A CPU profile of the server over the saturation run (pprof
		// from Caddy's admin endpoint), for finding the hot path.
		prof = make(chan error, 1)
		go func() { prof <- saveProfile(srv.admin, o.duration, filepath.Join(o.out, sc.ID+".cpu.pprof")) }()
	}
	r.Saturation = attack(t, 0, o.workers, o.duration, srv.admin)
	if prof != nil {
		err := <-prof
		if err == nil {
			// Allocations since the start, most of them this run's.
			err = fetch("http://"+srv.admin+"/debug/pprof/allocs", filepath.Join(o.out, sc.ID+".allocs.pprof"))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, " (profile: %v)", err)
		}
	}
	for _, rate := range o.rates {
		if float64(rate) > 0.8*r.Saturation.Throughput {
			// Past saturation an open-loop run measures the queue, not
			// the server.
			continue
		}
		fmt.Fprintf(os.Stderr, ", %d/s", rate)
		r.Rates = append(r.Rates, attack(t, rate, 0, o.duration, ""))
	}
	fmt.Fprintln(os.Stderr)
	r.PeakRSS = procStatus(pid, "VmHWM")
	return r
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "mock" {
		if err := runMock(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "mock:", err)
			os.Exit(1)
		}
		return
	}
	o := &options{}
	var rates, only, big, from string
	var quick bool
	flag.StringVar(&o.caddy, "caddy", "../bin/caddy", "the gateway binary (Caddy with the plugin; also serves the bare reverse_proxy)")
	flag.StringVar(&o.portkey, "portkey", "portkey", "directory with Portkey's node_modules (bench/portkey); empty skips the peer")
	flag.StringVar(&o.out, "out", "results", "directory for latest.json and latest.md")
	flag.StringVar(&o.readme, "readme", "", "README to update between the bench markers (empty: leave it)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up before each scenario")
	flag.StringVar(&rates, "rates", "100,500,1000", "fixed request rates (per second) for the latency runs")
	flag.IntVar(&o.workers, "workers", 32, "concurrent connections of the saturation run")
	flag.StringVar(&big, "big", "100MB", "size of the long stream of the memory runs")
	flag.StringVar(&only, "run", "", "only scenarios whose id matches this regexp")
	flag.BoolVar(&o.profile, "profile", false, "save a CPU profile of each Caddy server's saturation run in the -out directory")
	flag.StringVar(&from, "from", "", "render the tables and targets of a saved run (a latest.json) instead of running")
	flag.BoolVar(&quick, "quick", false, "short runs (1s), to check that the harness works")
	flag.Parse()
	if quick {
		o.duration, o.warmup, rates = time.Second, 300*time.Millisecond, "100"
	}
	for _, s := range strings.Split(rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bad -rates %q\n", rates)
			os.Exit(2)
		}
		o.rates = append(o.rates, n)
	}
	var err error
	if o.bigBytes, err = parseSize(big); err != nil {
		fmt.Fprintln(os.Stderr, "bad -big:", err)
		os.Exit(2)
	}
	if only != "" {
		if o.only, err = regexp.Compile(only); err != nil {
			fmt.Fprintln(os.Stderr, "bad -run:", err)
			os.Exit(2)
		}
	}
	if from != "" {
		if err := rerender(o, from); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := benchmark(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func benchmark(o *options) error {
	if _, err := os.Stat(o.caddy); err != nil {
		return fmt.Errorf("gateway binary: %w (bench/run.sh builds it)", err)
	}
	rep := &report{Started: time.Now().UTC(), Duration: o.duration.String(), Workers: o.workers, Rates: o.rates,
		BigBytes: o.bigBytes, Machine: describeMachine(o)}
	peer := o.portkey != ""
	if peer {
		if _, err := os.Stat(filepath.Join(o.portkey, "node_modules", "@portkey-ai", "gateway")); err != nil {
			return fmt.Errorf("portkey is not installed in %s (bench/run.sh installs it; -portkey '' skips it)", o.portkey)
		}
	}
	failed := 0
	for _, sc := range scenarios(o.bigBytes) {
		if (o.only != nil && !o.only.MatchString(sc.ID)) || (sc.Server == "portkey" && !peer) {
			continue
		}
		r := run(o, sc)
		if r.Err != "" {
			failed++
			fmt.Fprintf(os.Stderr, "  %s: %s\n", sc.ID, r.Err)
		}
		rep.Results = append(rep.Results, r)
	}
	if err := rep.publish(o); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d scenario(s) failed", failed)
	}
	return nil
}

// rerender writes the tables of a saved run again (after a change to the
// report or the targets), without measuring anything.
func rerender(o *options, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	rep := &report{}
	if err := json.Unmarshal(b, rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return rep.publish(o)
}

// publish checks the targets, writes latest.json and latest.md (and the
// README's tables with -readme) and prints the tables.
func (r *report) publish(o *options) error {
	r.check()
	if err := r.write(o.out); err != nil {
		return err
	}
	if o.readme != "" {
		if err := r.updateReadme(o.readme); err != nil {
			return err
		}
	}
	_, err := os.Stdout.Write(r.markdown())
	return err
}

// saveProfile fetches a CPU profile of d from a Caddy admin endpoint.
func saveProfile(admin string, d time.Duration, path string) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	return fetch(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, secs), path)
}

// fetch saves what a GET of url answers in path.
func fetch(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// parseSize reads sizes such as 100MB, 64KiB or 1000.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}
