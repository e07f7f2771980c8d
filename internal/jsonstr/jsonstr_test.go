package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// marshal is what encoding/json writes for s, with or without HTML
// escaping.
func marshal(s string, html bool) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

var cases = []string{"", "plain", `quote" back\`, "nl\n cr\r tab\t bs\b ff\f ctl\x01\x1f", "<a href='x'>&amp;</a>",
	"\u2028\u2029", "bad\xff utf8 \xc3", "é ✓ 😀"}

func TestAppendMatchesEncodingJSON(t *testing.T) {
	for _, s := range cases {
		for _, html := range []bool{false, true} {
			if got, want := Append(nil, s, html), marshal(s, html); !bytes.Equal(got, want) {
				t.Errorf("%q html=%v: %s, want %s", s, html, got, want)
			}
		}
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range cases {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, html bool) {
		if got, want := Append(nil, s, html), marshal(s, html); !bytes.Equal(got, want) {
			t.Fatalf("%q html=%v: %s, want %s", s, html, got, want)
		}
	})
}
