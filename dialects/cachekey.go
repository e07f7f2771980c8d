package dialects

import (
	"bytes"
	"sort"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Cache keys are made from the neutral request, which is the same
// whichever dialect a client spoke. What the neutral model does not
// hold has to be in the key too, or two requests that differ in it would
// share an answer (seed, penalties, Ollama's options...): CacheExtras
// lists those members. A request whose answer the neutral model cannot
// hold, or that depends on state outside the request, is not cacheable.

// members the neutral request holds (or that only the decoder's dialect
// knows how to read), per client dialect.
var (
	openAIHeld = set("model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens",
		"max_completion_tokens", "temperature", "top_p", "stop", "response_format", "reasoning_effort", "reasoning")
	anthropicHeld = set("model", "max_tokens", "system", "messages", "tools", "tool_choice", "temperature",
		"top_p", "stop_sequences", "thinking", "output_config")
	responsesHeld = set("model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
		"max_output_tokens", "temperature", "top_p", "text", "reasoning")
	ollamaHeld = set("model", "messages", "tools", "format", "think")
	// Bedrock's body has no model: it is in the URL.
	bedrockHeld = set("messages", "system", "inferenceConfig", "toolConfig", "additionalModelRequestFields", "outputConfig")
)

// members that never change an answer: streaming, bookkeeping, the end
// user's id, storage and routing hints.
var cacheIgnored = set("stream", "stream_options", "user", "metadata", "store", "service_tier",
	"prompt_cache_key", "prompt_cache_retention", "safety_identifier", "keep_alive", "truncation", "requestMetadata")

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// CacheExtras returns, for a generation request of dialect d, the
// members that may change its answer but that the neutral request does
// not hold, as sorted "name=compact JSON" lines for the cache key. When
// the request must not be cached it returns a short reason instead:
// more than one choice, log probabilities or audio (the neutral answer
// has no room for them), a continuation of a stored conversation or a
// background run (the answer depends on state outside the request), or
// tools the provider runs itself (web search: answers age).
func CacheExtras(d Dialect, body []byte) (extras []byte, reason string) {
	var held map[string]bool
	var shapes map[string]shape
	switch d {
	case OpenAI:
		held, shapes = openAIHeld, openAIShapes
	case Anthropic:
		held, shapes = anthropicHeld, anthropicShapes
	case Responses:
		held, shapes = responsesHeld, responsesShapes
	case Ollama:
		held, shapes = ollamaHeld, ollamaShapes
	case Bedrock:
		held, shapes = bedrockHeld, bedrockShapes
	case Gemini:
		held, shapes = geminiHeld, geminiShapes
	default:
		return nil, "requests of dialect " + string(d) + " are not cached"
	}
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if duplicateKeys(root) {
		return nil, "a key appears twice in one object"
	}
	var lines [][]byte
	root.ForEach(func(k, v gjson.Result) bool {
		name := k.Str
		if r := notCacheable(d, name, v); r != "" {
			reason = r
			return false
		}
		if cacheIgnored[name] || v.Type == gjson.Null {
			return true
		}
		if held[name] {
			// Held by the neutral request, unless it holds more than
			// the decoders read (an unknown part type, a field they
			// skip): then the raw member is in the key too.
			if s, ok := shapes[name]; !ok || s.held(v) {
				return true
			}
		}
		line := make([]byte, 0, len(name)+len(v.Raw)+1)
		line = append(line, name...)
		line = append(line, '=')
		line = appendCompact(line, v.Raw)
		lines = append(lines, line)
		return true
	})
	if reason != "" {
		return nil, reason
	}
	sort.Slice(lines, func(i, j int) bool { return bytes.Compare(lines[i], lines[j]) < 0 })
	return bytes.Join(lines, []byte{'\n'}), ""
}

// notCacheable says why a member keeps a request out of the cache.
func notCacheable(d Dialect, name string, v gjson.Result) string {
	if d == Gemini {
		return geminiNotCacheable(name, v)
	}
	switch name {
	case "n":
		if v.Exists() && v.Type != gjson.Null && v.Int() != 1 {
			return "more than one choice (n)"
		}
	case "include":
		logprobs := false
		each(v, func(_, m gjson.Result) bool { logprobs = strings.Contains(m.Str, "logprobs"); return !logprobs })
		if logprobs {
			return "log probabilities requested"
		}
	case "logprobs", "top_logprobs":
		if v.Type == gjson.True || v.Type == gjson.Number && v.Int() > 0 && name == "top_logprobs" {
			return "log probabilities requested"
		}
	case "audio":
		if v.Type != gjson.Null {
			return "audio output requested"
		}
	case "modalities":
		audio := false
		each(v, func(_, m gjson.Result) bool { audio = audio || m.Str == "audio"; return !audio })
		if audio {
			return "audio output requested"
		}
	case "previous_response_id", "conversation", "prompt":
		if v.Type != gjson.Null && !(v.Type == gjson.String && v.Str == "") {
			return "the request continues state stored by the provider (" + name + ")"
		}
	case "background":
		if v.Type == gjson.True {
			return "background run"
		}
	case "web_search_options", "mcp_servers", "container":
		if v.Type != gjson.Null {
			return "the provider runs tools of its own (" + name + ")"
		}
	case "toolConfig": // Bedrock
		server := ""
		each(v.Get("tools"), func(_, t gjson.Result) bool {
			if st := t.Get("systemTool"); st.Exists() && st.Type != gjson.Null {
				server = "systemTool " + st.Get("name").Str
			}
			return server == ""
		})
		if d == Bedrock && server != "" {
			return "the provider runs tools of its own (" + server + ")"
		}
	case "additionalModelResponseFieldPaths": // Bedrock
		if d == Bedrock && v.Type != gjson.Null {
			return "model-specific answer fields requested (additionalModelResponseFieldPaths)"
		}
	case "tools":
		server := ""
		each(v, func(_, t gjson.Result) bool {
			typ := t.Get("type").Str
			switch {
			case typ == "" || typ == "function" || d == Anthropic && typ == "custom":
			default:
				server = typ
			}
			return server == ""
		})
		if server != "" {
			return "the provider runs tools of its own (" + server + ")"
		}
	}
	return ""
}

// appendCompact appends JSON without insignificant whitespace.
func appendCompact(dst []byte, raw string) []byte {
	inStr, esc := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inStr {
			dst = append(dst, c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inStr = true
		}
		dst = append(dst, c)
	}
	return dst
}
