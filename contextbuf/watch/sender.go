package watch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/llmgate/caddy-llmgate/contextbuf"
)

// sender brings the gateway's copy of the context to the latest scanned
// state, one request at a time, in its own goroutine.
type sender struct {
	cfg    *config
	client *Client

	mu     sync.Mutex
	latest contextbuf.Files
	kick   chan struct{} // a new state was published

	// Owned by the run goroutine.
	accepted contextbuf.Files // what the gateway holds, as of version
	version  int64
}

func newSender(cfg *config) *sender {
	return &sender{
		cfg:    cfg,
		client: &Client{Proxy: cfg.Proxy, Key: cfg.Key, HTTP: cfg.HTTPClient},
		kick:   make(chan struct{}, 1),
	}
}

// publish hands the sender a newly scanned state (not modified later).
func (s *sender) publish(f contextbuf.Files) {
	s.mu.Lock()
	s.latest = f
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *sender) current() contextbuf.Files {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

// run sends until ctx ends (nil) or the gateway refuses for good (the
// error).
func (s *sender) run(ctx context.Context) error {
	var (
		snapshot    = true  // the next request is a full snapshot
		snapBase    *int64  // its base_version (nil: none, the first one)
		resolveBase = false // ask the gateway for the version to replace first
		delay       time.Duration
		conflicts   int
	)
	for {
		if ctx.Err() != nil {
			return nil
		}
		if resolveBase {
			st, err := s.client.Stats(ctx, s.cfg.ID)
			var ae *APIError
			switch {
			case err == nil:
				v := st.Version
				snapBase, resolveBase = &v, false
			case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
				snapBase, resolveBase = nil, false
			case ctx.Err() != nil:
				return nil
			case retryable(err):
				if !s.wait(ctx, err, &delay) {
					return nil
				}
				continue
			default:
				return s.fatal(err, false)
			}
		}

		target := s.current()
		var (
			st   *Stats
			size int
			err  error
			diff string
		)
		if snapshot {
			st, size, err = s.client.PostSnapshot(ctx, s.cfg.ID, target, snapBase)
		} else {
			diff = contextbuf.Diff(s.accepted, target)
			if diff == "" {
				select {
				case <-ctx.Done():
					return nil
				case <-s.kick:
					continue
				}
			}
			st, size, err = s.client.PostDiff(ctx, s.cfg.ID, diff, s.version)
		}
		if err == nil {
			if snapshot {
				s.cfg.Logf("synced %s v%d: snapshot of %s (%s%s)", s.cfg.ID, st.Version, plural(len(target), "file"), formatBytes(int64(size)), tokens(st))
			} else {
				files, added, removed := DiffSummary(diff)
				s.cfg.Logf("synced %s v%d: %s changed (+%d -%d lines, %s)", s.cfg.ID, st.Version, plural(files, "file"), added, removed, formatBytes(int64(size)))
			}
			s.accepted, s.version = target, st.Version
			snapshot, snapBase, delay, conflicts = false, nil, 0, 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		var ae *APIError
		if !errors.As(err, &ae) {
			if !s.wait(ctx, err, &delay) {
				return nil
			}
			continue
		}
		switch {
		case ae.Status == http.StatusConflict:
			conflicts++
			switch {
			case ae.Code == CodeNotApplicable:
				s.cfg.Logf("the gateway could not apply the diff (%s); sending a full snapshot", ae.Message)
			case snapshot && snapBase == nil:
				s.cfg.Logf("%s already exists on the gateway; replacing it with a full snapshot", s.cfg.ID)
			case ae.CurrentVersion != nil:
				s.cfg.Logf("%s changed on the gateway (now v%d, expected v%d); sending a full snapshot", s.cfg.ID, *ae.CurrentVersion, s.baseOf(snapshot, snapBase))
			default:
				s.cfg.Logf("%s changed on the gateway (%s); sending a full snapshot", s.cfg.ID, ae.Message)
			}
			if ae.CurrentVersion != nil {
				v := *ae.CurrentVersion
				snapBase = &v
			} else {
				resolveBase = true
			}
			snapshot = true
			if conflicts > 2 { // someone else keeps changing it: slow down
				if !s.wait(ctx, err, &delay) {
					return nil
				}
			}
		case ae.Status == http.StatusNotFound && ae.Code == CodeNotFound && (!snapshot || snapBase != nil):
			// The gateway lost the context (restarted without storage,
			// or it was deleted): start again from a snapshot.
			s.cfg.Logf("%s is not on the gateway any more; sending a full snapshot", s.cfg.ID)
			snapshot, snapBase, resolveBase = true, nil, false
		case ae.Status == http.StatusBadRequest && !snapshot:
			s.cfg.Logf("the gateway refused the diff (%v); sending a full snapshot", ae)
			v := s.version
			snapshot, snapBase = true, &v
		case ae.Retryable():
			if !s.wait(ctx, err, &delay) {
				return nil
			}
		default:
			return s.fatal(err, snapshot)
		}
	}
}

// baseOf is the version the failed request was based on, for messages.
func (s *sender) baseOf(snapshot bool, snapBase *int64) int64 {
	if snapshot && snapBase != nil {
		return *snapBase
	}
	return s.version
}

func tokens(st *Stats) string {
	if st.EstimatedTokens <= 0 {
		return ""
	}
	return fmt.Sprintf(", ~%d tokens", st.EstimatedTokens)
}

// retryable reports whether err may go away by itself.
func retryable(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Retryable()
	}
	return true // the gateway could not be reached
}

// wait sleeps before the next attempt, doubling *delay from RetryMin to
// RetryMax, with jitter, and honouring a Retry-After answer (up to
// RetryMax). It returns false when ctx ended.
func (s *sender) wait(ctx context.Context, cause error, delay *time.Duration) bool {
	if *delay <= 0 {
		*delay = s.cfg.RetryMin
	} else {
		*delay = min(*delay*2, s.cfg.RetryMax)
	}
	d := *delay/2 + rand.N(*delay/2+1) // "equal jitter": [delay/2, delay]
	var ae *APIError
	if errors.As(cause, &ae) && ae.RetryAfter > d {
		d = min(ae.RetryAfter, s.cfg.RetryMax)
	}
	switch {
	case ae == nil:
		s.cfg.Logf("gateway unreachable (%v), retrying in %s", cause, roundDuration(d))
	case ae.Status == http.StatusConflict:
		s.cfg.Logf("%s keeps changing on the gateway, retrying in %s", s.cfg.ID, roundDuration(d))
	default:
		s.cfg.Logf("gateway unavailable (%v), retrying in %s", ae, roundDuration(d))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// roundDuration keeps a retry delay readable: 250ms, 1.2s, 30s.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}

// fatal turns an answer retrying cannot fix into Run's error.
func (s *sender) fatal(err error, snapshot bool) error {
	var ae *APIError
	if !errors.As(err, &ae) {
		return fmt.Errorf("syncing with the gateway at %s: %w", s.cfg.proxyURL, err)
	}
	at := s.cfg.proxyURL
	switch ae.Status {
	case http.StatusUnauthorized:
		if s.cfg.Key == "" {
			return fmt.Errorf("the gateway at %s requires a key and none was given: %w", at, ae)
		}
		return fmt.Errorf("the gateway at %s refused the key: %w", at, ae)
	case http.StatusForbidden:
		return fmt.Errorf("the gateway at %s does not allow this key to write the context %q: %w", at, s.cfg.ID, ae)
	case http.StatusRequestEntityTooLarge:
		return fmt.Errorf("the context %q is too large for the gateway at %s (leave files out with .gitignore or ignore patterns, or lower the maximum file size): %w", s.cfg.ID, at, ae)
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return fmt.Errorf("the gateway at %s has no context endpoint (is the URL right?): %w", at, ae)
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return fmt.Errorf("the gateway at %s answers with a redirect (give the final URL as the proxy): %w", at, ae)
	case http.StatusBadRequest:
		if snapshot {
			return fmt.Errorf("the gateway at %s refused the snapshot of %q: %w", at, s.cfg.ID, ae)
		}
	}
	return fmt.Errorf("the gateway at %s refused the update of %q: %w", at, s.cfg.ID, ae)
}
