package watch

import (
	"fmt"
	"strconv"
	"strings"
)

// DiffSummary counts what a unified diff changes: the files it touches
// (one per "diff --git" header, or per "+++ " header in a diff without
// them) and the lines it adds and removes. Hunk headers are followed, so
// a content line that happens to start with "+++" or "---" is counted as
// content.
func DiffSummary(diff string) (files, added, removed int) {
	sawGit := false
	plusHeaders := 0
	oldLeft, newLeft := 0, 0 // lines still expected in the current hunk
	for _, line := range strings.Split(diff, "\n") {
		if oldLeft > 0 || newLeft > 0 {
			switch {
			case strings.HasPrefix(line, "+"):
				added++
				newLeft--
				continue
			case strings.HasPrefix(line, "-"):
				removed++
				oldLeft--
				continue
			case strings.HasPrefix(line, " "), line == "":
				oldLeft--
				newLeft--
				continue
			case strings.HasPrefix(line, `\`):
				continue // "\ No newline at end of file"
			}
			oldLeft, newLeft = 0, 0 // malformed: back to headers
		}
		switch {
		case strings.HasPrefix(line, "diff --git "):
			sawGit = true
			files++
		case strings.HasPrefix(line, "+++ "):
			plusHeaders++
		case strings.HasPrefix(line, "@@ "):
			oldLeft, newLeft = hunkCounts(line)
		}
	}
	if !sawGit {
		files = plusHeaders
	}
	return files, added, removed
}

// hunkCounts reads the line counts of a hunk header
// "@@ -a[,b] +c[,d] @@" (a missing count is 1).
func hunkCounts(h string) (oldN, newN int) {
	f := strings.Fields(h)
	if len(f) < 3 {
		return 0, 0
	}
	return rangeCount(f[1], "-"), rangeCount(f[2], "+")
}

func rangeCount(s, prefix string) int {
	s, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return 0
	}
	_, n, found := strings.Cut(s, ",")
	if !found {
		return 1
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// formatBytes renders a size for people: "512 B", "1.4 KB", "3.0 MB"
// (powers of 1024).
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KB", "MB", "GB"} {
		v /= unit
		if v < unit || u == "GB" {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// plural returns "1 file" or "2 files".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
