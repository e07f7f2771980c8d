package llmgate

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestCaddyfileErrorsNameTheLine: every config mistake is reported with
// the file and line that holds it.
func TestCaddyfileErrorsNameTheLine(t *testing.T) {
	head := "{\n\tllm {\n\t\tprovider p {\n\t\t\turl https://api.example.test\n\t\t}\n" // lines 1-5
	cases := []struct {
		body, want string
	}{
		{"\t\tmodel m q\n", "Caddyfile:6 - model m: unknown provider q"},
		{"\t\tmodel m {\n\t\t\tprice 1\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p {\n\t\t\tprice 1 x\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p {\n\t\t\tcapabilities telepathy\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p {\n\t\t\ttiers huge\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p {\n\t\t\tcontext lots\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p\n\t\talias a nope\n", "Caddyfile:7 - alias a: unknown model nope"},
		{"\t\tmodel m p\n\t\tmodel m p\n", "Caddyfile:7"},
		{"\t\tprovider p {\n\t\t\turl https://x\n\t\t}\n", "Caddyfile:8"},
		{"\t\tprovider r {\n\t\t\tdialect klingon\n\t\t}\n", "Caddyfile:7"},
		{"\t\tprovider r {\n\t\t\turl ftp://x\n\t\t}\n", "Caddyfile:7"},
		{"\t\tprovider r {\n\t\t\tdialect openai\n\t\t}\n", "missing url"},
		{"\t\tmax_body huge\n", "Caddyfile:6"},
		{"\t\tfrobnicate\n", "Caddyfile:6"},
		{"\t\tmodel m\n", "model m: no provider"},
		{"\t\trouter {\n\t\t\tdefault_tier huge\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tkeywords huge \"x y\"\n\t\t}\n", "Caddyfile:7"},
		{"\t\tmodel m p\n\t\trouter {\n\t\t\ttier deep m nope\n\t\t}\n", "Caddyfile:8 - router: tier deep: unknown model nope"},
		{"\t\tmodel m p\n\t\trouter {\n\t\t\tfallback m nope\n\t\t}\n", "Caddyfile:8 - router: fallback m: unknown model nope"},
		{"\t\tmodel m p\n\t\trouter {\n\t\t\tfallback zzz m\n\t\t}\n", "Caddyfile:8 - router: fallback zzz: neither"},
		{"\t\trouter {\n\t\t\tretries many\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tbreaker_cooldown soon\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tproxy_info maybe\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tfallback deep\n\t\t}\n", "Caddyfile:7"},
		{"\t\trouter {\n\t\t\tteleport\n\t\t}\n", "Caddyfile:7"},
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	for _, c := range cases {
		src := head + c.body + "\t}\n}\n:8080 {\n\tllm_route\n\tllm_translate\n}\n"
		_, _, err := adapter.Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.body, err, c.want)
		}
	}
	_, _, err := adapter.Adapt([]byte(":8080 {\n\tllm_route {\n\t\tbogus\n\t}\n}\n"), map[string]any{"filename": "Caddyfile"})
	if err == nil || !strings.Contains(err.Error(), "Caddyfile:3") {
		t.Errorf("llm_route option: %v", err)
	}
	_, _, err = adapter.Adapt([]byte(":8080 {\n\tllm_translate extra\n}\n"), map[string]any{"filename": "Caddyfile"})
	if err == nil {
		t.Error("llm_translate accepted an argument")
	}
}
