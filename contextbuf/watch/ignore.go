package watch

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Ignorer decides which paths of a tree are left out, with the semantics
// of git's ignore files: the patterns of a .gitignore apply to the paths
// below its directory, a deeper .gitignore takes precedence over a
// shallower one, and within one set of patterns the last matching pattern
// decides ("!" patterns re-include). A path whose parent directory is
// ignored is ignored whatever its own patterns say. Any path component
// named ".git" is always ignored.
//
// Supported syntax: blank lines and "#" comments, trailing spaces (unless
// escaped with "\"), "!" negation, "\#" and "\!" for a literal first
// character, a trailing "/" (directories only), a leading or middle "/"
// (anchored to the .gitignore's directory; otherwise the pattern matches a
// name at any depth), "*", "?", "[...]" (with "!" or "^" negation, ranges
// and [:class:] names), "\" escapes, and "**" as a whole path component
// ("**/x", "x/**", "a/**/b"). Matching is case-sensitive.
//
// The zero value ignores only ".git". An Ignorer is not safe for concurrent
// modification; [Ignorer.Clone] makes an independent copy.
type Ignorer struct {
	byDir map[string][]ignoreRule // .gitignore patterns by directory ("" = root)
	extra []ignoreRule            // patterns given by the user, relative to the root
}

// ignoreRule is one parsed pattern line.
type ignoreRule struct {
	segs    []string // path components of the pattern; "**" is the globstar
	negate  bool     // "!pattern": re-include
	dirOnly bool     // "pattern/": matches directories only
}

// NewIgnorer returns an Ignorer with extra gitignore-style patterns
// (e.g. from --ignore) anchored at the root of the tree. They take
// precedence over every .gitignore file, so "!pattern" here can re-include
// a file a .gitignore ignores (unless its directory is ignored).
func NewIgnorer(patterns ...string) *Ignorer {
	ig := &Ignorer{}
	for _, p := range patterns {
		if r, ok := parseIgnoreLine(p); ok {
			ig.extra = append(ig.extra, r)
		}
	}
	return ig
}

// AddGitignore adds the patterns of the .gitignore file found in dir (a
// slash-separated path relative to the root; "" or "." for the root
// itself). Adding a second file for the same directory appends to it.
func (ig *Ignorer) AddGitignore(dir, content string) {
	dir = cleanRel(dir)
	for _, line := range strings.Split(content, "\n") {
		r, ok := parseIgnoreLine(line)
		if !ok {
			continue
		}
		if ig.byDir == nil {
			ig.byDir = map[string][]ignoreRule{}
		}
		ig.byDir[dir] = append(ig.byDir[dir], r)
	}
}

// Clone returns a copy of ig that can be extended without changing ig.
// Clone of nil is an empty Ignorer.
func (ig *Ignorer) Clone() *Ignorer {
	c := &Ignorer{}
	if ig == nil {
		return c
	}
	c.extra = append([]ignoreRule(nil), ig.extra...)
	if ig.byDir != nil {
		c.byDir = make(map[string][]ignoreRule, len(ig.byDir))
		for d, rs := range ig.byDir {
			c.byDir[d] = append([]ignoreRule(nil), rs...)
		}
	}
	return c
}

// Ignored reports whether the path rel (slash-separated, relative to the
// root) is left out: because a pattern matches it or because one of its
// parent directories is ignored. isDir says whether rel is a directory
// (for patterns ending in "/").
func (ig *Ignorer) Ignored(rel string, isDir bool) bool {
	rel = cleanRel(rel)
	if rel == "" {
		return false
	}
	segs := strings.Split(rel, "/")
	for i := 1; i < len(segs); i++ {
		if ig.matchSegs(segs[:i], true) {
			return true
		}
	}
	return ig.matchSegs(segs, isDir)
}

// Match reports whether a pattern ignores rel itself, without looking at
// its parent directories (a tree walk that does not descend into ignored
// directories needs no more).
func (ig *Ignorer) Match(rel string, isDir bool) bool {
	rel = cleanRel(rel)
	if rel == "" {
		return false
	}
	return ig.matchSegs(strings.Split(rel, "/"), isDir)
}

func (ig *Ignorer) matchSegs(segs []string, isDir bool) bool {
	if segs[len(segs)-1] == ".git" {
		return true
	}
	if ig == nil {
		return false
	}
	ignored := false
	// .gitignore files from the root down to the path's own directory:
	// deeper files are consulted later, so they win.
	if ig.byDir != nil {
		for d := 0; d < len(segs); d++ {
			rules := ig.byDir[strings.Join(segs[:d], "/")]
			for _, r := range rules {
				if r.match(segs[d:], isDir) {
					ignored = !r.negate
				}
			}
		}
	}
	for _, r := range ig.extra {
		if r.match(segs, isDir) {
			ignored = !r.negate
		}
	}
	return ignored
}

// cleanRel normalises a relative slash path: "" for the root, no leading
// "./" or "/", no trailing "/".
func cleanRel(rel string) string {
	if rel == "" {
		return ""
	}
	rel = path.Clean("/" + rel)
	return strings.TrimPrefix(rel, "/")
}

// parseIgnoreLine parses one line of a .gitignore file; ok is false for
// blank lines and comments.
func parseIgnoreLine(line string) (ignoreRule, bool) {
	var r ignoreRule
	line = strings.TrimSuffix(line, "\r")
	line = trimTrailingSpaces(line)
	if line == "" || line[0] == '#' {
		return r, false
	}
	if line[0] == '!' {
		r.negate = true
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") && !strings.HasSuffix(line, `\/`) {
		r.dirOnly = true
		line = strings.TrimRight(line, "/")
	}
	if line == "" {
		return r, false
	}
	anchored := strings.Contains(line, "/")
	line = strings.TrimLeft(line, "/")
	if line == "" {
		return r, false
	}
	for _, s := range strings.Split(line, "/") {
		if s == "" { // "a//b" is "a/b"
			continue
		}
		r.segs = append(r.segs, s)
	}
	if !anchored {
		// A name without a slash matches at any depth.
		r.segs = append([]string{"**"}, r.segs...)
	}
	return r, true
}

// trimTrailingSpaces removes trailing spaces that are not escaped with a
// backslash.
func trimTrailingSpaces(s string) string {
	for strings.HasSuffix(s, " ") {
		body := s[:len(s)-1]
		// Count the backslashes right before the space.
		n := 0
		for n < len(body) && body[len(body)-1-n] == '\\' {
			n++
		}
		if n%2 == 1 {
			return s // "\ " : an escaped space stays
		}
		s = body
	}
	return s
}

// match reports whether the rule matches a path (as components relative
// to the rule's directory).
func (r ignoreRule) match(segs []string, isDir bool) bool {
	if r.dirOnly && !isDir {
		return false
	}
	return matchSegments(r.segs, segs)
}

// matchSegments matches pattern components against path components; a
// "**" component matches any number of components (at least one when it
// ends the pattern: "dir/**" matches what is inside dir, not dir). It runs
// in O(len(pat) × len(segs)) component matches, whatever the number of
// "**".
func matchSegments(pat, segs []string) bool {
	if len(pat) == 1 && pat[0] != "**" { // the common case: one name
		return len(segs) == 1 && globMatch(pat[0], segs[0])
	}
	// ok[s] is whether pat[p:] matches segs[s:], for p from the end down.
	ns := len(segs)
	ok := make([]bool, ns+1)
	next := make([]bool, ns+1)
	ok[ns] = true // the empty pattern matches only the empty path
	for p := len(pat) - 1; p >= 0; p-- {
		copy(next, ok) // next = pat[p+1:] results
		switch {
		case pat[p] == "**" && p == len(pat)-1:
			for s := 0; s <= ns; s++ {
				ok[s] = ns-s >= 1
			}
		case pat[p] == "**":
			ok[ns] = next[ns]
			for s := ns - 1; s >= 0; s-- {
				ok[s] = next[s] || ok[s+1]
			}
		default:
			ok[ns] = false
			for s := 0; s < ns; s++ {
				ok[s] = next[s+1] && globMatch(pat[p], segs[s])
			}
		}
	}
	return ok[0]
}

// globMatch matches one path component against one pattern component:
// "*" any run of characters, "?" one character, "[...]" a class, "\x" the
// character x.
func globMatch(pat, name string) bool {
	px, nx := 0, 0
	starP, starN := -1, -1
	for px < len(pat) || nx < len(name) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				for px < len(pat) && pat[px] == '*' {
					px++
				}
				starP, starN = px, nx
				continue
			case '?':
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					px++
					nx += w
					continue
				}
			case '[':
				if nx < len(name) {
					r, w := utf8.DecodeRuneInString(name[nx:])
					if ok, n, valid := matchClass(pat[px:], r); valid {
						if ok {
							px += n
							nx += w
							continue
						}
						break
					}
				}
				// An unterminated "[" is an ordinary character.
				if nx < len(name) && name[nx] == '[' {
					px++
					nx++
					continue
				}
			default:
				lit, lw := rune(c), 1
				if c == '\\' && px+1 < len(pat) {
					r, w := utf8.DecodeRuneInString(pat[px+1:])
					lit, lw = r, 1+w
				} else if c >= utf8.RuneSelf {
					lit, lw = utf8.DecodeRuneInString(pat[px:])
				}
				if nx < len(name) {
					r, w := utf8.DecodeRuneInString(name[nx:])
					if r == lit {
						px += lw
						nx += w
						continue
					}
				}
			}
		}
		// Mismatch: let the last "*" swallow one more character.
		if starP >= 0 && starN < len(name) {
			_, w := utf8.DecodeRuneInString(name[starN:])
			starN += w
			px, nx = starP, starN
			continue
		}
		return false
	}
	return true
}

// matchClass matches r against the bracket expression at the start of
// pat. It returns whether r matches, the length of the expression, and
// whether the expression is well formed (terminated by "]").
func matchClass(pat string, r rune) (matched bool, n int, valid bool) {
	i := 1 // past "["
	negate := false
	if i < len(pat) && (pat[i] == '!' || pat[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pat) {
		c := pat[i]
		if c == ']' && !first {
			return matched != negate, i + 1, true
		}
		first = false
		if c == '[' && i+1 < len(pat) && pat[i+1] == ':' {
			if end := strings.Index(pat[i+2:], ":]"); end >= 0 {
				name := pat[i+2 : i+2+end]
				if classMatches(name, r) {
					matched = true
				}
				i += 2 + end + 2
				continue
			}
		}
		lo, w := classChar(pat, i)
		if w == 0 {
			return false, 0, false
		}
		i += w
		hi := lo
		if i+1 < len(pat) && pat[i] == '-' && pat[i+1] != ']' {
			h, w2 := classChar(pat, i+1)
			if w2 == 0 {
				return false, 0, false
			}
			hi = h
			i += 1 + w2
		}
		if lo <= r && r <= hi {
			matched = true
		}
	}
	return false, 0, false
}

// classChar decodes one (possibly backslash-escaped) character of a
// bracket expression at pat[i:]; w is 0 at the end of the pattern.
func classChar(pat string, i int) (rune, int) {
	if i >= len(pat) {
		return 0, 0
	}
	if pat[i] == '\\' {
		if i+1 >= len(pat) {
			return 0, 0
		}
		r, w := utf8.DecodeRuneInString(pat[i+1:])
		return r, 1 + w
	}
	return utf8.DecodeRuneInString(pat[i:])
}

// classMatches implements the POSIX character class names of bracket
// expressions ([:alpha:] and friends). Unknown names match nothing.
func classMatches(name string, r rune) bool {
	switch name {
	case "alnum":
		return unicode.IsLetter(r) || unicode.IsDigit(r)
	case "alpha":
		return unicode.IsLetter(r)
	case "blank":
		return r == ' ' || r == '\t'
	case "cntrl":
		return unicode.IsControl(r)
	case "digit":
		return '0' <= r && r <= '9'
	case "graph":
		return unicode.IsGraphic(r) && !unicode.IsSpace(r)
	case "lower":
		return unicode.IsLower(r)
	case "print":
		return unicode.IsPrint(r)
	case "punct":
		return unicode.IsPunct(r) || unicode.IsSymbol(r)
	case "space":
		return unicode.IsSpace(r)
	case "upper":
		return unicode.IsUpper(r)
	case "xdigit":
		return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F'
	}
	return false
}
