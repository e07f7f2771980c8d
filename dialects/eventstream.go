package dialects

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// AWS eventstream is the binary framing of Bedrock's ConverseStream: each
// frame is total length (u32) | headers length (u32) | prelude CRC32 |
// headers | payload | message CRC32. The framing itself (headers, CRCs)
// is the AWS module's Encoder and Decoder; what is here splits a byte
// stream that arrives in arbitrary pieces into whole frames for it.

// The headers of a Bedrock stream frame.
const (
	esMessageType   = ":message-type"
	esEventType     = ":event-type"
	esExceptionType = ":exception-type"
	esErrorCode     = ":error-code"
	esErrorMessage  = ":error-message"
	esContentType   = ":content-type"

	// esPrelude is the size of a frame's prelude with its CRC, esMinFrame
	// that of a frame with no headers and no payload.
	esPrelude  = 12
	esMinFrame = 16
)

// EventStreamMessage is one decoded eventstream frame.
type EventStreamMessage struct {
	// MessageType is the :message-type header: "event", "exception" or
	// "error" ("" when the frame has none).
	MessageType string
	// Type is the :event-type of an event, the :exception-type of an
	// exception, or the :error-code of an error.
	Type string
	// Payload is the frame's payload (a JSON object for Bedrock). It is
	// valid only during the callback that receives the message.
	Payload []byte
	// Headers are all the frame's headers, as the AWS module decoded them.
	Headers eventstream.Headers
}

// Name is the name a Bedrock stream decoder knows a frame by: the event
// type of an event, "exception:" and the exception type of an exception
// (e.g. "exception:throttlingException"), "error:" and the error code of
// an error message. The pass-through path hands it to StreamEnded.
func (m EventStreamMessage) Name() string {
	switch m.MessageType {
	case "exception":
		return "exception:" + m.Type
	case "error":
		return "error:" + m.Type
	}
	return m.Type
}

// data is the payload a stream decoder gets for the frame: an error
// message carries its text in a header and usually no payload, so it is
// restated as {"message":...}.
func (m EventStreamMessage) data() []byte {
	if m.MessageType == "error" && len(bytes.TrimSpace(m.Payload)) == 0 {
		msg := headerString(m.Headers, esErrorMessage)
		if msg == "" {
			msg = m.Type
		}
		return append(AppendJSONString([]byte(`{"message":`), msg), '}')
	}
	return m.Payload
}

// headerString is the value of a string header, "" when absent or not a
// string.
func headerString(h eventstream.Headers, name string) string {
	if v, ok := h.Get(name).(eventstream.StringValue); ok {
		return string(v)
	}
	return ""
}

// ErrEventStreamTruncated is returned by EventStreamReader.Close when the
// stream ended inside a frame.
var ErrEventStreamTruncated = errors.New("the eventstream ended inside a frame")

// EventStreamReader splits an AWS eventstream that arrives in arbitrary
// pieces into frames: it buffers until the length announced by a frame's
// prelude has arrived, then decodes the frame with the AWS module's
// Decoder, which checks both CRCs. A frame longer than the package's
// frame limit, or a corrupt one, is an error, and the reader stays failed
// (a byte stream whose framing is lost cannot be resynchronised). The
// zero value is ready to use.
type EventStreamReader struct {
	buf     []byte // the frame being received
	total   int    // its length, once its prelude has been checked
	payload []byte // reused for decoded payloads
	rd      bytes.Reader
	dec     *eventstream.Decoder
	err     error
}

// Feed takes the next bytes of the stream and calls fn for each frame
// they complete, in order. It returns the error that stopped the stream,
// if any; fn is not called for the bad frame or anything after it.
func (r *EventStreamReader) Feed(p []byte, fn func(msg EventStreamMessage)) error {
	if r.err != nil {
		return r.err
	}
	for len(p) > 0 {
		var frame []byte
		if len(r.buf) == 0 {
			// Frames that arrive whole are decoded in place.
			n, err := r.frameLen(p)
			if err != nil {
				return r.fail(err)
			}
			if n == 0 || len(p) < n {
				r.total = n
				r.buf = append(r.buf, p...)
				return nil
			}
			frame, p = p[:n], p[n:]
		} else {
			if r.total == 0 {
				take := min(esPrelude-len(r.buf), len(p))
				r.buf, p = append(r.buf, p[:take]...), p[take:]
				n, err := r.frameLen(r.buf)
				if err != nil {
					return r.fail(err)
				}
				if n == 0 {
					return nil
				}
				r.total = n
			}
			take := min(r.total-len(r.buf), len(p))
			r.buf, p = append(r.buf, p[:take]...), p[take:]
			if len(r.buf) < r.total {
				return nil
			}
			frame = r.buf
		}
		if err := r.decode(frame, fn); err != nil {
			return r.fail(err)
		}
		if len(r.buf) > 0 {
			r.buf, r.total = r.buf[:0], 0
			if cap(r.buf) > 1<<16 {
				r.buf = nil // do not keep a large frame's buffer for the whole stream
			}
		}
	}
	return nil
}

// Close reports whether the stream ended cleanly: an error when it
// failed, or when it ended inside a frame.
func (r *EventStreamReader) Close() error {
	if r.err != nil {
		return r.err
	}
	if len(r.buf) > 0 {
		return ErrEventStreamTruncated
	}
	return nil
}

func (r *EventStreamReader) fail(err error) error {
	r.err = fmt.Errorf("bad eventstream frame: %w", err)
	r.buf = nil
	return r.err
}

// frameLen returns the total length of the frame that b begins with, 0
// when b holds less than its prelude. The lengths are checked against
// each other and the frame limit, and the prelude's CRC by the AWS
// Decoder: it checks the prelude CRC before reading on, so decoding the
// prelude alone fails with a ChecksumError when it is corrupt and with
// io.EOF, at the headers, when it is sound. A corrupt length is caught
// here, before the reader would wait for bytes that never come.
func (r *EventStreamReader) frameLen(b []byte) (int, error) {
	if len(b) < esPrelude {
		return 0, nil
	}
	total := int(binary.BigEndian.Uint32(b[0:4]))
	headers := int(binary.BigEndian.Uint32(b[4:8]))
	if total < esMinFrame || headers > total-esMinFrame {
		return 0, fmt.Errorf("frame length %d with %d bytes of headers", total, headers)
	}
	if total > maxFrame {
		return 0, fmt.Errorf("a frame of %d bytes is larger than the limit of %d", total, maxFrame)
	}
	r.rd.Reset(b[:esPrelude])
	if _, err := r.decoder().Decode(&r.rd, nil); err != io.EOF && err != io.ErrUnexpectedEOF {
		if err == nil {
			err = errors.New("decoded as a whole frame")
		}
		return 0, fmt.Errorf("prelude: %w", err)
	}
	return total, nil
}

func (r *EventStreamReader) decoder() *eventstream.Decoder {
	if r.dec == nil {
		r.dec = eventstream.NewDecoder()
	}
	return r.dec
}

// decode decodes one whole frame and hands it to fn.
func (r *EventStreamReader) decode(frame []byte, fn func(EventStreamMessage)) error {
	r.rd.Reset(frame)
	m, err := r.decoder().Decode(&r.rd, r.payload[:0])
	if err != nil {
		return err
	}
	if r.rd.Len() != 0 {
		return fmt.Errorf("%d bytes left over in a frame", r.rd.Len())
	}
	if cap(m.Payload) <= 1<<16 {
		r.payload = m.Payload[:0]
	}
	msg := EventStreamMessage{MessageType: headerString(m.Headers, esMessageType), Payload: m.Payload, Headers: m.Headers}
	switch msg.MessageType {
	case "exception":
		msg.Type = headerString(m.Headers, esExceptionType)
	case "error":
		msg.Type = headerString(m.Headers, esErrorCode)
	default:
		msg.Type = headerString(m.Headers, esEventType)
	}
	fn(msg)
	return nil
}

// encoders reuses the AWS module's Encoders (each holds two buffers).
var encoders = sync.Pool{New: func() any { return eventstream.NewEncoder() }}

// AppendEventStreamMessage appends one eventstream frame with the given
// headers and payload to dst, framed by the AWS module's Encoder. It fails
// for header names or values too long for the format.
func AppendEventStreamMessage(dst []byte, headers eventstream.Headers, payload []byte) ([]byte, error) {
	enc := encoders.Get().(*eventstream.Encoder)
	defer encoders.Put(enc)
	w := bytes.NewBuffer(dst) // writes append after dst's bytes
	if err := enc.Encode(w, eventstream.Message{Headers: headers, Payload: payload}); err != nil {
		return dst, err
	}
	return w.Bytes(), nil
}

// AppendEventStreamEvent appends an event frame: :message-type "event",
// :event-type eventType, :content-type application/json, and the JSON
// payload.
func AppendEventStreamEvent(dst []byte, eventType string, payload []byte) ([]byte, error) {
	return AppendEventStreamMessage(dst, eventstream.Headers{
		{Name: esMessageType, Value: eventstream.StringValue("event")},
		{Name: esEventType, Value: eventstream.StringValue(eventType)},
		{Name: esContentType, Value: eventstream.StringValue("application/json")},
	}, payload)
}

// AppendEventStreamException appends an exception frame: :message-type
// "exception", :exception-type exceptionType (e.g. "throttlingException"),
// :content-type application/json, and the JSON payload (for Bedrock
// {"message":...}).
func AppendEventStreamException(dst []byte, exceptionType string, payload []byte) ([]byte, error) {
	return AppendEventStreamMessage(dst, eventstream.Headers{
		{Name: esMessageType, Value: eventstream.StringValue("exception")},
		{Name: esExceptionType, Value: eventstream.StringValue(exceptionType)},
		{Name: esContentType, Value: eventstream.StringValue("application/json")},
	}, payload)
}
