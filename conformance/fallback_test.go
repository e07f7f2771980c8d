package conformance

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// fallbackModel's provider refuses every connection; its fallback chain
// leads to claude-test (an Anthropic provider), so every answer comes
// from a fallback, translated for OpenAI clients.
const fallbackModel = "fallback-test"

// fallbackCase is what reaches the provider when fallbackModel is asked
// for: claude-test's request.
var fallbackCase = modelCase{name: fallbackModel, dialect: "anthropic", upstream: "claude-upstream"}

// overloadedModel's first target, an Anthropic provider, answers every
// stream with a 200 whose first event after message_start and ping is
// overloaded_error (and unstreamed requests with a 529); its fallback is
// claude-test. The gateway has sent the client nothing when the error
// comes, so it falls back as for an error status.
const overloadedModel = "overloaded-test"

// overloadedFirst is the request overloadedModel's first target gets;
// overloadedCase is the one its fallback gets.
var (
	overloadedFirst = modelCase{name: overloadedModel, dialect: "anthropic", upstream: "mock-stream-error"}
	overloadedCase  = modelCase{name: overloadedModel, dialect: "anthropic", upstream: "claude-upstream", failingFirst: &overloadedFirst}
)

// TestFallbackSDKs runs the official clients' checks (tool calls, text,
// streamed and not, usage) against a model whose first target is down:
// each client must see one clean answer, as if nothing had failed.
func TestFallbackSDKs(t *testing.T) {
	sdks := func(t *testing.T, m modelCase) {
		t.Run("openai-go", func(t *testing.T) {
			before := len(mock.Requests())
			testOpenAIGo(t, newClient(), m)
			checkUpstream(t, m, before)
		})
		t.Run("anthropic-sdk-go", func(t *testing.T) {
			before := len(mock.Requests())
			testAnthropicGo(t, newAnthropicClient(), m)
			checkUpstream(t, m, before)
		})
		t.Run("openai-node", func(t *testing.T) {
			runNodeScript(t, nodeOrSkip(t, "openai"), "openai_chat.mjs", m)
		})
	}
	sdks(t, fallbackCase)
	// The first target answers 200 and fails before any content.
	t.Run("first event an error", func(t *testing.T) { sdks(t, overloadedCase) })
	t.Run("headers", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var resp *http.Response
		c := newClient()
		out, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    fallbackModel,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
		}, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		h := resp.Header
		if h.Get("X-Llm-Model") != "claude-test" || h.Get("X-Llm-Fallback") != "1" || h.Get("X-Llm-Provider") != "mockant" {
			t.Errorf("decision headers: model %q fallback %q provider %q", h.Get("X-Llm-Model"), h.Get("X-Llm-Fallback"), h.Get("X-Llm-Provider"))
		}
		if !strings.Contains(out.RawJSON(), `"fallback_index":1`) {
			t.Errorf("no _proxy with fallback_index 1: %s", out.RawJSON())
		}
	})
}

// TestRouteExplainCLI runs `caddy llm route explain` against the running
// gateway's admin API.
func TestRouteExplainCLI(t *testing.T) {
	file := filepath.Join(t.TempDir(), "request.json")
	body := `{"model":"auto","messages":[{"role":"user","content":"debug this race condition step by step"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	before := len(mock.Requests())
	out, err := exec.Command(gatewayBin, "llm", "route", "explain", "--file", file, "--address", adminAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("caddy llm route explain: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"tier:     deep", `"race condition" suggests deep work`, "tried in this order:", "1. ", "policy:"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "race condition step by step") {
		t.Errorf("the explanation quotes the prompt:\n%s", s)
	}
	out, err = exec.Command(gatewayBin, "llm", "route", "explain", "--file", file, "--address", adminAddr, "--tier", "huge").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "trivial, operational, standard, complex, deep") {
		t.Errorf("bad tier: %v\n%s", err, out)
	}
	if n := len(mock.Requests()); n != before {
		t.Errorf("explain sent %d requests upstream", n-before)
	}
}
