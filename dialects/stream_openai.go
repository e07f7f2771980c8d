package dialects

import (
	"encoding/json"
	"strconv"

	"github.com/tidwall/gjson"
)

type openAIStreamDecoder struct {
	started bool
	slots   []openAISlot // by OpenAI tool_calls index
	ntools  int
	stop    string
	usage   Usage
	hasUse  bool
}

// openAISlot is the neutral tool call an OpenAI tool_calls index refers
// to now: a new id on a known index starts a new call (some hosts reuse
// index 0 for every call).
type openAISlot struct {
	open  bool
	id    string
	index int
}

func (d *openAIStreamDecoder) event(_ string, data []byte, emit func(Event)) {
	if string(data) == "[DONE]" {
		d.finish(emit)
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
	if t := openAIReasoning(delta); t != "" {
		emit(Event{Kind: EvThinking, Text: t})
	}
	if t := delta.Get("content"); t.Type == gjson.String && t.Str != "" {
		emit(Event{Kind: EvText, Text: t.Str})
	}
	if t := delta.Get("refusal"); t.Type == gjson.String && t.Str != "" {
		emit(Event{Kind: EvText, Text: t.Str}) // as in DecodeOpenAIResponse
	}
	each(delta.Get("tool_calls"), func(_, tc gjson.Result) bool {
		slot := int(tc.Get("index").Int())
		if slot < 0 || slot > 1024 {
			return true
		}
		for len(d.slots) <= slot {
			d.slots = append(d.slots, openAISlot{})
		}
		s := &d.slots[slot]
		id := tc.Get("id").Str
		if !s.open || (id != "" && id != s.id) {
			if id == "" {
				id = NewID("call_")
			}
			*s = openAISlot{open: true, id: id, index: d.ntools}
			d.ntools++
			emit(Event{Kind: EvToolStart, Index: s.index, ID: id, Name: tc.Get("function.name").Str})
		}
		if a := tc.Get("function.arguments").Str; a != "" {
			emit(Event{Kind: EvToolArgs, Index: s.index, Text: a})
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

// end: a stream without [DONE] was cut short (the usage chunk the gateway
// asked for comes just before it); the translator turns that into an
// error.
func (d *openAIStreamDecoder) end(func(Event)) {}

func (d *openAIStreamDecoder) finish(emit func(Event)) {
	if d.stop == "" {
		emit(Event{Kind: EvError, Text: "the provider's stream ended without a finish reason", Status: 502})
		return
	}
	stop := stopFromOpenAI(d.stop)
	if stop == StopEnd && d.ntools > 0 {
		stop = StopToolUse
	}
	if stop == StopToolUse && d.ntools == 0 {
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
	noArgs       []int  // tool indexes that have had no argument bytes yet
	prefix       []byte // `data: {"id":…,"choices":[{"index":0,"delta":`
}

const openAIDeltaSuffix = `,"logprobs":null,"finish_reason":null}]}` + "\n\n"

// chunkPrefix is every chunk's start up to its delta, built once.
func (e *openAIStreamEncoder) chunkPrefix() []byte {
	if e.prefix == nil {
		p := append([]byte(nil), `data: {"id":`...)
		p = AppendJSONString(p, e.id)
		p = append(p, `,"object":"chat.completion.chunk","created":`...)
		p = appendInt(p, e.created)
		p = append(p, `,"model":`...)
		p = AppendJSONString(p, e.model)
		p = append(p, `,"choices":[{"index":0,"delta":`...)
		e.prefix = p
	}
	return e.prefix
}

// delta appends a chunk whose delta is {"<key>":<text>} without building
// a map: the common event of a stream.
func (e *openAIStreamEncoder) delta(out []byte, key, text string) []byte {
	out = append(out, e.chunkPrefix()...)
	out = append(out, `{"`...)
	out = append(out, key...)
	out = append(out, `":`...)
	out = AppendJSONString(out, text)
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
		e.noArgs = append(e.noArgs, ev.Index)
		out = e.chunk(out, map[string]any{"tool_calls": []any{map[string]any{"index": ev.Index, "id": ev.ID, "type": "function",
			"function": map[string]any{"name": ev.Name, "arguments": ""}}}}, nil)
	case EvToolArgs:
		for i, idx := range e.noArgs {
			if idx == ev.Index {
				e.noArgs = append(e.noArgs[:i], e.noArgs[i+1:]...)
				break
			}
		}
		out = append(out, e.chunkPrefix()...)
		out = append(out, `{"tool_calls":[{"index":`...)
		out = appendInt(out, int64(ev.Index))
		out = append(out, `,"function":{"arguments":`...)
		out = AppendJSONString(out, ev.Text)
		out = append(out, `}}]}`...)
		out = append(out, openAIDeltaSuffix...)
	case EvFinish:
		// A call without arguments has the empty object, not "", which
		// clients cannot parse.
		for _, idx := range append([]int(nil), e.noArgs...) {
			out = e.encode(Event{Kind: EvToolArgs, Index: idx, Text: "{}"}, out)
		}
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
