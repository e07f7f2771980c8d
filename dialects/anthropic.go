package dialects

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// DecodeAnthropicRequest reads an Anthropic Messages request (classic
// and 2026 wire: system messages inside messages are accepted too).
func DecodeAnthropicRequest(body []byte) (*ChatRequest, *Error) {
	root := readTop(body)
	r := &ChatRequest{Model: root.Get("model").Str, Stream: root.Get("stream").Bool(), MaxTokens: int(root.Get("max_tokens").Int())}
	switch s := root.Get("system"); {
	case s.Type == gjson.String:
		if s.Str != "" {
			r.System = []Part{{Type: PartText, Text: s.Str}}
		}
	case s.IsArray():
		r.System = anthropicBlocks(s)
	}
	var err *Error
	each(root.Get("messages"), func(_, m gjson.Result) bool {
		role := m.Get("role").Str
		c := m.Get("content")
		var parts []Part
		if c.Type == gjson.String {
			parts = []Part{{Type: PartText, Text: c.Str}}
		} else {
			parts = anthropicBlocks(c)
		}
		switch role {
		case "system":
			if len(r.Messages) == 0 {
				r.System = append(r.System, parts...)
			} else {
				r.Messages = append(r.Messages, Message{Role: RoleSystem, Parts: parts})
			}
		case "assistant":
			r.Messages = append(r.Messages, Message{Role: RoleAssistant, Parts: parts})
		case "user":
			// Tool results become tool messages, in order, before the
			// rest of the user turn.
			var rest []Part
			for _, p := range parts {
				if p.Type == PartToolResult {
					r.Messages = append(r.Messages, Message{Role: RoleTool, Parts: []Part{p}})
				} else {
					rest = append(rest, p)
				}
			}
			if len(rest) > 0 {
				r.Messages = append(r.Messages, Message{Role: RoleUser, Parts: rest})
			}
		default:
			err = &Error{Status: http.StatusBadRequest, Param: "messages", Message: fmt.Sprintf("unknown message role %q", role)}
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	each(root.Get("tools"), func(_, t gjson.Result) bool {
		schema := t.Get("input_schema").Raw
		if schema == "" {
			schema = `{"type":"object","properties":{}}`
		}
		r.Tools = append(r.Tools, Tool{Name: t.Get("name").Str, Description: t.Get("description").Str, Schema: schema})
		return true
	})
	if tc := root.Get("tool_choice"); tc.IsObject() {
		switch tc.Get("type").Str {
		case "auto":
			r.ToolChoice = &ToolChoice{Mode: "auto"}
		case "any":
			r.ToolChoice = &ToolChoice{Mode: "required"}
		case "none":
			r.ToolChoice = &ToolChoice{Mode: "none"}
		case "tool":
			r.ToolChoice = &ToolChoice{Mode: "tool", Name: tc.Get("name").Str}
		}
		if tc.Get("disable_parallel_tool_use").Bool() {
			f := false
			r.ParallelToolCalls = &f
		}
	}
	r.Temperature = optFloat(root.Get("temperature"))
	r.TopP = optFloat(root.Get("top_p"))
	each(root.Get("stop_sequences"), func(_, v gjson.Result) bool { r.Stop = append(r.Stop, v.Str); return true })
	if th := root.Get("thinking"); th.Get("type").Str == "enabled" {
		r.ThinkingBudget = int(th.Get("budget_tokens").Int())
		if r.ThinkingBudget == 0 {
			r.ThinkingBudget = 4096
		}
	} else if th.Get("type").Str == "adaptive" {
		r.ReasoningEffort = "medium"
	}
	if e := root.Get("output_config.effort").Str; e != "" {
		r.ReasoningEffort = e
	}
	if f := root.Get("output_config.format"); f.Get("type").Str == "json_schema" {
		r.ResponseFormat = &ResponseFormat{Type: "json_schema", Schema: f.Get("schema").Raw, Strict: true}
	}
	r.User = root.Get("metadata.user_id").Str
	return r, nil
}

// anthropicBlocks reads an array of content blocks.
func anthropicBlocks(c gjson.Result) []Part {
	var parts []Part
	each(c, func(_, b gjson.Result) bool {
		switch b.Get("type").Str {
		case "text":
			parts = append(parts, Part{Type: PartText, Text: b.Get("text").Str})
		case "image":
			src := b.Get("source")
			switch src.Get("type").Str {
			case "base64":
				parts = append(parts, Part{Type: PartImage, MediaType: src.Get("media_type").Str, Data: src.Get("data").Str})
			case "url":
				parts = append(parts, Part{Type: PartImage, URL: src.Get("url").Str})
			}
		case "tool_use":
			args := b.Get("input").Raw
			if args == "" {
				args = "{}"
			}
			parts = append(parts, Part{Type: PartToolCall, ID: b.Get("id").Str, Name: b.Get("name").Str, Args: args})
		case "tool_result":
			p := Part{Type: PartToolResult, ID: b.Get("tool_use_id").Str, IsError: b.Get("is_error").Bool()}
			if cc := b.Get("content"); cc.Type == gjson.String {
				p.Content = []Part{{Type: PartText, Text: cc.Str}}
			} else {
				p.Content = anthropicBlocks(cc)
			}
			parts = append(parts, p)
		case "thinking":
			parts = append(parts, Part{Type: PartThinking, Text: b.Get("thinking").Str, Signature: b.Get("signature").Str})
		case "redacted_thinking":
			parts = append(parts, Part{Type: PartRedactedThinking, Data: b.Get("data").Str})
		}
		return true
	})
	return parts
}

// anthropicBlock renders one part as an Anthropic content block; ok is
// false for parts Anthropic cannot take (empty text).
func anthropicBlock(p Part) (map[string]any, bool) {
	switch p.Type {
	case PartText:
		// Anthropic rejects empty and whitespace-only text blocks.
		if strings.TrimSpace(p.Text) == "" {
			return nil, false
		}
		return map[string]any{"type": "text", "text": p.Text}, true
	case PartImage:
		if p.Data != "" {
			mt := p.MediaType
			if mt == "" {
				mt = "image/png"
			}
			return map[string]any{"type": "image", "source": map[string]any{"type": "base64", "media_type": mt, "data": p.Data}}, true
		}
		return map[string]any{"type": "image", "source": map[string]any{"type": "url", "url": p.URL}}, true
	case PartToolCall:
		args := json.RawMessage(p.Args)
		if !gjson.Valid(p.Args) || !gjson.Parse(p.Args).IsObject() {
			args = json.RawMessage(`{}`)
		}
		return map[string]any{"type": "tool_use", "id": p.ID, "name": p.Name, "input": args}, true
	case PartToolResult:
		b := map[string]any{"type": "tool_result", "tool_use_id": p.ID}
		var content []map[string]any
		for _, c := range p.Content {
			if cb, ok := anthropicBlock(c); ok {
				content = append(content, cb)
			}
		}
		if len(content) > 0 {
			b["content"] = content
		}
		if p.IsError {
			b["is_error"] = true
		}
		return b, true
	case PartThinking:
		if p.Signature == "" {
			// Anthropic accepts thinking only with its signature; text
			// from another provider's reasoning cannot be replayed.
			return nil, false
		}
		return map[string]any{"type": "thinking", "thinking": p.Text, "signature": p.Signature}, true
	case PartRedactedThinking:
		return map[string]any{"type": "redacted_thinking", "data": p.Data}, true
	}
	return nil, false
}

// EncodeAnthropicRequest writes r as an Anthropic Messages request: system
// hoisted to the top level, tool results as user blocks, consecutive
// turns of one role merged (Anthropic requires alternation), empty text
// dropped, max_tokens always set.
func EncodeAnthropicRequest(r *ChatRequest, o EncodeOptions) ([]byte, error) {
	var system []map[string]any
	for _, p := range r.System {
		if b, ok := anthropicBlock(p); ok && p.Type == PartText {
			system = append(system, b)
		}
	}
	var turns turns
	ids := map[string]string{} // tool-call ids generated for calls that had none
	for _, m := range r.Messages {
		var blocks []map[string]any
		for _, p := range m.Parts {
			if p.Type == PartToolCall && p.ID == "" {
				p.ID = NewID("toolu_")
				ids[p.Name] = p.ID
			}
			if p.Type == PartToolResult && p.ID == "" {
				p.ID = ids[p.Name]
			}
			if p.Type == PartThinking && isGeminiSig(p.Signature) {
				// Gemini's signatures mean nothing to Claude, which
				// would refuse the block: unsigned thinking, dropped.
				continue
			}
			if b, ok := anthropicBlock(p); ok {
				blocks = append(blocks, b)
			}
		}
		switch m.Role {
		case RoleSystem:
			for _, p := range m.Parts {
				if b, ok := anthropicBlock(p); ok && p.Type == PartText {
					system = append(system, b)
				}
			}
		case RoleAssistant:
			turns.add("assistant", blocks)
		default: // user, tool
			turns.add("user", blocks)
		}
	}
	msgs := make([]map[string]any, 0, len(turns))
	for _, t := range turns {
		msgs = append(msgs, map[string]any{"role": t.role, "content": t.blocks})
	}
	req := map[string]any{"model": o.Model, "messages": msgs}
	if len(system) > 0 {
		req["system"] = system
	}
	maxTokens := r.MaxTokens
	if maxTokens <= 0 {
		maxTokens = o.DefaultMaxTokens
	}
	if maxTokens <= 0 {
		maxTokens = 4096
	}
	budget := r.ThinkingBudget
	if budget == 0 && r.ReasoningEffort != "" && o.Reasoning {
		budget = effortBudget(r.ReasoningEffort)
	}
	if budget > 0 && !turns.toolTurnsSigned(anthropicCall, anthropicSigned) {
		// With thinking on, Anthropic requires an assistant turn that
		// calls tools to begin with its signed thinking block; history
		// from another provider has none, so thinking stays off.
		budget = 0
	}
	if budget > 0 {
		if budget < 1024 {
			budget = 1024
		}
		if maxTokens <= budget {
			maxTokens = budget + maxTokens
		}
		req["thinking"] = map[string]any{"type": "enabled", "budget_tokens": budget}
	} else {
		// Anthropic rejects temperature and top_p with thinking on.
		if r.Temperature != nil {
			t := *r.Temperature
			if t > 1 {
				t = 1 // Anthropic's range is 0..1, OpenAI's 0..2
			}
			req["temperature"] = t
		}
		// Newer Claude models take temperature or top_p, not both.
		if r.TopP != nil && r.Temperature == nil {
			req["top_p"] = *r.TopP
		}
	}
	req["max_tokens"] = maxTokens
	if len(r.Tools) > 0 {
		var tools []map[string]any
		for _, t := range r.Tools {
			tool := map[string]any{"name": t.Name, "input_schema": json.RawMessage(t.Schema)}
			if t.Description != "" {
				tool["description"] = t.Description
			}
			tools = append(tools, tool)
		}
		req["tools"] = tools
		var tc map[string]any
		if r.ToolChoice != nil {
			switch r.ToolChoice.Mode {
			case "none":
				tc = map[string]any{"type": "none"}
			case "required":
				tc = map[string]any{"type": "any"}
			case "tool":
				tc = map[string]any{"type": "tool", "name": r.ToolChoice.Name}
			default:
				tc = map[string]any{"type": "auto"}
			}
		}
		if r.ParallelToolCalls != nil && !*r.ParallelToolCalls {
			if tc == nil {
				tc = map[string]any{"type": "auto"}
			}
			if tc["type"] != "none" {
				tc["disable_parallel_tool_use"] = true
			}
		}
		if tc != nil {
			req["tool_choice"] = tc
		}
	}
	if len(r.Stop) > 0 {
		req["stop_sequences"] = r.Stop
	}
	if rf := r.ResponseFormat; rf != nil && rf.Type == "json_schema" && rf.Schema != "" {
		req["output_config"] = map[string]any{"format": map[string]any{"type": "json_schema", "schema": json.RawMessage(rf.Schema)}}
	}
	if r.User != "" {
		req["metadata"] = map[string]any{"user_id": r.User}
	}
	if r.Stream {
		req["stream"] = true
	}
	return json.Marshal(req)
}

func stopFromAnthropic(s string) StopReason {
	switch s {
	case "max_tokens", "model_context_window_exceeded":
		return StopMaxTokens
	case "stop_sequence":
		return StopSequence
	case "tool_use":
		return StopToolUse
	case "refusal":
		return StopContentFilter
	case "pause_turn":
		return StopPause
	}
	return StopEnd
}

func anthropicStop(s StopReason) string {
	switch s {
	case StopMaxTokens:
		return "max_tokens"
	case StopSequence:
		return "stop_sequence"
	case StopToolUse:
		return "tool_use"
	case StopContentFilter:
		return "refusal"
	case StopPause:
		return "pause_turn"
	}
	return "end_turn"
}

// DecodeAnthropicResponse reads a non-streamed Messages answer.
func DecodeAnthropicResponse(body []byte) (*ChatResponse, error) {
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("provider answer is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	if root.Get("type").Str != "message" {
		return nil, fmt.Errorf("provider answer is not a message")
	}
	r := &ChatResponse{ID: root.Get("id").Str, Model: root.Get("model").Str, NativeStop: root.Get("stop_reason").Str,
		StopSequence: root.Get("stop_sequence").Str, Parts: anthropicBlocks(root.Get("content"))}
	r.Stop = stopFromAnthropic(r.NativeStop)
	if r.Stop == StopToolUse && !hasToolCall(r.Parts) {
		r.Stop = StopEnd
	}
	var s AnthropicUsageState
	s.add(root.Get("usage"))
	r.Usage = s.Usage()
	return r, nil
}

// anthropicUsageJSON renders u in Anthropic's terms (input excludes cache
// reads and writes).
func anthropicUsageJSON(u Usage) map[string]any {
	in := u.Input - u.CachedInput - u.CacheWrite
	if in < 0 {
		in = 0
	}
	return map[string]any{"input_tokens": in, "cache_read_input_tokens": u.CachedInput,
		"cache_creation_input_tokens": u.CacheWrite, "output_tokens": u.Output}
}

// EncodeAnthropicResponse writes r as a Messages answer.
func EncodeAnthropicResponse(r *ChatResponse, model string) ([]byte, error) {
	content := []map[string]any{}
	for _, p := range r.Parts {
		if p.Type == PartThinking && p.Signature == "" {
			// Reasoning text from a provider without signatures:
			// Anthropic clients accept a thinking block with an empty
			// signature in answers.
			if p.Text != "" {
				content = append(content, map[string]any{"type": "thinking", "thinking": p.Text, "signature": ""})
			}
			continue
		}
		if b, ok := anthropicBlock(p); ok {
			content = append(content, b)
		}
	}
	var seq any
	if r.StopSequence != "" {
		seq = r.StopSequence
	}
	id := r.ID
	if !strings.HasPrefix(id, "msg_") {
		id = NewID("msg_")
	}
	return json.Marshal(map[string]any{"id": id, "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": anthropicStop(r.Stop), "stop_sequence": seq, "usage": anthropicUsageJSON(r.Usage)})
}

// anthropicCall and anthropicSigned tell a tool call and a signed
// thinking block apart among encoded content blocks (toolTurnsSigned).
func anthropicCall(b map[string]any) bool { return b["type"] == "tool_use" }

func anthropicSigned(b map[string]any) bool {
	return b["type"] == "thinking" || b["type"] == "redacted_thinking"
}
