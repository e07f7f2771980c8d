package dialects

// turn is one message of a request being encoded for a provider whose
// roles must alternate (Anthropic, Bedrock): a role and its content
// blocks.
type turn struct {
	role   string
	blocks []map[string]any
}

// turns are the messages of a request being encoded.
type turns []turn

// add appends blocks as a turn of role, merged into the last turn when
// that has the same role; no blocks add nothing.
func (ts *turns) add(role string, blocks []map[string]any) {
	if len(blocks) == 0 {
		return
	}
	if n := len(*ts); n > 0 && (*ts)[n-1].role == role {
		(*ts)[n-1].blocks = append((*ts)[n-1].blocks, blocks...)
		return
	}
	*ts = append(*ts, turn{role, blocks})
}

// toolTurnsSigned reports whether every assistant turn that calls a tool
// (isCall) begins with a signed thinking block (isSigned): Claude's rule
// for keeping thinking on, whichever wire carries it.
func (ts turns) toolTurnsSigned(isCall, isSigned func(map[string]any) bool) bool {
	for _, t := range ts {
		if t.role != "assistant" {
			continue
		}
		calls := false
		for _, b := range t.blocks {
			calls = calls || isCall(b)
		}
		if calls && (len(t.blocks) == 0 || !isSigned(t.blocks[0])) {
			return false
		}
	}
	return true
}
