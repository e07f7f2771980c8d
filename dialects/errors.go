package dialects

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/tidwall/sjson"
)

// Error is a gateway error to be rendered in a client's dialect.
type Error struct {
	// Status is the HTTP status to answer with.
	Status int
	// Message is a human-readable explanation, safe to show to the client.
	Message string
	// Code is an optional machine-readable code (OpenAI's error.code), e.g.
	// "model_not_found".
	Code string
	// Param names the offending request field, when there is one.
	Param string
	// RetryAfter, in seconds, is sent as Retry-After when positive.
	RetryAfter int
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an Error with a status and a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// openAIType is OpenAI's error.type for a status.
func openAIType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}

// anthropicType is Anthropic's error.type for a status.
func anthropicType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// ErrorBody renders e as the error envelope of dialect d.
func ErrorBody(d Dialect, e *Error) []byte {
	var b []byte
	switch d {
	case Anthropic:
		b = []byte(`{"type":"error","error":{"type":"","message":""}}`)
		b, _ = sjson.SetBytes(b, "error.type", anthropicType(e.Status))
		b, _ = sjson.SetBytes(b, "error.message", e.Message)
	case Ollama:
		b = []byte(`{"error":""}`)
		b, _ = sjson.SetBytes(b, "error", e.Message)
	case Gemini:
		b = geminiErrorBody(e)
	case Bedrock:
		// The AWS SDKs take the exception from the x-amzn-ErrorType
		// header (BedrockErrorType) or, without it, from __type.
		b = []byte(`{"__type":"","message":""}`)
		b, _ = sjson.SetBytes(b, "__type", BedrockErrorType(e.Status))
		b, _ = sjson.SetBytes(b, "message", e.Message)
	default:
		b = []byte(`{"error":{"message":"","type":"","param":null,"code":null}}`)
		b, _ = sjson.SetBytes(b, "error.message", e.Message)
		b, _ = sjson.SetBytes(b, "error.type", openAIType(e.Status))
		if e.Param != "" {
			b, _ = sjson.SetBytes(b, "error.param", e.Param)
		}
		if e.Code != "" {
			b, _ = sjson.SetBytes(b, "error.code", e.Code)
		}
	}
	return b
}

// WriteError writes e to w as a complete response in dialect d.
func WriteError(w http.ResponseWriter, d Dialect, e *Error) {
	body := ErrorBody(d, e)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
