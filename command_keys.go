package llmgate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/llmgate/caddy-llmgate/keys"
)

// keyCommand is `caddy llm key`: hash, create, list and revoke client
// keys.
func keyCommand() *cobra.Command {
	key := &cobra.Command{Use: "key", Short: "Manage the gateway's client keys"}

	hash := &cobra.Command{
		Use:   "hash [--generate]",
		Short: "Print the hash of a key (read from standard input) for an llm_budget key line",
		Long: `Reads a key from standard input (one line) and prints the hash to put in
the Caddyfile: llm_budget { key <name> <hash> }. With --generate, makes a
new random key and prints it and its hash. Nothing is sent anywhere.`,
		Args: cobra.NoArgs,
		RunE: caddycmd.WrapCommandFuncForCobra(cmdKeyHash),
	}
	hash.Flags().Bool("generate", false, "generate a new key and print it with its hash")

	create := adminCommand("create --name <name> [--daily <usd>] [--monthly <usd>]", "Create a key in the gateway's storage and print it (shown only this once)", cmdKeyCreate)
	create.Flags().String("name", "", "the key's name (in the ledger and in stats)")
	create.Flags().Float64("daily", 0, "the key's daily limit in USD (0: the per_key default)")
	create.Flags().Float64("monthly", 0, "the key's monthly limit in USD (0: the per_key default)")
	create.Flags().Bool("json", false, "print the answer as JSON")

	list := adminCommand("list", "List the keys in the gateway's storage", cmdKeyList)
	list.Flags().Bool("json", false, "print the list as JSON")

	revoke := adminCommand("revoke --name <name>", "Revoke a key: requests with it are refused from now on", cmdKeyRevoke)
	revoke.Flags().String("name", "", "the key to revoke")

	key.AddCommand(hash, create, list, revoke)
	return key
}

func cmdKeyHash(fl caddycmd.Flags) (int, error) {
	if fl.Bool("generate") {
		k, err := keys.Generate()
		if err != nil {
			return 1, err
		}
		fmt.Printf("key:  %s\nhash: %s\n", k, keys.Hash(k))
		return 0, nil
	}
	line, err := bufio.NewReader(io.LimitReader(os.Stdin, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return 1, fmt.Errorf("reading the key: %v", err)
	}
	k := strings.TrimSpace(line)
	if k == "" {
		return 2, fmt.Errorf("no key on standard input (or use --generate)")
	}
	fmt.Println(keys.Hash(k))
	return 0, nil
}

// adminJSON sends a request to the admin API and decodes a 2xx JSON
// answer into out; other answers become errors carrying the message.
func adminJSON(fl caddycmd.Flags, method, path string, body any, out any) error {
	addr, err := adminAddress(fl)
	if err != nil {
		return err
	}
	var rd io.Reader
	hdr := http.Header{}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, hdr, rd)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

func cmdKeyCreate(fl caddycmd.Flags) (int, error) {
	name := fl.String("name")
	if name == "" {
		return 2, fmt.Errorf("--name is required")
	}
	if err := keys.CheckName(name); err != nil {
		return 2, err
	}
	var out createdKey
	err := adminJSON(fl, http.MethodPost, "/llm/keys", keyRequest{Name: name, DailyUSD: fl.Float64("daily"), MonthlyUSD: fl.Float64("monthly")}, &out)
	if err != nil {
		return 1, err
	}
	if fl.Bool("json") {
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Println(string(b))
		return 0, nil
	}
	fmt.Printf("created key %s (daily %s, monthly %s)\n\n  %s\n\nThis is the only time the key is shown; the gateway keeps its hash only.\n",
		out.Name, limitText(out.DailyUSD), limitText(out.MonthlyUSD), out.Secret)
	return 0, nil
}

func limitText(v float64) string {
	if v <= 0 {
		return "default"
	}
	return fmt.Sprintf("$%g", v)
}

func cmdKeyList(fl caddycmd.Flags) (int, error) {
	var ks []keys.Key
	if err := adminJSON(fl, http.MethodGet, "/llm/keys", nil, &ks); err != nil {
		return 1, err
	}
	if fl.Bool("json") {
		b, _ := json.MarshalIndent(ks, "", "  ")
		fmt.Println(string(b))
		return 0, nil
	}
	fmt.Print(FormatKeys(ks))
	return 0, nil
}

// FormatKeys renders key records as an aligned table.
func FormatKeys(ks []keys.Key) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDAILY\tMONTHLY\tCREATED\tSTATUS")
	for _, k := range ks {
		status := "active"
		if k.Revoked != nil {
			status = "revoked " + k.Revoked.Format("2006-01-02 15:04")
		}
		created := "-"
		if !k.Created.IsZero() {
			created = k.Created.Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Name, limitText(k.DailyUSD), limitText(k.MonthlyUSD), created, status)
	}
	_ = tw.Flush()
	return b.String()
}

func cmdKeyRevoke(fl caddycmd.Flags) (int, error) {
	name := fl.String("name")
	if name == "" {
		return 2, fmt.Errorf("--name is required")
	}
	var k keys.Key
	if err := adminJSON(fl, http.MethodDelete, "/llm/keys/"+url.PathEscape(name), nil, &k); err != nil {
		return 1, err
	}
	fmt.Printf("revoked key %s\n", k.Name)
	return 0, nil
}
