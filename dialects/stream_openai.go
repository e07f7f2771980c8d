package dialects

import (
	"encoding/json"
	"strconv"

	"github.com/tidwall/gjson"
)

type openAIStreamDecoder struct {
	started bool
	tools   []bool // tool slots seen
	stop    string
	usage   Usage
	hasUse  bool
}

func (d *openAIStreamDecoder) event(_ string, data []byte, emit func(Event)) {
	if string(data) == "[DONE]" {
		d.end(emit)
		return
	}
	if !gjson.ValidBytes(data) {
		emit(Event{Kind: EvError, Text: "the provider sent a stream event that is not JSON", Status: 502})
		return
	}
	root := gjson.ParseBytes(data)
	if e := root.Get("error"); e.Exists() {
		msg := e.Get("message").Str
		if msg == "" {
			msg = e.String()
		}
		emit(Event{Kind: EvError, Text: msg, Status: statusFromErrorType(e.Get("type").Str)})
		return
	}
	if !d.started {
		d.started = true
		emit(Event{Kind: EvStart, ID: root.Get("id").Str, Model: root.Get("model").Str})
	}
	c := root.Get("choices.0")
	delta := c.Get("delta")
	for _, k := range []string{"reasoning_content", "reasoning"} {
		if t := delta.Get(k); t.Type == gjson.String && t.Str != "" {
			emit(Event{Kind: EvThinking, Text: t.Str})
			break
		}
	}
	if t := delta.Get("content"); t.Type == gjson.String && t.Str != "" {
		emit(Event{Kind: EvText, Text: t.Str})
	}
	delta.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		idx := int(tc.Get("index").Int())
		if idx < 0 || idx > 1024 {
			return true
		}
		for len(d.tools) <= idx {
			d.tools = append(d.tools, false)
		}
		if !d.tools[idx] {
			d.tools[idx] = true
			id := tc.Get("id").Str
			if id == "" {
				id = NewID("call_")
			}
			emit(Event{Kind: EvToolStart, Index: idx, ID: id, Name: tc.Get("function.name").Str})
		}
		if a := tc.Get("function.arguments").Str; a != "" {
			emit(Event{Kind: EvToolArgs, Index: idx, Text: a})
		}
		return true
	})
	if f := c.Get("finish_reason"); f.Type == gjson.String && f.Str != "" {
		d.stop = f.Str
	}
	if u, ok := openAIUsage(root.Get("usage")); ok {
		d.usage, d.hasUse = u, true
	}
}

func (d *openAIStreamDecoder) end(emit func(Event)) {
	if d.stop == "" {
		// Without [DONE] or a finish_reason the stream was cut short;
		// the translator turns that into an error.
		return
	}
	stop := stopFromOpenAI(d.stop)
	if stop == StopEnd && len(d.tools) > 0 {
		stop = StopToolUse
	}
	if stop == StopToolUse && len(d.tools) == 0 {
		stop = StopEnd
	}
	emit(Event{Kind: EvFinish, Stop: stop, NativeStop: d.stop, Usage: d.usage})
}

func statusFromErrorType(t string) int {
	switch t {
	case "rate_limit_error", "rate_limit_exceeded", "insufficient_quota":
		return 429
	case "overloaded_error":
		return 529
	case "invalid_request_error":
		return 400
	case "authentication_error":
		return 401
	}
	return 502
}

type openAIStreamEncoder struct {
	model        string
	created      int64
	includeUsage bool
	id           string
	started      bool
	tools        int
	prefix       []byte // `data: {"id":…,"choices":[{"index":0,"delta":`
}

const openAIDeltaSuffix = `,"logprobs":null,"finish_reason":null}]}` + "\n\n"

// delta appends a chunk whose delta is {"<key>":<text>} without building
// a map: the common event of a stream.
func (e *openAIStreamEncoder) delta(out []byte, key, text string) []byte {
	if e.prefix == nil {
		p := append([]byte(nil), `data: {"id":`...)
		p = appendJSONString(p, e.id)
		p = append(p, `,"object":"chat.completion.chunk","created":`...)
		p = appendInt(p, e.created)
		p = append(p, `,"model":`...)
		p = appendJSONString(p, e.model)
		p = append(p, `,"choices":[{"index":0,"delta":`...)
		e.prefix = p
	}
	out = append(out, e.prefix...)
	out = append(out, `{"`...)
	out = append(out, key...)
	out = append(out, `":`...)
	out = appendJSONString(out, text)
	out = append(out, '}')
	return append(out, openAIDeltaSuffix...)
}

func (e *openAIStreamEncoder) chunk(out []byte, delta map[string]any, finish any) []byte {
	b, _ := json.Marshal(map[string]any{"id": e.id, "object": "chat.completion.chunk", "created": e.created, "model": e.model,
		"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}})
	out = append(out, "data: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}

func (e *openAIStreamEncoder) start(out []byte, id string) []byte {
	if e.started {
		return out
	}
	e.started = true
	e.id = "chatcmpl-" + id
	if id == "" {
		e.id = NewID("chatcmpl-")
	}
	return e.chunk(out, map[string]any{"role": "assistant", "content": ""}, nil)
}

func (e *openAIStreamEncoder) encode(ev Event, out []byte) []byte {
	if ev.Kind != EvError {
		out = e.start(out, ev.ID)
	}
	switch ev.Kind {
	case EvText:
		out = e.delta(out, "content", ev.Text)
	case EvThinking:
		out = e.delta(out, "reasoning_content", ev.Text)
	case EvToolStart:
		e.tools++
		out = e.chunk(out, map[string]any{"tool_calls": []any{map[string]any{"index": ev.Index, "id": ev.ID, "type": "function",
			"function": map[string]any{"name": ev.Name, "arguments": ""}}}}, nil)
	case EvToolArgs:
		if e.prefix == nil {
			out = e.delta(out[:len(out):len(out)], "content", "")[:len(out)] // builds the prefix
		}
		out = append(out, e.prefix...)
		out = append(out, `{"tool_calls":[{"index":`...)
		out = appendInt(out, int64(ev.Index))
		out = append(out, `,"function":{"arguments":`...)
		out = appendJSONString(out, ev.Text)
		out = append(out, `}}]}`...)
		out = append(out, openAIDeltaSuffix...)
	case EvFinish:
		stop := ev.Stop
		if stop == StopToolUse && e.tools == 0 {
			stop = StopEnd
		}
		out = e.chunk(out, map[string]any{}, openAIFinish(stop))
		if e.includeUsage {
			b, _ := json.Marshal(map[string]any{"id": e.id, "object": "chat.completion.chunk", "created": e.created, "model": e.model,
				"choices": []any{}, "usage": openAIUsageJSON(ev.Usage)})
			out = append(out, "data: "...)
			out = append(out, b...)
			out = append(out, "\n\n"...)
		}
		out = append(out, "data: [DONE]\n\n"...)
	case EvError:
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": ev.Text, "type": openAIType(ev.Status),
			"param": nil, "code": strconv.Itoa(ev.Status)}})
		out = append(out, "data: "...)
		out = append(out, b...)
		out = append(out, "\n\n"...)
	}
	return out
}
