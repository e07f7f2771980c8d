package routing

import (
	"testing"
	"time"
)

func TestBreakerTransitions(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBreakers(func() time.Time { return now })
	const threshold, cooldown = 3, 30 * time.Second
	for i := 0; i < threshold-1; i++ {
		b.Failure("p", "m", threshold, cooldown)
		if ok, _ := b.Allow("p", "m"); !ok {
			t.Fatalf("open after %d failures", i+1)
		}
	}
	b.Failure("p", "m", threshold, cooldown)
	if ok, why := b.Allow("p", "m"); ok || why == "" {
		t.Fatal("still closed after the threshold")
	}
	if s, until := b.State("p", "m"); s != BreakerOpen || !until.Equal(now.Add(cooldown)) {
		t.Fatalf("state %s until %v", s, until)
	}
	if ok, _ := b.Allow("p", "other"); !ok {
		t.Error("another model of the provider is affected")
	}
	now = now.Add(cooldown)
	if s, _ := b.State("p", "m"); s != BreakerHalfOpen {
		t.Fatalf("after cooldown: %s", s)
	}
	if ok, _ := b.Allow("p", "m"); !ok {
		t.Fatal("no probe after the cooldown")
	}
	if ok, _ := b.Allow("p", "m"); ok {
		t.Fatal("two probes at once")
	}
	b.Failure("p", "m", threshold, cooldown) // the probe failed
	if s, _ := b.State("p", "m"); s != BreakerOpen {
		t.Fatalf("failed probe: %s", s)
	}
	now = now.Add(cooldown)
	if ok, _ := b.Allow("p", "m"); !ok {
		t.Fatal("no second probe")
	}
	b.Success("p", "m")
	if s, _ := b.State("p", "m"); s != BreakerClosed {
		t.Fatalf("successful probe: %s", s)
	}
}

func TestRetryAfterWait(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBreakers(func() time.Time { return now })
	b.Wait("p", "m", now.Add(10*time.Second))
	if ok, why := b.Allow("p", "m"); ok || why == "" {
		t.Fatal("provider told to wait was allowed")
	}
	if ok, _ := b.Allow("p", "other"); !ok {
		t.Fatal("the provider's other models wait too")
	}
	now = now.Add(10 * time.Second)
	if ok, _ := b.Allow("p", "m"); !ok {
		t.Fatal("still waiting after Retry-After")
	}
}
