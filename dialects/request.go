package dialects

import (
	"bytes"
	"net/http"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Request is what the gateway reads from a generation request body
// without decoding it: just enough to route it.
type Request struct {
	// Model is the model the client asked for ("" when absent).
	Model string
	// Stream is true when the client wants a streamed answer.
	Stream bool
	// StreamUsage is true when an OpenAI client asked for a usage chunk
	// (stream_options.include_usage).
	StreamUsage bool
}

// ReadRequest checks that body is a JSON object carrying the fields
// dialect d requires and returns what routing needs. The error is a 400
// naming the problem.
func ReadRequest(d Dialect, body []byte) (Request, *Error) {
	var r Request
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return r, &Error{Status: http.StatusBadRequest, Message: "request body is empty: expected a JSON object"}
	}
	if body[0] != '{' || !gjson.ValidBytes(body) {
		return r, &Error{Status: http.StatusBadRequest, Message: "request body is not valid JSON: expected a JSON object"}
	}
	// Read the body in place: gjson.ParseBytes and GetBytes would copy
	// it (or the messages) for every request. Nothing read here outlives
	// the call without a copy (the model name is cloned).
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if dup := duplicateKey(root); dup != "" {
		return r, &Error{Status: http.StatusBadRequest, Param: dup,
			Message: "field " + dup + " appears more than once in the request body"}
	}
	if d == Gemini {
		// The model and the stream flag are in the URL
		// (models/{model}:streamGenerateContent), not in the body.
		c := root.Get("contents")
		if !c.Exists() {
			return r, &Error{Status: http.StatusBadRequest, Message: "missing required field contents", Param: "contents"}
		}
		if !c.IsArray() {
			return r, &Error{Status: http.StatusBadRequest, Message: "contents must be an array", Param: "contents"}
		}
		return r, nil
	}
	m := root.Get("model")
	switch {
	case !m.Exists() || m.Type == gjson.Null:
	case m.Type != gjson.String:
		return r, &Error{Status: http.StatusBadRequest, Message: "model must be a string", Param: "model"}
	default:
		r.Model = strings.Clone(m.Str)
	}
	if d == Responses {
		in := root.Get("input")
		if !in.Exists() {
			return r, &Error{Status: http.StatusBadRequest, Message: "missing required field input", Param: "input"}
		}
		if in.Type != gjson.String && !in.IsArray() {
			return r, &Error{Status: http.StatusBadRequest, Message: "input must be a string or an array", Param: "input"}
		}
	} else {
		msgs := root.Get("messages")
		if !msgs.Exists() {
			return r, &Error{Status: http.StatusBadRequest, Message: "missing required field messages", Param: "messages"}
		}
		if !msgs.IsArray() {
			return r, &Error{Status: http.StatusBadRequest, Message: "messages must be an array", Param: "messages"}
		}
	}
	s := root.Get("stream")
	switch s.Type {
	case gjson.True:
		r.Stream = true
	case gjson.False:
	case gjson.Null:
		r.Stream = IsStreamDefault(d)
	default:
		return r, &Error{Status: http.StatusBadRequest, Message: "stream must be a boolean", Param: "stream"}
	}
	if d == OpenAI && r.Stream {
		r.StreamUsage = root.Get("stream_options.include_usage").Type == gjson.True
	}
	if d == Anthropic {
		if mt := root.Get("max_tokens"); mt.Exists() && mt.Type != gjson.Number {
			return r, &Error{Status: http.StatusBadRequest, Message: "max_tokens must be an integer", Param: "max_tokens"}
		}
	}
	return r, nil
}

// duplicateKey returns the first routing-relevant top-level key that
// appears twice. Parsers disagree on duplicates (gjson and sjson use the
// first, most providers the last), so a body with two "model" keys could
// be routed and priced as one model and served as another.
func duplicateKey(root gjson.Result) string {
	var seen [3]bool
	dup := ""
	root.ForEach(func(k, _ gjson.Result) bool {
		i := -1
		switch k.Str {
		case "model":
			i = 0
		case "stream":
			i = 1
		case "stream_options":
			i = 2
		}
		if i >= 0 {
			if seen[i] {
				dup = [...]string{"model", "stream", "stream_options"}[i]
				return false
			}
			seen[i] = true
		}
		return true
	})
	return dup
}

// SetModel returns body with its model field set to model. It edits the
// bytes in place where it can (sjson), never decoding the whole body.
func SetModel(body []byte, model string) ([]byte, error) {
	// The pass-through path: splice the new name over the old value, one
	// copy of the body (the request was checked: one "model" member).
	if m := gjson.GetBytes(body, "model"); m.Index > 0 && m.Index+len(m.Raw) <= len(body) {
		if m.Type == gjson.String && m.Str == model {
			return body, nil
		}
		out := make([]byte, 0, len(body)-len(m.Raw)+len(model)+8)
		out = append(out, body[:m.Index]...)
		out = AppendJSONString(out, model)
		return append(out, body[m.Index+len(m.Raw):]...), nil
	}
	return sjson.SetBytes(body, "model", model)
}

// RequestStreamUsage makes an OpenAI streaming request ask for the usage
// chunk, so the gateway can account for the answer whatever the client
// asked. It returns body unchanged for other dialects and when the client
// asked already.
func RequestStreamUsage(d Dialect, body []byte, req Request) ([]byte, error) {
	if d != OpenAI || !req.Stream || req.StreamUsage {
		return body, nil
	}
	return sjson.SetBytes(body, "stream_options.include_usage", true)
}
