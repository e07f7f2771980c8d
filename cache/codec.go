package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Value header: one format version byte, one flags byte.
const (
	// FormatVersion is the version byte at the start of every stored
	// value this package writes. Values with another version are
	// unreadable (a miss).
	FormatVersion byte = 1

	// flagCompressed: the body is one zstd frame.
	flagCompressed byte = 1 << 0
	// flagEncrypted: the (possibly compressed) body is sealed with
	// AES-256-GCM; a 12-byte nonce precedes the ciphertext.
	flagEncrypted byte = 1 << 1
	// flagsKnown are the flag bits this version understands; any other
	// bit makes the value unreadable.
	flagsKnown = flagCompressed | flagEncrypted

	headerLen = 2
	// crcLen: a plain (not encrypted) value ends with the CRC-32C of
	// the cache key followed by everything before the CRC. Sealed values
	// have the GCM tag instead.
	crcLen = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Limits on the metadata strings of an Entry, so the stored body has a
// known upper bound (MaxEntryBytes + maxMetaOverhead) that the decoder
// enforces.
const (
	// MaxNameBytes is the longest Provider or Model (in bytes) an Entry
	// may carry; longer names make Put fail with ErrTooLarge.
	MaxNameBytes = 1024

	// maxMetaOverhead bounds everything in a body except the payload:
	// created seconds (≤10-byte varint), nanoseconds (≤5-byte uvarint),
	// cost (8), two names of at most MaxNameBytes with their uvarint
	// lengths (2 bytes; 3 allowed).
	maxMetaOverhead = 10 + 5 + 8 + 2*(3+MaxNameBytes)
)

// Errors from decoding a stored value. They never leave the package: an
// unreadable value is a miss. They are logged and used in tests.
var (
	errShort       = errors.New("value too short")
	errChecksum    = errors.New("checksum mismatch")
	errVersion     = errors.New("unknown format version")
	errFlags       = errors.New("unknown flags")
	errNotSealed   = errors.New("value is not encrypted but the cache has a key")
	errSealed      = errors.New("value is encrypted but the cache has no key")
	errOpen        = errors.New("decryption failed (corrupt value, another key, or moved to another cache key)")
	errDecompress  = errors.New("decompression failed")
	errBody        = errors.New("malformed body")
	errBodyTooLong = errors.New("entry larger than the configured maximum")
)

// appendBody appends the binary encoding of e to dst:
//
//	varint  Created seconds since the Unix epoch (zig-zag)
//	uvarint Created nanoseconds (< 1e9)
//	8 bytes CostUSD, IEEE-754 bits, little endian
//	uvarint len(Provider), Provider bytes
//	uvarint len(Model), Model bytes
//	        Payload: the rest of the body
//
// The payload has no length: it runs to the end, so a body cannot carry
// trailing garbage.
func appendBody(dst []byte, e *Entry) []byte {
	dst = binary.AppendVarint(dst, e.Created.Unix())
	dst = binary.AppendUvarint(dst, uint64(e.Created.Nanosecond()))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(e.CostUSD))
	dst = binary.AppendUvarint(dst, uint64(len(e.Provider)))
	dst = append(dst, e.Provider...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Model)))
	dst = append(dst, e.Model...)
	return append(dst, e.Payload...)
}

// parseBody decodes a body written by appendBody. The returned Payload
// aliases b; the strings are copies.
func parseBody(b []byte, maxPayload int) (Entry, error) {
	var e Entry
	sec, n := binary.Varint(b)
	if n <= 0 {
		return e, fmt.Errorf("%w: created seconds", errBody)
	}
	b = b[n:]
	nsec, n := binary.Uvarint(b)
	if n <= 0 || nsec >= 1e9 {
		return e, fmt.Errorf("%w: created nanoseconds", errBody)
	}
	b = b[n:]
	if len(b) < 8 {
		return e, fmt.Errorf("%w: cost", errBody)
	}
	e.CostUSD = math.Float64frombits(binary.LittleEndian.Uint64(b))
	b = b[8:]
	var ok bool
	if e.Provider, b, ok = parseName(b); !ok {
		return e, fmt.Errorf("%w: provider", errBody)
	}
	if e.Model, b, ok = parseName(b); !ok {
		return e, fmt.Errorf("%w: model", errBody)
	}
	if len(b) > maxPayload {
		return Entry{}, errBodyTooLong
	}
	e.Created = time.Unix(sec, int64(nsec)).UTC()
	e.Payload = b
	return e, nil
}

func parseName(b []byte) (string, []byte, bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > MaxNameBytes || l > uint64(len(b)-n) {
		return "", nil, false
	}
	b = b[n:]
	return string(b[:l]), b[l:], true
}

// additionalData is what AES-GCM authenticates besides the ciphertext:
// the value header and the cache key, so neither the flags can be
// changed nor a value moved to another key.
func additionalData(ad *[headerLen + len(Key{})]byte, version, flags byte, k *Key) []byte {
	ad[0], ad[1] = version, flags
	copy(ad[headerLen:], k[:])
	return ad[:]
}

// valueCRC is the checksum of a plain value: CRC-32C over the cache key
// and then the value up to the checksum. Covering the key makes a value
// copied to another key fail the check, as a sealed one does.
func valueCRC(k *Key, v []byte) uint32 {
	return crc32.Update(crc32.Update(0, crcTable, k[:]), crcTable, v)
}

// seal turns e into a stored value: header, then the body, compressed
// when that makes it smaller, then sealed when the cache has a key.
func (c *Cache) seal(k *Key, e *Entry) []byte {
	bp := getBuf()
	defer putBuf(bp)
	body := appendBody((*bp)[:0], e)
	*bp = body[:0]

	flags := byte(0)
	data := body
	cp := getBuf()
	defer putBuf(cp)
	if comp := c.enc.EncodeAll(body, (*cp)[:0]); len(comp) < len(body) {
		flags |= flagCompressed
		data = comp
		*cp = comp[:0]
	}

	if c.aead == nil {
		v := make([]byte, headerLen, headerLen+len(data)+crcLen)
		v[0], v[1] = FormatVersion, flags
		v = append(v, data...)
		return binary.BigEndian.AppendUint32(v, valueCRC(k, v))
	}
	flags |= flagEncrypted
	v := make([]byte, headerLen, headerLen+len(data)+c.aead.Overhead())
	v[0], v[1] = FormatVersion, flags
	var ad [headerLen + len(Key{})]byte
	return c.aead.Seal(v, nil, data, additionalData(&ad, FormatVersion, flags, k))
}

// open decodes a stored value read from key k. v is only borrowed (it
// may be Badger's buffer): the returned Entry shares no memory with it.
// open never panics, whatever v holds.
func (c *Cache) open(k *Key, v []byte) (Entry, error) {
	if len(v) < headerLen {
		return Entry{}, errShort
	}
	version, flags := v[0], v[1]
	if version != FormatVersion {
		return Entry{}, fmt.Errorf("%w %d", errVersion, version)
	}
	if flags&^flagsKnown != 0 {
		return Entry{}, fmt.Errorf("%w %#x", errFlags, flags)
	}
	data := v[headerLen:]
	owned := false // whether data is memory of our own

	switch {
	case flags&flagEncrypted != 0 && c.aead == nil:
		return Entry{}, errSealed
	case flags&flagEncrypted == 0 && c.aead != nil:
		return Entry{}, errNotSealed
	case flags&flagEncrypted == 0:
		if len(data) < crcLen {
			return Entry{}, errShort
		}
		end := len(v) - crcLen
		if valueCRC(k, v[:end]) != binary.BigEndian.Uint32(v[end:]) {
			return Entry{}, errChecksum
		}
		data = v[headerLen:end]
	case flags&flagEncrypted != 0:
		if len(data) < c.aead.Overhead() {
			return Entry{}, errShort
		}
		var ad [headerLen + len(Key{})]byte
		ad2 := additionalData(&ad, version, flags, k)
		if flags&flagCompressed != 0 {
			// The plaintext is only an intermediate: decrypt into a
			// pooled buffer, decompress into fresh memory below.
			pp := getBuf()
			defer putBuf(pp)
			pt, err := c.aead.Open((*pp)[:0], nil, data, ad2)
			if err != nil {
				return Entry{}, errOpen
			}
			*pp = pt[:0]
			data = pt
		} else {
			pt, err := c.aead.Open(nil, nil, data, ad2)
			if err != nil {
				return Entry{}, errOpen
			}
			data, owned = pt, true
		}
	}

	if flags&flagCompressed != 0 {
		// Our frames always declare their content size. Require it and
		// check it against the limit before allocating exactly that
		// much; with WithDecodeAllCapLimit the decoder cannot write
		// beyond it (extra frames included).
		var h zstd.Header
		if err := h.Decode(data); err != nil || h.Skippable || !h.HasFCS {
			return Entry{}, fmt.Errorf("%w: bad or unsupported frame header", errDecompress)
		}
		if h.FrameContentSize > uint64(c.maxEntry)+maxMetaOverhead {
			return Entry{}, fmt.Errorf("%w: declares %d bytes", errDecompress, h.FrameContentSize)
		}
		out, err := c.dec.DecodeAll(data, make([]byte, 0, h.FrameContentSize))
		if err == nil && uint64(len(out)) != h.FrameContentSize {
			err = errors.New("content size mismatch")
		}
		if err != nil {
			return Entry{}, fmt.Errorf("%w: %v", errDecompress, err)
		}
		data, owned = out, true
	}
	if !owned {
		data = append([]byte(nil), data...)
	}
	return parseBody(data, c.maxEntry)
}

// bufPool holds scratch buffers for intermediate forms of a value (the
// uncompressed body when writing, the compressed plaintext when reading).
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxPooledBuf: larger scratch buffers are left to the garbage collector
// rather than kept alive in the pool.
const maxPooledBuf = 4 << 20

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}
