package dialects

import (
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// ConverseStream: binary eventstream frames (see eventstream.go) whose
// payloads are the members of ConverseStreamOutput: messageStart,
// contentBlockStart (tool use only; text and reasoning blocks start with
// their first delta), contentBlockDelta, contentBlockStop, messageStop
// (the stop reason) and then metadata (usage and metrics). Exceptions are
// frames of their own. The decoder gets each frame by the name
// EventStreamMessage.Name gives it: the event type, or
// "exception:<type>" / "error:<code>".

type bedrockStreamDecoder struct {
	started  bool
	tools    map[int]int // contentBlockIndex → tool index
	ntools   int
	stop     string
	stopped  bool // messageStop seen
	meta     bool // metadata seen
	usage    Usage
	finished bool
}

// eventStreamFramed marks the decoder's upstream as eventstream frames.
func (*bedrockStreamDecoder) eventStreamFramed() {}

func (d *bedrockStreamDecoder) start(emit func(Event)) {
	if !d.started {
		d.started = true
		emit(Event{Kind: EvStart})
	}
}

func (d *bedrockStreamDecoder) event(name string, data []byte, emit func(Event)) {
	if typ, ok := strings.CutPrefix(name, "exception:"); ok {
		d.exception(typ, data, emit)
		return
	}
	if code, ok := strings.CutPrefix(name, "error:"); ok {
		d.exception(code, data, emit)
		return
	}
	if !gjson.ValidBytes(data) {
		emit(Event{Kind: EvError, Text: "the provider sent a stream event that is not JSON", Status: 502})
		return
	}
	root := gjson.ParseBytes(data)
	switch name {
	case "messageStart":
		d.start(emit)
	case "contentBlockStart":
		d.start(emit)
		if tu := root.Get("start.toolUse"); tu.IsObject() {
			if d.tools == nil {
				d.tools = map[int]int{}
			}
			idx := d.ntools
			d.ntools++
			d.tools[int(root.Get("contentBlockIndex").Int())] = idx
			id := tu.Get("toolUseId").Str
			if id == "" {
				id = NewID("tooluse_")
			}
			emit(Event{Kind: EvToolStart, Index: idx, ID: id, Name: tu.Get("name").Str})
		}
	case "contentBlockDelta":
		d.start(emit)
		delta := root.Get("delta")
		if t := delta.Get("text"); t.Type == gjson.String {
			if t.Str != "" {
				emit(Event{Kind: EvText, Text: t.Str})
			}
			return
		}
		if in := delta.Get("toolUse.input"); in.Type == gjson.String {
			if idx, ok := d.tools[int(root.Get("contentBlockIndex").Int())]; ok && in.Str != "" {
				emit(Event{Kind: EvToolArgs, Index: idx, Text: in.Str})
			}
			return
		}
		rc := delta.Get("reasoningContent")
		if t := rc.Get("text").Str; t != "" {
			emit(Event{Kind: EvThinking, Text: t})
		}
		if s := rc.Get("signature").Str; s != "" {
			emit(Event{Kind: EvSignature, Text: s})
		}
		// redactedContent deltas are dropped: the neutral stream has no
		// redacted-thinking event (Anthropic's redacted_thinking blocks
		// are dropped the same way).
	case "messageStop":
		d.stop, d.stopped = root.Get("stopReason").Str, true
		if d.meta {
			d.finish(emit)
		}
	case "metadata":
		d.usage, _ = bedrockUsage(root.Get("usage"))
		d.meta = true
		// Usage comes after messageStop; one that came first waits for it.
		if d.stopped {
			d.finish(emit)
		}
	}
}

// exception turns an exception or error frame into an error event:
// {"message":...}, with the model's own status and message when Bedrock
// relays them (modelStreamErrorException).
func (d *bedrockStreamDecoder) exception(typ string, data []byte, emit func(Event)) {
	msg := strings.TrimSpace(string(data))
	if gjson.ValidBytes(data) {
		root := gjson.ParseBytes(data)
		msg = root.Get("message").Str
		if msg == "" {
			msg = root.Get("Message").Str
		}
		if om := root.Get("originalMessage").Str; om != "" || root.Get("originalStatusCode").Exists() {
			msg += " (the model answered"
			if sc := root.Get("originalStatusCode"); sc.Exists() {
				msg += " with status " + sc.String()
			}
			if om != "" {
				msg += ": " + om
			}
			msg += ")"
		}
	}
	text := typ
	if msg != "" {
		text += ": " + msg
	}
	emit(Event{Kind: EvError, Text: text, Status: statusFromBedrockException(typ, 502)})
}

func (d *bedrockStreamDecoder) finish(emit func(Event)) {
	if d.finished {
		return
	}
	d.finished = true
	stop := stopFromBedrock(d.stop)
	if stop == StopToolUse && d.ntools == 0 {
		stop = StopEnd
	}
	emit(Event{Kind: EvFinish, Stop: stop, NativeStop: d.stop, Usage: d.usage})
}

// end is reached when the body ends before the metadata event. Bedrock
// always sends it after messageStop: a stream without it was cut (maybe
// inside the metadata frame), and its usage, which the ledger needs, is
// lost. As on the pass-through path, that is an error, not a clean end.
func (d *bedrockStreamDecoder) end(emit func(Event)) {
	if d.stopped && !d.finished {
		emit(Event{Kind: EvError, Status: http.StatusBadGateway,
			Text: "the provider's stream ended after messageStop without its metadata (usage)"})
	}
}

// bedrockMaxDelta bounds the text of one delta frame, so a long answer
// replayed as a stream never makes a frame near the frame limit (JSON
// escaping can make text six times longer).
const bedrockMaxDelta = 1 << 20

// bedrockStreamEncoder renders neutral events as ConverseStream frames, in
// the order Bedrock sends them: messageStart; per block contentBlockStart
// (tool use only), contentBlockDelta..., contentBlockStop; messageStop;
// metadata. One block is open at a time, as in a real stream (consumers
// such as Strands track a single current block): a new block closes the
// previous one. Argument fragments for a tool call whose block was
// closed, when a provider interleaves them, still go out with that
// block's index.
type bedrockStreamEncoder struct {
	started bool
	next    int // index of the next block
	hasOpen bool
	open    int       // index of the open block
	kind    EventKind // EvText, EvThinking or EvToolStart
	signed  bool      // the open thinking block has had its signature
	tools   map[int]int
	ntools  int
	t0      time.Time
	buf     []byte
}

func (e *bedrockStreamEncoder) frame(out []byte, typ string, payload []byte) []byte {
	// Cannot fail: the header names and values are short constants.
	out, _ = AppendEventStreamEvent(out, typ, payload)
	return out
}

// blockPayload starts a payload naming content block i.
func (e *bedrockStreamEncoder) blockPayload(i int) []byte {
	b := append(e.buf[:0], `{"contentBlockIndex":`...)
	return appendInt(b, int64(i))
}

func (e *bedrockStreamEncoder) closeOpen(out []byte) []byte {
	if !e.hasOpen {
		return out
	}
	e.hasOpen = false
	e.buf = append(e.blockPayload(e.open), '}')
	return e.frame(out, "contentBlockStop", e.buf)
}

// openBlock closes the open block and opens one of kind k.
func (e *bedrockStreamEncoder) openBlock(out []byte, k EventKind) []byte {
	out = e.closeOpen(out)
	e.hasOpen, e.open, e.kind, e.signed = true, e.next, k, false
	e.next++
	return out
}

// delta writes a contentBlockDelta for block i: prefix, the text as a
// JSON string, suffix; long text goes in several frames.
func (e *bedrockStreamEncoder) delta(out []byte, i int, prefix, text, suffix string) []byte {
	for first := true; first || text != ""; first = false {
		chunk := text
		if len(chunk) > bedrockMaxDelta {
			cut := bedrockMaxDelta
			for cut > 0 && !utf8.RuneStart(chunk[cut]) {
				cut--
			}
			if cut == 0 { // not UTF-8: cut anywhere
				cut = bedrockMaxDelta
			}
			chunk = chunk[:cut]
		}
		text = text[len(chunk):]
		e.buf = append(e.blockPayload(i), prefix...)
		e.buf = AppendJSONString(e.buf, chunk)
		e.buf = append(e.buf, suffix...)
		out = e.frame(out, "contentBlockDelta", e.buf)
	}
	return out
}

func (e *bedrockStreamEncoder) encode(ev Event, out []byte) []byte {
	if ev.Kind != EvError && !e.started {
		e.started, e.t0 = true, now()
		out = e.frame(out, "messageStart", []byte(`{"role":"assistant"}`))
	}
	switch ev.Kind {
	case EvText:
		if !e.hasOpen || e.kind != EvText {
			out = e.openBlock(out, EvText)
		}
		out = e.delta(out, e.open, `,"delta":{"text":`, ev.Text, `}}`)
	case EvThinking, EvSignature:
		// Reasoning after a signature starts a new block.
		if !e.hasOpen || e.kind != EvThinking || e.signed && ev.Kind == EvThinking {
			out = e.openBlock(out, EvThinking)
		}
		if ev.Kind == EvThinking {
			out = e.delta(out, e.open, `,"delta":{"reasoningContent":{"text":`, ev.Text, `}}}`)
		} else {
			e.signed = true
			out = e.delta(out, e.open, `,"delta":{"reasoningContent":{"signature":`, ev.Text, `}}}`)
		}
	case EvToolStart:
		out = e.openBlock(out, EvToolStart)
		if e.tools == nil {
			e.tools = map[int]int{}
		}
		e.tools[ev.Index] = e.open
		e.ntools++
		e.buf = append(e.blockPayload(e.open), `,"start":{"toolUse":{"toolUseId":`...)
		e.buf = AppendJSONString(e.buf, ev.ID)
		e.buf = append(e.buf, `,"name":`...)
		e.buf = AppendJSONString(e.buf, ev.Name)
		e.buf = append(e.buf, "}}}"...)
		out = e.frame(out, "contentBlockStart", e.buf)
	case EvToolArgs:
		if i, ok := e.tools[ev.Index]; ok && ev.Text != "" {
			out = e.delta(out, i, `,"delta":{"toolUse":{"input":`, ev.Text, `}}}`)
		}
	case EvFinish:
		out = e.closeOpen(out)
		stop := ev.Stop
		if stop == StopToolUse && e.ntools == 0 {
			stop = StopEnd
		}
		e.buf = append(e.buf[:0], `{"stopReason":`...)
		e.buf = AppendJSONString(e.buf, bedrockStop(stop, ev.NativeStop))
		e.buf = append(e.buf, '}')
		out = e.frame(out, "messageStop", e.buf)
		e.buf = append(e.buf[:0], `{"usage":`...)
		e.buf = appendBedrockUsage(e.buf, ev.Usage)
		e.buf = append(e.buf, `,"metrics":{"latencyMs":`...)
		e.buf = appendInt(e.buf, now().Sub(e.t0).Milliseconds())
		e.buf = append(e.buf, "}}"...)
		out = e.frame(out, "metadata", e.buf)
	case EvError:
		e.buf = AppendJSONString(append(e.buf[:0], `{"message":`...), ev.Text)
		e.buf = append(e.buf, '}')
		// Cannot fail: the exception names are short constants.
		out, _ = AppendEventStreamException(out, bedrockStreamException(ev.Status), e.buf)
	}
	return out
}
