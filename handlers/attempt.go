package handlers

import (
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llmgate/caddy-llmgate/dialects"
)

// heldBodyLimit caps the body of a failed attempt kept to be replayed if
// no later attempt succeeds (error bodies are small).
const heldBodyLimit = 1 << 20

// proxyInfoLimit caps an answer held to add the _proxy object; a larger
// one passes without it.
const proxyInfoLimit = 8 << 20

// attemptWriter stands between one upstream attempt and the client. Until
// the attempt's status is known nothing reaches the client, and the
// attempt's headers live in a map of their own:
//
//   - a failure worth another attempt (see failureOf) is held: its
//     status, headers and body stay here, to be replayed only if no
//     later attempt answers;
//   - anything else commits: the headers are copied to the client's and
//     the body passes through as it comes (streams flush as they go), so
//     nothing falls back once the first byte has left;
//   - a whole JSON answer of an OpenAI-dialect client is kept until its
//     end when the _proxy object is to be added.
type attemptWriter struct {
	w      http.ResponseWriter
	header http.Header
	ex     *Exchange
	// commitHeaders sets the decision headers on the client's response
	// just before it is committed.
	commitHeaders func(http.Header)
	// proxyInfo: keep a JSON answer to add the _proxy object (finish).
	proxyInfo bool

	status    int
	wrote     bool // a final status was set
	committed bool // headers went to the client
	held      bool // failure kept for a replay
	keep      bool // JSON answer kept for _proxy
	body      []byte
	over      bool
	// tee, when set, keeps a copy of what reaches the client for the
	// response cache.
	tee *cacheTee
}

func newAttemptWriter(w http.ResponseWriter, base http.Header, ex *Exchange, proxyInfo bool, commitHeaders func(http.Header)) *attemptWriter {
	return &attemptWriter{w: w, header: base.Clone(), ex: ex, proxyInfo: proxyInfo, commitHeaders: commitHeaders}
}

// Header returns the attempt's own headers until they are committed, the
// client's after (trailers).
func (a *attemptWriter) Header() http.Header {
	if a.committed {
		return a.w.Header()
	}
	return a.header
}

func (a *attemptWriter) WriteHeader(code int) {
	if a.wrote || code < 200 {
		return
	}
	a.wrote, a.status = true, code
	upstream := statusOf(a)
	// A provider answer the gateway could not translate (a 200 it
	// turned into a 5xx) is the target's failure too.
	if failureOf(upstream) != failNone || upstream < 400 && code >= 500 {
		a.held = true
		return
	}
	if a.proxyInfo && code == http.StatusOK {
		if mediaType(a.header.Get("Content-Type")) == "application/json" {
			a.keep = true
			return
		}
	}
	a.commit()
}

// commit sends the attempt's headers and status to the client.
func (a *attemptWriter) commit() {
	a.committed = true
	dst := a.w.Header()
	for k := range dst {
		if _, ok := a.header[k]; !ok {
			delete(dst, k)
		}
	}
	for k, v := range a.header {
		dst[k] = v
	}
	a.commitHeaders(dst)
	a.w.WriteHeader(a.status)
}

func (a *attemptWriter) Write(p []byte) (int, error) {
	if !a.wrote {
		a.WriteHeader(http.StatusOK)
	}
	if a.committed {
		a.tee.add(p)
		return a.w.Write(p)
	}
	limit := heldBodyLimit
	if a.keep {
		limit = proxyInfoLimit
	}
	if len(a.body)+len(p) > limit {
		if a.keep {
			// Too big to hold: send what came and the rest as it comes,
			// without the _proxy object.
			a.keep = false
			a.commit()
			a.tee.add(a.body)
			if _, err := a.w.Write(a.body); err != nil {
				return 0, err
			}
			a.body = nil
			a.tee.add(p)
			return a.w.Write(p)
		}
		a.over = true
		return len(p), nil
	}
	a.body = append(a.body, p...)
	return len(p), nil
}

// ReadFrom keeps io.Copy on Write.
func (a *attemptWriter) ReadFrom(src io.Reader) (int64, error) {
	return io.Copy(writerOnly{a}, src)
}

// FlushError flushes committed answers only: a held or kept one must not
// have headers sent early.
func (a *attemptWriter) FlushError() error {
	if !a.committed {
		return nil
	}
	return http.NewResponseController(a.w).Flush()
}

// Unwrap gives http.ResponseController the client's writer (deadlines).
func (a *attemptWriter) Unwrap() http.ResponseWriter { return a.w }

// release sends a kept answer, with extra (the _proxy object) set in it
// when the answer is a JSON object.
func (a *attemptWriter) release(edit func([]byte) []byte) {
	if !a.keep {
		return
	}
	a.keep = false
	body := a.body
	a.tee.add(body)
	if edit != nil && !a.over {
		body = edit(body)
	}
	a.header.Set("Content-Length", strconv.Itoa(len(body)))
	a.commit()
	_, _ = a.w.Write(body)
	a.body = nil
}

// replay sends a held failure to the client as it came.
func (a *attemptWriter) replay() {
	a.held = false
	a.header.Set("Content-Length", strconv.Itoa(len(a.body)))
	if a.over {
		a.header.Del("Content-Length")
	}
	a.commit()
	_, _ = a.w.Write(a.body)
}

// failure classifies why an attempt failed.
type failure uint8

const (
	failNone      failure = iota
	failTransient         // retry the target, then the next one
	failTarget            // the target cannot serve it: the next one
)

// failureOf classifies a provider's status. Transient: 408, 409 (a
// conflicting request in flight), 429, 5xx but 501 and 505, and 529
// (Anthropic's overload). Target: 401 and 403 (this provider's key) and
// 404 (this provider lacks the model): another target may still serve
// the request. Other 4xx are the client's: no other target does better.
func failureOf(status int) failure {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusConflict, status == http.StatusTooManyRequests:
		return failTransient
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return failNone
	case status >= 500:
		return failTransient
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusNotFound,
		status == http.StatusFailedDependency: // Bedrock's ModelErrorException: the model failed
		return failTarget
	}
	return failNone
}

// retryAfter reads how long a provider asked to be left alone:
// retry-after-ms (OpenAI, Anthropic SDK convention) first, then
// Retry-After in seconds or as an HTTP date. Zero when absent.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return capWait(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return capWait(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxProviderWait)
	}
	return 0
}

// maxProviderWait bounds how long a Retry-After keeps a target out: a
// day, whatever a provider (or a broken one) says.
const maxProviderWait = 24 * time.Hour

// capWait turns nanoseconds into a duration no longer than
// maxProviderWait (and never an overflow).
func capWait(ns float64) time.Duration {
	if ns >= float64(maxProviderWait) {
		return maxProviderWait
	}
	return time.Duration(ns)
}

// backoff is the wait before retry n (0-based) without a Retry-After:
// base doubled each time, with ±20% jitter so that clients that failed
// together do not come back together.
func backoff(base time.Duration, n int) time.Duration {
	d := base << min(n, 10)
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return j
}

// headerSafe makes s fit a response header: ASCII only (the router's
// reasons may hold accented keywords and arrows) and bounded.
func headerSafe(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x7f || c < 0x20 {
			ascii = false
			break
		}
	}
	if !ascii {
		var b strings.Builder
		for _, r := range s {
			switch {
			case r == '→':
				b.WriteString("->")
			case r < 0x20 || r == 0x7f:
				b.WriteByte(' ')
			case r < 0x80:
				b.WriteRune(r)
			default:
				q := strconv.QuoteRuneToASCII(r) // '\u00e9'
				b.WriteString(q[1 : len(q)-1])
			}
		}
		s = b.String()
	}
	if len(s) > 512 {
		s = s[:509] + "..."
	}
	return s
}

// isOpenAIClient reports whether the _proxy object may be added to this
// client's answers.
func isOpenAIClient(d dialects.Dialect) bool {
	return d == dialects.OpenAI || d == dialects.Responses
}
