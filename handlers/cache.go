package handlers

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/llmgate/caddy-llmgate/cache"
	"github.com/llmgate/caddy-llmgate/dialects"
	"github.com/llmgate/caddy-llmgate/ledger"
	"github.com/llmgate/caddy-llmgate/routing"
)

// Cache statuses, as in the x-llm-cache header, the ledger and metrics.
const (
	CacheHit    = "hit"
	CacheMiss   = "miss"
	CacheBypass = "bypass"
)

// DefaultCacheMaxTemperature is the highest sampling temperature a
// request may ask for and still be cached, when none is configured.
// A request that gives no temperature is cached (see CachePolicy).
const DefaultCacheMaxTemperature = 1.0

// cacheState is what the response cache decided for one request.
type cacheState struct {
	status string
	// store: keep the answer when it succeeds (a miss, or a refresh
	// asked for with Cache-Control: no-cache).
	store bool
	// canon is the target-independent part of the key (see cacheKey).
	canon []byte
	// target is the provider and model the key was made for.
	provider, model string
	key             cache.Key
}

// cacheKey is the SHA-256 of the normalized request after routing: the
// target (provider, model id and upstream model id), the neutral request
// without what does not change an answer (stream flags, end-user id),
// and the dialect members the neutral request does not hold
// (dialects.CacheExtras). Two clients speaking different dialects with
// the same request share an entry; a request that streams and one that
// does not share one too.
func cacheKey(canon []byte, p *routing.Provider, m *routing.Model) cache.Key {
	h := sha256.New()
	writeField(h, []byte("llmgate-cache-v1"))
	writeField(h, []byte(p.Name))
	writeField(h, []byte(m.ID))
	writeField(h, []byte(m.UpstreamID))
	writeField(h, canon)
	var k cache.Key
	h.Sum(k[:0])
	return k
}

// writeField writes b with its length in front, so that fields cannot
// run into each other.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// cacheKeyHeaders are request headers that change an answer: the beta
// features (a longer context or output, other tool behaviour) an
// Anthropic request passes upstream. anthropic-version is not one: every
// client sends the one version there is, and a key with it would keep
// Anthropic clients from sharing answers with the others.
var cacheKeyHeaders = []string{"Anthropic-Beta"}

// canonical is the target-independent part of a cache key: the neutral
// request with tool-call ids numbered in order of appearance (they only
// pair calls with results: conversations that differ in nothing else,
// such as two sessions of an agent, or an Ollama history whose ids the
// gateway makes up, share an entry), the extras and the key headers.
func canonical(chat *dialects.ChatRequest, extras []byte, h http.Header) ([]byte, error) {
	c := *chat
	c.Model, c.Stream, c.StreamUsage, c.User = "", false, false, ""
	ids := map[string]string{}
	c.Messages = make([]dialects.Message, len(chat.Messages))
	for i, m := range chat.Messages {
		parts := append([]dialects.Part(nil), m.Parts...)
		for j := range parts {
			if p := &parts[j]; p.ID != "" && (p.Type == dialects.PartToolCall || p.Type == dialects.PartToolResult) {
				n, ok := ids[p.ID]
				if !ok {
					n = "id" + strconv.Itoa(len(ids))
					ids[p.ID] = n
				}
				p.ID = n
			}
		}
		c.Messages[i] = dialects.Message{Role: m.Role, Parts: parts}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	b = append(b, 0)
	b = append(b, extras...)
	for _, k := range cacheKeyHeaders {
		if v := h.Values(k); len(v) > 0 {
			b = append(b, 0)
			b = append(b, k...)
			b = append(b, ':')
			b = append(b, strings.Join(v, ",")...)
		}
	}
	return b, nil
}

// cachePolicy reads what the client asked of the cache:
// Cache-Control: no-store keeps the request away from the cache
// altogether; no-cache (or max-age=0) skips the lookup but stores the
// fresh answer, which replaces the cached one.
func cachePolicy(h http.Header) (lookup, store bool) {
	lookup, store = true, true
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "no-store":
				return false, false
			case "no-cache", "max-age=0":
				lookup = false
			}
		}
	}
	return lookup, store
}

// cacheLookup decides whether the request may be answered from the cache
// and looks it up. It returns the entry on a hit. a is the routing
// analysis (its decoded request is reused; decoded here when missing).
func (g *Gateway) cacheLookup(r *http.Request, ex *Exchange) (*cache.Entry, *cacheState) {
	c := g.cache.Load()
	if c == nil {
		if g.CacheEnabled {
			// Storage not open yet: nothing to look in.
			return nil, &cacheState{status: CacheBypass}
		}
		return nil, nil
	}
	st := &cacheState{status: CacheBypass}
	// no-store forbids both; no-cache only the lookup.
	lookup, store := cachePolicy(r.Header)
	if store {
		if canon := g.canonicalRequest(r, ex); canon != nil {
			first := &ex.Plan.Candidates[0]
			st.canon, st.store = canon, true
			st.provider, st.model = first.Provider.Name, first.Model.ID
			st.key = cacheKey(canon, first.Provider, first.Model)
		}
	}
	if !lookup || st.canon == nil {
		c.CountBypass()
		return nil, st
	}
	e, ok, err := c.Get(st.key)
	if err != nil {
		g.Logger.Warn("response cache lookup failed", zap.Error(err))
	}
	if !ok {
		st.status = CacheMiss
		return nil, st
	}
	st.status, st.store = CacheHit, false
	return &e, st
}

// canonicalRequest is the target-independent part of the request's
// cache key (see canonical), or nil when the request may not be cached:
// its dialect members say so (dialects.CacheExtras), it cannot be read,
// its temperature is above the limit, or the plan has no target. The
// decoded request is kept in ex for the rest of the path.
func (g *Gateway) canonicalRequest(r *http.Request, ex *Exchange) []byte {
	d := ex.Endpoint.Dialect
	extras, why := dialects.CacheExtras(d, ex.Body)
	if why != "" || len(ex.Plan.Candidates) == 0 {
		return nil
	}
	if ex.Chat == nil {
		chat, derr := decodeChat(d, ex.Body, ex.Request)
		if derr != nil {
			return nil
		}
		ex.Chat = chat
	}
	if t := ex.Chat.Temperature; t != nil && *t > g.cacheMaxTemperature() {
		return nil
	}
	canon, err := canonical(ex.Chat, extras, r.Header)
	if err != nil {
		return nil
	}
	return canon
}

func (g *Gateway) cacheMaxTemperature() float64 {
	if g.CacheMaxTemperature != nil {
		return *g.CacheMaxTemperature
	}
	return DefaultCacheMaxTemperature
}

// serveCached answers a request from a cache entry, in the client's
// dialect, streamed when it asked for a stream, and records it in the
// ledger as a hit that cost nothing and saved what the original answer
// cost.
func (h *Route) serveCached(w http.ResponseWriter, r *http.Request, ex *Exchange, e *cache.Entry) bool {
	g := h.GW
	resp, err := decodeAnswer(e.Payload)
	if err != nil {
		g.Logger.Warn("unreadable response cache entry", zap.Error(err))
		return false
	}
	c := &ex.Plan.Candidates[0]
	ex.Decision = &routing.Decision{Requested: ex.Request.Model, Model: c.Model, Provider: c.Provider, Reason: ex.Plan.Reason}
	publish(r, ex)
	d := ex.Endpoint.Dialect
	now := g.Now()
	var out []byte
	hd := w.Header()
	if ex.Request.Stream {
		out, err = dialects.ResponseStream(d, resp, dialects.StreamOptions{Model: c.Model.ID, IncludeUsage: ex.Request.StreamUsage, Created: now.Unix()})
		hd.Set("Content-Type", dialects.StreamContentType(d))
		hd.Set("Cache-Control", "no-cache")
	} else {
		out, err = dialects.EncodeResponse(d, resp, c.Model.ID)
		hd.Set("Content-Type", "application/json")
		if err == nil && g.ProxyInfo && isOpenAIClient(d) {
			out = h.proxyObject(out, ex)
		}
	}
	if err != nil {
		g.Logger.Warn("response cache entry cannot be replayed", zap.String("dialect", string(d)), zap.Error(err))
		return false
	}
	hd.Set("Content-Length", strconv.Itoa(len(out)))
	hd.Set("Age", strconv.Itoa(max(0, int(now.Sub(e.Created)/time.Second))))
	hd.Set("X-Llm-Cache", CacheHit)
	g.answerHeaders(hd, ex)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	entry := ledger.Entry{Endpoint: ex.Endpoint.Name, Stream: ex.Request.Stream, Tier: string(ex.Plan.Tier),
		Cache: CacheHit, SavedUSD: e.CostUSD}
	h.finish(r, ex, &entry, http.StatusOK)
	return true
}

// cacheTee keeps a copy of the answer a client receives, up to a limit,
// for the response cache.
type cacheTee struct {
	buf   []byte
	limit int
	over  bool
}

func (t *cacheTee) add(p []byte) {
	if t == nil || t.over {
		return
	}
	if len(t.buf)+len(p) > t.limit {
		t.over, t.buf = true, nil
		return
	}
	t.buf = append(t.buf, p...)
}

// cacheStore keeps a successful answer: read back from what the client
// received (whatever dialect the provider spoke), in neutral form, under
// the key of the target that answered.
func (g *Gateway) cacheStore(ex *Exchange, tee *cacheTee, cost float64) {
	st := ex.cache
	c := g.cache.Load()
	if st == nil || !st.store || c == nil || tee == nil || tee.over || ex.Decision == nil {
		return
	}
	d := ex.Endpoint.Dialect
	var resp *dialects.ChatResponse
	var err error
	if ex.Request.Stream {
		resp, err = dialects.CollectStream(d, tee.buf)
	} else {
		resp, err = dialects.DecodeResponse(d, tee.buf)
	}
	if err != nil {
		g.Logger.Debug("answer not cached: unreadable", zap.Error(err))
		return
	}
	if !ex.Usage.IsZero() {
		resp.Usage = ex.Usage
	}
	key := st.key
	dec := ex.Decision
	if dec.Provider.Name != st.provider || dec.Model.ID != st.model {
		key = cacheKey(st.canon, dec.Provider, dec.Model)
	}
	entry := cache.Entry{Created: g.Now(), Provider: dec.Provider.Name, Model: dec.Model.ID, CostUSD: cost, Payload: encodeAnswer(resp)}
	if err := c.Put(key, entry); err != nil {
		g.Logger.Debug("answer not cached", zap.Error(err))
	}
}

// cacheStatus is the exchange's cache status for the ledger ("" when no
// cache is configured).
func (ex *Exchange) cacheStatus() string {
	if ex.cache == nil {
		return ""
	}
	return ex.cache.status
}

// teeLimit bounds the copy of an answer kept for the cache: the cache's
// own limit on an entry, with room for a stream's framing (an SSE
// stream is several times the size of the answer it carries).
func (g *Gateway) teeLimit() int {
	n := cache.DefaultMaxEntryBytes
	if c := g.cache.Load(); c != nil {
		n = c.MaxEntryBytes()
	}
	return 8*n + 64<<10
}
