package llmgate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the adapt golden files")

// TestAdaptGolden adapts Caddyfile.example and every file in examples/ to
// JSON and compares with testdata/adapt/<name>.json, so the Caddyfile
// grammar cannot drift silently; then it provisions each config (as
// `caddy validate` does) so the examples stay runnable. Run with -update
// to accept a deliberate change.
func TestAdaptGolden(t *testing.T) {
	for _, env := range []string{"OLLAMA_HOST", "PORT"} {
		if v, ok := os.LookupEnv(env); ok {
			os.Unsetenv(env)
			t.Cleanup(func() { os.Setenv(env, v) })
		}
	}
	files, _ := filepath.Glob("examples/*.Caddyfile")
	files = append([]string{"Caddyfile.example"}, files...)
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := adapter.Adapt(src, map[string]any{"filename": f})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("adapt warning: %s", w)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", "adapt", filepath.Base(f)+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestAdaptGolden -update)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s adapts to\n%s\nwant (%s)\n%s", f, pretty.Bytes(), golden, want)
			}
			var cfg caddy.Config
			if err := json.Unmarshal(out, &cfg); err != nil {
				t.Fatal(err)
			}
			if err := caddy.Validate(&cfg); err != nil {
				t.Errorf("provisioning %s: %v", f, err)
			}
		})
	}
}
