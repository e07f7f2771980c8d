package dialects

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStreamProbeRecordedStreams: every recorded stream begins, and only
// once its first content has arrived, however its bytes are cut up; the
// translator agrees with the probe at every cut.
func TestStreamProbeRecordedStreams(t *testing.T) {
	for _, d := range ProviderDialects {
		t.Run(string(d), func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", "translate", "stream."+string(d)+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			for _, size := range []int{len(in), 7, 1} {
				p, err := NewStreamProbe(d)
				if err != nil {
					t.Fatal(err)
				}
				tr, err := NewStreamTranslator(d, OpenAI, StreamOptions{})
				if err != nil {
					t.Fatal(err)
				}
				begunAt := -1
				for off := 0; off < len(in); off += size {
					end := min(off+size, len(in))
					st := p.Feed(in[off:end])
					tr.Write(in[off:end])
					if st != tr.Start() {
						t.Fatalf("size %d at %d: probe %d, translator %d", size, end, st, tr.Start())
					}
					if st == StreamFailed {
						e, _ := p.Err(OpenAI)
						t.Fatalf("size %d at %d: failed: %v", size, end, e)
					}
					if st == StreamBegun && begunAt < 0 {
						begunAt = end
					}
				}
				if p.Close() != StreamBegun {
					t.Fatalf("size %d: never began", size)
				}
				if size == 1 {
					// Begun exactly when the first content event is
					// whole: the probe holds no content back, and
					// declares nothing on preamble alone.
					if begunAt < 0 {
						t.Fatal("began only at Close")
					}
					pre := newProbe(t, d)
					if st := pre.Feed(in[:begunAt-1]); st != StreamPending {
						t.Errorf("one byte before the first content: %d", st)
					}
				}
			}
		})
	}
}

func newProbe(t *testing.T, d Dialect) *StreamProbe {
	t.Helper()
	p, err := NewStreamProbe(d)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStreamProbeEarlyErrors: a stream whose first events after its
// preamble are an error has failed, with the provider's status, restated
// for the client.
func TestStreamProbeEarlyErrors(t *testing.T) {
	cases := []struct {
		name     string
		d        Dialect
		stream   []byte
		provider int
		status   map[Dialect]int // client dialect → status; others: provider
		msg      string
	}{
		{"anthropic overloaded after preamble", Anthropic, []byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n" +
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
			"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"),
			529, map[Dialect]int{OpenAI: 503, Gemini: 503, Anthropic: 529}, "Overloaded"},
		{"anthropic rate limit", Anthropic, []byte("event: error\r\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\r\n\r\n"),
			429, nil, "slow down"},
		{"openai error after role chunk", OpenAI, []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n" +
			"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n"), 502, nil, "boom"},
		{"responses error event", Responses, []byte("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"r\",\"status\":\"in_progress\",\"output\":[]}}\n\n" +
			"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"later\",\"sequence_number\":1}\n\n"), 429, nil, "later"},
		{"ollama error line", Ollama, []byte("{\"error\":\"model failed to load\"}\n"), 502, nil, "model failed to load"},
		{"gemini error chunk", Gemini, []byte("data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n"), 503, nil, "overloaded"},
		{"bedrock exception after messageStart", Bedrock, frames(t, "messageStart", `{"role":"assistant"}`,
			"exception:throttlingException", `{"message":"Too many requests"}`), 429, nil, "Too many requests"},
		{"credentials refused", Anthropic, []byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key sk-ant-…abcd\"}}\n\n"),
			401, map[Dialect]int{OpenAI: 502, Anthropic: 502, Gemini: 502}, "refused the gateway's credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, size := range []int{len(c.stream), 1} {
				p := newProbe(t, c.d)
				tr, err := NewStreamTranslator(c.d, Anthropic, StreamOptions{})
				if err != nil {
					t.Fatal(err)
				}
				st := StreamPending
				for off := 0; off < len(c.stream); off += size {
					chunk := c.stream[off:min(off+size, len(c.stream))]
					st = p.Feed(chunk)
					tr.Write(chunk)
				}
				if st != StreamFailed || tr.Start() != StreamFailed {
					t.Fatalf("size %d: probe %d, translator %d", size, st, tr.Start())
				}
				// Fed more (a provider that goes on), it stays failed.
				if p.Feed([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n")) != StreamFailed || p.Close() != StreamFailed {
					t.Fatal("left the failed state")
				}
			}
			p := newProbe(t, c.d)
			p.Feed(c.stream)
			for _, client := range []Dialect{OpenAI, Anthropic, Gemini} {
				e, provider := p.Err(client)
				want := c.provider
				if s, ok := c.status[client]; ok {
					want = s
				}
				if e == nil || e.Status != want || provider != c.provider || !strings.Contains(e.Message, c.msg) {
					t.Errorf("client %s: %+v provider %d, want %d/%d %q", client, e, provider, want, c.provider, c.msg)
				}
				if strings.Contains(e.Message, "sk-ant") {
					t.Errorf("credential error quoted: %q", e.Message)
				}
			}
			tr, _ := NewStreamTranslator(c.d, OpenAI, StreamOptions{})
			tr.Write(c.stream)
			te, tp := tr.StartError(OpenAI)
			pe, pp := p.Err(OpenAI)
			if te == nil || *te != *pe || tp != pp {
				t.Errorf("translator %+v %d, probe %+v %d", te, tp, pe, pp)
			}
		})
	}
}

// TestStreamProbeUnreadable: an event the probe cannot read (not JSON)
// lets a pass-through stream go to its client as it came; translation,
// which must read it, fails it.
func TestStreamProbeUnreadable(t *testing.T) {
	in := []byte("data: keep-alive\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
	if st := newProbe(t, OpenAI).Feed(in); st != StreamBegun {
		t.Errorf("probe: %d", st)
	}
	tr, _ := NewStreamTranslator(OpenAI, Anthropic, StreamOptions{})
	tr.Write(in)
	if e, _ := tr.StartError(Anthropic); tr.Start() != StreamFailed || !strings.Contains(e.Message, "not JSON") {
		t.Errorf("translator: %d %+v", tr.Start(), e)
	}
	// [DONE] alone is read, not judged unreadable: a stream that ends
	// with nothing else has failed.
	if newProbe(t, OpenAI).Feed([]byte("data: [DONE]\n\n")) != StreamFailed {
		t.Error("[DONE] only")
	}
}

// TestStreamProbeEndsEarly: a stream that ends or is cut before its
// content has failed at Close; a last event without its terminator can
// still begin it.
func TestStreamProbeEndsEarly(t *testing.T) {
	pre := []byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":5}}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n")
	p := newProbe(t, Anthropic)
	if p.Feed(pre) != StreamPending {
		t.Fatal("preamble decided the start")
	}
	if p.Close() != StreamFailed {
		t.Fatal("a stream of preamble only did not fail")
	}
	if e, status := p.Err(OpenAI); e.Status != 502 || status != 502 || !strings.Contains(e.Message, "ended before the answer began") {
		t.Errorf("%+v %d", e, status)
	}
	p = newProbe(t, Anthropic)
	p.Feed(pre)
	p.Feed([]byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}"))
	if p.Close() != StreamBegun {
		t.Error("an unterminated last event with text did not begin the stream")
	}
	// An empty stream fails; a finish with no content has begun (an
	// empty answer is an answer).
	if newProbe(t, OpenAI).Close() != StreamFailed {
		t.Error("empty stream")
	}
	p = newProbe(t, OpenAI)
	if st := p.Feed([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")); st != StreamBegun {
		t.Errorf("finish without content: %d", st)
	}
	// A frame too large to read fails the start.
	p = newProbe(t, OpenAI)
	big := append([]byte("data: "), bytes.Repeat([]byte("x"), maxFrame+1)...)
	if p.Feed(big) != StreamFailed {
		t.Error("oversized first event")
	}
}

// BenchmarkStreamProbe is what a pass-through stream pays to know its
// start: a probe, fed the preamble and the first content event.
func BenchmarkStreamProbe(b *testing.B) {
	in, err := os.ReadFile(filepath.Join("testdata", "translate", "stream.anthropic.txt"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p, _ := NewStreamProbe(Anthropic)
		if p.Feed(in) != StreamBegun {
			b.Fatal("not begun")
		}
	}
}

// TestOpenAIRefusal: a refusal is the model's answer: content that
// begins the stream, and text for other dialects, streamed or not.
func TestOpenAIRefusal(t *testing.T) {
	stream := []byte("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"refusal\":\"\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"I can't help with that.\"},\"finish_reason\":null}]}\n\n" +
		"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	p := newProbe(t, OpenAI)
	i := strings.Index(string(stream), "I can't")
	i += strings.Index(string(stream[i:]), "\n\n") + 2 // the refusal's event, whole
	if st := p.Feed(stream[:i]); st != StreamBegun {
		t.Errorf("refusal did not begin the stream: %d", st)
	}
	tr, _ := NewStreamTranslator(OpenAI, Anthropic, StreamOptions{})
	out := string(tr.Write(stream)) + string(tr.Close())
	if !strings.Contains(out, `"text_delta","text":"I can't help with that."`) {
		t.Errorf("translated: %s", out)
	}
	r, err := DecodeOpenAIResponse([]byte(`{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}`))
	if err != nil || len(r.Parts) != 1 || r.Parts[0].Type != PartText || r.Parts[0].Text != "I can't help with that." {
		t.Errorf("%+v %v", r, err)
	}
}
