package mockllm

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// AWS Bedrock Converse: POST /model/{modelId}/converse and
// /model/{modelId}/converse-stream, the model id URL-escaped in the path
// (it may hold ':' and, for ARNs, '/'). The stream is a binary AWS
// eventstream whose frames carry the event members' JSON.

// bedrockRequestID is the X-Amzn-Requestid of every Bedrock answer.
const bedrockRequestID = "mock-request-1"

// bedrockRoute reports whether escaped (a request's escaped path) is a
// Converse or ConverseStream call, setting the unescaped model id and the
// stream flag. A model id must be one escaped path segment.
func bedrockRoute(escaped string, model *string, stream *bool) bool {
	rest, ok := strings.CutPrefix(escaped, "/model/")
	if !ok {
		return false
	}
	id, op, ok := strings.Cut(rest, "/")
	if !ok || id == "" {
		return false
	}
	switch op {
	case "converse":
		*stream = false
	case "converse-stream":
		*stream = true
	default:
		return false
	}
	m, err := url.PathUnescape(id)
	if err != nil {
		return false
	}
	*model = m
	return true
}

// bedrockUsage is Converse usage: inputTokens excludes the cache reads.
func bedrockUsage() map[string]any {
	return map[string]any{"inputTokens": InputTokens - CachedTokens, "outputTokens": OutputTokens, "totalTokens": InputTokens + OutputTokens,
		"cacheReadInputTokens": CachedTokens, "cacheWriteInputTokens": 0}
}

func bedrockMetrics() map[string]any { return map[string]any{"latencyMs": 1} }

const bedrockToolUseID = "tooluse_mock1"

func (a answer) bedrockJSON(w http.ResponseWriter) {
	content := []any{map[string]any{"text": Text}}
	stop := "end_turn"
	if a.tool != "" {
		content = []any{map[string]any{"toolUse": map[string]any{"toolUseId": bedrockToolUseID, "name": a.tool, "input": map[string]any{"city": "Paris"}}}}
		stop = "tool_use"
	}
	writeJSON(w, map[string]any{"output": map[string]any{"message": map[string]any{"role": "assistant", "content": content}},
		"stopReason": stop, "usage": bedrockUsage(), "metrics": bedrockMetrics()})
}

// bedrockStream answers ConverseStream: messageStart, (for a tool
// contentBlockStart,) contentBlockDelta per piece, contentBlockStop,
// messageStop and then metadata, as Bedrock orders them. A broken stream
// stops after the first text piece; a failing one sends messageStart and
// then a serviceUnavailableException frame.
func (a answer) bedrockStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	f := flushWriter{w, a.delay}
	enc := eventstream.NewEncoder()
	var buf bytes.Buffer
	ev := func(typ string, payload map[string]any) {
		buf.Reset()
		_ = enc.Encode(&buf, eventstream.Message{
			Headers: eventstream.Headers{
				{Name: ":event-type", Value: eventstream.StringValue(typ)},
				{Name: ":content-type", Value: eventstream.StringValue("application/json")},
				{Name: ":message-type", Value: eventstream.StringValue("event")},
			},
			Payload: []byte(mustJSON(payload)),
		})
		f.write(buf.Bytes())
	}
	ev("messageStart", map[string]any{"role": "assistant"})
	if a.streamErr {
		buf.Reset()
		_ = enc.Encode(&buf, eventstream.Message{
			Headers: eventstream.Headers{
				{Name: ":message-type", Value: eventstream.StringValue("exception")},
				{Name: ":exception-type", Value: eventstream.StringValue("serviceUnavailableException")},
				{Name: ":content-type", Value: eventstream.StringValue("application/json")},
			},
			Payload: []byte(mustJSON(map[string]any{"message": streamErrorMessage})),
		})
		f.write(buf.Bytes())
		return
	}
	stop := "end_turn"
	if a.tool != "" {
		stop = "tool_use"
		ev("contentBlockStart", map[string]any{"contentBlockIndex": 0,
			"start": map[string]any{"toolUse": map[string]any{"toolUseId": bedrockToolUseID, "name": a.tool}}})
		half := len(toolArgs) / 2
		for _, part := range []string{toolArgs[:half], toolArgs[half:]} {
			ev("contentBlockDelta", map[string]any{"contentBlockIndex": 0, "delta": map[string]any{"toolUse": map[string]any{"input": part}}})
		}
	} else {
		for i, p := range a.pieces() {
			if a.brk && i == 1 {
				return
			}
			ev("contentBlockDelta", map[string]any{"contentBlockIndex": 0, "delta": map[string]any{"text": p}})
		}
	}
	ev("contentBlockStop", map[string]any{"contentBlockIndex": 0})
	ev("messageStop", map[string]any{"stopReason": stop})
	ev("metadata", map[string]any{"usage": bedrockUsage(), "metrics": bedrockMetrics()})
}

// bedrockError answers an AWS JSON error: the status, {"message":...}
// and the exception name in X-Amzn-Errortype.
func bedrockError(w http.ResponseWriter, status int, typ, msg string) {
	b := []byte(mustJSON(map[string]any{"message": msg}))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", typ)
	w.Header().Set("X-Amzn-Requestid", bedrockRequestID)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// bedrockErrorType is the exception Bedrock names with an HTTP status.
func bedrockErrorType(status int) string {
	switch status {
	case 400:
		return "ValidationException"
	case 401:
		return "UnrecognizedClientException"
	case 403:
		return "AccessDeniedException"
	case 404:
		return "ResourceNotFoundException"
	case 408:
		return "ModelTimeoutException"
	case 424:
		return "ModelErrorException"
	case 429:
		return "ThrottlingException"
	case 503:
		return "ServiceUnavailableException"
	}
	if status < 500 {
		return "ValidationException"
	}
	return "InternalServerException"
}
