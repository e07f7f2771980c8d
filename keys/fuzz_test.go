package keys

import "testing"

// FuzzParseHash: any text parses to the hash it spells or fails; a
// parsed hash prints back to the same text (lowercase hex).
func FuzzParseHash(f *testing.F) {
	f.Add(Hash("sk-llm-x"))
	f.Add("sha256:")
	f.Add("sha256:" + "ZZ")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			return
		}
		back := HashPrefix
		for _, c := range h {
			back += string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15])
		}
		if _, err := ParseHash(back); err != nil {
			t.Fatalf("%q parsed but its canonical form %q does not", s, back)
		}
	})
}
