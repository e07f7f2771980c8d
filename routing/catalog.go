// Package routing holds the gateway's catalog of providers and models and
// turns a client's model name into a routing decision: which provider,
// which upstream model id, and why.
//
// It knows nothing of HTTP, Caddy or money beyond the catalog's price
// fields: handlers ask it for decisions, the ledger prices them.
package routing

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Capability names a feature a model supports.
type Capability string

// The capabilities a model can declare.
const (
	CapTools     Capability = "tools"
	CapVision    Capability = "vision"
	CapJSON      Capability = "json"
	CapReasoning Capability = "reasoning"
)

// Capabilities lists every known capability, in display order.
var Capabilities = []Capability{CapTools, CapVision, CapJSON, CapReasoning}

// Tier names a class of task difficulty.
type Tier string

// The tiers, from the cheapest kind of work to the hardest.
const (
	TierTrivial     Tier = "trivial"
	TierOperational Tier = "operational"
	TierStandard    Tier = "standard"
	TierComplex     Tier = "complex"
	TierDeep        Tier = "deep"
)

// Tiers lists every tier in order of difficulty.
var Tiers = []Tier{TierTrivial, TierOperational, TierStandard, TierComplex, TierDeep}

// ParseTier returns the tier named s (case-insensitive) or an error that
// lists the valid names.
func ParseTier(s string) (Tier, error) {
	for _, t := range Tiers {
		if strings.EqualFold(s, string(t)) {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown tier %q (valid: %s)", s, joinTiers())
}

func joinTiers() string {
	names := make([]string, len(Tiers))
	for i, t := range Tiers {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// ParseCapability returns the capability named s or an error that lists
// the valid names.
func ParseCapability(s string) (Capability, error) {
	for _, c := range Capabilities {
		if strings.EqualFold(s, string(c)) {
			return c, nil
		}
	}
	names := make([]string, len(Capabilities))
	for i, c := range Capabilities {
		names[i] = string(c)
	}
	return "", fmt.Errorf("unknown capability %q (valid: %s)", s, strings.Join(names, ", "))
}

// Provider is one upstream API the gateway can send requests to.
type Provider struct {
	// Name identifies the provider in the catalog and in routing headers.
	Name string
	// Dialect is the wire format the provider speaks (see package dialects).
	Dialect string
	// URLs are the upstream base URLs, all with the same scheme and path.
	URLs []*url.URL
	// APIKey is the resolved key; empty when the provider needs none or
	// when KeySource resolved to nothing.
	APIKey string
	// KeySource is the key as configured, e.g. "{env.OPENAI_API_KEY}",
	// kept to tell users what to set. Never the key itself.
	KeySource string
	// Headers are extra request headers sent to this provider.
	Headers map[string]string
}

// BasePath is the path prefix shared by the provider's URLs ("" or
// "/api/v1", never ending in "/").
func (p *Provider) BasePath() string {
	if len(p.URLs) == 0 {
		return ""
	}
	return strings.TrimSuffix(p.URLs[0].Path, "/")
}

// Available reports whether requests can be sent to the provider. A
// provider whose configured key resolved to an empty string is not.
func (p *Provider) Available() bool {
	return p.KeySource == "" || p.APIKey != ""
}

// Unavailable explains why the provider cannot be used, or returns "".
func (p *Provider) Unavailable() string {
	if p.Available() {
		return ""
	}
	if env := EnvName(p.KeySource); env != "" {
		return fmt.Sprintf("provider %s has no API key: set the environment variable %s", p.Name, env)
	}
	return fmt.Sprintf("provider %s has no API key: its api_key %q resolved to an empty value", p.Name, p.KeySource)
}

// EnvName returns NAME when s is exactly "{env.NAME}", else "".
func EnvName(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{env.") && strings.HasSuffix(s, "}") {
		return s[len("{env.") : len(s)-1]
	}
	return ""
}

// Prices are USD per one million tokens.
type Prices struct {
	Input       float64
	Output      float64
	CachedInput float64
	CacheWrite  float64
}

// Model is one model clients can ask for.
type Model struct {
	// ID is the name clients use.
	ID string
	// Provider is the name of the provider that serves it.
	Provider string
	// UpstreamID is the model id sent to the provider.
	UpstreamID string
	// Prices per 1M tokens.
	Prices Prices
	// ContextWindow in tokens; 0 when unknown.
	ContextWindow int
	// MaxOutput tokens; 0 when unknown.
	MaxOutput int
	// Capabilities the model supports.
	Capabilities []Capability
	// Tiers the model is suited for.
	Tiers []Tier
}

// Has reports whether the model declares capability c.
func (m *Model) Has(c Capability) bool {
	for _, x := range m.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// Catalog is the immutable set of providers, models and aliases of one
// config. It is safe for concurrent use.
type Catalog struct {
	providers map[string]*Provider
	models    map[string]*Model
	order     []string // model ids in configured order
	aliases   map[string]string
}

// NewCatalog checks the declarations for consistency and builds a catalog.
// Errors name the offending provider, model or alias.
func NewCatalog(providers []*Provider, models []*Model, aliases map[string]string) (*Catalog, error) {
	c := &Catalog{
		providers: make(map[string]*Provider, len(providers)),
		models:    make(map[string]*Model, len(models)),
		aliases:   make(map[string]string, len(aliases)),
	}
	for _, p := range providers {
		if p.Name == "" {
			return nil, errors.New("provider without a name")
		}
		if _, dup := c.providers[p.Name]; dup {
			return nil, fmt.Errorf("provider %s declared twice", p.Name)
		}
		if len(p.URLs) == 0 {
			return nil, fmt.Errorf("provider %s: no url", p.Name)
		}
		for _, u := range p.URLs[1:] {
			if u.Scheme != p.URLs[0].Scheme || strings.TrimSuffix(u.Path, "/") != p.BasePath() {
				return nil, fmt.Errorf("provider %s: all urls must share scheme and path (%s vs %s)", p.Name, p.URLs[0], u)
			}
		}
		c.providers[p.Name] = p
	}
	for _, m := range models {
		if m.ID == "" {
			return nil, errors.New("model without an id")
		}
		if err := reservedName("model", m.ID); err != nil {
			return nil, err
		}
		if _, dup := c.models[m.ID]; dup {
			return nil, fmt.Errorf("model %s declared twice", m.ID)
		}
		if m.Provider == "" {
			return nil, fmt.Errorf("model %s: no provider", m.ID)
		}
		if _, ok := c.providers[m.Provider]; !ok {
			return nil, fmt.Errorf("model %s: unknown provider %s", m.ID, m.Provider)
		}
		if m.UpstreamID == "" {
			m.UpstreamID = m.ID
		}
		if m.Prices.Input < 0 || m.Prices.Output < 0 || m.Prices.CachedInput < 0 {
			return nil, fmt.Errorf("model %s: negative price", m.ID)
		}
		c.models[m.ID] = m
		c.order = append(c.order, m.ID)
	}
	for name, target := range aliases {
		if err := reservedName("alias", name); err != nil {
			return nil, err
		}
		if _, clash := c.models[name]; clash {
			return nil, fmt.Errorf("alias %s has the name of a model", name)
		}
		if _, ok := c.models[target]; !ok {
			return nil, fmt.Errorf("alias %s: unknown model %s", name, target)
		}
		c.aliases[name] = target
	}
	return c, nil
}

// reservedName explains why name cannot be a model id or an alias
// (kind), or returns nil: "auto" and the tier names (in any case) are
// routed before or beside them, so a model or alias of that name would
// be unreachable or ambiguous. The built-in aliases (cheap, balanced,
// premium, free, local) may be redefined.
func reservedName(kind, name string) error {
	switch {
	case name == "":
		return errors.New(kind + " without a name")
	case IsAuto(name):
		return fmt.Errorf("%s %s: the name %q is reserved: it asks the router to pick the tier", kind, name, name)
	case isTierName(name):
		return fmt.Errorf("%s %s: the name %q is reserved: it names the tier %s", kind, name, name, strings.ToLower(name))
	}
	return nil
}

// Provider returns the named provider or nil.
func (c *Catalog) Provider(name string) *Provider { return c.providers[name] }

// Model returns the model with that exact id or nil.
func (c *Catalog) Model(id string) *Model { return c.models[id] }

// Models returns every model in configured order.
func (c *Catalog) Models() []*Model {
	out := make([]*Model, len(c.order))
	for i, id := range c.order {
		out[i] = c.models[id]
	}
	return out
}

// Providers returns every provider sorted by name.
func (c *Catalog) Providers() []*Provider {
	out := make([]*Provider, 0, len(c.providers))
	for _, p := range c.providers {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Known reports whether name is a model id or an alias.
func (c *Catalog) Known(name string) bool {
	_, m := c.models[name]
	_, a := c.aliases[name]
	return m || a
}

// Aliases returns a copy of the alias table.
func (c *Catalog) Aliases() map[string]string {
	out := make(map[string]string, len(c.aliases))
	for k, v := range c.aliases {
		out[k] = v
	}
	return out
}

// Decision is what the router decided for one request.
type Decision struct {
	// Requested is the model name the client sent.
	Requested string
	Model     *Model
	Provider  *Provider
	// Reason says in words why this target was chosen.
	Reason string
}

// ErrUnknownModel is returned (wrapped) when no model or alias matches.
var ErrUnknownModel = errors.New("unknown model")

// ErrUnavailable is returned (wrapped) when the model's provider cannot
// be used, e.g. because its API key is not set.
var ErrUnavailable = errors.New("provider unavailable")

// Resolve turns a model id or alias into a decision.
func (c *Catalog) Resolve(name string) (*Decision, error) {
	if m, ok := c.models[name]; ok {
		return c.decide(name, m, "model "+name+" requested")
	}
	if target, ok := c.aliases[name]; ok {
		return c.decide(name, c.models[target], "alias "+name+" → "+target)
	}
	return nil, fmt.Errorf("%w: %q is neither a model nor an alias of this gateway (GET /v1/models lists them)", ErrUnknownModel, name)
}

func (c *Catalog) decide(requested string, m *Model, reason string) (*Decision, error) {
	p := c.providers[m.Provider]
	if why := p.Unavailable(); why != "" {
		return nil, fmt.Errorf("%w: model %s: %s", ErrUnavailable, m.ID, why)
	}
	return &Decision{Requested: requested, Model: m, Provider: p, Reason: reason}, nil
}
