// Package cache is the storage layer of the gateway's exact-match
// response cache. It keeps opaque answers (with a little metadata) in
// the gateway's embedded Badger database, compressed and optionally
// encrypted, for a fixed time. Computing keys from requests and
// replaying answers is the HTTP layer's business: here a key is 32 bytes
// and a payload is bytes.
//
// # Keys
//
// An entry lives at the Badger key KeyPrefix ("cache/e/") followed by
// the 32 raw bytes of its Key (the SHA-256 the caller computed over the
// normalized request). Nothing else in the database is touched. Clear
// deletes the keys under that prefix in write batches instead of using
// Badger's DropPrefix, which would make every concurrent write to the
// shared database (the ledger's included) fail while it runs.
//
// # Values
//
// A stored value is
//
//	byte 0  format version (FormatVersion, currently 1)
//	byte 1  flags: 0x01 compressed, 0x02 encrypted; other bits unused
//	rest    the body, transformed as the flags say; plain values
//	        end with a 4-byte big-endian CRC-32C of the cache key
//	        followed by all of the value before the CRC
//
// The body is a compact binary encoding of the Entry:
//
//	varint  Created, seconds since the Unix epoch (zig-zag)
//	uvarint Created, nanoseconds (< 1e9)
//	8 bytes CostUSD, IEEE-754 bits, little endian
//	uvarint length, then Provider (at most MaxNameBytes)
//	uvarint length, then Model (at most MaxNameBytes)
//	...     Payload, to the end of the body
//
// Binary rather than JSON because the payload is usually JSON already
// and would have to be escaped or base64-encoded, and because decoding
// must be cheap and strict. Created keeps nanoseconds and comes back in
// UTC (compare with time.Equal); it defaults to the time of Put.
//
// Compression: the body is compressed with zstd (one single-segment
// frame, which always declares its content size, no zstd checksum; one
// shared encoder and decoder using the stateless, concurrency-safe
// EncodeAll/DecodeAll) and stored compressed only when that makes it
// smaller; small or incompressible bodies are stored as they are. When
// reading, a frame must declare its size, the size must be within
// MaxEntryBytes plus the metadata bound, and the decoder writes into a
// buffer of exactly that size and no further: a hostile value cannot
// make it allocate more than a legitimate entry could.
//
// Integrity: a plain value ends with a CRC-32C (Castagnoli) of the cache
// key and everything before the CRC, so truncation or corruption of an
// uncompressed payload is detected, and so is a value copied to another
// key (by accident: a CRC is no defence against forgery; the GCM tag
// of a sealed value, which replaces the CRC, is).
//
// Encryption, when Options.Key is set: after compression, the data is
// sealed with AES-256-GCM under a fresh random 96-bit nonce, stored in
// front of the ciphertext (crypto/cipher.NewGCMWithRandomNonce). The
// additional authenticated data is the value's two header bytes followed
// by the 32 bytes of the cache key, so a value copied to another key, or
// with its flags altered, does not open. Random nonces bound a key to
// 2^32 writes; rotate it long before that (a rotation just empties the
// cache, see below). A cache with a key reads only values sealed with
// that key: a plain value in an encrypted cache could have been planted
// by anyone able to write the database. A cache without a key cannot
// read sealed values.
//
// # Unreadable values
//
// A value that cannot be read (too short, unknown version or flags,
// failing authentication, failing decompression, malformed body, payload
// larger than the current MaxEntryBytes, plain/sealed not matching the
// configuration) is a miss, not an error: Get removes it, counts it in
// Stats.Errors, logs it (Options.Logger) and returns false with a nil
// error. The removal only happens if the key still holds the version
// that was read, so a concurrent Put is never undone. This makes a
// format change or a key rotation self-healing: old entries turn into
// misses one by one and are replaced.
//
// # Expiry
//
// Entries expire through Badger's TTL on the key, set from Options.TTL
// when stored; Badger stores the expiry as a whole second (rounded
// down), so an entry lives between TTL-1s and TTL. Expired entries are
// invisible to Get, Stats and Clear, and Badger reclaims them during
// compaction and value-log GC. Changing the TTL affects new entries
// only; use Clear to start over.
//
// # Counting
//
// Get counts every lookup as exactly one hit or one miss (a miss for a
// missing, expired or unreadable entry and for a database failure), and
// a hit adds the entry's CostUSD to SavedUSD: a hit is counted when the
// answer is found, since that is when the upstream call is saved. The
// caller only counts what this package cannot see: requests it did not
// look up at all, with CountBypass. Put counts stores, and refusals
// with ErrTooLarge separately. Counters are atomics and start at zero
// with the process; SavedUSD is kept in nano-dollars. Entries and Bytes
// are counted from the database by iterating over keys (no values are
// read), so Stats costs one key scan; Counters skips it.
package cache
