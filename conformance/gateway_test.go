package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// Names and keys shared by the Caddyfile and the tests.
const (
	// model is the gateway's model name the clients ask for.
	model = "gpt-test"
	// upstreamModel is the name the gateway must send to the provider.
	upstreamModel = "upstream-model"
	// providerKey is the provider's API key, known only to the gateway.
	providerKey = "sk-provider-secret"
	// clientKey is the key the SDK clients send; it must never reach the provider.
	clientKey = "client-key"
)

// State set up by TestMain for every test.
var (
	// gatewayURL is the gateway's base URL, e.g. http://127.0.0.1:12345.
	gatewayURL string
	// mock is the provider behind the gateway.
	mock *mockllm.Server
	// gatewayLog is the file that receives the gateway's stdout and stderr.
	gatewayLog string
	// gatewayBin is the gateway binary under test.
	gatewayBin string
)

// TestMain builds (unless LLMGATE_CADDY names one) and starts the gateway
// in front of the mock provider, runs the tests and stops the gateway.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run does TestMain's work and returns the process exit code, so that
// deferred clean-up runs before os.Exit.
func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "llmgate-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	bin := os.Getenv("LLMGATE_CADDY")
	if bin == "" {
		bin = filepath.Join(tmp, "caddy")
		fmt.Fprintln(os.Stderr, "conformance: LLMGATE_CADDY unset, building ../cmd/caddy")
		build := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: go build ./cmd/caddy: %v\n%s", err, out)
			return 1
		}
	}

	gatewayBin = bin

	mock = &mockllm.Server{}
	mockSrv := httptest.NewServer(mock)
	defer mockSrv.Close()

	ports, err := freePorts(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance: picking ports:", err)
		return 1
	}
	httpPort, httpsPort, adminPort := ports[0], ports[1], ports[2]
	gatewayURL = fmt.Sprintf("http://127.0.0.1:%d", httpPort)

	storage := filepath.Join(tmp, "storage")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	caddyfile := filepath.Join(tmp, "Caddyfile")
	conf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	https_port %d
	skip_install_trust
	llm {
		storage %s
		provider mock {
			url %s
			api_key %s
		}
		model %s mock %s {
			price 1 2 0.5
			capabilities tools
		}
	}
}
:%d {
	bind 127.0.0.1
	llm_route
	llm_translate
}
`, adminPort, httpPort, httpsPort, storage, mockSrv.URL, providerKey, model, upstreamModel, httpPort)
	if err := os.WriteFile(caddyfile, []byte(conf), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}

	gatewayLog = filepath.Join(tmp, "gateway.log")
	logFile, err := os.Create(gatewayLog)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	defer logFile.Close()

	cmd := exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Keep Caddy's own data and config (certificates, autosave) in tmp.
	cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(tmp, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(tmp, "config"),
	)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance: starting gateway:", err)
		return 1
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stop(cmd, exited)

	if err := waitHealthy(gatewayURL+"/health", 60*time.Second, exited); err != nil {
		fmt.Fprintln(os.Stderr, "conformance: gateway did not come up:", err)
		printLog()
		return 1
	}

	code := m.Run()
	if code != 0 {
		printLog()
	}
	return code
}

// freePorts returns n distinct loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHealthy polls url until it answers 200, the process exits or the
// timeout passes.
func waitHealthy(url string, timeout time.Duration, exited <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("gateway exited early: %v", err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timeout after %v: %v", timeout, last)
}

// stop sends the gateway SIGTERM and kills it if it has not exited within
// 10 seconds.
func stop(cmd *exec.Cmd, exited <-chan error) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(os.Stderr, "conformance: gateway ignored SIGTERM, killing it")
		_ = cmd.Process.Kill()
		<-exited
	}
}

// printLog copies the gateway's log to stderr.
func printLog() {
	b, err := os.ReadFile(gatewayLog)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance: reading gateway log:", err)
		return
	}
	fmt.Fprintf(os.Stderr, "---- gateway log (%s) ----\n%s---- end of gateway log ----\n", gatewayLog, b)
}

// weatherTool declares the get_weather function tool.
func weatherTool() openai.ChatCompletionToolUnionParam {
	return openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:        "get_weather",
		Description: openai.String("Get the current weather in a city"),
		Parameters: shared.FunctionParameters{
			"type": "object",
			"properties": map[string]any{
				"city": map[string]any{"type": "string"},
			},
			"required": []string{"city"},
		},
	})
}

// newClient returns an openai-go client pointed at the gateway.
func newClient() openai.Client {
	return openai.NewClient(
		option.WithBaseURL(gatewayURL+"/v1/"),
		option.WithAPIKey(clientKey),
		option.WithMaxRetries(0),
	)
}

// checkToolCall checks that calls is exactly one get_weather call with
// arguments {"city":"Paris"}.
func checkToolCall(t *testing.T, calls []openai.ChatCompletionMessageToolCallUnion) {
	t.Helper()
	if len(calls) != 1 {
		t.Fatalf("got %d tool calls, want 1: %+v", len(calls), calls)
	}
	call := calls[0]
	if call.Function.Name != "get_weather" {
		t.Errorf("tool call name = %q, want get_weather", call.Function.Name)
	}
	if call.ID == "" {
		t.Errorf("tool call has no id")
	}
	checkArgs(t, call.Function.Arguments)
}

// checkArgs checks that args is JSON equal to {"city":"Paris"}.
func checkArgs(t *testing.T, args string) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal([]byte(args), &got); err != nil {
		t.Errorf("tool call arguments %q are not a JSON object: %v", args, err)
		return
	}
	if want := map[string]any{"city": "Paris"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tool call arguments = %s, want {\"city\":\"Paris\"}", args)
	}
}

// checkUsage checks the token counts the mock reports.
func checkUsage(t *testing.T, u openai.CompletionUsage) {
	t.Helper()
	if u.PromptTokens != mockllm.InputTokens || u.CompletionTokens != mockllm.OutputTokens {
		t.Errorf("usage prompt_tokens=%d completion_tokens=%d, want %d and %d",
			u.PromptTokens, u.CompletionTokens, mockllm.InputTokens, mockllm.OutputTokens)
	}
}

// checkUpstream checks the requests the mock received after the first
// skip ones: none carries the client's key, and every chat request
// carries the provider's key and the upstream model name. It fails if
// there is no chat request.
func checkUpstream(t *testing.T, skip int) {
	t.Helper()
	reqs := mock.Requests()
	if len(reqs) < skip {
		skip = len(reqs)
	}
	chats := 0
	for i, r := range reqs[skip:] {
		for name, values := range r.Header {
			for _, v := range values {
				if strings.Contains(v, clientKey) {
					t.Errorf("upstream request %d %s: header %s carries the client key: %q", i, r.Path, name, v)
				}
			}
		}
		if strings.Contains(string(r.Body), clientKey) {
			t.Errorf("upstream request %d %s: body carries the client key", i, r.Path)
		}
		if !strings.HasSuffix(r.Path, "/chat/completions") {
			continue
		}
		chats++
		if got, want := r.Header.Get("Authorization"), "Bearer "+providerKey; got != want {
			t.Errorf("upstream request %d %s: Authorization = %q, want %q", i, r.Path, got, want)
		}
		var body struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Errorf("upstream request %d %s: body is not JSON: %v", i, r.Path, err)
		} else if body.Model != upstreamModel {
			t.Errorf("upstream request %d %s: model = %q, want %q", i, r.Path, body.Model, upstreamModel)
		}
	}
	if chats == 0 {
		t.Errorf("the mock received no chat request (%d requests in all, %d before)", len(reqs), skip)
	}
}

// TestOpenAIGo drives the gateway with the official Go SDK, openai-go.
func TestOpenAIGo(t *testing.T) {
	client := newClient()
	before := len(mock.Requests())
	params := openai.ChatCompletionNewParams{
		Model: model,
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.UserMessage("What is the weather in Paris?"),
		},
		Tools: []openai.ChatCompletionToolUnionParam{weatherTool()},
	}

	t.Run("ToolCall", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatalf("chat.completions.create: %v", err)
		}
		if len(resp.Choices) != 1 {
			t.Fatalf("got %d choices, want 1: %s", len(resp.Choices), resp.RawJSON())
		}
		choice := resp.Choices[0]
		if choice.FinishReason != "tool_calls" {
			t.Errorf("finish_reason = %q, want tool_calls", choice.FinishReason)
		}
		checkToolCall(t, choice.Message.ToolCalls)
		checkUsage(t, resp.Usage)
		if t.Failed() {
			t.Logf("response: %s", resp.RawJSON())
		}
	})

	t.Run("StreamedToolCall", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		defer stream.Close()
		var acc openai.ChatCompletionAccumulator
		var finished []openai.FinishedChatCompletionToolCall
		chunks := 0
		for stream.Next() {
			chunk := stream.Current()
			chunks++
			if !acc.AddChunk(chunk) {
				t.Fatalf("accumulator rejected chunk %d: %s", chunks, chunk.RawJSON())
			}
			if call, ok := acc.JustFinishedToolCall(); ok {
				finished = append(finished, call)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream after %d chunks: %v", chunks, err)
		}
		if len(acc.Choices) != 1 {
			t.Fatalf("accumulated %d choices, want 1", len(acc.Choices))
		}
		choice := acc.Choices[0]
		if choice.FinishReason != "tool_calls" {
			t.Errorf("finish_reason = %q, want tool_calls", choice.FinishReason)
		}
		checkToolCall(t, choice.Message.ToolCalls)
		if len(finished) != 1 {
			t.Errorf("accumulator reported %d finished tool calls, want 1", len(finished))
		} else {
			if finished[0].Name != "get_weather" {
				t.Errorf("finished tool call name = %q, want get_weather", finished[0].Name)
			}
			checkArgs(t, finished[0].Arguments)
		}
		checkUsage(t, acc.Usage)
	})

	t.Run("StreamedText", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p := params
		p.Tools = nil
		p.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		defer stream.Close()
		var acc openai.ChatCompletionAccumulator
		var content strings.Builder
		chunks := 0
		for stream.Next() {
			chunk := stream.Current()
			chunks++
			if !acc.AddChunk(chunk) {
				t.Fatalf("accumulator rejected chunk %d: %s", chunks, chunk.RawJSON())
			}
			for _, c := range chunk.Choices {
				content.WriteString(c.Delta.Content)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream after %d chunks: %v", chunks, err)
		}
		if len(acc.Choices) != 1 {
			t.Fatalf("accumulated %d choices, want 1", len(acc.Choices))
		}
		choice := acc.Choices[0]
		if choice.Message.Content != mockllm.Text {
			t.Errorf("accumulated content = %q, want %q", choice.Message.Content, mockllm.Text)
		}
		if content.String() != mockllm.Text {
			t.Errorf("concatenated deltas = %q, want %q", content.String(), mockllm.Text)
		}
		if choice.FinishReason != "stop" {
			t.Errorf("finish_reason = %q, want stop", choice.FinishReason)
		}
		if len(choice.Message.ToolCalls) != 0 {
			t.Errorf("unexpected tool calls: %+v", choice.Message.ToolCalls)
		}
	})

	checkUpstream(t, before)
}

// TestOpenAINode drives the gateway with the official JavaScript SDK
// through js/openai_chat.mjs.
func TestOpenAINode(t *testing.T) {
	require := os.Getenv("LLMGATE_REQUIRE_NODE") == "1"
	node, err := exec.LookPath("node")
	missing := ""
	if err != nil {
		missing = "node is not on PATH"
	} else if _, err := os.Stat(filepath.Join("js", "node_modules", "openai")); err != nil {
		missing = "js/node_modules/openai is missing (run npm ci in conformance/js)"
	}
	if missing != "" {
		if require {
			t.Fatalf("LLMGATE_REQUIRE_NODE=1 but %s", missing)
		}
		t.Skip(missing)
	}

	before := len(mock.Requests())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("js", "openai_chat.mjs"))
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+gatewayURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("node js/openai_chat.mjs exited with code %d:\n%s", exit.ExitCode(), out)
		}
		t.Fatalf("node js/openai_chat.mjs: %v\n%s", err, out)
	}
	t.Logf("node js/openai_chat.mjs:\n%s", out)
	checkUpstream(t, before)
}
