package routing

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"
)

// Router turns a request into an ordered list of targets: an explicit
// model or alias wins, X-Task-Tier names a tier, and a missing model or
// "auto" lets the analyzer pick the tier; the capable models of the tier
// are then ordered by estimated cost and followed by the configured
// fallbacks.
type Router struct {
	Catalog  *Catalog
	Analyzer *Analyzer
	// TierModels lists models per tier in preference order; tiers not
	// listed take the models that declare them.
	TierModels map[Tier][]string
	// Fallbacks maps a model id, alias or tier name to the models tried
	// after it, in order.
	Fallbacks map[string][]string
	// Breakers and their thresholds.
	Breakers         *Breakers
	BreakerThreshold int
	BreakerCooldown  time.Duration
}

// Builtin aliases resolved from the catalog when the config does not
// define them.
var builtinAliases = []string{"cheap", "balanced", "premium", "free", "local"}

// Candidate is one target of a plan.
type Candidate struct {
	Model    *Model
	Provider *Provider
	// EstimatedCost in USD for this request (input estimate plus the
	// output limit at the model's prices).
	EstimatedCost float64
	// Rank is the target's place in the plan had every circuit been
	// closed and no provider asked to wait: 0 for the first choice, so a
	// candidate with Rank > 0 that answers is a fallback.
	Rank int

	// down, when set, says why the target is out of service for now
	// (breaker or Retry-After); Plan moves it to Skipped.
	down     string
	downKind SkipKind
}

// SkipKind classifies why a target was left out of a plan.
type SkipKind string

// The kinds of skip. Unknown and Incapable targets could never serve the
// request; Unavailable, Broken and Waiting ones might later.
const (
	SkipUnknown     SkipKind = "unknown"
	SkipUnavailable SkipKind = "unavailable"
	SkipIncapable   SkipKind = "incapable"
	SkipBroken      SkipKind = "circuit_open"
	SkipWaiting     SkipKind = "retry_after"
)

// Skipped is a target left out of a plan, and why.
type Skipped struct {
	Model    string   `json:"model"`
	Provider string   `json:"provider,omitempty"`
	Kind     SkipKind `json:"kind"`
	Reason   string   `json:"reason"`
}

// Plan is a routing decision before any attempt.
type Plan struct {
	Requested  string
	Tier       Tier
	Reason     string
	Reasons    []string
	Candidates []Candidate
	Skipped    []Skipped
	// RetryAt is, when every capable target is broken or waiting, the
	// earliest time one may be tried again.
	RetryAt time.Time
}

// ErrNoCandidate is returned (wrapped) when no target can serve a request.
var ErrNoCandidate = errors.New("no model can serve this request")

// ErrNoneAvailable is returned (wrapped) when targets able to serve the
// request exist but none can be used now: no API key, circuit open, or
// Retry-After in force. Unlike ErrNoCandidate it is not the client's
// fault.
var ErrNoneAvailable = errors.New("no model able to serve this request is available now")

// ErrBadTier is returned (wrapped) for an unknown X-Task-Tier value.
var ErrBadTier = errors.New("invalid X-Task-Tier")

// IsAuto reports whether a model name asks the router to choose.
func IsAuto(model string) bool { return model == "" || model == "auto" }

// NeedsFeatures reports whether planning for this model name and tier
// header looks at the request's content (so the caller must decode it).
func (rt *Router) NeedsFeatures(model, tierHeader string) bool {
	if tierHeader != "" || IsAuto(model) {
		return true
	}
	if rt.Catalog.Known(model) {
		// Fallbacks are the router's choice: they must be checked
		// against what the request needs.
		return len(rt.Fallbacks[model]) > 0 || len(rt.Fallbacks[rt.Catalog.aliases[model]]) > 0
	}
	return rt.Routable(model)
}

// Routable reports whether name is something the router accepts as a
// model: a model id, an alias, "auto", a built-in alias (cheap,
// balanced, premium, free, local) or a tier name.
func (rt *Router) Routable(name string) bool {
	if IsAuto(name) || rt.Catalog.Known(name) {
		return true
	}
	for _, a := range builtinAliases {
		if a == name {
			return true
		}
	}
	_, err := ParseTier(name)
	return err == nil
}

// BuiltinAliases lists the aliases the router resolves itself when the
// config does not define them.
func BuiltinAliases() []string { return append([]string(nil), builtinAliases...) }

// Plan routes one request. f may be zero when NeedsFeatures is false.
func (rt *Router) Plan(model, tierHeader string, f Features) (*Plan, error) {
	p := &Plan{Requested: model}
	var ids []string
	explicit := false // the client named the target: trust its choice
	keepOrder := false
	switch {
	case tierHeader != "":
		t, err := ParseTier(tierHeader)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTier, err)
		}
		p.Tier, p.Reason = t, "X-Task-Tier: "+string(t)
		ids = rt.tierModels(t)
	case IsAuto(model):
		a := rt.Analyzer.Analyze(f)
		p.Tier, p.Reasons = a.Tier, a.Reasons
		p.Reason = "auto: " + string(a.Tier) + " (" + strings.Join(a.Reasons, "; ") + ")"
		ids = rt.tierModels(a.Tier)
	case rt.Catalog.Model(model) != nil:
		p.Reason, ids, explicit = "model "+model+" requested", []string{model}, true
	case rt.Catalog.aliases[model] != "":
		target := rt.Catalog.aliases[model]
		p.Reason, ids, explicit = "alias "+model+" → "+target, []string{target}, true
	case isTierName(model):
		// A tier named as the model: for clients that cannot set
		// X-Task-Tier.
		p.Tier, _ = ParseTier(model)
		p.Reason = "model " + model + ": tier " + string(p.Tier)
		ids = rt.tierModels(p.Tier)
	default:
		var ok bool
		if ids, ok = rt.builtinAlias(model); !ok {
			return nil, fmt.Errorf("%w: %q is neither a model nor an alias of this gateway (GET /v1/models lists them)", ErrUnknownModel, model)
		}
		p.Reason = "alias " + model
		keepOrder = model == "premium"
	}
	// Configured fallbacks follow: for the model or alias asked for, or
	// for the tier.
	fbKey := model
	if p.Tier != "" {
		fbKey = string(p.Tier)
	}
	fallbacks := append([]string(nil), rt.Fallbacks[fbKey]...)
	if explicit && rt.Catalog.aliases[model] != "" {
		fallbacks = append(fallbacks, rt.Fallbacks[rt.Catalog.aliases[model]]...)
	}
	seen := map[string]bool{}
	primary := rt.fill(p, ids, f, explicit, seen)
	backup := rt.fill(p, fallbacks, f, false, seen)
	if p.Tier != "" && len(primary) == 0 && len(backup) == 0 {
		// Neither the tier's models nor its fallbacks can serve the
		// request (it needs tools, images or a larger context than they
		// have): the next tiers up, then down, may.
		for _, t := range tierWalk(p.Tier)[1:] {
			more := rt.fill(p, rt.modelsOfTier(t), f, false, seen)
			if len(more) > 0 {
				primary = more
				p.Reason += "; no capable model in tier " + string(p.Tier) + ", escalated to " + string(t)
				break
			}
		}
	}
	if !explicit && !keepOrder {
		sort.SliceStable(primary, func(i, j int) bool { return primary[i].EstimatedCost < primary[j].EstimatedCost })
	}
	all := append(primary, backup...)
	for i, c := range all {
		if c.down != "" {
			p.Skipped = append(p.Skipped, Skipped{Model: c.Model.ID, Provider: c.Provider.Name, Kind: c.downKind, Reason: c.down})
			continue
		}
		c.Rank = i
		p.Candidates = append(p.Candidates, c)
	}
	if len(p.Candidates) == 0 {
		var why []string
		sentinel := ErrNoCandidate
		for _, s := range p.Skipped {
			why = append(why, s.Model+": "+s.Reason)
			if s.Kind != SkipUnknown && s.Kind != SkipIncapable {
				sentinel = ErrNoneAvailable
			}
		}
		if len(why) == 0 {
			why = append(why, "no model is configured for it")
		}
		return p, fmt.Errorf("%w (%s): %s", sentinel, p.Reason, strings.Join(why, "; "))
	}
	return p, nil
}

// tierWalk is t, then the tiers above it, then those below, nearest first.
func tierWalk(t Tier) []Tier {
	order := []Tier{t}
	ti := tierIndexOf(t)
	for i := ti + 1; i < len(Tiers); i++ {
		order = append(order, Tiers[i])
	}
	for i := ti - 1; i >= 0; i-- {
		order = append(order, Tiers[i])
	}
	return order
}

func isTierName(s string) bool {
	_, err := ParseTier(s)
	return err == nil
}

// TierModelsOf lists the models tier t routes to, in configured order
// (before capability filters and cost order).
func (rt *Router) TierModelsOf(t Tier) []string { return rt.tierModels(t) }

// tierModels lists the models of tier t, walking to the next tiers up
// (then down) when t has none.
func (rt *Router) tierModels(t Tier) []string {
	for _, tier := range tierWalk(t) {
		if ids := rt.modelsOfTier(tier); len(ids) > 0 {
			return ids
		}
	}
	// No model declares any tier: every model serves every tier.
	return append([]string(nil), rt.Catalog.order...)
}

func (rt *Router) modelsOfTier(t Tier) []string {
	if ids, ok := rt.TierModels[t]; ok {
		return ids
	}
	var ids []string
	for _, id := range rt.Catalog.order {
		for _, mt := range rt.Catalog.models[id].Tiers {
			if mt == t {
				ids = append(ids, id)
				break
			}
		}
	}
	return ids
}

// BuiltinAliasModels lists the models the built-in alias name (cheap,
// balanced, premium, free, local) routes to when the config does not
// define it, in the order they are considered (cheap and balanced are
// then ordered by cost); nil for another name.
func (rt *Router) BuiltinAliasModels(name string) []string {
	ids, _ := rt.builtinAlias(name)
	return ids
}

// builtinAlias resolves cheap, balanced, premium, free and local when
// the config does not define them.
func (rt *Router) builtinAlias(name string) ([]string, bool) {
	all := append([]string(nil), rt.Catalog.order...)
	c := rt.Catalog
	switch name {
	case "cheap":
		return all, true // fill orders by cost
	case "balanced":
		return rt.tierModels(TierStandard), true
	case "premium":
		sort.SliceStable(all, func(i, j int) bool {
			return c.models[all[i]].Prices.Output+c.models[all[i]].Prices.Input > c.models[all[j]].Prices.Output+c.models[all[j]].Prices.Input
		})
		return all, true
	case "free":
		var out []string
		for _, id := range all {
			if m := c.models[id]; m.Prices.Input == 0 && m.Prices.Output == 0 {
				out = append(out, id)
			}
		}
		return out, true
	case "local":
		var out []string
		for _, id := range all {
			if isLocal(c.providers[c.models[id].Provider]) {
				out = append(out, id)
			}
		}
		return out, true
	}
	return nil, false
}

// isLocal reports whether a provider runs on this machine or the LAN.
func isLocal(p *Provider) bool {
	if p.Dialect == "ollama" {
		return true
	}
	for _, u := range p.URLs {
		host := u.Hostname()
		if host == "localhost" {
			return true
		}
		if ip := net.ParseIP(host); ip != nil && (ip.IsLoopback() || ip.IsPrivate()) {
			return true
		}
	}
	return false
}

// fill turns model ids and aliases into candidates: unknown,
// unavailable, incapable and broken targets are skipped with their reason
// (in p.Skipped). A target already in seen (by model id, whatever name
// led to it) is left out: it is tried once, at its first place.
func (rt *Router) fill(p *Plan, ids []string, f Features, explicit bool, seen map[string]bool) []Candidate {
	var cands []Candidate
	for _, id := range ids {
		m := rt.Catalog.models[id]
		if m == nil {
			if target := rt.Catalog.aliases[id]; target != "" {
				m = rt.Catalog.models[target]
			}
		}
		// A model id names one model of one provider; an unknown name
		// cannot be a model id, so the two never collide.
		key := id
		if m != nil {
			key = m.ID
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		if m == nil {
			p.Skipped = append(p.Skipped, Skipped{Model: id, Kind: SkipUnknown, Reason: "not in the catalog"})
			continue
		}
		prov := rt.Catalog.providers[m.Provider]
		skip := func(kind SkipKind, why string) {
			p.Skipped = append(p.Skipped, Skipped{Model: m.ID, Provider: prov.Name, Kind: kind, Reason: why})
		}
		if why := prov.Unavailable(); why != "" {
			skip(SkipUnavailable, why)
			continue
		}
		// The client's explicit choice is trusted with its features;
		// the router's own choices must be able to serve the request.
		if !explicit || len(cands) > 0 {
			if why := capable(m, f); why != "" {
				skip(SkipIncapable, why)
				continue
			}
		}
		c := Candidate{Model: m, Provider: prov, EstimatedCost: estimate(m, f)}
		if rt.Breakers != nil {
			if why, kind, until := rt.Breakers.Peek(prov.Name, m.ID); why != "" {
				c.down, c.downKind = why, kind
				if !until.IsZero() && (p.RetryAt.IsZero() || until.Before(p.RetryAt)) {
					p.RetryAt = until
				}
			}
		}
		cands = append(cands, c)
	}
	return cands
}

// capable says why m cannot serve a request with features f, or "".
func capable(m *Model, f Features) string {
	switch {
	case f.Tools > 0 && !m.Has(CapTools):
		return "does not support tools"
	case f.Images && !m.Has(CapVision):
		return "does not support images"
	case f.JSONSchema && !m.Has(CapJSON):
		return "does not support JSON schema output"
	}
	if m.ContextWindow > 0 {
		out := f.MaxOutput
		if out == 0 {
			out = min(m.MaxOutput, 1024)
		}
		if need := f.EstimatedInputTokens() + out; need > m.ContextWindow {
			return fmt.Sprintf("context window %d tokens is too small for ~%d", m.ContextWindow, need)
		}
	}
	return ""
}

// estimate is the request's cost at m's prices: the input estimate plus
// the output limit (the client's, else the model's, else 1,000 tokens).
func estimate(m *Model, f Features) float64 {
	out := f.MaxOutput
	if out == 0 {
		out = m.MaxOutput
	}
	if out == 0 {
		out = 1000
	}
	return (float64(f.EstimatedInputTokens())*m.Prices.Input + float64(out)*m.Prices.Output) / 1e6
}
