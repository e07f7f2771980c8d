package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"google.golang.org/genai"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// newGenAIClient returns a client of the official Go SDK for the Gemini
// API, google.golang.org/genai, pointed at the gateway. It sends the key
// as x-goog-api-key and calls /v1beta/models/{model}:generateContent and
// :streamGenerateContent?alt=sse; it does not retry (no RetryOptions).
func newGenAIClient(t *testing.T) *genai.Client {
	t.Helper()
	c, err := genai.NewClient(context.Background(), &genai.ClientConfig{
		APIKey:      clientKey,
		Backend:     genai.BackendGeminiAPI,
		HTTPOptions: genai.HTTPOptions{BaseURL: gatewayURL + "/"},
	})
	if err != nil {
		t.Fatalf("genai.NewClient: %v", err)
	}
	return c
}

// genaiWeatherTool declares the get_weather function.
func genaiWeatherTool() *genai.Tool {
	return &genai.Tool{FunctionDeclarations: []*genai.FunctionDeclaration{{
		Name:        "get_weather",
		Description: "Get the current weather in a city",
		Parameters: &genai.Schema{
			Type:       genai.TypeObject,
			Properties: map[string]*genai.Schema{"city": {Type: genai.TypeString}},
			Required:   []string{"city"},
		},
	}}}
}

// providerCallID is the id the provider of m gives the mock's tool call,
// "" for the dialects whose calls have none (Gemini, Ollama).
func providerCallID(m modelCase) string {
	switch m.dialect {
	case "openai", "responses":
		return "call_mock1"
	case "anthropic":
		return "toolu_mock1"
	case "bedrock":
		return "tooluse_mock1"
	}
	return ""
}

// checkCallID checks id, the id a client of dialect client got for the
// mock's tool call from the provider of m: the provider's own where it
// gave one; where it gave none, one the gateway made up (any non-empty
// id), except on the pass-through path (a Gemini client of a Gemini
// provider), where the answer comes as the provider sent it.
func checkCallID(t *testing.T, client string, m modelCase, id string) {
	t.Helper()
	switch want := providerCallID(m); {
	case want != "":
		if id != want {
			t.Errorf("tool call id = %q, want the %s provider's %q", id, m.dialect, want)
		}
	case client == m.dialect:
		if id != "" {
			t.Errorf("tool call id = %q, want none (the %s provider sent none)", id, m.dialect)
		}
	case id == "":
		t.Errorf("tool call from the %s provider has no id, want one the gateway made up", m.dialect)
	}
}

// checkGenAICall checks that calls is exactly one get_weather call with
// args {"city":"Paris"} and the id checkCallID wants, and returns it.
func checkGenAICall(t *testing.T, m modelCase, calls []*genai.FunctionCall) *genai.FunctionCall {
	t.Helper()
	if len(calls) != 1 {
		t.Fatalf("got %d function calls, want 1: %s", len(calls), mustMarshal(calls))
	}
	call := calls[0]
	if call.Name != "get_weather" {
		t.Errorf("function call name = %q, want get_weather", call.Name)
	}
	checkCallID(t, "gemini", m, call.ID)
	args, err := json.Marshal(call.Args)
	if err != nil {
		t.Fatalf("function call args: %v", err)
	}
	checkArgs(t, string(args))
	return call
}

// checkGenAIUsage checks usageMetadata in the Gemini terms:
// promptTokenCount counts the cached tokens too, cachedContentTokenCount
// is what the provider of m reports as read from its cache (none for
// Ollama).
func checkGenAIUsage(t *testing.T, m modelCase, u *genai.GenerateContentResponseUsageMetadata) {
	t.Helper()
	if u == nil {
		t.Errorf("no usageMetadata")
		return
	}
	if u.PromptTokenCount != mockllm.InputTokens || u.CandidatesTokenCount != mockllm.OutputTokens {
		t.Errorf("usage promptTokenCount=%d candidatesTokenCount=%d, want %d and %d",
			u.PromptTokenCount, u.CandidatesTokenCount, mockllm.InputTokens, mockllm.OutputTokens)
	}
	if got, want := int64(u.CachedContentTokenCount), m.cachedTokens(); got != want {
		t.Errorf("usage cachedContentTokenCount=%d, want %d (%s provider)", got, want, m.dialect)
	}
	if got, want := u.TotalTokenCount, int32(mockllm.InputTokens+mockllm.OutputTokens); got != want {
		t.Errorf("usage totalTokenCount=%d, want %d", got, want)
	}
}

// genaiStream is what the chunks of a streamed answer added up to.
type genaiStream struct {
	chunks int
	text   string
	calls  []*genai.FunctionCall
	finish genai.FinishReason
	// usage is the last chunk's: Gemini's is cumulative.
	usage *genai.GenerateContentResponseUsageMetadata
}

// streamGenAI sends a streamed request and adds its chunks up; the
// stream must end without an error. Only the last chunk may carry a
// finishReason.
func streamGenAI(t *testing.T, client *genai.Client, model string, contents []*genai.Content, config *genai.GenerateContentConfig) genaiStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var s genaiStream
	for chunk, err := range client.Models.GenerateContentStream(ctx, model, contents, config) {
		if err != nil {
			t.Fatalf("stream after %d chunks: %v", s.chunks, err)
		}
		s.chunks++
		if s.finish != "" {
			t.Errorf("chunk %d follows the chunk with finishReason %s: %s", s.chunks, s.finish, mustMarshal(chunk))
		}
		if len(chunk.Candidates) > 0 {
			c := chunk.Candidates[0]
			if c.Content != nil {
				for _, p := range c.Content.Parts {
					s.text += p.Text
					if p.FunctionCall != nil {
						s.calls = append(s.calls, p.FunctionCall)
					}
				}
			}
			s.finish = c.FinishReason
		}
		if chunk.UsageMetadata != nil {
			s.usage = chunk.UsageMetadata
		}
	}
	if s.chunks == 0 {
		t.Fatalf("the stream had no chunk")
	}
	return s
}

// TestGenAIGo drives the gateway's Gemini endpoints with the official Go
// SDK, google.golang.org/genai, for each model, so against each provider
// dialect: text and a function call, streamed and not, with usage, and
// the function's result sent back with the call's id.
func TestGenAIGo(t *testing.T) {
	client := newGenAIClient(t)
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			before := len(mock.Requests())
			testGenAIGo(t, client, m)
			checkUpstream(t, m, before)
		})
	}
}

// testGenAIGo runs the genai checks against the model m.
func testGenAIGo(t *testing.T, client *genai.Client, m modelCase) {
	weather := []*genai.Content{genai.NewContentFromText("What is the weather in Paris?", genai.RoleUser)}
	hello := []*genai.Content{genai.NewContentFromText("Say hello.", genai.RoleUser)}
	tools := &genai.GenerateContentConfig{Tools: []*genai.Tool{genaiWeatherTool()}}

	t.Run("ToolCall", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.Models.GenerateContent(ctx, m.name, weather, tools)
		if err != nil {
			t.Fatalf("GenerateContent: %v", err)
		}
		if len(resp.Candidates) != 1 {
			t.Fatalf("got %d candidates, want 1: %s", len(resp.Candidates), mustMarshal(resp))
		}
		// Gemini ends a turn with a function call with STOP.
		if got := resp.Candidates[0].FinishReason; got != genai.FinishReasonStop {
			t.Errorf("finishReason = %q, want STOP", got)
		}
		checkGenAICall(t, m, resp.FunctionCalls())
		checkGenAIUsage(t, m, resp.UsageMetadata)
		if t.Failed() {
			t.Logf("response: %s", mustMarshal(resp))
		}
	})

	t.Run("StreamedToolCall", func(t *testing.T) {
		s := streamGenAI(t, client, m.name, weather, tools)
		if s.finish != genai.FinishReasonStop {
			t.Errorf("finishReason = %q, want STOP", s.finish)
		}
		if s.text != "" {
			t.Errorf("text %q beside the function call", s.text)
		}
		checkGenAICall(t, m, s.calls)
		checkGenAIUsage(t, m, s.usage)
	})

	t.Run("Text", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.Models.GenerateContent(ctx, m.name, hello, nil)
		if err != nil {
			t.Fatalf("GenerateContent: %v", err)
		}
		if len(resp.Candidates) != 1 {
			t.Fatalf("got %d candidates, want 1: %s", len(resp.Candidates), mustMarshal(resp))
		}
		if got := resp.Text(); got != mockllm.Text {
			t.Errorf("text = %q, want %q", got, mockllm.Text)
		}
		if got := resp.Candidates[0].FinishReason; got != genai.FinishReasonStop {
			t.Errorf("finishReason = %q, want STOP", got)
		}
		if calls := resp.FunctionCalls(); len(calls) != 0 {
			t.Errorf("unexpected function calls: %s", mustMarshal(calls))
		}
		checkGenAIUsage(t, m, resp.UsageMetadata)
		if t.Failed() {
			t.Logf("response: %s", mustMarshal(resp))
		}
	})

	t.Run("StreamedText", func(t *testing.T) {
		s := streamGenAI(t, client, m.name, hello, nil)
		if s.text != mockllm.Text {
			t.Errorf("concatenated text = %q, want %q", s.text, mockllm.Text)
		}
		if s.finish != genai.FinishReasonStop {
			t.Errorf("finishReason = %q, want STOP", s.finish)
		}
		if len(s.calls) != 0 {
			t.Errorf("unexpected function calls: %s", mustMarshal(s.calls))
		}
		checkGenAIUsage(t, m, s.usage)
	})

	t.Run("FunctionResponse", func(t *testing.T) {
		// The conversation goes on as an application's would: the model's
		// turn with its call as it came, then the function's result with
		// the call's id and name. The provider must get the result tied
		// to the call it made.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.Models.GenerateContent(ctx, m.name, weather, tools)
		if err != nil {
			t.Fatalf("GenerateContent: %v", err)
		}
		call := checkGenAICall(t, m, resp.FunctionCalls())
		contents := append(append([]*genai.Content(nil), weather...),
			resp.Candidates[0].Content,
			genai.NewContentFromParts([]*genai.Part{{FunctionResponse: &genai.FunctionResponse{
				ID: call.ID, Name: call.Name, Response: map[string]any{"output": "sunny, 21 °C"},
			}}}, genai.RoleUser))
		before := len(mock.Requests())
		if _, err := client.Models.GenerateContent(ctx, m.name, contents, tools); err != nil {
			t.Fatalf("GenerateContent with the function's result: %v", err)
		}
		reqs := mock.Requests()[before:]
		if len(reqs) != 1 {
			t.Fatalf("the mock got %d requests, want 1", len(reqs))
		}
		checkToolLink(t, m, reqs[0])
	})
}

// toolLinkPaths are, for each provider dialect, the gjson paths of the
// ids (or, in Ollama, which has none, the names) of the tool calls and
// of the tool results in a request body.
var toolLinkPaths = map[string][2]string{
	"openai":    {`messages.#.tool_calls.#.id`, `messages.#(role=="tool")#.tool_call_id`},
	"anthropic": {`messages.#.content.#(type=="tool_use")#.id`, `messages.#.content.#(type=="tool_result")#.tool_use_id`},
	"responses": {`input.#(type=="function_call")#.call_id`, `input.#(type=="function_call_output")#.call_id`},
	"bedrock":   {`messages.#.content.#.toolUse.toolUseId`, `messages.#.content.#.toolResult.toolUseId`},
	"gemini":    {`contents.#.parts.#.functionCall.name`, `contents.#.parts.#.functionResponse.name`},
	"ollama":    {`messages.#.tool_calls.#.function.name`, `messages.#(role=="tool")#.tool_name`},
}

// checkToolLink checks that r, a request carrying one tool call and its
// result, ties the result to the call the provider of m made: the same
// id on both, the provider's own where it gave one (names, in the
// dialects that link by name: Gemini, whose calls the mock sends without
// an id, and Ollama).
func checkToolLink(t *testing.T, m modelCase, r mockllm.Received) {
	t.Helper()
	paths := toolLinkPaths[m.dialect]
	calls := flatStrings(gjson.GetBytes(r.Body, paths[0]))
	results := flatStrings(gjson.GetBytes(r.Body, paths[1]))
	if len(calls) != 1 || len(results) != 1 || calls[0] != results[0] {
		t.Errorf("upstream request: tool calls %q (%s) and results %q (%s), want one each with the same value\nbody: %s",
			calls, paths[0], results, paths[1], r.Body)
		return
	}
	switch want := providerCallID(m); {
	case want == "":
		if calls[0] != "get_weather" {
			t.Errorf("upstream tool call name %q, want get_weather", calls[0])
		}
	case calls[0] != want:
		t.Errorf("upstream tool call id %q, want the provider's own %q", calls[0], want)
	}
}

// flatStrings returns the non-empty strings of r, arrays of arrays
// flattened.
func flatStrings(r gjson.Result) []string {
	var out []string
	var walk func(gjson.Result)
	walk = func(v gjson.Result) {
		switch {
		case v.IsArray():
			for _, e := range v.Array() {
				walk(e)
			}
		case v.Type == gjson.String && v.Str != "":
			out = append(out, v.Str)
		}
	}
	walk(r)
	return out
}

// TestGenAIGoError: a provider's 429, whatever its dialect, reaches a
// genai client as an APIError with code 429 and status
// RESOURCE_EXHAUSTED, streamed and not.
func TestGenAIGoError(t *testing.T) {
	client := newGenAIClient(t)
	hello := []*genai.Content{genai.NewContentFromText("Say hello.", genai.RoleUser)}
	for _, m := range models {
		t.Run(m.dialect, func(t *testing.T) {
			t.Parallel()
			for _, stream := range []bool{false, true} {
				rl := rateLimited("genai-go", stream, m)
				before := len(mock.Requests())
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var err error
				if stream {
					for _, e := range client.Models.GenerateContentStream(ctx, rl.name, hello, nil) {
						if e != nil {
							err = e
							break
						}
					}
				} else {
					_, err = client.Models.GenerateContent(ctx, rl.name, hello, nil)
				}
				cancel()
				var apiErr genai.APIError
				switch {
				case err == nil:
					t.Errorf("%s (stream %t): no error, want a 429", rl.name, stream)
				case !errors.As(err, &apiErr):
					t.Errorf("%s (stream %t): %v (%T), want a genai.APIError", rl.name, stream, err, err)
				case apiErr.Code != http.StatusTooManyRequests || apiErr.Status != "RESOURCE_EXHAUSTED" || apiErr.Message == "":
					t.Errorf("%s (stream %t): APIError code %d status %q message %q, want 429 RESOURCE_EXHAUSTED and a message",
						rl.name, stream, apiErr.Code, apiErr.Status, apiErr.Message)
				}
				// Requests of the parallel subtests interleave: only
				// that one of this model reached the mock.
				reached := false
				for _, r := range mock.Requests()[before:] {
					if model, _ := upstreamModel(r); upstreamDialect(r) == m.dialect && model == rl.upstream {
						reached = true
					}
				}
				if !reached {
					t.Errorf("%s (stream %t): no request reached the %s provider", rl.name, stream, m.dialect)
				}
			}
		})
	}
}

// mustMarshal is v as JSON, for failure messages.
func mustMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return strings.TrimSpace(err.Error())
	}
	return string(b)
}

// TestGenAINode drives the gateway's Gemini endpoints with the official
// JavaScript SDK, @google/genai, through js/gemini.mjs, once for each
// model.
func TestGenAINode(t *testing.T) {
	node := nodeOrSkip(t, "@google/genai")
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			runNodeScript(t, node, "gemini.mjs", m)
		})
	}
}

// TestGenAIGoBrokenStream: a stream the provider breaks off half-way,
// whatever its dialect, must not look complete to a genai client: the
// text that came, then an APIError (a server error), never a clean end.
func TestGenAIGoBrokenStream(t *testing.T) {
	client := newGenAIClient(t)
	hello := []*genai.Content{genai.NewContentFromText("Say hello.", genai.RoleUser)}
	for _, m := range models {
		t.Run(m.dialect, func(t *testing.T) {
			b := broken("genai-go", m)
			before := len(mock.Requests())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			text := ""
			var err error
			for chunk, e := range client.Models.GenerateContentStream(ctx, b.name, hello, nil) {
				if e != nil {
					err = e
					break
				}
				text += chunk.Text()
				if len(chunk.Candidates) > 0 && chunk.Candidates[0].FinishReason != "" {
					t.Errorf("chunk with finishReason %s in a broken stream", chunk.Candidates[0].FinishReason)
				}
			}
			if text == "" || text == mockllm.Text || !strings.HasPrefix(mockllm.Text, text) {
				t.Errorf("text before the break = %q, want a part of %q", text, mockllm.Text)
			}
			var apiErr genai.APIError
			switch {
			case err == nil:
				t.Errorf("the broken stream ended without an error")
			case !errors.As(err, &apiErr):
				t.Errorf("stream error %v (%T), want a genai.APIError", err, err)
			case apiErr.Code < 500 || apiErr.Message == "":
				t.Errorf("stream error: APIError code %d status %q message %q, want a server error with a message", apiErr.Code, apiErr.Status, apiErr.Message)
			}
			checkUpstream(t, b, before)
		})
	}
}
