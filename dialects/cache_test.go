package dialects

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// A whole answer rendered as a stream in each dialect reads back to the
// same answer: what the response cache relies on to keep streamed
// answers in neutral form.
func TestCollectStreamRoundTrip(t *testing.T) {
	deterministic(t)
	answers := map[string]*ChatResponse{
		"text": {ID: "id1", Model: "m", Stop: StopEnd, NativeStop: "stop",
			Parts: []Part{{Type: PartText, Text: "Hello, \"world\"\nline two"}},
			Usage: Usage{Input: 12, Output: 5}},
		"tools": {ID: "id2", Model: "m", Stop: StopToolUse,
			Parts: []Part{{Type: PartText, Text: "Let me look."},
				{Type: PartToolCall, ID: "call_1", Name: "read_file", Args: `{"path":"a.go"}`},
				{Type: PartToolCall, ID: "call_2", Name: "grep", Args: `{"q":"x"}`}},
			Usage: Usage{Input: 30, Output: 9}},
		"thinking": {ID: "id3", Model: "m", Stop: StopMaxTokens,
			Parts: []Part{{Type: PartThinking, Text: "hmm", Signature: "sig=="}, {Type: PartText, Text: "answer"}},
			Usage: Usage{Input: 7, Output: 100, Reasoning: 40}},
	}
	for _, d := range []Dialect{OpenAI, Anthropic, Responses, Ollama} {
		for name, want := range answers {
			stream, err := ResponseStream(d, want, StreamOptions{Model: "m", IncludeUsage: true, Created: 1})
			if err != nil {
				t.Fatal(err)
			}
			got, err := CollectStream(d, stream)
			if err != nil {
				t.Fatalf("%s/%s: %v\n%s", d, name, err, stream)
			}
			// What each dialect can say differs: compare what it carries.
			for i, p := range want.Parts {
				if p.Type == PartThinking && d != Anthropic { // only Anthropic streams carry thinking both ways
					continue
				}
				found := false
				for _, q := range got.Parts {
					if q.Type == p.Type && q.Text == p.Text && q.Name == p.Name && q.Args == p.Args &&
						(d != Anthropic || q.Signature == p.Signature) {
						found = true
					}
				}
				if !found {
					t.Errorf("%s/%s: part %d %+v missing from %+v", d, name, i, p, got.Parts)
				}
			}
			if got.Stop != want.Stop {
				t.Errorf("%s/%s: stop %q, want %q", d, name, got.Stop, want.Stop)
			}
			if got.Usage.Input != want.Usage.Input || got.Usage.Output != want.Usage.Output {
				t.Errorf("%s/%s: usage %+v, want %+v", d, name, got.Usage, want.Usage)
			}
		}
	}
}

func TestCollectStreamIncomplete(t *testing.T) {
	full, _ := ResponseStream(OpenAI, &ChatResponse{Model: "m", Stop: StopEnd, Parts: []Part{{Type: PartText, Text: "hi"}}}, StreamOptions{Model: "m"})
	cut := full[:len(full)-len("data: [DONE]\n\n")]
	if _, err := CollectStream(OpenAI, cut); err == nil {
		t.Error("a stream without [DONE] was accepted")
	}
	errStream := append(append([]byte{}, cut...), StreamError(OpenAI, "boom", 502, 3)...)
	if _, err := CollectStream(OpenAI, errStream); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("error event: %v", err)
	}
	if _, err := CollectStream(Anthropic, []byte("garbage\n\n")); err == nil {
		t.Error("garbage accepted")
	}
	if _, err := CollectStream("cohere", nil); err == nil {
		t.Error("unknown dialect accepted")
	}
}

func TestPrependSystem(t *testing.T) {
	const ctx = "<context_delta id=\"p\">\nfile \"a\"\n</context_delta>\n"
	cases := []struct {
		d    Dialect
		body string
		path string
		want string
	}{
		{OpenAI, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "messages", `[{"role":"system","content":` + q(ctx) + `},{"role":"user","content":"hi"}]`},
		{OpenAI, `{"model":"m","messages":[ ]}`, "messages", `[{"role":"system","content":` + q(ctx) + `}]`},
		{Ollama, `{"model":"m","messages":[{"role":"system","content":"be brief"}]}`, "messages", `[{"role":"system","content":` + q(ctx) + `},{"role":"system","content":"be brief"}]`},
		{Anthropic, `{"model":"m","max_tokens":5,"messages":[]}`, "system", `[{"type":"text","text":` + q(ctx) + `}]`},
		{Anthropic, `{"model":"m","system":"be brief","messages":[]}`, "system", `[{"type":"text","text":` + q(ctx) + `},{"type":"text","text":"be brief"}]`},
		{Anthropic, `{"model":"m","system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[]}`, "system",
			`[{"type":"text","text":` + q(ctx) + `},{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}]`},
		{Responses, `{"model":"m","input":"hi"}`, "instructions", q(ctx)},
		{Responses, `{"model":"m","input":"hi","instructions":"be brief"}`, "instructions", q(ctx + "\n\nbe brief")},
	}
	for _, c := range cases {
		out, err := PrependSystem(c.d, []byte(c.body), ctx)
		if err != nil {
			t.Fatalf("%s %s: %v", c.d, c.body, err)
		}
		if got := gjson.GetBytes(out, c.path).Raw; got != c.want {
			t.Errorf("%s %s:\n got %s\nwant %s", c.d, c.body, got, c.want)
		}
		if !gjson.ValidBytes(out) {
			t.Errorf("%s: invalid JSON %s", c.d, out)
		}
		// The rest of the request is untouched, and it still decodes.
		if gjson.GetBytes(out, "model").Str != "m" {
			t.Errorf("%s: model lost", c.d)
		}
		r, derr := DecodeRequest(c.d, out)
		if derr != nil {
			t.Fatalf("%s: %v", c.d, derr)
		}
		if len(r.System) == 0 || r.System[0].Text != ctx && !strings.HasPrefix(r.System[0].Text, ctx) {
			t.Errorf("%s: decoded system %+v", c.d, r.System)
		}
	}
	if _, err := PrependSystem(OpenAI, []byte(`{"messages":{}}`), "x"); err == nil || err.Status != 400 {
		t.Errorf("bad messages: %v", err)
	}
	if _, err := PrependSystem(Anthropic, []byte(`{"system":5,"messages":[]}`), "x"); err == nil || err.Status != 400 {
		t.Errorf("bad system: %v", err)
	}
}

func q(s string) string { return string(AppendJSONString(nil, s)) }

func TestCacheExtras(t *testing.T) {
	cases := []struct {
		d      Dialect
		body   string
		extras string
		reason string
	}{
		{OpenAI, `{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true},"user":"u","temperature":0}`, "", ""},
		{OpenAI, `{"model":"m","messages":[],"seed": 7,"frequency_penalty":0.5}`, "frequency_penalty=0.5\nseed=7", ""},
		{OpenAI, `{"model":"m","messages":[],"logit_bias":{ "50256" : -100 }}`, `logit_bias={"50256":-100}`, ""},
		{OpenAI, `{"model":"m","messages":[],"n":1}`, "n=1", ""},
		{OpenAI, `{"model":"m","messages":[],"n":2}`, "", "more than one choice"},
		{OpenAI, `{"model":"m","messages":[],"logprobs":true}`, "", "log probabilities"},
		{OpenAI, `{"model":"m","messages":[],"modalities":["text","audio"]}`, "", "audio"},
		{OpenAI, `{"model":"m","messages":[],"web_search_options":{}}`, "", "tools of its own"},
		{Responses, `{"model":"m","input":"x","previous_response_id":"resp_1"}`, "", "state stored by the provider"},
		{Responses, `{"model":"m","input":"x","tools":[{"type":"web_search"}]}`, "", "tools of its own (web_search)"},
		{Responses, `{"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"store":false}`, "", ""},
		{Anthropic, `{"model":"m","max_tokens":5,"messages":[],"top_k":3,"metadata":{"user_id":"u"}}`, "top_k=3", ""},
		{Anthropic, `{"model":"m","messages":[],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`, "", "web_search_20250305"},
		{Ollama, `{"model":"m","messages":[],"options":{"num_ctx":8192,"seed":1},"keep_alive":"5m"}`, `options={"num_ctx":8192,"seed":1}`, ""},
		{"cohere", `{}`, "", "not cached"},
		// What the neutral request does not hold goes in whole.
		{OpenAI, `{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f1"}}]}]}`, `messages=[{"role":"user","content":[{"type":"file","file":{"file_id":"f1"}}]}]`, ""},
		{OpenAI, `{"messages":[{"role":"user","name":"bob","content":"hi"}]}`, `messages=[{"role":"user","name":"bob","content":"hi"}]`, ""},
		{OpenAI, `{"messages":[{"role":"user","content":"hi","refusal":null}],"tools":[{"type":"function","function":{"name":"f","strict":true}}]}`, `tools=[{"type":"function","function":{"name":"f","strict":true}}]`, ""},
		{Anthropic, `{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"file","file_id":"f"}}]}]}`, `messages=[{"role":"user","content":[{"type":"document","source":{"type":"file","file_id":"f"}}]}]`, ""},
		{Anthropic, `{"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`, "", ""},
		{Responses, `{"input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, `input=[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]`, ""},
		{Responses, `{"input":"x","text":{"verbosity":"low"},"include":["reasoning.encrypted_content"]}`, `include=["reasoning.encrypted_content"]` + "\n" + `text={"verbosity":"low"}`, ""},
		{Responses, `{"input":"x","include":["message.output_text.logprobs"]}`, "", "log probabilities"},
		// Duplicate keys, at any depth, keep a request out.
		{OpenAI, `{"messages":[{"role":"user","content":"a"}],"messages":[{"role":"user","content":"b"}]}`, "", "twice"},
		{OpenAI, `{"messages":[{"role":"user","content":"a","content":"b"}]}`, "", "twice"},
	}
	for _, c := range cases {
		extras, reason := CacheExtras(c.d, []byte(c.body))
		if c.reason != "" {
			if !strings.Contains(reason, c.reason) {
				t.Errorf("%s %s: reason %q, want %q", c.d, c.body, reason, c.reason)
			}
			continue
		}
		if reason != "" || string(extras) != c.extras {
			t.Errorf("%s %s: extras %q (%q), want %q", c.d, c.body, extras, reason, c.extras)
		}
	}
	// Key order and spacing do not matter.
	a, _ := CacheExtras(OpenAI, []byte(`{"seed":1,"messages":[],"presence_penalty":0.1}`))
	b, _ := CacheExtras(OpenAI, []byte(`{ "presence_penalty" : 0.1 , "messages":[],"seed":1}`))
	if !reflect.DeepEqual(a, b) {
		t.Errorf("%q != %q", a, b)
	}
}
