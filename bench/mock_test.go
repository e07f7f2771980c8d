package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for the command when the
// harness starts its mock subprocess (os.Executable is the test binary).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "mock" {
		if err := runMock(os.Args[2:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func post(t *testing.T, m *mock, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, req)
	return rec
}

// sseData returns the data payloads of an SSE body.
func sseData(body string) []string {
	var out []string
	for _, ev := range strings.Split(body, "\n\n") {
		for _, line := range strings.Split(ev, "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				out = append(out, d)
			}
		}
	}
	return out
}

func TestMockJSON(t *testing.T) {
	m := newMock(mockConfig{ChunkBytes: 5})
	for _, path := range []string{"/v1/chat/completions", "/v1/messages"} {
		rec := post(t, m, path, chatBody, nil)
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %v", path, rec.Code, rec.Header())
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if _, ok := v["usage"]; !ok || !strings.Contains(rec.Body.String(), `"xxxxx"`) {
			t.Errorf("%s: %s", path, rec.Body)
		}
	}
	if rec := post(t, m, "/v1/other", chatBody, nil); rec.Code != 404 {
		t.Errorf("unknown path: %d", rec.Code)
	}
}

func TestMockOpenAIStream(t *testing.T) {
	m := newMock(mockConfig{Chunks: 7, ChunkBytes: 3})
	rec := post(t, m, "/v1/chat/completions", streamBody, nil)
	data := sseData(rec.Body.String())
	// role chunk, 7 content chunks, finish chunk, [DONE]
	if rec.Header().Get("Content-Type") != "text/event-stream" || len(data) != 10 || data[9] != "[DONE]" {
		t.Fatalf("%v %d %q", rec.Header(), len(data), data)
	}
	for _, d := range data[:9] {
		if !json.Valid([]byte(d)) {
			t.Fatalf("not JSON: %s", d)
		}
	}
	if strings.Contains(rec.Body.String(), `"usage"`) {
		t.Error("usage chunk without include_usage")
	}
	withUsage := strings.Replace(streamBody, `"stream":true`, `"stream":true,"stream_options":{"include_usage":true}`, 1)
	data = sseData(post(t, m, "/v1/chat/completions", withUsage, map[string]string{"X-Mock-Chunks": "2"}).Body.String())
	if len(data) != 6 || !strings.Contains(data[4], `"completion_tokens":2`) {
		t.Errorf("usage and X-Mock-Chunks: %q", data)
	}
}

func TestMockAnthropicStreamAndTotalBytes(t *testing.T) {
	m := newMock(mockConfig{ChunkBytes: 1000, TotalBytes: 10_500})
	rec := post(t, m, "/v1/messages", streamBody, nil)
	body := rec.Body.String()
	if n := strings.Count(body, "event: content_block_delta"); n != 11 {
		t.Errorf("%d deltas for 10.5 kB in 1 kB chunks", n)
	}
	for _, want := range []string{"event: message_start", "event: message_delta", `"output_tokens":11`, "event: message_stop"} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s", want)
		}
	}
}

// TestMockProcess runs the mock as the harness does: a child process
// that reports its address.
func TestMockProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	p, addr, err := startMock(mockConfig{Chunks: 3, ChunkBytes: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", bytes.NewReader([]byte(streamBody)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.HasSuffix(b, []byte("data: [DONE]\n\n")) || len(sseData(string(b))) != 6 {
		t.Errorf("%s", b)
	}
}
