package conformance

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/auth/bearer"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// clientAWSAccessKeyID is the access key of the Bedrock client that signs
// its requests (SigV4) instead of sending the gateway key as a bearer
// token: the gateway must not pass its signature on.
const clientAWSAccessKeyID = "AKIDCLIENTONLY000001"

// newBedrockClient returns a client of the official Go SDK for Bedrock's
// runtime (aws-sdk-go-v2/service/bedrockruntime) pointed at the gateway,
// sending the gateway key as a Bedrock API key (Authorization: Bearer),
// as AWS_BEARER_TOKEN_BEDROCK makes it do. The SDK sends a bearer token
// only over HTTPS, so it calls the gateway's HTTPS site. It does not
// retry.
func newBedrockClient() *bedrockruntime.Client {
	return bedrockruntime.New(bedrockruntime.Options{
		Region:                  awsRegion,
		BaseEndpoint:            aws.String(gatewayTLSURL),
		HTTPClient:              gatewayTLSClient,
		BearerAuthTokenProvider: bearer.StaticTokenProvider{Token: bearer.Token{Value: clientKey}},
		AuthSchemePreference:    []string{"httpBearerAuth"},
		Retryer:                 aws.NopRetryer{},
	})
}

// newSigV4BedrockClient returns a Bedrock client that signs its requests
// with static AWS credentials of its own (the SDK's default way), over
// plain HTTP: the gateway takes any credentials (no llm_budget here),
// strips them and signs again with its own.
func newSigV4BedrockClient() *bedrockruntime.Client {
	return bedrockruntime.New(bedrockruntime.Options{
		Region:       awsRegion,
		BaseEndpoint: aws.String(gatewayURL),
		Credentials:  credentials.NewStaticCredentialsProvider(clientAWSAccessKeyID, "client-aws-secret-never-upstream", ""),
		Retryer:      aws.NopRetryer{},
	})
}

// bedrockToolConfig declares the get_weather tool.
func bedrockToolConfig() *types.ToolConfiguration {
	return &types.ToolConfiguration{Tools: []types.Tool{&types.ToolMemberToolSpec{Value: types.ToolSpecification{
		Name:        aws.String("get_weather"),
		Description: aws.String("Get the current weather in a city"),
		InputSchema: &types.ToolInputSchemaMemberJson{Value: document.NewLazyDocument(map[string]any{
			"type":       "object",
			"properties": map[string]any{"city": map[string]any{"type": "string"}},
			"required":   []string{"city"},
		})},
	}}}}
}

// bedrockUserText is a user message of one text block.
func bedrockUserText(text string) types.Message {
	return types.Message{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}
}

// checkBedrockUsage checks the token counts in Bedrock's terms:
// inputTokens leaves out the tokens read from the cache, which
// cacheReadInputTokens counts (what the provider of m reports; none for
// Ollama), and totalTokens counts them all.
func checkBedrockUsage(t *testing.T, m modelCase, u *types.TokenUsage) {
	t.Helper()
	if u == nil {
		t.Errorf("no usage")
		return
	}
	n := func(p *int32) int64 {
		if p == nil {
			return 0
		}
		return int64(*p)
	}
	cached := m.cachedTokens()
	if got, want := n(u.InputTokens), mockllm.InputTokens-cached; got != want {
		t.Errorf("usage inputTokens=%d, want %d (%s provider, %d read from the cache)", got, want, m.dialect, cached)
	}
	if got := n(u.CacheReadInputTokens); got != cached {
		t.Errorf("usage cacheReadInputTokens=%d, want %d (%s provider)", got, cached, m.dialect)
	}
	if got := n(u.CacheWriteInputTokens); got != 0 {
		t.Errorf("usage cacheWriteInputTokens=%d, want 0", got)
	}
	if got := n(u.OutputTokens); got != mockllm.OutputTokens {
		t.Errorf("usage outputTokens=%d, want %d", got, mockllm.OutputTokens)
	}
	if got, want := n(u.TotalTokens), int64(mockllm.InputTokens+mockllm.OutputTokens); got != want {
		t.Errorf("usage totalTokens=%d, want %d", got, want)
	}
}

// checkBedrockToolUse checks that content is exactly one toolUse block of
// get_weather with input {"city":"Paris"} and the id checkCallID wants,
// and returns it.
func checkBedrockToolUse(t *testing.T, m modelCase, content []types.ContentBlock) types.ToolUseBlock {
	t.Helper()
	if len(content) != 1 {
		t.Fatalf("got %d content blocks, want 1 toolUse: %s", len(content), mustMarshal(content))
	}
	tu, ok := content[0].(*types.ContentBlockMemberToolUse)
	if !ok {
		t.Fatalf("content block is a %T, want a toolUse", content[0])
	}
	if name := aws.ToString(tu.Value.Name); name != "get_weather" {
		t.Errorf("toolUse name = %q, want get_weather", name)
	}
	checkCallID(t, "bedrock", m, aws.ToString(tu.Value.ToolUseId))
	if tu.Value.Input == nil {
		t.Errorf("toolUse has no input")
		return tu.Value
	}
	input, err := tu.Value.Input.MarshalSmithyDocument()
	if err != nil {
		t.Fatalf("toolUse input: %v", err)
	}
	checkArgs(t, string(input))
	return tu.Value
}

// checkBedrockText checks that content is exactly one text block with the
// mock's answer.
func checkBedrockText(t *testing.T, content []types.ContentBlock) {
	t.Helper()
	if len(content) != 1 {
		t.Fatalf("got %d content blocks, want 1 text: %s", len(content), mustMarshal(content))
	}
	text, ok := content[0].(*types.ContentBlockMemberText)
	if !ok {
		t.Fatalf("content block is a %T, want text", content[0])
	}
	if text.Value != mockllm.Text {
		t.Errorf("text = %q, want %q", text.Value, mockllm.Text)
	}
}

// converse sends in and returns the answer's message.
func converse(t *testing.T, client *bedrockruntime.Client, in *bedrockruntime.ConverseInput) (*bedrockruntime.ConverseOutput, types.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := client.Converse(ctx, in)
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok {
		t.Fatalf("output is a %T, want a message", out.Output)
	}
	if msg.Value.Role != types.ConversationRoleAssistant {
		t.Errorf("role = %q, want assistant", msg.Value.Role)
	}
	return out, msg.Value
}

// bedrockStream is what the events of a ConverseStream added up to.
type bedrockStream struct {
	types   []string
	text    string
	toolUse *types.ToolUseBlockStart
	input   string
	stop    types.StopReason
	usage   *types.TokenUsage
}

// converseStream sends in streamed and adds its events up. The stream
// must end without an error, start with messageStart (role assistant)
// and end with messageStop then metadata, as Bedrock's do; every content
// event must be for block 0.
func converseStream(t *testing.T, client *bedrockruntime.Client, in *bedrockruntime.ConverseStreamInput) bedrockStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := client.ConverseStream(ctx, in)
	if err != nil {
		t.Fatalf("ConverseStream: %v", err)
	}
	stream := out.GetStream()
	defer stream.Close()
	var s bedrockStream
	block := func(i *int32) {
		if aws.ToInt32(i) != 0 {
			t.Errorf("event %d for content block %d, want 0", len(s.types), aws.ToInt32(i))
		}
	}
	for ev := range stream.Events() {
		switch e := ev.(type) {
		case *types.ConverseStreamOutputMemberMessageStart:
			s.types = append(s.types, "messageStart")
			if e.Value.Role != types.ConversationRoleAssistant {
				t.Errorf("messageStart role = %q, want assistant", e.Value.Role)
			}
		case *types.ConverseStreamOutputMemberContentBlockStart:
			s.types = append(s.types, "contentBlockStart")
			block(e.Value.ContentBlockIndex)
			if tu, ok := e.Value.Start.(*types.ContentBlockStartMemberToolUse); ok {
				v := tu.Value
				s.toolUse = &v
			}
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			s.types = append(s.types, "contentBlockDelta")
			block(e.Value.ContentBlockIndex)
			switch d := e.Value.Delta.(type) {
			case *types.ContentBlockDeltaMemberText:
				s.text += d.Value
			case *types.ContentBlockDeltaMemberToolUse:
				s.input += aws.ToString(d.Value.Input)
			default:
				t.Errorf("contentBlockDelta of a %T", d)
			}
		case *types.ConverseStreamOutputMemberContentBlockStop:
			s.types = append(s.types, "contentBlockStop")
			block(e.Value.ContentBlockIndex)
		case *types.ConverseStreamOutputMemberMessageStop:
			s.types = append(s.types, "messageStop")
			s.stop = e.Value.StopReason
		case *types.ConverseStreamOutputMemberMetadata:
			s.types = append(s.types, "metadata")
			s.usage = e.Value.Usage
		default:
			t.Errorf("unexpected event %T", ev)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream after events %v: %v", s.types, err)
	}
	n := len(s.types)
	if n < 3 || s.types[0] != "messageStart" || s.types[n-2] != "messageStop" || s.types[n-1] != "metadata" {
		t.Errorf("events %v: want messageStart first, messageStop and metadata last", s.types)
	}
	return s
}

// TestBedrockGo drives the gateway's Bedrock Converse endpoints with the
// official Go SDK, aws-sdk-go-v2's bedrockruntime, for each model, so
// against each provider dialect: text and a tool call, streamed and not,
// with stop reasons and usage, the tool's result sent back with the
// call's id, and a client that signs with SigV4 instead of a bearer key.
func TestBedrockGo(t *testing.T) {
	client := newBedrockClient()
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			before := len(mock.Requests())
			testBedrockGo(t, client, m)
			checkUpstream(t, m, before)
		})
	}
}

// testBedrockGo runs the bedrockruntime checks against the model m.
func testBedrockGo(t *testing.T, client *bedrockruntime.Client, m modelCase) {
	weather := []types.Message{bedrockUserText("What is the weather in Paris?")}
	hello := []types.Message{bedrockUserText("Say hello.")}

	t.Run("ToolCall", func(t *testing.T) {
		out, msg := converse(t, client, &bedrockruntime.ConverseInput{ModelId: aws.String(m.name), Messages: weather, ToolConfig: bedrockToolConfig()})
		if out.StopReason != types.StopReasonToolUse {
			t.Errorf("stopReason = %q, want tool_use", out.StopReason)
		}
		checkBedrockToolUse(t, m, msg.Content)
		checkBedrockUsage(t, m, out.Usage)
	})

	t.Run("StreamedToolCall", func(t *testing.T) {
		s := converseStream(t, client, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(m.name), Messages: weather, ToolConfig: bedrockToolConfig()})
		if s.stop != types.StopReasonToolUse {
			t.Errorf("stopReason = %q, want tool_use", s.stop)
		}
		if s.text != "" {
			t.Errorf("text %q beside the tool call", s.text)
		}
		if s.toolUse == nil {
			t.Fatalf("no contentBlockStart with a toolUse (events %v)", s.types)
		}
		if name := aws.ToString(s.toolUse.Name); name != "get_weather" {
			t.Errorf("toolUse name = %q, want get_weather", name)
		}
		checkCallID(t, "bedrock", m, aws.ToString(s.toolUse.ToolUseId))
		checkArgs(t, s.input)
		checkBedrockUsage(t, m, s.usage)
	})

	t.Run("Text", func(t *testing.T) {
		out, msg := converse(t, client, &bedrockruntime.ConverseInput{ModelId: aws.String(m.name), Messages: hello})
		if out.StopReason != types.StopReasonEndTurn {
			t.Errorf("stopReason = %q, want end_turn", out.StopReason)
		}
		checkBedrockText(t, msg.Content)
		checkBedrockUsage(t, m, out.Usage)
	})

	t.Run("StreamedText", func(t *testing.T) {
		s := converseStream(t, client, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(m.name), Messages: hello})
		if s.text != mockllm.Text {
			t.Errorf("concatenated text = %q, want %q", s.text, mockllm.Text)
		}
		if s.toolUse != nil || s.input != "" {
			t.Errorf("unexpected tool use %s %q", mustMarshal(s.toolUse), s.input)
		}
		if s.stop != types.StopReasonEndTurn {
			t.Errorf("stopReason = %q, want end_turn", s.stop)
		}
		checkBedrockUsage(t, m, s.usage)
	})

	t.Run("ToolResult", func(t *testing.T) {
		// The conversation goes on as an application's would: the
		// assistant's message as it came, then the tool's result with
		// the toolUseId. The provider must get the result tied to the
		// call it made.
		_, msg := converse(t, client, &bedrockruntime.ConverseInput{ModelId: aws.String(m.name), Messages: weather, ToolConfig: bedrockToolConfig()})
		tu := checkBedrockToolUse(t, m, msg.Content)
		messages := append(append([]types.Message(nil), weather...), msg, types.Message{
			Role: types.ConversationRoleUser,
			Content: []types.ContentBlock{&types.ContentBlockMemberToolResult{Value: types.ToolResultBlock{
				ToolUseId: tu.ToolUseId,
				Content:   []types.ToolResultContentBlock{&types.ToolResultContentBlockMemberText{Value: "sunny, 21 °C"}},
			}}},
		})
		before := len(mock.Requests())
		converse(t, client, &bedrockruntime.ConverseInput{ModelId: aws.String(m.name), Messages: messages, ToolConfig: bedrockToolConfig()})
		reqs := mock.Requests()[before:]
		if len(reqs) != 1 {
			t.Fatalf("the mock got %d requests, want 1", len(reqs))
		}
		checkToolLink(t, m, reqs[0])
	})

	t.Run("SigV4Client", func(t *testing.T) {
		c := newSigV4BedrockClient()
		out, msg := converse(t, c, &bedrockruntime.ConverseInput{ModelId: aws.String(m.name), Messages: hello})
		if out.StopReason != types.StopReasonEndTurn {
			t.Errorf("stopReason = %q, want end_turn", out.StopReason)
		}
		checkBedrockText(t, msg.Content)
		s := converseStream(t, c, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(m.name), Messages: hello})
		if s.text != mockllm.Text {
			t.Errorf("streamed text = %q, want %q", s.text, mockllm.Text)
		}
	})
}

// TestBedrockGoError: a provider's 429, whatever its dialect, reaches a
// bedrockruntime client as a ThrottlingException with HTTP status 429,
// from Converse and from ConverseStream.
func TestBedrockGoError(t *testing.T) {
	client := newBedrockClient()
	hello := []types.Message{bedrockUserText("Say hello.")}
	for _, m := range models {
		t.Run(m.dialect, func(t *testing.T) {
			t.Parallel()
			for _, stream := range []bool{false, true} {
				rl := rateLimited("bedrock-go", stream, m)
				before := len(mock.Requests())
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				var err error
				if stream {
					var out *bedrockruntime.ConverseStreamOutput
					out, err = client.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(rl.name), Messages: hello})
					if err == nil {
						// An error must come as the answer, not as an
						// exception event in a stream that began.
						for range out.GetStream().Events() {
						}
						err = out.GetStream().Err()
						out.GetStream().Close()
						t.Errorf("%s: ConverseStream began a stream (its error: %v), want a 429", rl.name, err)
						cancel()
						continue
					}
				} else {
					_, err = client.Converse(ctx, &bedrockruntime.ConverseInput{ModelId: aws.String(rl.name), Messages: hello})
				}
				cancel()
				var throttled *types.ThrottlingException
				var resp *awshttp.ResponseError
				switch {
				case err == nil:
					t.Errorf("%s (stream %t): no error, want a ThrottlingException", rl.name, stream)
				case !errors.As(err, &throttled):
					t.Errorf("%s (stream %t): %v (%T), want a *types.ThrottlingException", rl.name, stream, err, err)
				case !errors.As(err, &resp) || resp.HTTPStatusCode() != http.StatusTooManyRequests:
					t.Errorf("%s (stream %t): %v, want HTTP status 429", rl.name, stream, err)
				case strings.TrimSpace(aws.ToString(throttled.Message)) == "":
					t.Errorf("%s (stream %t): ThrottlingException without a message", rl.name, stream)
				}
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

// TestBedrockGoBrokenStream: a stream the provider breaks off half-way,
// whatever its dialect, must not look complete to a bedrockruntime
// client: the text that came, then the stream's error, a
// ModelStreamErrorException (Bedrock's exception for a model stream that
// failed), and no messageStop.
func TestBedrockGoBrokenStream(t *testing.T) {
	client := newBedrockClient()
	hello := []types.Message{bedrockUserText("Say hello.")}
	for _, m := range models {
		t.Run(m.dialect, func(t *testing.T) {
			b := broken("bedrock-go", m)
			before := len(mock.Requests())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := client.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{ModelId: aws.String(b.name), Messages: hello})
			if err != nil {
				t.Fatalf("ConverseStream: %v", err)
			}
			stream := out.GetStream()
			defer stream.Close()
			text := ""
			for ev := range stream.Events() {
				switch e := ev.(type) {
				case *types.ConverseStreamOutputMemberContentBlockDelta:
					if d, ok := e.Value.Delta.(*types.ContentBlockDeltaMemberText); ok {
						text += d.Value
					}
				case *types.ConverseStreamOutputMemberMessageStop, *types.ConverseStreamOutputMemberMetadata:
					t.Errorf("%T in a broken stream", ev)
				}
			}
			if text == "" || text == mockllm.Text || !strings.HasPrefix(mockllm.Text, text) {
				t.Errorf("text before the break = %q, want a part of %q", text, mockllm.Text)
			}
			var streamErr *types.ModelStreamErrorException
			switch err := stream.Err(); {
			case err == nil:
				t.Errorf("the broken stream ended without an error")
			case !errors.As(err, &streamErr):
				t.Errorf("stream error %v (%T), want a *types.ModelStreamErrorException", err, err)
			case strings.TrimSpace(aws.ToString(streamErr.Message)) == "":
				t.Errorf("ModelStreamErrorException without a message")
			}
			checkUpstream(t, b, before)
		})
	}
}
