package watch

import (
	"testing"
	"time"
)

func TestIgnorer(t *testing.T) {
	type check struct {
		path  string
		isDir bool
		want  bool
	}
	cases := []struct {
		name   string
		files  map[string]string // .gitignore content by directory
		extra  []string
		checks []check
	}{
		{
			name:  "name at any depth",
			files: map[string]string{"": "*.log\nbuild\n"},
			checks: []check{
				{"a.log", false, true},
				{"x/y/b.log", false, true},
				{"a.logx", false, false},
				{"build", true, true},
				{"build", false, true},
				{"src/build", true, true},
				{"src/build/x.go", false, true}, // parent ignored
				{"builds", true, false},
				{"main.go", false, false},
			},
		},
		{
			name:  "anchored by a leading slash",
			files: map[string]string{"": "/todo.txt\n/out/\n"},
			checks: []check{
				{"todo.txt", false, true},
				{"sub/todo.txt", false, false},
				{"out", true, true},
				{"out/a.txt", false, true},
				{"sub/out", true, false},
			},
		},
		{
			name:  "anchored by a middle slash",
			files: map[string]string{"": "doc/frotz\nsrc/*.gen.go\n"},
			checks: []check{
				{"doc/frotz", false, true},
				{"doc/frotz", true, true},
				{"a/doc/frotz", false, false},
				{"src/x.gen.go", false, true},
				{"src/sub/x.gen.go", false, false}, // "*" does not cross "/"
				{"src/x.go", false, false},
			},
		},
		{
			name:  "directory only",
			files: map[string]string{"": "tmp/\ncache/\n"},
			checks: []check{
				{"tmp", true, true},
				{"tmp", false, false}, // a file named tmp stays
				{"a/tmp", true, true},
				{"a/tmp/f.txt", false, true},
				{"cache", false, false},
			},
		},
		{
			name:  "double star",
			files: map[string]string{"": "**/logs\n**/gen/*.txt\nabc/**\na/**/b\n"},
			checks: []check{
				{"logs", true, true},
				{"x/y/logs", false, true},
				{"gen/a.txt", false, true},
				{"p/q/gen/a.txt", false, true},
				{"gen/sub/a.txt", false, false},
				{"abc", true, false}, // "abc/**" matches inside, not abc
				{"abc/x", false, true},
				{"abc/x/y/z", false, true},
				{"a/b", false, true},
				{"a/x/b", false, true},
				{"a/x/y/b", false, true},
				{"a/x/c", false, false},
			},
		},
		{
			name:  "negation re-includes",
			files: map[string]string{"": "*.txt\n!keep.txt\n"},
			checks: []check{
				{"a.txt", false, true},
				{"keep.txt", false, false},
				{"d/keep.txt", false, false},
			},
		},
		{
			name:  "negation cannot re-include below an ignored directory",
			files: map[string]string{"": "out/\n!out/keep.txt\n"},
			checks: []check{
				{"out/keep.txt", false, true},
			},
		},
		{
			name:  "negation inside a directory whose content is ignored",
			files: map[string]string{"": "out/*\n!out/keep.txt\nabc/**\n!abc/keep\n"},
			checks: []check{
				{"out", true, false},
				{"out/x.txt", false, true},
				{"out/keep.txt", false, false},
				{"abc/keep", false, false},
				{"abc/other", false, true},
			},
		},
		{
			name:  "last match wins",
			files: map[string]string{"": "!a.txt\n*.txt\n"},
			checks: []check{
				{"a.txt", false, true},
			},
		},
		{
			name: "nested .gitignore",
			files: map[string]string{
				"":    "*.tmp\n",
				"sub": "*.dat\n!keep.tmp\n/local.txt\nx/y\n",
			},
			checks: []check{
				{"a.dat", false, false}, // sub's rules only apply under sub
				{"sub/a.dat", false, true},
				{"sub/deep/a.dat", false, true},
				{"sub/a.tmp", false, true},
				{"sub/keep.tmp", false, false}, // the deeper file wins
				{"keep.tmp", false, true},
				{"sub/local.txt", false, true},
				{"sub/deep/local.txt", false, false}, // anchored to sub
				{"local.txt", false, false},
				{"sub/x/y", false, true},
				{"x/y", false, false},
			},
		},
		{
			name:  "comments, blanks, escapes and spaces",
			files: map[string]string{"": "# a comment\n\n   \n\\#hash\n\\!bang\nspace\\ \ntrail   \r\n"},
			checks: []check{
				{"# a comment", false, false},
				{"#hash", false, true},
				{"!bang", false, true},
				{"bang", false, false},
				{"space ", false, true},
				{"space", false, false},
				{"trail", false, true},
				{"trail   ", false, false},
			},
		},
		{
			name:  "wildcards and classes",
			files: map[string]string{"": "file?.c\n[abc]x\n[!0-9]y\n[^q]z\n*.[oa]\nnum[[:digit:]]\nlit\\*star\n"},
			checks: []check{
				{"file1.c", false, true},
				{"file12.c", false, false},
				{"file.c", false, false},
				{"ax", false, true},
				{"dx", false, false},
				{"ay", false, true},
				{"5y", false, false},
				{"qz", false, false},
				{"rz", false, true},
				{"x.o", false, true},
				{"x.a", false, true},
				{"x.c", false, false},
				{"num7", false, true},
				{"numx", false, false},
				{"lit*star", false, true},
				{"litXstar", false, false},
			},
		},
		{
			name: ".git is always ignored",
			checks: []check{
				{".git", true, true},
				{".git/config", false, true},
				{"sub/.git", false, true}, // a submodule's .git file
				{".gitignore", false, false},
				{".github/workflows/ci.yml", false, false},
			},
		},
		{
			name:  "extra patterns take precedence",
			files: map[string]string{"": "*.txt\n", "d": "!*.txt\n"},
			extra: []string{"secret*", "!important.txt", "/vendor/", "d/*.txt"},
			checks: []check{
				{"secret.md", false, true},
				{"sub/secret.md", false, true},
				{"a.txt", false, true},
				{"important.txt", false, false},
				{"vendor", true, true},
				{"x/vendor", true, false},
				{"d/a.txt", false, true},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ig := NewIgnorer(tc.extra...)
			for dir, content := range tc.files {
				ig.AddGitignore(dir, content)
			}
			for _, c := range tc.checks {
				if got := ig.Ignored(c.path, c.isDir); got != c.want {
					t.Errorf("Ignored(%q, dir=%v) = %v, want %v", c.path, c.isDir, got, c.want)
				}
			}
		})
	}
}

func TestIgnorerCloneIsIndependent(t *testing.T) {
	base := NewIgnorer("*.log")
	c := base.Clone()
	c.AddGitignore("", "*.txt")
	if base.Ignored("a.txt", false) {
		t.Error("adding to a clone changed the original")
	}
	if !c.Ignored("a.txt", false) || !c.Ignored("a.log", false) {
		t.Error("clone lost or did not get rules")
	}
	var nilIg *Ignorer
	if nilIg.Ignored("a.txt", false) || !nilIg.Ignored(".git", true) {
		t.Error("a nil Ignorer must ignore only .git")
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pat, name string
		want      bool
	}{
		{"*", "", true},
		{"*", "abc", true},
		{"a*c", "abbbc", true},
		{"a*c", "abbbd", false},
		{"*.go", "x.go", true},
		{"*x*y*", "axbyc", true},
		{"*x*y*", "ayxb", false},
		{"??", "é1", true}, // "?" is one character, not one byte
		{"[", "[", true},   // unterminated class: a literal
		{"[]]", "]", true}, // "]" first in a class is literal
		{"[!]]", "a", true},
		{"[a-c]", "b", true},
		{"[a-c]", "d", false},
		{`[\]]`, "]", true},
		{`\?`, "?", true},
		{`\?`, "a", false},
		{"a**b", "axxb", true},
		{"[[:upper:]]*", "Readme", true},
		{"[[:upper:]]*", "readme", false},
	}
	for _, c := range cases {
		if got := globMatch(c.pat, c.name); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.pat, c.name, got, c.want)
		}
	}
}

func TestMatchSegmentsManyGlobstars(t *testing.T) {
	pat := []string{"**", "a", "**", "a", "**", "a", "**", "a", "**", "a", "**", "b"}
	segs := make([]string, 200)
	for i := range segs {
		segs[i] = "a"
	}
	start := time.Now()
	if matchSegments(pat, segs) {
		t.Error("matched a path without b")
	}
	segs[199] = "b"
	if !matchSegments(pat, segs) {
		t.Error("did not match")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}
