package llmgate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/internal/mockllm"
)

// answer is what a client accumulated from one response, in its own
// dialect's terms.
type answer struct {
	text          string
	toolName      string
	toolArgs      string
	stop          string
	input, output int64
	events        []string // stream event names or kinds, for order checks
}

func clientRequest(dialect, model string, stream, tools bool) (string, string) {
	var b map[string]any
	switch dialect {
	case "openai":
		b = map[string]any{"model": model, "messages": []any{map[string]any{"role": "system", "content": "be brief"}, map[string]any{"role": "user", "content": "weather?"}}}
		if tools {
			b["tools"] = []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}}
		}
		if stream {
			b["stream"] = true
			b["stream_options"] = map[string]any{"include_usage": true}
		}
		return "/v1/chat/completions", mustJSON(b)
	case "responses":
		b = map[string]any{"model": model, "instructions": "be brief", "input": "weather?", "store": false}
		if tools {
			b["tools"] = []any{map[string]any{"type": "function", "name": "get_weather", "parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}
		}
		b["stream"] = stream
		return "/v1/responses", mustJSON(b)
	case "anthropic":
		b = map[string]any{"model": model, "max_tokens": 100, "system": "be brief", "messages": []any{map[string]any{"role": "user", "content": "weather?"}}}
		if tools {
			b["tools"] = []any{map[string]any{"name": "get_weather", "input_schema": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}
		}
		b["stream"] = stream
		return "/v1/messages", mustJSON(b)
	default:
		b = map[string]any{"model": model, "messages": []any{map[string]any{"role": "system", "content": "be brief"}, map[string]any{"role": "user", "content": "weather?"}}, "stream": stream}
		if tools {
			b["tools"] = []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather", "parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}}
		}
		return "/api/chat", mustJSON(b)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// readAnswer accumulates a response as the client's SDK would.
func readAnswer(t *testing.T, dialect string, stream bool, resp *http.Response) answer {
	t.Helper()
	var a answer
	body, _ := io.ReadAll(resp.Body)
	if !stream {
		r := gjson.ParseBytes(body)
		switch dialect {
		case "responses":
			readResponsesObject(&a, r)
		case "openai":
			m := r.Get("choices.0.message")
			a.text, a.stop = m.Get("content").Str, r.Get("choices.0.finish_reason").Str
			a.toolName, a.toolArgs = m.Get("tool_calls.0.function.name").Str, m.Get("tool_calls.0.function.arguments").Str
			a.input, a.output = r.Get("usage.prompt_tokens").Int(), r.Get("usage.completion_tokens").Int()
		case "anthropic":
			r.Get("content").ForEach(func(_, b gjson.Result) bool {
				switch b.Get("type").Str {
				case "text":
					a.text += b.Get("text").Str
				case "tool_use":
					a.toolName, a.toolArgs = b.Get("name").Str, b.Get("input").Raw
				}
				return true
			})
			a.stop = r.Get("stop_reason").Str
			a.input = r.Get("usage.input_tokens").Int() + r.Get("usage.cache_read_input_tokens").Int()
			a.output = r.Get("usage.output_tokens").Int()
		default:
			a.text = r.Get("message.content").Str
			a.toolName, a.toolArgs = r.Get("message.tool_calls.0.function.name").Str, r.Get("message.tool_calls.0.function.arguments").Raw
			a.stop = r.Get("done_reason").Str
			a.input, a.output = r.Get("prompt_eval_count").Int(), r.Get("eval_count").Int()
		}
		return a
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if dialect == "ollama" {
			if line == "" {
				continue
			}
			r := gjson.Parse(line)
			if e := r.Get("error"); e.Exists() {
				a.events = append(a.events, "error:"+e.String())
				continue
			}
			a.text += r.Get("message.content").Str
			if tc := r.Get("message.tool_calls.0"); tc.Exists() {
				a.toolName, a.toolArgs = tc.Get("function.name").Str, tc.Get("function.arguments").Raw
			}
			if r.Get("done").Bool() {
				a.stop = r.Get("done_reason").Str
				a.input, a.output = r.Get("prompt_eval_count").Int(), r.Get("eval_count").Int()
				a.events = append(a.events, "done")
			}
			continue
		}
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if dialect == "openai" {
			if data == "[DONE]" {
				a.events = append(a.events, "[DONE]")
				continue
			}
			r := gjson.Parse(data)
			if r.Get("error").Exists() {
				a.events = append(a.events, "error")
				continue
			}
			c := r.Get("choices.0")
			if c.Get("delta.role").Exists() {
				a.events = append(a.events, "role")
			}
			a.text += c.Get("delta.content").Str
			c.Get("delta.tool_calls").ForEach(func(_, tc gjson.Result) bool {
				if n := tc.Get("function.name").Str; n != "" {
					a.toolName = n
				}
				a.toolArgs += tc.Get("function.arguments").Str
				return true
			})
			if f := c.Get("finish_reason").Str; f != "" {
				a.stop = f
			}
			if u := r.Get("usage"); u.IsObject() {
				a.input, a.output = u.Get("prompt_tokens").Int(), u.Get("completion_tokens").Int()
			}
			continue
		}
		r := gjson.Parse(data)
		if dialect == "responses" {
			if r.Get("sequence_number").Int() != int64(len(a.events)) {
				t.Errorf("event %s has sequence_number %d, want %d", event, r.Get("sequence_number").Int(), len(a.events))
			}
			a.events = append(a.events, event)
			switch event {
			case "response.output_text.delta":
				a.text += r.Get("delta").Str
			case "response.function_call_arguments.delta":
				a.toolArgs += r.Get("delta").Str
			case "response.output_item.added":
				if r.Get("item.type").Str == "function_call" {
					a.toolName = r.Get("item.name").Str
				}
			case "response.completed", "response.incomplete":
				var whole answer
				readResponsesObject(&whole, r.Get("response"))
				if whole.text != a.text || whole.toolArgs != a.toolArgs {
					t.Errorf("response.completed disagrees with the deltas: %+v vs %+v", whole, a)
				}
				a.stop, a.input, a.output = whole.stop, whole.input, whole.output
			}
			continue
		}
		if r.Get("type").Str != event {
			t.Errorf("event line %q does not match data type %q", event, r.Get("type").Str)
		}
		a.events = append(a.events, event)
		switch event {
		case "message_start":
			u := r.Get("message.usage")
			a.input = u.Get("input_tokens").Int() + u.Get("cache_read_input_tokens").Int()
		case "content_block_start":
			if b := r.Get("content_block"); b.Get("type").Str == "tool_use" {
				a.toolName = b.Get("name").Str
			}
		case "content_block_delta":
			d := r.Get("delta")
			a.text += d.Get("text").Str
			a.toolArgs += d.Get("partial_json").Str
		case "message_delta":
			a.stop = r.Get("delta.stop_reason").Str
			if u := r.Get("usage"); u.Get("input_tokens").Exists() {
				a.input = u.Get("input_tokens").Int() + u.Get("cache_read_input_tokens").Int()
			}
			a.output = r.Get("usage.output_tokens").Int()
		}
	}
	return a
}

// TestTranslationMatrix sends every client dialect to every provider
// dialect, streamed and not, with and without a tool, and checks what a
// client would accumulate: text or tool call, stop reason, usage.
func TestTranslationMatrix(t *testing.T) {
	mock, srv := startMock(t)
	tester := caddytest.NewTester(t)
	tester.InitServer(gatewayConfig(t, srv.URL, storageDir, "", ""), "caddyfile")

	wantStop := map[string][2]string{ // dialect → {text stop, tool stop}
		"openai": {"stop", "tool_calls"}, "anthropic": {"end_turn", "tool_use"}, "ollama": {"stop", "stop"},
		"responses": {"completed", "completed"},
	}
	for _, client := range []string{"openai", "responses", "anthropic", "ollama"} {
		for _, model := range []string{"small", "resp", "claude", "llama"} {
			for _, stream := range []bool{false, true} {
				for _, tools := range []bool{false, true} {
					name := fmt.Sprintf("%s→%s/stream=%v/tools=%v", client, model, stream, tools)
					t.Run(name, func(t *testing.T) {
						path, body := clientRequest(client, model, stream, tools)
						req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
						req.Header.Set("Content-Type", "application/json")
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							t.Fatal(err)
						}
						defer resp.Body.Close()
						if resp.StatusCode != 200 {
							b, _ := io.ReadAll(resp.Body)
							t.Fatalf("status %d: %s", resp.StatusCode, b)
						}
						a := readAnswer(t, client, stream, resp)
						if tools {
							var args map[string]any
							if a.toolName != "get_weather" || json.Unmarshal([]byte(a.toolArgs), &args) != nil || args["city"] != "Paris" {
								t.Errorf("tool call %q %q", a.toolName, a.toolArgs)
							}
							if a.text != "" {
								t.Errorf("text %q alongside the tool call", a.text)
							}
						} else if a.text != mockllm.Text {
							t.Errorf("text %q", a.text)
						}
						if want := wantStop[client][btoi(tools)]; a.stop != want {
							t.Errorf("stop %q, want %q", a.stop, want)
						}
						if a.input != mockllm.InputTokens || a.output != mockllm.OutputTokens {
							t.Errorf("usage in %d out %d", a.input, a.output)
						}
						if stream {
							switch client {
							case "openai":
								if len(a.events) < 2 || a.events[0] != "role" || a.events[len(a.events)-1] != "[DONE]" {
									t.Errorf("openai events %v", a.events)
								}
							case "anthropic":
								if len(a.events) < 3 || a.events[0] != "message_start" || a.events[len(a.events)-1] != "message_stop" {
									t.Errorf("anthropic events %v", a.events)
								}
							case "ollama":
								if len(a.events) == 0 || a.events[len(a.events)-1] != "done" {
									t.Errorf("ollama events %v", a.events)
								}
							case "responses":
								if len(a.events) < 3 || a.events[0] != "response.created" || a.events[len(a.events)-1] != "response.completed" {
									t.Errorf("responses events %v", a.events)
								}
							}
						}
					})
				}
			}
		}
	}
	// The provider side: each request went out in its provider's dialect.
	for _, r := range mock.Requests() {
		model := gjson.GetBytes(r.Body, "model").Str
		switch {
		case model == "claude-up" && !strings.HasSuffix(r.Path, "/v1/messages"),
			model == "llama3" && r.Path != "/api/chat",
			model == "upstream-small" && r.Path != "/v1/chat/completions",
			model == "resp-up" && r.Path != "/v1/responses":
			t.Errorf("%s sent to %s", model, r.Path)
		}
		if model == "claude-up" && gjson.GetBytes(r.Body, "max_tokens").Int() == 0 {
			t.Error("anthropic request without max_tokens")
		}
	}
}

// readResponsesObject reads a Responses response object.
func readResponsesObject(a *answer, r gjson.Result) {
	r.Get("output").ForEach(func(_, it gjson.Result) bool {
		switch it.Get("type").Str {
		case "message":
			it.Get("content").ForEach(func(_, c gjson.Result) bool { a.text += c.Get("text").Str; return true })
		case "function_call":
			a.toolName, a.toolArgs = it.Get("name").Str, it.Get("arguments").Str
		}
		return true
	})
	a.stop = r.Get("status").Str
	a.input, a.output = r.Get("usage.input_tokens").Int(), r.Get("usage.output_tokens").Int()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestTranslatedStreamCutShort: a provider stream that stops without its
// end reaches the client as an error in its dialect, never a clean end.
func TestTranslatedStreamCutShort(t *testing.T) {
	_, srv := startMock(t)
	cfg := strings.Replace(gatewayConfig(t, srv.URL, storageDir, "", ""), "model llama mockollama llama3",
		"model llama mockollama llama3\n\t\tmodel broken mockant mock-break\n\t\tmodel broken-oa mock mock-break\n\t\tmodel broken-ol mockollama mock-break\n\t\tmodel broken-rs mockresp mock-break", 1)
	tester := caddytest.NewTester(t)
	tester.InitServer(cfg, "caddyfile")
	cases := []struct{ client, model string }{
		{"openai", "broken"}, {"ollama", "broken"}, {"responses", "broken"}, // translated
		{"openai", "broken-oa"}, {"ollama", "broken-ol"}, {"responses", "broken-rs"}, {"anthropic", "broken"}, // passed through
	}
	for _, c := range cases {
		client := c.client
		path, body := clientRequest(client, c.model, true, false)
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := string(b)
		switch client {
		case "openai":
			if strings.Contains(s, "[DONE]") || !strings.Contains(s, `"error"`) || strings.Contains(s, "finish_reason\":\"stop") {
				t.Errorf("openai client got a clean-looking end:\n%s", s)
			}
		case "ollama":
			if strings.Contains(s, `"done":true`) || !strings.Contains(s, `"error"`) {
				t.Errorf("ollama client got a clean-looking end:\n%s", s)
			}
		case "responses":
			if strings.Contains(s, "response.completed") || !strings.Contains(s, "response.failed") {
				t.Errorf("responses client got a clean-looking end:\n%s", s)
			}
		case "anthropic":
			if strings.Contains(s, "message_stop") || !strings.Contains(s, "event: error") {
				t.Errorf("anthropic client got a clean-looking end:\n%s", s)
			}
		}
	}
}
