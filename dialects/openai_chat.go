package dialects

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// DecodeOpenAIRequest reads an OpenAI Chat Completions request.
func DecodeOpenAIRequest(body []byte) (*ChatRequest, *Error) {
	root := readTop(body)
	r := &ChatRequest{Model: root.Get("model").Str, Stream: root.Get("stream").Bool(), User: root.Get("user").Str}
	r.StreamUsage = root.Get("stream_options.include_usage").Bool()
	leading := true
	var err *Error
	each(root.Get("messages"), func(_, m gjson.Result) bool {
		role := m.Get("role").Str
		switch role {
		case "system", "developer":
			parts := openAIContent(m.Get("content"))
			if leading {
				r.System = append(r.System, parts...)
			} else {
				r.Messages = append(r.Messages, Message{Role: RoleSystem, Parts: parts})
			}
			return true
		case "user":
			r.Messages = append(r.Messages, Message{Role: RoleUser, Parts: openAIContent(m.Get("content"))})
		case "assistant":
			msg := Message{Role: RoleAssistant}
			if t := openAIReasoning(m); t != "" {
				msg.Parts = append(msg.Parts, Part{Type: PartThinking, Text: t})
			}
			msg.Parts = append(msg.Parts, openAIContent(m.Get("content"))...)
			msg.Parts = appendOpenAIToolCalls(msg.Parts, m)
			r.Messages = append(r.Messages, msg)
		case "tool", "function":
			id := m.Get("tool_call_id").Str
			if id == "" {
				err = &Error{Status: http.StatusBadRequest, Param: "messages", Message: "a tool message needs tool_call_id"}
				return false
			}
			r.Messages = append(r.Messages, Message{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: id, Content: openAIContent(m.Get("content"))}}})
		default:
			err = &Error{Status: http.StatusBadRequest, Param: "messages", Message: fmt.Sprintf("unknown message role %q", role)}
			return false
		}
		leading = false
		return true
	})
	if err != nil {
		return nil, err
	}
	each(root.Get("tools"), func(_, t gjson.Result) bool {
		f := t.Get("function")
		schema := f.Get("parameters").Raw
		if schema == "" {
			schema = `{"type":"object","properties":{}}`
		}
		r.Tools = append(r.Tools, Tool{Name: f.Get("name").Str, Description: f.Get("description").Str, Schema: schema})
		return true
	})
	switch tc := root.Get("tool_choice"); {
	case tc.Type == gjson.String:
		r.ToolChoice = &ToolChoice{Mode: tc.Str}
	case tc.IsObject():
		r.ToolChoice = &ToolChoice{Mode: "tool", Name: tc.Get("function.name").Str}
	}
	r.ParallelToolCalls = optBool(root.Get("parallel_tool_calls"))
	for _, k := range []string{"max_completion_tokens", "max_tokens"} {
		if v := root.Get(k); v.Type == gjson.Number {
			r.MaxTokens = int(v.Int())
			break
		}
	}
	r.Temperature = optFloat(root.Get("temperature"))
	r.TopP = optFloat(root.Get("top_p"))
	switch s := root.Get("stop"); {
	case s.Type == gjson.String:
		r.Stop = []string{s.Str}
	case s.IsArray():
		each(s, func(_, v gjson.Result) bool { r.Stop = append(r.Stop, v.Str); return true })
	}
	if rf := root.Get("response_format"); rf.IsObject() {
		switch rf.Get("type").Str {
		case "json_object":
			r.ResponseFormat = &ResponseFormat{Type: "json_object"}
		case "json_schema":
			js := rf.Get("json_schema")
			r.ResponseFormat = &ResponseFormat{Type: "json_schema", Name: js.Get("name").Str, Schema: js.Get("schema").Raw, Strict: js.Get("strict").Bool()}
		}
	}
	r.ReasoningEffort = root.Get("reasoning_effort").Str
	if r.ReasoningEffort == "" {
		r.ReasoningEffort = root.Get("reasoning.effort").Str
	}
	return r, nil
}

// openAIReasoning is the reasoning text of a message or delta: DeepSeek
// and most hosts say reasoning_content, Ollama's /v1 says reasoning.
func openAIReasoning(m gjson.Result) string {
	if t := m.Get("reasoning_content"); t.Type == gjson.String && t.Str != "" {
		return t.Str
	}
	if t := m.Get("reasoning"); t.Type == gjson.String {
		return t.Str
	}
	return ""
}

// appendOpenAIToolCalls appends the tool calls of an assistant message
// (arguments "{}" when empty).
func appendOpenAIToolCalls(parts []Part, m gjson.Result) []Part {
	each(m.Get("tool_calls"), func(_, tc gjson.Result) bool {
		args := tc.Get("function.arguments").Str
		if args == "" {
			args = "{}"
		}
		parts = append(parts, Part{Type: PartToolCall, ID: tc.Get("id").Str, Name: tc.Get("function.name").Str, Args: args})
		return true
	})
	return parts
}

func optFloat(v gjson.Result) *float64 {
	if v.Type != gjson.Number {
		return nil
	}
	f := v.Float()
	return &f
}

// openAIContent reads a message content: a string or an array of parts.
func openAIContent(c gjson.Result) []Part {
	if c.Type == gjson.String {
		return []Part{{Type: PartText, Text: c.Str}}
	}
	var parts []Part
	each(c, func(_, p gjson.Result) bool {
		switch p.Get("type").Str {
		case "text", "input_text", "output_text":
			parts = append(parts, Part{Type: PartText, Text: p.Get("text").Str})
		case "image_url":
			url := p.Get("image_url.url").Str
			if url == "" {
				url = p.Get("image_url").Str
			}
			parts = append(parts, imagePart(url))
		}
		return true
	})
	return parts
}

// imagePart makes an image part from a URL, splitting data: URLs into
// media type and base64 data.
func imagePart(url string) Part {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		if meta, data, ok := strings.Cut(rest, ","); ok && strings.HasSuffix(meta, ";base64") {
			return Part{Type: PartImage, MediaType: strings.TrimSuffix(meta, ";base64"), Data: data}
		}
	}
	return Part{Type: PartImage, URL: url}
}

// dataURL is the data: URL of an image part (or its URL).
func (p Part) dataURL() string {
	if p.Data != "" {
		mt := p.MediaType
		if mt == "" {
			mt = "image/png"
		}
		return "data:" + mt + ";base64," + p.Data
	}
	return p.URL
}

type oaMessage struct {
	Role       string       `json:"role"`
	Content    any          `json:"content"`
	ToolCalls  []oaToolCall `json:"tool_calls,omitempty"`
	ToolCallID string       `json:"tool_call_id,omitempty"`
}

type oaToolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// JoinText concatenates the non-empty text parts of parts with sep
// between them. A single text part is returned as it is, uncopied.
func JoinText(parts []Part, sep string) string {
	one, n := "", 0
	for _, p := range parts {
		if p.Type == PartText && p.Text != "" {
			one, n = p.Text, n+1
		}
	}
	if n <= 1 {
		return one
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == PartText && p.Text != "" {
			if b.Len() > 0 {
				b.WriteString(sep)
			}
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// oaContent renders parts as OpenAI content: a string when it is text
// only, else an array of text and image_url parts.
func oaContent(parts []Part) any {
	hasImage := false
	for _, p := range parts {
		if p.Type == PartImage {
			hasImage = true
		}
	}
	if !hasImage {
		return JoinText(parts, "\n\n")
	}
	var out []map[string]any
	for _, p := range parts {
		switch p.Type {
		case PartText:
			if p.Text != "" {
				out = append(out, map[string]any{"type": "text", "text": p.Text})
			}
		case PartImage:
			out = append(out, map[string]any{"type": "image_url", "image_url": map[string]any{"url": p.dataURL()}})
		}
	}
	return out
}

// EncodeOpenAIRequest writes r as an OpenAI Chat Completions request.
// Thinking blocks are dropped (Chat Completions takes none as input).
func EncodeOpenAIRequest(r *ChatRequest, o EncodeOptions) ([]byte, error) {
	var msgs []oaMessage
	if len(r.System) > 0 {
		msgs = append(msgs, oaMessage{Role: "system", Content: JoinText(r.System, "\n\n")})
	}
	// Tool messages take text only; images a tool returned follow as one
	// user message after the whole run of tool messages (OpenAI wants the
	// tool messages right after the assistant's tool_calls).
	var toolImages []Part
	flushImages := func() {
		if len(toolImages) > 0 {
			msgs = append(msgs, oaMessage{Role: "user", Content: oaContent(toolImages)})
			toolImages = nil
		}
	}
	for _, m := range r.Messages {
		if m.Role != RoleTool {
			flushImages()
		}
		switch m.Role {
		case RoleSystem:
			msgs = append(msgs, oaMessage{Role: "system", Content: JoinText(m.Parts, "\n\n")})
		case RoleUser:
			msgs = append(msgs, oaMessage{Role: "user", Content: oaContent(m.Parts)})
		case RoleAssistant:
			am := oaMessage{Role: "assistant"}
			if t := JoinText(m.Parts, ""); t != "" {
				am.Content = t
			}
			for _, p := range m.Parts {
				if p.Type == PartToolCall {
					var tc oaToolCall
					tc.ID, tc.Type = p.ID, "function"
					tc.Function.Name, tc.Function.Arguments = p.Name, p.Args
					am.ToolCalls = append(am.ToolCalls, tc)
				}
			}
			msgs = append(msgs, am)
		case RoleTool:
			for _, p := range m.Parts {
				if p.Type == PartToolResult {
					content := JoinText(p.Content, "\n")
					if p.IsError && content == "" {
						content = "error"
					}
					msgs = append(msgs, oaMessage{Role: "tool", ToolCallID: p.ID, Content: content})
					toolImages = append(toolImages, images(p.Content)...)
				}
			}
		}
	}
	flushImages()
	req := map[string]any{"model": o.Model, "messages": msgs}
	if len(r.Tools) > 0 {
		var tools []map[string]any
		for _, t := range r.Tools {
			f := map[string]any{"name": t.Name, "parameters": json.RawMessage(t.Schema)}
			if t.Description != "" {
				f["description"] = t.Description
			}
			tools = append(tools, map[string]any{"type": "function", "function": f})
		}
		req["tools"] = tools
		if r.ParallelToolCalls != nil {
			req["parallel_tool_calls"] = *r.ParallelToolCalls
		}
	}
	if tc := r.ToolChoice; tc != nil && len(r.Tools) > 0 {
		if tc.Mode == "tool" {
			req["tool_choice"] = map[string]any{"type": "function", "function": map[string]any{"name": tc.Name}}
		} else {
			req["tool_choice"] = tc.Mode
		}
	}
	if r.MaxTokens > 0 {
		if o.Reasoning {
			req["max_completion_tokens"] = r.MaxTokens
		} else {
			req["max_tokens"] = r.MaxTokens
		}
	}
	// OpenAI's reasoning models reject sampling parameters.
	if r.Temperature != nil && !o.Reasoning {
		req["temperature"] = *r.Temperature
	}
	if r.TopP != nil && !o.Reasoning {
		req["top_p"] = *r.TopP
	}
	if len(r.Stop) > 0 {
		req["stop"] = r.Stop
	}
	if rf := r.ResponseFormat; rf != nil {
		if rf.Type == "json_schema" {
			name := rf.Name
			if name == "" {
				name = "response"
			}
			req["response_format"] = map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": name, "schema": json.RawMessage(rf.Schema), "strict": rf.Strict}}
		} else {
			req["response_format"] = map[string]any{"type": "json_object"}
		}
	}
	// Non-reasoning models reject reasoning_effort.
	switch {
	case !o.Reasoning:
	case r.ReasoningEffort != "":
		req["reasoning_effort"] = openAIEffort(r.ReasoningEffort)
	case r.ThinkingBudget > 0:
		req["reasoning_effort"] = budgetEffort(r.ThinkingBudget)
	}
	if r.User != "" {
		req["user"] = r.User
	}
	if r.Stream {
		req["stream"] = true
		// The gateway always wants the usage chunk for its ledger.
		req["stream_options"] = map[string]any{"include_usage": true}
	}
	return json.Marshal(req)
}

func images(parts []Part) []Part {
	var out []Part
	for _, p := range parts {
		if p.Type == PartImage {
			out = append(out, p)
		}
	}
	return out
}

// OpenAI finish_reason for a canonical stop reason.
func openAIFinish(s StopReason) string {
	switch s {
	case StopMaxTokens:
		return "length"
	case StopToolUse:
		return "tool_calls"
	case StopContentFilter:
		return "content_filter"
	}
	return "stop"
}

func stopFromOpenAI(f string) StopReason {
	switch f {
	case "length":
		return StopMaxTokens
	case "tool_calls", "function_call":
		return StopToolUse
	case "content_filter":
		return StopContentFilter
	}
	return StopEnd
}

// DecodeOpenAIResponse reads a non-streamed Chat Completions answer.
func DecodeOpenAIResponse(body []byte) (*ChatResponse, error) {
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("provider answer is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	c := root.Get("choices.0")
	if !c.Exists() {
		return nil, fmt.Errorf("provider answer has no choices")
	}
	r := &ChatResponse{ID: root.Get("id").Str, Model: root.Get("model").Str, NativeStop: c.Get("finish_reason").Str}
	r.Stop = stopFromOpenAI(r.NativeStop)
	m := c.Get("message")
	if t := openAIReasoning(m); t != "" {
		r.Parts = append(r.Parts, Part{Type: PartThinking, Text: t})
	}
	if t := m.Get("content").Str; t != "" {
		r.Parts = append(r.Parts, Part{Type: PartText, Text: t})
	}
	if t := m.Get("refusal").Str; t != "" {
		// The model's refusal is its answer: text for the dialects
		// that have no refusal of their own (as Responses' is read).
		r.Parts = append(r.Parts, Part{Type: PartText, Text: t})
	}
	r.Parts = appendOpenAIToolCalls(r.Parts, m)
	ensureToolIDs(r.Parts)
	if hasToolCall(r.Parts) && r.Stop == StopEnd {
		// Ollama's and some hosts' "stop" with tool calls.
		r.Stop = StopToolUse
	}
	if !hasToolCall(r.Parts) && r.Stop == StopToolUse {
		r.Stop = StopEnd
	}
	r.Usage, _ = openAIUsage(root.Get("usage"))
	return r, nil
}

func hasToolCall(parts []Part) bool {
	for _, p := range parts {
		if p.Type == PartToolCall {
			return true
		}
	}
	return false
}

// EncodeOpenAIResponse writes r as a Chat Completions answer.
func EncodeOpenAIResponse(r *ChatResponse, model string, created int64) ([]byte, error) {
	msg := map[string]any{"role": "assistant", "content": nil, "refusal": nil}
	if t := JoinText(r.Parts, ""); t != "" {
		msg["content"] = t
	}
	var thinking strings.Builder
	var calls []oaToolCall
	for _, p := range r.Parts {
		switch p.Type {
		case PartThinking:
			thinking.WriteString(p.Text)
		case PartToolCall:
			var tc oaToolCall
			tc.ID, tc.Type = p.ID, "function"
			tc.Function.Name, tc.Function.Arguments = p.Name, p.Args
			calls = append(calls, tc)
		}
	}
	if thinking.Len() > 0 {
		msg["reasoning_content"] = thinking.String()
	}
	if len(calls) > 0 {
		msg["tool_calls"] = calls
	}
	choice := map[string]any{"index": 0, "message": msg, "finish_reason": openAIFinish(r.Stop), "logprobs": nil}
	if r.NativeStop != "" {
		choice["native_finish_reason"] = r.NativeStop
	}
	return json.Marshal(map[string]any{
		"id": "chatcmpl-" + strings.TrimPrefix(r.ID, "chatcmpl-"), "object": "chat.completion", "created": created, "model": model,
		"choices": []any{choice}, "usage": openAIUsageJSON(r.Usage),
	})
}

func openAIUsageJSON(u Usage) map[string]any {
	return map[string]any{
		"prompt_tokens": u.Input, "completion_tokens": u.Output, "total_tokens": u.Input + u.Output,
		"prompt_tokens_details":     map[string]any{"cached_tokens": u.CachedInput},
		"completion_tokens_details": map[string]any{"reasoning_tokens": u.Reasoning},
	}
}
