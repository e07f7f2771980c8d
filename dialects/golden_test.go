package dialects

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts")

var all = ProviderDialects

// deterministic makes ids and clocks repeatable for golden output.
func deterministic(t testing.TB) {
	n := 0
	idSource = func(prefix string) string { n++; return fmt.Sprintf("%sgen%03d", prefix, n) }
	now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	t.Cleanup(func() { idSource, now = randomID, time.Now })
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "translate", "golden", name)
	if *update {
		_ = os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./dialects -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from its golden file:\n%s\nwant:\n%s", name, got, want)
	}
}

func pretty(b []byte) []byte {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return b
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func read(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "translate", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGoldenRequests translates a rich request of each dialect to every
// dialect.
func TestGoldenRequests(t *testing.T) {
	for _, from := range all {
		in := read(t, "request."+string(from)+".json")
		for _, to := range all {
			t.Run(string(from)+"-to-"+string(to), func(t *testing.T) {
				deterministic(t)
				out, err := TranslateRequest(from, to, in, EncodeOptions{Model: "target-model", DefaultMaxTokens: 1000, Reasoning: true})
				var got []byte
				if err != nil {
					got = []byte(fmt.Sprintf("error %d: %s\n", err.Status, err.Message))
				} else {
					got = pretty(out)
				}
				golden(t, "request."+string(from)+"-to-"+string(to)+".json", got)
			})
		}
	}
}

// TestGoldenResponses translates a whole answer of each dialect to every
// dialect, and to a stream for a client that asked for one.
func TestGoldenResponses(t *testing.T) {
	for _, from := range all {
		in := read(t, "response."+string(from)+".json")
		for _, to := range all {
			t.Run(string(from)+"-to-"+string(to), func(t *testing.T) {
				deterministic(t)
				r, err := DecodeResponse(from, in)
				if err != nil {
					t.Fatal(err)
				}
				out, err := EncodeResponse(to, r, "client-model")
				if err != nil {
					t.Fatal(err)
				}
				golden(t, "response."+string(from)+"-to-"+string(to)+".json", pretty(out))
				s, err := ResponseStream(to, r, StreamOptions{Model: "client-model", IncludeUsage: true, Created: 1})
				if err != nil {
					t.Fatal(err)
				}
				golden(t, "response."+string(from)+"-to-"+string(to)+".stream.txt", s)
			})
		}
	}
}

// TestGoldenStreams translates a recorded stream of each dialect to every
// dialect, fed whole and in 7-byte pieces: the output must not depend on
// how the bytes arrive.
func TestGoldenStreams(t *testing.T) {
	for _, from := range all {
		in := read(t, "stream."+string(from)+".txt")
		for _, to := range all {
			t.Run(string(from)+"-to-"+string(to), func(t *testing.T) {
				run := func(piece int) ([]byte, Usage) {
					deterministic(t)
					tr, err := NewStreamTranslator(from, to, StreamOptions{Model: "client-model", IncludeUsage: true, Created: 1})
					if err != nil {
						t.Fatal(err)
					}
					var out []byte
					for i := 0; i < len(in); i += piece {
						end := min(i+piece, len(in))
						out = append(out, tr.Write(in[i:end])...)
					}
					out = append(out, tr.Close()...)
					u, ok := tr.Usage()
					if !ok {
						t.Error("no usage")
					}
					return out, u
				}
				whole, u := run(len(in))
				pieces, _ := run(7)
				if !bytes.Equal(whole, pieces) {
					t.Errorf("output depends on how the input is split:\n%s\nvs\n%s", whole, pieces)
				}
				if u.Input != 100 || u.Output != 20 {
					t.Errorf("usage %+v", u)
				}
				golden(t, "stream."+string(from)+"-to-"+string(to)+".txt", whole)
			})
		}
	}
}
