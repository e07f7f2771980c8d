package ledger

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/tidwall/gjson"
)

// Budgets are enforced by reserve-then-reconcile: before a request goes
// upstream its largest possible cost is reserved against every limit
// that applies to it, atomically (one lock, checked and taken together);
// when the answer ends the reservation is replaced by the actual cost,
// and when the request fails it is released. Concurrent requests
// therefore never overrun a limit by more than what their reservations
// under-estimated.
//
// Spend is counted in memory, per scope (the whole gateway, a key, a
// session of a key) and window (the current day and month in the
// ledger's time zone, and a session's life), from the ledger entries
// themselves: when the ledger opens (or its time zone changes) the
// counters are rebuilt from the stored entries, so they survive restarts
// exactly as far as the entries do. Reservations live in memory only: a
// crash ends the requests they were made for.

// Window is the period a limit applies to.
type Window uint8

// The windows of a limit.
const (
	// Daily limits reset at midnight in the ledger's time zone.
	Daily Window = iota + 1
	// Monthly limits reset on the first of the month.
	Monthly
	// Lifetime limits never reset; used for sessions, which are
	// forgotten after SessionIdle without requests.
	Lifetime
)

// String names the window.
func (w Window) String() string {
	switch w {
	case Daily:
		return "daily"
	case Monthly:
		return "monthly"
	case Lifetime:
		return "session"
	}
	return "unknown"
}

// The scopes a limit can apply to.
const (
	ScopeGlobal  = "global"
	ScopeKey     = "key"
	ScopeSession = "session"
)

// Anonymous is the key id of requests allowed without a key.
const Anonymous = "anonymous"

// SessionIdle is how long a session's spend is remembered after its last
// request; after that the session id starts from zero.
const SessionIdle = 24 * time.Hour

// sessionReload is how far back the counters look for session spend when
// they are rebuilt, in addition to the current month.
const sessionReload = 7 * 24 * time.Hour

// Limit is one USD limit on one scope and window.
type Limit struct {
	// Scope is ScopeGlobal, ScopeKey or ScopeSession.
	Scope string `json:"scope"`
	// Window is Daily or Monthly (global and key), Lifetime (session).
	Window Window `json:"-"`
	// USD is the most the scope may spend in the window.
	USD float64 `json:"limit_usd"`
}

// Reservation asks to hold an amount against limits.
type Reservation struct {
	// Time is when the request started; it picks the windows.
	Time time.Time
	// KeyID and Session name the key and session scopes.
	KeyID, Session string
	// USD is the request's largest possible cost.
	USD float64
	// Limits are checked together; all must have room.
	Limits []Limit
}

// Refusal says why a reservation did not fit.
type Refusal struct {
	Limit Limit
	// SpentUSD is the scope's spend in the window, reservations of
	// requests in flight included.
	SpentUSD float64
	// AskedUSD is the reservation that did not fit.
	AskedUSD float64
	// Resets is when the window starts over (zero for sessions).
	Resets time.Time
}

// Error describes the refusal for the client, without any content.
func (r *Refusal) Error() string {
	var what string
	switch r.Limit.Scope {
	case ScopeGlobal:
		what = "the " + r.Limit.Window.String() + " limit of the gateway"
	case ScopeKey:
		what = "the " + r.Limit.Window.String() + " limit of this key"
	default:
		what = "the limit of this session"
	}
	msg := fmt.Sprintf("budget exceeded: %s is $%s, $%s is spent or reserved, and this request may cost up to $%s",
		what, usd(r.Limit.USD), usd(r.SpentUSD), usd(r.AskedUSD))
	if !r.Resets.IsZero() {
		msg += "; the limit resets at " + r.Resets.Format(time.RFC3339)
	}
	return msg
}

func usd(v float64) string {
	s := fmt.Sprintf("%.6f", v)
	s = strings.TrimRight(s, "0")
	if strings.HasSuffix(s, ".") {
		s += "00"
	} else if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i == 2 {
		s += "0"
	}
	return s
}

// Remaining is what one limit has left.
type Remaining struct {
	Limit
	Window   string    `json:"window"`
	SpentUSD float64   `json:"spent_usd"`
	LeftUSD  float64   `json:"remaining_usd"`
	Resets   time.Time `json:"resets,omitempty"`
}

// Hold is a reservation taken. Settle or Release it exactly once; later
// calls do nothing.
type Hold struct {
	l      *Ledger
	scopes []string
	nano   int64
	once   sync.Once
}

// nano is USD in billionths, the unit of the counters: sums of many small
// costs stay exact.
// Amounts are clamped to maxUSD, so sums of many never overflow and a
// huge (or NaN) reservation is refused rather than wrapped around.
func toNano(v float64) int64 {
	if v != v || v > maxUSD {
		v = maxUSD
	}
	if v < -maxUSD {
		v = -maxUSD
	}
	return int64(math.Round(v * 1e9))
}

// maxUSD bounds one amount: a billion dollars, 1e18 in the counters' unit.
const maxUSD = 1e9

func fromNano(n int64) float64 { return float64(n) / 1e9 }

// counters are the in-memory spend of every scope.
type counters struct {
	loc    *time.Location
	loaded bool
	scopes map[string]*spend
	// applies counts updates, to sweep idle sessions now and then;
	// sweepAt is the map size that triggers a sweep when a scope is
	// added.
	applies int
	sweepAt int
}

// spend is one scope's counters. day and month are the starts of the
// windows daySpent and monthSpent belong to (Unix seconds).
type spend struct {
	day, month           int64
	daySpent, monthSpent int64
	total                int64
	reserved             int64
	last                 time.Time
	session              bool
}

// scopeNames returns the counter names an entry or reservation touches.
func scopeNames(keyID, session string) []string {
	names := make([]string, 1, 3)
	names[0] = ScopeGlobal
	if keyID != "" {
		names = append(names, scopeName(ScopeKey, keyID, ""))
	}
	if session != "" {
		names = append(names, scopeName(ScopeSession, keyID, session))
	}
	return names
}

// scopeName is the counter name of one scope of a key and session.
func scopeName(scope, keyID, session string) string {
	switch scope {
	case ScopeKey:
		return ScopeKey + ":" + keyID
	case ScopeSession:
		return ScopeSession + ":" + keyID + "/" + session
	}
	return ScopeGlobal
}

// windowStarts returns the starts of t's day and month in loc.
func windowStarts(t time.Time, loc *time.Location) (day, month int64) {
	lt := t.In(loc)
	y, m, d := lt.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc).Unix(), time.Date(y, m, 1, 0, 0, 0, 0, loc).Unix()
}

// windowEnd is when the window containing t ends.
func windowEnd(w Window, t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	y, m, d := lt.Date()
	switch w {
	case Daily:
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case Monthly:
		return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return time.Time{}
}

func (c *counters) get(name string) *spend {
	s := c.scopes[name]
	if s == nil {
		s = &spend{session: strings.HasPrefix(name, ScopeSession+":")}
		c.scopes[name] = s
	}
	return s
}

// add books nano USD spent at t on the named scope.
func (c *counters) add(name string, t time.Time, nano int64) {
	s := c.get(name)
	day, month := windowStarts(t, c.loc)
	if day > s.day {
		s.day, s.daySpent = day, 0
	}
	if day == s.day {
		s.daySpent += nano
	}
	if month > s.month {
		s.month, s.monthSpent = month, 0
	}
	if month == s.month {
		s.monthSpent += nano
	}
	if s.session && !s.last.IsZero() && t.Sub(s.last) > SessionIdle {
		// The session went idle and starts over.
		s.total = 0
	}
	s.total += nano
	if t.After(s.last) {
		s.last = t
	}
}

// spent is the scope's spend in window w as of now.
func (s *spend) spent(w Window, now time.Time, loc *time.Location) int64 {
	if s == nil {
		return 0
	}
	day, month := windowStarts(now, loc)
	switch w {
	case Daily:
		if s.day == day {
			return s.daySpent
		}
	case Monthly:
		if s.month == month {
			return s.monthSpent
		}
	case Lifetime:
		if s.last.IsZero() || now.Sub(s.last) <= SessionIdle {
			return s.total
		}
	}
	return 0
}

// sweep forgets sessions idle for longer than SessionIdle.
func (c *counters) sweep(now time.Time) {
	for name, s := range c.scopes {
		if s.session && s.reserved == 0 && now.Sub(s.last) > SessionIdle {
			delete(c.scopes, name)
		}
	}
}

// SetLocation sets the time zone of the daily and monthly windows and,
// the first time or when the zone changes, rebuilds the spend counters
// from the stored entries of the current month (and of the last week, for
// sessions). Requests being recorded wait for the rebuild; reservations
// in flight are kept.
func (l *Ledger) SetLocation(loc *time.Location) error {
	if loc == nil {
		loc = time.UTC
	}
	l.bmu.Lock()
	same := l.ctr.loaded && l.ctr.loc.String() == loc.String()
	l.bmu.Unlock()
	if same {
		return nil
	}
	// Hold off entries being applied while the store is read, so each
	// is counted exactly once: either it is in the store when the scan
	// begins, or it is applied after.
	l.applyMu.Lock()
	defer l.applyMu.Unlock()
	now := l.now()
	_, month := windowStarts(now, loc)
	from := CountedSince(now, loc)
	fresh := &counters{loc: loc, loaded: true, scopes: map[string]*spend{}}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		start := append(append([]byte{}, prefix...), make([]byte, 8)...)
		putTime(start[len(prefix):], from)
		for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			k := item.Key()
			if len(k) < len(prefix)+8 {
				continue
			}
			t := keyTime(k[len(prefix):])
			if err := item.Value(func(v []byte) error {
				cost := gjson.GetBytes(v, "cost_usd").Float()
				if cost <= 0 {
					return nil
				}
				nano := toNano(cost)
				key := gjson.GetBytes(v, "key_id").Str
				sess := gjson.GetBytes(v, "session").Str
				for _, name := range scopeNames(key, sess) {
					if strings.HasPrefix(name, ScopeSession) || !t.Before(time.Unix(month, 0)) {
						fresh.add(name, t, nano)
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	l.mu.RUnlock()
	if err != nil {
		return fmt.Errorf("rebuilding budget counters: %w", err)
	}
	fresh.sweep(now)
	l.bmu.Lock()
	for name, s := range l.ctr.scopes {
		if s.reserved != 0 {
			fresh.get(name).reserved = s.reserved
		}
	}
	l.ctr = *fresh
	l.bmu.Unlock()
	return nil
}

// CountedSince is the oldest time whose entries the budget counters are
// rebuilt from at now: the start of the month in loc, or a week back for
// sessions, whichever is earlier. Pruning entries after it changes what
// budgets count after a restart.
func CountedSince(now time.Time, loc *time.Location) time.Time {
	_, month := windowStarts(now, loc)
	from := time.Unix(month, 0)
	if s := now.Add(-sessionReload); s.Before(from) {
		from = s
	}
	return from
}

// Location returns the time zone of the budget windows.
func (l *Ledger) Location() *time.Location {
	l.bmu.Lock()
	defer l.bmu.Unlock()
	return l.ctr.loc
}

// Reserve holds r.USD against every limit of r, or refuses when one of
// them lacks room; then nothing is held. A limit of 0 USD refuses
// everything that may cost money.
func (l *Ledger) Reserve(r Reservation) (*Hold, *Refusal) {
	nano := toNano(r.USD)
	if nano < 0 {
		nano = 0
	}
	l.bmu.Lock()
	defer l.bmu.Unlock()
	c := &l.ctr
	for _, lim := range r.Limits {
		name := scopeName(lim.Scope, r.KeyID, r.Session)
		s := c.scopes[name]
		spent := s.spent(lim.Window, r.Time, c.loc)
		var reserved int64
		if s != nil {
			reserved = s.reserved
		}
		if spent+reserved+nano > toNano(lim.USD) && nano > 0 {
			return nil, &Refusal{Limit: lim, SpentUSD: fromNano(spent + reserved), AskedUSD: fromNano(nano),
				Resets: windowEnd(lim.Window, r.Time, c.loc)}
		}
	}
	h := &Hold{l: l, nano: nano, scopes: scopeNames(r.KeyID, r.Session)}
	for _, name := range h.scopes {
		s := c.scopes[name]
		if s == nil {
			// Many sessions come and go: forget the idle ones as the
			// map grows.
			if len(c.scopes) >= c.sweepAt {
				c.sweep(r.Time)
				c.sweepAt = max(1024, 2*len(c.scopes))
			}
			s = c.get(name)
		}
		s.reserved += nano
		if s.session && r.Time.After(s.last) {
			if !s.last.IsZero() && r.Time.Sub(s.last) > SessionIdle {
				s.total = 0
			}
			s.last = r.Time
		}
	}
	return h, nil
}

// Remaining reports what each limit has left for the key and session at
// time t (reservations in flight count as spent).
func (l *Ledger) Remaining(t time.Time, keyID, session string, limits []Limit) []Remaining {
	l.bmu.Lock()
	defer l.bmu.Unlock()
	c := &l.ctr
	out := make([]Remaining, 0, len(limits))
	for _, lim := range limits {
		s := c.scopes[scopeName(lim.Scope, keyID, session)]
		spent := s.spent(lim.Window, t, c.loc)
		if s != nil {
			spent += s.reserved
		}
		left := toNano(lim.USD) - spent
		if left < 0 {
			left = 0
		}
		out = append(out, Remaining{Limit: lim, Window: lim.Window.String(), SpentUSD: fromNano(spent), LeftUSD: fromNano(left),
			Resets: windowEnd(lim.Window, t, c.loc)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LeftUSD < out[j].LeftUSD })
	return out
}

// Spent returns a scope's spend in a window at time t, without
// reservations. scope is ScopeGlobal, ScopeKey or ScopeSession.
func (l *Ledger) Spent(t time.Time, scope, keyID, session string, w Window) float64 {
	l.bmu.Lock()
	defer l.bmu.Unlock()
	return fromNano(l.ctr.scopes[scopeName(scope, keyID, session)].spent(w, t, l.ctr.loc))
}

// Settle records e (see Record) and replaces the reservation by e's
// cost in the same step, so the spend counted never dips below what is
// committed. The reservation is released even when recording fails.
func (h *Hold) Settle(e Entry) error {
	if h == nil {
		return errNilHold
	}
	var err error
	done := false
	h.once.Do(func() {
		done = true
		err = h.l.record(e, h)
	})
	if !done {
		return errSettled
	}
	return err
}

// Release gives the reservation back without recording anything.
func (h *Hold) Release() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.l.bmu.Lock()
		h.l.unreserve(h)
		h.l.bmu.Unlock()
	})
}

// USD is the amount held.
func (h *Hold) USD() float64 {
	if h == nil {
		return 0
	}
	return fromNano(h.nano)
}

func (l *Ledger) unreserve(h *Hold) {
	for _, name := range h.scopes {
		if s := l.ctr.scopes[name]; s != nil {
			s.reserved -= h.nano
		}
	}
}

// apply books a committed entry on the counters and drops its hold.
// Called with bmu held.
func (l *Ledger) apply(e *Entry, h *Hold) {
	if h != nil {
		l.unreserve(h)
	}
	c := &l.ctr
	if nano := toNano(e.CostUSD); nano > 0 {
		for _, name := range scopeNames(e.KeyID, e.Session) {
			c.add(name, e.Time, nano)
		}
	} else if e.Session != "" {
		s := c.get(scopeName(ScopeSession, e.KeyID, e.Session))
		if e.Time.After(s.last) {
			s.last = e.Time
		}
	}
	c.applies++
	if c.applies%4096 == 0 {
		c.sweep(l.now())
	}
}
