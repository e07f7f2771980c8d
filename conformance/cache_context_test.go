package conformance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// startCacheGateway runs a gateway process of its own with the response
// cache on, an OpenAI-dialect and an Anthropic-dialect provider (both
// the mock), and no keys needed.
func startCacheGateway(t *testing.T) *teamGateway {
	return startOwnGateway(t, func(httpPort, httpsPort int, admin, storage, mockURL string) string {
		return fmt.Sprintf(`{
	admin %[3]s
	http_port %[1]d
	https_port %[2]d
	skip_install_trust
	llm {
		storage %[4]s
		provider oai {
			url %[5]s
			api_key %[6]s
		}
		provider ant {
			dialect anthropic
			url %[5]s
			api_key %[6]s
		}
		model cached-model oai upstream-model {
			price 1000 1000
		}
		model claude-cached ant upstream-claude {
			price 1000 1000
		}
		cache {
			ttl 1h
		}
		context {
			session_ttl 1h
		}
	}
}
:%[1]d {
	bind 127.0.0.1
	llm_route
	llm_translate
}
`, httpPort, httpsPort, admin, storage, mockURL, providerKey)
	})
}

// TestResponseCache: the official SDKs as clients of a gateway with the
// cache on. One provider call serves the same request again, streamed
// and not, to the OpenAI and the Anthropic SDK; the hit costs nothing
// and the ledger says what it saved; the cache outlives a restart;
// `caddy llm cache stats|clear` report and empty it.
func TestResponseCache(t *testing.T) {
	g := startCacheGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	oc := openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{
		Model:     "cached-model",
		MaxTokens: openai.Int(64),
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the capital of France?")},
	}
	askCached := func(want string) *openai.ChatCompletion {
		t.Helper()
		var resp *http.Response
		c, err := oc.Chat.Completions.New(ctx, params, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-Llm-Cache"); got != want {
			t.Errorf("x-llm-cache %q, want %q", got, want)
		}
		if c.Choices[0].Message.Content != mockllm.Text || c.Usage.CompletionTokens != mockllm.OutputTokens {
			t.Errorf("answer %q, usage %+v", c.Choices[0].Message.Content, c.Usage)
		}
		return c
	}
	askCached("miss")
	hit := askCached("hit")
	if got := gjson.Get(hit.RawJSON(), "_proxy.cost_usd").Float(); got != 0 {
		t.Errorf("a hit's _proxy.cost_usd = %v", got)
	}

	// Streamed, by the OpenAI SDK's accumulator.
	var sresp *http.Response
	st := oc.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&sresp))
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != mockllm.Text || sresp.Header.Get("X-Llm-Cache") != "hit" {
		t.Errorf("stream: %q, cache %q", acc.Choices[0].Message.Content, sresp.Header.Get("X-Llm-Cache"))
	}

	// The Anthropic SDK, streamed and not, on the same entry: the key is
	// the request, not the dialect it came in.
	ac := anthropic.NewClient(aoption.WithBaseURL(g.url+"/"), aoption.WithAPIKey("unused"), aoption.WithMaxRetries(0))
	aparams := anthropic.MessageNewParams{Model: "cached-model", MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the capital of France?"))}}
	var aresp *http.Response
	msg, err := ac.Messages.New(ctx, aparams, aoption.WithResponseInto(&aresp))
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != mockllm.Text || aresp.Header.Get("X-Llm-Cache") != "hit" || msg.Usage.OutputTokens != mockllm.OutputTokens {
		t.Errorf("anthropic: %+v, cache %q", msg.Content, aresp.Header.Get("X-Llm-Cache"))
	}
	as := ac.Messages.NewStreaming(ctx, aparams)
	var am anthropic.Message
	for as.Next() {
		if err := am.Accumulate(as.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := as.Err(); err != nil {
		t.Fatal(err)
	}
	if len(am.Content) != 1 || am.Content[0].Text != mockllm.Text || am.StopReason != anthropic.StopReasonEndTurn {
		t.Errorf("anthropic stream: %+v %q", am.Content, am.StopReason)
	}
	if n := g.mock.Count(); n != 1 {
		t.Errorf("the provider was called %d times, want 1", n)
	}

	// A streamed miss on the Anthropic provider serves a later OpenAI
	// client whole.
	aparams.Model = "claude-cached"
	as = ac.Messages.NewStreaming(ctx, aparams)
	for as.Next() {
	}
	if err := as.Err(); err != nil {
		t.Fatal(err)
	}
	p2 := params
	p2.Model = "claude-cached"
	var resp2 *http.Response
	if c, err := oc.Chat.Completions.New(ctx, p2, option.WithResponseInto(&resp2)); err != nil || c.Choices[0].Message.Content != mockllm.Text ||
		resp2.Header.Get("X-Llm-Cache") != "hit" {
		t.Errorf("anthropic stream then openai: %v %v", err, resp2.Header)
	}
	if n := g.mock.Count(); n != 2 {
		t.Errorf("the provider was called %d times, want 2", n)
	}

	// The ledger: misses cost, hits cost nothing and saved the misses'
	// cost.
	out, err := g.cli("stats", "--json")
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	tot := gjson.Get(out, "total")
	missCost := float64(mockllm.InputTokens+mockllm.OutputTokens) * 0.001
	if tot.Get("requests").Int() != 7 || tot.Get("cache_hits").Int() != 5 ||
		!near(tot.Get("cost_usd").Float(), 2*missCost) || !near(tot.Get("saved_usd").Float(), 5*missCost) {
		t.Errorf("stats: %s", tot.Raw)
	}
	out, err = g.cli("cache", "stats")
	if err != nil || !strings.Contains(out, "entries    2") || !strings.Contains(out, "hits       5") {
		t.Errorf("cache stats: %v\n%s", err, out)
	}

	// The cache outlives a restart.
	g.stop()
	g.start()
	askCached("hit")
	if out, err = g.cli("cache", "clear"); err != nil || !strings.Contains(out, "removed 2") {
		t.Errorf("cache clear: %v %s", err, out)
	}
	askCached("miss")
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestContextWatch: `caddy llm watch` keeps a 100-file project in the
// gateway; an official SDK asks with X-Inject-Context and the provider
// receives the whole project once, then only what changed; a change made
// while the gateway is down arrives once it is back, and the session
// state survives the restart.
func TestContextWatch(t *testing.T) {
	g := startCacheGateway(t)
	proj := t.TempDir()
	for i := 0; i < 100; i++ {
		writeFile(t, proj, fmt.Sprintf("pkg%d/file%02d.go", i%10, i), projectFile(i, 0))
	}
	writeFile(t, proj, ".gitignore", "*.log\n")
	writeFile(t, proj, "debug.log", "IGNORED-MARKER\n")

	watch := exec.Command(gatewayBin, "llm", "watch", proj, "--proxy", g.url, "--id", "proj", "--debounce", "100ms")
	var wlog syncBuffer
	watch.Stdout, watch.Stderr = &wlog, &wlog
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watch.Process.Kill(); _ = watch.Wait() })
	stats := waitContext(t, g, func(s gjson.Result) bool { return s.Get("files").Int() == 101 }, &wlog)
	if stats.Get("snapshots").Int() != 1 {
		t.Errorf("stats %s", stats.Raw)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	oc := openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0),
		option.WithHeader("X-Inject-Context", "true"), option.WithHeader("X-Context-Id", "proj"), option.WithHeader("X-Session-Id", "sess-1"),
		option.WithHeader("Cache-Control", "no-store"))
	ask := func(wantKind string) string {
		t.Helper()
		var resp *http.Response
		c, err := oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "cached-model",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("where is main?")}},
			option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if c.Choices[0].Message.Content != mockllm.Text || !strings.HasPrefix(resp.Header.Get("X-Llm-Context"), wantKind+";") {
			t.Errorf("answer %q, X-Llm-Context %q (want %s)", c.Choices[0].Message.Content, resp.Header.Get("X-Llm-Context"), wantKind)
		}
		reqs := g.mock.Requests()
		sys := gjson.GetBytes(reqs[len(reqs)-1].Body, "messages.0.content").Str
		if gjson.GetBytes(reqs[len(reqs)-1].Body, "messages.1.content").Str != "be brief" {
			t.Errorf("the client's system prompt moved: %s", reqs[len(reqs)-1].Body)
		}
		return sys
	}
	first := ask("snapshot")
	if !strings.HasPrefix(first, `<context_delta id="proj" version="1" kind="snapshot" files="101">`) ||
		strings.Count(first, "<file path=") != 101 || strings.Contains(first, "IGNORED-MARKER") {
		t.Fatalf("first injection (%d bytes): %.300s", len(first), first)
	}

	// Two files change: the next request carries the snapshot it had
	// plus a diff block of only those changes.
	writeFile(t, proj, "pkg3/file13.go", projectFile(13, 1))
	writeFile(t, proj, "pkg7/file47.go", projectFile(47, 1))
	waitContext(t, g, func(s gjson.Result) bool {
		return s.Get("deltas_applied").Int() >= 1 && s.Get("bytes").Int() == projectBytes(t, proj)
	}, &wlog)
	second := ask("delta")
	if !strings.HasPrefix(second, first) {
		t.Error("the session's earlier block changed")
	}
	added := second[len(first):]
	if !strings.Contains(added, `kind="diff"`) || !strings.Contains(added, "edit 1 of file 13") || !strings.Contains(added, "edit 1 of file 47") ||
		strings.Count(added, "diff --git") != 2 {
		t.Errorf("delta block: %s", added)
	}
	if len(added)*10 > len(first) {
		t.Errorf("delta block %d bytes for a %d-byte snapshot", len(added), len(first))
	}

	// The gateway goes down; a file changes meanwhile; the watcher
	// retries and sends it as a diff once the gateway is back.
	g.stop()
	writeFile(t, proj, "pkg5/file25.go", projectFile(25, 2))
	g.start()
	waitContext(t, g, func(s gjson.Result) bool {
		return s.Get("snapshots").Int() == 1 && s.Get("bytes").Int() == projectBytes(t, proj)
	}, &wlog)
	third := ask("delta")
	if !strings.HasPrefix(third, second) || !strings.Contains(third[len(second):], "edit 2 of file 25") {
		t.Errorf("after the restart: %s", third[len(second):])
	}
	out, err := g.cli("context", "stats")
	if err != nil || !strings.Contains(out, "proj") {
		t.Errorf("context stats: %v %s", err, out)
	}
}

// projectFile is the content of file i after edit n: about 1.5 KB of
// Go-like text.
func projectFile(i, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package pkg%d\n\n// file %d\n", i%10, i)
	for l := 0; l < 40; l++ {
		fmt.Fprintf(&b, "func f%d_%d() int { return %d } // line %d\n", i, l, l*i, l)
	}
	if n > 0 {
		fmt.Fprintf(&b, "// edit %d of file %d\n", n, i)
	}
	return b.String()
}

func writeFile(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitContext polls the context's stats until ok says so.
func waitContext(t *testing.T, g *teamGateway, ok func(gjson.Result) bool, wlog *syncBuffer) gjson.Result {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(g.url + "/v1/context/stats?id=proj")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if resp.StatusCode == 200 && ok(gjson.Parse(last)) {
				return gjson.Parse(last)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("context not as expected: %s\nwatcher: %s", last, wlog.String())
	return gjson.Result{}
}

// projectBytes is the size of the project's files the watcher sends
// (debug.log is ignored).
func projectBytes(t *testing.T, root string) int64 {
	var n int64
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "debug.log" {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// syncBuffer is a bytes.Buffer safe for a process's output and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
