package contextbuf

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestDeltaSavings measures what the delta context buffer saves over a
// realistic sequence: a 100-file project (analysis files of 1 to 8 KB, as
// a code-to-LLM tool writes them), 20 edits of one to three files each
// (a few changed lines, sometimes a file added or removed), one request of
// one session after each edit and one before the first. "Full" injects
// the whole snapshot into every request; "delta" is what the buffer
// does: the session's first request carries the snapshot and each later
// one adds a diff of only what changed since.
//
// Tokens are the buffer's estimate ((bytes+3)/4). The numbers go to the
// test log (go test ./contextbuf -run DeltaSavings -v); the test holds
// that the new context tokens of the delta mode stay under a tenth of
// the full mode's.
func TestDeltaSavings(t *testing.T) {
	b := memBuffer(t, Options{})
	rng := rand.New(rand.NewPCG(7, 11))
	files := Files{}
	for i := 0; i < 100; i++ {
		files[fmt.Sprintf("analysis/mod%02d/file%03d.md", i%12, i)] = analysisFile(rng, i, 1+rng.IntN(8))
	}
	if _, err := b.PutSnapshot("proj", files, nil); err != nil {
		t.Fatal(err)
	}
	var full, newTok, sent int
	request := func() {
		t.Helper()
		whole, err := b.Inject("proj", "")
		if err != nil {
			t.Fatal(err)
		}
		inj, err := b.Inject("proj", "session-1")
		if err != nil {
			t.Fatal(err)
		}
		full += whole.TotalTokens
		newTok += inj.NewTokens
		sent += inj.TotalTokens
	}
	request()
	first := newTok
	for edit := 1; edit <= 20; edit++ {
		next := maps.Clone(files)
		paths := sortedPaths(next)
		switch {
		case edit%7 == 0: // a new file
			next[fmt.Sprintf("analysis/new/file%03d.md", edit)] = analysisFile(rng, 200+edit, 2)
		case edit%9 == 0: // a file removed
			delete(next, paths[rng.IntN(len(paths))])
		default: // one to three files, a few lines each
			for n := 1 + rng.IntN(3); n > 0; n-- {
				p := paths[rng.IntN(len(paths))]
				next[p] = editLines(rng, next[p], edit)
			}
		}
		if _, err := b.ApplyDelta("proj", Diff(files, next), nil); err != nil {
			t.Fatal(err)
		}
		files = next
		request()
	}
	t.Logf("21 requests over a 100-file context (%d tokens), 20 edits:", first)
	t.Logf("  full context per request:  %7d tokens", full)
	t.Logf("  delta, new tokens:         %7d tokens (%.1f%% of full: the first snapshot %d, the diffs %d)",
		newTok, 100*float64(newTok)/float64(full), first, newTok-first)
	t.Logf("  delta, all tokens sent:    %7d tokens (%.1f%% of full; the earlier blocks repeat unchanged, a prefix providers' prompt caches serve)",
		sent, 100*float64(sent)/float64(full))
	if newTok*10 > full {
		t.Errorf("delta mode: %d new tokens against %d for the full context", newTok, full)
	}
}

// analysisFile is a Markdown analysis of one source file: kb kilobytes of
// sections, symbols and notes.
func analysisFile(rng *rand.Rand, i, kb int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "# file%03d\n\n", i)
	for s.Len() < kb*1024 {
		fmt.Fprintf(&s, "## func F%d_%d\n- calls: G%d, H%d\n- complexity: %d\n- note: handles case %d of the input\n\n",
			i, s.Len(), rng.IntN(500), rng.IntN(500), rng.IntN(20), rng.IntN(1000))
	}
	return s.String()
}

// editLines changes a few lines of a file.
func editLines(rng *rand.Rand, content string, edit int) string {
	lines := strings.Split(content, "\n")
	for n := 1 + rng.IntN(4); n > 0; n-- {
		i := rng.IntN(len(lines))
		lines[i] = fmt.Sprintf("- note: changed by edit %d", edit)
	}
	return strings.Join(lines, "\n")
}

func sortedPaths(f Files) []string {
	ps := make([]string, 0, len(f))
	for p := range f {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}
