package contextbuf

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseError reports that a text is not a unified diff this package
// understands (the gateway answers 400).
type ParseError struct {
	Line   int // 1-based line of the diff text
	Reason string
}

// Error implements error.
func (e *ParseError) Error() string {
	return fmt.Sprintf("not a valid unified diff: line %d: %s", e.Line, e.Reason)
}

// ApplyError reports that a well-formed diff does not apply to the files
// it is applied to (the gateway answers 409 with this message).
type ApplyError struct {
	File string // path of the file
	// Hunk is the 1-based hunk number within that file; 0 when the
	// problem is the file itself (patching a missing file, creating an
	// existing one, deleting one whose content differs, ...).
	Hunk int
	// Line is the line of the target file where the hunk was expected
	// (0 when not applicable).
	Line   int
	Reason string
	// Header is the hunk's "@@ -l,n +l,n @@" line, without any section
	// heading after it ("" when Hunk is 0).
	Header string
}

// Error implements error, e.g.
// `src/a.go: hunk 2 (@@ -10,7 +10,8 @@) does not apply at line 10: context does not match: ...`.
func (e *ApplyError) Error() string {
	if e.Hunk <= 0 {
		return e.File + ": " + e.Reason
	}
	var sb strings.Builder
	sb.WriteString(e.File)
	sb.WriteString(": hunk ")
	sb.WriteString(strconv.Itoa(e.Hunk))
	if e.Header != "" {
		sb.WriteString(" (")
		sb.WriteString(e.Header)
		sb.WriteString(")")
	}
	sb.WriteString(" does not apply")
	if e.Line > 0 {
		sb.WriteString(" at line ")
		sb.WriteString(strconv.Itoa(e.Line))
	}
	sb.WriteString(": ")
	sb.WriteString(e.Reason)
	return sb.String()
}

// Apply applies a unified diff to base and returns the new snapshot.
//
// The diff may hold any number of files, in git style (`git diff`) or as
// plain `diff -u` / `diff -ruN` output. Understood: "--- "/"+++ " name
// lines (a tab and a timestamp after the name are ignored; C-quoted names
// are unquoted), /dev/null for created and deleted files, git's
// "new file mode", "deleted file mode", "rename from/to" and
// "copy from/to", and "\ No newline at end of file". "index" and other
// extended header lines are ignored, as is text before, between and after
// the file sections (commit messages, "Only in" lines, "-- " signatures).
// A diff whose lines all end in CRLF is read as if they ended in LF.
// An empty (or all blank) diff changes nothing.
//
// File names: the "a/" and "b/" prefixes are removed only when both
// sides of a header carry them: in a git section when its "diff --git"
// line reads "a/... b/..."; in a plain section when the "---" name starts
// with "a/" and the "+++" name with "b/". A plain section whose names
// differ only in their first element ("old/x" and "new/x", as from
// `diff -ruN old new`) loses that element. In a plain section with
// /dev/null on one side, the other name loses its prefix when the
// diff's other plain sections show the a/ b/ convention (and none shows
// names without it); otherwise it is taken as written. Other differing
// plain names patch the first of the two that exists (the "---" one
// first). A plain section is a creation when the file does not exist and
// all its hunks only add lines (as `diff -N` writes them), and a
// deletion when the result is empty and the "+++" timestamp is the Unix
// epoch.
//
// A hunk applies at its stated line moved by the offset at which the
// previous hunk of the file applied, else at the nearest offset where its
// context and removed lines match exactly (like `patch` without fuzz or
// `git apply`). A hunk with less leading than trailing context must match
// at the start of the file, one with less trailing than leading context
// at its end. Hunk line counts must agree with the header. The search
// is bounded (20 million line comparisons per file), so no diff can make
// Apply quadratic; past that the hunk does not apply.
//
// base is not modified. Apply is atomic: on error it returns nil and an
// error, a *ParseError when the text is not a diff (or names an invalid
// path) and an *ApplyError when it does not apply.
func Apply(base Files, diff string) (Files, error) {
	patches, err := parseDiff(diff)
	if err != nil {
		return nil, err
	}
	w := newWorkset(base)
	if err := w.applyAll(patches); err != nil {
		return nil, err
	}
	out := make(Files, len(base)+len(w.over))
	for p, c := range base {
		out[p] = c
	}
	for p, c := range w.over {
		if c == nil {
			delete(out, p)
		} else {
			out[p] = *c
		}
	}
	return out, nil
}

// ---------------------------------------------------------------------
// Parsing

// hunk is one parsed "@@" section.
type hunk struct {
	header                                 string // "@@ -l,n +l,n @@"
	line                                   int    // diff line of the header
	oldStart, oldCount, newStart, newCount int
	old                                    []string // context and removed lines, each with "\n" unless marked
	oldCtx                                 []bool   // old[i] is a context line
	new                                    []string // context and added lines
	leading, trailing                      int      // context lines before the first and after the last change
}

// pos is the 0-based index of the first old line (for an empty old side:
// of the line the new lines go before).
func (h *hunk) pos() int {
	if h.oldCount == 0 {
		return h.oldStart
	}
	return h.oldStart - 1
}

// filePatch is one file section of a diff.
type filePatch struct {
	line int  // diff line where the section starts
	git  bool // "diff --git" section

	// Raw names as written, and their lines.
	rawOld, rawNew   string
	oldLine, newLine int
	hasNames         bool // "---"/"+++" lines seen
	gitA, gitB       string
	gitOK            bool // gitA and gitB could be told apart
	prefixed         bool // git: the header uses a/ b/
	oldEpoch         bool
	newEpoch         bool

	isNew, isDelete, isRename, isCopy bool
	renameFrom, renameTo              string
	fromLine, toLine                  int

	hunks []*hunk

	// Resolved names; "" stands for /dev/null (oldNull, newNull).
	old, new         string
	oldNull, newNull bool
	alt              bool // plain section whose two names differ: patch whichever exists
}

// dline is one line of the diff text.
type dline struct {
	s  string // without its line break (and without "\r" in a CRLF diff)
	sn string // s plus "\n"
}

func splitDiff(text string) []dline {
	if text == "" {
		return nil
	}
	crlf := strings.Contains(text, "\n")
	for rest := text; crlf; {
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if i == 0 || rest[i-1] != '\r' {
			crlf = false
		}
		rest = rest[i+1:]
	}
	n := strings.Count(text, "\n") + 1
	lines := make([]dline, 0, n)
	for len(text) > 0 {
		i := strings.IndexByte(text, '\n')
		if i < 0 {
			s := text
			if crlf {
				s = strings.TrimSuffix(s, "\r")
			}
			lines = append(lines, dline{s: s, sn: s + "\n"})
			break
		}
		if crlf {
			s := text[:i-1]
			lines = append(lines, dline{s: s, sn: s + "\n"})
		} else {
			lines = append(lines, dline{s: text[:i], sn: text[:i+1]})
		}
		text = text[i+1:]
	}
	return lines
}

// hdr is a header line without a trailing "\r".
func hdr(s string) string { return strings.TrimSuffix(s, "\r") }

func perr(line int, format string, a ...any) *ParseError {
	return &ParseError{Line: line, Reason: fmt.Sprintf(format, a...)}
}

func parseDiff(text string) ([]*filePatch, error) {
	lines := splitDiff(text)
	var patches []*filePatch
	firstText := 0
	for i := 0; i < len(lines); {
		l := hdr(lines[i].s)
		switch {
		case strings.HasPrefix(l, "diff --git "):
			fp, next, err := parseGitSection(lines, i)
			if err != nil {
				return nil, err
			}
			patches = append(patches, fp)
			i = next
		case strings.HasPrefix(l, "--- ") && i+1 < len(lines) && strings.HasPrefix(hdr(lines[i+1].s), "+++ "):
			fp := &filePatch{line: i + 1}
			if err := parseNames(fp, lines, i); err != nil {
				return nil, err
			}
			next, err := parseHunks(fp, lines, i+2)
			if err != nil {
				return nil, err
			}
			patches = append(patches, fp)
			i = next
		case strings.HasPrefix(l, "@@"):
			return nil, perr(i+1, "hunk header outside a file section (no \"---\" and \"+++\" lines before it)")
		case strings.HasPrefix(l, "Binary files ") || l == "GIT binary patch":
			return nil, perr(i+1, "binary diffs are not supported")
		default:
			if firstText == 0 && strings.TrimSpace(l) != "" {
				firstText = i + 1
			}
			i++
		}
	}
	if len(patches) == 0 && firstText > 0 {
		return nil, perr(firstText, "no file header (\"diff --git\", or \"---\" and \"+++\" lines): not a unified diff")
	}
	if err := resolveNames(patches); err != nil {
		return nil, err
	}
	return patches, nil
}

// gitNameHeaders are git's extended header lines that name a file of a
// rename or copy: the old name (to: false) or the new one.
var gitNameHeaders = []struct {
	prefix   string
	copy, to bool
}{
	{"rename from ", false, false}, {"rename old ", false, false},
	{"rename to ", false, true}, {"rename new ", false, true},
	{"copy from ", true, false}, {"copy to ", true, true},
}

// nameHeader reads line l (at lineNo) when it is one of gitNameHeaders.
func (fp *filePatch) nameHeader(l string, lineNo int) error {
	for _, h := range gitNameHeaders {
		rest, ok := strings.CutPrefix(l, h.prefix)
		if !ok {
			continue
		}
		name, err := headerName(rest, lineNo)
		if h.copy {
			fp.isCopy = true
		} else {
			fp.isRename = true
		}
		if h.to {
			fp.renameTo, fp.toLine = name, lineNo
		} else {
			fp.renameFrom, fp.fromLine = name, lineNo
		}
		return err
	}
	return nil
}

func parseGitSection(lines []dline, i int) (*filePatch, int, error) {
	fp := &filePatch{line: i + 1, git: true}
	rest := hdr(lines[i].s)[len("diff --git "):]
	a, b, ok, bad := splitGitNames(rest)
	if bad {
		return nil, 0, perr(i+1, "badly quoted file name in \"diff --git\" line")
	}
	fp.gitA, fp.gitB, fp.gitOK = a, b, ok
	if ok {
		fp.prefixed = strings.HasPrefix(a, "a/") && strings.HasPrefix(b, "b/")
	} else {
		fp.prefixed = (strings.HasPrefix(rest, "a/") || strings.HasPrefix(rest, `"a/`)) &&
			(strings.Contains(rest, " b/") || strings.Contains(rest, ` "b/`))
	}
	i++
	for ; i < len(lines); i++ {
		l := hdr(lines[i].s)
		if strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "diff ") || strings.HasPrefix(l, "@@") {
			break
		}
		switch {
		case strings.HasPrefix(l, "new file mode"):
			fp.isNew = true
		case strings.HasPrefix(l, "deleted file mode"):
			fp.isDelete = true
		case strings.HasPrefix(l, "Binary files ") || l == "GIT binary patch":
			return nil, 0, perr(i+1, "binary diffs are not supported")
		default:
			if err := fp.nameHeader(l, i+1); err != nil {
				return nil, 0, err
			}
		}
	}
	if fp.isRename && fp.isCopy {
		return nil, 0, perr(fp.line, "a file section cannot both rename and copy")
	}
	if i < len(lines) {
		l := hdr(lines[i].s)
		if strings.HasPrefix(l, "@@") {
			return nil, 0, perr(i+1, "hunk without \"---\" and \"+++\" lines before it")
		}
		if strings.HasPrefix(l, "--- ") {
			if i+1 >= len(lines) || !strings.HasPrefix(hdr(lines[i+1].s), "+++ ") {
				return nil, 0, perr(i+1, "\"---\" line not followed by a \"+++\" line")
			}
			if err := parseNames(fp, lines, i); err != nil {
				return nil, 0, err
			}
			next, err := parseHunks(fp, lines, i+2)
			if err != nil {
				return nil, 0, err
			}
			return fp, next, nil
		}
	}
	return fp, i, nil
}

// parseNames reads the "---" line at i and the "+++" line after it.
func parseNames(fp *filePatch, lines []dline, i int) error {
	var err error
	var ts string
	fp.rawOld, ts, err = nameAndTime(hdr(lines[i].s)[4:], i+1)
	if err != nil {
		return err
	}
	fp.oldEpoch = isEpoch(ts)
	fp.rawNew, ts, err = nameAndTime(hdr(lines[i+1].s)[4:], i+2)
	if err != nil {
		return err
	}
	fp.newEpoch = isEpoch(ts)
	fp.oldLine, fp.newLine = i+1, i+2
	fp.hasNames = true
	return nil
}

func isEpoch(ts string) bool {
	ts = strings.TrimSpace(ts)
	return strings.HasPrefix(ts, "1970-01-01") || strings.HasPrefix(ts, "1969-12-31")
}

// nameAndTime splits a "---"/"+++" name from the tab-separated timestamp.
func nameAndTime(s string, line int) (string, string, error) {
	if strings.HasPrefix(s, `"`) {
		v, n, ok := unquoteC(s)
		if !ok {
			return "", "", perr(line, "badly quoted file name")
		}
		return v, strings.TrimPrefix(s[n:], "\t"), nil
	}
	name, ts, _ := strings.Cut(s, "\t")
	return name, ts, nil
}

// headerName reads the name of a "rename from" (or similar) line.
func headerName(s string, line int) (string, error) {
	if strings.HasPrefix(s, `"`) {
		v, n, ok := unquoteC(s)
		if !ok || n != len(s) {
			return "", perr(line, "badly quoted file name")
		}
		return v, nil
	}
	return s, nil
}

// unquoteC reads a C-quoted string at the start of s (as git writes
// names) and returns it and the number of bytes it took.
func unquoteC(s string) (string, int, bool) {
	if len(s) < 2 || s[0] != '"' {
		return "", 0, false
	}
	var sb strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return sb.String(), i + 1, true
		case '\\':
			i++
			if i >= len(s) {
				return "", 0, false
			}
			switch e := s[i]; e {
			case 'a':
				sb.WriteByte('\a')
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'v':
				sb.WriteByte('\v')
			case '"', '\\':
				sb.WriteByte(e)
			default:
				if e < '0' || e > '3' || i+2 >= len(s) {
					return "", 0, false
				}
				d1, d2 := s[i+1], s[i+2]
				if d1 < '0' || d1 > '7' || d2 < '0' || d2 > '7' {
					return "", 0, false
				}
				sb.WriteByte((e-'0')<<6 | (d1-'0')<<3 | (d2 - '0'))
				i += 2
			}
		default:
			sb.WriteByte(c)
		}
	}
	return "", 0, false
}

// splitGitNames splits the names of a "diff --git" line. ok is false when
// they cannot be told apart (unquoted names with spaces that differ);
// bad when a quoted name is malformed.
func splitGitNames(rest string) (a, b string, ok, bad bool) {
	if strings.HasPrefix(rest, `"`) {
		a, n, good := unquoteC(rest)
		if !good {
			return "", "", false, true
		}
		r, found := strings.CutPrefix(rest[n:], " ")
		if !found {
			return "", "", false, true
		}
		if strings.HasPrefix(r, `"`) {
			b, m, good := unquoteC(r)
			if !good || m != len(r) {
				return "", "", false, true
			}
			return a, b, true, false
		}
		return a, r, true, false
	}
	if strings.HasSuffix(rest, `"`) {
		if i := strings.Index(rest, ` "`); i >= 0 {
			b, m, good := unquoteC(rest[i+1:])
			if good && i+1+m == len(rest) {
				return rest[:i], b, true, false
			}
		}
	}
	if strings.Count(rest, " ") == 1 {
		a, b, _ := strings.Cut(rest, " ")
		return a, b, true, false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] != ' ' {
			continue
		}
		a, b := rest[:i], rest[i+1:]
		if a == b || strings.HasPrefix(a, "a/") && strings.HasPrefix(b, "b/") && a[2:] == b[2:] {
			return a, b, true, false
		}
	}
	return "", "", false, false
}

// parseHunks reads the hunks starting at line i and returns the index of
// the first line after them.
func parseHunks(fp *filePatch, lines []dline, i int) (int, error) {
	var prev *hunk
	for i < len(lines) && strings.HasPrefix(lines[i].s, "@@") {
		h, err := parseHunkHeader(hdr(lines[i].s), i+1)
		if err != nil {
			return 0, err
		}
		i++
		oldLeft, newLeft := h.oldCount, h.newCount
		var lastOp byte
		oldDone, newDone := false, false
		seenChange := false
		ctxRun := 0
		for oldLeft > 0 || newLeft > 0 {
			if i >= len(lines) {
				return 0, perr(len(lines), "hunk %s is cut short: %d old and %d new lines missing at the end of the diff", h.header, oldLeft, newLeft)
			}
			ln := lines[i]
			op := byte(' ')
			if ln.s != "" {
				op = ln.s[0]
			}
			content := ""
			if ln.s != "" {
				content = ln.sn[1:]
			} else {
				content = "\n" // an empty context line whose space was stripped
			}
			switch op {
			case ' ':
				if oldLeft == 0 || newLeft == 0 {
					return 0, perr(i+1, "hunk %s has more context lines than its header counts", h.header)
				}
				if oldDone || newDone {
					return 0, perr(i+1, "line after a \"\\ No newline at end of file\" line in hunk %s", h.header)
				}
				h.old = append(h.old, content)
				h.oldCtx = append(h.oldCtx, true)
				h.new = append(h.new, content)
				oldLeft--
				newLeft--
				ctxRun++
			case '-':
				if oldLeft == 0 {
					return 0, perr(i+1, "hunk %s has more removed lines than its header counts", h.header)
				}
				if oldDone {
					return 0, perr(i+1, "line after a \"\\ No newline at end of file\" line in hunk %s", h.header)
				}
				h.old = append(h.old, content)
				h.oldCtx = append(h.oldCtx, false)
				oldLeft--
			case '+':
				if newLeft == 0 {
					return 0, perr(i+1, "hunk %s has more added lines than its header counts", h.header)
				}
				if newDone {
					return 0, perr(i+1, "line after a \"\\ No newline at end of file\" line in hunk %s", h.header)
				}
				h.new = append(h.new, content)
				newLeft--
			case '\\':
				if !markNoEOL(h, lastOp, &oldDone, &newDone) {
					return 0, perr(i+1, "\"\\ No newline at end of file\" without a line before it")
				}
				lastOp = 0
				i++
				continue
			default:
				return 0, perr(i+1, "unexpected line in hunk %s (%d old and %d new lines still expected): a hunk line starts with ' ', '-', '+' or '\\'", h.header, oldLeft, newLeft)
			}
			if op != ' ' {
				if !seenChange {
					h.leading = ctxRun
					seenChange = true
				}
				ctxRun = 0
			}
			lastOp = op
			i++
		}
		if i < len(lines) && strings.HasPrefix(lines[i].s, "\\") {
			if !markNoEOL(h, lastOp, &oldDone, &newDone) {
				return 0, perr(i+1, "\"\\ No newline at end of file\" without a line before it")
			}
			i++
		}
		if seenChange {
			h.trailing = ctxRun
		} else {
			h.leading, h.trailing = ctxRun, ctxRun
		}
		if prev != nil && h.pos() < prev.pos()+prev.oldCount {
			return 0, perr(h.line, "hunk %s overlaps or comes before the previous hunk %s", h.header, prev.header)
		}
		fp.hunks = append(fp.hunks, h)
		prev = h
	}
	if i < len(lines) {
		s := lines[i].s
		if s != "" {
			excess := false
			switch s[0] {
			case '+', ' ', '\\':
				excess = true
			case '-':
				header := strings.HasPrefix(s, "--- ") && i+1 < len(lines) && strings.HasPrefix(lines[i+1].s, "+++ ")
				excess = !header && hdr(s) != "-- " && hdr(s) != "---"
			}
			if excess && prev != nil {
				return 0, perr(i+1, "line after the end of hunk %s: the hunk has more lines than its header counts", prev.header)
			}
			if excess {
				return 0, perr(i+1, "hunk line without a hunk header")
			}
		}
	}
	return i, nil
}

// markNoEOL applies a "\ No newline at end of file" line to the line
// before it (of kind lastOp).
func markNoEOL(h *hunk, lastOp byte, oldDone, newDone *bool) bool {
	switch lastOp {
	case ' ':
		h.old[len(h.old)-1] = strings.TrimSuffix(h.old[len(h.old)-1], "\n")
		h.new[len(h.new)-1] = strings.TrimSuffix(h.new[len(h.new)-1], "\n")
		*oldDone, *newDone = true, true
	case '-':
		h.old[len(h.old)-1] = strings.TrimSuffix(h.old[len(h.old)-1], "\n")
		*oldDone = true
	case '+':
		h.new[len(h.new)-1] = strings.TrimSuffix(h.new[len(h.new)-1], "\n")
		*newDone = true
	default:
		return false
	}
	return true
}

func parseHunkHeader(l string, line int) (*hunk, error) {
	bad := func() error {
		return perr(line, "malformed hunk header %q (want \"@@ -l,n +l,n @@\")", truncate(l, 80))
	}
	rest, ok := strings.CutPrefix(l, "@@ -")
	if !ok {
		return nil, bad()
	}
	oldR, rest, ok := strings.Cut(rest, " +")
	if !ok {
		return nil, bad()
	}
	newR, tail, ok := strings.Cut(rest, " @@")
	if !ok {
		return nil, bad()
	}
	h := &hunk{header: l[:len(l)-len(tail)], line: line}
	if h.oldStart, h.oldCount, ok = parseRange(oldR); !ok {
		return nil, bad()
	}
	if h.newStart, h.newCount, ok = parseRange(newR); !ok {
		return nil, bad()
	}
	if h.oldCount > 0 && h.oldStart == 0 || h.newCount > 0 && h.newStart == 0 {
		return nil, perr(line, "hunk header %s: line numbers start at 1", h.header)
	}
	return h, nil
}

func parseRange(s string) (start, count int, ok bool) {
	a, b, has := strings.Cut(s, ",")
	if start, ok = parseNum(a); !ok {
		return 0, 0, false
	}
	count = 1
	if has {
		if count, ok = parseNum(b); !ok {
			return 0, 0, false
		}
	}
	return start, count, true
}

// parseNum reads 1 to 9 decimal digits.
func parseNum(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// resolveNames turns the raw names of each section into the paths it
// reads and writes, and checks them.
func resolveNames(patches []*filePatch) error {
	// Diff-wide a/ b/ evidence, for plain sections with /dev/null.
	anyPrefixed, anyBare := false, false
	for _, fp := range patches {
		if fp.git {
			if fp.prefixed {
				anyPrefixed = true
			}
			continue
		}
		if !fp.hasNames || fp.rawOld == "/dev/null" || fp.rawNew == "/dev/null" {
			continue
		}
		if strings.HasPrefix(fp.rawOld, "a/") && strings.HasPrefix(fp.rawNew, "b/") {
			anyPrefixed = true
		} else {
			anyBare = true
		}
	}
	nullStrip := anyPrefixed && !anyBare

	for _, fp := range patches {
		var err error
		if fp.git {
			err = resolveGit(fp)
		} else {
			err = resolvePlain(fp, nullStrip)
		}
		if err != nil {
			return err
		}
		// Every name that is not /dev/null must be a valid path (an empty
		// name is not /dev/null).
		if !fp.oldNull {
			if r := checkPath(fp.old); r != "" {
				return perr(fp.nameLine(true), "%s", r)
			}
		}
		if !fp.newNull {
			if r := checkPath(fp.new); r != "" {
				return perr(fp.nameLine(false), "%s", r)
			}
		}
	}
	return nil
}

func (fp *filePatch) nameLine(old bool) int {
	switch {
	case (fp.isRename || fp.isCopy) && old && fp.fromLine > 0:
		return fp.fromLine
	case (fp.isRename || fp.isCopy) && !old && fp.toLine > 0:
		return fp.toLine
	case fp.hasNames && old:
		return fp.oldLine
	case fp.hasNames:
		return fp.newLine
	}
	return fp.line
}

func resolveGit(fp *filePatch) error {
	strip := func(name, prefix string) string {
		if fp.prefixed {
			return strings.TrimPrefix(name, prefix)
		}
		return name
	}
	switch {
	case fp.isRename || fp.isCopy:
		if fp.renameFrom == "" || fp.renameTo == "" {
			return perr(fp.line, "rename or copy without both its \"from\" and \"to\" lines")
		}
		if fp.isNew || fp.isDelete {
			return perr(fp.line, "a rename or copy cannot also create or delete the file")
		}
		fp.old, fp.new = fp.renameFrom, fp.renameTo
		return nil
	case fp.hasNames:
		fp.oldNull, fp.newNull = fp.rawOld == "/dev/null", fp.rawNew == "/dev/null"
		if !fp.oldNull {
			fp.old = strip(fp.rawOld, "a/")
		}
		if !fp.newNull {
			fp.new = strip(fp.rawNew, "b/")
		}
		if fp.isNew && !fp.oldNull || fp.isDelete && !fp.newNull {
			return perr(fp.oldLine, "\"new file\" or \"deleted file\" header disagrees with the \"---\"/\"+++\" names")
		}
	case fp.gitOK:
		fp.old, fp.new = strip(fp.gitA, "a/"), strip(fp.gitB, "b/")
		if fp.isNew {
			fp.old, fp.oldNull = "", true
		}
		if fp.isDelete {
			fp.new, fp.newNull = "", true
		}
	default:
		return perr(fp.line, "cannot tell the file names apart in the \"diff --git\" line")
	}
	if fp.isNew && fp.isDelete || fp.oldNull && fp.newNull {
		return perr(fp.line, "a file section cannot both create and delete its file")
	}
	if !fp.oldNull && !fp.newNull && fp.old != fp.new {
		return perr(fp.line, "file names differ (%q and %q) without a rename or copy header", fp.old, fp.new)
	}
	return nil
}

func resolvePlain(fp *filePatch, nullStrip bool) error {
	o, n := fp.rawOld, fp.rawNew
	switch {
	case o == "/dev/null" && n == "/dev/null":
		return perr(fp.oldLine, "both names are /dev/null")
	case o == "/dev/null":
		if nullStrip {
			n = strings.TrimPrefix(n, "b/")
		}
		fp.new, fp.oldNull = n, true
	case n == "/dev/null":
		if nullStrip {
			o = strings.TrimPrefix(o, "a/")
		}
		fp.old, fp.newNull = o, true
	default:
		if o != n && strings.HasPrefix(o, "a/") && strings.HasPrefix(n, "b/") {
			o, n = o[2:], n[2:]
		}
		if o != n {
			i, j := strings.IndexByte(o, '/'), strings.IndexByte(n, '/')
			if i > 0 && j > 0 && o[i+1:] == n[j+1:] {
				o, n = o[i+1:], n[j+1:]
			}
		}
		fp.old, fp.new = o, n
		fp.alt = o != n
	}
	return nil
}

// ---------------------------------------------------------------------
// Applying

// workset is base plus the changes made so far (nil: deleted).
type workset struct {
	base Files
	over map[string]*string
}

func newWorkset(base Files) *workset {
	return &workset{base: base, over: map[string]*string{}}
}

func (w *workset) get(p string) (string, bool) {
	if c, ok := w.over[p]; ok {
		if c == nil {
			return "", false
		}
		return *c, true
	}
	c, ok := w.base[p]
	return c, ok
}

func (w *workset) put(p, c string) { w.over[p] = &c }
func (w *workset) del(p string)    { w.over[p] = nil }

func (w *workset) applyAll(patches []*filePatch) error {
	for _, fp := range patches {
		if err := w.apply(fp); err != nil {
			return err
		}
	}
	return nil
}

func onlyAdds(hunks []*hunk) bool {
	if len(hunks) == 0 {
		return false
	}
	for _, h := range hunks {
		if h.oldCount != 0 {
			return false
		}
	}
	return true
}

func (w *workset) apply(fp *filePatch) error {
	fileErr := func(p, format string, a ...any) error {
		return &ApplyError{File: p, Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case fp.oldNull: // creation
		if _, ok := w.get(fp.new); ok {
			return fileErr(fp.new, "cannot create the file: it already exists")
		}
		c, err := applyHunks(fp.new, "", fp.hunks)
		if err != nil {
			return err
		}
		w.put(fp.new, c)
	case fp.newNull: // deletion
		c, ok := w.get(fp.old)
		if !ok {
			return fileErr(fp.old, "cannot delete the file: no such file")
		}
		r, err := applyHunks(fp.old, c, fp.hunks)
		if err != nil {
			return err
		}
		if r != "" {
			return fileErr(fp.old, "cannot delete the file: its content differs from what the diff removes")
		}
		w.del(fp.old)
	case fp.isRename || fp.isCopy:
		verb := "rename"
		if fp.isCopy {
			verb = "copy"
		}
		c, ok := w.get(fp.old)
		if !ok {
			return fileErr(fp.old, "cannot %s the file to %s: no such file", verb, fp.new)
		}
		if fp.old != fp.new {
			if _, ok := w.get(fp.new); ok {
				return fileErr(fp.new, "cannot %s %s to this path: the file already exists", verb, fp.old)
			}
		}
		r, err := applyHunks(fp.new, c, fp.hunks)
		if err != nil {
			return err
		}
		if fp.isRename {
			w.del(fp.old)
		}
		w.put(fp.new, r)
	default:
		target := fp.old
		if fp.alt {
			if _, ok := w.get(fp.old); !ok {
				if _, ok := w.get(fp.new); ok {
					target = fp.new
				}
			}
		}
		c, ok := w.get(target)
		if !ok {
			if fp.git || !onlyAdds(fp.hunks) {
				return fileErr(target, "cannot patch the file: no such file")
			}
			if fp.alt {
				target = fp.new
			}
			// diff -N: a file absent on the old side shows as empty.
			r, err := applyHunks(target, "", fp.hunks)
			if err != nil {
				return err
			}
			w.put(target, r)
			return nil
		}
		if !fp.git && fp.oldEpoch && onlyAdds(fp.hunks) && c != "" {
			return fileErr(target, "cannot create the file: it already exists")
		}
		if len(fp.hunks) == 0 {
			return nil
		}
		r, err := applyHunks(target, c, fp.hunks)
		if err != nil {
			return err
		}
		if r == "" && !fp.git && fp.newEpoch {
			w.del(target)
		} else {
			w.put(target, r)
		}
	}
	return nil
}

// applyHunks applies the hunks of one file to its content.
func applyHunks(file, content string, hunks []*hunk) (string, error) {
	if len(hunks) == 0 {
		return content, nil
	}
	lines := splitLines(content)
	out := make([]string, 0, len(lines)+16)
	ends := make([]int, len(hunks))
	cursor, offset := 0, 0
	budget := searchBudget
	for hi, h := range hunks {
		pos, reason := locate(lines, h, cursor, offset, &budget)
		if pos < 0 {
			return "", &ApplyError{File: file, Hunk: hi + 1, Line: h.pos() + 1, Header: h.header, Reason: reason}
		}
		out = append(out, lines[cursor:pos]...)
		out = append(out, h.new...)
		ends[hi] = len(out)
		cursor = pos + len(h.old)
		offset = pos - h.pos()
	}
	out = append(out, lines[cursor:]...)
	for k := 0; k < len(out)-1; k++ {
		if strings.HasSuffix(out[k], "\n") {
			continue
		}
		hi := len(hunks) - 1
		for x := range hunks {
			if ends[x] > k {
				hi = x
				break
			}
		}
		h := hunks[hi]
		return "", &ApplyError{File: file, Hunk: hi + 1, Line: h.pos() + 1, Header: h.header,
			Reason: "a line without a newline (\"\\ No newline at end of file\") would not be the last line of the file"}
	}
	var n int
	for _, l := range out {
		n += len(l)
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, l := range out {
		sb.WriteString(l)
	}
	return sb.String(), nil
}

// locate finds where hunk h applies in lines, at or after minPos, or
// returns -1 and why it does not apply.
//
// budget bounds the line comparisons of the search (shared by the hunks of
// a file), so that no diff makes Apply quadratic.
func locate(lines []string, h *hunk, minPos, offset int, budget *int) (int, string) {
	n := len(h.old)
	stated := h.pos()
	if n == 0 {
		for _, p := range [2]int{stated + offset, stated} {
			if p >= minPos && p <= len(lines) {
				return p, ""
			}
		}
		if stated > len(lines) {
			return -1, fmt.Sprintf("the file has only %d lines", len(lines))
		}
		return -1, "the position is inside the previous hunk"
	}
	maxPos := len(lines) - n
	if h.leading != h.trailing {
		p, where := 0, "start"
		if h.trailing < h.leading {
			p, where = maxPos, "end"
		}
		if p >= minPos && p >= 0 && matchAt(lines, h, p, budget) {
			return p, ""
		}
		if p < 0 {
			p = 0
		}
		return -1, mismatch(lines, h, p) + " (a hunk with less " + map[string]string{"start": "leading", "end": "trailing"}[where] +
			" context must match at the " + where + " of the file)"
	}
	if maxPos >= minPos {
		expected := min(max(stated+offset, minPos), maxPos)
		for d := 0; expected-d >= minPos || expected+d <= maxPos; d++ {
			if p := expected - d; p >= minPos && matchAt(lines, h, p, budget) {
				return p, ""
			}
			if p := expected + d; d > 0 && p <= maxPos && matchAt(lines, h, p, budget) {
				return p, ""
			}
			if *budget <= 0 {
				return -1, mismatch(lines, h, max(stated, 0)) + " (and the search for another position was abandoned: too many candidates)"
			}
		}
	}
	return -1, mismatch(lines, h, max(stated, 0))
}

// searchBudget is how many line comparisons the hunk search of one file
// may make (tens of milliseconds); legitimate searches stay far below.
const searchBudget = 20_000_000

func matchAt(lines []string, h *hunk, p int, budget *int) bool {
	if p < 0 || p+len(h.old) > len(lines) {
		return false
	}
	for k, want := range h.old {
		*budget--
		if lines[p+k] != want {
			return false
		}
	}
	return true
}

// mismatch explains why h does not match at p.
func mismatch(lines []string, h *hunk, p int) string {
	for k, want := range h.old {
		li := p + k
		kind := "context does not match"
		if !h.oldCtx[k] {
			kind = "removed lines do not match"
		}
		if li >= len(lines) {
			return fmt.Sprintf("%s: the file has only %d lines, the hunk needs %d from line %d", kind, len(lines), len(h.old), p+1)
		}
		if lines[li] != want {
			return fmt.Sprintf("%s: line %d is %s, the diff expects %s", kind, li+1, showLine(lines[li]), showLine(want))
		}
	}
	return "its lines match only where the previous hunk already applied"
}

func showLine(l string) string { return strconv.Quote(truncate(l, 80)) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
