package dialects

import "github.com/tidwall/gjson"

// Shapes of what the neutral request holds, per client dialect: a member
// whose value fits its shape is fully held by the neutral request (so
// the cache key may take it from there, whatever the dialect); one that
// does not (an unknown part type, a field the decoders do not read) goes
// into the key as wholeV JSON as well. Null members count as absent.

// shape says whether a JSON value is fully held.
type shape interface{ held(v gjson.Result) bool }

// whole: any value, held as it is (text, numbers, JSON schemas).
type whole struct{}

func (whole) held(gjson.Result) bool { return true }

// scalar: a string, number, boolean or null.
type scalar struct{}

func (scalar) held(v gjson.Result) bool { return !v.IsObject() && !v.IsArray() }

// obj: an object with only these members.
type obj map[string]shape

func (o obj) held(v gjson.Result) bool {
	if !v.IsObject() {
		return false
	}
	ok := true
	v.ForEach(func(k, m gjson.Result) bool {
		if m.Type == gjson.Null {
			return true
		}
		s, known := o[k.Str]
		ok = known && s.held(m)
		return ok
	})
	return ok
}

// list: an array of values of one shape.
type list struct{ of shape }

func (l list) held(v gjson.Result) bool {
	if !v.IsArray() {
		return false
	}
	ok := true
	v.ForEach(func(_, e gjson.Result) bool { ok = l.of.held(e); return ok })
	return ok
}

// oneOf: any of the shapes.
type oneOf []shape

func (o oneOf) held(v gjson.Result) bool {
	for _, s := range o {
		if s.held(v) {
			return true
		}
	}
	return false
}

// typed: an object whose "type" member picks its shape ("" for none).
type typed map[string]shape

func (t typed) held(v gjson.Result) bool {
	if !v.IsObject() {
		return false
	}
	s, ok := t[v.Get("type").Str]
	return ok && s.held(v)
}

var (
	leafV  = scalar{}
	wholeV = whole{}

	openAIPartShape = typed{
		"text":      obj{"type": leafV, "text": leafV},
		"image_url": obj{"type": leafV, "image_url": oneOf{leafV, obj{"url": leafV}}},
	}
	openAIToolCallShape = obj{"id": leafV, "type": leafV, "function": obj{"name": leafV, "arguments": leafV}}
	openAIShapes        = map[string]shape{
		"messages": list{obj{"role": leafV, "content": oneOf{leafV, list{openAIPartShape}}, "tool_calls": list{openAIToolCallShape},
			"tool_call_id": leafV, "reasoning_content": leafV, "reasoning": leafV}},
		"tools":           list{obj{"type": leafV, "function": obj{"name": leafV, "description": leafV, "parameters": wholeV}}},
		"tool_choice":     oneOf{leafV, obj{"type": leafV, "function": obj{"name": leafV}}},
		"response_format": obj{"type": leafV, "json_schema": obj{"name": leafV, "schema": wholeV, "strict": leafV}},
		"reasoning":       obj{"effort": leafV},
		"stop":            oneOf{leafV, list{leafV}},
	}

	anthropicTextShape  = obj{"type": leafV, "text": leafV, "cache_control": wholeV}
	anthropicImageShape = obj{"type": leafV, "cache_control": wholeV, "source": typed{
		"base64": obj{"type": leafV, "media_type": leafV, "data": leafV},
		"url":    obj{"type": leafV, "url": leafV},
	}}
	anthropicBlockShape = typed{
		"text":     anthropicTextShape,
		"image":    anthropicImageShape,
		"tool_use": obj{"type": leafV, "id": leafV, "name": leafV, "input": wholeV, "cache_control": wholeV},
		"tool_result": obj{"type": leafV, "tool_use_id": leafV, "is_error": leafV, "cache_control": wholeV,
			"content": oneOf{leafV, list{typed{"text": anthropicTextShape, "image": anthropicImageShape}}}},
		"thinking":          obj{"type": leafV, "thinking": leafV, "signature": leafV},
		"redacted_thinking": obj{"type": leafV, "data": leafV},
	}
	anthropicShapes = map[string]shape{
		"system":         oneOf{leafV, list{typed{"text": anthropicTextShape}}},
		"messages":       list{obj{"role": leafV, "content": oneOf{leafV, list{anthropicBlockShape}}}},
		"tools":          list{obj{"type": leafV, "name": leafV, "description": leafV, "input_schema": wholeV, "cache_control": wholeV}},
		"tool_choice":    obj{"type": leafV, "name": leafV, "disable_parallel_tool_use": leafV},
		"thinking":       obj{"type": leafV, "budget_tokens": leafV},
		"output_config":  obj{"effort": leafV, "format": obj{"type": leafV, "schema": wholeV}},
		"stop_sequences": list{leafV},
	}

	responsesTextShape = obj{"type": leafV, "text": leafV, "annotations": wholeV, "logprobs": wholeV}
	responsesPartShape = typed{
		"input_text":  responsesTextShape,
		"output_text": responsesTextShape,
		"input_image": obj{"type": leafV, "image_url": leafV},
	}
	responsesMessageShape = obj{"type": leafV, "role": leafV, "id": leafV, "status": leafV, "content": oneOf{leafV, list{responsesPartShape}}}
	responsesShapes       = map[string]shape{
		"input": oneOf{leafV, list{typed{
			"":                     responsesMessageShape,
			"message":              responsesMessageShape,
			"function_call":        obj{"type": leafV, "call_id": leafV, "name": leafV, "arguments": leafV, "id": leafV, "status": leafV},
			"function_call_output": obj{"type": leafV, "call_id": leafV, "id": leafV, "status": leafV, "output": oneOf{leafV, list{responsesPartShape}}},
			"reasoning":            obj{"type": leafV, "id": leafV, "summary": list{obj{"type": leafV, "text": leafV}}},
		}}},
		"tools":       list{obj{"type": leafV, "name": leafV, "description": leafV, "parameters": wholeV}},
		"tool_choice": oneOf{leafV, obj{"type": leafV, "name": leafV}},
		"text":        obj{"format": obj{"type": leafV, "name": leafV, "schema": wholeV, "strict": leafV}},
		"reasoning":   obj{"effort": leafV},
	}

	// Bedrock content blocks are unions: objects with one member each.
	bedrockImageShape = obj{"format": leafV, "source": obj{"bytes": leafV}}
	bedrockGuardShape = obj{"text": obj{"text": leafV}}
	bedrockBlockShape = obj{
		"text": leafV, "image": bedrockImageShape, "cachePoint": wholeV, "guardContent": bedrockGuardShape,
		"toolUse": obj{"toolUseId": leafV, "name": leafV, "input": wholeV},
		"toolResult": obj{"toolUseId": leafV, "status": leafV,
			"content": list{obj{"text": leafV, "json": wholeV, "image": bedrockImageShape}}},
		"reasoningContent": obj{"reasoningText": obj{"text": leafV, "signature": leafV}, "redactedContent": leafV},
	}
	bedrockShapes = map[string]shape{
		"system":          list{obj{"text": leafV, "cachePoint": wholeV, "guardContent": bedrockGuardShape}},
		"messages":        list{obj{"role": leafV, "content": list{bedrockBlockShape}}},
		"inferenceConfig": obj{"maxTokens": leafV, "temperature": leafV, "topP": leafV, "stopSequences": list{leafV}},
		"toolConfig": obj{
			"tools":      list{obj{"toolSpec": obj{"name": leafV, "description": leafV, "inputSchema": obj{"json": wholeV}}, "cachePoint": wholeV}},
			"toolChoice": obj{"auto": wholeV, "any": wholeV, "tool": obj{"name": leafV}},
		},
		"additionalModelRequestFields": obj{"thinking": obj{"type": leafV, "budget_tokens": leafV}, "reasoning_effort": leafV,
			"reasoningConfig": obj{"type": leafV, "maxReasoningEffort": leafV}, "output_config": obj{"effort": leafV}},
		"outputConfig": obj{"textFormat": obj{"type": leafV, "structure": obj{"jsonSchema": obj{"schema": leafV, "name": leafV}}}},
	}

	ollamaShapes = map[string]shape{
		"messages": list{obj{"role": leafV, "content": leafV, "thinking": leafV, "images": list{leafV},
			"tool_calls": list{obj{"id": leafV, "function": obj{"name": leafV, "arguments": wholeV}}}}},
		"tools": list{obj{"type": leafV, "function": obj{"name": leafV, "description": leafV, "parameters": wholeV}}},
	}
)

// duplicateKeys reports whether an object anywhere in v repeats a key.
// The decoders read the first of duplicate keys and many providers the
// last: such a request must not share a cached answer with the one its
// first keys spell.
func duplicateKeys(v gjson.Result) bool {
	dup := false
	switch {
	case v.IsObject():
		var seen []string
		v.ForEach(func(k, m gjson.Result) bool {
			for _, s := range seen {
				if s == k.Str {
					dup = true
					return false
				}
			}
			if len(seen) < 64 {
				seen = append(seen, k.Str)
			}
			dup = duplicateKeys(m)
			return !dup
		})
	case v.IsArray():
		v.ForEach(func(_, e gjson.Result) bool { dup = duplicateKeys(e); return !dup })
	}
	return dup
}
