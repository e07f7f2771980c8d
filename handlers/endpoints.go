package handlers

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/tidwall/sjson"

	"github.com/llmgate/caddy-llmgate/routing"
)

// serveModels answers GET /v1/models: OpenAI's list shape, each model
// with its provider, prices, limits and capabilities, and each alias as
// an entry of its own that names its target.
func (g *Gateway) serveModels(w http.ResponseWriter, r *http.Request) error {
	b := []byte(`{"object":"list","data":[]}`)
	i := 0
	add := func(m *routing.Model, id, aliasFor string) {
		p := g.Catalog.Provider(m.Provider)
		e := []byte(`{}`)
		e, _ = sjson.SetBytes(e, "id", id)
		e, _ = sjson.SetBytes(e, "object", "model")
		e, _ = sjson.SetBytes(e, "created", 0)
		e, _ = sjson.SetBytes(e, "owned_by", m.Provider)
		if aliasFor != "" {
			e, _ = sjson.SetBytes(e, "alias_for", aliasFor)
		}
		e, _ = sjson.SetBytes(e, "provider", m.Provider)
		e, _ = sjson.SetBytes(e, "dialect", p.Dialect)
		e, _ = sjson.SetBytes(e, "upstream_model", m.UpstreamID)
		e, _ = sjson.SetBytes(e, "available", p.Available())
		if why := p.Unavailable(); why != "" {
			e, _ = sjson.SetBytes(e, "unavailable_reason", why)
		}
		e, _ = sjson.SetBytes(e, "pricing.input_per_1m", m.Prices.Input)
		e, _ = sjson.SetBytes(e, "pricing.output_per_1m", m.Prices.Output)
		e, _ = sjson.SetBytes(e, "pricing.cached_input_per_1m", m.Prices.CachedInput)
		e, _ = sjson.SetBytes(e, "context_window", m.ContextWindow)
		e, _ = sjson.SetBytes(e, "max_output_tokens", m.MaxOutput)
		caps := make([]string, len(m.Capabilities))
		for j, c := range m.Capabilities {
			caps[j] = string(c)
		}
		e, _ = sjson.SetBytes(e, "capabilities", caps)
		tiers := make([]string, len(m.Tiers))
		for j, t := range m.Tiers {
			tiers[j] = string(t)
		}
		e, _ = sjson.SetBytes(e, "tiers", tiers)
		b, _ = sjson.SetRawBytes(b, "data."+strconv.Itoa(i), e)
		i++
	}
	for _, m := range g.Catalog.Models() {
		add(m, m.ID, "")
	}
	aliases := g.Catalog.Aliases()
	for _, name := range sortedKeys(aliases) {
		add(g.Catalog.Model(aliases[name]), name, aliases[name])
	}
	// What the router resolves itself: auto, the tiers and the built-in
	// aliases the config does not define, each with the models it would
	// consider (before capability filters and cost order).
	route := func(id, kind, desc string, models []string) {
		e := []byte(`{"object":"model","created":0,"owned_by":"llmgate"}`)
		e, _ = sjson.SetBytes(e, "id", id)
		e, _ = sjson.SetBytes(e, "kind", kind)
		e, _ = sjson.SetBytes(e, "description", desc)
		if models == nil {
			models = []string{}
		}
		e, _ = sjson.SetBytes(e, "routes_to", models)
		b, _ = sjson.SetRawBytes(b, "data."+strconv.Itoa(i), e)
		i++
	}
	rt := g.Router
	route("auto", "router", "the router picks the tier from the request's content (also: no model at all)", nil)
	tiers := []byte(`{}`)
	for _, t := range routing.Tiers {
		ids := rt.TierModelsOf(t)
		route(string(t), "tier", "the models of tier "+string(t)+", cheapest capable first (also: header X-Task-Tier: "+string(t)+")", ids)
		if ids == nil {
			ids = []string{}
		}
		tiers, _ = sjson.SetBytes(tiers, string(t), ids)
	}
	for _, a := range routing.BuiltinAliases() {
		if _, defined := aliases[a]; !defined && g.Catalog.Model(a) == nil {
			route(a, "alias", builtinAliasDesc[a], rt.BuiltinAliasModels(a))
		}
	}
	b, _ = sjson.SetRawBytes(b, "tiers", tiers)
	writeJSON(w, http.StatusOK, b)
	return nil
}

var builtinAliasDesc = map[string]string{
	"cheap":    "the cheapest capable model of the catalog",
	"balanced": "the models of the standard tier",
	"premium":  "the most expensive capable model of the catalog",
	"free":     "models whose prices are zero",
	"local":    "models on this machine or the LAN (Ollama, loopback, private addresses)",
}

// serveTags answers Ollama's GET /api/tags: every model and alias the
// gateway serves, in Ollama's list shape, so Ollama clients can pick one.
func (g *Gateway) serveTags(w http.ResponseWriter, r *http.Request) error {
	b := []byte(`{"models":[]}`)
	i := 0
	add := func(name, family string) {
		e := []byte(`{"modified_at":"1970-01-01T00:00:00Z","size":0,"digest":"","details":{"format":"","family":"","parameter_size":"","quantization_level":""}}`)
		e, _ = sjson.SetBytes(e, "name", name)
		e, _ = sjson.SetBytes(e, "model", name)
		e, _ = sjson.SetBytes(e, "details.family", family)
		b, _ = sjson.SetRawBytes(b, "models."+strconv.Itoa(i), e)
		i++
	}
	for _, m := range g.Catalog.Models() {
		add(m.ID, m.Provider)
	}
	aliases := g.Catalog.Aliases()
	for _, name := range sortedKeys(aliases) {
		add(name, g.Catalog.Model(aliases[name]).Provider)
	}
	// The names the router resolves itself, as in /v1/models (family
	// "router"): auto, the tiers, the built-in aliases not defined.
	add("auto", "router")
	for _, t := range routing.Tiers {
		add(string(t), "router")
	}
	for _, a := range routing.BuiltinAliases() {
		if _, defined := aliases[a]; !defined && g.Catalog.Model(a) == nil {
			add(a, "router")
		}
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// serveHealth answers GET /health: the gateway is up; each provider says
// whether it can be used and, if not, why.
func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) error {
	b := []byte(`{"status":"ok","providers":[]}`)
	storage := "open"
	if g.ledger.Load() == nil {
		storage = "opening"
	}
	b, _ = sjson.SetBytes(b, "storage", storage)
	b, _ = sjson.SetBytes(b, "models", len(g.Catalog.Models()))
	for i, p := range g.Catalog.Providers() {
		e := []byte(`{}`)
		e, _ = sjson.SetBytes(e, "name", p.Name)
		e, _ = sjson.SetBytes(e, "dialect", p.Dialect)
		e, _ = sjson.SetBytes(e, "available", p.Available())
		if why := p.Unavailable(); why != "" {
			e, _ = sjson.SetBytes(e, "reason", why)
		}
		b, _ = sjson.SetRawBytes(b, "providers."+strconv.Itoa(i), e)
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
