package ledger

import (
	"bytes"
	"math"
	"os"
	"testing"
)

// FuzzLoadLiteLLM: any price file loads or fails with an error; what
// loads has no negative or non-finite price and can be looked up.
func FuzzLoadLiteLLM(f *testing.F) {
	if b, err := os.ReadFile("testdata/litellm_prices.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"m":{"input_cost_per_token":1e-6,"output_cost_per_token":2e-6,"mode":"chat"}}`))
	f.Add([]byte(`{"sample_spec":{},"x/y":{"input_cost_per_token":"1"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := LoadLiteLLM(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, name := range []string{"m", "x/y", "gpt-4o", "claude-sonnet-4-5-20250929"} {
			info, ok := pt.Lookup("openai", name)
			if !ok {
				continue
			}
			for _, p := range []float64{info.Prices.Input, info.Prices.Output, info.Prices.CachedInput, info.Prices.CacheWrite} {
				if p < 0 || math.IsNaN(p) || math.IsInf(p, 0) {
					t.Fatalf("%s: bad price %v", name, p)
				}
			}
		}
	})
}
