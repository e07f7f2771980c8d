package dialects

import (
	"bytes"

	"github.com/tidwall/gjson"
)

// Gemini streams (streamGenerateContent?alt=sse): every SSE event is a
// whole GenerateContentResponse holding the new parts only, with no
// event names and no end marker. A functionCall arrives whole. The
// finishReason comes on the last chunk, which may follow the chunk of a
// function call, often with an empty text part. usageMetadata is on
// many chunks and cumulative: the last one counts.

type geminiStreamDecoder struct {
	started bool
	ntools  int
	finish  string // the last finishReason
	blocked string // promptFeedback.blockReason: the prompt was refused
	usage   Usage
}

// usageSoFar is the last (cumulative) usageMetadata seen.
func (d *geminiStreamDecoder) usageSoFar() (Usage, bool) { return d.usage, !d.usage.IsZero() }

func (d *geminiStreamDecoder) event(_ string, data []byte, emit func(Event)) {
	if !gjson.ValidBytes(data) {
		emit(Event{Kind: EvError, Text: "the provider sent a stream event that is not JSON", Status: 502})
		return
	}
	root := gjson.ParseBytes(data)
	if e := root.Get("error"); e.Exists() {
		msg := e.Get("message").Str
		if msg == "" {
			msg = e.Raw
		}
		emit(Event{Kind: EvError, Text: msg, Status: statusFromGemini(e)})
		return
	}
	if u, ok := geminiUsage(root.Get("usageMetadata")); ok {
		d.usage = u
	}
	if !d.started {
		d.started = true
		emit(Event{Kind: EvStart, ID: root.Get("responseId").Str, Model: root.Get("modelVersion").Str,
			Usage: Usage{Input: d.usage.Input, CachedInput: d.usage.CachedInput}})
	}
	c := root.Get("candidates.0")
	each(c.Get("content.parts"), func(_, p gjson.Result) bool {
		raw := gget(p, "thoughtSignature", "thought_signature").Str
		thought := p.Get("thought").Bool()
		sig, redacted := "", false
		if raw != "" {
			// A signature the gateway wrapped comes back as the original
			// (a stream a Gemini client received, read by CollectStream);
			// redacted thinking has no stream event and is dropped.
			sig, redacted = geminiNeutralSig(raw, thought)
		}
		if thought {
			if t := p.Get("text").Str; t != "" {
				emit(Event{Kind: EvThinking, Text: t})
			}
			if sig != "" && !redacted { // the thought part's own: after its text
				emit(Event{Kind: EvSignature, Text: sig})
			}
			return true
		}
		if sig != "" && !redacted { // another part's: just before it
			emit(Event{Kind: EvSignature, Text: sig})
		}
		if fc := gget(p, "functionCall", "function_call"); fc.IsObject() {
			idx := d.ntools
			d.ntools++
			id := fc.Get("id").Str
			if id == "" {
				id = NewID(geminiIDPrefix)
			}
			emit(Event{Kind: EvToolStart, Index: idx, ID: id, Name: fc.Get("name").Str})
			args := "{}"
			if a := fc.Get("args"); a.IsObject() {
				args = a.Raw
			}
			emit(Event{Kind: EvToolArgs, Index: idx, Text: args})
			return true
		}
		if t := p.Get("text"); t.Type == gjson.String && t.Str != "" {
			emit(Event{Kind: EvText, Text: t.Str})
		}
		return true
	})
	if f := c.Get("finishReason").Str; f != "" {
		d.finish = f
	}
	if b := root.Get("promptFeedback.blockReason").Str; b != "" {
		d.blocked = b
	}
}

// end: the stream has no end marker, so the answer is complete when the
// body ends after a finishReason (or a blocked prompt); without one it
// was cut short.
func (d *geminiStreamDecoder) end(emit func(Event)) {
	switch {
	case d.finish != "":
		stop := stopFromGemini(d.finish)
		if stop == StopEnd && d.ntools > 0 {
			stop = StopToolUse
		}
		emit(Event{Kind: EvFinish, Stop: stop, NativeStop: d.finish, Usage: d.usage})
	case d.blocked != "":
		emit(Event{Kind: EvFinish, Stop: StopContentFilter, NativeStop: d.blocked, Usage: d.usage})
	default:
		emit(Event{Kind: EvError, Text: "the provider's stream ended without a finish reason", Status: 502})
	}
}

// geminiCall is a function call the encoder holds until its arguments
// are complete: Gemini clients get calls whole, args as an object.
type geminiCall struct {
	index    int
	id, name string
	args     []byte
}

type geminiStreamEncoder struct {
	model   string
	id      string
	started bool
	tail    []byte       // every chunk's end after its candidates
	next    string       // a Gemini signature owed to the next part
	calls   []geminiCall // held whole (bounded by the translator: maxToolArgs)
	sent    int          // function calls sent
}

const (
	geminiChunkPrefix = `data: {"candidates":[{"content":{"parts":[`
	geminiPartsEnd    = `],"role":"model"},"index":0}]`
)

func (e *geminiStreamEncoder) start(id string) {
	if e.started {
		return
	}
	e.started = true
	e.id = id
	if e.id == "" {
		e.id = NewID("")
	}
	s := append([]byte(nil), `,"modelVersion":`...)
	s = AppendJSONString(s, e.model)
	s = append(s, `,"responseId":`...)
	s = AppendJSONString(s, e.id)
	e.tail = append(s, "}\r\n\r\n"...)
}

// part appends one part: text (thought or not), its signature.
func (e *geminiStreamEncoder) part(out []byte, text string, thought bool, sig string) []byte {
	out = append(out, `{"text":`...)
	out = AppendJSONString(out, text)
	if thought {
		out = append(out, `,"thought":true`...)
	}
	if sig != "" {
		out = append(out, `,"thoughtSignature":`...)
		out = AppendJSONString(out, sig)
	}
	return append(out, '}')
}

// chunk appends a chunk of one text part.
func (e *geminiStreamEncoder) chunk(out []byte, text string, thought bool, sig string) []byte {
	out = append(out, geminiChunkPrefix...)
	out = e.part(out, text, thought, sig)
	out = append(out, geminiPartsEnd...)
	return append(out, e.tail...)
}

// takeNext returns the signature owed to the next part, and clears it.
func (e *geminiStreamEncoder) takeNext() string {
	s := e.next
	e.next = ""
	return s
}

// flushCalls sends the held calls, in one chunk as Gemini sends
// parallel calls; all says whether calls with arguments still
// incomplete go too (at the end) or wait.
func (e *geminiStreamEncoder) flushCalls(out []byte, all bool) []byte {
	if len(e.calls) == 0 {
		return out
	}
	if !all {
		for _, c := range e.calls {
			if !gjson.ValidBytes(c.args) {
				return out // arguments still arriving (they may interleave with text)
			}
		}
	}
	out = append(out, geminiChunkPrefix...)
	for i, c := range e.calls {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"functionCall":{`...)
		if c.id != "" {
			out = append(out, `"id":`...)
			out = AppendJSONString(out, c.id)
			out = append(out, ',')
		}
		out = append(out, `"name":`...)
		out = AppendJSONString(out, c.name)
		out = append(out, `,"args":`...)
		out = appendCompact(out, string(geminiObjectOr(string(c.args))))
		out = append(out, '}')
		if sig := e.takeNext(); sig != "" {
			out = append(out, `,"thoughtSignature":`...)
			out = AppendJSONString(out, sig)
		}
		out = append(out, '}')
	}
	e.sent += len(e.calls)
	e.calls = e.calls[:0]
	out = append(out, geminiPartsEnd...)
	return append(out, e.tail...)
}

func (e *geminiStreamEncoder) encode(ev Event, out []byte) []byte {
	if ev.Kind != EvError {
		e.start(ev.ID)
	}
	switch ev.Kind {
	case EvText:
		out = e.flushCalls(out, false)
		out = e.chunk(out, ev.Text, false, e.takeNext())
	case EvThinking:
		out = e.flushCalls(out, false)
		out = e.chunk(out, ev.Text, true, "")
	case EvSignature:
		// Calls already complete go first: the signature belongs to
		// what follows them.
		out = e.flushCalls(out, false)
		own, next, gemini := splitGeminiSig(ev.Text)
		switch {
		case !gemini:
			// Another provider's signature (Anthropic's, on the thinking
			// block just streamed): wrapped, on an empty thought part,
			// for the client to hand back.
			out = e.chunk(out, "", true, geminiWrap(geminiWrapSig, ev.Text))
		default:
			if own != "" {
				out = e.chunk(out, "", true, own)
			}
			if next != "" {
				if e.next != "" {
					out = e.chunk(out, "", false, e.takeNext())
				}
				e.next = next
			}
		}
	case EvToolStart:
		e.calls = append(e.calls, geminiCall{index: ev.Index, id: ev.ID, name: ev.Name})
	case EvToolArgs:
		for i := range e.calls {
			if e.calls[i].index == ev.Index {
				e.calls[i].args = append(e.calls[i].args, ev.Text...)
				break
			}
		}
	case EvFinish:
		out = e.flushCalls(out, true)
		stop := ev.Stop
		if stop == StopToolUse && e.sent == 0 {
			stop = StopEnd
		}
		out = append(out, geminiChunkPrefix...)
		out = e.part(out, "", false, e.takeNext())
		out = append(out, `],"role":"model"},"finishReason":`...)
		out = AppendJSONString(out, geminiFinish(stop, ev.NativeStop))
		out = append(out, `,"index":0}],"usageMetadata":`...)
		out = appendGeminiUsage(out, ev.Usage)
		out = append(out, e.tail...)
	case EvError:
		out = append(out, "data: "...)
		out = append(out, geminiErrorBody(&Error{Status: geminiErrStatus(ev.Status), Message: ev.Text})...)
		out = append(out, "\r\n\r\n"...)
	}
	return out
}

func geminiErrStatus(s int) int {
	if s == 0 {
		return 502
	}
	return s
}

func appendGeminiUsage(out []byte, u Usage) []byte {
	out = append(out, `{"promptTokenCount":`...)
	out = appendInt(out, int64(u.Input))
	out = append(out, `,"candidatesTokenCount":`...)
	out = appendInt(out, int64(max(u.Output-u.Reasoning, 0)))
	if u.Reasoning > 0 {
		out = append(out, `,"thoughtsTokenCount":`...)
		out = appendInt(out, int64(u.Reasoning))
	}
	if u.CachedInput > 0 {
		out = append(out, `,"cachedContentTokenCount":`...)
		out = appendInt(out, int64(u.CachedInput))
	}
	out = append(out, `,"totalTokenCount":`...)
	out = appendInt(out, int64(u.Input+u.Output))
	return append(out, '}')
}

// geminiChunkEnds reports whether a Gemini stream chunk ends the answer:
// it has a finishReason, a blocked prompt, or an error.
func geminiChunkEnds(data []byte) bool {
	if !bytes.Contains(data, []byte(`"finishReason"`)) && !bytes.Contains(data, []byte(`"error"`)) &&
		!bytes.Contains(data, []byte(`"blockReason"`)) {
		return false
	}
	root := gjson.ParseBytes(data)
	return root.Get("candidates.0.finishReason").Str != "" || root.Get("error").Exists() ||
		root.Get("promptFeedback.blockReason").Str != ""
}
