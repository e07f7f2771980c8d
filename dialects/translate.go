package dialects

import (
	"bytes"
	"fmt"
	"net/http"

	"github.com/tidwall/gjson"
)

// DecodeRequest reads a generation request of dialect d.
func DecodeRequest(d Dialect, body []byte) (*ChatRequest, *Error) {
	switch d {
	case OpenAI:
		return DecodeOpenAIRequest(body)
	case Anthropic:
		return DecodeAnthropicRequest(body)
	case Ollama:
		return DecodeOllamaRequest(body)
	case Responses:
		return DecodeResponsesRequest(body)
	case Gemini:
		return DecodeGeminiRequest(body)
	case Bedrock:
		return DecodeBedrockRequest(body)
	}
	return nil, &Error{Status: http.StatusBadRequest, Message: "requests of dialect " + string(d) + " cannot be translated"}
}

// EncodeRequest writes r as a generation request of dialect d.
func EncodeRequest(d Dialect, r *ChatRequest, o EncodeOptions) ([]byte, error) {
	switch d {
	case OpenAI:
		return EncodeOpenAIRequest(r, o)
	case Anthropic:
		return EncodeAnthropicRequest(r, o)
	case Ollama:
		return EncodeOllamaRequest(r, o)
	case Responses:
		return EncodeResponsesRequest(r, o)
	case Gemini:
		return EncodeGeminiRequest(r, o)
	case Bedrock:
		return EncodeBedrockRequest(r, o)
	}
	return nil, fmt.Errorf("requests cannot be translated to dialect %s", d)
}

// TranslateRequest rewrites a request body from one dialect to another.
// Errors are 400s in the client's terms.
func TranslateRequest(from, to Dialect, body []byte, o EncodeOptions) ([]byte, *Error) {
	r, derr := DecodeRequest(from, body)
	if derr != nil {
		return nil, derr
	}
	return EncodeRequestFor(to, r, o)
}

// EncodeRequestFor writes a decoded request for a provider of dialect
// to; what it cannot express is a 400 in the client's terms. Encoders
// never change r, so one decoded request serves every attempt.
func EncodeRequestFor(to Dialect, r *ChatRequest, o EncodeOptions) ([]byte, *Error) {
	out, err := EncodeRequest(to, r, o)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Message: err.Error()}
	}
	return out, nil
}

// DecodeResponse reads a non-streamed answer of dialect d.
func DecodeResponse(d Dialect, body []byte) (*ChatResponse, error) {
	switch d {
	case OpenAI:
		return DecodeOpenAIResponse(body)
	case Anthropic:
		return DecodeAnthropicResponse(body)
	case Ollama:
		return DecodeOllamaResponse(body)
	case Responses:
		return DecodeResponsesResponse(body)
	case Gemini:
		return DecodeGeminiResponse(body)
	case Bedrock:
		return DecodeBedrockResponse(body)
	}
	return nil, fmt.Errorf("answers of dialect %s cannot be translated", d)
}

// EncodeResponse writes r as a non-streamed answer of dialect d, naming
// model as the model that answered.
func EncodeResponse(d Dialect, r *ChatResponse, model string) ([]byte, error) {
	switch d {
	case OpenAI:
		return EncodeOpenAIResponse(r, model, now().Unix())
	case Anthropic:
		return EncodeAnthropicResponse(r, model)
	case Ollama:
		return EncodeOllamaResponse(r, model)
	case Responses:
		return EncodeResponsesResponse(r, model, now().Unix())
	case Gemini:
		return EncodeGeminiResponse(r, model)
	case Bedrock:
		return EncodeBedrockResponse(r, model)
	}
	return nil, fmt.Errorf("answers cannot be translated to dialect %s", d)
}

// UpstreamError reads the error a provider of dialect d answered with
// status, headers and body, and restates it for a client: the provider's message is kept,
// the status is one the client's SDK understands (Anthropic's 529
// "overloaded" becomes 503 for OpenAI and Ollama clients).
func UpstreamError(d, client Dialect, status int, header http.Header, body []byte) *Error {
	msg := ""
	if gjson.ValidBytes(body) {
		root := gjson.ParseBytes(body)
		for _, path := range []string{"error.message", "message", "error"} {
			if v := root.Get(path); v.Type == gjson.String && v.Str != "" {
				msg = v.Str
				break
			}
		}
	}
	if d == Bedrock {
		// {"message"} or {"Message"}, the exception name in __type.
		status, msg = bedrockUpstreamError(status, header.Get("X-Amzn-Errortype"), body, msg)
	}
	retryAfter := 0
	if d == Gemini {
		// An array envelope too; google.rpc.RetryInfo's retryDelay.
		var m string
		if m, retryAfter = geminiError(body); m != "" {
			msg = m
		}
		// Gemini refuses a bad or expired key with 400 INVALID_ARGUMENT
		// and the reason API_KEY_INVALID: the gateway's credentials,
		// not the client's request.
		if status == http.StatusBadRequest && bytes.Contains(body, []byte(`"API_KEY_INVALID"`)) {
			status = http.StatusUnauthorized
		}
	}
	if msg == "" {
		msg = http.StatusText(status)
		if msg == "" {
			msg = fmt.Sprintf("status %d", status)
		}
	}
	if status == 529 && client != Anthropic {
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		// The provider refused the gateway's key, not the client's: a
		// 401 would make tools such as Claude Code ask their user to
		// log in again. The provider's words stay out: they may quote
		// the key (OpenAI shows its last characters) or, for AWS, the
		// signed request with its session token.
		return &Error{Status: http.StatusBadGateway, Message: fmt.Sprintf("the provider refused the gateway's credentials (status %d)", status)}
	}
	return &Error{Status: status, Message: "provider error: " + msg, RetryAfter: retryAfter}
}
