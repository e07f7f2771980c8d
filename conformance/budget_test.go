package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// keyHash is the hash the gateway keeps of a client key (what
// `caddy llm key hash` prints).
func keyHash(k string) string {
	s := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(s[:])
}

// teamGateway is a gateway process of its own (own storage, ports and
// mock provider) for the team-access tests.
type teamGateway struct {
	t       *testing.T
	dir     string
	conf    string
	url     string
	admin   string
	mock    *mockllm.Server
	cmd     *exec.Cmd
	exited  chan error
	log     *bytes.Buffer
	storage string
}

// carolKey is declared in the Caddyfile by its hash.
const carolKey = "sk-llm-carol-declared-in-the-caddyfile-000"

// startOwnGateway starts a gateway process of its own: its own storage,
// ports and mock provider, and the Caddyfile conf writes for them.
func startOwnGateway(t *testing.T, conf func(httpPort, httpsPort int, admin, storage, mockURL string) string) *teamGateway {
	t.Helper()
	dir := t.TempDir()
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	g := &teamGateway{t: t, dir: dir, url: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		admin: fmt.Sprintf("127.0.0.1:%d", ports[2]), mock: &mockllm.Server{}, storage: filepath.Join(dir, "storage")}
	srv := httptest.NewServer(g.mock)
	t.Cleanup(srv.Close)
	g.conf = filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(g.conf, []byte(conf(ports[0], ports[1], g.admin, g.storage, srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	g.start()
	t.Cleanup(func() { g.stop() })
	return g
}

func startTeamGateway(t *testing.T) *teamGateway {
	// A token costs a tenth of a cent: a mock answer (11 input, 7
	// output tokens) costs $0.018.
	return startOwnGateway(t, func(httpPort, httpsPort int, admin, storage, mockURL string) string {
		return fmt.Sprintf(`{
	admin %[3]s
	http_port %[1]d
	https_port %[2]d
	skip_install_trust
	llm {
		storage %[4]s
		timezone Europe/Berlin
		provider mock {
			url %[5]s
			api_key %[6]s
		}
		model team-model mock upstream-model {
			price 1000 1000
		}
	}
}
:%[1]d {
	bind 127.0.0.1
	llm_budget {
		global daily 100
		per_key daily 1 monthly 10
		key carol %[7]s daily 0.05
	}
	llm_route
	llm_translate
}
`, httpPort, httpsPort, admin, storage, mockURL, providerKey, keyHash(carolKey))
	})
}

func (g *teamGateway) start() {
	g.t.Helper()
	g.log = &bytes.Buffer{}
	g.cmd = exec.Command(gatewayBin, "run", "--config", g.conf, "--adapter", "caddyfile")
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	g.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(g.dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(g.dir, "config"))
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.exited = make(chan error, 1)
	go func(cmd *exec.Cmd, ch chan error) { ch <- cmd.Wait() }(g.cmd, g.exited)
	if err := waitHealthy(g.url+"/health", 60*time.Second, g.exited); err != nil {
		g.t.Fatalf("team gateway did not start: %v\n%s", err, g.log)
	}
}

func (g *teamGateway) stop() {
	if g.cmd != nil {
		stop(g.cmd, g.exited)
		g.cmd = nil
	}
}

// crash kills the gateway with SIGKILL: no clean-up runs.
func (g *teamGateway) crash() {
	g.t.Helper()
	if err := g.cmd.Process.Kill(); err != nil {
		g.t.Fatal(err)
	}
	<-g.exited
	g.cmd = nil
}

// cli runs `caddy llm <args>` against the gateway's admin API.
func (g *teamGateway) cli(args ...string) (string, error) {
	g.t.Helper()
	out, err := exec.Command(gatewayBin, append(append([]string{"llm"}, args...), "--address", g.admin)...).CombinedOutput()
	return string(out), err
}

func (g *teamGateway) client(key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey(key))
}

func (g *teamGateway) budget(key string) map[string]any {
	g.t.Helper()
	req, _ := http.NewRequest("GET", g.url+"/v1/budget", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		g.t.Fatalf("GET /v1/budget: %d %s", resp.StatusCode, b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		g.t.Fatal(err)
	}
	return out
}

const secretPrompt = "PROMPT-MARKER-4471 please answer"

func ask(ctx context.Context, c openai.Client) (*openai.ChatCompletion, error) {
	return c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:     "team-model",
		MaxTokens: openai.Int(10),
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(secretPrompt)},
	})
}

// TestTeamBudgets is the team set-up end to end, with the official
// OpenAI Go SDK as the client and the CLI as the admin: keys created and
// revoked with `caddy llm key`, a key declared in the Caddyfile, budgets
// refused with a 429 the SDK does not retry, keys that never reach the
// provider, stats and export that hold no content, and a ledger and
// budget counters that survive kill -9.
func TestTeamBudgets(t *testing.T) {
	g := startTeamGateway(t)
	ctx := context.Background()

	out, err := g.cli("key", "create", "--name", "alice", "--daily", "0.1", "--json")
	if err != nil {
		t.Fatalf("key create: %v\n%s", err, out)
	}
	var created struct {
		Name, Key, Hash string
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Key, "sk-llm-") || created.Hash != keyHash(created.Key) {
		t.Fatalf("key create answered %q (%v)", out, err)
	}
	aliceKey := created.Key
	if out, err := g.cli("key", "create", "--name", "alice"); err == nil || !strings.Contains(out, "exists") {
		t.Errorf("second key named alice: %v %s", err, out)
	}
	if out, err := g.cli("key", "list"); err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "$0.1") || strings.Contains(out, aliceKey) {
		t.Errorf("key list: %v\n%s", err, out)
	}
	hash := exec.Command(gatewayBin, "llm", "key", "hash")
	hash.Stdin = strings.NewReader(carolKey + "\n")
	if out, err := hash.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != keyHash(carolKey) {
		t.Errorf("key hash: %v %q", err, out)
	}

	// No key, a wrong key: 401, as the SDK's AuthenticationError.
	for _, k := range []string{"", "sk-llm-not-a-key"} {
		_, err := ask(ctx, g.client(k))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
			t.Errorf("key %q: %v", k, err)
		}
	}

	// Alice spends until her daily $0.10 is used up: then a 429 that
	// says why, which the SDK (default retry settings) does not retry.
	before := g.mock.Count()
	answered := 0
	var refusal *openai.Error
	for i := 0; i < 20 && refusal == nil; i++ {
		resp, err := ask(ctx, g.client(aliceKey))
		switch {
		case err == nil:
			answered++
			if resp.Choices[0].Message.Content != mockllm.Text {
				t.Errorf("answer %q", resp.Choices[0].Message.Content)
			}
		case errors.As(err, &refusal) && refusal.StatusCode == 429:
		default:
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if refusal == nil || !strings.Contains(refusal.Message, "budget exceeded") || !strings.Contains(refusal.Message, "daily limit of this key is $0.10") ||
		!strings.Contains(refusal.Message, "resets at") || refusal.Code != "budget_exceeded" {
		t.Fatalf("no clear budget refusal after %d answers: %v", answered, refusal)
	}
	if n := g.mock.Count() - before; n != answered {
		t.Errorf("%d requests reached the provider for %d answers (the refusal must not be retried upstream)", n, answered)
	}
	rep := g.budget(aliceKey)
	spent := rep["spent_today_usd"].(float64)
	if spent > 0.1+0.018+1e-9 || spent < 0.018*float64(answered)-1e-9 || rep["time_zone"] != "Europe/Berlin" {
		t.Errorf("alice's budget report %v after %d answers", rep, answered)
	}
	// Carol's key from the Caddyfile works, with its own limit.
	if _, err := ask(ctx, g.client(carolKey)); err != nil {
		t.Errorf("carol: %v", err)
	}
	if r := g.budget(carolKey); r["key"] != "carol" {
		t.Errorf("carol's report %v", r)
	}

	// No client key reached the provider; the provider's key did.
	for i, rq := range g.mock.Requests() {
		for k, vs := range rq.Header {
			for _, v := range vs {
				if strings.Contains(v, aliceKey) || strings.Contains(v, carolKey) {
					t.Errorf("request %d carried a client key in %s", i, k)
				}
			}
		}
		if rq.Header.Get("Authorization") != "Bearer "+providerKey {
			t.Errorf("request %d: provider key missing", i)
		}
	}

	// Stats and export: per key, and never the prompt or a key.
	out, err = g.cli("stats", "--today", "--by", "key")
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "carol") {
		t.Errorf("stats: %v\n%s", err, out)
	}
	csvOut, err := g.cli("export", "--format", "csv")
	if err != nil || !strings.Contains(csvOut, "key_id") || !strings.Contains(csvOut, "alice") {
		t.Errorf("export: %v\n%s", err, csvOut)
	}
	jsonOut, err := g.cli("export", "--format", "json")
	if err != nil {
		t.Fatalf("export json: %v\n%s", err, jsonOut)
	}
	for _, s := range []string{csvOut, jsonOut} {
		for _, secret := range []string{"PROMPT-MARKER-4471", mockllm.Text, aliceKey, carolKey, providerKey} {
			if strings.Contains(s, secret) {
				t.Errorf("the ledger export holds %q", secret)
			}
		}
	}
	entries := strings.Count(strings.TrimSpace(jsonOut), "\n") + 1
	if out, err := g.cli("prune", "--before", "90d"); err != nil || !strings.Contains(out, "0") {
		t.Errorf("prune: %v\n%s", err, out)
	}

	// kill -9: every committed entry and the spend survive.
	g.crash()
	g.start()
	jsonAfter, err := g.cli("export", "--format", "json")
	if err != nil {
		t.Fatalf("export after crash: %v\n%s", err, jsonAfter)
	}
	if n := strings.Count(strings.TrimSpace(jsonAfter), "\n") + 1; n != entries {
		t.Errorf("%d ledger entries after kill -9, %d before", n, entries)
	}
	if after := g.budget(aliceKey)["spent_today_usd"].(float64); after != spent {
		t.Errorf("alice's spend after kill -9 is $%v, was $%v", after, spent)
	}
	var stillRefused *openai.Error
	if _, err := ask(ctx, g.client(aliceKey)); !errors.As(err, &stillRefused) || stillRefused.StatusCode != 429 {
		t.Errorf("alice after the restart: %v", err)
	}

	// Revoked: 401 from now on.
	if out, err := g.cli("key", "revoke", "--name", "alice"); err != nil {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	var revoked *openai.Error
	if _, err := ask(ctx, g.client(aliceKey)); !errors.As(err, &revoked) || revoked.StatusCode != 401 || !strings.Contains(revoked.Message, "revoked") {
		t.Errorf("revoked key: %v", err)
	}
}
