package handlers

import (
	"encoding/binary"
	"errors"

	"github.com/llmgate/caddy-llmgate/dialects"
)

// The payload of a response cache entry is the answer in neutral form,
// in a compact binary encoding of its own (reading it back is on every
// hit's path: several times faster than JSON): a format byte, then the
// answer's fields in a fixed order, strings and lists length-prefixed
// with unsigned varints, integers as varints.

const answerFormat = 1

// maxAnswerDepth bounds nested parts (tool results hold parts).
const maxAnswerDepth = 4

var errBadAnswer = errors.New("malformed cached answer")

// encodeAnswer writes r in the cache's payload format.
func encodeAnswer(r *dialects.ChatResponse) []byte {
	b := make([]byte, 0, 256+answerSize(r.Parts))
	b = append(b, answerFormat)
	b = appendStr(b, r.ID)
	b = appendStr(b, r.Model)
	b = appendStr(b, string(r.Stop))
	b = appendStr(b, r.NativeStop)
	b = appendStr(b, r.StopSequence)
	u := r.Usage
	for _, n := range []int{u.Input, u.CachedInput, u.CacheWrite, u.Output, u.Reasoning} {
		b = binary.AppendVarint(b, int64(n))
	}
	return appendParts(b, r.Parts)
}

func answerSize(ps []dialects.Part) int {
	n := 0
	for i := range ps {
		p := &ps[i]
		n += 16 + len(p.Text) + len(p.URL) + len(p.MediaType) + len(p.Data) + len(p.ID) + len(p.Name) + len(p.Args) + len(p.Signature) + answerSize(p.Content)
	}
	return n
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendParts(b []byte, ps []dialects.Part) []byte {
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for i := range ps {
		p := &ps[i]
		b = append(b, byte(p.Type))
		if p.IsError {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		for _, s := range []string{p.Text, p.URL, p.MediaType, p.Data, p.ID, p.Name, p.Args, p.Signature} {
			b = appendStr(b, s)
		}
		b = appendParts(b, p.Content)
	}
	return b
}

// decodeAnswer reads a payload written by encodeAnswer. Any other input
// is an error, never a panic.
func decodeAnswer(b []byte) (*dialects.ChatResponse, error) {
	if len(b) == 0 || b[0] != answerFormat {
		return nil, errBadAnswer
	}
	d := answerReader{b: b[1:]}
	r := &dialects.ChatResponse{ID: d.str(), Model: d.str(), Stop: dialects.StopReason(d.str()), NativeStop: d.str(), StopSequence: d.str()}
	r.Usage = dialects.Usage{Input: d.int(), CachedInput: d.int(), CacheWrite: d.int(), Output: d.int(), Reasoning: d.int()}
	r.Parts = d.parts(0)
	if d.err != nil || len(d.b) != 0 {
		return nil, errBadAnswer
	}
	return r, nil
}

type answerReader struct {
	b   []byte
	err error
}

func (d *answerReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadAnswer
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *answerReader) int() int {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || v < 0 || v > 1<<40 {
		d.err = errBadAnswer
		return 0
	}
	d.b = d.b[n:]
	return int(v)
}

func (d *answerReader) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errBadAnswer
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *answerReader) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errBadAnswer
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *answerReader) parts(depth int) []dialects.Part {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	// Every part takes at least 11 bytes: a count beyond what is left
	// is a lie, not an allocation to make.
	if depth > maxAnswerDepth || n > uint64(len(d.b)/11) {
		d.err = errBadAnswer
		return nil
	}
	ps := make([]dialects.Part, n)
	for i := range ps {
		p := &ps[i]
		p.Type = dialects.PartType(d.byte())
		p.IsError = d.byte() == 1
		p.Text, p.URL, p.MediaType, p.Data = d.str(), d.str(), d.str(), d.str()
		p.ID, p.Name, p.Args, p.Signature = d.str(), d.str(), d.str(), d.str()
		p.Content = d.parts(depth + 1)
		if d.err != nil {
			return nil
		}
	}
	return ps
}
