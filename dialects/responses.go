package dialects

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// DecodeResponsesRequest reads an OpenAI Responses request. The gateway
// keeps no conversation state, so previous_response_id is refused with a
// 400 that says to send the whole input.
func DecodeResponsesRequest(body []byte) (*ChatRequest, *Error) {
	root := readTop(body)
	if p := root.Get("previous_response_id"); p.Type == gjson.String && p.Str != "" {
		return nil, &Error{Status: http.StatusBadRequest, Param: "previous_response_id",
			Message: "previous_response_id needs conversation state this gateway does not keep: send the whole conversation in input (store: false)"}
	}
	r := &ChatRequest{Model: root.Get("model").Str, Stream: root.Get("stream").Bool(), User: root.Get("user").Str}
	if ins := root.Get("instructions"); ins.Type == gjson.String && ins.Str != "" {
		r.System = []Part{{Type: PartText, Text: ins.Str}}
	}
	in := root.Get("input")
	if in.Type == gjson.String {
		r.Messages = []Message{{Role: RoleUser, Parts: []Part{{Type: PartText, Text: in.Str}}}}
	}
	var err *Error
	each(in, func(_, it gjson.Result) bool {
		typ := it.Get("type").Str
		switch {
		case typ == "function_call":
			args := it.Get("arguments").Str
			if args == "" {
				args = "{}"
			}
			p := Part{Type: PartToolCall, ID: it.Get("call_id").Str, Name: it.Get("name").Str, Args: args}
			if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == RoleAssistant {
				r.Messages[n-1].Parts = append(r.Messages[n-1].Parts, p)
			} else {
				r.Messages = append(r.Messages, Message{Role: RoleAssistant, Parts: []Part{p}})
			}
		case typ == "function_call_output":
			out := it.Get("output")
			var content []Part
			if out.Type == gjson.String {
				content = []Part{{Type: PartText, Text: out.Str}}
			} else {
				content = openAIContent(out)
			}
			r.Messages = append(r.Messages, Message{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: it.Get("call_id").Str, Content: content}}})
		case typ == "reasoning":
			var text strings.Builder
			each(it.Get("summary"), func(_, s gjson.Result) bool { text.WriteString(s.Get("text").Str); return true })
			if text.Len() > 0 {
				p := Part{Type: PartThinking, Text: text.String()}
				r.Messages = append(r.Messages, Message{Role: RoleAssistant, Parts: []Part{p}})
			}
		case typ == "message" || typ == "" && it.Get("role").Exists():
			parts := responsesContent(it.Get("content"))
			switch role := it.Get("role").Str; role {
			case "system", "developer":
				if len(r.Messages) == 0 {
					r.System = append(r.System, parts...)
				} else {
					r.Messages = append(r.Messages, Message{Role: RoleSystem, Parts: parts})
				}
			case "user":
				r.Messages = append(r.Messages, Message{Role: RoleUser, Parts: parts})
			case "assistant":
				if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == RoleAssistant && onlyThinking(r.Messages[n-1].Parts) {
					r.Messages[n-1].Parts = append(r.Messages[n-1].Parts, parts...)
				} else {
					r.Messages = append(r.Messages, Message{Role: RoleAssistant, Parts: parts})
				}
			default:
				err = &Error{Status: http.StatusBadRequest, Param: "input", Message: fmt.Sprintf("unknown input role %q", role)}
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	each(root.Get("tools"), func(_, t gjson.Result) bool {
		if t.Get("type").Str != "function" {
			return true // built-in tools cannot be offered to other providers
		}
		schema := t.Get("parameters").Raw
		if schema == "" {
			schema = `{"type":"object","properties":{}}`
		}
		r.Tools = append(r.Tools, Tool{Name: t.Get("name").Str, Description: t.Get("description").Str, Schema: schema})
		return true
	})
	switch tc := root.Get("tool_choice"); {
	case tc.Type == gjson.String:
		r.ToolChoice = &ToolChoice{Mode: tc.Str}
	case tc.IsObject() && tc.Get("name").Exists():
		r.ToolChoice = &ToolChoice{Mode: "tool", Name: tc.Get("name").Str}
	}
	r.ParallelToolCalls = optBool(root.Get("parallel_tool_calls"))
	r.MaxTokens = int(root.Get("max_output_tokens").Int())
	r.Temperature = optFloat(root.Get("temperature"))
	r.TopP = optFloat(root.Get("top_p"))
	switch f := root.Get("text.format"); f.Get("type").Str {
	case "json_object":
		r.ResponseFormat = &ResponseFormat{Type: "json_object"}
	case "json_schema":
		r.ResponseFormat = &ResponseFormat{Type: "json_schema", Name: f.Get("name").Str, Schema: f.Get("schema").Raw, Strict: f.Get("strict").Bool()}
	}
	r.ReasoningEffort = root.Get("reasoning.effort").Str
	return r, nil
}

func onlyThinking(parts []Part) bool {
	for _, p := range parts {
		if p.Type != PartThinking {
			return false
		}
	}
	return len(parts) > 0
}

// responsesContent reads a Responses message content (string or parts).
func responsesContent(c gjson.Result) []Part {
	if c.Type == gjson.String {
		return []Part{{Type: PartText, Text: c.Str}}
	}
	var parts []Part
	each(c, func(_, p gjson.Result) bool {
		switch p.Get("type").Str {
		case "input_text", "output_text", "text":
			parts = append(parts, Part{Type: PartText, Text: p.Get("text").Str})
		case "input_image":
			if u := p.Get("image_url").Str; u != "" {
				parts = append(parts, imagePart(u))
			}
		}
		return true
	})
	return parts
}

// EncodeResponsesRequest writes r as an OpenAI Responses request
// (stateless: store false, the whole conversation in input).
func EncodeResponsesRequest(r *ChatRequest, o EncodeOptions) ([]byte, error) {
	var input []map[string]any
	content := func(role string, parts []Part) []map[string]any {
		var out []map[string]any
		textType := "input_text"
		if role == "assistant" {
			textType = "output_text"
		}
		for _, p := range parts {
			switch p.Type {
			case PartText:
				if p.Text != "" {
					out = append(out, map[string]any{"type": textType, "text": p.Text})
				}
			case PartImage:
				if role != "assistant" {
					out = append(out, map[string]any{"type": "input_image", "image_url": p.dataURL()})
				}
			}
		}
		return out
	}
	for _, m := range r.Messages {
		switch m.Role {
		case RoleTool:
			for _, p := range m.Parts {
				input = append(input, map[string]any{"type": "function_call_output", "call_id": p.ID, "output": JoinText(p.Content, "\n")})
			}
		case RoleAssistant:
			if c := content("assistant", m.Parts); len(c) > 0 {
				input = append(input, map[string]any{"type": "message", "role": "assistant", "content": c})
			}
			for _, p := range m.Parts {
				if p.Type == PartToolCall {
					input = append(input, map[string]any{"type": "function_call", "call_id": p.ID, "name": p.Name, "arguments": p.Args})
				}
			}
		default:
			role := string(m.Role)
			if m.Role == RoleSystem {
				role = "developer"
			}
			if c := content(role, m.Parts); len(c) > 0 {
				input = append(input, map[string]any{"type": "message", "role": role, "content": c})
			}
		}
	}
	req := map[string]any{"model": o.Model, "input": input, "store": false}
	if len(r.System) > 0 {
		req["instructions"] = JoinText(r.System, "\n\n")
	}
	if len(r.Tools) > 0 {
		var tools []map[string]any
		for _, t := range r.Tools {
			tool := map[string]any{"type": "function", "name": t.Name, "parameters": json.RawMessage(t.Schema)}
			if t.Description != "" {
				tool["description"] = t.Description
			}
			tools = append(tools, tool)
		}
		req["tools"] = tools
		if r.ParallelToolCalls != nil {
			req["parallel_tool_calls"] = *r.ParallelToolCalls
		}
		if tc := r.ToolChoice; tc != nil {
			if tc.Mode == "tool" {
				req["tool_choice"] = map[string]any{"type": "function", "name": tc.Name}
			} else {
				req["tool_choice"] = tc.Mode
			}
		}
	}
	if r.MaxTokens > 0 {
		req["max_output_tokens"] = r.MaxTokens
	}
	if r.Temperature != nil && !o.Reasoning {
		req["temperature"] = *r.Temperature
	}
	if r.TopP != nil && !o.Reasoning {
		req["top_p"] = *r.TopP
	}
	if rf := r.ResponseFormat; rf != nil {
		if rf.Type == "json_schema" {
			name := rf.Name
			if name == "" {
				name = "response"
			}
			req["text"] = map[string]any{"format": map[string]any{"type": "json_schema", "name": name, "schema": json.RawMessage(rf.Schema), "strict": rf.Strict}}
		} else {
			req["text"] = map[string]any{"format": map[string]any{"type": "json_object"}}
		}
	}
	switch {
	case !o.Reasoning:
	case r.ReasoningEffort != "":
		req["reasoning"] = map[string]any{"effort": openAIEffort(r.ReasoningEffort)}
	case r.ThinkingBudget > 0:
		req["reasoning"] = map[string]any{"effort": budgetEffort(r.ThinkingBudget)}
	}
	if r.User != "" {
		req["user"] = r.User
	}
	if r.Stream {
		req["stream"] = true
	}
	return json.Marshal(req)
}

func responsesUsage(v gjson.Result) (u Usage, ok bool) {
	if !v.IsObject() {
		return u, false
	}
	u.Input = int(v.Get("input_tokens").Int())
	u.CachedInput = int(v.Get("input_tokens_details.cached_tokens").Int())
	u.CacheWrite = int(v.Get("input_tokens_details.cache_write_tokens").Int())
	u.Output = int(v.Get("output_tokens").Int())
	u.Reasoning = int(v.Get("output_tokens_details.reasoning_tokens").Int())
	return u, true
}

func responsesUsageJSON(u Usage) map[string]any {
	return map[string]any{"input_tokens": u.Input, "input_tokens_details": map[string]any{"cached_tokens": u.CachedInput},
		"output_tokens": u.Output, "output_tokens_details": map[string]any{"reasoning_tokens": u.Reasoning}, "total_tokens": u.Input + u.Output}
}

// DecodeResponsesResponse reads a non-streamed Responses answer.
func DecodeResponsesResponse(body []byte) (*ChatResponse, error) {
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("provider answer is not valid JSON")
	}
	return responsesFromObject(gjson.ParseBytes(body))
}

func responsesFromObject(root gjson.Result) (*ChatResponse, error) {
	if root.Get("object").Str != "response" {
		return nil, fmt.Errorf("provider answer is not a response object")
	}
	r := &ChatResponse{ID: root.Get("id").Str, Model: root.Get("model").Str, NativeStop: root.Get("status").Str}
	each(root.Get("output"), func(_, it gjson.Result) bool {
		switch it.Get("type").Str {
		case "message":
			each(it.Get("content"), func(_, c gjson.Result) bool {
				switch c.Get("type").Str {
				case "output_text":
					r.Parts = append(r.Parts, Part{Type: PartText, Text: c.Get("text").Str})
				case "refusal":
					r.Parts = append(r.Parts, Part{Type: PartText, Text: c.Get("refusal").Str})
					r.Stop = StopContentFilter
				}
				return true
			})
		case "function_call":
			args := it.Get("arguments").Str
			if args == "" {
				args = "{}"
			}
			r.Parts = append(r.Parts, Part{Type: PartToolCall, ID: it.Get("call_id").Str, Name: it.Get("name").Str, Args: args})
		case "reasoning":
			var text strings.Builder
			each(it.Get("summary"), func(_, s gjson.Result) bool { text.WriteString(s.Get("text").Str); return true })
			if text.Len() > 0 {
				r.Parts = append(r.Parts, Part{Type: PartThinking, Text: text.String()})
			}
		}
		return true
	})
	ensureToolIDs(r.Parts)
	switch {
	case r.Stop == StopContentFilter:
	case r.NativeStop == "incomplete":
		r.Stop = StopMaxTokens
		if root.Get("incomplete_details.reason").Str == "content_filter" {
			r.Stop = StopContentFilter
		}
	case hasToolCall(r.Parts):
		r.Stop = StopToolUse
	default:
		r.Stop = StopEnd
	}
	r.Usage, _ = responsesUsage(root.Get("usage"))
	return r, nil
}

// responsesObject builds a response object from items and a stop reason.
func responsesObject(id, model string, created int64, status string, output []map[string]any, stop StopReason, u *Usage) map[string]any {
	obj := map[string]any{"id": id, "object": "response", "created_at": created, "status": status, "error": nil,
		"incomplete_details": nil, "instructions": nil, "max_output_tokens": nil, "model": model, "output": output,
		"parallel_tool_calls": true, "previous_response_id": nil, "reasoning": map[string]any{"effort": nil, "summary": nil},
		"store": false, "temperature": nil, "text": map[string]any{"format": map[string]any{"type": "text"}},
		"tool_choice": "auto", "tools": []any{}, "top_p": nil, "truncation": "disabled", "usage": nil, "metadata": map[string]any{}}
	if status == "incomplete" {
		reason := "max_output_tokens"
		if stop == StopContentFilter {
			reason = "content_filter"
		}
		obj["incomplete_details"] = map[string]any{"reason": reason}
	}
	if u != nil {
		obj["usage"] = responsesUsageJSON(*u)
	}
	if output == nil {
		obj["output"] = []any{}
	}
	return obj
}

func responsesStatus(s StopReason) string {
	if s == StopMaxTokens || s == StopContentFilter {
		return "incomplete"
	}
	return "completed"
}

// EncodeResponsesResponse writes r as a Responses answer.
func EncodeResponsesResponse(r *ChatResponse, model string, created int64) ([]byte, error) {
	var output []map[string]any
	var thinking strings.Builder
	for _, p := range r.Parts {
		if p.Type == PartThinking {
			thinking.WriteString(p.Text)
		}
	}
	if thinking.Len() > 0 {
		output = append(output, map[string]any{"id": NewID("rs_"), "type": "reasoning",
			"summary": []any{map[string]any{"type": "summary_text", "text": thinking.String()}}})
	}
	if t := JoinText(r.Parts, ""); t != "" {
		output = append(output, responsesMessage(NewID("msg_"), t, "completed"))
	}
	for _, p := range r.Parts {
		if p.Type == PartToolCall {
			output = append(output, map[string]any{"id": NewID("fc_"), "type": "function_call", "status": "completed",
				"call_id": p.ID, "name": p.Name, "arguments": p.Args})
		}
	}
	id := r.ID
	if !strings.HasPrefix(id, "resp_") {
		id = NewID("resp_")
	}
	u := r.Usage
	return json.Marshal(responsesObject(id, model, created, responsesStatus(r.Stop), output, r.Stop, &u))
}

func responsesMessage(id, text, status string) map[string]any {
	return map[string]any{"id": id, "type": "message", "status": status, "role": "assistant",
		"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}}}
}
