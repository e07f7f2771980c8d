package dialects

import (
	"errors"
	"fmt"
)

// CollectStream reads a complete stream of dialect d (the bytes of an
// SSE, NDJSON or eventstream answer, as a client received it) back into
// one answer. It is how the response cache keeps a streamed answer: in
// neutral form, to be replayed later in any dialect, streamed or not. A
// stream that ends with an error event, or without its end event, is an
// error.
func CollectStream(d Dialect, body []byte) (*ChatResponse, error) {
	dec, ndjson, err := newStreamDecoder(d)
	if err != nil {
		return nil, err
	}
	c := collector{r: &ChatResponse{}, tools: map[int]int{}}
	p := newFrameParser(dec, ndjson)
	emit := c.emit
	p.feed(body, func(name string, data []byte) {
		if !c.done {
			dec.event(name, data, emit)
		}
	}, func(err error) {
		if c.err == nil {
			c.err = err
		}
	})
	p.flush(func(name string, data []byte) {
		if !c.done {
			dec.event(name, data, emit)
		}
	})
	if !c.done {
		dec.end(emit)
	}
	switch {
	case c.err != nil:
		return nil, c.err
	case !c.done:
		return nil, errors.New("the stream ended before the answer was complete")
	}
	return c.r, nil
}

// collector builds an answer from neutral stream events.
type collector struct {
	r     *ChatResponse
	tools map[int]int // tool index -> part index
	last  PartType    // type of the part text fragments go to
	done  bool
	err   error
}

func (c *collector) emit(e Event) {
	if c.done {
		return
	}
	r := c.r
	switch e.Kind {
	case EvStart:
		if e.ID != "" {
			r.ID = e.ID
		}
		if e.Model != "" {
			r.Model = e.Model
		}
		if !e.Usage.IsZero() {
			r.Usage = e.Usage
		}
	case EvText, EvThinking:
		typ := PartText
		if e.Kind == EvThinking {
			typ = PartThinking
		}
		if n := len(r.Parts); n > 0 && r.Parts[n-1].Type == typ && (typ == PartText || r.Parts[n-1].Signature == "") {
			r.Parts[n-1].Text += e.Text
		} else {
			r.Parts = append(r.Parts, Part{Type: typ, Text: e.Text})
		}
	case EvSignature:
		if n := len(r.Parts); n > 0 && r.Parts[n-1].Type == PartThinking {
			r.Parts[n-1].Signature += e.Text
		} else {
			r.Parts = append(r.Parts, Part{Type: PartThinking, Signature: e.Text})
		}
	case EvToolStart:
		c.tools[e.Index] = len(r.Parts)
		r.Parts = append(r.Parts, Part{Type: PartToolCall, ID: e.ID, Name: e.Name})
	case EvToolArgs:
		i, ok := c.tools[e.Index]
		if !ok {
			c.err = fmt.Errorf("arguments for tool call %d, which never started", e.Index)
			c.done = true
			return
		}
		r.Parts[i].Args += e.Text
	case EvFinish:
		r.Stop, r.NativeStop = e.Stop, e.NativeStop
		if !e.Usage.IsZero() {
			r.Usage = e.Usage
		}
		c.done = true
	case EvError:
		c.err = errors.New("the stream ended with an error: " + e.Text)
		c.done = true
	}
}
