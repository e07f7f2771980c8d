package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mockConfig shapes the mock provider's answers.
type mockConfig struct {
	// Chunks is the number of content events of a streamed answer.
	Chunks int
	// ChunkBytes is the text length of each content event (and of the
	// whole text of a non-streamed answer).
	ChunkBytes int
	// TotalBytes, when set, makes every streamed answer carry about this
	// many bytes of text (Chunks is then derived from ChunkBytes).
	TotalBytes int64
	// Latency is waited before the answer's headers.
	Latency time.Duration
}

func (c mockConfig) args() []string {
	return []string{"-chunks", strconv.Itoa(c.Chunks), "-chunk-bytes", strconv.Itoa(c.ChunkBytes),
		"-total-bytes", strconv.FormatInt(c.TotalBytes, 10), "-latency", c.Latency.String()}
}

func (c mockConfig) chunks() int {
	if c.TotalBytes > 0 && c.ChunkBytes > 0 {
		return int((c.TotalBytes + int64(c.ChunkBytes) - 1) / int64(c.ChunkBytes))
	}
	return c.Chunks
}

// mock is a provider that answers at once with canned bodies, fast
// enough that the proxies in front of it are what a run measures: the
// OpenAI Chat Completions and Anthropic Messages dialects, JSON and SSE.
type mock struct {
	cfg mockConfig
	// Pre-rendered bodies and stream events.
	openAIJSON, anthropicJSON   []byte
	openAIChunk, anthropicChunk []byte
}

func newMock(cfg mockConfig) *mock {
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = 16
	}
	text := strings.Repeat("x", cfg.ChunkBytes)
	m := &mock{cfg: cfg}
	m.openAIJSON = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":"bench-upstream",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"` + text + `","refusal":null},"logprobs":null,"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}`)
	m.anthropicJSON = []byte(`{"id":"msg_bench","type":"message","role":"assistant","model":"bench-upstream",` +
		`"content":[{"type":"text","text":"` + text + `"}],"stop_reason":"end_turn","stop_sequence":null,` +
		`"usage":{"input_tokens":12,"output_tokens":9}}`)
	m.openAIChunk = []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"model":"bench-upstream",` +
		`"choices":[{"index":0,"delta":{"content":"` + text + `"},"finish_reason":null}]}` + "\n\n")
	m.anthropicChunk = []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"" + text + "\"}}\n\n")
	return m
}

func (m *mock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if m.cfg.Latency > 0 {
		time.Sleep(m.cfg.Latency)
	}
	stream := bytes.Contains(body, []byte(`"stream":true`))
	chunks := m.cfg.chunks()
	if v := r.Header.Get("X-Mock-Chunks"); v != "" {
		// A short answer from a mock set up for long ones (warm-up).
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			chunks = n
		}
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		if stream {
			m.openAIStream(w, chunks, bytes.Contains(body, []byte(`"include_usage":true`)))
			return
		}
		writeJSON(w, m.openAIJSON)
	case strings.HasSuffix(r.URL.Path, "/messages"):
		if stream {
			m.anthropicStream(w, chunks)
			return
		}
		writeJSON(w, m.anthropicJSON)
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	_, _ = w.Write(b)
}

// streamer writes events and flushes each one, as a provider emitting
// tokens does.
type streamer struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startStream(w http.ResponseWriter) streamer {
	h := w.Header()
	h["Content-Type"] = []string{"text/event-stream"}
	h["Cache-Control"] = []string{"no-cache"}
	w.WriteHeader(http.StatusOK)
	return streamer{w, http.NewResponseController(w)}
}

func (s streamer) send(b []byte) bool {
	if _, err := s.w.Write(b); err != nil {
		return false
	}
	return s.rc.Flush() == nil
}

func (m *mock) openAIStream(w http.ResponseWriter, chunks int, usage bool) {
	s := startStream(w)
	const pre = `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"model":"bench-upstream",`
	if !s.send([]byte(pre + `"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")) {
		return
	}
	for i := chunks; i > 0; i-- {
		if !s.send(m.openAIChunk) {
			return
		}
	}
	end := pre + `"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	if usage {
		end += pre + `"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":` + strconv.Itoa(chunks) + `,"total_tokens":` + strconv.Itoa(12+chunks) + "}}\n\n"
	}
	s.send([]byte(end + "data: [DONE]\n\n"))
}

func (m *mock) anthropicStream(w http.ResponseWriter, chunks int) {
	s := startStream(w)
	if !s.send([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"bench-upstream\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")) {
		return
	}
	for i := chunks; i > 0; i-- {
		if !s.send(m.anthropicChunk) {
			return
		}
	}
	s.send([]byte("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":" + strconv.Itoa(chunks) + "}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
}

// runMock is the "mock" subcommand: the mock provider as a process of
// its own, so that it does not share a Go runtime with the load driver.
// It prints its address on stdout and serves until killed.
func runMock(args []string) error {
	fs := flag.NewFlagSet("mock", flag.ContinueOnError)
	var cfg mockConfig
	fs.IntVar(&cfg.Chunks, "chunks", 200, "content events per streamed answer")
	fs.IntVar(&cfg.ChunkBytes, "chunk-bytes", 16, "text bytes per content event")
	fs.Int64Var(&cfg.TotalBytes, "total-bytes", 0, "text bytes per streamed answer (overrides -chunks)")
	fs.DurationVar(&cfg.Latency, "latency", 0, "wait before answering")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: newMock(cfg), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
