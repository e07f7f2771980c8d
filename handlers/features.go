package handlers

import (
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
// result. The decoded request is returned too, for llm_translate to
// encode without decoding the body again.
func RequestFeatures(d dialects.Dialect, body []byte, read dialects.Request) (routing.Features, *dialects.ChatRequest, *dialects.Error) {
	req, err := decodeChat(d, body, read)
	if err != nil {
		return routing.Features{}, nil, err
	}
	return featuresOf(req), req, nil
}

// decodeChat decodes a request body to the neutral model. For the
// dialects that name the model and the stream flag in the path (Gemini,
// Bedrock), read (what ReadRequest and the endpoint said) supplies them.
func decodeChat(d dialects.Dialect, body []byte, read dialects.Request) (*dialects.ChatRequest, *dialects.Error) {
	c, err := dialects.DecodeRequest(d, body)
	if err != nil {
		return nil, err
	}
	if dialects.PathStream(d) {
		c.Model, c.Stream = read.Model, read.Stream
	}
	return c, nil
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
	for _, m := range req.Messages {
		f.ContextChars += partsChars(m.Parts, &f)
	}
	for i := len(req.Messages) - 1; i >= 0 && f.LastUser == ""; i-- {
		if m := req.Messages[i]; m.Role == dialects.RoleUser {
			f.LastUser = dialects.JoinText(m.Parts, "\n")
		}
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
