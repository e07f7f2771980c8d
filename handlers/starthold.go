package handlers

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmgate/caddy-llmgate/dialects"
)

// Bounds of the preamble a stream may hold back before its answer begins:
// past either, what came is sent and the stream passes as it comes. The
// time is checked on every write by the gateway's clock and by a timer,
// so a provider that sends its preamble and then thinks in silence (an
// OpenAI reasoning model's role chunk) still has its headers reach the
// client, and proxies in front, after startHoldTime.
const startHoldBytes = 64 << 10

var startHoldTime = 10 * time.Second // a variable for the timer's test

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
//
// The writer that owns it calls lock before each write while the hold
// may be on: the hold's timer releases it from another goroutine, and
// the lock keeps the two from writing to the client at once. Once the
// start is decided, writes go straight through without the lock.
type startHold struct {
	mu sync.Mutex
	// held mirrors on for a check without the lock; it turns false
	// only after a release has written everything.
	held atomic.Bool
	// on: the stream's start is not decided yet; status and buf wait.
	on     bool
	w      http.ResponseWriter
	status int
	buf    []byte
	since  time.Time
	timer  *time.Timer
	// failed: the stream failed before it began and was answered with
	// an error; dropped: it broke off before it began, and llm_route
	// takes the attempt as failed. Either way the rest of the
	// provider's stream is dropped. Set and read by the owner only.
	failed, dropped bool
	// onRelease, when set, is called as a held stream is released.
	onRelease func()
}

// begin starts holding a stream answered with status, to be released to
// w.
func (h *startHold) begin(w http.ResponseWriter, status int, now time.Time) {
	h.w, h.on, h.status, h.since = w, true, status, now
	h.held.Store(true)
	h.timer = time.AfterFunc(startHoldTime, h.expire)
}

// lock reports whether the hold is on, and then holds its lock (the
// caller unlocks h.mu).
func (h *startHold) lock() bool {
	if !h.held.Load() {
		return false
	}
	h.mu.Lock()
	if !h.on {
		h.mu.Unlock()
		return false
	}
	return true
}

// header reads w's header map under the lock while the hold is on (its
// timer may be committing the map).
func (h *startHold) header(w http.ResponseWriter) http.Header {
	if h.lock() {
		defer h.mu.Unlock()
	}
	return w.Header()
}

// flush flushes w, unless the stream is still held: nothing has reached
// the client to flush.
func (h *startHold) flush(w http.ResponseWriter) error {
	if h.lock() {
		h.mu.Unlock()
		return nil
	}
	return flush(w)
}

// expire releases a hold that outlived startHoldTime.
func (h *startHold) expire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.on && h.release(nil) == nil {
		_ = flush(h.w)
	}
}

// end marks the start decided (with the lock held).
func (h *startHold) end() {
	h.on = false
	h.timer.Stop()
	h.buf = nil
	h.held.Store(false)
}

// step takes the client bytes one write produced while the start was
// undecided and the start so far (with the lock held). A begun stream
// (or one whose preamble grew past the bounds) is released: its header,
// what was held, and out. A failed one is left to fail.
func (h *startHold) step(st dialects.StreamStart, out []byte, now time.Time) error {
	switch st {
	case dialects.StreamBegun:
		return h.release(out)
	case dialects.StreamFailed:
		return nil
	}
	h.buf = append(h.buf, out...)
	if len(h.buf) > startHoldBytes || now.Sub(h.since) > startHoldTime {
		return h.release(nil)
	}
	return nil
}

// release sends the held status, headers and bytes, then out (with the
// lock held).
func (h *startHold) release(out []byte) error {
	defer h.end()
	if h.onRelease != nil {
		h.onRelease()
	}
	h.w.WriteHeader(h.status)
	if len(h.buf) > 0 {
		if _, err := h.w.Write(h.buf); err != nil {
			return err
		}
	}
	if len(out) > 0 {
		if _, err := h.w.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// fail answers the client with e, in its dialect, instead of the stream
// that failed before it began (with the lock held); providerStatus is
// the failure as the provider put it (what llm_route's failure rules
// read).
func (h *startHold) fail(client dialects.Dialect, e *dialects.Error, providerStatus int, upstreamStatus *int) {
	h.failed = true
	defer h.end()
	if upstreamStatus != nil {
		*upstreamStatus = providerStatus
	}
	hd := h.w.Header()
	hd.Del("Content-Encoding")
	hd.Del("Cache-Control")
	dialects.WriteError(h.w, client, e)
}

// drop gives up a stream that broke off before it began (with the lock
// held): nothing is sent.
func (h *startHold) drop() {
	h.dropped = true
	h.end()
}
