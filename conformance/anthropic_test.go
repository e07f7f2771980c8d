package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// newAnthropicClient returns an anthropic-sdk-go client pointed at the
// gateway. The SDK adds /v1/messages to the base URL itself and sends the
// key as X-Api-Key with anthropic-version 2023-06-01.
func newAnthropicClient() anthropic.Client {
	return anthropic.NewClient(
		option.WithBaseURL(gatewayURL+"/"),
		option.WithAPIKey(clientKey),
		option.WithMaxRetries(0),
	)
}

// anthropicWeatherTool declares the get_weather tool in Anthropic's shape.
func anthropicWeatherTool() anthropic.ToolUnionParam {
	return anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
		Name:        "get_weather",
		Description: anthropic.String("Get the current weather in a city"),
		InputSchema: anthropic.ToolInputSchemaParam{
			Properties: map[string]any{
				"city": map[string]any{"type": "string"},
			},
			Required: []string{"city"},
		},
	}}
}

// checkAnthropicToolUse checks that content is exactly one get_weather
// tool_use block with input {"city":"Paris"}.
func checkAnthropicToolUse(t *testing.T, content []anthropic.ContentBlockUnion) {
	t.Helper()
	if len(content) != 1 {
		t.Fatalf("got %d content blocks, want 1 tool_use: %+v", len(content), content)
	}
	block := content[0]
	if block.Type != "tool_use" {
		t.Fatalf("content block type = %q, want tool_use", block.Type)
	}
	if block.Name != "get_weather" {
		t.Errorf("tool_use name = %q, want get_weather", block.Name)
	}
	if block.ID == "" {
		t.Errorf("tool_use block has no id")
	}
	checkArgs(t, string(block.Input))
}

// checkAnthropicText checks that content is exactly one text block with
// the mock's answer.
func checkAnthropicText(t *testing.T, content []anthropic.ContentBlockUnion) {
	t.Helper()
	if len(content) != 1 || content[0].Type != "text" {
		t.Fatalf("content = %+v, want one text block", content)
	}
	if content[0].Text != mockllm.Text {
		t.Errorf("text = %q, want %q", content[0].Text, mockllm.Text)
	}
}

// checkAnthropicUsage checks the token counts the mock reports, in
// Anthropic's terms: input_tokens leaves out the tokens read from the
// cache, so input_tokens + cache_read_input_tokens is the mock's input.
// With an Ollama provider there is no cache count, so input_tokens alone
// is the whole input.
func checkAnthropicUsage(t *testing.T, m modelCase, u anthropic.Usage) {
	t.Helper()
	if got := u.InputTokens + u.CacheReadInputTokens; got != mockllm.InputTokens {
		t.Errorf("usage input_tokens=%d + cache_read_input_tokens=%d = %d, want %d",
			u.InputTokens, u.CacheReadInputTokens, got, mockllm.InputTokens)
	}
	if m.cachedTokens() == 0 && u.InputTokens != mockllm.InputTokens {
		t.Errorf("usage input_tokens=%d with an %s provider (no cache counts), want %d",
			u.InputTokens, m.dialect, mockllm.InputTokens)
	}
	if u.CacheCreationInputTokens != 0 {
		t.Errorf("usage cache_creation_input_tokens=%d, want 0", u.CacheCreationInputTokens)
	}
	if u.OutputTokens != mockllm.OutputTokens {
		t.Errorf("usage output_tokens=%d, want %d", u.OutputTokens, mockllm.OutputTokens)
	}
}

// TestAnthropicGo drives the gateway's Anthropic Messages endpoint with
// the official Go SDK, anthropic-sdk-go, for each model, so against each
// provider dialect.
func TestAnthropicGo(t *testing.T) {
	client := newAnthropicClient()
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			before := len(mock.Requests())
			testAnthropicGo(t, client, m)
			checkUpstream(t, m, before)
		})
	}
}

// testAnthropicGo runs the anthropic-sdk-go checks against the model m.
func testAnthropicGo(t *testing.T, client anthropic.Client, m modelCase) {
	params := anthropic.MessageNewParams{
		Model:     anthropic.Model(m.name),
		MaxTokens: 1024,
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather in Paris?")),
		},
		Tools: []anthropic.ToolUnionParam{anthropicWeatherTool()},
	}
	textParams := params
	textParams.Tools = nil
	textParams.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello."))}

	// stream sends p streamed and returns the message accumulated from
	// its events, which must start with message_start and end with
	// message_stop.
	stream := func(t *testing.T, p anthropic.MessageNewParams) anthropic.Message {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s := client.Messages.NewStreaming(ctx, p)
		defer s.Close()
		var msg anthropic.Message
		var types []string
		for s.Next() {
			event := s.Current()
			types = append(types, event.Type)
			if err := msg.Accumulate(event); err != nil {
				t.Fatalf("Message.Accumulate of event %d (%s): %v\nevent: %s", len(types), event.Type, err, event.RawJSON())
			}
		}
		if err := s.Err(); err != nil {
			t.Fatalf("stream after %d events (%v): %v", len(types), types, err)
		}
		if len(types) == 0 || types[0] != "message_start" || types[len(types)-1] != "message_stop" {
			t.Fatalf("events %v: want message_start first and message_stop last", types)
		}
		return msg
	}

	t.Run("ToolCall", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		msg, err := client.Messages.New(ctx, params)
		if err != nil {
			t.Fatalf("messages.create: %v", err)
		}
		if msg.StopReason != anthropic.StopReasonToolUse {
			t.Errorf("stop_reason = %q, want tool_use", msg.StopReason)
		}
		checkAnthropicToolUse(t, msg.Content)
		checkAnthropicUsage(t, m, msg.Usage)
		if t.Failed() {
			t.Logf("response: %s", msg.RawJSON())
		}
	})

	t.Run("StreamedToolCall", func(t *testing.T) {
		msg := stream(t, params)
		if msg.StopReason != anthropic.StopReasonToolUse {
			t.Errorf("stop_reason = %q, want tool_use", msg.StopReason)
		}
		checkAnthropicToolUse(t, msg.Content)
		checkAnthropicUsage(t, m, msg.Usage)
		if t.Failed() {
			t.Logf("accumulated: %s", msg.RawJSON())
		}
	})

	t.Run("Text", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		msg, err := client.Messages.New(ctx, textParams)
		if err != nil {
			t.Fatalf("messages.create: %v", err)
		}
		if msg.StopReason != anthropic.StopReasonEndTurn {
			t.Errorf("stop_reason = %q, want end_turn", msg.StopReason)
		}
		checkAnthropicText(t, msg.Content)
		checkAnthropicUsage(t, m, msg.Usage)
		if t.Failed() {
			t.Logf("response: %s", msg.RawJSON())
		}
	})

	t.Run("StreamedText", func(t *testing.T) {
		msg := stream(t, textParams)
		if msg.StopReason != anthropic.StopReasonEndTurn {
			t.Errorf("stop_reason = %q, want end_turn", msg.StopReason)
		}
		checkAnthropicText(t, msg.Content)
		checkAnthropicUsage(t, m, msg.Usage)
		if t.Failed() {
			t.Logf("accumulated: %s", msg.RawJSON())
		}
	})
}

// TestAnthropicNode drives the gateway's Anthropic Messages endpoint with
// the official JavaScript SDK, both the classic 0.x wire and the newest
// 1.x one, through js/anthropic_messages.mjs, once for each model.
func TestAnthropicNode(t *testing.T) {
	node := nodeOrSkip(t, "@anthropic-ai/sdk", "anthropic-classic")
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			runNodeScript(t, node, "anthropic_messages.mjs", m)
		})
	}
}
