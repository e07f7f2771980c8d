package dialects

import (
	"crypto/rand"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// The neutral model: what every dialect's request, answer and stream is
// decoded into when client and provider speak different dialects, and
// encoded from. It keeps what the dialects share and what must survive a
// round trip (tool-call ids, thinking signatures); what one side cannot
// express is dropped by its encoder, never guessed.

// PartType is the kind of a content part.
type PartType uint8

// The kinds of content part.
const (
	PartText PartType = iota + 1
	PartImage
	PartToolCall
	PartToolResult
	PartThinking
	PartRedactedThinking
)

// Part is one piece of a message's content.
type Part struct {
	Type PartType
	// Text of a text part, or the thinking text of a thinking part.
	Text string
	// Image: either URL (http(s) or data:) or MediaType plus base64 Data.
	URL       string
	MediaType string
	Data      string
	// Tool call: ID, Name and Args (a JSON object as text).
	ID   string
	Name string
	Args string
	// Tool result: ID names the call; Content holds text and image parts.
	Content []Part
	IsError bool
	// Thinking: Signature (Anthropic) or, for redacted thinking, Data.
	Signature string
}

// Role of a neutral message.
type Role string

// The roles. RoleTool messages hold exactly one tool-result part.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// Message is one turn of a conversation.
type Message struct {
	Role  Role
	Parts []Part
}

// Tool is a function the model may call.
type Tool struct {
	Name        string
	Description string
	// Schema is the JSON Schema of the arguments, as raw JSON.
	Schema string
}

// ToolChoice says whether and which tool the model must call.
type ToolChoice struct {
	// Mode is "auto", "none", "required" or "tool" (call Name).
	Mode string
	Name string
}

// ResponseFormat asks for JSON output.
type ResponseFormat struct {
	// Type is "json_object" or "json_schema".
	Type   string
	Name   string
	Schema string // raw JSON
	Strict bool
}

// ChatRequest is a generation request in neutral form.
type ChatRequest struct {
	Model string
	// System holds the system prompt parts (top-level system, leading
	// system and developer messages). System messages later in the
	// conversation stay in Messages with RoleSystem.
	System            []Part
	Messages          []Message
	Tools             []Tool
	ToolChoice        *ToolChoice
	ParallelToolCalls *bool
	MaxTokens         int
	Temperature       *float64
	TopP              *float64
	Stop              []string
	Stream            bool
	// StreamUsage: the client asked for usage in the stream (OpenAI).
	StreamUsage    bool
	ResponseFormat *ResponseFormat
	// ReasoningEffort is "low", "medium" or "high" (OpenAI style);
	// ThinkingBudget is a token budget (Anthropic style). Either or both.
	ReasoningEffort string
	ThinkingBudget  int
	User            string
}

// StopReason is a finish reason in the gateway's own terms (see the
// canonical table in the notes: natural end, stop sequence, token limit,
// tool call, content filter).
type StopReason string

// The canonical stop reasons.
const (
	StopEnd           StopReason = "end"
	StopSequence      StopReason = "stop_sequence"
	StopMaxTokens     StopReason = "max_tokens"
	StopToolUse       StopReason = "tool_use"
	StopContentFilter StopReason = "content_filter"
	StopPause         StopReason = "pause"
)

// ChatResponse is a complete answer in neutral form.
type ChatResponse struct {
	ID    string
	Model string
	Parts []Part // text, thinking, redacted thinking, tool calls
	Stop  StopReason
	// NativeStop is the provider's own stop/finish value.
	NativeStop   string
	StopSequence string
	Usage        Usage
}

// EncodeOptions carry what an encoder needs beyond the request.
type EncodeOptions struct {
	// Model is the upstream model id to put in the request.
	Model string
	// DefaultMaxTokens is used where the target requires max tokens
	// (Anthropic) and the client gave none.
	DefaultMaxTokens int
	// Reasoning says the target model is a reasoning model (OpenAI:
	// max_completion_tokens instead of max_tokens).
	Reasoning bool
}

// effortBudget maps an OpenAI reasoning effort to an Anthropic thinking
// budget, and back.
func effortBudget(effort string) int {
	switch effort {
	case "minimal", "low":
		return 1024
	case "medium", "":
		return 4096
	default: // high, xhigh, max
		return 16384
	}
}

// openAIEffort maps an effort to the values OpenAI accepts.
func openAIEffort(e string) string {
	switch e {
	case "minimal", "low", "medium", "high":
		return e
	case "none":
		return "minimal"
	case "xhigh", "max":
		return "high"
	}
	return "medium"
}

func budgetEffort(budget int) string {
	switch {
	case budget <= 2048:
		return "low"
	case budget <= 8192:
		return "medium"
	}
	return "high"
}

// ensureToolIDs gives every tool call without an id a generated one, so
// the tool result that answers it can name it (Anthropic requires ids).
func ensureToolIDs(parts []Part) {
	for i := range parts {
		if parts[i].Type == PartToolCall && parts[i].ID == "" {
			parts[i].ID = NewID("call_")
		}
	}
}

// NewID returns prefix followed by 24 random base-62 characters.
func NewID(prefix string) string { return idSource(prefix) }

// idSource makes ids; tests make it deterministic.
var idSource = randomID

func randomID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [24]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b[:])
}

// each calls fn for every element of v when v is an array, and never
// otherwise: gjson's ForEach calls fn once for a JSON null, which would
// turn "tool_calls":null into a nameless tool call.
func each(v gjson.Result, fn func(k, v gjson.Result) bool) {
	if v.IsArray() {
		v.ForEach(fn)
	}
}

// optBool reads a JSON boolean; nil for null or absent.
func optBool(v gjson.Result) *bool {
	switch v.Type {
	case gjson.True:
		b := true
		return &b
	case gjson.False:
		b := false
		return &b
	}
	return nil
}

// topLevel holds the members of a request's top-level object, read in
// one pass. The request decoders look up a dozen top-level fields, and
// each gjson Get would scan again past the messages, the bulk of the
// body: on a 50 KB request that was most of the decoding time.
type topLevel []member

type member struct {
	key string
	val gjson.Result
}

// readTop parses body in place (no copy: the strings read from it alias
// body, which must not change while they are in use) and indexes its
// top-level members.
func readTop(body []byte) topLevel {
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	t := make(topLevel, 0, 24)
	root.ForEach(func(k, v gjson.Result) bool {
		t = append(t, member{k.Str, v})
		return true
	})
	return t
}

// Get returns the member at path: a top-level key, then (after a dot) a
// gjson path inside it. The first of duplicate keys wins, as with gjson.
func (t topLevel) Get(path string) gjson.Result {
	key, rest, nested := strings.Cut(path, ".")
	for i := range t {
		if t[i].key == key {
			if nested {
				return t[i].val.Get(rest)
			}
			return t[i].val
		}
	}
	return gjson.Result{}
}
