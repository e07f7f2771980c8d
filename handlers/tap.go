package handlers

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/llmgate/caddy-llmgate/dialects"
)

// Limits of what the tap keeps while it reads an answer going past.
const (
	// tapBodyLimit caps the copy of a non-streamed JSON answer kept to
	// read its usage; larger answers pass unread.
	tapBodyLimit = 8 << 20
	// tapLineLimit caps one stream line held while waiting for its end.
	tapLineLimit = 1 << 20
)

type bodyKind uint8

const (
	kindOther bodyKind = iota
	kindJSON
	kindSSE
	kindNDJSON
	kindEventStream // AWS eventstream (Bedrock's converse-stream)
)

// usageTap passes an upstream answer to the client and reads its token
// usage on the way: from the whole body of a JSON answer, or line by line
// from a stream. With strip set it also drops OpenAI's usage-only chunk,
// which the gateway asked for on its own account and the client did not.
type usageTap struct {
	*caddyhttp.ResponseWriterWrapper
	dialect dialects.Dialect
	strip   bool

	status      int
	wroteHeader bool
	kind        bodyKind
	body        []byte // JSON answers
	bodyOver    bool
	pending     []byte // stream: partial line
	lineOver    bool
	out         []byte // strip mode: what to write this time
	dropBlank   bool   // strip mode: drop the blank line after a dropped event
	stream      dialects.StreamUsage
	bodyUsage   dialects.Usage
	bodyUsageOK bool
	// Stream end detection: a stream that stops without its end event
	// gets an error event, never a clean-looking end.
	event  []byte // SSE: name of the current event
	events int    // SSE data events seen
	ended  bool
	// es splits a binary AWS eventstream into its messages.
	es       dialects.EventStreamReader
	esFailed bool
	// upstreamStatus, when set, receives the provider's own status.
	upstreamStatus *int
	// onHeaders, when set, is called when the provider's response
	// headers arrive (the first final WriteHeader).
	onHeaders func()
	// now, when set, holds a stream back until its answer has begun
	// (startHold), with now as the clock; probe reads its first events.
	now   func() time.Time
	start startHold
	probe *dialects.StreamProbe
}

// mediaType is the media type of a Content-Type value, lower-cased,
// without parameters: what mime.ParseMediaType returns for the cases the
// gateway tells apart, without the map it allocates on every answer.
func mediaType(v string) string {
	v, _, _ = strings.Cut(v, ";")
	v = strings.TrimSpace(v)
	for i := 0; i < len(v); i++ {
		if 'A' <= v[i] && v[i] <= 'Z' {
			return strings.ToLower(v)
		}
	}
	return v
}

// flush sends what the client's writer holds, without the allocation of
// an http.ResponseController when the writer flushes itself (Caddy's
// writers do).
func flush(w http.ResponseWriter) error {
	switch f := w.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.NewResponseController(w).Flush()
}

func newUsageTap(w http.ResponseWriter, d dialects.Dialect, strip bool) *usageTap {
	return &usageTap{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		dialect:               d,
		strip:                 strip,
		stream:                dialects.StreamUsage{Dialect: d},
	}
}

func (t *usageTap) WriteHeader(code int) {
	if t.wroteHeader || code < 200 {
		t.ResponseWriterWrapper.WriteHeader(code)
		return
	}
	t.wroteHeader, t.status = true, code
	if t.upstreamStatus != nil {
		*t.upstreamStatus = code
	}
	if t.onHeaders != nil {
		t.onHeaders()
	}
	ct := mediaType(t.Header().Get("Content-Type"))
	switch ct {
	case "text/event-stream":
		t.kind = kindSSE
	case "application/x-ndjson", "application/jsonl", "application/json-seq":
		t.kind = kindNDJSON
	case "application/vnd.amazon.eventstream":
		t.kind = kindEventStream
	case "application/json":
		t.kind = kindJSON
		if t.dialect == dialects.Ollama && t.Header().Get("Content-Length") == "" {
			// Ollama streams NDJSON but some versions label it JSON.
			t.kind = kindNDJSON
		}
	}
	if t.kind != kindSSE || code != http.StatusOK {
		t.strip = false
	}
	if t.strip {
		// Lines are dropped, so the upstream's length no longer holds.
		t.Header().Del("Content-Length")
	}
	if t.now != nil && code == http.StatusOK && (t.kind == kindSSE || t.kind == kindNDJSON || t.kind == kindEventStream) {
		if p, err := dialects.NewStreamProbe(t.dialect); err == nil {
			t.probe = p
			t.start.begin(t.ResponseWriterWrapper, code, t.now())
			return
		}
	}
	t.ResponseWriterWrapper.WriteHeader(code)
}

func (t *usageTap) Write(p []byte) (int, error) {
	if !t.wroteHeader {
		t.WriteHeader(http.StatusOK)
	}
	switch t.kind {
	case kindJSON:
		if !t.bodyOver {
			if len(t.body)+len(p) > tapBodyLimit {
				t.bodyOver, t.body = true, nil
			} else {
				t.body = append(t.body, p...)
			}
		}
	case kindSSE, kindNDJSON:
		if t.start.failed || t.start.dropped {
			return len(p), nil
		}
		if t.strip {
			if t.out == nil {
				t.out = getStripBuf()
			}
			t.out = t.out[:0]
			t.lines(p)
			return t.pass(p, t.out)
		}
		t.lines(p)
		return t.pass(p, p)
	case kindEventStream:
		if t.start.failed || t.start.dropped {
			return len(p), nil
		}
		if !t.esFailed && t.es.Feed(p, t.message) != nil {
			// A frame that does not check out: the client's decoder
			// will say so; the bytes pass as they came.
			t.esFailed = true
		}
		return t.pass(p, p)
	}
	return t.ResponseWriterWrapper.Write(p)
}

// pass sends out, what the stream bytes p came to for the client, or
// holds it while the stream's start is undecided.
func (t *usageTap) pass(p, out []byte) (int, error) {
	if t.start.lock() {
		defer t.start.mu.Unlock()
		st := t.probe.Feed(p)
		if st == dialects.StreamFailed {
			t.failStart()
			return len(p), nil
		}
		if err := t.start.step(st, out, t.now()); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	t.probe = nil // decided: the probe has nothing more to tell
	if len(out) == 0 {
		return len(p), nil
	}
	if _, err := t.ResponseWriterWrapper.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// FlushError flushes what reached the client; a held stream has nothing
// there yet (and its timer may be releasing it).
func (t *usageTap) FlushError() error {
	return t.start.flush(t.ResponseWriterWrapper.ResponseWriter)
}

// Header is the answer's header map (see startHold.header).
func (t *usageTap) Header() http.Header { return t.start.header(t.ResponseWriterWrapper) }

// failStart answers with the error of a stream that failed before it
// began, in place of the stream (with the hold's lock held).
func (t *usageTap) failStart() {
	e, status := t.probe.Err(t.dialect)
	t.probe = nil
	t.start.fail(t.dialect, e, status, t.upstreamStatus)
	t.status = e.Status
}

// message reads one eventstream message of a Bedrock stream: usage from
// the metadata event, the end from metadata or an exception.
func (t *usageTap) message(m dialects.EventStreamMessage) {
	t.events++
	t.stream.Event(m.Payload)
	if !t.ended && dialects.StreamEnded(t.dialect, []byte(m.Name()), m.Payload) {
		t.ended = true
	}
}

// ReadFrom keeps io.Copy on Write, which must see every byte.
func (t *usageTap) ReadFrom(src io.Reader) (int64, error) {
	return io.Copy(writerOnly{t}, src)
}

// lines splits p into lines, joining with the partial line left over from
// the previous write.
func (t *usageTap) lines(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.hold(p)
			return
		}
		line := p[:i+1]
		if len(t.pending) > 0 || t.lineOver {
			t.hold(line)
			line = t.pending
		}
		if !t.lineOver {
			t.line(line)
		} else if t.strip {
			t.out = append(t.out, line...)
		}
		t.pending, t.lineOver = t.pending[:0], false
		p = p[i+1:]
	}
}

func (t *usageTap) hold(p []byte) {
	if t.lineOver {
		if t.strip {
			t.out = append(t.out, p...)
		}
		return
	}
	if len(t.pending)+len(p) > tapLineLimit {
		// Too long to be an event worth reading: let it through unread.
		if t.strip {
			t.out = append(t.out, t.pending...)
			t.out = append(t.out, p...)
		}
		t.pending, t.lineOver = t.pending[:0], true
		return
	}
	t.pending = append(t.pending, p...)
}

// line handles one complete line, newline included.
func (t *usageTap) line(line []byte) {
	data := line
	for n := len(data); n > 0 && (data[n-1] == '\n' || data[n-1] == '\r'); n = len(data) {
		data = data[:n-1]
	}
	dropped := false
	if t.kind == kindSSE {
		if len(data) == 0 {
			t.event = t.event[:0]
			if t.dropBlank {
				t.dropBlank = false
				return
			}
		} else if bytes.HasPrefix(data, []byte("event:")) {
			t.event = append(t.event[:0], bytes.TrimSpace(data[6:])...)
		} else if bytes.HasPrefix(data, []byte("data:")) {
			payload := bytes.TrimSpace(data[5:])
			t.events++
			if !t.ended && dialects.StreamEnded(t.dialect, t.event, payload) {
				t.ended = true
			}
			if len(payload) > 0 && payload[0] == '{' {
				dropped = t.stream.Event(payload) && t.strip
			}
		}
	} else if len(data) > 0 {
		t.stream.Event(data)
		if !t.ended && dialects.StreamEnded(t.dialect, nil, data) {
			t.ended = true
		}
	}
	if dropped {
		t.dropBlank = true
		return
	}
	if t.strip {
		t.out = append(t.out, line...)
	}
}

// finish reads the usage of a buffered JSON answer, flushes a partial last
// line held in strip mode, and ends a stream that stopped short of its end
// event (or broke off: aborted) with an error event in its dialect.
func (t *usageTap) finish(aborted bool) {
	if t.start.lock() {
		// The stream ended before its start was decided: a last
		// unterminated event may begin it; otherwise it failed. One
		// that broke off is dropped.
		switch {
		case aborted:
			t.start.drop()
		case t.probe.Close() == dialects.StreamFailed:
			t.failStart()
		default:
			_ = t.start.release(nil)
		}
		t.start.mu.Unlock()
	}
	if t.start.failed || t.start.dropped {
		// Answered with an error in place of the stream, or broke off
		// before the answer began: llm_route takes the attempt as
		// failed, and nothing more may be written.
		t.probe = nil
		t.releaseOut()
		return
	}
	if t.kind == kindJSON && !t.bodyOver && t.status < 300 {
		t.bodyUsage, t.bodyUsageOK = dialects.UsageFromBody(t.dialect, t.body)
		t.body = nil
	}
	if (t.kind == kindSSE || t.kind == kindNDJSON) && len(t.pending) > 0 {
		line := t.pending
		t.pending = nil
		data := bytes.TrimSpace(line)
		if t.strip {
			_, _ = t.ResponseWriterWrapper.Write(line)
		} else if t.kind == kindNDJSON {
			t.stream.Event(data)
		}
		if t.kind == kindSSE {
			data = bytes.TrimSpace(bytes.TrimPrefix(data, []byte("data:")))
		}
		if dialects.StreamEnded(t.dialect, t.event, data) {
			t.ended = true
		}
	}
	if t.kind == kindEventStream && !t.esFailed && t.es.Close() != nil {
		t.esFailed = true // cut inside a frame
	}
	if (t.kind == kindSSE || t.kind == kindNDJSON || t.kind == kindEventStream) && t.status == http.StatusOK && !t.ended {
		t.ended = true
		msg := "the provider's stream ended before the answer was complete"
		if aborted {
			msg = "the connection to the provider broke off before the answer was complete"
		}
		if ev := dialects.StreamError(t.dialect, msg, http.StatusBadGateway, t.events); len(ev) > 0 {
			_, _ = t.ResponseWriterWrapper.Write(ev)
			_ = http.NewResponseController(t.ResponseWriterWrapper.ResponseWriter).Flush()
		}
	}
	t.releaseOut()
}

// stripPool holds the buffers strip mode rewrites a stream's writes in:
// a stream's writes grow one to the size of the largest read from the
// provider, and a fresh one per stream was most of the pass-through
// stream's cost.
var stripPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

func getStripBuf() []byte { return (*stripPool.Get().(*[]byte))[:0] }

// releaseOut gives the strip buffer back once the stream is over.
func (t *usageTap) releaseOut() {
	if t.out != nil && cap(t.out) <= 1<<20 {
		b := t.out[:0]
		stripPool.Put(&b)
	}
	t.out = nil
}

func (t *usageTap) usage() (dialects.Usage, bool) {
	if t.bodyUsageOK {
		return t.bodyUsage, true
	}
	return t.stream.Usage()
}
