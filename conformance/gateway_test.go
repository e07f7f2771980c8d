package conformance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

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
	// geminiProviderKey is the Gemini provider's API key, known only to
	// the gateway, which sends it as x-goog-api-key.
	geminiProviderKey = "gemini-provider-key"
	// clientKey is the key the SDK clients send; it must never reach the provider.
	clientKey = "client-key"
)

// The AWS credentials and region of the Bedrock provider: the gateway
// reads them from its environment (AWS_ACCESS_KEY_ID, ...) and signs
// every Bedrock request with them (SigV4); the mock checks each
// signature against the same and answers 403 to a bad one.
const (
	awsAccessKeyID     = "AKIDCONFORMANCE0001"
	awsSecretAccessKey = "conformance/secret/access/key/0000000001"
	awsRegion          = "us-east-1"
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
	// failingFirst, when set, is a first target that fails before the
	// provider above answers as the fallback: requests to it are
	// expected too (see checkUpstream).
	failingFirst *modelCase
}

// models are the gateway's models, one for each provider dialect.
var models = []modelCase{
	{name: "gpt-test", dialect: "openai", upstream: "upstream-model"},
	{name: "claude-test", dialect: "anthropic", upstream: "claude-upstream"},
	{name: "llama-test", dialect: "ollama", upstream: "llama-upstream"},
	{name: "resp-test", dialect: "responses", upstream: "resp-upstream"},
	{name: "gemini-test", dialect: "gemini", upstream: "gemini-upstream"},
	// A Bedrock model id as Bedrock's look (a ':' the gateway must escape
	// in the path, and sign escaped).
	{name: "bedrock-test", dialect: "bedrock", upstream: "mock.bedrock-upstream-v1:0"},
}

// providerOf names the Caddyfile provider of each provider dialect.
var providerOf = map[string]string{
	"openai":    "mock",
	"anthropic": "mockant",
	"ollama":    "mockollama",
	"responses": "mockresp",
	"gemini":    "mockgemini",
	"bedrock":   "mockbedrock",
}

// rateLimited returns the model that the tests of the client named
// client use to get a 429 from the provider of m's dialect, streamed or
// not: its upstream name makes the mock answer 429 with Retry-After: 1.
// Each (client, stream, provider) has a model of its own, because the
// gateway keeps a model that asked to wait out of service for that
// second (a second request would wait it out first) and opens its
// breaker after repeated failures.
func rateLimited(client string, stream bool, m modelCase) modelCase {
	mode := "json"
	if stream {
		mode = "stream"
	}
	return modelCase{name: client + "-429-" + mode + "-" + m.dialect, dialect: m.dialect, upstream: "mock-status-429"}
}

// broken returns the model that the tests of the client named client
// use to get a stream that the provider of m's dialect breaks off half
// way: its upstream name makes the mock stop after the first piece of
// text, without the stream's end.
func broken(client string, m modelCase) modelCase {
	return modelCase{name: client + "-break-" + m.dialect, dialect: m.dialect, upstream: "mock-break"}
}

// failingClients are the clients that have rateLimited and broken models.
var failingClients = []string{"genai-go", "bedrock-go"}

// failingModels are every rateLimited and broken model.
func failingModels() []modelCase {
	var out []modelCase
	for _, c := range failingClients {
		for _, m := range models {
			out = append(out, rateLimited(c, false, m), rateLimited(c, true, m), broken(c, m))
		}
	}
	return out
}

// cachedTokens is how many of the input tokens the provider of m reports
// as read from its cache: the mock reports some in the OpenAI, Anthropic,
// Responses, Gemini (cachedContentTokenCount) and Bedrock
// (cacheReadInputTokens) dialects, and Ollama has no such count.
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
	// gatewayTLSURL is the base URL of the gateway's HTTPS site, e.g.
	// https://127.0.0.1:12346, the same routes as gatewayURL.
	gatewayTLSURL string
	// gatewayTLSClient is an HTTP client that trusts the certificate of
	// gatewayTLSURL (Caddy's local CA).
	gatewayTLSClient *http.Client
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

	mock = &mockllm.Server{
		AWSCredentials: &aws.Credentials{AccessKeyID: awsAccessKeyID, SecretAccessKey: awsSecretAccessKey},
		AWSRegion:      awsRegion,
	}
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
	auto_https disable_redirects
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
		provider mockgemini {
			dialect gemini
			url %[5]s
			api_key %[19]s
		}
		provider mockbedrock {
			dialect bedrock
			url %[5]s
			region %[20]s
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
		model %[21]s mockgemini %[22]s {
			price 1 2 0.5
			capabilities tools
		}
		model %[23]s mockbedrock %[24]s {
			price 1 2 0.5
			capabilities tools
		}
%[25]s		provider deadend {
			url http://127.0.0.1:%[17]d
		}
		model %[18]s deadend {
			capabilities tools
		}
		model %[26]s mockant %[27]s {
			capabilities tools
		}
		router {
			retry_backoff 10ms
			# Every request to the failing first targets must reach them.
			breaker_threshold 1000
			fallback %[18]s %[10]s
			fallback %[26]s %[10]s
		}
	}
}
:%[2]d {
	bind 127.0.0.1
	llm_route
	llm_translate
}
https://127.0.0.1:%[3]d {
	bind 127.0.0.1
	tls internal
	llm_route
	llm_translate
}
`, adminPort, httpPort, httpsPort, storage, mockSrv.URL, providerKey, anthropicProviderKey,
		models[0].name, models[0].upstream, models[1].name, models[1].upstream, models[2].name, models[2].upstream,
		responsesProviderKey, models[3].name, models[3].upstream, deadPort, fallbackModel,
		geminiProviderKey, awsRegion, models[4].name, models[4].upstream, models[5].name, models[5].upstream,
		failingConf(), overloadedModel, overloadedFirst.upstream)
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
	cmd.Env = append(awsFreeEnv(),
		"XDG_DATA_HOME="+filepath.Join(tmp, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(tmp, "config"),
		// The Bedrock provider's credentials, and nothing else of AWS's
		// chain: no profile, no shared files, no instance metadata.
		"AWS_ACCESS_KEY_ID="+awsAccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+awsSecretAccessKey,
		"AWS_REGION="+awsRegion,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(tmp, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(tmp, "no-aws-credentials"),
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

	// The HTTPS site, for the clients that send a bearer token only over
	// TLS (the AWS SDK's): its certificate comes from Caddy's own local
	// CA, whose root the tests trust.
	gatewayTLSURL = fmt.Sprintf("https://127.0.0.1:%d", httpsPort)
	gatewayTLSClient, err = tlsClient(filepath.Join(tmp, "data", "caddy", "pki", "authorities", "local", "root.crt"), 60*time.Second, exited)
	if err == nil {
		err = waitHealthyWith(gatewayTLSClient, gatewayTLSURL+"/health", 60*time.Second, exited)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance: the gateway's HTTPS site did not come up:", err)
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

// failingConf is the Caddyfile's model blocks for failingModels.
func failingConf() string {
	var b strings.Builder
	for _, m := range failingModels() {
		fmt.Fprintf(&b, "\t\tmodel %s %s %s {\n\t\t\tprice 1 2\n\t\t}\n", m.name, providerOf[m.dialect], m.upstream)
	}
	return b.String()
}

// awsFreeEnv is this process's environment without any AWS_ variable, so
// that the gateway's AWS credential chain sees only what TestMain sets.
func awsFreeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
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

// tlsClient returns an HTTP client that trusts the CA whose root
// certificate is in the file root, waiting for the gateway to write it
// (until the timeout passes or the process exits).
func tlsClient(root string, timeout time.Duration, exited <-chan error) (*http.Client, error) {
	deadline := time.Now().Add(timeout)
	for {
		pem, err := os.ReadFile(root)
		if err == nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s holds no PEM certificate", root)
			}
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			return &http.Client{Transport: tr}, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("reading the gateway's local CA root: %w", err)
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("gateway exited early: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitHealthy polls url until it answers 200, the process exits or the
// timeout passes.
func waitHealthy(url string, timeout time.Duration, exited <-chan error) error {
	return waitHealthyWith(&http.Client{}, url, timeout, exited)
}

// waitHealthyWith is waitHealthy with the given client (its own timeout
// is set to 2 s per request).
func waitHealthyWith(base *http.Client, url string, timeout time.Duration, exited <-chan error) error {
	client := &http.Client{Transport: base.Transport, Timeout: 2 * time.Second}
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

// upstreamDialect tells the dialect of r, a request that reached the mock,
// from its path ("" for a path of none).
func upstreamDialect(r mockllm.Received) string {
	p := r.Path
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
		return "openai"
	case strings.HasSuffix(p, "/v1/messages"):
		return "anthropic"
	case strings.HasSuffix(p, "/api/chat"):
		return "ollama"
	case strings.HasSuffix(p, "/v1/responses"):
		return "responses"
	case strings.Contains(p, "/models/") && (strings.HasSuffix(p, ":generateContent") || strings.HasSuffix(p, ":streamGenerateContent")):
		return "gemini"
	case strings.HasPrefix(p, "/model/") && (strings.HasSuffix(p, "/converse") || strings.HasSuffix(p, "/converse-stream")):
		return "bedrock"
	}
	return ""
}

// upstreamPaths are the paths a request the gateway sends to the provider
// of m may have: one for JSON answers and one for streams in the dialects
// that tell them apart by path (Gemini, Bedrock), else the one path of
// the generation endpoint.
func (m modelCase) upstreamPaths() []string {
	switch m.dialect {
	case "anthropic":
		return []string{"/v1/messages"}
	case "ollama":
		return []string{"/api/chat"}
	case "responses":
		return []string{"/v1/responses"}
	case "gemini":
		return []string{"/v1beta/models/" + m.upstream + ":generateContent", "/v1beta/models/" + m.upstream + ":streamGenerateContent"}
	case "bedrock":
		return []string{"/model/" + m.upstream + "/converse", "/model/" + m.upstream + "/converse-stream"}
	}
	return []string{"/v1/chat/completions"}
}

// upstreamProblems returns what is wrong with r, a request the gateway
// sent to the provider of m: it must not carry the client's key (in a
// header, the query or the body), and must go to the generation path of
// m's provider dialect, with that provider's credentials and m's upstream
// model name (in the body, or in the path for Gemini and Bedrock).
func upstreamProblems(r mockllm.Received, m modelCase) []string {
	var problems []string
	for name, values := range r.Header {
		for _, v := range values {
			if strings.Contains(v, clientKey) {
				problems = append(problems, fmt.Sprintf("header %s carries the client key: %q", name, v))
			}
			// A Bedrock client's own SigV4 signature (its access key
			// is in Authorization's Credential).
			if strings.Contains(v, clientAWSAccessKeyID) {
				problems = append(problems, fmt.Sprintf("header %s carries the client's AWS access key: %q", name, v))
			}
		}
	}
	if strings.Contains(string(r.Body), clientKey) {
		problems = append(problems, "body carries the client key")
	}
	if strings.Contains(r.Query, clientKey) {
		problems = append(problems, fmt.Sprintf("query %q carries the client key", r.Query))
	}
	if paths := m.upstreamPaths(); !slices.Contains(paths, r.Path) {
		problems = append(problems, fmt.Sprintf("request for %s (%s provider) went to %s, want %s",
			m.name, m.dialect, r.Path, strings.Join(paths, " or ")))
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
	case "gemini":
		if got := r.Header.Get("X-Goog-Api-Key"); got != geminiProviderKey {
			problems = append(problems, fmt.Sprintf("X-Goog-Api-Key = %q, want %q", got, geminiProviderKey))
		}
		if got := r.Header.Get("Authorization"); got != "" {
			problems = append(problems, fmt.Sprintf("Authorization = %q, want none beside the API key", got))
		}
		// Streams ask for SSE; the mock would answer a JSON array otherwise.
		if stream := strings.HasSuffix(r.Path, ":streamGenerateContent"); stream != (r.Query == "alt=sse") {
			problems = append(problems, fmt.Sprintf("query %q for %s", r.Query, r.Path))
		}
	case "bedrock":
		// The mock has verified the signature itself (a bad one is a
		// 403, which fails the test that sent it): here, that it is
		// one, made with the provider's credentials, for Bedrock.
		auth := r.Header.Get("Authorization")
		scope := "Credential=" + awsAccessKeyID + "/"
		if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 "+scope) || !strings.Contains(auth, "/"+awsRegion+"/bedrock/aws4_request") {
			problems = append(problems, fmt.Sprintf("Authorization = %q, want a SigV4 signature with %s for bedrock in %s", auth, awsAccessKeyID, awsRegion))
		}
		if r.Header.Get("X-Amz-Date") == "" {
			problems = append(problems, "no X-Amz-Date header")
		}
	}
	if model, err := upstreamModel(r); err != nil {
		problems = append(problems, err.Error())
	} else if model != m.upstream {
		problems = append(problems, fmt.Sprintf("model = %q, want %q", model, m.upstream))
	}
	return problems
}

// upstreamModel returns the model r names: in the body, or in the path for
// the dialects that put it there (Gemini, Bedrock).
func upstreamModel(r mockllm.Received) (string, error) {
	switch upstreamDialect(r) {
	case "gemini":
		rest := r.Path[strings.LastIndex(r.Path, "/models/")+len("/models/"):]
		model, _, _ := strings.Cut(rest, ":")
		return model, nil
	case "bedrock":
		rest := strings.TrimPrefix(r.Path, "/model/")
		return rest[:strings.LastIndexByte(rest, '/')], nil
	}
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
	firsts := 0
	for i, r := range reqs[skip:] {
		c := m
		if f := m.failingFirst; f != nil {
			if model, err := upstreamModel(r); err == nil && model == f.upstream {
				c = *f
				firsts++
			}
		}
		for _, p := range upstreamProblems(r, c) {
			t.Errorf("upstream request %d %s %s: %s", i, r.Method, r.Path, p)
		}
	}
	switch {
	case len(reqs) == skip:
		t.Errorf("the mock received no request for %s (%d requests before)", m.name, skip)
	case m.failingFirst != nil && (firsts == 0 || firsts == len(reqs)-skip):
		t.Errorf("%s: %d of %d requests to the failing first target, want some and some to the fallback", m.name, firsts, len(reqs)-skip)
	}
}

// auditUpstream checks every request the mock received in the whole run,
// including any a test did not look at: each must go to the path of a
// provider dialect, name the upstream model of one of the gateway's
// models of that dialect, and pass upstreamProblems for it.
func auditUpstream() []string {
	known := append(append([]modelCase{fallbackCase, overloadedFirst}, models...), failingModels()...)
	var problems []string
	for i, r := range mock.Requests() {
		dialect := upstreamDialect(r)
		model, err := upstreamModel(r)
		var m *modelCase
		for j := range known {
			if err == nil && known[j].dialect == dialect && known[j].upstream == model {
				m = &known[j]
				break
			}
		}
		if m == nil {
			problems = append(problems, fmt.Sprintf("upstream request %d %s %s: model %q of a %q provider is none of the test models (%v)",
				i, r.Method, r.Path, model, dialect, err))
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
