package ledger

import (
	"os"
	"strings"
	"testing"
)

func loadFixture(t *testing.T) *PriceTable {
	t.Helper()
	f, err := os.Open("testdata/litellm_prices.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pt, err := LoadLiteLLM(f)
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func TestLoadLiteLLM(t *testing.T) {
	pt := loadFixture(t)
	// sample_spec, the embedding, the image model and the unpriced
	// gradient_ai entry are skipped.
	if got := pt.Len(); got != 8 {
		t.Errorf("Len = %d, want 8", got)
	}
	for _, name := range []string{"sample_spec", "text-embedding-3-small", "dall-e-3", "gradient_ai/openai-gpt-4o"} {
		if _, ok := pt.Lookup("", name); ok {
			t.Errorf("%s was loaded", name)
		}
	}

	claude, ok := pt.Lookup("anthropic", "claude-sonnet-4-5-20250929")
	if !ok {
		t.Fatal("claude-sonnet-4-5-20250929 not found")
	}
	want := ModelInfo{
		Prices:        Prices{Input: 3, Output: 15, CachedInput: 0.3, CacheWrite: 3.75},
		ContextWindow: 200_000, MaxOutput: 64_000,
		Tools: true, Vision: true, JSON: true, Reasoning: true,
	}
	if claude != want {
		t.Errorf("claude = %+v, want %+v", claude, want)
	}

	if m, ok := pt.Lookup("openai", "gpt-5-codex"); !ok || m.Input != 1.25 || m.Output != 10 || m.CachedInput != 0.125 || !m.Reasoning || m.Vision {
		t.Errorf("responses-mode gpt-5-codex = %+v, %v", m, ok)
	}
	if m, _ := pt.Lookup("groq", "llama-3.3-70b-versatile"); m.Input != 0.59 || m.Output != 0.79 || !m.Tools || m.JSON || m.ContextWindow != 128_000 || m.MaxOutput != 32_768 {
		t.Errorf("groq llama = %+v", m)
	}
	// The old DeepSeek field for cache hits; max_tokens below
	// max_input_tokens is the output limit.
	if m, _ := pt.Lookup("deepseek", "deepseek-coder"); m.CachedInput != 0.014 || m.MaxOutput != 4096 || m.ContextWindow != 128_000 {
		t.Errorf("deepseek-coder = %+v", m)
	}
	// Without mode and max_input_tokens: a chat model with unknown
	// limits (the legacy max_tokens could be either).
	if m, ok := pt.Lookup("", "legacy-model"); !ok || m.Input != 1 || m.Output != 2 || m.ContextWindow != 0 || m.MaxOutput != 0 {
		t.Errorf("legacy-model = %+v, %v", m, ok)
	}
	// A free entry is known, at 0.
	if m, ok := pt.Lookup("ollama", "llama3.1"); !ok || m.Input != 0 || m.Output != 0 {
		t.Errorf("ollama/llama3.1 = %+v, %v", m, ok)
	}
}

func TestLoadLiteLLMErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{`{"bad-model": {"input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06, "mode": "chat"}}`, `model "bad-model": negative price: input_cost_per_token`},
		{`{"m2": {"input_cost_per_token": 1e-06, "output_cost_per_token": -2e-06}}`, `model "m2": negative price: output_cost_per_token`},
		{`{"m3": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "cache_read_input_token_cost": -1e-07}}`, `model "m3": negative price: cache_read_input_token_cost`},
		{`{"m4": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "cache_creation_input_token_cost": -1e-07}}`, `model "m4": negative price: cache_creation_input_token_cost`},
		{`{"m5": {"input_cost_per_token": "cheap", "output_cost_per_token": 1e-06}}`, `model "m5": input_cost_per_token is not a number`},
		{`{"m6": 42}`, `model "m6": entry is not a JSON object`},
		{`[1, 2]`, `not a LiteLLM price file`},
		{`{"m7": `, `not a LiteLLM price file`},
		{`null`, `not a LiteLLM price file`},
	}
	for _, c := range cases {
		_, err := LoadLiteLLM(strings.NewReader(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.src, err, c.want)
		}
	}
	// A negative price of a skipped (non-chat) entry does not matter.
	if _, err := LoadLiteLLM(strings.NewReader(`{"e": {"mode": "embedding", "input_cost_per_token": -1}}`)); err != nil {
		t.Errorf("skipped entry: %v", err)
	}
}

func TestLookupRules(t *testing.T) {
	pt := NewPriceTable(map[string]ModelInfo{
		"gpt-4o":                         {Prices: Prices{Input: 2.5, Output: 10}},
		"claude-sonnet-4":                {Prices: Prices{Input: 3, Output: 15}},
		"groq/llama-3.3-70b-versatile":   {Prices: Prices{Input: 0.59, Output: 0.79}},
		"together_ai/meta-llama/llama-x": {Prices: Prices{Input: 0.88, Output: 0.88}},
		"gemini-2.0-flash":               {Prices: Prices{Input: 0.1, Output: 0.4}},
		"claude-3-7-sonnet":              {Prices: Prices{Input: 3, Output: 15}},
	})
	cases := []struct {
		provider, model string
		wantIn          float64 // 0: not found
	}{
		{"openai", "gpt-4o", 2.5},                               // exact
		{"", "GPT-4o", 2.5},                                     // case
		{"groq", "llama-3.3-70b-versatile", 0.59},               // provider/model
		{"Groq", "llama-3.3-70b-versatile", 0.59},               // provider case
		{"together", "meta-llama/Llama-X", 0.88},                // provider alias
		{"openrouter", "anthropic/claude-sonnet-4", 3},          // vendor prefix
		{"x", "openrouter/openai/gpt-4o", 2.5},                  // two prefixes
		{"anthropic", "claude-sonnet-4-20250514", 3},            // date
		{"openai", "gpt-4o-2024-08-06", 2.5},                    // dashed date
		{"anthropic", "claude-3-7-sonnet-latest", 3},            // -latest
		{"google", "gemini-2.0-flash-001", 0.1},                 // version
		{"openrouter", "anthropic/claude-sonnet-4-20250514", 3}, // prefix and date
		{"openai", "gpt-4o-mini", 0},                            // another model
		{"openai", "gpt-4", 0},                                  // a prefix of a known name
		{"anthropic", "claude-sonnet-4-5", 0},                   // never another version
		{"anthropic", "claude-sonnet-4-2025", 0},                // not a date
		{"groq", "", 0},
		{"groq", "/", 0},
		{"cerebras", "llama-3.3-70b-versatile", 0}, // another host's price
	}
	for _, c := range cases {
		m, ok := pt.Lookup(c.provider, c.model)
		if ok != (c.wantIn != 0) || m.Input != c.wantIn {
			t.Errorf("Lookup(%q, %q) = %v, %v; want input %v", c.provider, c.model, m.Input, ok, c.wantIn)
		}
	}
	var nilTable *PriceTable
	if _, ok := nilTable.Lookup("openai", "gpt-4o"); ok || nilTable.Len() != 0 {
		t.Error("nil table knows something")
	}
}

func TestUndated(t *testing.T) {
	cases := map[string]string{
		"claude-sonnet-4-20250514":   "claude-sonnet-4",
		"gpt-4o-2024-08-06":          "gpt-4o",
		"mistral-large-latest":       "mistral-large",
		"gemini-2.0-flash-001":       "gemini-2.0-flash",
		"mistral-large-2411":         "",
		"kimi-k2-instruct-0905":      "",
		"gpt-4o":                     "",
		"llama-3.3-70b":              "",
		"-latest":                    "",
		"-2024-08-06":                "",
		"claude-3-5-sonnet-20241022": "claude-3-5-sonnet",
	}
	for in, want := range cases {
		got, ok := undated(in)
		if ok != (want != "") || got != want {
			t.Errorf("undated(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestLayering(t *testing.T) {
	file := loadFixture(t)
	pt := file.Over(BuiltinPrices())
	// A model the file knows: the file's entry, even though the built-in
	// table has the model under its exact name and the file under a
	// dated one.
	custom := NewPriceTable(map[string]ModelInfo{"gpt-4o-2024-08-06": {Prices: Prices{Input: 1, Output: 2}}})
	if m, _ := custom.Over(BuiltinPrices()).Lookup("openai", "gpt-4o-2024-08-06"); m.Input != 1 {
		t.Errorf("override = %+v", m)
	}
	if m, _ := pt.Lookup("openrouter", "anthropic/claude-sonnet-4"); m.ContextWindow != 1_000_000 {
		t.Errorf("file's openrouter entry lost to the built-in one: %+v", m)
	}
	// A model only the built-in table knows.
	if m, ok := pt.Lookup("openai", "o4-mini"); !ok || m.Input != 1.1 {
		t.Errorf("o4-mini = %+v, %v", m, ok)
	}
	// Both know gpt-4o: the file answers.
	if m, _ := pt.Lookup("openai", "gpt-4o"); m.CachedInput != 1.25 || m.MaxOutput != 16384 {
		t.Errorf("gpt-4o = %+v", m)
	}
	if pt.Len() < BuiltinPrices().Len() || pt.Len() > BuiltinPrices().Len()+file.Len() {
		t.Errorf("Len = %d", pt.Len())
	}
	// Nil layers are allowed on either side.
	if m, ok := (*PriceTable)(nil).Over(file).Lookup("openai", "gpt-4o"); !ok || m.Input != 2.5 {
		t.Error("nil over file")
	}
	if _, ok := file.Over(nil).Lookup("openai", "gpt-4o"); !ok {
		t.Error("file over nil")
	}
	// Over does not change its operands.
	if _, ok := file.Lookup("openai", "o4-mini"); ok {
		t.Error("Over changed the file's table")
	}
}

func TestBuiltinPricesSanity(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range builtin {
		if len(b.names) == 0 {
			t.Fatal("entry without a name")
		}
		for _, name := range b.names {
			key := normalize(name)
			if key != name {
				t.Errorf("%q: names are lower case without spaces", name)
			}
			if seen[key] {
				t.Errorf("%s listed twice", name)
			}
			seen[key] = true
		}
		p, name := b.info.Prices, b.names[0]
		if p.Input <= 0 || p.Output <= 0 {
			t.Errorf("%s: input and output prices must be > 0: %+v", name, p)
		}
		if p.Output < p.Input {
			t.Errorf("%s: output %v cheaper than input %v", name, p.Output, p.Input)
		}
		if p.CachedInput < 0 || p.CachedInput >= p.Input {
			t.Errorf("%s: cache read %v not below input %v", name, p.CachedInput, p.Input)
		}
		if p.CacheWrite != 0 && p.CacheWrite < p.Input {
			t.Errorf("%s: cache write %v below input %v", name, p.CacheWrite, p.Input)
		}
		if b.info.ContextWindow <= 0 {
			t.Errorf("%s: no context window", name)
		}
		if b.info.MaxOutput < 0 || b.info.MaxOutput > b.info.ContextWindow {
			t.Errorf("%s: output limit %d", name, b.info.MaxOutput)
		}
	}
	if got := BuiltinPrices().Len(); got != len(seen) {
		t.Errorf("table holds %d names, entries list %d", got, len(seen))
	}
	if BuiltinPrices() != BuiltinPrices() {
		t.Error("the built-in table is rebuilt on every call")
	}
}

// TestBuiltinCoverage: each provider of the issue is covered, found the
// way a Caddyfile names it (provider name, upstream model id).
func TestBuiltinCoverage(t *testing.T) {
	pt := BuiltinPrices()
	cases := []struct {
		provider, model string
		in, out         float64
	}{
		{"anthropic", "claude-sonnet-4-5-20250929", 3, 15},
		{"anthropic", "claude-opus-4-1-20250805", 15, 75},
		{"anthropic", "claude-haiku-4-5", 1, 5},
		{"anthropic", "claude-3-5-haiku-latest", 0.8, 4},
		{"openai", "gpt-4o-2024-08-06", 2.5, 10},
		{"openai", "gpt-4.1-mini", 0.4, 1.6},
		{"openai", "o3", 2, 8},
		{"openai", "gpt-5-mini-2025-08-07", 0.25, 2},
		{"google", "gemini-2.5-pro", 1.25, 10},
		{"gemini", "gemini-2.0-flash-001", 0.1, 0.4},
		{"deepseek", "deepseek-chat", 0.28, 0.42},
		{"deepseek", "deepseek-reasoner", 0.28, 0.42},
		{"groq", "llama-3.3-70b-versatile", 0.59, 0.79},
		{"groq", "openai/gpt-oss-120b", 0.15, 0.6},
		{"openrouter", "anthropic/claude-sonnet-4", 3, 15},
		{"openrouter", "anthropic/claude-sonnet-4.5", 3, 15},
		{"openrouter", "openai/gpt-4o-mini", 0.15, 0.6},
		{"openrouter", "google/gemini-2.5-flash", 0.3, 2.5},
		{"openrouter", "x-ai/grok-4", 3, 15},
		{"mistral", "mistral-large-latest", 0.5, 1.5},
		{"mistral", "codestral-latest", 0.3, 0.9},
		{"together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 0.88, 0.88},
		{"fireworks", "accounts/fireworks/models/llama-v3p3-70b-instruct", 0.9, 0.9},
		{"cerebras", "llama3.1-8b", 0.1, 0.1},
		{"cerebras", "gpt-oss-120b", 0.35, 0.75},
	}
	for _, c := range cases {
		m, ok := pt.Lookup(c.provider, c.model)
		if !ok || m.Input != c.in || m.Output != c.out {
			t.Errorf("Lookup(%q, %q) = %+v, %v; want %v/%v", c.provider, c.model, m.Prices, ok, c.in, c.out)
		}
	}
	// Anthropic's cache write premium is priced.
	m, _ := pt.Lookup("anthropic", "claude-sonnet-4-5")
	got := Cost(m.Prices, Tokens{Input: 1_000_000, CachedInput: 500_000, CacheWrite: 500_000, Output: 0})
	if want := 0.5*0.3 + 0.5*3.75; got != want {
		t.Errorf("cost = %v, want %v", got, want)
	}
	// Local models are not in the table.
	if _, ok := pt.Lookup("ollama", "llama3.2:3b"); ok {
		t.Error("a local model has a price")
	}
}
