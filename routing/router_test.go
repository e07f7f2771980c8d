package routing

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testRouter(t *testing.T) *Router {
	t.Helper()
	pu := func(s string) []*url.URL { return []*url.URL{u(s)} }
	c, err := NewCatalog(
		[]*Provider{
			{Name: "openai", Dialect: "openai", URLs: pu("https://api.openai.com")},
			{Name: "anthropic", Dialect: "anthropic", URLs: pu("https://api.anthropic.com")},
			{Name: "jetson", Dialect: "ollama", URLs: pu("http://192.168.1.50:11434")},
		},
		[]*Model{
			{ID: "mini", Provider: "openai", Prices: Prices{Input: 0.4, Output: 1.6}, ContextWindow: 128000, Capabilities: []Capability{CapTools, CapJSON}, Tiers: []Tier{TierTrivial, TierOperational, TierStandard}},
			{ID: "nano", Provider: "openai", Prices: Prices{Input: 0.1, Output: 0.4}, ContextWindow: 128000, Tiers: []Tier{TierTrivial}},
			{ID: "sonnet", Provider: "anthropic", Prices: Prices{Input: 3, Output: 15}, ContextWindow: 200000, Capabilities: []Capability{CapTools, CapVision, CapJSON}, Tiers: []Tier{TierComplex, TierDeep}},
			{ID: "gpt", Provider: "openai", Prices: Prices{Input: 2, Output: 8}, ContextWindow: 1000000, Capabilities: []Capability{CapTools, CapVision}, Tiers: []Tier{TierStandard, TierComplex}},
			{ID: "qwen", Provider: "jetson", ContextWindow: 8000, Capabilities: []Capability{CapTools}, Tiers: []Tier{TierOperational}},
		},
		map[string]string{"smart": "sonnet"},
	)
	if err != nil {
		t.Fatal(err)
	}
	return &Router{Catalog: c, Analyzer: NewAnalyzer(TierStandard, nil), Fallbacks: map[string][]string{"sonnet": {"gpt"}, "deep": {"gpt"}},
		Breakers: NewBreakers(nil), BreakerThreshold: 3, BreakerCooldown: time.Minute}
}

func ids(p *Plan) string {
	var s []string
	for _, c := range p.Candidates {
		s = append(s, c.Model.ID)
	}
	return strings.Join(s, ",")
}

func TestPlanTiersCostAndCapabilities(t *testing.T) {
	rt := testRouter(t)
	p, err := rt.Plan("auto", "", Features{LastUser: "fix this typo", Messages: 1})
	if err != nil || p.Tier != TierTrivial || ids(p) != "nano,mini" {
		t.Fatalf("typo: %v %v %+v", ids(p), err, p)
	}
	// Tools rule out nano, which does not declare them.
	p, _ = rt.Plan("", "", Features{LastUser: "fix this typo", Messages: 1, Tools: 2})
	if ids(p) != "mini" || len(p.Skipped) != 1 || !strings.Contains(p.Skipped[0].Reason, "tools") {
		t.Fatalf("tools: %v %+v", ids(p), p.Skipped)
	}
	p, _ = rt.Plan("auto", "", Features{LastUser: "debug this race condition step by step", Messages: 1})
	if p.Tier != TierDeep || ids(p) != "sonnet,gpt" {
		t.Fatalf("deep: %v %s", ids(p), p.Tier)
	}
	// The header wins over the content, and a bad value lists the tiers.
	p, _ = rt.Plan("auto", "operational", Features{LastUser: "debug this race condition step by step", Messages: 1})
	if p.Tier != TierOperational || ids(p) != "qwen,mini" {
		t.Fatalf("header: %v %s", ids(p), p.Tier)
	}
	if _, err := rt.Plan("auto", "huge", Features{}); !errors.Is(err, ErrBadTier) || !strings.Contains(err.Error(), "trivial, operational, standard, complex, deep") {
		t.Errorf("bad tier: %v", err)
	}
	// Context window: a 10k-token request does not fit qwen's 8k.
	big := Features{LastUser: "list the files", ContextChars: 40000, Messages: 1}
	p, _ = rt.Plan("", "operational", big)
	if ids(p) != "mini" || !strings.Contains(p.Skipped[0].Reason, "context window") {
		t.Errorf("context: %v %+v", ids(p), p.Skipped)
	}
	// Images with nothing capable in the tier: the nearest tier up that
	// has a vision model serves it.
	p, err = rt.Plan("", "trivial", Features{LastUser: "x", Images: true, Messages: 1})
	if err != nil || ids(p) != "gpt" || !strings.Contains(p.Reason, "escalated to standard") {
		t.Errorf("images: %v %v %s", ids(p), err, p.Reason)
	}
	// Nothing in the catalog fits: a 400-worthy error that says why.
	_, err = rt.Plan("", "trivial", Features{LastUser: "x", ContextChars: 8 << 20, Messages: 1})
	if !errors.Is(err, ErrNoCandidate) || !strings.Contains(err.Error(), "context window 128000 tokens is too small") {
		t.Errorf("too big: %v", err)
	}
}

func TestPlanExplicitAliasesAndFallbacks(t *testing.T) {
	rt := testRouter(t)
	p, err := rt.Plan("smart", "", Features{})
	if err != nil || ids(p) != "sonnet,gpt" {
		t.Fatalf("alias with fallback: %v %v", ids(p), err)
	}
	p, _ = rt.Plan("cheap", "", Features{Messages: 1})
	if !strings.HasPrefix(ids(p), "qwen,nano,mini") {
		t.Errorf("cheap: %v", ids(p))
	}
	p, _ = rt.Plan("premium", "", Features{Messages: 1})
	if !strings.HasPrefix(ids(p), "sonnet") {
		t.Errorf("premium: %v", ids(p))
	}
	p, _ = rt.Plan("local", "", Features{Messages: 1})
	if ids(p) != "qwen" {
		t.Errorf("local: %v", ids(p))
	}
	p, _ = rt.Plan("free", "", Features{Messages: 1})
	if ids(p) != "qwen" {
		t.Errorf("free: %v", ids(p))
	}
	if _, err := rt.Plan("nope", "", Features{}); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("unknown: %v", err)
	}
	// An open breaker takes a target out, with the reason.
	for i := 0; i < 3; i++ {
		rt.Breakers.Failure("anthropic", "sonnet", rt.BreakerThreshold, rt.BreakerCooldown)
	}
	p, _ = rt.Plan("smart", "", Features{})
	if ids(p) != "gpt" || !strings.Contains(p.Skipped[0].Reason, "circuit open") || p.Skipped[0].Kind != SkipBroken {
		t.Errorf("breaker: %v %+v", ids(p), p.Skipped)
	}
	// gpt answering is still a fallback: its rank counts the skipped
	// first choice.
	if p.Candidates[0].Rank != 1 {
		t.Errorf("rank of the fallback = %d", p.Candidates[0].Rank)
	}
	// Every target out of service: not the client's fault (503), and
	// the plan says when to come back.
	for i := 0; i < 3; i++ {
		rt.Breakers.Failure("openai", "gpt", rt.BreakerThreshold, rt.BreakerCooldown)
	}
	p, err = rt.Plan("smart", "", Features{})
	if !errors.Is(err, ErrNoneAvailable) || p == nil || p.RetryAt.IsZero() {
		t.Errorf("all open: %v %+v", err, p)
	}
}

// TestPlanEscalatesPastFallbacks: a tier whose models and fallbacks all
// lack what the request needs escalates like a tier without fallbacks,
// and every target left out keeps its reason.
func TestPlanEscalatesPastFallbacks(t *testing.T) {
	pu := []*url.URL{u("https://api.example.com")}
	c, err := NewCatalog([]*Provider{{Name: "p", Dialect: "openai", URLs: pu}},
		[]*Model{
			{ID: "tiny", Provider: "p", Prices: Prices{Input: 0.1, Output: 0.4}, Tiers: []Tier{TierTrivial}},
			{ID: "mid", Provider: "p", Prices: Prices{Input: 1, Output: 4}, Tiers: []Tier{TierStandard}},
			{ID: "big", Provider: "p", Prices: Prices{Input: 3, Output: 15}, Capabilities: []Capability{CapVision}, Tiers: []Tier{TierComplex}},
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := &Router{Catalog: c, Analyzer: NewAnalyzer(TierStandard, nil), Fallbacks: map[string][]string{"trivial": {"mid"}}}
	img := Features{LastUser: "what is in this picture", Images: true, Messages: 1}
	for _, model := range []string{"", "trivial"} {
		header := "trivial"
		if model != "" {
			header = ""
		}
		p, err := rt.Plan(model, header, img)
		if err != nil || ids(p) != "big" || !strings.Contains(p.Reason, "escalated to complex") {
			t.Fatalf("%q: %v %v %+v", model, ids(p), err, p)
		}
		var skipped []string
		for _, s := range p.Skipped {
			skipped = append(skipped, s.Model+": "+s.Reason)
		}
		if got := strings.Join(skipped, "; "); got != "tiny: does not support images; mid: does not support images" {
			t.Errorf("%q: skipped %s", model, got)
		}
	}
	// A capable fallback still comes before any escalation.
	p, err := rt.Plan("", "trivial", Features{LastUser: "x", Messages: 1})
	if err != nil || ids(p) != "tiny,mid" || strings.Contains(p.Reason, "escalated") {
		t.Errorf("text: %v %v %s", ids(p), err, p.Reason)
	}
}

// TestPlanDedupesResolvedTargets: an alias and the model it names are
// one target, tried once at its first place; ranks count targets.
func TestPlanDedupesResolvedTargets(t *testing.T) {
	rt := testRouter(t)
	rt.Fallbacks = map[string][]string{"deep": {"smart", "gpt"}, "sonnet": {"smart"}, "smart": {"sonnet", "gpt"}}
	deep := Features{LastUser: "debug this race condition step by step", Messages: 1}
	p, err := rt.Plan("auto", "", deep)
	if err != nil || p.Tier != TierDeep || ids(p) != "sonnet,gpt" || p.Candidates[1].Rank != 1 {
		t.Fatalf("deep: %v %v %+v", ids(p), err, p.Candidates)
	}
	if p, err := rt.Plan("sonnet", "", Features{}); err != nil || ids(p) != "sonnet" {
		t.Errorf("sonnet: %v %v", ids(p), err)
	}
	if p, err := rt.Plan("smart", "", Features{}); err != nil || ids(p) != "sonnet,gpt" || p.Candidates[1].Rank != 1 {
		t.Errorf("smart: %v %v", ids(p), err)
	}
	// With the first choice's circuit open, the real fallback answers
	// as the first fallback, not the second.
	for i := 0; i < 3; i++ {
		rt.Breakers.Failure("anthropic", "sonnet", rt.BreakerThreshold, rt.BreakerCooldown)
	}
	p, err = rt.Plan("auto", "", deep)
	if err != nil || ids(p) != "gpt" || p.Candidates[0].Rank != 1 || len(p.Skipped) != 1 {
		t.Errorf("breaker: %v %v %+v %+v", ids(p), err, p.Candidates, p.Skipped)
	}
}

func BenchmarkPlanAuto(b *testing.B) {
	rt := testRouter(&testing.T{})
	f := Features{LastUser: strings.Repeat("please refactor server.go and explain the race condition. ", 18), ContextChars: 4000, Messages: 6, Tools: 3}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rt.Plan("auto", "", f); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPlanCostTiesKeepConfiguredOrder: models of a tier at the same
// estimated cost are tried in the order the config lists them (the
// catalog's, or the tier's own list).
func TestPlanCostTiesKeepConfiguredOrder(t *testing.T) {
	pu := []*url.URL{u("https://api.example.test")}
	same := Prices{Input: 1, Output: 2}
	c, err := NewCatalog([]*Provider{{Name: "p", Dialect: "openai", URLs: pu}}, []*Model{
		{ID: "zeta", Provider: "p", Prices: same, Tiers: []Tier{TierStandard}},
		{ID: "alpha", Provider: "p", Prices: same, Tiers: []Tier{TierStandard}},
		{ID: "dear", Provider: "p", Prices: Prices{Input: 5, Output: 20}, Tiers: []Tier{TierStandard}},
		{ID: "cheap", Provider: "p", Prices: Prices{Input: 0.1, Output: 0.2}, Tiers: []Tier{TierStandard}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := &Router{Catalog: c, Analyzer: NewAnalyzer(TierStandard, nil), Breakers: NewBreakers(nil), BreakerThreshold: 3, BreakerCooldown: time.Minute}
	f := Features{LastUser: "write a function that parses dates", Messages: 1, MaxOutput: 1000}
	for i := 0; i < 20; i++ { // a stable order, not a lucky one
		if p, err := rt.Plan("", "standard", f); err != nil || ids(p) != "cheap,zeta,alpha,dear" {
			t.Fatalf("catalog order: %s %v", ids(p), err)
		}
	}
	rt.TierModels = map[Tier][]string{TierStandard: {"dear", "alpha", "zeta"}}
	if p, err := rt.Plan("", "standard", f); err != nil || ids(p) != "alpha,zeta,dear" {
		t.Fatalf("tier list order: %s %v", ids(p), err)
	}
}
