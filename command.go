package llmgate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/tidwall/gjson"

	"github.com/llmgate/caddy-llmgate/handlers"
	"github.com/llmgate/caddy-llmgate/ledger"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "llm",
		Usage: "route explain|stats|export|prune|key|cache|context|watch [flags] (see caddy llm <command> --help)",
		Short: "Commands of the LLM gateway (caddy-llmgate)",
		Long: `
Commands of the LLM gateway. They talk to the running Caddy through its
admin API (the address of the admin option, default localhost:2019; give
--address, or --config and --adapter to read it from a config file).

  caddy llm route explain --file request.json

prints what llm_route would do with the generation request in the file
(a body as a client would POST it; --dialect openai, responses, anthropic,
ollama, gemini or bedrock, default openai; --model for a request that
names none, such as Gemini's and Bedrock's, whose model is in the URL):
the tier and why, the targets in the order they would be tried, and each
target left out with the reason. Nothing is sent to any provider.

  caddy llm stats [--today|--month] [--from <t>] [--to <t>] [--by model|provider|key|tier|day] [--json]

prints requests, errors, tokens, cost, fallbacks, cache hits and latency
from the ledger, in total or per group, for today, this month (in the
llm app's time zone) or a window: --from and --to take an RFC 3339 time
or a YYYY-MM-DD date (a date as --to includes that day). Default: all
time.

  caddy llm export [--format csv|json] [--today|--month] [--from <t>] [--to <t>] [--output <file>]

streams the ledger entries (metadata only, never prompts or answers) in
the window (as for stats; default all) as CSV (the default) or JSON
Lines to standard output or a file.

  caddy llm prune --before 90d

deletes the ledger entries older than an age (90d, 720h) or a time
(RFC 3339 or YYYY-MM-DD). Entries budgets count from (this month's, and
the last week's for sessions) are kept unless --force is given.

  caddy llm key create --name alice [--daily 5] [--monthly 60]
  caddy llm key list
  caddy llm key revoke --name alice
  caddy llm key hash [--generate]

create a client key in the gateway's storage (printed once; only its
hash is kept), list and revoke them; hash prints the hash of a key read
from standard input (or of a new one) for an llm_budget key line.

  caddy llm cache stats|clear

prints the response cache's size, hits, misses and savings, or removes
every cached answer.

  caddy llm context stats
  caddy llm context delete --id <name>

lists the contexts of the delta context buffer, or deletes one.

  caddy llm watch <dir> --proxy <url> [--id <name>]

watches a directory and keeps a context of the gateway equal to it,
sending only unified diffs of what changed (the key comes from the
environment variable LLMGATE_KEY, or --key).`,
		CobraFunc: func(cmd *cobra.Command) {
			route := &cobra.Command{Use: "route", Short: "Inspect routing decisions"}
			explain := adminCommand("explain --file <request.json>", "Explain how a request would be routed, without sending it", cmdRouteExplain)
			f := explain.Flags()
			f.StringP("file", "f", "", "the request body (JSON); - reads standard input")
			f.StringP("dialect", "d", "openai", "the client dialect of the request: openai, responses, anthropic, ollama, gemini or bedrock")
			f.StringP("tier", "t", "", "an X-Task-Tier value to plan with")
			f.StringP("model", "m", "", "the model of a request that names none: the llm_route default_model, or the model of a Gemini or Bedrock request's path")
			f.Bool("json", false, "print the explanation as JSON")
			route.AddCommand(explain)
			cmd.AddCommand(route)

			stats := adminCommand("stats [--today|--month] [--from <t>] [--to <t>] [--by model|provider|key|tier|day]", "Print requests, tokens, cost and latency from the ledger", cmdStats)
			addWindowFlags(stats)
			f = stats.Flags()
			f.String("by", "", "group by model, provider, key, tier or day (default: totals only)")
			f.Bool("json", false, "print the report as JSON")
			cmd.AddCommand(stats)

			export := adminCommand("export [--format csv|json] [--today|--month] [--from <t>] [--to <t>] [--output <file>]", "Stream the ledger entries as CSV or JSON Lines", cmdExport)
			addWindowFlags(export)
			f = export.Flags()
			f.String("format", "csv", "csv or json (JSON Lines: one entry per line)")
			f.StringP("output", "o", "", "the file to write (default: standard output)")
			cmd.AddCommand(export)

			prune := adminCommand("prune --before <age or time>", "Delete old ledger entries", cmdPrune)
			f = prune.Flags()
			f.String("before", "", "delete entries older than this age (90d, 720h) or time (RFC 3339 or YYYY-MM-DD)")
			f.Bool("force", false, "also delete entries budgets count from (this month, the last week)")
			cmd.AddCommand(prune)
			cmd.AddCommand(keyCommand())
			cmd.AddCommand(cacheCommand(), contextCommand(), watchCommand())
		},
	})
}

// addWindowFlags adds the flags that pick a window of the ledger
// (read by windowQuery).
func addWindowFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Bool("today", false, "today only (in the llm app's time zone)")
	f.Bool("month", false, "this month only (in the llm app's time zone)")
	f.String("from", "", "the window's start: an RFC 3339 time or a YYYY-MM-DD date")
	f.String("to", "", "the window's end (exclusive; a YYYY-MM-DD date includes that day)")
	cmd.MarkFlagsMutuallyExclusive("today", "month", "from")
	cmd.MarkFlagsMutuallyExclusive("today", "month", "to")
}

// adminCommand is a `caddy llm` subcommand that takes no arguments and
// talks to the admin API, with the flags that locate it (read by
// adminAddress).
func adminCommand(use, short string, run caddycmd.CommandFunc) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: caddycmd.WrapCommandFuncForCobra(run)}
	f := c.Flags()
	f.String("address", "", "the admin API address (default: from --config, else localhost:2019)")
	f.StringP("config", "c", "", "a config file to read the admin address from")
	f.StringP("adapter", "a", "", "the adapter of --config")
	return c
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

// windowQuery adds the window flags (--today, --month, --from, --to) to q.
func windowQuery(fl caddycmd.Flags, q url.Values) error {
	if fl.Bool("today") && fl.Bool("month") {
		return fmt.Errorf("give --today or --month, not both")
	}
	switch {
	case fl.Bool("today"):
		q.Set("window", "today")
	case fl.Bool("month"):
		q.Set("window", "month")
	}
	if v := fl.String("from"); v != "" {
		q.Set("from", v)
	}
	if v := fl.String("to"); v != "" {
		q.Set("to", v)
	}
	return nil
}

func cmdStats(fl caddycmd.Flags) (int, error) {
	q := url.Values{}
	if err := windowQuery(fl, q); err != nil {
		return 2, err
	}
	if v := fl.String("by"); v != "" {
		q.Set("by", v)
	}
	addr, err := adminAddress(fl)
	if err != nil {
		return 1, err
	}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, "/llm/stats?"+q.Encode(), nil, nil)
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
		return 0, nil
	}
	var rep ledger.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		return 1, fmt.Errorf("reading the admin API's answer: %v: %s", err, out)
	}
	fmt.Print(FormatStats(&rep))
	return 0, nil
}

// FormatStats renders a stats report for people: the window, then a
// table with a row per group and one of totals, the numbers right-aligned.
func FormatStats(r *ledger.Report) string {
	var b strings.Builder
	from, to := "the beginning", "now"
	if !r.From.IsZero() {
		from = r.From.Format(time.RFC3339)
	}
	if !r.To.IsZero() {
		to = r.To.Format(time.RFC3339)
	}
	fmt.Fprintf(&b, "from %s to %s", from, to)
	if r.TimeZone != "" {
		fmt.Fprintf(&b, " (%s)", r.TimeZone)
	}
	b.WriteString("\n")
	if r.Total.Requests == 0 {
		b.WriteString("no requests\n")
		return b.String()
	}
	first := "GROUP"
	if r.By != "" {
		first = strings.ToUpper(r.By)
	}
	rows := [][]string{{first, "REQUESTS", "ERRORS", "INPUT", "OUTPUT", "COST_USD", "FALLBACKS", "CACHE_HITS", "AVG_MS", "P95_MS"}}
	row := func(g *ledger.Group) []string {
		return []string{g.Key, strconv.Itoa(g.Requests), strconv.Itoa(g.Errors), strconv.Itoa(g.Input), strconv.Itoa(g.Output),
			strconv.FormatFloat(g.CostUSD, 'f', 6, 64), strconv.Itoa(g.Fallbacks), strconv.Itoa(g.CacheHits),
			strconv.FormatFloat(g.AvgLatencyMS, 'f', 0, 64), strconv.FormatFloat(g.P95LatencyMS, 'f', 0, 64)}
	}
	for i := range r.Groups {
		rows = append(rows, row(&r.Groups[i]))
	}
	total := r.Total
	total.Key = "total"
	rows = append(rows, row(&total))
	widths := make([]int, len(rows[0]))
	for _, cells := range rows {
		for i, c := range cells {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for n, cells := range rows {
		if n == len(rows)-1 && len(rows) > 2 {
			// A rule above the totals when there are groups.
			sum := 0
			for _, w := range widths {
				sum += w
			}
			b.WriteString(strings.Repeat("-", sum+2*(len(widths)-1)) + "\n")
		}
		var line strings.Builder
		for i, c := range cells {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				line.WriteString(c + pad)
			} else {
				line.WriteString("  " + pad + c)
			}
		}
		b.WriteString(line.String() + "\n")
	}
	return b.String()
}

func cmdExport(fl caddycmd.Flags) (code int, err error) {
	format := strings.ToLower(fl.String("format"))
	if format != ledger.FormatCSV && format != ledger.FormatJSON {
		return 2, fmt.Errorf("--format must be csv or json, not %q", fl.String("format"))
	}
	q := url.Values{"format": {format}}
	if err := windowQuery(fl, q); err != nil {
		return 2, err
	}
	addr, err := adminAddress(fl)
	if err != nil {
		return 1, err
	}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, "/llm/export?"+q.Encode(), nil, nil)
	if err != nil {
		return 1, err
	}
	defer resp.Body.Close()
	var dst io.Writer = os.Stdout
	name := fl.String("output")
	if name == "" || name == "-" {
		if _, err := io.Copy(dst, resp.Body); err != nil {
			return 1, fmt.Errorf("the export was cut short: %v", err)
		}
		return 0, nil
	}
	// Write beside the target and rename when complete: a failed export
	// leaves an existing file as it was and no partial one.
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".part-*")
	if err != nil {
		return 1, err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return 1, fmt.Errorf("the export was cut short: %v", err)
	}
	return 0, nil
}

func cmdPrune(fl caddycmd.Flags) (int, error) {
	before := fl.String("before")
	if before == "" {
		return 2, fmt.Errorf("--before is required: an age such as 90d, or a time (RFC 3339 or YYYY-MM-DD)")
	}
	q := url.Values{"before": {before}}
	if fl.Bool("force") {
		q.Set("force", "true")
	}
	addr, err := adminAddress(fl)
	if err != nil {
		return 1, err
	}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/llm/prune?"+q.Encode(), nil, nil)
	if err != nil {
		return 1, err
	}
	defer resp.Body.Close()
	var ans struct {
		Deleted int       `json:"deleted"`
		Before  time.Time `json:"before"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return 1, fmt.Errorf("reading the admin API's answer: %v", err)
	}
	fmt.Printf("deleted %d ledger entries older than %s\n", ans.Deleted, ans.Before.Format(time.RFC3339))
	return 0, nil
}
