package ledger

// Price tables: what a model costs and what it can do, for models whose
// declaration gives no price.
//
// Two sources feed them: BuiltinPrices, a hand-curated table of the
// common hosted models, and LoadLiteLLM, which reads LiteLLM's
// model_prices_and_context_window.json (or a file in its format). Over
// layers them, so a loaded file overrides the built-in table.
//
// A lookup (see PriceTable.Lookup) is forgiving about how a model is
// named: "gpt-4o", "openai/gpt-4o", "claude-sonnet-4-20250514" and
// "claude-sonnet-4-latest" all find the entries their undecorated names
// have. It never guesses across models: every rule only removes naming
// (a vendor prefix, a date, "-latest"), so a miss means "unknown", and
// the caller decides what an unknown model costs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
)

// ModelInfo is what a price table knows about one model.
type ModelInfo struct {
	// Prices are USD per one million tokens.
	Prices
	// ContextWindow is the most input tokens the model accepts; 0 when
	// unknown.
	ContextWindow int
	// MaxOutput is the most tokens the model writes in one answer; 0 when
	// unknown.
	MaxOutput int
	// Tools: the model supports tool (function) calls.
	Tools bool
	// Vision: the model accepts images.
	Vision bool
	// JSON: the model supports structured (JSON schema) output.
	JSON bool
	// Reasoning: the model thinks before it answers.
	Reasoning bool
}

// PriceTable maps model names to what they cost and can do. Names are
// matched without regard to case. A table never changes once built, so
// it is safe for concurrent use; Over builds layered tables.
type PriceTable struct {
	// layers are searched in order; the first layer that knows a model
	// answers for it.
	layers []map[string]ModelInfo
}

// NewPriceTable returns a table holding entries (model name → info).
func NewPriceTable(entries map[string]ModelInfo) *PriceTable {
	layer := make(map[string]ModelInfo, len(entries))
	// Sorted, so that names differing only in case resolve the same way
	// on every run: the first in byte order wins.
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		key := normalize(name)
		if key == "" {
			continue
		}
		if _, dup := layer[key]; !dup {
			layer[key] = entries[name]
		}
	}
	return &PriceTable{layers: []map[string]ModelInfo{layer}}
}

// Over returns a table that answers from t first and from base for the
// models t does not know: a loaded file over the built-in table is
// file.Over(BuiltinPrices()). Either may be nil.
func (t *PriceTable) Over(base *PriceTable) *PriceTable {
	out := &PriceTable{}
	if t != nil {
		out.layers = append(out.layers, t.layers...)
	}
	if base != nil {
		out.layers = append(out.layers, base.layers...)
	}
	return out
}

// Len is the number of distinct model names the table knows.
func (t *PriceTable) Len() int {
	if t == nil {
		return 0
	}
	if len(t.layers) == 1 {
		return len(t.layers[0])
	}
	seen := map[string]bool{}
	for _, l := range t.layers {
		for name := range l {
			seen[name] = true
		}
	}
	return len(seen)
}

// Lookup finds the model a provider calls model. It tries, in order:
//
//  1. the name as given ("gpt-4o", "anthropic/claude-sonnet-4");
//  2. "provider/model" ("groq/llama-3.3-70b-versatile"), also with the
//     provider's LiteLLM name where it differs (together → together_ai,
//     fireworks → fireworks_ai, google → gemini, mistralai → mistral);
//  3. the name without its vendor prefixes ("anthropic/claude-sonnet-4"
//     → "claude-sonnet-4", "openrouter/openai/gpt-4o" → "gpt-4o");
//  4. each of those without a date or version suffix when the undated
//     name is known: "-20250514", "-2024-08-06", "-latest" and Google's
//     "-001".
//
// Each layer of a layered table is searched with every rule before the
// next layer, so a loaded file's entry for a model wins over a built-in
// one even when the file names the model differently. Matching ignores
// case.
func (t *PriceTable) Lookup(provider, model string) (ModelInfo, bool) {
	if t == nil {
		return ModelInfo{}, false
	}
	names := candidates(provider, model)
	for _, layer := range t.layers {
		for _, name := range names {
			if info, ok := layer[name]; ok {
				return info, true
			}
		}
	}
	return ModelInfo{}, false
}

// providerAliases maps provider names people use to the prefix LiteLLM
// uses for the same provider.
var providerAliases = map[string]string{
	"together":     "together_ai",
	"togetherai":   "together_ai",
	"fireworks":    "fireworks_ai",
	"fireworksai":  "fireworks_ai",
	"google":       "gemini",
	"googleai":     "gemini",
	"google_ai":    "gemini",
	"mistralai":    "mistral",
	"mistral_ai":   "mistral",
	"x-ai":         "xai",
	"deepseek-ai":  "deepseek",
	"open-router":  "openrouter",
	"open_router":  "openrouter",
	"cerebras-ai":  "cerebras",
	"groqcloud":    "groq",
	"anthropic-ai": "anthropic",
}

// candidates lists the names Lookup tries for model at provider, most
// specific first, normalized.
func candidates(provider, model string) []string {
	m := normalize(model)
	if m == "" {
		return nil
	}
	names := []string{m}
	add := func(s string) {
		for _, n := range names {
			if n == s {
				return
			}
		}
		names = append(names, s)
	}
	if p := normalize(provider); p != "" {
		add(p + "/" + m)
		if alias, ok := providerAliases[p]; ok {
			add(alias + "/" + m)
		}
	}
	for rest := m; ; {
		i := strings.IndexByte(rest, '/')
		if i < 0 || i == len(rest)-1 {
			break
		}
		rest = rest[i+1:]
		add(rest)
	}
	for i, n := 0, len(names); i < n; i++ {
		if u, ok := undated(names[i]); ok {
			add(u)
		}
	}
	return names
}

// undated strips one date or version suffix from name: "-20250514",
// "-2024-08-06", "-latest" or "-0NN".
func undated(name string) (string, bool) {
	if s, ok := strings.CutSuffix(name, "-latest"); ok && s != "" {
		return s, true
	}
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", false
	}
	tail := name[i+1:]
	switch {
	case len(tail) == 8 && digits(tail) && (tail[0] == '1' || tail[0] == '2'):
		return name[:i], true
	case len(tail) == 3 && digits(tail) && tail[0] == '0':
		return name[:i], true
	case len(tail) == 2 && digits(tail):
		// -YYYY-MM-DD: the last dash sits before the day.
		if len(name) >= 11 && name[len(name)-11] == '-' && name[len(name)-6] == '-' &&
			digits(name[len(name)-10:len(name)-6]) && digits(name[len(name)-5:len(name)-3]) {
			if s := name[:len(name)-11]; s != "" {
				return s, true
			}
		}
	}
	return "", false
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func normalize(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// LoadLiteLLM reads a price file in the format of LiteLLM's
// model_prices_and_context_window.json: a JSON object whose keys are
// model names (sometimes "provider/model") and whose values hold, among
// other fields, input_cost_per_token, output_cost_per_token,
// cache_read_input_token_cost, cache_creation_input_token_cost,
// max_input_tokens, max_output_tokens, max_tokens, mode and the
// supports_* flags.
//
// Prices per token become prices per million tokens. The context window
// is max_input_tokens; the output limit is max_output_tokens, else the
// legacy max_tokens when it is below max_input_tokens (LiteLLM sets it to
// either). Capabilities: supports_function_calling → tools,
// supports_vision → vision, supports_response_schema → json,
// supports_reasoning → reasoning.
//
// Skipped: the "sample_spec" entry, entries whose mode is given and is
// neither "chat" nor "responses" (embeddings, images, audio, rerank...),
// and entries with neither an input nor an output price. Tiered prices
// (above 200k tokens, batch, priority) are ignored: the base price
// counts. A price that is negative or not a number is an error that
// names the model; other fields of an unexpected type are ignored.
func LoadLiteLLM(r io.Reader) (*PriceTable, error) {
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a LiteLLM price file: %w", err)
	}
	if raw == nil {
		return nil, errors.New("not a LiteLLM price file: expected a JSON object of models")
	}
	entries := make(map[string]ModelInfo, len(raw))
	for name, body := range raw {
		if name == "sample_spec" {
			continue
		}
		info, ok, err := parseLiteLLMEntry(body)
		if err != nil {
			return nil, fmt.Errorf("model %q: %w", name, err)
		}
		if ok {
			entries[name] = info
		}
	}
	return NewPriceTable(entries), nil
}

// parseLiteLLMEntry reads one model of a LiteLLM file; ok is false for
// entries that are not priced chat models.
func parseLiteLLMEntry(body json.RawMessage) (info ModelInfo, ok bool, err error) {
	var e map[string]json.RawMessage
	if err := json.Unmarshal(body, &e); err != nil || e == nil {
		return info, false, errors.New("entry is not a JSON object")
	}
	var mode string
	if v, has := e["mode"]; has && json.Unmarshal(v, &mode) == nil {
		if mode != "" && mode != "chat" && mode != "responses" {
			return info, false, nil
		}
	}
	price := func(field string) (float64, bool, error) {
		v, has := e[field]
		if !has || string(v) == "null" {
			return 0, false, nil
		}
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return 0, false, fmt.Errorf("%s is not a number: %s", field, v)
		}
		if f < 0 || math.IsNaN(f) {
			return 0, false, fmt.Errorf("negative price: %s is %v", field, f)
		}
		// Per token to per million, rounded to a billionth of a dollar
		// so 3e-06 reads as 3, not 2.9999999999999996.
		return math.Round(f*1e15) / 1e9, true, nil
	}
	var hasIn, hasOut, has bool
	if info.Input, hasIn, err = price("input_cost_per_token"); err != nil {
		return info, false, err
	}
	if info.Output, hasOut, err = price("output_cost_per_token"); err != nil {
		return info, false, err
	}
	if !hasIn && !hasOut {
		return info, false, nil
	}
	if info.CachedInput, has, err = price("cache_read_input_token_cost"); err != nil {
		return info, false, err
	}
	if !has {
		// Older DeepSeek entries name the cache-read price this way.
		if info.CachedInput, _, err = price("input_cost_per_token_cache_hit"); err != nil {
			return info, false, err
		}
	}
	if info.CacheWrite, _, err = price("cache_creation_input_token_cost"); err != nil {
		return info, false, err
	}
	count := func(field string) int {
		var f float64
		if v, has := e[field]; has && json.Unmarshal(v, &f) == nil && f > 0 && f < math.MaxInt32 {
			return int(f)
		}
		return 0
	}
	info.ContextWindow = count("max_input_tokens")
	info.MaxOutput = count("max_output_tokens")
	if info.MaxOutput == 0 {
		if legacy := count("max_tokens"); legacy < info.ContextWindow {
			info.MaxOutput = legacy
		}
	}
	flag := func(field string) bool {
		var b bool
		if v, has := e[field]; has && json.Unmarshal(v, &b) == nil {
			return b
		}
		return false
	}
	info.Tools = flag("supports_function_calling")
	info.Vision = flag("supports_vision")
	info.JSON = flag("supports_response_schema")
	info.Reasoning = flag("supports_reasoning")
	return info, true, nil
}

// BuiltinPrices returns the built-in table: list prices (USD per million
// tokens, with prompt-cache read and write prices where the provider has
// them), context windows, output limits and capabilities of the common
// models of Anthropic, OpenAI, Google, DeepSeek, Groq, OpenRouter,
// Mistral, Together, Fireworks and Cerebras, as of late 2026.
//
// Hosts that serve the same open model at different prices are keyed by
// "provider/model" (groq/..., cerebras/..., together_ai/...,
// fireworks_ai/..., mistral/...), the way LiteLLM keys them, so Lookup
// finds them through the provider's name. OpenRouter's "vendor/model"
// ids find the vendor's own entry (its list price is the vendor's);
// Anthropic's dotted OpenRouter ids (anthropic/claude-sonnet-4.5) are
// listed as such. Prices change: a loaded LiteLLM file or a `price` line
// overrides this table. Local models (Ollama) are not listed: they cost
// nothing.
//
// The table is built once and shared; it never changes.
func BuiltinPrices() *PriceTable { return builtinOnce() }

var builtinOnce = sync.OnceValue(func() *PriceTable {
	entries := map[string]ModelInfo{}
	for _, b := range builtin {
		for _, name := range b.names {
			entries[name] = b.info
		}
	}
	return NewPriceTable(entries)
})

// Capability bits of the built-in table.
const (
	capTools = 1 << iota
	capVision
	capJSON
	capReasoning
)

const (
	tvj  = capTools | capVision | capJSON
	tvjr = tvj | capReasoning
	tj   = capTools | capJSON
	tjr  = tj | capReasoning
)

// mi builds a ModelInfo: prices per million tokens (cache read and write
// 0 when the provider has no such price), context window, output limit
// and capability bits.
func mi(in, out, cacheRead, cacheWrite float64, context, maxOut, caps int) ModelInfo {
	return ModelInfo{
		Prices:        Prices{Input: in, Output: out, CachedInput: cacheRead, CacheWrite: cacheWrite},
		ContextWindow: context, MaxOutput: maxOut,
		Tools: caps&capTools != 0, Vision: caps&capVision != 0,
		JSON: caps&capJSON != 0, Reasoning: caps&capReasoning != 0,
	}
}

// builtinEntry is one model of the built-in table under all its names.
type builtinEntry struct {
	names []string
	info  ModelInfo
}

// builtin is the hand-curated table. Dated ids (claude-sonnet-4-20250514,
// gpt-4o-2024-08-06) need no entry: Lookup strips the date.
var builtin = []builtinEntry{
	// Anthropic. Cache write is the 5-minute write (1.25x input), cache
	// read 0.1x input.
	{[]string{"claude-opus-4-8"}, mi(5, 25, 0.5, 6.25, 1_000_000, 128_000, tvjr)},
	{[]string{"claude-opus-4-7", "anthropic/claude-opus-4.7"}, mi(5, 25, 0.5, 6.25, 1_000_000, 128_000, tvjr)},
	{[]string{"claude-opus-4-6", "anthropic/claude-opus-4.6"}, mi(5, 25, 0.5, 6.25, 1_000_000, 128_000, tvjr)},
	{[]string{"claude-opus-4-5", "anthropic/claude-opus-4.5"}, mi(5, 25, 0.5, 6.25, 200_000, 64_000, tvjr)},
	{[]string{"claude-opus-4-1", "anthropic/claude-opus-4.1"}, mi(15, 75, 1.5, 18.75, 200_000, 32_000, tvjr)},
	{[]string{"claude-opus-4-0", "claude-opus-4", "claude-4-opus", "anthropic/claude-opus-4"}, mi(15, 75, 1.5, 18.75, 200_000, 32_000, tvjr)},
	{[]string{"claude-sonnet-5"}, mi(2, 10, 0.2, 2.5, 1_000_000, 128_000, tvjr)},
	{[]string{"claude-sonnet-4-6", "anthropic/claude-sonnet-4.6"}, mi(3, 15, 0.3, 3.75, 1_000_000, 64_000, tvjr)},
	{[]string{"claude-sonnet-4-5", "anthropic/claude-sonnet-4.5"}, mi(3, 15, 0.3, 3.75, 200_000, 64_000, tvjr)},
	{[]string{"claude-sonnet-4-0", "claude-sonnet-4", "claude-4-sonnet", "anthropic/claude-sonnet-4"}, mi(3, 15, 0.3, 3.75, 200_000, 64_000, tvjr)},
	{[]string{"claude-haiku-4-5", "anthropic/claude-haiku-4.5"}, mi(1, 5, 0.1, 1.25, 200_000, 64_000, tvjr)},
	{[]string{"claude-3-7-sonnet", "anthropic/claude-3.7-sonnet"}, mi(3, 15, 0.3, 3.75, 200_000, 64_000, tvjr)},
	{[]string{"claude-3-5-sonnet", "anthropic/claude-3.5-sonnet"}, mi(3, 15, 0.3, 3.75, 200_000, 8_192, tvj)},
	{[]string{"claude-3-5-haiku", "anthropic/claude-3.5-haiku"}, mi(0.8, 4, 0.08, 1, 200_000, 8_192, tj)},

	// OpenAI. Cached input is read at a discount; writing costs nothing
	// extra.
	{[]string{"gpt-5.5"}, mi(5, 30, 0.5, 0, 1_050_000, 128_000, tvjr)},
	{[]string{"gpt-5.4"}, mi(2.5, 15, 0.25, 0, 1_050_000, 128_000, tvjr)},
	{[]string{"gpt-5.2"}, mi(1.75, 14, 0.175, 0, 272_000, 128_000, tvjr)},
	{[]string{"gpt-5.1"}, mi(1.25, 10, 0.125, 0, 272_000, 128_000, tvjr)},
	{[]string{"gpt-5"}, mi(1.25, 10, 0.125, 0, 272_000, 128_000, tvjr)},
	{[]string{"gpt-5-codex"}, mi(1.25, 10, 0.125, 0, 272_000, 128_000, tvjr)},
	{[]string{"gpt-5-mini"}, mi(0.25, 2, 0.025, 0, 272_000, 128_000, tvjr)},
	{[]string{"gpt-5-nano"}, mi(0.05, 0.4, 0.005, 0, 272_000, 128_000, tvjr)},
	{[]string{"gpt-4.1"}, mi(2, 8, 0.5, 0, 1_047_576, 32_768, tvj)},
	{[]string{"gpt-4.1-mini"}, mi(0.4, 1.6, 0.1, 0, 1_047_576, 32_768, tvj)},
	{[]string{"gpt-4.1-nano"}, mi(0.1, 0.4, 0.025, 0, 1_047_576, 32_768, tvj)},
	{[]string{"gpt-4o"}, mi(2.5, 10, 1.25, 0, 128_000, 16_384, tvj)},
	{[]string{"gpt-4o-mini"}, mi(0.15, 0.6, 0.075, 0, 128_000, 16_384, tvj)},
	{[]string{"o3"}, mi(2, 8, 0.5, 0, 200_000, 100_000, tvjr)},
	{[]string{"o3-mini"}, mi(1.1, 4.4, 0.55, 0, 200_000, 100_000, tjr)},
	{[]string{"o4-mini"}, mi(1.1, 4.4, 0.275, 0, 200_000, 100_000, tvjr)},

	// Google (Gemini API). Prices of prompts up to 200k tokens; cached
	// input is the context-caching read price.
	{[]string{"gemini-2.5-pro"}, mi(1.25, 10, 0.125, 0, 1_048_576, 65_536, tvjr)},
	{[]string{"gemini-2.5-flash"}, mi(0.3, 2.5, 0.03, 0, 1_048_576, 65_536, tvjr)},
	{[]string{"gemini-2.5-flash-lite"}, mi(0.1, 0.4, 0.01, 0, 1_048_576, 65_536, tvjr)},
	{[]string{"gemini-2.0-flash"}, mi(0.1, 0.4, 0.025, 0, 1_048_576, 8_192, tvj)},
	{[]string{"gemini-2.0-flash-lite"}, mi(0.075, 0.3, 0.01875, 0, 1_048_576, 8_192, tvj)},

	// DeepSeek (V3.2 behind both names; cache hits at a tenth).
	{[]string{"deepseek-chat"}, mi(0.28, 0.42, 0.028, 0, 131_072, 8_192, tj)},
	{[]string{"deepseek-reasoner"}, mi(0.28, 0.42, 0.028, 0, 131_072, 65_536, capJSON|capReasoning)},

	// Groq.
	{[]string{"groq/llama-3.3-70b-versatile"}, mi(0.59, 0.79, 0, 0, 131_072, 32_768, capTools)},
	{[]string{"groq/llama-3.1-8b-instant"}, mi(0.05, 0.08, 0, 0, 131_072, 8_192, capTools)},
	{[]string{"groq/openai/gpt-oss-120b"}, mi(0.15, 0.6, 0.075, 0, 131_072, 32_766, tjr)},
	{[]string{"groq/openai/gpt-oss-20b"}, mi(0.075, 0.3, 0.0375, 0, 131_072, 32_768, tjr)},
	{[]string{"groq/qwen/qwen3-32b"}, mi(0.29, 0.59, 0, 0, 131_072, 40_960, capTools|capReasoning)},
	{[]string{"groq/moonshotai/kimi-k2-instruct-0905"}, mi(1, 3, 0.5, 0, 262_144, 16_384, tj)},

	// OpenRouter: vendor models not listed above under another name.
	{[]string{"x-ai/grok-4", "grok-4"}, mi(3, 15, 0.75, 0, 256_000, 0, tvjr)},

	// Mistral (La Plateforme).
	{[]string{"mistral/mistral-large-latest"}, mi(0.5, 1.5, 0, 0, 262_144, 0, tvj)},
	{[]string{"mistral/mistral-large-2411"}, mi(2, 6, 0, 0, 131_072, 0, tj)},
	{[]string{"mistral/mistral-medium-2508"}, mi(0.4, 2, 0, 0, 131_072, 0, tvj)},
	{[]string{"mistral/codestral-latest"}, mi(0.3, 0.9, 0, 0, 256_000, 0, tj)},
	{[]string{"mistral/devstral-medium-latest"}, mi(0.4, 2, 0, 0, 256_000, 0, tj)},
	{[]string{"mistral/devstral-small-latest"}, mi(0.1, 0.3, 0, 0, 256_000, 0, tj)},

	// Together AI.
	{[]string{"together_ai/meta-llama/llama-3.3-70b-instruct-turbo"}, mi(0.88, 0.88, 0, 0, 131_072, 0, tj)},
	{[]string{"together_ai/meta-llama/meta-llama-3.1-8b-instruct-turbo"}, mi(0.18, 0.18, 0, 0, 131_072, 0, tj)},
	{[]string{"together_ai/deepseek-ai/deepseek-v3"}, mi(1.25, 1.25, 0, 0, 131_072, 0, tj)},
	{[]string{"together_ai/qwen/qwen2.5-coder-32b-instruct"}, mi(0.8, 0.8, 0, 0, 32_768, 0, tj)},
	{[]string{"together_ai/openai/gpt-oss-120b"}, mi(0.15, 0.6, 0, 0, 131_072, 0, tjr)},

	// Fireworks AI.
	{[]string{"fireworks_ai/accounts/fireworks/models/llama-v3p3-70b-instruct"}, mi(0.9, 0.9, 0, 0, 131_072, 0, tj)},
	{[]string{"fireworks_ai/accounts/fireworks/models/llama-v3p1-8b-instruct"}, mi(0.2, 0.2, 0, 0, 131_072, 0, tj)},
	{[]string{"fireworks_ai/accounts/fireworks/models/deepseek-v3"}, mi(0.9, 0.9, 0, 0, 131_072, 0, tj)},
	{[]string{"fireworks_ai/accounts/fireworks/models/gpt-oss-120b"}, mi(0.15, 0.6, 0, 0, 131_072, 0, tjr)},

	// Cerebras.
	{[]string{"cerebras/llama3.1-8b"}, mi(0.1, 0.1, 0, 0, 128_000, 0, capTools)},
	{[]string{"cerebras/llama-3.3-70b"}, mi(0.85, 1.2, 0, 0, 128_000, 0, capTools)},
	{[]string{"cerebras/gpt-oss-120b"}, mi(0.35, 0.75, 0, 0, 131_072, 32_768, tjr)},
	{[]string{"cerebras/qwen-3-32b"}, mi(0.4, 0.8, 0, 0, 128_000, 0, capTools|capReasoning)},
}
