package contextbuf

import (
	"sort"
	"strconv"
	"strings"
)

// Files is a snapshot: slash-separated relative path -> file content (text).
type Files map[string]string

// diffContext is the number of unchanged lines shown around each change.
const diffContext = 3

// Diff returns a git-style unified diff (3 lines of context) that turns
// old into new.
//
// Files come in sorted path order (a rename sorts under its new path).
// Each file starts with "diff --git a/P b/P" and, when it has hunks,
// "--- a/P" / "+++ b/P". A created file has "new file mode 100644" and
// "--- /dev/null"; a deleted one "deleted file mode 100644" and
// "+++ /dev/null" (an empty created or deleted file has no ---/+++ lines
// and no hunks, as git prints it). A file deleted while another, non-empty
// one with identical content is created is a rename ("similarity index
// 100%", "rename from X", "rename to Y", no hunks). Lines without a final
// newline get the "\ No newline at end of file" marker. Paths with
// control characters, '"' or '\' are C-quoted as git does.
//
// The line diff is Myers' O(ND) algorithm in linear space (minimal for
// edit distances up to a few thousand lines, then GNU diff's cut-off so a
// diff of two unrelated large files stays fast); hunks whose contexts
// overlap or touch are merged, as GNU diff -u does.
//
// Diff returns "" when old and new are equal.
func Diff(old, new Files) string {
	// Rename detection: deleted files keyed by content, non-empty only.
	var deleted []string
	for p := range old {
		if _, ok := new[p]; !ok {
			deleted = append(deleted, p)
		}
	}
	var created []string
	for p := range new {
		if _, ok := old[p]; !ok {
			created = append(created, p)
		}
	}
	sort.Strings(deleted)
	sort.Strings(created)
	renameFrom := map[string]string{} // new path -> old path
	renamed := map[string]bool{}      // old paths consumed by a rename
	if len(deleted) > 0 && len(created) > 0 {
		byContent := map[string][]string{}
		for _, p := range deleted {
			if c := old[p]; c != "" {
				byContent[c] = append(byContent[c], p)
			}
		}
		for _, p := range created {
			c := new[p]
			if c == "" {
				continue
			}
			if srcs := byContent[c]; len(srcs) > 0 {
				renameFrom[p] = srcs[0]
				renamed[srcs[0]] = true
				byContent[c] = srcs[1:]
			}
		}
	}

	paths := make([]string, 0, len(old)+len(new))
	for p := range old {
		paths = append(paths, p)
	}
	for p := range new {
		if _, ok := old[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)

	var sb strings.Builder
	for _, p := range paths {
		oc, inOld := old[p]
		nc, inNew := new[p]
		switch {
		case inOld && inNew:
			if oc != nc {
				writeGitHeader(&sb, p, p)
				sb.WriteString("--- ")
				sb.WriteString(quoteName("a/", p))
				sb.WriteString("\n+++ ")
				sb.WriteString(quoteName("b/", p))
				sb.WriteByte('\n')
				writeHunks(&sb, oc, nc)
			}
		case inNew:
			if src, ok := renameFrom[p]; ok {
				writeGitHeader(&sb, src, p)
				sb.WriteString("similarity index 100%\nrename from ")
				sb.WriteString(quoteName("", src))
				sb.WriteString("\nrename to ")
				sb.WriteString(quoteName("", p))
				sb.WriteByte('\n')
				continue
			}
			writeGitHeader(&sb, p, p)
			sb.WriteString("new file mode 100644\n")
			if nc != "" {
				sb.WriteString("--- /dev/null\n+++ ")
				sb.WriteString(quoteName("b/", p))
				sb.WriteByte('\n')
				writeHunks(&sb, "", nc)
			}
		default: // only in old
			if renamed[p] {
				continue
			}
			writeGitHeader(&sb, p, p)
			sb.WriteString("deleted file mode 100644\n")
			if oc != "" {
				sb.WriteString("--- ")
				sb.WriteString(quoteName("a/", p))
				sb.WriteString("\n+++ /dev/null\n")
				writeHunks(&sb, oc, "")
			}
		}
	}
	return sb.String()
}

func writeGitHeader(sb *strings.Builder, from, to string) {
	sb.WriteString("diff --git ")
	sb.WriteString(quoteName("a/", from))
	sb.WriteByte(' ')
	sb.WriteString(quoteName("b/", to))
	sb.WriteByte('\n')
}

// needsQuote reports whether git would C-quote the name (ignoring
// non-ASCII bytes, which are written as they are).
func needsQuote(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x20 || c == 0x7f || c == '"' || c == '\\' {
			return true
		}
	}
	return false
}

// quoteName returns prefix+p, C-quoted as a whole when p needs it.
func quoteName(prefix, p string) string {
	if !needsQuote(p) {
		return prefix + p
	}
	var sb strings.Builder
	sb.WriteByte('"')
	sb.WriteString(prefix)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\a':
			sb.WriteString(`\a`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\v':
			sb.WriteString(`\v`)
		default:
			if c < 0x20 || c == 0x7f {
				sb.WriteByte('\\')
				sb.WriteByte('0' + c>>6)
				sb.WriteByte('0' + (c>>3)&7)
				sb.WriteByte('0' + c&7)
			} else {
				sb.WriteByte(c)
			}
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// splitLines splits s into lines, each keeping its "\n" (the last one may
// lack it).
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	n := strings.Count(s, "\n")
	if s[len(s)-1] != '\n' {
		n++
	}
	lines := make([]string, 0, n)
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, s[:i+1])
		s = s[i+1:]
	}
	return lines
}

// edit is one change region: old lines [a0,a1) replaced by new lines [b0,b1).
type edit struct{ a0, a1, b0, b1 int }

// lineEdits returns the change regions turning a into b, in order.
func lineEdits(a, b []string) []edit {
	// Intern lines so the comparisons are integer ones.
	ids := make(map[string]int, len(a)+len(b))
	ai := make([]int, len(a))
	bi := make([]int, len(b))
	for i, l := range a {
		id, ok := ids[l]
		if !ok {
			id = len(ids)
			ids[l] = id
		}
		ai[i] = id
	}
	for i, l := range b {
		id, ok := ids[l]
		if !ok {
			id = len(ids)
			ids[l] = id
		}
		bi[i] = id
	}
	// Lines that occur on one side only are changes whatever the
	// alignment: leave them out of the search (the result is still
	// minimal), which makes diffs of unrelated texts cheap.
	inA := make([]bool, len(ids))
	inB := make([]bool, len(ids))
	for _, id := range ai {
		inA[id] = true
	}
	for _, id := range bi {
		inB[id] = true
	}
	delA := make([]bool, len(ai))
	insB := make([]bool, len(bi))
	var fa, fb []int // indices of the kept lines
	var ca, cb []int // their ids
	for i, id := range ai {
		if inB[id] {
			fa = append(fa, i)
			ca = append(ca, id)
		} else {
			delA[i] = true
		}
	}
	for j, id := range bi {
		if inA[id] {
			fb = append(fb, j)
			cb = append(cb, id)
		} else {
			insB[j] = true
		}
	}
	m := newMyers(ca, cb)
	m.compare(0, len(ca), 0, len(cb))
	for x, d := range m.delA {
		delA[fa[x]] = d
	}
	for y, d := range m.insB {
		insB[fb[y]] = d
	}

	var edits []edit
	n, k := len(ai), len(bi)
	i, j := 0, 0
	for i < n || j < k {
		if i < n && j < k && !delA[i] && !insB[j] {
			i++
			j++
			continue
		}
		a0, b0 := i, j
		for i < n && delA[i] {
			i++
		}
		for j < k && insB[j] {
			j++
		}
		if i == a0 && j == b0 {
			// Cannot happen with a consistent script; never loop.
			edits = append(edits, edit{a0, n, b0, k})
			break
		}
		edits = append(edits, edit{a0, i, b0, j})
	}
	return edits
}

// writeHunks writes the unified hunks turning oc into nc.
func writeHunks(sb *strings.Builder, oc, nc string) {
	a := splitLines(oc)
	b := splitLines(nc)
	edits := lineEdits(a, b)
	for s := 0; s < len(edits); {
		e := s
		for e+1 < len(edits) && edits[e+1].a0-edits[e].a1 <= 2*diffContext {
			e++
		}
		first, last := edits[s], edits[e]
		aStart := max(0, first.a0-diffContext)
		aEnd := min(len(a), last.a1+diffContext)
		bStart := first.b0 - (first.a0 - aStart)
		bEnd := last.b1 + (aEnd - last.a1)

		sb.WriteString("@@ -")
		writeRange(sb, aStart, aEnd-aStart)
		sb.WriteString(" +")
		writeRange(sb, bStart, bEnd-bStart)
		sb.WriteString(" @@\n")

		pos := aStart
		for x := s; x <= e; x++ {
			ed := edits[x]
			for ; pos < ed.a0; pos++ {
				writeLine(sb, ' ', a[pos])
			}
			for i := ed.a0; i < ed.a1; i++ {
				writeLine(sb, '-', a[i])
			}
			for j := ed.b0; j < ed.b1; j++ {
				writeLine(sb, '+', b[j])
			}
			pos = ed.a1
		}
		for ; pos < aEnd; pos++ {
			writeLine(sb, ' ', a[pos])
		}
		s = e + 1
	}
}

// writeRange writes a hunk range: "l,n", "l" when n is 1, and for an
// empty range the number of the line before it.
func writeRange(sb *strings.Builder, start, n int) {
	switch n {
	case 0:
		sb.WriteString(strconv.Itoa(start))
		sb.WriteString(",0")
	case 1:
		sb.WriteString(strconv.Itoa(start + 1))
	default:
		sb.WriteString(strconv.Itoa(start + 1))
		sb.WriteByte(',')
		sb.WriteString(strconv.Itoa(n))
	}
}

func writeLine(sb *strings.Builder, op byte, line string) {
	sb.WriteByte(op)
	sb.WriteString(line)
	if !strings.HasSuffix(line, "\n") {
		sb.WriteString("\n\\ No newline at end of file\n")
	}
}

// myers finds a shortest edit script with the linear-space divide and
// conquer form of Myers' algorithm, as GNU diff implements it (diag and
// compareseq in diffutils' analyze.c), without GNU's speed heuristics
// except the "too expensive" cut-off, which only matters for edit
// distances in the thousands.
type myers struct {
	a, b         []int
	delA, insB   []bool
	fd, bd       []int // indexed by diagonal + off
	off          int
	tooExpensive int
}

func newMyers(a, b []int) *myers {
	n := len(a) + len(b) + 3
	m := &myers{
		a: a, b: b,
		delA: make([]bool, len(a)),
		insB: make([]bool, len(b)),
		fd:   make([]int, n),
		bd:   make([]int, n),
		off:  len(b) + 1,
	}
	te := 1
	for d := len(a) + len(b) + 3; d != 0; d >>= 2 {
		te <<= 1
	}
	m.tooExpensive = max(4096, te)
	return m
}

// compare finds the edits between a[xoff:xlim] and b[yoff:ylim].
func (m *myers) compare(xoff, xlim, yoff, ylim int) {
	for {
		for xoff < xlim && yoff < ylim && m.a[xoff] == m.b[yoff] {
			xoff++
			yoff++
		}
		for xoff < xlim && yoff < ylim && m.a[xlim-1] == m.b[ylim-1] {
			xlim--
			ylim--
		}
		if xoff == xlim {
			for ; yoff < ylim; yoff++ {
				m.insB[yoff] = true
			}
			return
		}
		if yoff == ylim {
			for ; xoff < xlim; xoff++ {
				m.delA[xoff] = true
			}
			return
		}
		xmid, ymid := m.diag(xoff, xlim, yoff, ylim)
		// Recurse on the first part, loop on the second.
		m.compare(xoff, xmid, yoff, ymid)
		xoff, yoff = xmid, ymid
	}
}

// diag returns a point on a shortest edit path between a[xoff:xlim] and
// b[yoff:ylim], splitting the cost in halves.
func (m *myers) diag(xoff, xlim, yoff, ylim int) (int, int) {
	const maxInt = int(^uint(0) >> 1)
	fd, bd, off := m.fd, m.bd, m.off
	a, b := m.a, m.b
	dmin := xoff - ylim
	dmax := xlim - yoff
	fmid := xoff - yoff
	bmid := xlim - ylim
	fmin, fmax := fmid, fmid
	bmin, bmax := bmid, bmid
	odd := (fmid-bmid)&1 != 0

	fd[off+fmid] = xoff
	bd[off+bmid] = xlim

	for c := 1; ; c++ {
		// Extend the forward search by one edit in each diagonal.
		if fmin > dmin {
			fmin--
			fd[off+fmin-1] = -1
		} else {
			fmin++
		}
		if fmax < dmax {
			fmax++
			fd[off+fmax+1] = -1
		} else {
			fmax--
		}
		for d := fmax; d >= fmin; d -= 2 {
			tlo, thi := fd[off+d-1], fd[off+d+1]
			x0 := tlo + 1
			if tlo < thi {
				x0 = thi
			}
			x, y := x0, x0-d
			for x < xlim && y < ylim && a[x] == b[y] {
				x++
				y++
			}
			fd[off+d] = x
			if odd && bmin <= d && d <= bmax && bd[off+d] <= x {
				return x, y
			}
		}

		// And the backward search.
		if bmin > dmin {
			bmin--
			bd[off+bmin-1] = maxInt
		} else {
			bmin++
		}
		if bmax < dmax {
			bmax++
			bd[off+bmax+1] = maxInt
		} else {
			bmax--
		}
		for d := bmax; d >= bmin; d -= 2 {
			tlo, thi := bd[off+d-1], bd[off+d+1]
			x0 := thi - 1
			if tlo < thi {
				x0 = tlo
			}
			x, y := x0, x0-d
			for xoff < x && yoff < y && a[x-1] == b[y-1] {
				x--
				y--
			}
			bd[off+d] = x
			if !odd && fmin <= d && d <= fmax && x <= fd[off+d] {
				return x, y
			}
		}

		if c < m.tooExpensive {
			continue
		}
		// Too expensive: split at the best point reached so far.
		fxybest, fxbest := -1, 0
		for d := fmax; d >= fmin; d -= 2 {
			x := min(fd[off+d], xlim)
			y := x - d
			if ylim < y {
				x, y = ylim+d, ylim
			}
			if fxybest < x+y {
				fxybest, fxbest = x+y, x
			}
		}
		bxybest, bxbest := maxInt, 0
		for d := bmax; d >= bmin; d -= 2 {
			x := max(xoff, bd[off+d])
			y := x - d
			if y < yoff {
				x, y = yoff+d, yoff
			}
			if x+y < bxybest {
				bxybest, bxbest = x+y, x
			}
		}
		if (xlim+ylim)-bxybest < fxybest-(xoff+yoff) {
			return fxbest, fxybest - fxbest
		}
		return bxbest, bxybest - bxbest
	}
}
