package handlers

import (
	"strings"

	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/routing"
)

// imageChars is what one image counts for in the input estimate: about
// the 765 tokens a 1024x1024 image costs at OpenAI's and Anthropic's
// rates, at four characters a token.
const imageChars = 3000

// RequestFeatures decodes a generation request of dialect d and measures
// what the router looks at: the last user message, the size of the whole
// conversation (system prompt, messages, tool calls and results, tool
// declarations), tools, images, reasoning, schema output and the output
// limit. The request's text is only read, never kept beyond the call's
// result.
func RequestFeatures(d dialects.Dialect, body []byte) (routing.Features, *dialects.Error) {
	req, err := dialects.DecodeRequest(d, body)
	if err != nil {
		return routing.Features{}, err
	}
	return featuresOf(req), nil
}

func featuresOf(req *dialects.ChatRequest) routing.Features {
	f := routing.Features{
		Messages:   len(req.Messages),
		Tools:      len(req.Tools),
		MaxOutput:  req.MaxTokens,
		Reasoning:  req.ThinkingBudget > 0 || reasoningEffort(req.ReasoningEffort),
		JSONSchema: req.ResponseFormat != nil && req.ResponseFormat.Type == "json_schema",
	}
	f.ContextChars = partsChars(req.System, &f)
	for _, t := range req.Tools {
		f.ContextChars += len(t.Name) + len(t.Description) + len(t.Schema)
	}
	last := -1
	for i, m := range req.Messages {
		f.ContextChars += partsChars(m.Parts, &f)
		if m.Role == dialects.RoleUser && hasText(m.Parts) {
			last = i
		}
	}
	if last >= 0 {
		f.LastUser = joinTexts(req.Messages[last].Parts)
	}
	return f
}

// reasoningEffort reports whether an OpenAI-style effort asks for real
// reasoning ("none" and "minimal" do not).
func reasoningEffort(e string) bool {
	return e != "" && e != "none" && e != "minimal"
}

// partsChars counts the characters of parts and notes images in f.
func partsChars(parts []dialects.Part, f *routing.Features) int {
	n := 0
	for i := range parts {
		p := &parts[i]
		switch p.Type {
		case dialects.PartImage:
			f.Images = true
			n += imageChars
		case dialects.PartToolCall:
			n += len(p.Name) + len(p.Args)
		case dialects.PartToolResult:
			n += partsChars(p.Content, f)
		default:
			n += len(p.Text)
		}
	}
	return n
}

func hasText(parts []dialects.Part) bool {
	for _, p := range parts {
		if p.Type == dialects.PartText && p.Text != "" {
			return true
		}
	}
	return false
}

func joinTexts(parts []dialects.Part) string {
	n := 0
	for _, p := range parts {
		if p.Type == dialects.PartText {
			n++
		}
	}
	if n == 1 {
		for _, p := range parts {
			if p.Type == dialects.PartText {
				return p.Text
			}
		}
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == dialects.PartText {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(p.Text)
		}
	}
	return b.String()
}
