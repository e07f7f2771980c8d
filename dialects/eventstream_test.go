package dialects

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// eventstreamVectors is the test data directory the AWS eventstream
// module ships (testdata/{encoded,decoded}/{positive,negative}).
func eventstreamVectors(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not available to locate the eventstream module")
	}
	out, err := exec.Command(goTool, "list", "-m", "-f", "{{.Dir}}", "github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream").Output()
	if err != nil {
		t.Fatalf("locating the eventstream module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "testdata")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("eventstream test vectors: %v", err)
	}
	return dir
}

// vector is one test vector: its encoded bytes and, for positive ones,
// the headers and payload of its decoded JSON.
type vector struct {
	name    string
	encoded []byte
	headers eventstream.Headers
	payload []byte
}

func readVectors(t *testing.T, class string) []vector {
	t.Helper()
	dir := eventstreamVectors(t)
	entries, err := os.ReadDir(filepath.Join(dir, "encoded", class))
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	for _, e := range entries {
		enc, err := os.ReadFile(filepath.Join(dir, "encoded", class, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		v := vector{name: e.Name(), encoded: enc}
		if class == "positive" {
			dec, err := os.ReadFile(filepath.Join(dir, "decoded", class, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			v.headers, v.payload = decodedVector(t, dec)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		t.Fatalf("no %s vectors", class)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].name < vs[j].name })
	return vs
}

// decodedVector reads a decoded vector: headers as {name, type, value}
// with the eventstream value types (0 true, 1 false, 2 int8, 3 int16,
// 4 int32, 5 int64, 6 bytes and 7 string in base64, 8 timestamp in
// milliseconds, 9 uuid in base64) and a base64 payload.
func decodedVector(t *testing.T, b []byte) (eventstream.Headers, []byte) {
	t.Helper()
	// Values are numbers, booleans or strings: read them raw first.
	var raw struct {
		Headers []struct {
			Name  string          `json:"name"`
			Type  int             `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"headers"`
		Payload []byte `json:"payload"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var hs eventstream.Headers
	num := func(r json.RawMessage) int64 {
		var n int64
		if err := json.Unmarshal(r, &n); err != nil {
			t.Fatalf("header value %s: %v", r, err)
		}
		return n
	}
	b64 := func(r json.RawMessage) []byte {
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			t.Fatal(err)
		}
		v, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, h := range raw.Headers {
		var v eventstream.Value
		switch h.Type {
		case 0:
			v = eventstream.BoolValue(true)
		case 1:
			v = eventstream.BoolValue(false)
		case 2:
			v = eventstream.Int8Value(num(h.Value))
		case 3:
			v = eventstream.Int16Value(num(h.Value))
		case 4:
			v = eventstream.Int32Value(num(h.Value))
		case 5:
			v = eventstream.Int64Value(num(h.Value))
		case 6:
			v = eventstream.BytesValue(b64(h.Value))
		case 7:
			v = eventstream.StringValue(b64(h.Value))
		case 8:
			v = eventstream.TimestampValue(time.UnixMilli(num(h.Value)))
		case 9:
			var u eventstream.UUIDValue
			copy(u[:], b64(h.Value))
			v = u
		default:
			t.Fatalf("header %s: unknown type %d", h.Name, h.Type)
		}
		hs = append(hs, eventstream.Header{Name: h.Name, Value: v})
	}
	return hs, raw.Payload
}

// sameHeaders compares headers by their encoding.
func sameHeaders(t *testing.T, got, want eventstream.Headers) bool {
	t.Helper()
	var g, w bytes.Buffer
	if err := eventstream.EncodeHeaders(&g, got); err != nil {
		t.Fatal(err)
	}
	if err := eventstream.EncodeHeaders(&w, want); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(g.Bytes(), w.Bytes())
}

// feedAll feeds in to a new reader in pieces of size piece (0: whole)
// and returns the messages (payloads copied), the first Feed error and
// Close's error.
func feedAll(in []byte, piece int) (msgs []EventStreamMessage, feedErr, closeErr error) {
	var r EventStreamReader
	if piece <= 0 {
		piece = len(in) + 1
	}
	for i := 0; i < len(in); i += piece {
		err := r.Feed(in[i:min(i+piece, len(in))], func(m EventStreamMessage) {
			m.Payload = bytes.Clone(m.Payload)
			msgs = append(msgs, m)
		})
		if err != nil && feedErr == nil {
			feedErr = err
		}
	}
	return msgs, feedErr, r.Close()
}

// Every positive vector decodes, whole and byte by byte, to the headers
// and payload of its decoded counterpart.
func TestEventStreamPositiveVectors(t *testing.T) {
	for _, v := range readVectors(t, "positive") {
		for _, piece := range []int{0, 1, 5} {
			msgs, ferr, cerr := feedAll(v.encoded, piece)
			if ferr != nil || cerr != nil || len(msgs) != 1 {
				t.Fatalf("%s (pieces of %d): %d messages, %v, %v", v.name, piece, len(msgs), ferr, cerr)
			}
			if !sameHeaders(t, msgs[0].Headers, v.headers) {
				t.Errorf("%s (pieces of %d): headers %v, want %v", v.name, piece, msgs[0].Headers, v.headers)
			}
			if !bytes.Equal(msgs[0].Payload, v.payload) {
				t.Errorf("%s (pieces of %d): payload %q, want %q", v.name, piece, msgs[0].Payload, v.payload)
			}
		}
	}
}

// All positive vectors back to back, in odd pieces, come out in order.
func TestEventStreamConcatenatedVectors(t *testing.T) {
	vs := readVectors(t, "positive")
	var all []byte
	for _, v := range vs {
		all = append(all, v.encoded...)
	}
	for _, piece := range []int{0, 1, 3, 7, 64} {
		msgs, ferr, cerr := feedAll(all, piece)
		if ferr != nil || cerr != nil || len(msgs) != len(vs) {
			t.Fatalf("pieces of %d: %d messages, %v, %v", piece, len(msgs), ferr, cerr)
		}
		for i, v := range vs {
			if !bytes.Equal(msgs[i].Payload, v.payload) || !sameHeaders(t, msgs[i].Headers, v.headers) {
				t.Errorf("pieces of %d: message %d is not %s", piece, i, v.name)
			}
		}
	}
}

// Every negative vector is rejected while it is fed (not only at the
// end), whole and byte by byte, and nothing is handed out.
func TestEventStreamNegativeVectors(t *testing.T) {
	for _, v := range readVectors(t, "negative") {
		for _, piece := range []int{0, 1} {
			msgs, ferr, cerr := feedAll(v.encoded, piece)
			if ferr == nil || cerr == nil || len(msgs) != 0 {
				t.Errorf("%s (pieces of %d): accepted: %d messages, %v, %v", v.name, piece, len(msgs), ferr, cerr)
			}
		}
	}
}

// Re-encoding the decoded messages with our helper gives bytes the AWS
// Decoder reads back to the same content (and, the module's encoder
// being deterministic, the vector's own bytes).
func TestEventStreamReencode(t *testing.T) {
	for _, v := range readVectors(t, "positive") {
		out, err := AppendEventStreamMessage([]byte("prefix"), v.headers, v.payload)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if !bytes.HasPrefix(out, []byte("prefix")) {
			t.Fatalf("%s: dst not appended to", v.name)
		}
		out = out[len("prefix"):]
		m, err := eventstream.NewDecoder().Decode(bytes.NewReader(out), nil)
		if err != nil {
			t.Fatalf("%s: the AWS decoder refuses our frame: %v", v.name, err)
		}
		if !sameHeaders(t, m.Headers, v.headers) || !bytes.Equal(m.Payload, v.payload) {
			t.Errorf("%s: re-encoded frame decodes to %v %q", v.name, m.Headers, m.Payload)
		}
		if !bytes.Equal(out, v.encoded) {
			t.Errorf("%s: re-encoded bytes differ from the vector", v.name)
		}
	}
}

func TestEventStreamEventAndException(t *testing.T) {
	frames, err := AppendEventStreamEvent(nil, "contentBlockDelta", []byte(`{"contentBlockIndex":0,"delta":{"text":"hi"}}`))
	if err != nil {
		t.Fatal(err)
	}
	frames, err = AppendEventStreamException(frames, "throttlingException", []byte(`{"message":"slow down"}`))
	if err != nil {
		t.Fatal(err)
	}
	frames, err = AppendEventStreamMessage(frames, eventstream.Headers{
		{Name: ":message-type", Value: eventstream.StringValue("error")},
		{Name: ":error-code", Value: eventstream.StringValue("InternalFailure")},
		{Name: ":error-message", Value: eventstream.StringValue("it broke")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, ferr, cerr := feedAll(frames, 2)
	if ferr != nil || cerr != nil || len(msgs) != 3 {
		t.Fatalf("%d messages, %v, %v", len(msgs), ferr, cerr)
	}
	if m := msgs[0]; m.MessageType != "event" || m.Type != "contentBlockDelta" || m.Name() != "contentBlockDelta" ||
		headerString(m.Headers, ":content-type") != "application/json" || string(m.data()) != `{"contentBlockIndex":0,"delta":{"text":"hi"}}` {
		t.Errorf("event: %+v", m)
	}
	if m := msgs[1]; m.MessageType != "exception" || m.Name() != "exception:throttlingException" || string(m.data()) != `{"message":"slow down"}` {
		t.Errorf("exception: %+v", m)
	}
	if m := msgs[2]; m.MessageType != "error" || m.Name() != "error:InternalFailure" || string(m.data()) != `{"message":"it broke"}` {
		t.Errorf("error: %+v %s", m, m.data())
	}
}

func TestEventStreamReaderFailures(t *testing.T) {
	good, _ := AppendEventStreamEvent(nil, "messageStart", []byte(`{"role":"assistant"}`))

	// A frame announcing more than the limit is refused at its prelude.
	big := make([]byte, 12)
	binary.BigEndian.PutUint32(big, maxFrame+1)
	if _, ferr, _ := feedAll(big, 0); ferr == nil || !strings.Contains(ferr.Error(), "limit") {
		t.Errorf("oversized frame: %v", ferr)
	}
	// Lengths that contradict each other.
	bad := bytes.Clone(good)
	binary.BigEndian.PutUint32(bad[4:], uint32(len(good)))
	if _, ferr, _ := feedAll(bad, 0); ferr == nil {
		t.Error("headers longer than the frame accepted")
	}

	// A corrupt payload after a good frame: the good one is handed out,
	// then the stream stays failed.
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-6] ^= 0xff
	in := append(append(bytes.Clone(good), corrupt...), good...)
	var r EventStreamReader
	n := 0
	err := r.Feed(in, func(EventStreamMessage) { n++ })
	var ce eventstream.ChecksumError
	if n != 1 || !errors.As(err, &ce) {
		t.Errorf("corrupt frame: %d messages, %v", n, err)
	}
	if err2 := r.Feed(good, func(EventStreamMessage) { n++ }); err2 == nil || n != 1 {
		t.Errorf("reader went on after a corrupt frame: %v, %d", err2, n)
	}

	// A stream that ends inside a frame.
	if _, ferr, cerr := feedAll(good[:len(good)-1], 4); ferr != nil || !errors.Is(cerr, ErrEventStreamTruncated) {
		t.Errorf("truncated: %v, %v", ferr, cerr)
	}
}
