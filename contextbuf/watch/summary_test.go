package watch

import "testing"

func TestDiffSummary(t *testing.T) {
	diff := "diff --git a/a.txt b/a.txt\n" +
		"--- a/a.txt\n" +
		"+++ b/a.txt\n" +
		"@@ -1,3 +1,4 @@\n" +
		" one\n" +
		"-two\n" +
		"+++ not a header\n" + // an added line "++ not a header"
		"+--- nor this\n" +
		" three\n" +
		"\\ No newline at end of file\n" +
		"diff --git a/old.txt b/new.txt\n" +
		"similarity index 100%\n" +
		"rename from old.txt\n" +
		"rename to new.txt\n" +
		"diff --git a/gone.txt b/gone.txt\n" +
		"deleted file mode 100644\n" +
		"--- a/gone.txt\n" +
		"+++ /dev/null\n" +
		"@@ -1 +0,0 @@\n" +
		"-bye\n"
	files, added, removed := DiffSummary(diff)
	if files != 3 || added != 2 || removed != 2 {
		t.Errorf("DiffSummary = %d files +%d -%d, want 3 files +2 -2", files, added, removed)
	}

	// Without git headers, files are counted by "+++" headers.
	plain := "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n--- a/y\n+++ b/y\n@@ -0,0 +1,2 @@\n+c\n+d\n"
	files, added, removed = DiffSummary(plain)
	if files != 2 || added != 3 || removed != 1 {
		t.Errorf("plain DiffSummary = %d files +%d -%d, want 2 files +3 -1", files, added, removed)
	}
	if f, a, r := DiffSummary(""); f != 0 || a != 0 || r != 0 {
		t.Errorf("empty diff: %d %d %d", f, a, r)
	}
}

func TestFormatBytes(t *testing.T) {
	cases := map[int64]string{
		0:             "0 B",
		1023:          "1023 B",
		1024:          "1.0 KB",
		1434:          "1.4 KB",
		5 << 20:       "5.0 MB",
		3 << 30:       "3.0 GB",
		1 << 40:       "1024.0 GB",
		1<<20 - 1<<10: "1023.0 KB",
	}
	for n, want := range cases {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if plural(1, "file") != "1 file" || plural(2, "file") != "2 files" || plural(0, "file") != "0 files" {
		t.Error("plural")
	}
}
