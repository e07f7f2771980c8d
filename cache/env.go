package cache

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// KeyFromEnv reads a 32-byte encryption key from the environment
// variable name. The value is 64 hex characters, or standard or URL-safe
// base64, with or without padding; surrounding white space is ignored.
// Errors name the variable but never contain its value.
func KeyFromEnv(name string) ([]byte, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, fmt.Errorf("cache: environment variable %s is not set", name)
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, fmt.Errorf("cache: environment variable %s is empty", name)
	}
	if len(v) == 64 {
		if k, err := hex.DecodeString(v); err == nil {
			return k, nil
		}
	}
	if len(v)%2 == 0 {
		if k, err := hex.DecodeString(v); err == nil {
			return nil, fmt.Errorf("cache: environment variable %s holds a %d-byte hex key, need 32 bytes (64 hex characters)", name, len(k))
		}
	}
	// The underlying decoding errors are not wrapped: some quote the
	// offending input.
	decoded := -1
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding,
		base64.URLEncoding, base64.RawURLEncoding,
	} {
		k, err := enc.DecodeString(v)
		if err != nil {
			continue
		}
		if len(k) == 32 {
			return k, nil
		}
		decoded = len(k)
	}
	if decoded >= 0 {
		return nil, fmt.Errorf("cache: environment variable %s holds a %d-byte key, need 32 bytes (AES-256)", name, decoded)
	}
	return nil, fmt.Errorf("cache: environment variable %s is not a 32-byte key in hex (64 characters) or base64", name)
}
