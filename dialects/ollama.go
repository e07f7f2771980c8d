package dialects

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// DecodeOllamaRequest reads an Ollama /api/chat request. Tool calls
// without ids get generated ones, and tool results that name only the
// tool are matched to them in order.
func DecodeOllamaRequest(body []byte) (*ChatRequest, *Error) {
	root := readTop(body)
	r := &ChatRequest{Model: root.Get("model").Str, Stream: true}
	if s := root.Get("stream"); s.Exists() {
		r.Stream = s.Bool()
	}
	pending := map[string][]string{} // tool name → ids of unanswered calls
	var order []string               // tool names in the order of their calls
	var err *Error
	each(root.Get("messages"), func(_, m gjson.Result) bool {
		var parts []Part
		if t := m.Get("thinking").Str; t != "" {
			parts = append(parts, Part{Type: PartThinking, Text: t})
		}
		if t := m.Get("content").Str; t != "" {
			parts = append(parts, Part{Type: PartText, Text: t})
		}
		each(m.Get("images"), func(_, img gjson.Result) bool {
			parts = append(parts, Part{Type: PartImage, MediaType: sniffImage(img.Str), Data: img.Str})
			return true
		})
		switch role := m.Get("role").Str; role {
		case "system":
			if len(r.Messages) == 0 {
				r.System = append(r.System, parts...)
			} else {
				r.Messages = append(r.Messages, Message{Role: RoleSystem, Parts: parts})
			}
		case "user":
			r.Messages = append(r.Messages, Message{Role: RoleUser, Parts: parts})
		case "assistant":
			each(m.Get("tool_calls"), func(_, tc gjson.Result) bool {
				name := tc.Get("function.name").Str
				id := tc.Get("id").Str
				if id == "" {
					id = NewID("call_")
				}
				if len(pending[name]) == 0 {
					order = append(order, name)
				}
				pending[name] = append(pending[name], id)
				args := tc.Get("function.arguments").Raw
				if args == "" {
					args = "{}"
				}
				parts = append(parts, Part{Type: PartToolCall, ID: id, Name: name, Args: args})
				return true
			})
			r.Messages = append(r.Messages, Message{Role: RoleAssistant, Parts: parts})
		case "tool":
			name := m.Get("tool_name").Str
			id := m.Get("tool_call_id").Str
			if q := pending[name]; id == "" && len(q) > 0 {
				id, pending[name] = q[0], q[1:]
			}
			if id == "" && name == "" {
				// Older clients name neither: answer the oldest call.
				for _, n := range order {
					if q := pending[n]; len(q) > 0 {
						id, name, pending[n] = q[0], n, q[1:]
						break
					}
				}
			}
			content := []Part{{Type: PartText, Text: m.Get("content").Str}}
			r.Messages = append(r.Messages, Message{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: id, Name: name, Content: content}}})
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
		f := t.Get("function")
		schema := f.Get("parameters").Raw
		if schema == "" {
			schema = `{"type":"object","properties":{}}`
		}
		r.Tools = append(r.Tools, Tool{Name: f.Get("name").Str, Description: f.Get("description").Str, Schema: schema})
		return true
	})
	opts := root.Get("options")
	r.MaxTokens = int(opts.Get("num_predict").Int())
	r.Temperature = optFloat(opts.Get("temperature"))
	r.TopP = optFloat(opts.Get("top_p"))
	switch s := opts.Get("stop"); {
	case s.Type == gjson.String:
		r.Stop = []string{s.Str}
	case s.IsArray():
		each(s, func(_, v gjson.Result) bool { r.Stop = append(r.Stop, v.Str); return true })
	}
	switch f := root.Get("format"); {
	case f.Type == gjson.String && f.Str == "json":
		r.ResponseFormat = &ResponseFormat{Type: "json_object"}
	case f.IsObject():
		r.ResponseFormat = &ResponseFormat{Type: "json_schema", Schema: f.Raw}
	}
	switch th := root.Get("think"); {
	case th.Type == gjson.True:
		r.ReasoningEffort = "medium"
	case th.Type == gjson.String:
		r.ReasoningEffort = th.Str
	}
	return r, nil
}

// sniffImage guesses the media type of base64 image data.
func sniffImage(b64 string) string {
	switch {
	case strings.HasPrefix(b64, "/9j/"):
		return "image/jpeg"
	case strings.HasPrefix(b64, "R0lG"):
		return "image/gif"
	case strings.HasPrefix(b64, "UklG"):
		return "image/webp"
	}
	return "image/png"
}

// ErrImageURL is returned when a target that needs image bytes gets an
// image by URL (the gateway does not fetch images).
var ErrImageURL = fmt.Errorf("this provider needs images as base64 data; the request has an image URL, and the gateway does not fetch URLs")

// EncodeOllamaRequest writes r as an Ollama /api/chat request.
func EncodeOllamaRequest(r *ChatRequest, o EncodeOptions) ([]byte, error) {
	type msg struct {
		Role      string           `json:"role"`
		Content   string           `json:"content"`
		Thinking  string           `json:"thinking,omitempty"`
		Images    []string         `json:"images,omitempty"`
		ToolCalls []map[string]any `json:"tool_calls,omitempty"`
		ToolName  string           `json:"tool_name,omitempty"`
	}
	names := map[string]string{} // call id → tool name
	var msgs []msg
	conv := func(role string, parts []Part) (msg, error) {
		m := msg{Role: role, Content: JoinText(parts, "\n\n")}
		for _, p := range parts {
			switch p.Type {
			case PartImage:
				if p.Data == "" {
					return m, ErrImageURL
				}
				m.Images = append(m.Images, p.Data)
			case PartThinking:
				m.Thinking += p.Text
			case PartToolCall:
				names[p.ID] = p.Name
				args := json.RawMessage(p.Args)
				if !gjson.Valid(p.Args) {
					args = json.RawMessage(`{}`)
				}
				m.ToolCalls = append(m.ToolCalls, map[string]any{"function": map[string]any{"name": p.Name, "arguments": args}})
			}
		}
		return m, nil
	}
	if len(r.System) > 0 {
		msgs = append(msgs, msg{Role: "system", Content: JoinText(r.System, "\n\n")})
	}
	for _, m := range r.Messages {
		switch m.Role {
		case RoleTool:
			for _, p := range m.Parts {
				name := p.Name
				if name == "" {
					name = names[p.ID]
				}
				tm, err := conv("tool", p.Content)
				if err != nil {
					return nil, err
				}
				tm.ToolName = name
				msgs = append(msgs, tm)
			}
		default:
			cm, err := conv(string(m.Role), m.Parts)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, cm)
		}
	}
	req := map[string]any{"model": o.Model, "messages": msgs, "stream": r.Stream}
	if len(r.Tools) > 0 && (r.ToolChoice == nil || r.ToolChoice.Mode != "none") {
		var tools []map[string]any
		for _, t := range r.Tools {
			tools = append(tools, map[string]any{"type": "function", "function": map[string]any{"name": t.Name, "description": t.Description, "parameters": json.RawMessage(t.Schema)}})
		}
		req["tools"] = tools
	}
	opts := map[string]any{}
	if r.MaxTokens > 0 {
		opts["num_predict"] = r.MaxTokens
	}
	if r.Temperature != nil {
		opts["temperature"] = *r.Temperature
	}
	if r.TopP != nil {
		opts["top_p"] = *r.TopP
	}
	if len(r.Stop) > 0 {
		opts["stop"] = r.Stop
	}
	if len(opts) > 0 {
		req["options"] = opts
	}
	if rf := r.ResponseFormat; rf != nil {
		if rf.Type == "json_schema" && rf.Schema != "" {
			req["format"] = json.RawMessage(rf.Schema)
		} else {
			req["format"] = "json"
		}
	}
	if r.ReasoningEffort != "" || r.ThinkingBudget > 0 {
		req["think"] = true
	}
	return json.Marshal(req)
}

func stopFromOllama(reason string, tools bool) StopReason {
	switch {
	case reason == "length":
		return StopMaxTokens
	case tools:
		return StopToolUse
	}
	return StopEnd
}

// DecodeOllamaResponse reads a non-streamed /api/chat answer.
func DecodeOllamaResponse(body []byte) (*ChatResponse, error) {
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("provider answer is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	m := root.Get("message")
	if !m.Exists() {
		return nil, fmt.Errorf("provider answer has no message")
	}
	r := &ChatResponse{Model: root.Get("model").Str, NativeStop: root.Get("done_reason").Str}
	if t := m.Get("thinking").Str; t != "" {
		r.Parts = append(r.Parts, Part{Type: PartThinking, Text: t})
	}
	if t := m.Get("content").Str; t != "" {
		r.Parts = append(r.Parts, Part{Type: PartText, Text: t})
	}
	each(m.Get("tool_calls"), func(_, tc gjson.Result) bool {
		args := tc.Get("function.arguments").Raw
		if args == "" {
			args = "{}"
		}
		r.Parts = append(r.Parts, Part{Type: PartToolCall, ID: tc.Get("id").Str, Name: tc.Get("function.name").Str, Args: args})
		return true
	})
	ensureToolIDs(r.Parts)
	r.Stop = stopFromOllama(r.NativeStop, hasToolCall(r.Parts))
	r.Usage, _ = ollamaUsage(body)
	return r, nil
}

func ollamaDoneReason(s StopReason) string {
	if s == StopMaxTokens {
		return "length"
	}
	return "stop"
}

func ollamaToolCalls(parts []Part) []map[string]any {
	var out []map[string]any
	for _, p := range parts {
		if p.Type == PartToolCall {
			args := json.RawMessage(p.Args)
			if !gjson.Valid(p.Args) {
				args = json.RawMessage(`{}`)
			}
			out = append(out, map[string]any{"id": p.ID, "function": map[string]any{"name": p.Name, "arguments": args}})
		}
	}
	return out
}

// EncodeOllamaResponse writes r as a non-streamed /api/chat answer.
func EncodeOllamaResponse(r *ChatResponse, model string) ([]byte, error) {
	msg := map[string]any{"role": "assistant", "content": JoinText(r.Parts, "")}
	var thinking strings.Builder
	for _, p := range r.Parts {
		if p.Type == PartThinking {
			thinking.WriteString(p.Text)
		}
	}
	if thinking.Len() > 0 {
		msg["thinking"] = thinking.String()
	}
	if tc := ollamaToolCalls(r.Parts); len(tc) > 0 {
		msg["tool_calls"] = tc
	}
	return json.Marshal(map[string]any{"model": model, "created_at": now().UTC().Format(time.RFC3339Nano), "message": msg,
		"done": true, "done_reason": ollamaDoneReason(r.Stop), "total_duration": 0,
		"prompt_eval_count": r.Usage.Input, "eval_count": r.Usage.Output})
}

// now is the clock of Ollama's created_at fields; tests replace it.
var now = time.Now

type ollamaStreamDecoder struct {
	started bool
	ntools  int
}

func (d *ollamaStreamDecoder) event(_ string, data []byte, emit func(Event)) {
	if !gjson.ValidBytes(data) {
		emit(Event{Kind: EvError, Text: "the provider sent a stream line that is not JSON", Status: 502})
		return
	}
	root := gjson.ParseBytes(data)
	if e := root.Get("error"); e.Exists() {
		emit(Event{Kind: EvError, Text: e.String(), Status: 502})
		return
	}
	if !d.started {
		d.started = true
		emit(Event{Kind: EvStart, Model: root.Get("model").Str})
	}
	m := root.Get("message")
	if t := m.Get("thinking").Str; t != "" {
		emit(Event{Kind: EvThinking, Text: t})
	}
	if t := m.Get("content").Str; t != "" {
		emit(Event{Kind: EvText, Text: t})
	}
	each(m.Get("tool_calls"), func(_, tc gjson.Result) bool {
		id := tc.Get("id").Str
		if id == "" {
			id = NewID("call_")
		}
		idx := d.ntools
		d.ntools++
		emit(Event{Kind: EvToolStart, Index: idx, ID: id, Name: tc.Get("function.name").Str})
		args := tc.Get("function.arguments").Raw
		if args == "" {
			args = "{}"
		}
		emit(Event{Kind: EvToolArgs, Index: idx, Text: args})
		return true
	})
	if root.Get("done").Bool() {
		u, _ := ollamaUsage(data)
		reason := root.Get("done_reason").Str
		emit(Event{Kind: EvFinish, Stop: stopFromOllama(reason, d.ntools > 0), NativeStop: reason, Usage: u})
	}
}

func (d *ollamaStreamDecoder) end(func(Event)) {}

type ollamaStreamEncoder struct {
	model string
	tools []Part   // tool calls are sent whole, when complete
	index []int    // the neutral tool index of each pending call
	args  [][]byte // their arguments so far (bounded by the translator: maxToolArgs)
}

func (e *ollamaStreamEncoder) line(out []byte, v map[string]any) []byte {
	v["model"] = e.model
	v["created_at"] = now().UTC().Format(time.RFC3339Nano)
	b, _ := json.Marshal(v)
	out = append(out, b...)
	return append(out, '\n')
}

func (e *ollamaStreamEncoder) flushTools(out []byte) []byte {
	if len(e.tools) == 0 {
		return out
	}
	for i := range e.tools {
		e.tools[i].Args = string(e.args[i])
	}
	out = e.line(out, map[string]any{"message": map[string]any{"role": "assistant", "content": "", "tool_calls": ollamaToolCalls(e.tools)}, "done": false})
	e.tools, e.index, e.args = e.tools[:0], e.index[:0], nil
	return out
}

func (e *ollamaStreamEncoder) encode(ev Event, out []byte) []byte {
	switch ev.Kind {
	case EvText:
		out = e.flushTools(out)
		out = append(out, `{"model":`...)
		out = AppendJSONString(out, e.model)
		out = append(out, `,"created_at":"`...)
		out = now().UTC().AppendFormat(out, time.RFC3339Nano)
		out = append(out, `","message":{"role":"assistant","content":`...)
		out = AppendJSONString(out, ev.Text)
		out = append(out, "},\"done\":false}\n"...)
	case EvThinking:
		out = e.flushTools(out)
		out = e.line(out, map[string]any{"message": map[string]any{"role": "assistant", "content": "", "thinking": ev.Text}, "done": false})
	case EvToolStart:
		e.tools = append(e.tools, Part{Type: PartToolCall, ID: ev.ID, Name: ev.Name})
		e.index = append(e.index, ev.Index)
		e.args = append(e.args, nil)
	case EvToolArgs:
		for i, idx := range e.index {
			if idx == ev.Index {
				e.args[i] = append(e.args[i], ev.Text...)
				break
			}
		}
	case EvFinish:
		out = e.flushTools(out)
		out = e.line(out, map[string]any{"message": map[string]any{"role": "assistant", "content": ""}, "done": true,
			"done_reason": ollamaDoneReason(ev.Stop), "total_duration": 0, "prompt_eval_count": ev.Usage.Input, "eval_count": ev.Usage.Output})
	case EvError:
		b, _ := json.Marshal(map[string]any{"error": ev.Text})
		out = append(out, b...)
		out = append(out, '\n')
	}
	return out
}
