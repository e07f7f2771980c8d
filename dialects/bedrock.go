package dialects

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// Bedrock Converse (POST /model/{modelId}/converse and converse-stream).
// The body names neither the model nor streaming: both are in the URL,
// so the decoder leaves them to the caller and the encoder writes
// neither. Content blocks are unions (an object with exactly one
// member); binary data (image bytes, redacted reasoning) is base64 in
// JSON, which is also what the neutral form holds, so it passes as it is.

// bedrockImageFormats are the image formats Converse takes.
var bedrockImageFormats = map[string]string{
	"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp",
}

// DecodeBedrockRequest reads the body of a Bedrock Converse request. The
// model and the stream flag are in the URL: the caller sets r.Model and
// r.Stream.
//
// What the neutral form cannot carry is refused with a 400 naming the
// block, rather than dropped: dropping a document or an image would make
// another provider answer a different question. That covers document,
// video and audio blocks and images stored in S3 (the gateway fetches
// nothing). Cache points are ignored (they only steer Bedrock's prompt
// cache), system tools are dropped like the Responses API's built-in
// tools, tool results given as JSON become their JSON text, and guard
// content becomes plain text. Of additionalModelRequestFields the
// Anthropic-style thinking, reasoning_effort (OpenAI models on Bedrock)
// and reasoningConfig (Nova) are read; other members, like the other
// decoders' unheld fields, are not translated.
func DecodeBedrockRequest(body []byte) (*ChatRequest, *Error) {
	// gjson reads invalid JSON leniently; raw members (schemas, tool
	// inputs) must be JSON to be re-encoded.
	if !gjson.ValidBytes(body) {
		return nil, bedrockErr("", "request body is not valid JSON")
	}
	root := readTop(body)
	r := &ChatRequest{}
	if err := bedrockSystem(root.Get("system"), r); err != nil {
		return nil, err
	}
	msgs := root.Get("messages")
	if msgs.Exists() && msgs.Type != gjson.Null && !msgs.IsArray() {
		return nil, bedrockErr("messages", "messages must be an array")
	}
	var err *Error
	i := -1
	each(msgs, func(_, m gjson.Result) bool {
		i++
		err = bedrockMessage(m, i, r)
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	if err := bedrockInference(root.Get("inferenceConfig"), r); err != nil {
		return nil, err
	}
	if err := bedrockTools(root.Get("toolConfig"), r); err != nil {
		return nil, err
	}
	extra := root.Get("additionalModelRequestFields")
	switch th := extra.Get("thinking"); th.Get("type").Str {
	case "enabled":
		r.ThinkingBudget = int(th.Get("budget_tokens").Int())
		if r.ThinkingBudget <= 0 {
			r.ThinkingBudget = 4096
		}
	case "adaptive":
		r.ReasoningEffort = "medium"
	}
	for _, path := range []string{"output_config.effort", "reasoning_effort", "reasoningConfig.maxReasoningEffort"} {
		if e := extra.Get(path); e.Type == gjson.String && e.Str != "" {
			r.ReasoningEffort = e.Str
			break
		}
	}
	if f := root.Get("outputConfig.textFormat"); f.Get("type").Str == "json_schema" {
		js := f.Get("structure.jsonSchema")
		schema := js.Get("schema")
		if schema.Type != gjson.String || !gjson.Valid(schema.Str) {
			return nil, bedrockErr("outputConfig", "outputConfig.textFormat.structure.jsonSchema.schema must be a JSON schema in a string")
		}
		r.ResponseFormat = &ResponseFormat{Type: "json_schema", Name: js.Get("name").Str, Schema: schema.Str, Strict: true}
	}
	return r, nil
}

func bedrockErr(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Param: param, Message: msg}
}

// bedrockLoc names a block in error messages, e.g.
// "messages[2].content[0].toolResult.content[1]". The name is only built
// when there is an error: decoding allocates nothing per block for it.
type bedrockLoc struct {
	field   string // the top-level member: "messages" or "system"
	i, j, k int    // message, block and tool-result content index (< 0: none)
}

func (l bedrockLoc) String() string {
	s := fmt.Sprintf("%s[%d]", l.field, l.i)
	if l.j >= 0 {
		s += fmt.Sprintf(".content[%d]", l.j)
	}
	if l.k >= 0 {
		s += fmt.Sprintf(".toolResult.content[%d]", l.k)
	}
	return s
}

// err is a 400 about the block: its name, then what (".text must be...").
func (l bedrockLoc) err(what string) *Error { return bedrockErr(l.field, l.String()+what) }

// bedrockMember returns the one member of a union object (null members
// do not count).
func bedrockMember(b gjson.Result, loc bedrockLoc) (string, gjson.Result, *Error) {
	if !b.IsObject() {
		return "", gjson.Result{}, loc.err(" must be an object")
	}
	var name string
	var val gjson.Result
	n := 0
	b.ForEach(func(k, v gjson.Result) bool {
		if v.Type != gjson.Null {
			name, val, n = k.Str, v, n+1
		}
		return n < 2
	})
	if n != 1 {
		return "", gjson.Result{}, loc.err(" must have exactly one member (text, image, toolUse, toolResult, reasoningContent...)")
	}
	return name, val, nil
}

func bedrockSystem(s gjson.Result, r *ChatRequest) *Error {
	if !s.Exists() || s.Type == gjson.Null {
		return nil
	}
	if !s.IsArray() {
		return bedrockErr("system", "system must be an array of blocks")
	}
	var err *Error
	i := -1
	each(s, func(_, b gjson.Result) bool {
		i++
		loc := bedrockLoc{"system", i, -1, -1}
		var name string
		var v gjson.Result
		if name, v, err = bedrockMember(b, loc); err != nil {
			return false
		}
		switch name {
		case "text":
			if v.Type != gjson.String {
				err = loc.err(".text must be a string")
				return false
			}
			r.System = append(r.System, Part{Type: PartText, Text: v.Str})
		case "guardContent":
			t := v.Get("text.text")
			if t.Type != gjson.String {
				err = loc.err(".guardContent: only text guard content can be translated")
				return false
			}
			r.System = append(r.System, Part{Type: PartText, Text: t.Str})
		case "cachePoint":
		default:
			err = loc.err(": " + name + " blocks cannot be translated to another provider")
			return false
		}
		return true
	})
	return err
}

// bedrockMessage reads one message into r: tool results become tool
// messages (one per result, in order, before the rest of the user turn).
func bedrockMessage(m gjson.Result, i int, r *ChatRequest) *Error {
	mloc := bedrockLoc{"messages", i, -1, -1}
	role := m.Get("role").Str
	if role != "user" && role != "assistant" {
		return mloc.err(fmt.Sprintf(".role must be user or assistant, not %q", m.Get("role").String()))
	}
	c := m.Get("content")
	if !c.IsArray() {
		return mloc.err(".content must be an array of blocks")
	}
	var parts, results []Part
	var err *Error
	j := -1
	each(c, func(_, b gjson.Result) bool {
		j++
		loc := bedrockLoc{"messages", i, j, -1}
		var p Part
		var ok bool
		if p, ok, err = bedrockBlock(b, loc); err != nil || !ok {
			return err == nil
		}
		switch {
		case p.Type == PartToolResult && role == "assistant":
			err = loc.err(": toolResult blocks belong in user messages")
		case (p.Type == PartToolCall || p.Type == PartThinking || p.Type == PartRedactedThinking) && role == "user":
			err = loc.err(": toolUse and reasoningContent blocks belong in assistant messages")
		case p.Type == PartToolResult:
			results = append(results, p)
		default:
			parts = append(parts, p)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if role == "assistant" {
		r.Messages = append(r.Messages, Message{Role: RoleAssistant, Parts: parts})
		return nil
	}
	for _, p := range results {
		r.Messages = append(r.Messages, Message{Role: RoleTool, Parts: []Part{p}})
	}
	if len(parts) > 0 {
		r.Messages = append(r.Messages, Message{Role: RoleUser, Parts: parts})
	}
	return nil
}

// bedrockBlock reads one content block (of a message or, for answers, of
// the output message). ok is false for blocks with nothing to translate
// (cache points).
func bedrockBlock(b gjson.Result, loc bedrockLoc) (Part, bool, *Error) {
	name, v, err := bedrockMember(b, loc)
	if err != nil {
		return Part{}, false, err
	}
	switch name {
	case "text":
		if v.Type != gjson.String {
			return Part{}, false, loc.err(".text must be a string")
		}
		return Part{Type: PartText, Text: v.Str}, true, nil
	case "image":
		p, err := bedrockImagePart(v, loc, ".image")
		return p, err == nil, err
	case "toolUse":
		args := "{}"
		if in := v.Get("input"); in.Exists() && in.Type != gjson.Null {
			args = in.Raw
		}
		return Part{Type: PartToolCall, ID: v.Get("toolUseId").Str, Name: v.Get("name").Str, Args: args}, true, nil
	case "toolResult":
		p := Part{Type: PartToolResult, ID: v.Get("toolUseId").Str, IsError: v.Get("status").Str == "error"}
		var err *Error
		k := -1
		each(v.Get("content"), func(_, c gjson.Result) bool {
			k++
			cloc := loc
			cloc.k = k
			var cname string
			var cv gjson.Result
			if cname, cv, err = bedrockMember(c, cloc); err != nil {
				return false
			}
			switch cname {
			case "text":
				p.Content = append(p.Content, Part{Type: PartText, Text: cv.Str})
			case "json":
				// The model sees JSON results as their text anyway.
				p.Content = append(p.Content, Part{Type: PartText, Text: string(appendCompact(nil, cv.Raw))})
			case "image":
				var ip Part
				if ip, err = bedrockImagePart(cv, cloc, ".image"); err != nil {
					return false
				}
				p.Content = append(p.Content, ip)
			default:
				err = cloc.err(": " + cname + " tool results cannot be translated to another provider")
				return false
			}
			return true
		})
		return p, err == nil, err
	case "reasoningContent":
		if t := v.Get("reasoningText"); t.IsObject() {
			return Part{Type: PartThinking, Text: t.Get("text").Str, Signature: t.Get("signature").Str}, true, nil
		}
		if d := v.Get("redactedContent"); d.Type == gjson.String {
			return Part{Type: PartRedactedThinking, Data: d.Str}, true, nil
		}
		return Part{}, false, loc.err(".reasoningContent needs reasoningText or redactedContent")
	case "guardContent":
		if t := v.Get("text.text"); t.Type == gjson.String {
			return Part{Type: PartText, Text: t.Str}, true, nil
		}
		return Part{}, false, loc.err(".guardContent: only text guard content can be translated")
	case "cachePoint":
		return Part{}, false, nil
	}
	return Part{}, false, loc.err(": " + name + " blocks cannot be translated to another provider")
}

// bedrockImagePart reads an image block {format, source:{bytes}}.
func bedrockImagePart(v gjson.Result, loc bedrockLoc, at string) (Part, *Error) {
	src := v.Get("source")
	if src.Get("s3Location").Exists() {
		return Part{}, loc.err(at + ".source.s3Location: the gateway does not fetch S3 objects; send the image as bytes")
	}
	data := src.Get("bytes")
	if data.Type != gjson.String || data.Str == "" {
		return Part{}, loc.err(at + ".source.bytes must hold the base64 image")
	}
	format := v.Get("format").Str
	switch format {
	case "png", "jpeg", "gif", "webp":
	default:
		return Part{}, loc.err(fmt.Sprintf("%s.format must be png, jpeg, gif or webp, not %q", at, format))
	}
	return Part{Type: PartImage, MediaType: "image/" + format, Data: data.Str}, nil
}

func bedrockInference(c gjson.Result, r *ChatRequest) *Error {
	if !c.Exists() || c.Type == gjson.Null {
		return nil
	}
	if !c.IsObject() {
		return bedrockErr("inferenceConfig", "inferenceConfig must be an object")
	}
	if mt := c.Get("maxTokens"); mt.Exists() && mt.Type != gjson.Null {
		if mt.Type != gjson.Number {
			return bedrockErr("inferenceConfig", "inferenceConfig.maxTokens must be an integer")
		}
		r.MaxTokens = int(mt.Int())
	}
	r.Temperature = optFloat(c.Get("temperature"))
	r.TopP = optFloat(c.Get("topP"))
	each(c.Get("stopSequences"), func(_, s gjson.Result) bool { r.Stop = append(r.Stop, s.Str); return true })
	return nil
}

func bedrockTools(tc gjson.Result, r *ChatRequest) *Error {
	if !tc.Exists() || tc.Type == gjson.Null {
		return nil
	}
	if !tc.IsObject() {
		return bedrockErr("toolConfig", "toolConfig must be an object")
	}
	each(tc.Get("tools"), func(_, t gjson.Result) bool {
		// cachePoint and systemTool entries: nothing another provider
		// could be offered.
		if spec := t.Get("toolSpec"); spec.IsObject() {
			schema := spec.Get("inputSchema.json").Raw
			if schema == "" {
				schema = `{"type":"object","properties":{}}`
			}
			r.Tools = append(r.Tools, Tool{Name: spec.Get("name").Str, Description: spec.Get("description").Str, Schema: schema})
		}
		return true
	})
	switch c := tc.Get("toolChoice"); {
	case c.Get("auto").IsObject():
		r.ToolChoice = &ToolChoice{Mode: "auto"}
	case c.Get("any").IsObject():
		r.ToolChoice = &ToolChoice{Mode: "required"}
	case c.Get("tool").IsObject():
		r.ToolChoice = &ToolChoice{Mode: "tool", Name: c.Get("tool.name").Str}
	}
	return nil
}

// bedrockToolID makes a tool-call id fit Converse's toolUseId pattern
// ([a-zA-Z0-9_-]{1,64}): some OpenAI-compatible hosts use ids such as
// "functions.get_weather:0". The same id always maps to the same result,
// so a call and its result still match.
func bedrockToolID(id string) string {
	ok := len(id) > 0 && len(id) <= 64
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		ok = c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if ok {
		return id
	}
	b := []byte(id)
	for i, c := range b {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "tooluse_empty"
	}
	return string(b)
}

// bedrockImage renders an image part; Converse takes bytes only.
func bedrockImage(p Part) (map[string]any, error) {
	mt, data := p.MediaType, p.Data
	if data == "" {
		ip := imagePart(p.URL) // a data: URL carries the bytes
		if ip.Data == "" {
			return nil, ErrImageURL
		}
		mt, data = ip.MediaType, ip.Data
	}
	if mt == "" {
		mt = sniffImage(data)
	}
	format, ok := bedrockImageFormats[strings.ToLower(mt)]
	if !ok {
		return nil, fmt.Errorf("Bedrock takes png, jpeg, gif and webp images; the request has %s", mt)
	}
	return map[string]any{"image": map[string]any{"format": format, "source": map[string]any{"bytes": data}}}, nil
}

// bedrockToolResult renders a tool result. Text goes as text blocks even
// when it is JSON: it is what the tool returned, byte for byte, and the
// model reads a json block as text anyway. An empty result still needs a
// non-blank block.
func bedrockToolResult(p Part) (map[string]any, error) {
	content := []map[string]any{}
	for _, c := range p.Content {
		switch c.Type {
		case PartText:
			if strings.TrimSpace(c.Text) != "" {
				content = append(content, map[string]any{"text": c.Text})
			}
		case PartImage:
			img, err := bedrockImage(c)
			if err != nil {
				return nil, err
			}
			content = append(content, img)
		}
	}
	if len(content) == 0 {
		text := "(no output)"
		if p.IsError {
			text = "error"
		}
		content = append(content, map[string]any{"text": text})
	}
	tr := map[string]any{"toolUseId": bedrockToolID(p.ID), "content": content}
	if p.IsError {
		tr["status"] = "error"
	}
	return map[string]any{"toolResult": tr}, nil
}

// bedrockBlockOf renders one part as a Converse content block; ok is
// false for parts with nothing to send (blank text, unsigned thinking).
func bedrockBlockOf(p Part) (map[string]any, bool, error) {
	switch p.Type {
	case PartText:
		// Converse rejects blank text blocks.
		if strings.TrimSpace(p.Text) == "" {
			return nil, false, nil
		}
		return map[string]any{"text": p.Text}, true, nil
	case PartImage:
		b, err := bedrockImage(p)
		return b, err == nil, err
	case PartToolCall:
		args := json.RawMessage(p.Args)
		if !gjson.Valid(p.Args) || !gjson.Parse(p.Args).IsObject() {
			args = json.RawMessage(`{}`)
		}
		return map[string]any{"toolUse": map[string]any{"toolUseId": bedrockToolID(p.ID), "name": p.Name, "input": args}}, true, nil
	case PartToolResult:
		b, err := bedrockToolResult(p)
		return b, err == nil, err
	case PartThinking:
		if p.Signature == "" {
			// Reasoning from a provider without signatures cannot be
			// replayed to Claude, which checks them.
			return nil, false, nil
		}
		// text stays even when empty: Bedrock needs the member for a
		// signature-only block.
		return map[string]any{"reasoningContent": map[string]any{"reasoningText": map[string]any{"text": p.Text, "signature": p.Signature}}}, true, nil
	case PartRedactedThinking:
		if p.Data == "" {
			return nil, false, nil
		}
		return map[string]any{"reasoningContent": map[string]any{"redactedContent": p.Data}}, true, nil
	}
	return nil, false, nil
}

// bedrockPlaceholderTool is declared when the conversation holds tool
// calls but the request offers no tools (or tool choice "none", which
// Converse cannot say): Converse refuses toolUse and toolResult blocks
// without a toolConfig, and declaring the real tools would let the model
// call them.
var bedrockPlaceholderTool = map[string]any{"toolSpec": map[string]any{"name": "no_tool_available",
	"description": "No tool is available in this turn. Do not call it.",
	"inputSchema": map[string]any{"json": map[string]any{"type": "object", "properties": map[string]any{}}}}}

// EncodeBedrockRequest writes r as the body of a Converse request (no
// model and no stream flag: both go in the URL).
//
// Converse needs alternating roles, so consecutive turns of one role are
// merged: tool results (tool messages) go in one user message as several
// toolResult blocks, and user text right after them joins that message.
// System messages later in the conversation join the system blocks.
// Images must be bytes: data: URLs are decoded, http(s) URLs are an error
// (ErrImageURL). Signed thinking becomes reasoningContent (a
// signature-only block keeps reasoningText.text ""), redacted thinking
// redactedContent, and unsigned reasoning from other providers is
// dropped.
//
// A thinking budget (ThinkingBudget, or ReasoningEffort for a reasoning
// target) goes in additionalModelRequestFields.thinking as
// {"type":"enabled","budget_tokens":N}: the shape Anthropic models on
// Bedrock take; other model families reject it, so it is only sent when
// the client asked for reasoning. As with Anthropic, thinking stays off
// when an assistant turn that calls tools lacks its signed thinking, and
// temperature and topP are left out while it is on. maxTokens is
// MaxTokens or o.DefaultMaxTokens (raised above the budget). Converse has
// no tool choice "none": the tools are left out, and only a placeholder
// tool is declared when the history holds tool calls (Converse requires a
// toolConfig then). A json_schema response format becomes
// outputConfig.textFormat; json_object has no Converse equivalent and is
// dropped, as for Anthropic.
func EncodeBedrockRequest(r *ChatRequest, o EncodeOptions) ([]byte, error) {
	var system []map[string]any
	addSystem := func(parts []Part) {
		for _, p := range parts {
			if p.Type == PartText && strings.TrimSpace(p.Text) != "" {
				system = append(system, map[string]any{"text": p.Text})
			}
		}
	}
	addSystem(r.System)
	var turns turns
	ids := map[string]string{} // ids generated for tool calls that had none, by tool name
	toolBlocks := false
	for _, m := range r.Messages {
		if m.Role == RoleSystem {
			addSystem(m.Parts)
			continue
		}
		var blocks []map[string]any
		for _, p := range m.Parts {
			switch {
			case p.Type == PartToolCall && p.ID == "":
				p.ID = NewID("tooluse_")
				ids[p.Name] = p.ID
			case p.Type == PartToolResult && p.ID == "":
				p.ID = ids[p.Name]
			case p.Type == PartThinking && isGeminiSig(p.Signature):
				// Gemini's signatures mean nothing to Claude on
				// Bedrock, which would refuse the block.
				continue
			}
			b, ok, err := bedrockBlockOf(p)
			if err != nil {
				return nil, err
			}
			if ok {
				blocks = append(blocks, b)
				toolBlocks = toolBlocks || p.Type == PartToolCall || p.Type == PartToolResult
			}
		}
		if m.Role == RoleAssistant {
			turns.add("assistant", blocks)
		} else {
			turns.add("user", blocks)
		}
	}
	msgs := make([]map[string]any, 0, len(turns))
	for _, t := range turns {
		msgs = append(msgs, map[string]any{"role": t.role, "content": t.blocks})
	}
	req := map[string]any{"messages": msgs}
	if len(system) > 0 {
		req["system"] = system
	}
	inf := map[string]any{}
	extra := map[string]any{}
	maxTokens := r.MaxTokens
	if maxTokens <= 0 {
		maxTokens = o.DefaultMaxTokens
	}
	budget := r.ThinkingBudget
	if budget == 0 && r.ReasoningEffort != "" && r.ReasoningEffort != "none" && o.Reasoning {
		budget = effortBudget(r.ReasoningEffort)
	}
	if budget > 0 && (!turns.toolTurnsSigned(bedrockCall, bedrockSigned) || !bedrockClaude(o.Model)) {
		// Only Claude on Bedrock takes this thinking shape; Nova,
		// DeepSeek or gpt-oss would refuse the request with it.
		budget = 0
	}
	if budget > 0 {
		if budget < 1024 {
			budget = 1024
		}
		if maxTokens <= 0 {
			maxTokens = 4096
		}
		if maxTokens <= budget {
			maxTokens += budget
		}
		extra["thinking"] = map[string]any{"type": "enabled", "budget_tokens": budget}
	} else {
		if r.Temperature != nil {
			inf["temperature"] = min(*r.Temperature, 1) // Converse's range is 0..1, OpenAI's 0..2
		}
		if r.TopP != nil && r.Temperature == nil {
			inf["topP"] = *r.TopP
		}
	}
	if maxTokens > 0 {
		inf["maxTokens"] = maxTokens
	}
	if len(r.Stop) > 0 {
		inf["stopSequences"] = r.Stop
	}
	if len(inf) > 0 {
		req["inferenceConfig"] = inf
	}
	if len(extra) > 0 {
		req["additionalModelRequestFields"] = extra
	}
	mode := ""
	if r.ToolChoice != nil {
		mode = r.ToolChoice.Mode
	}
	var tools []map[string]any
	if mode != "none" {
		for _, t := range r.Tools {
			spec := map[string]any{"name": t.Name, "inputSchema": map[string]any{"json": json.RawMessage(t.Schema)}}
			if t.Description != "" {
				spec["description"] = t.Description
			}
			tools = append(tools, map[string]any{"toolSpec": spec})
		}
	}
	switch {
	case len(tools) > 0:
		tc := map[string]any{"tools": tools}
		switch mode {
		case "required":
			tc["toolChoice"] = map[string]any{"any": map[string]any{}}
		case "tool":
			tc["toolChoice"] = map[string]any{"tool": map[string]any{"name": r.ToolChoice.Name}}
		case "auto":
			tc["toolChoice"] = map[string]any{"auto": map[string]any{}}
		}
		req["toolConfig"] = tc
	case toolBlocks:
		req["toolConfig"] = map[string]any{"tools": []any{bedrockPlaceholderTool}}
	}
	if rf := r.ResponseFormat; rf != nil && rf.Type == "json_schema" && gjson.Valid(rf.Schema) {
		js := map[string]any{"schema": string(appendCompact(nil, rf.Schema))}
		if rf.Name != "" {
			js["name"] = rf.Name
		}
		req["outputConfig"] = map[string]any{"textFormat": map[string]any{"type": "json_schema", "structure": map[string]any{"jsonSchema": js}}}
	}
	return json.Marshal(req)
}

// bedrockCall and bedrockSigned tell a tool call and a reasoning block
// apart among encoded content blocks (toolTurnsSigned).
func bedrockCall(b map[string]any) bool { _, ok := b["toolUse"]; return ok }

func bedrockSigned(b map[string]any) bool { _, ok := b["reasoningContent"]; return ok }

// stopFromBedrock maps a Converse stopReason (see the notes' table):
// guardrails and content filters are a content filter, the context
// window a token limit, malformed output a plain end (the raw value stays
// in NativeStop).
func stopFromBedrock(s string) StopReason {
	switch s {
	case "max_tokens", "model_context_window_exceeded":
		return StopMaxTokens
	case "stop_sequence":
		return StopSequence
	case "tool_use":
		return StopToolUse
	case "guardrail_intervened", "content_filtered":
		return StopContentFilter
	}
	return StopEnd
}

// bedrockStop is the Converse stopReason for s: native when it is a
// Converse value that means s (so guardrail_intervened or
// model_context_window_exceeded survive a round trip).
func bedrockStop(s StopReason, native string) string {
	switch native {
	case "end_turn", "tool_use", "max_tokens", "stop_sequence", "guardrail_intervened", "content_filtered",
		"malformed_model_output", "malformed_tool_use", "model_context_window_exceeded":
		if stopFromBedrock(native) == s {
			return native
		}
	}
	switch s {
	case StopMaxTokens:
		return "max_tokens"
	case StopSequence:
		return "stop_sequence"
	case StopToolUse:
		return "tool_use"
	case StopContentFilter:
		return "content_filtered"
	}
	return "end_turn"
}

// bedrockUsage reads a Converse usage object. inputTokens counts only the
// input read neither from nor into the cache (AWS: total input =
// inputTokens + cacheReadInputTokens + cacheWriteInputTokens, as with
// Anthropic), so Input adds the cache counts back.
func bedrockUsage(v gjson.Result) (u Usage, ok bool) {
	if !v.IsObject() {
		return u, false
	}
	cr := int(v.Get("cacheReadInputTokens").Int())
	cw := int(v.Get("cacheWriteInputTokens").Int())
	u = Usage{Input: int(v.Get("inputTokens").Int()) + cr + cw, CachedInput: cr, CacheWrite: cw, Output: int(v.Get("outputTokens").Int())}
	return u, true
}

// appendBedrockUsage appends u as a Converse usage object: inputTokens
// without the cache counts, totalTokens with them.
func appendBedrockUsage(out []byte, u Usage) []byte {
	in := max(u.Input-u.CachedInput-u.CacheWrite, 0)
	out = append(out, `{"inputTokens":`...)
	out = appendInt(out, int64(in))
	out = append(out, `,"outputTokens":`...)
	out = appendInt(out, int64(u.Output))
	out = append(out, `,"totalTokens":`...)
	out = appendInt(out, int64(in+u.CachedInput+u.CacheWrite+u.Output))
	if u.CachedInput > 0 {
		out = append(out, `,"cacheReadInputTokens":`...)
		out = appendInt(out, int64(u.CachedInput))
	}
	if u.CacheWrite > 0 {
		out = append(out, `,"cacheWriteInputTokens":`...)
		out = appendInt(out, int64(u.CacheWrite))
	}
	return append(out, '}')
}

// DecodeBedrockResponse reads a Converse answer. It names neither an id
// nor the model (both are left empty, as for Ollama).
func DecodeBedrockResponse(body []byte) (*ChatResponse, error) {
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("provider answer is not valid JSON")
	}
	root := gjson.ParseBytes(body)
	msg := root.Get("output.message")
	if !msg.IsObject() {
		return nil, fmt.Errorf("provider answer has no output message")
	}
	r := &ChatResponse{NativeStop: root.Get("stopReason").Str}
	i := -1
	each(msg.Get("content"), func(_, b gjson.Result) bool {
		i++
		if c := b.Get("citationsContent"); c.IsObject() {
			// Cited text: the text is kept, the citations are not.
			var t strings.Builder
			each(c.Get("content"), func(_, g gjson.Result) bool { t.WriteString(g.Get("text").Str); return true })
			r.Parts = append(r.Parts, Part{Type: PartText, Text: t.String()})
			return true
		}
		// Blocks an answer cannot hold, or does not need, are skipped.
		if p, ok, err := bedrockBlock(b, bedrockLoc{"output.message.content", i, -1, -1}); err == nil && ok && p.Type != PartToolResult {
			r.Parts = append(r.Parts, p)
		}
		return true
	})
	ensureToolIDs(r.Parts)
	r.Stop = stopFromBedrock(r.NativeStop)
	if r.Stop == StopToolUse && !hasToolCall(r.Parts) {
		r.Stop = StopEnd
	}
	if s := root.Get("additionalModelResponseFields.stop_sequence"); s.Type == gjson.String {
		r.StopSequence = s.Str
	}
	r.Usage, _ = bedrockUsage(root.Get("usage"))
	return r, nil
}

// EncodeBedrockResponse writes r as a Converse answer, in the shape the
// AWS SDK's deserializer reads (output.message, stopReason, usage,
// metrics). Converse answers do not name the model, so model is unused;
// the latency is not known here and is written as 0.
func EncodeBedrockResponse(r *ChatResponse, model string) ([]byte, error) {
	_ = model
	content := []map[string]any{}
	for _, p := range r.Parts {
		switch p.Type {
		case PartText, PartRedactedThinking:
			if b, ok, err := bedrockBlockOf(p); err != nil {
				return nil, err
			} else if ok {
				content = append(content, b)
			}
		case PartToolCall:
			// The id stays as the provider gave it (unlike in requests to
			// Bedrock): the client sends it back with the result.
			args := json.RawMessage(p.Args)
			if !gjson.Valid(p.Args) || !gjson.Parse(p.Args).IsObject() {
				args = json.RawMessage(`{}`)
			}
			content = append(content, map[string]any{"toolUse": map[string]any{"toolUseId": p.ID, "name": p.Name, "input": args}})
		case PartThinking:
			// Answers may carry reasoning without a signature (from
			// providers that have none).
			if p.Text == "" && p.Signature == "" {
				continue
			}
			rt := map[string]any{"text": p.Text}
			if p.Signature != "" {
				rt["signature"] = p.Signature
			}
			content = append(content, map[string]any{"reasoningContent": map[string]any{"reasoningText": rt}})
		}
	}
	stop := r.Stop
	if stop == StopToolUse && !hasToolCall(r.Parts) {
		stop = StopEnd
	}
	out := map[string]any{
		"output":     map[string]any{"message": map[string]any{"role": "assistant", "content": content}},
		"stopReason": bedrockStop(stop, r.NativeStop),
		"usage":      json.RawMessage(appendBedrockUsage(nil, r.Usage)),
		"metrics":    map[string]any{"latencyMs": 0},
	}
	if r.StopSequence != "" {
		out["additionalModelResponseFields"] = map[string]any{"stop_sequence": r.StopSequence}
	}
	return json.Marshal(out)
}

// BedrockErrorType is the exception name for an error the gateway answers
// a Bedrock client with, for the x-amzn-ErrorType header (the AWS SDKs
// pick the error type from it; ErrorBody puts it in __type too).
func BedrockErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UnrecognizedClientException"
	case http.StatusForbidden, http.StatusPaymentRequired:
		return "AccessDeniedException"
	case http.StatusNotFound:
		return "ResourceNotFoundException"
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return "ModelTimeoutException"
	case http.StatusConflict:
		return "ConflictException"
	case http.StatusFailedDependency, http.StatusBadGateway:
		return "ModelErrorException"
	case http.StatusTooManyRequests:
		return "ThrottlingException"
	case http.StatusServiceUnavailable, 529:
		return "ServiceUnavailableException"
	}
	if status >= 500 {
		return "InternalServerException"
	}
	return "ValidationException"
}

// bedrockStreamException is the ConverseStream exception (its event-type
// spelling) for an error status: the five a ConverseStream can raise, so
// the AWS SDKs decode it as their typed error.
func bedrockStreamException(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "throttlingException"
	case status == http.StatusServiceUnavailable || status == 529:
		return "serviceUnavailableException"
	case status == http.StatusBadGateway || status == http.StatusGatewayTimeout || status == http.StatusFailedDependency:
		return "modelStreamErrorException"
	case status >= 500 || status == 0:
		return "internalServerException"
	}
	return "validationException"
}

// statusFromBedrockException maps a Bedrock exception name (either
// spelling, with or without a namespace) to the status the gateway
// answers with: the notes' exception table, except that a model's own
// failure (ModelErrorException's 424, a stream error) is a 502 and a model
// timeout a 504, statuses every client understands.
func statusFromBedrockException(name string, fallback int) int {
	name = bedrockErrorName(name)
	switch strings.ToLower(name) {
	case "validationexception", "conflictexception", "servicequotaexceededexception":
		return http.StatusBadRequest
	case "unrecognizedclientexception":
		return http.StatusUnauthorized
	case "accessdeniedexception":
		return http.StatusForbidden
	case "resourcenotfoundexception":
		return http.StatusNotFound
	case "modeltimeoutexception":
		return http.StatusGatewayTimeout
	case "modelerrorexception", "modelstreamerrorexception":
		return http.StatusBadGateway
	case "throttlingexception", "modelnotreadyexception":
		return http.StatusTooManyRequests
	case "internalserverexception":
		return http.StatusInternalServerError
	case "serviceunavailableexception":
		return http.StatusServiceUnavailable
	}
	return fallback
}

// bedrockErrorName strips what AWS may put around an exception name
// ("aws.protocols#ThrottlingException:http://..." → "ThrottlingException").
func bedrockErrorName(name string) string {
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, '#'); i >= 0 {
		name = name[i+1:]
	}
	return strings.TrimSpace(name)
}

// bedrockClaude reports whether a Bedrock model id (or inference
// profile or ARN) names an Anthropic model. An empty id (no target
// known) counts as one.
func bedrockClaude(model string) bool {
	m := strings.ToLower(model)
	return m == "" || strings.Contains(m, "anthropic") || strings.Contains(m, "claude")
}

// bedrockUpstreamError reads a Bedrock HTTP error: {"message":...} (or
// "Message"), the exception name in __type or, as real Bedrock sends it,
// only in the X-Amzn-Errortype header (errType). The message names the
// exception; the status is the provider's, except where
// statusFromBedrockException restates it.
func bedrockUpstreamError(status int, errType string, body []byte, msg string) (int, string) {
	var name string
	if gjson.ValidBytes(body) {
		r := gjson.GetManyBytes(body, "__type", "code", "Message")
		name = bedrockErrorName(r[0].Str)
		if name == "" {
			name = bedrockErrorName(r[1].Str)
		}
		if msg == "" {
			msg = r[2].Str
		}
	}
	if name == "" {
		name = bedrockErrorName(errType)
	}
	if name == "" {
		return status, msg
	}
	if msg == "" {
		msg = name
	} else {
		msg = name + ": " + msg
	}
	switch s := statusFromBedrockException(name, status); s {
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		status = s
	}
	return status, msg
}
