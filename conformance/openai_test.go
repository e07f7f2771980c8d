package conformance

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// weatherTool declares the get_weather function tool.
func weatherTool() openai.ChatCompletionToolUnionParam {
	return openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:        "get_weather",
		Description: openai.String("Get the current weather in a city"),
		Parameters: shared.FunctionParameters{
			"type": "object",
			"properties": map[string]any{
				"city": map[string]any{"type": "string"},
			},
			"required": []string{"city"},
		},
	})
}

// newClient returns an openai-go client pointed at the gateway.
func newClient() openai.Client {
	return openai.NewClient(
		option.WithBaseURL(gatewayURL+"/v1/"),
		option.WithAPIKey(clientKey),
		option.WithMaxRetries(0),
	)
}

// checkToolCall checks that calls is exactly one get_weather call with
// arguments {"city":"Paris"}.
func checkToolCall(t *testing.T, calls []openai.ChatCompletionMessageToolCallUnion) {
	t.Helper()
	if len(calls) != 1 {
		t.Fatalf("got %d tool calls, want 1: %+v", len(calls), calls)
	}
	call := calls[0]
	if call.Function.Name != "get_weather" {
		t.Errorf("tool call name = %q, want get_weather", call.Function.Name)
	}
	if call.ID == "" {
		t.Errorf("tool call has no id")
	}
	checkArgs(t, call.Function.Arguments)
}

// checkUsage checks the token counts the mock reports, in OpenAI's terms:
// prompt_tokens counts the cached tokens too.
func checkUsage(t *testing.T, u openai.CompletionUsage) {
	t.Helper()
	if u.PromptTokens != mockllm.InputTokens || u.CompletionTokens != mockllm.OutputTokens {
		t.Errorf("usage prompt_tokens=%d completion_tokens=%d, want %d and %d",
			u.PromptTokens, u.CompletionTokens, mockllm.InputTokens, mockllm.OutputTokens)
	}
}

// TestOpenAIGo drives the gateway with the official Go SDK, openai-go,
// for each model, so against each provider dialect.
func TestOpenAIGo(t *testing.T) {
	client := newClient()
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			before := len(mock.Requests())
			testOpenAIGo(t, client, m)
			checkUpstream(t, m, before)
		})
	}
}

// testOpenAIGo runs the openai-go checks against the model m.
func testOpenAIGo(t *testing.T, client openai.Client, m modelCase) {
	params := openai.ChatCompletionNewParams{
		Model: m.name,
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.UserMessage("What is the weather in Paris?"),
		},
		Tools: []openai.ChatCompletionToolUnionParam{weatherTool()},
	}
	textParams := params
	textParams.Tools = nil
	textParams.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")}

	t.Run("ToolCall", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatalf("chat.completions.create: %v", err)
		}
		if len(resp.Choices) != 1 {
			t.Fatalf("got %d choices, want 1: %s", len(resp.Choices), resp.RawJSON())
		}
		choice := resp.Choices[0]
		if choice.FinishReason != "tool_calls" {
			t.Errorf("finish_reason = %q, want tool_calls", choice.FinishReason)
		}
		checkToolCall(t, choice.Message.ToolCalls)
		checkUsage(t, resp.Usage)
		if t.Failed() {
			t.Logf("response: %s", resp.RawJSON())
		}
	})

	t.Run("StreamedToolCall", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		defer stream.Close()
		var acc openai.ChatCompletionAccumulator
		var finished []openai.FinishedChatCompletionToolCall
		chunks := 0
		for stream.Next() {
			chunk := stream.Current()
			chunks++
			if !acc.AddChunk(chunk) {
				t.Fatalf("accumulator rejected chunk %d: %s", chunks, chunk.RawJSON())
			}
			if call, ok := acc.JustFinishedToolCall(); ok {
				finished = append(finished, call)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream after %d chunks: %v", chunks, err)
		}
		if len(acc.Choices) != 1 {
			t.Fatalf("accumulated %d choices, want 1", len(acc.Choices))
		}
		choice := acc.Choices[0]
		if choice.FinishReason != "tool_calls" {
			t.Errorf("finish_reason = %q, want tool_calls", choice.FinishReason)
		}
		checkToolCall(t, choice.Message.ToolCalls)
		if len(finished) != 1 {
			t.Errorf("accumulator reported %d finished tool calls, want 1", len(finished))
		} else {
			if finished[0].Name != "get_weather" {
				t.Errorf("finished tool call name = %q, want get_weather", finished[0].Name)
			}
			checkArgs(t, finished[0].Arguments)
		}
		checkUsage(t, acc.Usage)
	})

	t.Run("Text", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := client.Chat.Completions.New(ctx, textParams)
		if err != nil {
			t.Fatalf("chat.completions.create: %v", err)
		}
		if len(resp.Choices) != 1 {
			t.Fatalf("got %d choices, want 1: %s", len(resp.Choices), resp.RawJSON())
		}
		choice := resp.Choices[0]
		if choice.Message.Content != mockllm.Text {
			t.Errorf("content = %q, want %q", choice.Message.Content, mockllm.Text)
		}
		if choice.FinishReason != "stop" {
			t.Errorf("finish_reason = %q, want stop", choice.FinishReason)
		}
		if len(choice.Message.ToolCalls) != 0 {
			t.Errorf("unexpected tool calls: %+v", choice.Message.ToolCalls)
		}
		checkUsage(t, resp.Usage)
		if t.Failed() {
			t.Logf("response: %s", resp.RawJSON())
		}
	})

	t.Run("StreamedText", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p := textParams
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		defer stream.Close()
		var acc openai.ChatCompletionAccumulator
		var content strings.Builder
		chunks := 0
		for stream.Next() {
			chunk := stream.Current()
			chunks++
			if !acc.AddChunk(chunk) {
				t.Fatalf("accumulator rejected chunk %d: %s", chunks, chunk.RawJSON())
			}
			for _, c := range chunk.Choices {
				content.WriteString(c.Delta.Content)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream after %d chunks: %v", chunks, err)
		}
		if len(acc.Choices) != 1 {
			t.Fatalf("accumulated %d choices, want 1", len(acc.Choices))
		}
		choice := acc.Choices[0]
		if choice.Message.Content != mockllm.Text {
			t.Errorf("accumulated content = %q, want %q", choice.Message.Content, mockllm.Text)
		}
		if content.String() != mockllm.Text {
			t.Errorf("concatenated deltas = %q, want %q", content.String(), mockllm.Text)
		}
		if choice.FinishReason != "stop" {
			t.Errorf("finish_reason = %q, want stop", choice.FinishReason)
		}
		if len(choice.Message.ToolCalls) != 0 {
			t.Errorf("unexpected tool calls: %+v", choice.Message.ToolCalls)
		}
		checkUsage(t, acc.Usage)
	})
}

// TestOpenAINode drives the gateway with the official JavaScript SDK
// through js/openai_chat.mjs, once for each model.
func TestOpenAINode(t *testing.T) {
	node := nodeOrSkip(t, "openai")
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			runNodeScript(t, node, "openai_chat.mjs", m)
		})
	}
}
