package llmgate

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
)

// TestCaddyfileErrorsNameTheLine: every config mistake is reported with
// the file and line that holds it.
func TestCaddyfileErrorsNameTheLine(t *testing.T) {
	head := "{\n\tllm {\n\t\tprovider p {\n\t\t\turl https://api.example.test\n\t\t}\n" // lines 1-5
	cases := []struct {
		body, want string
	}{
		{"\t\tmodel m q\n", "Caddyfile:6 - model m: unknown provider q"},
		{"\t\tmodel m {\n\t\t\tprice 1\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p {\n\t\t\tprice 1 x\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p {\n\t\t\tcapabilities telepathy\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p {\n\t\t\ttiers huge\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p {\n\t\t\tcontext lots\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p\n\t\talias a nope\n", "Caddyfile:7 - alias a: unknown model nope"},
		{"\t\tmodel m p\n\t\tmodel m p\n", "Caddyfile:7"},
		{"\t\tprovider p {\n\t\t\turl https://x\n\t\t}\n", "Caddyfile:8"},
		{"\t\tprovider r {\n\t\t\tdialect klingon\n\t\t}\n", "Caddyfile:7"},
		{"\t\tprovider r {\n\t\t\turl ftp://x\n\t\t}\n", "Caddyfile:7"},
		{"\t\tprovider r {\n\t\t\tdialect openai\n\t\t}\n", "missing url"},
		{"\t\tmax_body huge\n", "Caddyfile:6"},
		{"\t\tfrobnicate\n", "Caddyfile:6"},
		{"\t\tmodel m\n", "model m: no provider"},
		{"\t\trouter {\n\t\t\tdefault_tier huge\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tkeywords huge \"x y\"\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p\n\t\trouter {\n\t\t\ttier deep m nope\n\t\t}\n", "Caddyfile:8 - router: tier deep: unknown model nope"},
		{"\t\tmodel m p\n\t\trouter {\n\t\t\tfallback m nope\n\t\t}\n", "Caddyfile:8 - router: fallback m: unknown model nope"},
		{"\t\tmodel m p\n\t\trouter {\n\t\t\tfallback zzz m\n\t\t}\n", "Caddyfile:8 - router: fallback zzz: neither"},
		{"\t\trouter {\n\t\t\tretries many\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tbreaker_cooldown soon\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tproxy_info maybe\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tfallback deep\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tteleport\n\t\t}\n", "Caddyfile:7"},
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, c := range cases {
		src := head + c.body + "\t}\n}\n:8080 {\n\tllm_route\n\tllm_translate\n}\n"
		_, _, err := adapter.Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.body, err, c.want)
		}
	}
	_, _, err := adapter.Adapt([]byte(":8080 {\n\tllm_route {\n\t\tbogus\n\t}\n}\n"), map[string]any{"filename": "Caddyfile"})
	if err == nil || !strings.Contains(err.Error(), "Caddyfile:3") {
		t.Errorf("llm_route option: %v", err)
	}
	_, _, err = adapter.Adapt([]byte(":8080 {\n\tllm_translate extra\n}\n"), map[string]any{"filename": "Caddyfile"})
	if err == nil {
		t.Error("llm_translate accepted an argument")
	}
}

// TestCaddyfilePrices: the `prices` option and the price line with up to
// four values, and what a missing price line leaves out.
func TestCaddyfilePrices(t *testing.T) {
	src := `{
	llm {
		prices /etc/llm/prices.json
		provider p {
			url https://api.example.test
		}
		model full p {
			price 1 2 0.1 1.25
		}
		model free p {
			price 0 0
		}
		model table p gpt-4o
		model three p {
			price $3 $15 $0.30
		}
	}
}
:8080 {
	llm_route
	llm_translate
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	llm := gjson.GetBytes(out, "apps.llm")
	if got := llm.Get("prices_file").String(); got != "/etc/llm/prices.json" {
		t.Errorf("prices_file = %q", got)
	}
	full := llm.Get("models.0")
	if full.Get("input_price").Float() != 1 || full.Get("output_price").Float() != 2 ||
		full.Get("cached_input_price").Float() != 0.1 || full.Get("cache_write_price").Float() != 1.25 {
		t.Errorf("full = %s", full.Raw)
	}
	// price 0 0 is a price: both values are kept, so the tables never
	// apply to the model.
	free := llm.Get("models.1")
	if !free.Get("input_price").Exists() || !free.Get("output_price").Exists() || free.Get("input_price").Float() != 0 ||
		free.Get("cached_input_price").Exists() || free.Get("cache_write_price").Exists() {
		t.Errorf("free = %s", free.Raw)
	}
	if table := llm.Get("models.2"); table.Get("input_price").Exists() || table.Get("output_price").Exists() {
		t.Errorf("model without price line = %s", table.Raw)
	}
	three := llm.Get("models.3")
	if three.Get("cached_input_price").Float() != 0.3 || three.Get("cache_write_price").Exists() {
		t.Errorf("three = %s", three.Raw)
	}

	head := "{\n\tllm {\n\t\tprovider p {\n\t\t\turl https://api.example.test\n\t\t}\n" // lines 1-5
	errs := []struct{ body, line, msg string }{
		{"\t\tprices\n", "Caddyfile:6", "wrong argument count"},
		{"\t\tprices a.json b.json\n", "Caddyfile:6", "wrong argument count"},
		{"\t\tmodel m p {\n\t\t\tprice 1 2 3 4 5\n\t\t}\n", "Caddyfile:7", "price needs input and output prices"},
		{"\t\tmodel m p {\n\t\t\tprice 1 2 3 x\n\t\t}\n", "Caddyfile:7", `price: invalid amount "x"`},
		{"\t\tmodel m p {\n\t\t\tprice 1 2 0.1 -1.25\n\t\t}\n", "Caddyfile:7", `price: invalid amount "-1.25"`},
		{"\t\tmodel m p {\n\t\t\tprice NaN 1\n\t\t}\n", "Caddyfile:7", `price: invalid amount "NaN"`},
		{"\t\tmodel m p {\n\t\t\tprice 1 +Inf\n\t\t}\n", "Caddyfile:7", `price: invalid amount "+Inf"`},
	}
	for _, c := range errs {
		src := head + c.body + "\t}\n}\n:8080 {\n\tllm_route\n\tllm_translate\n}\n"
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), c.line) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%q: error %v, want it to contain %q and %q", c.body, err, c.line, c.msg)
		}
	}
}

// TestPriceResolution: where a model's prices come from (buildModel).
func TestPriceResolution(t *testing.T) {
	provider := func(name, dialect, raw string) *routing.Provider {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return &routing.Provider{Name: name, Dialect: dialect, URLs: []*url.URL{u}}
	}
	anthropic := provider("anthropic", "anthropic", "https://api.anthropic.com")
	openai := provider("openai", "openai", "https://api.openai.com")
	ollama := provider("box", "ollama", "http://10.0.0.5:11434")
	ollamaV1 := provider("box-v1", "openai", "http://10.0.0.5:11434/v1")
	vllm := provider("vllm", "openai", "http://10.0.0.6:8000/v1")
	f := func(v float64) *float64 { return &v }
	all := []routing.Capability{routing.CapTools, routing.CapVision, routing.CapJSON, routing.CapReasoning}
	cases := []struct {
		name        string
		mc          ModelConfig
		p           *routing.Provider
		want        routing.Prices
		unpriced    bool
		ctx, maxOut int
		caps        []routing.Capability
	}{
		{"from the table by upstream id", ModelConfig{ID: "sonnet", UpstreamModel: "claude-sonnet-4-5-20250929"}, anthropic,
			routing.Prices{Input: 3, Output: 15, CachedInput: 0.3, CacheWrite: 3.75}, false, 200_000, 64_000, all},
		{"declared limits and capabilities win", ModelConfig{ID: "claude-sonnet-4-5", ContextWindow: 100_000, Capabilities: []string{"tools"}}, anthropic,
			routing.Prices{Input: 3, Output: 15, CachedInput: 0.3, CacheWrite: 3.75}, false, 100_000, 64_000, []routing.Capability{routing.CapTools}},
		{"upstream defaults to the id", ModelConfig{ID: "gpt-4o-mini"}, openai,
			routing.Prices{Input: 0.15, Output: 0.6, CachedInput: 0.075}, false, 128_000, 16_384, []routing.Capability{routing.CapTools, routing.CapVision, routing.CapJSON}},
		{"price 0 0 wins over the table", ModelConfig{ID: "claude-sonnet-4-5", InputPrice: f(0), OutputPrice: f(0)}, anthropic,
			routing.Prices{}, false, 0, 0, nil},
		{"four explicit prices", ModelConfig{ID: "claude-sonnet-4-5", InputPrice: f(1), OutputPrice: f(2), CacheWritePrice: f(1.5)}, anthropic,
			routing.Prices{Input: 1, Output: 2, CacheWrite: 1.5}, false, 0, 0, nil},
		{"native ollama is free", ModelConfig{ID: "llama3.2", UpstreamModel: "llama3.2:3b"}, ollama,
			routing.Prices{}, false, 0, 0, nil},
		{"ollama's /v1 is free, metadata still found", ModelConfig{ID: "gpt-4o"}, ollamaV1,
			routing.Prices{}, false, 128_000, 16_384, []routing.Capability{routing.CapTools, routing.CapVision, routing.CapJSON}},
		{"a priced ollama model", ModelConfig{ID: "llama3.2", InputPrice: f(0.1), OutputPrice: f(0.2)}, ollama,
			routing.Prices{Input: 0.1, Output: 0.2}, false, 0, 0, nil},
		{"unknown model", ModelConfig{ID: "mystery"}, vllm, routing.Prices{}, true, 0, 0, nil},
		{"unknown provider", ModelConfig{ID: "mystery", Provider: "nope"}, nil, routing.Prices{}, true, 0, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.p != nil {
				c.mc.Provider = c.p.Name
			}
			m, unpriced, err := buildModel(&c.mc, c.p, ledger.BuiltinPrices())
			if err != nil {
				t.Fatal(err)
			}
			if m.Prices != c.want || unpriced != c.unpriced {
				t.Errorf("prices %+v unpriced %v, want %+v %v", m.Prices, unpriced, c.want, c.unpriced)
			}
			if m.ContextWindow != c.ctx || m.MaxOutput != c.maxOut || !slices.Equal(m.Capabilities, c.caps) {
				t.Errorf("context %d max output %d capabilities %v, want %d %d %v", m.ContextWindow, m.MaxOutput, m.Capabilities, c.ctx, c.maxOut, c.caps)
			}
		})
	}
	if _, _, err := buildModel(&ModelConfig{ID: "m", Provider: "openai", CacheWritePrice: f(-1)}, openai, nil); err == nil {
		t.Error("negative price accepted")
	}
	// Without any table, nothing is found.
	if _, unpriced, _ := buildModel(&ModelConfig{ID: "gpt-4o", Provider: "openai"}, openai, nil); !unpriced {
		t.Error("found a price in no table")
	}
}

// TestPricesFile: a LiteLLM-format file overrides the built-in table,
// and its errors name it.
func TestPricesFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "prices.json")
	if err := os.WriteFile(good, []byte(`{"gpt-4o": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "mode": "chat"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	table, err := loadPrices(good)
	if err != nil {
		t.Fatal(err)
	}
	openai := &routing.Provider{Name: "openai", Dialect: "openai"}
	prices := table.Over(ledger.BuiltinPrices())
	if m, _, _ := buildModel(&ModelConfig{ID: "gpt-4o", Provider: "openai"}, openai, prices); m.Prices.Input != 1 || m.Prices.Output != 2 {
		t.Errorf("file price not used: %+v", m.Prices)
	}
	if m, _, _ := buildModel(&ModelConfig{ID: "o3", Provider: "openai"}, openai, prices); m.Prices.Input != 2 {
		t.Errorf("built-in price lost under the file: %+v", m.Prices)
	}
	if table, err := loadPrices(""); table != nil || err != nil {
		t.Errorf("no file: %v %v", table, err)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"cheap-model": {"input_cost_per_token": -1, "output_cost_per_token": 1}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string][]string{
		bad:                                {bad, `"cheap-model"`, "negative"},
		filepath.Join(dir, "missing.json"): {"missing.json"},
	} {
		_, err := loadPrices(file)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to contain %q", file, err, w)
			}
		}
	}

	// Provisioning fails on a bad file and names it.
	cfg := fmt.Sprintf(`{"apps": {"llm": {"storage": %q, "prices_file": %q,
		"providers": [{"name": "openai", "urls": ["https://api.openai.com"]}],
		"models": [{"id": "gpt-4o", "provider": "openai"}]}}}`, dir, bad)
	var c caddy.Config
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("provisioning with a bad prices file: %v", err)
	}
}

// TestPriceWarnings: provisioning warns once per model that has a paid
// provider and no price anywhere, naming the model and nothing secret.
func TestPriceWarnings(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	u, _ := url.Parse("https://api.openai.com")
	local, _ := url.Parse("http://jetson:11434/v1")
	providers := []*routing.Provider{
		{Name: "openai", Dialect: "openai", URLs: []*url.URL{u}, APIKey: "sk-secret", KeySource: "sk-secret"},
		{Name: "local", Dialect: "openai", URLs: []*url.URL{local}},
	}
	f := func(v float64) *float64 { return &v }
	models, err := buildModels([]ModelConfig{
		{ID: "gpt-4o", Provider: "openai"},
		{ID: "mystery", Provider: "openai", UpstreamModel: "mystery-2"},
		{ID: "custom", Provider: "openai", InputPrice: f(0), OutputPrice: f(0)},
		{ID: "qwen", Provider: "local", UpstreamModel: "qwen3-coder:30b"},
	}, providers, ledger.BuiltinPrices(), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 4 || models[0].Prices.Input != 2.5 {
		t.Fatalf("models = %v", models)
	}
	entries := logs.All()
	if len(entries) != 1 {
		t.Fatalf("%d warnings, want 1: %v", len(entries), entries)
	}
	fields := entries[0].ContextMap()
	if fields["model"] != "mystery" || fields["provider"] != "openai" || fields["upstream_model"] != "mystery-2" || len(fields) != 3 {
		t.Errorf("warning fields = %v", fields)
	}
}

// TestBudgetCaddyfile parses llm_budget into its JSON config and reports
// mistakes with their line.
func TestBudgetCaddyfile(t *testing.T) {
	hash := "sha256:" + strings.Repeat("ab", 32)
	head := "{\n\tllm {\n\t\ttimezone Europe/Berlin\n\t\tprovider p {\n\t\t\turl https://api.example.test\n\t\t}\n\t}\n}\n:8080 {\n\tllm_budget {\n" // lines 1-10
	tail := "\t}\n\tllm_route\n\tllm_translate\n}\n"
	adapter := caddyconfig.GetAdapter("caddyfile")
	good := "\t\tglobal daily 100 monthly $1000\n\t\tper_key daily 5\n\t\tsession 2.5\n\t\tper_request 0.5\n" +
		"\t\tkey alice " + hash + " monthly 60\n\t\tanonymous loopback 10.0.0.0/8 192.168.1.7\n\t\tdefault_max_tokens 8k\n"
	out, _, err := adapter.Adapt([]byte(head+good+tail), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	routes := gjson.GetBytes(out, "apps.http.servers.srv0.routes.0.handle")
	if h := routes.Get("0.handler").String(); h != "llm_budget" {
		t.Fatalf("first handler %q, want llm_budget before llm_route: %s", h, routes.Raw)
	}
	b := routes.Get("0")
	for path, want := range map[string]string{
		"global.daily_usd": "100", "global.monthly_usd": "1000", "per_key.daily_usd": "5", "session_usd": "2.5",
		"per_request_usd": "0.5", "keys.0.name": "alice", "keys.0.hash": hash, "keys.0.monthly_usd": "60",
		"anonymous.1": "10.0.0.0/8", "default_max_tokens": "8000",
	} {
		if got := b.Get(path).String(); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if gjson.GetBytes(out, "apps.llm.timezone").String() != "Europe/Berlin" {
		t.Error("timezone lost")
	}
	// The adapted config provisions.
	if err := caddy.Validate(mustConfig(t, out)); err != nil {
		t.Errorf("validate: %v", err)
	}
	for body, want := range map[string]string{
		"\t\tglobal daily\n":                               "Caddyfile:11",
		"\t\tglobal weekly 5\n":                            "Caddyfile:11|unknown limit window",
		"\t\tper_key daily -5\n":                           "Caddyfile:11",
		"\t\tsession lots\n":                               "Caddyfile:11",
		"\t\tkey alice\n":                                  "Caddyfile:11|key needs a name and a hash",
		"\t\tkey alice plaintext\n":                        "Caddyfile:11|key alice: key hash must start with",
		"\t\tkey anonymous " + hash + "\n":                 "Caddyfile:11",
		"\t\tanonymous 10.0.0.0/33\n":                      "Caddyfile:11|invalid network",
		"\t\tanonymous\n":                                  "Caddyfile:11",
		"\t\tfrobnicate\n":                                 "Caddyfile:11|llm_budget: unrecognized option",
		"\t\tdefault_max_tokens none\n":                    "Caddyfile:11",
		"\t\tkey a " + hash + "\n\t\tkey a " + hash + "\n": "Caddyfile:12|key a declared twice",
	} {
		_, _, err := adapter.Adapt([]byte(head+body+tail), map[string]any{"filename": "Caddyfile"})
		line, msg, _ := strings.Cut(want, "|")
		if err == nil || !strings.Contains(err.Error(), line) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
	if _, _, err := adapter.Adapt([]byte(strings.Replace(head, "Europe/Berlin", "Mars/Olympus", 1)+tail), map[string]any{"filename": "Caddyfile"}); err == nil ||
		!strings.Contains(err.Error(), "Caddyfile:3") {
		t.Errorf("bad timezone: %v", err)
	}
}

func mustConfig(t *testing.T, raw []byte) *caddy.Config {
	t.Helper()
	var cfg caddy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

func TestCacheContextCaddyfile(t *testing.T) {
	head := "{\n\tllm {\n\t\tprovider p {\n\t\t\turl https://api.example.test\n\t\t}\n" // lines 1-5
	tail := "\t}\n}\n:8080 {\n\tllm_route\n\tllm_translate\n}\n"
	adapter := caddyconfig.GetAdapter("caddyfile")
	good := "\t\tcache {\n\t\t\tttl 30m\n\t\t\tmax_entry_size 2MiB\n\t\t\tmax_temperature 0.5\n\t\t\tencryption_key_env LLMGATE_TEST_CACHE_KEY\n\t\t}\n" +
		"\t\tcontext {\n\t\t\tmax_size 8MiB\n\t\t\tsession_ttl 2h\n\t\t\tdefault_id proj\n\t\t}\n"
	out, _, err := adapter.Adapt([]byte(head+good+tail), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"apps.llm.cache.ttl": "1800000000000", "apps.llm.cache.max_entry_bytes": "2097152", "apps.llm.cache.max_temperature": "0.5",
		"apps.llm.cache.encryption_key_env": "LLMGATE_TEST_CACHE_KEY",
		"apps.llm.context.max_bytes":        "8388608", "apps.llm.context.session_ttl": "7200000000000", "apps.llm.context.default_id": "proj",
	} {
		if got := gjson.GetBytes(out, path).String(); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	// The key is read when the config loads: a bad one fails the
	// config, naming the variable and never the value.
	t.Setenv("LLMGATE_TEST_CACHE_KEY", "")
	if err := caddy.Validate(mustConfig(t, out)); err != nil {
		t.Errorf("an unset key turns the cache off, the config loads: %v", err)
	}
	t.Setenv("LLMGATE_TEST_CACHE_KEY", "too-short-secret")
	if err := caddy.Validate(mustConfig(t, out)); err == nil || strings.Contains(err.Error(), "too-short-secret") {
		t.Errorf("bad key: %v", err)
	}
	t.Setenv("LLMGATE_TEST_CACHE_KEY", strings.Repeat("ab", 32))
	if err := caddy.Validate(mustConfig(t, out)); err != nil {
		t.Errorf("validate: %v", err)
	}
	// A bare cache takes the defaults.
	out, _, err = adapter.Adapt([]byte(head+"\t\tcache\n"+tail), map[string]any{"filename": "Caddyfile"})
	if err != nil || gjson.GetBytes(out, "apps.llm.cache").Raw != "{}" {
		t.Errorf("bare cache: %s %v", gjson.GetBytes(out, "apps.llm.cache").Raw, err)
	}
	for body, want := range map[string]string{
		"\t\tcache {\n\t\t\tttl 10ms\n\t\t}\n":            "Caddyfile:7|at least 1s",
		"\t\tcache {\n\t\t\tmax_entry_size lots\n\t\t}\n": "Caddyfile:7|invalid size",
		"\t\tcache {\n\t\t\tmax_temperature hot\n\t\t}\n": "Caddyfile:7|max_temperature",
		"\t\tcache {\n\t\t\tcolour blue\n\t\t}\n":         "Caddyfile:7|unrecognized cache option",
		"\t\tcache on\n": "Caddyfile:6",
		"\t\tcontext {\n\t\t\tsession_ttl -1h\n\t\t}\n": "Caddyfile:7|session_ttl",
		"\t\tcontext {\n\t\t\tmax_size\n\t\t}\n":        "Caddyfile:7",
		"\t\tcontext {\n\t\t\tcolour blue\n\t\t}\n":     "Caddyfile:7|unrecognized context option",
		"\t\tcontext {\n\t\t\tdefault_id ../x\n\t\t}\n": "Caddyfile:7|default_id",
	} {
		_, _, err := adapter.Adapt([]byte(head+body+tail), map[string]any{"filename": "Caddyfile"})
		line, msg, _ := strings.Cut(want, "|")
		if err == nil || !strings.Contains(err.Error(), line) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
}
