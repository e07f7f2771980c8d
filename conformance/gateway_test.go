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

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// Keys shared by the Caddyfile and the tests.
const (
	// providerKey is the OpenAI provider's API key, known only to the gateway.
	providerKey = "sk-provider-secret"
	// anthropicProviderKey is the Anthropic provider's API key, known only
	// to the gateway.
	anthropicProviderKey = "sk-ant-provider"
	// responsesProviderKey is the OpenAI Responses provider's API key,
	// known only to the gateway.
	responsesProviderKey = "sk-resp-provider"
	// clientKey is the key the SDK clients send; it must never reach the provider.
	clientKey = "client-key"
)

// modelCase is one of the gateway's models, served by a provider of one
// dialect. Every client test runs against each of them, so that together
// the tests cover every pair of client dialect and provider dialect.
type modelCase struct {
	// name is the gateway's model name the clients ask for.
	name string
	// dialect is the dialect of the provider that serves it.
	dialect string
	// upstream is the model name the gateway must send to the provider.
	upstream string
}

// models are the gateway's models, one for each provider dialect.
var models = []modelCase{
	{name: "gpt-test", dialect: "openai", upstream: "upstream-model"},
	{name: "claude-test", dialect: "anthropic", upstream: "claude-upstream"},
	{name: "llama-test", dialect: "ollama", upstream: "llama-upstream"},
	{name: "resp-test", dialect: "responses", upstream: "resp-upstream"},
}

// cachedTokens is how many of the input tokens the provider of m reports
// as read from its cache: the mock reports some in the OpenAI, Anthropic
// and Responses dialects, and Ollama has no such count.
func (m modelCase) cachedTokens() int64 {
	if m.dialect == "ollama" {
		return 0
	}
	return mockllm.CachedTokens
}

// modelList returns ms as the Node scripts read them from LLMGATE_MODELS
// (see js/harness.mjs): NAME=DIALECT, comma-separated.
func modelList(ms ...modelCase) string {
	items := make([]string, len(ms))
	for i, m := range ms {
		items[i] = m.name + "=" + m.dialect
	}
	return strings.Join(items, ",")
}

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
	// adminAddr is the gateway's admin API address.
	adminAddr string
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

	ports, err := freePorts(4)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance: picking ports:", err)
		return 1
	}
	// deadPort: nothing listens there, the first target of the fallback
	// chain (see fallback_test.go).
	httpPort, httpsPort, adminPort, deadPort := ports[0], ports[1], ports[2], ports[3]
	gatewayURL = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	adminAddr = fmt.Sprintf("127.0.0.1:%d", adminPort)

	storage := filepath.Join(tmp, "storage")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	caddyfile := filepath.Join(tmp, "Caddyfile")
	conf := fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	http_port %[2]d
	https_port %[3]d
	skip_install_trust
	llm {
		storage %[4]s
		provider mock {
			url %[5]s
			api_key %[6]s
		}
		provider mockant {
			dialect anthropic
			url %[5]s
			api_key %[7]s
		}
		provider mockollama {
			dialect ollama
			url %[5]s
		}
		provider mockresp {
			dialect responses
			url %[5]s
			api_key %[14]s
		}
		model %[8]s mock %[9]s {
			price 1 2 0.5
			capabilities tools
		}
		model %[10]s mockant %[11]s {
			price 3 15 0.3
			max_output 4096
			capabilities tools
		}
		model %[12]s mockollama %[13]s {
			capabilities tools
		}
		model %[15]s mockresp %[16]s {
			price 1 2 0.5
			capabilities tools
		}
		provider deadend {
			url http://127.0.0.1:%[17]d
		}
		model %[18]s deadend {
			capabilities tools
		}
		router {
			retry_backoff 10ms
			fallback %[18]s %[10]s
		}
	}
}
:%[2]d {
	bind 127.0.0.1
	llm_route
	llm_translate
}
`, adminPort, httpPort, httpsPort, storage, mockSrv.URL, providerKey, anthropicProviderKey,
		models[0].name, models[0].upstream, models[1].name, models[1].upstream, models[2].name, models[2].upstream,
		responsesProviderKey, models[3].name, models[3].upstream, deadPort, fallbackModel)
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
	if problems := auditUpstream(); len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "conformance: %d problems in the requests that reached the mock:\n  %s\n",
			len(problems), strings.Join(problems, "\n  "))
		code = 1
	}
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

// upstreamPathSuffix is how the path of every request the gateway sends
// to the provider of m ends.
func (m modelCase) upstreamPathSuffix() string {
	switch m.dialect {
	case "anthropic":
		return "/v1/messages"
	case "ollama":
		return "/api/chat"
	case "responses":
		return "/v1/responses"
	}
	return "/chat/completions"
}

// upstreamProblems returns what is wrong with r, a request the gateway
// sent to the provider of m: it must not carry the client's key, and must
// go to the generation path of m's provider dialect, with that provider's
// key and m's upstream model name.
func upstreamProblems(r mockllm.Received, m modelCase) []string {
	var problems []string
	for name, values := range r.Header {
		for _, v := range values {
			if strings.Contains(v, clientKey) {
				problems = append(problems, fmt.Sprintf("header %s carries the client key: %q", name, v))
			}
		}
	}
	if strings.Contains(string(r.Body), clientKey) {
		problems = append(problems, "body carries the client key")
	}
	if !strings.HasSuffix(r.Path, m.upstreamPathSuffix()) {
		problems = append(problems, fmt.Sprintf("request for %s (%s provider) went to %s, want a path ending %s",
			m.name, m.dialect, r.Path, m.upstreamPathSuffix()))
	}
	switch m.dialect {
	case "openai":
		if got, want := r.Header.Get("Authorization"), "Bearer "+providerKey; got != want {
			problems = append(problems, fmt.Sprintf("Authorization = %q, want %q", got, want))
		}
	case "anthropic":
		if got := r.Header.Get("X-Api-Key"); got != anthropicProviderKey {
			problems = append(problems, fmt.Sprintf("X-Api-Key = %q, want %q", got, anthropicProviderKey))
		}
		if r.Header.Get("Anthropic-Version") == "" {
			problems = append(problems, "no anthropic-version header")
		}
	case "responses":
		if got, want := r.Header.Get("Authorization"), "Bearer "+responsesProviderKey; got != want {
			problems = append(problems, fmt.Sprintf("Authorization = %q, want %q", got, want))
		}
	}
	if model, err := upstreamModel(r); err != nil {
		problems = append(problems, err.Error())
	} else if model != m.upstream {
		problems = append(problems, fmt.Sprintf("model = %q, want %q", model, m.upstream))
	}
	return problems
}

// upstreamModel returns the model named in the body of r.
func upstreamModel(r mockllm.Received) (string, error) {
	var body struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return "", fmt.Errorf("body is not JSON: %v", err)
	}
	return body.Model, nil
}

// checkUpstream checks the requests the mock received after the first
// skip ones, all of which the test that calls it caused by asking for the
// model m (see upstreamProblems). It fails if there is none.
func checkUpstream(t *testing.T, m modelCase, skip int) {
	t.Helper()
	reqs := mock.Requests()
	if len(reqs) < skip {
		skip = len(reqs)
	}
	for i, r := range reqs[skip:] {
		for _, p := range upstreamProblems(r, m) {
			t.Errorf("upstream request %d %s %s: %s", i, r.Method, r.Path, p)
		}
	}
	if len(reqs) == skip {
		t.Errorf("the mock received no request for %s (%d requests before)", m.name, skip)
	}
}

// auditUpstream checks every request the mock received in the whole run,
// including any a test did not look at: each must name the upstream model
// of one of models and pass upstreamProblems for it.
func auditUpstream() []string {
	var problems []string
	for i, r := range mock.Requests() {
		model, err := upstreamModel(r)
		var m *modelCase
		for j := range models {
			if err == nil && models[j].upstream == model {
				m = &models[j]
			}
		}
		if m == nil {
			problems = append(problems, fmt.Sprintf("upstream request %d %s %s: model %q is none of the test models (%v)", i, r.Method, r.Path, model, err))
			continue
		}
		for _, p := range upstreamProblems(r, *m) {
			problems = append(problems, fmt.Sprintf("upstream request %d %s %s: %s", i, r.Method, r.Path, p))
		}
	}
	return problems
}

// nodeOrSkip returns the path of node, or skips the test when node is not
// on PATH or one of the packages is missing from js/node_modules; with
// LLMGATE_REQUIRE_NODE=1 it fails the test instead.
func nodeOrSkip(t *testing.T, packages ...string) string {
	t.Helper()
	require := os.Getenv("LLMGATE_REQUIRE_NODE") == "1"
	node, err := exec.LookPath("node")
	missing := ""
	if err != nil {
		missing = "node is not on PATH"
	} else {
		for _, p := range packages {
			if _, err := os.Stat(filepath.Join("js", "node_modules", filepath.FromSlash(p))); err != nil {
				missing = "js/node_modules/" + p + " is missing (run npm ci in conformance/js)"
				break
			}
		}
	}
	if missing != "" {
		if require {
			t.Fatalf("LLMGATE_REQUIRE_NODE=1 but %s", missing)
		}
		t.Skip(missing)
	}
	return node
}

// runNodeScript runs js/<script> against the gateway for the model m,
// named in LLMGATE_MODELS, and checks what reached the provider.
func runNodeScript(t *testing.T, node, script string, m modelCase) {
	t.Helper()
	before := len(mock.Requests())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("js", script))
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+gatewayURL, "LLMGATE_MODELS="+modelList(m))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Errorf("node js/%s exited with code %d:\n%s", script, exit.ExitCode(), out)
	case err != nil:
		t.Errorf("node js/%s: %v\n%s", script, err, out)
	default:
		t.Logf("node js/%s:\n%s", script, out)
	}
	// The provider side is checked even when a client check failed: what
	// reached the mock helps to tell a request bug from an answer bug.
	checkUpstream(t, m, before)
}
