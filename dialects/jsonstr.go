package dialects

import (
	"strconv"

	"github.com/llmgate/caddy-llmgate/internal/jsonstr"
)

// AppendJSONString appends s as a JSON string literal, escaped as
// encoding/json does (minus HTML escaping). It is the hot path of stream
// encoding, where a map and json.Marshal per event would dominate the
// cost.
func AppendJSONString(dst []byte, s string) []byte { return jsonstr.Append(dst, s, false) }

func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
