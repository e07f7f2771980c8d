package handlers

import (
	"net/http"
	"time"

	"github.com/llmgate/caddy-llmgate/dialects"
)

// Bounds of the preamble a stream may hold back before its answer begins:
// past either, what came is sent and the stream passes as it comes.
const (
	startHoldBytes = 64 << 10
	startHoldTime  = 10 * time.Second
)

// startHold keeps a streamed answer (its status, headers and first
// events) back from the client until the provider's answer has begun:
// until its first content, not just its preamble (see
// dialects.StreamStart). A stream that fails first, such as a 200 whose
// first event is Anthropic's overloaded_error or a connection that drops
// before any content, then becomes an error answer, which llm_route
// holds like any failed attempt and may retry or take elsewhere: nothing
// of it has reached the client. Streams that begin pass through
// unchanged; the client's first byte comes with the first content,
// which is when it would have been useful anyway.
type startHold struct {
	// on: the stream's start is not decided yet; status and buf wait.
	on     bool
	status int
	buf    []byte
	since  time.Time
	// failed: the stream failed before it began and was answered with
	// an error; the rest of the provider's stream is dropped.
	failed bool
	// onRelease, when set, is called as a held stream is released.
	onRelease func()
}

// begin starts holding a stream answered with status.
func (h *startHold) begin(status int, now time.Time) {
	h.on, h.status, h.since = true, status, now
}

// step takes the client bytes one write produced while the start was
// undecided and the start so far. A begun stream (or one whose preamble
// grew past the bounds) is released: its header, what was held, and
// out. A failed one is left to fail.
func (h *startHold) step(w http.ResponseWriter, st dialects.StreamStart, out []byte, now time.Time) error {
	switch st {
	case dialects.StreamBegun:
		return h.release(w, out)
	case dialects.StreamFailed:
		return nil
	}
	h.buf = append(h.buf, out...)
	if len(h.buf) > startHoldBytes || now.Sub(h.since) > startHoldTime {
		return h.release(w, nil)
	}
	return nil
}

// release sends the held status, headers and bytes, then out.
func (h *startHold) release(w http.ResponseWriter, out []byte) error {
	h.on = false
	if h.onRelease != nil {
		h.onRelease()
	}
	w.WriteHeader(h.status)
	buf := h.buf
	h.buf = nil
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	if len(out) > 0 {
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// fail answers the client with e, in its dialect, instead of the stream
// that failed before it began; providerStatus is the failure as the
// provider put it (what llm_route's failure rules read).
func (h *startHold) fail(w http.ResponseWriter, client dialects.Dialect, e *dialects.Error, providerStatus int, upstreamStatus *int) {
	h.on, h.failed, h.buf = false, true, nil
	if upstreamStatus != nil {
		*upstreamStatus = providerStatus
	}
	hd := w.Header()
	hd.Del("Content-Encoding")
	hd.Del("Cache-Control")
	dialects.WriteError(w, client, e)
}
