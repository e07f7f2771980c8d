package dialects

import (
	"encoding/json"

	"github.com/tidwall/gjson"
)

type anthropicStreamDecoder struct {
	usage   AnthropicUsageState
	tools   map[int]int // block index → tool index
	ntools  int
	stop    string
	started bool
}

func (d *anthropicStreamDecoder) event(name string, data []byte, emit func(Event)) {
	if !gjson.ValidBytes(data) {
		emit(Event{Kind: EvError, Text: "the provider sent a stream event that is not JSON", Status: 502})
		return
	}
	root := gjson.ParseBytes(data)
	typ := root.Get("type").Str
	if typ == "" {
		typ = name
	}
	switch typ {
	case "message_start":
		m := root.Get("message")
		d.usage.add(m.Get("usage"))
		d.started = true
		emit(Event{Kind: EvStart, ID: m.Get("id").Str, Model: m.Get("model").Str, Usage: d.usage.Usage()})
	case "content_block_start":
		b := root.Get("content_block")
		switch b.Get("type").Str {
		case "text":
			if t := b.Get("text").Str; t != "" {
				emit(Event{Kind: EvText, Text: t})
			}
		case "thinking":
			if t := b.Get("thinking").Str; t != "" {
				emit(Event{Kind: EvThinking, Text: t})
			}
		case "tool_use", "server_tool_use":
			if d.tools == nil {
				d.tools = map[int]int{}
			}
			idx := d.ntools
			d.ntools++
			d.tools[int(root.Get("index").Int())] = idx
			emit(Event{Kind: EvToolStart, Index: idx, ID: b.Get("id").Str, Name: b.Get("name").Str})
			// Arguments sent whole rather than as input_json_delta.
			if in := b.Get("input"); in.IsObject() && in.Raw != "{}" && len(in.Map()) > 0 {
				emit(Event{Kind: EvToolArgs, Index: idx, Text: in.Raw})
			}
		}
	case "content_block_delta":
		delta := root.Get("delta")
		switch delta.Get("type").Str {
		case "text_delta":
			emit(Event{Kind: EvText, Text: delta.Get("text").Str})
		case "thinking_delta":
			emit(Event{Kind: EvThinking, Text: delta.Get("thinking").Str})
		case "signature_delta":
			emit(Event{Kind: EvSignature, Text: delta.Get("signature").Str})
		case "input_json_delta":
			if pj := delta.Get("partial_json").Str; pj != "" {
				if idx, ok := d.tools[int(root.Get("index").Int())]; ok {
					emit(Event{Kind: EvToolArgs, Index: idx, Text: pj})
				}
			}
		}
	case "message_delta":
		if s := root.Get("delta.stop_reason").Str; s != "" {
			d.stop = s
		}
		d.usage.add(root.Get("usage"))
	case "message_stop":
		stop := stopFromAnthropic(d.stop)
		if stop == StopToolUse && d.ntools == 0 {
			stop = StopEnd
		}
		emit(Event{Kind: EvFinish, Stop: stop, NativeStop: d.stop, Usage: d.usage.Usage()})
	case "error":
		e := root.Get("error")
		emit(Event{Kind: EvError, Text: e.Get("message").Str, Status: statusFromErrorType(e.Get("type").Str)})
	}
}

func (d *anthropicStreamDecoder) end(func(Event)) {}

type anthropicBlockState struct {
	kind  EventKind // EvText, EvThinking or EvToolStart
	index int
}

type anthropicStreamEncoder struct {
	model   string
	started bool
	next    int
	open    []anthropicBlockState
	tools   map[int]int // tool index → block index (open blocks only)
	ntools  int
}

func sseEvent(out []byte, typ string, v map[string]any) []byte {
	v["type"] = typ
	b, _ := json.Marshal(v)
	out = append(out, "event: "...)
	out = append(out, typ...)
	out = append(out, "\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}

// anthropicDelta appends a content_block_delta event without building a
// map: the common event of a stream.
func anthropicDelta(out []byte, index int, typ, key, text string) []byte {
	out = append(out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"...)
	out = appendInt(out, int64(index))
	out = append(out, `,"delta":{"type":"`...)
	out = append(out, typ...)
	out = append(out, `","`...)
	out = append(out, key...)
	out = append(out, `":`...)
	out = AppendJSONString(out, text)
	return append(out, "}}\n\n"...)
}

func (e *anthropicStreamEncoder) start(out []byte, ev Event) []byte {
	if e.started {
		return out
	}
	e.started = true
	id := ev.ID
	if len(id) < 4 || id[:4] != "msg_" {
		id = NewID("msg_")
	}
	u := anthropicUsageJSON(ev.Usage)
	u["output_tokens"] = 0
	out = sseEvent(out, "message_start", map[string]any{"message": map[string]any{"id": id, "type": "message", "role": "assistant",
		"model": e.model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": u}})
	return sseEvent(out, "ping", map[string]any{})
}

func (e *anthropicStreamEncoder) closeAll(out []byte) []byte {
	for _, b := range e.open {
		out = sseEvent(out, "content_block_stop", map[string]any{"index": b.index})
	}
	e.open = e.open[:0]
	e.tools = nil
	return out
}

// closeText closes the open text and thinking blocks; tool blocks stay
// open until the end, so argument fragments that arrive after other
// content still reach their block.
func (e *anthropicStreamEncoder) closeText(out []byte) []byte {
	kept := e.open[:0]
	for _, b := range e.open {
		if b.kind == EvToolStart {
			kept = append(kept, b)
			continue
		}
		out = sseEvent(out, "content_block_stop", map[string]any{"index": b.index})
	}
	e.open = kept
	return out
}

// current returns the last open block when it is of kind k.
func (e *anthropicStreamEncoder) current(k EventKind) (anthropicBlockState, bool) {
	if n := len(e.open); n > 0 && e.open[n-1].kind == k {
		return e.open[n-1], true
	}
	return anthropicBlockState{}, false
}

func (e *anthropicStreamEncoder) openBlock(out []byte, k EventKind, block map[string]any) ([]byte, int) {
	idx := e.next
	e.next++
	e.open = append(e.open, anthropicBlockState{kind: k, index: idx})
	return sseEvent(out, "content_block_start", map[string]any{"index": idx, "content_block": block}), idx
}

func (e *anthropicStreamEncoder) encode(ev Event, out []byte) []byte {
	if ev.Kind != EvError {
		out = e.start(out, ev)
	}
	switch ev.Kind {
	case EvText:
		b, ok := e.current(EvText)
		if !ok {
			out = e.closeText(out)
			out, b.index = e.openBlock(out, EvText, map[string]any{"type": "text", "text": ""})
		}
		out = anthropicDelta(out, b.index, "text_delta", "text", ev.Text)
	case EvThinking, EvSignature:
		b, ok := e.current(EvThinking)
		if !ok {
			out = e.closeText(out)
			out, b.index = e.openBlock(out, EvThinking, map[string]any{"type": "thinking", "thinking": "", "signature": ""})
		}
		if ev.Kind == EvThinking {
			out = anthropicDelta(out, b.index, "thinking_delta", "thinking", ev.Text)
		} else {
			out = sseEvent(out, "content_block_delta", map[string]any{"index": b.index, "delta": map[string]any{"type": "signature_delta", "signature": ev.Text}})
		}
	case EvToolStart:
		// Tool blocks stay open while further tool calls start, so
		// interleaved argument fragments still find their block.
		out = e.closeText(out)
		var idx int
		out, idx = e.openBlock(out, EvToolStart, map[string]any{"type": "tool_use", "id": ev.ID, "name": ev.Name, "input": map[string]any{}})
		if e.tools == nil {
			e.tools = map[int]int{}
		}
		e.tools[ev.Index] = idx
		e.ntools++
	case EvToolArgs:
		if idx, ok := e.tools[ev.Index]; ok {
			out = anthropicDelta(out, idx, "input_json_delta", "partial_json", ev.Text)
		}
	case EvFinish:
		out = e.closeAll(out)
		stop := ev.Stop
		if stop == StopToolUse && e.ntools == 0 {
			stop = StopEnd
		}
		out = sseEvent(out, "message_delta", map[string]any{"delta": map[string]any{"stop_reason": anthropicStop(stop), "stop_sequence": nil},
			"usage": anthropicUsageJSON(ev.Usage)})
		out = sseEvent(out, "message_stop", map[string]any{})
	case EvError:
		out = sseEvent(out, "error", map[string]any{"error": map[string]any{"type": anthropicType(ev.Status), "message": ev.Text}})
	}
	return out
}
