package dialects

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Gemini's generateContent wire: a request has contents (roles "user"
// and "model"), systemInstruction, tools[].functionDeclarations,
// toolConfig and generationConfig; the model and the stream flag are in
// the URL, never in the body. The REST API takes member names in
// camelCase and in proto snake_case alike (its own curl examples say
// system_instruction and inline_data), so the request decoder reads
// both.
//
// Function-call ids. Gemini's ids are optional and often missing. The
// decoders give a call without one an id of their own, with the prefix
// geminiIDPrefix, and match each functionResponse without an id to the
// oldest unanswered call of the same name (Gemini's own rule: by name
// and order). The request encoder sends ids back to Gemini except those
// invented ids (Gemini never issued them; leaving them out sends the
// history as Gemini wrote it, which is also what its implicit prompt
// cache recognises). Ids that other dialects invented (call_..., toolu_...)
// are sent: they pair each result with its call unambiguously, and
// Gemini treats ids as opaque strings.
//
// Thought signatures. Gemini attaches an opaque thoughtSignature to a
// part: a thought part's own, or (Gemini 2.5 and 3) the first
// functionCall of a step, or a text part; Gemini 3 refuses a request
// whose function calls lost theirs. In the neutral model a signature is
// the Signature of a PartThinking, marked with where it belongs:
//
//   - "gemini:" + sig: the signature of that thought part itself;
//   - "gemini-next:" + sig: the signature of the part that follows the
//     thinking part in the same message (a signature-only thinking part
//     placed just before it, or merged into the thought text just
//     before it).
//
// The markers are ':'-terminated and ':' is never in base64, so a
// signature that streams concatenated ("gemini:A" then "gemini-next:B"
// on one Anthropic thinking block) still splits apart. A client dialect
// that carries signatures (Anthropic) hands them back verbatim, so
// Gemini → Anthropic client → Gemini keeps each signature on its part.
// A signature without a marker is another provider's: the request
// encoder drops it (Gemini cannot verify it and refuses bytes it cannot
// decode), and for a Gemini client the answer encoders wrap it (and
// Anthropic's redacted thinking) in a thoughtSignature of their own,
// base64 of geminiWrapSig or geminiWrapRedacted + the original, which
// the decoders unwrap when the client sends it back: an Anthropic
// provider behind a Gemini client keeps its signed thinking.
//
// Function calls in history that have no Gemini signature (they came
// from another provider, or through a client that cannot carry one)
// get the value Google documents for that case,
// geminiSkipSignature, on the first call of each model turn.

const (
	// geminiIDPrefix starts the function-call ids the gateway invents.
	geminiIDPrefix = "call_gm_"
	geminiSigOwn   = "gemini:"
	geminiSigNext  = "gemini-next:"
	// The wrappers of foreign signatures; 12 bytes each, so that their
	// base64 is a fixed 16-character prefix.
	geminiWrapSig      = "llmgate-sig:"
	geminiWrapRedacted = "llmgate-red:"
	// geminiSkipSignature tells Gemini 3 to skip the check of a
	// function call's signature (ai.google.dev, thought signatures FAQ).
	geminiSkipSignature = "skip_thought_signature_validator"
)

var (
	geminiWrapSigB64      = base64.StdEncoding.EncodeToString([]byte(geminiWrapSig))
	geminiWrapRedactedB64 = base64.StdEncoding.EncodeToString([]byte(geminiWrapRedacted))
)

// gget reads a member by its camelCase name or, failing that, its
// snake_case one.
func gget(v gjson.Result, camel, snake string) gjson.Result {
	if r := v.Get(camel); r.Exists() {
		return r
	}
	return v.Get(snake)
}

func (t topLevel) gget(camel, snake string) gjson.Result {
	if r := t.Get(camel); r.Exists() {
		return r
	}
	return t.Get(snake)
}

// geminiGiven reports whether a member is there and not null.
func geminiGiven(v gjson.Result) bool { return v.Exists() && v.Type != gjson.Null }

func geminiBad(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}

// geminiCalls tracks the function calls of a conversation so that a
// functionResponse without an id answers the oldest unanswered call of
// its name.
type geminiCalls struct {
	pending map[string][]string // name → ids of calls, oldest first
	open    map[string]bool     // ids not answered yet
}

func (c *geminiCalls) call(name, id string) string {
	if id == "" {
		id = NewID(geminiIDPrefix)
	}
	if c.pending == nil {
		c.pending = map[string][]string{}
		c.open = map[string]bool{}
	}
	c.pending[name] = append(c.pending[name], id)
	c.open[id] = true
	return id
}

func (c *geminiCalls) result(name, id string) string {
	if id != "" {
		// Answered by id: the call leaves the open set, and its queue
		// entry is skipped when the queue is next read (no scan).
		delete(c.open, id)
		return id
	}
	q := c.pending[name]
	for len(q) > 0 && !c.open[q[0]] {
		q = q[1:]
	}
	if len(q) > 0 {
		c.pending[name] = q[1:]
		delete(c.open, q[0])
		return q[0]
	}
	c.pending[name] = q
	return NewID(geminiIDPrefix)
}

// geminiNeutralSig turns a part's thoughtSignature into a neutral signature:
// marked Gemini's (own: the signature of a thought part), or the
// original of a signature the gateway wrapped for a Gemini client.
// redacted is set for a wrapped Anthropic redacted-thinking block.
func geminiNeutralSig(raw string, own bool) (sig string, redacted bool) {
	for _, w := range [...]struct {
		b64, plain string
		redacted   bool
	}{{geminiWrapSigB64, geminiWrapSig, false}, {geminiWrapRedactedB64, geminiWrapRedacted, true}} {
		if strings.HasPrefix(raw, w.b64) {
			if b, err := base64.StdEncoding.DecodeString(raw); err == nil && bytes.HasPrefix(b, []byte(w.plain)) {
				return string(b[len(w.plain):]), w.redacted
			}
		}
	}
	if own {
		return geminiSigOwn + raw, false
	}
	return geminiSigNext + raw, false
}

// splitGeminiSig reads a neutral signature: the Gemini signature of the
// thought part itself (own) and of the part after it (next). gemini is
// false for a signature that is not Gemini's.
// isGeminiSig reports whether a thinking signature is one the Gemini
// decoder marked (see splitGeminiSig): meaningless to other providers.
func isGeminiSig(s string) bool {
	return strings.HasPrefix(s, geminiSigOwn) || strings.HasPrefix(s, geminiSigNext)
}

func splitGeminiSig(s string) (own, next string, gemini bool) {
	if !strings.HasPrefix(s, geminiSigOwn) && !strings.HasPrefix(s, geminiSigNext) {
		return "", "", false
	}
	for s != "" {
		var target *string
		switch {
		case strings.HasPrefix(s, geminiSigOwn):
			s, target = s[len(geminiSigOwn):], &own
		case strings.HasPrefix(s, geminiSigNext):
			s, target = s[len(geminiSigNext):], &next
		}
		end := len(s)
		if i := strings.Index(s, geminiSigOwn); i >= 0 {
			end = i
		}
		if i := strings.Index(s, geminiSigNext); i >= 0 && i < end {
			end = i
		}
		if *target == "" {
			*target = s[:end]
		}
		s = s[end:]
	}
	return own, next, true
}

func geminiWrap(marker, s string) string {
	return base64.StdEncoding.EncodeToString([]byte(marker + s))
}

// geminiIsImage reports whether a MIME type is an image's: the neutral
// model holds images only (PDFs, audio and video are dropped, as the
// other decoders drop documents).
func geminiIsImage(m string) bool { return strings.HasPrefix(strings.ToLower(m), "image/") }

// geminiMedia reads an inlineData or fileData part as an image part.
func geminiMedia(p gjson.Result) (Part, bool) {
	if d := gget(p, "inlineData", "inline_data"); d.IsObject() {
		mt := gget(d, "mimeType", "mime_type").Str
		if data := d.Get("data").Str; data != "" && geminiIsImage(mt) {
			return Part{Type: PartImage, MediaType: mt, Data: data}, true
		}
		return Part{}, false
	}
	if f := gget(p, "fileData", "file_data"); f.IsObject() {
		mt := gget(f, "mimeType", "mime_type").Str
		if uri := gget(f, "fileUri", "file_uri").Str; uri != "" && geminiIsImage(mt) {
			return Part{Type: PartImage, MediaType: mt, URL: uri}, true
		}
	}
	return Part{}, false
}

// geminiModelParts reads the parts of a model content (conversation
// history, or an answer's candidate) as neutral parts; the comment at
// the top of this file says how thought signatures map. strict
// (requests) refuses malformed function calls with a message naming the
// field at path.
func geminiModelParts(parts gjson.Result, calls *geminiCalls, strict bool, path string) ([]Part, *Error) {
	var out []Part
	var err *Error
	// thinkingOpen: the last part is a thinking part that more thought
	// text, or a signature, may still join.
	thinkingOpen := func() bool {
		n := len(out)
		return n > 0 && out[n-1].Type == PartThinking && out[n-1].Signature == ""
	}
	i := -1
	each(parts, func(_, p gjson.Result) bool {
		i++
		raw := gget(p, "thoughtSignature", "thought_signature").Str
		if p.Get("thought").Bool() {
			text := p.Get("text").Str
			sig, redacted := "", false
			if raw != "" {
				sig, redacted = geminiNeutralSig(raw, true)
			}
			switch {
			case redacted:
				out = append(out, Part{Type: PartRedactedThinking, Data: sig})
			case thinkingOpen():
				// A run of thought parts is one thinking part, closed by
				// the part that carries the run's signature.
				out[len(out)-1].Text += text
				out[len(out)-1].Signature = sig
			case text != "" || sig != "":
				out = append(out, Part{Type: PartThinking, Text: text, Signature: sig})
			}
			return true
		}
		if raw != "" {
			sig, redacted := geminiNeutralSig(raw, false)
			switch {
			case redacted:
				out = append(out, Part{Type: PartRedactedThinking, Data: sig})
			case thinkingOpen():
				out[len(out)-1].Signature = sig
			default:
				out = append(out, Part{Type: PartThinking, Signature: sig})
			}
		}
		if fc := gget(p, "functionCall", "function_call"); geminiGiven(fc) {
			name := fc.Get("name").Str
			args := fc.Get("args")
			if strict && (!fc.IsObject() || name == "") {
				err = geminiBad("contents", "%s.parts[%d].functionCall needs a name", path, i)
				return false
			}
			if strict && geminiGiven(args) && !args.IsObject() {
				err = geminiBad("contents", "%s.parts[%d].functionCall.args must be an object", path, i)
				return false
			}
			a := "{}"
			if args.IsObject() {
				a = args.Raw
			}
			out = append(out, Part{Type: PartToolCall, ID: calls.call(name, fc.Get("id").Str), Name: name, Args: a})
			return true
		}
		if strict && geminiGiven(gget(p, "functionResponse", "function_response")) {
			err = geminiBad("contents", "%s.parts[%d]: a functionResponse belongs in a user content", path, i)
			return false
		}
		if t := p.Get("text"); t.Type == gjson.String && t.Str != "" {
			out = append(out, Part{Type: PartText, Text: t.Str})
			return true
		}
		if img, ok := geminiMedia(p); ok {
			out = append(out, img)
		}
		return true
	})
	return out, err
}

// geminiToolResult reads a functionResponse as a tool-result part. A
// response that is {"output": "text"} or {"error": ...} (the members
// Google documents) gives its text; any other response is kept as its
// JSON text.
func geminiToolResult(fr gjson.Result, id string) Part {
	p := Part{Type: PartToolResult, ID: id, Name: fr.Get("name").Str}
	resp := fr.Get("response")
	text := ""
	n := 0
	if resp.IsObject() {
		resp.ForEach(func(_, _ gjson.Result) bool { n++; return n < 2 })
	}
	switch out, e := resp.Get("output"), resp.Get("error"); {
	case n == 1 && out.Type == gjson.String:
		text = out.Str
	case n == 1 && e.Exists():
		p.IsError = true
		text = e.Str
		if e.Type != gjson.String {
			text = e.Raw
		}
	case geminiGiven(resp):
		text = resp.Raw
	}
	if text != "" {
		p.Content = append(p.Content, Part{Type: PartText, Text: text})
	}
	// Gemini 3 takes media in a function response as its own parts.
	each(fr.Get("parts"), func(_, fp gjson.Result) bool {
		if img, ok := geminiMedia(fp); ok {
			p.Content = append(p.Content, img)
		}
		return true
	})
	return p
}

// geminiNumber reads a number member; proto JSON also allows numbers as
// strings.
func geminiNumber(v gjson.Result, param string) (gjson.Result, *Error) {
	switch v.Type {
	case gjson.Null:
		return gjson.Result{}, nil
	case gjson.Number:
		return v, nil
	case gjson.String:
		if _, err := strconv.ParseFloat(v.Str, 64); err == nil {
			return gjson.Result{Type: gjson.Number, Num: v.Float(), Raw: v.Str}, nil
		}
	}
	return gjson.Result{}, geminiBad(param, "%s must be a number", param)
}

// DecodeGeminiRequest reads the body of a Gemini generateContent (or
// streamGenerateContent) request. The model and the stream flag are in
// the URL: the caller sets Model and Stream. Members the neutral request
// cannot hold (safetySettings, cachedContent, topK, candidateCount,
// seed...) are left out, as the other decoders leave out theirs; the
// cache key keeps them (CacheExtras).
func DecodeGeminiRequest(body []byte) (*ChatRequest, *Error) {
	root := readTop(body)
	r := &ChatRequest{}
	switch si := root.gget("systemInstruction", "system_instruction"); {
	case si.Type == gjson.String:
		if si.Str != "" {
			r.System = []Part{{Type: PartText, Text: si.Str}}
		}
	case si.IsObject():
		parts := si.Get("parts")
		if geminiGiven(parts) && !parts.IsArray() {
			return nil, geminiBad("systemInstruction", "systemInstruction.parts must be an array")
		}
		each(parts, func(_, p gjson.Result) bool {
			if t := p.Get("text"); t.Type == gjson.String && t.Str != "" {
				r.System = append(r.System, Part{Type: PartText, Text: t.Str})
			}
			return true
		})
	case geminiGiven(si):
		return nil, geminiBad("systemInstruction", "systemInstruction must be a content object with parts")
	}
	contents := root.Get("contents")
	if geminiGiven(contents) && !contents.IsArray() {
		return nil, geminiBad("contents", "contents must be an array")
	}
	var calls geminiCalls
	var err *Error
	i := -1
	each(contents, func(_, c gjson.Result) bool {
		i++
		path := "contents[" + strconv.Itoa(i) + "]"
		if !c.IsObject() {
			err = geminiBad("contents", "%s must be an object", path)
			return false
		}
		parts := c.Get("parts")
		if geminiGiven(parts) && !parts.IsArray() {
			err = geminiBad("contents", "%s.parts must be an array", path)
			return false
		}
		switch role := c.Get("role").Str; role {
		case "model":
			var ps []Part
			if ps, err = geminiModelParts(parts, &calls, true, path); err != nil {
				return false
			}
			if len(ps) > 0 {
				r.Messages = append(r.Messages, Message{Role: RoleAssistant, Parts: ps})
			}
		case "user", "", "function":
			// "function" is the role early clients gave function
			// responses. Tool results become tool messages, in order,
			// before the rest of the turn.
			var rest []Part
			j := -1
			each(parts, func(_, p gjson.Result) bool {
				j++
				if fr := gget(p, "functionResponse", "function_response"); geminiGiven(fr) {
					name := fr.Get("name").Str
					if !fr.IsObject() || name == "" {
						err = geminiBad("contents", "%s.parts[%d].functionResponse needs a name", path, j)
						return false
					}
					res := geminiToolResult(fr, calls.result(name, fr.Get("id").Str))
					r.Messages = append(r.Messages, Message{Role: RoleTool, Parts: []Part{res}})
					return true
				}
				if geminiGiven(gget(p, "functionCall", "function_call")) {
					err = geminiBad("contents", "%s.parts[%d]: a functionCall belongs in a model content", path, j)
					return false
				}
				if p.Get("thought").Bool() {
					return true
				}
				if t := p.Get("text"); t.Type == gjson.String {
					if t.Str != "" {
						rest = append(rest, Part{Type: PartText, Text: t.Str})
					}
				} else if img, ok := geminiMedia(p); ok {
					rest = append(rest, img)
				}
				return true
			})
			if err != nil {
				return false
			}
			if len(rest) > 0 {
				r.Messages = append(r.Messages, Message{Role: RoleUser, Parts: rest})
			}
		default:
			err = geminiBad("contents", "%s has unknown role %q (want user or model)", path, role)
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if err = decodeGeminiTools(root, r); err != nil {
		return nil, err
	}
	if err = decodeGeminiConfig(root.gget("generationConfig", "generation_config"), r); err != nil {
		return nil, err
	}
	return r, nil
}

func decodeGeminiTools(root topLevel, r *ChatRequest) *Error {
	tools := root.Get("tools")
	if geminiGiven(tools) && !tools.IsArray() {
		return geminiBad("tools", "tools must be an array")
	}
	var err *Error
	i := -1
	each(tools, func(_, t gjson.Result) bool {
		i++
		decls := gget(t, "functionDeclarations", "function_declarations")
		if geminiGiven(decls) && !decls.IsArray() {
			err = geminiBad("tools", "tools[%d].functionDeclarations must be an array", i)
			return false
		}
		// Google's own tools (googleSearch, codeExecution, urlContext...)
		// run at Google: no other provider can be offered them, as the
		// Responses decoder skips built-in tools.
		j := -1
		each(decls, func(_, fd gjson.Result) bool {
			j++
			name := fd.Get("name").Str
			if name == "" {
				err = geminiBad("tools", "tools[%d].functionDeclarations[%d] needs a name", i, j)
				return false
			}
			schema := `{"type":"object","properties":{}}`
			if js := gget(fd, "parametersJsonSchema", "parameters_json_schema"); js.IsObject() {
				schema = js.Raw
			} else if p := fd.Get("parameters"); p.IsObject() {
				schema = jsonSchemaFromGemini(p)
			} else if geminiGiven(p) || geminiGiven(js) {
				err = geminiBad("tools", "tools[%d].functionDeclarations[%d].parameters must be a schema object", i, j)
				return false
			}
			r.Tools = append(r.Tools, Tool{Name: name, Description: fd.Get("description").Str, Schema: schema})
			return true
		})
		return err == nil
	})
	if err != nil {
		return err
	}
	fcc := gget(root.gget("toolConfig", "tool_config"), "functionCallingConfig", "function_calling_config")
	names := gget(fcc, "allowedFunctionNames", "allowed_function_names")
	switch mode := strings.ToUpper(fcc.Get("mode").Str); mode {
	case "", "MODE_UNSPECIFIED":
	case "AUTO", "VALIDATED":
		// VALIDATED (calls or text, calls checked against their
		// schema) is auto to the providers that have no such mode.
		r.ToolChoice = &ToolChoice{Mode: "auto"}
	case "NONE":
		r.ToolChoice = &ToolChoice{Mode: "none"}
	case "ANY":
		r.ToolChoice = &ToolChoice{Mode: "required"}
		if names.IsArray() && len(names.Array()) == 1 {
			r.ToolChoice = &ToolChoice{Mode: "tool", Name: names.Array()[0].Str}
		}
	default:
		return geminiBad("toolConfig", "toolConfig.functionCallingConfig.mode %q is not AUTO, ANY, NONE or VALIDATED", mode)
	}
	return nil
}

func decodeGeminiConfig(gc gjson.Result, r *ChatRequest) *Error {
	if !geminiGiven(gc) {
		return nil
	}
	if !gc.IsObject() {
		return geminiBad("generationConfig", "generationConfig must be an object")
	}
	num := func(camel, snake string) (gjson.Result, *Error) {
		return geminiNumber(gget(gc, camel, snake), "generationConfig."+camel)
	}
	v, err := num("maxOutputTokens", "max_output_tokens")
	if err != nil {
		return err
	}
	if v.Exists() {
		r.MaxTokens = int(v.Int())
	}
	if v, err = num("temperature", "temperature"); err != nil {
		return err
	}
	r.Temperature = optFloat(v)
	if v, err = num("topP", "top_p"); err != nil {
		return err
	}
	r.TopP = optFloat(v)
	if s := gget(gc, "stopSequences", "stop_sequences"); geminiGiven(s) {
		if !s.IsArray() {
			return geminiBad("generationConfig.stopSequences", "generationConfig.stopSequences must be an array of strings")
		}
		each(s, func(_, v gjson.Result) bool { r.Stop = append(r.Stop, v.Str); return true })
	}
	mime := gget(gc, "responseMimeType", "response_mime_type").Str
	schema := ""
	if js := gget(gc, "responseJsonSchema", "response_json_schema"); js.IsObject() {
		schema = js.Raw
	} else if rs := gget(gc, "responseSchema", "response_schema"); rs.IsObject() {
		schema = jsonSchemaFromGemini(rs)
	} else if geminiGiven(rs) || geminiGiven(js) {
		return geminiBad("generationConfig.responseSchema", "generationConfig.responseSchema must be a schema object")
	}
	switch {
	case schema != "":
		r.ResponseFormat = &ResponseFormat{Type: "json_schema", Schema: schema}
	case mime == "application/json":
		r.ResponseFormat = &ResponseFormat{Type: "json_object"}
	}
	tc := gget(gc, "thinkingConfig", "thinking_config")
	if !geminiGiven(tc) {
		return nil
	}
	if !tc.IsObject() {
		return geminiBad("generationConfig.thinkingConfig", "generationConfig.thinkingConfig must be an object")
	}
	b, err := geminiNumber(gget(tc, "thinkingBudget", "thinking_budget"), "generationConfig.thinkingConfig.thinkingBudget")
	if err != nil {
		return err
	}
	switch n := b.Int(); {
	case !b.Exists():
	case n > 0:
		r.ThinkingBudget = int(n)
	case n == 0:
		r.ReasoningEffort = "none"
	default: // -1: dynamic, the model decides
		r.ReasoningEffort = "medium"
	}
	switch l := strings.ToUpper(gget(tc, "thinkingLevel", "thinking_level").Str); l {
	case "", "THINKING_LEVEL_UNSPECIFIED":
	case "MINIMAL", "LOW", "MEDIUM", "HIGH":
		r.ReasoningEffort = strings.ToLower(l)
	default:
		return geminiBad("generationConfig.thinkingConfig.thinkingLevel", "generationConfig.thinkingConfig.thinkingLevel %q is not MINIMAL, LOW, MEDIUM or HIGH", l)
	}
	if r.ThinkingBudget == 0 && r.ReasoningEffort == "" && gget(tc, "includeThoughts", "include_thoughts").Bool() {
		// Asking to see thoughts, and nothing more, asks for them.
		r.ReasoningEffort = "medium"
	}
	return nil
}

// geminiImage renders an image part. Gemini takes bytes (inlineData) or
// a file it knows (fileData: a Files API or gs:// URI, or the fileData a
// Gemini client sent, which has its MIME type); it does not fetch other
// URLs, and neither does the gateway.
func geminiImage(p Part) (map[string]any, error) {
	if p.Data == "" && strings.HasPrefix(p.URL, "data:") {
		p = imagePart(p.URL)
	}
	if p.Data != "" {
		mt := p.MediaType
		if mt == "" {
			mt = sniffImage(p.Data)
		}
		return map[string]any{"inlineData": map[string]any{"mimeType": mt, "data": p.Data}}, nil
	}
	if p.URL != "" && p.MediaType != "" || strings.HasPrefix(p.URL, "gs://") || strings.HasPrefix(p.URL, "https://generativelanguage.googleapis.com/") {
		mt := p.MediaType
		if mt == "" {
			mt = geminiImageType(p.URL)
		}
		return map[string]any{"fileData": map[string]any{"mimeType": mt, "fileUri": p.URL}}, nil
	}
	return nil, ErrImageURL
}

func geminiImageType(url string) string {
	u := strings.ToLower(url)
	for ext, mt := range map[string]string{".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
		".gif": "image/gif", ".heic": "image/heic", ".heif": "image/heif"} {
		if strings.HasSuffix(u, ext) {
			return mt
		}
	}
	return "image/png"
}

// geminiOutParts renders the parts of an assistant message (or answer)
// as Gemini parts. client: for a Gemini client (answers), which keeps
// unsigned thought text, gets foreign signatures wrapped, and every id;
// otherwise for a Gemini provider (requests), which gets only what it
// can check (see the comment at the top of this file).
func geminiOutParts(parts []Part, client bool) ([]map[string]any, error) {
	var out []map[string]any
	next := "" // a Gemini signature owed to the next part
	calls := 0
	put := func(m map[string]any) {
		if next != "" {
			m["thoughtSignature"] = next
			next = ""
		}
		out = append(out, m)
	}
	thought := func(text, sig string) {
		m := map[string]any{"text": text, "thought": true}
		if sig != "" {
			m["thoughtSignature"] = sig
		}
		out = append(out, m)
	}
	for _, p := range parts {
		switch p.Type {
		case PartThinking:
			own, nx, gemini := splitGeminiSig(p.Signature)
			switch {
			case gemini:
				if own != "" || client && p.Text != "" {
					thought(p.Text, own)
				}
				if nx != "" {
					if next != "" { // two in a row: the first keeps its own part
						out = append(out, map[string]any{"text": "", "thoughtSignature": next})
					}
					next = nx
				}
			case p.Signature != "" && client:
				thought(p.Text, geminiWrap(geminiWrapSig, p.Signature))
			case client && p.Text != "":
				thought(p.Text, "")
			}
			// For a provider, thought text without a Gemini signature
			// is dropped: Gemini reads nothing from it, and refuses a
			// signature it cannot decode.
		case PartRedactedThinking:
			if client && p.Data != "" {
				thought("", geminiWrap(geminiWrapRedacted, p.Data))
			}
		case PartText:
			if p.Text == "" || !client && strings.TrimSpace(p.Text) == "" {
				continue // Gemini refuses empty text parts
			}
			put(map[string]any{"text": p.Text})
		case PartImage:
			m, err := geminiImage(p)
			if err != nil {
				return nil, err
			}
			put(m)
		case PartToolCall:
			fc := map[string]any{"name": p.Name, "args": geminiObjectOr(p.Args)}
			if p.ID != "" && (client || !strings.HasPrefix(p.ID, geminiIDPrefix)) {
				fc["id"] = p.ID
			}
			m := map[string]any{"functionCall": fc}
			if calls == 0 && next == "" && !client {
				m["thoughtSignature"] = geminiSkipSignature
			}
			calls++
			put(m)
		}
	}
	if next != "" {
		out = append(out, map[string]any{"text": "", "thoughtSignature": next})
	}
	return out, nil
}

// geminiFreeForm reports whether a converted schema says nothing but
// "an object" (no properties, no alternatives).
func geminiFreeForm(schema string) bool {
	r := gjson.GetMany(schema, "properties", "anyOf", "type")
	return !(r[0].IsObject() && r[0].Raw != "{}") && !r[1].Exists() && (r[2].Str == "OBJECT" || !r[2].Exists())
}

// geminiObjectOr returns s as raw JSON when it is an object, else {}:
// Gemini's args and responses must be objects.
func geminiObjectOr(s string) json.RawMessage {
	if t := strings.TrimSpace(s); t != "" && t[0] == '{' && gjson.Valid(t) {
		return json.RawMessage(t)
	}
	return json.RawMessage(`{}`)
}

// geminiResponse renders a tool result as a functionResponse's
// response, which must be an object: a JSON object result as it is,
// other text as {"output": text}, an error as {"error": ...}: the members
// Google documents for output and error.
func geminiResponse(p Part) any {
	text := JoinText(p.Content, "\n")
	var v any = text
	if t := strings.TrimSpace(text); t != "" && t[0] == '{' && gjson.Valid(t) {
		v = json.RawMessage(t)
	}
	if p.IsError {
		if text == "" {
			v = "error"
		}
		return map[string]any{"error": v}
	}
	if raw, ok := v.(json.RawMessage); ok {
		return raw
	}
	return map[string]any{"output": text}
}

type geminiContent struct {
	Role  string           `json:"role"`
	Parts []map[string]any `json:"parts"`
}

// EncodeGeminiRequest writes r as the body of a Gemini generateContent
// request (no model and no stream flag: they go in the URL). System
// messages are hoisted into systemInstruction; consecutive turns of one
// role are merged (tool results and the user turn after them are one
// "user" content); images must be data (or Gemini file URIs): other
// URLs are ErrImageURL.
func EncodeGeminiRequest(r *ChatRequest, o EncodeOptions) ([]byte, error) {
	var system []map[string]any
	addSystem := func(parts []Part) {
		for _, p := range parts {
			if p.Type == PartText && strings.TrimSpace(p.Text) != "" {
				system = append(system, map[string]any{"text": p.Text})
			}
		}
	}
	addSystem(r.System)
	contents := []geminiContent{}
	add := func(role string, parts []map[string]any) {
		if len(parts) == 0 {
			return
		}
		if n := len(contents); n > 0 && contents[n-1].Role == role {
			contents[n-1].Parts = append(contents[n-1].Parts, parts...)
			return
		}
		contents = append(contents, geminiContent{role, parts})
	}
	names := map[string]string{} // call id → function name
	var unanswered []string      // names of calls, in order, for results that name nothing
	// Images a tool returned follow the run of function responses, in
	// the same user content (a function response takes no media before
	// Gemini 3).
	var toolImages []map[string]any
	for _, m := range r.Messages {
		if m.Role != RoleTool && len(toolImages) > 0 {
			add("user", toolImages)
			toolImages = nil
		}
		switch m.Role {
		case RoleSystem:
			addSystem(m.Parts)
		case RoleAssistant:
			parts, err := geminiOutParts(m.Parts, false)
			if err != nil {
				return nil, err
			}
			for _, p := range m.Parts {
				if p.Type == PartToolCall {
					names[p.ID] = p.Name
					unanswered = append(unanswered, p.Name)
				}
			}
			add("model", parts)
		case RoleTool:
			for _, p := range m.Parts {
				if p.Type != PartToolResult {
					continue
				}
				name, ok := names[p.ID]
				if !ok || p.ID == "" {
					name = p.Name
				}
				if name == "" && len(unanswered) > 0 {
					name = unanswered[0]
				}
				if name == "" {
					return nil, fmt.Errorf("tool result %q answers no function call of the conversation, and Gemini needs the function's name", p.ID)
				}
				for i, n := range unanswered {
					if n == name {
						unanswered = append(unanswered[:i:i], unanswered[i+1:]...)
						break
					}
				}
				fr := map[string]any{"name": name, "response": geminiResponse(p)}
				if p.ID != "" && !strings.HasPrefix(p.ID, geminiIDPrefix) {
					fr["id"] = p.ID
				}
				add("user", []map[string]any{{"functionResponse": fr}})
				for _, c := range p.Content {
					if c.Type == PartImage {
						img, err := geminiImage(c)
						if err != nil {
							return nil, err
						}
						toolImages = append(toolImages, img)
					}
				}
			}
		default: // user
			var parts []map[string]any
			for _, p := range m.Parts {
				switch p.Type {
				case PartText:
					if strings.TrimSpace(p.Text) != "" {
						parts = append(parts, map[string]any{"text": p.Text})
					}
				case PartImage:
					img, err := geminiImage(p)
					if err != nil {
						return nil, err
					}
					parts = append(parts, img)
				}
			}
			add("user", parts)
		}
	}
	add("user", toolImages)
	req := map[string]any{"contents": contents}
	if len(system) > 0 {
		req["systemInstruction"] = map[string]any{"parts": system}
	}
	if len(r.Tools) > 0 {
		decls := make([]map[string]any, 0, len(r.Tools))
		for _, t := range r.Tools {
			d := map[string]any{"name": t.Name}
			if t.Description != "" {
				d["description"] = t.Description
			}
			schema, err := geminiSchema(t.Schema, false)
			if err != nil {
				return nil, fmt.Errorf("tool %s: %w", t.Name, err)
			}
			// A function without parameters has none: Gemini refuses an
			// OBJECT with empty properties.
			if !geminiFreeForm(schema) {
				d["parameters"] = json.RawMessage(schema)
			}
			decls = append(decls, d)
		}
		req["tools"] = []any{map[string]any{"functionDeclarations": decls}}
		if tc := r.ToolChoice; tc != nil {
			fcc := map[string]any{"mode": "AUTO"}
			switch tc.Mode {
			case "none":
				fcc["mode"] = "NONE"
			case "required":
				fcc["mode"] = "ANY"
			case "tool":
				fcc["mode"] = "ANY"
				fcc["allowedFunctionNames"] = []string{tc.Name}
			}
			req["toolConfig"] = map[string]any{"functionCallingConfig": fcc}
		}
	}
	gc := map[string]any{}
	if r.MaxTokens > 0 {
		gc["maxOutputTokens"] = r.MaxTokens
	}
	if r.Temperature != nil {
		gc["temperature"] = *r.Temperature
	}
	if r.TopP != nil {
		gc["topP"] = *r.TopP
	}
	if len(r.Stop) > 0 {
		gc["stopSequences"] = r.Stop
	}
	if rf := r.ResponseFormat; rf != nil {
		gc["responseMimeType"] = "application/json"
		if rf.Type == "json_schema" && rf.Schema != "" {
			schema, err := geminiSchema(rf.Schema, true)
			if err != nil {
				return nil, fmt.Errorf("response schema: %w", err)
			}
			if !geminiFreeForm(schema) { // else application/json says it all
				gc["responseSchema"] = json.RawMessage(schema)
			}
		}
	}
	// A budget is what the client asked for; an effort only for a
	// thinking model (Gemini refuses thinkingConfig from the others).
	// thinkingBudget, not thinkingLevel: Gemini 2.5 knows only the
	// budget and Gemini 3 takes both. "none" sends nothing: some
	// Gemini models cannot stop thinking and refuse a zero budget.
	budget := r.ThinkingBudget
	if budget <= 0 && o.Reasoning && r.ReasoningEffort != "" && r.ReasoningEffort != "none" {
		budget = effortBudget(r.ReasoningEffort)
	}
	if budget > 0 {
		gc["thinkingConfig"] = map[string]any{"thinkingBudget": budget, "includeThoughts": true}
	}
	if len(gc) > 0 {
		req["generationConfig"] = gc
	}
	return json.Marshal(req)
}

// stopFromGemini maps a finishReason to a canonical stop reason (the
// notes' table): the safety family is a content filter; a malformed or
// unexpected tool call is not (it is the model's failure, not a
// policy), and stays visible in NativeStop.
func stopFromGemini(f string) StopReason {
	switch f {
	case "MAX_TOKENS", "CONTINUATION":
		return StopMaxTokens
	case "SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
		"IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER", "NO_IMAGE":
		return StopContentFilter
	}
	return StopEnd // STOP, OTHER, MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS...
}

// geminiFinishReasons are Gemini's finishReason values.
var geminiFinishReasons = set("STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "LANGUAGE", "OTHER", "BLOCKLIST",
	"PROHIBITED_CONTENT", "SPII", "MALFORMED_FUNCTION_CALL", "IMAGE_SAFETY", "UNEXPECTED_TOOL_CALL",
	"TOO_MANY_TOOL_CALLS", "IMAGE_PROHIBITED_CONTENT", "NO_IMAGE", "IMAGE_RECITATION", "IMAGE_OTHER", "CONTINUATION")

// geminiFinish is the finishReason for a stop reason: the provider's own
// value when it was a Gemini value of the same meaning (RECITATION
// stays RECITATION), else the closest one.
func geminiFinish(s StopReason, native string) string {
	if geminiFinishReasons[native] {
		if ns := stopFromGemini(native); ns == s || s == StopToolUse && native == "STOP" {
			return native
		}
	}
	switch s {
	case StopMaxTokens:
		return "MAX_TOKENS"
	case StopContentFilter:
		return "SAFETY"
	}
	return "STOP"
}

// geminiUsage reads a usageMetadata object: input includes cached and
// tool-use prompt tokens, output includes thoughts (which Gemini counts
// apart from candidatesTokenCount).
func geminiUsage(v gjson.Result) (u Usage, ok bool) {
	if !v.IsObject() {
		return u, false
	}
	u.Input = int(v.Get("promptTokenCount").Int() + v.Get("toolUsePromptTokenCount").Int())
	u.CachedInput = int(v.Get("cachedContentTokenCount").Int())
	u.Reasoning = int(v.Get("thoughtsTokenCount").Int())
	u.Output = int(v.Get("candidatesTokenCount").Int()) + u.Reasoning
	return u, true
}

// geminiBodyUsage reads the usage of a whole answer: an object, or the
// JSON array a stream is without alt=sse (usage is cumulative: the last
// element's).
func geminiBodyUsage(body []byte) (Usage, bool) {
	root := gjson.ParseBytes(body)
	if root.IsArray() {
		arr := root.Array()
		for i := len(arr) - 1; i >= 0; i-- {
			if u, ok := geminiUsage(arr[i].Get("usageMetadata")); ok {
				return u, true
			}
		}
		return Usage{}, false
	}
	return geminiUsage(root.Get("usageMetadata"))
}

// DecodeGeminiResponse reads a generateContent answer: candidates[0]
// (the neutral answer has one), its finishReason, promptFeedback for a
// blocked prompt (no candidates: a content-filter answer, not an
// error), usageMetadata. A JSON array (streamGenerateContent without
// alt=sse) is read as the stream it is.
func DecodeGeminiResponse(body []byte) (*ChatResponse, error) {
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("provider answer is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	if root.IsArray() {
		return collectGeminiArray(root)
	}
	if e := root.Get("error"); e.Exists() {
		msg := e.Get("message").Str
		if msg == "" {
			msg = e.Raw
		}
		return nil, fmt.Errorf("provider answered with an error: %s", msg)
	}
	cands, fb, um := root.Get("candidates"), root.Get("promptFeedback"), root.Get("usageMetadata")
	if !root.IsObject() || !cands.Exists() && !fb.Exists() && !um.Exists() {
		return nil, fmt.Errorf("provider answer is not a generateContent response")
	}
	r := &ChatResponse{ID: root.Get("responseId").Str, Model: root.Get("modelVersion").Str}
	if r.ID == "" {
		r.ID = NewID("")
	}
	var c gjson.Result
	if cands.IsArray() {
		c = cands.Get("0")
	}
	r.Parts, _ = geminiModelParts(c.Get("content.parts"), &geminiCalls{}, false, "")
	switch f, br := c.Get("finishReason").Str, fb.Get("blockReason").Str; {
	case f != "":
		r.NativeStop, r.Stop = f, stopFromGemini(f)
	case br != "":
		r.NativeStop, r.Stop = br, StopContentFilter
	default:
		r.Stop = StopEnd
	}
	if r.Stop == StopEnd && hasToolCall(r.Parts) {
		r.Stop = StopToolUse // Gemini ends a tool call with STOP
	}
	r.Usage, _ = geminiUsage(um)
	return r, nil
}

// collectGeminiArray reads the elements of a JSON-array stream as
// stream chunks.
func collectGeminiArray(root gjson.Result) (*ChatResponse, error) {
	d := &geminiStreamDecoder{}
	c := collector{r: &ChatResponse{}, tools: map[int]int{}}
	root.ForEach(func(_, v gjson.Result) bool {
		d.event("", []byte(v.Raw), c.emit)
		return !c.done
	})
	if !c.done {
		d.end(c.emit)
	}
	if c.err != nil {
		return nil, c.err
	}
	if c.r.ID == "" {
		c.r.ID = NewID("")
	}
	return c.r, nil
}

// EncodeGeminiResponse writes r as a generateContent answer a genai SDK
// reads: one candidate (role model, index 0), its finishReason,
// usageMetadata with totalTokenCount, modelVersion and responseId.
func EncodeGeminiResponse(r *ChatResponse, model string) ([]byte, error) {
	parts, err := geminiOutParts(r.Parts, true)
	if err != nil {
		return nil, err
	}
	stop := r.Stop
	if stop == StopToolUse && !hasToolCall(r.Parts) {
		stop = StopEnd
	}
	cand := map[string]any{"index": 0, "finishReason": geminiFinish(stop, r.NativeStop)}
	if parts == nil {
		parts = []map[string]any{}
	}
	cand["content"] = map[string]any{"role": "model", "parts": parts}
	id := r.ID
	if id == "" {
		id = NewID("")
	}
	return json.Marshal(map[string]any{"candidates": []any{cand}, "usageMetadata": json.RawMessage(appendGeminiUsage(nil, r.Usage)),
		"modelVersion": model, "responseId": id})
}

// geminiStatus is the google.rpc status name for an HTTP status (the
// notes' table).
func geminiStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusBadGateway, http.StatusServiceUnavailable, 529:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 || status < 400 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

// statusFromGemini is the HTTP status of a Gemini error (its code, or
// its status name when the code is missing).
func statusFromGemini(e gjson.Result) int {
	if c := int(e.Get("code").Int()); c >= 400 && c < 600 {
		return c
	}
	switch e.Get("status").Str {
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		return http.StatusBadRequest
	case "UNAUTHENTICATED":
		return http.StatusUnauthorized
	case "PERMISSION_DENIED":
		return http.StatusForbidden
	case "NOT_FOUND":
		return http.StatusNotFound
	case "RESOURCE_EXHAUSTED":
		return http.StatusTooManyRequests
	case "UNAVAILABLE":
		return http.StatusServiceUnavailable
	case "DEADLINE_EXCEEDED":
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// geminiErrorBody is Gemini's error envelope; a RetryAfter becomes a
// google.rpc.RetryInfo detail, where Google's SDKs look for it.
func geminiErrorBody(e *Error) []byte {
	b := []byte(`{"error":{"code":0,"message":"","status":""}}`)
	b, _ = sjson.SetBytes(b, "error.code", e.Status)
	b, _ = sjson.SetBytes(b, "error.message", e.Message)
	b, _ = sjson.SetBytes(b, "error.status", geminiStatus(e.Status))
	if e.RetryAfter > 0 {
		b, _ = sjson.SetRawBytes(b, "error.details", []byte(`[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"`+strconv.Itoa(e.RetryAfter)+`s"}]`))
	}
	return b
}

// geminiError reads a Gemini error envelope (an object, or the first
// element of an array): its message and, from a google.rpc.RetryInfo
// detail, the retry delay in whole seconds, rounded up.
func geminiError(body []byte) (msg string, retryAfter int) {
	if !gjson.ValidBytes(body) {
		return "", 0
	}
	root := gjson.ParseBytes(body)
	if root.IsArray() {
		root = root.Get("0")
	}
	e := root.Get("error")
	msg = e.Get("message").Str
	each(e.Get("details"), func(_, d gjson.Result) bool {
		if !strings.HasSuffix(d.Get("@type").Str, "google.rpc.RetryInfo") {
			return true
		}
		var secs float64
		switch rd := d.Get("retryDelay"); {
		case rd.Type == gjson.String:
			if dur, err := time.ParseDuration(rd.Str); err == nil {
				secs = dur.Seconds()
			}
		case rd.IsObject(): // {"seconds": 34, "nanos": 400000000}
			secs = rd.Get("seconds").Float() + rd.Get("nanos").Float()/1e9
		}
		if secs > 0 && secs < 1e7 {
			retryAfter = int(math.Ceil(secs))
		}
		return false
	})
	return msg, retryAfter
}

// Cache keys (see cachekey.go): what a Gemini request's neutral form
// holds, and what keeps it out of the cache.

var geminiHeld = set("contents", "systemInstruction", "system_instruction", "tools", "toolConfig", "tool_config",
	"generationConfig", "generation_config")

// geminiImageShape: an inlineData or fileData member that is an image
// (the decoder drops other media, so those are not held).
type geminiImageShape struct{ fields obj }

func (s geminiImageShape) held(v gjson.Result) bool {
	return s.fields.held(v) && geminiIsImage(gget(v, "mimeType", "mime_type").Str)
}

// geminiChoiceShape: a functionCallingConfig the neutral tool choice
// says exactly (no VALIDATED, allowed names only as ANY of one).
type geminiChoiceShape struct{}

func (geminiChoiceShape) held(v gjson.Result) bool {
	if !(obj{"mode": leafV, "allowedFunctionNames": list{leafV}, "allowed_function_names": list{leafV}}).held(v) {
		return false
	}
	mode := strings.ToUpper(v.Get("mode").Str)
	names := gget(v, "allowedFunctionNames", "allowed_function_names")
	return mode != "VALIDATED" && (!geminiGiven(names) || mode == "ANY" && len(names.Array()) == 1)
}

// geminiContentShape: a content whose parts the decoder reads whole
// (it skips the thought parts of a user content).
type geminiContentShape struct{}

func (geminiContentShape) held(v gjson.Result) bool {
	if !(obj{"role": leafV, "parts": list{geminiPartSh}}).held(v) {
		return false
	}
	thought := false
	if v.Get("role").Str != "model" {
		each(v.Get("parts"), func(_, p gjson.Result) bool { thought = p.Get("thought").Bool(); return !thought })
	}
	return !thought
}

// geminiMimeShape: a responseMimeType the neutral request holds.
type geminiMimeShape struct{}

func (geminiMimeShape) held(v gjson.Result) bool {
	return v.Type == gjson.String && (v.Str == "application/json" || v.Str == "text/plain" || v.Str == "")
}

var (
	geminiInline   = geminiImageShape{obj{"mimeType": leafV, "mime_type": leafV, "data": leafV}}
	geminiFile     = geminiImageShape{obj{"mimeType": leafV, "mime_type": leafV, "fileUri": leafV, "file_uri": leafV}}
	geminiCallSh   = obj{"id": leafV, "name": leafV, "args": wholeV}
	geminiResultSh = obj{"id": leafV, "name": leafV, "response": wholeV, "parts": list{obj{"inlineData": geminiInline, "inline_data": geminiInline}}}
	geminiPartSh   = obj{"text": leafV, "thought": leafV, "thoughtSignature": leafV, "thought_signature": leafV,
		"inlineData": geminiInline, "inline_data": geminiInline, "fileData": geminiFile, "file_data": geminiFile,
		"functionCall": geminiCallSh, "function_call": geminiCallSh, "functionResponse": geminiResultSh, "function_response": geminiResultSh}
	geminiSystemSh = oneOf{leafV, obj{"role": leafV, "parts": list{obj{"text": leafV}}}}
	geminiDeclSh   = obj{"name": leafV, "description": leafV, "parameters": wholeV, "parametersJsonSchema": wholeV, "parameters_json_schema": wholeV}
	geminiConfigSh = obj{"maxOutputTokens": leafV, "max_output_tokens": leafV, "temperature": leafV, "topP": leafV, "top_p": leafV,
		"stopSequences": list{leafV}, "stop_sequences": list{leafV}, "responseMimeType": geminiMimeShape{}, "response_mime_type": geminiMimeShape{},
		"responseSchema": wholeV, "response_schema": wholeV, "responseJsonSchema": wholeV, "response_json_schema": wholeV}
	// thinkingConfig is not in the shape: includeThoughts and a dynamic
	// budget read as the same effort but give different answers, so a
	// generationConfig with it goes into the key whole.
	geminiShapes = map[string]shape{
		"contents":           list{geminiContentShape{}},
		"systemInstruction":  geminiSystemSh,
		"system_instruction": geminiSystemSh,
		"tools":              list{obj{"functionDeclarations": list{geminiDeclSh}, "function_declarations": list{geminiDeclSh}}},
		"toolConfig":         obj{"functionCallingConfig": geminiChoiceShape{}, "function_calling_config": geminiChoiceShape{}},
		"tool_config":        obj{"functionCallingConfig": geminiChoiceShape{}, "function_calling_config": geminiChoiceShape{}},
		"generationConfig":   geminiConfigSh,
		"generation_config":  geminiConfigSh,
	}
)

// geminiNotCacheable says why a Gemini request member keeps the request
// out of the cache: several candidates, log probabilities, audio or
// image output (the neutral answer holds one text candidate), a cached
// content stored at Google (state outside the request), or Google's own
// tools (search results age).
func geminiNotCacheable(name string, v gjson.Result) string {
	switch name {
	case "cachedContent", "cached_content":
		if v.Type == gjson.String && v.Str != "" {
			return "the request continues state stored by the provider (" + name + ")"
		}
	case "tools":
		server := ""
		each(v, func(_, t gjson.Result) bool {
			t.ForEach(func(k, _ gjson.Result) bool {
				if k.Str != "functionDeclarations" && k.Str != "function_declarations" {
					server = k.Str
				}
				return server == ""
			})
			return server == ""
		})
		if server != "" {
			return "the provider runs tools of its own (" + server + ")"
		}
	case "generationConfig", "generation_config":
		if n, _ := geminiNumber(gget(v, "candidateCount", "candidate_count"), ""); n.Exists() && n.Int() > 1 {
			return "more than one choice (candidateCount)"
		}
		if gget(v, "responseLogprobs", "response_logprobs").Bool() || gget(v, "logprobs", "logprobs").Int() > 0 {
			return "log probabilities requested"
		}
		media := ""
		each(gget(v, "responseModalities", "response_modalities"), func(_, m gjson.Result) bool {
			if s := strings.ToUpper(m.Str); s == "AUDIO" || s == "IMAGE" {
				media = strings.ToLower(s)
			}
			return media == ""
		})
		if media != "" {
			return media + " output requested"
		}
	}
	return ""
}

// geminiPrependSystem puts a text part first in systemInstruction.parts
// (or system_instruction's, when the client spelled it so), creating the
// instruction when there is none.
func geminiPrependSystem(root gjson.Result, body []byte, text string) ([]byte, *Error) {
	key := "systemInstruction"
	if !root.Get(key).Exists() && root.Get("system_instruction").Exists() {
		key = "system_instruction"
	}
	part := AppendJSONString(append(make([]byte, 0, len(text)+12), `{"text":`...), text)
	part = append(part, '}')
	var out []byte
	var err error
	switch si, parts := root.Get(key), root.Get(key+".parts"); {
	case !geminiGiven(si):
		out, err = sjson.SetRawBytes(body, key, append(append([]byte(`{"parts":[`), part...), "]}"...))
	case si.Type == gjson.String:
		arr := append(append([]byte(`{"parts":[`), part...), `,{"text":`...)
		arr = AppendJSONString(arr, si.Str)
		out, err = sjson.SetRawBytes(body, key, append(arr, "}]}"...))
	case si.IsObject() && parts.IsArray():
		out, err = sjson.SetRawBytes(body, key+".parts", prependRaw(parts, part))
	case si.IsObject() && !geminiGiven(parts):
		out, err = sjson.SetRawBytes(body, key+".parts", append(append([]byte{'['}, part...), ']'))
	default:
		return nil, &Error{Status: http.StatusBadRequest, Param: key, Message: key + " must be a content object with parts"}
	}
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Message: "injecting the context: " + err.Error()}
	}
	return out, nil
}
