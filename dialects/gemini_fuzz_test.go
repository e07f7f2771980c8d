package dialects

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tidwall/gjson"
)

// geminiTargets: the dialects a decoded Gemini request or answer is
// encoded to in the fuzz targets.
var geminiTargets = append(append([]Dialect(nil), ProviderDialects...), Gemini)

// FuzzGeminiRequest: the request decoder never panics and refuses only
// with 400s; what it reads from valid JSON encodes for Gemini (short of
// what Gemini cannot take: a schema too large once expanded) and for
// the other dialects without panicking; context injection keeps the
// body a readable request.
func FuzzGeminiRequest(f *testing.F) {
	for _, name := range []string{"request.json"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "gemini", name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f"},"thoughtSignature":"bGxtZ2F0ZS1zaWc6eA=="}]},{"parts":[{"functionResponse":{"name":"f","response":{"error":1}}}]}]}`))
	f.Add([]byte(`{"contents":[],"tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"OBJECT","properties":{"a":{"any_of":[{"type":"STRING"}],"nullable":true}}}}]}],"generation_config":{"response_schema":{"type":"ARRAY"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, derr := DecodeGeminiRequest(body)
		if derr != nil {
			if derr.Status != 400 {
				t.Fatalf("status %d", derr.Status)
			}
			return
		}
		for _, to := range geminiTargets {
			out, err := EncodeRequest(to, r, EncodeOptions{Model: "m", DefaultMaxTokens: 10, Reasoning: true})
			if to != Gemini || !gjson.ValidBytes(body) {
				continue
			}
			if err != nil && !errors.Is(err, errSchemaSize) {
				t.Fatalf("encoding for Gemini: %v", err)
			}
			if err == nil {
				if !gjson.ValidBytes(out) {
					t.Fatalf("invalid JSON: %s", out)
				}
				if _, derr := DecodeGeminiRequest(out); derr != nil {
					t.Fatalf("the encoded request does not decode: %v\n%s", derr, out)
				}
			}
		}
		CacheExtras(Gemini, body)
		if _, rerr := ReadRequest(Gemini, body); rerr != nil {
			return
		}
		out, perr := PrependSystem(Gemini, body, "<context_delta>\"x\"</context_delta>")
		if perr != nil {
			return
		}
		if _, rerr := ReadRequest(Gemini, out); rerr != nil {
			t.Fatalf("injected body unreadable: %v\n%s", rerr, out)
		}
	})
}

// FuzzGeminiResponse: the answer decoder never panics, and whatever it
// reads encodes in every dialect, whole and as a stream.
func FuzzGeminiResponse(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "gemini", "response.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"promptFeedback":{"blockReason":"SAFETY"}}`))
	f.Add([]byte(`[{"candidates":[{"content":{"parts":[{"text":"a","thought":true,"thoughtSignature":"eA=="}]},"finishReason":"STOP"}]}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeGeminiResponse(body)
		if err != nil {
			return
		}
		for _, to := range geminiTargets {
			if _, err := EncodeResponse(to, r, "m"); err != nil {
				t.Fatalf("%s: %v", to, err)
			}
			if _, err := ResponseStream(to, r, StreamOptions{Model: "m"}); err != nil {
				t.Fatalf("%s stream: %v", to, err)
			}
		}
		UsageFromBody(Gemini, body)
	})
}

// FuzzGeminiStream: arbitrary upstream bytes, split at an arbitrary
// point, translated from Gemini to every dialect and from every dialect
// to Gemini, never panic and stay bounded; a stream that collects
// encodes back for a Gemini client.
func FuzzGeminiStream(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "gemini", "stream.txt")); err == nil {
		f.Add(b, uint16(7))
	}
	for _, name := range []string{"stream.openai.txt", "stream.anthropic.txt"} {
		if b, err := os.ReadFile(filepath.Join("testdata", "translate", name)); err == nil {
			f.Add(b, uint16(11))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		c := int(cut) % (len(in) + 1)
		pairs := make([][2]Dialect, 0, 2*len(geminiTargets))
		for _, d := range geminiTargets {
			pairs = append(pairs, [2]Dialect{Gemini, d}, [2]Dialect{d, Gemini})
		}
		for _, p := range pairs {
			tr, err := NewStreamTranslator(p[0], p[1], StreamOptions{Model: "m", IncludeUsage: true})
			if err != nil {
				t.Fatal(err)
			}
			n := len(tr.Write(in[:c]))
			n += len(tr.Write(in[c:]))
			n += len(tr.Close())
			if n > 64*len(in)+4096 {
				t.Fatalf("%s→%s: %d output bytes for %d input bytes", p[0], p[1], n, len(in))
			}
		}
		s := StreamUsage{Dialect: Gemini}
		s.Event(in)
		StreamEnded(Gemini, nil, in)
		if r, err := CollectStream(Gemini, in); err == nil {
			if _, err := EncodeGeminiResponse(r, "m"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzGeminiSchema: schema conversion either way never panics and gives
// valid JSON.
func FuzzGeminiSchema(f *testing.F) {
	f.Add(`{"type":"object","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"anyOf":[{"type":["string","null"]},{"const":1}]}}}`)
	f.Add(`{"allOf":[{"$ref":"#"}],"items":[{"enum":[1,null]}]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		if !gjson.Valid(raw) {
			return
		}
		if out, err := geminiSchema(raw, true); err == nil && !gjson.Valid(out) {
			t.Fatalf("geminiSchema(%s) = %s", raw, out)
		}
		if out := jsonSchemaFromGemini(gjson.Parse(raw)); !gjson.Valid(out) {
			t.Fatalf("jsonSchemaFromGemini(%s) = %s", raw, out)
		}
	})
}
