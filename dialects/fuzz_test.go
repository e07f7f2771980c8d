package dialects

import "testing"

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
