package handlers

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/llmgate/caddy-llmgate/dialects"
)

// translateBodyLimit caps a buffered (non-streamed) answer or error body
// from a provider whose dialect differs from the client's.
const translateBodyLimit = 32 << 20

// translateWriter turns a provider's answer in one dialect into the
// client's dialect. Streams are translated event by event as they pass
// (each Write forwards what it completes, each Flush reaches the client);
// a whole answer or an error body is read to its end and rewritten.
type translateWriter struct {
	*caddyhttp.ResponseWriterWrapper
	from, to dialects.Dialect
	opts     dialects.StreamOptions
	// wantStream: the client asked for a stream.
	wantStream bool

	status      int
	wroteHeader bool
	stream      *dialects.StreamTranslator
	buf         []byte
	over        bool
	finished    bool
	usage       dialects.Usage
	usageOK     bool
	// upstreamStatus, when set, receives the provider's own status.
	upstreamStatus *int
	// onHeaders, when set, is called when the provider's response
	// headers arrive (the first final WriteHeader).
	onHeaders func()
	// now, when set, holds a stream back until its answer has begun
	// (startHold), with now as the clock.
	now   func() time.Time
	start startHold
}

func newTranslateWriter(w http.ResponseWriter, from, to dialects.Dialect, wantStream bool, o dialects.StreamOptions) *translateWriter {
	return &translateWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		from: from, to: to, opts: o, wantStream: wantStream}
}

func (t *translateWriter) WriteHeader(code int) {
	if t.wroteHeader || code < 200 {
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
	isStream := ct == "text/event-stream" || ct == "application/x-ndjson" || ct == "application/vnd.amazon.eventstream" ||
		(t.from == dialects.Ollama && t.wantStream && t.Header().Get("Content-Length") == "")
	if code == http.StatusOK && isStream {
		tr, err := dialects.NewStreamTranslator(t.from, t.to, t.opts)
		if err == nil {
			t.stream = tr
			h := t.Header()
			h.Set("Content-Type", dialects.StreamContentType(t.to))
			h.Set("Cache-Control", "no-cache")
			h.Del("Content-Length")
			if t.now != nil {
				t.start.begin(t.ResponseWriterWrapper, code, t.now())
				return
			}
			t.ResponseWriterWrapper.WriteHeader(code)
			return
		}
	}
	// Everything else is read whole and rewritten in finish.
}

func (t *translateWriter) Write(p []byte) (int, error) {
	if !t.wroteHeader {
		t.WriteHeader(http.StatusOK)
	}
	if t.stream != nil {
		if t.start.failed || t.start.dropped {
			return len(p), nil
		}
		if t.start.lock() {
			defer t.start.mu.Unlock()
			out := t.stream.Write(p)
			st := t.stream.Start()
			if st == dialects.StreamFailed {
				t.failStart()
				return len(p), nil
			}
			if err := t.start.step(st, out, t.now()); err != nil {
				return 0, err
			}
			return len(p), nil
		}
		if out := t.stream.Write(p); len(out) > 0 {
			if _, err := t.ResponseWriterWrapper.Write(out); err != nil {
				return 0, err
			}
		}
		return len(p), nil
	}
	if !t.over {
		if len(t.buf)+len(p) > translateBodyLimit {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p...)
		}
	}
	return len(p), nil
}

// ReadFrom keeps io.Copy on Write.
func (t *translateWriter) ReadFrom(src io.Reader) (int64, error) {
	return io.Copy(writerOnly{t}, src)
}

// Header is the answer's header map (see startHold.header).
func (t *translateWriter) Header() http.Header { return t.start.header(t.ResponseWriterWrapper) }

// failStart answers with the error of a stream that failed before it
// began, in place of the stream (with the hold's lock held).
func (t *translateWriter) failStart() {
	e, status := t.stream.StartError(t.to)
	t.start.fail(t.to, e, status, t.upstreamStatus)
	t.status = e.Status
}

// FlushError passes flushes through for streams only: a buffered answer
// must not have its (untranslated) headers sent early.
func (t *translateWriter) FlushError() error {
	if t.stream == nil {
		return nil
	}
	return t.start.flush(t.ResponseWriterWrapper.ResponseWriter)
}

// finish completes the client's answer once the provider's has ended (or
// broken off: aborted).
func (t *translateWriter) finish(aborted bool) {
	if t.finished || !t.wroteHeader {
		return
	}
	t.finished = true
	w := t.ResponseWriterWrapper.ResponseWriter
	if t.stream != nil {
		defer func() { t.usage, t.usageOK = t.stream.Usage() }()
		if t.start.lock() {
			if aborted {
				// Broke off before the answer began: nothing was
				// sent, and llm_route takes the attempt as failed.
				t.start.drop()
			} else if out := t.stream.Close(); t.stream.Start() == dialects.StreamFailed {
				t.failStart()
			} else {
				_ = t.start.release(out)
			}
			t.start.mu.Unlock()
			return
		}
		if t.start.failed || t.start.dropped {
			return
		}
		var out []byte
		if aborted {
			out = t.stream.Abort("the connection to the provider broke off before the answer was complete")
		} else {
			out = t.stream.Close()
		}
		if len(out) > 0 {
			_, _ = w.Write(out)
			_ = http.NewResponseController(w).Flush()
		}
		return
	}
	h := w.Header()
	h.Del("Content-Encoding")
	if t.status >= 300 || t.over {
		if t.over {
			t.status = http.StatusBadGateway
		}
		h.Del("Location")
		e := dialects.UpstreamError(t.from, t.to, t.status, h, t.buf)
		dialects.WriteError(w, t.to, e)
		t.status = e.Status
		return
	}
	resp, err := dialects.DecodeResponse(t.from, t.buf)
	if err != nil {
		h.Del("Content-Length")
		dialects.WriteError(w, t.to, &dialects.Error{Status: http.StatusBadGateway, Message: "the provider's answer could not be read: " + err.Error()})
		t.status = http.StatusBadGateway
		return
	}
	t.usage, t.usageOK = resp.Usage, true
	var out []byte
	if t.wantStream {
		out, err = dialects.ResponseStream(t.to, resp, t.opts)
		h.Set("Content-Type", dialects.StreamContentType(t.to))
	} else {
		out, err = dialects.EncodeResponse(t.to, resp, t.opts.Model)
		h.Set("Content-Type", "application/json")
	}
	if err != nil {
		dialects.WriteError(w, t.to, &dialects.Error{Status: http.StatusInternalServerError, Message: err.Error()})
		t.status = http.StatusInternalServerError
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(t.status)
	_, _ = w.Write(out)
}
