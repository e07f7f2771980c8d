package dialects

import (
	"net/http"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// PrependSystem puts text in front of the system prompt of a generation
// request of dialect d, editing the raw body (no decode and re-encode):
//
//   - OpenAI Chat and Ollama: a system message first in messages;
//   - Anthropic: a text block first in system (a string system becomes
//     two blocks, so the client's own cache_control breakpoints, which
//     cover everything before them, cover the injected text too);
//   - Responses: in front of instructions, separated by a blank line;
//   - Bedrock: a {"text"} block first in system;
//   - Gemini: a text part first in systemInstruction.parts.
//
// The text comes first so that it is a stable prefix: providers' prompt
// caches serve an unchanged beginning of a prompt.
func PrependSystem(d Dialect, body []byte, text string) ([]byte, *Error) {
	root := gjson.ParseBytes(body)
	var out []byte
	var err error
	switch d {
	case OpenAI, Ollama:
		msgs := root.Get("messages")
		if !msgs.IsArray() {
			return nil, &Error{Status: http.StatusBadRequest, Param: "messages", Message: "messages must be an array"}
		}
		msg := AppendJSONString(append(make([]byte, 0, len(text)+40), `{"role":"system","content":`...), text)
		msg = append(msg, '}')
		out, err = sjson.SetRawBytes(body, "messages", prependRaw(msgs, msg))
	case Anthropic:
		block := AppendJSONString(append(make([]byte, 0, len(text)+32), `{"type":"text","text":`...), text)
		block = append(block, '}')
		sys := root.Get("system")
		switch {
		case !sys.Exists() || sys.Type == gjson.Null || sys.Type == gjson.String && sys.Str == "":
			out, err = sjson.SetRawBytes(body, "system", append(append([]byte{'['}, block...), ']'))
		case sys.Type == gjson.String:
			arr := append(append([]byte{'['}, block...), `,{"type":"text","text":`...)
			arr = AppendJSONString(arr, sys.Str)
			arr = append(arr, "}]"...)
			out, err = sjson.SetRawBytes(body, "system", arr)
		case sys.IsArray():
			out, err = sjson.SetRawBytes(body, "system", prependRaw(sys, block))
		default:
			return nil, &Error{Status: http.StatusBadRequest, Param: "system", Message: "system must be a string or an array of content blocks"}
		}
	case Bedrock:
		block := AppendJSONString(append(make([]byte, 0, len(text)+12), `{"text":`...), text)
		block = append(block, '}')
		switch sys := root.Get("system"); {
		case !sys.Exists() || sys.Type == gjson.Null:
			out, err = sjson.SetRawBytes(body, "system", append(append([]byte{'['}, block...), ']'))
		case sys.IsArray():
			out, err = sjson.SetRawBytes(body, "system", prependRaw(sys, block))
		default:
			return nil, &Error{Status: http.StatusBadRequest, Param: "system", Message: "system must be an array of blocks"}
		}
	case Responses:
		ins := root.Get("instructions")
		switch {
		case !ins.Exists() || ins.Type == gjson.Null || ins.Type == gjson.String && ins.Str == "":
			out, err = sjson.SetRawBytes(body, "instructions", AppendJSONString(nil, text))
		case ins.Type == gjson.String:
			out, err = sjson.SetRawBytes(body, "instructions", AppendJSONString(nil, text+"\n\n"+ins.Str))
		default:
			return nil, &Error{Status: http.StatusBadRequest, Param: "instructions", Message: "instructions must be a string"}
		}
	case Gemini:
		var e *Error
		if out, e = geminiPrependSystem(root, body, text); e != nil {
			return nil, e
		}
	default:
		return nil, &Error{Status: http.StatusBadRequest, Message: "context injection is not supported for " + string(d) + " requests"}
	}
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Message: "injecting the context: " + err.Error()}
	}
	return out, nil
}

// prependRaw returns the JSON array arr with the raw element first put
// in front of its elements.
func prependRaw(arr gjson.Result, first []byte) []byte {
	out := make([]byte, 0, len(arr.Raw)+len(first)+2)
	out = append(out, '[')
	out = append(out, first...)
	empty := true
	arr.ForEach(func(_, _ gjson.Result) bool { empty = false; return false })
	if !empty {
		out = append(out, ',')
		// Everything after the opening bracket, whitespace included.
		i := 0
		for i < len(arr.Raw) && arr.Raw[i] != '[' {
			i++
		}
		out = append(out, arr.Raw[i+1:]...)
	} else {
		out = append(out, ']')
	}
	return out
}
