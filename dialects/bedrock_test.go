package dialects

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/tidwall/gjson"
)

// A Converse request with every block the decoder reads.
const bedrockRequest = `{"system":[{"text":"You are terse."},{"cachePoint":{"type":"default"}}],
"messages":[
 {"role":"user","content":[{"text":"Weather in Paris?"},{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}}]},
 {"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"Need the tool.","signature":"sig-1"}}},{"text":"Checking."},
   {"toolUse":{"toolUseId":"tooluse_1","name":"get_weather","input":{"city":"Paris"}}},{"toolUse":{"toolUseId":"tooluse_2","name":"get_time","input":{}}}]},
 {"role":"user","content":[{"toolResult":{"toolUseId":"tooluse_1","content":[{"text":"18C"}]}},
   {"toolResult":{"toolUseId":"tooluse_2","content":[{"json":{"time": "14:00"}}],"status":"error"}},{"text":"And tomorrow?"},{"cachePoint":{"type":"default"}}]}
],
"inferenceConfig":{"maxTokens":2048,"temperature":0.5,"topP":0.9,"stopSequences":["END"]},
"toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","description":"Weather by city","inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}}}}}},
  {"toolSpec":{"name":"get_time","inputSchema":{"json":{"type":"object","properties":{}}}}},{"cachePoint":{"type":"default"}}],"toolChoice":{"auto":{}}},
"additionalModelRequestFields":{"thinking":{"type":"enabled","budget_tokens":1500},"top_k":40},
"outputConfig":{"textFormat":{"type":"json_schema","structure":{"jsonSchema":{"schema":"{\"type\":\"object\"}","name":"out"}}}}}`

func TestDecodeBedrockRequest(t *testing.T) {
	r, err := DecodeBedrockRequest([]byte(bedrockRequest))
	if err != nil {
		t.Fatal(err)
	}
	want := &ChatRequest{
		System: []Part{{Type: PartText, Text: "You are terse."}},
		Messages: []Message{
			{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "Weather in Paris?"}, {Type: PartImage, MediaType: "image/png", Data: "iVBORw0KGgo="}}},
			{Role: RoleAssistant, Parts: []Part{{Type: PartThinking, Text: "Need the tool.", Signature: "sig-1"}, {Type: PartText, Text: "Checking."},
				{Type: PartToolCall, ID: "tooluse_1", Name: "get_weather", Args: `{"city":"Paris"}`}, {Type: PartToolCall, ID: "tooluse_2", Name: "get_time", Args: `{}`}}},
			{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "tooluse_1", Content: []Part{{Type: PartText, Text: "18C"}}}}},
			{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "tooluse_2", IsError: true, Content: []Part{{Type: PartText, Text: `{"time":"14:00"}`}}}}},
			{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "And tomorrow?"}}},
		},
		Tools: []Tool{{Name: "get_weather", Description: "Weather by city", Schema: `{"type":"object","properties":{"city":{"type":"string"}}}`},
			{Name: "get_time", Schema: `{"type":"object","properties":{}}`}},
		ToolChoice:     &ToolChoice{Mode: "auto"},
		MaxTokens:      2048,
		Temperature:    ptr(0.5),
		TopP:           ptr(0.9),
		Stop:           []string{"END"},
		ThinkingBudget: 1500,
		ResponseFormat: &ResponseFormat{Type: "json_schema", Name: "out", Schema: `{"type":"object"}`, Strict: true},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}

	for body, effort := range map[string]string{
		`{"messages":[],"additionalModelRequestFields":{"reasoning_effort":"low"}}`:                                         "low",
		`{"messages":[],"additionalModelRequestFields":{"reasoningConfig":{"type":"enabled","maxReasoningEffort":"high"}}}`: "high",
		`{"messages":[],"additionalModelRequestFields":{"thinking":{"type":"adaptive"}}}`:                                   "medium",
	} {
		r, err := DecodeBedrockRequest([]byte(body))
		if err != nil || r.ReasoningEffort != effort {
			t.Errorf("%s: effort %q, %v", body, r.ReasoningEffort, err)
		}
	}
	// A system tool cannot be offered to another provider: dropped.
	r, err = DecodeBedrockRequest([]byte(`{"messages":[],"toolConfig":{"tools":[{"systemTool":{"name":"nova_grounding"}}],"toolChoice":{"any":{}}}}`))
	if err != nil || len(r.Tools) != 0 || r.ToolChoice.Mode != "required" {
		t.Errorf("system tool: %+v %v", r, err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecodeBedrockRequestErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"messages":{}}`, "messages must be an array"},
		{`{"messages":[{"role":"system","content":[]}]}`, "messages[0].role must be user or assistant"},
		{`{"messages":[{"role":"user","content":"hi"}]}`, "messages[0].content must be an array"},
		{`{"messages":[{"role":"user","content":[{"text":"a","cachePoint":{}}]}]}`, "messages[0].content[0] must have exactly one member"},
		{`{"messages":[{"role":"user","content":[{}]}]}`, "messages[0].content[0] must have exactly one member"},
		{`{"messages":[{"role":"user","content":[{"text":1}]}]}`, "messages[0].content[0].text must be a string"},
		{`{"messages":[{"role":"user","content":[{"text":"x"},{"image":{"format":"png","source":{"s3Location":{"uri":"s3://b/k"}}}}]}]}`, "messages[0].content[1].image.source.s3Location"},
		{`{"messages":[{"role":"user","content":[{"image":{"format":"bmp","source":{"bytes":"AAAA"}}}]}]}`, "format must be png, jpeg, gif or webp"},
		{`{"messages":[{"role":"user","content":[{"document":{"format":"pdf","name":"d","source":{"bytes":"AAAA"}}}]}]}`, "messages[0].content[0]: document blocks cannot be translated"},
		{`{"messages":[{"role":"user","content":[{"video":{"format":"mp4","source":{"bytes":"AAAA"}}}]}]}`, "video blocks cannot be translated"},
		{`{"messages":[{"role":"user","content":[{"toolResult":{"toolUseId":"t","content":[{"document":{}}]}}]}]}`, "toolResult.content[0]: document tool results"},
		{`{"messages":[{"role":"assistant","content":[{"toolResult":{"toolUseId":"t","content":[]}}]}]}`, "belong in user messages"},
		{`{"messages":[{"role":"user","content":[{"toolUse":{"toolUseId":"t","name":"f","input":{}}}]}]}`, "belong in assistant messages"},
		{`{"messages":[{"role":"assistant","content":[{"reasoningContent":{}}]}]}`, "needs reasoningText or redactedContent"},
		{`{"messages":[],"system":"be brief"}`, "system must be an array"},
		{`{"messages":[],"system":[{"image":{}}]}`, "system[0]: image blocks cannot be translated"},
		{`{"messages":[],"inferenceConfig":{"maxTokens":"9"}}`, "inferenceConfig.maxTokens must be an integer"},
		{`{"messages":[],"outputConfig":{"textFormat":{"type":"json_schema","structure":{"jsonSchema":{"schema":{"type":"object"}}}}}}`, "must be a JSON schema in a string"},
	} {
		_, err := DecodeBedrockRequest([]byte(c.body))
		if err == nil || err.Status != http.StatusBadRequest || !strings.Contains(err.Message, c.want) || err.Param == "" {
			t.Errorf("%s: %+v, want a 400 naming %q", c.body, err, c.want)
		}
	}
}

// bedrockBody decodes an encoded request for inspection.
func bedrockBody(t *testing.T, b []byte) gjson.Result {
	t.Helper()
	if !gjson.ValidBytes(b) {
		t.Fatalf("not JSON: %s", b)
	}
	return gjson.ParseBytes(b)
}

func TestEncodeBedrockRequest(t *testing.T) {
	deterministic(t)
	r := &ChatRequest{
		Model:  "m",
		Stream: true,
		System: []Part{{Type: PartText, Text: "sys"}},
		Messages: []Message{
			{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "hi"}}},
			{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "again"}, {Type: PartText, Text: "  "}}},
			{Role: RoleAssistant, Parts: []Part{{Type: PartThinking, Signature: "s1"}, {Type: PartText, Text: "ok"},
				{Type: PartToolCall, ID: "functions.f:0", Name: "f", Args: `{"a":1}`}, {Type: PartToolCall, Name: "g", Args: "not json"}}},
			{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "functions.f:0", Content: []Part{{Type: PartText, Text: "r1"}}}}},
			{Role: RoleTool, Parts: []Part{{Type: PartToolResult, Name: "g", IsError: true}}},
			{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "next"}, {Type: PartImage, URL: "data:image/jpeg;base64,/9j/AA"}}},
			{Role: RoleSystem, Parts: []Part{{Type: PartText, Text: "late note"}}},
			{Role: RoleAssistant, Parts: []Part{{Type: PartRedactedThinking, Data: "cmVk"}, {Type: PartThinking, Text: "unsigned"}, {Type: PartText, Text: "done"}}},
			{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "more"}}},
		},
		Tools:       []Tool{{Name: "f", Schema: `{"type":"object"}`}},
		ToolChoice:  &ToolChoice{Mode: "none"},
		Temperature: ptr(1.5),
		Stop:        []string{"END"},
	}
	out, err := EncodeBedrockRequest(r, EncodeOptions{Model: "m", DefaultMaxTokens: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b := bedrockBody(t, out)
	for _, k := range []string{"model", "modelId", "stream"} {
		if b.Get(k).Exists() {
			t.Errorf("%s in the body: %s", k, out)
		}
	}
	roles := []string{}
	b.Get("messages.#.role").ForEach(func(_, v gjson.Result) bool { roles = append(roles, v.Str); return true })
	if strings.Join(roles, ",") != "user,assistant,user,assistant,user" {
		t.Errorf("roles %v: %s", roles, out)
	}
	checks := map[string]string{
		"system":                           `[{"text":"sys"},{"text":"late note"}]`,
		"messages.0.content":               `[{"text":"hi"},{"text":"again"}]`,
		"messages.1.content.0":             `{"reasoningContent":{"reasoningText":{"signature":"s1","text":""}}}`,
		"messages.1.content.2":             `{"toolUse":{"input":{"a":1},"name":"f","toolUseId":"functions_f_0"}}`,
		"messages.1.content.3":             `{"toolUse":{"input":{},"name":"g","toolUseId":"tooluse_gen001"}}`,
		"messages.2.content.0":             `{"toolResult":{"content":[{"text":"r1"}],"toolUseId":"functions_f_0"}}`,
		"messages.2.content.1":             `{"toolResult":{"content":[{"text":"error"}],"status":"error","toolUseId":"tooluse_gen001"}}`,
		"messages.2.content.2":             `{"text":"next"}`,
		"messages.2.content.3":             `{"image":{"format":"jpeg","source":{"bytes":"/9j/AA"}}}`,
		"messages.3.content":               `[{"reasoningContent":{"redactedContent":"cmVk"}},{"text":"done"}]`,
		"inferenceConfig":                  `{"maxTokens":1000,"stopSequences":["END"],"temperature":1}`,
		"toolConfig.tools.0.toolSpec.name": `"no_tool_available"`,
	}
	for path, want := range checks {
		if got := b.Get(path).Raw; got != want {
			t.Errorf("%s = %s, want %s", path, got, want)
		}
	}
	if b.Get("toolConfig.toolChoice").Exists() || b.Get("toolConfig.tools.#").Int() != 1 {
		t.Errorf("tool choice none: %s", b.Get("toolConfig").Raw)
	}

	// Thinking: a budget from the effort, temperature left out, maxTokens
	// raised above the budget, the real tools with their choice.
	r.ReasoningEffort, r.ToolChoice = "high", &ToolChoice{Mode: "tool", Name: "f"}
	out, err = EncodeBedrockRequest(r, EncodeOptions{DefaultMaxTokens: 1000, Reasoning: true})
	if err != nil {
		t.Fatal(err)
	}
	b = bedrockBody(t, out)
	if got := b.Get("additionalModelRequestFields").Raw; got != `{"thinking":{"budget_tokens":16384,"type":"enabled"}}` {
		t.Errorf("thinking: %s", got)
	}
	if got := b.Get("inferenceConfig").Raw; got != `{"maxTokens":17384,"stopSequences":["END"]}` {
		t.Errorf("inferenceConfig with thinking: %s", got)
	}
	if got := b.Get("toolConfig").Raw; got != `{"toolChoice":{"tool":{"name":"f"}},"tools":[{"toolSpec":{"inputSchema":{"json":{"type":"object"}},"name":"f"}}]}` {
		t.Errorf("toolConfig: %s", got)
	}
	// Without signed thinking before a tool call, thinking stays off.
	r.Messages[2].Parts = r.Messages[2].Parts[1:]
	out, _ = EncodeBedrockRequest(r, EncodeOptions{DefaultMaxTokens: 1000, Reasoning: true})
	if b = bedrockBody(t, out); b.Get("additionalModelRequestFields").Exists() || b.Get("inferenceConfig.temperature").Float() != 1 {
		t.Errorf("thinking on without signed tool turns: %s", out)
	}

	// JSON schema output; no tools and no tool history: no toolConfig.
	plain := &ChatRequest{Messages: []Message{{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "hi"}}}},
		TopP: ptr(0.5), ResponseFormat: &ResponseFormat{Type: "json_schema", Name: "out", Schema: `{ "type": "object" }`}}
	out, err = EncodeBedrockRequest(plain, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b = bedrockBody(t, out); b.Get("toolConfig").Exists() || b.Get("inferenceConfig").Raw != `{"topP":0.5}` ||
		b.Get("outputConfig").Raw != `{"textFormat":{"structure":{"jsonSchema":{"name":"out","schema":"{\"type\":\"object\"}"}},"type":"json_schema"}}` {
		t.Errorf("plain: %s", out)
	}

	// Images Bedrock cannot take.
	for _, img := range []Part{{Type: PartImage, URL: "https://example.com/a.png"}, {Type: PartImage, MediaType: "image/bmp", Data: "Qk0="}} {
		bad := &ChatRequest{Messages: []Message{{Role: RoleUser, Parts: []Part{img}}}}
		if _, err := EncodeBedrockRequest(bad, EncodeOptions{}); err == nil {
			t.Errorf("%+v accepted", img)
		}
		if _, err := EncodeRequestFor(Bedrock, bad, EncodeOptions{}); err == nil || err.Status != 400 {
			t.Errorf("%+v: %v", img, err)
		}
	}
	if _, err := EncodeBedrockRequest(&ChatRequest{Messages: []Message{{Role: RoleUser, Parts: []Part{{Type: PartImage, URL: "http://x/y.png"}}}}}, EncodeOptions{}); !errors.Is(err, ErrImageURL) {
		t.Errorf("http image: %v", err)
	}
}

// flatRequest lists what a request says, part by part, in order: what
// must survive a translation. Roles are kept apart from their merging
// into turns; blank text and unsigned thinking (which Bedrock drops) are
// left out; keep picks what the other side of a round trip carries.
type flatKeep struct{ thinking, ids bool }

func flatRequest(r *ChatRequest, k flatKeep) (system string, parts []string) {
	var sys []string
	for _, p := range r.System {
		sys = append(sys, p.Text)
	}
	var flat func(role Role, p Part) string
	flat = func(role Role, p Part) string {
		id := p.ID
		if !k.ids {
			id = ""
		}
		switch p.Type {
		case PartText:
			if strings.TrimSpace(p.Text) == "" {
				return ""
			}
			return fmt.Sprintf("%s text %q", role, p.Text)
		case PartImage:
			return fmt.Sprintf("%s image %s %s", role, p.MediaType, p.Data)
		case PartToolCall:
			return fmt.Sprintf("%s call %s %s %s", role, bedrockToolID(id), p.Name, appendCompact(nil, p.Args))
		case PartToolResult:
			var c []string
			for _, q := range p.Content {
				if s := flat("", q); s != "" {
					c = append(c, s)
				}
			}
			return fmt.Sprintf("result %s error=%v %v", bedrockToolID(id), p.IsError, c)
		case PartThinking:
			if !k.thinking || p.Signature == "" {
				return ""
			}
			return fmt.Sprintf("thinking %q %s", p.Text, p.Signature)
		case PartRedactedThinking:
			if !k.thinking {
				return ""
			}
			return "redacted " + p.Data
		}
		return ""
	}
	for _, m := range r.Messages {
		for _, p := range m.Parts {
			if m.Role == RoleSystem {
				sys = append(sys, p.Text)
				continue
			}
			role := m.Role
			if role == RoleTool {
				role = RoleUser
			}
			if s := flat(role, p); s != "" {
				parts = append(parts, s)
			}
		}
	}
	return strings.Join(sys, " | "), parts
}

// Requests of every other dialect go to Bedrock and back unchanged in
// what Converse can say.
func TestBedrockRequestFromOtherDialects(t *testing.T) {
	for _, from := range []Dialect{OpenAI, Anthropic, Responses, Ollama} {
		deterministic(t)
		src, derr := DecodeRequest(from, read(t, "request."+string(from)+".json"))
		if derr != nil {
			t.Fatal(derr)
		}
		out, err := EncodeBedrockRequest(src, EncodeOptions{Model: "x", DefaultMaxTokens: 1000, Reasoning: true})
		if err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		back, derr := DecodeBedrockRequest(out)
		if derr != nil {
			t.Fatalf("%s: our own output does not decode: %v\n%s", from, derr, out)
		}
		keep := flatKeep{thinking: true, ids: true}
		ws, wp := flatRequest(src, keep)
		gs, gp := flatRequest(back, keep)
		if ws != gs || !reflect.DeepEqual(wp, gp) {
			t.Errorf("%s → bedrock → neutral:\nsystem %q\nwant   %q\nparts %q\nwant  %q\n%s", from, gs, ws, gp, wp, out)
		}
		if len(back.Tools) != len(src.Tools) {
			t.Errorf("%s: tools %d, want %d", from, len(back.Tools), len(src.Tools))
		}
		// Roles alternate.
		roles := gjson.GetBytes(out, "messages.#.role").Array()
		for i := 1; i < len(roles); i++ {
			if roles[i].Str == roles[i-1].Str {
				t.Errorf("%s: two %s turns in a row: %s", from, roles[i].Str, out)
			}
		}
	}
}

// A Bedrock client's request goes to every dialect and reads back the
// same in what that dialect carries.
func TestBedrockRequestToOtherDialects(t *testing.T) {
	// No JSON tool result and no thinking budget: those do not survive
	// every dialect (Ollama drops ids; only Anthropic keeps signatures).
	body := strings.Replace(bedrockRequest, `[{"json":{"time": "14:00"}}]`, `[{"text":"14:00"}]`, 1)
	for _, to := range []Dialect{OpenAI, Anthropic, Responses, Ollama, Bedrock} {
		deterministic(t)
		src, derr := DecodeBedrockRequest([]byte(body))
		if derr != nil {
			t.Fatal(derr)
		}
		out, err := EncodeRequestFor(to, src, EncodeOptions{Model: "x", DefaultMaxTokens: 1000, Reasoning: true})
		if err != nil {
			t.Fatalf("%s: %v", to, err)
		}
		back, derr := DecodeRequest(to, out)
		if derr != nil {
			t.Fatalf("%s: %v", to, derr)
		}
		keep := flatKeep{thinking: to == Anthropic || to == Bedrock, ids: to != Ollama}
		ws, wp := flatRequest(src, keep)
		gs, gp := flatRequest(back, keep)
		if to != Anthropic && to != Bedrock {
			// Only Anthropic and Bedrock mark a tool result as an error.
			for i := range wp {
				wp[i] = strings.Replace(wp[i], "error=true", "error=false", 1)
			}
		}
		if ws != gs || !reflect.DeepEqual(wp, gp) {
			t.Errorf("bedrock → %s → neutral:\nsystem %q\nwant   %q\nparts %q\nwant  %q\n%s", to, gs, ws, gp, wp, out)
		}
		if len(back.Tools) != 2 || back.Tools[0].Name != "get_weather" {
			t.Errorf("%s: tools %+v", to, back.Tools)
		}
	}
}

const bedrockResponse = `{"output":{"message":{"role":"assistant","content":[
 {"reasoningContent":{"reasoningText":{"text":"Hmm.","signature":"sig-9"}}},{"reasoningContent":{"redactedContent":"cmVkYWN0ZWQ="}},
 {"text":"Let me check."},{"toolUse":{"toolUseId":"tooluse_9","name":"get_weather","input":{"city":"Paris"}}}]}},
 "stopReason":"tool_use","usage":{"inputTokens":20,"outputTokens":20,"totalTokens":80,"cacheReadInputTokens":40,"cacheWriteInputTokens":0},
 "metrics":{"latencyMs":321},"additionalModelResponseFields":{"stop_sequence":null}}`

func TestBedrockResponse(t *testing.T) {
	r, err := DecodeBedrockResponse([]byte(bedrockResponse))
	if err != nil {
		t.Fatal(err)
	}
	want := &ChatResponse{NativeStop: "tool_use", Stop: StopToolUse,
		Parts: []Part{{Type: PartThinking, Text: "Hmm.", Signature: "sig-9"}, {Type: PartRedactedThinking, Data: "cmVkYWN0ZWQ="},
			{Type: PartText, Text: "Let me check."}, {Type: PartToolCall, ID: "tooluse_9", Name: "get_weather", Args: `{"city":"Paris"}`}},
		Usage: Usage{Input: 60, CachedInput: 40, Output: 20}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
	if u, ok := UsageFromBody(Bedrock, []byte(bedrockResponse)); !ok || u != want.Usage {
		t.Errorf("UsageFromBody: %+v %v", u, ok)
	}

	out, err := EncodeBedrockResponse(r, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	b := bedrockBody(t, out)
	for path, want := range map[string]string{
		"output.message.role":      `"assistant"`,
		"output.message.content.0": `{"reasoningContent":{"reasoningText":{"signature":"sig-9","text":"Hmm."}}}`,
		"output.message.content.1": `{"reasoningContent":{"redactedContent":"cmVkYWN0ZWQ="}}`,
		"output.message.content.3": `{"toolUse":{"input":{"city":"Paris"},"name":"get_weather","toolUseId":"tooluse_9"}}`,
		"stopReason":               `"tool_use"`,
		"usage":                    `{"inputTokens":20,"outputTokens":20,"totalTokens":80,"cacheReadInputTokens":40}`,
		"metrics.latencyMs":        `0`,
	} {
		if got := b.Get(path).Raw; got != want {
			t.Errorf("%s = %s, want %s", path, got, want)
		}
	}
	again, err := DecodeBedrockResponse(out)
	if err != nil || !reflect.DeepEqual(again, r) {
		t.Errorf("round trip: %+v %v", again, err)
	}

	// Answers of every other dialect read back the same through Bedrock.
	for _, from := range []Dialect{OpenAI, Anthropic, Responses, Ollama} {
		src, err := DecodeResponse(from, read(t, "response."+string(from)+".json"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := EncodeResponse(Bedrock, src, "m")
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeResponse(Bedrock, out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", from, err, out)
		}
		if !reflect.DeepEqual(back.Parts, src.Parts) || back.Stop != src.Stop || back.Usage.Input != src.Usage.Input ||
			back.Usage.CachedInput != src.Usage.CachedInput || back.Usage.Output != src.Usage.Output {
			t.Errorf("%s → bedrock → neutral:\n%+v\nwant %+v", from, back, src)
		}
		// And a Bedrock answer reads in every dialect.
		if _, err := EncodeResponse(from, r, "m"); err != nil {
			t.Errorf("bedrock → %s: %v", from, err)
		}
	}
	// Answers keep the provider's tool-call ids as they are.
	out, _ = EncodeBedrockResponse(&ChatResponse{Stop: StopToolUse, Parts: []Part{{Type: PartToolCall, ID: "functions.f:0", Name: "f", Args: "{}"}}}, "m")
	if got := gjson.GetBytes(out, "output.message.content.0.toolUse.toolUseId").Str; got != "functions.f:0" {
		t.Errorf("answer tool id %q", got)
	}
	if _, err := DecodeBedrockResponse([]byte(`{"output":{}}`)); err == nil {
		t.Error("answer without a message accepted")
	}
}

func TestBedrockStopReasons(t *testing.T) {
	for native, want := range map[string]StopReason{
		"end_turn": StopEnd, "tool_use": StopToolUse, "max_tokens": StopMaxTokens, "stop_sequence": StopSequence,
		"guardrail_intervened": StopContentFilter, "content_filtered": StopContentFilter, "malformed_model_output": StopEnd,
		"malformed_tool_use": StopEnd, "model_context_window_exceeded": StopMaxTokens, "something_new": StopEnd,
	} {
		if got := stopFromBedrock(native); got != want {
			t.Errorf("%s: %s, want %s", native, got, want)
		}
		if got := bedrockStop(want, native); native != "something_new" && got != native {
			t.Errorf("%s does not survive: %s", native, got)
		}
	}
	for s, want := range map[StopReason]string{StopEnd: "end_turn", StopPause: "end_turn", StopContentFilter: "content_filtered",
		StopMaxTokens: "max_tokens", StopToolUse: "tool_use", StopSequence: "stop_sequence"} {
		if got := bedrockStop(s, "length"); got != want {
			t.Errorf("%s: %s, want %s", s, got, want)
		}
	}
}

func TestBedrockErrors(t *testing.T) {
	e := UpstreamError(Bedrock, OpenAI, 429, nil, []byte(`{"__type":"ThrottlingException","message":"Too many requests"}`))
	if e.Status != 429 || e.Message != "provider error: ThrottlingException: Too many requests" {
		t.Errorf("throttling: %+v", e)
	}
	e = UpstreamError(Bedrock, OpenAI, 424, nil, []byte(`{"message":"model failed","__type":"com.amazon.bedrock#ModelErrorException:http://internal"}`))
	if e.Status != 502 || !strings.Contains(e.Message, "ModelErrorException: model failed") {
		t.Errorf("model error: %+v", e)
	}
	if e = UpstreamError(Bedrock, Anthropic, 408, nil, []byte(`{"Message":"slow","__type":"ModelTimeoutException"}`)); e.Status != 504 || !strings.Contains(e.Message, "slow") {
		t.Errorf("timeout: %+v", e)
	}
	if e = UpstreamError(Bedrock, OpenAI, 400, nil, []byte(`not json`)); e.Status != 400 || e.Message != "provider error: Bad Request" {
		t.Errorf("no body: %+v", e)
	}

	b := ErrorBody(Bedrock, &Error{Status: 429, Message: `slow "down"`})
	if gjson.GetBytes(b, "message").Str != `slow "down"` || gjson.GetBytes(b, "__type").Str != "ThrottlingException" {
		t.Errorf("error body: %s", b)
	}
	for status, want := range map[int]string{400: "ValidationException", 401: "UnrecognizedClientException", 403: "AccessDeniedException",
		404: "ResourceNotFoundException", 413: "ValidationException", 429: "ThrottlingException", 500: "InternalServerException",
		502: "ModelErrorException", 503: "ServiceUnavailableException", 529: "ServiceUnavailableException", 504: "ModelTimeoutException"} {
		if got := BedrockErrorType(status); got != want {
			t.Errorf("%d: %s, want %s", status, got, want)
		}
		// The exception a client would see maps back to a close status.
		if back := statusFromBedrockException(want, 0); back == 0 {
			t.Errorf("%s does not map back", want)
		}
	}
}

func TestBedrockPrependSystem(t *testing.T) {
	for body, want := range map[string]string{
		`{"messages":[]}`:               `[{"text":"ctx"}]`,
		`{"messages":[],"system":null}`: `[{"text":"ctx"}]`,
		`{"messages":[],"system":[]}`:   `[{"text":"ctx"}]`,
		`{"messages":[],"system":[{"text":"s"},{"cachePoint":{"type":"default"}}]}`: `[{"text":"ctx"},{"text":"s"},{"cachePoint":{"type":"default"}}]`,
	} {
		out, err := PrependSystem(Bedrock, []byte(body), "ctx")
		if err != nil || gjson.GetBytes(out, "system").Raw != want {
			t.Errorf("%s: %s %v", body, out, err)
		}
		if _, err := ReadRequest(Bedrock, out); err != nil {
			t.Errorf("%s: injected body unreadable: %v", body, err)
		}
	}
	if _, err := PrependSystem(Bedrock, []byte(`{"messages":[],"system":"s"}`), "ctx"); err == nil || err.Param != "system" {
		t.Errorf("string system: %v", err)
	}
}

func TestBedrockReadRequest(t *testing.T) {
	r, err := ReadRequest(Bedrock, []byte(bedrockRequest))
	if err != nil || r != (Request{}) {
		t.Errorf("converse body: %+v %v", r, err)
	}
	if _, err := ReadRequest(Bedrock, []byte(`{"system":[]}`)); err == nil || err.Param != "messages" {
		t.Errorf("no messages: %v", err)
	}
}

func TestBedrockCacheExtras(t *testing.T) {
	extras, why := CacheExtras(Bedrock, []byte(bedrockRequest))
	// Held: all but top_k, which the neutral request does not carry.
	if why != "" || string(extras) != `additionalModelRequestFields={"thinking":{"type":"enabled","budget_tokens":1500},"top_k":40}` {
		t.Errorf("extras %q, %q", extras, why)
	}
	extras, why = CacheExtras(Bedrock, []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}],"requestMetadata":{"k":"v"},"inferenceConfig":{"maxTokens":5}}`))
	if why != "" || len(extras) != 0 {
		t.Errorf("plain: %q %q", extras, why)
	}
	extras, _ = CacheExtras(Bedrock, []byte(`{"messages":[{"role":"user","content":[{"guardContent":{"text":{"text":"x","qualifiers":["query"]}}}]}],"guardrailConfig":{"guardrailIdentifier":"g"}}`))
	if !bytes.Contains(extras, []byte("guardrailConfig=")) || !bytes.Contains(extras, []byte("messages=")) {
		t.Errorf("unheld members not in the key: %s", extras)
	}
	for _, body := range []string{
		`{"messages":[],"toolConfig":{"tools":[{"systemTool":{"name":"nova_grounding"}}]}}`,
		`{"messages":[],"additionalModelResponseFieldPaths":["/stop_sequence"]}`,
	} {
		if _, why := CacheExtras(Bedrock, []byte(body)); why == "" {
			t.Errorf("%s is cacheable", body)
		}
	}
}

// frames builds a Bedrock stream: each pair is an event type (or
// "exception:<type>") and its JSON payload.
func frames(t testing.TB, evs ...string) []byte {
	t.Helper()
	var out []byte
	var err error
	for i := 0; i < len(evs); i += 2 {
		if typ, ok := strings.CutPrefix(evs[i], "exception:"); ok {
			out, err = AppendEventStreamException(out, typ, []byte(evs[i+1]))
		} else {
			out, err = AppendEventStreamEvent(out, evs[i], []byte(evs[i+1]))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// converseStream is a realistic ConverseStream: reasoning with a
// signature, text without a contentBlockStart, a tool call whose input
// comes as partial JSON, messageStop, then metadata; "p" is the padding
// Bedrock adds.
func converseStream(t testing.TB) []byte {
	return frames(t,
		"messageStart", `{"p":"abcdefgh","role":"assistant"}`,
		"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Let me "}},"p":"ab"}`,
		"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"think."}}}`,
		"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"sig-77"}}}`,
		"contentBlockStop", `{"contentBlockIndex":0}`,
		"contentBlockDelta", `{"contentBlockIndex":1,"delta":{"text":"Hello"}}`,
		"contentBlockDelta", `{"contentBlockIndex":1,"delta":{"text":" \"usage\" world"}}`,
		"contentBlockStop", `{"contentBlockIndex":1}`,
		"contentBlockStart", `{"contentBlockIndex":2,"start":{"toolUse":{"toolUseId":"tooluse_A","name":"get_weather"}}}`,
		"contentBlockDelta", `{"contentBlockIndex":2,"delta":{"toolUse":{"input":"{\"city\":"}}}`,
		"contentBlockDelta", `{"contentBlockIndex":2,"delta":{"toolUse":{"input":" \"Paris\"}"}}}`,
		"contentBlockStop", `{"contentBlockIndex":2}`,
		"messageStop", `{"stopReason":"tool_use"}`,
		"metadata", `{"usage":{"inputTokens":60,"outputTokens":20,"totalTokens":120,"cacheReadInputTokens":40},"metrics":{"latencyMs":900}}`,
	)
}

var converseAnswer = &ChatResponse{Stop: StopToolUse, NativeStop: "tool_use",
	Parts: []Part{{Type: PartThinking, Text: "Let me think.", Signature: "sig-77"}, {Type: PartText, Text: `Hello "usage" world`},
		{Type: PartToolCall, ID: "tooluse_A", Name: "get_weather", Args: `{"city": "Paris"}`}},
	Usage: Usage{Input: 100, CachedInput: 40, Output: 20}}

// sameAnswer compares what dialect d can carry of an answer.
func sameAnswer(t *testing.T, what string, d Dialect, got, want *ChatResponse) {
	t.Helper()
	var wp []Part
	for _, p := range want.Parts {
		if (p.Type == PartThinking || p.Type == PartRedactedThinking) && d != Anthropic && d != Bedrock {
			continue
		}
		if p.Type == PartThinking && d != Anthropic && d != Bedrock {
			p.Signature = ""
		}
		wp = append(wp, p)
	}
	var gp []Part
	for _, p := range got.Parts {
		if (p.Type == PartThinking || p.Type == PartRedactedThinking) && d != Anthropic && d != Bedrock {
			continue
		}
		gp = append(gp, p)
	}
	if d == Ollama { // Ollama's tool calls come whole, as objects
		for i := range gp {
			gp[i].Args = string(appendCompact(nil, gp[i].Args))
		}
		for i := range wp {
			wp[i].Args = string(appendCompact(nil, wp[i].Args))
		}
	}
	if !reflect.DeepEqual(gp, wp) {
		t.Errorf("%s: parts\n%+v\nwant %+v", what, gp, wp)
	}
	if got.Stop != want.Stop {
		t.Errorf("%s: stop %s, want %s", what, got.Stop, want.Stop)
	}
	if got.Usage.Input != want.Usage.Input || got.Usage.Output != want.Usage.Output ||
		(d != Ollama && got.Usage.CachedInput != want.Usage.CachedInput) {
		t.Errorf("%s: usage %+v, want %+v", what, got.Usage, want.Usage)
	}
}

// translateAll runs in through a translator, split once at cut (or
// whole when cut < 0).
func translateAll(t *testing.T, from, to Dialect, in []byte, cut int) ([]byte, Usage, bool) {
	t.Helper()
	deterministic(t)
	tr, err := NewStreamTranslator(from, to, StreamOptions{Model: "m", IncludeUsage: true, Created: 1})
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	if cut < 0 {
		out = append(out, tr.Write(in)...)
	} else {
		out = append(out, tr.Write(in[:cut])...)
		out = append(out, tr.Write(in[cut:])...)
	}
	out = append(out, tr.Close()...)
	u, ok := tr.Usage()
	return out, u, ok
}

// A ConverseStream translated to every dialect, fed whole, split at
// every byte boundary, and byte by byte: same output, the same answer.
func TestBedrockStreamToEveryDialect(t *testing.T) {
	in := converseStream(t)
	for _, to := range []Dialect{OpenAI, Anthropic, Responses, Ollama, Bedrock} {
		whole, u, ok := translateAll(t, Bedrock, to, in, -1)
		if !ok || u != converseAnswer.Usage {
			t.Errorf("%s: usage %+v %v", to, u, ok)
		}
		for cut := 0; cut <= len(in); cut++ {
			if out, _, _ := translateAll(t, Bedrock, to, in, cut); !bytes.Equal(out, whole) {
				t.Fatalf("%s: output depends on a split at %d:\n%q\nvs\n%q", to, cut, out, whole)
			}
		}
		deterministic(t)
		tr, _ := NewStreamTranslator(Bedrock, to, StreamOptions{Model: "m", IncludeUsage: true, Created: 1})
		var bytewise []byte
		for i := range in {
			bytewise = append(bytewise, tr.Write(in[i:i+1])...)
		}
		bytewise = append(bytewise, tr.Close()...)
		if !bytes.Equal(bytewise, whole) {
			t.Errorf("%s: byte-by-byte output differs", to)
		}
		got, err := CollectStream(to, whole)
		if err != nil {
			t.Fatalf("%s: %v\n%s", to, err, whole)
		}
		sameAnswer(t, "bedrock → "+string(to), to, got, converseAnswer)
	}
}

func TestBedrockStreamExceptions(t *testing.T) {
	start := frames(t, "messageStart", `{"role":"assistant"}`, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hi"}}`)
	for _, c := range []struct {
		exc, payload string
		status       int
		text         []string
	}{
		{"throttlingException", `{"message":"slow down"}`, 429, []string{"throttlingException: slow down"}},
		{"validationException", `{"message":"bad"}`, 400, []string{"bad"}},
		{"serviceUnavailableException", `{"message":"busy"}`, 503, []string{"busy"}},
		{"internalServerException", `{"message":"oops"}`, 500, []string{"oops"}},
		{"modelStreamErrorException", `{"message":"Model Stream Error","originalStatusCode":500,"originalMessage":"upstream broke"}`, 502,
			[]string{"Model Stream Error", "status 500", "upstream broke"}},
	} {
		in := append(bytes.Clone(start), frames(t, "exception:"+c.exc, c.payload)...)
		var events []Event
		dec := &bedrockStreamDecoder{}
		p := newFrameParser(dec, false)
		p.feed(in, func(name string, data []byte) { dec.event(name, data, func(e Event) { events = append(events, e) }) }, func(err error) { t.Fatal(err) })
		last := events[len(events)-1]
		if last.Kind != EvError || last.Status != c.status {
			t.Errorf("%s: %+v", c.exc, last)
		}
		for _, s := range c.text {
			if !strings.Contains(last.Text, s) {
				t.Errorf("%s: %q lacks %q", c.exc, last.Text, s)
			}
		}
		if _, err := CollectStream(Bedrock, in); err == nil || !strings.Contains(err.Error(), c.text[0]) {
			t.Errorf("%s: collected: %v", c.exc, err)
		}
		out, _, _ := translateAll(t, Bedrock, Anthropic, in, -1)
		if !bytes.Contains(out, []byte(`"type":"`+anthropicType(c.status)+`"`)) {
			t.Errorf("%s: anthropic client gets %s", c.exc, out)
		}
	}
	// An error message (:message-type error) carries its text in headers.
	errFrame, err := AppendEventStreamMessage(nil, eventstream.Headers{
		{Name: ":message-type", Value: eventstream.StringValue("error")},
		{Name: ":error-code", Value: eventstream.StringValue("InternalFailure")},
		{Name: ":error-message", Value: eventstream.StringValue("the service failed")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CollectStream(Bedrock, append(bytes.Clone(start), errFrame...)); err == nil ||
		!strings.Contains(err.Error(), "InternalFailure: the service failed") {
		t.Errorf("error message: %v", err)
	}
}

func TestBedrockStreamCorruptFrame(t *testing.T) {
	in := converseStream(t)
	first, _ := AppendEventStreamEvent(nil, "messageStart", []byte(`{"p":"abcdefgh","role":"assistant"}`))
	bad := bytes.Clone(in)
	bad[len(first)+20] ^= 0x01 // inside the second frame's headers
	for _, to := range []Dialect{OpenAI, Anthropic, Bedrock} {
		out, _, _ := translateAll(t, Bedrock, to, bad, -1)
		if _, err := CollectStream(to, out); err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Errorf("%s: corrupt frame not an error: %v\n%q", to, err, out)
		}
	}
	if _, err := CollectStream(Bedrock, bad); err == nil {
		t.Error("corrupt stream collected")
	}
}

func TestBedrockStreamEnds(t *testing.T) {
	body := frames(t,
		"messageStart", `{"role":"assistant"}`,
		"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hi"}}`,
		"contentBlockStop", `{"contentBlockIndex":0}`,
		"messageStop", `{"stopReason":"max_tokens"}`)
	// No metadata (Bedrock always sends it): cut short, its usage lost,
	// so an error as on the pass-through path, never a clean end.
	out, _, seen := translateAll(t, Bedrock, OpenAI, body, -1)
	if seen || bytes.Contains(out, []byte(`"finish_reason":"length"`)) || bytes.Contains(out, []byte("[DONE]")) || !bytes.Contains(out, []byte("metadata")) {
		t.Errorf("end without metadata: %v\n%s", seen, out)
	}
	if _, err := CollectStream(Bedrock, body); err == nil {
		t.Error("a stream without metadata collected")
	}
	// Metadata before messageStop: the answer ends at messageStop.
	swapped := frames(t,
		"messageStart", `{"role":"assistant"}`,
		"contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hi"}}`,
		"metadata", `{"usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4}}`,
		"messageStop", `{"stopReason":"end_turn"}`)
	if _, u, ok := translateAll(t, Bedrock, Anthropic, swapped, -1); !ok || u != (Usage{Input: 3, Output: 1}) {
		t.Errorf("metadata first: %+v %v", u, ok)
	}
	// Cut before messageStop: an error, never a clean end.
	cut := frames(t, "messageStart", `{"role":"assistant"}`, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hi"}}`)
	if _, err := CollectStream(Bedrock, cut); err == nil {
		t.Error("cut stream collected")
	}
	if out, _, _ := translateAll(t, Bedrock, Anthropic, cut[:len(cut)-3], -1); !bytes.Contains(out, []byte(`event: error`)) {
		t.Errorf("cut stream: %s", out)
	}
	// StreamEnded for the pass-through path, by frame name.
	var r2 EventStreamReader
	var ended []bool
	_ = r2.Feed(converseStream(t), func(m EventStreamMessage) { ended = append(ended, StreamEnded(Bedrock, []byte(m.Name()), m.Payload)) })
	for i, e := range ended {
		if e != (i == len(ended)-1) {
			t.Errorf("frame %d: ended %v", i, e)
		}
	}
	if !StreamEnded(Bedrock, []byte("exception:throttlingException"), nil) || StreamEnded(Bedrock, []byte("messageStop"), nil) {
		t.Error("StreamEnded")
	}
}

// checkConverseFrames checks a stream the way a ConverseStream consumer
// reads it: JSON event frames, messageStart first, contentBlockStart only
// for tool use, one block open at a time, messageStop then metadata
// last.
func checkConverseFrames(t *testing.T, what string, out []byte) {
	t.Helper()
	var names []string
	open := -1
	var r EventStreamReader
	err := r.Feed(out, func(m EventStreamMessage) {
		names = append(names, m.Name())
		if m.MessageType != "event" || headerString(m.Headers, ":content-type") != "application/json" || !gjson.ValidBytes(m.Payload) {
			t.Errorf("%s: bad frame %s %s", what, m.Name(), m.Payload)
		}
		p := gjson.ParseBytes(m.Payload)
		idx := int(p.Get("contentBlockIndex").Int())
		switch m.Type {
		case "contentBlockStart":
			if !p.Get("start.toolUse.toolUseId").Exists() || open >= 0 {
				t.Errorf("%s: bad start %s (open %d)", what, m.Payload, open)
			}
			open = idx
		case "contentBlockDelta":
			if open < 0 {
				open = idx
			}
			if n := len(p.Get("delta").Map()); n != 1 {
				t.Errorf("%s: delta with %d members: %s", what, n, m.Payload)
			}
		case "contentBlockStop":
			if idx != open {
				t.Errorf("%s: stop %d while %d is open", what, idx, open)
			}
			open = -1
		case "metadata":
			if !p.Get("usage.totalTokens").Exists() || !p.Get("metrics.latencyMs").Exists() {
				t.Errorf("%s: metadata %s", what, m.Payload)
			}
		}
	})
	if err != nil || r.Close() != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(names) < 3 || names[0] != "messageStart" || names[len(names)-2] != "messageStop" || names[len(names)-1] != "metadata" {
		t.Errorf("%s: frame order %v", what, names)
	}
}

// Every other dialect's stream translated for a Bedrock client reads
// back, with the Bedrock decoder, to the answer the source stream holds.
func TestStreamsToBedrock(t *testing.T) {
	for _, from := range []Dialect{OpenAI, Anthropic, Responses, Ollama} {
		in := read(t, "stream."+string(from)+".txt")
		deterministic(t)
		want, err := CollectStream(from, in)
		if err != nil {
			t.Fatal(err)
		}
		out, u, ok := translateAll(t, from, Bedrock, in, -1)
		if !ok || u.Input != 100 || u.Output != 20 {
			t.Errorf("%s: usage %+v", from, u)
		}
		for _, cut := range []int{1, len(in) / 3, len(in) / 2, len(in) - 2} {
			if o, _, _ := translateAll(t, from, Bedrock, in, cut); !bytes.Equal(o, out) {
				t.Errorf("%s: output depends on a split at %d", from, cut)
			}
		}
		checkConverseFrames(t, string(from)+" → bedrock", out)
		got, err := CollectStream(Bedrock, out)
		if err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		// Thinking survives only with what the source had.
		sameAnswer(t, string(from)+" → bedrock", Bedrock, got, want)
	}
}

func TestBedrockResponseStream(t *testing.T) {
	deterministic(t)
	answers := []*ChatResponse{
		converseAnswer,
		{Stop: StopEnd, NativeStop: "guardrail_intervened", Parts: []Part{{Type: PartText, Text: strings.Repeat("é", bedrockMaxDelta)}}, Usage: Usage{Input: 1, Output: 2}},
		{Stop: StopToolUse, Parts: []Part{{Type: PartThinking, Text: "a", Signature: "s1"}, {Type: PartThinking, Text: "b", Signature: "s2"},
			{Type: PartToolCall, ID: "c1", Name: "f", Args: "{}"}, {Type: PartToolCall, ID: "c2", Name: "g", Args: `{"x":1}`}}, Usage: Usage{Input: 5, CacheWrite: 3, Output: 1}},
	}
	for i, want := range answers {
		s, err := ResponseStream(Bedrock, want, StreamOptions{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		checkConverseFrames(t, fmt.Sprint("answer ", i), s)
		got, err := CollectStream(Bedrock, s)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if !reflect.DeepEqual(got.Parts, want.Parts) || got.Stop != want.Stop || got.Usage != want.Usage {
			t.Errorf("answer %d:\n%+v\nwant %+v", i, got, want)
		}
	}
	// The native stop reason survives: guardrail_intervened, not content_filtered.
	s, _ := ResponseStream(Bedrock, &ChatResponse{Stop: StopContentFilter, NativeStop: "guardrail_intervened"}, StreamOptions{})
	if r, err := CollectStream(Bedrock, s); err != nil || r.NativeStop != "guardrail_intervened" {
		t.Errorf("native stop: %+v %v", r, err)
	}
}

func TestBedrockStreamError(t *testing.T) {
	for status, want := range map[int]string{429: "throttlingException", 400: "validationException", 503: "serviceUnavailableException",
		502: "modelStreamErrorException", 500: "internalServerException", 401: "validationException"} {
		b := StreamError(Bedrock, "gone", status, 3)
		var m EventStreamMessage
		var r EventStreamReader
		if err := r.Feed(b, func(x EventStreamMessage) { m = x; m.Payload = bytes.Clone(x.Payload) }); err != nil {
			t.Fatal(err)
		}
		if m.MessageType != "exception" || m.Type != want || string(m.Payload) != `{"message":"gone"}` {
			t.Errorf("%d: %+v %s", status, m, m.Payload)
		}
	}
	if StreamContentType(Bedrock) != "application/vnd.amazon.eventstream" || StreamContentType(Ollama) != "application/x-ndjson" ||
		StreamContentType(OpenAI) != "text/event-stream" {
		t.Error("StreamContentType")
	}
}

func TestBedrockStreamUsage(t *testing.T) {
	s := StreamUsage{Dialect: Bedrock}
	var r EventStreamReader
	if err := r.Feed(converseStream(t), func(m EventStreamMessage) {
		if s.Event(m.Payload) {
			t.Error("a Bedrock frame taken for a usage-only chunk")
		}
	}); err != nil {
		t.Fatal(err)
	}
	if u, ok := s.Usage(); !ok || u != converseAnswer.Usage {
		t.Errorf("stream usage %+v %v", u, ok)
	}
}

func TestBedrockEncodedBlocksAreUnions(t *testing.T) {
	// The encoder's output is JSON the AWS SDK's serializer would write:
	// each content block a single-member union.
	src, _ := DecodeBedrockRequest([]byte(bedrockRequest))
	out, err := EncodeBedrockRequest(src, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Messages []struct {
			Role    string                       `json:"role"`
			Content []map[string]json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(out, &body); err != nil {
		t.Fatal(err)
	}
	for i, m := range body.Messages {
		for j, b := range m.Content {
			if len(b) != 1 {
				t.Errorf("messages[%d].content[%d] has %d members", i, j, len(b))
			}
		}
	}
}
