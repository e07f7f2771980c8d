package contextbuf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Stored values (file contents, log entries, session texts) start with a
// tag byte:
//
//	'r' raw bytes follow
//	'z' uvarint length of the raw bytes, then one zstd frame
const (
	tagRaw  = 'r'
	tagZstd = 'z'

	// compressMin is the smallest value worth compressing.
	compressMin = 512
)

var (
	zOnce sync.Once
	zEnc  *zstd.Encoder
	zDec  *zstd.Decoder
	zErr  error
)

// codecs returns the package's shared zstd encoder and decoder (both safe
// for concurrent EncodeAll / DecodeAll).
func codecs() (*zstd.Encoder, *zstd.Decoder, error) {
	zOnce.Do(func() {
		zEnc, zErr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1))
		if zErr != nil {
			return
		}
		// DecodeAll never writes more than the capacity given to it, which
		// is the length recorded with the frame.
		zDec, zErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecodeAllCapLimit(true))
	})
	return zEnc, zDec, zErr
}

// encodeValue returns the stored form of s: compressed when that saves at
// least an eighth, raw otherwise.
func encodeValue(s string) []byte {
	return encodeBytes(nil, []byte(s), len(s) >= compressMin)
}

// encodeBytes appends the stored form of raw to dst.
func encodeBytes(dst, raw []byte, compress bool) []byte {
	if compress {
		if enc, _, err := codecs(); err == nil {
			start := len(dst)
			out := append(dst, tagZstd)
			out = binary.AppendUvarint(out, uint64(len(raw)))
			out = enc.EncodeAll(raw, out)
			if len(out)-start < len(raw)-len(raw)/8 {
				return out
			}
			dst = out[:start]
		}
	}
	dst = append(dst, tagRaw)
	return append(dst, raw...)
}

var errCorrupt = errors.New("corrupt stored value")

// decodeValue returns the raw bytes of a stored value. The result does not
// alias v.
func decodeValue(v []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, errCorrupt
	}
	switch v[0] {
	case tagRaw:
		return append([]byte(nil), v[1:]...), nil
	case tagZstd:
		n, k := binary.Uvarint(v[1:])
		if k <= 0 || n > 1<<31 {
			return nil, errCorrupt
		}
		_, dec, err := codecs()
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		out, err := dec.DecodeAll(v[1+k:], make([]byte, 0, int(n)))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errCorrupt, err)
		}
		if uint64(len(out)) != n {
			return nil, fmt.Errorf("%w: %d bytes decoded, %d expected", errCorrupt, len(out), n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown format %q", errCorrupt, v[0])
}
