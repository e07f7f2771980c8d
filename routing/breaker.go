package routing

import (
	"sync"
	"time"
)

// Breakers hold a circuit breaker per provider and model, and the time
// until which each provider asked to be left alone (Retry-After) for a
// model: providers rate-limit per model, so one model's limit does not
// keep the provider's other models out. They
// are shared by every config of the process, so their state survives
// `caddy reload`; the thresholds come from the config at each call.
type Breakers struct {
	mu    sync.Mutex
	now   func() time.Time
	state map[string]*breaker
	wait  map[string]time.Time // provider and model → do not call before
}

type breaker struct {
	failures  int
	openUntil time.Time
	probing   bool // half-open: one request is trying
}

// NewBreakers returns empty breakers reading time from now (nil:
// time.Now), so tests can move the clock.
func NewBreakers(now func() time.Time) *Breakers {
	if now == nil {
		now = time.Now
	}
	return &Breakers{now: now, state: map[string]*breaker{}, wait: map[string]time.Time{}}
}

// BreakerState names a breaker's state.
type BreakerState string

// The states of a circuit breaker.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerOpen     BreakerState = "open"
	BreakerHalfOpen BreakerState = "half-open"
)

func key(provider, model string) string { return provider + "\x00" + model }

// State reports the breaker of provider/model and, when open, until when.
func (b *Breakers) State(provider, model string) (BreakerState, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.state[key(provider, model)]
	switch {
	case br == nil || br.openUntil.IsZero():
		return BreakerClosed, time.Time{}
	case b.now().Before(br.openUntil):
		return BreakerOpen, br.openUntil
	}
	return BreakerHalfOpen, time.Time{}
}

// Allow reports whether a request may go to provider/model now: the
// breaker is closed, or it is half-open and no other probe is running
// (this call then becomes the probe). It also honours the provider's
// Retry-After. why explains a refusal.
func (b *Breakers) Allow(provider, model string) (ok bool, why string) {
	why, _, _ = b.Try(provider, model)
	return why == "", why
}

// Try is Allow that also says, when the target is kept out, whether a
// breaker or a Retry-After keeps it out and until when (as Peek does),
// all from one look at the state: why is "" when the request may go.
func (b *Breakers) Try(provider, model string) (why string, kind SkipKind, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := key(provider, model)
	if why, kind, until = b.check(k); why != "" {
		return why, kind, until
	}
	delete(b.wait, k) // over, if there was one
	if br := b.state[k]; br != nil && !br.openUntil.IsZero() {
		br.probing = true // half-open: this request is the probe
	}
	return "", "", time.Time{}
}

// check says why the target keyed k may not be tried now ("" when it
// may), whether a breaker or a Retry-After keeps it out, and until when
// (zero while a probe runs). The caller holds b.mu.
func (b *Breakers) check(k string) (why string, kind SkipKind, until time.Time) {
	now := b.now()
	if w, waiting := b.wait[k]; waiting && now.Before(w) {
		return "provider asked to wait (Retry-After) until " + w.UTC().Format(time.RFC3339), SkipWaiting, w
	}
	br := b.state[k]
	switch {
	case br == nil || br.openUntil.IsZero():
		return "", "", time.Time{}
	case now.Before(br.openUntil):
		return "circuit open after repeated failures, probing again at " + br.openUntil.UTC().Format(time.RFC3339), SkipBroken, br.openUntil
	case br.probing:
		return "circuit half-open, a probe is already running", SkipBroken, time.Time{}
	}
	return "", "", time.Time{}
}

// Success closes the breaker of provider/model.
func (b *Breakers) Success(provider, model string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.state, key(provider, model))
}

// Failure counts a failure; threshold consecutive failures open the
// breaker for cooldown, and a failed probe opens it again.
func (b *Breakers) Failure(provider, model string, threshold int, cooldown time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := key(provider, model)
	br := b.state[k]
	if br == nil {
		br = &breaker{}
		b.state[k] = br
	}
	br.failures++
	if br.probing || br.failures >= threshold {
		br.openUntil = b.now().Add(cooldown)
		br.probing = false
	}
}

// Wait records that provider asked not to be sent requests for model
// before until.
func (b *Breakers) Wait(provider, model string, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := key(provider, model)
	if until.After(b.wait[k]) {
		b.wait[k] = until
	}
}

// Release gives back a half-open probe taken by Allow whose request
// ended without telling success from failure (the client went away).
func (b *Breakers) Release(provider, model string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if br := b.state[key(provider, model)]; br != nil {
		br.probing = false
	}
}

// Peek reports whether provider/model would be allowed now, without
// taking the half-open probe: why is "" when it would be. Otherwise kind
// says whether a breaker or a Retry-After keeps it out, and until is the
// earliest time it may be tried (zero while a probe runs).
func (b *Breakers) Peek(provider, model string) (why string, kind SkipKind, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.check(key(provider, model))
}
