package cache

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestKeyFromEnv(t *testing.T) {
	key := []byte("0123456789abcdef0123456789ABCDEF") // 32 bytes
	key[5] = 0xfb                                     // makes std and URL base64 differ
	key[6] = 0xff
	const name = "LLMGATE_TEST_CACHE_KEY"
	for enc, v := range map[string]string{
		"hex":              hex.EncodeToString(key),
		"HEX":              strings.ToUpper(hex.EncodeToString(key)),
		"std":              base64.StdEncoding.EncodeToString(key),
		"std raw":          base64.RawStdEncoding.EncodeToString(key),
		"url":              base64.URLEncoding.EncodeToString(key),
		"url raw":          base64.RawURLEncoding.EncodeToString(key),
		"newline trailing": hex.EncodeToString(key) + "\n",
	} {
		t.Setenv(name, v)
		got, err := KeyFromEnv(name)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s: %x, %v", enc, got, err)
		}
		if _, err := New(memDB(t), Options{Key: got}); err != nil {
			t.Errorf("%s: New: %v", enc, err)
		}
	}
	if !strings.ContainsAny(base64.StdEncoding.EncodeToString(key), "+/") || !strings.ContainsAny(base64.URLEncoding.EncodeToString(key), "-_") {
		t.Fatal("test key does not tell the base64 alphabets apart")
	}

	for what, v := range map[string]string{
		"short hex":     hex.EncodeToString(key[:16]),
		"long hex":      hex.EncodeToString(append(key, 1)),
		"short base64":  base64.StdEncoding.EncodeToString(key[:31]),
		"long base64":   base64.RawURLEncoding.EncodeToString(append(key, key...)),
		"garbage":       "not a key at all, just some words!!",
		"bad hex":       strings.Repeat("zz", 32),
		"empty":         "",
		"spaces":        "   ",
		"secret marker": "SUPERSECRETVALUE",
	} {
		t.Setenv(name, v)
		got, err := KeyFromEnv(name)
		if err == nil {
			t.Errorf("%s: accepted as %x", what, got)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, name) {
			t.Errorf("%s: error does not name the variable: %s", what, msg)
		}
		if v := strings.TrimSpace(v); v != "" && (strings.Contains(msg, v) || strings.Contains(msg, v[:8])) {
			t.Errorf("%s: error shows the value: %s", what, msg)
		}
	}
	_, err := KeyFromEnv("LLMGATE_TEST_CACHE_KEY_SURELY_UNSET")
	if err == nil || !strings.Contains(err.Error(), "LLMGATE_TEST_CACHE_KEY_SURELY_UNSET") || !strings.Contains(err.Error(), "not set") {
		t.Errorf("missing variable: %v", err)
	}
}
