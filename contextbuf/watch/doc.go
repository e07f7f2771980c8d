// Package watch is the client side of the gateway's delta context buffer:
// it watches a project directory and keeps a copy of its text files in the
// gateway, sending only unified diffs of what changed.
//
// [Run] scans the directory (honouring .gitignore files, extra
// gitignore-style patterns, a size limit, and skipping binary files and
// symbolic links), sends the gateway a full snapshot, then watches the tree
// with fsnotify. After each burst of changes (debounced) it rescans,
// reading again only the files whose size, modification time or identity
// changed, diffs the last snapshot the gateway accepted against the new one
// with [contextbuf.Diff] and POSTs the diff with the version it applies to.
// When the gateway's copy moved on behind the watcher's back (a 409
// answer), it sends a full snapshot instead; when the gateway is down or
// busy it keeps watching and retries with exponential backoff, so every
// change made meanwhile is sent once the gateway is back.
//
// The pieces are exported for reuse and tests: [Ignorer] (a gitignore
// matcher), [Scanner] and [Scan] (directory to [contextbuf.Files]), and
// [Client] (the gateway's context endpoints).
//
// The command line front end is `caddy llm watch DIR --proxy URL`.
package watch
