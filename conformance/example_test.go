package conformance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exampleEnv is the environment of a gateway run from Caddyfile.example
// with no provider keys, its data (and so its llm storage) under dir.
func exampleEnv(dir string, port, adminPort int) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_HOST", "PORT", "CADDY_ADMIN", "XDG_DATA_HOME", "XDG_CONFIG_HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		fmt.Sprintf("PORT=%d", port),
		fmt.Sprintf("CADDY_ADMIN=127.0.0.1:%d", adminPort),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
}

// TestExampleWithoutKeys runs the quick start's config as a user would on
// a fresh machine, with no provider keys: it starts, serves /health and
// /v1/models, and a chat request gets an error naming what to set. While
// it runs, `caddy validate` of the same config works, and a second
// process using the same storage fails with a clear message.
func TestExampleWithoutKeys(t *testing.T) {
	dir := t.TempDir()
	ports, err := freePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	example, _ := filepath.Abs("../Caddyfile.example")
	var log bytes.Buffer
	cmd := exec.Command(gatewayBin, "run", "--config", example, "--adapter", "caddyfile")
	cmd.Env = exampleEnv(dir, ports[0], ports[1])
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stop(cmd, exited)
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if err := waitHealthy(base+"/health", 60*time.Second, exited); err != nil {
		t.Fatalf("example did not start: %v\n%s", err, log.String())
	}

	health := getBody(t, base+"/health")
	for _, want := range []string{`"name":"openai"`, `"available":false`, "OPENAI_API_KEY", "ANTHROPIC_API_KEY", `"storage":"open"`} {
		if !strings.Contains(health, want) {
			t.Errorf("/health lacks %s: %s", want, health)
		}
	}
	models := getBody(t, base+"/v1/models")
	for _, want := range []string{`"object":"list"`, `"id":"gpt-4.1-mini"`, `"id":"cheap"`, `"alias_for":"gpt-4.1-mini"`, `"input_per_1m":0.4`} {
		if !strings.Contains(models, want) {
			t.Errorf("/v1/models lacks %s: %s", want, models)
		}
	}
	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"cheap","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "set the environment variable OPENAI_API_KEY") {
		t.Errorf("chat without a key: %d %s", resp.StatusCode, body)
	}

	// caddy validate provisions the same config (same storage) while the
	// server holds the database: it must not need the lock.
	validate := exec.Command(gatewayBin, "validate", "--config", example, "--adapter", "caddyfile")
	validate.Env = exampleEnv(dir, ports[2], ports[3])
	if out, err := validate.CombinedOutput(); err != nil {
		t.Errorf("caddy validate while running: %v\n%s", err, out)
	}

	// A second process with the same storage must refuse clearly.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, gatewayBin, "run", "--config", example, "--adapter", "caddyfile")
	second.Env = exampleEnv(dir, ports[2], ports[3])
	out, err := second.CombinedOutput()
	if err == nil {
		t.Fatalf("second process on the same storage started:\n%s", out)
	}
	if !strings.Contains(string(out), "is in use (another caddy process with the same llm storage is running") {
		t.Errorf("second process failed without the storage message:\n%s", out)
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}
