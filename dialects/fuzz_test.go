package dialects

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadRequest: arbitrary bodies never panic and every rejection is a
// 400.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[],"stream":true}`))
	f.Add([]byte(`{"model":1}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, d := range ProviderDialects {
			if _, err := ReadRequest(d, body); err != nil && err.Status != 400 {
				t.Fatalf("status %d", err.Status)
			}
		}
	})
}

// FuzzUsage: usage readers never panic on arbitrary payloads.
func FuzzUsage(f *testing.F) {
	f.Add([]byte(`{"type":"message_start","message":{"usage":{"input_tokens":1}}}`))
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"prompt_eval_count":1,"eval_count":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range ProviderDialects {
			UsageFromBody(d, data)
			s := StreamUsage{Dialect: d}
			s.Event(data)
		}
	})
}

// FuzzTranslateRequest: request decoders and encoders never panic.
func FuzzTranslateRequest(f *testing.F) {
	for _, name := range []string{"request.openai.json", "request.anthropic.json", "request.ollama.json", "request.responses.json"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "translate", name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, from := range ProviderDialects {
			for _, to := range ProviderDialects {
				_, _ = TranslateRequest(from, to, body, EncodeOptions{Model: "m", DefaultMaxTokens: 10})
			}
		}
	})
}

// FuzzTranslateResponse: answer decoders never panic.
func FuzzTranslateResponse(f *testing.F) {
	for _, name := range []string{"response.openai.json", "response.anthropic.json", "response.ollama.json", "response.responses.json"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "translate", name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, from := range ProviderDialects {
			r, err := DecodeResponse(from, body)
			if err != nil {
				continue
			}
			for _, to := range ProviderDialects {
				_, _ = EncodeResponse(to, r, "m")
			}
		}
	})
}

// FuzzStreamTranslator: arbitrary upstream bytes, split at an arbitrary
// point, never panic, and the output stays bounded by a multiple of the
// input (no runaway buffering).
func FuzzStreamTranslator(f *testing.F) {
	for _, name := range []string{"stream.openai.txt", "stream.anthropic.txt", "stream.ollama.txt", "stream.responses.txt"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "translate", name)); err == nil {
			f.Add(b, uint16(7))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		for _, from := range ProviderDialects {
			for _, to := range ProviderDialects {
				tr, err := NewStreamTranslator(from, to, StreamOptions{Model: "m", IncludeUsage: true})
				if err != nil {
					t.Fatal(err)
				}
				c := int(cut) % (len(in) + 1)
				n := len(tr.Write(in[:c]))
				n += len(tr.Write(in[c:]))
				st := tr.Start()
				n += len(tr.Close())
				if n > 64*len(in)+4096 {
					t.Fatalf("%s→%s: %d output bytes for %d input bytes", from, to, n, len(in))
				}
				if to != OpenAI {
					continue
				}
				// The pass-through path's probe decides as the
				// translator does, on the same cut, but lets an event
				// it cannot read begin the stream; it always decides
				// at Close.
				p, err := NewStreamProbe(from)
				if err != nil {
					t.Fatal(err)
				}
				p.Feed(in[:c])
				if got := p.Feed(in[c:]); got != st && got != StreamBegun {
					t.Fatalf("%s: probe %d, translator %d", from, got, st)
				}
				if end := p.Close(); end == StreamPending || end != tr.Start() && end != StreamBegun {
					t.Fatalf("%s: at Close probe %d, translator %d", from, end, tr.Start())
				}
				if e, _ := p.Err(Anthropic); (e != nil) != (p.Close() == StreamFailed) || e != nil && e.Status < 400 {
					t.Fatalf("%s: error %+v for start %d", from, e, p.Close())
				}
			}
		}
	})
}

// FuzzCacheRequest: the cache's reading of a request (CacheExtras) and
// context injection (PrependSystem) never panic; an injected body stays
// valid JSON and still reads as a request.
func FuzzCacheRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1}`))
	f.Add([]byte(`{"model":"m","system":[{"type":"text","text":"s"}],"messages":[]}`))
	f.Add([]byte(`{"model":"m","input":"x","instructions":"be brief","tools":[{"type":"web_search"}]}`))
	f.Add([]byte(`{"a":{"b":1,"b":2}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, d := range ProviderDialects {
			CacheExtras(d, body)
			if _, err := ReadRequest(d, body); err != nil {
				continue
			}
			out, err := PrependSystem(d, body, "<context_delta>\"x\"</context_delta>")
			if err != nil {
				continue
			}
			if _, rerr := ReadRequest(d, out); rerr != nil {
				t.Fatalf("%s: injected body unreadable: %v\n%s", d, rerr, out)
			}
		}
	})
}

// FuzzCollectStream: reading any bytes back as a stream never panics.
func FuzzCollectStream(f *testing.F) {
	for _, d := range ProviderDialects {
		s, _ := ResponseStream(d, &ChatResponse{Model: "m", Stop: StopEnd, Parts: []Part{{Type: PartText, Text: "hi"}, {Type: PartToolCall, ID: "c", Name: "f", Args: "{}"}}}, StreamOptions{Model: "m"})
		f.Add(string(d), s)
	}
	f.Fuzz(func(t *testing.T, d string, body []byte) {
		if r, err := CollectStream(Dialect(d), body); err == nil && r == nil {
			t.Fatal("no answer and no error")
		}
	})
}
