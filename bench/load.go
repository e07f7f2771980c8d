package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// proc is a server process started for one scenario.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

func start(name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, log: &bytes.Buffer{}, done: make(chan struct{})}
	lb := &lockedWriter{w: p.log}
	if cmd.Stdout == nil {
		cmd.Stdout = lb
	}
	cmd.Stderr = lb
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process: SIGTERM, then SIGKILL after a grace period.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the process's output, for error messages.
func (p *proc) tail() string {
	s := p.log.String()
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

// startMock runs this binary's mock subcommand and returns the process
// and its address.
func startMock(cfg mockConfig) (*proc, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe, append([]string{"mock"}, cfg.args()...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	p, err := start("mock", cmd)
	if err != nil {
		return nil, "", err
	}
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		p.stop()
		return nil, "", fmt.Errorf("mock did not report its address: %v %s", err, p.tail())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return p, strings.TrimSpace(addr), nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until addr accepts connections or p exits.
func waitListening(p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, p.tail())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening on %s after %s: %s", p.name, addr, timeout, p.tail())
}

// procStatus reads a "VmXXX:" field of /proc/<pid>/status in bytes.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// mallocs reads the cumulative heap allocation count of a Caddy process
// from its admin endpoint's expvar page (-1 when unavailable).
func mallocs(admin string) int64 {
	if admin == "" {
		return -1
	}
	resp, err := http.Get("http://" + admin + "/debug/vars")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct {
		Memstats struct{ Mallocs int64 } `json:"memstats"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return -1
	}
	return v.Memstats.Mallocs
}

// target is the request a scenario sends.
type target struct {
	URL    string
	Body   []byte
	Header http.Header
	// Stream: the answer is an SSE stream that must end with [DONE].
	Stream bool
}

// point is the result of one attack: at a fixed rate, or at saturation
// (Rate 0, a fixed number of concurrent connections).
type point struct {
	Rate        int      `json:"rate"`
	Workers     int      `json:"workers,omitempty"`
	Requests    uint64   `json:"requests"`
	Success     float64  `json:"success"`
	Throughput  float64  `json:"throughput_rps"`
	P50         float64  `json:"p50_us"`
	P99         float64  `json:"p99_us"`
	TTFB50      float64  `json:"ttfb_p50_us,omitempty"`
	TTFB99      float64  `json:"ttfb_p99_us,omitempty"`
	Overhead50  float64  `json:"overhead_p50_us,omitempty"`
	Overhead99  float64  `json:"overhead_p99_us,omitempty"`
	CacheHits   float64  `json:"cache_hit_ratio,omitempty"`
	AllocsPerRq float64  `json:"allocs_per_request,omitempty"`
	Errors      []string `json:"errors,omitempty"`
}

// observer is the client transport of an attack: it records each
// answer's time to first body byte and the gateway's overhead header.
type observer struct {
	rt       http.RoundTripper
	mu       sync.Mutex
	ttfb     []time.Duration
	overhead []time.Duration
	hits     int
	answers  int
}

func (o *observer) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := o.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.answers++
	if v := resp.Header.Get("X-Llm-Overhead-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil {
			o.overhead = append(o.overhead, time.Duration(ms*float64(time.Millisecond)))
		}
	}
	if resp.Header.Get("X-Llm-Cache") == "hit" {
		o.hits++
	}
	o.mu.Unlock()
	resp.Body = &firstByte{ReadCloser: resp.Body, start: start, o: o}
	return resp, nil
}

type firstByte struct {
	io.ReadCloser
	start time.Time
	o     *observer
	seen  bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if n > 0 && !f.seen {
		f.seen = true
		d := time.Since(f.start)
		f.o.mu.Lock()
		f.o.ttfb = append(f.o.ttfb, d)
		f.o.mu.Unlock()
	}
	return n, err
}

func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q * float64(len(ds)-1))
	return float64(ds[i]) / float64(time.Microsecond)
}

// attack sends t at rate requests per second for d (open loop: requests
// leave on schedule whether or not earlier ones have been answered), or,
// with rate 0, as fast as workers concurrent connections allow.
func attack(t target, rate, workers int, d time.Duration, admin string) point {
	o := &observer{rt: newTransport()}
	client := &http.Client{Transport: o, Timeout: 60 * time.Second}
	opts := []func(*vegeta.Attacker){vegeta.Client(client), vegeta.MaxBody(-1)}
	var pacer vegeta.Pacer
	if rate > 0 {
		pacer = vegeta.ConstantPacer{Freq: rate, Per: time.Second}
	} else {
		pacer = vegeta.ConstantPacer{Freq: 0}
		opts = append(opts, vegeta.Workers(uint64(workers)), vegeta.MaxWorkers(uint64(workers)))
	}
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: t.URL, Body: t.Body, Header: t.Header})
	before := mallocs(admin)
	var m vegeta.Metrics
	errs := map[string]int{}
	for res := range vegeta.NewAttacker(opts...).Attack(tr, pacer, d, "bench") {
		if res.Error == "" && res.Code == http.StatusOK && t.Stream && !bytes.HasSuffix(res.Body, []byte("data: [DONE]\n\n")) {
			res.Code, res.Error = 0, "stream ended without [DONE]"
		}
		if res.Error == "" && res.Code != http.StatusOK {
			res.Error = fmt.Sprintf("status %d: %.200s", res.Code, res.Body)
		}
		if res.Error != "" {
			errs[res.Error]++
		}
		res.Body = nil
		m.Add(res)
	}
	m.Close()
	p := point{Rate: rate, Requests: m.Requests, Success: m.Success, Throughput: m.Throughput,
		P50: float64(m.Latencies.P50) / 1e3, P99: float64(m.Latencies.P99) / 1e3,
		TTFB50: quantile(o.ttfb, 0.5), TTFB99: quantile(o.ttfb, 0.99),
		Overhead50: quantile(o.overhead, 0.5), Overhead99: quantile(o.overhead, 0.99)}
	if rate == 0 {
		p.Workers = workers
	}
	if !t.Stream {
		p.TTFB50, p.TTFB99 = 0, 0
	}
	if o.answers > 0 {
		p.CacheHits = float64(o.hits) / float64(o.answers)
	}
	if after := mallocs(admin); before >= 0 && after >= 0 && m.Requests > 0 {
		p.AllocsPerRq = float64(after-before) / float64(m.Requests)
	}
	for e, n := range errs {
		p.Errors = append(p.Errors, fmt.Sprintf("%d× %s", n, e))
	}
	slices.Sort(p.Errors)
	if len(p.Errors) > 5 {
		p.Errors = p.Errors[:5]
	}
	return p
}

// bigStream sends one request whose answer is a very long stream and
// reads it at full speed, sampling the server's resident memory as it
// goes. It returns the bytes read, the time taken, the resident memory
// before the request and the most seen while the answer streamed.
func bigStream(t target, pid int) (n int64, took time.Duration, before, peak int64, err error) {
	before = procStatus(pid, "VmRSS")
	peak = before
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if v := procStatus(pid, "VmRSS"); v > 0 {
					mu.Lock()
					peak = max(peak, v)
					mu.Unlock()
				}
			}
		}
	}()
	req, _ := http.NewRequest(http.MethodPost, t.URL, bytes.NewReader(t.Body))
	for k, v := range t.Header {
		req.Header[k] = v
	}
	begin := time.Now()
	resp, err := (&http.Client{Transport: newTransport()}).Do(req)
	if err == nil {
		var tail tailWriter
		n, err = io.Copy(&tail, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if err == nil && !bytes.HasSuffix(tail.b, []byte("data: [DONE]\n\n")) {
			err = errors.New("stream ended without [DONE]")
		}
	}
	took = time.Since(begin)
	cancel()
	wg.Wait()
	return n, took, before, peak, err
}

// tailWriter keeps the last bytes written to it.
type tailWriter struct{ b []byte }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > 64 {
		w.b = w.b[len(w.b)-64:]
	}
	return len(p), nil
}
