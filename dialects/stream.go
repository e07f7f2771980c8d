package dialects

import (
	"bytes"
	"errors"
	"fmt"
)

// EventKind is the kind of a neutral stream event.
type EventKind uint8

// The neutral stream events.
const (
	// EvStart opens the answer (ID, Model; Usage when the provider
	// reports input tokens up front).
	EvStart EventKind = iota + 1
	// EvText, EvThinking and EvSignature carry a Text fragment.
	EvText
	EvThinking
	EvSignature
	// EvToolStart opens tool call Index (ID, Name); EvToolArgs carries a
	// fragment of its arguments in Text.
	EvToolStart
	EvToolArgs
	// EvFinish ends the answer (Stop, NativeStop, Usage).
	EvFinish
	// EvError ends the answer with an error (Text; Status when known).
	EvError
)

// Event is one neutral stream event.
type Event struct {
	Kind       EventKind
	Text       string
	Index      int
	ID, Name   string
	Model      string
	Stop       StopReason
	NativeStop string
	Usage      Usage
	Status     int
}

// streamDecoder turns one upstream dialect's events into neutral ones.
type streamDecoder interface {
	// event handles one SSE event (name may be "") or NDJSON line.
	event(name string, data []byte, emit func(Event))
	// end is called when the upstream body ends.
	end(emit func(Event))
}

// streamEncoder renders neutral events in a client's dialect.
type streamEncoder interface {
	encode(e Event, out []byte) []byte
}

// StreamOptions configure a StreamTranslator.
type StreamOptions struct {
	// Model is the model name shown to the client.
	Model string
	// IncludeUsage: the OpenAI client asked for a usage chunk.
	IncludeUsage bool
	// Created is the OpenAI "created" timestamp.
	Created int64
}

// StreamTranslator translates a stream from one dialect to another as
// the bytes arrive, event by event: whatever upstream bytes complete an
// event are translated and returned at once, nothing is held back
// longer than it takes an event to be complete.
type StreamTranslator struct {
	args   int // tool-call argument bytes so far
	parser frameParser
	dec    streamDecoder
	enc    streamEncoder
	out    []byte
	usage  Usage
	seen   bool
	done   bool
	watch  startWatch
}

// ErrUnsupportedStream is returned for dialect pairs with no translation.
var ErrUnsupportedStream = errors.New("no stream translation between these dialects")

// NewStreamTranslator returns a translator from an upstream dialect to a
// client dialect.
func NewStreamTranslator(from, to Dialect, o StreamOptions) (*StreamTranslator, error) {
	t := &StreamTranslator{}
	var err error
	var ndjson bool
	if t.dec, ndjson, err = newStreamDecoder(from); err != nil {
		return nil, err
	}
	t.parser = newFrameParser(t.dec, ndjson)
	t.enc, err = newStreamEncoder(to, o)
	return t, err
}

// newStreamDecoder returns the stream decoder of a dialect, and whether
// its stream is NDJSON rather than SSE.
func newStreamDecoder(from Dialect) (streamDecoder, bool, error) {
	switch from {
	case OpenAI:
		return &openAIStreamDecoder{}, false, nil
	case Anthropic:
		return &anthropicStreamDecoder{}, false, nil
	case Ollama:
		return &ollamaStreamDecoder{}, true, nil
	case Responses:
		return &responsesStreamDecoder{}, false, nil
	case Gemini:
		return &geminiStreamDecoder{}, false, nil
	case Bedrock:
		return &bedrockStreamDecoder{}, false, nil // eventstream: see newFrameParser
	}
	return nil, false, ErrUnsupportedStream
}

// eventStreamFramed is implemented by the decoders of dialects whose
// streams are binary AWS eventstream frames (Bedrock), not text.
type eventStreamFramed interface{ eventStreamFramed() }

// newFrameParser returns the parser that splits dec's upstream stream
// into events: eventstream frames, NDJSON lines or SSE events.
func newFrameParser(dec streamDecoder, ndjson bool) frameParser {
	if _, ok := dec.(eventStreamFramed); ok {
		return frameParser{es: &EventStreamReader{}}
	}
	return frameParser{ndjson: ndjson}
}

// newStreamEncoder returns the stream encoder of a client dialect.
func newStreamEncoder(to Dialect, o StreamOptions) (streamEncoder, error) {
	switch to {
	case OpenAI:
		return &openAIStreamEncoder{model: o.Model, includeUsage: o.IncludeUsage, created: o.Created}, nil
	case Anthropic:
		return &anthropicStreamEncoder{model: o.Model}, nil
	case Ollama:
		return &ollamaStreamEncoder{model: o.Model}, nil
	case Responses:
		return &responsesStreamEncoder{model: o.Model, created: o.Created}, nil
	case Gemini:
		return &geminiStreamEncoder{model: o.Model}, nil
	case Bedrock:
		return &bedrockStreamEncoder{}, nil
	}
	return nil, ErrUnsupportedStream
}

// StreamContentType is the Content-Type of a stream in dialect d:
// application/x-ndjson for Ollama, application/vnd.amazon.eventstream for
// Bedrock, text/event-stream for the SSE dialects.
func StreamContentType(d Dialect) string {
	switch d {
	case Ollama:
		return "application/x-ndjson"
	case Bedrock:
		return "application/vnd.amazon.eventstream"
	}
	return "text/event-stream"
}

func (t *StreamTranslator) emit(e Event) {
	if t.done {
		return
	}
	if e.Kind == EvToolArgs {
		// Encoders that send whole tool calls (Ollama, Gemini) hold the
		// arguments: bound them here, for every encoder, so that an
		// oversized call ends the stream with an error and nothing
		// after it looks like a clean end.
		if t.args += len(e.Text); t.args > maxToolArgs {
			e = Event{Kind: EvError, Status: 502,
				Text: fmt.Sprintf("the provider's tool call arguments are larger than the gateway holds (%d MiB)", maxToolArgs>>20)}
		}
	}
	t.watch.see(e)
	switch e.Kind {
	case EvStart:
		if !e.Usage.IsZero() {
			t.usage, t.seen = e.Usage, true
		}
	case EvFinish:
		if !e.Usage.IsZero() {
			t.usage, t.seen = e.Usage, true
		}
		t.done = true
	case EvError:
		t.lastUsage()
		t.done = true
	}
	t.out = t.enc.encode(e, t.out)
}

// maxToolArgs bounds the tool-call arguments of one translated stream.
const maxToolArgs = 16 << 20

// usageKeeper is a decoder that knows the usage reported so far before
// its stream finished (Gemini's cumulative usageMetadata).
type usageKeeper interface{ usageSoFar() (Usage, bool) }

// lastUsage takes the usage a stream that ends in an error had reported
// so far, when no finish brought it: the provider bills what it sent.
func (t *StreamTranslator) lastUsage() {
	if k, ok := t.dec.(usageKeeper); ok {
		if u, ok := k.usageSoFar(); ok && (!t.seen || u.Output > t.usage.Output) {
			t.usage, t.seen = u, true
		}
	}
}

// Write takes upstream bytes and returns the client bytes they complete.
// The returned slice is valid until the next call.
func (t *StreamTranslator) Write(p []byte) []byte {
	t.out = t.out[:0]
	t.parser.feed(p, func(name string, data []byte) {
		if !t.done {
			t.dec.event(name, data, t.emit)
		}
	}, func(err error) {
		t.emit(Event{Kind: EvError, Text: err.Error(), Status: 502})
	})
	return t.out
}

// Close is called when the upstream body ends. A stream that ended
// without its end event becomes an error event in the client's dialect,
// never a clean-looking end.
func (t *StreamTranslator) Close() []byte {
	t.out = t.out[:0]
	t.parser.flush(func(name string, data []byte) {
		if !t.done {
			t.dec.event(name, data, t.emit)
		}
	})
	if !t.done {
		t.dec.end(t.emit)
	}
	if !t.done {
		t.emit(Event{Kind: EvError, Text: "the provider's stream ended before the answer was complete", Status: 502})
	}
	return t.out
}

// Abort ends the client's stream with an error, e.g. when reading the
// upstream failed.
func (t *StreamTranslator) Abort(msg string) []byte {
	t.out = t.out[:0]
	if !t.done {
		t.emit(Event{Kind: EvError, Text: msg, Status: 502})
	}
	return t.out
}

// Usage returns the usage the upstream reported.
func (t *StreamTranslator) Usage() (Usage, bool) { return t.usage, t.seen }

// maxFrame bounds one SSE event, NDJSON line or eventstream frame.
const maxFrame = 8 << 20

// frameParser splits a byte stream into SSE events (by the SSE spec: LF,
// CRLF or CR line ends, "event:" and "data:" fields, multi-line data
// joined with LF, comments ignored), NDJSON lines, or (es set) AWS
// eventstream frames, each named as EventStreamMessage.Name says.
type frameParser struct {
	es     *EventStreamReader
	ndjson bool
	line   []byte
	name   []byte
	// lastName is name as a string, kept while events repeat it (most
	// do), so that a stream does not allocate its event name each time.
	lastName string
	data     []byte
	hasData  bool
	cr       bool // last byte was CR: skip a following LF
	over     bool
	// halt stops feed at the next line end (a StreamProbe that has
	// decided reads no further).
	halt bool
}

func (f *frameParser) feed(p []byte, event func(name string, data []byte), fail func(error)) {
	if f.es != nil {
		// A broken frame ends the stream: fail is called once.
		if f.es.err == nil {
			if err := f.es.Feed(p, func(m EventStreamMessage) { event(m.Name(), m.data()) }); err != nil {
				fail(err)
			}
		}
		return
	}
	for len(p) > 0 {
		if f.cr {
			f.cr = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			f.appendLine(p, fail)
			return
		}
		f.appendLine(p[:i], fail)
		if p[i] == '\r' {
			f.cr = true
		}
		p = p[i+1:]
		f.endLine(event)
		if f.halt {
			return
		}
	}
}

func (f *frameParser) appendLine(p []byte, fail func(error)) {
	if f.over {
		return
	}
	if len(f.line)+len(f.data)+len(p) > maxFrame {
		f.over = true
		f.line = f.line[:0]
		fail(fmt.Errorf("a stream event from the provider is larger than %d bytes", maxFrame))
		return
	}
	f.line = append(f.line, p...)
}

func (f *frameParser) endLine(event func(name string, data []byte)) {
	line := f.line
	f.line = f.line[:0]
	if f.over {
		f.over = false
		return
	}
	if f.ndjson {
		if len(bytes.TrimSpace(line)) > 0 {
			event("", line)
		}
		return
	}
	if len(line) == 0 {
		if f.hasData {
			event(f.nameString(), f.data)
		}
		f.name, f.data, f.hasData = f.name[:0], f.data[:0], false
		return
	}
	if line[0] == ':' {
		return
	}
	field, value, _ := bytes.Cut(line, []byte(":"))
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(field) {
	case "event":
		f.name = append(f.name[:0], value...)
	case "data":
		if f.hasData {
			f.data = append(f.data, '\n')
		}
		f.data = append(f.data, value...)
		f.hasData = true
	}
}

// nameString is the current event's name as a string.
func (f *frameParser) nameString() string {
	if string(f.name) != f.lastName { // compared without a copy
		f.lastName = string(f.name)
	}
	return f.lastName
}

// flush delivers a last event or line not followed by its terminator
// (an eventstream frame is whole or nothing).
func (f *frameParser) flush(event func(name string, data []byte)) {
	if f.es != nil {
		return
	}
	if len(f.line) > 0 {
		f.endLine(event)
	}
	if !f.ndjson && f.hasData {
		event(f.nameString(), f.data)
		f.name, f.data, f.hasData = f.name[:0], f.data[:0], false
	}
}

// ResponseStream renders a complete answer as a stream in dialect to, for
// a client that asked for a stream and got a whole answer (a provider
// that ignored the stream flag, or a cached answer).
func ResponseStream(to Dialect, r *ChatResponse, o StreamOptions) ([]byte, error) {
	enc, err := newStreamEncoder(to, o)
	if err != nil {
		return nil, err
	}
	t := &StreamTranslator{enc: enc}
	t.emit(Event{Kind: EvStart, ID: r.ID, Model: r.Model, Usage: Usage{Input: r.Usage.Input, CachedInput: r.Usage.CachedInput, CacheWrite: r.Usage.CacheWrite}})
	tool := 0
	for _, p := range r.Parts {
		switch p.Type {
		case PartText:
			if p.Text != "" {
				t.emit(Event{Kind: EvText, Text: p.Text})
			}
		case PartThinking:
			if p.Text != "" {
				t.emit(Event{Kind: EvThinking, Text: p.Text})
			}
			if p.Signature != "" {
				t.emit(Event{Kind: EvSignature, Text: p.Signature})
			}
		case PartToolCall:
			t.emit(Event{Kind: EvToolStart, Index: tool, ID: p.ID, Name: p.Name})
			t.emit(Event{Kind: EvToolArgs, Index: tool, Text: p.Args})
			tool++
		}
	}
	t.emit(Event{Kind: EvFinish, Stop: r.Stop, NativeStop: r.NativeStop, Usage: r.Usage})
	return t.out, nil
}

// StreamEnded reports whether one stream event (an SSE event's name and
// data, an NDJSON line, or an eventstream frame's Name and payload) is
// the event that ends a complete answer in dialect d: OpenAI's [DONE],
// Anthropic's message_stop, Responses' response.completed or .incomplete
// (or .failed, which ends it with an error already), Ollama's
// "done":true line, Gemini's chunk with a finishReason (or an error),
// Bedrock's metadata event or an exception. The
// pass-through path uses it to tell a finished stream from one cut short.
func StreamEnded(d Dialect, name, data []byte) bool {
	switch d {
	case OpenAI:
		return bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]"))
	case Anthropic:
		return string(name) == "message_stop" || string(name) == "error" ||
			bytes.Contains(data, []byte(`"type":"message_stop"`)) || bytes.Contains(data, []byte(`"type":"error"`))
	case Responses:
		n := string(name) // no allocation: compared only
		return n == "response.completed" || n == "response.incomplete" || n == "response.failed"
	case Ollama:
		return bytes.Contains(data, []byte(`"done":true`)) || bytes.HasPrefix(bytes.TrimSpace(data), []byte(`{"error"`))
	case Gemini:
		// No end marker: the chunk with the finishReason ends it.
		return geminiChunkEnds(data)
	case Bedrock:
		// name is EventStreamMessage.Name: usage (metadata) follows
		// messageStop, so metadata or an exception ends the answer.
		return string(name) == "metadata" || bytes.HasPrefix(name, []byte("exception:")) || bytes.HasPrefix(name, []byte("error:"))
	}
	return true
}

// StreamError renders an error event in dialect d that ends a stream the
// client has partly received (seq: the number of events it has had, for
// Responses' sequence numbers).
func StreamError(d Dialect, msg string, status, seq int) []byte {
	var enc streamEncoder
	switch d {
	case OpenAI:
		enc = &openAIStreamEncoder{}
	case Anthropic:
		enc = &anthropicStreamEncoder{}
	case Responses:
		enc = &responsesStreamEncoder{started: true, seq: seq, id: NewID("resp_")}
	case Ollama:
		enc = &ollamaStreamEncoder{}
	case Gemini:
		enc = &geminiStreamEncoder{}
	case Bedrock:
		enc = &bedrockStreamEncoder{}
	default:
		return nil
	}
	return enc.encode(Event{Kind: EvError, Text: msg, Status: status}, nil)
}
