package routing

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func u(s string) *url.URL {
	x, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return x
}

func testCatalog(t *testing.T) *Catalog {
	t.Helper()
	c, err := NewCatalog(
		[]*Provider{
			{Name: "openai", Dialect: "openai", URLs: []*url.URL{u("https://api.openai.com")}, KeySource: "{env.OPENAI_API_KEY}", APIKey: "sk"},
			{Name: "anthropic", Dialect: "anthropic", URLs: []*url.URL{u("https://api.anthropic.com")}, KeySource: "{env.ANTHROPIC_API_KEY}"},
			{Name: "local", Dialect: "openai", URLs: []*url.URL{u("http://10.0.0.2:11434/v1"), u("http://10.0.0.3:11434/v1")}},
		},
		[]*Model{
			{ID: "gpt", Provider: "openai"},
			{ID: "claude", Provider: "anthropic", UpstreamID: "claude-x"},
			{ID: "qwen", Provider: "local", UpstreamID: "qwen3:8b"},
		},
		map[string]string{"cheap": "gpt", "local": "qwen"},
	)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestResolve(t *testing.T) {
	c := testCatalog(t)
	d, err := c.Resolve("gpt")
	if err != nil || d.Provider.Name != "openai" || d.Model.UpstreamID != "gpt" {
		t.Fatalf("gpt: %+v %v", d, err)
	}
	d, err = c.Resolve("local")
	if err != nil || d.Model.ID != "qwen" || d.Model.UpstreamID != "qwen3:8b" || !strings.Contains(d.Reason, "alias") {
		t.Fatalf("alias: %+v %v", d, err)
	}
	if _, err := c.Resolve("nope"); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("unknown: %v", err)
	}
	_, err = c.Resolve("claude")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "ANTHROPIC_API_KEY") {
		t.Errorf("keyless provider: %v", err)
	}
	if c.Provider("local").BasePath() != "/v1" || !c.Provider("local").Available() {
		t.Error("local provider")
	}
	if !c.Known("cheap") || !c.Known("gpt") || c.Known("x") {
		t.Error("Known")
	}
}

func TestCatalogErrors(t *testing.T) {
	p := []*Provider{{Name: "p", URLs: []*url.URL{u("https://a")}}}
	cases := []struct {
		providers []*Provider
		models    []*Model
		aliases   map[string]string
		want      string
	}{
		{p, []*Model{{ID: "m", Provider: "q"}}, nil, "unknown provider q"},
		{p, []*Model{{ID: "m", Provider: "p"}, {ID: "m", Provider: "p"}}, nil, "declared twice"},
		{p, []*Model{{ID: "m", Provider: "p"}}, map[string]string{"a": "x"}, "unknown model x"},
		{p, []*Model{{ID: "m", Provider: "p"}}, map[string]string{"m": "m"}, "name of a model"},
		{[]*Provider{{Name: "p", URLs: []*url.URL{u("https://a/v1"), u("http://b/v1")}}}, nil, nil, "share scheme"},
		{[]*Provider{{Name: "p"}}, nil, nil, "no url"},
		{p, []*Model{{ID: "m", Provider: "p", Prices: Prices{Input: -1}}}, nil, "negative"},
		// Names the router takes for itself cannot be aliases.
		{p, []*Model{{ID: "m", Provider: "p"}}, map[string]string{"auto": "m"}, `alias auto: the name "auto" is reserved`},
		{p, []*Model{{ID: "m", Provider: "p"}}, map[string]string{"deep": "m"}, `alias deep: the name "deep" is reserved: it names the tier deep`},
		{p, []*Model{{ID: "auto", Provider: "p"}}, nil, `model auto: the name "auto" is reserved`},
		{p, []*Model{{ID: "Trivial", Provider: "p"}}, nil, `model Trivial: the name "Trivial" is reserved: it names the tier trivial`},
		{p, []*Model{{ID: "m", Provider: "p"}}, map[string]string{"Trivial": "m"}, "it names the tier trivial"},
		{p, []*Model{{ID: "m", Provider: "p"}}, map[string]string{"": "m"}, "alias without a name"},
	}
	for _, c := range cases {
		if _, err := NewCatalog(c.providers, c.models, c.aliases); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want error containing %q, got %v", c.want, err)
		}
	}
	// The built-in aliases may be redefined, and a tier's name may
	// appear inside an alias's.
	ok := map[string]string{"cheap": "m", "balanced": "m", "premium": "m", "free": "m", "local": "m", "deep-thought": "m", "autopilot": "m"}
	if _, err := NewCatalog(p, []*Model{{ID: "m", Provider: "p"}}, ok); err != nil {
		t.Errorf("aliases: %v", err)
	}
}

func TestParse(t *testing.T) {
	if tier, err := ParseTier("Deep"); err != nil || tier != TierDeep {
		t.Error(tier, err)
	}
	if _, err := ParseTier("huge"); err == nil || !strings.Contains(err.Error(), "trivial, operational") {
		t.Error(err)
	}
	if _, err := ParseCapability("telepathy"); err == nil {
		t.Error("bad capability accepted")
	}
	if EnvName("{env.FOO}") != "FOO" || EnvName("{$BAR}") != "" || EnvName("literal") != "" {
		t.Error("EnvName")
	}
}
