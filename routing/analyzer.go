package routing

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Features are what the analyzer looks at in a request. Handlers fill
// them from the decoded request; the analyzer never sees the raw body.
type Features struct {
	// LastUser is the text of the last user message.
	LastUser string
	// ContextChars counts the characters of every message.
	ContextChars int
	// Messages is the number of messages in the conversation.
	Messages int
	// Tools is the number of tools declared.
	Tools int
	// Images is true when any message carries an image.
	Images bool
	// Reasoning is true when the client asked for reasoning or thinking.
	Reasoning bool
	// JSONSchema is true when the client asked for schema-bound output.
	JSONSchema bool
	// MaxOutput is the output limit the client asked for (0: none).
	MaxOutput int
}

// EstimatedInputTokens guesses the input size: about four characters a
// token, the usual rule of thumb for English text and code.
func (f Features) EstimatedInputTokens() int { return f.ContextChars/4 + 4*f.Messages }

// Analysis is the analyzer's verdict.
type Analysis struct {
	Tier    Tier
	Score   int
	Reasons []string
}

// Analyzer classifies requests into tiers by their content. It is safe for
// concurrent use once built.
type Analyzer struct {
	// DefaultTier is used when nothing in the request points anywhere.
	DefaultTier Tier
	keywords    []keyword
	// byFirst indexes keywords by their first byte, so the text is
	// scanned once, word start by word start.
	byFirst [256][]int
}

type keyword struct {
	phrase string // lower case, without the stem mark
	tier   Tier
	weight int
	stem   bool // the phrase may end inside a word
}

// builtinKeywords are phrases that signal a kind of work, in English and
// French. A phrase's weight pulls the score toward its tier. A phrase
// matches whole words: it starts and ends at a word boundary (a character
// that is not a letter, digit or combining mark, or the end of the text),
// so "proof" is not in "proofread" nor "lance" in "balance". A phrase
// ending in "*" is a stem: the "*" is dropped when the lists are compiled
// and the phrase may end inside a word ("refactor*" matches refactoring
// and refactored); the reason then quotes the word found. A phrase
// appears once per tier, and no phrase matches another's words: a stem
// that covers both languages ("install*", "configure*", "command*",
// "refactor*", "optimi*", "performance*", "algorithm*") is not repeated
// in the French line.
var builtinKeywords = map[Tier][]string{
	TierTrivial: {
		"typo*", "spelling", "rename*", "reword*", "capitalize*", "fix the indentation", "add a comment*", "hello", "thanks", "thank you",
		"faute de frappe", "orthographe", "renomme*", "reformule*", "majuscule*", "bonjour", "merci",
	},
	TierOperational: {
		"run the", "list the", "show me", "git", "commit message*", "install*", "configure*", "docker*", "command*", "shell", "grep*", "move the file*", "update the version*",
		"lance", "liste", "affiche*", "déplace le fichier", "message de commit",
	},
	TierStandard: {
		"write a function", "implement*", "add a test", "unit test*", "refactor*", "explain*", "add an endpoint", "fix this bug", "handle the error*",
		"écris une fonction", "implémente*", "ajoute un test*", "test unitaire", "explique*", "corrige ce bug",
	},
	TierComplex: {
		"architecture*", "design a", "design an", "migrate*", "migration*", "optimi*", "performance*", "security", "scalab*", "across the codebase", "multiple files", "protocol*", "algorithm*",
		"conception", "migrer", "sécurité", "plusieurs fichiers",
	},
	TierDeep: {
		"race condition*", "deadlock*", "step by step", "prove", "proof", "root cause*", "debug*", "think carefully", "memory leak*", "concurrency bug*", "formal",
		"condition de course", "interblocage*", "étape par étape", "prouve*", "preuve*", "cause racine", "débogue*", "réfléchis*", "fuite mémoire",
	},
}

var tierWeight = map[Tier]int{TierTrivial: -4, TierOperational: -1, TierStandard: 1, TierComplex: 3, TierDeep: 7}

// NewAnalyzer returns an analyzer with the built-in phrases plus extra
// ones per tier (from the Caddyfile). Extra phrases are matched like the
// built-in ones: case-insensitively, as whole words, unless they end in
// "*" ("kafka rebalanc*" also matches "kafka rebalancing"). They weigh
// twice the built-in ones; a phrase given twice for a tier counts once.
func NewAnalyzer(defaultTier Tier, extra map[Tier][]string) *Analyzer {
	if defaultTier == "" {
		defaultTier = TierStandard
	}
	a := &Analyzer{DefaultTier: defaultTier}
	add := func(p string, t Tier, weight int) {
		k := keyword{tier: t, weight: weight}
		k.phrase, k.stem = strings.CutSuffix(strings.TrimSpace(strings.ToLower(p)), "*")
		k.phrase = strings.TrimSpace(k.phrase)
		for i, o := range a.keywords {
			if o.phrase == k.phrase && o.stem == k.stem && o.tier == t {
				// Once per tier, at the stronger weight (the user's).
				if weight*sign(weight) > o.weight*sign(o.weight) {
					a.keywords[i].weight = weight
				}
				return
			}
		}
		a.keywords = append(a.keywords, k)
	}
	for _, t := range Tiers {
		for _, p := range builtinKeywords[t] {
			add(p, t, tierWeight[t])
		}
		for _, p := range extra[t] {
			// User phrases count double: they were chosen for this setup.
			add(p, t, 2*tierWeight[t])
		}
	}
	for i, k := range a.keywords {
		if len(k.phrase) < 2 {
			continue
		}
		a.byFirst[k.phrase[0]] = append(a.byFirst[k.phrase[0]], i)
	}
	return a
}

// scan bounds the text the keyword scan reads: the start and the end of a
// long message say what is asked; the middle is usually pasted material.
const scan = 2048

// Analyze classifies f. The score starts at the default tier's and moves
// with the evidence; each piece of evidence is named in Reasons.
func (a *Analyzer) Analyze(f Features) Analysis {
	score := tierScore(a.DefaultTier)
	var reasons []string
	add := func(n int, why string) {
		score += n
		reasons = append(reasons, why)
	}
	text := f.LastUser
	if len(text) > 2*scan {
		text = text[:scan] + "\n" + text[len(text)-scan:]
	}
	lower := strings.ToLower(text)
	// Keywords: each tier counts at most twice (two different phrases),
	// so one repeated word cannot run away with the score.
	var hits [5]int
	var seen []int // keyword indexes already counted
	matched := false
	for i := 0; i+1 < len(lower); i++ {
		if i > 0 {
			// Phrases start at word boundaries ("lance" is not in
			// "balance"): the character before is not a letter or a
			// digit (ASCII checked here, the rest decoded when a phrase
			// may start here).
			if c := lower[i-1]; c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
				c >= utf8.RuneSelf && len(a.byFirst[lower[i]]) > 0 && wordRuneBefore(lower, i) {
				continue
			}
		}
		for _, ki := range a.byFirst[lower[i]] {
			k := a.keywords[ki]
			if k.phrase[1] != lower[i+1] {
				continue
			}
			ti := tierIndexOf(k.tier)
			if hits[ti] >= 2 || !strings.HasPrefix(lower[i:], k.phrase) || contains(seen, ki) {
				continue
			}
			// And they end at one ("proof" is not in "proofread"),
			// unless they are stems.
			if !k.stem && wordRuneAt(lower, i+len(k.phrase)) {
				continue
			}
			seen = append(seen, ki)
			hits[ti]++
			matched = true
			w := k.weight
			if hits[ti] == 2 {
				w = (w + sign(w)) / 2 // a second phrase adds half
			}
			add(w, strconv.Quote(matchedWords(lower, i, k))+" suggests "+string(k.tier)+" work")
		}
	}
	words := countWords(f.LastUser)
	switch {
	case words <= 5 && !matched:
		add(-4, "very short request ("+strconv.Itoa(words)+" words)")
	case words <= 12 && !matched:
		add(-2, "short request ("+strconv.Itoa(words)+" words)")
	case words > 400:
		add(2, "long request ("+strconv.Itoa(words)+" words)")
	case words > 120:
		add(1, "detailed request ("+strconv.Itoa(words)+" words)")
	}
	if n := strings.Count(f.LastUser, "```"); n >= 2 {
		blocks := n / 2
		w := 1
		if blocks >= 3 {
			w = 2
		}
		add(w, strconv.Itoa(blocks)+" code block(s)")
	}
	if files := countFiles(text); files >= 3 {
		add(2, strconv.Itoa(files)+" files mentioned")
	} else if files == 2 {
		add(1, "2 files mentioned")
	}
	switch {
	case f.Messages > 40:
		add(2, "long conversation ("+strconv.Itoa(f.Messages)+" messages)")
	case f.Messages > 12:
		add(1, "ongoing conversation ("+strconv.Itoa(f.Messages)+" messages)")
	}
	if tok := f.EstimatedInputTokens(); tok > 50000 {
		add(2, "large context (~"+strconv.Itoa(tok)+" tokens)")
	} else if tok > 12000 {
		add(1, "sizeable context (~"+strconv.Itoa(tok)+" tokens)")
	}
	if f.Tools > 10 {
		add(1, strconv.Itoa(f.Tools)+" tools declared")
	}
	if f.Images {
		add(1, "images attached")
	}
	if f.Reasoning {
		add(3, "reasoning requested")
	}
	tier := scoreTier(score)
	if len(reasons) == 0 {
		reasons = []string{"nothing stands out: default tier " + string(a.DefaultTier)}
	}
	return Analysis{Tier: tier, Score: score, Reasons: reasons}
}

func tierScore(t Tier) int {
	switch t {
	case TierTrivial:
		return -4
	case TierOperational:
		return -1
	case TierComplex:
		return 5
	case TierDeep:
		return 9
	}
	return 1
}

func scoreTier(s int) Tier {
	switch {
	case s <= -3:
		return TierTrivial
	case s <= 0:
		return TierOperational
	case s <= 3:
		return TierStandard
	case s <= 7:
		return TierComplex
	}
	return TierDeep
}

func sign(n int) int {
	if n < 0 {
		return -1
	}
	return 1
}

func tierIndexOf(t Tier) int {
	for i, x := range Tiers {
		if x == t {
			return i
		}
	}
	return 2
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// countWords counts whitespace-separated words without allocating; past
// 8 KB (a long message is long, whatever its exact count) it estimates
// from the length.
func countWords(s string) int {
	if len(s) > 8<<10 {
		return len(s) / 6
	}
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		space := s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'
		if !space && !in {
			n++
		}
		in = !space
	}
	return n
}

// sourceExt are file extensions that mark a word as a file name.
var sourceExt = map[string]bool{}

func init() {
	for _, e := range strings.Fields("go py js ts tsx jsx rs java c h cc cpp hpp cs rb php swift kt scala sql md yaml yml json toml sh css html vue proto tf mod lock") {
		sourceExt[e] = true
	}
}

// countFiles counts words that look like file names: a name, a dot, and a
// known source extension ending the word. It scans without allocating.
func countFiles(s string) int {
	n := 0
	for i := 1; i < len(s)-1; i++ {
		if s[i] != '.' || !isWordByte(s[i-1]) {
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') && j-i <= 6 {
			j++
		}
		if j == i+1 || j < len(s) && isWordByte(s[j]) {
			continue
		}
		if sourceExt[strings.ToLower(s[i+1:j])] {
			n++
		}
		i = j - 1
	}
	return n
}

// matchedWords is what k matched at text[i:]: the phrase, or for a stem
// the phrase up to the end of the word ("optimisation" rather than
// "optimi"), at most 24 bytes past the stem.
func matchedWords(text string, i int, k keyword) string {
	end := i + len(k.phrase)
	if k.stem {
		for limit := end + 24; end < limit && wordRuneAt(text, end); {
			_, n := utf8.DecodeRuneInString(text[end:])
			end += n
		}
	}
	return text[i:end]
}

// wordRuneBefore reports whether the character ending at s[i-1] is a
// letter, a digit or a combining mark: then s[i] does not start a word.
func wordRuneBefore(s string, i int) bool {
	if c := s[i-1]; c < utf8.RuneSelf {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// wordRuneAt reports whether the character starting at s[i] is a letter,
// a digit or a combining mark: then s[:i] does not end a word.
func wordRuneAt(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	if c := s[i]; c < utf8.RuneSelf {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
