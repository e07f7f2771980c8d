package mockllm

import (
	"net/http"
	"strings"
)

// Google Gemini: POST /{v1|v1beta}/models/{model}:generateContent and
// :streamGenerateContent (SSE with ?alt=sse, a JSON array without). The
// model is in the path, the key in x-goog-api-key (not checked).

// geminiResponseID is the responseId of every Gemini answer.
const geminiResponseID = "mock-response-1"

// geminiRoute reports whether path is a Gemini generateContent or
// streamGenerateContent call (.../models/{model}:{method}, which also
// covers Vertex's longer paths), setting the model and the stream flag.
func geminiRoute(path string, model *string, stream *bool) bool {
	i := strings.LastIndex(path, "/models/")
	if i < 0 {
		return false
	}
	rest := path[i+len("/models/"):]
	j := strings.LastIndexByte(rest, ':')
	if j <= 0 || strings.Contains(rest[:j], "/") {
		return false
	}
	switch rest[j+1:] {
	case "generateContent":
		*stream = false
	case "streamGenerateContent":
		*stream = true
	default:
		return false
	}
	*model = rest[:j]
	return true
}

// geminiParts are the parts of an answer's content: one text part, or
// the whole function call (Gemini sends no call id).
func (a answer) geminiParts(text string) []any {
	if a.tool != "" {
		return []any{map[string]any{"functionCall": map[string]any{"name": a.tool, "args": map[string]any{"city": "Paris"}}}}
	}
	return []any{map[string]any{"text": text}}
}

// geminiUsage is usageMetadata after candidates output tokens: Gemini
// reports it cumulatively, the prompt (which includes the cached part)
// on every chunk.
func geminiUsage(candidates int) map[string]any {
	return map[string]any{"promptTokenCount": InputTokens, "cachedContentTokenCount": CachedTokens,
		"candidatesTokenCount": candidates, "totalTokenCount": InputTokens + candidates}
}

// geminiChunk is a GenerateContentResponse: a whole answer, or one
// stream chunk (finish is "" before the last).
func (a answer) geminiChunk(parts []any, finish string, candidates int) map[string]any {
	cand := map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "index": 0}
	if finish != "" {
		cand["finishReason"] = finish
	}
	return map[string]any{"candidates": []any{cand}, "usageMetadata": geminiUsage(candidates),
		"modelVersion": a.model, "responseId": geminiResponseID}
}

// geminiChunks are the stream's chunks: one per text piece, the last
// with finishReason, or the tool call whole in one chunk. With brk the
// stream stops after the first piece.
func (a answer) geminiChunks() []map[string]any {
	if a.tool != "" {
		return []map[string]any{a.geminiChunk(a.geminiParts(""), "STOP", OutputTokens)}
	}
	pieces := a.pieces()
	var out []map[string]any
	for i, p := range pieces {
		if a.brk && i == 1 {
			break
		}
		finish := ""
		if i == len(pieces)-1 {
			finish = "STOP"
		}
		out = append(out, a.geminiChunk(a.geminiParts(p), finish, OutputTokens*(i+1)/len(pieces)))
	}
	return out
}

// geminiSSE streams with alt=sse: "data: <chunk>" events ending in CRLF
// as Gemini's own, with no [DONE]. A failing stream sends only the error
// envelope as its one event.
func (a answer) geminiSSE(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	f := flushWriter{w, a.delay}
	if a.streamErr {
		f.event("data: %s\r\n\r\n", mustJSON(geminiError(http.StatusServiceUnavailable, streamErrorMessage)))
		return
	}
	for _, c := range a.geminiChunks() {
		f.event("data: %s\r\n\r\n", mustJSON(c))
	}
}

// geminiArray streams without alt=sse: one JSON array whose elements
// arrive one by one (a broken stream lacks the closing bracket; a failing
// one holds only the error).
func (a answer) geminiArray(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	f := flushWriter{w, a.delay}
	if a.streamErr {
		f.event("[%s", mustJSON(geminiError(http.StatusServiceUnavailable, streamErrorMessage)))
		f.event("\n]")
		return
	}
	for i, c := range a.geminiChunks() {
		sep := "\n,\r\n"
		if i == 0 {
			sep = "["
		}
		f.event("%s%s", sep, mustJSON(c))
	}
	if !a.brk || a.tool != "" {
		f.event("\n]")
	}
}

// geminiError is Google's error envelope; a 429 carries a RetryInfo
// detail as Gemini's do.
func geminiError(status int, msg string) map[string]any {
	e := map[string]any{"code": status, "message": msg, "status": geminiStatus(status)}
	if status == http.StatusTooManyRequests {
		e["details"] = []any{map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}}
	}
	return map[string]any{"error": e}
}

// geminiStatus is the google.rpc status name Google sends with an HTTP
// status.
func geminiStatus(status int) string {
	switch status {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if status < 500 {
		return "FAILED_PRECONDITION"
	}
	return "INTERNAL"
}
