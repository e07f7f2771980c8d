package dialects

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// request20 builds a 20-message conversation with tools in dialect d.
func request20(d Dialect) []byte {
	tools := []any{}
	for i := 0; i < 5; i++ {
		schema := map[string]any{"type": "object", "properties": map[string]any{"path": map[string]any{"type": "string"}, "line": map[string]any{"type": "integer"}}}
		if d == Anthropic {
			tools = append(tools, map[string]any{"name": fmt.Sprintf("tool_%d", i), "description": "does a thing", "input_schema": schema})
		} else if d == Responses {
			tools = append(tools, map[string]any{"type": "function", "name": fmt.Sprintf("tool_%d", i), "description": "does a thing", "parameters": schema})
		} else {
			tools = append(tools, map[string]any{"type": "function", "function": map[string]any{"name": fmt.Sprintf("tool_%d", i), "description": "does a thing", "parameters": schema}})
		}
	}
	text := strings.Repeat("Some code and prose. ", 20)
	var msgs []any
	for i := 0; len(msgs) < 20; i++ {
		id := fmt.Sprintf("call_%d", i)
		switch d {
		case Anthropic:
			msgs = append(msgs,
				map[string]any{"role": "user", "content": text},
				map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "text", "text": text}, map[string]any{"type": "tool_use", "id": id, "name": "tool_1", "input": map[string]any{"path": "a.go"}}}},
				map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": id, "content": text}}})
		case Responses:
			msgs = append(msgs,
				map[string]any{"role": "user", "content": text},
				map[string]any{"type": "function_call", "call_id": id, "name": "tool_1", "arguments": `{"path":"a.go"}`},
				map[string]any{"type": "function_call_output", "call_id": id, "output": text})
		case Ollama:
			msgs = append(msgs,
				map[string]any{"role": "user", "content": text},
				map[string]any{"role": "assistant", "content": text, "tool_calls": []any{map[string]any{"function": map[string]any{"name": "tool_1", "arguments": map[string]any{"path": "a.go"}}}}},
				map[string]any{"role": "tool", "tool_name": "tool_1", "content": text})
		default:
			msgs = append(msgs,
				map[string]any{"role": "user", "content": text},
				map[string]any{"role": "assistant", "content": text, "tool_calls": []any{map[string]any{"id": id, "type": "function", "function": map[string]any{"name": "tool_1", "arguments": `{"path":"a.go"}`}}}},
				map[string]any{"role": "tool", "tool_call_id": id, "content": text})
		}
	}
	key := "messages"
	if d == Responses {
		key = "input"
	}
	b, _ := json.Marshal(map[string]any{"model": "m", "max_tokens": 1000, key: msgs[:20], "tools": tools, "stream": true})
	return b
}

// BenchmarkTranslateRequest: a 20-message request with tools, each
// direction.
func BenchmarkTranslateRequest(b *testing.B) {
	for _, from := range ProviderDialects {
		in := request20(from)
		for _, to := range ProviderDialects {
			if from == to {
				continue
			}
			b.Run(string(from)+"-to-"+string(to), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in)))
				for b.Loop() {
					if _, err := TranslateRequest(from, to, in, EncodeOptions{Model: "x", DefaultMaxTokens: 100}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// stream1000 is a 1,000-event text stream in dialect d.
func stream1000(d Dialect) []byte {
	var s strings.Builder
	switch d {
	case OpenAI:
		s.WriteString(`data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
		for i := 0; i < 997; i++ {
			s.WriteString(`data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"token "},"finish_reason":null}],"usage":null}` + "\n\n")
		}
		s.WriteString(`data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
		s.WriteString(`data: {"id":"c","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":997}}` + "\n\ndata: [DONE]\n\n")
	case Anthropic:
		s.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":100,\"output_tokens\":1}}}\n\n")
		s.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
		for i := 0; i < 995; i++ {
			s.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"token \"}}\n\n")
		}
		s.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
		s.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":995}}\n\n")
		s.WriteString("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	case Responses:
		s.WriteString("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"m\",\"output\":[]}}\n\n")
		s.WriteString("event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[]}}\n\n")
		for i := 0; i < 997; i++ {
			fmt.Fprintf(&s, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"token \"}\n\n", i+2)
		}
		s.WriteString("event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":999,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"m\",\"output\":[],\"usage\":{\"input_tokens\":100,\"output_tokens\":997}}}\n\n")
	case Ollama:
		for i := 0; i < 999; i++ {
			s.WriteString(`{"model":"m","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":"token "},"done":false}` + "\n")
		}
		s.WriteString(`{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":100,"eval_count":999}` + "\n")
	case Gemini:
		for i := 0; i < 999; i++ {
			fmt.Fprintf(&s, "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"token \"}]},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":100,\"candidatesTokenCount\":%d},\"modelVersion\":\"m\",\"responseId\":\"r1\"}\r\n\r\n", i+1)
		}
		s.WriteString("data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":100,\"candidatesTokenCount\":999,\"totalTokenCount\":1099},\"modelVersion\":\"m\",\"responseId\":\"r1\"}\r\n\r\n")
	case Bedrock:
		var b []byte
		add := func(typ, payload string) {
			var err error
			if b, err = AppendEventStreamEvent(b, typ, []byte(payload)); err != nil {
				panic(err)
			}
		}
		add("messageStart", `{"role":"assistant"}`)
		for i := 0; i < 996; i++ {
			add("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"token "}}`)
		}
		add("contentBlockStop", `{"contentBlockIndex":0}`)
		add("messageStop", `{"stopReason":"end_turn"}`)
		add("metadata", `{"usage":{"inputTokens":100,"outputTokens":996,"totalTokens":1096},"metrics":{"latencyMs":9}}`)
		return b
	}
	return []byte(s.String())
}

// BenchmarkTranslateStream: a 1,000-event stream, each direction, fed in
// 4 KB reads as a proxy would.
func BenchmarkTranslateStream(b *testing.B) {
	for _, from := range ProviderDialects {
		in := stream1000(from)
		for _, to := range ProviderDialects {
			if from == to {
				continue
			}
			b.Run(string(from)+"-to-"+string(to), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in)))
				for b.Loop() {
					tr, _ := NewStreamTranslator(from, to, StreamOptions{Model: "m"})
					for i := 0; i < len(in); i += 4096 {
						tr.Write(in[i:min(i+4096, len(in))])
					}
					tr.Close()
					if _, ok := tr.Usage(); !ok {
						b.Fatal("no usage")
					}
				}
			})
		}
	}
}
