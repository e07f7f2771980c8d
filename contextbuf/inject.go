package contextbuf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Injection is what Inject returns.
type Injection struct {
	// Text is the whole text to put in front of the system prompt: all of
	// the session's blocks, in order.
	Text string
	// Version is the context's version the text brings the model to.
	Version uint64
	// Kind is "snapshot" (a full block was added, and Text is that one
	// block), "delta" (a diff block was appended) or "unchanged".
	Kind string
	// NewTokens is the estimated tokens of the block added by this call
	// (0 when unchanged).
	NewTokens int
	// TotalTokens is the estimated tokens of Text.
	TotalTokens int
}

// Kinds of Injection.
const (
	KindSnapshot  = "snapshot"
	KindDelta     = "delta"
	KindUnchanged = "unchanged"
)

// sessionState is the stored state of one session: the version its text
// brings the model to, and the text (the first block is a snapshot block
// of snapLen bytes, the rest delta blocks).
type sessionState struct {
	version uint64
	snapLen int
	text    []byte
}

const sessionFormat = 1

// encodeSession: format byte, uvarint version, uvarint snapLen, then the
// text as a stored value (compressed).
func encodeSession(st *sessionState) []byte {
	out := []byte{sessionFormat}
	out = binary.AppendUvarint(out, st.version)
	out = binary.AppendUvarint(out, uint64(st.snapLen))
	return encodeBytes(out, st.text, true)
}

func decodeSession(v []byte) (*sessionState, bool) {
	if len(v) == 0 || v[0] != sessionFormat {
		return nil, false
	}
	v = v[1:]
	version, n := binary.Uvarint(v)
	if n <= 0 {
		return nil, false
	}
	v = v[n:]
	snapLen, n := binary.Uvarint(v)
	if n <= 0 {
		return nil, false
	}
	text, err := decodeValue(v[n:])
	if err != nil || snapLen > uint64(len(text)) {
		return nil, false
	}
	return &sessionState{version: version, snapLen: int(snapLen), text: text}, true
}

// Inject returns the text to put in front of the system prompt of a
// request for context id in session session (the client's X-Session-Id;
// "" = no session). See the package documentation for the semantics.
//
// A context that does not exist or has version 0 gives ErrNoContext
// (wrapped); a bad id or session id an *InvalidError.
func (b *Buffer) Inject(id, session string) (Injection, error) {
	if r := checkID(id); r != "" {
		return Injection{}, &InvalidError{Reason: r}
	}
	if r := checkSession(session); r != "" {
		return Injection{}, &InvalidError{Reason: r}
	}
	if b.db == nil {
		return Injection{}, errors.New("contextbuf: no database")
	}
	noContext := fmt.Errorf("context %s: %w", id, ErrNoContext)

	if session == "" {
		var inj Injection
		err := b.db.View(func(txn *badger.Txn) error {
			m, ok, err := readMeta(txn, id)
			if err != nil {
				return err
			}
			if !ok || m.Version == 0 {
				return noContext
			}
			text, err := renderSnapshot(txn, &m)
			if err != nil {
				return err
			}
			t := tokens(int64(len(text)))
			inj = Injection{Text: string(text), Version: m.Version, Kind: KindSnapshot, NewTokens: t, TotalTokens: t}
			return nil
		})
		return inj, err
	}

	defer b.lockSession(id, session)()
	key := keySession(id, session)
	for attempt := 0; ; attempt++ {
		var inj Injection
		err := b.db.Update(func(txn *badger.Txn) error {
			m, ok, err := readMeta(txn, id)
			if err != nil {
				return err
			}
			if !ok || m.Version == 0 {
				return noContext
			}
			var st *sessionState
			var expires uint64
			item, err := txn.Get(key)
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
			case err != nil:
				return err
			default:
				expires = item.ExpiresAt()
				err = item.Value(func(v []byte) error {
					st, _ = decodeSession(v) // unreadable state: start over
					return nil
				})
				if err != nil {
					return err
				}
			}
			var added int64
			switch {
			case st != nil && st.version == m.Version:
				inj.Kind = KindUnchanged
				if !b.fresh(expires) {
					if err := b.putSession(txn, key, st); err != nil {
						return err
					}
				}
			case st != nil && st.version < m.Version:
				block, err := b.deltaBlock(txn, &m, st)
				if err != nil {
					return err
				}
				if block != nil {
					st.text = append(st.text, block...)
					st.version = m.Version
					added = int64(len(block))
					inj.Kind = KindDelta
					if err := b.putSession(txn, key, st); err != nil {
						return err
					}
					break
				}
				fallthrough
			default: // new session, unreadable state, or rebase
				text, err := renderSnapshot(txn, &m)
				if err != nil {
					return err
				}
				st = &sessionState{version: m.Version, snapLen: len(text), text: text}
				added = int64(len(text))
				inj.Kind = KindSnapshot
				if err := b.putSession(txn, key, st); err != nil {
					return err
				}
			}
			inj.Text = string(st.text)
			inj.Version = m.Version
			inj.NewTokens = tokens(added)
			inj.TotalTokens = tokens(int64(len(st.text)))
			return nil
		})
		switch {
		case err == nil:
			return inj, nil
		case errors.Is(err, badger.ErrConflict) && attempt < maxRetries:
			continue
		case errors.Is(err, badger.ErrTxnTooBig):
			return Injection{}, fmt.Errorf("%w: context %s: the session's state does not fit in one storage transaction: %w", ErrTooLarge, id, err)
		}
		return Injection{}, err
	}
}

// fresh reports whether a session entry expiring at expires (Unix
// seconds, 0: never) needs no TTL refresh yet. Refreshing rewrites the
// whole state, so it is done once the entry has aged by a sixteenth of
// SessionTTL: a session stays at least 15/16 of SessionTTL after its last
// use (and at most SessionTTL).
func (b *Buffer) fresh(expires uint64) bool {
	if expires == 0 {
		return false
	}
	deadline := b.now().Add(b.o.SessionTTL - b.o.SessionTTL/16).Unix()
	return int64(expires) >= deadline
}

func (b *Buffer) putSession(txn *badger.Txn, key []byte, st *sessionState) error {
	e := badger.NewEntry(key, encodeSession(st)).WithTTL(b.o.SessionTTL)
	return txn.SetEntry(e)
}

// deltaBlock returns the diff block bringing st to m.Version, or nil when
// the session must be rebased: log entries no longer kept, or the delta
// blocks would total more than half of the current snapshot block.
func (b *Buffer) deltaBlock(txn *badger.Txn, m *meta, st *sessionState) ([]byte, error) {
	if m.LogFirst == 0 || st.version+1 < m.LogFirst {
		return nil, nil
	}
	limit := m.snapshotSize() / 2
	deltas := int64(len(st.text) - st.snapLen)
	var sb bytes.Buffer
	sb.WriteString(deltaHeader(m.ID, st.version, m.Version))
	for v := st.version + 1; v <= m.Version; v++ {
		item, err := txn.Get(keyLog(m.ID, v))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		err = item.Value(func(val []byte) error {
			raw, err := decodeValue(val)
			if err != nil {
				return err
			}
			sb.Write(raw)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("context %s: reading log entry %d: %w", m.ID, v, err)
		}
		if deltas+int64(sb.Len())+int64(len(snapshotFooter)) > limit {
			return nil, nil
		}
	}
	sb.WriteString(snapshotFooter)
	return sb.Bytes(), nil
}
