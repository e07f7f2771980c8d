package dialects

import (
	"bytes"
	"net/http"
	"strconv"

	"github.com/tidwall/gjson"
)

// StreamStart is what the first events of a provider's stream showed:
// whether the answer has begun, or failed before any of it could reach a
// client. A gateway that holds a stream back until it has begun can
// still give a failed one to another provider (a 200 stream whose first
// event is Anthropic's overloaded_error is the common case).
type StreamStart uint8

// The states of a stream's start.
const (
	// StreamPending: nothing but preamble so far (Anthropic's
	// message_start, ping and empty content_block_start, Responses'
	// response.created, Bedrock's messageStart, OpenAI's role-only
	// chunk), or no whole event yet.
	StreamPending StreamStart = iota
	// StreamBegun: content (text, thinking, a tool call) or the answer's
	// finish has arrived.
	StreamBegun
	// StreamFailed: the stream failed before any content: an error
	// event, an event that could not be read, or an end without content.
	StreamFailed
)

// startWatch follows the neutral events of a stream until its start is
// decided.
type startWatch struct {
	start  StreamStart
	status int
	msg    string
}

func (w *startWatch) see(e Event) {
	if w.start != StreamPending {
		return
	}
	switch e.Kind {
	case EvStart:
	case EvError:
		w.start, w.status, w.msg = StreamFailed, e.Status, e.Text
	default:
		w.start = StreamBegun
	}
}

// failed returns the failure of a stream that failed before its content,
// restated for a client of dialect client the way UpstreamError restates
// an error answer (Anthropic's 529 becomes 503 for the other dialects,
// and a refusal of the gateway's credentials keeps the provider's words
// out), and the status as the provider meant it.
func (w *startWatch) failed(client Dialect) (*Error, int) {
	if w.start != StreamFailed {
		return nil, 0
	}
	status, msg := w.status, w.msg
	if status < 400 {
		status = http.StatusBadGateway
	}
	provider := status
	if msg == "" {
		msg = "the provider's stream failed before the answer began"
	}
	if status == 529 && client != Anthropic {
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return &Error{Status: http.StatusBadGateway, Message: "the provider refused the gateway's credentials (status " + strconv.Itoa(status) + ")"}, provider
	}
	return &Error{Status: status, Message: "provider error: " + msg}, provider
}

// Start reports whether the translated stream has begun: see
// StreamStart.
func (t *StreamTranslator) Start() StreamStart { return t.watch.start }

// StartError is the error of a stream that failed before its content
// began (Start is StreamFailed), restated for client, and the provider's
// own status for it; nil otherwise.
func (t *StreamTranslator) StartError(client Dialect) (*Error, int) { return t.watch.failed(client) }

// StreamProbe reads the first events of a provider's stream that passes
// through untranslated, to tell when its answer has begun or that it
// failed first. It decodes only until the start is decided; feeding it
// after that costs nothing.
type StreamProbe struct {
	parser frameParser
	dec    streamDecoder
	watch  startWatch
}

// NewStreamProbe returns a probe for a stream in dialect d.
func NewStreamProbe(d Dialect) (*StreamProbe, error) {
	dec, ndjson, err := newStreamDecoder(d)
	if err != nil {
		return nil, err
	}
	return &StreamProbe{dec: dec, parser: newFrameParser(dec, ndjson)}, nil
}

// Feed reads the next bytes of the stream and reports the start so far.
func (p *StreamProbe) Feed(b []byte) StreamStart {
	if p.watch.start != StreamPending {
		return p.watch.start
	}
	p.parser.feed(b, func(name string, data []byte) {
		if p.watch.start == StreamPending {
			p.event(name, data)
			p.parser.halt = p.watch.start != StreamPending
		}
	}, func(err error) {
		p.watch.see(Event{Kind: EvError, Text: err.Error(), Status: http.StatusBadGateway})
	})
	return p.watch.start
}

// event reads one event. One that is not JSON (nor OpenAI's [DONE]) is
// something the probe cannot judge, such as a provider's own keep-alive
// data: the stream passes through as it came, as it would without the
// probe, and its client judges it (translation, which must read it,
// fails it instead).
func (p *StreamProbe) event(name string, data []byte) {
	if !gjson.ValidBytes(data) && !bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]")) {
		p.watch.start = StreamBegun
		return
	}
	p.dec.event(name, data, p.watch.see)
}

// Close is called when the stream ends: a stream that ends before its
// answer began has failed.
func (p *StreamProbe) Close() StreamStart {
	if p.watch.start == StreamPending {
		p.parser.flush(func(name string, data []byte) {
			if p.watch.start == StreamPending {
				p.event(name, data)
			}
		})
	}
	if p.watch.start == StreamPending {
		p.dec.end(p.watch.see)
	}
	if p.watch.start == StreamPending {
		p.watch.see(Event{Kind: EvError, Text: "the provider's stream ended before the answer began", Status: http.StatusBadGateway})
	}
	return p.watch.start
}

// Err is the error of a stream that failed before its content began,
// restated for client, and the provider's own status for it; nil when it
// has not failed.
func (p *StreamProbe) Err(client Dialect) (*Error, int) { return p.watch.failed(client) }
