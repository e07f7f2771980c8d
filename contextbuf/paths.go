package contextbuf

import (
	"fmt"
	"path"
	"strings"
)

// MaxPathLen is the longest file path accepted, in bytes.
const MaxPathLen = 1024

// MaxIDLen is the longest context id accepted.
const MaxIDLen = 128

// MaxSessionLen is the longest session id accepted, in bytes.
const MaxSessionLen = 128

// InvalidError reports a bad context id, session id or file path given to
// a Buffer (the gateway answers 400).
type InvalidError struct {
	Reason string
}

// Error implements error.
func (e *InvalidError) Error() string { return "invalid: " + e.Reason }

// checkPath returns why p is not an acceptable file path, or "".
//
// A path is relative and slash-separated, not empty, at most MaxPathLen
// bytes, has no NUL byte, no leading "/", no "." or ".." element and is
// clean (path.Clean returns it unchanged: no "//", no trailing "/").
func checkPath(p string) string {
	switch {
	case p == "":
		return "empty file path"
	case len(p) > MaxPathLen:
		return fmt.Sprintf("file path longer than %d bytes", MaxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Sprintf("file path %q contains a NUL byte", p)
	case p[0] == '/':
		return fmt.Sprintf("file path %q is absolute", p)
	case p == "." || p == ".." || strings.HasPrefix(p, "../") || strings.HasSuffix(p, "/..") || strings.Contains(p, "/../"):
		return fmt.Sprintf("file path %q leaves its directory (\"..\")", p)
	case path.Clean(p) != p:
		return fmt.Sprintf("file path %q is not clean (it should be %q)", p, path.Clean(p))
	}
	return ""
}

// CheckID says why id is not an acceptable context id (an
// *InvalidError), or returns nil: an id is 1 to MaxIDLen characters of
// [A-Za-z0-9._-], not "." or "..".
func CheckID(id string) error {
	if r := checkID(id); r != "" {
		return &InvalidError{Reason: r}
	}
	return nil
}

// checkID returns why id is not an acceptable context id, or "".
// An id is 1 to MaxIDLen characters of [A-Za-z0-9._-], not "." or "..".
func checkID(id string) string {
	if id == "" {
		return "empty context id"
	}
	if len(id) > MaxIDLen {
		return fmt.Sprintf("context id longer than %d characters", MaxIDLen)
	}
	if id == "." || id == ".." {
		return fmt.Sprintf("context id %q is not allowed", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("context id %q has a character other than A-Z a-z 0-9 . _ -", id)
		}
	}
	return ""
}

// checkSession returns why s is not an acceptable session id, or "".
// A session id is printable ASCII (space to '~'), at most MaxSessionLen
// bytes; "" means no session.
func checkSession(s string) string {
	if len(s) > MaxSessionLen {
		return fmt.Sprintf("session id longer than %d bytes", MaxSessionLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return "session id has a character that is not printable ASCII"
		}
	}
	return ""
}
