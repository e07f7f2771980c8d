package dialects

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// translate runs a whole upstream stream through a translator.
func translate(t *testing.T, from, to Dialect, in string) string {
	t.Helper()
	tr, err := NewStreamTranslator(from, to, StreamOptions{Model: "m", IncludeUsage: true})
	if err != nil {
		t.Fatal(err)
	}
	out := string(tr.Write([]byte(in)))
	return out + string(tr.Close())
}

// openAIToolCalls accumulates tool calls from an OpenAI chunk stream as
// the SDKs do: by index.
func openAIToolCalls(s string) (names, args []string) {
	for _, line := range strings.Split(s, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		each(gjson.Get(data, "choices.0.delta.tool_calls"), func(_, tc gjson.Result) bool {
			i := int(tc.Get("index").Int())
			for len(names) <= i {
				names, args = append(names, ""), append(args, "")
			}
			names[i] += tc.Get("function.name").Str
			args[i] += tc.Get("function.arguments").Str
			return true
		})
	}
	return names, args
}

func TestNullToolCallsAreNoCalls(t *testing.T) {
	in := "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\",\"tool_calls\":null}}]}\n\n" +
		"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":null},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
	out := translate(t, OpenAI, Anthropic, in)
	if strings.Contains(out, "tool_use") || !strings.Contains(out, `"stop_reason":"end_turn"`) {
		t.Errorf("null tool_calls became a tool call:\n%s", out)
	}
	r, err := DecodeOpenAIResponse([]byte(`{"choices":[{"message":{"content":"Hi","tool_calls":null},"finish_reason":"stop"}]}`))
	if err != nil || hasToolCall(r.Parts) || r.Stop != StopEnd {
		t.Errorf("non-stream: %+v %v", r, err)
	}
	req, derr := DecodeOpenAIRequest([]byte(`{"model":"m","messages":[{"role":"assistant","content":"x","tool_calls":null}],"tools":null,"parallel_tool_calls":null,"stop":null}`))
	if derr != nil || len(req.Tools) != 0 || req.ParallelToolCalls != nil || hasToolCall(req.Messages[0].Parts) {
		t.Errorf("request: %+v %v", req, derr)
	}
}

func TestSameIndexNewIDIsANewCall(t *testing.T) {
	in := "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"y\\\":2}\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"
	out := translate(t, OpenAI, Anthropic, in)
	if strings.Count(out, `"type":"tool_use"`) != 2 || !strings.Contains(out, `"id":"call_b"`) {
		t.Errorf("second call on index 0 lost:\n%s", out)
	}
}

func TestArgsAfterInterleavedText(t *testing.T) {
	in := "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hm\"}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"y\\\":2}\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"
	for _, to := range []Dialect{Anthropic, Responses} {
		out := translate(t, OpenAI, to, in)
		if !strings.Contains(out, `{\"y\":2}`) {
			t.Errorf("%s: arguments after interleaved reasoning lost:\n%s", to, out)
		}
	}
}

func TestWholeArgumentsAndEmptyArguments(t *testing.T) {
	// Anthropic: input sent whole at content_block_start.
	in := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{\"city\":\"Paris\"}}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t2\",\"name\":\"g\",\"input\":{}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":2,\"input_tokens\":null}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	names, args := openAIToolCalls(translate(t, Anthropic, OpenAI, in))
	if len(names) != 2 || args[0] != `{"city":"Paris"}` || args[1] != "{}" {
		t.Errorf("tool calls %q %q", names, args)
	}
	out := translate(t, Anthropic, Responses, in)
	if !strings.Contains(out, `"arguments":"{}"`) || !strings.Contains(out, `{\"city\":\"Paris\"}`) {
		t.Errorf("responses client:\n%s", out)
	}
	// A null count in message_delta must not erase the input count.
	tr, _ := NewStreamTranslator(Anthropic, OpenAI, StreamOptions{})
	tr.Write([]byte(in))
	tr.Close()
	if u, _ := tr.Usage(); u.Input != 1 || u.Output != 2 {
		t.Errorf("usage %+v", u)
	}
	// Responses: arguments only in the .done event.
	rin := "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\"}}\n\n" +
		"event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"\"}}\n\n" +
		"event: response.function_call_arguments.done\ndata: {\"type\":\"response.function_call_arguments.done\",\"output_index\":0,\"arguments\":\"{\\\"a\\\":1}\"}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"object\":\"response\",\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n"
	if _, args := openAIToolCalls(translate(t, Responses, OpenAI, rin)); len(args) != 1 || args[0] != `{"a":1}` {
		t.Errorf("responses .done arguments: %q", args)
	}
}

func TestOpenAIStreamWithoutDoneIsAnError(t *testing.T) {
	in := "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
	if out := translate(t, OpenAI, Anthropic, in); strings.Contains(out, "message_stop") || !strings.Contains(out, "event: error") {
		t.Errorf("cut-short stream looked complete:\n%s", out)
	}
}

func TestOllamaNamelessToolResult(t *testing.T) {
	r, err := DecodeOllamaRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"q"},
		{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{}}}]},
		{"role":"tool","content":"18C"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	call := r.Messages[1].Parts[0]
	res := r.Messages[2].Parts[0]
	if call.ID == "" || res.ID != call.ID || res.Name != "f" {
		t.Errorf("call %+v result %+v", call, res)
	}
}

func TestToolImagesFollowTheToolRun(t *testing.T) {
	r := &ChatRequest{Messages: []Message{
		{Role: RoleAssistant, Parts: []Part{{Type: PartToolCall, ID: "a", Name: "f", Args: "{}"}, {Type: PartToolCall, ID: "b", Name: "f", Args: "{}"}}},
		{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "a", Content: []Part{{Type: PartText, Text: "x"}, {Type: PartImage, Data: "iVBOR", MediaType: "image/png"}}}}},
		{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "b", Content: []Part{{Type: PartText, Text: "y"}}}}},
	}}
	b, _ := EncodeOpenAIRequest(r, EncodeOptions{Model: "m"})
	var roles []string
	each(gjson.GetBytes(b, "messages"), func(_, m gjson.Result) bool { roles = append(roles, m.Get("role").Str); return true })
	if strings.Join(roles, ",") != "assistant,tool,tool,user" {
		t.Errorf("roles %v", roles)
	}
}

func TestReasoningEffortOnlyForReasoningModels(t *testing.T) {
	r := &ChatRequest{ReasoningEffort: "max", Messages: []Message{{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "q"}}}}}
	b, _ := EncodeOpenAIRequest(r, EncodeOptions{Model: "gpt-4o"})
	if gjson.GetBytes(b, "reasoning_effort").Exists() {
		t.Errorf("effort sent to a non-reasoning model: %s", b)
	}
	b, _ = EncodeOpenAIRequest(r, EncodeOptions{Model: "o3", Reasoning: true})
	if gjson.GetBytes(b, "reasoning_effort").Str != "high" {
		t.Errorf("effort for a reasoning model: %s", b)
	}
}
