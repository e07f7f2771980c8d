package llmgate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/handlers"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "llm",
		Usage: "route explain --file <request.json> [--dialect <d>] [--tier <tier>] [--model <default>] [--json] [--address <admin>]",
		Short: "Commands of the LLM gateway (caddy-llmgate)",
		Long: `
Commands of the LLM gateway. They talk to the running Caddy through its
admin API (the address of the admin option, default localhost:2019; give
--address, or --config and --adapter to read it from a config file).

  caddy llm route explain --file request.json

prints what llm_route would do with the generation request in the file
(a body as a client would POST it; --dialect openai, responses, anthropic
or ollama, default openai): the tier and why, the targets in the order
they would be tried, and each target left out with the reason. Nothing
is sent to any provider.`,
		CobraFunc: func(cmd *cobra.Command) {
			route := &cobra.Command{Use: "route", Short: "Inspect routing decisions"}
			explain := &cobra.Command{
				Use:   "explain --file <request.json>",
				Short: "Explain how a request would be routed, without sending it",
				Args:  cobra.NoArgs,
				RunE:  caddycmd.WrapCommandFuncForCobra(cmdRouteExplain),
			}
			f := explain.Flags()
			f.StringP("file", "f", "", "the request body (JSON); - reads standard input")
			f.StringP("dialect", "d", "openai", "the client dialect of the request: openai, responses, anthropic or ollama")
			f.StringP("tier", "t", "", "an X-Task-Tier value to plan with")
			f.StringP("model", "m", "", "the llm_route default_model to assume for a request without a model")
			f.Bool("json", false, "print the explanation as JSON")
			addAdminFlags(explain)
			route.AddCommand(explain)
			cmd.AddCommand(route)
		},
	})
}

// addAdminFlags adds the flags that locate the admin API.
func addAdminFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("address", "", "the admin API address (default: from --config, else localhost:2019)")
	f.StringP("config", "c", "", "a config file to read the admin address from")
	f.StringP("adapter", "a", "", "the adapter of --config")
}

func adminAddress(fl caddycmd.Flags) (string, error) {
	return caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
}

func cmdRouteExplain(fl caddycmd.Flags) (int, error) {
	file := fl.String("file")
	if file == "" {
		return 2, fmt.Errorf("--file is required (the request body, or - for standard input)")
	}
	var body []byte
	var err error
	if file == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(file)
	}
	if err != nil {
		return 1, fmt.Errorf("reading the request: %v", err)
	}
	addr, err := adminAddress(fl)
	if err != nil {
		return 1, err
	}
	q := url.Values{}
	q.Set("dialect", fl.String("dialect"))
	if v := fl.String("tier"); v != "" {
		q.Set("tier", v)
	}
	if v := fl.String("model"); v != "" {
		q.Set("default_model", v)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/llm/route/explain?"+q.Encode(), http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(body))
	if err != nil {
		return 1, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return 1, err
	}
	if fl.Bool("json") {
		_, _ = os.Stdout.Write(out)
		if resp.StatusCode >= 300 || gjson.GetBytes(out, "error").Exists() {
			return 1, fmt.Errorf("the request would be refused (or could not be explained)")
		}
		return 0, nil
	}
	var x handlers.Explanation
	if err := json.Unmarshal(out, &x); err != nil {
		return 1, fmt.Errorf("reading the admin API's answer: %v: %s", err, out)
	}
	fmt.Print(FormatExplanation(&x))
	if x.Error != nil {
		return 1, fmt.Errorf("the request would be refused with status %d", x.Error.Status)
	}
	return 0, nil
}

// FormatExplanation renders an explanation for people.
func FormatExplanation(x *handlers.Explanation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "request:  %s dialect, model %q\n", x.Dialect, x.Requested)
	if x.Tier != "" {
		fmt.Fprintf(&b, "tier:     %s\n", x.Tier)
	}
	if x.Reason != "" {
		fmt.Fprintf(&b, "reason:   %s\n", x.Reason)
	}
	for _, r := range x.Reasons {
		fmt.Fprintf(&b, "          - %s\n", r)
	}
	if f := x.Features; f != nil {
		fmt.Fprintf(&b, "features: ~%d input tokens, %d messages, %d tools, images %v, reasoning %v, json schema %v, max output %d\n",
			f.EstimatedInputTokens, f.Messages, f.Tools, f.Images, f.Reasoning, f.JSONSchema, f.MaxOutput)
	}
	if len(x.Candidates) > 0 {
		b.WriteString("tried in this order:\n")
		for i, c := range x.Candidates {
			fmt.Fprintf(&b, "  %d. %s on %s (%s, upstream %s), ~$%.6f, breaker %s\n", i+1, c.Model, c.Provider, c.Dialect, c.UpstreamModel, c.EstimatedCostUSD, c.Breaker)
		}
	}
	if len(x.Skipped) > 0 {
		b.WriteString("skipped:\n")
		for _, s := range x.Skipped {
			prov := ""
			if s.Provider != "" {
				prov = " on " + s.Provider
			}
			fmt.Fprintf(&b, "  - %s%s: %s\n", s.Model, prov, s.Reason)
		}
	}
	p := x.Policy
	fmt.Fprintf(&b, "policy:   %d retries per target (backoff %s, longest wait %s); breaker opens after %d failures for %s\n",
		p.Retries, p.RetryBackoff, p.MaxRetryWait, p.BreakerThreshold, p.BreakerCooldown)
	if x.Error != nil {
		fmt.Fprintf(&b, "the client would get: %d %s\n", x.Error.Status, x.Error.Message)
	}
	return b.String()
}
