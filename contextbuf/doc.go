// Package contextbuf is the gateway's delta context buffer: named project
// contexts (snapshots of text files) kept in the embedded Badger
// database, updated by unified diffs, and rendered into <context_delta>
// blocks that the gateway puts in front of the system prompt of LLM
// requests.
//
// # Model
//
// A context has an id (1 to 128 characters of [A-Za-z0-9._-], not "." or
// "..") and holds Files: relative, slash-separated, clean paths (no "..",
// no leading "/", no NUL, at most 1024 bytes) mapped to text. Its version
// starts at 0 and grows by one with every change. A client either puts a
// whole snapshot (PutSnapshot) or sends a unified diff (ApplyDelta), in
// both cases optionally naming the version it worked from; a change made
// against another version is refused with a *ConflictError, so a client
// never overwrites changes it has not seen. Diff and Apply are the
// package's pure diff functions, used by the buffer and by the watcher
// that computes the deltas on the client side.
//
// # Diffs
//
// Diff writes git-style unified diffs (3 lines of context, minimal Myers
// line diff). Apply reads git diffs as well as plain `diff -u` and
// `diff -ruN` output; it is strict (hunks must match exactly, possibly at
// an offset; hunk line counts must agree with their header) and atomic.
// The a/ b/ prefix rule is described at Apply. Malformed diffs and bad
// paths are a *ParseError (the gateway answers 400); diffs that do not
// apply an *ApplyError naming the file, hunk and line (409).
//
// # Storage
//
// Everything lives under the key prefix "ctx/":
//
//	ctx/<id>/meta            JSON: Stats plus the oldest kept log version
//	ctx/<id>/f/<path>        a file's content
//	ctx/<id>/log/<version>   20-digit zero-padded; the diff that produced
//	                         that version from the one before
//	ctx/<id>/s/<sha256 hex>  a session's injection state (Badger TTL)
//
// Values over 512 bytes are stored zstd-compressed when that saves at
// least an eighth (a tag byte tells). Every change (the changed files,
// the log entry, the stats) is one Badger transaction, so a crash never
// leaves half a delta and a reopened database sees exactly the last
// committed version. Changes to one context are serialized by a lock per
// id (striped) and, between Buffers sharing a database, by Badger's
// conflict detection (the transaction is retried). Only the files a diff
// names are read to apply it. The log keeps the normalized diff (as Diff
// writes it) of each of the last Options.LogKeep versions.
//
// One transaction is limited by Badger to 15% of its memtable size (about
// 2.4 MB of uncompressed-equivalent keys and values with the store's
// 16 MB memtables; values of 1 MB or more on disk count only for their
// key). Contexts worth injecting into a prompt are far smaller, but a
// snapshot of several megabytes of small files can exceed it: the change
// is then refused with an error wrapping both ErrTooLarge and
// badger.ErrTxnTooBig, and nothing changes; the client can send the
// content as several deltas instead.
//
// # Rendering and sessions
//
// A snapshot block is
//
//	<context_delta id="ID" version="V" kind="snapshot" files="N">
//	<file path="P">
//	content (plus a newline when it lacks a final one)
//	</file>
//	...
//	</context_delta>
//
// with the files in path order (an empty file renders as its two tags on
// consecutive lines). A delta block is
//
//	<context_delta id="ID" from="V1" version="V2" kind="diff">
//	the log entries V1+1 .. V2, concatenated
//	</context_delta>
//
// Attribute values escape '"', '<', '>' and '&'. Estimated tokens are
// (bytes+3)/4.
//
// Inject without a session returns one snapshot block of the current
// version and stores nothing. With a session (the client's X-Session-Id,
// printable ASCII, at most 128 bytes) the first Inject returns a snapshot
// block and stores it as the session's state; later ones return the same
// text when the version has not changed ("unchanged"), or the stored
// blocks plus one new delta block from the session's version to the
// current one ("delta"). The model thus always sees the whole context
// (the first snapshot plus every change since), and the earlier blocks are
// byte-identical to what the previous request carried: a stable prompt
// prefix that providers' prompt caches serve. The session rebases to a
// single fresh snapshot block ("snapshot") when a log entry it needs is
// no longer kept, or when its delta blocks would total more than half the
// size of the current snapshot block (past that point a new snapshot is
// cheaper than the accumulated diffs). The state (the blocks, compressed
// with zstd) expires SessionTTL after its last use; to avoid rewriting it
// on every request its TTL is refreshed once it has aged by a sixteenth of
// SessionTTL. Concurrent Injects of one session are serialized.
package contextbuf
