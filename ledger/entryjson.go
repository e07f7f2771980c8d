package ledger

import (
	"math"
	"strconv"
	"time"

	"github.com/llmgate/caddy-llmgate/internal/jsonstr"
)

// appendEntry appends e as JSON, byte for byte what json.Marshal writes
// for an Entry (FuzzEntryJSON holds them equal), without reflection:
// every request writes one, and encoding/json was half the cost of
// recording it. ok is false for a value json.Marshal refuses (a NaN or
// infinite float), which the caller then reports the same way.
func appendEntry(b []byte, e *Entry) (_ []byte, ok bool) {
	for _, f := range [...]float64{e.CostUSD, e.LatencyMS, e.SavedUSD} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return b, false
		}
	}
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return b, false // json.Marshal refuses these years too
	}
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendStr(b, `,"key_id":`, e.KeyID)
	b = appendStr(b, `,"session":`, e.Session)
	b = appendStr(b, `,"endpoint":`, e.Endpoint)
	b = appendStr(b, `,"provider":`, e.Provider)
	b = appendStr(b, `,"model":`, e.Model)
	b = appendStr(b, `,"upstream_model":`, e.UpstreamModel)
	b = appendStr(b, `,"tier":`, e.Tier)
	if e.Stream {
		b = append(b, `,"stream":true`...)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = appendInt(b, `,"input_tokens":`, e.Input)
	b = appendInt(b, `,"cached_input_tokens":`, e.CachedInput)
	b = appendInt(b, `,"cache_write_tokens":`, e.CacheWrite)
	b = appendInt(b, `,"output_tokens":`, e.Output)
	b = appendInt(b, `,"reasoning_tokens":`, e.Reasoning)
	b = append(b, `,"cost_usd":`...)
	b = appendFloat(b, e.CostUSD)
	b = append(b, `,"latency_ms":`...)
	b = appendFloat(b, e.LatencyMS)
	b = appendInt(b, `,"attempts":`, e.Attempts)
	if e.Fallback {
		b = append(b, `,"fallback":true`...)
	}
	b = appendStr(b, `,"cache":`, e.Cache)
	b = appendStr(b, `,"error_kind":`, e.ErrorKind)
	if e.SavedUSD != 0 {
		b = append(b, `,"saved_usd":`...)
		b = appendFloat(b, e.SavedUSD)
	}
	return append(b, '}'), true
}

// appendStr appends an omitempty string member.
func appendStr(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return jsonstr.Append(append(b, key...), s, true) // HTML-safe, as json.Marshal
}

// appendInt appends an omitempty int member.
func appendInt(b []byte, key string, n int) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), int64(n), 10)
}

// appendFloat writes f as encoding/json does: %f-style, or exponent
// form (with a one-digit negative exponent kept short) far from 1.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
