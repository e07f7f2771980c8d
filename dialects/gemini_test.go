package dialects

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func gread(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "gemini", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGeminiDecodeRequest(t *testing.T) {
	deterministic(t)
	r, err := DecodeGeminiRequest(gread(t, "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "" || r.Stream {
		t.Errorf("model and stream come from the URL: %q %v", r.Model, r.Stream)
	}
	if len(r.System) != 2 || r.System[0].Text != "You are terse." || r.System[1].Text != "Answer in English." {
		t.Errorf("system %+v", r.System)
	}
	var roles []string
	for _, m := range r.Messages {
		roles = append(roles, string(m.Role))
	}
	if got := strings.Join(roles, ","); got != "user,assistant,tool,tool,assistant,user" {
		t.Fatalf("roles %s", got)
	}
	user := r.Messages[0].Parts
	if len(user) != 2 || user[1].Type != PartImage || user[1].MediaType != "image/png" || user[1].Data != "iVBORw0KGgo=" {
		t.Errorf("user parts %+v", user)
	}
	// The thought text and the signature of the call after it are one
	// thinking part; the signature is marked for the next part.
	a := r.Messages[1].Parts
	if len(a) != 3 || a[0].Type != PartThinking || a[0].Text != "Let me check the weather and the time." || a[0].Signature != "gemini-next:c2lnLXdlYXRoZXI=" {
		t.Fatalf("assistant parts %+v", a)
	}
	if a[1].Name != "get_weather" || a[1].Args != `{"city": "Paris"}` || a[2].Name != "get_time" || a[2].Args != "{}" {
		t.Errorf("calls %+v", a[1:])
	}
	if !strings.HasPrefix(a[1].ID, geminiIDPrefix) || a[1].ID == a[2].ID {
		t.Errorf("invented ids %q %q", a[1].ID, a[2].ID)
	}
	// Each response answers its call, by name and order.
	w, tm := r.Messages[2].Parts[0], r.Messages[3].Parts[0]
	if w.ID != a[1].ID || w.Name != "get_weather" || JoinText(w.Content, "") != "18C, cloudy" || w.IsError {
		t.Errorf("weather result %+v", w)
	}
	if tm.ID != a[2].ID || JoinText(tm.Content, "") != `{"time": "14:00", "zone": "CET"}` {
		t.Errorf("time result %+v", tm)
	}
	// A signature on a text part: a signature-only thinking part first.
	if p := r.Messages[4].Parts; len(p) != 2 || p[0].Type != PartThinking || p[0].Signature != "gemini-next:c2lnLXRleHQ=" || p[1].Text != "It is 18C and cloudy; 14:00." {
		t.Errorf("signed text %+v", p)
	}
	// file_data in snake_case, an image: a URL with its type.
	if p := r.Messages[5].Parts; len(p) != 2 || p[1].URL != "gs://bucket/cat.jpg" || p[1].MediaType != "image/jpeg" {
		t.Errorf("fileData %+v", p)
	}
	if len(r.Tools) != 2 {
		t.Fatalf("tools %+v (googleSearch is Google's own: not offered)", r.Tools)
	}
	if want := `{"type":"object","properties":{"unit":{"type":["string","null"],"enum":["C", "F"]},"city":{"type":"string","description":"City name"}},"required":["city"]}`; r.Tools[0].Schema != want {
		t.Errorf("parameters as JSON Schema (propertyOrdering's order):\n%s\nwant\n%s", r.Tools[0].Schema, want)
	}
	if r.Tools[1].Schema != `{"type": "object", "properties": {}}` {
		t.Errorf("parametersJsonSchema is JSON Schema already: %s", r.Tools[1].Schema)
	}
	if r.ToolChoice == nil || *r.ToolChoice != (ToolChoice{Mode: "tool", Name: "get_weather"}) {
		t.Errorf("tool choice %+v", r.ToolChoice)
	}
	if r.MaxTokens != 500 || *r.Temperature != 1.4 || *r.TopP != 0.9 || !reflect.DeepEqual(r.Stop, []string{"END"}) {
		t.Errorf("generation config %+v", r)
	}
	if rf := r.ResponseFormat; rf == nil || rf.Type != "json_schema" || rf.Schema != `{"type":"object","properties":{"temp":{"type":["number","null"]},"summary":{"type":"string"}}}` {
		t.Errorf("response format %+v", r.ResponseFormat)
	}
	if r.ThinkingBudget != 2048 || r.ReasoningEffort != "" {
		t.Errorf("thinking %d %q", r.ThinkingBudget, r.ReasoningEffort)
	}
}

func TestGeminiDecodeRequestVariants(t *testing.T) {
	cases := []struct {
		body  string
		check func(*ChatRequest) bool
	}{
		{`{"contents":[{"parts":[{"text":"hi"}]}],"system_instruction":{"parts":[{"text":"sys"}]}}`,
			func(r *ChatRequest) bool { return r.System[0].Text == "sys" && r.Messages[0].Role == RoleUser }},
		{`{"contents":[],"systemInstruction":"plain"}`, func(r *ChatRequest) bool { return r.System[0].Text == "plain" }},
		{`{"contents":[],"generation_config":{"max_output_tokens":"64","thinking_config":{"thinking_level":"low"}}}`,
			func(r *ChatRequest) bool { return r.MaxTokens == 64 && r.ReasoningEffort == "low" }},
		{`{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":-1}}}`, func(r *ChatRequest) bool { return r.ReasoningEffort == "medium" }},
		{`{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":0}}}`, func(r *ChatRequest) bool { return r.ReasoningEffort == "none" }},
		{`{"contents":[],"generationConfig":{"thinkingConfig":{"includeThoughts":true}}}`, func(r *ChatRequest) bool { return r.ReasoningEffort == "medium" }},
		{`{"contents":[],"generationConfig":{"responseMimeType":"application/json"}}`,
			func(r *ChatRequest) bool { return r.ResponseFormat != nil && r.ResponseFormat.Type == "json_object" }},
		{`{"contents":[],"generationConfig":{"responseJsonSchema":{"type":"object","additionalProperties":false}}}`,
			func(r *ChatRequest) bool {
				return r.ResponseFormat.Schema == `{"type":"object","additionalProperties":false}`
			}},
		{`{"contents":[],"tools":[{"functionDeclarations":[{"name":"f"}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f","g"]}}}`,
			func(r *ChatRequest) bool {
				return *r.ToolChoice == ToolChoice{Mode: "required"} && r.Tools[0].Schema == `{"type":"object","properties":{}}`
			}},
		{`{"contents":[],"toolConfig":{"functionCallingConfig":{"mode":"VALIDATED"}}}`, func(r *ChatRequest) bool { return r.ToolChoice.Mode == "auto" }},
		{`{"contents":[],"toolConfig":{"functionCallingConfig":{"mode":"NONE"}}}`, func(r *ChatRequest) bool { return r.ToolChoice.Mode == "none" }},
		// Members the neutral request cannot hold are left to the cache key.
		{`{"contents":[{"role":"user","parts":[{"text":"x"}]}],"safetySettings":[],"cachedContent":"c/1","generationConfig":{"topK":3,"candidateCount":2,"seed":1}}`,
			func(r *ChatRequest) bool { return len(r.Messages) == 1 }},
		// Media the neutral model cannot hold (a PDF) is dropped, as other decoders drop documents.
		{`{"contents":[{"role":"user","parts":[{"text":"x"},{"inlineData":{"mimeType":"application/pdf","data":"JVBE"}}]}]}`,
			func(r *ChatRequest) bool { return len(r.Messages[0].Parts) == 1 }},
		// A function response in the role early clients used, with a
		// structured error, and a multimodal part (Gemini 3).
		{`{"contents":[{"role":"model","parts":[{"functionCall":{"id":"c1","name":"f"}}]},{"role":"function","parts":[{"functionResponse":{"id":"c1","name":"f","response":{"error":{"code":7}},"parts":[{"inlineData":{"mimeType":"image/png","data":"iVBO"}}]}}]}]}`,
			func(r *ChatRequest) bool {
				p := r.Messages[1].Parts[0]
				return p.ID == "c1" && p.IsError && p.Content[0].Text == `{"code":7}` && p.Content[1].Data == "iVBO" && r.Messages[0].Parts[0].Args == "{}"
			}},
	}
	for _, c := range cases {
		r, err := DecodeGeminiRequest([]byte(c.body))
		if err != nil {
			t.Errorf("%s: %v", c.body, err)
			continue
		}
		if !c.check(r) {
			t.Errorf("%s: decoded %+v", c.body, r)
		}
	}
}

func TestGeminiDecodeRequestErrors(t *testing.T) {
	cases := []struct{ body, param, msg string }{
		{`{"contents":{}}`, "contents", "contents must be an array"},
		{`{"contents":[5]}`, "contents", "contents[0] must be an object"},
		{`{"contents":[{"role":"user","parts":{}}]}`, "contents", "contents[0].parts must be an array"},
		{`{"contents":[{"role":"system","parts":[]}]}`, "contents", `unknown role "system"`},
		{`{"contents":[{"role":"model","parts":[{"functionCall":{"args":{}}}]}]}`, "contents", "contents[0].parts[0].functionCall needs a name"},
		{`{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","args":"x"}}]}]}`, "contents", "functionCall.args must be an object"},
		{`{"contents":[{"role":"user","parts":[{"text":"a"},{"functionResponse":{"response":{}}}]}]}`, "contents", "contents[0].parts[1].functionResponse needs a name"},
		{`{"contents":[{"role":"user","parts":[{"functionCall":{"name":"f"}}]}]}`, "contents", "functionCall belongs in a model content"},
		{`{"contents":[{"role":"model","parts":[{"functionResponse":{"name":"f"}}]}]}`, "contents", "functionResponse belongs in a user content"},
		{`{"contents":[],"systemInstruction":5}`, "systemInstruction", "systemInstruction must be"},
		{`{"contents":[],"systemInstruction":{"parts":"x"}}`, "systemInstruction", "parts must be an array"},
		{`{"contents":[],"tools":{}}`, "tools", "tools must be an array"},
		{`{"contents":[],"tools":[{"functionDeclarations":[{"description":"d"}]}]}`, "tools", "tools[0].functionDeclarations[0] needs a name"},
		{`{"contents":[],"tools":[{"functionDeclarations":[{"name":"f","parameters":"x"}]}]}`, "tools", "parameters must be a schema object"},
		{`{"contents":[],"toolConfig":{"functionCallingConfig":{"mode":"SOMETIMES"}}}`, "toolConfig", `mode "SOMETIMES"`},
		{`{"contents":[],"generationConfig":[]}`, "generationConfig", "generationConfig must be an object"},
		{`{"contents":[],"generationConfig":{"maxOutputTokens":"many"}}`, "generationConfig.maxOutputTokens", "must be a number"},
		{`{"contents":[],"generationConfig":{"temperature":true}}`, "generationConfig.temperature", "must be a number"},
		{`{"contents":[],"generationConfig":{"stopSequences":"END"}}`, "generationConfig.stopSequences", "array of strings"},
		{`{"contents":[],"generationConfig":{"responseSchema":"x"}}`, "generationConfig.responseSchema", "schema object"},
		{`{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingBudget":"lots"}}}`, "generationConfig.thinkingConfig.thinkingBudget", "must be a number"},
		{`{"contents":[],"generationConfig":{"thinkingConfig":{"thinkingLevel":"EXTREME"}}}`, "generationConfig.thinkingConfig.thinkingLevel", "EXTREME"},
	}
	for _, c := range cases {
		_, err := DecodeGeminiRequest([]byte(c.body))
		if err == nil || err.Status != 400 || err.Param != c.param || !strings.Contains(err.Message, c.msg) {
			t.Errorf("%s: %+v, want 400 %s %q", c.body, err, c.param, c.msg)
		}
	}
}

// Function responses without ids answer the oldest unanswered call of
// their name; ids given are kept.
func TestGeminiIDsByNameAndOrder(t *testing.T) {
	deterministic(t)
	r, err := DecodeGeminiRequest([]byte(`{"contents":[
		{"role":"user","parts":[{"text":"q"}]},
		{"role":"model","parts":[{"functionCall":{"name":"f","args":{"n":1}}},{"functionCall":{"name":"g"}},{"functionCall":{"name":"f","args":{"n":2}}},{"functionCall":{"id":"x9","name":"h"}}]},
		{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"output":"one"}}},{"functionResponse":{"id":"x9","name":"h","response":{}}},{"functionResponse":{"name":"f","response":{"output":"two"}}},{"functionResponse":{"name":"g","response":{"output":"gee"}}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]string{}
	for _, p := range r.Messages[1].Parts {
		calls[p.ID] = p.Name + p.Args
	}
	want := []string{`f{"n":1}one`, "h{}{}", `f{"n":2}two`, "g{}gee"}
	for i, m := range r.Messages[2:] {
		p := m.Parts[0]
		if got := calls[p.ID] + JoinText(p.Content, ""); got != want[i] {
			t.Errorf("result %d: %q, want %q", i, got, want[i])
		}
	}
	// Sent back to Gemini: invented ids are left out (Gemini never
	// issued them), Gemini's own x9 is kept.
	b, eerr := EncodeGeminiRequest(r, EncodeOptions{})
	if eerr != nil {
		t.Fatal(eerr)
	}
	if n := strings.Count(string(b), `"id"`); n != 2 || !strings.Contains(string(b), `"id":"x9"`) {
		t.Errorf("ids sent: %s", b)
	}
}

func TestGeminiEncodeRequest(t *testing.T) {
	deterministic(t)
	temp := 0.3
	r := &ChatRequest{
		System: []Part{{Type: PartText, Text: "sys"}, {Type: PartText, Text: "  "}},
		Messages: []Message{
			{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "look"}, {Type: PartImage, URL: "data:image/jpeg;base64,/9j/AA"}}},
			{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "and this"}}},
			{Role: RoleAssistant, Parts: []Part{
				{Type: PartThinking, Text: "from another provider", Signature: "anthropic-sig"},
				{Type: PartText, Text: "calling"},
				{Type: PartToolCall, ID: "call_a", Name: "f", Args: `{"x":1}`},
				{Type: PartToolCall, ID: "call_b", Name: "g", Args: `not json`},
			}},
			{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "call_a", Content: []Part{{Type: PartText, Text: "plain"}, {Type: PartImage, MediaType: "image/png", Data: "iVBO"}}}}},
			{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "call_b", IsError: true, Content: []Part{{Type: PartText, Text: "boom"}}}}},
			{Role: RoleSystem, Parts: []Part{{Type: PartText, Text: "late note"}}},
			{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "next"}}},
			{Role: RoleAssistant, Parts: []Part{
				{Type: PartThinking, Text: "signed thought", Signature: "gemini:T1"},
				{Type: PartThinking, Signature: "gemini-next:S1"},
				{Type: PartToolCall, ID: "call_gm_x", Name: "f", Args: `{}`},
			}},
			{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "call_gm_x", Content: []Part{{Type: PartText, Text: `{"ok":true}`}}}}},
		},
		Tools: []Tool{
			{Name: "f", Description: "does f", Schema: `{"type":"object","properties":{"x":{"type":"integer"}},"additionalProperties":false}`},
			{Name: "g", Schema: `{"type":"object","properties":{}}`},
		},
		ToolChoice:     &ToolChoice{Mode: "tool", Name: "f"},
		MaxTokens:      100,
		Temperature:    &temp,
		Stop:           []string{"STOP"},
		ResponseFormat: &ResponseFormat{Type: "json_schema", Schema: `{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"integer"}}}`},
		ThinkingBudget: 3000,
	}
	b, err := EncodeGeminiRequest(r, EncodeOptions{Model: "gemini-2.5-pro"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"contents":[` +
		`{"role":"user","parts":[{"text":"look"},{"inlineData":{"data":"/9j/AA","mimeType":"image/jpeg"}},{"text":"and this"}]},` +
		`{"role":"model","parts":[{"text":"calling"},{"functionCall":{"args":{"x":1},"id":"call_a","name":"f"},"thoughtSignature":"skip_thought_signature_validator"},{"functionCall":{"args":{},"id":"call_b","name":"g"}}]},` +
		`{"role":"user","parts":[{"functionResponse":{"id":"call_a","name":"f","response":{"output":"plain"}}},{"functionResponse":{"id":"call_b","name":"g","response":{"error":"boom"}}},{"inlineData":{"data":"iVBO","mimeType":"image/png"}},{"text":"next"}]},` +
		`{"role":"model","parts":[{"text":"signed thought","thought":true,"thoughtSignature":"T1"},{"functionCall":{"args":{},"name":"f"},"thoughtSignature":"S1"}]},` +
		`{"role":"user","parts":[{"functionResponse":{"name":"f","response":{"ok":true}}}]}],` +
		`"generationConfig":{"maxOutputTokens":100,"responseMimeType":"application/json","responseSchema":{"type":"OBJECT","properties":{"b":{"type":"STRING"},"a":{"type":"INTEGER"}},"propertyOrdering":["b","a"]},"stopSequences":["STOP"],"temperature":0.3,"thinkingConfig":{"includeThoughts":true,"thinkingBudget":3000}},` +
		`"systemInstruction":{"parts":[{"text":"sys"},{"text":"late note"}]},` +
		`"toolConfig":{"functionCallingConfig":{"allowedFunctionNames":["f"],"mode":"ANY"}},` +
		`"tools":[{"functionDeclarations":[{"description":"does f","name":"f","parameters":{"type":"OBJECT","properties":{"x":{"type":"INTEGER"}}}},{"name":"g"}]}]}`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
	if gjson.GetBytes(b, "model").Exists() || gjson.GetBytes(b, "stream").Exists() {
		t.Error("model or stream in the body")
	}
}

func TestGeminiEncodeRequestOptions(t *testing.T) {
	user := []Message{{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "q"}}}}
	for _, c := range []struct {
		r    ChatRequest
		o    EncodeOptions
		path string
		want string
	}{
		{ChatRequest{ReasoningEffort: "high"}, EncodeOptions{}, "generationConfig", ""},
		{ChatRequest{ReasoningEffort: "high"}, EncodeOptions{Reasoning: true}, "generationConfig.thinkingConfig", `{"includeThoughts":true,"thinkingBudget":16384}`},
		{ChatRequest{ReasoningEffort: "low"}, EncodeOptions{Reasoning: true}, "generationConfig.thinkingConfig.thinkingBudget", "1024"},
		{ChatRequest{ReasoningEffort: "none"}, EncodeOptions{Reasoning: true}, "generationConfig", ""},
		{ChatRequest{ThinkingBudget: 500}, EncodeOptions{}, "generationConfig.thinkingConfig.thinkingBudget", "500"},
		{ChatRequest{ResponseFormat: &ResponseFormat{Type: "json_object"}}, EncodeOptions{}, "generationConfig", `{"responseMimeType":"application/json"}`},
		{ChatRequest{ResponseFormat: &ResponseFormat{Type: "json_schema", Schema: `{"type":"object"}`}}, EncodeOptions{}, "generationConfig", `{"responseMimeType":"application/json"}`},
		{ChatRequest{Tools: []Tool{{Name: "f", Schema: `{}`}}, ToolChoice: &ToolChoice{Mode: "required"}}, EncodeOptions{}, "toolConfig", `{"functionCallingConfig":{"mode":"ANY"}}`},
		{ChatRequest{Tools: []Tool{{Name: "f", Schema: `{}`}}, ToolChoice: &ToolChoice{Mode: "none"}}, EncodeOptions{}, "toolConfig", `{"functionCallingConfig":{"mode":"NONE"}}`},
		{ChatRequest{Tools: []Tool{{Name: "f", Schema: `{}`}}, ToolChoice: &ToolChoice{Mode: "auto"}}, EncodeOptions{}, "toolConfig", `{"functionCallingConfig":{"mode":"AUTO"}}`},
		{ChatRequest{ToolChoice: &ToolChoice{Mode: "required"}}, EncodeOptions{}, "toolConfig", ""},
	} {
		c.r.Messages = user
		b, err := EncodeGeminiRequest(&c.r, c.o)
		if err != nil {
			t.Fatal(err)
		}
		if got := gjson.GetBytes(b, c.path).Raw; got != c.want {
			t.Errorf("%+v: %s = %s, want %s", c.r, c.path, got, c.want)
		}
	}
	// Gemini fetches no URLs; the gateway neither.
	for _, url := range []string{"https://example.com/cat.png", "http://x/y.jpg"} {
		r := &ChatRequest{Messages: []Message{{Role: RoleUser, Parts: []Part{{Type: PartImage, URL: url}}}}}
		if _, err := EncodeGeminiRequest(r, EncodeOptions{}); !errors.Is(err, ErrImageURL) {
			t.Errorf("%s: %v", url, err)
		}
		if _, derr := EncodeRequestFor(Gemini, r, EncodeOptions{}); derr == nil || derr.Status != 400 {
			t.Errorf("%s: not a 400: %v", url, derr)
		}
	}
	// Files Gemini knows go as fileData.
	r := &ChatRequest{Messages: []Message{{Role: RoleUser, Parts: []Part{{Type: PartImage, URL: "gs://b/x.webp"},
		{Type: PartImage, URL: "https://generativelanguage.googleapis.com/v1beta/files/abc"}}}}}
	b, err := EncodeGeminiRequest(r, EncodeOptions{})
	if err != nil || gjson.GetBytes(b, "contents.0.parts.0.fileData.mimeType").Str != "image/webp" ||
		gjson.GetBytes(b, "contents.0.parts.1.fileData.fileUri").Str != "https://generativelanguage.googleapis.com/v1beta/files/abc" {
		t.Errorf("file URIs: %s %v", b, err)
	}
	// A result that answers no call and names nothing cannot be sent.
	r = &ChatRequest{Messages: []Message{{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "nope"}}}}}
	if _, err := EncodeGeminiRequest(r, EncodeOptions{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("orphan result: %v", err)
	}
	// A result with no id answers the oldest unanswered call.
	r = &ChatRequest{Messages: []Message{{Role: RoleAssistant, Parts: []Part{{Type: PartToolCall, Name: "f", Args: "{}"}}},
		{Role: RoleTool, Parts: []Part{{Type: PartToolResult, Content: []Part{{Type: PartText, Text: "r"}}}}}}}
	if b, err := EncodeGeminiRequest(r, EncodeOptions{}); err != nil || gjson.GetBytes(b, "contents.1.parts.0.functionResponse.name").Str != "f" {
		t.Errorf("nameless result: %s %v", b, err)
	}
}

func TestGeminiSchema(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"types, const, dropped keywords",
			`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","additionalProperties":false,"properties":{"kind":{"const":"circle"},"n":{"const":3,"type":"integer"},"tags":{"type":"array"},"when":{"type":"string","format":"date-time"},"mail":{"type":"string","format":"email","examples":["a@b.c"]},"lvl":{"type":"integer","enum":[1,2]}},"required":["kind","ghost"],"patternProperties":{"^x":{}}}`,
			`{"type":"OBJECT","properties":{"kind":{"type":"STRING","enum":["circle"]},"n":{"type":"INTEGER","description":"Must be 3."},"tags":{"type":"ARRAY","items":{"type":"STRING"}},"when":{"type":"STRING","format":"date-time"},"mail":{"type":"STRING","example":"a@b.c"},"lvl":{"type":"INTEGER","description":"Allowed values: 1, 2."}},"required":["kind"]}`},
		{"$ref into $defs and definitions, siblings override",
			`{"type":"object","properties":{"a":{"$ref":"#/$defs/Pt","description":"where"},"b":{"$ref":"#/definitions/Name"}},"$defs":{"Pt":{"type":"object","description":"a point","properties":{"x":{"type":"number"}}}},"definitions":{"Name":{"type":"string","minLength":1}}}`,
			`{"type":"OBJECT","properties":{"a":{"type":"OBJECT","description":"where","properties":{"x":{"type":"NUMBER"}}},"b":{"type":"STRING","minLength":1}}}`},
		{"nullable: type arrays, anyOf with null (Pydantic's Optional), enum with null",
			`{"type":"object","properties":{"a":{"type":["string","null"]},"b":{"anyOf":[{"$ref":"#/$defs/X"},{"type":"null"}],"default":null},"c":{"enum":["x",null]},"d":{"type":["string","integer"]}},"$defs":{"X":{"type":"integer","maximum":9}}}`,
			`{"type":"OBJECT","properties":{"a":{"type":"STRING","nullable":true},"b":{"type":"INTEGER","nullable":true,"maximum":9},"c":{"type":"STRING","nullable":true,"enum":["x"]},"d":{"anyOf":[{"type":"STRING"},{"type":"INTEGER"}]}}}`},
		{"nested anyOf and oneOf",
			`{"type":"object","properties":{"v":{"oneOf":[{"type":"string"},{"type":"object","properties":{"w":{"anyOf":[{"type":"number"},{"type":"boolean"},{"type":"null"}]}}}]}}}`,
			`{"type":"OBJECT","properties":{"v":{"anyOf":[{"type":"STRING"},{"type":"OBJECT","properties":{"w":{"nullable":true,"anyOf":[{"type":"NUMBER"},{"type":"BOOLEAN"}]}}}]}}}`},
		{"allOf merged",
			`{"allOf":[{"$ref":"#/$defs/Base"},{"properties":{"b":{"type":"string"}},"required":["b"]}],"$defs":{"Base":{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}}}`,
			`{"type":"OBJECT","properties":{"a":{"type":"INTEGER"},"b":{"type":"STRING"}},"required":["a","b"]}`},
		{"a cycle stops at a free-form object",
			`{"$ref":"#/$defs/Node","$defs":{"Node":{"type":"object","properties":{"value":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/$defs/Node","description":"child"}}}}}}`,
			`{"type":"OBJECT","properties":{"value":{"type":"STRING"},"children":{"type":"ARRAY","items":{"type":"OBJECT","description":"child"}}}}`},
		{"root self-reference", `{"type":"object","properties":{"next":{"$ref":"#"}}}`,
			`{"type":"OBJECT","properties":{"next":{"type":"OBJECT"}}}`},
		{"unresolvable and remote refs are dropped", `{"type":"object","properties":{"r":{"$ref":"https://x/s.json","description":"d"}}}`,
			`{"type":"OBJECT","properties":{"r":{"description":"d"}}}`},
		{"bounds and defaults", `{"type":"object","properties":{"n":{"type":"number","exclusiveMinimum":0,"maximum":1.5,"default":0.5},"s":{"type":"array","items":[{"type":"string"}],"minItems":1,"maxItems":3,"default":[]}}}`,
			`{"type":"OBJECT","properties":{"n":{"type":"NUMBER","minimum":0,"maximum":1.5,"default":0.5},"s":{"type":"ARRAY","items":{"type":"STRING"},"minItems":1,"maxItems":3}}}`},
	}
	for _, c := range cases {
		got, err := geminiSchema(c.in, false)
		if err != nil || got != c.want {
			t.Errorf("%s:\n got %s %v\nwant %s", c.name, got, err, c.want)
		}
		if !gjson.Valid(got) {
			t.Errorf("%s: invalid JSON", c.name)
		}
	}
	// Exponential growth once $refs are inlined, and deep nesting, are
	// refused rather than expanded.
	defs := `"D0":{"type":"string"}`
	for i := 1; i < 30; i++ {
		defs += `,"D` + strconv.Itoa(i) + `":{"type":"object","properties":{"a":{"$ref":"#/$defs/D` + strconv.Itoa(i-1) + `"},"b":{"$ref":"#/$defs/D` + strconv.Itoa(i-1) + `"}}}`
	}
	if _, err := geminiSchema(`{"$ref":"#/$defs/D29","$defs":{`+defs+`}}`, false); !errors.Is(err, errSchemaSize) {
		t.Errorf("exponential schema: %v", err)
	}
	deep := strings.Repeat(`{"type":"array","items":`, 100) + `{}` + strings.Repeat(`}`, 100)
	if _, err := geminiSchema(deep, false); !errors.Is(err, errSchemaSize) {
		t.Errorf("deep schema: %v", err)
	}
	r := &ChatRequest{Tools: []Tool{{Name: "deep", Schema: deep}}}
	if _, derr := EncodeRequestFor(Gemini, r, EncodeOptions{}); derr == nil || derr.Status != 400 || !strings.Contains(derr.Message, "tool deep") {
		t.Errorf("deep tool schema: %v", derr)
	}
}

func TestJSONSchemaFromGemini(t *testing.T) {
	in := `{"type":"OBJECT","description":"d","properties":{"b":{"type":"ARRAY","items":{"type":"STRING","format":"enum","enum":["x","y"]},"max_items":"3"},"a":{"any_of":[{"type":"INTEGER"},{"type":"NULL"}],"example":4},"c":{"type":"TYPE_UNSPECIFIED","title":"t"}},"property_ordering":["a","b"],"required":["a"]}`
	want := `{"type":"object","description":"d","properties":{"a":{"anyOf":[{"type":"integer"},{"type":"null"}],"examples":[4]},"b":{"type":"array","items":{"type":"string","format":"enum","enum":["x","y"]},"maxItems":"3"},"c":{"title":"t"}},"required":["a"]}`
	if got := jsonSchemaFromGemini(gjson.Parse(in)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// And back: the same Gemini schema, the order kept for responses.
	back, err := geminiSchema(want, true)
	if err != nil || back != `{"type":"OBJECT","description":"d","properties":{"a":{"type":"INTEGER","nullable":true,"example":4},"b":{"type":"ARRAY","items":{"type":"STRING","format":"enum","enum":["x","y"]}},"c":{"title":"t"}},"propertyOrdering":["a","b","c"],"required":["a"]}` {
		t.Errorf("back: %s %v", back, err)
	}
}

func TestGeminiDecodeResponse(t *testing.T) {
	deterministic(t)
	r, err := DecodeGeminiResponse(gread(t, "response.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "resp-g1" || r.Model != "gemini-2.5-flash" || r.Stop != StopToolUse || r.NativeStop != "STOP" {
		t.Errorf("answer %+v", r)
	}
	// Input includes the cache; output includes thoughts.
	if r.Usage != (Usage{Input: 100, CachedInput: 40, Output: 20, Reasoning: 8}) {
		t.Errorf("usage %+v", r.Usage)
	}
	want := []Part{
		{Type: PartThinking, Text: "Weighing the request."},
		{Type: PartText, Text: "Let me check."},
		{Type: PartThinking, Signature: "gemini-next:c2lnLTE="},
		{Type: PartToolCall, ID: "fc-1", Name: "get_weather", Args: `{"city": "Paris"}`},
		{Type: PartToolCall, ID: "call_gm_gen001", Name: "get_time", Args: "{}"},
	}
	if !reflect.DeepEqual(r.Parts, want) {
		t.Errorf("parts\n%+v\nwant\n%+v", r.Parts, want)
	}

	for _, c := range []struct {
		body   string
		stop   StopReason
		native string
		parts  int
	}{
		{`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"MAX_TOKENS"}]}`, StopMaxTokens, "MAX_TOKENS", 1},
		{`{"candidates":[{"finishReason":"SAFETY","safetyRatings":[]}]}`, StopContentFilter, "SAFETY", 0},
		{`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"RECITATION"}]}`, StopContentFilter, "RECITATION", 1},
		{`{"candidates":[{"finishReason":"PROHIBITED_CONTENT"}]}`, StopContentFilter, "PROHIBITED_CONTENT", 0},
		{`{"candidates":[{"finishReason":"MALFORMED_FUNCTION_CALL","finishMessage":"bad"}]}`, StopEnd, "MALFORMED_FUNCTION_CALL", 0},
		{`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"OTHER"}]}`, StopEnd, "OTHER", 1},
		{`{"candidates":[{"content":{"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3}}`, StopEnd, "STOP", 0},
		// A refused prompt has no candidates: still an answer.
		{`{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":5}}`, StopContentFilter, "SAFETY", 0},
		{`{"candidates":[],"usageMetadata":{"promptTokenCount":5}}`, StopEnd, "", 0},
		// Without alt=sse a stream is a JSON array of chunks.
		{`[{"candidates":[{"content":{"parts":[{"text":"a"}]}}]},{"candidates":[{"content":{"parts":[{"text":"b"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":2}}]`, StopEnd, "STOP", 1},
	} {
		r, err := DecodeGeminiResponse([]byte(c.body))
		if err != nil {
			t.Errorf("%s: %v", c.body, err)
			continue
		}
		if r.Stop != c.stop || r.NativeStop != c.native || len(r.Parts) != c.parts || r.ID == "" {
			t.Errorf("%s: %+v", c.body, r)
		}
		for _, to := range []Dialect{OpenAI, Anthropic, Responses, Ollama, Gemini} {
			if _, err := EncodeResponse(to, r, "m"); err != nil {
				t.Errorf("%s to %s: %v", c.body, to, err)
			}
		}
	}
	for _, body := range []string{`{"error":{"code":400,"message":"bad key"}}`, `{"id":"x"}`, `"x"`, `{`} {
		if _, err := DecodeGeminiResponse([]byte(body)); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
	if r, _ := DecodeGeminiResponse([]byte(`[{"candidates":[{"content":{"parts":[{"text":"a"}]}}]},{"candidates":[{"content":{"parts":[{"text":"b"}]},"finishReason":"STOP"}]}]`)); JoinText(r.Parts, "") != "ab" {
		t.Errorf("array: %+v", r.Parts)
	}
	if _, err := DecodeGeminiResponse([]byte(`[{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}]`)); err == nil {
		t.Error("an array without a finish reason was accepted")
	}
}

func TestGeminiEncodeResponse(t *testing.T) {
	deterministic(t)
	r := &ChatResponse{ID: "msg_1", Stop: StopToolUse, NativeStop: "tool_use", Usage: Usage{Input: 10, CachedInput: 4, Output: 7, Reasoning: 3},
		Parts: []Part{
			{Type: PartThinking, Text: "pondering", Signature: "anthropic-sig=="},
			{Type: PartRedactedThinking, Data: "opaque"},
			{Type: PartText, Text: "Here."},
			{Type: PartToolCall, ID: "toolu_1", Name: "f", Args: `{"a":1}`},
		}}
	b, err := EncodeGeminiResponse(r, "client-model")
	if err != nil {
		t.Fatal(err)
	}
	root := gjson.ParseBytes(b)
	c := root.Get("candidates.0")
	if c.Get("index").Int() != 0 || c.Get("content.role").Str != "model" || c.Get("finishReason").Str != "STOP" ||
		root.Get("modelVersion").Str != "client-model" || root.Get("responseId").Str != "msg_1" {
		t.Errorf("envelope %s", b)
	}
	if u := root.Get("usageMetadata").Raw; u != `{"promptTokenCount":10,"candidatesTokenCount":4,"thoughtsTokenCount":3,"cachedContentTokenCount":4,"totalTokenCount":17}` {
		t.Errorf("usage %s", u)
	}
	parts := c.Get("content.parts").Array()
	if len(parts) != 4 || !parts[0].Get("thought").Bool() || parts[0].Get("text").Str != "pondering" ||
		parts[2].Get("text").Str != "Here." || parts[3].Get("functionCall.args.a").Int() != 1 || parts[3].Get("functionCall.id").Str != "toolu_1" {
		t.Fatalf("parts %s", c.Get("content.parts").Raw)
	}
	// Anthropic's signature and redacted thinking travel wrapped; the
	// Gemini client hands them back and they come out as they went in.
	req := []byte(`{"contents":[{"role":"user","parts":[{"text":"q"}]},{"role":"model","parts":` + c.Get("content.parts").Raw + `}]}`)
	back, derr := DecodeGeminiRequest(req)
	if derr != nil {
		t.Fatal(derr)
	}
	got := back.Messages[1].Parts
	if !reflect.DeepEqual(got[:2], []Part{{Type: PartThinking, Text: "pondering", Signature: "anthropic-sig=="}, {Type: PartRedactedThinking, Data: "opaque"}}) {
		t.Errorf("unwrapped %+v", got)
	}
	ab, _ := EncodeAnthropicRequest(back, EncodeOptions{Model: "claude"})
	if !strings.Contains(string(ab), `"signature":"anthropic-sig=="`) || !strings.Contains(string(ab), `"redacted_thinking"`) {
		t.Errorf("anthropic request %s", ab)
	}
	// Finish reasons: Gemini's own value when it still says the same.
	for _, c := range []struct {
		stop   StopReason
		native string
		want   string
	}{
		{StopContentFilter, "RECITATION", "RECITATION"}, {StopContentFilter, "refusal", "SAFETY"}, {StopEnd, "MALFORMED_FUNCTION_CALL", "MALFORMED_FUNCTION_CALL"},
		{StopMaxTokens, "length", "MAX_TOKENS"}, {StopMaxTokens, "STOP", "MAX_TOKENS"}, {StopSequence, "stop_sequence", "STOP"}, {StopPause, "", "STOP"},
		{StopEnd, "FINISH_REASON_UNSPECIFIED", "STOP"},
	} {
		if got := geminiFinish(c.stop, c.native); got != c.want {
			t.Errorf("%s/%s: %s, want %s", c.stop, c.native, got, c.want)
		}
	}
	// A tool stop without a tool call is a plain stop.
	if b, _ := EncodeGeminiResponse(&ChatResponse{Stop: StopToolUse}, "m"); gjson.GetBytes(b, "candidates.0.finishReason").Str != "STOP" ||
		gjson.GetBytes(b, "candidates.0.content.parts").Raw != "[]" {
		t.Errorf("empty answer %s", b)
	}
}

// resetIDs makes generated ids start again from gen001.
func geminiResetIDs() {
	n := 0
	idSource = func(prefix string) string { n++; return prefix + "gen" + strconv.Itoa(1000 + n)[1:] }
}

// feed runs in through a translator, cut at cut (whole when cut < 0).
func geminiFeed(t *testing.T, from, to Dialect, in []byte, cut int) []byte {
	t.Helper()
	geminiResetIDs()
	tr, err := NewStreamTranslator(from, to, StreamOptions{Model: "client-model", IncludeUsage: true, Created: 1})
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
	return append(out, tr.Close()...)
}

func TestGeminiStreamDecode(t *testing.T) {
	deterministic(t)
	crlf := gread(t, "stream.txt")
	lf := []byte(strings.ReplaceAll(string(crlf), "\r\n", "\n"))
	if !strings.Contains(string(crlf), "\r\n\r\n") || strings.Contains(string(lf), "\r") {
		t.Fatal("test data framing")
	}
	whole := geminiFeed(t, Gemini, Anthropic, crlf, -1)
	if got := geminiFeed(t, Gemini, Anthropic, lf, -1); string(got) != string(whole) {
		t.Errorf("LF framing differs from CRLF:\n%s\nvs\n%s", got, whole)
	}
	// However the bytes arrive, the translation is the same.
	for _, in := range [][]byte{crlf, lf} {
		for cut := 0; cut <= len(in); cut++ {
			if got := geminiFeed(t, Gemini, Anthropic, in, cut); string(got) != string(whole) {
				t.Fatalf("cut at %d:\n%s\nwant\n%s", cut, got, whole)
			}
		}
	}
	geminiResetIDs()
	r, err := CollectStream(Gemini, crlf)
	if err != nil {
		t.Fatal(err)
	}
	want := []Part{
		{Type: PartThinking, Text: "The user wants the weather."},
		{Type: PartText, Text: "Let me check."},
		{Type: PartThinking, Signature: "gemini-next:c2lnLTE="},
		{Type: PartToolCall, ID: "call_gm_gen001", Name: "get_weather", Args: `{"city": "Paris"}`},
		{Type: PartToolCall, ID: "call_gm_gen002", Name: "get_time", Args: "{}"},
	}
	if !reflect.DeepEqual(r.Parts, want) {
		t.Errorf("parts\n%+v\nwant\n%+v", r.Parts, want)
	}
	// The finish came on a later chunk than the calls: still a tool
	// stop. Usage is the last chunk's, not a sum.
	if r.ID != "resp-g1" || r.Model != "gemini-2.5-flash" || r.Stop != StopToolUse || r.NativeStop != "STOP" ||
		r.Usage != (Usage{Input: 100, Output: 20, Reasoning: 8}) {
		t.Errorf("answer %+v", r)
	}
	out := string(geminiFeed(t, Gemini, OpenAI, crlf, -1))
	if names, args := openAIToolCalls(out); len(names) != 2 || args[0] != `{"city": "Paris"}` || args[1] != "{}" ||
		!strings.Contains(out, `"finish_reason":"tool_calls"`) || !strings.Contains(out, `"prompt_tokens":100`) {
		t.Errorf("openai client:\n%s", out)
	}
}

func TestGeminiStreamEdges(t *testing.T) {
	chunk := func(s string) string { return "data: " + s + "\r\n\r\n" }
	text := chunk(`{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":4}}`)
	// No end marker and no finish reason: cut short.
	if out := translate(t, Gemini, OpenAI, text); strings.Contains(out, "[DONE]") || !strings.Contains(out, "finish reason") {
		t.Errorf("cut-short stream looked complete:\n%s", out)
	}
	if _, err := CollectStream(Gemini, []byte(text)); err == nil {
		t.Error("collected a stream without a finish reason")
	}
	if _, err := CollectStream(Gemini, nil); err == nil {
		t.Error("collected an empty stream")
	}
	// An error chunk, with its status.
	out := translate(t, Gemini, Anthropic, text+chunk(`{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}`))
	if !strings.Contains(out, `"type":"rate_limit_error"`) || !strings.Contains(out, "Resource has been exhausted") || strings.Contains(out, "message_stop") {
		t.Errorf("error chunk:\n%s", out)
	}
	if out := translate(t, Gemini, OpenAI, chunk(`{"error":{"message":"x","status":"UNAVAILABLE"}}`)); !strings.Contains(out, `"code":"503"`) {
		t.Errorf("status from the name:\n%s", out)
	}
	if out := translate(t, Gemini, OpenAI, "data: nope\r\n\r\n"); !strings.Contains(out, "not JSON") {
		t.Errorf("not JSON:\n%s", out)
	}
	// A refused prompt: no candidates, a content filter.
	out = translate(t, Gemini, OpenAI, chunk(`{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}`))
	if !strings.Contains(out, `"finish_reason":"content_filter"`) || !strings.Contains(out, "[DONE]") {
		t.Errorf("blocked prompt:\n%s", out)
	}
	// A thought's own signature on a later, empty thought part.
	r, err := CollectStream(Gemini, []byte(chunk(`{"candidates":[{"content":{"parts":[{"text":"hm","thought":true}]}}]}`)+
		chunk(`{"candidates":[{"content":{"parts":[{"text":"","thought":true,"thoughtSignature":"VDE="}]}}]}`)+
		chunk(`{"candidates":[{"content":{"parts":[{"text":"ok","thoughtSignature":"VDI="}]},"finishReason":"MAX_TOKENS"}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Part{{Type: PartThinking, Text: "hm", Signature: "gemini:VDE=gemini-next:VDI="}, {Type: PartText, Text: "ok"}}; !reflect.DeepEqual(r.Parts, want) || r.Stop != StopMaxTokens {
		t.Errorf("%+v", r)
	}
	// Both signatures go back where they came from.
	b, _ := EncodeGeminiRequest(&ChatRequest{Messages: []Message{{Role: RoleAssistant, Parts: r.Parts}}}, EncodeOptions{})
	if got := gjson.GetBytes(b, "contents.0.parts").Raw; got != `[{"text":"hm","thought":true,"thoughtSignature":"VDE="},{"text":"ok","thoughtSignature":"VDI="}]` {
		t.Errorf("parts back %s", got)
	}
}

// checkGeminiSSE checks that a stream is Gemini's framing: data lines
// of JSON chunks, CRLF-terminated events, args as objects.
func checkGeminiSSE(t *testing.T, name string, s []byte) {
	t.Helper()
	events := strings.Split(strings.TrimSuffix(string(s), "\r\n\r\n"), "\r\n\r\n")
	for _, ev := range events {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || !gjson.Valid(data) || strings.Contains(data, "\n") {
			t.Errorf("%s: bad event %q", name, ev)
			continue
		}
		each(gjson.Get(data, "candidates.0.content.parts"), func(_, p gjson.Result) bool {
			if fc := p.Get("functionCall"); fc.Exists() && !fc.Get("args").IsObject() {
				t.Errorf("%s: args not an object: %s", name, data)
			}
			return true
		})
	}
}

// Each dialect's recorded stream, translated for a Gemini client, reads
// back to the same answer.
func TestGeminiStreamEncodeFromEachDialect(t *testing.T) {
	for _, from := range []Dialect{OpenAI, Anthropic, Responses, Ollama} {
		in := read(t, "stream."+string(from)+".txt")
		out := geminiFeed(t, from, Gemini, in, -1)
		if pieces := geminiFeed(t, from, Gemini, in, 7); string(pieces) != string(out) {
			t.Errorf("%s: output depends on how the input is split", from)
		}
		checkGeminiSSE(t, string(from), out)
		geminiResetIDs()
		want, err := CollectStream(from, in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := CollectStream(Gemini, out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", from, err, out)
		}
		if JoinText(got.Parts, "") != JoinText(want.Parts, "") || got.Stop != want.Stop || got.Usage.Input != 100 || got.Usage.Output != 20 {
			t.Errorf("%s: got %+v\nwant %+v\n%s", from, got, want, out)
		}
		// Ids too, except Ollama's, which both sides generate.
		calls := func(parts []Part) (out []string) {
			for _, p := range parts {
				if p.Type == PartToolCall {
					if from == Ollama {
						p.ID = ""
					}
					out = append(out, p.ID+" "+p.Name+" "+geminiCompact(p.Args))
				}
			}
			return out
		}
		gotCalls, wantCalls := calls(got.Parts), calls(want.Parts)
		if !reflect.DeepEqual(gotCalls, wantCalls) || len(gotCalls) == 0 {
			t.Errorf("%s: calls %q, want %q", from, gotCalls, wantCalls)
		}
		if from == Anthropic {
			// Anthropic's signed thinking survives a Gemini client.
			if got.Parts[0].Type != PartThinking || got.Parts[0].Text != "hmm" || got.Parts[0].Signature != "sig-9" {
				t.Errorf("thinking %+v", got.Parts[0])
			}
		}
	}
	// Interleaved argument fragments still reach their call, sent whole.
	in := "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"y\\\":\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"content\":\"hm\"}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"2}\"}}]}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"
	out := translate(t, OpenAI, Gemini, in)
	if !strings.Contains(out, `{"functionCall":{"id":"call_a","name":"f","args":{"y":2}}}`) || !strings.Contains(out, `"finishReason":"STOP"`) {
		t.Errorf("interleaved:\n%s", out)
	}
}

func geminiCompact(s string) string {
	var b []byte
	return string(appendCompact(b, s))
}

func TestGeminiResponseStreamRoundTrip(t *testing.T) {
	deterministic(t)
	for name, want := range map[string]*ChatResponse{
		"text": {ID: "id1", Stop: StopEnd, Parts: []Part{{Type: PartText, Text: "Hello, \"world\"\nline two"}}, Usage: Usage{Input: 12, Output: 5}},
		"tools": {ID: "id2", Stop: StopToolUse, Parts: []Part{{Type: PartText, Text: "Let me look."},
			{Type: PartThinking, Signature: "gemini-next:U0lH"},
			{Type: PartToolCall, ID: "call_1", Name: "read_file", Args: `{"path":"a.go"}`},
			{Type: PartToolCall, ID: "call_2", Name: "grep", Args: `{"q":"x"}`}}, Usage: Usage{Input: 30, Output: 9}},
		"thinking": {ID: "id3", Stop: StopMaxTokens, Parts: []Part{{Type: PartThinking, Text: "hmm", Signature: "sig=="}, {Type: PartText, Text: "answer"}},
			Usage: Usage{Input: 7, CachedInput: 2, Output: 100, Reasoning: 40}},
		"filtered": {ID: "id4", Stop: StopContentFilter, NativeStop: "RECITATION", Parts: []Part{{Type: PartText, Text: "partial"}}, Usage: Usage{Input: 1, Output: 1}},
	} {
		s, err := ResponseStream(Gemini, want, StreamOptions{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		checkGeminiSSE(t, name, s)
		got, err := CollectStream(Gemini, s)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, s)
		}
		if !reflect.DeepEqual(got.Parts, want.Parts) || got.Stop != want.Stop || got.Usage != want.Usage || got.ID != want.ID {
			t.Errorf("%s: got %+v\nwant %+v\n%s", name, got, want, s)
		}
		if name == "filtered" && got.NativeStop != "RECITATION" {
			t.Errorf("native stop %q", got.NativeStop)
		}
	}
}

// Gemini's thought signatures, through clients of other dialects and
// back to Gemini: kept on their part where the client can carry them
// (Anthropic), replaced by the documented skip value where it cannot.
func TestGeminiSignatureRoundTrip(t *testing.T) {
	deterministic(t)
	q := Message{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "q"}}}
	sendBack := func(parts []Part) gjson.Result {
		msgs := []Message{q, {Role: RoleAssistant, Parts: parts}}
		for _, p := range parts {
			if p.Type == PartToolCall {
				msgs = append(msgs, Message{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: p.ID, Content: []Part{{Type: PartText, Text: "r"}}}}})
			}
		}
		b, err := EncodeGeminiRequest(&ChatRequest{Messages: msgs}, EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return gjson.GetBytes(b, "contents.1.parts")
	}
	stream := gread(t, "stream.txt")
	for _, c := range []struct {
		client Dialect
		sig    string
	}{{Anthropic, "c2lnLTE="}, {OpenAI, geminiSkipSignature}, {Responses, geminiSkipSignature}, {Ollama, geminiSkipSignature}} {
		r, err := CollectStream(c.client, geminiFeed(t, Gemini, c.client, stream, -1))
		if err != nil {
			t.Fatal(err)
		}
		parts := sendBack(r.Parts)
		var calls []gjson.Result
		each(parts, func(_, p gjson.Result) bool {
			if p.Get("functionCall").Exists() {
				calls = append(calls, p)
			}
			return true
		})
		if len(calls) != 2 || calls[0].Get("thoughtSignature").Str != c.sig || calls[1].Get("thoughtSignature").Exists() {
			t.Errorf("%s stream client: %s", c.client, parts.Raw)
		}
	}
	// A whole answer through an Anthropic client's history.
	r, _ := DecodeGeminiResponse(gread(t, "response.json"))
	ab, _ := EncodeAnthropicResponse(r, "m")
	req, derr := DecodeAnthropicRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","content":` + gjson.GetBytes(ab, "content").Raw + `}]}`))
	if derr != nil {
		t.Fatal(derr)
	}
	parts := sendBack(req.Messages[1].Parts)
	if parts.Get("1.functionCall.name").Str != "get_weather" || parts.Get("1.thoughtSignature").Str != "c2lnLTE=" || parts.Get("1.functionCall.id").Str != "fc-1" ||
		parts.Get("2.functionCall.id").Exists() || parts.Get("0.text").Str != "Let me check." {
		t.Errorf("anthropic client history: %s", parts.Raw)
	}
}

func TestGeminiErrors(t *testing.T) {
	b := ErrorBody(Gemini, &Error{Status: 429, Message: `slow "down"`, RetryAfter: 35})
	if string(b) != `{"error":{"code":429,"message":"slow \"down\"","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"35s"}]}}` {
		t.Errorf("envelope %s", b)
	}
	for status, want := range map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
		429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 529: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED", 413: "FAILED_PRECONDITION"} {
		if got := gjson.GetBytes(ErrorBody(Gemini, &Error{Status: status}), "error.status").Str; got != want {
			t.Errorf("%d: %s, want %s", status, got, want)
		}
	}
	// A real 429 from Gemini: the retry delay rounds up to whole seconds.
	body := []byte(`{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[` +
		`{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests"}]},` +
		`{"@type":"type.googleapis.com/google.rpc.Help","links":[{"url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},` +
		`{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34.4s"}]}}`)
	e := UpstreamError(Gemini, OpenAI, 429, nil, body)
	if e.Status != 429 || e.RetryAfter != 35 || e.Message != "provider error: You exceeded your current quota." {
		t.Errorf("upstream error %+v", e)
	}
	for _, c := range []struct {
		body  string
		retry int
		msg   string
	}{
		{`[{"error":{"code":503,"message":"overloaded","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2s"}]}}]`, 2, "overloaded"},
		{`{"error":{"message":"m","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":{"seconds":1,"nanos":500000000}}]}}`, 2, "m"},
		{`{"error":{"message":"m","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"soon"}]}}`, 0, "m"},
		{`not json`, 0, ""},
	} {
		msg, retry := geminiError([]byte(c.body))
		if msg != c.msg || retry != c.retry {
			t.Errorf("%s: %q %d", c.body, msg, retry)
		}
	}
	// The gateway's key refused: not the client's problem.
	if e := UpstreamError(Gemini, Gemini, 403, nil, []byte(`{"error":{"code":403,"message":"API key not valid","status":"PERMISSION_DENIED"}}`)); e.Status != 502 {
		t.Errorf("403: %+v", e)
	}
	ev := StreamError(Gemini, "boom", 503, 4)
	if string(ev) != "data: {\"error\":{\"code\":503,\"message\":\"boom\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n" {
		t.Errorf("stream error %q", ev)
	}
	if !StreamEnded(Gemini, nil, ev[len("data: "):len(ev)-4]) {
		t.Error("an error chunk does not end the stream")
	}
}

func TestGeminiUsageAndStreamEnd(t *testing.T) {
	if u, ok := UsageFromBody(Gemini, gread(t, "response.json")); !ok || u != (Usage{Input: 100, CachedInput: 40, Output: 20, Reasoning: 8}) {
		t.Errorf("body usage %+v", u)
	}
	// Tool-use prompt tokens are input too.
	if u, _ := UsageFromBody(Gemini, []byte(`{"usageMetadata":{"promptTokenCount":10,"toolUsePromptTokenCount":5,"candidatesTokenCount":2}}`)); u != (Usage{Input: 15, Output: 2}) {
		t.Errorf("tool use prompt %+v", u)
	}
	if u, _ := UsageFromBody(Gemini, []byte(`[{"usageMetadata":{"promptTokenCount":1}},{"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":9}},{"candidates":[]}]`)); u.Output != 9 {
		t.Errorf("array usage %+v", u)
	}
	if _, ok := UsageFromBody(Gemini, []byte(`{"candidates":[]}`)); ok {
		t.Error("usage where there is none")
	}
	s := StreamUsage{Dialect: Gemini}
	for _, line := range strings.Split(strings.TrimSpace(strings.ReplaceAll(string(gread(t, "stream.txt")), "\r\n", "\n")), "\n\n") {
		s.Event([]byte(strings.TrimPrefix(line, "data: ")))
	}
	s.Event([]byte(`{"candidates":[{"content":{"parts":[{"text":"\"usageMetadata\":{\"promptTokenCount\":1}"}]}}]}`))
	if u, ok := s.Usage(); !ok || u != (Usage{Input: 100, Output: 20, Reasoning: 8}) {
		t.Errorf("stream usage (the last, never a sum) %+v", u)
	}
	for data, want := range map[string]bool{
		`{"candidates": [{"content": {"parts": [{"text": ""}]},"finishReason": "STOP","index": 0}]}`: true,
		`{"candidates":[{"content":{"parts":[{"text":"a"}]},"index":0}]}`:                            false,
		`{"candidates":[{"content":{"parts":[{"text":"\"finishReason\":\"STOP\""}]}}]}`:              false,
		`{"promptFeedback":{"blockReason":"SAFETY"}}`:                                                true,
		`{"error":{"code":500,"message":"x"}}`:                                                       true,
	} {
		if got := StreamEnded(Gemini, nil, []byte(data)); got != want {
			t.Errorf("StreamEnded(%s) = %v", data, got)
		}
	}
}

func TestGeminiPrependSystem(t *testing.T) {
	const ctx = "<context_delta>\n\"x\"\n</context_delta>"
	for _, c := range []struct{ body, path, want string }{
		{`{"contents":[]}`, "systemInstruction", `{"parts":[{"text":` + q(ctx) + `}]}`},
		{`{"contents":[],"systemInstruction":{"parts":[{"text":"be brief"}]}}`, "systemInstruction.parts", `[{"text":` + q(ctx) + `},{"text":"be brief"}]`},
		{`{"contents":[],"system_instruction":{"parts":[ ]}}`, "system_instruction.parts", `[{"text":` + q(ctx) + `}]`},
		{`{"contents":[],"systemInstruction":{"role":"system"}}`, "systemInstruction", `{"role":"system","parts":[{"text":` + q(ctx) + `}]}`},
		{`{"contents":[],"systemInstruction":"be brief"}`, "systemInstruction.parts", `[{"text":` + q(ctx) + `},{"text":"be brief"}]`},
		{`{"contents":[],"systemInstruction":null}`, "systemInstruction", `{"parts":[{"text":` + q(ctx) + `}]}`},
	} {
		out, err := PrependSystem(Gemini, []byte(c.body), ctx)
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if got := gjson.GetBytes(out, c.path).Raw; got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.body, got, c.want)
		}
		if _, rerr := ReadRequest(Gemini, out); rerr != nil {
			t.Errorf("%s: %v", c.body, rerr)
		}
		r, derr := DecodeRequest(Gemini, out)
		if derr != nil || r.System[0].Text != ctx {
			t.Errorf("%s: decoded %+v %v", c.body, r, derr)
		}
	}
	for _, body := range []string{`{"contents":[],"systemInstruction":5}`, `{"contents":[],"systemInstruction":{"parts":{}}}`} {
		if _, err := PrependSystem(Gemini, []byte(body), "x"); err == nil || err.Status != 400 {
			t.Errorf("%s: %v", body, err)
		}
	}
}

func TestGeminiReadRequest(t *testing.T) {
	for _, c := range []struct{ body, err string }{
		{`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, ""},
		{`{"contents":[],"stream":"yes","model":5}`, ""}, // neither is Gemini's: both are in the URL
		{`{"systemInstruction":{}}`, "missing required field contents"},
		{`{"contents":{}}`, "contents must be an array"},
		{`[]`, "not valid JSON"},
	} {
		r, err := ReadRequest(Gemini, []byte(c.body))
		switch {
		case c.err == "" && (err != nil || r != Request{}):
			t.Errorf("%s: %+v %v", c.body, r, err)
		case c.err != "" && (err == nil || err.Status != 400 || !strings.Contains(err.Message, c.err)):
			t.Errorf("%s: %v, want %q", c.body, err, c.err)
		}
	}
}

func TestGeminiCacheExtras(t *testing.T) {
	user := `"contents":[{"role":"user","parts":[{"text":"hi"},{"inlineData":{"mimeType":"image/png","data":"iVBO"}}]}]`
	for _, c := range []struct{ body, extras, reason string }{
		{`{` + user + `,"systemInstruction":{"parts":[{"text":"s"}]},"tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"OBJECT"}}]}],"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f"]}},"generationConfig":{"temperature":0,"maxOutputTokens":5,"responseMimeType":"application/json"}}`, "", ""},
		{`{` + user + `,"safetySettings":[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}],"generationConfig":{"topK":3}}`,
			`generationConfig={"topK":3}` + "\n" + `safetySettings=[{"category":"HARM_CATEGORY_HARASSMENT","threshold":"BLOCK_NONE"}]`, ""},
		{`{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"application/pdf","data":"JVB"}}]}]}`, `contents=[{"role":"user","parts":[{"inlineData":{"mimeType":"application/pdf","data":"JVB"}}]}]`, ""},
		{`{"contents":[{"role":"user","parts":[{"text":"x","thought":true}]}]}`, `contents=[{"role":"user","parts":[{"text":"x","thought":true}]}]`, ""},
		{`{"contents":[{"role":"model","parts":[{"text":"x","thought":true,"thoughtSignature":"eA=="}]}]}`, "", ""},
		{`{` + user + `,"toolConfig":{"functionCallingConfig":{"mode":"VALIDATED"}}}`, `toolConfig={"functionCallingConfig":{"mode":"VALIDATED"}}`, ""},
		{`{` + user + `,"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f","g"]}}}`, `toolConfig={"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f","g"]}}`, ""},
		{`{` + user + `,"generationConfig":{"thinkingConfig":{"includeThoughts":true}}}`, `generationConfig={"thinkingConfig":{"includeThoughts":true}}`, ""},
		{`{` + user + `,"generationConfig":{"responseMimeType":"text/x.enum"}}`, `generationConfig={"responseMimeType":"text/x.enum"}`, ""},
		{`{` + user + `,"cachedContent":"cachedContents/abc"}`, "", "state stored by the provider (cachedContent)"},
		{`{` + user + `,"tools":[{"googleSearch":{}}]}`, "", "tools of its own (googleSearch)"},
		{`{` + user + `,"tools":[{"functionDeclarations":[]},{"codeExecution":{}}]}`, "", "tools of its own (codeExecution)"},
		{`{` + user + `,"generationConfig":{"candidateCount":2}}`, "", "more than one choice"},
		{`{` + user + `,"generation_config":{"response_logprobs":true}}`, "", "log probabilities"},
		{`{` + user + `,"generationConfig":{"responseModalities":["TEXT","AUDIO"]}}`, "", "audio output"},
		{`{"contents":[{"role":"user","parts":[{"text":"a","text":"b"}]}]}`, "", "twice"},
	} {
		extras, reason := CacheExtras(Gemini, []byte(c.body))
		if c.reason != "" {
			if !strings.Contains(reason, c.reason) {
				t.Errorf("%s: reason %q, want %q", c.body, reason, c.reason)
			}
			continue
		}
		if reason != "" || string(extras) != c.extras {
			t.Errorf("%s: extras %q (%q), want %q", c.body, extras, reason, c.extras)
		}
	}
}

// summary renders what a request says in terms every dialect keeps:
// the system text, the turns (consecutive user or assistant messages
// merged, tool results each apart, results naming their call by
// position), the tools and (settings) the sampling settings, which some
// dialects drop for reasons of their own (Anthropic's temperature with
// thinking, Responses' stop). Thinking is left out: which dialects carry
// it is tested on its own.
func geminiSummary(t *testing.T, r *ChatRequest, settings bool) []string {
	t.Helper()
	var out []string
	var sys []string
	for _, p := range r.System {
		if strings.TrimSpace(p.Text) != "" {
			sys = append(sys, p.Text)
		}
	}
	calls := map[string]int{}
	var turns []string
	last := Role("")
	for _, m := range r.Messages {
		if m.Role == RoleSystem {
			for _, p := range m.Parts {
				sys = append(sys, p.Text)
			}
			continue
		}
		var parts []string
		for _, p := range m.Parts {
			switch p.Type {
			case PartText:
				if strings.TrimSpace(p.Text) != "" {
					parts = append(parts, "text "+p.Text)
				}
			case PartImage:
				if p.Data == "" {
					p = imagePart(p.URL)
				}
				parts = append(parts, "image "+p.Data+p.URL)
			case PartToolCall:
				calls[p.ID] = len(calls)
				parts = append(parts, "call "+p.Name+" "+geminiCompact(p.Args))
			case PartToolResult:
				n, ok := calls[p.ID]
				if !ok {
					t.Errorf("result %q answers no call", p.ID)
				}
				parts = append(parts, "result "+strconv.Itoa(n)+" "+JoinText(p.Content, "\n")+" "+strconv.FormatBool(p.IsError))
			}
		}
		if len(parts) == 0 {
			continue
		}
		if m.Role == last && m.Role != RoleTool {
			turns[len(turns)-1] += " | " + strings.Join(parts, " | ")
		} else {
			turns = append(turns, string(m.Role)+": "+strings.Join(parts, " | "))
		}
		last = m.Role
	}
	out = append(out, "system: "+strings.Join(sys, "\n\n"))
	out = append(out, turns...)
	for _, tl := range r.Tools {
		out = append(out, "tool "+tl.Name+" "+tl.Description+" "+geminiCompact(tl.Schema))
	}
	if tc := r.ToolChoice; tc != nil {
		out = append(out, "choice "+tc.Mode+" "+tc.Name)
	}
	f := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	out = append(out, "json "+strconv.FormatBool(r.ResponseFormat != nil)+" reasoning "+strconv.FormatBool(r.ThinkingBudget > 0 || r.ReasoningEffort != ""))
	if settings {
		out = append(out, "max "+strconv.Itoa(r.MaxTokens)+" temp "+f(r.Temperature)+" top_p "+f(r.TopP)+" stop "+strings.Join(r.Stop, ","))
	}
	return out
}

// Requests of each dialect go to a Gemini provider and come back with
// nothing lost that both can say; a Gemini client's request goes to a
// provider of each dialect and back.
func TestGeminiRequestRoundTrips(t *testing.T) {
	deterministic(t)
	o := EncodeOptions{Model: "m", DefaultMaxTokens: 1000, Reasoning: true}
	for _, from := range []Dialect{OpenAI, Anthropic, Responses, Ollama} {
		orig, derr := DecodeRequest(from, read(t, "request."+string(from)+".json"))
		if derr != nil {
			t.Fatal(derr)
		}
		g, err := EncodeGeminiRequest(orig, o)
		if err != nil {
			t.Fatalf("%s: %v", from, err)
		}
		back, derr := DecodeGeminiRequest(g)
		if derr != nil {
			t.Fatalf("%s: %v\n%s", from, derr, g)
		}
		want, got := geminiSummary(t, orig, true), geminiSummary(t, back, true)
		if from == OpenAI {
			// {"type":"object"} as a response schema says no more than
			// JSON output, which Gemini says with the MIME type alone.
			if back.ResponseFormat == nil || back.ResponseFormat.Type != "json_object" {
				t.Errorf("response format %+v", back.ResponseFormat)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s → gemini → back:\n%s\nwant\n%s\n%s", from, strings.Join(got, "\n"), strings.Join(want, "\n"), g)
		}
	}

	in := gread(t, "request.json")
	orig, derr := DecodeGeminiRequest(in)
	if derr != nil {
		t.Fatal(derr)
	}
	for _, to := range []Dialect{OpenAI, Anthropic, Responses, Ollama} {
		src := orig
		if to == Ollama {
			// Ollama takes image bytes only: leave the gs:// image out.
			cp := *orig
			cp.Messages = append([]Message(nil), orig.Messages...)
			cp.Messages[5] = Message{Role: RoleUser, Parts: cp.Messages[5].Parts[:1]}
			cp.ToolChoice = nil // Ollama has none
			src = &cp
			if _, err := EncodeOllamaRequest(orig, o); !errors.Is(err, ErrImageURL) {
				t.Errorf("ollama with a gs:// image: %v", err)
			}
		}
		b, err := EncodeRequest(to, src, o)
		if err != nil {
			t.Fatalf("%s: %v", to, err)
		}
		back, derr := DecodeRequest(to, b)
		if derr != nil {
			t.Fatalf("%s: %v", to, derr)
		}
		want := geminiSummary(t, src, false)
		if to == Anthropic {
			// Without Gemini's signatures (not sent to Claude) the tool
			// turns are unsigned, so Anthropic's thinking stays off.
			for i, l := range want {
				want[i] = strings.Replace(l, "reasoning true", "reasoning false", 1)
			}
		}
		if got := geminiSummary(t, back, false); !reflect.DeepEqual(got, want) {
			t.Errorf("gemini → %s → back:\n%s\nwant\n%s", to, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if to == Anthropic {
			// Gemini's signatures are not sent to Claude (which would
			// refuse them): the request to an Anthropic provider has no
			// thinking, and none comes back.
			if bytes.Contains(b, []byte(`"thinking"`)) {
				t.Errorf("Gemini's signed thinking reached an Anthropic provider: %s", b)
			}
		}
	}
}

// A signature that follows complete calls belongs to the part after
// them, not to the calls.
func TestGeminiStreamSignatureAfterCalls(t *testing.T) {
	deterministic(t)
	in := "data: {\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":{}}}]}}]}\n\n" +
		"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"after\",\"thoughtSignature\":\"U0k=\"}]},\"finishReason\":\"STOP\"}]}\n\n"
	out := translate(t, Gemini, Gemini, in)
	if !strings.Contains(out, `"name":"f","args":{}}}]`) || !strings.Contains(out, `{"text":"after","thoughtSignature":"U0k="}`) {
		t.Errorf("signature misplaced:\n%q", out)
	}
}

// TestGeminiSignaturesStayWithGemini: a conversation that moves from a
// Gemini provider to Claude (Anthropic or Bedrock) drops Gemini's
// signatures, which Claude would refuse, with the thinking they sign.
func TestGeminiSignaturesStayWithGemini(t *testing.T) {
	r := &ChatRequest{Messages: []Message{
		{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "Weather?"}}},
		{Role: RoleAssistant, Parts: []Part{
			{Type: PartThinking, Text: "think", Signature: geminiSigNext + "c2lnMQ=="},
			{Type: PartToolCall, ID: "call_1", Name: "w", Args: `{}`},
		}},
		{Role: RoleTool, Parts: []Part{{Type: PartToolResult, ID: "call_1", Content: []Part{{Type: PartText, Text: "sun"}}}}},
	}, MaxTokens: 100}
	for _, d := range []Dialect{Anthropic, Bedrock} {
		out, err := EncodeRequest(d, r, EncodeOptions{Model: "claude"})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "c2lnMQ") || strings.Contains(string(out), "think") {
			t.Errorf("%s: Gemini's signature or its thinking reached Claude: %s", d, out)
		}
	}
}

// TestGeminiSchemaAllOfBlowUp: allOf over shared $refs that doubles at
// every level is refused (a 400), not expanded; found in review.
func TestGeminiSchemaAllOfBlowUp(t *testing.T) {
	var defs []string
	const levels = 40
	for i := 0; i < levels; i++ {
		defs = append(defs, fmt.Sprintf(`"A%d":{"allOf":[{"$ref":"#/$defs/A%d"},{"$ref":"#/$defs/A%d"}]}`, i, i+1, i+1))
	}
	defs = append(defs, fmt.Sprintf(`"A%d":{"type":"object","properties":{"x":{"type":"string"}}}`, levels))
	schema := `{"$defs":{` + strings.Join(defs, ",") + `},"allOf":[{"$ref":"#/$defs/A0"}]}`
	r := &ChatRequest{Messages: []Message{{Role: RoleUser, Parts: []Part{{Type: PartText, Text: "hi"}}}},
		Tools: []Tool{{Name: "f", Schema: schema}}}
	if _, err := EncodeGeminiRequest(r, EncodeOptions{Model: "g"}); err == nil {
		t.Fatal("an exponential schema was expanded")
	}
}

// TestGeminiSchemaTypeEscaped: a type name from a Gemini client is
// written as a JSON string, whatever it holds.
func TestGeminiSchemaTypeEscaped(t *testing.T) {
	body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"OBJECT","properties":{"a":{"type":"STRING\"x","nullable":true}}}}]}]}`
	r, derr := DecodeGeminiRequest([]byte(body))
	if derr != nil {
		t.Fatal(derr)
	}
	if !gjson.Valid(r.Tools[0].Schema) {
		t.Fatalf("invalid schema JSON: %s", r.Tools[0].Schema)
	}
}

// TestGeminiInvalidKey: Gemini refuses a bad key with a 400; the client
// gets the gateway's 502, without the provider's words.
func TestGeminiInvalidKey(t *testing.T) {
	body := []byte(`{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}`)
	e := UpstreamError(Gemini, Anthropic, 400, nil, body)
	if e.Status != 502 || strings.Contains(e.Message, "API key not valid") {
		t.Errorf("%d %s", e.Status, e.Message)
	}
}

// TestGeminiCutStreamUsage: a Gemini stream cut before its finish still
// reports the usage it had reached (usageMetadata is cumulative), so the
// ledger bills what the provider sent.
func TestGeminiCutStreamUsage(t *testing.T) {
	in := "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"a\"}]}}],\"usageMetadata\":{\"promptTokenCount\":100,\"candidatesTokenCount\":1}}\r\n\r\n" +
		"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"b\"}]}}],\"usageMetadata\":{\"promptTokenCount\":100,\"candidatesTokenCount\":900}}\r\n\r\n"
	tr, err := NewStreamTranslator(Gemini, OpenAI, StreamOptions{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	out := string(tr.Write([]byte(in))) + string(tr.Close())
	if u, ok := tr.Usage(); !ok || u.Input != 100 || u.Output != 900 {
		t.Errorf("usage %+v %v", u, ok)
	}
	if strings.Contains(out, "[DONE]") {
		t.Errorf("a cut stream ended clean: %s", out)
	}
}

// TestToolArgsLimitEndsStream: arguments beyond what the gateway holds
// end the client's stream with an error, and nothing follows it (no
// finish that would look like a clean end).
func TestToolArgsLimitEndsStream(t *testing.T) {
	for _, to := range []Dialect{Gemini, Ollama, OpenAI} {
		tr, err := NewStreamTranslator(OpenAI, to, StreamOptions{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		out = append(out, tr.Write([]byte(`data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}`+"\n\n"))...)
		chunk := `data: {"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"` + strings.Repeat("x", 1<<20) + `"}}]}}]}` + "\n\n"
		for i := 0; i < 17; i++ {
			out = append(out, tr.Write([]byte(chunk))...)
		}
		tail := tr.Write([]byte(`data: {"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\ndata: [DONE]\n\n"))
		tail = append(tail, tr.Close()...)
		if !bytes.Contains(out, []byte("larger than the gateway holds")) || len(tail) != 0 {
			t.Errorf("%s: error missing or output after it (%d bytes): %.300s", to, len(tail), tail)
		}
	}
}
