package dialects

import (
	"encoding/json"
	"strings"

	"github.com/tidwall/gjson"
)

type responsesStreamDecoder struct {
	tools   map[int]int  // output_index → tool index
	args    map[int]bool // output_index → argument bytes were streamed
	ntools  int
	started bool
}

// wholeArgs emits the arguments of the call at output_index oi when none
// were streamed as deltas (some hosts send them only in .done events).
func (d *responsesStreamDecoder) wholeArgs(oi int, args string, emit func(Event)) {
	idx, ok := d.tools[oi]
	if !ok || d.args[oi] || args == "" {
		return
	}
	d.args[oi] = true
	emit(Event{Kind: EvToolArgs, Index: idx, Text: args})
}

func (d *responsesStreamDecoder) event(name string, data []byte, emit func(Event)) {
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
	case "response.created":
		d.started = true
		emit(Event{Kind: EvStart, ID: root.Get("response.id").Str, Model: root.Get("response.model").Str})
	case "response.output_item.added":
		it := root.Get("item")
		if it.Get("type").Str == "function_call" {
			if d.tools == nil {
				d.tools, d.args = map[int]int{}, map[int]bool{}
			}
			idx := d.ntools
			d.ntools++
			d.tools[int(root.Get("output_index").Int())] = idx
			id := it.Get("call_id").Str
			if id == "" {
				id = NewID("call_")
			}
			emit(Event{Kind: EvToolStart, Index: idx, ID: id, Name: it.Get("name").Str})
			d.wholeArgs(int(root.Get("output_index").Int()), it.Get("arguments").Str, emit)
		}
	case "response.function_call_arguments.done":
		d.wholeArgs(int(root.Get("output_index").Int()), root.Get("arguments").Str, emit)
	case "response.output_item.done":
		if it := root.Get("item"); it.Get("type").Str == "function_call" {
			d.wholeArgs(int(root.Get("output_index").Int()), it.Get("arguments").Str, emit)
		}
	case "response.output_text.delta", "response.refusal.delta":
		if t := root.Get("delta").Str; t != "" {
			emit(Event{Kind: EvText, Text: t})
		}
	case "response.reasoning_summary_text.delta", "response.reasoning_text.delta":
		if t := root.Get("delta").Str; t != "" {
			emit(Event{Kind: EvThinking, Text: t})
		}
	case "response.function_call_arguments.delta":
		oi := int(root.Get("output_index").Int())
		if idx, ok := d.tools[oi]; ok {
			if t := root.Get("delta").Str; t != "" {
				d.args[oi] = true
				emit(Event{Kind: EvToolArgs, Index: idx, Text: t})
			}
		}
	case "response.completed", "response.incomplete":
		resp := root.Get("response")
		r, err := responsesFromObject(resp)
		stop := StopEnd
		var u Usage
		if err == nil {
			stop, u = r.Stop, r.Usage
		}
		if stop == StopEnd && d.ntools > 0 {
			stop = StopToolUse
		}
		emit(Event{Kind: EvFinish, Stop: stop, NativeStop: resp.Get("status").Str, Usage: u})
	case "response.failed":
		msg := root.Get("response.error.message").Str
		if msg == "" {
			msg = "the provider's response failed"
		}
		emit(Event{Kind: EvError, Text: msg, Status: 502})
	case "error":
		msg := root.Get("message").Str
		if msg == "" {
			msg = root.Get("error.message").Str
		}
		emit(Event{Kind: EvError, Text: msg, Status: statusFromErrorType(root.Get("code").Str + root.Get("error.type").Str)})
	}
}

func (d *responsesStreamDecoder) end(func(Event)) {}

// responsesItem is an output item the encoder has opened.
type responsesItem struct {
	kind   EventKind // EvText or EvToolStart
	index  int       // output_index
	id     string
	callID string
	name   string
	// toolIndex is the neutral index of a function call.
	toolIndex int
	text      strings.Builder // text or arguments so far
	open      bool
}

type responsesStreamEncoder struct {
	model   string
	created int64
	id      string
	seq     int
	started bool
	items   []*responsesItem
	tools   map[int]*responsesItem
}

func (e *responsesStreamEncoder) ev(out []byte, typ string, v map[string]any) []byte {
	v["type"] = typ
	v["sequence_number"] = e.seq
	e.seq++
	b, _ := json.Marshal(v)
	out = append(out, "event: "...)
	out = append(out, typ...)
	out = append(out, "\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}

func (e *responsesStreamEncoder) start(out []byte) []byte {
	if e.started {
		return out
	}
	e.started = true
	e.id = NewID("resp_")
	obj := responsesObject(e.id, e.model, e.created, "in_progress", nil, StopEnd, nil)
	out = e.ev(out, "response.created", map[string]any{"response": obj})
	return e.ev(out, "response.in_progress", map[string]any{"response": obj})
}

// itemJSON is the item as output_item.done and the final response show it.
func (it *responsesItem) itemJSON(status string) map[string]any {
	if it.kind == EvToolStart {
		return map[string]any{"id": it.id, "type": "function_call", "status": status, "call_id": it.callID, "name": it.name, "arguments": it.text.String()}
	}
	return responsesMessage(it.id, it.text.String(), status)
}

func (e *responsesStreamEncoder) closeItem(out []byte, it *responsesItem) []byte {
	if !it.open {
		return out
	}
	if it.kind == EvToolStart && it.text.Len() == 0 {
		// A call without arguments has the empty object, not "".
		out = e.encode(Event{Kind: EvToolArgs, Index: it.toolIndex, Text: "{}"}, out)
	}
	it.open = false
	if it.kind == EvToolStart {
		out = e.ev(out, "response.function_call_arguments.done", map[string]any{"item_id": it.id, "output_index": it.index, "name": it.name, "arguments": it.text.String()})
	} else {
		text := it.text.String()
		out = e.ev(out, "response.output_text.done", map[string]any{"item_id": it.id, "output_index": it.index, "content_index": 0, "text": text, "logprobs": []any{}})
		out = e.ev(out, "response.content_part.done", map[string]any{"item_id": it.id, "output_index": it.index, "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}})
	}
	return e.ev(out, "response.output_item.done", map[string]any{"output_index": it.index, "item": it.itemJSON("completed")})
}

func (e *responsesStreamEncoder) closeAll(out []byte) []byte {
	for _, it := range e.items {
		out = e.closeItem(out, it)
	}
	e.tools = nil
	return out
}

// closeText closes open message items; function calls stay open until
// the end so late argument fragments still reach them.
func (e *responsesStreamEncoder) closeText(out []byte) []byte {
	for _, it := range e.items {
		if it.kind != EvToolStart {
			out = e.closeItem(out, it)
		}
	}
	return out
}

func (e *responsesStreamEncoder) last() *responsesItem {
	if n := len(e.items); n > 0 && e.items[n-1].open {
		return e.items[n-1]
	}
	return nil
}

func (e *responsesStreamEncoder) encode(ev Event, out []byte) []byte {
	if ev.Kind != EvError {
		out = e.start(out)
	}
	switch ev.Kind {
	case EvText:
		it := e.last()
		if it == nil || it.kind != EvText {
			out = e.closeText(out)
			it = &responsesItem{kind: EvText, index: len(e.items), id: NewID("msg_"), open: true}
			e.items = append(e.items, it)
			out = e.ev(out, "response.output_item.added", map[string]any{"output_index": it.index,
				"item": map[string]any{"id": it.id, "type": "message", "status": "in_progress", "role": "assistant", "content": []any{}}})
			out = e.ev(out, "response.content_part.added", map[string]any{"item_id": it.id, "output_index": it.index, "content_index": 0,
				"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}, "logprobs": []any{}}})
		}
		it.text.WriteString(ev.Text)
		out = append(out, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":"...)
		out = appendInt(out, int64(e.seq))
		e.seq++
		out = append(out, `,"item_id":`...)
		out = AppendJSONString(out, it.id)
		out = append(out, `,"output_index":`...)
		out = appendInt(out, int64(it.index))
		out = append(out, `,"content_index":0,"delta":`...)
		out = AppendJSONString(out, ev.Text)
		out = append(out, ",\"logprobs\":[]}\n\n"...)
	case EvToolStart:
		out = e.closeText(out)
		it := &responsesItem{kind: EvToolStart, index: len(e.items), id: NewID("fc_"), callID: ev.ID, name: ev.Name, open: true, toolIndex: ev.Index}
		e.items = append(e.items, it)
		if e.tools == nil {
			e.tools = map[int]*responsesItem{}
		}
		e.tools[ev.Index] = it
		out = e.ev(out, "response.output_item.added", map[string]any{"output_index": it.index,
			"item": map[string]any{"id": it.id, "type": "function_call", "status": "in_progress", "call_id": it.callID, "name": it.name, "arguments": ""}})
	case EvToolArgs:
		if it, ok := e.tools[ev.Index]; ok && it.open {
			it.text.WriteString(ev.Text)
			out = append(out, "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"sequence_number\":"...)
			out = appendInt(out, int64(e.seq))
			e.seq++
			out = append(out, `,"item_id":`...)
			out = AppendJSONString(out, it.id)
			out = append(out, `,"output_index":`...)
			out = appendInt(out, int64(it.index))
			out = append(out, `,"delta":`...)
			out = AppendJSONString(out, ev.Text)
			out = append(out, "}\n\n"...)
		}
	case EvFinish:
		out = e.closeAll(out)
		output := make([]map[string]any, 0, len(e.items))
		tools := false
		for _, it := range e.items {
			output = append(output, it.itemJSON("completed"))
			tools = tools || it.kind == EvToolStart
		}
		stop := ev.Stop
		if stop == StopToolUse && !tools {
			stop = StopEnd
		}
		status := responsesStatus(stop)
		u := ev.Usage
		name := "response.completed"
		if status == "incomplete" {
			name = "response.incomplete"
		}
		out = e.ev(out, name, map[string]any{"response": responsesObject(e.id, e.model, e.created, status, output, stop, &u)})
	case EvError:
		out = e.ev(out, "error", map[string]any{"code": openAIType(ev.Status), "message": ev.Text, "param": nil})
		if e.started {
			obj := responsesObject(e.id, e.model, e.created, "failed", nil, StopEnd, nil)
			obj["error"] = map[string]any{"code": "server_error", "message": ev.Text}
			out = e.ev(out, "response.failed", map[string]any{"response": obj})
		}
	}
	return out
}
