package llmgate

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/llmgate/caddy-llmgate/cache"
	"github.com/llmgate/caddy-llmgate/contextbuf"
)

// cacheCommand is `caddy llm cache`:
//
//	caddy llm cache stats [--json]
//	caddy llm cache clear
//
// stats prints the response cache's entries, stored size, and the hits,
// misses, bypasses and USD saved since the gateway started; clear
// removes every cached answer. Both go through the admin API.
func cacheCommand() *cobra.Command {
	c := &cobra.Command{Use: "cache", Short: "Inspect and clear the response cache"}
	stats := adminCommand("stats [--json]", "Print the response cache's size, hits, misses and savings", cmdCacheStats)
	stats.Flags().Bool("json", false, "print the stats as JSON")
	clear := adminCommand("clear", "Remove every cached answer", cmdCacheClear)
	c.AddCommand(stats, clear)
	return c
}

func cmdCacheStats(fl caddycmd.Flags) (int, error) {
	var st cache.Stats
	if err := adminJSON(fl, http.MethodGet, "/llm/cache", nil, &st); err != nil {
		return 1, err
	}
	if fl.Bool("json") {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Println(string(b))
		return 0, nil
	}
	fmt.Print(FormatCacheStats(st))
	return 0, nil
}

// FormatCacheStats renders cache stats for a terminal.
func FormatCacheStats(st cache.Stats) string {
	var b strings.Builder
	enc := "no"
	if st.Encrypted {
		enc = "yes (AES-256-GCM)"
	}
	fmt.Fprintf(&b, "entries    %d (%s stored)\n", st.Entries, humanize.IBytes(uint64(max(st.Bytes, 0))))
	lookups := st.Hits + st.Misses
	rate := 0.0
	if lookups > 0 {
		rate = 100 * float64(st.Hits) / float64(lookups)
	}
	fmt.Fprintf(&b, "hits       %d (%.1f%% of lookups)\n", st.Hits, rate)
	fmt.Fprintf(&b, "misses     %d\n", st.Misses)
	fmt.Fprintf(&b, "bypasses   %d\n", st.Bypasses)
	fmt.Fprintf(&b, "stored     %d\n", st.Stores)
	fmt.Fprintf(&b, "saved      $%.6f\n", st.SavedUSD)
	fmt.Fprintf(&b, "ttl        %gs, entries up to %s, encrypted %s\n", st.TTLSeconds, humanize.IBytes(uint64(max(st.MaxEntryBytes, 0))), enc)
	b.WriteString("(counts since the gateway started)\n")
	return b.String()
}

func cmdCacheClear(fl caddycmd.Flags) (int, error) {
	var out struct {
		Removed int `json:"removed"`
	}
	if err := adminJSON(fl, http.MethodPost, "/llm/cache/clear", nil, &out); err != nil {
		return 1, err
	}
	fmt.Printf("removed %d cached answers\n", out.Removed)
	return 0, nil
}

// contextCommand is `caddy llm context`:
//
//	caddy llm context stats [--json]
//	caddy llm context delete --id <name>
//
// stats lists the contexts of the delta context buffer (files, bytes,
// estimated tokens, version, deltas applied, last update); delete
// removes one. Both go through the admin API.
func contextCommand() *cobra.Command {
	c := &cobra.Command{Use: "context", Short: "Inspect the delta context buffer"}
	stats := adminCommand("stats [--json]", "List the stored contexts", cmdContextStats)
	stats.Flags().Bool("json", false, "print the stats as JSON")
	del := adminCommand("delete --id <name>", "Delete a context", cmdContextDelete)
	del.Flags().String("id", "", "the context to delete")
	c.AddCommand(stats, del)
	return c
}

func cmdContextStats(fl caddycmd.Flags) (int, error) {
	var out struct {
		Contexts []contextbuf.Stats `json:"contexts"`
	}
	if err := adminJSON(fl, http.MethodGet, "/llm/context", nil, &out); err != nil {
		return 1, err
	}
	if fl.Bool("json") {
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Println(string(b))
		return 0, nil
	}
	if len(out.Contexts) == 0 {
		fmt.Println("no contexts")
		return 0, nil
	}
	fmt.Printf("%-24s %8s %6s %10s %10s %7s  %s\n", "ID", "VERSION", "FILES", "BYTES", "TOKENS", "DELTAS", "UPDATED")
	for _, s := range out.Contexts {
		fmt.Printf("%-24s %8d %6d %10s %10d %7d  %s\n", s.ID, s.Version, s.Files, humanize.IBytes(uint64(max(s.Bytes, 0))), s.Tokens, s.Deltas, s.Updated.Format("2006-01-02 15:04:05"))
	}
	return 0, nil
}

func cmdContextDelete(fl caddycmd.Flags) (int, error) {
	id := fl.String("id")
	if id == "" {
		return 2, fmt.Errorf("--id is required")
	}
	var out map[string]string
	if err := adminJSON(fl, http.MethodDelete, "/llm/context/"+id, nil, &out); err != nil {
		return 1, err
	}
	fmt.Printf("deleted context %s\n", id)
	return 0, nil
}
