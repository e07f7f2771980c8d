package routing

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

type labelled struct {
	tier Tier
	f    Features
}

// loadPrompts reads testdata/prompts.tsv: a tier, a tab, then optional
// [flag] prefixes and the last user message.
func loadPrompts(t testing.TB) []labelled {
	file, err := os.Open("testdata/prompts.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var out []labelled
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		label, text, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		tier, err := ParseTier(label)
		if err != nil {
			t.Fatal(err)
		}
		f := Features{Messages: 1}
		for strings.HasPrefix(text, "[") {
			end := strings.IndexByte(text, ']')
			flag := text[1:end]
			text = strings.TrimSpace(text[end+1:])
			switch {
			case flag == "images":
				f.Images = true
			case flag == "reasoning":
				f.Reasoning = true
			case strings.HasPrefix(flag, "tools="):
				f.Tools, _ = strconv.Atoi(flag[6:])
			case strings.HasPrefix(flag, "messages="):
				f.Messages, _ = strconv.Atoi(flag[9:])
			}
		}
		f.LastUser = text
		f.ContextChars = len(text)
		out = append(out, labelled{tier, f})
	}
	return out
}

func tierIndex(t Tier) int {
	for i, x := range Tiers {
		if x == t {
			return i
		}
	}
	return -1
}

// TestAnalyzerLabelledPrompts: at least 90% of the labelled prompts land
// in their tier, and none is more than one tier off.
func TestAnalyzerLabelledPrompts(t *testing.T) {
	prompts := loadPrompts(t)
	if len(prompts) < 100 {
		t.Fatalf("only %d labelled prompts", len(prompts))
	}
	per := map[Tier]int{}
	for _, p := range prompts {
		per[p.tier]++
	}
	for _, tier := range Tiers {
		if per[tier] < 15 {
			t.Errorf("tier %s has only %d prompts", tier, per[tier])
		}
	}
	a := NewAnalyzer(TierStandard, nil)
	right := 0
	for _, p := range prompts {
		got := a.Analyze(p.f)
		d := tierIndex(got.Tier) - tierIndex(p.tier)
		if d == 0 {
			right++
			continue
		}
		if d > 1 || d < -1 {
			t.Errorf("%q: %s, labelled %s (%v)", p.f.LastUser, got.Tier, p.tier, got.Reasons)
		} else {
			t.Logf("off by one: %q: %s, labelled %s (score %d: %v)", p.f.LastUser, got.Tier, p.tier, got.Score, got.Reasons)
		}
	}
	if pct := 100 * right / len(prompts); pct < 90 {
		t.Errorf("%d of %d prompts (%d%%) in their labelled tier; want at least 90%%", right, len(prompts), pct)
	} else {
		t.Logf("%d of %d prompts (%d%%) in their labelled tier", right, len(prompts), pct)
	}
}

func TestAnalyzerExamplesAndTuning(t *testing.T) {
	a := NewAnalyzer(TierStandard, nil)
	if got := a.Analyze(Features{LastUser: "fix this typo", Messages: 1}); got.Tier != TierTrivial {
		t.Errorf("typo: %+v", got)
	}
	if got := a.Analyze(Features{LastUser: "debug this race condition step by step", Messages: 1}); got.Tier != TierDeep {
		t.Errorf("race: %+v", got)
	}
	// A user keyword moves a request the built-ins do not know.
	b := NewAnalyzer(TierStandard, map[Tier][]string{TierDeep: {"kafka rebalance"}})
	if got := b.Analyze(Features{LastUser: "our kafka rebalance storms again, what do we do about it", Messages: 1}); tierIndex(got.Tier) < tierIndex(TierComplex) {
		t.Errorf("tuned keyword: %+v", got)
	}
	if got := NewAnalyzer(TierComplex, nil).Analyze(Features{LastUser: "please have a look at the attached material and tell me your thoughts on it overall", Messages: 1}); got.Tier != TierComplex {
		t.Errorf("default tier: %+v", got)
	}
}

// keywordReasons lists the keyword reasons of the analysis of text.
func keywordReasons(a *Analyzer, text string) []string {
	var out []string
	for _, r := range a.Analyze(Features{LastUser: text, ContextChars: len(text), Messages: 1}).Reasons {
		if strings.Contains(r, " suggests ") {
			out = append(out, r)
		}
	}
	return out
}

// TestAnalyzerWordBoundaries: a phrase matches whole words, a stem ("*"
// in the list) also the words it begins.
func TestAnalyzerWordBoundaries(t *testing.T) {
	a := NewAnalyzer(TierStandard, nil)
	cases := []struct {
		text string
		want []string // keyword reasons, in order
	}{
		// Not the start of a longer word.
		{"proofread this sentence", nil},
		{"what is the provenance of this library", nil},
		{"state formally what this function returns", nil},
		{"the balance is wrong", nil},
		{"git", []string{`"git" suggests operational work`}},
		{"is this a formal proof?", []string{`"formal" suggests deep work`, `"proof" suggests deep work`}},
		{"prove it.", []string{`"prove" suggests deep work`}},
		// Accents and typographic marks: letters inside words,
		// boundaries around them.
		{"«merci»", []string{`"merci" suggests trivial work`}},
		{"merci !", []string{`"merci" suggests trivial work`}},
		{"bonjourné", nil},
		{"l’orthographe", []string{`"orthographe" suggests trivial work`}},
		// Stems still match inflections, and the reason quotes the word.
		{"fix the typos", []string{`"typos" suggests trivial work`}},
		{"refactoring the parser", []string{`"refactoring" suggests standard work`}},
		{"optimise then optimization", []string{`"optimise" suggests complex work`}},
		{"the dependencies are installed", []string{`"installed" suggests operational work`}},
		{"déboguer ce service", []string{`"déboguer" suggests deep work`}},
		{"deadlocks", []string{`"deadlocks" suggests deep work`}},
	}
	for _, c := range cases {
		if got := keywordReasons(a, c.text); strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%q: %q, want %q", c.text, got, c.want)
		}
	}
}

// TestAnalyzerPhrasesCountOnce: every built-in phrase, alone, is one
// piece of evidence, so no phrase is listed twice (in English and in
// French) and no phrase covers another's words.
func TestAnalyzerPhrasesCountOnce(t *testing.T) {
	a := NewAnalyzer(TierStandard, nil)
	for tier, phrases := range builtinKeywords {
		for _, p := range phrases {
			text := strings.TrimSuffix(p, "*")
			if got := keywordReasons(a, text); len(got) != 1 || !strings.Contains(got[0], string(tier)) {
				t.Errorf("%q: %q", text, got)
			}
		}
	}
	// A user phrase equal to a built-in one of its tier counts once, at
	// the user's weight.
	b := NewAnalyzer(TierStandard, map[Tier][]string{TierOperational: {"Configure*", " configure* "}})
	if got := b.Analyze(Features{LastUser: "configure nginx for this site please and keep the server block", Messages: 1}); len(got.Reasons) != 1 || got.Score != 1-2 {
		t.Errorf("user duplicate: %+v", got)
	}
}

// TestAnalyzerUserStems: user phrases follow the built-in rule.
func TestAnalyzerUserStems(t *testing.T) {
	a := NewAnalyzer(TierStandard, map[Tier][]string{TierDeep: {"kafka rebalance", "shard*"}})
	text := "our kafka rebalances and sharding storms again, what do we do about it"
	if got := keywordReasons(a, text); strings.Join(got, "|") != `"sharding" suggests deep work` {
		t.Errorf("%q", got)
	}
}

func BenchmarkAnalyze1KB(b *testing.B) {
	benchAnalyze(b, 1<<10)
}

func BenchmarkAnalyze50KB(b *testing.B) {
	benchAnalyze(b, 50<<10)
}

func benchAnalyze(b *testing.B, size int) {
	base := "Please refactor the handler in server.go so that the validation lives in validate.go, and explain the race condition you see. ```go\nfunc f() {}\n``` "
	text := strings.Repeat(base, size/len(base)+1)[:size]
	a := NewAnalyzer(TierStandard, nil)
	f := Features{LastUser: text, ContextChars: len(text), Messages: 6, Tools: 4}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		a.Analyze(f)
	}
}
