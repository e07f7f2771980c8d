package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// responsesWeatherTool declares the get_weather function tool in the
// Responses shape: name and parameters at the top level, not nested under
// "function" as in Chat Completions.
func responsesWeatherTool() responses.ToolUnionParam {
	return responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{
		Name:        "get_weather",
		Description: openai.String("Get the current weather in a city"),
		Parameters: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"city": map[string]any{"type": "string"},
			},
			"required": []string{"city"},
		},
	}}
}

// describeErr returns err with, for an API error, the status and the body
// the gateway answered (openai.Error's own message has the status only).
func describeErr(err error) string {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("%v: %s", err, apiErr.RawJSON())
	}
	return err.Error()
}

// checkResponsesToolCall checks that r, a finished response, is completed
// and that its output is exactly one completed get_weather function_call
// item with a call_id and arguments {"city":"Paris"}.
func checkResponsesToolCall(t *testing.T, r *responses.Response) {
	t.Helper()
	if r.Status != responses.ResponseStatusCompleted {
		t.Errorf("status = %q, want completed", r.Status)
	}
	if len(r.Output) != 1 {
		t.Fatalf("got %d output items, want 1 function_call: %s", len(r.Output), r.RawJSON())
	}
	item := r.Output[0]
	if item.Type != "function_call" {
		t.Fatalf("output item type = %q, want function_call: %s", item.Type, item.RawJSON())
	}
	if item.Name != "get_weather" {
		t.Errorf("function_call name = %q, want get_weather", item.Name)
	}
	if item.CallID == "" {
		t.Errorf("function_call has no call_id: %s", item.RawJSON())
	}
	if item.Status != "completed" {
		t.Errorf("function_call status = %q, want completed", item.Status)
	}
	checkArgs(t, item.Arguments.OfString)
	if text := r.OutputText(); text != "" {
		t.Errorf("output text = %q next to the tool call, want none", text)
	}
}

// checkResponsesText checks that r, a finished response, is completed and
// that its output is exactly one assistant message item with one
// output_text part holding the mock's answer.
func checkResponsesText(t *testing.T, r *responses.Response) {
	t.Helper()
	if r.Status != responses.ResponseStatusCompleted {
		t.Errorf("status = %q, want completed", r.Status)
	}
	if len(r.Output) != 1 {
		t.Fatalf("got %d output items, want 1 message: %s", len(r.Output), r.RawJSON())
	}
	item := r.Output[0]
	if item.Type != "message" || item.Role != "assistant" {
		t.Fatalf("output item type %q role %q, want an assistant message: %s", item.Type, item.Role, item.RawJSON())
	}
	if len(item.Content) != 1 || item.Content[0].Type != "output_text" {
		t.Fatalf("message content = %s, want one output_text part", item.RawJSON())
	}
	if got := item.Content[0].Text; got != mockllm.Text {
		t.Errorf("output_text = %q, want %q", got, mockllm.Text)
	}
	if got := r.OutputText(); got != mockllm.Text {
		t.Errorf("OutputText() = %q, want %q", got, mockllm.Text)
	}
}

// checkResponsesUsage checks the token counts the mock reports, in the
// Responses terms: input_tokens counts the cached tokens too, and
// input_tokens_details.cached_tokens is what the provider of m reports as
// read from its cache (none for Ollama).
func checkResponsesUsage(t *testing.T, m modelCase, u responses.ResponseUsage) {
	t.Helper()
	if u.InputTokens != mockllm.InputTokens || u.OutputTokens != mockllm.OutputTokens {
		t.Errorf("usage input_tokens=%d output_tokens=%d, want %d and %d",
			u.InputTokens, u.OutputTokens, mockllm.InputTokens, mockllm.OutputTokens)
	}
	if got, want := u.InputTokensDetails.CachedTokens, m.cachedTokens(); got != want {
		t.Errorf("usage input_tokens_details.cached_tokens=%d, want %d (%s provider)", got, want, m.dialect)
	}
	if got, want := u.TotalTokens, int64(mockllm.InputTokens+mockllm.OutputTokens); got != want {
		t.Errorf("usage total_tokens=%d, want %d", got, want)
	}
}

// TestResponsesGo drives the gateway's OpenAI Responses endpoint with the
// responses package of the official Go SDK, openai-go, for each model, so
// against each provider dialect.
func TestResponsesGo(t *testing.T) {
	client := newClient()
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			before := len(mock.Requests())
			testResponsesGo(t, client, m)
			checkUpstream(t, m, before)
		})
	}
}

// streamedResponse is what streamResponse collected from a stream.
type streamedResponse struct {
	// response is the response of the response.completed event.
	response *responses.Response
	// types are the event types in order.
	types []string
	// text and args are the concatenated output_text and
	// function_call_arguments deltas.
	text, args string
}

// streamResponse sends p streamed and checks the event lifecycle: the
// sequence numbers count up by one from 0, response.created comes first
// and response.completed last, every delta and done event names an output
// index that an output_item.added opened, no index is opened twice, and
// every item is done before the end. The openai-go SDK's own Responses
// accumulator is fed the same events as a second opinion.
func streamResponse(t *testing.T, client openai.Client, p responses.ResponseNewParams) streamedResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := client.Responses.NewStreaming(ctx, p)
	defer s.Close()
	var (
		got  streamedResponse
		text strings.Builder
		args strings.Builder
		acc  responses.ResponseAccumulator
		open = map[int64]string{} // output index -> item type, until done
		done = map[int64]bool{}
	)
	for s.Next() {
		ev := s.Current()
		n := len(got.types)
		got.types = append(got.types, ev.Type)
		if ev.SequenceNumber != int64(n) {
			t.Errorf("event %d (%s) has sequence_number %d, want %d", n, ev.Type, ev.SequenceNumber, n)
		}
		if got.response != nil {
			t.Errorf("event %d (%s) after response.completed: %s", n, ev.Type, ev.RawJSON())
		}
		switch ev.Type {
		case "response.output_item.added":
			if _, ok := open[ev.OutputIndex]; ok || done[ev.OutputIndex] {
				t.Errorf("event %d opens output index %d a second time: %s", n, ev.OutputIndex, ev.RawJSON())
			}
			open[ev.OutputIndex] = ev.Item.Type
		case "response.output_item.done":
			if _, ok := open[ev.OutputIndex]; !ok {
				t.Errorf("event %d closes output index %d, which is not open: %s", n, ev.OutputIndex, ev.RawJSON())
			}
			delete(open, ev.OutputIndex)
			done[ev.OutputIndex] = true
		case "response.content_part.added", "response.content_part.done",
			"response.output_text.delta", "response.output_text.done",
			"response.function_call_arguments.delta", "response.function_call_arguments.done":
			if _, ok := open[ev.OutputIndex]; !ok {
				t.Errorf("event %d (%s) is for output index %d, which is not open: %s", n, ev.Type, ev.OutputIndex, ev.RawJSON())
			}
			switch ev.Type {
			case "response.output_text.delta":
				text.WriteString(ev.Delta)
			case "response.function_call_arguments.delta":
				args.WriteString(ev.Delta)
			}
		case "response.completed":
			r := ev.Response
			got.response = &r
		case "error", "response.failed", "response.incomplete":
			t.Errorf("event %d is %s: %s", n, ev.Type, ev.RawJSON())
		}
		var serverEvent responses.ResponsesServerEventUnion
		if err := json.Unmarshal([]byte(ev.RawJSON()), &serverEvent); err != nil {
			t.Errorf("event %d (%s) does not decode as a Responses server event: %v", n, ev.Type, err)
		} else if err := acc.AddEvent(serverEvent); err != nil {
			t.Errorf("openai-go ResponseAccumulator rejected event %d (%s): %v\nevent: %s", n, ev.Type, err, ev.RawJSON())
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream after %d events (%v): %s", len(got.types), got.types, describeErr(err))
	}
	if len(got.types) == 0 || got.types[0] != "response.created" || got.types[len(got.types)-1] != "response.completed" {
		t.Fatalf("events %v: want response.created first and response.completed last", got.types)
	}
	if len(open) != 0 {
		t.Errorf("output items %v were added but never done (events %v)", open, got.types)
	}
	if snap := acc.Snapshot(); snap.TerminalEvent != "response.completed" {
		t.Errorf("openai-go ResponseAccumulator saw terminal event %q, want response.completed", snap.TerminalEvent)
	}
	got.text, got.args = text.String(), args.String()
	return got
}

// testResponsesGo runs the openai-go Responses checks against the model m.
func testResponsesGo(t *testing.T, client openai.Client, m modelCase) {
	params := responses.ResponseNewParams{
		Model: m.name,
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage("What is the weather in Paris?", responses.EasyInputMessageRoleUser),
		}},
		Tools: []responses.ToolUnionParam{responsesWeatherTool()},
		Store: openai.Bool(false),
	}
	// The text requests leave store out: on the pass-through path (to a
	// Responses provider) the gateway sends what the client sent.
	textParams := responses.ResponseNewParams{
		Model:        m.name,
		Instructions: openai.String("You are a friendly assistant."),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hello.")},
	}

	t.Run("ToolCall", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.Responses.New(ctx, params)
		if err != nil {
			t.Fatalf("responses.create: %s", describeErr(err))
		}
		checkResponsesToolCall(t, resp)
		checkResponsesUsage(t, m, resp.Usage)
		if t.Failed() {
			t.Logf("response: %s", resp.RawJSON())
		}
	})

	t.Run("StreamedToolCall", func(t *testing.T) {
		got := streamResponse(t, client, params)
		checkResponsesToolCall(t, got.response)
		checkArgs(t, got.args)
		if got.text != "" {
			t.Errorf("output_text deltas %q next to the tool call, want none", got.text)
		}
		checkResponsesUsage(t, m, got.response.Usage)
		if t.Failed() {
			t.Logf("events: %v\nresponse.completed: %s", got.types, got.response.RawJSON())
		}
	})

	t.Run("Text", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.Responses.New(ctx, textParams)
		if err != nil {
			t.Fatalf("responses.create: %s", describeErr(err))
		}
		checkResponsesText(t, resp)
		checkResponsesUsage(t, m, resp.Usage)
		if t.Failed() {
			t.Logf("response: %s", resp.RawJSON())
		}
	})

	t.Run("StreamedText", func(t *testing.T) {
		got := streamResponse(t, client, textParams)
		checkResponsesText(t, got.response)
		if got.text != mockllm.Text {
			t.Errorf("concatenated output_text deltas = %q, want %q", got.text, mockllm.Text)
		}
		checkResponsesUsage(t, m, got.response.Usage)
		if t.Failed() {
			t.Logf("events: %v\nresponse.completed: %s", got.types, got.response.RawJSON())
		}
	})
}

// TestResponsesPreviousResponseID checks that the gateway, which keeps no
// conversation state, refuses previous_response_id for every model it must
// translate for, streamed or not: HTTP 400 with an OpenAI error envelope
// (message, type, param and code) that names previous_response_id, both on
// the wire and as openai-go sees it, and nothing reaches the provider. To a
// Responses provider (the pass-through path) the field goes through: that
// provider keeps the state.
func TestResponsesPreviousResponseID(t *testing.T) {
	client := newClient()
	for _, m := range models {
		if m.dialect == "responses" {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			before := len(mock.Requests())
			for _, stream := range []bool{false, true} {
				body := fmt.Sprintf(`{"model":%q,"input":"And in Lyon?","previous_response_id":"resp_abc123","store":false,"stream":%t}`, m.name, stream)
				req, err := http.NewRequest(http.MethodPost, gatewayURL+"/v1/responses", strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+clientKey)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				checkPreviousResponseIDError(t, fmt.Sprintf("POST /v1/responses %s", body), resp.StatusCode, resp.Header.Get("Content-Type"), raw)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := client.Responses.New(ctx, responses.ResponseNewParams{
				Model:              m.name,
				Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("And in Lyon?")},
				PreviousResponseID: openai.String("resp_abc123"),
				Store:              openai.Bool(false),
			})
			var apiErr *openai.Error
			switch {
			case err == nil:
				t.Errorf("openai-go responses.create with previous_response_id succeeded, want a 400")
			case !errors.As(err, &apiErr):
				t.Errorf("openai-go responses.create with previous_response_id: %v, want an *openai.Error", err)
			case apiErr.StatusCode != http.StatusBadRequest || apiErr.Param != "previous_response_id" ||
				!strings.Contains(apiErr.Message, "previous_response_id"):
				t.Errorf("openai-go responses.create with previous_response_id: %s, want 400 with param previous_response_id", describeErr(err))
			}

			if reqs := mock.Requests(); len(reqs) != before {
				for _, r := range reqs[before:] {
					t.Errorf("a refused request reached the provider: %s %s %s", r.Method, r.Path, r.Body)
				}
			}
		})
	}
}

// checkPreviousResponseIDError checks the gateway's answer to request
// (described for the failure message), which carried previous_response_id:
// status 400 and an OpenAI error envelope naming the field.
func checkPreviousResponseIDError(t *testing.T, request string, status int, contentType string, body []byte) {
	t.Helper()
	if status != http.StatusBadRequest || !strings.HasPrefix(contentType, "application/json") {
		t.Errorf("%s: status %d, Content-Type %q, want 400 and application/json; body %s", request, status, contentType, body)
		return
	}
	var envelope struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil || envelope.Error == nil {
		t.Errorf("%s: body is not an OpenAI error envelope {\"error\":{...}}: %s", request, body)
		return
	}
	for _, key := range []string{"message", "type", "param", "code"} {
		if _, ok := envelope.Error[key]; !ok {
			t.Errorf("%s: error has no %q: %s", request, key, body)
		}
	}
	var message, typ, param string
	_ = json.Unmarshal(envelope.Error["message"], &message)
	_ = json.Unmarshal(envelope.Error["type"], &typ)
	_ = json.Unmarshal(envelope.Error["param"], &param)
	if !strings.Contains(message, "previous_response_id") {
		t.Errorf("%s: error message %q does not mention previous_response_id", request, message)
	}
	if typ == "" {
		t.Errorf("%s: error type is empty or not a string: %s", request, body)
	}
	if param != "previous_response_id" {
		t.Errorf("%s: error param = %q, want previous_response_id", request, param)
	}
}

// TestResponsesNode drives the gateway's OpenAI Responses endpoint with
// the official JavaScript SDK through js/openai_responses.mjs, once for
// each model.
func TestResponsesNode(t *testing.T) {
	node := nodeOrSkip(t, "openai")
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			runNodeScript(t, node, "openai_responses.mjs", m)
		})
	}
}

// TestResponsesProviderState: requests translated for a Responses provider
// are stateless (store: false); a Responses client's own request passes
// through with its previous_response_id and store as it sent them.
func TestResponsesProviderState(t *testing.T) {
	var m modelCase
	for _, c := range models {
		if c.dialect == "responses" {
			m = c
		}
	}
	client := newClient()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := len(mock.Requests())
	if _, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    m.name,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
	}); err != nil {
		t.Fatalf("chat completion to %s: %v", m.name, err)
	}
	reqs := mock.Requests()[before:]
	if len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), `"store":false`) {
		t.Errorf("translated request to the Responses provider is not stateless: %v", reqs)
	}
	before = len(mock.Requests())
	if _, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:              m.name,
		Input:              responses.ResponseNewParamsInputUnion{OfString: openai.String("And in Lyon?")},
		PreviousResponseID: openai.String("resp_abc123"),
	}); err != nil {
		t.Fatalf("pass-through with previous_response_id: %v", err)
	}
	reqs = mock.Requests()[before:]
	if len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), `"previous_response_id":"resp_abc123"`) {
		t.Errorf("previous_response_id did not reach the Responses provider: %v", reqs)
	}
}
