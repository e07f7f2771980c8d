package dialects

import (
	"bytes"

	"github.com/tidwall/gjson"
)

// Usage counts the tokens of one exchange in the gateway's own terms,
// the same whichever dialect reported them.
type Usage struct {
	// Input is every input token, cached ones included (OpenAI's
	// prompt_tokens; Anthropic's input_tokens plus cache reads and
	// writes).
	Input int
	// CachedInput is the part of Input read from the provider's cache.
	CachedInput int
	// CacheWrite is the part of Input written to the provider's cache.
	CacheWrite int
	// Output is every output token, reasoning included.
	Output int
	// Reasoning is the part of Output spent on reasoning or thinking.
	Reasoning int
}

// IsZero reports whether no tokens were counted.
func (u Usage) IsZero() bool { return u == Usage{} }

// UsageFromBody reads the usage of a complete (non-streamed) response body
// of dialect d. ok is false when the body carries none.
func UsageFromBody(d Dialect, body []byte) (u Usage, ok bool) {
	switch d {
	case OpenAI:
		return openAIUsage(gjson.GetBytes(body, "usage"))
	case Anthropic:
		var s AnthropicUsageState
		s.add(gjson.GetBytes(body, "usage"))
		return s.Usage(), s.seen
	case Ollama:
		return ollamaUsage(body)
	case Responses:
		return responsesUsage(gjson.GetBytes(body, "usage"))
	case Gemini:
		return geminiBodyUsage(body)
	case Bedrock:
		return bedrockUsage(gjson.GetBytes(body, "usage"))
	}
	return u, false
}

func openAIUsage(v gjson.Result) (u Usage, ok bool) {
	if !v.IsObject() {
		return u, false
	}
	u.Input = int(v.Get("prompt_tokens").Int())
	u.Output = int(v.Get("completion_tokens").Int())
	u.CachedInput = int(v.Get("prompt_tokens_details.cached_tokens").Int())
	u.CacheWrite = int(v.Get("prompt_tokens_details.cache_write_tokens").Int())
	u.Reasoning = int(v.Get("completion_tokens_details.reasoning_tokens").Int())
	return u, true
}

func ollamaUsage(body []byte) (u Usage, ok bool) {
	r := gjson.GetManyBytes(body, "prompt_eval_count", "eval_count")
	if !r[0].Exists() && !r[1].Exists() {
		return u, false
	}
	u.Input = int(r[0].Int())
	u.Output = int(r[1].Int())
	return u, true
}

// AnthropicUsageState accumulates Anthropic usage across stream events:
// message_start carries the input side, message_delta the final output
// count (and, in newer API versions, cumulative input counts that replace
// the earlier ones).
type AnthropicUsageState struct {
	input, cacheRead, cacheWrite, output, thinking int
	seen                                           bool
}

func (s *AnthropicUsageState) add(v gjson.Result) {
	if !v.IsObject() {
		return
	}
	s.seen = true
	v.ForEach(func(k, val gjson.Result) bool {
		if val.Type == gjson.Null {
			return true // a null count says nothing; keep the earlier one
		}
		switch k.Str {
		case "input_tokens":
			s.input = int(val.Int())
		case "cache_read_input_tokens":
			s.cacheRead = int(val.Int())
		case "cache_creation_input_tokens":
			s.cacheWrite = int(val.Int())
		case "output_tokens":
			s.output = int(val.Int())
		case "output_tokens_details":
			s.thinking = int(val.Get("thinking_tokens").Int())
		}
		return true
	})
}

// Usage returns the accumulated usage in the gateway's terms.
func (s *AnthropicUsageState) Usage() Usage {
	return Usage{
		Input:       s.input + s.cacheRead + s.cacheWrite,
		CachedInput: s.cacheRead,
		CacheWrite:  s.cacheWrite,
		Output:      s.output,
		Reasoning:   s.thinking,
	}
}

// StreamUsage follows the events of one streamed response and keeps the
// usage they report. Feed it each event's data payload (an SSE data line
// without "data: ", one NDJSON line, or for Bedrock the payload of each
// eventstream frame, as EventStreamReader hands them out) with Event. It
// allocates nothing per event.
type StreamUsage struct {
	Dialect   Dialect
	anthropic AnthropicUsageState
	usage     Usage
	seen      bool
}

var usageKey = []byte(`"usage"`)

var geminiUsageKey = []byte(`"usageMetadata"`)

// Event inspects one event payload. It reports whether the payload is an
// OpenAI usage-only chunk (choices empty, usage set), which a client that
// did not ask for usage must not see.
func (s *StreamUsage) Event(data []byte) (usageOnly bool) {
	switch s.Dialect {
	case OpenAI:
		// Every chunk of a real stream carries "usage":null; only an
		// object is worth parsing.
		if !hasUsageObject(data) {
			return false
		}
		r := gjson.GetManyBytes(data, "usage", "choices.#")
		if u, ok := openAIUsage(r[0]); ok {
			s.usage, s.seen = u, true
			return r[1].Int() == 0
		}
	case Anthropic:
		if !bytes.Contains(data, usageKey) {
			return false
		}
		r := gjson.GetManyBytes(data, "type", "message.usage", "usage")
		switch r[0].Str {
		case "message_start":
			s.anthropic.add(r[1])
		case "message_delta":
			s.anthropic.add(r[2])
		}
		if s.anthropic.seen {
			s.usage, s.seen = s.anthropic.Usage(), true
		}
	case Responses:
		// Usage comes once, in response.completed (or .incomplete).
		if !hasUsageObject(data) {
			return false
		}
		if u, ok := responsesUsage(gjson.GetBytes(data, "response.usage")); ok {
			s.usage, s.seen = u, true
		}
	case Ollama:
		if !bytes.Contains(data, []byte(`"eval_count"`)) && !bytes.Contains(data, []byte(`"prompt_eval_count"`)) {
			return false
		}
		if u, ok := ollamaUsage(data); ok {
			s.usage, s.seen = u, true
		}
	case Gemini:
		// On many chunks, cumulative: the last one counts.
		if !bytes.Contains(data, geminiUsageKey) {
			return false
		}
		if u, ok := geminiUsage(gjson.GetBytes(data, "usageMetadata")); ok {
			s.usage, s.seen = u, true
		}
	case Bedrock:
		// Only the metadata event has a top-level usage object (a text
		// delta that mentions "usage" has it inside delta.text).
		if !hasUsageObject(data) {
			return false
		}
		if u, ok := bedrockUsage(gjson.GetBytes(data, "usage")); ok {
			s.usage, s.seen = u, true
		}
	}
	return false
}

// hasUsageObject reports whether data has a "usage" key whose value is
// an object, without parsing it.
func hasUsageObject(data []byte) bool {
	for {
		i := bytes.Index(data, usageKey)
		if i < 0 {
			return false
		}
		data = data[i+len(usageKey):]
		j := 0
		for j < len(data) && (data[j] == ' ' || data[j] == '\t' || data[j] == ':' || data[j] == '\r' || data[j] == '\n') {
			j++
		}
		if j < len(data) && data[j] == '{' {
			return true
		}
	}
}

// Usage returns the usage seen so far and whether any was seen.
func (s *StreamUsage) Usage() (Usage, bool) { return s.usage, s.seen }
