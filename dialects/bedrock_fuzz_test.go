package dialects

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzBedrockRequest: the Converse request decoder never panics, refuses
// only with 400s, and what it decodes encodes to a body it decodes again;
// translation to and from every other dialect never panics.
func FuzzBedrockRequest(f *testing.F) {
	f.Add([]byte(bedrockRequest))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}],"system":[{"text":"s"}]}`))
	f.Add([]byte(`{"messages":[{"role":"assistant","content":[{"reasoningContent":{"redactedContent":"AAAA"}},{"toolUse":{"toolUseId":"a.b","name":"f","input":[1]}}]}],"toolConfig":{"tools":[]}}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"toolResult":{"toolUseId":"t","content":[{"json":null},{"image":{"format":"gif","source":{"bytes":"R0lG"}}}]}}]}]}`))
	for _, name := range []string{"request.openai.json", "request.anthropic.json", "request.ollama.json", "request.responses.json"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "translate", name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeBedrockRequest(body)
		if err != nil {
			if err.Status != 400 {
				t.Fatalf("status %d", err.Status)
			}
		} else {
			out, eerr := EncodeBedrockRequest(r, EncodeOptions{DefaultMaxTokens: 10, Reasoning: true})
			if eerr != nil {
				t.Fatalf("decoded but does not encode: %v\n%s", eerr, body)
			}
			if _, derr := DecodeBedrockRequest(out); derr != nil {
				t.Fatalf("our own output does not decode: %v\n%s\n%s", derr, body, out)
			}
			if _, rerr := ReadRequest(Bedrock, out); rerr != nil {
				t.Fatalf("our own output is not a request: %v\n%s", rerr, out)
			}
		}
		for _, d := range ProviderDialects {
			_, _ = TranslateRequest(Bedrock, d, body, EncodeOptions{Model: "m", DefaultMaxTokens: 10})
			_, _ = TranslateRequest(d, Bedrock, body, EncodeOptions{Model: "m", DefaultMaxTokens: 10, Reasoning: true})
		}
		CacheExtras(Bedrock, body)
		if _, rerr := ReadRequest(Bedrock, body); rerr == nil {
			if out, perr := PrependSystem(Bedrock, body, "ctx"); perr == nil {
				if _, rerr := ReadRequest(Bedrock, out); rerr != nil {
					t.Fatalf("injected body unreadable: %v\n%s", rerr, out)
				}
			}
		}
	})
}

// FuzzBedrockResponse: the Converse answer decoder never panics, and what
// it decodes encodes, as an answer and as a stream, to something it
// decodes again.
func FuzzBedrockResponse(f *testing.F) {
	f.Add([]byte(bedrockResponse))
	f.Add([]byte(`{"output":{"message":{"role":"assistant","content":[{"citationsContent":{"content":[{"text":"a"}]}},{"text":""}]}},"stopReason":"guardrail_intervened"}`))
	for _, name := range []string{"response.openai.json", "response.anthropic.json", "response.ollama.json", "response.responses.json"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "translate", name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		UsageFromBody(Bedrock, body)
		for _, d := range ProviderDialects {
			if r, err := DecodeResponse(d, body); err == nil {
				if _, err := EncodeBedrockResponse(r, "m"); err != nil {
					t.Fatalf("%s answer does not encode for Bedrock: %v", d, err)
				}
			}
		}
		r, err := DecodeBedrockResponse(body)
		if err != nil {
			return
		}
		out, err := EncodeBedrockResponse(r, "m")
		if err != nil {
			t.Fatalf("decoded but does not encode: %v", err)
		}
		if _, err := DecodeBedrockResponse(out); err != nil {
			t.Fatalf("our own answer does not decode: %v\n%s", err, out)
		}
		for _, d := range ProviderDialects {
			_, _ = EncodeResponse(d, r, "m")
		}
		s, err := ResponseStream(Bedrock, r, StreamOptions{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := CollectStream(Bedrock, s); err != nil {
			t.Fatalf("our own stream does not collect: %v", err)
		}
	})
}

// FuzzBedrockStream: arbitrary bytes as a ConverseStream, split at an
// arbitrary point, never panic the frame reader or the translators, the
// output stays bounded, and a stream that collects into an answer
// replays as a stream that collects again.
func FuzzBedrockStream(f *testing.F) {
	f.Add(converseStream(f), uint16(7))
	f.Add(frames(f, "messageStart", `{"role":"assistant"}`, "exception:modelStreamErrorException",
		`{"message":"x","originalStatusCode":500,"originalMessage":"y"}`), uint16(30))
	f.Add(frames(f, "messageStart", `{}`, "metadata", `{"usage":{"inputTokens":1}}`, "messageStop", `{"stopReason":"end_turn"}`), uint16(0))
	f.Add([]byte("\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2\x48\xeb\x7d\x98\xc8\xff"), uint16(3))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		c := int(cut) % (len(in) + 1)
		var r EventStreamReader
		n := 0
		err1 := r.Feed(in[:c], func(EventStreamMessage) { n++ })
		err2 := r.Feed(in[c:], func(EventStreamMessage) { n++ })
		var whole EventStreamReader
		m := 0
		errW := whole.Feed(in, func(EventStreamMessage) { m++ })
		if n != m || (err1 == nil && err2 == nil) != (errW == nil) || (r.Close() == nil) != (whole.Close() == nil) {
			t.Fatalf("split at %d: %d frames (%v, %v) vs %d whole (%v)", c, n, err1, err2, m, errW)
		}
		for _, to := range append([]Dialect{Bedrock}, ProviderDialects...) {
			tr, err := NewStreamTranslator(Bedrock, to, StreamOptions{Model: "m", IncludeUsage: true})
			if err != nil {
				t.Fatal(err)
			}
			out := len(tr.Write(in[:c]))
			out += len(tr.Write(in[c:]))
			out += len(tr.Close())
			if out > 64*len(in)+4096 {
				t.Fatalf("→%s: %d output bytes for %d input bytes", to, out, len(in))
			}
		}
		resp, err := CollectStream(Bedrock, in)
		if err != nil {
			return
		}
		s, err := ResponseStream(Bedrock, resp, StreamOptions{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		again, err := CollectStream(Bedrock, s)
		if err != nil {
			t.Fatalf("replayed stream does not collect: %v", err)
		}
		if len(again.Parts) > len(resp.Parts) || again.Stop != resp.Stop {
			t.Fatalf("replay changed the answer: %+v\nvs %+v", again, resp)
		}
		if JoinText(again.Parts, "") != JoinText(resp.Parts, "") {
			t.Fatalf("replay changed the text: %q vs %q", JoinText(again.Parts, ""), JoinText(resp.Parts, ""))
		}
		if _, err := EncodeBedrockResponse(resp, "m"); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzBedrockStreamEvents: arbitrary event sequences in valid frames (the
// byte-level fuzzer seldom gets past the CRCs): each line of data is an
// event type (or "exception:<type>"), a tab, and its payload. The
// decoder never panics, and what collects replays.
func FuzzBedrockStreamEvents(f *testing.F) {
	f.Add("messageStart\t{\"role\":\"assistant\"}\ncontentBlockDelta\t{\"contentBlockIndex\":0,\"delta\":{\"text\":\"hi\"}}\nmessageStop\t{\"stopReason\":\"end_turn\"}\nmetadata\t{\"usage\":{\"inputTokens\":1,\"outputTokens\":2}}")
	f.Add("contentBlockStart\t{\"contentBlockIndex\":3,\"start\":{\"toolUse\":{\"toolUseId\":\"t\",\"name\":\"f\"}}}\ncontentBlockDelta\t{\"contentBlockIndex\":3,\"delta\":{\"toolUse\":{\"input\":\"{}\"}}}\nmessageStop\t{\"stopReason\":\"tool_use\"}")
	f.Add("contentBlockDelta\t{\"delta\":{\"reasoningContent\":{\"signature\":\"s\"}}}\nexception:modelStreamErrorException\t{\"message\":\"m\",\"originalStatusCode\":500}")
	f.Fuzz(func(t *testing.T, data string) {
		var evs []string
		for _, line := range strings.Split(data, "\n") {
			typ, payload, _ := strings.Cut(line, "\t")
			if len(typ) > 200 {
				return // header values have a length limit
			}
			evs = append(evs, typ, payload)
		}
		in := frames(t, evs...)
		for _, to := range append([]Dialect{Bedrock}, ProviderDialects...) {
			tr, err := NewStreamTranslator(Bedrock, to, StreamOptions{Model: "m", IncludeUsage: true})
			if err != nil {
				t.Fatal(err)
			}
			out := append(bytes.Clone(tr.Write(in)), tr.Close()...)
			if to == Bedrock {
				// Bedrock to Bedrock: what the translator writes reads
				// back, or is an error the client sees as one.
				if _, err := CollectStream(Bedrock, out); err != nil && !bytes.Contains(out, []byte("Exception")) {
					t.Fatalf("translated stream does not collect: %v", err)
				}
			}
		}
		resp, err := CollectStream(Bedrock, in)
		if err != nil {
			return
		}
		s, err := ResponseStream(Bedrock, resp, StreamOptions{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		again, err := CollectStream(Bedrock, s)
		if err != nil || JoinText(again.Parts, "") != JoinText(resp.Parts, "") || again.Stop != resp.Stop || again.Usage != resp.Usage {
			t.Fatalf("replay: %+v %v\nvs %+v", again, err, resp)
		}
	})
}
